//! Kubernetes pod context from the labels (or annotations) a runtime keeps on a container.
//!
//! The kubelet puts `io.kubernetes.pod.name`, `io.kubernetes.pod.namespace` and
//! `io.kubernetes.pod.uid` on every container it makes; those give `k8s.pod.name`,
//! `k8s.ns.name` and `k8s.pod.uid`. The pod's own labels (`k8s.pod.labels`) are not on a
//! workload container: Falco reads them from the CRI pod sandbox. Here they come from two
//! places: container labels that start with a configurable prefix (prefix removed), and, on
//! Docker, the labels of the pod's sandbox container (see `cache`).

use std::collections::BTreeMap;

use super::K8sInfo;

pub const POD_NAME: &str = "io.kubernetes.pod.name";
pub const POD_NAMESPACE: &str = "io.kubernetes.pod.namespace";
pub const POD_UID: &str = "io.kubernetes.pod.uid";

/// How pod labels are recognised among a container's labels.
#[derive(Clone, Debug, Default)]
pub struct K8sLabels {
    /// A container label `<prefix>app=web` is the pod label `app=web`. Empty: none.
    pub pod_label_prefix: String,
}

impl K8sLabels {
    /// `None` when the container was not made by a kubelet (no pod name, namespace nor uid).
    pub fn from_labels(&self, labels: &BTreeMap<String, String>) -> Option<K8sInfo> {
        let get = |k: &str| labels.get(k).cloned().unwrap_or_default();
        let info = K8sInfo {
            pod_name: get(POD_NAME),
            pod_uid: get(POD_UID),
            ns_name: get(POD_NAMESPACE),
            pod_labels: self.pod_labels(labels),
        };
        if info.pod_name.is_empty() && info.pod_uid.is_empty() && info.ns_name.is_empty() {
            None
        } else {
            Some(info)
        }
    }

    fn pod_labels(&self, labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
        if self.pod_label_prefix.is_empty() {
            return BTreeMap::new();
        }
        labels
            .iter()
            .filter_map(|(k, v)| {
                k.strip_prefix(&self.pod_label_prefix)
                    .filter(|k| !k.is_empty())
                    .map(|k| (k.to_string(), v.clone()))
            })
            .collect()
    }
}

/// The pod labels a sandbox (pause) container carries: its labels less the kubelet's own
/// bookkeeping ones (`io.kubernetes.*`, `annotation.*`).
pub fn sandbox_pod_labels(labels: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    labels
        .iter()
        .filter(|(k, _)| !k.starts_with("io.kubernetes.") && !k.starts_with("annotation."))
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn kubelet_labels_and_prefixed_pod_labels() {
        let rule = K8sLabels {
            pod_label_prefix: "io.kubernetes.pod.label.".into(),
        };
        let l = labels(&[
            (POD_NAME, "web-0"),
            (POD_NAMESPACE, "shop"),
            (POD_UID, "1f4a"),
            ("io.kubernetes.pod.label.app", "web"),
            ("io.kubernetes.pod.label.", "empty key dropped"),
            ("other", "x"),
        ]);
        let k = rule.from_labels(&l).unwrap_or_default();
        assert_eq!(k.pod_name, "web-0");
        assert_eq!(k.ns_name, "shop");
        assert_eq!(k.pod_uid, "1f4a");
        assert_eq!(k.pod_labels, labels(&[("app", "web")]));
        assert_eq!(rule.from_labels(&labels(&[("other", "x")])), None);
        let no_prefix = K8sLabels::default().from_labels(&l).unwrap_or_default();
        assert!(no_prefix.pod_labels.is_empty());
    }

    #[test]
    fn sandbox_labels_without_bookkeeping() {
        let l = labels(&[
            (POD_NAME, "web-0"),
            ("io.kubernetes.docker.type", "podsandbox"),
            ("annotation.kubernetes.io/config.seen", "x"),
            ("app", "web"),
        ]);
        assert_eq!(sandbox_pod_labels(&l), labels(&[("app", "web")]));
    }
}
