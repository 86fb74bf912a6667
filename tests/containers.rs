//! End-to-end: container and Kubernetes awareness of the real monitor binary, against a
//! private Docker engine started by each test (its socket given with `-o`).
//!
//! Actions inside containers use absolute paths (`/bin/busybox echo ...`) so that the shell
//! really execs them instead of running a builtin or an applet in-process.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::docker::{Container, Dockerd, Rootfs, RunSpec, find_binary};
use e2e::{Monitor, TempDir, can_load_bpf, n, require, s};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(30);

/// One test at a time: each runs its own engine and monitor on a small, shared machine, and
/// a test's negative checks must not see another test's containers.
fn serial() -> MutexGuard<'static, ()> {
    static LOCK: Mutex<()> = Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

fn nonce() -> u64 {
    static COUNT: AtomicU32 = AtomicU32::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.subsec_nanos())
        .unwrap_or(0);
    (u64::from(std::process::id()) << 32)
        ^ u64::from(nanos)
        ^ (u64::from(COUNT.fetch_add(1, Ordering::Relaxed)) << 48)
}

/// A name no other test run uses (container names, markers in command lines).
fn unique(prefix: &str) -> String {
    format!("{prefix}-{:x}", nonce())
}

/// A pod uid in the kubelet's format.
fn pod_uid() -> String {
    let x = nonce();
    format!(
        "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
        x >> 32,
        (x >> 16) & 0xffff,
        x & 0xfff,
        (x >> 20) & 0xfff,
        x & 0xffff_ffff_ffff
    )
}

/// `-o` options pointing the container stage at this engine alone. The event path may hold
/// a new container's first event until its metadata is in (a loaded machine answers slower
/// than the default 50 ms), so that the first event can be checked like the others.
fn container_options(d: &Dockerd) -> Vec<String> {
    [
        "container.docker_sockets=[]".to_string(),
        format!("container.docker_sockets[]={}", d.socket().display()),
        "container.containerd_state_dirs=[]".to_string(),
        "container.metadata_wait=5s".to_string(),
    ]
    .into_iter()
    .flat_map(|o| ["-o".to_string(), o])
    .collect()
}

fn start_monitor(command: &[&str], d: &Dockerd) -> Monitor {
    let opts = container_options(d);
    let mut args: Vec<&str> = command.to_vec();
    args.extend(opts.iter().map(String::as_str));
    Monitor::start(&args)
}

fn trace_execs(d: &Dockerd) -> Monitor {
    start_monitor(&["trace", "--types", "execve"], d)
}

fn is_exec_with(v: &Value, marker: &str) -> bool {
    s(v, "evt.type") == "execve" && s(v, "proc.cmdline").contains(marker)
}

/// An exec of /bin/busybox with `marker` in its arguments (not the `docker` command that
/// started it, whose arguments hold the marker too).
fn busybox_ran(v: &Value, marker: &str) -> bool {
    is_exec_with(v, marker) && s(v, "proc.exepath") == "/bin/busybox"
}

/// What the trace shows for a process of `c`.
struct Expected<'a> {
    c: &'a Container,
    image: &'a str,
    repository: &'a str,
    tag: &'a str,
    /// Namespace, pod name and uid, for a pod's container.
    pod: Option<(&'a str, &'a str, &'a str)>,
}

fn assert_in_container(ev: &Value, want: &Expected) {
    let id = s(ev, "container.id");
    assert_eq!(id.len(), 12, "container.id is 12 characters: {ev}");
    assert_eq!(
        id,
        &want.c.id[..12],
        "container.id is docker's id prefix: {ev}"
    );
    assert_eq!(s(ev, "container.full_id"), want.c.id, "{ev}");
    assert_eq!(s(ev, "container.type"), "docker", "{ev}");
    assert_eq!(s(ev, "container.name"), want.c.name, "{ev}");
    assert_eq!(s(ev, "container.image"), want.image, "{ev}");
    assert_eq!(s(ev, "container.image.repository"), want.repository, "{ev}");
    assert_eq!(s(ev, "container.image.tag"), want.tag, "{ev}");
    match want.pod {
        Some((ns, pod, uid)) => {
            assert_eq!(s(ev, "k8s.ns.name"), ns, "{ev}");
            assert_eq!(s(ev, "k8s.pod.name"), pod, "{ev}");
            assert_eq!(s(ev, "k8s.pod.uid"), uid, "{ev}");
        }
        None => {
            assert_eq!(s(ev, "k8s.ns.name"), "", "not a pod's container: {ev}");
            assert_eq!(s(ev, "k8s.pod.name"), "", "not a pod's container: {ev}");
        }
    }
}

