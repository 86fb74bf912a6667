//! Falco's `append_output` configuration: text and fields added to the output of a subset of
//! the rules, so that every alert can carry, say, the container and pod it came from without
//! editing the rules files (Falco's own rules name neither).
//!
//! ```yaml
//! append_output:
//!   - suggested_output: true          # container_id=%container.id container_name=... (below)
//!   - match: {source: syscall, tags: [container], rule: Some rule}
//!     extra_output: "on CPU %evt.cpu"
//! ```
//!
//! `suggested_output` adds what Falco's container plugin suggests, the fields that Falco's
//! shipped falco.yaml (`append_output: [{suggested_output: true}]`) puts on every alert.
//! Falco's `extra_fields` (JSON-only fields) is not supported yet: it is refused, rather than
//! silently doing nothing.

use serde::Deserialize;

use crate::config::{Config, ConfigError};
use crate::rules::{Engine, Rule};

/// The output Falco's container plugin suggests, in its order and with its key names.
pub const SUGGESTED_OUTPUT: &str = "container_id=%container.id container_name=%container.name \
     container_image_repository=%container.image.repository \
     container_image_tag=%container.image.tag k8s_pod_name=%k8s.pod.name \
     k8s_ns_name=%k8s.ns.name";

/// One entry of the list, applied in order.
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct AppendEntry {
    #[serde(rename = "match")]
    pub matching: Match,
    pub extra_output: Option<String>,
    pub extra_fields: Option<serde_yaml::Value>,
    pub suggested_output: bool,
}

/// Which rules an entry applies to: all of the given conditions hold (none given: every rule).
#[derive(Clone, Debug, Default, Deserialize, PartialEq)]
#[serde(default, deny_unknown_fields)]
pub struct Match {
    pub source: Option<String>,
    /// The rule has every one of these tags.
    pub tags: Vec<String>,
    pub rule: Option<String>,
}

impl Match {
    fn selects(&self, r: &Rule) -> bool {
        self.source.as_deref().is_none_or(|s| s == r.source)
            && self.rule.as_deref().is_none_or(|n| n == &*r.name)
            && self.tags.iter().all(|t| r.tags.contains(t))
    }
}

/// The `append_output` entries of a configuration (none when the key is absent).
pub fn entries(cfg: &Config) -> Result<Vec<AppendEntry>, ConfigError> {
    let list: Vec<AppendEntry> = cfg.section("append_output")?.unwrap_or_default();
    for (i, e) in list.iter().enumerate() {
        if e.extra_fields.is_some() {
            return Err(ConfigError::Invalid {
                key: format!("append_output[{i}].extra_fields"),
                reason:
                    "not supported yet: use extra_output (its fields appear in output_fields too)"
                        .into(),
            });
        }
    }
    Ok(list)
}

/// Applies the entries to the loaded rules, in order.
pub fn apply(engine: &mut Engine, entries: &[AppendEntry]) -> Result<(), String> {
    for e in entries {
        if e.suggested_output {
            engine.append_output(SUGGESTED_OUTPUT, |r| e.matching.selects(r))?;
        }
        if let Some(extra) = e.extra_output.as_deref().filter(|x| !x.trim().is_empty()) {
            engine.append_output(extra, |r| e.matching.selects(r))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::LoadOptions;

    const RULES: &str = r#"
- rule: Shell
  desc: d
  condition: evt.type = execve and proc.name = sh
  output: shell %proc.name
  priority: NOTICE
  tags: [container, shell]
- rule: Open
  desc: d
  condition: evt.type = openat
  output: "open %fd.name\n"
  priority: NOTICE
  tags: [file]
"#;

    fn engine() -> Engine {
        Engine::load_str("t.yaml", RULES, &LoadOptions::default())
            .expect("rules load")
            .0
    }

    fn config(yaml: &str) -> Config {
        Config::from_yaml_str(yaml).expect("config parses").0
    }

    fn output<'a>(e: &'a Engine, name: &str) -> &'a str {
        e.rules()
            .iter()
            .find(|r| &*r.name == name)
            .map(|r| r.output.as_str())
            .unwrap_or("")
    }

    #[test]
    fn absent_key_changes_nothing() {
        let cfg = config("{}");
        let list = entries(&cfg).unwrap();
        assert!(list.is_empty());
        let mut e = engine();
        apply(&mut e, &list).unwrap();
        assert_eq!(output(&e, "Shell"), "shell %proc.name");
    }

    #[test]
    fn suggested_output_adds_the_container_fields_to_every_rule() {
        let cfg = config("append_output:\n  - suggested_output: true\n");
        let mut e = engine();
        apply(&mut e, &entries(&cfg).unwrap()).unwrap();
        assert_eq!(
            output(&e, "Shell"),
            format!("shell %proc.name {SUGGESTED_OUTPUT}")
        );
        assert_eq!(
            output(&e, "Open"),
            format!("open %fd.name {SUGGESTED_OUTPUT}")
        );
    }

    #[test]
    fn match_selects_by_tags_rule_and_source() {
        let cfg = config(
            "append_output:\n  - match: {tags: [container, shell]}\n    extra_output: 'cpu=%evt.cpu'\n  - match: {rule: Open, source: syscall}\n    extra_output: 'dir=%fd.directory'\n  - match: {source: k8s_audit}\n    extra_output: never\n  - match: {tags: [container, file]}\n    extra_output: never\n",
        );
        let mut e = engine();
        apply(&mut e, &entries(&cfg).unwrap()).unwrap();
        assert_eq!(output(&e, "Shell"), "shell %proc.name cpu=%evt.cpu");
        assert_eq!(output(&e, "Open"), "open %fd.name dir=%fd.directory");
    }

    #[test]
    fn bad_entries_are_refused_with_their_key() {
        let err = entries(&config(
            "append_output:\n  - extra_fields: [evt.hostname]\n",
        ))
        .unwrap_err();
        assert!(
            err.to_string().contains("append_output[0].extra_fields"),
            "{err}"
        );
        let err = entries(&config("append_output:\n  - sugested_output: true\n")).unwrap_err();
        assert!(err.to_string().contains("sugested_output"), "{err}");
        let cfg = config("append_output:\n  - extra_output: '%no.such.field'\n");
        let mut e = engine();
        let err = apply(&mut e, &entries(&cfg).unwrap()).unwrap_err();
        assert!(err.contains("no.such.field"), "{err}");
        assert_eq!(output(&e, "Shell"), "shell %proc.name", "nothing changed");
    }
}
