//! Positions in a rules file. serde_yaml's values carry no marks, so the loader finds each
//! top-level item and its `condition:` scalar in the text itself, and maps an offset in a
//! condition back to the line and column a user sees in their editor.

/// Where one top-level item starts (1-based line), per item in document order.
pub fn item_lines(src: &str) -> Vec<usize> {
    src.lines()
        .enumerate()
        .filter(|(_, l)| *l == "-" || l.starts_with("- "))
        .map(|(i, _)| i + 1)
        .collect()
}

/// How the text of a scalar maps onto source lines: each entry is (line, column of the first
/// character, number of characters); consecutive lines are joined by one character (a space or
/// a newline, depending on the scalar's style).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ScalarLoc {
    pub lines: Vec<(usize, usize, usize)>,
}

impl ScalarLoc {
    /// 1-based (line, column) of byte `offset` of the scalar's text.
    pub fn position(&self, mut offset: usize) -> Option<(usize, usize)> {
        let mut last = None;
        for &(line, col, len) in &self.lines {
            if offset <= len {
                return Some((line, col + offset));
            }
            offset -= len + 1;
            last = Some((line, col + len));
        }
        last
    }
}

fn indent(l: &str) -> usize {
    l.len() - l.trim_start_matches(' ').len()
}

/// Finds `key:` in the item spanning lines `[start, end)` (1-based, end exclusive) and says how
/// its scalar value maps onto the source.
pub fn find_key(src: &str, start: usize, end: usize, key: &str) -> Option<ScalarLoc> {
    let lines: Vec<&str> = src.lines().collect();
    let end = end.min(lines.len() + 1);
    for ln in start..end {
        let l = lines.get(ln - 1)?;
        let body = l.trim_start_matches([' ', '-']);
        let key_col = l.len() - body.len();
        let Some(rest) = body.strip_prefix(key).and_then(|r| r.strip_prefix(':')) else {
            continue;
        };
        let value_col = key_col + key.len() + 1 + (rest.len() - rest.trim_start().len());
        let rest_t = rest.trim();
        let mut loc = ScalarLoc::default();
        let continuation = |from: usize, loc: &mut ScalarLoc, keep_indent: Option<usize>| {
            let mut block_indent = keep_indent;
            for (i, cl) in lines.iter().enumerate().take(end - 1).skip(from) {
                if cl.trim().is_empty() {
                    loc.lines.push((i + 1, 1, 0));
                    continue;
                }
                if cl.trim_start().starts_with('#') && block_indent.is_none() {
                    break;
                }
                let ind = indent(cl);
                if ind <= key_col {
                    break;
                }
                let bi = *block_indent.get_or_insert(ind);
                let col = if keep_indent.is_some() {
                    bi.min(ind)
                } else {
                    ind
                };
                loc.lines.push((i + 1, col + 1, cl.len() - col));
            }
            while loc.lines.last().is_some_and(|l| l.2 == 0) {
                loc.lines.pop();
            }
        };
        if rest_t.starts_with('>') || rest_t.starts_with('|') {
            continuation(ln, &mut loc, Some(usize::MAX));
            // Re-run with the real block indentation (the first content line's).
            if let Some(&(_, c, _)) = loc.lines.iter().find(|l| l.2 > 0) {
                let mut again = ScalarLoc::default();
                continuation(ln, &mut again, Some(c - 1));
                loc = again;
            }
        } else {
            let quoted = rest_t.starts_with('"') || rest_t.starts_with('\'');
            let first_len = rest_t.len() - usize::from(quoted);
            loc.lines
                .push((ln, value_col + 1 + usize::from(quoted), first_len));
            if !quoted || !rest_t[1..].trim_end().ends_with(&rest_t[..1]) {
                continuation(ln, &mut loc, None);
            }
        }
        return Some(loc);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    const SRC: &str = "# c\n- macro: m\n  condition: a and b\n\n- rule: r\n  desc: d\n  condition: >\n    x and\n      y\n  output: o\n";

    #[test]
    fn items_and_conditions_are_found() {
        assert_eq!(item_lines(SRC), vec![2, 5]);
        let m = find_key(SRC, 2, 5, "condition").expect("macro condition");
        assert_eq!(m.position(6), Some((3, 20)));
        let r = find_key(SRC, 5, 12, "condition").expect("rule condition");
        assert_eq!(r.position(0), Some((8, 5)));
        // "x and" is 5 characters, then one joining character, then "  y".
        assert_eq!(r.position(8), Some((9, 7)));
    }
}