#[test]
fn trace_names_the_container_image_and_pod_of_each_event() {
    if !can_load_bpf() {
        return;
    }
    let _serial = serial();
    let Some(d) = Dockerd::start() else { return };
    let rootfs = Rootfs::busybox().expect("busybox rootfs");
    let pod_image = "e2e.registry.local:5000/shop/busybox:1.36-e2e";
    let plain_image = "e2e/plain-busybox:v2";
    d.import_image(pod_image, &rootfs).expect("docker import");
    d.import_image(plain_image, &rootfs).expect("docker import");
    let mut m = trace_execs(&d);

    // A pod's container, as a kubelet runs it; its entrypoint acts once, after the monitor is
    // ready, then stays.
    let (ns, pod, uid) = ("e2e-shop", unique("web"), pod_uid());
    let entry_marker = unique("e2e-entry");
    let entry = format!("/bin/busybox echo {entry_marker}; exec /bin/busybox sleep 3600");
    let web = d
        .run(
            &RunSpec::new(&unique("e2e-web"), pod_image, &["/bin/sh", "-c", &entry])
                .kubernetes_pod(ns, &pod, &uid),
        )
        .expect("docker run the pod's container");
    // A plain container, to show that events go to the right one.
    let plain = d
        .run(&RunSpec::new(
            &unique("e2e-plain"),
            plain_image,
            &["/bin/busybox", "sleep", "3600"],
        ))
        .expect("docker run");

    let web_want = Expected {
        c: &web,
        image: pod_image,
        repository: "e2e.registry.local:5000/shop/busybox",
        tag: "1.36-e2e",
        pod: Some((ns, &pod, &uid)),
    };
    let plain_want = Expected {
        c: &plain,
        image: plain_image,
        repository: "e2e/plain-busybox",
        tag: "v2",
        pod: None,
    };

    // The entrypoint: the container's first process, pid 1 in its pid namespace.
    let ev = m
        .wait_json(WAIT, |v| {
            is_exec_with(v, &entry_marker) && s(v, "proc.exepath") == "/bin/sh"
        })
        .unwrap_or_else(|| panic!("no execve event of the entrypoint; log: {:?}", m.log));
    assert_eq!(n(&ev, "proc.vpid"), Some(1), "{ev}");
    assert_in_container(&ev, &web_want);
    // The process the entrypoint started.
    let ev = m
        .wait_json(WAIT, |v| busybox_ran(v, &entry_marker))
        .unwrap_or_else(|| {
            panic!(
                "no execve event of the entrypoint's child; log: {:?}",
                m.log
            )
        });
    assert_eq!(s(&ev, "proc.args"), format!("echo {entry_marker}"), "{ev}");
    assert_eq!(
        s(&ev, "proc.pname"),
        "sh",
        "started by the entrypoint's shell: {ev}"
    );
    assert_in_container(&ev, &web_want);

    // `docker exec` of a binary, in each container.
    for want in [&web_want, &plain_want] {
        let marker = unique("e2e-exec");
        let out = want
            .c
            .exec(&["/bin/busybox", "echo", &marker])
            .expect("docker exec");
        assert!(out.status.success(), "docker exec: {out:?}");
        let ev = m
            .wait_json(WAIT, |v| busybox_ran(v, &marker))
            .unwrap_or_else(|| panic!("no execve event of `docker exec {}`", want.c.name));
        assert_eq!(s(&ev, "proc.args"), format!("echo {marker}"), "{ev}");
        assert_in_container(&ev, want);
    }

    // A host process.
    let marker = unique("e2e-host");
    let out = Command::new("/bin/busybox")
        .args(["echo", &marker])
        .output()
        .expect("run /bin/busybox on the host");
    assert!(out.status.success());
    let ev = m
        .wait_json(WAIT, |v| busybox_ran(v, &marker))
        .expect("an execve event of the host process");
    assert_eq!(
        n(&ev, "proc.ppid"),
        Some(i64::from(std::process::id())),
        "{ev}"
    );
    assert_eq!(s(&ev, "container.id"), "host", "{ev}");
    assert_eq!(s(&ev, "container.type"), "host", "{ev}");
    assert_eq!(s(&ev, "k8s.pod.name"), "", "{ev}");
}

