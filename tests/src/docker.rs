//! A private Docker engine for tests: its own dockerd (own data root, exec root, pidfile and
//! socket, no iptables, no bridge), images built without a registry by `docker import` of a
//! rootfs tarball, and containers removed when their guard drops.
//!
//! Needs root and Debian's `docker.io` (dockerd, docker, runc, containerd) and
//! `busybox-static`. When those are missing a test skips, saying why, except under `CI=true`
//! where it fails.

use std::ffi::OsStr;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tempfile::TempDir;

/// Whether a test may go on: `missing` is what it lacks, if anything. Under `CI=true` a lack
/// is a failure (a panic naming it); elsewhere the test is skipped with the reason printed.
pub fn requirement_met(test: &str, missing: Option<String>) -> bool {
    let Some(why) = missing else {
        return true;
    };
    if std::env::var("CI").is_ok_and(|v| v == "true") {
        panic!("{test}: cannot run under CI=true: {why}");
    }
    eprintln!("skipped {test}: {why}");
    false
}

/// First of `candidates` that exists, else `name` found on PATH.
pub fn find_binary(name: &str, candidates: &[&str]) -> Option<PathBuf> {
    for c in candidates {
        let p = Path::new(c);
        if p.is_file() {
            return Some(p.to_path_buf());
        }
    }
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// What a Docker test lacks on this machine, if anything.
pub fn docker_missing() -> Option<String> {
    if unsafe { libc::geteuid() } != 0 {
        return Some("needs root to run dockerd".into());
    }
    for (bin, dirs, pkg) in [
        ("dockerd", "/usr/sbin/dockerd", "docker.io"),
        ("runc", "/usr/sbin/runc", "runc (a dependency of docker.io)"),
        ("busybox", "/bin/busybox", "busybox-static"),
    ] {
        if find_binary(bin, &[dirs]).is_none() {
            return Some(format!("no `{bin}` binary (apt-get install {pkg})"));
        }
    }
    if docker_cli().is_none() {
        return Some("no `docker` client (apt-get install docker.io)".into());
    }
    None
}

/// Debian's client first: it speaks the API version of Debian's engine.
fn docker_cli() -> Option<PathBuf> {
    find_binary("docker", &["/usr/bin/docker"])
}

fn run_checked(cmd: &mut Command) -> Result<Output> {
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {cmd:?}"))?;
    if !out.status.success() {
        bail!(
            "{cmd:?} failed ({}): {}{}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim(),
            String::from_utf8_lossy(&out.stdout).trim()
        );
    }
    Ok(out)
}

/// The `docker` client pointed at one engine.
#[derive(Clone, Debug)]
pub struct DockerCli {
    bin: PathBuf,
    host: String,
}

impl DockerCli {
    /// The client binary, for commands a test must run itself (e.g. under a terminal).
    pub fn bin(&self) -> &Path {
        &self.bin
    }

    /// The `-H` value that reaches this engine.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// Runs `docker ARGS` and returns its trimmed stdout; an error carries stderr.
    pub fn run<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        let out = run_checked(Command::new(&self.bin).arg("-H").arg(&self.host).args(args))?;
        Ok(String::from_utf8_lossy(&out.stdout).trim().to_string())
    }

    /// Runs `docker ARGS` and returns its whole output, whatever its exit status.
    pub fn output<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<Output> {
        Command::new(&self.bin)
            .arg("-H")
            .arg(&self.host)
            .args(args)
            .stdin(Stdio::null())
            .output()
            .with_context(|| {
                format!(
                    "running docker {:?}",
                    args.iter()
                        .map(|a| a.as_ref().to_owned())
                        .collect::<Vec<_>>()
                )
            })
    }
}

/// A dockerd of the test's own. Started with `--live-restore`, so containers outlive a
/// `stop()` of the engine, as on a host whose engine is restarted.
pub struct Dockerd {
    dir: TempDir,
    socket: PathBuf,
    child: Option<Child>,
    cli: DockerCli,
    cgroup_parents: std::sync::Mutex<Vec<String>>,
}

impl Dockerd {
    /// Starts an engine, or returns `None` after printing why it cannot here (a panic under
    /// `CI=true`). A dockerd that is installed but does not come up is a failure.
    pub fn start() -> Option<Dockerd> {
        if !requirement_met("docker test", docker_missing()) {
            return None;
        }
        match Dockerd::try_start() {
            Ok(d) => Some(d),
            Err(e) => panic!("dockerd did not start: {e:#}"),
        }
    }

