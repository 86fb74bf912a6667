//! The container cache: cgroup id -> `ContainerInfo`, filled behind the event path.
//!
//! A hit is one hash lookup under a read lock, with no system call: by construction, every
//! cgroup id the cache has seen maps to a slot holding the current `ContainerInfo`. A miss
//! (a cgroup seen for the first time) resolves the id to its cgroup path with a few file
//! system calls, classifies the path, and, for a new container, queues a metadata fetch
//! that background tasks do; the event path never touches a runtime socket. While a fetch
//! is in flight the lookup says `Pending` and the caller may wait for it, for at most
//! `metadata_wait`. When the runtime cannot be reached the slot settles with the id only,
//! and is fetched again when the runtime comes back.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::Duration;

use tokio::sync::{mpsc, watch};

use super::cgroup::{CgroupClass, ProcCgroups, classify};
use super::config::ContainerConfig;
use super::containerd;
use super::docker::{self, DockerClient};
use super::hierarchy::{CgroupV2, ScanLimits};
use super::k8s::{self, K8sLabels};
use super::{ContainerInfo, ContainerRuntime};

/// Counters of the stage, for the metrics exporter.
#[derive(Debug, Default)]
pub struct ContainerMetrics {
    /// Lookups of a cgroup id not seen before.
    pub cgroup_misses: AtomicU64,
    /// Cgroup ids that could not be mapped to a cgroup path (their task and directory gone).
    pub cgroups_unresolved: AtomicU64,
    /// Containers whose metadata a runtime gave.
    pub metadata_fetched: AtomicU64,
    /// Metadata fetches that ended with the id only (runtime unreachable or not knowing it).
    pub metadata_failed: AtomicU64,
    /// Containers dropped because they went away.
    pub evicted: AtomicU64,
    /// Times a runtime socket was found unreachable (one per outage).
    pub runtime_unreachable: AtomicU64,
}

fn bump(c: &AtomicU64) {
    c.fetch_add(1, Ordering::Relaxed);
}

/// What a slot publishes: the info, and whether a fetch that may complete it is in flight.
#[derive(Clone, Debug)]
pub struct Published {
    pub info: Arc<ContainerInfo>,
    pub pending: bool,
}

struct Slot {
    tx: watch::Sender<Published>,
}

impl Slot {
    fn new(info: Arc<ContainerInfo>, pending: bool) -> Arc<Slot> {
        Arc::new(Slot {
            tx: watch::Sender::new(Published { info, pending }),
        })
    }

    fn lookup(&self, wait: Duration) -> Lookup {
        let (info, pending) = {
            let p = self.tx.borrow();
            (p.info.clone(), p.pending)
        };
        if pending {
            Lookup::Pending(PendingInfo {
                partial: info,
                ready: self.tx.subscribe(),
                wait,
            })
        } else {
            Lookup::Ready(info)
        }
    }
}

/// The answer to a lookup.
#[derive(Debug)]
pub enum Lookup {
    /// All that will be known now (complete metadata, or the id only when no runtime can
    /// tell more).
    Ready(Arc<ContainerInfo>),
    /// A new container whose metadata is being fetched.
    Pending(PendingInfo),
}

#[derive(Debug)]
pub struct PendingInfo {
    /// The id-only info, usable right away.
    pub partial: Arc<ContainerInfo>,
    ready: watch::Receiver<Published>,
    wait: Duration,
}

impl Lookup {
    /// What is known now, without waiting.
    pub fn now(&self) -> &Arc<ContainerInfo> {
        match self {
            Lookup::Ready(info) => info,
            Lookup::Pending(p) => &p.partial,
        }
    }

    pub fn is_pending(&self) -> bool {
        matches!(self, Lookup::Pending(_))
    }

    /// The info once the fetch settles, or what is known after the configured
    /// `metadata_wait`.
    pub async fn resolve(self) -> Arc<ContainerInfo> {
        match self {
            Lookup::Ready(info) => info,
            Lookup::Pending(p) => {
                let wait = p.wait;
                p.wait_at_most(wait).await
            }
        }
    }

    /// As `resolve`, with an explicit limit.
    pub async fn resolve_within(self, max: Duration) -> Arc<ContainerInfo> {
        match self {
            Lookup::Ready(info) => info,
            Lookup::Pending(p) => p.wait_at_most(max).await,
        }
    }
}

