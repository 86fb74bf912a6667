//! From syntax tree to evaluable `Node`: resolves fields in the registry, checks that each
//! operator suits the field's type (as Falco's compiler does), and turns right-hand values into
//! the field's type once.

use std::collections::BTreeSet;

use crate::event::EventType;

use super::ast::{self, Expr, Modifier, Op, Operand as AstOperand, Rhs as AstRhs, Transformer};
use super::eval::{Accessor, Check, Cidr, Node, Operand, Rhs, StrSet, TypeSet};
use super::fields::{self, FieldError, FieldType};

/// What went wrong, and where: `src` says which condition text (the rule's or a macro's)
/// `offset` points into.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{kind}")]
pub struct CompileError {
    pub src: usize,
    pub offset: usize,
    pub kind: CompileErrorKind,
}

#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum CompileErrorKind {
    #[error(transparent)]
    Field(#[from] FieldError),
    #[error("undefined macro '{0}'")]
    UndefinedMacro(String),
    #[error("{0}")]
    Invalid(String),
}

/// Where macros come from: name -> (tree, source id of its condition text).
pub trait Macros {
    fn get(&self, name: &str) -> Option<(&Expr, usize)>;
}

/// No macros (`monitor trace --filter`).
pub struct NoMacros;

impl Macros for NoMacros {
    fn get(&self, _: &str) -> Option<(&Expr, usize)> {
        None
    }
}

/// Side results of compiling one condition.
#[derive(Default, Debug)]
pub struct CompileInfo {
    /// `evt.type` values that name no event type this monitor captures.
    pub unknown_types: BTreeSet<String>,
}

pub struct Compiler<'m> {
    pub macros: &'m dyn Macros,
    pub info: CompileInfo,
    depth: usize,
}

impl<'m> Compiler<'m> {
    pub fn new(macros: &'m dyn Macros) -> Self {
        Compiler {
            macros,
            info: CompileInfo::default(),
            depth: 0,
        }
    }

    pub fn compile(&mut self, e: &Expr, src: usize) -> Result<Node, CompileError> {
        self.depth += 1;
        if self.depth > 2 * super::parser::MAX_DEPTH {
            return Err(CompileError {
                src,
                offset: 0,
                kind: CompileErrorKind::Invalid("macros nested too deeply".into()),
            });
        }
        let r = self.compile_inner(e, src);
        self.depth -= 1;
        r
    }

    fn compile_inner(&mut self, e: &Expr, src: usize) -> Result<Node, CompileError> {
        Ok(match e {
            Expr::And(v) => Node::And(
                v.iter()
                    .map(|x| self.compile(x, src))
                    .collect::<Result<Vec<_>, _>>()?
                    .into(),
            ),
            Expr::Or(v) => Node::Or(
                v.iter()
                    .map(|x| self.compile(x, src))
                    .collect::<Result<Vec<_>, _>>()?
                    .into(),
            ),
            Expr::Not(x) => Node::Not(Box::new(self.compile(x, src)?)),
            Expr::Macro { name, pos } => match self.macros.get(name) {
                Some((tree, msrc)) => self.compile(tree, msrc)?,
                None => {
                    return Err(CompileError {
                        src,
                        offset: *pos,
                        kind: CompileErrorKind::UndefinedMacro(name.clone()),
                    });
                }
            },
            Expr::Check(c) => self.check(c, src)?,
        })
    }

