//! The rule engine: Falco's rule language, loaded from YAML, evaluated on `Event`s.
//!
//! Conditions are parsed with Falco's grammar (`parser`), lists substituted and macros expanded
//! as Falco's loader does (`loader`), fields resolved in one registry (`fields`), and compiled
//! into trees that evaluate without allocating (`eval`). Rules are indexed by event type.

pub mod ast;
pub mod cmd;
pub mod compile;
pub mod dns;
pub mod eval;
pub mod fields;
pub mod loader;
pub mod locate;
pub mod output;
pub mod parser;
pub mod partial;
pub mod prefilter;
#[doc(hidden)]
pub mod testkit;

#[cfg(test)]
mod engine_tests;
#[cfg(test)]
mod parser_tests;
#[cfg(test)]
mod stable_rules_tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;

use crate::alert::{Action, Alert, Enforcement, Priority};
use crate::event::{Event, EventType, KernelEnforcement};

pub use prefilter::PathPrefilter;

/// Falco's `rule_matching`: stop at the first matching rule (the default) or run them all.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum RuleMatching {
    #[default]
    First,
    All,
}

/// How to load rules.
#[derive(Clone, Debug, Default)]
pub struct LoadOptions {
    pub rule_matching: RuleMatching,
}

/// Something in the rules worth telling the user that does not stop loading.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Warning {
    pub file: String,
    pub line: usize,
    pub message: String,
}

impl std::fmt::Display for Warning {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}: {}", self.file, self.line, self.message)
    }
}

/// Rules that cannot be loaded: where, and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    #[error("{}: {source}", path.display())]
    Io {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{file}:{line}:{column}: {message}")]
    Rules {
        file: String,
        line: usize,
        column: usize,
        message: String,
    },
}

/// One loaded rule.
#[derive(Debug, Clone)]
pub struct Rule {
    pub name: Arc<str>,
    pub desc: String,
    /// The condition as written (after appends and exceptions, before list substitution).
    pub condition: String,
    pub output: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub action: Action,
    pub dry_run: bool,
    pub source: &'static str,
    /// Where the rule was (last) defined.
    pub file: String,
    pub line: usize,
    node: eval::Node,
    program: eval::Program,
    types: eval::TypeSet,
    output_format: output::OutputFormat,
    /// Fields named by the condition or the output that the capture side does not provide.
    pub missing_fields: Vec<String>,
    /// `evt.type` values that name no event type this monitor captures.
    pub unknown_event_types: Vec<String>,
}

impl Rule {
    fn new(mut p: loader::RuleParts) -> Rule {
        p.node = p.node.optimize();
        let mut missing = BTreeSet::new();
        p.node.visit_accessors(&mut |a| {
            if !a.def.provided {
                missing.insert(a.display.clone());
            }
        });
        for a in p.output.accessors() {
            if !a.def.provided {
                missing.insert(a.display.clone());
            }
        }
        let types = p.node.types();
        let program = eval::Program::new(&p.node);
        Rule {
            name: p.name.into(),
            desc: p.desc,
            condition: p.condition,
            output: p.output_text,
            priority: p.priority,
            tags: p.tags,
            enabled: p.enabled,
            action: p.action,
            dry_run: p.dry_run,
            source: "syscall",
            file: p.file,
            line: p.line,
            node: p.node,
            program,
            types,
            output_format: p.output,
            missing_fields: missing.into_iter().collect(),
            unknown_event_types: p.unknown_types,
        }
    }

    /// The event types the condition can match.
    pub fn event_types(&self) -> BTreeSet<EventType> {
        self.types.iter().collect()
    }

    /// Evaluates the condition alone (whatever `enabled` says).
    pub fn matches(&self, ev: &Event) -> bool {
        self.program.eval(ev)
    }

    /// Every field the condition reads.
    /// The compiled condition, for compilers that translate it further (enforcement).
    pub fn condition_node(&self) -> &eval::Node {
        &self.node
    }

    pub fn condition_fields(&self) -> BTreeSet<String> {
        loader::field_names(&self.node)
    }
}