impl PendingInfo {
    async fn wait_at_most(mut self, max: Duration) -> Arc<ContainerInfo> {
        let settled = tokio::time::timeout(max, async {
            self.ready
                .wait_for(|p| !p.pending)
                .await
                .map(|p| p.info.clone())
        })
        .await;
        match settled {
            Ok(Ok(info)) => info,
            // Timed out, or the container was evicted meanwhile: the latest value.
            _ => self.ready.borrow().info.clone(),
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FetchState {
    InFlight,
    Done,
    /// No runtime that could know it answered: asked again when one comes back.
    Unreachable,
    /// Every runtime answered and none knows it.
    Unknown,
}

struct Entry {
    slot: Arc<Slot>,
    runtime: ContainerRuntime,
    /// Set for containerd containers found by their bundle.
    namespace: Option<String>,
    cgroup_ids: HashSet<u64>,
    state: FetchState,
}

#[derive(Debug)]
struct FetchJob {
    full_id: String,
    runtime: ContainerRuntime,
    namespace: Option<String>,
}

struct State {
    containers: HashMap<String, Entry>,
    v2: Option<CgroupV2>,
}

struct Inner {
    cfg: ContainerConfig,
    k8s_rule: K8sLabels,
    metrics: Arc<ContainerMetrics>,
    by_cgroup: RwLock<HashMap<u64, Arc<Slot>>>,
    state: Mutex<State>,
    host: Arc<Slot>,
    fetch_tx: mpsc::UnboundedSender<FetchJob>,
    dockers: Vec<DockerClient>,
}

/// The stage. Cheap to clone; background tasks stop when the last clone is dropped.
#[derive(Clone)]
pub struct ContainerCache {
    inner: Arc<Inner>,
    _stop: Arc<watch::Sender<()>>,
}

impl ContainerCache {
    /// Starts the cache and its background tasks on the current tokio runtime.
    ///
    /// # Panics
    /// Outside a tokio runtime.
    pub fn start(cfg: ContainerConfig, metrics: Arc<ContainerMetrics>) -> ContainerCache {
        let limits = ScanLimits {
            max_dirs: cfg.cgroup_scan_max_dirs,
            min_full_interval: cfg.cgroup_rescan_interval,
        };
        let v2 = CgroupV2::discover(limits);
        if v2.is_none() {
            tracing::info!(
                "no cgroup v2 hierarchy mounted: containers are recognised from /proc/<pid>/cgroup on every lookup"
            );
        }
        let (fetch_tx, fetch_rx) = mpsc::unbounded_channel();
        let dockers = if cfg.enabled {
            cfg.docker_sockets
                .iter()
                .map(|s| DockerClient::new(s, cfg.request_timeout))
                .collect()
        } else {
            Vec::new()
        };
        let inner = Arc::new(Inner {
            k8s_rule: K8sLabels {
                pod_label_prefix: cfg.k8s_pod_label_prefix.clone(),
            },
            cfg,
            metrics,
            by_cgroup: RwLock::new(HashMap::new()),
            state: Mutex::new(State {
                containers: HashMap::new(),
                v2,
            }),
            host: Slot::new(ContainerInfo::host(), false),
            fetch_tx,
            dockers,
        });
        let (stop_tx, stop_rx) = watch::channel(());
        tokio::spawn(until_stopped(
            stop_rx.clone(),
            fetcher(inner.clone(), fetch_rx),
        ));
        for i in 0..inner.dockers.len() {
            tokio::spawn(until_stopped(
                stop_rx.clone(),
                watch_docker(inner.clone(), i),
            ));
        }
        tokio::spawn(until_stopped(stop_rx, reconciler(inner.clone())));
        ContainerCache {
            inner,
            _stop: Arc::new(stop_tx),
        }
    }

    /// The container of a task whose event carried kernel cgroup id `cgroup_id`. Never blocks
    /// on a runtime; a first sight of a cgroup reads `/proc/<pid>/cgroup` and `stat`s its
    /// directory.
    pub fn lookup(&self, cgroup_id: u64, pid: u32) -> Lookup {
        let wait = self.inner.cfg.metadata_wait;
        {
            let map = self
                .inner
                .by_cgroup
                .read()
                .unwrap_or_else(|e| e.into_inner());
            if let Some(slot) = map.get(&cgroup_id) {
                return slot.lookup(wait);
            }
        }
        self.inner.miss(cgroup_id, pid).lookup(wait)
    }

    /// The container of `pid` from its `/proc/<pid>/cgroup` alone, for tasks known before the
    /// monitor started (no kernel cgroup id at hand). Not cached by cgroup id.
    pub fn lookup_pid(&self, pid: u32) -> Lookup {
        let wait = self.inner.cfg.metadata_wait;
        let mut st = self.inner.lock_state();
        self.inner.classify_pid(&mut st, pid, None).lookup(wait)
    }

    /// Containers in the cache.
    pub fn cached_count(&self) -> usize {
        self.inner.lock_state().containers.len()
    }

    /// Cgroup ids in the cache (containers' and host ones).
    pub fn cgroup_count(&self) -> usize {
        self.inner
            .by_cgroup
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .len()
    }

    pub fn metrics(&self) -> &Arc<ContainerMetrics> {
        &self.inner.metrics
    }
}

async fn until_stopped(mut stop: watch::Receiver<()>, task: impl Future<Output = ()>) {
    tokio::select! {
        _ = stop.changed() => {}
        _ = task => {}
    }
}

impl Inner {
    fn lock_state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// First sight of a cgroup id.
    fn miss(&self, cgroup_id: u64, pid: u32) -> Arc<Slot> {
        bump(&self.metrics.cgroup_misses);
        let mut st = self.lock_state();
        if let Some(slot) = self
            .by_cgroup
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .get(&cgroup_id)
        {
            return slot.clone();
        }
        let path = match st.v2.as_mut() {
            // v1-only host: the kernel's id says nothing; the task's v1 paths do.
            None => return self.classify_pid(&mut st, pid, None),
            Some(v2) => v2.resolve(cgroup_id, pid),
        };
        let Some(path) = path else {
            bump(&self.metrics.cgroups_unresolved);
            return self.classify_pid(&mut st, pid, None);
        };
        // The v2 path decides, the root included: runc and crun put every container in the
        // v2 hierarchy on hybrid hosts too, and a root id cached as anything but host would
        // be wrong for all host tasks.
        let slot = self.slot_for(&mut st, classify(&path), Some(cgroup_id));
        self.by_cgroup
            .write()
            .unwrap_or_else(|e| e.into_inner())
            .insert(cgroup_id, slot.clone());
        slot
    }

    fn classify_pid(&self, st: &mut State, pid: u32, cgroup_id: Option<u64>) -> Arc<Slot> {
        let Ok(cgroups) = ProcCgroups::read(pid) else {
            return self.host.clone();
        };
        let (class, _) = cgroups.classify(|ns, name| self.containerd_knows(ns, name));
        self.slot_for(st, class, cgroup_id)
    }

    fn containerd_knows(&self, namespace: &str, name: &str) -> bool {
        containerd::find_bundle(&self.cfg.containerd_state_dirs, Some(namespace), name).is_some()
    }

    fn slot_for(&self, st: &mut State, class: CgroupClass, cgroup_id: Option<u64>) -> Arc<Slot> {
        let (runtime, full_id, namespace) = match class {
            CgroupClass::Host => return self.host.clone(),
            CgroupClass::Container { runtime, full_id } => (runtime, full_id, None),
            CgroupClass::ContainerdCandidate { namespace, name } => {
                if !self.containerd_knows(&namespace, &name) {
                    return self.host.clone();
                }
                (ContainerRuntime::Containerd, name, Some(namespace))
            }
        };
        let entry = st.containers.entry(full_id.clone()).or_insert_with(|| {
            let info = Arc::new(ContainerInfo::id_only(&full_id, runtime));
            let fetch = self.cfg.enabled;
            if fetch {
                let _ = self.fetch_tx.send(FetchJob {
                    full_id: full_id.clone(),
                    runtime,
                    namespace: namespace.clone(),
                });
            }
            Entry {
                slot: Slot::new(info, fetch),
                runtime,
                namespace,
                cgroup_ids: HashSet::new(),
                state: if fetch {
                    FetchState::InFlight
                } else {
                    FetchState::Unknown
                },
            }
        });
        if let Some(id) = cgroup_id {
            entry.cgroup_ids.insert(id);
        }
        entry.slot.clone()
    }

    /// Drops a container and every cgroup id that led to it.
    fn evict(&self, full_id: &str) {
        let mut st = self.lock_state();
        let Some(entry) = st.containers.remove(full_id) else {
            return;
        };
        let mut map = self.by_cgroup.write().unwrap_or_else(|e| e.into_inner());
        for id in &entry.cgroup_ids {
            map.remove(id);
            if let Some(v2) = st.v2.as_mut() {
                v2.forget(*id);
            }
        }
        bump(&self.metrics.evicted);
        tracing::debug!(
            container = full_id,
            "container gone, dropped from the cache"
        );
    }

    /// Queues a new fetch for every container whose runtime was unreachable.
    fn refetch_unreachable(&self) {
        let mut st = self.lock_state();
        for (full_id, entry) in st.containers.iter_mut() {
            if entry.state == FetchState::Unreachable {
                entry.state = FetchState::InFlight;
                let _ = self.fetch_tx.send(FetchJob {
                    full_id: full_id.clone(),
                    runtime: entry.runtime,
                    namespace: entry.namespace.clone(),
                });
            }
        }
    }

    fn refetch(&self, full_id: &str) {
        let mut st = self.lock_state();
        if let Some(entry) = st.containers.get_mut(full_id)
            && entry.state != FetchState::InFlight
        {
            entry.state = FetchState::InFlight;
            let _ = self.fetch_tx.send(FetchJob {
                full_id: full_id.to_string(),
                runtime: entry.runtime,
                namespace: entry.namespace.clone(),
            });
        }
    }

    fn publish(&self, job: &FetchJob, outcome: Outcome) {
        let mut st = self.lock_state();
        let Some(entry) = st.containers.get_mut(&job.full_id) else {
            return;
        };
        match outcome {
            Outcome::Found(info) => {
                bump(&self.metrics.metadata_fetched);
                entry.state = FetchState::Done;
                entry.slot.tx.send_replace(Published {
                    info: Arc::new(*info),
                    pending: false,
                });
            }
            Outcome::Unreachable | Outcome::Unknown => {
                bump(&self.metrics.metadata_failed);
                entry.state = if matches!(outcome, Outcome::Unreachable) {
                    FetchState::Unreachable
                } else {
                    FetchState::Unknown
                };
                entry.slot.tx.send_modify(|p| p.pending = false);
            }
        }
    }

    /// Drops cgroups whose directory is gone, and containers with nothing left (a containerd
    /// container also when its bundle is gone); asks again for metadata a runtime could not
    /// give.
    fn reconcile(&self) {
        let gone_containers: Vec<String> = {
            let mut st = self.lock_state();
            let gone = st.v2.as_mut().map(CgroupV2::prune).unwrap_or_default();
            if !gone.is_empty() {
                let mut map = self.by_cgroup.write().unwrap_or_else(|e| e.into_inner());
                for id in &gone {
                    map.remove(id);
                }
            }
            let gone: HashSet<u64> = gone.into_iter().collect();
            let mut dead = Vec::new();
            for (full_id, entry) in st.containers.iter_mut() {
                let had_cgroups = !entry.cgroup_ids.is_empty();
                entry.cgroup_ids.retain(|id| !gone.contains(id));
                let alive = match &entry.namespace {
                    Some(ns) => {
                        containerd::find_bundle(&self.cfg.containerd_state_dirs, Some(ns), full_id)
                            .is_some()
                    }
                    // Without known cgroups (v1-only host) only the runtime's events tell.
                    None => !had_cgroups || !entry.cgroup_ids.is_empty(),
                };
                if !alive {
                    dead.push(full_id.clone());
                }
            }
            dead
        };
        for full_id in &gone_containers {
            self.evict(full_id);
        }
        self.refetch_unreachable();
    }

    async fn fetch(&self, job: &FetchJob) -> Outcome {
        let mut unreachable = false;
        let docker_may_know =
            !matches!(job.runtime, ContainerRuntime::Crio) && job.namespace.is_none();
        if docker_may_know {
            match self.fetch_docker(job).await {
                Outcome::Found(info) => return Outcome::Found(info),
                Outcome::Unreachable => unreachable = true,
                Outcome::Unknown => {}
            }
        }
        if matches!(
            job.runtime,
            ContainerRuntime::Containerd | ContainerRuntime::Cri
        ) {
            let state_dirs = self.cfg.containerd_state_dirs.clone();
            let (id, ns) = (job.full_id.clone(), job.namespace.clone());
            let read = tokio::task::spawn_blocking(move || {
                containerd::find_bundle(&state_dirs, ns.as_deref(), &id)
                    .map(|(_, dir)| containerd::read_bundle(&dir, &id))
            })
            .await;
            match read {
                Ok(Some(Ok(info))) => return Outcome::Found(Box::new(info)),
                Ok(Some(Err(e))) => tracing::debug!(error = %e, "containerd bundle unreadable"),
                Ok(None) | Err(_) => {}
            }
        }
        if unreachable {
            Outcome::Unreachable
        } else {
            Outcome::Unknown
        }
    }

    async fn fetch_docker(&self, job: &FetchJob) -> Outcome {
        let mut unreachable = false;
        for client in &self.dockers {
            match client.inspect_container(&job.full_id).await {
                Ok(Some(c)) => {
                    let image = match c.image.as_deref() {
                        Some(image) => client.inspect_image(image).await.ok().flatten(),
                        None => None,
                    };
                    let runtime = if job.runtime == ContainerRuntime::Podman {
                        ContainerRuntime::Podman
                    } else {
                        ContainerRuntime::Docker
                    };
                    let mut info = docker::to_info(runtime, &c, image.as_ref(), &self.k8s_rule);
                    self.add_sandbox_labels(client, &mut info).await;
                    return Outcome::Found(Box::new(info));
                }
                Ok(None) => {}
                Err(e) => {
                    if e.is_unreachable() {
                        unreachable = true;
                    }
                    tracing::debug!(error = %e, "container metadata fetch failed");
                }
            }
        }
        if unreachable {
            Outcome::Unreachable
        } else {
            Outcome::Unknown
        }
    }

    /// Pod labels from the pod's sandbox container, under the container's own prefixed ones.
    async fn add_sandbox_labels(&self, client: &DockerClient, info: &mut ContainerInfo) {
        if !self.cfg.k8s_pod_labels_from_sandbox {
            return;
        }
        let Some(k8s) = info.k8s.as_mut().filter(|k| !k.pod_uid.is_empty()) else {
            return;
        };
        let filters = [
            format!("{}={}", k8s::POD_UID, k8s.pod_uid),
            "io.kubernetes.docker.type=podsandbox".to_string(),
        ];
        match client.containers_with_labels(&filters).await {
            Ok(sandboxes) => {
                if let Some(labels) = sandboxes.into_iter().find_map(|s| s.labels) {
                    for (k, v) in k8s::sandbox_pod_labels(&labels) {
                        k8s.pod_labels.entry(k).or_insert(v);
                    }
                }
            }
            Err(e) => tracing::debug!(error = %e, "pod sandbox lookup failed"),
        }
    }
}

enum Outcome {
    Found(Box<ContainerInfo>),
    Unreachable,
    Unknown,
}

async fn fetcher(inner: Arc<Inner>, mut jobs: mpsc::UnboundedReceiver<FetchJob>) {
    while let Some(job) = jobs.recv().await {
        let inner = inner.clone();
        tokio::spawn(async move {
            let outcome = inner.fetch(&job).await;
            inner.publish(&job, outcome);
        });
    }
}

/// Follows one engine's container events; reconnects with backoff. An outage is logged once,
/// when it starts; the recovery once, when it ends.
async fn watch_docker(inner: Arc<Inner>, index: usize) {
    let Some(client) = inner.dockers.get(index).cloned() else {
        return;
    };
    let first_backoff = Duration::from_millis(100);
    let mut backoff = first_backoff;
    let mut down = false;
    loop {
        match client.events().await {
            Ok(mut events) => {
                if down {
                    tracing::info!(
                        socket = %client.socket().display(),
                        "Docker engine reachable again: fetching metadata of the containers seen meanwhile"
                    );
                    down = false;
                }
                backoff = first_backoff;
                inner.refetch_unreachable();
                loop {
                    match events.next().await {
                        Ok(Some(ev)) if ev.kind == "container" || ev.kind.is_empty() => {
                            match ev.action.as_str() {
                                "destroy" => inner.evict(&ev.actor.id),
                                "rename" => inner.refetch(&ev.actor.id),
                                _ => {}
                            }
                        }
                        Ok(Some(_)) => {}
                        Ok(None) => break,
                        Err(e) => {
                            tracing::debug!(error = %e, "Docker event stream broken");
                            break;
                        }
                    }
                }
            }
            Err(e) => {
                if !down {
                    down = true;
                    bump(&inner.metrics.runtime_unreachable);
                    tracing::warn!(
                        socket = %client.socket().display(),
                        error = %e,
                        "Docker engine unreachable: containers get their ids only, until it answers"
                    );
                }
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(inner.cfg.reconnect_max_backoff.max(first_backoff));
            }
        }
    }
}

async fn reconciler(inner: Arc<Inner>) {
    let period = inner.cfg.reconcile_interval.max(Duration::from_millis(10));
    let mut tick = tokio::time::interval(period);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    tick.tick().await;
    loop {
        tick.tick().await;
        let inner = inner.clone();
        // Stats of every known cgroup: off the async workers.
        let _ = tokio::task::spawn_blocking(move || inner.reconcile()).await;
    }
}
