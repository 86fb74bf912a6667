//! Falco's condition grammar (libsinsp's recursive-descent filter parser), reproduced rule for
//! rule so that what Falco accepts loads here and what Falco rejects is rejected with the same
//! reasons. See LANGUAGE.md beside Falco's default rules for the grammar.

use super::ast::{Check, Expr, FieldRef, Modifier, Op, Operand, Rhs, Transformer};

/// Falco's loader raises libsinsp's default nesting limit of 100 to 1000.
pub const MAX_DEPTH: usize = 1000;

/// A syntax error at a byte offset of the condition.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{message} (at offset {offset})")]
pub struct ParseError {
    pub offset: usize,
    pub message: String,
}

/// Parses a whole condition; all of the input must be consumed.
pub fn parse(input: &str) -> Result<Expr, ParseError> {
    let mut p = Parser {
        s: input,
        b: input.as_bytes(),
        pos: 0,
        depth: 0,
    };
    let e = p.expr()?;
    p.blanks();
    if p.pos != p.b.len() {
        return Err(p.err("unexpected text after the end of the condition"));
    }
    Ok(e)
}

fn is_blank(c: u8) -> bool {
    matches!(c, b' ' | b'\t' | 0x08 | b'\r' | b'\n')
}

fn is_alpha(c: u8) -> bool {
    c.is_ascii_alphabetic()
}

fn is_ident_rest(c: u8) -> bool {
    c.is_ascii_alphanumeric() || c == b'_'
}

/// Characters that end a bare string: `[^()"'\s=,]+`.
fn ends_bare(c: u8) -> bool {
    is_blank(c) || matches!(c, b'(' | b')' | b'"' | b'\'' | b'=' | b',')
}

/// Word operators that need a blank after them, longest spellings first where one is a
/// prefix of another.
const WORD_OPS: &[(&str, Op)] = &[
    ("bstartswith", Op::BStartsWith),
    ("bcontains", Op::BContains),
    ("icontains", Op::IContains),
    ("contains", Op::Contains),
    ("startswith", Op::StartsWith),
    ("endswith", Op::EndsWith),
    ("iglob", Op::IGlob),
    ("glob", Op::Glob),
    ("regex", Op::Regex),
];

const LIST_OPS: &[(&str, Op)] = &[
    ("intersects", Op::Intersects),
    ("pmatch", Op::PMatch),
    ("in", Op::In),
];

struct Parser<'a> {
    s: &'a str,
    b: &'a [u8],
    pos: usize,
    depth: usize,
}

impl<'a> Parser<'a> {
    fn err(&self, message: impl Into<String>) -> ParseError {
        ParseError {
            offset: self.pos,
            message: message.into(),
        }
    }

    fn peek(&self) -> Option<u8> {
        self.b.get(self.pos).copied()
    }

    fn at(&self, i: usize) -> Option<u8> {
        self.b.get(self.pos + i).copied()
    }

    fn blanks(&mut self) -> bool {
        let start = self.pos;
        while self.peek().is_some_and(is_blank) {
            self.pos += 1;
        }
        self.pos > start
    }

    fn starts(&self, lit: &str) -> bool {
        self.b[self.pos..].starts_with(lit.as_bytes())
    }

    /// `lit` followed by a blank or `(`: how `and`, `or` and `not` must be written.
    fn keyword(&self, lit: &str) -> bool {
        self.starts(lit) && self.at(lit.len()).is_some_and(|c| is_blank(c) || c == b'(')
    }

