//! Compiled conditions and their evaluation. Everything that can be done once is done at
//! compile time (field lookup, lowered needles, hash sets for long lists, compiled regexes and
//! CIDRs), so that checking an event that matches nothing reads fields and compares, and does
//! not allocate.

use std::borrow::Cow;
use std::collections::HashSet;
use std::net::IpAddr;

use crate::event::{Event, EventType};

use super::ast::{Modifier, Op, Transformer};
use super::fields::{Fast, FieldArg, FieldDef, FieldType, Value};

/// A bit set of event types.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct TypeSet(pub u64);

impl TypeSet {
    pub const ALL: TypeSet = TypeSet(if EventType::ALL.len() >= 64 {
        u64::MAX
    } else {
        (1u64 << EventType::ALL.len()) - 1
    });
    pub const NONE: TypeSet = TypeSet(0);

    pub fn of(t: EventType) -> TypeSet {
        TypeSet(1u64 << t.index())
    }
    pub fn contains(self, t: EventType) -> bool {
        self.0 & (1u64 << t.index()) != 0
    }
    pub fn union(self, o: TypeSet) -> TypeSet {
        TypeSet(self.0 | o.0)
    }
    pub fn intersect(self, o: TypeSet) -> TypeSet {
        TypeSet(self.0 & o.0)
    }
    pub fn complement(self) -> TypeSet {
        TypeSet(!self.0 & Self::ALL.0)
    }
    pub fn iter(self) -> impl Iterator<Item = EventType> {
        EventType::ALL
            .iter()
            .copied()
            .filter(move |t| self.contains(*t))
    }
}

/// A field with its argument and transformers, ready to extract.
#[derive(Debug, Clone)]
pub struct Accessor {
    pub def: &'static FieldDef,
    pub arg: FieldArg,
    /// Applied innermost first.
    pub transforms: Vec<Transformer>,
    /// `proc.aname[2]`, as written (the key in alerts' output_fields).
    pub display: String,
}

impl Accessor {
    /// The type after the transformers.
    pub fn ty(&self) -> FieldType {
        match self.transforms.last() {
            Some(Transformer::Len) => FieldType::Uint,
            Some(_) => FieldType::Str,
            None => self.def.ty,
        }
    }

    pub fn extract<'a>(&'a self, ev: &'a Event) -> Value<'a> {
        let v = (self.def.extract)(ev, &self.arg);
        if self.transforms.is_empty() {
            return v;
        }
        self.transforms.iter().fold(v, |v, t| transform(*t, v))
    }
}

fn transform(t: Transformer, v: Value<'_>) -> Value<'_> {
    match v {
        Value::Missing => Value::Missing,
        Value::Many(vs) => Value::Many(vs.into_iter().map(|v| transform(t, v)).collect()),
        Value::Str(s) => match t {
            Transformer::ToLower => Value::Str(Cow::Owned(s.to_lowercase())),
            Transformer::ToUpper => Value::Str(Cow::Owned(s.to_uppercase())),
            Transformer::B64 => {
                match base64_decode(s.as_bytes()).and_then(|b| String::from_utf8(b).ok()) {
                    Some(d) => Value::Str(Cow::Owned(d)),
                    None => Value::Missing,
                }
            }
            Transformer::Basename => match s {
                Cow::Borrowed(b) => Value::Str(Cow::Borrowed(basename(b))),
                Cow::Owned(o) => Value::Str(Cow::Owned(basename(&o).to_string())),
            },
            Transformer::Len => Value::Uint(s.len() as u64),
            _ => Value::Missing,
        },
        Value::Bytes(b) => match t {
            Transformer::Len => Value::Uint(b.len() as u64),
            _ => Value::Missing,
        },
        _ => Value::Missing,
    }
}

fn basename(p: &str) -> &str {
    match p.rfind('/') {
        Some(i) => &p[i + 1..],
        None => p,
    }
}

fn base64_decode(input: &[u8]) -> Option<Vec<u8>> {
    fn val(c: u8) -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => u32::from(c - b'A'),
            b'a'..=b'z' => u32::from(c - b'a') + 26,
            b'0'..=b'9' => u32::from(c - b'0') + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        })
    }
    let input: Vec<u8> = input.iter().copied().filter(|c| *c != b'=').collect();
    let mut out = Vec::with_capacity(input.len() * 3 / 4);
    for chunk in input.chunks(4) {
        let mut acc = 0u32;
        for (i, c) in chunk.iter().enumerate() {
            acc |= val(*c)? << (18 - 6 * i);
        }
        let n = chunk.len();
        if n < 2 {
            return None;
        }
        out.push((acc >> 16) as u8);
        if n > 2 {
            out.push((acc >> 8) as u8);
        }
        if n > 3 {
            out.push(acc as u8);
        }
    }
    Some(out)
}

