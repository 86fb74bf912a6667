//! Falco's rule loader: YAML items (`list`, `macro`, `rule`, version requirements) read file
//! after file into one cumulative state, with Falco's redefinition, append and override
//! semantics; then lists are substituted as text, macros expanded on the tree, exceptions
//! turned into conditions, and every rule compiled (disabled ones too).

use std::collections::{BTreeSet, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use serde_yaml::Value as Y;

use crate::alert::{Action, Priority};

use super::ast::Expr;
use super::compile::{CompileErrorKind, Compiler, Macros};
use super::eval::Node;
use super::fields::FieldError;
use super::locate::{self, ScalarLoc};
use super::output::OutputFormat;
use super::parser;
use super::{LoadError, LoadOptions, Rule, Warning};

/// The engine version this loader implements (Falco 0.63's rule engine).
pub const ENGINE_VERSION: (u64, u64, u64) = (0, 63, 0);

/// One place in a file where a piece of condition text comes from.
#[derive(Clone, Debug)]
struct Piece {
    /// Offset of this piece in the combined condition text.
    at: usize,
    file: Arc<str>,
    item_line: usize,
    loc: Option<ScalarLoc>,
}

/// Condition text assembled from definitions and appends, remembering where each part came
/// from.
#[derive(Clone, Debug, Default)]
struct Text {
    text: String,
    pieces: Vec<Piece>,
}

impl Text {
    fn new(text: String, file: &Arc<str>, item_line: usize, loc: Option<ScalarLoc>) -> Text {
        Text {
            text,
            pieces: vec![Piece {
                at: 0,
                file: file.clone(),
                item_line,
                loc,
            }],
        }
    }

    fn append(&mut self, other: Text) {
        self.text.push(' ');
        let base = self.text.len();
        self.text.push_str(&other.text);
        self.pieces.extend(other.pieces.into_iter().map(|p| Piece {
            at: p.at + base,
            ..p
        }));
    }

    /// File, line and column of `offset` into the text.
    fn position(&self, offset: usize) -> (Arc<str>, usize, usize) {
        let Some(p) = self
            .pieces
            .iter()
            .rev()
            .find(|p| p.at <= offset)
            .or(self.pieces.first())
        else {
            return ("<unknown>".into(), 0, 0);
        };
        let local = offset.saturating_sub(p.at);
        match p.loc.as_ref().and_then(|l| l.position(local)) {
            Some((line, col)) => (p.file.clone(), line, col),
            None => (p.file.clone(), p.item_line, 1),
        }
    }
}

#[derive(Clone, Debug)]
struct ListDef {
    name: String,
    items: Vec<String>,
    file: Arc<str>,
    line: usize,
}

#[derive(Clone, Debug)]
struct MacroDef {
    name: String,
    cond: Text,
    file: Arc<str>,
    line: usize,
}

#[derive(Clone, Debug)]
struct Exception {
    name: String,
    fields: Y,
    comps: Y,
    values: Vec<Y>,
}

#[derive(Clone, Debug)]
struct RuleDef {
    name: String,
    desc: String,
    cond: Text,
    output: String,
    priority: Priority,
    tags: Vec<String>,
    enabled: bool,
    action: Action,
    dry_run: bool,
    exceptions: Vec<Exception>,
    skip_if_unknown: bool,
    file: Arc<str>,
    line: usize,
}

/// The cumulative state of loaded files, in definition order.
#[derive(Default)]
pub struct State {
    lists: Vec<ListDef>,
    list_idx: HashMap<String, usize>,
    macros: Vec<MacroDef>,
    macro_idx: HashMap<String, usize>,
    rules: Vec<RuleDef>,
    rule_idx: HashMap<String, usize>,
    warned_sources: HashSet<String>,
    warned_plugins: HashSet<String>,
    pub warnings: Vec<Warning>,
}

/// Where an item is, for messages.
struct Ctx<'a> {
    file: &'a Arc<str>,
    src: &'a str,
    line: usize,
    end: usize,
}

impl Ctx<'_> {
    fn err(&self, msg: impl Into<String>) -> LoadError {
        LoadError::Rules {
            file: self.file.to_string(),
            line: self.line,
            column: 1,
            message: msg.into(),
        }
    }

    fn key_err(&self, key: &str, msg: impl Into<String>) -> LoadError {
        let (line, column) = locate::find_key(self.src, self.line, self.end, key)
            .and_then(|l| l.lines.first().map(|(l, c, _)| (*l, *c)))
            .unwrap_or((self.line, 1));
        LoadError::Rules {
            file: self.file.to_string(),
            line,
            column,
            message: msg.into(),
        }
    }

    fn loc(&self, key: &str) -> Option<ScalarLoc> {
        locate::find_key(self.src, self.line, self.end, key)
    }
}