/// Falco's default rules next to the repository (as in CI), unmodified.
fn falco_rules() -> Option<PathBuf> {
    let p =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../shared/falco-rules/falco_rules.yaml");
    let found = p.is_file();
    require(
        &format!(
            "Falco's rules at {} (shared/ beside the clone)",
            p.display()
        ),
        found,
    )
    .then_some(p)
}

/// Runs `cmd` (a shell command line) with a pseudo-terminal as its stdin/stdout, as a user
/// at a terminal would, through util-linux's `script`.
fn run_in_a_terminal(script: &Path, cmd: &str) -> std::process::Output {
    let child = Command::new(script)
        .args(["-qec", cmd, "/dev/null"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start script(1)");
    let pid = child.id();
    // A terminal session that hangs must fail the test, not block it.
    let watchdog = std::thread::spawn(move || {
        let deadline = Instant::now() + Duration::from_secs(60);
        while Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
            // SAFETY: signal 0 only checks that our child still exists.
            if unsafe { libc::kill(pid as i32, 0) } != 0 {
                return;
            }
        }
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(pid as i32, libc::SIGKILL) };
    });
    let out = child.wait_with_output().expect("wait for script(1)");
    let _ = watchdog.join();
    out
}

fn alert_field<'a>(a: &'a Value, field: &str) -> &'a str {
    a.get("output_fields")
        .and_then(|f| f.get(field))
        .and_then(Value::as_str)
        .unwrap_or("")
}

const TERMINAL_SHELL: &str = "Terminal shell in container";

