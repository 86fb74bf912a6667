//! Where alerts go: stdout, a file, syslog, a webhook, any combination.
//!
//! Each output has its own bounded queue and its own task, so that a slow or dead output never
//! holds up another one or the event path: [`Outputs::send`] only tries to enqueue, and when an
//! output's queue is full the alert is dropped for that output and counted
//! (`monitor_output_dropped_total{reason="queue_full"}`).

pub mod file;
pub mod ratelimit;
pub mod stdout;
pub mod syslog;
pub mod webhook;

use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::Duration;

use tokio::io::AsyncWrite;
use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use crate::alert::Alert;
use crate::config::{
    Config, FileOutputConfig, HttpOutputConfig, RateLimitConfig, SyslogOutputConfig,
};
use crate::metrics::{Metrics, OutputMetrics};

use ratelimit::RateLimiter;

/// How long outputs removed by a reload may take to deliver what they still hold.
const RECONFIGURE_DRAIN: Duration = Duration::from_secs(5);

/// An output could not be set up; the message names the setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum OutputError {
    #[error("outputs must be started inside a tokio runtime")]
    NoRuntime,
    #[error("outputs are shut down")]
    ShutDown,
    #[error("file_output.filename: cannot open {path}: {source}")]
    FileOpen {
        path: std::path::PathBuf,
        source: std::io::Error,
    },
    #[error("{key}: {reason}")]
    Setup { key: &'static str, reason: String },
}

/// One alert could not be delivered (logged once per outage, and counted).
#[derive(Debug, thiserror::Error)]
pub enum DeliveryError {
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("{0}")]
    Other(String),
}

/// How an alert becomes a line of text: Falco's text form or Falco's JSON.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Format {
    pub json: bool,
    pub include_output: bool,
    pub include_tags: bool,
}

impl Format {
    pub fn from_config(cfg: &Config) -> Format {
        Format {
            json: cfg.json_output,
            include_output: cfg.json_include_output_property,
            include_tags: cfg.json_include_tags_property,
        }
    }

    /// One line, without the newline.
    pub fn render(&self, alert: &Alert) -> String {
        if self.json {
            alert
                .to_json(self.include_output, self.include_tags)
                .to_string()
        } else {
            alert.to_text()
        }
    }
}

/// What an output is, as configured; an output whose spec did not change is kept across a
/// reload (its queue and connection with it).
#[derive(Clone, Debug, PartialEq)]
enum Spec {
    Stdout {
        format: Format,
        buffered: bool,
    },
    File {
        cfg: FileOutputConfig,
        format: Format,
        buffered: bool,
    },
    Syslog {
        cfg: SyslogOutputConfig,
        format: Format,
    },
    Webhook {
        cfg: HttpOutputConfig,
        format: Format,
    },
}

impl Spec {
    fn name(&self) -> &'static str {
        match self {
            Spec::Stdout { .. } => "stdout",
            Spec::File { .. } => "file",
            Spec::Syslog { .. } => "syslog",
            Spec::Webhook { .. } => "webhook",
        }
    }

    fn from_config(cfg: &Config) -> Vec<Spec> {
        let format = Format::from_config(cfg);
        let buffered = cfg.buffered_outputs;
        let mut specs = Vec::new();
        if cfg.stdout_output.enabled {
            specs.push(Spec::Stdout { format, buffered });
        }
        if cfg.file_output.enabled {
            specs.push(Spec::File {
                cfg: cfg.file_output.clone(),
                format,
                buffered,
            });
        }
        if cfg.syslog_output.enabled {
            specs.push(Spec::Syslog {
                cfg: cfg.syslog_output.clone(),
                format,
            });
        }
        if cfg.http_output.enabled {
            specs.push(Spec::Webhook {
                cfg: cfg.http_output.clone(),
                format,
            });
        }
        specs
    }
}

