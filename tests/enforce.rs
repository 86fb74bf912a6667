//! End-to-end: enforcement in the kernel. A real redis-server is made to spawn a shell the
//! way an attacker does it (a module loaded with MODULE LOAD whose constructor calls
//! system()); the shipped rule kills the shell before it runs.

use std::process::Command;
use std::time::Duration;

use e2e::redis_attack::{HostRedis, evil_module, needs, serial, shipped_rules};
use e2e::{Monitor, TempDir, can_load_bpf, s};
use serde_json::Value;

/// A redis-server on 127.0.0.1 that accepts MODULE LOAD; killed on drop.
struct Redis(HostRedis);

impl Redis {
    fn start() -> Redis {
        Redis(HostRedis::start(&["--enable-module-command", "yes"]).expect("start redis-server"))
    }

    fn cli(&self, args: &[&str]) -> String {
        let out = Command::new("redis-cli")
            .args(["-p", &self.0.port.to_string()])
            .args(args)
            .output()
            .expect("redis-cli");
        String::from_utf8_lossy(&out.stdout).trim().to_string()
    }

    fn alive(&mut self) -> bool {
        self.0.alive()
    }
}

fn attack(opts: &[&str]) -> (bool, bool, Value) {
    let dir = TempDir::new("enforce");
    let marker = dir.0.join("pwned");
    let module = evil_module(&dir.0, marker.to_str().expect("utf-8 path"));
    let mut redis = Redis::start();
    let rules = shipped_rules();
    let mut m = Monitor::run_json(&rules, opts);
    let reply = redis.cli(&["MODULE", "LOAD", module.to_str().expect("utf-8 path")]);
    // The module has no RedisModule_OnLoad: Redis refuses it, after its constructor ran.
    assert!(reply.contains("ERR"), "unexpected reply: {reply}");
    let alert = m
        .wait_json(Duration::from_secs(20), |v| {
            s(v, "rule") == "Shell spawned by Redis"
        })
        .unwrap_or_else(|| panic!("no alert; monitor log:\n{}", m.log.join("\n")));
    // Give a shell that was not stopped the time to create the marker.
    std::thread::sleep(Duration::from_millis(500));
    let pong = redis.cli(&["PING"]) == "PONG" && redis.alive();
    (marker.exists(), pong, alert)
}

#[test]
fn a_shell_spawned_by_redis_is_killed_before_it_runs() {
    let _serial = serial();
    if !needs() {
        return;
    }
    let (marker_exists, redis_ok, alert) = attack(&[]);
    assert!(!marker_exists, "the shell ran: the marker file exists");
    assert!(redis_ok, "redis-server must survive and answer PING");
    assert_eq!(s(&alert, "priority"), "Critical");
    let enf = &alert["enforcement"];
    assert_eq!(enf["action"], "kill", "{alert}");
    assert_eq!(enf["enforced"], true, "{alert}");
    let f = &alert["output_fields"];
    assert_eq!(f["proc.name"], "sh");
    assert_eq!(f["proc.pname"], "redis-server");
    assert_eq!(f["container.id"], "host");
    assert!(
        s(&alert, "output").contains("parent=redis-server"),
        "{alert}"
    );
}

#[test]
fn in_dry_run_the_shell_runs_and_the_alert_says_it_was_not_enforced() {
    let _serial = serial();
    if !needs() {
        return;
    }
    let (marker_exists, redis_ok, alert) = attack(&["-o", "enforcement.dry_run=true"]);
    assert!(marker_exists, "in dry run the shell must run");
    assert!(redis_ok);
    let enf = &alert["enforcement"];
    assert_eq!(enf["action"], "kill", "{alert}");
    assert_eq!(enf["enforced"], false, "{alert}");
    assert_eq!(enf["dry_run"], true, "{alert}");
}

#[test]
fn shells_not_spawned_by_redis_are_left_alone() {
    let _serial = serial();
    if !needs() {
        return;
    }
    let dir = TempDir::new("enforce-ok");
    let marker = dir.0.join("ran");
    let rules = shipped_rules();
    let mut m = Monitor::run_json(&rules, &[]);
    let st = Command::new("/bin/sh")
        .arg("-c")
        .arg(format!("touch {}", marker.display()))
        .status()
        .expect("sh");
    assert!(st.success(), "an ordinary shell was stopped: {st}");
    assert!(marker.exists());
    let lines = m.collect_for(Duration::from_secs(2)).to_vec();
    assert!(
        !lines.iter().any(|l| l.contains("Shell spawned by Redis")),
        "unexpected alert: {lines:?}"
    );
}

