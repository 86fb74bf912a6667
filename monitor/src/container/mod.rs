//! Container and Kubernetes context: which container (and pod) a task belongs to.
//!
//! The event path asks this stage for the `ContainerInfo` of a cgroup id and never waits on a
//! runtime socket: metadata is fetched asynchronously and the cache is filled behind it.
//!
//! - `cgroup`: which container a cgroup path names (Docker, containerd/CRI, CRI-O, Podman,
//!   plain containerd; cgroupfs and systemd drivers; v1 and v2 paths).
//! - `hierarchy`: the v2 mount and the cgroup id (inode) -> path map.
//! - `docker`: the Engine API client (also Podman's compatible socket).
//! - `containerd`: containerd task bundles, with the CRI's `io.kubernetes.cri.*` annotations.
//! - `k8s`: pod name, namespace, uid and labels from the kubelet's labels.
//! - `cache`: `ContainerCache`, the stage itself; `config`: its configuration.
//!
//! `k8s.pod.labels`: a workload container does not carry its pod's labels. They are taken
//! from container labels named `<k8s_pod_label_prefix><key>` (default prefix
//! `io.kubernetes.pod.label.`), and on Docker also from the pod's sandbox container
//! (`io.kubernetes.docker.type=podsandbox`, same `io.kubernetes.pod.uid`), where dockershim
//! and cri-dockerd put them. containerd bundles do not hold them.

pub mod cache;
pub mod cgroup;
pub mod config;
pub mod containerd;
pub mod docker;
pub mod hierarchy;
pub mod image;
pub mod k8s;

pub use cache::{ContainerCache, ContainerMetrics, Lookup, PendingInfo};
pub use config::ContainerConfig;

use std::collections::BTreeMap;
use std::sync::{Arc, OnceLock};

/// Container runtimes the monitor recognises (`container.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ContainerRuntime {
    Host,
    Docker,
    Containerd,
    Cri,
    Crio,
    Podman,
}

impl ContainerRuntime {
    /// Falco's `container.type` value.
    pub fn name(self) -> &'static str {
        match self {
            ContainerRuntime::Host => "host",
            ContainerRuntime::Docker => "docker",
            ContainerRuntime::Containerd => "containerd",
            ContainerRuntime::Cri => "cri",
            ContainerRuntime::Crio => "cri-o",
            ContainerRuntime::Podman => "podman",
        }
    }
}

/// A mount of a container (`container.mounts`, `container.mount.dest[...]`).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Mount {
    pub source: String,
    pub dest: String,
    pub mode: String,
    pub rw: bool,
    pub propagation: String,
}

/// Kubernetes pod context, from the `io.kubernetes.*` labels the kubelet puts on containers.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct K8sInfo {
    pub pod_name: String,
    pub pod_uid: String,
    pub ns_name: String,
    pub pod_labels: BTreeMap<String, String>,
}

/// What is known about the container of an event. `id` is `host` for host processes.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ContainerInfo {
    /// `container.id`: the first 12 characters of the full id, or `host`.
    pub id: String,
    /// `container.full_id`.
    pub full_id: String,
    pub runtime: ContainerRuntime,
    /// `container.name` (without Docker's leading `/`).
    pub name: Option<String>,
    /// `container.image` as the runtime reports it (`redis:7`, `docker.io/library/redis:7`).
    pub image: Option<String>,
    pub image_repository: Option<String>,
    pub image_tag: Option<String>,
    pub image_digest: Option<String>,
    pub image_id: Option<String>,
    pub privileged: Option<bool>,
    /// `container.start_ts`, nanoseconds since the Unix epoch.
    pub start_ts: Option<u64>,
    pub mounts: Vec<Mount>,
    pub labels: BTreeMap<String, String>,
    pub k8s: Option<K8sInfo>,
    /// False while the runtime has not answered yet (or cannot be reached): only the id is
    /// known.
    pub metadata_complete: bool,
}

impl ContainerInfo {
    /// The shared value for host processes.
    pub fn host() -> Arc<ContainerInfo> {
        static HOST: OnceLock<Arc<ContainerInfo>> = OnceLock::new();
        HOST.get_or_init(|| {
            Arc::new(ContainerInfo {
                id: "host".into(),
                full_id: "host".into(),
                runtime: ContainerRuntime::Host,
                name: Some("host".into()),
                image: None,
                image_repository: None,
                image_tag: None,
                image_digest: None,
                image_id: None,
                privileged: None,
                start_ts: None,
                mounts: Vec::new(),
                labels: BTreeMap::new(),
                k8s: None,
                metadata_complete: true,
            })
        })
        .clone()
    }

    /// A container known only by its id (metadata not fetched yet, or unavailable).
    pub fn id_only(full_id: &str, runtime: ContainerRuntime) -> ContainerInfo {
        ContainerInfo {
            id: full_id.chars().take(12).collect(),
            full_id: full_id.to_string(),
            runtime,
            name: None,
            image: None,
            image_repository: None,
            image_tag: None,
            image_digest: None,
            image_id: None,
            privileged: None,
            start_ts: None,
            mounts: Vec::new(),
            labels: BTreeMap::new(),
            k8s: None,
            metadata_complete: false,
        }
    }

    pub fn is_host(&self) -> bool {
        self.runtime == ContainerRuntime::Host
    }
}
