//! Recognising a container from the cgroup path of a task.
//!
//! The path is what `/proc/<pid>/cgroup` shows (v2 `0::` line or any v1 controller line), or
//! the directory of a cgroup id below the v2 mount. Runtimes and cgroup drivers name the
//! container's cgroup differently; what they share is that one path component carries the
//! 64-hex id. Components are searched from the last one up, so cgroups that a container makes
//! below its own (`/docker/<id>/init.scope`, a nested engine) still name the container.

use super::ContainerRuntime;

/// What a cgroup path says about the task in it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum CgroupClass {
    /// Not a container cgroup: `container.id` is `host`.
    Host,
    /// A container whose id is written in the path.
    Container {
        runtime: ContainerRuntime,
        full_id: String,
    },
    /// `/<namespace>/<name>`: the layout of containers run by containerd without Kubernetes
    /// (`ctr run`). It is a container only when containerd knows that name in that
    /// namespace, which the caller must check (see `containerd::find_bundle`).
    ContainerdCandidate { namespace: String, name: String },
}

/// Length of a full container id (Docker, containerd CRI, CRI-O, Podman).
const FULL_ID_LEN: usize = 64;

/// `<prefix><id><suffix>` component forms of the systemd cgroup driver (and Podman's
/// cgroupfs `libpod-<id>`), with the runtime each names.
const WRAPPED_FORMS: &[(&str, &str, ContainerRuntime)] = &[
    ("docker-", ".scope", ContainerRuntime::Docker),
    // containerd's CRI plugin; Falco reports CRI containers of containerd as `containerd`.
    ("cri-containerd-", ".scope", ContainerRuntime::Containerd),
    ("crio-", ".scope", ContainerRuntime::Crio),
    ("libpod-", ".scope", ContainerRuntime::Podman),
    ("libpod-", "", ContainerRuntime::Podman),
];

/// Systemd unit suffixes: such a component is never a containerd namespace or name.
const SYSTEMD_SUFFIXES: &[&str] = &[".slice", ".scope", ".service", ".socket", ".mount"];

pub fn is_full_id(s: &str) -> bool {
    s.len() == FULL_ID_LEN && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Classifies one cgroup path (absolute, as in `/proc/<pid>/cgroup`).
pub fn classify(path: &str) -> CgroupClass {
    let components: Vec<&str> = path.split('/').filter(|c| !c.is_empty()).collect();
    for (i, comp) in components.iter().enumerate().rev() {
        for (prefix, suffix, runtime) in WRAPPED_FORMS {
            if let Some(id) = comp
                .strip_prefix(prefix)
                .and_then(|rest| rest.strip_suffix(suffix))
                && is_full_id(id)
            {
                return CgroupClass::Container {
                    runtime: *runtime,
                    full_id: id.to_string(),
                };
            }
        }
        if is_full_id(comp) {
            return CgroupClass::Container {
                runtime: bare_id_runtime(&components[..i]),
                full_id: (*comp).to_string(),
            };
        }
    }
    if let [namespace, name] = components.as_slice()
        && is_containerd_namespace(namespace)
        && !SYSTEMD_SUFFIXES
            .iter()
            .any(|s| namespace.ends_with(s) || name.ends_with(s))
    {
        return CgroupClass::ContainerdCandidate {
            namespace: (*namespace).to_string(),
            name: (*name).to_string(),
        };
    }
    CgroupClass::Host
}

/// A bare 64-hex component (cgroupfs driver) names its runtime only through its ancestors.
/// Under `kubepods` any CRI runtime may have made it, so it is `cri` until a runtime's API
/// claims it; elsewhere it is Docker's layout (`/docker/<id>`), as Falco assumes.
fn bare_id_runtime(ancestors: &[&str]) -> ContainerRuntime {
    if ancestors.contains(&"docker") {
        ContainerRuntime::Docker
    } else if ancestors.iter().any(|c| c.starts_with("kubepods")) {
        ContainerRuntime::Cri
    } else if ancestors.iter().any(|c| c.starts_with("libpod")) {
        ContainerRuntime::Podman
    } else {
        ContainerRuntime::Docker
    }
}

/// containerd's namespace rule: alphanumeric words joined by single `.`, `_` or `-`.
fn is_containerd_namespace(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 76
        && s.split(['.', '_', '-'])
            .all(|w| !w.is_empty() && w.bytes().all(|b| b.is_ascii_alphanumeric()))
}

/// The cgroup paths of one task, as `/proc/<pid>/cgroup` lists them.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ProcCgroups {
    /// The `0::<path>` line: the task's cgroup in the v2 hierarchy.
    pub v2: Option<String>,
    /// `(controllers, path)` of each v1 hierarchy.
    pub v1: Vec<(String, String)>,
}