#[test]
fn falco_terminal_shell_in_container_fires_for_docker_exec_it() {
    if !can_load_bpf() {
        return;
    }
    let Some(rules) = falco_rules() else { return };
    let Some(script) = find_binary("script", &["/usr/bin/script"]) else {
        require("util-linux's `script` (apt-get install bsdutils)", false);
        return;
    };
    let _serial = serial();
    let Some(d) = Dockerd::start() else { return };
    let image = "e2e/shell-busybox:1.0";
    d.busybox_image(image).expect("docker import");
    let (ns, pod, uid) = ("e2e-ops", unique("toolbox"), pod_uid());
    let c = d
        .run(
            &RunSpec::new(
                &unique("e2e-shell"),
                image,
                &["/bin/busybox", "sleep", "3600"],
            )
            .kubernetes_pod(ns, &pod, &uid),
        )
        .expect("docker run");
    let rules = rules.display().to_string();
    // As Falco's shipped falco.yaml: alerts carry the container and pod.
    let mut m = start_monitor(
        &[
            "run",
            "-r",
            &rules,
            "-o",
            "json_output=true",
            "-o",
            "append_output=[{suggested_output: true}]",
        ],
        &d,
    );

    // Shells that must not fire it: one on the host, one in the container without a terminal.
    let host_marker = unique("e2e-host-shell");
    let st = Command::new("/bin/sh")
        .args(["-c", &format!("true {host_marker}")])
        .stdin(Stdio::null())
        .status()
        .expect("run /bin/sh on the host");
    assert!(st.success());
    let notty_marker = unique("e2e-notty-shell");
    let out = c
        .exec(&["sh", "-c", &format!(": {notty_marker}")])
        .expect("docker exec without a terminal");
    assert!(out.status.success(), "{out:?}");

    // `docker exec -it CONTAINER sh`, at a terminal.
    let tty_marker = unique("e2e-tty-shell");
    let cmd = format!(
        "{} -H {} exec -it {} sh -c ': {tty_marker}'",
        d.cli().bin().display(),
        d.cli().host(),
        c.name
    );
    let out = run_in_a_terminal(&script, &cmd);
    assert!(
        out.status.success(),
        "docker exec -it at a terminal: {out:?}"
    );

    let alert = m
        .wait_json(WAIT, |v| {
            s(v, "rule") == TERMINAL_SHELL && alert_field(v, "proc.cmdline").contains(&tty_marker)
        })
        .unwrap_or_else(|| {
            panic!(
                "no '{TERMINAL_SHELL}' alert for docker exec -it; stdout:\n{}\nstderr:\n{}",
                m.lines.join("\n"),
                m.log.join("\n")
            )
        });
    assert_eq!(s(&alert, "priority"), "Notice", "{alert}");
    assert_eq!(s(&alert, "source"), "syscall", "{alert}");
    assert_eq!(alert_field(&alert, "proc.name"), "sh", "{alert}");
    let tty = alert["output_fields"]["proc.tty"].as_i64().unwrap_or(0);
    assert_ne!(tty, 0, "a terminal: {alert}");
    assert_eq!(alert_field(&alert, "container.id"), &c.id[..12], "{alert}");
    assert_eq!(alert_field(&alert, "container.name"), c.name, "{alert}");
    assert_eq!(
        alert_field(&alert, "container.image.repository"),
        "e2e/shell-busybox",
        "{alert}"
    );
    assert_eq!(alert_field(&alert, "container.image.tag"), "1.0", "{alert}");
    assert_eq!(alert_field(&alert, "k8s.pod.name"), pod, "{alert}");
    assert_eq!(alert_field(&alert, "k8s.ns.name"), ns, "{alert}");
    let output = s(&alert, "output");
    assert!(
        output.contains("A shell was spawned in a container with an attached terminal")
            && output.contains(&format!("container_name={}", c.name))
            && output.contains(&format!("container_id={}", &c.id[..12]))
            && output.contains("container_image_repository=e2e/shell-busybox")
            && output.contains(&format!("k8s_pod_name={pod}")),
        "the text names the container and pod: {output}"
    );

    // The two other shells ran before, so their events were evaluated already.
    for line in &m.lines {
        let Ok(v) = serde_json::from_str::<Value>(line) else {
            continue;
        };
        let cmdline = alert_field(&v, "proc.cmdline");
        assert!(
            !(s(&v, "rule") == TERMINAL_SHELL
                && (cmdline.contains(&host_marker) || cmdline.contains(&notty_marker))),
            "fired for a shell without a terminal or on the host: {v}"
        );
    }
}

fn now_ns() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|t| t.as_nanos() as i64)
        .unwrap_or(0)
}

/// A named pipe in a fresh directory, for a container to wait on without running anything.
fn fifo(dir: &TempDir) -> PathBuf {
    let p = dir.0.join("go");
    let c =
        std::ffi::CString::new(p.as_os_str().as_encoded_bytes()).expect("no NUL in a temp path");
    // SAFETY: a valid C string.
    assert_eq!(
        unsafe { libc::mkfifo(c.as_ptr(), 0o600) },
        0,
        "mkfifo {}",
        p.display()
    );
    p
}