    pub fn try_start() -> Result<Dockerd> {
        let dir = tempfile::Builder::new()
            .prefix("dockerd-")
            .tempdir_in("/tmp")?;
        let socket = dir.path().join("docker.sock");
        let cli = DockerCli {
            bin: docker_cli().context("no docker client")?,
            host: format!("unix://{}", socket.display()),
        };
        let mut d = Dockerd {
            dir,
            socket,
            child: None,
            cli,
            cgroup_parents: std::sync::Mutex::new(Vec::new()),
        };
        d.spawn()?;
        Ok(d)
    }

    fn spawn(&mut self) -> Result<()> {
        let base = self.dir.path();
        let dockerd = find_binary("dockerd", &["/usr/sbin/dockerd"]).context("no dockerd")?;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(base.join("dockerd.log"))?;
        let _ = std::fs::remove_file(&self.socket);
        let child = Command::new(dockerd)
            .args([
                "--iptables=false",
                "--ip6tables=false",
                "--bridge=none",
                "--live-restore",
            ])
            .arg("--data-root")
            .arg(base.join("data"))
            .arg("--exec-root")
            .arg(base.join("exec"))
            .arg("--pidfile")
            .arg(base.join("dockerd.pid"))
            .arg("-H")
            .arg(format!("unix://{}", self.socket.display()))
            .stdin(Stdio::null())
            .stdout(log.try_clone()?)
            .stderr(log)
            .spawn()
            .context("spawning dockerd")?;
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if self.ping() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                bail!(
                    "dockerd exited with {status}; its log:\n{}",
                    self.log_tail()
                );
            }
            if Instant::now() > deadline {
                bail!(
                    "dockerd did not answer /_ping within 30 s; its log:\n{}",
                    self.log_tail()
                );
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `GET /_ping` over the socket, by hand: the harness needs no HTTP client.
    pub fn ping(&self) -> bool {
        use std::io::{Read, Write};
        let Ok(mut s) = std::os::unix::net::UnixStream::connect(&self.socket) else {
            return false;
        };
        let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
        if s.write_all(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            .is_err()
        {
            return false;
        }
        let mut buf = String::new();
        let _ = s.read_to_string(&mut buf);
        buf.starts_with("HTTP/1.0 200") || buf.starts_with("HTTP/1.1 200")
    }

    pub fn log_tail(&self) -> String {
        let text = std::fs::read_to_string(self.dir.path().join("dockerd.log")).unwrap_or_default();
        let lines: Vec<&str> = text.lines().collect();
        lines[lines.len().saturating_sub(30)..].join("\n")
    }

    pub fn socket(&self) -> &Path {
        &self.socket
    }

    pub fn cli(&self) -> &DockerCli {
        &self.cli
    }

    /// `docker ARGS` against this engine.
    pub fn docker<S: AsRef<OsStr>>(&self, args: &[S]) -> Result<String> {
        self.cli.run(args)
    }

    pub fn is_running(&self) -> bool {
        self.child.is_some()
    }

    /// Stops the engine (SIGTERM, then SIGKILL after 20 s). Containers keep running.
    pub fn stop(&mut self) -> Result<()> {
        let Some(mut child) = self.child.take() else {
            return Ok(());
        };
        let pid = i32::try_from(child.id()).context("dockerd pid")?;
        unsafe { libc::kill(pid, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            if child.try_wait()?.is_some() {
                break;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        // dockerd bind-mounts its data root on itself and leaves the mount behind.
        unmount_below(self.dir.path());
        Ok(())
    }

    /// Starts the engine again with the same state; it finds its running containers.
    pub fn restart(&mut self) -> Result<()> {
        self.stop()?;
        self.spawn()
    }

    /// Imports `rootfs` as image `name_tag` (`docker import`, no registry).
    pub fn import_image(&self, name_tag: &str, rootfs: &Rootfs) -> Result<()> {
        let tar = self
            .dir
            .path()
            .join(format!("image-{}.tar", name_tag.replace(['/', ':'], "_")));
        rootfs.tar(&tar)?;
        self.docker(&[OsStr::new("import"), tar.as_os_str(), OsStr::new(name_tag)])?;
        let _ = std::fs::remove_file(&tar);
        Ok(())
    }

    /// An image holding busybox and its applets only.
    pub fn busybox_image(&self, name_tag: &str) -> Result<()> {
        self.import_image(name_tag, &Rootfs::busybox()?)
    }

    /// `docker run -d` of `spec`; the container is removed when the guard drops.
    pub fn run(&self, spec: &RunSpec) -> Result<Container> {
        self.run_or_create(&["run", "-d"], spec)
    }

    /// `docker create`: the container exists (inspectable) but does not run. Useful for
    /// settings this machine cannot start, such as `--privileged`.
    pub fn create(&self, spec: &RunSpec) -> Result<Container> {
        self.run_or_create(&["create"], spec)
    }

    fn run_or_create(&self, verb: &[&str], spec: &RunSpec) -> Result<Container> {
        let mut args: Vec<String> = verb.iter().map(|s| s.to_string()).collect();
        args.extend(["--name".to_string(), spec.name.clone()]);
        for (k, v) in &spec.labels {
            args.push("--label".into());
            args.push(format!("{k}={v}"));
        }
        if let Some(parent) = &spec.cgroup_parent {
            if let Ok(mut parents) = self.cgroup_parents.lock() {
                parents.push(parent.clone());
            }
            args.push("--cgroup-parent".into());
            args.push(parent.clone());
        }
        if spec.privileged {
            args.push("--privileged".into());
        }
        args.extend(spec.extra_args.iter().cloned());
        args.push(spec.image.clone());
        args.extend(spec.cmd.iter().cloned());
        let id = self.docker(&args)?;
        Ok(Container {
            cli: self.cli.clone(),
            id,
            name: spec.name.clone(),
        })
    }
}

impl Drop for Dockerd {
    fn drop(&mut self) {
        // Live restore keeps containers through a stopped engine: remove them with the engine
        // up, then stop it.
        if self.child.is_none() && self.spawn().is_err() {
            eprintln!(
                "dockerd could not be restarted to clean up; log:\n{}",
                self.log_tail()
            );
        }
        if let Ok(ids) = self.cli.run(&["ps", "-aq"])
            && !ids.is_empty()
        {
            let mut args = vec!["rm", "-f"];
            args.extend(ids.lines());
            let _ = self.cli.run(&args);
        }
        let _ = self.stop();
        if let Ok(parents) = self.cgroup_parents.lock() {
            for p in parents.iter() {
                remove_cgroup_dir(p);
            }
        }
    }
}

/// Where the cgroup v2 hierarchy is mounted (`/sys/fs/cgroup/unified` on hybrid hosts).
pub fn cgroup_v2_mount() -> Result<PathBuf> {
    let info = std::fs::read_to_string("/proc/self/mountinfo")?;
    info.lines()
        .find(|l| {
            l.split_once(" - ")
                .is_some_and(|(_, post)| post.starts_with("cgroup2 "))
        })
        .and_then(|l| l.split_whitespace().nth(4))
        .map(PathBuf::from)
        .context("no cgroup2 mount in /proc/self/mountinfo")
}

/// The cgroup id (directory inode) of a v2 cgroup path such as `/docker/<id>`.
pub fn cgroup_id_of(path: &str) -> Result<u64> {
    use std::os::unix::fs::MetadataExt;
    let dir = cgroup_v2_mount()?.join(path.trim_start_matches('/'));
    Ok(std::fs::metadata(&dir)
        .with_context(|| format!("stat {}", dir.display()))?
        .ino())
}

/// The cgroup id of a running task.
pub fn cgroup_id_of_pid(pid: u32) -> Result<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
    let path = text
        .lines()
        .find_map(|l| l.strip_prefix("0::"))
        .context("no cgroup v2 line")?;
    cgroup_id_of(path)
}

/// Removes the (empty) cgroup directory `path` in every mounted hierarchy, v1 and v2: what
/// a runtime leaves behind of a `--cgroup-parent` or a containerd namespace.
pub fn remove_cgroup_dir(path: &str) {
    let rel = path.trim_matches('/');
    if rel.is_empty() {
        return;
    }
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    for line in info.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        if !(post.starts_with("cgroup ") || post.starts_with("cgroup2 ")) {
            continue;
        }
        if let Some(mount) = pre.split_whitespace().nth(4) {
            let _ = std::fs::remove_dir(Path::new(mount).join(rel));
        }
    }
}

/// Lazily unmounts every mount at or below `dir`, deepest first.
pub fn unmount_below(dir: &Path) {
    let Ok(info) = std::fs::read_to_string("/proc/self/mountinfo") else {
        return;
    };
    let mut points: Vec<PathBuf> = info
        .lines()
        .filter_map(|l| l.split_whitespace().nth(4))
        .map(PathBuf::from)
        .filter(|p| p.starts_with(dir))
        .collect();
    points.sort_by_key(|p| std::cmp::Reverse(p.components().count()));
    for p in points {
        if let Ok(c) = std::ffi::CString::new(p.as_os_str().as_encoded_bytes()) {
            unsafe { libc::umount2(c.as_ptr(), libc::MNT_DETACH) };
        }
    }
}

/// What to `docker run`.
#[derive(Clone, Debug, Default)]
pub struct RunSpec {
    pub name: String,
    pub image: String,
    pub cmd: Vec<String>,
    pub labels: Vec<(String, String)>,
    pub cgroup_parent: Option<String>,
    pub privileged: bool,
    pub extra_args: Vec<String>,
}

impl RunSpec {
    pub fn new(name: &str, image: &str, cmd: &[&str]) -> RunSpec {
        RunSpec {
            name: name.into(),
            image: image.into(),
            cmd: cmd.iter().map(|s| s.to_string()).collect(),
            ..RunSpec::default()
        }
    }

    pub fn label(mut self, key: &str, value: &str) -> RunSpec {
        self.labels.push((key.into(), value.into()));
        self
    }

    /// `--cgroup-parent /kubepods/besteffort/pod<uid>` makes the cgroup layout of a kubelet.
    pub fn cgroup_parent(mut self, parent: &str) -> RunSpec {
        self.cgroup_parent = Some(parent.into());
        self
    }

    pub fn privileged(mut self) -> RunSpec {
        self.privileged = true;
        self
    }

    pub fn arg(mut self, arg: &str) -> RunSpec {
        self.extra_args.push(arg.into());
        self
    }

    /// The labels a kubelet puts on a pod's container.
    pub fn kubernetes_pod(self, namespace: &str, pod: &str, uid: &str) -> RunSpec {
        self.label("io.kubernetes.pod.name", pod)
            .label("io.kubernetes.pod.namespace", namespace)
            .label("io.kubernetes.pod.uid", uid)
            .cgroup_parent(&format!("/kubepods/besteffort/pod{uid}"))
    }
}

/// A running container, removed (`docker rm -f`) on drop.
pub struct Container {
    cli: DockerCli,
    /// The full 64-hex id.
    pub id: String,
    pub name: String,
}

impl Container {
    /// Host pid of the container's init process.
    pub fn pid(&self) -> Result<u32> {
        let pid = self
            .cli
            .run(&["inspect", "-f", "{{.State.Pid}}", &self.id])?;
        pid.parse()
            .with_context(|| format!("pid {pid:?} of {}", self.name))
    }

    /// `docker exec CONTAINER CMD...`, output returned whatever the exit status.
    pub fn exec(&self, cmd: &[&str]) -> Result<Output> {
        let mut args = vec!["exec", self.id.as_str()];
        args.extend_from_slice(cmd);
        self.cli.output(&args)
    }

    /// `docker exec -d`: starts CMD in the container and returns at once.
    pub fn exec_detached(&self, cmd: &[&str]) -> Result<()> {
        let mut args = vec!["exec", "-d", self.id.as_str()];
        args.extend_from_slice(cmd);
        self.cli.run(&args).map(|_| ())
    }

    /// Host pids of every process of the container (`docker top`).
    pub fn pids(&self) -> Result<Vec<u32>> {
        let out = self.cli.run(&["top", &self.id, "-o", "pid"])?;
        Ok(out
            .lines()
            .skip(1)
            .filter_map(|l| l.trim().parse().ok())
            .collect())
    }

    /// The container's cgroup v2 path as `/proc/<pid>/cgroup` shows it.
    pub fn cgroup_path(&self) -> Result<String> {
        let pid = self.pid()?;
        let text = std::fs::read_to_string(format!("/proc/{pid}/cgroup"))?;
        text.lines()
            .find_map(|l| l.strip_prefix("0::"))
            .map(str::to_string)
            .context("no cgroup v2 line")
    }

    /// The kernel's cgroup id of the container (what `bpf_get_current_cgroup_id` returns for
    /// its processes): the inode of its cgroup directory in the v2 hierarchy.
    pub fn cgroup_id(&self) -> Result<u64> {
        cgroup_id_of(&self.cgroup_path()?)
    }

    /// Stops and removes the container now, rather than at drop.
    pub fn remove(self) -> Result<()> {
        self.cli.run(&["rm", "-f", &self.id]).map(|_| ())
    }
}

impl Drop for Container {
    fn drop(&mut self) {
        let _ = self.cli.output(&["rm", "-f", &self.id]);
    }
}

/// A root filesystem being assembled for `docker import` (or `ctr`).
pub struct Rootfs {
    dir: TempDir,
}

impl Rootfs {
    pub fn empty() -> Result<Rootfs> {
        let dir = tempfile::Builder::new()
            .prefix("rootfs-")
            .tempdir_in("/tmp")?;
        for d in ["bin", "dev", "proc", "sys", "etc", "tmp", "root"] {
            std::fs::create_dir_all(dir.path().join(d))?;
        }
        std::fs::write(
            dir.path().join("etc/passwd"),
            "root:x:0:0:root:/root:/bin/sh\n",
        )?;
        std::fs::write(dir.path().join("etc/group"), "root:x:0:\n")?;
        Ok(Rootfs { dir })
    }

    /// The host's busybox as `/bin/busybox`, with a `/bin/<applet>` link for each applet.
    pub fn busybox() -> Result<Rootfs> {
        let busybox = find_binary("busybox", &["/bin/busybox", "/usr/bin/busybox"])
            .context("no busybox (apt-get install busybox-static)")?;
        let mut fs = Rootfs::empty()?;
        fs.add_host_binary(&busybox, "/bin/busybox")?;
        let list = run_checked(Command::new(&busybox).arg("--list"))?;
        for applet in String::from_utf8_lossy(&list.stdout).lines() {
            let link = fs.path("/bin").join(applet);
            if !link.exists() && !applet.contains('/') && applet != "busybox" {
                std::os::unix::fs::symlink("busybox", &link)?;
            }
        }
        Ok(fs)
    }

    pub fn root(&self) -> &Path {
        self.dir.path()
    }

    /// Where `dest` (absolute inside the image) is on the host.
    pub fn path(&self, dest: &str) -> PathBuf {
        self.dir.path().join(dest.trim_start_matches('/'))
    }

    /// Writes a file into the image.
    pub fn add_bytes(&mut self, dest: &str, bytes: &[u8], mode: u32) -> Result<&mut Rootfs> {
        let p = self.path(dest);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::write(&p, bytes)?;
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
        Ok(self)
    }

    /// Copies a host file into the image (symlinks followed).
    pub fn add_file(&mut self, host: &Path, dest: &str) -> Result<&mut Rootfs> {
        let p = self.path(dest);
        if let Some(parent) = p.parent() {
            std::fs::create_dir_all(parent)?;
        }
        std::fs::copy(host, &p).with_context(|| format!("copying {}", host.display()))?;
        Ok(self)
    }

    /// Copies a host binary and, if dynamically linked, the libraries and loader `ldd` lists,
    /// at their host paths (e.g. `/usr/bin/redis-server` with its libc).
    pub fn add_host_binary(&mut self, host: &Path, dest: &str) -> Result<&mut Rootfs> {
        self.add_file(host, dest)?;
        let out = Command::new("ldd").arg(host).stdin(Stdio::null()).output();
        let Ok(out) = out else {
            return Ok(self);
        };
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let lib = match line.split_once("=>") {
                Some((_, rhs)) => rhs.split_whitespace().next(),
                None => line.split_whitespace().next(),
            };
            if let Some(lib) = lib.filter(|l| l.starts_with('/')) {
                self.add_file(Path::new(lib), lib)?;
            }
        }
        Ok(self)
    }

    /// Writes the tree as a tar archive.
    pub fn tar(&self, out: &Path) -> Result<()> {
        run_checked(
            Command::new("tar")
                .arg("-C")
                .arg(self.dir.path())
                .arg("--numeric-owner")
                .arg("-cf")
                .arg(out)
                .arg("."),
        )?;
        Ok(())
    }
}