/// An output's worker, as the workers see it.
enum Sink {
    Stdout(stdout::StdoutSink),
    File(file::FileSink),
    Syslog(syslog::SyslogSink),
    Webhook(webhook::WebhookSink),
}

impl Sink {
    async fn deliver(&mut self, alert: &Alert, m: &OutputMetrics) -> Result<(), DeliveryError> {
        match self {
            Sink::Stdout(s) => s.deliver(alert).await,
            Sink::File(s) => s.deliver(alert).await,
            Sink::Syslog(s) => s.deliver(alert).await,
            Sink::Webhook(s) => s.deliver(alert, m).await,
        }
    }

    async fn flush(&mut self) -> Result<(), DeliveryError> {
        match self {
            Sink::Stdout(s) => s.flush().await,
            Sink::File(s) => s.flush().await,
            Sink::Syslog(s) => s.flush().await,
            Sink::Webhook(_) => Ok(()),
        }
    }

    async fn reopen(&mut self) -> Result<(), DeliveryError> {
        match self {
            Sink::File(s) => s.reopen().await,
            _ => Ok(()),
        }
    }
}

/// The sending side of one output's queue.
struct Lane {
    spec: Spec,
    tx: mpsc::Sender<Arc<Alert>>,
    shared: Arc<LaneShared>,
}

/// What a lane's sender and its worker both see.
struct LaneShared {
    name: &'static str,
    metrics: OutputMetrics,
    /// Alerts queued or being delivered by this lane alone (the gauge sums all lanes of the
    /// same output name across a reload).
    depth: AtomicI64,
    reopen: AtomicBool,
}

struct Worker {
    shared: Arc<LaneShared>,
    task: JoinHandle<()>,
}

struct Active {
    lanes: Vec<Arc<Lane>>,
    limiter: Option<Arc<RateLimiter>>,
    limiter_cfg: RateLimitConfig,
}

/// What shutdown could not deliver in time, per output.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct ShutdownReport {
    pub lost: Vec<(&'static str, u64)>,
}

impl ShutdownReport {
    pub fn total_lost(&self) -> u64 {
        self.lost.iter().map(|(_, n)| n).sum()
    }
}

type StdoutWriter = Box<dyn AsyncWrite + Send + Unpin>;
type StdoutFactory = Box<dyn Fn() -> StdoutWriter + Send + Sync>;

/// All configured outputs. `send` is called from the event path; everything slow happens in
/// the outputs' own tasks.
pub struct Outputs {
    active: RwLock<Arc<Active>>,
    workers: Mutex<Vec<(Arc<Lane>, Worker)>>,
    metrics: Arc<Metrics>,
    runtime: Handle,
    capacity: Mutex<usize>,
    stdout: StdoutFactory,
    /// Set by `shutdown`: later reloads must not start outputs again.
    closed: AtomicBool,
}

impl std::fmt::Debug for Outputs {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Outputs")
            .field("outputs", &self.names())
            .finish()
    }
}

impl Outputs {
    /// Starts the configured outputs; must be called inside a tokio runtime. Fails when an
    /// output cannot be set up (file not writable, bad CA file, missing token...).
    pub fn start(cfg: &Config, metrics: Arc<Metrics>) -> Result<Outputs, OutputError> {
        Self::start_with_stdout(cfg, metrics, || Box::new(tokio::io::stdout()))
    }

    /// As [`Outputs::start`], with the stdout output writing wherever `stdout` says (tests,
    /// or a daemon that reserves its own stdout).
    pub fn start_with_stdout<F>(
        cfg: &Config,
        metrics: Arc<Metrics>,
        stdout: F,
    ) -> Result<Outputs, OutputError>
    where
        F: Fn() -> StdoutWriter + Send + Sync + 'static,
    {
        let runtime = Handle::try_current().map_err(|_| OutputError::NoRuntime)?;
        let outputs = Outputs {
            active: RwLock::new(Arc::new(Active {
                lanes: Vec::new(),
                limiter: None,
                limiter_cfg: RateLimitConfig::default(),
            })),
            workers: Mutex::new(Vec::new()),
            metrics,
            runtime,
            capacity: Mutex::new(cfg.outputs_queue.capacity),
            stdout: Box::new(stdout),
            closed: AtomicBool::new(false),
        };
        outputs.reconfigure(cfg)?;
        Ok(outputs)
    }

