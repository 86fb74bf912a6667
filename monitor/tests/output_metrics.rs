//! `/metrics`, `/healthz` and `/readyz` scraped over real HTTP, with counters moving as the
//! pipeline calls them.

mod output_support;

use std::sync::Arc;
use std::time::Duration;

use monitor::config::{Config, WebserverConfig};
use monitor::event::EventType;
use monitor::metrics::Metrics;
use monitor::output::Outputs;
use monitor::webserver::{Health, serve};

use output_support::{alert, metric};

async fn get(url: &str) -> (u16, String, String) {
    let r = reqwest::get(url).await.expect("request");
    let status = r.status().as_u16();
    let ctype = r
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or_default().to_string())
        .unwrap_or_default();
    (status, ctype, r.text().await.expect("body"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scrape_health_and_readiness() {
    let ws = WebserverConfig {
        listen_port: 0,
        ..WebserverConfig::default()
    };
    let metrics = Arc::new(Metrics::new());
    let health = Health::new();
    let server = serve(&ws, metrics.clone(), health.clone())
        .await
        .unwrap()
        .expect("enabled by default");
    let base = format!("http://{}", server.local_addr());
    assert!(
        server.local_addr().ip().is_loopback(),
        "loopback by default"
    );

    assert_eq!(get(&format!("{base}/healthz")).await.0, 200);
    assert_eq!(
        get(&format!("{base}/readyz")).await.0,
        503,
        "not ready before set_ready"
    );
    health.set_ready(true);
    assert_eq!(get(&format!("{base}/readyz")).await.0, 200);

    let (status, ctype, before) = get(&format!("{base}/metrics")).await;
    assert_eq!(status, 200);
    assert!(ctype.starts_with("application/openmetrics-text"), "{ctype}");
    assert_eq!(
        metric(&before, r#"monitor_events_total{type="execve"}"#),
        Some(0.0)
    );

    let (cfg, _) = Config::from_yaml_str(
        "stdout_output: {enabled: false}\nfile_output: {enabled: true, filename: /dev/null}\n",
    )
    .unwrap();
    let outputs = Outputs::start(&cfg, metrics.clone()).unwrap();
    for _ in 0..3 {
        metrics.event(EventType::Execve);
    }
    metrics.kernel_drops("ringbuf_full", 12);
    metrics.rule_eval_ns(1_500);
    metrics.set_container_cache_size(4);
    outputs.send(alert("Terminal shell in container", 0));
    outputs.shutdown(Duration::from_secs(5)).await;

    let (_, _, after) = get(&format!("{base}/metrics")).await;
    assert_eq!(
        metric(&after, r#"monitor_events_total{type="execve"}"#),
        Some(3.0)
    );
    assert_eq!(
        metric(
            &after,
            r#"monitor_kernel_drops_total{reason="ringbuf_full"}"#
        ),
        Some(12.0)
    );
    assert_eq!(metric(&after, "monitor_rule_eval_seconds_count"), Some(1.0));
    assert_eq!(metric(&after, "monitor_container_cache_size"), Some(4.0));
    assert_eq!(
        metric(
            &after,
            r#"monitor_alerts_total{rule="Terminal shell in container",priority="Warning"}"#
        ),
        Some(1.0)
    );
    assert_eq!(
        metric(&after, r#"monitor_output_sent_total{output="file"}"#),
        Some(1.0)
    );
    server.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_can_be_turned_off_and_ports_in_use_are_reported() {
    let ws = WebserverConfig {
        listen_port: 0,
        prometheus_metrics_enabled: false,
        k8s_healthz_endpoint: "/health".into(),
        ..WebserverConfig::default()
    };
    let server = serve(&ws, Arc::new(Metrics::new()), Health::new())
        .await
        .unwrap()
        .unwrap();
    let base = format!("http://{}", server.local_addr());
    assert_eq!(get(&format!("{base}/metrics")).await.0, 404);
    assert_eq!(get(&format!("{base}/health")).await.0, 200);
    let taken = WebserverConfig {
        listen_port: server.local_addr().port(),
        ..WebserverConfig::default()
    };
    let e = serve(&taken, Arc::new(Metrics::new()), Health::new())
        .await
        .unwrap_err();
    assert!(e.to_string().contains("cannot listen on 127.0.0.1:"), "{e}");
    let off = WebserverConfig {
        enabled: false,
        ..WebserverConfig::default()
    };
    assert!(
        serve(&off, Arc::new(Metrics::new()), Health::new())
            .await
            .unwrap()
            .is_none()
    );
    server.shutdown().await;
}
