//! Wiring the stages together for `monitor run` and `monitor trace`: probe -> reader ->
//! process table -> (container) -> (rules -> outputs) or JSON lines.

use std::collections::BTreeSet;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::time::Duration;

use anyhow::{Context, Result};
use tokio::signal::unix::{SignalKind, signal};

use std::sync::Arc;

use tracing::{error, info, warn};

use crate::cli::{CommonArgs, RunArgs, TraceArgs};
use crate::config::Config;
use crate::container::{ContainerCache, ContainerConfig, ContainerMetrics};
use crate::enforce::{
    self,
    tables::{CgroupFacts, KernelTables},
};
use crate::event::{EventType, FdInfo, FdKind, L4Proto, SocketTuple};
use crate::metrics::Metrics;
use crate::output::Outputs;
use crate::pipeline::{Detector, Enricher};
use crate::probe::{
    CaptureConfig, CaptureSet, Floor, Prefilter, Probe, ProbeConfig, ProbeError, SyscallHook,
};
use crate::process::{ProcessTable, TableConfig};
use crate::reader::Reader;
use crate::reload::{LiveConfig, ReloadReason, Reloader};
use crate::rules::{Engine, Filter, LoadOptions};
use crate::webserver::{self, Health};

/// Exit code for missing privileges or an unusable kernel facility.
pub const EXIT_ENV: u8 = 2;

/// A failure the user must fix outside the monitor (privileges, tracefs): one clear line.
#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct EnvironmentError(pub String);

/// The kernel side's settings from the configuration's `capture` section.
fn probe_config(cfg: &Config) -> Result<ProbeConfig> {
    let capture: CaptureConfig = cfg.section("capture")?.unwrap_or_default();
    Ok(ProbeConfig {
        hook: capture.syscall_hook,
        ..ProbeConfig::default()
    })
}

fn load_probe(cfg: &ProbeConfig) -> Result<Probe> {
    let probe = Probe::load(cfg).map_err(probe_error)?;
    info!("syscall hook: {}", cfg.hook);
    Ok(probe)
}

fn probe_error(e: ProbeError) -> anyhow::Error {
    match e {
        ProbeError::Privileges(_) | ProbeError::Tracefs(_) => {
            anyhow::Error::new(EnvironmentError(e.to_string()))
        }
        other => anyhow::Error::new(other),
    }
}

