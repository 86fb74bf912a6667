//! Counters and gauges of every stage, exported in Prometheus' text format.
//!
//! The hot path (one call per event) touches only atomics: per-type event counters are
//! created once and indexed by `EventType`, and the rule-evaluation histogram is a fixed array
//! of atomic buckets. Per-label families (rules, outputs, drop reasons) are used where calls
//! are rare (alerts, drops, reloads), or their handles are fetched once and kept.

use std::borrow::Cow;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet};
use prometheus_client::metrics::MetricType;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

use crate::alert::Priority;
use crate::event::EventType;

type Label = Cow<'static, str>;

/// A label value from outside (a rule name), escaped as the text format requires; the encoder
/// writes label values verbatim, so a quote in a rule name would otherwise break the page.
fn escaped(s: &str) -> Label {
    if !s.contains(['\\', '"', '\n']) {
        return Cow::Owned(s.to_string());
    }
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '"' => out.push_str("\\\""),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    Cow::Owned(out)
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct TypeLabel {
    r#type: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ReasonLabel {
    reason: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RuleLabel {
    rule: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct AlertLabels {
    rule: Label,
    priority: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputLabel {
    output: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct OutputDropLabels {
    output: Label,
    reason: Label,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ResultLabel {
    result: Label,
}

/// Upper bounds (seconds) of the rule-evaluation histogram: 250 ns to ~1 ms, doubling.
const EVAL_BUCKETS_NS: [u64; 13] = [
    250, 500, 1_000, 2_000, 4_000, 8_000, 16_000, 32_000, 64_000, 128_000, 256_000, 512_000,
    1_024_000,
];

/// A histogram of nanosecond durations made of atomics only, so that observing one value
/// never takes a lock.
#[derive(Debug, Default)]
struct AtomicHistogram {
    /// Non-cumulative counts per bucket; the last slot is +Inf.
    buckets: [AtomicU64; EVAL_BUCKETS_NS.len() + 1],
    sum_ns: AtomicU64,
}

impl AtomicHistogram {
    fn observe(&self, ns: u64) {
        let i = EVAL_BUCKETS_NS.partition_point(|&b| b < ns);
        self.buckets[i].fetch_add(1, Ordering::Relaxed);
        self.sum_ns.fetch_add(ns, Ordering::Relaxed);
    }
}

/// Exposes the histogram through prometheus-client's encoder at scrape time.
#[derive(Debug)]
struct HistogramCollector {
    name: &'static str,
    help: &'static str,
    hist: Arc<AtomicHistogram>,
}

impl Collector for HistogramCollector {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        // The encoder accumulates the buckets itself: hand it per-bucket counts.
        let mut count = 0u64;
        let mut buckets = Vec::with_capacity(EVAL_BUCKETS_NS.len() + 1);
        for (i, slot) in self.hist.buckets.iter().enumerate() {
            let n = slot.load(Ordering::Relaxed);
            count += n;
            let bound = EVAL_BUCKETS_NS
                .get(i)
                .map(|&ns| ns as f64 / 1e9)
                .unwrap_or(f64::MAX);
            buckets.push((bound, n));
        }
        let sum = self.hist.sum_ns.load(Ordering::Relaxed) as f64 / 1e9;
        let mut m = encoder.encode_descriptor(self.name, self.help, None, MetricType::Histogram)?;
        m.encode_histogram::<prometheus_client::encoding::NoLabelSet>(sum, count, &buckets, None)
    }
}

/// Gauges read at scrape time from whoever owns the number (e.g. a queue's length).
#[derive(Debug, Default)]
struct SizeGauges {
    process_table: Gauge,
    container_cache: Gauge,
}

/// Every counter of the daemon. Shared as `Arc<Metrics>`; all methods take `&self`.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    events: Vec<Counter>,
    kernel_drops: Family<ReasonLabel, Counter>,
    decoder_drops: Family<ReasonLabel, Counter>,
    rate_limited: Family<RuleLabel, Counter>,
    alerts: Family<AlertLabels, Counter>,
    output_sent: Family<OutputLabel, Counter>,
    output_failed: Family<OutputLabel, Counter>,
    output_dropped: Family<OutputDropLabels, Counter>,
    output_retries: Family<OutputLabel, Counter>,
    queue_depth: Family<OutputLabel, Gauge>,
    reloads: Family<ResultLabel, Counter>,
    sizes: SizeGauges,
    rule_eval: Arc<AtomicHistogram>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("monitor");
        let events_family = Family::<TypeLabel, Counter>::default();
        let events = EventType::ALL
            .iter()
            .map(|t| {
                events_family
                    .get_or_create(&TypeLabel {
                        r#type: Cow::Borrowed(t.name()),
                    })
                    .clone()
            })
            .collect();
        registry.register(
            "events",
            "Events decoded, by Falco event type",
            events_family,
        );
        let m = Metrics {
            events,
            kernel_drops: Family::default(),
            decoder_drops: Family::default(),
            rate_limited: Family::default(),
            alerts: Family::default(),
            output_sent: Family::default(),
            output_failed: Family::default(),
            output_dropped: Family::default(),
            output_retries: Family::default(),
            queue_depth: Family::default(),
            reloads: Family::default(),
            sizes: SizeGauges::default(),
            rule_eval: Arc::new(AtomicHistogram::default()),
            registry: Registry::default(),
        };
        registry.register(
            "kernel_drops",
            "Events lost in the kernel before reaching userspace, by reason",
            m.kernel_drops.clone(),
        );
        registry.register(
            "decoder_drops",
            "Kernel records the decoder could not use, by reason",
            m.decoder_drops.clone(),
        );
        registry.register(
            "rate_limited_alerts",
            "Alerts dropped by the per-rule rate limiter (outputs.rate, outputs.max_burst)",
            m.rate_limited.clone(),
        );
        registry.register(
            "alerts",
            "Alerts raised, by rule and priority",
            m.alerts.clone(),
        );
        registry.register(
            "output_sent",
            "Alerts an output delivered",
            m.output_sent.clone(),
        );
        registry.register(
            "output_failed",
            "Alerts an output gave up on after its retries",
            m.output_failed.clone(),
        );
        registry.register(
            "output_dropped",
            "Alerts an output never tried: its queue was full, or shutdown came first",
            m.output_dropped.clone(),
        );
        registry.register(
            "output_retries",
            "Delivery attempts an output repeated after a failure",
            m.output_retries.clone(),
        );
        registry.register(
            "output_queue_depth",
            "Alerts waiting in (or being delivered by) an output's queue",
            m.queue_depth.clone(),
        );
        registry.register(
            "reloads",
            "Configuration reloads, by result",
            m.reloads.clone(),
        );
        registry.register(
            "process_table_size",
            "Processes in the process table",
            m.sizes.process_table.clone(),
        );
        registry.register(
            "container_cache_size",
            "Containers in the metadata cache",
            m.sizes.container_cache.clone(),
        );
        registry.register_collector(Box::new(HistogramCollector {
            name: "rule_eval_seconds",
            help: "Time to evaluate the rules against one event.",
            hist: m.rule_eval.clone(),
        }));
        Metrics { registry, ..m }
    }

    /// One event of this type was decoded.
    #[inline]
    pub fn event(&self, ty: EventType) {
        if let Some(c) = self.events.get(ty as usize) {
            c.inc();
        }
    }

    /// The kernel's running total of events lost for `reason` (e.g. `ringbuf_full`); the
    /// counter follows the total and never goes back.
    pub fn kernel_drops(&self, reason: &'static str, total: u64) {
        self.kernel_drops
            .get_or_create(&ReasonLabel {
                reason: Cow::Borrowed(reason),
            })
            .inner()
            .fetch_max(total, Ordering::Relaxed);
    }

    /// The decoder dropped one record for `reason`.
    pub fn decoder_drop(&self, reason: &'static str) {
        self.decoder_drops
            .get_or_create(&ReasonLabel {
                reason: Cow::Borrowed(reason),
            })
            .inc();
    }

    /// A rule matched and an alert was raised.
    pub fn alert(&self, rule: &str, priority: Priority) {
        self.alerts
            .get_or_create(&AlertLabels {
                rule: escaped(rule),
                priority: Cow::Borrowed(priority.as_str()),
            })
            .inc();
    }

    pub fn rate_limited(&self, rule: &str) {
        self.rate_limited
            .get_or_create(&RuleLabel {
                rule: escaped(rule),
            })
            .inc();
    }

    /// Time spent evaluating the rules on one event.
    #[inline]
    pub fn rule_eval_ns(&self, ns: u64) {
        self.rule_eval.observe(ns);
    }

    pub fn set_process_table_size(&self, n: usize) {
        self.sizes.process_table.set(n as i64);
    }

    pub fn set_container_cache_size(&self, n: usize) {
        self.sizes.container_cache.set(n as i64);
    }

    /// A configuration (or rules) reload finished.
    pub fn reload(&self, ok: bool) {
        self.reloads
            .get_or_create(&ResultLabel {
                result: Cow::Borrowed(if ok { "success" } else { "failure" }),
            })
            .inc();
    }

    /// Handles of one output's counters, fetched once so that the output touches only atomics.
    pub fn output(&self, name: &str) -> OutputMetrics {
        let label = OutputLabel {
            output: escaped(name),
        };
        let drop = |reason: &'static str| {
            self.output_dropped
                .get_or_create(&OutputDropLabels {
                    output: escaped(name),
                    reason: Cow::Borrowed(reason),
                })
                .clone()
        };
        OutputMetrics {
            sent: self.output_sent.get_or_create(&label).clone(),
            failed: self.output_failed.get_or_create(&label).clone(),
            retries: self.output_retries.get_or_create(&label).clone(),
            dropped_queue_full: drop("queue_full"),
            dropped_shutdown: drop("shutdown"),
            queue_depth: self.queue_depth.get_or_create(&label).clone(),
        }
    }

    /// The registry in Prometheus' text exposition format (OpenMetrics flavour).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail; an encoder error would leave a partial page.
        if prometheus_client::encoding::text::encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }
}

/// One output's counters.
#[derive(Clone, Debug)]
pub struct OutputMetrics {
    pub sent: Counter,
    pub failed: Counter,
    pub retries: Counter,
    pub dropped_queue_full: Counter,
    pub dropped_shutdown: Counter,
    pub queue_depth: Gauge,
}

/// The content type of [`Metrics::encode`]'s text.
pub const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

#[cfg(test)]
mod tests {
    use super::*;

    fn value(text: &str, series: &str) -> Option<f64> {
        text.lines()
            .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
    }

    #[test]
    fn counters_appear_in_the_exposition() {
        let m = Metrics::new();
        m.event(EventType::Execve);
        m.event(EventType::Execve);
        m.event(EventType::Openat);
        m.kernel_drops("ringbuf_full", 7);
        m.kernel_drops("ringbuf_full", 5);
        m.decoder_drop("short_record");
        m.alert("Terminal shell in container", Priority::Notice);
        m.rate_limited("Terminal shell in container");
        m.reload(true);
        m.reload(false);
        m.set_process_table_size(42);
        let o = m.output("webhook");
        o.sent.inc();
        o.dropped_queue_full.inc_by(3);
        o.queue_depth.set(9);
        m.rule_eval_ns(300);
        m.rule_eval_ns(5_000_000);
        let t = m.encode();
        assert_eq!(
            value(&t, r#"monitor_events_total{type="execve"}"#),
            Some(2.0)
        );
        assert_eq!(
            value(&t, r#"monitor_events_total{type="openat"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(&t, r#"monitor_events_total{type="connect"}"#),
            Some(0.0)
        );
        assert_eq!(
            value(&t, r#"monitor_kernel_drops_total{reason="ringbuf_full"}"#),
            Some(7.0)
        );
        assert_eq!(
            value(&t, r#"monitor_decoder_drops_total{reason="short_record"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                r#"monitor_alerts_total{rule="Terminal shell in container",priority="Notice"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                r#"monitor_rate_limited_alerts_total{rule="Terminal shell in container"}"#
            ),
            Some(1.0)
        );
        assert_eq!(
            value(&t, r#"monitor_reloads_total{result="failure"}"#),
            Some(1.0)
        );
        assert_eq!(value(&t, "monitor_process_table_size"), Some(42.0));
        assert_eq!(
            value(&t, r#"monitor_output_sent_total{output="webhook"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(
                &t,
                r#"monitor_output_dropped_total{output="webhook",reason="queue_full"}"#
            ),
            Some(3.0)
        );
        assert_eq!(
            value(&t, r#"monitor_output_queue_depth{output="webhook"}"#),
            Some(9.0)
        );
        assert_eq!(value(&t, "monitor_rule_eval_seconds_count"), Some(2.0));
        assert_eq!(
            value(&t, r#"monitor_rule_eval_seconds_bucket{le="5e-7"}"#),
            Some(1.0)
        );
        assert_eq!(
            value(&t, r#"monitor_rule_eval_seconds_bucket{le="+Inf"}"#),
            Some(2.0)
        );
        assert!(t.trim_end().ends_with("# EOF"));
    }

    #[test]
    fn label_values_are_escaped() {
        let m = Metrics::new();
        m.alert("quote \" and \\ and\nnewline", Priority::Critical);
        let t = m.encode();
        assert!(t.contains(r#"rule="quote \" and \\ and\nnewline""#), "{t}");
    }
}