    fn check(&mut self, c: &ast::Check, src: usize) -> Result<Node, CompileError> {
        let err = |offset: usize, msg: String| CompileError {
            src,
            offset,
            kind: CompileErrorKind::Invalid(msg),
        };
        let lhs = accessor(&c.lhs, src)?;
        // evt.type as a bit set: the index and the evaluation both use it.
        if lhs.def.name == "evt.type"
            && lhs.transforms.is_empty()
            && c.modifier.is_none()
            && matches!(c.op, Op::Eq | Op::Ne | Op::In)
        {
            let names: Vec<&str> = match &c.rhs {
                AstRhs::Value { value, .. } => vec![value.as_str()],
                AstRhs::List { items, .. } => items.iter().map(String::as_str).collect(),
                _ => Vec::new(),
            };
            if !names.is_empty() || matches!(c.rhs, AstRhs::List { .. }) {
                let mut set = TypeSet::NONE;
                for n in names {
                    match EventType::from_name(n) {
                        Some(t) => set = set.union(TypeSet::of(t)),
                        None => {
                            self.info.unknown_types.insert(n.to_string());
                        }
                    }
                }
                let node = Node::Types(set);
                return Ok(if c.op == Op::Ne {
                    Node::Not(Box::new(node))
                } else {
                    node
                });
            }
        }
        // Host names are resolved in the background; register them now.
        if lhs.def.name.starts_with("fd.") && lhs.def.name.ends_with("ip.name") {
            match &c.rhs {
                AstRhs::Value { value, .. } => super::dns::register(value),
                AstRhs::List { items, .. } => items.iter().for_each(|i| super::dns::register(i)),
                _ => {}
            }
        }
        let ty = lhs.ty();
        if !op_allowed(ty, c.op) {
            return Err(err(
                c.op_pos,
                format!(
                    "operator '{}' cannot be used with field '{}' of type {}",
                    c.op.name(),
                    lhs.display,
                    ty.name()
                ),
            ));
        }
        let rhs = match &c.rhs {
            AstRhs::None => Rhs::None,
            AstRhs::Value { value, pos } => Rhs::One(
                operand(ty, c.op, value)
                    .map_err(|m| err(*pos, format!("{m} (field '{}')", lhs.display)))?,
            ),
            AstRhs::List { items, pos } => {
                let e = |m: String| err(*pos, format!("{m} (field '{}')", lhs.display));
                if ty == FieldType::Str && matches!(c.op, Op::In | Op::Intersects) {
                    for i in items {
                        check_str(i).map_err(e)?;
                    }
                    Rhs::StrSet(StrSet::new(items))
                } else {
                    let item_op = match (c.op, c.modifier) {
                        (Op::In | Op::Intersects, _) => Op::Eq,
                        (op, _) => op,
                    };
                    Rhs::List(
                        items
                            .iter()
                            .map(|i| operand(ty, item_op, i))
                            .collect::<Result<Vec<_>, _>>()
                            .map_err(e)?,
                    )
                }
            }
            AstRhs::ListName { name, pos } => {
                return Err(err(
                    *pos,
                    format!("'{name}' is not a list: a list must be given in parentheses"),
                ));
            }
            AstRhs::Operand(o) => Rhs::Field(Box::new(accessor(o, src)?)),
        };
        if c.modifier.is_some() && !matches!(rhs, Rhs::List(_)) {
            return Err(err(c.op_pos, "a modifier needs a list of values".into()));
        }
        if let Some(Modifier::AllOf | Modifier::OneOf | Modifier::AnyOf) = c.modifier
            && matches!(c.op, Op::In | Op::Intersects | Op::PMatch)
        {
            return Err(err(
                c.op_pos,
                "modifiers apply to string operators only".into(),
            ));
        }
        let fast = if lhs.transforms.is_empty()
            && lhs.arg == super::fields::FieldArg::None
            && !matches!(rhs, Rhs::Field(_))
        {
            super::fields::fast(lhs.def.name)
        } else {
            None
        };
        Ok(Node::Check(Box::new(Check {
            lhs,
            op: c.op,
            modifier: c.modifier,
            rhs,
            fast,
        })))
    }
}

