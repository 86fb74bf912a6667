//! The container stage against a real Docker engine (a private dockerd per test).

use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::docker::{Container, Dockerd, Rootfs, RunSpec, cgroup_id_of_pid};
use monitor::container::docker::{self, DockerClient};
use monitor::container::k8s::K8sLabels;
use monitor::container::{
    ContainerCache, ContainerConfig, ContainerInfo, ContainerMetrics, ContainerRuntime, Lookup,
};

const IMAGE: &str = "monitor-test/busybox:1.0";

fn config(d: &Dockerd) -> ContainerConfig {
    ContainerConfig {
        reconcile_interval: Duration::from_millis(200),
        ..events_only_config(d)
    }
}

/// No periodic reconcile within a test's time: what happens comes from the engine's events
/// and reconnections alone.
fn events_only_config(d: &Dockerd) -> ContainerConfig {
    ContainerConfig {
        docker_sockets: vec![d.socket().to_path_buf()],
        containerd_state_dirs: Vec::new(),
        reconcile_interval: Duration::from_secs(3600),
        reconnect_max_backoff: Duration::from_millis(200),
        ..ContainerConfig::default()
    }
}

/// Everything the library logs in this test binary, as text.
fn captured_logs() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let buf = Arc::new(Mutex::new(Vec::new()));
        let sink = buf.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .with_writer(move || LogSink(sink.clone()))
            .try_init();
        buf
    })
    .clone()
}

struct LogSink(Arc<Mutex<Vec<u8>>>);

