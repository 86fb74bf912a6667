//! The event path after the reader: process table, then container context, then (for `run`)
//! the rules and the outputs. One task drives it, in ring-buffer order; nothing here blocks
//! for long: a container whose metadata is being fetched holds its event for at most the
//! configured wait, and the outputs never block.

use std::sync::Arc;
use std::time::Instant;

use crate::alert::Priority;
use crate::container::{ContainerCache, ContainerInfo};
use crate::event::Event;
use crate::event::decode::RawRecord;
use crate::metrics::Metrics;
use crate::output::Outputs;
use crate::process::ProcessTable;
use crate::rules::Engine;

/// Process table and container context: a record in, an enriched event out.
pub struct Enricher {
    pub table: ProcessTable,
    pub containers: Option<ContainerCache>,
}

impl Enricher {
    pub async fn enrich(&mut self, rec: RawRecord) -> Option<Event> {
        let mut ev = self.table.apply(rec)?;
        if let Some(cache) = &self.containers {
            let lookup = cache.lookup(ev.process.cgroup_id, ev.tid);
            ev.container = if lookup.is_pending() {
                lookup.resolve().await
            } else {
                lookup.now().clone()
            };
        } else {
            ev.container = ContainerInfo::host();
        }
        Some(ev)
    }
}

/// Rules and outputs: an event in, alerts out.
pub struct Detector {
    pub engine: Arc<Engine>,
    pub outputs: Arc<Outputs>,
    pub metrics: Arc<Metrics>,
    pub hostname: Arc<str>,
    /// Rules less severe than this do not alert (Falco's `priority`).
    pub min_priority: Priority,
    /// Engine rule index of each kernel enforcement entry: a kill is always reported, even
    /// when an earlier rule matched first (`rule_matching: first`).
    pub kernel_rules: Vec<usize>,
    matched: Vec<usize>,
}

impl Detector {
    pub fn new(
        engine: Arc<Engine>,
        outputs: Arc<Outputs>,
        metrics: Arc<Metrics>,
        hostname: Arc<str>,
        min_priority: Priority,
    ) -> Detector {
        Detector {
            engine,
            outputs,
            metrics,
            hostname,
            min_priority,
            kernel_rules: Vec::new(),
            matched: Vec::new(),
        }
    }

    pub fn handle(&mut self, ev: &Event) {
        self.metrics.event(ev.ty);
        let t = Instant::now();
        self.engine.evaluate(ev, &mut self.matched);
        self.metrics.rule_eval_ns(t.elapsed().as_nanos() as u64);
        if let Some(id) = ev.enforcement_rule
            && let Some(&i) = self.kernel_rules.get(id as usize)
            && !self.matched.contains(&i)
        {
            self.matched.push(i);
        }
        for i in self.matched.drain(..) {
            let rule = &self.engine.rules()[i];
            if rule.priority > self.min_priority {
                continue;
            }
            let alert = self.engine.alert(i, ev, &self.hostname);
            self.outputs.send(alert);
        }
    }
}