    fn expr(&mut self) -> Result<Expr, ParseError> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err(format!("expression nested deeper than {MAX_DEPTH} levels")));
        }
        let e = self.or();
        self.depth -= 1;
        e
    }

    fn or(&mut self) -> Result<Expr, ParseError> {
        self.chain("or", Self::and, Expr::Or)
    }

    fn and(&mut self) -> Result<Expr, ParseError> {
        self.chain("and", Self::not, Expr::And)
    }

    /// `operand (kw operand)*`: one operand alone, or all of them in `make`.
    fn chain(
        &mut self,
        kw: &str,
        operand: fn(&mut Self) -> Result<Expr, ParseError>,
        make: fn(Vec<Expr>) -> Expr,
    ) -> Result<Expr, ParseError> {
        let mut items = vec![operand(self)?];
        loop {
            let save = self.pos;
            self.blanks();
            if self.keyword(kw) {
                self.pos += kw.len();
                items.push(operand(self)?);
            } else {
                self.pos = save;
                break;
            }
        }
        Ok(if items.len() == 1 {
            items.remove(0)
        } else {
            make(items)
        })
    }

    fn not(&mut self) -> Result<Expr, ParseError> {
        let mut nots = 0usize;
        loop {
            self.blanks();
            if self.keyword("not") {
                self.pos += 3;
                nots += 1;
                if nots + self.depth > MAX_DEPTH {
                    return Err(self.err(format!("more than {MAX_DEPTH} nested 'not'")));
                }
            } else {
                break;
            }
        }
        let mut e = self.check()?;
        for _ in 0..nots {
            e = Expr::Not(Box::new(e));
        }
        Ok(e)
    }

    fn check(&mut self) -> Result<Expr, ParseError> {
        self.blanks();
        if self.peek() == Some(b'(') {
            self.pos += 1;
            let e = self.expr()?;
            self.blanks();
            if self.peek() != Some(b')') {
                return Err(self.err("expected ')'"));
            }
            self.pos += 1;
            return Ok(e);
        }
        if self.starts("val(") {
            return Err(self.err("val() may only be used on the right-hand side of a comparison"));
        }
        if let Some(t) = self.transformer_start() {
            let lhs = self.transformer(t)?;
            return self.cond(lhs);
        }
        let start = self.pos;
        let Some((name, has_dot)) = self.dotted_name() else {
            return Err(self.err("expected a field, a macro name, 'not' or '('"));
        };
        if !has_dot {
            return Ok(Expr::Macro {
                name: name.to_string(),
                pos: start,
            });
        }
        let field = self.field_rest(name, start)?;
        self.cond(Operand::Field(field))
    }

    /// `[a-zA-Z]+[a-zA-Z0-9_]*(\.[a-zA-Z]+[a-zA-Z0-9_]*)*`; says whether there was a dot.
    fn dotted_name(&mut self) -> Option<(&'a str, bool)> {
        let start = self.pos;
        if !self.peek().is_some_and(is_alpha) {
            return None;
        }
        while self.peek().is_some_and(is_ident_rest) {
            self.pos += 1;
        }
        let mut has_dot = false;
        while self.peek() == Some(b'.') && self.at(1).is_some_and(is_alpha) {
            has_dot = true;
            self.pos += 1;
            while self.peek().is_some_and(is_ident_rest) {
                self.pos += 1;
            }
        }
        Some((&self.s[start..self.pos], has_dot))
    }

    /// The optional `[arg]` after a field name.
    fn field_rest(&mut self, name: &str, start: usize) -> Result<FieldRef, ParseError> {
        let mut arg = None;
        if self.peek() == Some(b'[') {
            self.pos += 1;
            let a = match self.peek() {
                Some(q @ (b'"' | b'\'')) => self.quoted(q)?,
                _ => {
                    let s = self.pos;
                    while self
                        .peek()
                        .is_some_and(|c| !matches!(c, b'[' | b']' | b'"' | b'\'') && !is_blank(c))
                    {
                        self.pos += 1;
                    }
                    if self.pos == s {
                        return Err(self.err("empty field argument"));
                    }
                    self.s[s..self.pos].to_string()
                }
            };
            if self.peek() != Some(b']') {
                return Err(self.err("expected ']' after the field argument"));
            }
            self.pos += 1;
            arg = Some(a);
        }
        Ok(FieldRef {
            name: name.to_string(),
            arg,
            pos: start,
        })
    }

    fn field(&mut self) -> Result<FieldRef, ParseError> {
        let start = self.pos;
        match self.dotted_name() {
            Some((name, true)) => self.field_rest(name, start),
            _ => {
                self.pos = start;
                Err(self.err("expected a field name"))
            }
        }
    }

    fn transformer_start(&self) -> Option<Transformer> {
        Transformer::ALL.iter().find_map(|(name, t)| {
            (self.starts(name) && self.at(name.len()) == Some(b'(')).then_some(*t)
        })
    }

    /// `name(args)[arg]`, the name already recognised.
    fn transformer(&mut self, t: Transformer) -> Result<Operand, ParseError> {
        let pos = self.pos;
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(self.err("transformers nested too deeply"));
        }
        self.pos += t.name().len() + 1;
        let mut args = Vec::new();
        loop {
            self.blanks();
            let arg = if let Some(inner) = self.transformer_start() {
                self.transformer(inner)?
            } else if let Some(q @ (b'"' | b'\'')) = self.peek() {
                Operand::Literal(self.quoted(q)?)
            } else {
                Operand::Field(self.field()?)
            };
            args.push(arg);
            self.blanks();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    break;
                }
                _ => return Err(self.err("expected ',' or ')' in transformer arguments")),
            }
        }
        if self.peek() == Some(b'[') {
            // Only getopt takes an index; keep the syntax, the compiler refuses getopt.
            self.field_rest("", pos)?;
        }
        self.depth -= 1;
        Ok(Operand::Transform { name: t, args, pos })
    }

    fn rhs_operand(&mut self) -> Result<Option<Operand>, ParseError> {
        if self.starts("val(") {
            self.pos += 4;
            self.blanks();
            let f = self.field()?;
            self.blanks();
            if self.peek() != Some(b')') {
                return Err(self.err("expected ')' after the field of val()"));
            }
            self.pos += 1;
            return Ok(Some(Operand::Field(f)));
        }
        if let Some(t) = self.transformer_start() {
            return Ok(Some(self.transformer(t)?));
        }
        Ok(None)
    }

    fn cond(&mut self, lhs: Operand) -> Result<Expr, ParseError> {
        self.blanks();
        let op_pos = self.pos;
        let mk = |op, modifier, rhs| {
            Ok(Expr::Check(Box::new(Check {
                lhs,
                op,
                modifier,
                rhs,
                op_pos,
            })))
        };
        if self.starts("exists") {
            self.pos += 6;
            return mk(Op::Exists, None, Rhs::None);
        }
        for (lit, op) in [("<=", Op::Le), (">=", Op::Ge), ("<", Op::Lt), (">", Op::Gt)] {
            if self.starts(lit) {
                self.pos += lit.len();
                self.blanks();
                if let Some(o) = self.rhs_operand()? {
                    return mk(op, None, Rhs::Operand(o));
                }
                let pos = self.pos;
                let value = self.number()?;
                return mk(op, None, Rhs::Value { value, pos });
            }
        }
        for (lit, op) in [("==", Op::Eq), ("=", Op::Eq), ("!=", Op::Ne)] {
            if self.starts(lit) {
                self.pos += lit.len();
                return self.str_rhs(op).and_then(|(m, r)| mk(op, m, r));
            }
        }
        for (lit, op) in WORD_OPS {
            if self.starts(lit) {
                if !self.at(lit.len()).is_some_and(is_blank) {
                    return Err(self.err(format!("operator '{lit}' must be followed by a blank")));
                }
                self.pos += lit.len();
                return self.str_rhs(*op).and_then(|(m, r)| mk(*op, m, r));
            }
        }
        for (lit, op) in LIST_OPS {
            if self.starts(lit) && self.at(lit.len()).is_some_and(|c| is_blank(c) || c == b'(') {
                self.pos += lit.len();
                self.blanks();
                if let Some(o) = self.rhs_operand()? {
                    return mk(*op, None, Rhs::Operand(o));
                }
                let rhs = self.list_value()?;
                return mk(*op, None, rhs);
            }
        }
        Err(self.err("expected an operator (=, !=, <, contains, in, exists...)"))
    }

    /// What follows a string operator: a modifier and list, a transformer, or one value.
    fn str_rhs(&mut self, _op: Op) -> Result<(Option<Modifier>, Rhs), ParseError> {
        self.blanks();
        for (lit, m) in [
            ("oneof", Modifier::OneOf),
            ("anyof", Modifier::AnyOf),
            ("allof", Modifier::AllOf),
        ] {
            if self.starts(lit) && self.at(lit.len()).is_some_and(is_blank) {
                self.pos += lit.len();
                self.blanks();
                return Ok((Some(m), self.list_value()?));
            }
        }
        if let Some(o) = self.rhs_operand()? {
            return Ok((None, Rhs::Operand(o)));
        }
        let pos = self.pos;
        let value = self.str_value()?;
        Ok((None, Rhs::Value { value, pos }))
    }

    fn list_value(&mut self) -> Result<Rhs, ParseError> {
        let pos = self.pos;
        if self.peek() != Some(b'(') {
            let start = self.pos;
            if let Some((name, false)) = self.dotted_name() {
                return Ok(Rhs::ListName {
                    name: name.to_string(),
                    pos: start,
                });
            }
            self.pos = start;
            return Err(self.err("expected a list: '(' or a list name"));
        }
        self.pos += 1;
        let mut items = Vec::new();
        self.blanks();
        if self.peek() == Some(b')') {
            self.pos += 1;
            return Ok(Rhs::List { items, pos });
        }
        loop {
            self.blanks();
            items.push(self.str_value()?);
            self.blanks();
            match self.peek() {
                Some(b',') => self.pos += 1,
                Some(b')') => {
                    self.pos += 1;
                    return Ok(Rhs::List { items, pos });
                }
                _ => return Err(self.err("expected ',' or ')' in list")),
            }
        }
    }

    fn str_value(&mut self) -> Result<String, ParseError> {
        match self.peek() {
            Some(q @ (b'"' | b'\'')) => self.quoted(q),
            _ => {
                let s = self.pos;
                while self.peek().is_some_and(|c| !ends_bare(c)) {
                    self.pos += 1;
                }
                if self.pos == s {
                    return Err(self.err("expected a value"));
                }
                Ok(self.s[s..self.pos].to_string())
            }
        }
    }

    fn quoted(&mut self, q: u8) -> Result<String, ParseError> {
        let start = self.pos;
        self.pos += 1;
        let mut out: Vec<u8> = Vec::new();
        loop {
            let Some(c) = self.peek() else {
                self.pos = start;
                return Err(self.err("unterminated quoted string"));
            };
            self.pos += 1;
            if c == q {
                break;
            }
            if c != b'\\' {
                out.push(c);
                continue;
            }
            let Some(e) = self.peek() else {
                return Err(self.err("unterminated escape sequence"));
            };
            self.pos += 1;
            out.push(match e {
                b'b' => 0x08,
                b'f' => 0x0c,
                b'n' => b'\n',
                b'r' => b'\r',
                b't' => b'\t',
                b'\\' => b'\\',
                b'/' => b'/',
                b'"' if q == b'"' => b'"',
                b'\'' if q == b'\'' => b'\'',
                b'x' => {
                    let hex = self
                        .b
                        .get(self.pos..self.pos + 2)
                        .and_then(|h| std::str::from_utf8(h).ok())
                        .and_then(|h| u8::from_str_radix(h, 16).ok());
                    match hex {
                        Some(v) => {
                            self.pos += 2;
                            v
                        }
                        None => return Err(self.err("\\x must be followed by two hex digits")),
                    }
                }
                // Other escapes keep their backslash (Falco's own sandbox rules use "\ ").
                other if other != b'"' && other != b'\'' => {
                    self.pos -= 1;
                    b'\\'
                }
                _ => {
                    self.pos -= 2;
                    return Err(self.err(format!(
                        "invalid escape sequence '\\{}' in {} string",
                        e as char,
                        if q == b'"' {
                            "double-quoted"
                        } else {
                            "single-quoted"
                        }
                    )));
                }
            });
        }
        String::from_utf8(out).map_err(|_| ParseError {
            offset: start,
            message: "quoted string is not valid UTF-8".into(),
        })
    }

    /// `0[xX][0-9a-fA-F]+ | [+-]?[0-9]+\.?[0-9]*([eE][+-][0-9]+)?`
    fn number(&mut self) -> Result<String, ParseError> {
        let s = self.pos;
        if self.peek() == Some(b'0') && matches!(self.at(1), Some(b'x' | b'X')) {
            let mut i = 2;
            while self.at(i).is_some_and(|c| c.is_ascii_hexdigit()) {
                i += 1;
            }
            if i > 2 {
                self.pos += i;
                return Ok(self.s[s..self.pos].to_string());
            }
        }
        if matches!(self.peek(), Some(b'+' | b'-')) {
            self.pos += 1;
        }
        let digits = self.pos;
        while self.peek().is_some_and(|c| c.is_ascii_digit()) {
            self.pos += 1;
        }
        if self.pos == digits {
            self.pos = s;
            return Err(self.err("expected a number"));
        }
        if self.peek() == Some(b'.') {
            self.pos += 1;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        if matches!(self.peek(), Some(b'e' | b'E'))
            && matches!(self.at(1), Some(b'+' | b'-'))
            && self.at(2).is_some_and(|c| c.is_ascii_digit())
        {
            self.pos += 2;
            while self.peek().is_some_and(|c| c.is_ascii_digit()) {
                self.pos += 1;
            }
        }
        Ok(self.s[s..self.pos].to_string())
    }
}
