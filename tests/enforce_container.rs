//! End-to-end: enforcement in the kernel, inside a container. A real redis-server runs in a
//! container of a private Docker engine; a malicious module loaded with MODULE LOAD spawns a
//! shell from it, and the shipped rule kills that shell before it runs. The alert names the
//! container and its image, which the monitor learns from the engine's API.
//!
//! Also: the same attack in dry run, an operator's `docker exec` shell left alone, and the
//! second shipped rule (a binary dropped in /tmp and run in the container) enforced.

use std::path::Path;
use std::process::Output;
use std::time::{Duration, Instant};

use e2e::docker::{Container, Dockerd, Rootfs, RunSpec};
use e2e::redis_attack::{evil_module, needs, serial, shipped_rules};
use e2e::{Monitor, TempDir, s};
use serde_json::Value;

const SHELL_RULE: &str = "Shell spawned by Redis";
const TMP_RULE: &str = "Execution from temporary directory in container";
const SEEN_RULE: &str = "E2E exec seen in a container";
/// Where the malicious module sits inside the image.
const MODULE: &str = "/opt/evil.so";
const REDIS_CLI: &str = "/usr/bin/redis-cli";

fn text(out: &Output) -> String {
    format!(
        "status {}; stdout {:?}; stderr {:?}",
        out.status,
        String::from_utf8_lossy(&out.stdout).trim(),
        String::from_utf8_lossy(&out.stderr).trim()
    )
}

/// A private engine with one container running redis-server (busybox, Debian's redis-server
/// and redis-cli with their libraries, and the malicious module in the image).
struct Lab {
    // Dropped before the engine that removes it.
    redis: Container,
    docker: Dockerd,
    image: String,
    _dir: TempDir,
}

impl Lab {
    fn start(tag: &str) -> Option<Lab> {
        if !needs() {
            return None;
        }
        let docker = Dockerd::start()?;
        let dir = TempDir::new("enforce-container");
        let module = evil_module(&dir.0, "/tmp/pwned");
        let mut fs = Rootfs::busybox().expect("busybox rootfs");
        fs.add_host_binary(Path::new("/usr/bin/redis-server"), "/usr/bin/redis-server")
            .expect("redis-server into the image")
            .add_host_binary(Path::new(REDIS_CLI), REDIS_CLI)
            .expect("redis-cli into the image")
            .add_file(&module, MODULE)
            .expect("module into the image");
        let image = format!("e2e/redis:{tag}");
        docker.import_image(&image, &fs).expect("docker import");
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "e2e-redis-{tag}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        let spec = RunSpec::new(
            &name,
            &image,
            &[
                "/usr/bin/redis-server",
                "--enable-module-command",
                "yes",
                "--protected-mode",
                "no",
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ],
        )
        .arg("--network")
        .arg("none");
        let redis = docker.run(&spec).expect("docker run redis-server");
        let lab = Lab {
            redis,
            docker,
            image,
            _dir: dir,
        };
        let deadline = Instant::now() + Duration::from_secs(15);
        while lab.cli(&["PING"]) != "PONG" {
            assert!(
                Instant::now() < deadline,
                "redis-server in the container did not answer PING; logs: {:?}; engine log:\n{}",
                lab.docker.docker(&["logs", &lab.redis.id]),
                lab.docker.log_tail()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
        Some(lab)
    }

    fn exec(&self, cmd: &[&str]) -> Output {
        self.redis.exec(cmd).expect("docker exec")
    }

    /// `redis-cli ARGS` run in the container (`docker exec`), its trimmed stdout.
    fn cli(&self, args: &[&str]) -> String {
        let mut cmd = vec![REDIS_CLI];
        cmd.extend_from_slice(args);
        String::from_utf8_lossy(&self.exec(&cmd).stdout)
            .trim()
            .to_string()
    }

    /// Whether `path` exists in the container, asked by `test -e` there.
    fn exists(&self, path: &str) -> bool {
        self.exec(&["/bin/busybox", "test", "-e", path])
            .status
            .success()
    }

    fn redis_running(&self) -> bool {
        self.docker
            .docker(&["inspect", "-f", "{{.State.Running}}", &self.redis.id])
            .is_ok_and(|r| r == "true")
    }

    /// `monitor run` with the shipped rules plus an observer rule (see [`Lab::sync`]), asking
    /// the private engine for container metadata.
    fn monitor(&self, opts: &[&str]) -> Monitor {
        let rules = shipped_rules();
        let seen = self._dir.0.join("seen.yaml");
        std::fs::write(
            &seen,
            format!(
                "- rule: {SEEN_RULE}\n  desc: marks the exec events the test waits for\n  condition: evt.type in (execve, execveat) and container.id != host and proc.cmdline contains e2e-seen\n  output: seen %proc.cmdline container=%container.name\n  priority: NOTICE\n"
            ),
        )
        .expect("write observer rules");
        let socket = self.docker.socket().to_str().expect("utf-8 socket path");
        let sock_opt = format!("container.docker_sockets[]={socket}");
        let mut args = vec![
            "run",
            "-r",
            rules.to_str().expect("utf-8 path"),
            "-r",
            seen.to_str().expect("utf-8 path"),
            "-o",
            "json_output=true",
            "-o",
            "webserver.enabled=false",
            "-o",
            "container.docker_sockets=[]",
            "-o",
            &sock_opt,
        ];
        args.extend_from_slice(opts);
        Monitor::start(&args)
    }

    /// Runs `docker exec C /bin/busybox true e2e-seen-N` until the monitor reports it with
    /// the container's name, i.e. until the daemon has handled an event of this container
    /// with its metadata resolved.
    ///
    /// Why: rules that test container facts in the kernel (`container.id != host`) work only
    /// once the daemon has written the container's cgroup facts to the kernel, which it does
    /// when it first handles an event of that cgroup (before evaluating it). An exec racing
    /// with that first event would not be killed. The daemon writes the facts before it
    /// evaluates the same event, so the observer's alert proves the facts are in the kernel.
    /// It also makes sure the engine's metadata (name, image) is in the daemon's cache.
    fn sync(&self, m: &mut Monitor) {
        let deadline = Instant::now() + Duration::from_secs(30);
        for n in 0.. {
            let token = format!("e2e-seen-{n}");
            let out = self.exec(&["/bin/busybox", "true", &token]);
            assert!(out.status.success(), "{}", text(&out));
            let alert = m.wait_json(Duration::from_secs(5), |v| {
                s(v, "rule") == SEEN_RULE && s(v, "output").contains(&token)
            });
            if alert.is_some_and(|a| a["output_fields"]["container.name"] == self.redis.name) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "the monitor never reported an exec in {} with its name; stdout:\n{}\nlog:\n{}",
                self.redis.name,
                m.lines.join("\n"),
                m.log.join("\n")
            );
        }
    }