    /// Names of the running outputs (`stdout`, `file`, `syslog`, `webhook`).
    pub fn names(&self) -> Vec<&'static str> {
        self.current().lanes.iter().map(|l| l.shared.name).collect()
    }

    fn current(&self) -> Arc<Active> {
        match self.active.read() {
            Ok(g) => g.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Hands one alert to every output. Never blocks and never waits: an output whose queue is
    /// full loses this alert (counted), and an alert over its rule's rate limit goes nowhere
    /// (counted). Also counts the alert in `monitor_alerts_total`.
    pub fn send(&self, alert: Alert) {
        self.metrics.alert(&alert.rule, alert.priority);
        let active = self.current();
        if let Some(limiter) = &active.limiter
            && !limiter.allow(&alert.rule)
        {
            self.metrics.rate_limited(&alert.rule);
            return;
        }
        let alert = Arc::new(alert);
        for lane in &active.lanes {
            let s = &lane.shared;
            s.depth.fetch_add(1, Ordering::AcqRel);
            s.metrics.queue_depth.inc();
            match lane.tx.try_send(alert.clone()) {
                Ok(()) => {}
                Err(e) => {
                    s.depth.fetch_sub(1, Ordering::AcqRel);
                    s.metrics.queue_depth.dec();
                    match e {
                        mpsc::error::TrySendError::Full(_) => s.metrics.dropped_queue_full.inc(),
                        mpsc::error::TrySendError::Closed(_) => s.metrics.dropped_shutdown.inc(),
                    };
                }
            }
        }
    }

    /// Applies a new configuration: outputs whose settings did not change keep running (their
    /// queue and connections intact; a kept file output reopens its file, for logrotate), new
    /// ones start, removed or changed ones get a few seconds to deliver what they hold. On
    /// error nothing changes.
    pub fn reconfigure(&self, cfg: &Config) -> Result<(), OutputError> {
        if self.closed.load(Ordering::Acquire) {
            return Err(OutputError::ShutDown);
        }
        let _guard = self.runtime.enter();
        // One reconfiguration at a time; `capacity` is only written once this one succeeds.
        let mut capacity = self.capacity.lock().unwrap_or_else(|p| p.into_inner());
        let capacity_changed = *capacity != cfg.outputs_queue.capacity;
        let old = self.current();
        let mut lanes = Vec::new();
        let mut started = Vec::new();
        for spec in Spec::from_config(cfg) {
            let kept = (!capacity_changed)
                .then(|| old.lanes.iter().find(|l| l.spec == spec))
                .flatten();
            if let Some(lane) = kept {
                lane.shared.reopen.store(true, Ordering::Release);
                lanes.push(lane.clone());
                continue;
            }
            let sink = match self.build_sink(&spec) {
                Ok(s) => s,
                Err(e) => {
                    // Nothing was swapped in: stop what was started for this attempt.
                    for (_, w) in started {
                        let w: Worker = w;
                        w.task.abort();
                    }
                    return Err(e);
                }
            };
            let (lane, worker) = self.spawn_lane(spec, sink, cfg.outputs_queue.capacity);
            lanes.push(lane.clone());
            started.push((lane, worker));
        }
        let limiter = if cfg.outputs == old.limiter_cfg && old.limiter.is_some() {
            old.limiter.clone()
        } else {
            RateLimiter::new(&cfg.outputs).map(Arc::new)
        };
        let new = Arc::new(Active {
            lanes,
            limiter,
            limiter_cfg: cfg.outputs.clone(),
        });
        let removed: Vec<Arc<Lane>> = old
            .lanes
            .iter()
            .filter(|l| !new.lanes.iter().any(|n| Arc::ptr_eq(n, l)))
            .cloned()
            .collect();
        match self.active.write() {
            Ok(mut g) => *g = new,
            Err(p) => *p.into_inner() = new,
        }
        drop(old);
        let mut workers = self.workers.lock().unwrap_or_else(|p| p.into_inner());
        workers.extend(started);
        let mut retired = Vec::new();
        let mut i = 0;
        while i < workers.len() {
            if removed.iter().any(|r| Arc::ptr_eq(r, &workers[i].0)) {
                retired.push(workers.remove(i).1);
            } else {
                i += 1;
            }
        }
        drop(workers);
        drop(removed);
        *capacity = cfg.outputs_queue.capacity;
        drop(capacity);
        if !retired.is_empty() {
            self.runtime.spawn(async move {
                let report = drain(retired, RECONFIGURE_DRAIN).await;
                if report.total_lost() > 0 {
                    tracing::warn!("outputs removed by reload lost {:?}", report.lost);
                }
            });
        }
        Ok(())
    }

    fn build_sink(&self, spec: &Spec) -> Result<Sink, OutputError> {
        Ok(match spec {
            Spec::Stdout { format, buffered } => {
                Sink::Stdout(stdout::StdoutSink::new((self.stdout)(), *format, *buffered))
            }
            Spec::File {
                cfg,
                format,
                buffered,
            } => Sink::File(file::FileSink::open(cfg, *format, *buffered)?),
            Spec::Syslog { cfg, format } => Sink::Syslog(syslog::SyslogSink::new(cfg, *format)?),
            Spec::Webhook { cfg, format } => {
                Sink::Webhook(webhook::WebhookSink::new(cfg, *format)?)
            }
        })
    }

    fn spawn_lane(&self, spec: Spec, sink: Sink, capacity: usize) -> (Arc<Lane>, Worker) {
        let name = spec.name();
        let (tx, rx) = mpsc::channel(capacity.max(1));
        let shared = Arc::new(LaneShared {
            name,
            metrics: self.metrics.output(name),
            depth: AtomicI64::new(0),
            reopen: AtomicBool::new(false),
        });
        let task = self.runtime.spawn(run_lane(sink, rx, shared.clone()));
        (
            Arc::new(Lane {
                spec,
                tx,
                shared: shared.clone(),
            }),
            Worker { shared, task },
        )
    }

    /// Marks file outputs for reopening before their next write (SIGHUP, for logrotate).
    pub fn reopen(&self) {
        for lane in &self.current().lanes {
            lane.shared.reopen.store(true, Ordering::Release);
        }
    }

    /// Stops taking alerts and lets every output deliver what it holds until `deadline` has
    /// passed; what is still undelivered then is counted as dropped (`reason="shutdown"`) and
    /// reported. Alerts sent afterwards go nowhere; a second call reports nothing.
    pub async fn shutdown(&self, deadline: Duration) -> ShutdownReport {
        self.closed.store(true, Ordering::Release);
        let empty = Arc::new(Active {
            lanes: Vec::new(),
            limiter: None,
            limiter_cfg: RateLimitConfig::default(),
        });
        // Dropping every sender closes the queues: the workers drain them and stop. A `send`
        // racing with this holds its senders only until it returns.
        let old = match self.active.write() {
            Ok(mut g) => std::mem::replace(&mut *g, empty),
            Err(p) => std::mem::replace(&mut *p.into_inner(), empty),
        };
        drop(old);
        let workers: Vec<Worker> =
            std::mem::take(&mut *self.workers.lock().unwrap_or_else(|p| p.into_inner()))
                .into_iter()
                .map(|(_, w)| w)
                .collect();
        drain(workers, deadline).await
    }
}

/// Waits for workers whose queues are closed; aborts those still busy at the deadline.
async fn drain(workers: Vec<Worker>, deadline: Duration) -> ShutdownReport {
    let until = tokio::time::Instant::now() + deadline;
    let mut report = ShutdownReport::default();
    for mut w in workers {
        if tokio::time::timeout_at(until, &mut w.task).await.is_err() {
            w.task.abort();
            let _ = w.task.await;
            let lost = w.shared.depth.swap(0, Ordering::AcqRel).max(0);
            w.shared.metrics.dropped_shutdown.inc_by(lost as u64);
            w.shared.metrics.queue_depth.dec_by(lost);
            report.lost.push((w.shared.name, lost as u64));
        }
    }
    report
}

/// One output's worker: takes alerts in order and delivers them, flushing whenever its queue
/// runs empty so that nothing sits in a buffer while the daemon is idle.
async fn run_lane(mut sink: Sink, mut rx: mpsc::Receiver<Arc<Alert>>, shared: Arc<LaneShared>) {
    let name = shared.name;
    let mut failing = false;
    while let Some(alert) = rx.recv().await {
        if shared.reopen.swap(false, Ordering::AcqRel)
            && let Err(e) = sink.reopen().await
        {
            tracing::warn!(output = name, "cannot reopen: {e}");
        }
        match sink.deliver(&alert, &shared.metrics).await {
            Ok(()) => {
                shared.metrics.sent.inc();
                if failing {
                    tracing::info!(output = name, "delivering alerts again");
                    failing = false;
                }
            }
            Err(e) => {
                shared.metrics.failed.inc();
                if !failing {
                    tracing::warn!(output = name, "cannot deliver alert: {e}");
                    failing = true;
                }
            }
        }
        shared.depth.fetch_sub(1, Ordering::AcqRel);
        shared.metrics.queue_depth.dec();
        if rx.is_empty()
            && let Err(e) = sink.flush().await
        {
            tracing::warn!(output = name, "cannot flush: {e}");
        }
    }
    if let Err(e) = sink.flush().await {
        tracing::warn!(output = name, "cannot flush: {e}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use tokio::io::AsyncBufReadExt;

    use crate::alert::Priority;

    pub(crate) fn alert(rule: &str, n: u64) -> Alert {
        let mut fields = BTreeMap::new();
        fields.insert("proc.name".to_string(), serde_json::json!("bash"));
        fields.insert("n".to_string(), serde_json::json!(n));
        Alert {
            time_ns: 1_700_000_000_000_000_000 + n,
            rule: Arc::from(rule),
            priority: Priority::Warning,
            output: format!("alert number {n} (proc.name=bash)"),
            output_fields: fields,
            tags: vec!["test".into()],
            source: "syscall",
            hostname: Arc::from("host-1"),
            enforcement: None,
        }
    }

    fn config(yaml: &str) -> Config {
        Config::from_yaml_str(yaml).unwrap().0
    }

    #[tokio::test]
    async fn stdout_prints_text_or_json_lines() {
        let (w, r) = tokio::io::duplex(1 << 16);
        let w = Mutex::new(Some(w));
        let metrics = Arc::new(Metrics::new());
        let outputs = Outputs::start_with_stdout(
            &config("json_output: true\njson_include_tags_property: false\n"),
            metrics.clone(),
            move || Box::new(w.lock().unwrap().take().unwrap()),
        )
        .unwrap();
        outputs.send(alert("r1", 1));
        outputs.send(alert("r1", 2));
        let mut lines = tokio::io::BufReader::new(r).lines();
        let first: serde_json::Value =
            serde_json::from_str(&lines.next_line().await.unwrap().unwrap()).unwrap();
        assert_eq!(first["rule"], "r1");
        assert_eq!(first["output_fields"]["n"], 1);
        assert!(first.get("tags").is_none());
        let second = lines.next_line().await.unwrap().unwrap();
        assert!(second.contains("\"n\":2"));
        let report = outputs.shutdown(Duration::from_secs(1)).await;
        assert_eq!(report.total_lost(), 0);
        // After shutdown: sending goes nowhere, and a reload cannot start outputs again.
        outputs.send(alert("r1", 3));
        assert!(matches!(
            outputs.reconfigure(&config("")),
            Err(OutputError::ShutDown)
        ));
        assert_eq!(outputs.names(), Vec::<&str>::new());
        let t = metrics.encode();
        assert!(
            t.contains("monitor_output_sent_total{output=\"stdout\"} 2"),
            "{t}"
        );
    }

    #[tokio::test]
    async fn a_full_queue_drops_and_counts_without_waiting() {
        // A stdout whose reader never reads: the worker blocks on the first write, the queue
        // fills, the rest is dropped.
        let (w, _r) = tokio::io::duplex(8);
        let w = Mutex::new(Some(w));
        let metrics = Arc::new(Metrics::new());
        let outputs = Outputs::start_with_stdout(
            &config("outputs_queue: {capacity: 4}\n"),
            metrics.clone(),
            move || Box::new(w.lock().unwrap().take().unwrap()),
        )
        .unwrap();
        for n in 0..100 {
            outputs.send(alert("r", n));
        }
        let t = metrics.encode();
        let dropped: u64 = t
            .lines()
            .find_map(|l| {
                l.strip_prefix(
                    "monitor_output_dropped_total{output=\"stdout\",reason=\"queue_full\"} ",
                )
            })
            .unwrap()
            .parse()
            .unwrap();
        // 4 in the queue, at most 1 taken by the worker.
        assert!((95..=96).contains(&dropped), "{dropped}");
        let report = outputs.shutdown(Duration::from_millis(200)).await;
        assert_eq!(report.total_lost() + dropped, 100);
        let t = metrics.encode();
        assert!(
            t.contains("monitor_output_queue_depth{output=\"stdout\"} 0"),
            "{t}"
        );
    }

    #[tokio::test]
    async fn a_failed_reconfigure_changes_nothing() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.txt");
        let file_cfg = |path: &std::path::Path, cap: usize| {
            config(&format!(
                "stdout_output: {{enabled: false}}\noutputs_queue: {{capacity: {cap}}}\nfile_output: {{enabled: true, keep_alive: true, filename: {}}}\n",
                path.display()
            ))
        };
        let metrics = Arc::new(Metrics::new());
        let outputs = Outputs::start(&file_cfg(&a, 10), metrics).unwrap();
        let bad = file_cfg(std::path::Path::new("/nonexistent-dir/x.txt"), 20);
        assert!(matches!(
            outputs.reconfigure(&bad),
            Err(OutputError::FileOpen { .. })
        ));
        outputs.send(alert("r", 0));
        // Same settings as before the failure: the lane is kept, not rebuilt.
        let before = Arc::as_ptr(&outputs.current().lanes[0]);
        outputs.reconfigure(&file_cfg(&a, 10)).unwrap();
        assert_eq!(Arc::as_ptr(&outputs.current().lanes[0]), before);
        // A new capacity rebuilds it.
        outputs.reconfigure(&file_cfg(&a, 30)).unwrap();
        assert_ne!(Arc::as_ptr(&outputs.current().lanes[0]), before);
        outputs.send(alert("r", 1));
        assert_eq!(outputs.names(), vec!["file"]);
        assert_eq!(
            outputs.shutdown(Duration::from_secs(5)).await.total_lost(),
            0
        );
        // The rebuilt lane's predecessor drains in the background; give it a moment.
        let until = std::time::Instant::now() + Duration::from_secs(5);
        while std::fs::read_to_string(&a).unwrap().lines().count() < 2 {
            assert!(std::time::Instant::now() < until);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }

    #[tokio::test]
    async fn start_outside_a_runtime_is_an_error() {
        let cfg = config("");
        let metrics = Arc::new(Metrics::new());
        let r = std::thread::spawn(move || Outputs::start(&cfg, metrics).map(|_| ()))
            .join()
            .unwrap();
        assert!(matches!(r, Err(OutputError::NoRuntime)));
    }
}