/// Whether a rule can work with what the capture side provides.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize)]
pub struct RuleSupport {
    pub name: String,
    pub supported: bool,
    pub missing_fields: Vec<String>,
    /// `evt.type` values of the condition that are not captured (the rule never sees them).
    pub missing_event_types: Vec<String>,
}

/// The loaded rules, indexed by event type.
#[derive(Debug)]
pub struct Engine {
    rules: Vec<Rule>,
    /// Per event type: indices of enabled rules whose condition can match it, in order.
    by_type: Vec<Box<[u32]>>,
    matching: RuleMatching,
}

impl Engine {
    /// Loads files (or directories of *.yaml / *.yml, sorted) in order.
    pub fn load(
        paths: &[PathBuf],
        opts: &LoadOptions,
    ) -> Result<(Engine, Vec<Warning>), LoadError> {
        let mut sources = Vec::new();
        for p in paths {
            for f in loader::expand_path(p)? {
                let text = std::fs::read_to_string(&f).map_err(|source| LoadError::Io {
                    path: f.clone(),
                    source,
                })?;
                sources.push((f.display().to_string(), text));
            }
        }
        Self::load_sources(&sources, opts)
    }

    /// Loads one rules document given as text; `name` is used in messages.
    pub fn load_str(
        name: &str,
        yaml: &str,
        opts: &LoadOptions,
    ) -> Result<(Engine, Vec<Warning>), LoadError> {
        Self::load_sources(&[(name.to_string(), yaml.to_string())], opts)
    }

    /// Loads several documents in order (later ones refine earlier ones).
    pub fn load_sources(
        sources: &[(String, String)],
        opts: &LoadOptions,
    ) -> Result<(Engine, Vec<Warning>), LoadError> {
        with_big_stack(|| {
            let mut state = loader::State::default();
            for (name, text) in sources {
                state.add_file(name, text)?;
            }
            let rules = state.compile(opts)?;
            Ok((Engine::new(rules, opts.rule_matching), state.warnings))
        })
    }

    fn new(rules: Vec<Rule>, matching: RuleMatching) -> Engine {
        let mut by_type = vec![Vec::new(); EventType::ALL.len()];
        for (i, r) in rules.iter().enumerate() {
            if !r.enabled {
                continue;
            }
            for t in r.types.iter() {
                by_type[t.index()].push(i as u32);
            }
        }
        Engine {
            rules,
            by_type: by_type.into_iter().map(Vec::into_boxed_slice).collect(),
            matching,
        }
    }

    /// Appends `extra` (output format syntax) to the output of every rule `select` picks,
    /// after a blank, as Falco's `append_output` does. All rules or none: on an error (an
    /// unknown field in `extra`) nothing changes.
    pub fn append_output(
        &mut self,
        extra: &str,
        select: impl Fn(&Rule) -> bool,
    ) -> Result<(), String> {
        let mut changed = Vec::new();
        for (i, r) in self.rules.iter().enumerate().filter(|(_, r)| select(r)) {
            let text = format!("{} {}", r.output.trim_end(), extra.trim());
            let (format, _) = output::OutputFormat::compile(&text)
                .map_err(|e| format!("appending output '{extra}' to rule '{}': {e}", r.name))?;
            changed.push((i, text, format));
        }
        for (i, text, format) in changed {
            let r = &mut self.rules[i];
            for a in format.accessors() {
                if !a.def.provided && !r.missing_fields.contains(&a.display) {
                    r.missing_fields.push(a.display.clone());
                }
            }
            r.output = text;
            r.output_format = format;
        }
        Ok(())
    }

    pub fn rules(&self) -> &[Rule] {
        &self.rules
    }

    /// What enabled rules can match: the syscalls the kernel side must capture.
    pub fn event_types(&self) -> BTreeSet<EventType> {
        EventType::ALL
            .iter()
            .copied()
            .filter(|t| !self.by_type[t.index()].is_empty())
            .collect()
    }