/// `monitor bench-floor`: a do-nothing program where the exit program would be, until
/// SIGTERM or SIGINT. The capture benchmark runs its open+close loop under it to show how
/// much of the monitor's cost is the tracepoint hit itself.
pub async fn bench_floor(hook: SyscallHook, read_path: bool) -> Result<()> {
    let cfg = ProbeConfig {
        hook,
        ..ProbeConfig::default()
    };
    let floor = Floor::attach(&cfg, read_path).map_err(probe_error)?;
    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let what = if read_path {
        "program that only reads openat's path"
    } else {
        "do-nothing program"
    };
    let on = match hook {
        SyscallHook::SyscallTracepoints => "sys_exit_openat",
        SyscallHook::RawSysExit => "the raw sys_exit",
    };
    say(&format!("monitor: {what} on {on}, ready"));
    tokio::select! {
        _ = term.recv() => {}
        _ = int.recv() => {}
    }
    drop(floor);
    Ok(())
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
    let names = KERNEL_DROP_NAMES;
    let fnames = [
        "disabled",
        "prefilter",
        "failed",
        "self",
        "inet_stream",
        "no_address",
        "compat",
    ];
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

/// A line for whoever reads stderr. When nobody does any more (the pipe's reader is gone),
/// the daemon carries on and exits normally, where `eprintln!` would panic.
fn say(line: &str) {
    let _ = writeln!(std::io::stderr(), "{line}");
}

/// Configuration for a command: the file, `-o` overrides, and `-r` as rules_files overrides
/// (so that a reload re-applies them).
fn load_config(common: &CommonArgs) -> Result<(LiveConfig, Vec<String>)> {
    let mut overrides = Vec::new();
    if !common.rules.is_empty() {
        overrides.push("rules_files=[]".to_string());
        for r in &common.rules {
            overrides.push(format!("rules_files[]={}", r.display()));
        }
    }
    overrides.extend(common.options.iter().cloned());
    Ok(LiveConfig::load(common.config.as_deref(), &overrides)?)
}

fn load_rules(cfg: &Config) -> Result<(Engine, Vec<crate::rules::Warning>)> {
    if cfg.rules_files.is_empty() {
        anyhow::bail!("no rules files: give -r FILE_OR_DIR, or rules_files in the configuration");
    }
    let opts = LoadOptions {
        rule_matching: match cfg.rule_matching {
            crate::config::RuleMatching::First => crate::rules::RuleMatching::First,
            crate::config::RuleMatching::All => crate::rules::RuleMatching::All,
        },
    };
    let appends = crate::append_output::entries(cfg)?;
    let (mut engine, warnings) = Engine::load(&cfg.rules_files, &opts)?;
    crate::append_output::apply(&mut engine, &appends).map_err(|e| anyhow::anyhow!(e))?;
    Ok((engine, warnings))
}

/// What the kernel must capture for these rules.
pub fn capture_set(engine: &Engine) -> CaptureSet {
    let never = never_on_any_fd(engine);
    let kinds = engine
        .event_types()
        .iter()
        .map(|t| t.kind())
        .filter(|k| !never.contains(k))
        .collect();
    let prefilter = engine.path_prefilter().and_then(|pf| {
        // The kernel passes every path with `..`, `/.` or `//` in it, so raw-name needles
        // containing `..` are covered; any other needle it cannot judge.
        if pf.raw_contains.iter().all(|n| n.contains("..")) {
            Some(Prefilter {
                prefixes: pf.prefixes,
                suffixes: pf.suffixes,
            })
        } else {
            None
        }
    });
    CaptureSet {
        kinds,
        prefilter,
        skip_inet_stream: inet_stream_skips(engine),
        skip_no_addr: no_addr_skips(engine),
    }
}

/// The send and receive kinds, which the socket analyses below may drop.
const SOCKET_IO: [EventType; 4] = [
    EventType::Sendto,
    EventType::Sendmsg,
    EventType::Recvfrom,
    EventType::Recvmsg,
];

/// The fd fields those analyses decide on: the socket's protocol and type.
const SOCKET_FIELDS: [&str; 3] = ["fd.l4proto", "fd.type", "fd.typechar"];

/// Send/receive kinds that no rule can match whatever the socket, so that they are not
/// captured at all (a tracepoint hit costs even when the program drops the event at once).
/// Decided case by case over every value the fd fields can take (no fd, each fd type, each
/// protocol), with only those fields known. Falco's `outbound` macro names sendto and
/// sendmsg for non-TCP sockets only, and its one rule then asks for TCP: no send can match.
fn never_on_any_fd(engine: &Engine) -> BTreeSet<u16> {
    const KINDS: [FdKind; 16] = [
        FdKind::File,
        FdKind::Directory,
        FdKind::Ipv4,
        FdKind::Ipv6,
        FdKind::Unix,
        FdKind::Pipe,
        FdKind::Event,
        FdKind::Signalfd,
        FdKind::Eventpoll,
        FdKind::Inotify,
        FdKind::Timerfd,
        FdKind::Netlink,
        FdKind::Bpf,
        FdKind::Userfaultfd,
        FdKind::Memfd,
        FdKind::Unknown,
    ];
    const PROTOS: [L4Proto; 5] = [
        L4Proto::Tcp,
        L4Proto::Udp,
        L4Proto::Icmp,
        L4Proto::Raw,
        L4Proto::Unknown,
    ];
    let ip = IpAddr::V4(Ipv4Addr::LOCALHOST);
    let mut cases = vec![None];
    for k in KINDS {
        cases.push(Some(probe_fd(k, None, ip)));
        for p in PROTOS {
            cases.push(Some(probe_fd(k, Some(p), ip)));
        }
    }
    socket_io_never(engine, &cases)
}

/// Send/receive kinds that no rule can match on a TCP socket (v4 or v6), by three-valued
/// evaluation of the rules with only the socket's protocol and type known.
fn inet_stream_skips(engine: &Engine) -> BTreeSet<u16> {
    socket_io_never(
        engine,
        &[
            Some(probe_fd(
                FdKind::Ipv4,
                Some(L4Proto::Tcp),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            )),
            Some(probe_fd(
                FdKind::Ipv6,
                Some(L4Proto::Tcp),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            )),
        ],
    )
}

/// The send/receive kinds that no rule can match on any of `fds` (None: the fd is not
/// known), with only the socket fields known.
fn socket_io_never(engine: &Engine, fds: &[Option<FdInfo>]) -> BTreeSet<u16> {
    SOCKET_IO
        .into_iter()
        .filter(|&ty| {
            fds.iter().all(|fd| {
                let ev = crate::event::Event {
                    fd: fd.clone(),
                    ..crate::event::Event::blank(ty)
                };
                !engine.may_match(&ev, &SOCKET_FIELDS)
            })
        })
        .map(EventType::kind)
        .collect()
}

/// A hypothetical fd for the analyses: of this type, with a socket tuple of `proto` (at
/// `ip`) when given, not renamed; its other fields are never among the known ones.
fn probe_fd(kind: FdKind, proto: Option<L4Proto>, ip: IpAddr) -> FdInfo {
    FdInfo {
        num: 3,
        kind,
        name: String::new(),
        nameraw: String::new(),
        open_flags: 0,
        tuple: proto.map(|proto| SocketTuple {
            proto,
            local: (ip, 1),
            remote: (ip, 2),
            local_is_server: false,
        }),
        name_changed: false,
    }
}

/// Sends that no rule can match when they carry no destination address (a connected socket:
/// `fd.name_changed` is false, as in Falco), by three-valued evaluation of the rules with only
/// that known. Only sendto, whose address is an argument the kernel sees without reading
/// user memory.
fn no_addr_skips(engine: &Engine) -> BTreeSet<u16> {
    let ev = crate::event::Event {
        fd: Some(probe_fd(
            FdKind::Unknown,
            None,
            IpAddr::V4(Ipv4Addr::LOCALHOST),
        )),
        ..crate::event::Event::blank(EventType::Sendto)
    };
    if engine.may_match(&ev, &["fd.name_changed"]) {
        BTreeSet::new()
    } else {
        [EventType::Sendto.kind()].into_iter().collect()
    }
}

/// The `enforcement:` section of the configuration.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EnforcementConfig {
    /// Every enforcing rule only reports ("would kill"), whatever the rules say.
    pub dry_run: bool,
}

