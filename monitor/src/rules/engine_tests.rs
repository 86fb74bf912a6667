//! Loading Falco's default rules files, and loader semantics.

use std::path::PathBuf;

use super::*;

pub fn rules_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco-rules")
}

fn load(files: &[&str]) -> (Engine, Vec<Warning>) {
    let paths: Vec<PathBuf> = files.iter().map(|f| rules_dir().join(f)).collect();
    match Engine::load(&paths, &LoadOptions::default()) {
        Ok(x) => x,
        Err(e) => panic!("{files:?} failed to load: {e}"),
    }
}

#[test]
fn default_files_load() {
    for f in [
        "falco_rules.yaml",
        "falco-incubating_rules.yaml",
        "falco-sandbox_rules.yaml",
    ] {
        let (e, _) = load(&[f]);
        let report = e.check_report();
        let ok = report.iter().filter(|r| r.supported).count();
        eprintln!("{f}: {} rules, {ok} fully supported", report.len());
        for r in report.iter().filter(|r| !r.supported) {
            eprintln!(
                "  {}: {:?} {:?}",
                r.name, r.missing_fields, r.missing_event_types
            );
        }
    }
    let (e, _) = load(&[
        "falco_rules.yaml",
        "falco-incubating_rules.yaml",
        "falco-sandbox_rules.yaml",
    ]);
    assert_eq!(e.rules().len(), 25 + 31 + 37);
}

#[test]
fn stable_rules_are_all_supported() {
    let (e, _) = load(&["falco_rules.yaml"]);
    assert_eq!(e.rules().len(), 25);
    let bad: Vec<_> = e
        .check_report()
        .into_iter()
        .filter(|r| !r.supported)
        .collect();
    assert!(bad.is_empty(), "unsupported stable rules: {bad:?}");
}
