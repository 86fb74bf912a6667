//! The container stage against a real containerd (a private one per test, containers run
//! by `ctr`).

use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::containerd::{Containerd, CtrSpec};
use e2e::docker::{Rootfs, cgroup_id_of_pid};
use monitor::container::{ContainerCache, ContainerConfig, ContainerMetrics, ContainerRuntime};

fn config(c: &Containerd) -> ContainerConfig {
    ContainerConfig {
        docker_sockets: Vec::new(),
        containerd_state_dirs: vec![c.state_dir()],
        reconcile_interval: Duration::from_millis(200),
        ..ContainerConfig::default()
    }
}

fn unique(prefix: &str) -> String {
    let n = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    format!("{prefix}-{}-{n:x}", std::process::id())
}

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ctr_container_in_namespace_cgroup() {
    let Some(ctd) = Containerd::start() else {
        return;
    };
    let rootfs = Rootfs::busybox().expect("rootfs");
    let id = unique("redis");
    let c = ctd
        .run(
            &CtrSpec::new("monitor-test", &id, &["/bin/sleep", "600"]).label("team", "blue"),
            &rootfs,
        )
        .expect("ctr run");
    let pid = c.pid().expect("pid");
    let cgroup = std::fs::read_to_string(format!("/proc/{pid}/cgroup")).unwrap_or_default();
    assert!(
        cgroup.contains(&format!("0::/monitor-test/{id}")),
        "containerd layout: {cgroup}"
    );

    let metrics = Arc::new(ContainerMetrics::default());
    let cache = ContainerCache::start(config(&ctd), metrics.clone());
    let cgroup_id = cgroup_id_of_pid(pid).expect("cgroup id");
    let l = cache.lookup(cgroup_id, pid);
    assert_eq!(l.now().full_id, id);
    assert_eq!(l.now().id, id.chars().take(12).collect::<String>());
    assert_eq!(l.now().runtime, ContainerRuntime::Containerd);
    let info = l.resolve_within(Duration::from_secs(10)).await;
    assert!(info.metadata_complete, "{info:?}");
    assert_eq!(info.name.as_deref(), Some(id.as_str()));
    assert_eq!(info.labels.get("team").map(String::as_str), Some("blue"));
    assert_eq!(info.image, None, "ctr --rootfs: no image");
    assert_eq!(info.k8s, None);
    assert!(info.mounts.iter().any(|m| m.dest == "/proc"));

    // A `/<namespace>/<name>` cgroup containerd does not know is a host one.
    let me = std::process::id();
    assert!(
        cache
            .lookup(cgroup_id_of_pid(me).expect("own"), me)
            .now()
            .is_host()
    );

    // Gone: the reconcile notices the bundle and the cgroup are gone.
    c.remove().expect("ctr rm");
    assert!(
        eventually(Duration::from_secs(10), || cache.cached_count() == 0).await,
        "evicted after the task went"
    );
}

/// A Kubernetes node with containerd and the cgroupfs driver: a 64-hex container id in the
/// pod's cgroup, in the `k8s.io` namespace, with the CRI's annotations.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cri_container_gets_pod_context_from_annotations() {
    let Some(ctd) = Containerd::start() else {
        return;
    };
    let rootfs = Rootfs::busybox().expect("rootfs");
    let uid = format!("5d3c2b1a-0000-4000-8000-{:012x}", std::process::id());
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    let id = format!("{:08x}{nanos:056x}", std::process::id());
    let c = ctd
        .run(
            &CtrSpec::new("k8s.io", &id, &["/bin/sleep", "600"])
                .cgroup(&format!("/kubepods/besteffort/pod{uid}/{id}"))
                .annotation("io.kubernetes.cri.container-type", "container")
                .annotation("io.kubernetes.cri.container-name", "redis")
                .annotation(
                    "io.kubernetes.cri.image-name",
                    "docker.io/library/redis:7.2",
                )
                .annotation("io.kubernetes.cri.sandbox-name", "cache-0")
                .annotation("io.kubernetes.cri.sandbox-namespace", "shop")
                .annotation("io.kubernetes.cri.sandbox-uid", &uid),
            &rootfs,
        )
        .expect("ctr run");
    let pid = c.pid().expect("pid");
    let cache = ContainerCache::start(config(&ctd), Arc::new(ContainerMetrics::default()));
    let l = cache.lookup(cgroup_id_of_pid(pid).expect("cgroup id"), pid);
    assert_eq!(l.now().id, id[..12]);
    // Until a runtime claims it, a bare id under kubepods is a generic CRI container.
    assert_eq!(l.now().runtime, ContainerRuntime::Cri);
    let info = l.resolve_within(Duration::from_secs(10)).await;
    assert!(info.metadata_complete, "{info:?}");
    assert_eq!(info.runtime, ContainerRuntime::Containerd);
    assert_eq!(info.name.as_deref(), Some("redis"));
    assert_eq!(info.image.as_deref(), Some("docker.io/library/redis:7.2"));
    assert_eq!(
        info.image_repository.as_deref(),
        Some("docker.io/library/redis")
    );
    assert_eq!(info.image_tag.as_deref(), Some("7.2"));
    assert_eq!(info.privileged, Some(false));
    let k8s = info.k8s.clone().expect("pod context");
    assert_eq!(k8s.pod_name, "cache-0");
    assert_eq!(k8s.ns_name, "shop");
    assert_eq!(k8s.pod_uid, uid);
}