/// Compile the enforcing rules of `engine` for the kernel; every rule that cannot be enforced
/// is named with the reason.
fn enforcement_tables(engine: &Engine, cfg: &Config) -> Result<KernelTables> {
    let ecfg: EnforcementConfig = cfg.section("enforcement")?.unwrap_or_default();
    let rules = enforce::compile_all(engine).map_err(|errors| {
        anyhow::anyhow!(
            "{}",
            errors
                .iter()
                .map(ToString::to_string)
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let t = KernelTables::build(&rules, ecfg.dry_run);
    let limits = [
        (
            "program names",
            t.names.len(),
            monitor_common::enforce::MAX_NAMES as usize,
        ),
        ("ancestor names", t.comms.len(), 4096),
        ("program paths", t.exes.len(), 1024),
        ("uids", t.uids.len(), 1024),
    ];
    for (what, n, max) in limits {
        if n > max {
            anyhow::bail!(
                "the enforcing rules name {n} {what}; the kernel's tables hold {max}: nothing is enforced"
            );
        }
    }
    Ok(t)
}

fn container_cache(cfg: &Config) -> Result<ContainerCache> {
    let ccfg: ContainerConfig = cfg.section("container")?.unwrap_or_default();
    Ok(ContainerCache::start(
        ccfg,
        Arc::new(ContainerMetrics::default()),
    ))
}

fn hostname() -> Arc<str> {
    nix::unistd::gethostname()
        .ok()
        .and_then(|h| h.into_string().ok())
        .map(Arc::from)
        .unwrap_or_else(|| Arc::from("localhost"))
}

pub async fn run(args: RunArgs) -> Result<()> {
    let (mut live, warnings) = load_config(&args.common)?;
    for w in &warnings {
        warn!("config: {w}");
    }
    let cfg = live.current();
    let (engine, rule_warnings) = load_rules(&cfg)?;
    for w in &rule_warnings {
        warn!("rules: {w}");
    }
    let mut engine = Arc::new(engine);
    let metrics = Arc::new(Metrics::new());
    let health = Health::new();
    let web = webserver::serve(&cfg.webserver, metrics.clone(), health.clone()).await?;
    if let Some(w) = &web {
        info!("webserver listening on {}", w.local_addr());
    }
    let outputs = Arc::new(Outputs::start(&cfg, metrics.clone())?);

    let mut tables = enforcement_tables(&engine, &cfg)?;
    let probe_cfg = probe_config(&cfg)?;
    let mut probe = load_probe(&probe_cfg)?;
    probe.set_capture(&capture_set(&engine))?;
    probe.set_enforcement(&tables)?;
    if !tables.is_empty() {
        info!(
            "enforcing {} rule(s) in the kernel",
            tables.rule_index.len()
        );
    }
    let mut cgroup_facts = CgroupFacts::default();
    let mut enricher = Enricher {
        table: ProcessTable::seeded(TableConfig::default()),
        containers: Some(container_cache(&cfg)?),
    };
    let mut reader = probe.take_reader()?;
    let mut detector = Detector::new(
        engine.clone(),
        outputs.clone(),
        metrics.clone(),
        hostname(),
        cfg.priority,
    );
    detector.kernel_rules = tables.rule_index.clone();
    let mut reloader = Reloader::start(live.watched_paths(), Duration::from_secs(2), true)?;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    let mut usr2 = signal(SignalKind::user_defined2())?;
    health.set_ready(true);
    info!(
        "{} rules loaded ({} enabled), capturing {} event types",
        engine.rules().len(),
        engine.rules().iter().filter(|r| r.enabled).count(),
        engine.event_types().len()
    );
    say("monitor: running, ready");

    let mut events = 0u64;
    let mut tick = tokio::time::interval(Duration::from_secs(5));
    let mut sweep = tokio::time::interval(Duration::from_secs(30));
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            r = reader.next_batch(&mut batch, 256) => {
                r?;
                for rec in batch.drain(..) {
                    if let Some(ev) = enricher.enrich(rec).await {
                        events += 1;
                        let cg = ev.process.cgroup_id;
                        if let Some(bits) = cgroup_facts.update(&tables, cg, &ev.container)
                            && let Err(e) = probe.set_cgroup_bits(cg, bits)
                        {
                            warn!("enforcement: cannot update the facts of cgroup {cg}: {e}");
                        }
                        detector.handle(&ev);
                    }
                }
            }
            reason = reloader.next() => {
                if reason == ReloadReason::ReopenFiles {
                    outputs.reopen();
                    info!("output files will be reopened before their next alert (SIGUSR1)");
                    continue;
                }
                info!("reload requested ({reason:?})");
                match reload(&mut live, &outputs) {
                    Ok((new_engine, new_cfg, new_tables)) => {
                        if probe_config(&new_cfg).map(|c| c.hook).ok() != Some(probe_cfg.hook) {
                            warn!("capture.syscall_hook changed: it takes effect at the next restart");
                        }
                        probe.set_capture(&capture_set(&new_engine))?;
                        probe.set_enforcement(&new_tables)?;
                        cgroup_facts = CgroupFacts::default();
                        tables = new_tables;
                        detector.kernel_rules = tables.rule_index.clone();
                        engine = Arc::new(new_engine);
                        detector.engine = engine.clone();
                        detector.min_priority = new_cfg.priority;
                        reloader.watch(live.watched_paths());
                        metrics.reload(true);
                        info!("reload done: {} rules", engine.rules().len());
                    }
                    Err(e) => {
                        metrics.reload(false);
                        error!("reload failed, the previous rules and configuration stay in force: {e:#}");
                    }
                }
            }
            _ = tick.tick() => {
                let c = probe.counters();
                for (i, name) in KERNEL_DROP_NAMES.iter().enumerate() {
                    metrics.kernel_drops(name, c.drops[i]);
                }
                metrics.set_process_table_size(enricher.table.len());
                if let Some(cc) = &enricher.containers {
                    metrics.set_container_cache_size(cc.cached_count());
                }
            }
            _ = sweep.tick() => enricher.table.sweep(),
            _ = usr2.recv() => say(&stats_line(&probe, &enricher.table, &reader, events)),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    health.set_ready(false);
    // Events of before the signal may still wait in the ring (the daemon was busy, or the
    // signal won the race in `select!`): finish them, so that their alerts are delivered.
    // Bounded in time, since a busy host never leaves the ring empty.
    let until = tokio::time::Instant::now() + SHUTDOWN_RING_DRAIN;
    while tokio::time::Instant::now() < until {
        reader.drain_ready(&mut batch, 256);
        if batch.is_empty() {
            break;
        }
        for rec in batch.drain(..) {
            if let Some(ev) = enricher.enrich(rec).await {
                events += 1;
                detector.handle(&ev);
            }
        }
    }
    let report = outputs.shutdown(Duration::from_secs(5)).await;
    if report.total_lost() > 0 {
        warn!(
            "{} alerts could not be delivered before shutdown",
            report.total_lost()
        );
    }
    if let Some(w) = web {
        w.shutdown().await;
    }
    say(&stats_line(&probe, &enricher.table, &reader, events));
    Ok(())
}

/// Longest time spent at shutdown on events still in the ring buffer.
const SHUTDOWN_RING_DRAIN: Duration = Duration::from_secs(2);

const KERNEL_DROP_NAMES: [&str; 3] = ["ringbuf_full", "pending_full", "read_failed"];

/// Read the configuration and the rules it names; both or neither.
fn reload(live: &mut LiveConfig, outputs: &Outputs) -> Result<(Engine, Arc<Config>, KernelTables)> {
    let (new_cfg, warnings) = live.read()?;
    let (engine, rule_warnings) = load_rules(&new_cfg)?;
    let tables = enforcement_tables(&engine, &new_cfg)?;
    for w in &warnings {
        warn!("config: {w}");
    }
    for w in &rule_warnings {
        warn!("rules: {w}");
    }
    let cfg = live.apply(new_cfg, outputs)?;
    Ok((engine, cfg, tables))
}

pub async fn trace(args: TraceArgs) -> Result<()> {
    let filter = match &args.filter {
        Some(f) => Some(Filter::compile(f).map_err(|e| anyhow::anyhow!("--filter: {e}"))?),
        None => None,
    };
    let (live, warnings) = load_config(&args.common)?;
    for w in &warnings {
        warn!("config: {w}");
    }
    let cfg = live.current();
    let kinds = kinds_for(&args.types)?;
    let shown: Option<BTreeSet<EventType>> = (!args.types.is_empty()).then(|| {
        EventType::ALL
            .iter()
            .copied()
            .filter(|t| kinds.contains(&t.kind()))
            .collect()
    });
    let mut probe = load_probe(&probe_config(&cfg)?)?;
    probe.set_capture(&CaptureSet {
        kinds,
        prefilter: None,
        skip_inet_stream: BTreeSet::new(),
        skip_no_addr: BTreeSet::new(),
    })?;
    let mut enricher = Enricher {
        table: ProcessTable::seeded(TableConfig::default()),
        containers: Some(container_cache(&cfg)?),
    };
    let mut reader = probe.take_reader()?;
    // Handlers first: a signal that arrives right after `ready` must not kill us.
    let mut term = signal(SignalKind::terminate())?;
    let mut usr1 = signal(SignalKind::user_defined1())?;
    let mut int = signal(SignalKind::interrupt())?;
    say("monitor: tracing, ready");

    let mut events = 0u64;
    let mut sweep = tokio::time::interval(Duration::from_secs(30));
    let stdout = std::io::stdout();
    let mut batch = Vec::with_capacity(256);
    loop {
        tokio::select! {
            r = reader.next_batch(&mut batch, 256) => {
                r?;
                for rec in batch.drain(..) {
                    if let Some(ev) = enricher.enrich(rec).await {
                        events += 1;
                        if shown.as_ref().is_some_and(|s| !s.contains(&ev.ty))
                            || filter.as_ref().is_some_and(|f| !f.matches(&ev))
                        {
                            continue;
                        }
                        let mut out = stdout.lock();
                        let line = crate::trace::event_json(&ev);
                        if writeln!(out, "{line}").is_err() {
                            return Ok(()); // stdout closed: the reader of our output is gone
                        }
                    }
                }
                let _ = stdout.lock().flush();
            }
            _ = sweep.tick() => enricher.table.sweep(),
            _ = usr1.recv() => say(&stats_line(&probe, &enricher.table, &reader, events)),
            _ = term.recv() => break,
            _ = int.recv() => break,
        }
    }
    say(&stats_line(&probe, &enricher.table, &reader, events));
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::LoadOptions;
    use monitor_common::kind;
    use std::path::PathBuf;

    fn engine(yaml: &str) -> Engine {
        Engine::load_str("t.yaml", yaml, &LoadOptions::default())
            .expect("rules load")
            .0
    }

    #[test]
    fn falco_rules_let_the_kernel_drop_sends_on_tcp_and_sends_without_an_address() {
        let falco = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/falco_rules.yaml");
        let (e, _) = Engine::load(&[falco], &LoadOptions::default()).expect("Falco's rules");
        let set = capture_set(&e);
        assert!(set.skip_inet_stream.contains(&kind::SENDTO));
        assert!(set.skip_no_addr.contains(&kind::SENDTO));
        // The outbound macro names sendto and sendmsg on non-TCP sockets, and its only rule
        // asks for TCP: no send can match, so sends are not captured at all. Connects are.
        assert!(!set.kinds.contains(&kind::SENDTO), "{:?}", set.kinds);
        assert!(!set.kinds.contains(&kind::SENDMSG), "{:?}", set.kinds);
        assert!(set.kinds.contains(&kind::CONNECT));
    }

    #[test]
    fn sends_that_some_socket_can_match_stay_captured() {
        for cond in [
            "evt.type=sendto and fd.l4proto=udp",
            "evt.type in (sendto, sendmsg) and fd.l4proto != tcp",
            "evt.type=sendmsg and fd.typechar=u",
            "evt.type=sendto and not fd.l4proto exists",
            "evt.type=recvfrom",
        ] {
            let e = engine(&format!(
                "- rule: r\n  desc: d\n  condition: {cond}\n  output: o\n  priority: WARNING\n"
            ));
            let kinds = capture_set(&e).kinds;
            assert!(
                kinds.contains(&kind::SENDTO)
                    || kinds.contains(&kind::SENDMSG)
                    || kinds.contains(&kind::RECVFROM),
                "{cond}: {kinds:?}"
            );
        }
        let e = engine(
            "- rule: r\n  desc: d\n  condition: evt.type=sendto and fd.l4proto=udp and fd.l4proto=tcp\n  output: o\n  priority: WARNING\n",
        );
        assert!(!capture_set(&e).kinds.contains(&kind::SENDTO));
    }

    #[test]
    fn a_rule_that_can_match_a_connected_send_keeps_sends_without_an_address() {
        let e = engine(
            "- rule: DNS send\n  desc: d\n  condition: evt.type=sendto and fd.sport=53\n  output: o\n  priority: WARNING\n",
        );
        let set = capture_set(&e);
        assert!(set.kinds.contains(&kind::SENDTO));
        assert!(!set.skip_no_addr.contains(&kind::SENDTO));
        let e = engine(
            "- rule: New destination\n  desc: d\n  condition: evt.type=sendto and fd.name_changed=true\n  output: o\n  priority: WARNING\n",
        );
        assert!(capture_set(&e).skip_no_addr.contains(&kind::SENDTO));
    }
}
