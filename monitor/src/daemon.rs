//! Wiring the stages together for `monitor run` and `monitor trace`: probe -> reader ->
//! process table -> (container) -> (rules -> outputs) or JSON lines.

use std::collections::BTreeSet;
use std::io::Write;
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

use crate::cli::TraceArgs;
use crate::event::EventType;
use crate::probe::{CaptureSet, Probe, ProbeConfig, ProbeError};
use crate::process::{ProcessTable, TableConfig};
use crate::reader::Reader;

/// Exit code for missing privileges or an unusable kernel facility.
pub const EXIT_ENV: u8 = 2;

/// A failure the user must fix outside the monitor (privileges, tracefs): one clear line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnvironmentError(pub String);

fn load_probe() -> Result<Probe> {
    Probe::load(&ProbeConfig::default()).map_err(|e| match e {
        ProbeError::Privileges(_) | ProbeError::Tracefs(_) => {
            anyhow::Error::new(EnvironmentError(e.to_string()))
        }
        other => anyhow::Error::new(other),
    })
}

/// Kinds for a list of Falco event type names (all when empty).
pub fn kinds_for(types: &[String]) -> Result<BTreeSet<u16>> {
    if types.is_empty() {
        return Ok(EventType::ALL.iter().map(|t| t.kind()).collect());
    }
    types
        .iter()
        .map(|t| {
            EventType::from_name(t.trim())
                .map(|t| t.kind())
                .with_context(|| format!("unknown event type '{t}'"))
        })
        .collect()
}

/// The statistics line printed on SIGUSR1 and at exit: `monitor: stats {json}`.
fn stats_line(probe: &Probe, table: &ProcessTable, reader: &Reader, events: u64) -> String {
    let c = probe.counters();
    let names = ["ringbuf_full", "pending_full", "no_entry", "read_failed"];
    let fnames = ["disabled", "prefilter", "failed", "self"];
    let drops: serde_json::Map<String, serde_json::Value> = names
        .iter()
        .zip(c.drops.iter())
        .map(|(n, v)| (n.to_string(), (*v).into()))
        .collect();
    let filtered: serde_json::Map<String, serde_json::Value> = fnames
        .iter()
        .zip(c.filtered.iter())
        .map(|(n, v)| (n.to_string(), (*v).into()))
        .collect();
    let j = serde_json::json!({
        "events": events,
        "process_table": table.len(),
        "kernel_lost": c.drops[monitor_common::drop::RINGBUF_FULL as usize],
        "kernel_drops": drops,
        "kernel_filtered": filtered,
        "decode_errors": reader.decode_errors,
        "seeded_from_proc": table.stats.seeded_from_proc,
    });
    format!("monitor: stats {j}")
}

pub async fn trace(args: TraceArgs) -> Result<()> {
    let kinds = kinds_for(&args.types)?;
    let shown: Option<BTreeSet<EventType>> = (!args.types.is_empty()).then(|| {
        EventType::ALL
            .iter()
            .copied()
            .filter(|t| kinds.contains(&t.kind()))
            .collect()
    });
    let mut probe = load_probe()?;
    let mut table = ProcessTable::seeded(TableConfig::default());
    probe.set_capture(&CaptureSet {
        kinds,
        prefilter: None,
    })?;
    let mut reader = Reader::new(probe.take_ring()?)?;
    // Handlers first: a signal that arrives right after `ready` must not kill us.
    let mut term = signal(SignalKind::terminate())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut int = signal(SignalKind::interrupt())?;
    eprintln!("monitor: tracing, ready");

    let mut events = 0u64;
    let mut sweep = tokio::time::interval(Duration::from_secs(30));
    let stdout = std::io::stdout();
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            r = reader.next_batch(&mut batch, 256) => {
                r?;
                let mut out = stdout.lock();
                for rec in batch.drain(..) {
                    if let Some(ev) = table.apply(rec) {
                        events += 1;
                        if shown.as_ref().is_some_and(|s| !s.contains(&ev.ty)) {
                            continue;
                        }
                        let line = crate::trace::event_json(&ev);
                        if writeln!(out, "{line}").is_err() {
                            return Ok(()); // stdout closed: the reader of our output is gone
                        }
                    }
                }
                let _ = out.flush();
            }
            _ = sweep.tick() => table.sweep(),
            _ = usr1.recv() => eprintln!("{}", stats_line(&probe, &table, &reader, events)),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    eprintln!("{}", stats_line(&probe, &table, &reader, events));
    Ok(())
}
