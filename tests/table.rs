//! End-to-end: the process table stays bounded. In a test binary of its own, because
//! 10,000 processes in a few seconds would crowd the other end-to-end tests' monitors.

use std::process::Command;
use std::time::Duration;

use e2e::{Monitor, can_load_bpf, n};
use serde_json::Value;

#[test]
fn ten_thousand_short_lived_processes_leave_the_table_no_larger() {
    if !can_load_bpf() {
        return;
    }
    // Its own monitor: it prints nothing (chroot is rare), and answers SIGUSR1 with stats.
    let mut m = Monitor::start(&["trace", "--types", "chroot"]);
    let table_size = |m: &mut Monitor| -> i64 {
        m.log.retain(|l| !l.contains("monitor: stats"));
        m.signal(libc::SIGUSR1);
        let line = m
            .wait_log(Duration::from_secs(10), "monitor: stats")
            .expect("a stats line after SIGUSR1");
        let json: Value =
            serde_json::from_str(line.split_once("stats ").map(|x| x.1).unwrap_or(""))
                .expect("stats are JSON");
        n(&json, "process_table").expect("process_table in stats")
    };
    let before = table_size(&mut m);
    for _ in 0..10_000 {
        let st = Command::new("/bin/true").status().expect("spawn /bin/true");
        assert!(st.success());
    }
    // Give the reader time to drain the last exits.
    std::thread::sleep(Duration::from_secs(2));
    let after = table_size(&mut m);
    let (_, log) = m.stop();
    let stats = log
        .iter()
        .rev()
        .find(|l| l.contains("monitor: stats"))
        .cloned()
        .unwrap_or_default();
    // Other processes on the machine come and go meanwhile; 10,000 leaked entries would not
    // hide in this margin.
    assert!(
        after <= before + 25,
        "table grew from {before} to {after} entries; {stats}"
    );
    assert!(
        stats.contains("\"ringbuf_full\":0"),
        "events were lost: {stats}"
    );
}
