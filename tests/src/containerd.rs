//! A private containerd for tests (own root, state, socket), with containers run by `ctr`
//! from a rootfs directory (`ctr run --rootfs`, no image store involved).
//!
//! Needs root and Debian's `containerd` (containerd, ctr) with `runc` and `busybox-static`.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

use crate::docker::{Rootfs, find_binary, requirement_met};

/// What a containerd test lacks on this machine, if anything.
pub fn containerd_missing() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to run containerd".into());
    }
    for (bin, pkg) in [
        ("containerd", "containerd"),
        ("ctr", "containerd"),
        ("runc", "runc"),
        ("containerd-shim-runc-v2", "containerd"),
        ("busybox", "busybox-static"),
    ] {
        if find_binary(
            bin,
            &[&format!("/usr/sbin/{bin}"), &format!("/usr/bin/{bin}")],
        )
        .is_none()
        {
            return Some(format!("no `{bin}` binary (apt-get install {pkg})"));
        }
    }
    None
}

/// The `ctr` client pointed at one containerd.
#[derive(Clone, Debug)]
pub struct Ctr {
    bin: PathBuf,
    socket: PathBuf,
}

impl Ctr {
    /// `ctr -a SOCKET -n NAMESPACE ARGS`, trimmed stdout; an error carries stderr.
    pub fn run(&self, namespace: &str, args: &[&str]) -> Result<String> {
        let out = Command::new(&self.bin)
            .arg("-a")
            .arg(&self.socket)
            .args(["-n", namespace])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .context("running ctr")?;
        if !out.status.success() {
            bail!(
                "ctr {args:?} failed ({}): {}",
                out.status,
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }
}

pub struct Containerd {
    dir: TempDir,
    child: Option<Child>,
    ctr: Ctr,
}

impl Containerd {
    /// Starts a containerd, or returns `None` after printing why it cannot here (a panic
    /// under `CI=true`). One that is installed but does not come up is a failure.
    pub fn start() -> Option<Containerd> {
        if !requirement_met("containerd test", containerd_missing()) {
            return None;
        }
        match Containerd::try_start() {
            Ok(c) => Some(c),
            Err(e) => panic!("containerd did not start: {e:#}"),
        }
    }

    pub fn try_start() -> Result<Containerd> {
        let dir = tempfile::Builder::new()
            .prefix("containerd-")
            .tempdir_in("/tmp")?;
        let base = dir.path();
        let socket = base.join("containerd.sock");
        let config = format!(
            "version = 2\nroot = \"{root}\"\nstate = \"{state}\"\n\
             disabled_plugins = [\"io.containerd.grpc.v1.cri\"]\n\
             [grpc]\n  address = \"{sock}\"\n[ttrpc]\n  address = \"{sock}.ttrpc\"\n\
             [debug]\n  address = \"{base}/debug.sock\"\n",
            root = base.join("root").display(),
            state = base.join("state").display(),
            sock = socket.display(),
            base = base.display(),
        );
        std::fs::write(base.join("config.toml"), config)?;
        let log = std::fs::File::create(base.join("containerd.log"))?;
        let bin = find_binary("containerd", &["/usr/bin/containerd"]).context("no containerd")?;
        let child = Command::new(bin)
            .arg("--config")
            .arg(base.join("config.toml"))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning containerd")?;
        let ctr = Ctr {
            bin: find_binary("ctr", &["/usr/bin/ctr"]).context("no ctr")?,
            socket,
        };
        let mut c = Containerd {
            dir,
            child: Some(child),
            ctr,
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        while c.ctr.run("default", &["version"]).is_err() {
            if let Some(child) = c.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                c.child = None;
                bail!("containerd exited with {status}; log:\n{}", c.log_tail());
            }
            if Instant::now() > deadline {
                bail!(
                    "containerd did not answer within 30 s; log:\n{}",
                    c.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        Ok(c)
    }

    pub fn log_tail(&self) -> String {
        let text =
            std::fs::read_to_string(self.dir.path().join("containerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    /// containerd's `--state` directory, where the task bundles are.
    pub fn state_dir(&self) -> PathBuf {
        self.dir.path().join("state")
    }

    pub fn socket(&self) -> &Path {
        &self.ctr.socket
    }

    pub fn ctr(&self) -> &Ctr {
        &self.ctr
    }

    /// `ctr run -d --rootfs` of `spec` on `rootfs`; killed and removed when the guard drops.
    pub fn run(&self, spec: &CtrSpec, rootfs: &Rootfs) -> Result<CtrContainer> {
        let mut args: Vec<String> = vec!["run".into(), "-d".into(), "--rootfs".into()];
        for (k, v) in &spec.labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        for (k, v) in &spec.annotations {
            args.push("--annotation".into());
            args.push(format!("{k}={v}"));
        }
        if let Some(cgroup) = &spec.cgroup {
            args.push("--cgroup".into());
            args.push(cgroup.clone());
        }
        args.push(rootfs.root().display().to_string());
        args.push(spec.id.clone());
        args.extend(spec.cmd.iter().cloned());
        let argv: Vec<&str> = args.iter().map(String::as_str).collect();
        self.ctr.run(&spec.namespace, &argv)?;
        Ok(CtrContainer {
            ctr: self.ctr.clone(),
            namespace: spec.namespace.clone(),
            id: spec.id.clone(),
            state: self.state_dir(),
            cgroup: spec
                .cgroup
                .clone()
                .unwrap_or_else(|| format!("/{}/{}", spec.namespace, spec.id)),
            removed: false,
        })
    }
}

impl Drop for Containerd {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if let Ok(pid) = i32::try_from(child.id()) {
                unsafe { libc::kill(pid, libc::SIGTERM) };
            }
            let deadline = Instant::now() + Duration::from_secs(10);
            while child.try_wait().ok().flatten().is_none() && Instant::now() < deadline {
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
        crate::docker::unmount_below(self.dir.path());
    }
}

/// What to `ctr run`.
#[derive(Clone, Debug, Default)]
pub struct CtrSpec {
    pub namespace: String,
    pub id: String,
    pub cmd: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub annotations: Vec<(String, String)>,
    /// `--cgroup`; containerd's default is `/<namespace>/<id>`.
    pub cgroup: Option<String>,
}

impl CtrSpec {
    pub fn new(namespace: &str, id: &str, cmd: &[&str]) -> CtrSpec {
        CtrSpec {
            namespace: namespace.into(),
            id: id.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..CtrSpec::default()
        }
    }

    pub fn label(mut self, k: &str, v: &str) -> CtrSpec {
        self.labels.push((k.into(), v.into()));
        self
    }

    pub fn annotation(mut self, k: &str, v: &str) -> CtrSpec {
        self.annotations.push((k.into(), v.into()));
        self
    }

    pub fn cgroup(mut self, path: &str) -> CtrSpec {
        self.cgroup = Some(path.into());
        self
    }
}

/// A running `ctr` container, killed and removed on drop.
pub struct CtrContainer {
    ctr: Ctr,
    pub namespace: String,
    pub id: String,
    state: PathBuf,
    cgroup: String,
    removed: bool,
}

impl CtrContainer {
    /// Host pid of the container's init (from the task's `init.pid`).
    pub fn pid(&self) -> Result<u32> {
        let path = self
            .state
            .join("io.containerd.runtime.v2.task")
            .join(&self.namespace)
            .join(&self.id)
            .join("init.pid");
        let text = std::fs::read_to_string(&path)
            .with_context(|| format!("reading {}", path.display()))?;
        text.trim().parse().context("init.pid")
    }

    /// Kills the task and removes the container now.
    pub fn remove(mut self) -> Result<()> {
        self.cleanup()
    }

    fn cleanup(&mut self) -> Result<()> {
        if std::mem::replace(&mut self.removed, true) {
            return Ok(());
        }
        let result = self.kill_and_remove();
        // runc removes the container's cgroup, not the parent containerd or the caller made.
        if let Some(parent) = Path::new(&self.cgroup).parent().and_then(Path::to_str) {
            crate::docker::remove_cgroup_dir(parent);
        }
        result
    }

    fn kill_and_remove(&mut self) -> Result<()> {
        let _ = self.ctr.run(
            &self.namespace,
            &["task", "kill", "-s", "SIGKILL", &self.id],
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        while self
            .ctr
            .run(&self.namespace, &["task", "rm", &self.id])
            .is_err()
        {
            if Instant::now() > deadline {
                let _ = self
                    .ctr
                    .run(&self.namespace, &["task", "rm", "-f", &self.id]);
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        self.ctr
            .run(&self.namespace, &["container", "rm", &self.id])
            .map(|_| ())
    }
}

impl Drop for CtrContainer {
    fn drop(&mut self) {
        let _ = self.cleanup();
    }
}