/// A compiled IPv4/IPv6 network.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    pub addr: IpAddr,
    pub prefix: u8,
}

impl Cidr {
    pub fn parse(s: &str) -> Option<Cidr> {
        let (a, p) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let addr: IpAddr = a.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = match p {
            Some(p) => p.parse::<u8>().ok().filter(|p| *p <= max)?,
            None => max,
        };
        Some(Cidr { addr, prefix })
    }

    pub fn contains(&self, ip: &IpAddr) -> bool {
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u32::MAX << (32 - u32::from(self.prefix))
                };
                u32::from(n) & mask == u32::from(*a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = if self.prefix == 0 {
                    0
                } else {
                    u128::MAX << (128 - u32::from(self.prefix))
                };
                u128::from(n) & mask == u128::from(*a) & mask
            }
            (IpAddr::V4(_), IpAddr::V6(a)) => a
                .to_ipv4_mapped()
                .is_some_and(|v4| self.contains(&IpAddr::V4(v4))),
            _ => false,
        }
    }
}

/// Glob with `*` (any run, `/` included), `?` and `[...]` classes, as Falco's glob operator.
pub fn glob_match(pat: &[u8], s: &[u8], icase: bool) -> bool {
    let eq = |a: u8, b: u8| {
        if icase {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    let (mut p, mut i) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while i < s.len() {
        if p < pat.len() {
            match pat[p] {
                b'*' => {
                    star = Some((p, i));
                    p += 1;
                    continue;
                }
                b'?' => {
                    p += 1;
                    i += 1;
                    continue;
                }
                b'[' => {
                    if let Some((matched, next)) = class_match(&pat[p..], s[i], icase)
                        && matched
                    {
                        p += next;
                        i += 1;
                        continue;
                    }
                }
                b'\\' if p + 1 < pat.len() => {
                    if eq(pat[p + 1], s[i]) {
                        p += 2;
                        i += 1;
                        continue;
                    }
                }
                c => {
                    if eq(c, s[i]) {
                        p += 1;
                        i += 1;
                        continue;
                    }
                }
            }
        }
        match star {
            Some((sp, si)) => {
                p = sp + 1;
                i = si + 1;
                star = Some((sp, si + 1));
            }
            None => return false,
        }
    }
    while p < pat.len() && pat[p] == b'*' {
        p += 1;
    }
    p == pat.len()
}

/// Matches one byte against the class at the start of `pat`; returns (matched, class length).
fn class_match(pat: &[u8], c: u8, icase: bool) -> Option<(bool, usize)> {
    let mut j = 1;
    let negate = matches!(pat.get(j), Some(b'!' | b'^'));
    if negate {
        j += 1;
    }
    let mut matched = false;
    let mut first = true;
    loop {
        let a = *pat.get(j)?;
        if a == b']' && !first {
            break;
        }
        first = false;
        if pat.get(j + 1) == Some(&b'-') && pat.get(j + 2).is_some_and(|b| *b != b']') {
            let b = pat[j + 2];
            let (lo, hi) = (a.min(b), a.max(b));
            if (lo..=hi).contains(&c)
                || (icase
                    && ((lo..=hi).contains(&c.to_ascii_lowercase())
                        || (lo..=hi).contains(&c.to_ascii_uppercase())))
            {
                matched = true;
            }
            j += 3;
        } else {
            if a == c || (icase && a.eq_ignore_ascii_case(&c)) {
                matched = true;
            }
            j += 1;
        }
    }
    Some((matched != negate, j + 1))
}

/// ASCII case-insensitive substring search with an already lowered needle.
fn icontains(hay: &str, lowered: &str) -> bool {
    let (h, n) = (hay.as_bytes(), lowered.as_bytes());
    if n.is_empty() {
        return true;
    }
    if n.len() > h.len() {
        return false;
    }
    h.windows(n.len())
        .any(|w| w.iter().zip(n).all(|(a, b)| a.to_ascii_lowercase() == *b))
}

/// `pmatch`: the value is one of the paths or below one of them.
fn path_prefix(v: &str, prefix: &str) -> bool {
    let p = prefix.strip_suffix('/').unwrap_or(prefix);
    v == p || (v.starts_with(p) && v.as_bytes().get(p.len()) == Some(&b'/')) || p.is_empty()
}

/// FxHash (rustc's hasher): list membership is checked per event, and SipHash's resistance to
/// collisions buys nothing against lists written by the administrator.
#[derive(Clone, Copy, Debug, Default)]
pub struct FxBuild;

impl std::hash::BuildHasher for FxBuild {
    type Hasher = FxHasher;
    fn build_hasher(&self) -> FxHasher {
        FxHasher(0)
    }
}

pub struct FxHasher(u64);

impl std::hash::Hasher for FxHasher {
    fn finish(&self) -> u64 {
        self.0
    }
    fn write(&mut self, bytes: &[u8]) {
        const K: u64 = 0x51_7c_c1_b7_27_22_0a_95;
        let mut h = self.0;
        let mut chunks = bytes.chunks_exact(8);
        for c in &mut chunks {
            let mut w = [0u8; 8];
            w.copy_from_slice(c);
            h = (h.rotate_left(5) ^ u64::from_le_bytes(w)).wrapping_mul(K);
        }
        for b in chunks.remainder() {
            h = (h.rotate_left(5) ^ u64::from(*b)).wrapping_mul(K);
        }
        self.0 = h;
    }
}

/// A set of strings: linear scan for short lists, hashing for long ones.
#[derive(Debug, Clone)]
pub enum StrSet {
    Small(Vec<Box<str>>),
    Large(HashSet<Box<str>, FxBuild>),
}

impl StrSet {
    pub fn new(items: &[String]) -> StrSet {
        if items.len() > 8 {
            StrSet::Large(items.iter().map(|s| s.as_str().into()).collect())
        } else {
            StrSet::Small(items.iter().map(|s| s.as_str().into()).collect())
        }
    }
    pub fn contains(&self, s: &str) -> bool {
        match self {
            StrSet::Small(v) => v.iter().any(|x| x.as_ref() == s),
            StrSet::Large(h) => h.contains(s),
        }
    }
    pub fn items(&self) -> Vec<&str> {
        match self {
            StrSet::Small(v) => v.iter().map(|s| s.as_ref()).collect(),
            StrSet::Large(h) => h.iter().map(|s| s.as_ref()).collect(),
        }
    }
}

/// One compiled right-hand value, already in the field's type.
#[derive(Debug, Clone)]
pub enum Operand {
    Str(Box<str>),
    /// For icontains/iglob: pre-lowered.
    Lower(Box<str>),
    Num(i128),
    Bool(bool),
    Net(Cidr),
    Bytes(Box<[u8]>),
    Regex(Box<regex::Regex>),
}

/// The compiled right-hand side of a check.
#[derive(Debug, Clone)]
pub enum Rhs {
    None,
    One(Operand),
    /// `in`/`intersects` on strings.
    StrSet(StrSet),
    /// `in`, `pmatch`, modifier lists and non-string lists.
    List(Vec<Operand>),
    /// `val(field)` / transformer on the right.
    Field(Box<Accessor>),
}

/// One compiled comparison.
#[derive(Debug, Clone)]
pub struct Check {
    pub lhs: Accessor,
    pub op: Op,
    pub modifier: Option<Modifier>,
    pub rhs: Rhs,
    /// A direct reader for the most used plain fields: returns the value in registers instead
    /// of building a `Value`, which matters at a few nanoseconds per check.
    pub fast: Option<Fast>,
}

/// A compiled condition.
#[derive(Debug, Clone)]
pub enum Node {
    And(Box<[Node]>),
    Or(Box<[Node]>),
    Not(Box<Node>),
    /// `evt.type = x` / `evt.type in (...)`, as a bit set.
    Types(TypeSet),
    Check(Box<Check>),
    Const(bool),
}

/// Fields whose extraction builds a string (or takes a lock): checked after cheaper ones.
fn field_cost(name: &str) -> u32 {
    match name {
        "proc.cmdline"
        | "proc.pcmdline"
        | "proc.acmdline"
        | "proc.args"
        | "proc.env"
        | "evt.args"
        | "evt.res"
        | "evt.time"
        | "evt.time.s"
        | "evt.time.iso8601"
        | "evt.datetime"
        | "thread.cap_effective"
        | "thread.cap_permitted"
        | "container.mounts"
        | "container.labels"
        | "k8s.pod.labels"
        | "fd.cip.name"
        | "fd.sip.name"
        | "fd.lip.name"
        | "fd.rip.name"
        | "evt.arg"
        | "evt.rawarg" => 4,
        _ => 1,
    }
}

/// Fields with few distinct values: a comparison on them rarely rules an event out.
fn low_cardinality(name: &str) -> bool {
    matches!(
        name,
        "fd.typechar"
            | "fd.type"
            | "fd.l4proto"
            | "fd.sockfamily"
            | "evt.dir"
            | "evt.category"
            | "container.type"
            | "evt.failed"
            | "fd.connected"
            | "fd.name_changed"
    )
}

impl Node {
    /// Rewrites the tree for speed without changing its value: nested and/or are flattened and
    /// the operands of `and` are ordered so that the checks most likely to fail, and cheapest,
    /// run first. Conditions have no side effects, so the order is free.
    pub fn optimize(self) -> Node {
        match self {
            Node::And(v) => {
                let mut flat = Vec::new();
                for n in v.into_vec() {
                    match n.optimize() {
                        Node::And(inner) => flat.extend(inner.into_vec()),
                        other => flat.push(other),
                    }
                }
                // Checks that build strings go last whatever their selectivity: on the no-match
                // path a cheap check almost always rules the event out before them.
                flat.sort_by_key(|n| (n.cost() >= 4, n.selectivity(), n.cost()));
                Node::And(flat.into())
            }
            Node::Or(v) => {
                let mut flat = Vec::new();
                for n in v.into_vec() {
                    match n.optimize() {
                        Node::Or(inner) => flat.extend(inner.into_vec()),
                        other => flat.push(other),
                    }
                }
                flat.sort_by_key(Node::cost);
                Node::Or(flat.into())
            }
            Node::Not(n) => Node::Not(Box::new(n.optimize())),
            other => other,
        }
    }

    /// 0 = most likely to be false.
    fn selectivity(&self) -> u32 {
        match self {
            Node::Types(_) | Node::Const(_) => 0,
            Node::Check(c) => match c.op {
                Op::Ne | Op::Exists => 3,
                _ if low_cardinality(c.lhs.def.name) => 2,
                _ if c.lhs.ty() == FieldType::Str || c.lhs.ty() == FieldType::IpNet => 1,
                _ => 2,
            },
            Node::Not(_) => 3,
            Node::Or(v) => v.iter().map(Node::selectivity).max().unwrap_or(0),
            Node::And(v) => v.iter().map(Node::selectivity).min().unwrap_or(0),
        }
    }

    fn cost(&self) -> u32 {
        match self {
            Node::Types(_) | Node::Const(_) => 0,
            Node::Check(c) => {
                field_cost(c.lhs.def.name)
                    + match &c.rhs {
                        Rhs::One(Operand::Regex(_)) => 4,
                        Rhs::Field(a) => field_cost(a.def.name),
                        _ => 0,
                    }
                    + c.lhs.transforms.len() as u32 * 2
            }
            Node::Not(n) => n.cost(),
            Node::Or(v) | Node::And(v) => v.iter().map(Node::cost).sum(),
        }
    }

    pub fn eval(&self, ev: &Event) -> bool {
        match self {
            Node::And(v) => v.iter().all(|n| n.eval(ev)),
            Node::Or(v) => v.iter().any(|n| n.eval(ev)),
            Node::Not(n) => !n.eval(ev),
            Node::Types(t) => t.contains(ev.ty),
            Node::Check(c) => c.eval(ev),
            Node::Const(b) => *b,
        }
    }

    /// The event types this condition can match (Falco's evttype analysis: and = intersection,
    /// or = union, `not` pushed down conservatively).
    pub fn types(&self) -> TypeSet {
        self.types_inner(false)
    }

    fn types_inner(&self, negated: bool) -> TypeSet {
        match (self, negated) {
            (Node::And(v), false) | (Node::Or(v), true) => v
                .iter()
                .fold(TypeSet::ALL, |acc, n| acc.intersect(n.types_inner(negated))),
            (Node::Or(v), false) | (Node::And(v), true) => v
                .iter()
                .fold(TypeSet::NONE, |acc, n| acc.union(n.types_inner(negated))),
            (Node::Not(n), neg) => n.types_inner(!neg),
            (Node::Types(t), false) => *t,
            (Node::Types(t), true) => t.complement(),
            (Node::Const(b), neg) => {
                if *b != neg {
                    TypeSet::ALL
                } else {
                    TypeSet::NONE
                }
            }
            (Node::Check(_), _) => TypeSet::ALL,
        }
    }

    /// Every field this condition reads.
    pub fn visit_accessors<'a>(&'a self, f: &mut dyn FnMut(&'a Accessor)) {
        match self {
            Node::And(v) | Node::Or(v) => v.iter().for_each(|n| n.visit_accessors(f)),
            Node::Not(n) => n.visit_accessors(f),
            Node::Check(c) => {
                f(&c.lhs);
                if let Rhs::Field(a) = &c.rhs {
                    f(a);
                }
            }
            Node::Types(_) | Node::Const(_) => {}
        }
    }
}

impl Check {
    #[inline]
    pub fn eval(&self, ev: &Event) -> bool {
        match self.fast {
            Some(Fast::Str(get)) => return get(ev).is_some_and(|s| self.eval_str(s)),
            Some(Fast::Num(get)) => return get(ev).is_some_and(|n| self.eval_num(n)),
            None => {}
        }
        let v = self.lhs.extract(ev);
        if let Rhs::Field(other) = &self.rhs {
            let o = other.extract(ev);
            return compare_values(self.op, &v, &o);
        }
        self.eval_value(&v)
    }

    fn eval_value(&self, v: &Value<'_>) -> bool {
        match v {
            Value::Missing => false,
            Value::Many(vs) => vs.iter().any(|v| self.eval_value(v)),
            Value::Str(s) => self.eval_str(s),
            v => match num_of(v) {
                Some(n) => self.eval_num(n),
                None => self.eval_one(v),
            },
        }
    }

    #[inline]
    fn eval_str(&self, s: &str) -> bool {
        if self.op == Op::Exists {
            return true;
        }
        match &self.rhs {
            Rhs::None | Rhs::Field(_) => false,
            Rhs::One(o) => cmp_str(self.op, s, o),
            Rhs::StrSet(set) => set.contains(s),
            Rhs::List(items) => match (self.op, self.modifier) {
                (Op::In | Op::Intersects, _) => items.iter().any(|o| cmp_str(Op::Eq, s, o)),
                (Op::PMatch, _) => items.iter().any(|o| cmp_str(Op::PMatch, s, o)),
                (op, Some(Modifier::AllOf)) => items.iter().all(|o| cmp_str(op, s, o)),
                (op, _) => items.iter().any(|o| cmp_str(op, s, o)),
            },
        }
    }

    #[inline]
    fn eval_num(&self, n: i128) -> bool {
        if self.op == Op::Exists {
            return true;
        }
        match &self.rhs {
            Rhs::One(o) => cmp_num(self.op, n, o),
            Rhs::List(items) => items.iter().any(|o| cmp_num(Op::Eq, n, o)),
            _ => false,
        }
    }

    fn eval_one(&self, v: &Value<'_>) -> bool {
        if self.op == Op::Exists {
            return true;
        }
        match &self.rhs {
            Rhs::None | Rhs::Field(_) | Rhs::StrSet(_) => false,
            Rhs::One(o) => cmp(self.op, v, o),
            Rhs::List(items) => match (self.op, self.modifier) {
                (Op::In | Op::Intersects, _) => items.iter().any(|o| cmp(Op::Eq, v, o)),
                (op, Some(Modifier::AllOf)) => items.iter().all(|o| cmp(op, v, o)),
                (op, _) => items.iter().any(|o| cmp(op, v, o)),
            },
        }
    }
}

#[inline]
fn cmp_str(op: Op, s: &str, o: &Operand) -> bool {
    match o {
        Operand::Str(r) => {
            let r = r.as_ref();
            match op {
                Op::Eq => s == r,
                Op::Ne => s != r,
                Op::Lt => s < r,
                Op::Le => s <= r,
                Op::Gt => s > r,
                Op::Ge => s >= r,
                Op::Contains | Op::BContains => s.contains(r),
                Op::StartsWith | Op::BStartsWith => s.starts_with(r),
                Op::EndsWith => s.ends_with(r),
                Op::Glob => glob_match(r.as_bytes(), s.as_bytes(), false),
                Op::PMatch => path_prefix(s, r),
                _ => false,
            }
        }
        Operand::Lower(r) => match op {
            Op::IContains => icontains(s, r),
            Op::IGlob => glob_match(r.as_bytes(), s.as_bytes(), true),
            _ => false,
        },
        Operand::Regex(re) => re.is_match(s),
        _ => false,
    }
}

#[inline]
fn cmp_num(op: Op, n: i128, o: &Operand) -> bool {
    let r = match o {
        Operand::Num(r) => *r,
        Operand::Bool(b) => i128::from(*b),
        _ => return false,
    };
    match op {
        Op::Eq => n == r,
        Op::Ne => n != r,
        Op::Lt => n < r,
        Op::Le => n <= r,
        Op::Gt => n > r,
        Op::Ge => n >= r,
        _ => false,
    }
}

fn num_of(v: &Value<'_>) -> Option<i128> {
    match v {
        Value::Int(i) => Some(i128::from(*i)),
        Value::Uint(u) => Some(i128::from(*u)),
        Value::Bool(b) => Some(i128::from(*b)),
        _ => None,
    }
}

fn cmp(op: Op, v: &Value<'_>, o: &Operand) -> bool {
    match (v, o) {
        (Value::Str(s), o) => cmp_str(op, s, o),
        (Value::Bytes(b), Operand::Bytes(r)) => match op {
            Op::Eq => b.as_ref() == r.as_ref(),
            Op::Ne => b.as_ref() != r.as_ref(),
            Op::BContains | Op::Contains => {
                r.is_empty() || b.windows(r.len()).any(|w| w == r.as_ref())
            }
            Op::BStartsWith | Op::StartsWith => b.starts_with(r),
            Op::EndsWith => b.ends_with(r),
            _ => false,
        },
        (Value::Bool(b), Operand::Bool(r)) => match op {
            Op::Eq => b == r,
            Op::Ne => b != r,
            _ => false,
        },
        (Value::Ip(ip), Operand::Net(n)) => match op {
            Op::Eq => n.contains(ip),
            Op::Ne => !n.contains(ip),
            _ => false,
        },
        (v, Operand::Num(r)) => match num_of(v) {
            Some(n) => match op {
                Op::Eq => n == *r,
                Op::Ne => n != *r,
                Op::Lt => n < *r,
                Op::Le => n <= *r,
                Op::Gt => n > *r,
                Op::Ge => n >= *r,
                _ => false,
            },
            None => false,
        },
        _ => false,
    }
}

/// Field against field (`val()`): compare numerically when both are numbers, else as text.
fn compare_values(op: Op, a: &Value<'_>, b: &Value<'_>) -> bool {
    if matches!(a, Value::Missing) || matches!(b, Value::Missing) {
        return false;
    }
    if let Value::Many(vs) = a {
        return vs.iter().any(|v| compare_values(op, v, b));
    }
    if let (Some(x), Some(y)) = (num_of(a), num_of(b)) {
        return cmp(op, a, &Operand::Num(y)) || (op == Op::In && x == y);
    }
    let rhs = b.to_display_string();
    let lhs = match a {
        Value::Str(s) => Cow::Borrowed(s.as_ref()),
        other => Cow::Owned(other.to_display_string()),
    };
    let v = Value::Str(lhs);
    match op {
        Op::In | Op::Intersects => match b {
            Value::Many(items) => items
                .iter()
                .any(|i| cmp(Op::Eq, &v, &Operand::Str(i.to_display_string().into()))),
            _ => cmp(Op::Eq, &v, &Operand::Str(rhs.into())),
        },
        Op::IContains | Op::IGlob => cmp(op, &v, &Operand::Lower(rhs.to_lowercase().into())),
        _ => cmp(op, &v, &Operand::Str(rhs.into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn glob_like_falco() {
        assert!(glob_match(
            b"/home/*/.ssh/*",
            b"/home/bob/.ssh/id_rsa",
            false
        ));
        assert!(!glob_match(b"/home/*/.ssh/*", b"/root/.ssh/id_rsa", false));
        assert!(glob_match(
            b"*../*../*",
            b"/var/www/../../etc/passwd",
            false
        ));
        assert!(glob_match(b"a?c[0-9]", b"abc7", false));
        assert!(!glob_match(b"a?c[!0-9]", b"abc7", false));
        assert!(glob_match(b"*.SH", b"run.sh", true));
    }

    #[test]
    fn cidr_contains() {
        let n = Cidr::parse("10.0.0.0/8").expect("valid");
        assert!(n.contains(&"10.1.2.3".parse().expect("ip")));
        assert!(!n.contains(&"11.1.2.3".parse().expect("ip")));
        assert!(Cidr::parse("10.0.0.0/33").is_none());
    }

    #[test]
    fn pmatch_is_a_path_prefix() {
        assert!(path_prefix("/bin/ls", "/bin"));
        assert!(path_prefix("/bin", "/bin"));
        assert!(!path_prefix("/binx", "/bin"));
    }

    #[test]
    fn icontains_ignores_ascii_case() {
        assert!(icontains("LD_PRELOAD=x GLIBC_TUNABLES=y", "glibc_tunables"));
        assert!(!icontains("abc", "abcd"));
    }
}

/// One step of a compiled program. `r` is the program's single boolean register.
#[derive(Debug, Clone, Copy)]
enum Instr {
    /// r = event type in set
    Types(TypeSet),
    /// r = checks[i]
    Check(u32),
    Const(bool),
    Not,
    /// if !r { pc = target }
    JumpIfFalse(u32),
    /// if r { pc = target }
    JumpIfTrue(u32),
}

/// A condition flattened into straight-line code with short-circuit jumps, its checks stored
/// side by side: evaluation walks two arrays instead of chasing a tree of boxes.
#[derive(Debug, Clone, Default)]
pub struct Program {
    code: Box<[Instr]>,
    checks: Box<[Check]>,
}

impl Program {
    pub fn new(node: &Node) -> Program {
        let mut code = Vec::new();
        let mut checks = Vec::new();
        emit(node, &mut code, &mut checks);
        Program {
            code: code.into(),
            checks: checks.into(),
        }
    }

    #[inline]
    pub fn eval(&self, ev: &Event) -> bool {
        let mut r = false;
        let mut pc = 0usize;
        let code = &self.code[..];
        while let Some(i) = code.get(pc) {
            pc += 1;
            match *i {
                Instr::Types(t) => r = t.contains(ev.ty),
                Instr::Check(c) => r = self.checks[c as usize].eval(ev),
                Instr::Const(b) => r = b,
                Instr::Not => r = !r,
                Instr::JumpIfFalse(t) => {
                    if !r {
                        pc = t as usize;
                    }
                }
                Instr::JumpIfTrue(t) => {
                    if r {
                        pc = t as usize;
                    }
                }
            }
        }
        r
    }
}

fn emit(node: &Node, code: &mut Vec<Instr>, checks: &mut Vec<Check>) {
    match node {
        Node::Types(t) => code.push(Instr::Types(*t)),
        Node::Const(b) => code.push(Instr::Const(*b)),
        Node::Check(c) => {
            checks.push((**c).clone());
            code.push(Instr::Check((checks.len() - 1) as u32));
        }
        Node::Not(n) => {
            emit(n, code, checks);
            code.push(Instr::Not);
        }
        Node::And(v) | Node::Or(v) => {
            if v.is_empty() {
                code.push(Instr::Const(matches!(node, Node::And(_))));
                return;
            }
            let mut patches = Vec::new();
            for (i, n) in v.iter().enumerate() {
                emit(n, code, checks);
                if i + 1 < v.len() {
                    patches.push(code.len());
                    code.push(if matches!(node, Node::And(_)) {
                        Instr::JumpIfFalse(0)
                    } else {
                        Instr::JumpIfTrue(0)
                    });
                }
            }
            let end = code.len() as u32;
            for p in patches {
                code[p] = match code[p] {
                    Instr::JumpIfFalse(_) => Instr::JumpIfFalse(end),
                    _ => Instr::JumpIfTrue(end),
                };
            }
        }
    }
}
