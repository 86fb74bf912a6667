//! End-to-end: an idle daemon stays idle. With nothing to read, the ring-buffer reader goes to
//! sleep and asks the kernel to wake it with the next record, instead of looking every 10 ms
//! (some 380 context switches a second across the daemon's threads, measured before). The
//! first event after the quiet spell must still be reported.
//!
//! Its own test binary, so that no other test's processes make events during the quiet spell.

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use e2e::{Monitor, TempDir, can_load_bpf, s};

/// The daemon's voluntary context switches, over all its threads.
fn context_switches(pid: u32) -> u64 {
    let mut total = 0;
    let tasks = std::fs::read_dir(format!("/proc/{pid}/task")).expect("the daemon's tasks");
    for t in tasks.flatten() {
        let Ok(status) = std::fs::read_to_string(t.path().join("status")) else {
            continue; // a thread that just ended
        };
        total += status
            .lines()
            .find_map(|l| l.strip_prefix("voluntary_ctxt_switches:"))
            .and_then(|v| v.trim().parse::<u64>().ok())
            .unwrap_or(0);
    }
    total
}

#[test]
fn an_idle_daemon_sleeps_and_the_next_exec_still_alerts() {
    if !can_load_bpf() {
        return;
    }
    let dir = TempDir::new("idle");
    let marker = dir.0.join("e2e-idle-mark");
    std::fs::copy("/bin/true", &marker).expect("copy /bin/true");
    let rules = dir.0.join("idle.yaml");
    std::fs::write(
        &rules,
        "- rule: Idle marker ran\n  desc: d\n  condition: evt.type in (execve, execveat) and proc.name = e2e-idle-mark\n  output: idle marker ran (%proc.cmdline)\n  priority: WARNING\n",
    )
    .expect("write rules");
    let mut m = Monitor::run_json(&rules, &[]);
    // Past start-up (the first reload poll, the Docker probe) and the reader's 100 ms of
    // empty looks.
    std::thread::sleep(Duration::from_secs(2));
    let spell = Duration::from_secs(4);
    let before = context_switches(m.pid());
    std::thread::sleep(spell);
    let switches = context_switches(m.pid()) - before;
    let per_s = switches as f64 / spell.as_secs_f64();
    // Awake, the 10 ms tick alone makes ~100 a second on the reader's thread, and as many
    // again on the runtime's; asleep, what is left is the daemon's slow timers (reload poll,
    // stats) and whatever the machine's other processes make it capture.
    assert!(
        per_s < 50.0,
        "an idle daemon switched context {switches} times in {spell:?} ({per_s:.0}/s): the reader does not sleep"
    );
    fire(&marker, "after-the-quiet-spell");
    let alert = m
        .wait_json(Duration::from_secs(20), |v| {
            s(v, "rule") == "Idle marker ran"
        })
        .expect("the exec after the quiet spell alerts");
    assert!(
        s(&alert, "output").contains("after-the-quiet-spell"),
        "{alert}"
    );
}

fn fire(path: &Path, arg: &str) {
    let st = Command::new(path)
        .arg(arg)
        .status()
        .expect("run the marker");
    assert!(st.success(), "{}: {st}", path.display());
}