impl ProcCgroups {
    pub fn parse(text: &str) -> ProcCgroups {
        let mut out = ProcCgroups::default();
        for line in text.lines() {
            let mut parts = line.splitn(3, ':');
            let (Some(hier), Some(controllers), Some(path)) =
                (parts.next(), parts.next(), parts.next())
            else {
                continue;
            };
            if hier == "0" && controllers.is_empty() {
                out.v2 = Some(path.to_string());
            } else {
                out.v1.push((controllers.to_string(), path.to_string()));
            }
        }
        out
    }

    pub fn read(pid: u32) -> std::io::Result<ProcCgroups> {
        std::fs::read_to_string(format!("/proc/{pid}/cgroup")).map(|t| ProcCgroups::parse(&t))
    }

    /// The first container the paths name, v2 first: on a v1-only host (or a hybrid one where
    /// a runtime only uses v1) the container shows in the v1 lines. `containerd_knows` confirms
    /// a `/<namespace>/<name>` candidate; unconfirmed ones are passed over.
    pub fn classify(
        &self,
        containerd_knows: impl Fn(&str, &str) -> bool,
    ) -> (CgroupClass, Option<&str>) {
        let paths = self
            .v2
            .iter()
            .map(String::as_str)
            .chain(self.v1.iter().map(|(_, p)| p.as_str()));
        for path in paths {
            match classify(path) {
                CgroupClass::Host => {}
                CgroupClass::ContainerdCandidate { namespace, name }
                    if !containerd_knows(&namespace, &name) => {}
                class => return (class, Some(path)),
            }
        }
        (CgroupClass::Host, None)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: &str = "25da11e8804d1e420055e6b5b1c535bcfe790fa67809ef8db9e201990c7ce540";

    fn container(runtime: ContainerRuntime) -> CgroupClass {
        CgroupClass::Container {
            runtime,
            full_id: ID.to_string(),
        }
    }

    #[test]
    fn every_runtime_and_driver_layout() {
        use ContainerRuntime::*;
        let cases: Vec<(String, CgroupClass)> = vec![
            // Docker, cgroupfs driver: v1 controller lines and the v2 line look the same.
            (format!("/docker/{ID}"), container(Docker)),
            // Docker, systemd driver (v1 and v2).
            (
                format!("/system.slice/docker-{ID}.scope"),
                container(Docker),
            ),
            // A cgroup the container made below its own.
            (format!("/docker/{ID}/init.scope"), container(Docker)),
            (
                format!("/system.slice/docker-{ID}.scope/app"),
                container(Docker),
            ),
            // Kubernetes with the cgroupfs driver: any CRI runtime may own the bare id.
            (
                format!("/kubepods/besteffort/pod0b4a7a4e-1f4a-4f2b-9a55-1a2b3c4d5e6f/{ID}"),
                container(Cri),
            ),
            (
                format!("/kubepods/burstable/pod0b4a7a4e-1f4a-4f2b-9a55-1a2b3c4d5e6f/{ID}"),
                container(Cri),
            ),
            (
                format!("/kubepods/pod0b4a7a4e-1f4a-4f2b-9a55-1a2b3c4d5e6f/{ID}"),
                container(Cri),
            ),
            // Kubernetes with the systemd driver.
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod0b4a7a4e_1f4a_4f2b_9a55_1a2b3c4d5e6f.slice/cri-containerd-{ID}.scope"
                ),
                container(Containerd),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod0b4a7a4e_1f4a_4f2b_9a55_1a2b3c4d5e6f.slice/crio-{ID}.scope"
                ),
                container(Crio),
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-pod0b4a7a4e_1f4a_4f2b_9a55_1a2b3c4d5e6f.slice/docker-{ID}.scope"
                ),
                container(Docker),
            ),
            (format!("/system.slice/crio-{ID}.scope"), container(Crio)),
            // Podman: systemd driver (root and rootless) and cgroupfs driver.
            (
                format!("/machine.slice/libpod-{ID}.scope"),
                container(Podman),
            ),
            (
                format!(
                    "/user.slice/user-1000.slice/user@1000.service/user.slice/libpod-{ID}.scope/container"
                ),
                container(Podman),
            ),
            (format!("/libpod_parent/libpod-{ID}"), container(Podman)),
            (format!("/libpod_parent/{ID}"), container(Podman)),
            // containerd without Kubernetes: only a candidate until containerd confirms it.
            (
                "/default/redis".to_string(),
                CgroupClass::ContainerdCandidate {
                    namespace: "default".into(),
                    name: "redis".into(),
                },
            ),
            (
                "/k8s.io/web-1".to_string(),
                CgroupClass::ContainerdCandidate {
                    namespace: "k8s.io".into(),
                    name: "web-1".into(),
                },
            ),
            // Host tasks.
            ("/".to_string(), CgroupClass::Host),
            ("".to_string(), CgroupClass::Host),
            ("/init.scope".to_string(), CgroupClass::Host),
            ("/system.slice/cron.service".to_string(), CgroupClass::Host),
            (
                "/user.slice/user-0.slice/session-1.scope".to_string(),
                CgroupClass::Host,
            ),
            (
                "/process_api/2692e9b2f757fa8d8ec5d1e02ded5df8".to_string(),
                CgroupClass::ContainerdCandidate {
                    namespace: "process_api".into(),
                    name: "2692e9b2f757fa8d8ec5d1e02ded5df8".into(),
                },
            ),
            // The pod's own cgroup, and conmon next to a CRI-O container, are not containers.
            (
                "/kubepods/besteffort/pod0b4a7a4e-1f4a-4f2b-9a55-1a2b3c4d5e6f/x".to_string(),
                CgroupClass::Host,
            ),
            (
                format!(
                    "/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod1.slice/crio-conmon-{ID}.scope"
                ),
                CgroupClass::Host,
            ),
            // Ids that are not 64 lowercase hex characters.
            (
                format!("/docker/{}", &ID[..63]),
                CgroupClass::ContainerdCandidate {
                    namespace: "docker".into(),
                    name: ID[..63].to_string(),
                },
            ),
            (
                format!("/docker/{}", ID.to_uppercase()),
                CgroupClass::ContainerdCandidate {
                    namespace: "docker".into(),
                    name: ID.to_uppercase(),
                },
            ),
            (
                format!("/system.slice/docker-{}.scope", &ID[..12]),
                CgroupClass::Host,
            ),
        ];
        for (path, want) in cases {
            assert_eq!(classify(&path), want, "path {path:?}");
        }
    }

    #[test]
    fn proc_cgroup_v1_v2_and_hybrid() {
        // Hybrid (this project's machines): v1 controllers plus the unified line.
        let hybrid = format!(
            "9:name=systemd:/docker/{ID}\n4:memory:/docker/{ID}\n1:cpu:/docker/{ID}\n0::/docker/{ID}\n"
        );
        let p = ProcCgroups::parse(&hybrid);
        assert_eq!(p.v2.as_deref(), Some(format!("/docker/{ID}").as_str()));
        assert_eq!(p.v1.len(), 3);
        assert_eq!(
            p.classify(|_, _| false).0,
            container(ContainerRuntime::Docker)
        );

        // v1 only, systemd driver: no `0::` line.
        let v1 = format!(
            "12:pids:/system.slice/docker-{ID}.scope\n1:name=systemd:/system.slice/docker-{ID}.scope\n"
        );
        let p = ProcCgroups::parse(&v1);
        assert_eq!(p.v2, None);
        assert_eq!(
            p.classify(|_, _| false).0,
            container(ContainerRuntime::Docker)
        );

        // v2 only.
        let v2 = format!(
            "0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-podx.slice/cri-containerd-{ID}.scope\n"
        );
        assert_eq!(
            ProcCgroups::parse(&v2).classify(|_, _| false).0,
            container(ContainerRuntime::Containerd)
        );

        // A host task whose only non-root cgroup is a v1 one that is not a container.
        let host = "4:memory:/system.slice/sshd.service\n0::/\n";
        assert_eq!(
            ProcCgroups::parse(host).classify(|_, _| false).0,
            CgroupClass::Host
        );

        // A containerd candidate counts only when containerd knows it.
        let ctr = "4:memory:/process_api/abc\n0::/default/web\n";
        assert_eq!(
            ProcCgroups::parse(ctr).classify(|_, _| false).0,
            CgroupClass::Host
        );
        assert_eq!(
            ProcCgroups::parse(ctr)
                .classify(|ns, name| ns == "default" && name == "web")
                .0,
            CgroupClass::ContainerdCandidate {
                namespace: "default".into(),
                name: "web".into()
            }
        );

        // Garbage lines are skipped, not fatal.
        assert_eq!(
            ProcCgroups::parse("nonsense\n\n").classify(|_, _| false).0,
            CgroupClass::Host
        );
    }
}