fn scalar_string(v: &Y) -> Option<String> {
    match v {
        Y::String(s) => Some(s.clone()),
        Y::Number(n) => Some(n.to_string()),
        Y::Bool(b) => Some(b.to_string()),
        Y::Null => Some(String::new()),
        _ => None,
    }
}

impl State {
    fn warn(&mut self, file: &Arc<str>, line: usize, msg: impl Into<String>) {
        self.warnings.push(Warning {
            file: file.to_string(),
            line,
            message: msg.into(),
        });
    }

    /// Reads one file's items into the state.
    pub fn add_file(&mut self, name: &str, src: &str) -> Result<(), LoadError> {
        let file: Arc<str> = name.into();
        let doc: Y = serde_yaml::from_str(src).map_err(|e| {
            let (line, column) = e
                .location()
                .map(|l| (l.line(), l.column()))
                .unwrap_or((0, 0));
            LoadError::Rules {
                file: name.to_string(),
                line,
                column,
                message: format!("invalid YAML: {e}"),
            }
        })?;
        let items = match doc {
            Y::Null => return Ok(()),
            Y::Sequence(items) => items,
            _ => {
                return Err(LoadError::Rules {
                    file: name.to_string(),
                    line: 1,
                    column: 1,
                    message: "a rules file must be a list of items (- rule:, - macro:, - list:)"
                        .into(),
                });
            }
        };
        let mut starts = locate::item_lines(src);
        if starts.len() != items.len() {
            // Flow-style or unusual layout: positions fall back to the file's start.
            starts = vec![1; items.len()];
        }
        let total = src.lines().count() + 1;
        for (i, item) in items.iter().enumerate() {
            let end = starts
                .get(i + 1)
                .copied()
                .filter(|e| *e > starts[i])
                .unwrap_or(total);
            let ctx = Ctx {
                file: &file,
                src,
                line: starts[i],
                end,
            };
            let Y::Mapping(m) = item else {
                return Err(ctx.err("each item must be a mapping (rule, macro, list...)"));
            };
            self.add_item(&ctx, m)?;
        }
        Ok(())
    }

    fn add_item(&mut self, ctx: &Ctx<'_>, m: &serde_yaml::Mapping) -> Result<(), LoadError> {
        if let Some(v) = m.get("required_engine_version") {
            let s = scalar_string(v).unwrap_or_default();
            let parts: Vec<u64> = s
                .split('.')
                .map(|p| p.trim().parse::<u64>())
                .collect::<Result<_, _>>()
                .map_err(|_| {
                    ctx.key_err(
                        "required_engine_version",
                        format!("invalid required_engine_version '{s}'"),
                    )
                })?;
            let want = (
                parts.first().copied().unwrap_or(0),
                parts.get(1).copied().unwrap_or(0),
                parts.get(2).copied().unwrap_or(0),
            );
            // A bare number is the old engine numbering (up to 0.26): always satisfied.
            let too_new = parts.len() > 1 && (want.0 != ENGINE_VERSION.0 || want > ENGINE_VERSION);
            if too_new {
                return Err(ctx.key_err(
                    "required_engine_version",
                    format!(
                        "rules require engine version {s}, this engine implements {}.{}.{}",
                        ENGINE_VERSION.0, ENGINE_VERSION.1, ENGINE_VERSION.2
                    ),
                ));
            }
            return Ok(());
        }
        if let Some(v) = m.get("required_plugin_versions") {
            let Y::Sequence(plugins) = v else {
                return Err(ctx.err("required_plugin_versions must be a list"));
            };
            for p in plugins {
                let names: Vec<String> = std::iter::once(p.get("name"))
                    .chain(
                        p.get("alternatives")
                            .and_then(Y::as_sequence)
                            .into_iter()
                            .flatten()
                            .map(|a| a.get("name")),
                    )
                    .flatten()
                    .filter_map(scalar_string)
                    .collect();
                if names.is_empty() {
                    return Err(ctx.err("a required plugin needs a name"));
                }
                // The container plugin's fields are built in.
                if names.iter().any(|n| n == "container") {
                    continue;
                }
                let n = names[0].clone();
                if self.warned_plugins.insert(n.clone()) {
                    self.warn(
                        ctx.file,
                        ctx.line,
                        format!("plugin '{n}' is required by the rules but plugins are not supported; rules using its fields will fail to load"),
                    );
                }
            }
            return Ok(());
        }
        if m.contains_key("list") {
            return self.add_list(ctx, m);
        }
        if m.contains_key("macro") {
            return self.add_macro(ctx, m);
        }
        if m.contains_key("rule") {
            return self.add_rule(ctx, m);
        }
        let keys: Vec<String> = m.keys().filter_map(scalar_string).collect();
        self.warn(
            ctx.file,
            ctx.line,
            format!("unknown item with keys [{}] ignored", keys.join(", ")),
        );
        Ok(())
    }

