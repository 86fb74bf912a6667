//! The file output, per-rule rate limiting, and reloads (file changes and SIGHUP) keeping the
//! old configuration when the new one is broken.

mod output_support;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use monitor::config::Config;
use monitor::metrics::Metrics;
use monitor::output::Outputs;
use monitor::reload::{LiveConfig, ReloadReason, Reloader};

use output_support::{alert, lines, metric, wait_lines};

/// How long a file output gets to write what it was sent.
const FILE_WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn json_lines_and_reopen_after_logrotate() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.json");
    let (cfg, _) = Config::from_yaml_str(&format!(
        "json_output: true\nstdout_output: {{enabled: false}}\nfile_output: {{enabled: true, keep_alive: true, filename: {}}}\n",
        file.display()
    ))
    .unwrap();
    let outputs = Outputs::start(&cfg, Arc::new(Metrics::new())).unwrap();
    outputs.send(alert("r", 0));
    outputs.send(alert("r", 1));
    let got = wait_lines(&file, 2, FILE_WAIT).await;
    assert_eq!(got.len(), 2);
    let v: serde_json::Value = serde_json::from_str(&got[1]).unwrap();
    assert_eq!(v["output_fields"]["n"], 1);
    // logrotate moves the file away, then sends SIGHUP (reopen).
    let rotated = dir.path().join("events.json.1");
    std::fs::rename(&file, &rotated).unwrap();
    outputs.send(alert("r", 2));
    assert_eq!(
        wait_lines(&rotated, 3, FILE_WAIT).await.len(),
        3,
        "still open: goes to the old file"
    );
    outputs.reopen();
    outputs.send(alert("r", 3));
    let fresh = wait_lines(&file, 1, FILE_WAIT).await;
    assert_eq!(fresh.len(), 1);
    assert!(fresh[0].contains("\"n\":3"));
    outputs.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn text_lines_without_keep_alive_follow_the_file_name() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.txt");
    let (cfg, _) = Config::from_yaml_str(&format!(
        "stdout_output: {{enabled: false}}\nfile_output: {{enabled: true, filename: {}}}\n",
        file.display()
    ))
    .unwrap();
    let outputs = Outputs::start(&cfg, Arc::new(Metrics::new())).unwrap();
    outputs.send(alert("r", 0));
    assert_eq!(wait_lines(&file, 1, FILE_WAIT).await.len(), 1);
    std::fs::rename(&file, dir.path().join("events.txt.1")).unwrap();
    outputs.send(alert("r", 1));
    let got = wait_lines(&file, 1, FILE_WAIT).await;
    assert_eq!(got.len(), 1);
    assert!(
        got[0].ends_with(": Warning alert number 1 (proc.name=bash)"),
        "{}",
        got[0]
    );
    outputs.shutdown(Duration::from_secs(5)).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unwritable_file_is_an_error_at_start() {
    let (cfg, _) = Config::from_yaml_str(
        "file_output: {enabled: true, filename: /nonexistent-dir/events.txt}\n",
    )
    .unwrap();
    let e = Outputs::start(&cfg, Arc::new(Metrics::new())).unwrap_err();
    assert!(e.to_string().starts_with("file_output.filename:"), "{e}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_limit_per_rule() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.json");
    // One token a minute: in this test, only the burst passes.
    let (cfg, _) = Config::from_yaml_str(&format!(
        "json_output: true\nstdout_output: {{enabled: false}}\nfile_output: {{enabled: true, filename: {}}}\noutputs: {{rate: 0.0166, max_burst: 5}}\n",
        file.display()
    ))
    .unwrap();
    let metrics = Arc::new(Metrics::new());
    let outputs = Outputs::start(&cfg, metrics.clone()).unwrap();
    for n in 0..20 {
        outputs.send(alert("noisy", n));
        if n < 3 {
            outputs.send(alert("quiet", 100 + n));
        }
    }
    outputs.shutdown(Duration::from_secs(5)).await;
    let got = lines(&file);
    let count = |rule: &str| {
        got.iter()
            .filter(|l| l.contains(&format!("\"rule\":\"{rule}\"")))
            .count()
    };
    assert_eq!(count("noisy"), 5);
    assert_eq!(count("quiet"), 3, "a noisy rule does not silence another");
    let text = metrics.encode();
    assert_eq!(
        metric(&text, r#"monitor_rate_limited_alerts_total{rule="noisy"}"#),
        Some(15.0)
    );
    assert_eq!(
        metric(&text, r#"monitor_rate_limited_alerts_total{rule="quiet"}"#),
        None
    );
    assert_eq!(
        metric(
            &text,
            r#"monitor_alerts_total{rule="noisy",priority="Warning"}"#
        ),
        Some(20.0)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_keeps_the_old_configuration_when_the_new_one_is_broken() {
    let dir = tempfile::tempdir().unwrap();
    let conf = dir.path().join("monitor.yaml");
    let (a, b) = (dir.path().join("a.txt"), dir.path().join("b.txt"));
    let write_conf = |target: &Path| {
        std::fs::write(
            &conf,
            format!(
                "stdout_output: {{enabled: false}}\nfile_output: {{enabled: true, filename: {}}}\n",
                target.display()
            ),
        )
        .unwrap()
    };
    write_conf(&a);
    let metrics = Arc::new(Metrics::new());
    let (mut live, _) = LiveConfig::load(Some(&conf), &[]).unwrap();
    let outputs = Outputs::start(&live.current(), metrics.clone()).unwrap();
    let mut reloader =
        Reloader::start(live.watched_paths(), Duration::from_millis(50), true).unwrap();
    tokio::time::sleep(Duration::from_millis(150)).await;

    // A broken file: the reload fails, says why, and alerts still go to a.txt.
    std::fs::write(&conf, "file_output: {enabled: true, filename: [oops}\n").unwrap();
    let why = tokio::time::timeout(Duration::from_secs(5), reloader.next())
        .await
        .unwrap();
    assert_eq!(why, ReloadReason::Changed(conf.clone()));
    let e = live.reload(&outputs, &metrics).unwrap_err().to_string();
    assert!(e.contains("not valid YAML"), "{e}");
    // A well-formed file with a bad value names the key.
    std::fs::write(&conf, "file_output: {enabled: true, keep_alive: often}\n").unwrap();
    let _ = tokio::time::timeout(Duration::from_secs(5), reloader.next())
        .await
        .unwrap();
    let e = live.reload(&outputs, &metrics).unwrap_err().to_string();
    assert!(e.contains("file_output.keep_alive"), "{e}");
    outputs.send(alert("r", 0));
    assert_eq!(wait_lines(&a, 1, FILE_WAIT).await.len(), 1);

    // A good file, applied on SIGHUP: alerts go to b.txt from then on.
    write_conf(&b);
    tokio::time::sleep(Duration::from_millis(200)).await;
    // The file change itself may already have queued a request; take it first.
    let _ = tokio::time::timeout(Duration::from_millis(300), reloader.next()).await;
    // SAFETY: sending a signal to our own process, whose SIGHUP the reloader handles.
    unsafe { libc::kill(libc::getpid(), libc::SIGHUP) };
    let why = tokio::time::timeout(Duration::from_secs(5), reloader.next())
        .await
        .unwrap();
    assert_eq!(why, ReloadReason::Signal);
    live.reload(&outputs, &metrics).unwrap();
    outputs.send(alert("r", 1));
    assert_eq!(wait_lines(&b, 1, FILE_WAIT).await.len(), 1);
    assert_eq!(lines(&a).len(), 1);

    // SIGUSR1 (Falco's "reopen output files") and SIGHUP together: neither hides the other.
    // SAFETY: as above.
    unsafe {
        libc::kill(libc::getpid(), libc::SIGUSR1);
        libc::kill(libc::getpid(), libc::SIGHUP);
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    let first = tokio::time::timeout(Duration::from_secs(5), reloader.next())
        .await
        .unwrap();
    let second = tokio::time::timeout(Duration::from_secs(5), reloader.next())
        .await
        .unwrap();
    assert_eq!(
        (first, second),
        (ReloadReason::Signal, ReloadReason::ReopenFiles)
    );

    outputs.shutdown(Duration::from_secs(5)).await;
    let text = metrics.encode();
    assert_eq!(
        metric(&text, r#"monitor_reloads_total{result="failure"}"#),
        Some(2.0)
    );
    assert_eq!(
        metric(&text, r#"monitor_reloads_total{result="success"}"#),
        Some(1.0)
    );
}
