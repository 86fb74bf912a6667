//! Rule outputs: Falco's `%field` format strings, compiled once per rule and rendered per
//! alert, with `<NA>` for values the event does not have.

use std::collections::BTreeMap;

use crate::event::Event;

use super::ast::{Expr, Rhs};
use super::compile;
use super::eval::Accessor;
use super::fields::Value;
use super::parser;

#[derive(Debug, Clone)]
enum Part {
    Text(String),
    Field(Accessor),
}

/// A compiled output format.
#[derive(Debug, Clone, Default)]
pub struct OutputFormat {
    parts: Vec<Part>,
}

fn is_field_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '.'
}

impl OutputFormat {
    /// Compiles `fmt`; returns the format and warnings (deprecated fields stripped).
    pub fn compile(fmt: &str) -> Result<(OutputFormat, Vec<String>), String> {
        let mut parts = Vec::new();
        let mut warnings = Vec::new();
        let mut text = String::new();
        let fmt = fmt.strip_prefix('*').unwrap_or(fmt);
        let mut rest = fmt;
        while let Some(i) = rest.find('%') {
            text.push_str(&rest[..i]);
            let after = &rest[i + 1..];
            let digits = after.len() - after.trim_start_matches(|c: char| c.is_ascii_digit()).len();
            let spec_start = &after[digits..];
            // The field expression: `(expr)`, `transformer(expr)`, or `name[arg]`.
            let len = if spec_start.starts_with('(') {
                matching_paren(spec_start)
            } else {
                let name_len =
                    spec_start.len() - spec_start.trim_start_matches(is_field_char).len();
                let mut n = name_len;
                if spec_start[name_len..].starts_with('(') {
                    n += matching_paren(&spec_start[name_len..]);
                } else if spec_start[name_len..].starts_with('[') {
                    match spec_start[name_len..].find(']') {
                        Some(j) => n += j + 1,
                        None => {
                            return Err(format!(
                                "unterminated '[' after %{}",
                                &spec_start[..name_len]
                            ));
                        }
                    }
                } else {
                    // A sentence's full stop is not part of the field name.
                    while n > 0 && spec_start[..n].ends_with('.') {
                        n -= 1;
                    }
                }
                n
            };
            if len == 0 {
                text.push('%');
                rest = after;
                continue;
            }
            let spec = &spec_start[..len];
            rest = &spec_start[len..];
            let inner = spec
                .strip_prefix('(')
                .and_then(|s| s.strip_suffix(')'))
                .unwrap_or(spec);
            if inner == "container.info" {
                warnings.push(
                    "%container.info is deprecated and was removed from the output".to_string(),
                );
                continue;
            }
            let acc = field_accessor(inner)?;
            if acc.def.filter_only {
                return Err(format!(
                    "field '{}' can only be used in conditions, not in outputs",
                    acc.display
                ));
            }
            if !text.is_empty() {
                parts.push(Part::Text(std::mem::take(&mut text)));
            }
            parts.push(Part::Field(acc));
        }
        text.push_str(rest);
        if !text.is_empty() {
            parts.push(Part::Text(text));
        }
        Ok((OutputFormat { parts }, warnings))
    }

    /// The message and the typed values of every field in it.
    pub fn render(&self, ev: &Event) -> (String, BTreeMap<String, serde_json::Value>) {
        let mut out = String::with_capacity(256);
        let mut fields = BTreeMap::new();
        for p in &self.parts {
            match p {
                Part::Text(t) => out.push_str(t),
                Part::Field(a) => {
                    let v = a.extract(ev);
                    v.render(&mut out);
                    fields.insert(a.display.clone(), v.to_json());
                }
            }
        }
        (out, fields)
    }

    /// The fields the output prints.
    pub fn accessors(&self) -> impl Iterator<Item = &Accessor> {
        self.parts.iter().filter_map(|p| match p {
            Part::Field(a) => Some(a),
            Part::Text(_) => None,
        })
    }
}

/// Length of the parenthesised group at the start of `s` (0 if unbalanced).
fn matching_paren(s: &str) -> usize {
    let mut depth = 0usize;
    for (i, c) in s.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => {
                depth = depth.saturating_sub(1);
                if depth == 0 {
                    return i + 1;
                }
            }
            _ => {}
        }
    }
    0
}

/// Parses one field reference (with transformers) using the condition grammar.
pub fn field_accessor(spec: &str) -> Result<Accessor, String> {
    let tree = parser::parse(&format!("{spec} exists"))
        .map_err(|e| format!("invalid field '{spec}': {}", e.message))?;
    match tree {
        Expr::Check(c) if c.rhs == Rhs::None => {
            compile::accessor(&c.lhs, 0).map_err(|e| e.kind.to_string())
        }
        _ => Err(format!("invalid field '{spec}'")),
    }
}

/// Renders one value as an output would (`<NA>` when missing).
pub fn render_value(v: &Value<'_>) -> String {
    v.to_display_string()
}
