//! Harness for the end-to-end tests: the real monitor binary against the real kernel.
//!
//! Tests that need root (or another facility) call [`require`]: with `CI=true` an unmet need
//! fails the test with the reason; elsewhere the test is skipped, saying why.

pub mod containerd;
pub mod docker;
pub mod receivers;
pub mod redis_attack;

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc::{Receiver, channel};
use std::time::{Duration, Instant};

use serde_json::Value;

/// True when the need is met; otherwise panics under CI, or prints why and returns false.
pub fn require(need: &str, met: bool) -> bool {
    if met {
        return true;
    }
    if std::env::var("CI").as_deref() == Ok("true") {
        panic!("CI=true but this test needs {need}");
    }
    eprintln!("skipped: this test needs {need}");
    false
}

pub fn is_root() -> bool {
    // SAFETY: geteuid has no preconditions.
    unsafe { libc::geteuid() == 0 }
}

/// The monitor binary: $MONITOR_BIN (set by `cargo xtask test`), else target/release/monitor.
pub fn monitor_bin() -> PathBuf {
    if let Some(p) = std::env::var_os("MONITOR_BIN") {
        return PathBuf::from(p);
    }
    let p = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../target/release/monitor");
    assert!(
        p.exists(),
        "no monitor binary at {}: run the tests with `cargo xtask test`, or build it first with `cargo xtask build`",
        p.display()
    );
    p
}

/// Root needed, binary present: the usual preamble of an end-to-end test.
pub fn can_load_bpf() -> bool {
    require("root (to load eBPF programs)", is_root())
}

/// A running monitor; killed on drop.
pub struct Monitor {
    child: Child,
    stdout: Receiver<String>,
    stderr: Receiver<String>,
    /// Every stdout line seen so far.
    pub lines: Vec<String>,
    /// Every stderr line seen so far.
    pub log: Vec<String>,
}

