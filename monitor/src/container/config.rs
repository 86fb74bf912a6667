//! Configuration of the container stage (the `container:` section of the daemon's config).

use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Deserializer};

/// Snake_case names as in Falco's config; every field has a default, so an empty section is
/// valid. Durations are written as milliseconds (`50`) or with a unit (`"50ms"`, `"2s"`).
#[derive(Clone, Debug, PartialEq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ContainerConfig {
    /// Off: containers are still recognised from their cgroups (id and type), but no runtime
    /// is asked for metadata.
    pub enabled: bool,
    /// Docker Engine API sockets, asked in this order. Podman's Docker-compatible socket
    /// (`/run/podman/podman.sock`) may be listed too.
    pub docker_sockets: Vec<PathBuf>,
    /// containerd state directories (`--state`, `/run/containerd` by default), whose
    /// `io.containerd.runtime.v2.task/<ns>/<id>/config.json` describe running containers.
    pub containerd_state_dirs: Vec<PathBuf>,
    /// How long the event path may wait for a new container's metadata before going on with
    /// the id only.
    #[serde(deserialize_with = "duration")]
    pub metadata_wait: Duration,
    /// Limit on one Engine API exchange.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// Longest wait between two reconnection attempts to a runtime socket.
    #[serde(deserialize_with = "duration")]
    pub reconnect_max_backoff: Duration,
    /// How often gone cgroups and containers are dropped, and metadata a runtime could not
    /// give is asked for again.
    #[serde(deserialize_with = "duration")]
    pub reconcile_interval: Duration,
    /// Minimum time between two scans of the whole cgroup hierarchy for an unknown cgroup id.
    #[serde(deserialize_with = "duration")]
    pub cgroup_rescan_interval: Duration,
    /// Directories visited at most by one cgroup scan.
    pub cgroup_scan_max_dirs: usize,
    /// Container labels `<prefix><key>=<value>` are taken as pod labels `<key>=<value>`
    /// (`k8s.pod.labels`). Empty: none.
    pub k8s_pod_label_prefix: String,
    /// On Docker, also take `k8s.pod.labels` from the pod's sandbox container (labelled
    /// `io.kubernetes.docker.type=podsandbox` with the same `io.kubernetes.pod.uid`), where
    /// dockershim and cri-dockerd keep the pod's labels.
    pub k8s_pod_labels_from_sandbox: bool,
}

impl Default for ContainerConfig {
    fn default() -> Self {
        ContainerConfig {
            enabled: true,
            docker_sockets: vec![PathBuf::from("/var/run/docker.sock")],
            containerd_state_dirs: vec![PathBuf::from("/run/containerd")],
            metadata_wait: Duration::from_millis(50),
            request_timeout: Duration::from_secs(2),
            reconnect_max_backoff: Duration::from_secs(5),
            reconcile_interval: Duration::from_secs(30),
            cgroup_rescan_interval: Duration::from_secs(1),
            cgroup_scan_max_dirs: 100_000,
            k8s_pod_label_prefix: "io.kubernetes.pod.label.".into(),
            k8s_pod_labels_from_sandbox: true,
        }
    }
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Raw {
        Millis(u64),
        Text(String),
    }
    match Raw::deserialize(d)? {
        Raw::Millis(ms) => Ok(Duration::from_millis(ms)),
        Raw::Text(t) => humantime::parse_duration(t.trim()).map_err(|e| {
            serde::de::Error::custom(format!("invalid duration {t:?}: {e} (write e.g. 50ms, 2s)"))
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_section_is_the_default() {
        let cfg: ContainerConfig = serde_yaml::from_str("{}").unwrap();
        assert_eq!(cfg, ContainerConfig::default());
    }

    #[test]
    fn durations_and_lists() {
        let cfg: ContainerConfig = serde_yaml::from_str(
            "docker_sockets: [/run/a.sock, /run/podman/podman.sock]\nmetadata_wait: 20\nrequest_timeout: 3s\nenabled: false\n",
        )
        .unwrap();
        assert_eq!(cfg.docker_sockets.len(), 2);
        assert_eq!(cfg.metadata_wait, Duration::from_millis(20));
        assert_eq!(cfg.request_timeout, Duration::from_secs(3));
        assert!(!cfg.enabled);
    }

    #[test]
    fn bad_values_say_what_is_wrong() {
        let err = serde_yaml::from_str::<ContainerConfig>("metadata_wait: soon\n").unwrap_err();
        assert!(
            err.to_string().contains("metadata_wait") || err.to_string().contains("soon"),
            "{err}"
        );
        let err = serde_yaml::from_str::<ContainerConfig>("docker_socket: /x\n").unwrap_err();
        assert!(err.to_string().contains("docker_socket"), "{err}");
    }
}