    /// `append: true` or `override: {key: append|replace}`; returns (append keys, replace keys).
    fn overrides(
        ctx: &Ctx<'_>,
        m: &serde_yaml::Mapping,
        allowed_append: &[&str],
        allowed_replace: &[&str],
    ) -> Result<(bool, Vec<String>, Vec<String>), LoadError> {
        let append = match m.get("append") {
            None => false,
            Some(Y::Bool(b)) => *b,
            Some(_) => return Err(ctx.key_err("append", "'append' must be true or false")),
        };
        let mut app = Vec::new();
        let mut rep = Vec::new();
        if let Some(o) = m.get("override") {
            if append {
                return Err(ctx.key_err(
                    "override",
                    "'append' and 'override' cannot be used together",
                ));
            }
            let Y::Mapping(o) = o else {
                return Err(ctx.key_err(
                    "override",
                    "'override' must be a mapping of key: append|replace",
                ));
            };
            for (k, v) in o {
                let k = scalar_string(k).unwrap_or_default();
                if !m.contains_key(k.as_str()) {
                    return Err(
                        ctx.key_err("override", format!("'{k}' is overridden but not given"))
                    );
                }
                match v.as_str() {
                    Some("append") if allowed_append.contains(&k.as_str()) => app.push(k),
                    Some("replace") if allowed_replace.contains(&k.as_str()) => rep.push(k),
                    Some(w @ ("append" | "replace")) => {
                        return Err(ctx.key_err(
                            "override",
                            format!("key '{k}' cannot be overridden with '{w}'"),
                        ));
                    }
                    _ => {
                        return Err(ctx.key_err(
                            "override",
                            format!("override of '{k}' must be 'append' or 'replace'"),
                        ));
                    }
                }
            }
        }
        Ok((append, app, rep))
    }

