//! The enforcement compiler: the condition of a rule with `action: kill` is translated into
//! the kernel's match tables, checked at exec, where a match is killed before the new
//! program runs. A condition that cannot be evaluated completely in the kernel is refused,
//! with the part and the reason: nothing is enforced by a half-compiled rule.
//!
//! The kernel evaluates facts, one bit per distinct predicate: the new program's name, the
//! names of its ancestors, its path, its container (predicates on containers are evaluated
//! here, per container, and handed to the kernel as bits of the container's cgroup), its uid.
//! A rule becomes a disjunction of conjunctions, each a mask of facts that must hold and a
//! mask of facts that must not.

pub mod tables;

use std::fmt;
use std::sync::Arc;

use crate::event::EventType;
use crate::rules::Rule;
use crate::rules::ast::Op;
use crate::rules::eval::{Check, Node, Operand, Program, Rhs};
use crate::rules::fields::FieldArg;
use monitor_common::{enforce, limits};

/// Most conjunctions one rule may expand to.
const MAX_CONJ_PER_RULE: usize = 16;
/// Longest program name the kernel compares (as `/NAME` in the path's last 32 bytes).
const MAX_NAME: usize = 31;

/// Why a rule cannot be enforced.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("rule '{rule}' (action: kill) cannot be enforced in the kernel: {reason}")]
pub struct EnforceError {
    pub rule: String,
    pub reason: String,
}

/// A predicate the kernel can check at exec.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Atom {
    /// `proc.name in (NAMES)`: the exec'd path's last component.
    Name(Vec<String>),
    /// `proc.aname[depth] in (NAMES)` (1 = parent); `None`: any ancestor.
    Ancestor(Option<u32>, Vec<String>),
    /// `proc.exepath startswith PREFIX` (any of them).
    ExePrefix(Vec<String>),
    /// `proc.exepath in (PATHS)`.
    ExeExact(Vec<String>),
    /// `container.id != host`.
    InContainer,
    /// Any other check on container or Kubernetes fields, evaluated per container.
    Container(ContainerCheck),
    /// `user.uid in (N...)`.
    Uid(Vec<u32>),
}

/// A check on container fields, kept with its text for ordering and messages.
#[derive(Clone, Debug)]
pub struct ContainerCheck {
    pub text: String,
    pub program: Arc<Program>,
}

impl PartialEq for ContainerCheck {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}
impl Eq for ContainerCheck {}
impl std::hash::Hash for ContainerCheck {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        self.text.hash(state)
    }
}
impl PartialOrd for ContainerCheck {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for ContainerCheck {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.text.cmp(&other.text)
    }
}

impl fmt::Display for Atom {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Atom::Name(n) => write!(f, "proc.name in ({})", n.join(", ")),
            Atom::Ancestor(Some(d), n) => write!(f, "proc.aname[{d}] in ({})", n.join(", ")),
            Atom::Ancestor(None, n) => write!(f, "proc.aname in ({})", n.join(", ")),
            Atom::ExePrefix(p) => write!(f, "proc.exepath startswith ({})", p.join(", ")),
            Atom::ExeExact(p) => write!(f, "proc.exepath in ({})", p.join(", ")),
            Atom::InContainer => write!(f, "container.id != host"),
            Atom::Container(c) => f.write_str(&c.text),
            Atom::Uid(u) => write!(
                f,
                "user.uid in ({})",
                u.iter()
                    .map(ToString::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        }
    }
}

/// One literal of a conjunction.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct Lit {
    pub atom: Atom,
    pub negated: bool,
}

/// A conjunction: literals that must all hold, for these exec syscalls.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Conj {
    pub lits: Vec<Lit>,
    pub on_execve: bool,
    pub on_execveat: bool,
}

/// A rule compiled for the kernel.
#[derive(Clone, Debug)]
pub struct EnforcedRule {
    pub name: Arc<str>,
    /// Index of the rule in the engine.
    pub engine_index: usize,
    pub dry_run: bool,
    pub conjs: Vec<Conj>,
}

