use std::path::PathBuf;
use std::sync::Arc;

use super::tables::{CgroupFacts, KernelTables};
use super::*;
use crate::container::{ContainerInfo, ContainerRuntime};
use crate::rules::{Engine, LoadOptions};

fn engine(yaml: &str) -> Engine {
    Engine::load_str("test.yaml", yaml, &LoadOptions::default())
        .expect("rules load")
        .0
}

fn kill_rule(condition: &str) -> String {
    format!(
        "- rule: r\n  desc: d\n  condition: {condition}\n  output: o %proc.name\n  priority: CRITICAL\n  action: kill\n"
    )
}

fn compile_one(condition: &str) -> Result<EnforcedRule, EnforceError> {
    let e = engine(&kill_rule(condition));
    compile(&e.rules()[0], 0)
}

#[test]
fn the_shipped_rules_compile_for_the_kernel() {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/monitor_rules.yaml");
    let (e, _) = Engine::load(&[path], &LoadOptions::default()).expect("shipped rules load");
    let rules = compile_all(&e).expect("every shipped enforcing rule compiles");
    assert_eq!(rules.len(), 2);
    let t = KernelTables::build(&rules, false);
    // The shell names become path suffixes; redis-server an ancestor name at depth 1 and any.
    assert!(t.names.iter().any(|(n, _)| n == "/sh"));
    let redis = *b"redis-server\0\0\0\0";
    assert!(t.comms.iter().any(|(slot, c, _)| *slot == 1 && *c == redis));
    assert!(
        t.comms
            .iter()
            .any(|(slot, c, _)| *slot == monitor_common::enforce::SLOT_ANY_ANCESTOR && *c == redis)
    );
    assert!(t.exes.iter().any(|(k, _)| k == b"/dev/shm/"));
    assert!(t.uses_containers());
}

#[test]
fn fields_the_kernel_cannot_check_are_refused_by_name() {
    let e = compile_one("evt.type = execve and fd.name startswith /etc").unwrap_err();
    assert!(e.reason.contains("fd.name"), "{e}");
    assert!(e.to_string().contains("rule 'r'"), "{e}");
}

#[test]
fn rules_on_other_syscalls_are_refused_with_the_types() {
    let e = compile_one("evt.type in (execve, openat) and proc.name = sh").unwrap_err();
    assert!(e.reason.contains("openat"), "{e}");
    assert!(e.reason.contains("execve/execveat"), "{e}");
}

#[test]
fn a_rule_that_would_kill_every_exec_is_refused() {
    let e = compile_one("evt.type = execve").unwrap_err();
    assert!(e.reason.contains("every exec"), "{e}");
    let e = compile_one("evt.type = execve and (proc.name = sh or evt.type = execve)").unwrap_err();
    assert!(e.reason.contains("every exec"), "{e}");
}

#[test]
fn transformers_and_unsupported_operators_are_refused() {
    let e = compile_one("evt.type = execve and tolower(proc.name) = sh").unwrap_err();
    assert!(e.reason.contains("transformers"), "{e}");
    let e = compile_one("evt.type = execve and proc.name contains sh").unwrap_err();
    assert!(e.reason.contains("proc.name"), "{e}");
}

#[test]
fn lists_are_one_fact_and_negations_stay_in_the_conjunction() {
    let r = compile_one(
        "evt.type = execve and proc.name in (sh, bash) and not proc.pname in (sshd, login)",
    )
    .expect("compiles");
    assert_eq!(r.conjs.len(), 1);
    let c = &r.conjs[0];
    assert!(c.on_execve && !c.on_execveat);
    assert_eq!(c.lits.len(), 2);
    assert!(
        c.lits
            .iter()
            .any(|l| l.negated && matches!(&l.atom, Atom::Ancestor(Some(1), n) if n.len() == 2))
    );
}

#[test]
fn a_longer_path_prefix_carries_the_shorter_ones_bits() {
    let r = compile_one(
        "evt.type = execve and (proc.exepath startswith /tmp/ or proc.exepath startswith /tmp/a/)",
    )
    .expect("compiles");
    let t = KernelTables::build(&[r], false);
    let bits = |k: &[u8]| t.exes.iter().find(|(key, _)| key == k).map(|(_, b)| *b);
    let short = bits(b"/tmp/").expect("/tmp/ entry");
    let long = bits(b"/tmp/a/").expect("/tmp/a/ entry");
    assert_eq!(
        long & short,
        short,
        "the /tmp/a/ entry must include /tmp/'s bit"
    );
}

#[test]
fn container_predicates_become_facts_of_the_containers_cgroup() {
    let r =
        compile_one("evt.type = execve and container.image.repository = redis and proc.name = sh")
            .expect("compiles");
    let t = KernelTables::build(&[r], false);
    let mut redis = ContainerInfo::id_only("0123456789abcdef", ContainerRuntime::Docker);
    redis.image_repository = Some("redis".into());
    let redis = Arc::new(redis);
    let mut nginx = ContainerInfo::id_only("fedcba9876543210", ContainerRuntime::Docker);
    nginx.image_repository = Some("nginx".into());
    let nginx = Arc::new(nginx);
    assert_ne!(t.container_bits(&redis), 0);
    assert_eq!(t.container_bits(&nginx), 0);
    assert_eq!(t.container_bits(&ContainerInfo::host()), 0);

    let mut facts = CgroupFacts::default();
    assert!(
        facts.update(&t, 7, &redis).is_some(),
        "first sight is pushed"
    );
    assert!(
        facts.update(&t, 7, &redis).is_none(),
        "unchanged is not pushed again"
    );
}

#[test]
fn dry_run_reaches_the_kernel_entries() {
    let mut r = compile_one("evt.type = execve and proc.name = sh").expect("compiles");
    let t = KernelTables::build(std::slice::from_ref(&r), true);
    assert!(
        t.conjs
            .iter()
            .all(|c| c.flags & monitor_common::enforce::DRY_RUN != 0)
    );
    r.dry_run = true;
    let t = KernelTables::build(&[r], false);
    assert!(
        t.conjs
            .iter()
            .all(|c| c.flags & monitor_common::enforce::DRY_RUN != 0)
    );
}