    fn add_list(&mut self, ctx: &Ctx<'_>, m: &serde_yaml::Mapping) -> Result<(), LoadError> {
        let name = m
            .get("list")
            .and_then(scalar_string)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ctx.err("a list needs a name"))?;
        let items: Vec<String> = match m.get("items") {
            Some(Y::Sequence(v)) => v
                .iter()
                .map(|i| {
                    scalar_string(i).ok_or_else(|| {
                        ctx.key_err("items", format!("list '{name}': items must be strings"))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(Y::Null) => Vec::new(),
            Some(_) => {
                return Err(ctx.key_err("items", format!("list '{name}': 'items' must be a list")));
            }
            None => return Err(ctx.err(format!("list '{name}' has no 'items'"))),
        };
        for k in m.keys().filter_map(scalar_string) {
            if !["list", "items", "append", "override"].contains(&k.as_str()) {
                self.warn(
                    ctx.file,
                    ctx.line,
                    format!("list '{name}': unknown key '{k}' ignored"),
                );
            }
        }
        let (append, app, _) = Self::overrides(ctx, m, &["items"], &["items"])?;
        let appending = append || !app.is_empty();
        match self.list_idx.get(&name) {
            Some(&i) if appending => self.lists[i].items.extend(items),
            Some(&i) => {
                self.lists[i].items = items;
                self.lists[i].file = ctx.file.clone();
                self.lists[i].line = ctx.line;
            }
            None if appending => {
                return Err(ctx.err(format!(
                    "list '{name}' appends to a list that does not exist"
                )));
            }
            None => {
                self.list_idx.insert(name.clone(), self.lists.len());
                self.lists.push(ListDef {
                    name,
                    items,
                    file: ctx.file.clone(),
                    line: ctx.line,
                });
            }
        }
        Ok(())
    }

    fn add_macro(&mut self, ctx: &Ctx<'_>, m: &serde_yaml::Mapping) -> Result<(), LoadError> {
        let name = m
            .get("macro")
            .and_then(scalar_string)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ctx.err("a macro needs a name"))?;
        let cond = match m.get("condition").map(scalar_string) {
            Some(Some(c)) => c,
            Some(None) => {
                return Err(ctx.key_err(
                    "condition",
                    format!("macro '{name}': condition must be a string"),
                ));
            }
            None => return Err(ctx.err(format!("macro '{name}' has no condition"))),
        };
        for k in m.keys().filter_map(scalar_string) {
            if !["macro", "condition", "append", "override"].contains(&k.as_str()) {
                self.warn(
                    ctx.file,
                    ctx.line,
                    format!("macro '{name}': unknown key '{k}' ignored"),
                );
            }
        }
        let (append, app, _) = Self::overrides(ctx, m, &["condition"], &["condition"])?;
        let text = Text::new(cond, ctx.file, ctx.line, ctx.loc("condition"));
        match self.macro_idx.get(&name) {
            Some(&i) if append || !app.is_empty() => self.macros[i].cond.append(text),
            Some(&i) => {
                self.macros[i].cond = text;
                self.macros[i].file = ctx.file.clone();
                self.macros[i].line = ctx.line;
            }
            None if append || !app.is_empty() => {
                return Err(ctx.err(format!(
                    "macro '{name}' appends to a macro that does not exist"
                )));
            }
            None => {
                self.macro_idx.insert(name.clone(), self.macros.len());
                self.macros.push(MacroDef {
                    name,
                    cond: text,
                    file: ctx.file.clone(),
                    line: ctx.line,
                });
            }
        }
        Ok(())
    }

    fn add_rule(&mut self, ctx: &Ctx<'_>, m: &serde_yaml::Mapping) -> Result<(), LoadError> {
        let name = m
            .get("rule")
            .and_then(scalar_string)
            .filter(|s| !s.is_empty())
            .ok_or_else(|| ctx.err("a rule needs a name"))?;
        const KNOWN: &[&str] = &[
            "rule",
            "desc",
            "condition",
            "output",
            "priority",
            "tags",
            "enabled",
            "exceptions",
            "append",
            "override",
            "source",
            "skip-if-unknown-filter",
            "warn_evttypes",
            "capture",
            "capture_duration",
            "action",
            "dry_run",
        ];
        for k in m.keys().filter_map(scalar_string) {
            if !KNOWN.contains(&k.as_str()) {
                self.warn(
                    ctx.file,
                    ctx.line,
                    format!("rule '{name}': unknown key '{k}' ignored"),
                );
            }
        }
        let source = m
            .get("source")
            .and_then(scalar_string)
            .unwrap_or_else(|| "syscall".into());
        if source != "syscall" {
            if self.warned_sources.insert(source.clone()) {
                self.warn(
                    ctx.file,
                    ctx.line,
                    format!("rules for source '{source}' are skipped: only the syscall source is supported (first: '{name}')"),
                );
            }
            return Ok(());
        }
        let string = |key: &str| -> Result<Option<String>, LoadError> {
            match m.get(key) {
                None => Ok(None),
                Some(v) => scalar_string(v).map(Some).ok_or_else(|| {
                    ctx.key_err(key, format!("rule '{name}': '{key}' must be a string"))
                }),
            }
        };
        let boolean = |key: &str| -> Result<Option<bool>, LoadError> {
            match m.get(key) {
                None => Ok(None),
                Some(Y::Bool(b)) => Ok(Some(*b)),
                Some(_) => {
                    Err(ctx.key_err(key, format!("rule '{name}': '{key}' must be true or false")))
                }
            }
        };
        let priority = match string("priority")? {
            Some(p) => Some(
                p.parse::<Priority>()
                    .map_err(|e| ctx.key_err("priority", format!("rule '{name}': {e}")))?,
            ),
            None => None,
        };
        let tags = match m.get("tags") {
            None => None,
            Some(Y::Sequence(v)) => Some(
                v.iter()
                    .map(|t| {
                        scalar_string(t).ok_or_else(|| {
                            ctx.key_err("tags", format!("rule '{name}': tags must be strings"))
                        })
                    })
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => {
                return Err(ctx.key_err("tags", format!("rule '{name}': 'tags' must be a list")));
            }
        };
        let action = match string("action")?.as_deref() {
            None => None,
            Some("kill") => Some(Action::Kill),
            Some("alert") => Some(Action::Alert),
            Some(other) => {
                return Err(ctx.key_err(
                    "action",
                    format!("rule '{name}': unknown action '{other}' (expected kill or alert)"),
                ));
            }
        };
        let dry_run = boolean("dry_run")?;
        let enabled = boolean("enabled")?;
        let skip = boolean("skip-if-unknown-filter")?;
        let exceptions = match m.get("exceptions") {
            None => None,
            Some(Y::Sequence(v)) => Some(
                v.iter()
                    .map(|e| parse_exception(ctx, &name, e))
                    .collect::<Result<Vec<_>, _>>()?,
            ),
            Some(_) => {
                return Err(ctx.key_err(
                    "exceptions",
                    format!("rule '{name}': 'exceptions' must be a list"),
                ));
            }
        };
        let cond =
            string("condition")?.map(|c| Text::new(c, ctx.file, ctx.line, ctx.loc("condition")));
        let desc = string("desc")?;
        let output = string("output")?;
        let (append, app, rep) = Self::overrides(
            ctx,
            m,
            &["condition", "output", "desc", "tags", "exceptions"],
            &[
                "condition",
                "output",
                "desc",
                "priority",
                "tags",
                "exceptions",
                "enabled",
                "capture",
                "capture_duration",
                "warn_evttypes",
                "skip-if-unknown-filter",
            ],
        )?;
        let existing = self.rule_idx.get(&name).copied();
        let only_enabled = enabled.is_some()
            && m.keys()
                .filter_map(scalar_string)
                .all(|k| k == "rule" || k == "enabled");
        if append || !app.is_empty() || !rep.is_empty() || (only_enabled && existing.is_some()) {
            let Some(i) = existing else {
                return Err(ctx.err(format!(
                    "rule '{name}' appends to or overrides a rule that does not exist"
                )));
            };
            let r = &mut self.rules[i];
            let appends = |k: &str| append || app.iter().any(|a| a == k);
            let replaces = |k: &str| {
                rep.iter().any(|a| a == k) || (!append && app.is_empty() && rep.is_empty())
            };
            if let Some(c) = cond {
                if appends("condition") {
                    r.cond.append(c);
                } else if replaces("condition") {
                    r.cond = c;
                }
            }
            if let Some(o) = output {
                if appends("output") {
                    r.output = format!("{} {o}", r.output);
                } else {
                    r.output = o;
                }
            }
            if let Some(d) = desc {
                if appends("desc") {
                    r.desc = format!("{} {d}", r.desc);
                } else {
                    r.desc = d;
                }
            }
            if let Some(t) = tags {
                if appends("tags") {
                    r.tags.extend(t);
                } else {
                    r.tags = t;
                }
            }
            if let Some(ex) = exceptions {
                if appends("exceptions") {
                    for e in ex {
                        match r.exceptions.iter_mut().find(|x| x.name == e.name) {
                            Some(x) => x.values.extend(e.values),
                            None => r.exceptions.push(e),
                        }
                    }
                } else {
                    r.exceptions = ex;
                }
            }
            if let Some(p) = priority {
                r.priority = p;
            }
            if let Some(e) = enabled {
                r.enabled = e;
            }
            if let Some(s) = skip {
                r.skip_if_unknown = s;
            }
            if let Some(a) = action {
                r.action = a;
            }
            if let Some(d) = dry_run {
                r.dry_run = d;
            }
            return Ok(());
        }
        let missing: Vec<&str> = [
            ("condition", cond.is_none()),
            ("output", output.is_none()),
            ("desc", desc.is_none()),
            ("priority", priority.is_none()),
        ]
        .iter()
        .filter(|(_, m)| *m)
        .map(|(k, _)| *k)
        .collect();
        if !missing.is_empty() {
            return Err(ctx.err(format!(
                "rule '{name}' is missing required key(s): {}",
                missing.join(", ")
            )));
        }
        let def = RuleDef {
            name: name.clone(),
            desc: desc.unwrap_or_default(),
            cond: cond.unwrap_or_default(),
            output: output.unwrap_or_default(),
            priority: priority.unwrap_or(Priority::Debug),
            tags: tags.unwrap_or_default(),
            enabled: enabled.unwrap_or(true),
            action: action.unwrap_or(Action::Alert),
            dry_run: dry_run.unwrap_or(false),
            exceptions: exceptions.unwrap_or_default(),
            skip_if_unknown: skip.unwrap_or(false),
            file: ctx.file.clone(),
            line: ctx.line,
        };
        match existing {
            Some(i) => self.rules[i] = def,
            None => {
                self.rule_idx.insert(name, self.rules.len());
                self.rules.push(def);
            }
        }
        Ok(())
    }

    /// Compiles every rule of the state.
    pub fn compile(&mut self, opts: &LoadOptions) -> Result<Vec<Rule>, LoadError> {
        let _ = opts;
        // Lists: an item naming an earlier list is replaced by that list's items (one level);
        // items with blanks are quoted so they stay one value.
        let mut resolved: Vec<(String, Vec<String>)> = Vec::with_capacity(self.lists.len());
        let mut seen: HashMap<&str, usize> = HashMap::new();
        for l in &self.lists {
            let mut items = Vec::new();
            for it in &l.items {
                match seen.get(it.as_str()) {
                    Some(&j) => items.extend(resolved[j].1.iter().cloned()),
                    None => items.push(quote_item(it)),
                }
            }
            seen.insert(l.name.as_str(), resolved.len());
            resolved.push((l.name.clone(), items));
        }
        let mut list_used = vec![false; resolved.len()];
        // Macros: substitute lists, parse.
        let mut parsed_macros: HashMap<String, (Expr, usize)> = HashMap::new();
        // Condition texts after list substitution, with the map back to the text as written.
        let mut sources: Vec<(Text, OffsetMap)> = Vec::new();
        for mac in &self.macros {
            let (text, map) = substitute_lists(&mac.cond.text, &resolved, &mut list_used);
            let tree = parser::parse(&text).map_err(|e| {
                located(
                    &mac.cond,
                    map_offset(&map, e.offset),
                    format!("macro '{}': syntax error: {}", mac.name, e.message),
                )
            })?;
            sources.push((mac.cond.clone(), map));
            parsed_macros.insert(mac.name.clone(), (tree, sources.len() - 1));
        }
        // Macros may not refer to themselves, directly or not.
        check_macro_cycles(&self.macros, &parsed_macros, &sources)?;
        let table = MacroTable(&parsed_macros);
        let mut macro_used: HashSet<String> = HashSet::new();
        let mut rules = Vec::with_capacity(self.rules.len());
        for r in &self.rules {
            let mut cond = r.cond.clone();
            if let Some(exc) = exceptions_text(&r.exceptions) {
                cond.text = format!("({}) and not ({exc})", cond.text);
                for p in &mut cond.pieces {
                    p.at += 1;
                }
            }
            let (text, map) = substitute_lists(&cond.text, &resolved, &mut list_used);
            let tree = parser::parse(&text).map_err(|e| {
                located(
                    &cond,
                    map_offset(&map, e.offset),
                    format!("rule '{}': syntax error: {}", r.name, e.message),
                )
            })?;
            collect_macro_refs(&tree, &parsed_macros, &mut macro_used);
            sources.push((cond.clone(), map));
            let src_id = sources.len() - 1;
            let mut c = Compiler::new(&table);
            let node = match c.compile(&tree, src_id) {
                Ok(n) => n,
                Err(e) => {
                    if r.skip_if_unknown
                        && matches!(e.kind, CompileErrorKind::Field(FieldError::Unknown { .. }))
                    {
                        self.warnings.push(Warning {
                            file: r.file.to_string(),
                            line: r.line,
                            message: format!(
                                "rule '{}' skipped (skip-if-unknown-filter): {}",
                                r.name, e.kind
                            ),
                        });
                        continue;
                    }
                    let (t, map) = &sources[e.src];
                    return Err(located(
                        t,
                        map_offset(map, e.offset),
                        format!("rule '{}': {}", r.name, e.kind),
                    ));
                }
            };
            let (output, out_warnings) =
                OutputFormat::compile(&r.output).map_err(|e| LoadError::Rules {
                    file: r.file.to_string(),
                    line: r.line,
                    column: 1,
                    message: format!("rule '{}': output: {e}", r.name),
                })?;
            for w in out_warnings {
                self.warnings.push(Warning {
                    file: r.file.to_string(),
                    line: r.line,
                    message: format!("rule '{}': {w}", r.name),
                });
            }
            let mut unknown_types: Vec<String> = c.info.unknown_types.into_iter().collect();
            unknown_types.sort();
            rules.push(Rule::new(RuleParts {
                name: r.name.clone(),
                desc: r.desc.clone(),
                condition: cond.text.clone(),
                output_text: r.output.clone(),
                priority: r.priority,
                tags: r.tags.clone(),
                enabled: r.enabled,
                action: r.action,
                dry_run: r.dry_run,
                file: r.file.to_string(),
                line: r.line,
                node,
                output,
                unknown_types,
            }));
        }
        // Macros used only by other macros count as used.
        let mut frontier: Vec<String> = macro_used.iter().cloned().collect();
        while let Some(m) = frontier.pop() {
            if let Some((tree, _)) = parsed_macros.get(&m) {
                let mut inner = HashSet::new();
                collect_macro_refs(tree, &parsed_macros, &mut inner);
                for i in inner {
                    if macro_used.insert(i.clone()) {
                        frontier.push(i);
                    }
                }
            }
        }
        for mac in &self.macros {
            if !macro_used.contains(&mac.name) {
                self.warnings.push(Warning {
                    file: mac.file.to_string(),
                    line: mac.line,
                    message: format!("macro '{}' is not used", mac.name),
                });
            }
        }
        for (i, l) in self.lists.iter().enumerate() {
            let used_by_list = self.lists.iter().any(|o| o.items.contains(&l.name));
            if !list_used[i] && !used_by_list {
                self.warnings.push(Warning {
                    file: l.file.to_string(),
                    line: l.line,
                    message: format!("list '{}' is not used", l.name),
                });
            }
        }
        Ok(rules)
    }
}

/// The parts the loader hands to `Rule::new`.
pub struct RuleParts {
    pub name: String,
    pub desc: String,
    pub condition: String,
    pub output_text: String,
    pub priority: Priority,
    pub tags: Vec<String>,
    pub enabled: bool,
    pub action: Action,
    pub dry_run: bool,
    pub file: String,
    pub line: usize,
    pub node: Node,
    pub output: OutputFormat,
    pub unknown_types: Vec<String>,
}

struct MacroTable<'a>(&'a HashMap<String, (Expr, usize)>);

impl Macros for MacroTable<'_> {
    fn get(&self, name: &str) -> Option<(&Expr, usize)> {
        self.0.get(name).map(|(e, s)| (e, *s))
    }
}

fn collect_macro_refs(e: &Expr, known: &HashMap<String, (Expr, usize)>, out: &mut HashSet<String>) {
    match e {
        Expr::And(v) | Expr::Or(v) => v.iter().for_each(|x| collect_macro_refs(x, known, out)),
        Expr::Not(x) => collect_macro_refs(x, known, out),
        Expr::Macro { name, .. } => {
            if known.contains_key(name) {
                out.insert(name.clone());
            }
        }
        Expr::Check(_) => {}
    }
}

fn check_macro_cycles(
    macros: &[MacroDef],
    parsed: &HashMap<String, (Expr, usize)>,
    sources: &[(Text, OffsetMap)],
) -> Result<(), LoadError> {
    // Depth-first search with colours: 1 = on the stack, 2 = done.
    let mut colour: HashMap<&str, u8> = HashMap::new();
    fn visit<'a>(
        name: &'a str,
        parsed: &'a HashMap<String, (Expr, usize)>,
        colour: &mut HashMap<&'a str, u8>,
    ) -> Option<String> {
        match colour.get(name) {
            Some(2) => return None,
            Some(1) => return Some(name.to_string()),
            _ => {}
        }
        colour.insert(name, 1);
        if let Some((tree, _)) = parsed.get(name) {
            let mut refs = HashSet::new();
            collect_macro_refs(tree, parsed, &mut refs);
            for r in refs {
                let key = parsed.get_key_value(&r).map(|(k, _)| k.as_str())?;
                if let Some(c) = visit(key, parsed, colour) {
                    return Some(c);
                }
            }
        }
        colour.insert(name, 2);
        None
    }
    for m in macros {
        if let Some(cycle) = visit(m.name.as_str(), parsed, &mut colour) {
            let src = parsed.get(&cycle).map(|(_, s)| *s).unwrap_or(0);
            let t = sources.get(src).map(|s| s.0.clone()).unwrap_or_default();
            return Err(located(
                &t,
                0,
                format!("macro '{cycle}' refers to itself (directly or through other macros)"),
            ));
        }
    }
    Ok(())
}