/// Resolves a (possibly transformed) field reference.
pub fn accessor(o: &AstOperand, src: usize) -> Result<Accessor, CompileError> {
    match o {
        AstOperand::Field(f) => {
            let (def, arg) =
                fields::resolve(&f.name, f.arg.as_deref()).map_err(|e| CompileError {
                    src,
                    offset: f.pos,
                    kind: e.into(),
                })?;
            Ok(Accessor {
                def,
                arg,
                transforms: Vec::new(),
                display: f.display(),
            })
        }
        AstOperand::Literal(_) => Err(CompileError {
            src,
            offset: 0,
            kind: CompileErrorKind::Invalid("a quoted string cannot be compared as a field".into()),
        }),
        AstOperand::Transform { name, args, pos } => {
            let err = |m: String| CompileError {
                src,
                offset: *pos,
                kind: CompileErrorKind::Invalid(m),
            };
            if matches!(
                name,
                Transformer::Join | Transformer::Concat | Transformer::Getopt
            ) {
                return Err(err(format!(
                    "transformer '{}' is not supported",
                    name.name()
                )));
            }
            let [inner] = args.as_slice() else {
                return Err(err(format!(
                    "transformer '{}' takes one argument",
                    name.name()
                )));
            };
            let mut a = accessor(inner, src)?;
            let ty = a.ty();
            let ok = match name {
                Transformer::Len | Transformer::B64 => {
                    matches!(ty, FieldType::Str | FieldType::Bytes)
                }
                _ => ty == FieldType::Str,
            };
            if !ok {
                return Err(err(format!(
                    "transformer '{}' needs a string field, '{}' is {}",
                    name.name(),
                    a.display,
                    ty.name()
                )));
            }
            a.transforms.push(*name);
            a.display = format!("{}({})", name.name(), a.display);
            Ok(a)
        }
    }
}

/// Falco's operator/type compatibility table.
fn op_allowed(ty: FieldType, op: Op) -> bool {
    use Op::*;
    match ty {
        FieldType::Str => true,
        FieldType::Bytes => matches!(
            op,
            Eq | Ne | Contains | BContains | StartsWith | BStartsWith | EndsWith | Exists
        ),
        t if t.is_numeric() => matches!(op, Eq | Ne | Lt | Le | Gt | Ge | In | Intersects | Exists),
        FieldType::Bool => matches!(op, Eq | Ne | In | Exists),
        FieldType::IpAddr | FieldType::IpNet => matches!(op, Eq | Ne | In | Intersects | Exists),
        _ => false,
    }
}

fn check_str(v: &str) -> Result<(), String> {
    if v.contains('\0') {
        Err("string values may not contain a NUL byte".into())
    } else {
        Ok(())
    }
}

pub fn parse_num(v: &str) -> Option<i128> {
    let t = v.trim();
    if let Some(h) = t.strip_prefix("0x").or_else(|| t.strip_prefix("0X")) {
        return i128::from_str_radix(h, 16).ok();
    }
    if let Ok(n) = t.strip_prefix('+').unwrap_or(t).parse::<i128>() {
        return Some(n);
    }
    let f: f64 = t.parse().ok()?;
    (f.is_finite() && f.fract() == 0.0 && f.abs() < 1e30).then_some(f as i128)
}

fn hex_bytes(v: &str) -> Option<Vec<u8>> {
    let v = v.as_bytes();
    if !v.len().is_multiple_of(2) {
        return None;
    }
    v.chunks(2)
        .map(|c| {
            std::str::from_utf8(c)
                .ok()
                .and_then(|h| u8::from_str_radix(h, 16).ok())
        })
        .collect()
}

/// One right-hand value in the type of the field.
fn operand(ty: FieldType, op: Op, v: &str) -> Result<Operand, String> {
    match ty {
        FieldType::Str => {
            check_str(v)?;
            Ok(match op {
                Op::IContains | Op::IGlob => Operand::Lower(v.to_ascii_lowercase().into()),
                Op::Regex => Operand::Regex(Box::new(
                    regex::Regex::new(&format!("^(?:{v})$"))
                        .map_err(|e| format!("invalid regular expression '{v}': {e}"))?,
                )),
                _ => Operand::Str(v.into()),
            })
        }
        FieldType::Bytes => Ok(Operand::Bytes(match op {
            Op::BContains | Op::BStartsWith => hex_bytes(v)
                .ok_or_else(|| format!("'{v}' is not a hex byte string"))?
                .into(),
            _ => v.as_bytes().into(),
        })),
        FieldType::Bool => match v.to_ascii_lowercase().as_str() {
            "true" | "1" => Ok(Operand::Bool(true)),
            "false" | "0" => Ok(Operand::Bool(false)),
            _ => Err(format!("'{v}' is not a boolean (true or false)")),
        },
        FieldType::IpAddr | FieldType::IpNet => Cidr::parse(v)
            .map(Operand::Net)
            .ok_or_else(|| format!("'{v}' is not an IP address or network")),
        _ => parse_num(v)
            .map(Operand::Num)
            .ok_or_else(|| format!("'{v}' is not a number")),
    }
}
