//! The cost the event path pays for metrics and outputs: `Metrics::event`,
//! `Metrics::rule_eval_ns` (per event) and `Outputs::send` (per alert).

use std::collections::BTreeMap;
use std::hint::black_box;
use std::sync::Arc;
use std::time::Duration;

use criterion::{Criterion, criterion_group, criterion_main};

use monitor::alert::{Alert, Priority};
use monitor::config::Config;
use monitor::event::EventType;
use monitor::metrics::Metrics;
use monitor::output::Outputs;

fn alert(n: u64) -> Alert {
    let mut fields = BTreeMap::new();
    fields.insert("proc.name".to_string(), serde_json::json!("bash"));
    Alert {
        time_ns: 1_700_000_000_000_000_000 + n,
        rule: Arc::from("Terminal shell in container"),
        priority: Priority::Notice,
        output: "A shell was spawned in a container (proc.name=bash)".into(),
        output_fields: fields,
        tags: vec!["container".into()],
        source: "syscall",
        hostname: Arc::from("bench"),
        enforcement: None,
    }
}

fn bench(c: &mut Criterion) {
    let metrics = Arc::new(Metrics::new());
    c.bench_function("metrics_event", |b| {
        b.iter(|| metrics.event(black_box(EventType::Openat)))
    });
    c.bench_function("metrics_rule_eval_ns", |b| {
        b.iter(|| metrics.rule_eval_ns(black_box(1_234)))
    });

    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .expect("runtime");
    let _guard = rt.enter();
    // Two outputs whose queues are kept full by a stuck stdout and a dead webhook port: this
    // measures `send` on its drop path, the worst case for the event path.
    let (cfg, _) = Config::from_yaml_str(
        "outputs_queue: {capacity: 1000}\nhttp_output: {enabled: true, url: 'http://127.0.0.1:9/', max_retries: 1000}\n",
    )
    .expect("config");
    let (stuck, _keep) = tokio::io::duplex(1);
    let stuck = std::sync::Mutex::new(Some(stuck));
    let outputs = Outputs::start_with_stdout(&cfg, metrics.clone(), move || {
        Box::new(stuck.lock().expect("lock").take().expect("one stdout"))
    })
    .expect("outputs");
    let a = alert(0);
    c.bench_function("outputs_send_2_outputs", |b| {
        b.iter(|| outputs.send(black_box(a.clone())))
    });
    rt.block_on(outputs.shutdown(Duration::from_millis(10)));
}

criterion_group!(benches, bench);
criterion_main!(benches);
