//! The syslog output against a real rsyslogd: its unix socket, UDP and TCP (octet counting).

mod output_support;

use std::sync::Arc;
use std::time::Duration;

use monitor::alert::Priority;
use monitor::config::Config;
use monitor::metrics::Metrics;
use monitor::output::Outputs;

use output_support::{Rsyslog, alert, metric, start_rsyslog, syslog_lines, wait_metric};

fn config(syslog: &str, extra: &str) -> Config {
    let (cfg, warnings) = Config::from_yaml_str(&format!(
        "stdout_output: {{enabled: false}}\nsyslog_output: {syslog}\n{extra}"
    ))
    .expect("valid test configuration");
    assert!(warnings.is_empty(), "{warnings:?}");
    cfg
}

/// Splits rsyslog's `input|facility|severity|hostname|app|procid|msgid|msg` line.
fn fields(line: &str) -> Vec<&str> {
    line.splitn(8, '|').collect()
}

async fn deliver_and_check(rs: &Rsyslog, cfg: Config, input: &str, json: bool) {
    let metrics = Arc::new(Metrics::new());
    let outputs = Outputs::start(&cfg, metrics.clone()).unwrap();
    let mut a = alert("Read sensitive file untrusted", 0);
    a.priority = Priority::Critical;
    outputs.send(a);
    let mut b = alert("Run shell untrusted", 1);
    b.priority = Priority::Debug;
    outputs.send(b);
    let lines = syslog_lines(rs, input, 2, Duration::from_secs(10)).await;
    assert_eq!(lines.len(), 2, "{input}: {:?}", rs.lines());
    let pid = std::process::id().to_string();
    let first = fields(&lines[0]);
    // facility local3 = 19; Falco's Critical is severity 2, Debug 7.
    assert_eq!(
        &first[1..7],
        &["19", "2", "test-host", "monitor", &pid, "alert"]
    );
    assert_eq!(fields(&lines[1])[2], "7");
    if json {
        let v: serde_json::Value = serde_json::from_str(first[7]).unwrap();
        assert_eq!(v["rule"], "Read sensitive file untrusted");
        assert_eq!(v["priority"], "Critical");
    } else {
        assert!(
            first[7].ends_with("Critical alert number 0 (proc.name=bash)"),
            "{}",
            first[7]
        );
    }
    assert_eq!(
        outputs.shutdown(Duration::from_secs(5)).await.total_lost(),
        0
    );
    assert_eq!(
        metric(
            &metrics.encode(),
            r#"monitor_output_sent_total{output="syslog"}"#
        ),
        Some(2.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_the_local_socket() {
    let Some(rs) = start_rsyslog() else { return };
    let cfg = config(
        &format!(
            "{{enabled: true, socket: {}, facility: local3}}",
            rs.socket.as_path().display()
        ),
        "",
    );
    deliver_and_check(&rs, cfg, "imuxsock", false).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_a_remote_server_over_udp() {
    let Some(rs) = start_rsyslog() else { return };
    let cfg = config(
        &format!(
            "{{enabled: true, facility: local3, remote: {{address: '127.0.0.1:{}', protocol: udp}}}}",
            rs.udp_port
        ),
        "json_output: true",
    );
    deliver_and_check(&rs, cfg, "imudp", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn to_a_remote_server_over_tcp_with_octet_counting() {
    let Some(rs) = start_rsyslog() else { return };
    let cfg = config(
        &format!(
            "{{enabled: true, facility: local3, remote: {{address: '127.0.0.1:{}', protocol: tcp}}}}",
            rs.tcp_port
        ),
        "json_output: true",
    );
    deliver_and_check(&rs, cfg, "imtcp", true).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_socket_counts_failures_and_recovers_when_it_appears() {
    let Some(rs) = start_rsyslog() else { return };
    let dir = tempfile::tempdir().unwrap();
    let link = dir.path().join("log");
    let cfg = config(
        &format!(
            "{{enabled: true, socket: {}, facility: local3}}",
            link.display()
        ),
        "",
    );
    let metrics = Arc::new(Metrics::new());
    let outputs = Outputs::start(&cfg, metrics.clone()).unwrap();
    outputs.send(alert("r", 0));
    wait_metric(
        &metrics,
        r#"monitor_output_failed_total{output="syslog"}"#,
        |v| v == Some(1.0),
        Duration::from_secs(5),
    )
    .await;
    // The socket appears (as when syslog starts after us): the next alert goes through.
    std::os::unix::fs::symlink(rs.socket.as_path(), &link).unwrap();
    outputs.send(alert("r", 1));
    let lines = syslog_lines(&rs, "imuxsock", 1, Duration::from_secs(10)).await;
    assert_eq!(lines.len(), 1);
    assert!(lines[0].contains("alert number 1"));
    outputs.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bsd_format_on_the_local_socket() {
    let Some(rs) = start_rsyslog() else { return };
    let cfg = config(
        &format!(
            "{{enabled: true, socket: {}, facility: daemon, format: rfc3164}}",
            rs.socket.as_path().display()
        ),
        "",
    );
    let outputs = Outputs::start(&cfg, Arc::new(Metrics::new())).unwrap();
    let mut a = alert("r", 7);
    a.priority = Priority::Error;
    outputs.send(a);
    let lines = syslog_lines(&rs, "imuxsock", 1, Duration::from_secs(10)).await;
    assert_eq!(lines.len(), 1, "{:?}", rs.lines());
    let f = fields(&lines[0]);
    let pid = std::process::id().to_string();
    // daemon = 3, Error = 3; the tag `monitor[PID]:` gives app-name and procid.
    assert_eq!(
        (f[1], f[2], f[4], f[5]),
        ("3", "3", "monitor", pid.as_str())
    );
    assert!(
        f[7].ends_with("Error alert number 7 (proc.name=bash)"),
        "{}",
        f[7]
    );
    outputs.shutdown(Duration::from_secs(5)).await;
}