impl std::io::Write for LogSink {
    fn write(&mut self, data: &[u8]) -> std::io::Result<usize> {
        if let Ok(mut b) = self.0.lock() {
            b.extend_from_slice(data);
        }
        Ok(data.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Log lines that contain every one of `needles`.
fn log_lines_with(needles: &[&str]) -> usize {
    let logs = captured_logs();
    let text = logs
        .lock()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .unwrap_or_default();
    text.lines()
        .filter(|l| needles.iter().all(|n| l.contains(n)))
        .count()
}

fn unique(prefix: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n:x}", std::process::id())
}

/// Polls `f` until it is true or `limit` passes.
async fn eventually(limit: Duration, mut f: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + limit;
    while Instant::now() < deadline {
        if f() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    f()
}

async fn lookup_container(cache: &ContainerCache, c: &Container) -> (Lookup, u64) {
    let pid = c.pid().expect("container pid");
    let cgroup_id = c.cgroup_id().expect("container cgroup id");
    (cache.lookup(cgroup_id, pid), cgroup_id)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn container_cgroups_resolve_to_id_and_metadata() {
    let Some(d) = Dockerd::start() else { return };
    d.busybox_image(IMAGE).expect("import busybox image");
    let uid = format!("0b4a7a4e-1f4a-4f2b-9a55-{:012x}", std::process::id());
    // The pod's sandbox, as dockershim and cri-dockerd make it: it carries the pod's labels.
    let _sandbox = d
        .run(
            &RunSpec::new(&unique("k8s_POD"), IMAGE, &["/bin/sleep", "600"])
                .kubernetes_pod("shop", "web-0", &uid)
                .label("io.kubernetes.docker.type", "podsandbox")
                .label("app", "web")
                .label("tier", "front"),
        )
        .expect("run sandbox");
    let name = unique("web");
    let c = d
        .run(
            &RunSpec::new(&name, IMAGE, &["/bin/sleep", "600"])
                .kubernetes_pod("shop", "web-0", &uid)
                .label("io.kubernetes.docker.type", "container")
                .label("io.kubernetes.pod.label.release", "canary")
                .label("team", "blue"),
        )
        .expect("run container");
    c.exec_detached(&["/bin/sleep", "500"]).expect("exec");
    assert!(
        c.cgroup_path()
            .unwrap()
            .starts_with(&format!("/kubepods/besteffort/pod{uid}/")),
        "kubelet cgroup layout: {}",
        c.cgroup_path().unwrap()
    );

    let metrics = Arc::new(ContainerMetrics::default());
    let cache = ContainerCache::start(config(&d), metrics.clone());

    let (first, cgroup_id) = lookup_container(&cache, &c).await;
    // Right away, without any runtime answer: the id from the cgroup.
    assert_eq!(first.now().id, c.id[..12]);
    assert_eq!(first.now().full_id, c.id);
    let info = first.resolve_within(Duration::from_secs(10)).await;
    assert!(info.metadata_complete, "metadata fetched: {info:?}");
    assert_eq!(info.runtime, ContainerRuntime::Docker);
    assert_eq!(info.name.as_deref(), Some(name.as_str()));
    assert_eq!(info.image.as_deref(), Some(IMAGE));
    assert_eq!(
        info.image_repository.as_deref(),
        Some("monitor-test/busybox")
    );
    assert_eq!(info.image_tag.as_deref(), Some("1.0"));
    assert_eq!(info.privileged, Some(false));
    assert_eq!(info.labels.get("team").map(String::as_str), Some("blue"));
    let now_ns = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64;
    let start = info.start_ts.expect("start_ts");
    assert!(
        start <= now_ns && now_ns - start < 600_000_000_000,
        "start_ts {start} vs now {now_ns}"
    );
    let k8s = info.k8s.clone().expect("k8s context");
    assert_eq!(k8s.pod_name, "web-0");
    assert_eq!(k8s.ns_name, "shop");
    assert_eq!(k8s.pod_uid, uid);
    assert_eq!(
        k8s.pod_labels.get("release").map(String::as_str),
        Some("canary"),
        "prefixed label"
    );
    assert_eq!(
        k8s.pod_labels.get("tier").map(String::as_str),
        Some("front"),
        "sandbox label"
    );
    assert_eq!(
        k8s.pod_labels.get("app").map(String::as_str),
        Some("web"),
        "sandbox label"
    );

    // Every process of the container, by its own cgroup id, is the same container, at once.
    let pids = c.pids().expect("docker top");
    assert!(pids.len() >= 2, "init and the exec'd process: {pids:?}");
    for pid in pids {
        let id = cgroup_id_of_pid(pid).expect("cgroup id of pid");
        assert_eq!(id, cgroup_id);
        match cache.lookup(id, pid) {
            Lookup::Ready(again) => assert!(Arc::ptr_eq(&again, &info), "cached value"),
            Lookup::Pending(_) => panic!("a settled container looked up again is ready"),
        }
    }

    // A cgroup id whose task cannot tell (bogus pid) is found by a rescan of the hierarchy.
    let fresh = ContainerCache::start(config(&d), Arc::new(ContainerMetrics::default()));
    assert_eq!(fresh.lookup(cgroup_id, u32::MAX).now().full_id, c.id);

    // A host process is `host`.
    let me = std::process::id();
    let host = cache.lookup(cgroup_id_of_pid(me).expect("own cgroup id"), me);
    assert!(!host.is_pending());
    assert!(host.now().is_host(), "{:?}", host.now());
    assert_eq!(host.now().id, "host");
    assert!(Arc::ptr_eq(host.now(), &ContainerInfo::host()));

    assert_eq!(cache.cached_count(), 1);
    assert!(metrics.metadata_fetched.load(Ordering::Relaxed) >= 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mounts_and_privileged_flag() {
    let Some(d) = Dockerd::start() else { return };
    d.busybox_image(IMAGE).expect("import busybox image");
    let c = d
        .run(
            &RunSpec::new(&unique("mounts"), IMAGE, &["/bin/sleep", "600"])
                .arg("-v")
                .arg("/etc:/host-etc:ro"),
        )
        .expect("run container");
    let cache = ContainerCache::start(config(&d), Arc::new(ContainerMetrics::default()));
    let (l, _) = lookup_container(&cache, &c).await;
    let info = l.resolve_within(Duration::from_secs(10)).await;
    assert_eq!(info.privileged, Some(false));
    let m = info
        .mounts
        .iter()
        .find(|m| m.dest == "/host-etc")
        .expect("bind mount listed");
    assert_eq!(m.source, "/etc");
    assert!(!m.rw);
    assert_eq!(info.k8s, None, "not a kubelet container");

    // This sandbox refuses to start privileged containers (runc cannot apply all caps), so
    // the flag is checked on a created one, through the same client and mapping.
    let p = d
        .create(&RunSpec::new(&unique("priv"), IMAGE, &["/bin/sleep", "600"]).privileged())
        .expect("create privileged container");
    let client = DockerClient::new(d.socket(), Duration::from_secs(5));
    let json = client
        .inspect_container(&p.id)
        .await
        .expect("inspect")
        .expect("known");
    let info = docker::to_info(ContainerRuntime::Docker, &json, None, &K8sLabels::default());
    assert_eq!(info.privileged, Some(true));
    assert!(
        client
            .inspect_container(&"0".repeat(64))
            .await
            .expect("inspect")
            .is_none()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn removed_container_is_evicted() {
    let Some(d) = Dockerd::start() else { return };
    d.busybox_image(IMAGE).expect("import busybox image");
    let c = d
        .run(&RunSpec::new(
            &unique("gone"),
            IMAGE,
            &["/bin/sleep", "600"],
        ))
        .expect("run");
    let metrics = Arc::new(ContainerMetrics::default());
    // The destroy event alone evicts.
    let cache = ContainerCache::start(events_only_config(&d), metrics.clone());
    let (l, cgroup_id) = lookup_container(&cache, &c).await;
    let pid = c.pid().unwrap();
    assert!(
        l.resolve_within(Duration::from_secs(10))
            .await
            .metadata_complete
    );
    assert_eq!(cache.cached_count(), 1);
    let before = cache.cgroup_count();

    c.remove().expect("docker rm -f");
    assert!(
        eventually(Duration::from_secs(10), || cache.cached_count() == 0).await,
        "entry dropped after docker rm"
    );
    assert!(
        cache.cgroup_count() < before,
        "its cgroup id is dropped too"
    );
    assert!(metrics.evicted.load(Ordering::Relaxed) >= 1);
    // The old cgroup id no longer names the container.
    assert!(cache.lookup(cgroup_id, pid).now().is_host());
    assert_eq!(cache.cached_count(), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn engine_outage_degrades_to_ids_and_recovers() {
    let Some(mut d) = Dockerd::start() else {
        return;
    };
    d.busybox_image(IMAGE).expect("import busybox image");
    let known_name = unique("known");
    let known = d
        .run(&RunSpec::new(&known_name, IMAGE, &["/bin/sleep", "600"]))
        .expect("run");
    let late_name = unique("late");
    let late = d
        .run(&RunSpec::new(&late_name, IMAGE, &["/bin/sleep", "600"]))
        .expect("run");

    captured_logs();
    let socket = d.socket().display().to_string();
    let metrics = Arc::new(ContainerMetrics::default());
    // Recovery must come from the reconnection, not from a periodic retry.
    let cache = ContainerCache::start(events_only_config(&d), metrics.clone());
    let (l, known_cg) = lookup_container(&cache, &known).await;
    assert!(
        l.resolve_within(Duration::from_secs(10))
            .await
            .metadata_complete
    );

    // Engine down (containers keep running: live restore).
    d.stop().expect("stop dockerd");
    assert!(known.pid().is_err(), "the engine is really down");

    // Already known: still full metadata, and ready.
    let l = cache.lookup(known_cg, std::process::id());
    assert!(!l.is_pending());
    assert_eq!(l.now().name.as_deref(), Some(known_name.as_str()));

    // First seen while the engine is down: the id at once, and a bounded wait.
    let late_pid = late_pid_from_cgroup(&late);
    let late_cg = cgroup_id_of_pid(late_pid).expect("cgroup id");
    let started = Instant::now();
    let info = cache.lookup(late_cg, late_pid).resolve().await;
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "no hang: {:?}",
        started.elapsed()
    );
    assert_eq!(info.full_id, late.id);
    assert!(!info.metadata_complete);
    // Once the failed fetch settles, lookups no longer make anyone wait.
    assert!(
        eventually(Duration::from_secs(5), || !cache
            .lookup(late_cg, late_pid)
            .is_pending())
        .await,
        "settles without the engine"
    );
    // Several reconnection attempts (backoff at most 200 ms here), one warning.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    assert_eq!(
        log_lines_with(&["WARN", "unreachable", &socket]),
        1,
        "the outage is said once"
    );
    assert_eq!(metrics.runtime_unreachable.load(Ordering::Relaxed), 1);

    // Engine back: the container seen meanwhile gets its metadata.
    d.restart().expect("restart dockerd");
    assert!(
        eventually(Duration::from_secs(15), || cache
            .lookup(late_cg, late_pid)
            .now()
            .metadata_complete)
        .await,
        "metadata recovered after the engine came back"
    );
    let info = cache.lookup(late_cg, late_pid).now().clone();
    assert_eq!(info.name.as_deref(), Some(late_name.as_str()));
    assert_eq!(info.image.as_deref(), Some(IMAGE));
    assert_eq!(log_lines_with(&["INFO", "reachable again", &socket]), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_socket_is_said_once() {
    captured_logs();
    let dir = tempfile::tempdir().expect("tempdir");
    let socket = dir.path().join("no-such-docker.sock");
    let cfg = ContainerConfig {
        docker_sockets: vec![socket.clone()],
        containerd_state_dirs: Vec::new(),
        reconnect_max_backoff: Duration::from_millis(50),
        ..ContainerConfig::default()
    };
    let metrics = Arc::new(ContainerMetrics::default());
    let cache = ContainerCache::start(cfg, metrics.clone());
    tokio::time::sleep(Duration::from_millis(800)).await;
    let socket = socket.display().to_string();
    assert_eq!(log_lines_with(&["WARN", &socket]), 1);
    assert_eq!(metrics.runtime_unreachable.load(Ordering::Relaxed), 1);
    // The host still resolves.
    let me = std::process::id();
    assert!(
        cache
            .lookup(cgroup_id_of_pid(me).expect("own cgroup"), me)
            .now()
            .is_host()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stopped_container_is_evicted_by_reconcile() {
    let Some(d) = Dockerd::start() else { return };
    d.busybox_image(IMAGE).expect("import busybox image");
    let c = d
        .run(&RunSpec::new(
            &unique("stopped"),
            IMAGE,
            &["/bin/sleep", "600"],
        ))
        .expect("run");
    let cache = ContainerCache::start(config(&d), Arc::new(ContainerMetrics::default()));
    let (l, _) = lookup_container(&cache, &c).await;
    assert!(
        l.resolve_within(Duration::from_secs(10))
            .await
            .metadata_complete
    );
    // `docker kill` (die, no destroy): its cgroup goes, and so does the entry.
    d.docker(&["kill", &c.id]).expect("docker kill");
    assert!(
        eventually(Duration::from_secs(10), || cache.cached_count() == 0).await,
        "entry dropped once the container's cgroup is gone"
    );
}

/// The pid of a container's init, read from the cgroup (the engine may be down).
fn late_pid_from_cgroup(c: &Container) -> u32 {
    let path = format!("/docker/{}", c.id);
    let dir = e2e::docker::cgroup_v2_mount()
        .expect("v2 mount")
        .join(path.trim_start_matches('/'));
    let procs = std::fs::read_to_string(dir.join("cgroup.procs")).expect("cgroup.procs");
    procs
        .lines()
        .next()
        .and_then(|l| l.trim().parse().ok())
        .expect("a pid in the container")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn disabled_stage_gives_ids_without_asking() {
    let Some(d) = Dockerd::start() else { return };
    d.busybox_image(IMAGE).expect("import busybox image");
    let c = d
        .run(&RunSpec::new(
            &unique("quiet"),
            IMAGE,
            &["/bin/sleep", "600"],
        ))
        .expect("run");
    let metrics = Arc::new(ContainerMetrics::default());
    let cfg = ContainerConfig {
        enabled: false,
        ..config(&d)
    };
    let cache = ContainerCache::start(cfg, metrics.clone());
    let (l, _) = lookup_container(&cache, &c).await;
    assert!(!l.is_pending(), "nothing to wait for");
    assert_eq!(l.now().full_id, c.id);
    assert_eq!(l.now().runtime, ContainerRuntime::Docker);
    assert!(!l.now().metadata_complete);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(metrics.metadata_fetched.load(Ordering::Relaxed), 0);
    assert_eq!(metrics.metadata_failed.load(Ordering::Relaxed), 0);
}

/// The harness's images can carry dynamically linked host binaries (with their libraries),
/// for tests that need real programs (e.g. a server) in a container.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn images_carry_host_binaries_with_their_libraries() {
    let Some(d) = Dockerd::start() else { return };
    let mut rootfs = Rootfs::busybox().expect("busybox rootfs");
    let host_env = std::path::Path::new("/usr/bin/env");
    rootfs
        .add_host_binary(host_env, "/usr/bin/env")
        .expect("copy /usr/bin/env");
    rootfs
        .add_bytes("/etc/motd", b"made by the harness\n", 0o644)
        .expect("add file");
    d.import_image("monitor-test/tools:1", &rootfs)
        .expect("import");
    let c = d
        .run(&RunSpec::new(
            &unique("tools"),
            "monitor-test/tools:1",
            &["/bin/sleep", "600"],
        ))
        .expect("run");
    let out = c
        .exec(&["/usr/bin/env", "-u", "PATH", "/bin/cat", "/etc/motd"])
        .expect("exec");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        "made by the harness\n"
    );
}