fn located(t: &Text, offset: usize, message: String) -> LoadError {
    let (file, line, column) = t.position(offset);
    LoadError::Rules {
        file: file.to_string(),
        line,
        column,
        message,
    }
}

fn quote_item(it: &str) -> String {
    let quoted = (it.starts_with('"') && it.ends_with('"') && it.len() > 1)
        || (it.starts_with('\'') && it.ends_with('\'') && it.len() > 1);
    if it.contains(' ') && !quoted {
        format!("\"{it}\"")
    } else {
        it.to_string()
    }
}

/// Offset map of a substitution: for each byte of the new text, the offset in the old one.
type OffsetMap = Vec<usize>;

fn map_offset(map: &OffsetMap, offset: usize) -> usize {
    map.get(offset)
        .copied()
        .or_else(|| map.last().copied())
        .unwrap_or(0)
}

/// Falco's textual list substitution (rule_loader_compiler.cpp, resolve_list), in definition
/// order of the lists.
fn substitute_lists(
    cond: &str,
    lists: &[(String, Vec<String>)],
    used: &mut [bool],
) -> (String, OffsetMap) {
    const BLANKS: &[u8] = b" \t\n\r";
    const DELIMS: &[u8] = b" \t\n\r(),=";
    let mut s = cond.to_string();
    let mut map: OffsetMap = (0..=cond.len()).collect();
    for (li, (name, items)) in lists.iter().enumerate() {
        if name.is_empty() || !s.contains(name.as_str()) {
            continue;
        }
        let mut from = 0usize;
        while let Some(found) = s.get(from..).and_then(|rest| rest.find(name.as_str())) {
            let mut start = from + found;
            let mut end = start + name.len();
            let b = s.as_bytes();
            let ok_left = start == 0 || DELIMS.contains(&b[start - 1]);
            let ok_right = end >= b.len() || DELIMS.contains(&b[end]);
            if !(ok_left && ok_right) {
                from = start + 1;
                continue;
            }
            while start > 0 && BLANKS.contains(&b[start - 1]) {
                start -= 1;
            }
            while end < b.len() && BLANKS.contains(&b[end]) {
                end += 1;
            }
            let sub = items.join(", ");
            if sub.is_empty() {
                if start > 0 && b[start - 1] == b',' {
                    start -= 1;
                } else if end < b.len() && b[end] == b',' {
                    end += 1;
                }
            }
            let mut new = String::with_capacity(s.len() + sub.len() + 2);
            let mut new_map = Vec::with_capacity(map.len() + sub.len() + 2);
            let origin = map[start.min(map.len() - 1)];
            new.push_str(&s[..start]);
            new_map.extend_from_slice(&map[..start]);
            if start > 0 {
                new.push(' ');
                new_map.push(origin);
            }
            new.push_str(&sub);
            new.push(' ');
            new_map.extend(std::iter::repeat_n(origin, sub.len() + 1));
            let resume = new.len();
            new.push_str(&s[end..]);
            new_map.extend_from_slice(&map[end..]);
            s = new;
            map = new_map;
            used[li] = true;
            from = resume;
        }
    }
    (s, map)
}