/// Compile rule `index` of the engine (it must have `action: kill`).
pub fn compile(rule: &Rule, index: usize) -> Result<EnforcedRule, EnforceError> {
    let err = |reason: String| EnforceError {
        rule: rule.name.to_string(),
        reason,
    };
    let types = rule.event_types();
    let others: Vec<&str> = types
        .iter()
        .filter(|t| !matches!(t, EventType::Execve | EventType::Execveat))
        .map(|t| t.name())
        .collect();
    if types.is_empty() {
        return Err(err("the condition matches no event type".into()));
    }
    if !others.is_empty() {
        return Err(err(format!(
            "enforcement acts when a program is executed, so the rule must match only execve/execveat events, but it also matches: {}",
            if others.len() > 8 {
                format!("{} and {} more", others[..8].join(", "), others.len() - 8)
            } else {
                others.join(", ")
            }
        )));
    }
    let dnf = to_dnf(rule.condition_node(), false).map_err(err)?;
    let mut conjs = Vec::new();
    for c in dnf {
        if c.lits.is_empty() {
            return Err(err(
                "one alternative of the condition restricts nothing but the event type: it would kill every exec"
                    .into(),
            ));
        }
        if c.on_execve || c.on_execveat {
            conjs.push(c);
        }
    }
    if conjs.is_empty() {
        return Err(err("the condition can never hold at exec".into()));
    }
    if conjs.len() > MAX_CONJ_PER_RULE {
        return Err(err(format!(
            "the condition expands to {} alternatives; at most {MAX_CONJ_PER_RULE} fit the kernel's tables",
            conjs.len()
        )));
    }
    Ok(EnforcedRule {
        name: rule.name.clone(),
        engine_index: index,
        dry_run: rule.dry_run,
        conjs,
    })
}

type Dnf = Vec<Conj>;

fn always() -> Dnf {
    vec![Conj {
        lits: Vec::new(),
        on_execve: true,
        on_execveat: true,
    }]
}

fn never() -> Dnf {
    Vec::new()
}

fn and(a: Dnf, b: Dnf) -> Result<Dnf, String> {
    let mut out = Vec::new();
    for x in &a {
        for y in &b {
            let mut lits = x.lits.clone();
            for l in &y.lits {
                if !lits.contains(l) {
                    lits.push(l.clone());
                }
            }
            // x and not x: never.
            if lits.iter().any(|l| {
                lits.iter()
                    .any(|m| m.atom == l.atom && m.negated != l.negated)
            }) {
                continue;
            }
            let c = Conj {
                lits,
                on_execve: x.on_execve && y.on_execve,
                on_execveat: x.on_execveat && y.on_execveat,
            };
            if (c.on_execve || c.on_execveat) && !out.contains(&c) {
                out.push(c);
            }
            if out.len() > 4 * MAX_CONJ_PER_RULE {
                return Err(
                    "the condition expands to too many alternatives for the kernel's tables".into(),
                );
            }
        }
    }
    Ok(out)
}

fn or(mut a: Dnf, b: Dnf) -> Dnf {
    for c in b {
        if !a.contains(&c) {
            a.push(c);
        }
    }
    a
}

/// The condition (negated when `neg`) in disjunctive normal form over kernel atoms.
fn to_dnf(node: &Node, neg: bool) -> Result<Dnf, String> {
    match node {
        Node::Const(b) => Ok(if *b != neg { always() } else { never() }),
        Node::Not(inner) => to_dnf(inner, !neg),
        Node::And(parts) if !neg => parts
            .iter()
            .try_fold(always(), |acc, p| and(acc, to_dnf(p, false)?)),
        Node::Or(parts) if neg => parts
            .iter()
            .try_fold(always(), |acc, p| and(acc, to_dnf(p, true)?)),
        Node::And(parts) | Node::Or(parts) => parts
            .iter()
            .try_fold(never(), |acc, p| Ok(or(acc, to_dnf(p, neg)?))),
        Node::Types(set) => {
            let e = set.contains(EventType::Execve) != neg;
            let ea = set.contains(EventType::Execveat) != neg;
            Ok(if e || ea {
                vec![Conj {
                    lits: Vec::new(),
                    on_execve: e,
                    on_execveat: ea,
                }]
            } else {
                never()
            })
        }
        Node::Check(c) => check_dnf(c, neg),
    }
}

