//! End-to-end: `monitor trace` against the real kernel shows what processes do, with the
//! values a user would check. The test process itself (or its children) performs each action,
//! and the test finds the event by pid.
//!
//! With the exit program on each syscall's own exit event (the default hook); `capture_raw`
//! runs the same cases on the raw `sys_exit` tracepoint.

const HOOK: &str = "syscall_tracepoints";

include!("capture_cases.rs");

/// Programs of type `prog_type` (BPF_PROG_TYPE_TRACEPOINT = 5, BPF_PROG_TYPE_TRACING = 26,
/// which BTF tracepoints are) that process `pid` holds.
fn programs_of_type(pid: u32, prog_type: u32) -> usize {
    let Ok(fds) = std::fs::read_dir(format!("/proc/{pid}/fdinfo")) else {
        return 0;
    };
    let want = prog_type.to_string();
    fds.filter_map(Result::ok)
        .filter_map(|e| std::fs::read_to_string(e.path()).ok())
        .filter(|info| {
            info.lines()
                .any(|l| l.split_whitespace().collect::<Vec<_>>() == ["prog_type:", &want])
        })
        .count()
}

/// The capture benchmark's floors: `bench-floor` holds one program that does nothing (or only
/// reads openat's path), of the type the hook takes, and no other, and lets it go on SIGTERM.
#[test]
fn bench_floors_hold_one_tracepoint_program_until_sigterm() {
    if !can_load_bpf() {
        return;
    }
    for (hook, on, prog_type) in [
        ("syscall_tracepoints", "sys_exit_openat", 5),
        ("raw_sys_exit", "the raw sys_exit", 26),
    ] {
        for (extra, what) in [
            (None, "do-nothing program"),
            (Some("--read-path"), "only reads openat's path"),
        ] {
            let mut args = vec!["bench-floor", "--hook", hook];
            args.extend(extra);
            let m = Monitor::start(&args);
            let says = format!("on {on}, ready");
            assert!(
                m.log.iter().any(|l| l.contains(what) && l.contains(&says)),
                "{:?}",
                m.log
            );
            assert_eq!(programs_of_type(m.pid(), prog_type), 1, "{args:?}");
            assert_eq!(programs_of_type(m.pid(), 31 - prog_type), 0, "{args:?}");
            let (status, took, _, log) = m.terminate(Duration::from_secs(10));
            assert!(
                status.is_some_and(|s| s.success()),
                "{args:?}: exit {status:?} after {took:?}: {log:?}"
            );
        }
    }
}
