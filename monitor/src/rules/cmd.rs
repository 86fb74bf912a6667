//! `monitor rules check|list`: validate rules files and say which rules the capture side can
//! fully serve, without starting the monitor.

use std::path::PathBuf;
use std::process::ExitCode;

use super::{Engine, LoadOptions};

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
}

#[derive(Debug, clap::Subcommand)]
pub enum RulesCommand {
    /// Load rules files (in order) and report errors and, per rule, whether every field it
    /// uses is produced by the capture side. Exits 1 on errors.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
        #[arg(long, value_enum, default_value = "text")]
        format: Format,
    },
    /// Load rules files and print the rules.
    List {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
}

pub fn run(cmd: RulesCommand) -> ExitCode {
    match cmd {
        RulesCommand::Check { files, format } => check(&files, format),
        RulesCommand::List { files } => list(&files),
    }
}

fn check(files: &[PathBuf], format: Format) -> ExitCode {
    let loaded = Engine::load(files, &LoadOptions::default());
    match format {
        Format::Json => println!("{}", check_json(&loaded)),
        Format::Text => match &loaded {
            Ok((engine, warnings)) => {
                for w in warnings {
                    eprintln!("warning: {w}");
                }
                let report = engine.check_report();
                for r in &report {
                    if r.supported {
                        println!("ok           {}", r.name);
                    } else {
                        let mut why = r.missing_fields.clone();
                        if !r.missing_event_types.is_empty() && why.is_empty() {
                            why.push(format!(
                                "no captured event type ({})",
                                r.missing_event_types.join(", ")
                            ));
                        }
                        println!("unsupported  {} (missing: {})", r.name, why.join(", "));
                    }
                }
                let ok = report.iter().filter(|r| r.supported).count();
                println!(
                    "{} rules loaded, {ok} fully supported, {} with fields the capture side does not provide",
                    report.len(),
                    report.len() - ok
                );
            }
            Err(e) => eprintln!("error: {e}"),
        },
    }
    if loaded.is_ok() {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// The `--format json` document: `{"rules": [{"name", "supported", "missing_fields",
/// "missing_event_types"}...], "errors": [...], "warnings": [...]}`.
pub fn check_json(
    loaded: &Result<(Engine, Vec<super::Warning>), super::LoadError>,
) -> serde_json::Value {
    let (rules, warnings, errors) = match loaded {
        Ok((engine, warnings)) => (
            engine.check_report(),
            warnings.iter().map(ToString::to_string).collect::<Vec<_>>(),
            Vec::new(),
        ),
        Err(e) => (Vec::new(), Vec::new(), vec![e.to_string()]),
    };
    serde_json::json!({
        "rules": rules,
        "errors": errors,
        "warnings": warnings,
    })
}

fn list(files: &[PathBuf]) -> ExitCode {
    match Engine::load(files, &LoadOptions::default()) {
        Ok((engine, _)) => {
            for r in engine.rules() {
                let types: Vec<&str> = r.event_types().iter().map(|t| t.name()).collect();
                println!(
                    "{}\t{}\t{}\t{}{}\t[{}]",
                    r.name,
                    r.priority,
                    if r.enabled { "enabled" } else { "disabled" },
                    match r.action {
                        crate::alert::Action::Kill => "kill",
                        crate::alert::Action::Alert => "alert",
                    },
                    if r.dry_run { " (dry run)" } else { "" },
                    types.join(",")
                );
            }
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_reports_support_and_errors() {
        let dir = super::super::engine_tests::rules_dir();
        let sandbox = dir.join("falco-sandbox_rules.yaml");
        let doc = check_json(&Engine::load(
            std::slice::from_ref(&sandbox),
            &LoadOptions::default(),
        ));
        let rules = doc["rules"].as_array().expect("rules array");
        assert_eq!(rules.len(), 37);
        let java = rules
            .iter()
            .find(|r| r["name"] == "Java Process Class File Download")
            .expect("rule present");
        assert_eq!(java["supported"], false);
        assert_eq!(java["missing_fields"], serde_json::json!(["evt.buffer"]));
        assert_eq!(doc["errors"], serde_json::json!([]));
        assert_eq!(
            run(RulesCommand::Check {
                files: vec![sandbox],
                format: Format::Json
            }),
            ExitCode::SUCCESS
        );

        let bad = std::env::temp_dir().join(format!("rules-check-{}.yaml", std::process::id()));
        std::fs::write(
            &bad,
            "- rule: r\n  desc: d\n  condition: proc.nme = x\n  output: o\n  priority: INFO\n",
        )
        .expect("temp file");
        let doc = check_json(&Engine::load(
            std::slice::from_ref(&bad),
            &LoadOptions::default(),
        ));
        let err = doc["errors"][0].as_str().unwrap_or_default().to_string();
        assert!(
            err.contains(":3:14: rule 'r': unknown field 'proc.nme'"),
            "{err}"
        );
        assert_eq!(
            run(RulesCommand::Check {
                files: vec![bad.clone()],
                format: Format::Text
            }),
            ExitCode::FAILURE
        );
        let _ = std::fs::remove_file(bad);
    }
}