/// One literal: a set membership is one fact for the kernel, not one alternative per value.
fn lit_dnf(atom: Atom, neg: bool) -> Result<Dnf, String> {
    Ok(vec![Conj {
        lits: vec![Lit { atom, negated: neg }],
        on_execve: true,
        on_execveat: true,
    }])
}

fn strings(c: &Check) -> Result<Vec<String>, String> {
    match &c.rhs {
        Rhs::One(Operand::Str(s)) => Ok(vec![s.to_string()]),
        Rhs::StrSet(set) => {
            let mut v: Vec<String> = set.items().into_iter().map(str::to_string).collect();
            v.sort();
            Ok(v)
        }
        Rhs::List(items) => items
            .iter()
            .map(|o| match o {
                Operand::Str(s) => Ok(s.to_string()),
                _ => Err("the list holds a value that is not a string".to_string()),
            })
            .collect(),
        _ => Err(format!(
            "'{} {}' compares with something other than strings",
            c.lhs.display,
            c.op.name()
        )),
    }
}

fn check_dnf(c: &Check, neg: bool) -> Result<Dnf, String> {
    let field = c.lhs.def.name;
    let part = format!("'{} {}'", c.lhs.display, c.op.name());
    if !c.lhs.transforms.is_empty() {
        return Err(format!(
            "{part}: transformers cannot be applied in the kernel"
        ));
    }
    if c.modifier.is_some() {
        return Err(format!(
            "{part}: list modifiers cannot be applied in the kernel"
        ));
    }
    // `!=` is `not =`.
    let (op, neg) = match c.op {
        Op::Ne => (Op::Eq, !neg),
        op => (op, neg),
    };
    let unsupported = |why: &str| Err(format!("{part}: {why}"));
    match field {
        "proc.name" => match op {
            Op::Eq | Op::In => {
                let names = strings(c)?;
                if let Some(long) = names
                    .iter()
                    .find(|n| n.len() > MAX_NAME || n.contains('/') || n.is_empty())
                {
                    return Err(format!(
                        "{part}: the name '{long}' cannot be compared in the kernel (longer than {MAX_NAME} bytes, or contains '/')"
                    ));
                }
                lit_dnf(Atom::Name(names), neg)
            }
            _ => unsupported("only =, != and in can be checked in the kernel on proc.name"),
        },
        "proc.pname" | "proc.aname" => {
            let depth = match (field, &c.lhs.arg) {
                ("proc.pname", _) => Some(1),
                (_, FieldArg::None) => None,
                (_, FieldArg::Index(n)) if *n >= 1 && *n <= limits::MAX_ANCESTORS => {
                    Some(*n as u32)
                }
                _ => {
                    return unsupported(&format!(
                        "the kernel walks {} ancestors at most",
                        limits::MAX_ANCESTORS
                    ));
                }
            };
            match op {
                Op::Eq | Op::In => {
                    let names = strings(c)?;
                    // The kernel compares the 15 bytes of a task's comm.
                    let mut names: Vec<String> = names.iter().map(|n| truncate_comm(n)).collect();
                    names.sort();
                    names.dedup();
                    lit_dnf(Atom::Ancestor(depth, names), neg)
                }
                _ => {
                    unsupported("only =, != and in can be checked in the kernel on ancestor names")
                }
            }
        }
        "proc.exepath" => match op {
            Op::Eq | Op::In => lit_dnf(Atom::ExeExact(strings(c)?), neg),
            Op::StartsWith => lit_dnf(Atom::ExePrefix(strings(c)?), neg),
            Op::PMatch => {
                // pmatch: the path is one of these or under one of them.
                let dirs: Vec<String> = strings(c)?
                    .into_iter()
                    .map(|p| format!("{}/", p.trim_end_matches('/')))
                    .collect();
                let both = or(
                    lit_dnf(Atom::ExeExact(strings(c)?), false)?,
                    lit_dnf(Atom::ExePrefix(dirs), false)?,
                );
                if neg {
                    // not (exact or under): both literals negated in one conjunction.
                    Ok(vec![Conj {
                        lits: both
                            .into_iter()
                            .flat_map(|c| c.lits)
                            .map(|l| Lit { negated: true, ..l })
                            .collect(),
                        on_execve: true,
                        on_execveat: true,
                    }])
                } else {
                    Ok(both)
                }
            }
            _ => unsupported(
                "only =, in, startswith and pmatch can be checked in the kernel on proc.exepath",
            ),
        },
        "container.id" if matches!(op, Op::Eq) && strings(c)? == ["host"] => {
            lit_dnf(Atom::InContainer, !neg)
        }
        f if f.starts_with("container.") || f.starts_with("k8s.") => {
            let node = Node::Check(Box::new(c.clone()));
            let text = format!(
                "{} {} {:?}",
                c.lhs.display,
                c.op.name(),
                strings(c).unwrap_or_default()
            );
            let atom = Atom::Container(ContainerCheck {
                text,
                program: Arc::new(Program::new(&node)),
            });
            // The check itself carries its operator; negation stays a literal flag.
            lit_dnf(atom, neg != (c.op == Op::Ne))
        }
        "user.uid" => match (op, &c.rhs) {
            (Op::Eq, Rhs::One(Operand::Num(n))) => lit_dnf(Atom::Uid(vec![uid(*n, &part)?]), neg),
            (Op::In, Rhs::List(items)) => {
                let ids = items
                    .iter()
                    .map(|o| match o {
                        Operand::Num(n) => uid(*n, &part),
                        _ => Err(format!("{part}: not a number")),
                    })
                    .collect::<Result<Vec<_>, _>>()?;
                lit_dnf(Atom::Uid(ids), neg)
            }
            _ => unsupported("only =, != and in can be checked in the kernel on user.uid"),
        },
        _ => Err(format!(
            "{part}: the kernel cannot check {field} at exec (it can check proc.name, proc.pname, proc.aname, proc.exepath, container.* and k8s.* fields, user.uid)"
        )),
    }
}