    /// The attack: MODULE LOAD of the malicious module, through redis-cli in the container.
    /// Returns the alert of the shipped rule.
    fn attack(&self, m: &mut Monitor) -> Value {
        let reply = self.cli(&["MODULE", "LOAD", MODULE]);
        // The module has no RedisModule_OnLoad: Redis refuses it, after its constructor ran.
        assert!(reply.contains("ERR"), "unexpected reply: {reply}");
        let alert = m
            .wait_json(Duration::from_secs(20), |v| s(v, "rule") == SHELL_RULE)
            .unwrap_or_else(|| {
                panic!(
                    "no alert; stdout:\n{}\nlog:\n{}",
                    m.lines.join("\n"),
                    m.log.join("\n")
                )
            });
        // Give a shell that was not stopped the time to create the marker.
        std::thread::sleep(Duration::from_millis(500));
        alert
    }

    /// The alert names this container (short id, name) and its image.
    fn assert_names_container(&self, alert: &Value) {
        let f = &alert["output_fields"];
        let id = f["container.id"].as_str().unwrap_or_default();
        assert!(
            id.len() == 12 && self.redis.id.starts_with(id),
            "container.id {id:?} is not the short id of {}: {alert}",
            self.redis.id
        );
        assert_eq!(f["container.name"], self.redis.name.as_str(), "{alert}");
        let (repo, tag) = self.image.split_once(':').expect("image has a tag");
        assert_eq!(f["container.image.repository"], repo, "{alert}");
        assert_eq!(f["container.image.tag"], tag, "{alert}");
    }
}

#[test]
fn a_shell_spawned_by_redis_in_a_container_is_killed_before_it_runs() {
    let _serial = serial();
    let Some(lab) = Lab::start("kill") else {
        return;
    };
    let mut m = lab.monitor(&[]);
    lab.sync(&mut m);
    let alert = lab.attack(&mut m);
    assert!(
        !lab.exists("/tmp/pwned"),
        "the shell ran: /tmp/pwned exists in the container"
    );
    assert!(lab.redis_running(), "redis-server must keep running");
    assert_eq!(lab.cli(&["PING"]), "PONG", "redis-server must still answer");
    assert_eq!(s(&alert, "priority"), "Critical", "{alert}");
    let enf = &alert["enforcement"];
    assert_eq!(enf["action"], "kill", "{alert}");
    assert_eq!(enf["enforced"], true, "{alert}");
    assert_eq!(enf["dry_run"], false, "{alert}");
    let f = &alert["output_fields"];
    assert_eq!(f["proc.name"], "sh", "{alert}");
    assert_eq!(f["proc.pname"], "redis-server", "{alert}");
    lab.assert_names_container(&alert);
    assert!(
        s(&alert, "output").contains(&format!("container_name={}", lab.redis.name)),
        "{alert}"
    );
}