#[test]
fn an_enforcing_rule_the_kernel_cannot_evaluate_is_refused_with_the_reason() {
    let _serial = serial();
    if !can_load_bpf() {
        return;
    }
    let dir = TempDir::new("enforce-bad");
    let rules = dir.0.join("bad.yaml");
    std::fs::write(
        &rules,
        "- rule: Kill shadow readers\n  desc: d\n  condition: evt.type = execve and fd.name startswith /etc\n  output: o %proc.name\n  priority: CRITICAL\n  action: kill\n",
    )
    .expect("write rules");
    let out = Command::new(e2e::monitor_bin())
        .args(["run", "-r"])
        .arg(&rules)
        .args(["-o", "webserver.enabled=false"])
        .output()
        .expect("run monitor");
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "the monitor must refuse to start");
    assert!(err.contains("Kill shadow readers"), "{err}");
    assert!(err.contains("cannot be enforced"), "{err}");
    assert!(err.contains("fd.name"), "{err}");
    assert!(
        !err.contains("ready"),
        "nothing may run with a half-compiled rule: {err}"
    );
}

/// A static x86_64 program that runs `PROGRAM ARG` through the 32-bit execve (`int 0x80`,
/// ia32 number 11), as a 32-bit attacker binary would; exits 1 if the exec fails. Its strings
/// are copied into static buffers, which a non-PIE static binary keeps below 4 GiB, where
/// 32-bit pointers reach.
#[cfg(target_arch = "x86_64")]
fn ia32_exec_helper(dir: &std::path::Path) -> std::path::PathBuf {
    let src = dir.join("ia32exec.c");
    std::fs::write(
        &src,
        r#"#include <string.h>
static char path[4096], arg[4096];
static unsigned int argv[3];
int main(int argc, char **argv64) {
  long ret;
  if (argc != 3) return 2;
  strncpy(path, argv64[1], sizeof path - 1);
  strncpy(arg, argv64[2], sizeof arg - 1);
  argv[0] = (unsigned int)(unsigned long)path;
  argv[1] = (unsigned int)(unsigned long)arg;
  argv[2] = 0;
  __asm__ volatile ("int $0x80" : "=a"(ret) : "a"(11L), "b"(path), "c"(argv), "d"(0L) : "memory");
  return 1;
}
"#,
    )
    .expect("write helper source");
    let bin = dir.join("ia32exec");
    let st = Command::new("gcc")
        .args(["-static", "-no-pie", "-O2", "-o"])
        .arg(&bin)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success(), "compiling the helper failed");
    bin
}

/// A rule on an exact `proc.exepath` kills the exec, whether it comes through the 64-bit
/// execve or the 32-bit one. (The kernel's per-syscall exec tracepoints never see a 32-bit
/// exec, so a 32-bit binary would slip past a kill rule that relied on them.)
#[cfg(target_arch = "x86_64")]
#[test]
fn an_exact_exepath_is_killed_through_the_64_and_the_32_bit_exec() {
    let _serial = serial();
    if !can_load_bpf() || !e2e::require("gcc", e2e::redis_attack::have("gcc")) {
        return;
    }
    let dir = TempDir::new("enforce-ia32");
    let helper = ia32_exec_helper(&dir.0);
    let victim = dir.0.join("victim");
    std::fs::copy("/usr/bin/touch", &victim).expect("copy touch");
    let marker = dir.0.join("ran");
    // Unmonitored, the helper runs the victim, which creates the marker.
    let st = Command::new(&helper)
        .arg(&victim)
        .arg(&marker)
        .status()
        .expect("run the helper");
    assert!(st.success() && marker.exists(), "the helper works: {st}");
    std::fs::remove_file(&marker).expect("remove marker");

    let rules = dir.0.join("kill.yaml");
    std::fs::write(
        &rules,
        format!(
            "- rule: Kill the victim\n  desc: d\n  condition: evt.type in (execve, execveat) and proc.exepath = {}\n  output: victim ran (%proc.exepath)\n  priority: CRITICAL\n  action: kill\n",
            victim.display()
        ),
    )
    .expect("write rules");
    let mut m = Monitor::run_json(&rules, &[]);
    use std::os::unix::process::ExitStatusExt;
    let st = Command::new(&victim)
        .arg(&marker)
        .status()
        .expect("run the victim");
    assert_eq!(st.signal(), Some(9), "the 64-bit exec must be killed: {st}");
    assert!(!marker.exists(), "the victim ran: the marker exists");
    let st = Command::new(&helper)
        .arg(&victim)
        .arg(&marker)
        .status()
        .expect("run the helper");
    let alert = m
        .wait_json(Duration::from_secs(20), |v| {
            s(v, "rule") == "Kill the victim"
        })
        .unwrap_or_else(|| panic!("no alert; monitor log:\n{}", m.log.join("\n")));
    assert_eq!(st.signal(), Some(9), "the 32-bit exec must be killed: {st}");
    assert!(!marker.exists(), "the victim ran: the marker exists");
    assert_eq!(alert["enforcement"]["enforced"], true, "{alert}");
    assert_eq!(
        alert["output_fields"]["proc.exepath"],
        victim.to_str().expect("utf-8 path"),
        "{alert}"
    );
}