    /// Whether some enabled rule may match an event like `ev`, judging only the event type and
    /// the `known` fields of `ev` (others are assumed to allow a match). A necessary
    /// condition: `false` means no rule can match any such event.
    pub fn may_match(&self, ev: &Event, known: &[&str]) -> bool {
        self.by_type[ev.ty.index()]
            .iter()
            .any(|&i| partial::may_match(&self.rules[i as usize].node, ev, known))
    }

    /// Pushes the indices of the enabled rules matching `ev` (only the first one with
    /// `rule_matching: first`). Allocates nothing when no rule matches.
    pub fn evaluate(&self, ev: &Event, out: &mut Vec<usize>) {
        for &i in self.by_type[ev.ty.index()].iter() {
            if self.rules[i as usize].program.eval(ev) {
                out.push(i as usize);
                if self.matching == RuleMatching::First {
                    return;
                }
            }
        }
    }

    /// The alert for rule `rule` matching `ev`.
    pub fn alert(&self, rule: usize, ev: &Event, hostname: &Arc<str>) -> Alert {
        let r = &self.rules[rule];
        let (output, output_fields) = r.output_format.render(ev);
        let enforcement = (r.action == Action::Kill).then(|| Enforcement {
            action: Action::Kill,
            enforced: ev.enforcement == Some(KernelEnforcement::Killed),
            dry_run: r.dry_run || ev.enforcement == Some(KernelEnforcement::WouldKill),
        });
        Alert {
            time_ns: ev.ts,
            rule: r.name.clone(),
            priority: r.priority,
            output,
            output_fields,
            tags: r.tags.clone(),
            source: "syscall",
            hostname: hostname.clone(),
            enforcement,
        }
    }

    /// A necessary condition on paths for open-family events (see `PathPrefilter`); None when
    /// some enabled rule that can match an open puts no bound on the path.
    pub fn path_prefilter(&self) -> Option<PathPrefilter> {
        let open = prefilter::open_types();
        let mut all = prefilter::Alts::default();
        for r in self.rules.iter().filter(|r| r.enabled) {
            if r.types.intersect(open) == eval::TypeSet::NONE {
                continue;
            }
            let a = prefilter::necessary(&r.node)?;
            all.prefixes.extend(a.prefixes);
            all.suffixes.extend(a.suffixes);
            all.raw.extend(a.raw);
        }
        let dedup = |mut v: Vec<String>| {
            v.sort();
            v.dedup();
            v
        };
        Some(PathPrefilter {
            prefixes: dedup(all.prefixes),
            suffixes: dedup(all.suffixes),
            raw_contains: dedup(all.raw),
        })
    }

    /// Per rule: whether every field it uses is produced by the capture side.
    pub fn check_report(&self) -> Vec<RuleSupport> {
        self.rules
            .iter()
            .map(|r| RuleSupport {
                name: r.name.to_string(),
                supported: r.missing_fields.is_empty() && r.types != eval::TypeSet::NONE,
                missing_fields: r.missing_fields.clone(),
                missing_event_types: r.unknown_event_types.clone(),
            })
            .collect()
    }

    /// Output fields by rule, for tools.
    pub fn output_fields(&self, rule: usize) -> Vec<String> {
        self.rules
            .get(rule)
            .map(|r| {
                r.output_format
                    .accessors()
                    .map(|a| a.display.clone())
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// A map of field name to value for a whole event, for debugging tools.
pub fn extract_all(fields: &[&str], ev: &Event) -> BTreeMap<String, serde_json::Value> {
    fields
        .iter()
        .map(|f| {
            (
                f.to_string(),
                extract(f, ev).unwrap_or(serde_json::Value::Null),
            )
        })
        .collect()
}

/// A condition compiled on its own (no macros or lists), for `monitor trace --filter`.
#[derive(Debug, Clone)]
pub struct Filter {
    program: eval::Program,
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
            let node = c.compile(&tree, 0)?.optimize();
            Ok(Filter {
                program: eval::Program::new(&node),
            })
        })
    }

    pub fn matches(&self, ev: &Event) -> bool {
        self.program.eval(ev)
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

// The daemon shares one engine between its event workers.
const _: fn() = || {
    fn shareable<T: Send + Sync>() {}
    shareable::<Engine>();
    shareable::<Filter>();
};