#[test]
fn in_dry_run_the_shell_in_the_container_runs_and_the_alert_says_so() {
    let _serial = serial();
    let Some(lab) = Lab::start("dryrun") else {
        return;
    };
    let mut m = lab.monitor(&["-o", "enforcement.dry_run=true"]);
    lab.sync(&mut m);
    let alert = lab.attack(&mut m);
    assert!(
        lab.exists("/tmp/pwned"),
        "in dry run the shell must run and create /tmp/pwned"
    );
    assert!(lab.redis_running());
    assert_eq!(lab.cli(&["PING"]), "PONG");
    let enf = &alert["enforcement"];
    assert_eq!(enf["action"], "kill", "{alert}");
    assert_eq!(enf["enforced"], false, "{alert}");
    assert_eq!(enf["dry_run"], true, "{alert}");
    lab.assert_names_container(&alert);
}

#[test]
fn an_operators_docker_exec_shell_in_the_redis_container_is_left_alone() {
    let _serial = serial();
    let Some(lab) = Lab::start("operator") else {
        return;
    };
    let mut m = lab.monitor(&[]);
    lab.sync(&mut m);
    // The trailing no-op carries the token the observer rule waits for.
    let out = lab.exec(&["/bin/sh", "-c", "touch /tmp/operator; : e2e-seen-operator"]);
    assert!(
        out.status.success(),
        "the operator's shell was stopped: {}",
        text(&out)
    );
    assert!(
        lab.exists("/tmp/operator"),
        "the operator's shell did not run"
    );
    // The monitor did see that shell (so the absence of an alert below means something).
    let seen = m.wait_json(Duration::from_secs(20), |v| {
        s(v, "output").contains("e2e-seen-operator")
    });
    let seen = seen.unwrap_or_else(|| panic!("the monitor did not see the shell: {:?}", m.lines));
    assert_eq!(s(&seen, "rule"), SEEN_RULE, "{seen}");
    let lines = m.collect_for(Duration::from_secs(2)).to_vec();
    assert!(
        !lines.iter().any(|l| l.contains(SHELL_RULE)),
        "unexpected alert: {lines:?}"
    );
}

#[test]
fn a_binary_dropped_in_tmp_of_a_container_is_killed_and_the_same_binary_elsewhere_runs() {
    let _serial = serial();
    let Some(lab) = Lab::start("tmpexec") else {
        return;
    };
    let mut m = lab.monitor(&[]);
    let out = lab.exec(&["/bin/busybox", "cp", "/bin/busybox", "/tmp/dropped"]);
    assert!(out.status.success(), "{}", text(&out));
    // The container's cgroup facts must be in the kernel before the dropped binary runs.
    lab.sync(&mut m);
    let out = lab.exec(&["/tmp/dropped", "touch", "/tmp/dropped-ran"]);
    assert!(
        !out.status.success(),
        "the dropped binary was not stopped: {}",
        text(&out)
    );
    assert!(
        !lab.exists("/tmp/dropped-ran"),
        "the dropped binary ran: /tmp/dropped-ran exists"
    );
    let alert = m
        .wait_json(Duration::from_secs(20), |v| s(v, "rule") == TMP_RULE)
        .unwrap_or_else(|| {
            panic!(
                "no alert; stdout:\n{}\nlog:\n{}",
                m.lines.join("\n"),
                m.log.join("\n")
            )
        });
    let enf = &alert["enforcement"];
    assert_eq!(enf["action"], "kill", "{alert}");
    assert_eq!(enf["enforced"], true, "{alert}");
    assert_eq!(
        alert["output_fields"]["proc.exepath"], "/tmp/dropped",
        "{alert}"
    );
    lab.assert_names_container(&alert);

    // The very same program, from the image's /bin, is fine.
    let out = lab.exec(&["/bin/busybox", "touch", "/tmp/busybox-ran"]);
    assert!(
        out.status.success(),
        "/bin/busybox was stopped: {}",
        text(&out)
    );
    assert!(lab.exists("/tmp/busybox-ran"));
    let lines = m.collect_for(Duration::from_secs(2)).to_vec();
    assert_eq!(
        lines.iter().filter(|l| l.contains(TMP_RULE)).count(),
        1,
        "only the dropped binary may alert: {lines:?}"
    );
}
