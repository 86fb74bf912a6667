//! End-to-end: the rules commands of the binary, as a user runs them. No root needed.

use std::path::PathBuf;
use std::process::Command;

use e2e::{TempDir, monitor_bin};
use serde_json::Value;

fn repo(p: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("..").join(p)
}

#[test]
fn rules_check_reports_every_falco_stable_rule_as_supported() {
    let out = Command::new(monitor_bin())
        .args(["rules", "check", "--format", "json"])
        .arg(repo("rules/falco_rules.yaml"))
        .output()
        .expect("run monitor rules check");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let doc: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    let rules = doc["rules"].as_array().expect("rules array");
    assert_eq!(rules.len(), 25);
    for r in rules {
        assert_eq!(r["supported"], true, "{r}");
        assert_eq!(r["missing_fields"].as_array().map(Vec::len), Some(0), "{r}");
    }
    assert_eq!(doc["errors"].as_array().map(Vec::len), Some(0));
}

#[test]
fn rules_check_names_file_line_and_column_of_a_mistake() {
    let dir = TempDir::new("cli");
    let f = dir.0.join("broken.yaml");
    std::fs::write(
        &f,
        "- rule: ok\n  desc: d\n  condition: evt.type = execve\n  output: o\n  priority: INFO\n\
         - rule: broken\n  desc: d\n  condition: evt.type = execve and proc.nmae = bash\n  output: o\n  priority: INFO\n",
    )
    .expect("write rules");
    let out = Command::new(monitor_bin())
        .args(["rules", "check"])
        .arg(&f)
        .output()
        .expect("run monitor rules check");
    assert_eq!(out.status.code(), Some(1));
    let all = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    let want = format!("{}:8:", f.display());
    assert!(all.contains(&want), "no {want} in: {all}");
    assert!(
        all.contains("proc.nmae") && all.contains("proc.name"),
        "{all}"
    );
}

#[test]
fn rules_list_prints_the_loaded_rules() {
    let out = Command::new(monitor_bin())
        .args(["rules", "list"])
        .arg(repo("rules/monitor_rules.yaml"))
        .output()
        .expect("run monitor rules list");
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Shell spawned by Redis"), "{text}");
    assert!(
        text.contains("Execution from temporary directory in container"),
        "{text}"
    );
}
