//! The webhook output against a real HTTP(S) server on 127.0.0.1.

mod output_support;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use monitor::config::Config;
use monitor::metrics::Metrics;
use monitor::output::Outputs;

use output_support::{HttpReceiver, alert, free_port, make_pki, metric, wait_lines, wait_metric};

fn config(yaml: &str) -> Config {
    let (cfg, warnings) = Config::from_yaml_str(yaml).expect("valid test configuration");
    assert!(warnings.is_empty(), "{warnings:?}");
    cfg
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn posts_falco_json_that_falcosidekick_reads_with_headers_and_token() {
    let rx = HttpReceiver::start(Duration::ZERO).await;
    let dir = tempfile::tempdir().unwrap();
    let token = dir.path().join("token");
    std::fs::write(&token, "s3cret-token\n").unwrap();
    let cfg = config(&format!(
        r#"
stdout_output: {{enabled: false}}
http_output:
  enabled: true
  url: "{url}"
  user_agent: "monitor-test/1"
  headers: {{X-Cluster: prod-eu, X-Team: sec}}
  token_file: {token}
"#,
        url = rx.url("http"),
        token = token.display()
    ));
    let metrics = Arc::new(Metrics::new());
    let outputs = Outputs::start(&cfg, metrics.clone()).unwrap();
    for n in 0..3 {
        outputs.send(alert("Write below etc", n));
    }
    let got = rx.wait_for(3, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 3);
    for (n, r) in got.iter().enumerate() {
        let b = &r.body;
        for key in [
            "time",
            "rule",
            "priority",
            "output",
            "output_fields",
            "tags",
            "source",
            "hostname",
        ] {
            assert!(b.get(key).is_some(), "missing {key} in {b}");
        }
        assert_eq!(b["rule"], "Write below etc");
        assert_eq!(b["priority"], "Warning");
        assert_eq!(b["source"], "syscall");
        assert_eq!(b["hostname"], "test-host");
        assert_eq!(b["output_fields"]["n"], n as u64);
        assert_eq!(b["tags"], serde_json::json!(["test", "ops"]));
        // Falcosidekick parses `time` as RFC 3339.
        assert!(
            b["time"]
                .as_str()
                .unwrap()
                .starts_with("2023-11-14T22:13:20.0000000")
        );
        assert!(
            b["output"]
                .as_str()
                .unwrap()
                .contains("Warning alert number")
        );
        let h = &r.headers;
        assert_eq!(h["content-type"], "application/json");
        assert_eq!(h["authorization"], "Bearer s3cret-token");
        assert_eq!(h["x-cluster"], "prod-eu");
        assert_eq!(h["x-team"], "sec");
        assert_eq!(h["user-agent"], "monitor-test/1");
    }
    // A rotated token file is picked up without a reload.
    std::fs::write(&token, "rotated").unwrap();
    outputs.send(alert("Write below etc", 3));
    let got = rx.wait_for(4, Duration::from_secs(10)).await;
    assert_eq!(got[3].headers["authorization"], "Bearer rotated");
    assert_eq!(
        outputs.shutdown(Duration::from_secs(5)).await.total_lost(),
        0
    );
    let text = metrics.encode();
    assert_eq!(
        metric(&text, r#"monitor_output_sent_total{output="webhook"}"#),
        Some(4.0)
    );
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn token_from_the_environment() {
    let rx = HttpReceiver::start(Duration::ZERO).await;
    // SAFETY: a variable of this test's own, set before any thread reads it.
    unsafe { std::env::set_var("MONITOR_TEST_WEBHOOK_TOKEN", "from-env") };
    let cfg = config(&format!(
        "stdout_output: {{enabled: false}}\nhttp_output: {{enabled: true, url: '{}', token_env: MONITOR_TEST_WEBHOOK_TOKEN}}\n",
        rx.url("http")
    ));
    let outputs = Outputs::start(&cfg, Arc::new(Metrics::new())).unwrap();
    outputs.send(alert("r", 0));
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got[0].headers["authorization"], "Bearer from-env");
    outputs.shutdown(Duration::from_secs(5)).await;
    // A variable that is not set stops the output from starting, naming the setting.
    let cfg = config(&format!(
        "stdout_output: {{enabled: false}}\nhttp_output: {{enabled: true, url: '{}', token_env: MONITOR_TEST_UNSET_VARIABLE}}\n",
        rx.url("http")
    ));
    let e = Outputs::start(&cfg, Arc::new(Metrics::new())).unwrap_err();
    assert!(e.to_string().starts_with("http_output.token_env:"), "{e}");
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn https_with_a_private_ca() {
    let pki = make_pki();
    let rx = HttpReceiver::start_tls(&pki.server_cert, &pki.server_key).await;
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("ca.pem");
    std::fs::write(&ca, &pki.ca_pem).unwrap();
    // Without the CA the server's certificate is refused: nothing arrives, and it counts.
    let metrics = Arc::new(Metrics::new());
    let cfg = config(&format!(
        "stdout_output: {{enabled: false}}\nhttp_output: {{enabled: true, url: '{}', max_retries: 0}}\n",
        rx.url("https")
    ));
    let outputs = Outputs::start(&cfg, metrics.clone()).unwrap();
    outputs.send(alert("r", 0));
    assert_eq!(
        outputs.shutdown(Duration::from_secs(10)).await.total_lost(),
        0
    );
    assert_eq!(
        metric(
            &metrics.encode(),
            r#"monitor_output_failed_total{output="webhook"}"#
        ),
        Some(1.0)
    );
    assert_eq!(rx.count(), 0);
    // With ca_cert it goes through.
    let metrics = Arc::new(Metrics::new());
    let cfg = config(&format!(
        "stdout_output: {{enabled: false}}\nhttp_output: {{enabled: true, url: '{}', ca_cert: {}}}\n",
        rx.url("https"),
        ca.display()
    ));
    let outputs = Outputs::start(&cfg, metrics.clone()).unwrap();
    outputs.send(alert("over TLS", 1));
    let got = rx.wait_for(1, Duration::from_secs(10)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["rule"], "over TLS");
    outputs.shutdown(Duration::from_secs(5)).await;
    assert_eq!(
        metric(
            &metrics.encode(),
            r#"monitor_output_sent_total{output="webhook"}"#
        ),
        Some(1.0)
    );
    // A CA file that holds no certificate is refused at start, naming the key.
    std::fs::write(&ca, "not a certificate").unwrap();
    let e = Outputs::start(&cfg, Arc::new(Metrics::new())).unwrap_err();
    assert!(e.to_string().starts_with("http_output.ca_cert:"), "{e}");
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_receiver_down_for_30_s_gets_every_queued_alert_when_it_comes_back() {
    const CAPACITY: usize = 20;
    const SENT: u64 = 60;
    let port = free_port();
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let cfg = config(&format!(
        r#"
stdout_output: {{enabled: false}}
outputs_queue: {{capacity: {CAPACITY}}}
http_output: {{enabled: true, url: "http://{addr}/alerts", max_retries: 1000, backoff_ms: 100, max_backoff_ms: 1000}}
"#
    ));
    let metrics = Arc::new(Metrics::new());
    let outputs = Outputs::start(&cfg, metrics.clone()).unwrap();
    // Alert 0 first, and only once the worker holds it (its first retry is counted) the
    // rest: otherwise how many the worker takes before the queue fills is a race.
    outputs.send(alert("r", 0));
    wait_metric(
        &metrics,
        r#"monitor_output_retries_total{output="webhook"}"#,
        |v| v.unwrap_or(0.0) >= 1.0,
        Duration::from_secs(10),
    )
    .await;
    for n in 1..SENT {
        outputs.send(alert("r", n));
    }
    let dropped = metric(
        &metrics.encode(),
        r#"monitor_output_dropped_total{output="webhook",reason="queue_full"}"#,
    )
    .unwrap() as u64;
    tokio::time::sleep(Duration::from_secs(30)).await;
    let text = metrics.encode();
    assert!(
        metric(&text, r#"monitor_output_retries_total{output="webhook"}"#).unwrap() >= 10.0,
        "the head alert was retried during the outage:\n{text}"
    );
    let rx = HttpReceiver::start_on(addr, Duration::ZERO).await;
    let delivered = SENT - dropped;
    let got = rx
        .wait_for(delivered as usize, Duration::from_secs(20))
        .await;
    // The worker held alert 0 in hand and the queue the next CAPACITY; the newest were dropped.
    assert_eq!(delivered, CAPACITY as u64 + 1, "delivered");
    let ns: Vec<u64> = got
        .iter()
        .map(|r| r.body["output_fields"]["n"].as_u64().unwrap())
        .collect();
    assert_eq!(
        ns,
        (0..delivered).collect::<Vec<_>>(),
        "the oldest arrive, in order"
    );
    let report = outputs.shutdown(Duration::from_secs(5)).await;
    assert_eq!(report.total_lost(), 0);
    let text = metrics.encode();
    assert_eq!(
        metric(&text, r#"monitor_output_sent_total{output="webhook"}"#),
        Some(delivered as f64)
    );
    assert_eq!(
        metric(&text, r#"monitor_output_failed_total{output="webhook"}"#),
        Some(0.0)
    );
    rx.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_receiver_delays_neither_send_nor_the_other_outputs() {
    const N: u64 = 50;
    let rx = HttpReceiver::start(Duration::from_secs(2)).await;
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("events.json");
    let cfg = config(&format!(
        r#"
json_output: true
stdout_output: {{enabled: false}}
file_output: {{enabled: true, keep_alive: true, filename: {file}}}
http_output: {{enabled: true, url: "{url}"}}
"#,
        file = file.display(),
        url = rx.url("http")
    ));
    let metrics = Arc::new(Metrics::new());
    let outputs = Outputs::start(&cfg, metrics.clone()).unwrap();
    let t0 = Instant::now();
    for n in 0..N {
        outputs.send(alert("r", n));
    }
    let send_time = t0.elapsed();
    // The webhook alone needs N * 2 s; sending must not wait for any of it.
    assert!(
        send_time < Duration::from_secs(1),
        "send took {send_time:?}"
    );
    let lines = wait_lines(&file, N as usize, Duration::from_secs(5)).await;
    assert_eq!(lines.len(), N as usize, "the file output got every alert");
    let at_file_done = rx.count();
    assert!(
        at_file_done <= 3,
        "webhook delivered {at_file_done} already"
    );
    assert!(
        metric(
            &metrics.encode(),
            r#"monitor_output_queue_depth{output="webhook"}"#
        )
        .unwrap()
            >= (N - 3) as f64
    );
    // Shutdown gives up on the slow receiver at the deadline and counts what is lost.
    let report = outputs.shutdown(Duration::from_secs(3)).await;
    let text = metrics.encode();
    let sent = metric(&text, r#"monitor_output_sent_total{output="webhook"}"#).unwrap() as u64;
    let lost = metric(
        &text,
        r#"monitor_output_dropped_total{output="webhook",reason="shutdown"}"#,
    )
    .unwrap() as u64;
    assert_eq!(report.total_lost(), lost);
    assert_eq!(
        sent + lost,
        N,
        "every alert is either delivered or counted lost"
    );
    assert!(lost >= N - 5, "lost {lost}");
    assert_eq!(
        metric(&text, r#"monitor_output_queue_depth{output="webhook"}"#),
        Some(0.0)
    );
    rx.stop().await;
}
