//! A necessary condition on file paths for open-family events, derived from the compiled rules,
//! so the kernel can drop opens no rule could match before they reach the ring buffer.

use crate::event::EventType;

use super::ast::{Modifier, Op};
use super::eval::{Node, Operand, Rhs, TypeSet};

/// An open/openat/openat2/creat event whose absolute path N and raw path R can match some
/// enabled rule only if N starts with a prefix, or N ends with a suffix, or R contains one of
/// `raw_contains`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PathPrefilter {
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
    pub raw_contains: Vec<String>,
}

impl PathPrefilter {
    /// Whether an open of `name` (absolute) given as `raw` may match a rule.
    pub fn passes(&self, name: &str, raw: &str) -> bool {
        self.prefixes.iter().any(|p| name.starts_with(p.as_str()))
            || self.suffixes.iter().any(|s| name.ends_with(s.as_str()))
            || self.raw_contains.iter().any(|r| raw.contains(r.as_str()))
    }
}

pub fn open_types() -> TypeSet {
    [
        EventType::Open,
        EventType::Openat,
        EventType::Openat2,
        EventType::Creat,
    ]
    .into_iter()
    .fold(TypeSet::NONE, |s, t| s.union(TypeSet::of(t)))
}

/// Alternatives, any of which must hold; empty = the node never holds for an open.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Alts {
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
    pub raw: Vec<String>,
}

impl Alts {
    fn len(&self) -> usize {
        self.prefixes.len() + self.suffixes.len() + self.raw.len()
    }

    /// Smaller is more selective: the shortest needle decides, then the count.
    fn weakness(&self) -> (usize, usize) {
        let shortest = self
            .prefixes
            .iter()
            .chain(&self.suffixes)
            .chain(&self.raw)
            .map(String::len)
            .min()
            .unwrap_or(usize::MAX);
        (usize::MAX - shortest, self.len())
    }

    fn union(mut self, o: Alts) -> Alts {
        self.prefixes.extend(o.prefixes);
        self.suffixes.extend(o.suffixes);
        self.raw.extend(o.raw);
        self
    }
}

fn strs(rhs: &Rhs) -> Option<Vec<&str>> {
    match rhs {
        Rhs::One(Operand::Str(s)) => Some(vec![s.as_ref()]),
        Rhs::StrSet(set) => Some(set.items()),
        Rhs::List(items) => items
            .iter()
            .map(|o| match o {
                Operand::Str(s) => Some(s.as_ref()),
                _ => None,
            })
            .collect(),
        _ => None,
    }
}

/// The literal text of a glob before its first wildcard.
fn glob_prefix(p: &str) -> &str {
    match p.find(['*', '?', '[', '\\']) {
        Some(i) => &p[..i],
        None => p,
    }
}

/// A necessary condition for `node` on an open-family event, or None when no bound derives.
pub fn necessary(node: &Node) -> Option<Alts> {
    if node.types().intersect(open_types()) == TypeSet::NONE {
        return Some(Alts::default());
    }
    match node {
        Node::Const(false) => Some(Alts::default()),
        Node::Const(true) | Node::Types(_) | Node::Not(_) => None,
        Node::Or(v) => v
            .iter()
            .map(necessary)
            .try_fold(Alts::default(), |acc, a| a.map(|a| acc.union(a))),
        Node::And(v) => v.iter().filter_map(necessary).min_by_key(Alts::weakness),
        Node::Check(c) => {
            if !c.lhs.transforms.is_empty() {
                return None;
            }
            let op = c.op;
            let any_of = matches!(c.modifier, None | Some(Modifier::OneOf | Modifier::AnyOf));
            let values = strs(&c.rhs)?;
            let mut a = Alts::default();
            match (c.lhs.def.name, op) {
                ("fd.name", Op::Eq | Op::In | Op::Intersects | Op::StartsWith | Op::PMatch)
                    if any_of =>
                {
                    a.prefixes = values.iter().map(|v| v.to_string()).collect();
                }
                ("fd.name", Op::EndsWith) if any_of => {
                    a.suffixes = values.iter().map(|v| v.to_string()).collect();
                }
                ("fd.name", Op::Glob) if any_of => {
                    for v in values {
                        let p = glob_prefix(v);
                        if p.is_empty() {
                            return None;
                        }
                        a.prefixes.push(p.to_string());
                    }
                }
                ("fd.directory", Op::Eq | Op::In | Op::Intersects) if any_of => {
                    a.prefixes = values
                        .iter()
                        .map(|v| {
                            if v.ends_with('/') {
                                v.to_string()
                            } else {
                                format!("{v}/")
                            }
                        })
                        .collect();
                }
                ("fd.directory", Op::StartsWith | Op::PMatch) if any_of => {
                    a.prefixes = values.iter().map(|v| v.to_string()).collect();
                }
                ("fd.filename", Op::Eq | Op::In | Op::Intersects) if any_of => {
                    a.suffixes = values.iter().map(|v| format!("/{v}")).collect();
                }
                ("fd.filename", Op::EndsWith) if any_of => {
                    a.suffixes = values.iter().map(|v| v.to_string()).collect();
                }
                (
                    "fd.nameraw",
                    Op::Eq | Op::In | Op::Intersects | Op::Contains | Op::StartsWith | Op::EndsWith,
                ) if any_of => {
                    a.raw = values.iter().map(|v| v.to_string()).collect();
                }
                _ => return None,
            }
            if a.len() == 0 && !matches!(op, Op::In | Op::Intersects) {
                return None;
            }
            Some(a)
        }
    }
}
