//! The syntax tree of a condition, as Falco's parser builds it. Positions are byte offsets into
//! the condition text so that errors can point back into the rules file.

/// A boolean expression.
#[derive(Clone, Debug, PartialEq)]
pub enum Expr {
    And(Vec<Expr>),
    Or(Vec<Expr>),
    Not(Box<Expr>),
    /// A comparison of a field (or transformed field) with a value.
    Check(Box<Check>),
    /// A bare identifier: a macro reference, expanded by the loader.
    Macro {
        name: String,
        pos: usize,
    },
}

/// `lhs op rhs`.
#[derive(Clone, Debug, PartialEq)]
pub struct Check {
    pub lhs: Operand,
    pub op: Op,
    pub modifier: Option<Modifier>,
    pub rhs: Rhs,
    /// Offset of the operator.
    pub op_pos: usize,
}

/// A field reference, possibly wrapped in transformers.
#[derive(Clone, Debug, PartialEq)]
pub enum Operand {
    Field(FieldRef),
    Transform {
        name: Transformer,
        args: Vec<Operand>,
        pos: usize,
    },
    /// A quoted string argument of a multi-argument transformer (`join(",", ...)`).
    Literal(String),
}

impl Operand {
    /// The innermost field references, in order.
    pub fn fields(&self) -> Vec<&FieldRef> {
        match self {
            Operand::Field(f) => vec![f],
            Operand::Transform { args, .. } => args.iter().flat_map(|a| a.fields()).collect(),
            Operand::Literal(_) => Vec::new(),
        }
    }
}

/// `name[arg]` at `pos`.
#[derive(Clone, Debug, PartialEq)]
pub struct FieldRef {
    pub name: String,
    pub arg: Option<String>,
    pub pos: usize,
}

impl FieldRef {
    /// The field as written: `proc.aname[2]`.
    pub fn display(&self) -> String {
        match &self.arg {
            Some(a) => format!("{}[{}]", self.name, a),
            None => self.name.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transformer {
    ToLower,
    ToUpper,
    B64,
    Basename,
    Len,
    Join,
    Concat,
    Getopt,
}

impl Transformer {
    pub const ALL: &'static [(&'static str, Transformer)] = &[
        ("tolower", Transformer::ToLower),
        ("toupper", Transformer::ToUpper),
        ("b64", Transformer::B64),
        ("basename", Transformer::Basename),
        ("len", Transformer::Len),
        ("join", Transformer::Join),
        ("concat", Transformer::Concat),
        ("getopt", Transformer::Getopt),
    ];

    pub fn name(self) -> &'static str {
        Self::ALL
            .iter()
            .find(|(_, t)| *t == self)
            .map(|(n, _)| *n)
            .unwrap_or("?")
    }
}

/// Comparison operators.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Op {
    Eq,
    Ne,
    Lt,
    Le,
    Gt,
    Ge,
    Contains,
    IContains,
    BContains,
    StartsWith,
    BStartsWith,
    EndsWith,
    Glob,
    IGlob,
    Regex,
    In,
    Intersects,
    PMatch,
    Exists,
}

impl Op {
    pub fn name(self) -> &'static str {
        match self {
            Op::Eq => "=",
            Op::Ne => "!=",
            Op::Lt => "<",
            Op::Le => "<=",
            Op::Gt => ">",
            Op::Ge => ">=",
            Op::Contains => "contains",
            Op::IContains => "icontains",
            Op::BContains => "bcontains",
            Op::StartsWith => "startswith",
            Op::BStartsWith => "bstartswith",
            Op::EndsWith => "endswith",
            Op::Glob => "glob",
            Op::IGlob => "iglob",
            Op::Regex => "regex",
            Op::In => "in",
            Op::Intersects => "intersects",
            Op::PMatch => "pmatch",
            Op::Exists => "exists",
        }
    }
}

/// `oneof` / `anyof` / `allof` in front of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Modifier {
    OneOf,
    AnyOf,
    AllOf,
}

/// The right-hand side of a check.
#[derive(Clone, Debug, PartialEq)]
pub enum Rhs {
    /// `exists` has none.
    None,
    Value {
        value: String,
        pos: usize,
    },
    List {
        items: Vec<String>,
        pos: usize,
    },
    /// A list given by name (`in my_list` without parentheses).
    ListName {
        name: String,
        pos: usize,
    },
    /// `val(field)` or a transformer: compare with another field of the same event.
    Operand(Operand),
}
