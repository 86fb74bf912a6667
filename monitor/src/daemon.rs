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

pub async fn trace(args: TraceArgs) -> Result<()> {
    let kinds = kinds_for(&args.types)?;
    let mut probe = load_probe()?;
    let mut table = ProcessTable::seeded(TableConfig::default());
    probe.set_capture(&CaptureSet {
        kinds,
        prefilter: None,
    })?;
    let mut reader = Reader::new(probe.take_ring()?)?;
    eprintln!("monitor: tracing, ready");

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
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
                        let line = crate::trace::event_json(&ev);
                        if writeln!(out, "{line}").is_err() {
                            return Ok(()); // stdout closed: the reader of our output is gone
                        }
                    }
                }
                let _ = out.flush();
            }
            _ = sweep.tick() => table.sweep(),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    let c = probe.counters();
    eprintln!(
        "monitor: stopped; kernel drops {:?}, filtered {:?}, decode errors {}",
        c.drops, c.filtered, reader.decode_errors
    );
    Ok(())
}