fn pump(r: impl std::io::Read + Send + 'static) -> Receiver<String> {
    let (tx, rx) = channel();
    std::thread::spawn(move || {
        for line in BufReader::new(r).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    rx
}

impl Monitor {
    /// Start `monitor ARGS...` and wait (up to 60 s) for its `ready` line on stderr.
    pub fn start(args: &[&str]) -> Monitor {
        Self::start_with(args, &[])
    }

    /// `monitor run -r RULES` with JSON alerts, no webserver, and `opts` on top.
    pub fn run_json(rules: &std::path::Path, opts: &[&str]) -> Monitor {
        let mut args = vec![
            "run",
            "-r",
            rules.to_str().expect("utf-8 path"),
            "-o",
            "json_output=true",
            "-o",
            "webserver.enabled=false",
        ];
        args.extend_from_slice(opts);
        Self::start(&args)
    }

    pub fn start_with(args: &[&str], env: &[(&str, &str)]) -> Monitor {
        let mut cmd = Command::new(monitor_bin());
        cmd.args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("start the monitor binary");
        let stdout = pump(child.stdout.take().expect("piped stdout"));
        let stderr = pump(child.stderr.take().expect("piped stderr"));
        let mut m = Monitor {
            child,
            stdout,
            stderr,
            lines: Vec::new(),
            log: Vec::new(),
        };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            match m
                .stderr
                .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            {
                Ok(line) => {
                    let ready = line.contains("ready");
                    m.log.push(line);
                    if ready {
                        break;
                    }
                }
                Err(_) => {
                    let status = m.child.try_wait().ok().flatten();
                    panic!(
                        "monitor not ready within 60 s (exit: {status:?}); stderr:\n{}",
                        m.log.join("\n")
                    );
                }
            }
        }
        m
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn drain(&mut self) {
        while let Ok(l) = self.stderr.try_recv() {
            self.log.push(l);
        }
    }

    /// Wait until a stdout line parses as JSON and satisfies `pred`; returns it.
    pub fn wait_json(&mut self, timeout: Duration, pred: impl Fn(&Value) -> bool) -> Option<Value> {
        // Lines already seen first.
        for l in &self.lines {
            if let Ok(v) = serde_json::from_str::<Value>(l)
                && pred(&v)
            {
                return Some(v);
            }
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.drain();
                return None;
            }
            match self.stdout.recv_timeout(left) {
                Ok(l) => {
                    let hit = serde_json::from_str::<Value>(&l).ok().filter(|v| pred(v));
                    self.lines.push(l);
                    if hit.is_some() {
                        return hit;
                    }
                }
                Err(_) => {
                    self.drain();
                    return None;
                }
            }
        }
    }

    /// Collect stdout lines for `d` (after an action whose absence of output is checked).
    pub fn collect_for(&mut self, d: Duration) -> &[String] {
        let deadline = Instant::now() + d;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            match self.stdout.recv_timeout(left) {
                Ok(l) => self.lines.push(l),
                Err(_) => break,
            }
        }
        self.drain();
        &self.lines
    }

    /// Wait for a stderr line containing `needle`.
    pub fn wait_log(&mut self, timeout: Duration, needle: &str) -> Option<String> {
        if let Some(l) = self.log.iter().find(|l| l.contains(needle)) {
            return Some(l.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.stderr.recv_timeout(left) {
                Ok(l) => {
                    let hit = l.contains(needle);
                    self.log.push(l.clone());
                    if hit {
                        return Some(l);
                    }
                }
                Err(_) => return None,
            }
        }
    }

    /// Wait until a stdout line satisfies `pred` (lines already seen first); returns it.
    pub fn wait_line(&mut self, timeout: Duration, pred: impl Fn(&str) -> bool) -> Option<String> {
        if let Some(l) = self.lines.iter().find(|l| pred(l)) {
            return Some(l.clone());
        }
        let deadline = Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                self.drain();
                return None;
            }
            match self.stdout.recv_timeout(left) {
                Ok(l) => {
                    let hit = pred(&l);
                    self.lines.push(l.clone());
                    if hit {
                        return Some(l);
                    }
                }
                Err(_) => {
                    self.drain();
                    return None;
                }
            }
        }
    }

    /// Wait until `n` stdout lines satisfy `pred` (counting lines already seen); returns them.
    pub fn wait_lines(
        &mut self,
        timeout: Duration,
        n: usize,
        pred: impl Fn(&str) -> bool,
    ) -> Vec<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let hits: Vec<String> = self.lines.iter().filter(|l| pred(l)).cloned().collect();
            let left = deadline.saturating_duration_since(Instant::now());
            if hits.len() >= n || left.is_zero() {
                self.drain();
                return hits;
            }
            match self.stdout.recv_timeout(left) {
                Ok(l) => self.lines.push(l),
                Err(_) => {
                    self.drain();
                    return self.lines.iter().filter(|l| pred(l)).cloned().collect();
                }
            }
        }
    }

    /// Wait until the stderr log holds a line containing `needle` at an index >= `from`
    /// (an index into [`Monitor::log`]); returns its index and text.
    pub fn wait_log_from(
        &mut self,
        timeout: Duration,
        from: usize,
        needle: &str,
    ) -> Option<(usize, String)> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some((i, l)) = self
                .log
                .iter()
                .enumerate()
                .skip(from)
                .find(|(_, l)| l.contains(needle))
            {
                return Some((i, l.clone()));
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return None;
            }
            match self.stderr.recv_timeout(left) {
                Ok(l) => self.log.push(l),
                Err(_) => return None,
            }
        }
    }

    /// SIGTERM, then wait up to `timeout` for the exit; returns the status (None: still
    /// running at the deadline, then killed by drop), the time it took, and every stdout and
    /// stderr line.
    pub fn terminate(
        mut self,
        timeout: Duration,
    ) -> (
        Option<std::process::ExitStatus>,
        Duration,
        Vec<String>,
        Vec<String>,
    ) {
        let start = Instant::now();
        self.signal(libc::SIGTERM);
        let mut status = None;
        while start.elapsed() < timeout {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let took = start.elapsed();
        // The pipes close at exit: collect what is left.
        while let Ok(l) = self.stdout.recv_timeout(Duration::from_millis(500)) {
            self.lines.push(l);
        }
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            self.log.push(l);
        }
        (
            status,
            took,
            std::mem::take(&mut self.lines),
            std::mem::take(&mut self.log),
        )
    }

    /// Send a signal to the monitor.
    pub fn signal(&self, sig: i32) {
        // SAFETY: kill(2) of our own child.
        unsafe { libc::kill(self.child.id() as i32, sig) };
    }

    /// SIGTERM, wait up to 10 s, return the exit status and stderr.
    pub fn stop(mut self) -> (Option<std::process::ExitStatus>, Vec<String>) {
        self.signal(libc::SIGTERM);
        let deadline = Instant::now() + Duration::from_secs(10);
        let mut status = None;
        while Instant::now() < deadline {
            if let Ok(Some(s)) = self.child.try_wait() {
                status = Some(s);
                break;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        while let Ok(l) = self.stderr.recv_timeout(Duration::from_millis(200)) {
            self.log.push(l);
        }
        (status, std::mem::take(&mut self.log))
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// Field `key` of an event as a string ("" when absent).
pub fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// Field `key` of an event as an integer.
pub fn n(v: &Value, key: &str) -> Option<i64> {
    v.get(key).and_then(Value::as_i64)
}

/// A temporary directory removed on drop.
pub struct TempDir(pub PathBuf);

impl TempDir {
    pub fn new(tag: &str) -> TempDir {
        static COUNT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let p = std::env::temp_dir().join(format!(
            "monitor-e2e-{tag}-{}-{}",
            std::process::id(),
            COUNT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let _ = std::fs::remove_dir_all(&p);
        std::fs::create_dir_all(&p).expect("create temp dir");
        TempDir(p)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// A GET of `path` on `addr` over plain HTTP/1.1: the status code and the body.
pub fn http_get(addr: std::net::SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(5))?;
    c.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        c,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )?;
    let mut raw = Vec::new();
    c.read_to_end(&mut raw)?;
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| std::io::Error::other("HTTP response without a header end"))?;
    let head = String::from_utf8_lossy(&raw[..split]).to_string();
    let body = &raw[split + 4..];
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| std::io::Error::other(format!("bad HTTP response: {head:?}")))?;
    let chunked = head.lines().any(|l| {
        l.to_ascii_lowercase()
            .starts_with("transfer-encoding: chunked")
    });
    let body = if chunked {
        dechunk(body)
    } else {
        body.to_vec()
    };
    Ok((status, String::from_utf8_lossy(&body).to_string()))
}

/// The body of a chunked HTTP/1.1 response.
fn dechunk(mut rest: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    while let Some(eol) = rest.windows(2).position(|w| w == b"\r\n") {
        let size = String::from_utf8_lossy(&rest[..eol]).to_string();
        let Ok(n) = usize::from_str_radix(size.trim(), 16) else {
            break;
        };
        let after = &rest[eol + 2..];
        if n == 0 || after.len() < n {
            break;
        }
        out.extend_from_slice(&after[..n]);
        rest = after[n..].strip_prefix(b"\r\n").unwrap_or(&after[n..]);
    }
    out
}

/// The value of one series (`name{labels}` exactly as printed) in a Prometheus text page.
pub fn metric(page: &str, series: &str) -> Option<f64> {
    page.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' ')?.parse().ok())
}