#[test]
fn events_keep_their_container_while_the_engine_restarts() {
    if !can_load_bpf() {
        return;
    }
    let _serial = serial();
    let Some(mut d) = Dockerd::start() else {
        return;
    };
    let image = "e2e/loop-busybox:1.0";
    d.busybox_image(image).expect("docker import");
    // A container that runs nothing (the shell's `read` is a builtin) until the test writes
    // to its pipe; started before the monitor, its first event comes while the engine is down.
    let signal_dir = TempDir::new("signal");
    let pipe = fifo(&signal_dir);
    let wait_marker = unique("e2e-wait");
    let entry = format!(
        "read go < /signal/go; while :; do /bin/busybox true {wait_marker}; /bin/busybox usleep 200000; done"
    );
    let waiting = d
        .run(
            &RunSpec::new(&unique("e2e-wait"), image, &["/bin/sh", "-c", &entry])
                .arg("-v")
                .arg(&format!("{}:/signal", signal_dir.0.display())),
        )
        .expect("docker run");
    let mut m = trace_execs(&d);

    // A container that execs a binary every 200 ms.
    let loop_marker = unique("e2e-loop");
    let entry =
        format!("while :; do /bin/busybox true {loop_marker}; /bin/busybox usleep 200000; done");
    let looping = d
        .run(&RunSpec::new(
            &unique("e2e-loop"),
            image,
            &["/bin/sh", "-c", &entry],
        ))
        .expect("docker run");

    let ev = m
        .wait_json(WAIT, |v| {
            busybox_ran(v, &loop_marker) && s(v, "container.name") == looping.name
        })
        .expect("the looping container's events, with its name");
    assert_eq!(s(&ev, "container.id"), &looping.id[..12]);

    // Engine down; live restore keeps the containers running.
    d.stop().expect("stop dockerd");
    let stopped_at = now_ns();
    assert!(d.docker(&["ps"]).is_err(), "the engine is really down");
    // Events of the known container keep coming, with its id and what was known of it.
    let mut seen = 0;
    let deadline = Instant::now() + WAIT;
    while seen < 5 && Instant::now() < deadline {
        m.lines.clear();
        let after_stop = |v: &Value| {
            busybox_ran(v, &loop_marker) && n(v, "evt.time").is_some_and(|t| t > stopped_at)
        };
        if let Some(ev) = m.wait_json(deadline - Instant::now(), after_stop) {
            assert_eq!(
                s(&ev, "container.id"),
                &looping.id[..12],
                "engine down: {ev}"
            );
            assert_eq!(s(&ev, "container.type"), "docker", "engine down: {ev}");
            assert_eq!(s(&ev, "container.name"), looping.name, "engine down: {ev}");
            seen += 1;
        }
    }
    assert!(
        seen >= 5,
        "events kept flowing with the engine down: {seen}"
    );

    // A container first seen now: its id, from its cgroup, without the engine.
    std::fs::write(&pipe, "go\n").expect("write to the container's pipe");
    let ev = m
        .wait_json(WAIT, |v| busybox_ran(v, &wait_marker))
        .expect("the waiting container's events, with the engine down");
    assert_eq!(
        s(&ev, "container.id"),
        &waiting.id[..12],
        "engine down: {ev}"
    );
    assert_eq!(s(&ev, "container.type"), "docker", "engine down: {ev}");
    assert_eq!(
        s(&ev, "container.name"),
        "",
        "no engine, no name (yet): {ev}"
    );

    // Engine up again: that container gets its metadata, with no new container event.
    d.restart().expect("start dockerd again");
    let restarted_at = now_ns();
    m.lines.clear();
    let ev = m
        .wait_json(WAIT, |v| {
            busybox_ran(v, &wait_marker) && s(v, "container.name") == waiting.name
        })
        .unwrap_or_else(|| {
            panic!(
                "the container first seen during the outage never got its name; stderr:\n{}",
                m.log.join("\n")
            )
        });
    assert_eq!(s(&ev, "container.id"), &waiting.id[..12], "{ev}");
    assert_eq!(s(&ev, "container.image"), image, "{ev}");
    assert_eq!(s(&ev, "container.image.tag"), "1.0", "{ev}");
    // The first container kept its metadata throughout.
    let ev = m
        .wait_json(WAIT, |v| {
            busybox_ran(v, &loop_marker) && n(v, "evt.time").is_some_and(|t| t > restarted_at)
        })
        .expect("the first container's events after the restart");
    assert_eq!(s(&ev, "container.id"), &looping.id[..12], "{ev}");
    assert_eq!(s(&ev, "container.name"), looping.name, "{ev}");
    assert_eq!(s(&ev, "container.image"), image, "{ev}");

    // A container started after the restart.
    let late_marker = unique("e2e-late");
    let entry = format!("/bin/busybox echo {late_marker}; exec /bin/busybox sleep 3600");
    let late = d
        .run(&RunSpec::new(
            &unique("e2e-late"),
            image,
            &["/bin/sh", "-c", &entry],
        ))
        .expect("docker run after the engine restart");
    let ev = m
        .wait_json(WAIT, |v| busybox_ran(v, &late_marker))
        .expect("an event of the container started after the restart");
    assert_eq!(s(&ev, "container.id"), &late.id[..12], "{ev}");
    assert_eq!(s(&ev, "container.name"), late.name, "{ev}");
    assert_eq!(s(&ev, "container.image"), image, "{ev}");
}