fn parse_exception(ctx: &Ctx<'_>, rule: &str, e: &Y) -> Result<Exception, LoadError> {
    let err = |m: String| ctx.key_err("exceptions", format!("rule '{rule}': exception {m}"));
    let name = e
        .get("name")
        .and_then(scalar_string)
        .ok_or_else(|| err("needs a name".into()))?;
    let values = match e.get("values") {
        None | Some(Y::Null) => Vec::new(),
        Some(Y::Sequence(v)) => v.clone(),
        Some(_) => return Err(err(format!("'{name}': 'values' must be a list"))),
    };
    Ok(Exception {
        name,
        fields: e.get("fields").cloned().unwrap_or(Y::Null),
        comps: e.get("comps").cloned().unwrap_or(Y::Null),
        values,
    })
}

fn quote_value(v: &str) -> String {
    let escaped = v.replace('\\', "\\\\").replace('"', "\\\"");
    format!("\"{escaped}\"")
}

fn value_text(v: &Y, comp: &str) -> String {
    let list_op = matches!(comp, "in" | "pmatch" | "intersects");
    match v {
        Y::Sequence(items) => {
            let inner: Vec<String> = items
                .iter()
                .filter_map(scalar_string)
                .map(|s| quote_value(&s))
                .collect();
            format!("({})", inner.join(", "))
        }
        other => {
            let s = scalar_string(other).unwrap_or_default();
            if list_op {
                // A list name (substituted later) or a parenthesised list.
                if s.starts_with('(') {
                    s
                } else {
                    format!("({s})")
                }
            } else {
                quote_value(&s)
            }
        }
    }
}

