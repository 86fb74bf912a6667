//! Shared by the enforcement tests (host and container): the attacker's Redis module, the
//! shipped rules, and the lock that keeps kill-mode monitors from meeting.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use crate::{can_load_bpf, require};

pub fn have(cmd: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {cmd}")])
        .stdout(Stdio::null())
        .status()
        .map(|s| s.success())
        .unwrap_or(false)
}

/// The project's shipped rules (with the enforcing ones).
pub fn shipped_rules() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/monitor_rules.yaml")
}

/// Enforcement is machine-wide: a kill-mode monitor of one test would kill another test's
/// shell. The tests of a file run one at a time under this lock.
pub fn serial() -> std::sync::MutexGuard<'static, ()> {
    static LOCK: std::sync::Mutex<()> = std::sync::Mutex::new(());
    LOCK.lock().unwrap_or_else(|p| p.into_inner())
}

/// Root, redis and gcc.
pub fn needs() -> bool {
    can_load_bpf()
        && require(
            "redis-server and redis-cli (Debian: redis-server, redis-tools)",
            have("redis-server") && have("redis-cli"),
        )
        && require("gcc", have("gcc"))
}

/// A shared object whose constructor runs `touch MARKER` through system(): what a malicious
/// Redis module does the moment it is loaded (before Redis refuses it for lacking
/// RedisModule_OnLoad).
pub fn evil_module(dir: &Path, marker: &str) -> PathBuf {
    let src = dir.join("evil.c");
    std::fs::write(
        &src,
        format!(
            "#include <stdlib.h>\n__attribute__((constructor)) static void pwn(void) {{ system(\"touch {marker}\"); }}\n"
        ),
    )
    .expect("write module source");
    let so = dir.join("evil.so");
    let st = Command::new("gcc")
        .args(["-shared", "-fPIC", "-o"])
        .arg(&so)
        .arg(&src)
        .status()
        .expect("gcc");
    assert!(st.success(), "compiling the module failed");
    so
}

/// A redis-server of Debian's package on 127.0.0.1, on a free port (another test or bench may
/// run one of its own), without persistence; killed on drop.
pub struct HostRedis {
    child: Child,
    pub port: u16,
}

impl HostRedis {
    /// Starts it with `extra` arguments and waits until it accepts connections.
    pub fn start(extra: &[&str]) -> anyhow::Result<HostRedis> {
        let port = std::net::TcpListener::bind("127.0.0.1:0")?
            .local_addr()?
            .port();
        let child = Command::new("redis-server")
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .args(extra)
            .stdout(Stdio::null())
            .spawn()?;
        let mut r = HostRedis { child, port };
        for _ in 0..200 {
            if TcpStream::connect(("127.0.0.1", port)).is_ok() {
                return Ok(r);
            }
            if !r.alive() {
                break;
            }
            std::thread::sleep(Duration::from_millis(25));
        }
        anyhow::bail!("redis-server did not start")
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for HostRedis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
