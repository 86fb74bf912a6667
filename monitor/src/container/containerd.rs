//! containerd containers, from the OCI bundle containerd writes for each running task
//! (`<state>/io.containerd.runtime.v2.task/<namespace>/<id>/config.json`).
//!
//! Reading the bundle needs no API client and no socket, works the same for `ctr run`
//! containers and for Kubernetes (CRI) ones, and exists exactly as long as the task runs.
//! The CRI plugin writes the pod context as `io.kubernetes.cri.*` annotations. What the
//! bundle does not hold is containerd's own metadata store: a `ctr` container's image name
//! (unless annotated) and the CRI pod's labels.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::UNIX_EPOCH;

use serde::Deserialize;

use super::image::ImageRef;
use super::{ContainerInfo, ContainerRuntime, K8sInfo, Mount};

pub const TASK_DIR: &str = "io.containerd.runtime.v2.task";

pub const CRI_CONTAINER_NAME: &str = "io.kubernetes.cri.container-name";
pub const CRI_CONTAINER_TYPE: &str = "io.kubernetes.cri.container-type";
pub const CRI_IMAGE_NAME: &str = "io.kubernetes.cri.image-name";
pub const CRI_SANDBOX_NAME: &str = "io.kubernetes.cri.sandbox-name";
pub const CRI_SANDBOX_NAMESPACE: &str = "io.kubernetes.cri.sandbox-namespace";
pub const CRI_SANDBOX_UID: &str = "io.kubernetes.cri.sandbox-uid";

#[derive(Debug, thiserror::Error)]
pub enum ContainerdError {
    #[error("cannot read {path}: {source}")]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("malformed OCI spec {path}: {source}")]
    Json {
        path: PathBuf,
        source: serde_json::Error,
    },
}

/// A path component from a cgroup path or a kernel-supplied id: never `..` or a separator.
fn is_plain_component(s: &str) -> bool {
    !s.is_empty() && s != "." && s != ".." && !s.contains('/') && !s.contains('\0')
}

