//! The rule engine: Falco's rule language, loaded from YAML, evaluated on `Event`s.
//!
//! Conditions are parsed with Falco's grammar (`parser`), lists substituted and macros expanded
//! as Falco's loader does (`loader`), fields resolved in one registry (`fields`), and compiled
//! into trees that evaluate without allocating (`eval`). Rules are indexed by event type.

pub mod ast;
pub mod compile;
pub mod eval;
pub mod fields;
pub mod parser;

#[cfg(test)]
mod parser_tests;

use crate::event::Event;

/// A condition compiled on its own (no macros or lists), for `monitor trace --filter`.
#[derive(Debug, Clone)]
pub struct Filter {
    node: eval::Node,
}

/// A condition that did not compile.
#[derive(Debug, thiserror::Error)]
pub enum FilterError {
    #[error("syntax error: {0}")]
    Parse(#[from] parser::ParseError),
    #[error("at offset {}: {}", .0.offset, .0.kind)]
    Compile(#[from] compile::CompileError),
}

impl Filter {
    pub fn compile(condition: &str) -> Result<Filter, FilterError> {
        with_big_stack(|| {
            let tree = parser::parse(condition)?;
            let mut c = compile::Compiler::new(&compile::NoMacros);
            let node = c.compile(&tree, 0)?;
            Ok(Filter { node })
        })
    }

    pub fn matches(&self, ev: &Event) -> bool {
        self.node.eval(ev)
    }
}

/// Falco allows conditions nested 1000 deep; parsing and compiling them recursively needs more
/// stack than a test or tokio thread has, so loading runs on a thread of its own with room
/// for that (the memory is only reserved, not used, unless a condition is that deep).
pub(crate) fn with_big_stack<T: Send>(f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        match std::thread::Builder::new()
            .name("rules-load".into())
            .stack_size(256 << 20)
            .spawn_scoped(s, f)
        {
            Ok(h) => match h.join() {
                Ok(v) => v,
                Err(p) => std::panic::resume_unwind(p),
            },
            // No thread could be started: run here and accept the smaller stack.
            Err(_) => unreachable_spawn_failure(),
        }
    })
}

#[cold]
fn unreachable_spawn_failure() -> ! {
    panic!("cannot start a thread to load rules")
}

/// Reads one field by its full name (`proc.aname[2]`, `evt.arg.flags`) as typed JSON; `None`
/// when the name is not a field or the event has no value for it.
pub fn extract(field: &str, ev: &Event) -> Option<serde_json::Value> {
    let (name, arg) = match field.find('[') {
        Some(i) if field.ends_with(']') => (&field[..i], Some(&field[i + 1..field.len() - 1])),
        _ => (field, None),
    };
    let (def, arg) = fields::resolve(name, arg).ok()?;
    match (def.extract)(ev, &arg) {
        fields::Value::Missing => None,
        v => Some(v.to_json()),
    }
}