/// `(f1 op1 v1 and f2 op2 v2) or ...` for all exceptions, or None when none has values.
fn exceptions_text(exc: &[Exception]) -> Option<String> {
    let mut parts = Vec::new();
    for e in exc {
        if e.values.is_empty() {
            continue;
        }
        match &e.fields {
            Y::Sequence(fields) => {
                let fields: Vec<String> = fields.iter().filter_map(scalar_string).collect();
                let comps: Vec<String> = match &e.comps {
                    Y::Sequence(c) => c.iter().filter_map(scalar_string).collect(),
                    _ => vec!["=".into(); fields.len()],
                };
                for row in &e.values {
                    let Y::Sequence(vals) = row else { continue };
                    let terms: Vec<String> = fields
                        .iter()
                        .zip(vals)
                        .enumerate()
                        .map(|(i, (f, v))| {
                            let c = comps.get(i).map(String::as_str).unwrap_or("=");
                            format!("{f} {c} {}", value_text(v, c))
                        })
                        .collect();
                    if !terms.is_empty() {
                        parts.push(format!("({})", terms.join(" and ")));
                    }
                }
            }
            other => {
                let Some(f) = scalar_string(other) else {
                    continue;
                };
                let c = scalar_string(&e.comps)
                    .filter(|c| !c.is_empty())
                    .unwrap_or_else(|| "in".into());
                let vals: Vec<String> = e
                    .values
                    .iter()
                    .filter_map(scalar_string)
                    .map(|s| quote_value(&s))
                    .collect();
                parts.push(format!("{f} {c} ({})", vals.join(", ")));
            }
        }
    }
    (!parts.is_empty()).then(|| parts.join(" or "))
}

/// Files to load for one path: the file, or a directory's *.yaml / *.yml sorted by name.
pub fn expand_path(p: &Path) -> Result<Vec<PathBuf>, LoadError> {
    let meta = std::fs::metadata(p).map_err(|source| LoadError::Io {
        path: p.to_path_buf(),
        source,
    })?;
    if !meta.is_dir() {
        return Ok(vec![p.to_path_buf()]);
    }
    let mut files: Vec<PathBuf> = std::fs::read_dir(p)
        .map_err(|source| LoadError::Io {
            path: p.to_path_buf(),
            source,
        })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|f| f.extension().is_some_and(|x| x == "yaml" || x == "yml") && f.is_file())
        .collect();
    files.sort();
    Ok(files)
}

/// Names of the fields a set of accessors reads, deduplicated.
pub fn field_names(node: &Node) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    node.visit_accessors(&mut |a| {
        out.insert(a.display.clone());
    });
    out
}