/// The bundle directory of task `id`, in `namespace` if given, else in any namespace.
/// Returns the namespace and the directory.
pub fn find_bundle(
    state_dirs: &[PathBuf],
    namespace: Option<&str>,
    id: &str,
) -> Option<(String, PathBuf)> {
    if !is_plain_component(id) || namespace.is_some_and(|ns| !is_plain_component(ns)) {
        return None;
    }
    for state in state_dirs {
        let tasks = state.join(TASK_DIR);
        match namespace {
            Some(ns) => {
                let dir = tasks.join(ns).join(id);
                if dir.join("config.json").is_file() {
                    return Some((ns.to_string(), dir));
                }
            }
            None => {
                let Ok(namespaces) = std::fs::read_dir(&tasks) else {
                    continue;
                };
                for ns in namespaces.flatten() {
                    let dir = ns.path().join(id);
                    if dir.join("config.json").is_file()
                        && let Some(name) = ns.file_name().to_str()
                    {
                        return Some((name.to_string(), dir));
                    }
                }
            }
        }
    }
    None
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct Spec {
    annotations: BTreeMap<String, String>,
    mounts: Vec<SpecMount>,
    process: Option<SpecProcess>,
    linux: Option<SpecLinux>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SpecMount {
    destination: String,
    source: String,
    options: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SpecProcess {
    capabilities: Option<SpecCaps>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct SpecCaps {
    bounding: Vec<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default, rename_all = "camelCase")]
struct SpecLinux {
    masked_paths: Vec<String>,
    readonly_paths: Vec<String>,
}

/// Reads the bundle of container `id` in `dir`.
///
/// - `container.name`: the CRI container name, else the containerd id;
/// - `container.image`: the CRI image name annotation (absent for plain `ctr` containers);
/// - `privileged`: what a privileged OCI spec looks like (CAP_SYS_ADMIN in the bounding set
///   and no masked or read-only paths), since the spec has no flag for it;
/// - `start_ts`: when the task's `init.pid` was written;
/// - `labels`: the spec's annotations less the CRI's own (`ctr run --label` puts its labels
///   there);
/// - `k8s.*`: from the CRI sandbox annotations.
pub fn read_bundle(dir: &Path, id: &str) -> Result<ContainerInfo, ContainerdError> {
    let path = dir.join("config.json");
    let text = std::fs::read(&path).map_err(|source| ContainerdError::Read {
        path: path.clone(),
        source,
    })?;
    let spec: Spec =
        serde_json::from_slice(&text).map_err(|source| ContainerdError::Json { path, source })?;
    let a = &spec.annotations;
    let mut info = ContainerInfo::id_only(id, ContainerRuntime::Containerd);
    info.name = Some(
        a.get(CRI_CONTAINER_NAME)
            .cloned()
            .unwrap_or_else(|| id.to_string()),
    );
    if let Some(image) = a.get(CRI_IMAGE_NAME) {
        let r = ImageRef::parse(image);
        info.image = Some(image.clone());
        info.image_repository = Some(r.repository);
        info.image_tag = Some(r.tag.unwrap_or_else(|| "latest".into()));
        info.image_digest = r.digest;
    }
    let caps = spec
        .process
        .as_ref()
        .and_then(|p| p.capabilities.as_ref())
        .map(|c| c.bounding.as_slice())
        .unwrap_or_default();
    let linux = spec.linux.unwrap_or_default();
    info.privileged = Some(
        caps.iter().any(|c| c == "CAP_SYS_ADMIN")
            && linux.masked_paths.is_empty()
            && linux.readonly_paths.is_empty(),
    );
    info.start_ts = std::fs::metadata(dir.join("init.pid"))
        .or_else(|_| std::fs::metadata(dir))
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(UNIX_EPOCH).ok())
        .and_then(|d| u64::try_from(d.as_nanos()).ok());
    info.mounts = spec
        .mounts
        .iter()
        .map(|m| {
            let rw = !m.options.iter().any(|o| o == "ro");
            Mount {
                source: m.source.clone(),
                dest: m.destination.clone(),
                mode: if rw { "rw".into() } else { "ro".into() },
                rw,
                propagation: m
                    .options
                    .iter()
                    .find(|o| {
                        o.ends_with("private") || o.ends_with("shared") || o.ends_with("slave")
                    })
                    .cloned()
                    .unwrap_or_default(),
            }
        })
        .collect();
    info.labels = a
        .iter()
        .filter(|(k, _)| !k.starts_with("io.kubernetes.cri."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    let pod = |k: &str| a.get(k).cloned().unwrap_or_default();
    let k8s = K8sInfo {
        pod_name: pod(CRI_SANDBOX_NAME),
        pod_uid: pod(CRI_SANDBOX_UID),
        ns_name: pod(CRI_SANDBOX_NAMESPACE),
        pod_labels: BTreeMap::new(),
    };
    if !(k8s.pod_name.is_empty() && k8s.pod_uid.is_empty() && k8s.ns_name.is_empty()) {
        info.k8s = Some(k8s);
    }
    info.metadata_complete = true;
    Ok(info)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cri_bundle_gives_pod_context() {
        let tmp = std::env::temp_dir().join(format!("monitor-bundle-{}", std::process::id()));
        let dir = tmp.join(TASK_DIR).join("k8s.io").join("abc");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(
            dir.join("config.json"),
            r#"{"annotations": {
                "io.kubernetes.cri.container-type": "container",
                "io.kubernetes.cri.container-name": "redis",
                "io.kubernetes.cri.image-name": "docker.io/library/redis:7",
                "io.kubernetes.cri.sandbox-name": "cache-0",
                "io.kubernetes.cri.sandbox-namespace": "shop",
                "io.kubernetes.cri.sandbox-uid": "1f4a"},
              "mounts": [{"destination": "/data", "source": "/var/lib/x", "options": ["rbind", "rprivate", "ro"]}],
              "process": {"capabilities": {"bounding": ["CAP_CHOWN"]}},
              "linux": {"maskedPaths": ["/proc/kcore"]}}"#,
        )
        .unwrap();
        let states = vec![tmp.clone()];
        let (ns, found) = find_bundle(&states, None, "abc").unwrap();
        assert_eq!(ns, "k8s.io");
        assert_eq!(found, dir);
        assert!(find_bundle(&states, Some("default"), "abc").is_none());
        assert!(find_bundle(&states, None, "..").is_none());
        let info = read_bundle(&found, "abc").unwrap();
        assert_eq!(info.name.as_deref(), Some("redis"));
        assert_eq!(
            info.image_repository.as_deref(),
            Some("docker.io/library/redis")
        );
        assert_eq!(info.image_tag.as_deref(), Some("7"));
        assert_eq!(info.privileged, Some(false));
        assert!(info.labels.is_empty());
        assert_eq!(info.mounts[0].dest, "/data");
        assert!(!info.mounts[0].rw);
        assert_eq!(info.mounts[0].propagation, "rprivate");
        let k8s = info.k8s.unwrap_or_default();
        assert_eq!(
            (
                k8s.pod_name.as_str(),
                k8s.ns_name.as_str(),
                k8s.pod_uid.as_str()
            ),
            ("cache-0", "shop", "1f4a")
        );

        std::fs::write(dir.join("config.json"), "{not json").unwrap();
        assert!(matches!(
            read_bundle(&found, "abc"),
            Err(ContainerdError::Json { .. })
        ));
        let _ = std::fs::remove_dir_all(&tmp);
    }
}
