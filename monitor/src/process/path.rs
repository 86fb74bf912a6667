//! Lexical path resolution, as Falco does it for `fd.name`: relative paths are joined to the
//! directory they are relative to, `.` and `..` are folded, symlinks are not followed.

/// `path` made absolute against `base` (a directory, with or without trailing slash) and
/// cleaned. An absolute `path` ignores `base`.
pub fn resolve(base: &str, path: &str) -> String {
    if path.starts_with('/') {
        clean(path)
    } else if path.is_empty() {
        clean(base)
    } else {
        clean(&format!("{base}/{path}"))
    }
}

/// Fold `.`, `..` and repeated slashes of an absolute path.
pub fn clean(path: &str) -> String {
    let mut parts: Vec<&str> = Vec::new();
    for c in path.split('/') {
        match c {
            "" | "." => {}
            ".." => {
                parts.pop();
            }
            _ => parts.push(c),
        }
    }
    let mut out = String::with_capacity(path.len() + 1);
    for p in &parts {
        out.push('/');
        out.push_str(p);
    }
    if out.is_empty() {
        out.push('/');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolves_like_falco() {
        assert_eq!(resolve("/home/u/", "a.txt"), "/home/u/a.txt");
        assert_eq!(resolve("/etc", "../etc/./shadow"), "/etc/shadow");
        assert_eq!(resolve("/tmp", "/etc//passwd"), "/etc/passwd");
        assert_eq!(resolve("/", ".."), "/");
        assert_eq!(resolve("/var/log/", ""), "/var/log");
        assert_eq!(clean("/a/b/../../../c"), "/c");
    }
}