fn uid(n: i128, part: &str) -> Result<u32, String> {
    u32::try_from(n).map_err(|_| format!("{part}: {n} is not a uid"))
}

fn truncate_comm(n: &str) -> String {
    let mut end = n.len().min(15);
    while !n.is_char_boundary(end) {
        end -= 1;
    }
    n[..end].to_string()
}

/// All enforcing rules of an engine, compiled. Errors name every rule that cannot be
/// enforced.
pub fn compile_all(engine: &crate::rules::Engine) -> Result<Vec<EnforcedRule>, Vec<EnforceError>> {
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for (i, r) in engine.rules().iter().enumerate() {
        if !r.enabled || r.action != crate::alert::Action::Kill {
            continue;
        }
        match compile(r, i) {
            Ok(c) => ok.push(c),
            Err(e) => errors.push(e),
        }
    }
    if !errors.is_empty() {
        return Err(errors);
    }
    // Distinct atoms must fit the 64 fact bits, and conjunctions the kernel's table.
    let mut atoms: Vec<&Atom> = Vec::new();
    for r in &ok {
        for c in &r.conjs {
            for l in &c.lits {
                if !atoms.contains(&&l.atom) {
                    atoms.push(&l.atom);
                }
            }
        }
    }
    let conjs: usize = ok.iter().map(|r| r.conjs.len()).sum();
    if atoms.len() > 64 || conjs > enforce::MAX_CONJ as usize {
        return Err(vec![EnforceError {
            rule: ok.last().map(|r| r.name.to_string()).unwrap_or_default(),
            reason: format!(
                "the enforcing rules together use {} predicates and {} alternatives; the kernel holds 64 and {}",
                atoms.len(),
                conjs,
                enforce::MAX_CONJ
            ),
        }]);
    }
    Ok(ok)
}

#[cfg(test)]
mod tests;
