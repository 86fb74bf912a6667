//! End-to-end: `monitor run` as a user runs it (configuration file, rules file, `-o`
//! overrides) against the real kernel, with real peers: alerts on stdout (Falco text and JSON),
//! a real rsyslogd (unix socket, UDP, TCP), a real HTTP server as webhook (up, down then back,
//! slow), hot reload (SIGHUP and file change, valid and broken rules, configuration), SIGUSR1
//! reopening a rotated output file, `/metrics`, `/healthz` and `/readyz` of the running
//! daemon, start-up errors, and graceful SIGTERM (file output, busy daemon, dead webhook).
//!
//! Each test writes its own tiny rules file whose rule matches the execution of a copy of
//! /bin/true under a name of its own (the "marker"), so that nothing else on the machine can
//! fire it and each test sees only its own alerts; each daemon has its webserver on a port of
//! its own, so tests run in parallel. One test runs Falco's own stable rules unmodified (the
//! copy vendored in rules/).

use std::net::SocketAddr;
use std::os::unix::fs::{FileExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use e2e::receivers::{HttpReceiver, Rsyslog};
use e2e::{Monitor, TempDir, can_load_bpf, http_get, metric, s};
use serde_json::Value;

const WAIT: Duration = Duration::from_secs(20);

/// The longest a SIGTERM may take to end the daemon: Kubernetes' default grace period
/// (`terminationGracePeriodSeconds`), after which the kubelet kills it and alerts are lost.
/// Measured here: about 8 s, nearly all of it the kernel detaching ~135 tracepoint
/// attachments one by one (~60 ms each), plus up to 5 s for outputs that cannot deliver.
const SHUTDOWN_BOUND: Duration = Duration::from_secs(30);

/// A copy of /bin/true under a name no other process has: its execution is the trigger.
struct Marker {
    path: PathBuf,
    /// The process name (`proc.name`), at most 15 characters as the kernel keeps it.
    name: String,
}

impl Marker {
    fn new(dir: &Path) -> Marker {
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "e2m{:05x}{:03x}",
            std::process::id() & 0xfffff,
            N.fetch_add(1, Ordering::Relaxed) & 0xfff
        );
        let path = dir.join(&name);
        std::fs::copy("/bin/true", &path).expect("copy /bin/true");
        Marker { path, name }
    }

    /// Runs the marker once with `arg` (visible in `proc.cmdline`) and waits for it to end.
    fn fire(&self, arg: &str) {
        let st = Command::new(&self.path)
            .arg(arg)
            .status()
            .unwrap_or_else(|e| panic!("run {}: {e}", self.path.display()));
        assert!(st.success(), "{} {arg}: {st}", self.path.display());
    }
}

/// A rule that fires when `m` is executed.
fn exec_rule(rule: &str, m: &Marker, priority: &str) -> String {
    format!(
        r#"- rule: {rule}
  desc: e2e test rule
  condition: evt.type in (execve, execveat) and proc.name = {name}
  output: "e2e marker ran (proc.name=%proc.name cmdline=%proc.cmdline pid=%proc.pid)"
  priority: {priority}
  tags: [e2e, test_{name}]
"#,
        name = m.name
    )
}

/// A rule that fires when `path` is opened.
fn open_rule(rule: &str, path: &Path) -> String {
    format!(
        r#"- rule: {rule}
  desc: e2e test rule
  condition: evt.type in (open, openat, openat2) and fd.name = "{path}"
  output: "e2e file opened (file=%fd.name proc.name=%proc.name)"
  priority: NOTICE
  tags: [e2e]
"#,
        path = path.display()
    )
}

/// A test's directory with its configuration and rules files.
struct Setup {
    dir: TempDir,
    config: PathBuf,
    rules: PathBuf,
}

impl Setup {
    fn new(tag: &str, config: &str, rules: &str) -> Setup {
        let dir = TempDir::new(tag);
        let s = Setup {
            config: dir.0.join("monitor.yaml"),
            rules: dir.0.join("rules.yaml"),
            dir,
        };
        std::fs::write(&s.config, config).expect("write the configuration");
        std::fs::write(&s.rules, rules).expect("write the rules");
        s
    }

    fn marker(&self) -> Marker {
        Marker::new(&self.dir.0)
    }

    /// `monitor run -c CONFIG -r RULES -o webserver.listen_port=0 EXTRA...`: the webserver on
    /// a port of its own, so that tests (and other monitors) running at once never collide.
    fn start(&self, extra: &[&str]) -> Monitor {
        let config = self.config.to_string_lossy().to_string();
        let rules = self.rules.to_string_lossy().to_string();
        let mut args = vec![
            "run",
            "-c",
            &config,
            "-r",
            &rules,
            "-o",
            "webserver.listen_port=0",
        ];
        args.extend_from_slice(extra);
        Monitor::start(&args)
    }
}

/// Replaces a file's content in one step (write aside, rename), as editors and ConfigMaps do,
/// so that the file watcher never sees it half-written.
fn replace_file(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write");
    std::fs::rename(&tmp, path).expect("rename");
}

/// The address of the daemon's webserver, from its start-up log.
fn web_addr(m: &Monitor) -> SocketAddr {
    m.log
        .iter()
        .find_map(|l| {
            let rest = &l[l.find("webserver listening on ")? + "webserver listening on ".len()..];
            let rest = rest.strip_prefix("http://").unwrap_or(rest);
            rest.split_whitespace().next()?.parse().ok()
        })
        .unwrap_or_else(|| {
            panic!(
                "no 'webserver listening on' line in the log:\n{}",
                m.log.join("\n")
            )
        })
}

fn scrape(addr: SocketAddr) -> String {
    let (status, body) = http_get(addr, "/metrics").expect("GET /metrics");
    assert_eq!(status, 200, "/metrics: {body}");
    body
}

/// Scrapes until `series` has at least `want`, or the timeout passes; returns the last page.
fn scrape_until(addr: SocketAddr, series: &str, want: f64, timeout: Duration) -> String {
    let until = Instant::now() + timeout;
    loop {
        let page = scrape(addr);
        if metric(&page, series).is_some_and(|v| v >= want) || Instant::now() >= until {
            return page;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn has_marker(v: &Value, m: &Marker) -> bool {
    v.get("output_fields")
        .and_then(|f| f.get("proc.name"))
        .and_then(Value::as_str)
        == Some(m.name.as_str())
}

/// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm).
fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    era * 146_097 + doe - 719_468
}

/// Seconds since the epoch of Falco's JSON time (`YYYY-MM-DDTHH:MM:SS.nnnnnnnnnZ`, exactly
/// nine fraction digits, UTC); None when it has another shape.
fn parse_falco_time(t: &str) -> Option<f64> {
    let b = t.as_bytes();
    let digits = |r: std::ops::Range<usize>| {
        b.get(r.clone())?
            .iter()
            .all(u8::is_ascii_digit)
            .then(|| t[r].parse::<i64>().ok())?
    };
    if b.len() != 30
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b':'
        || b[16] != b':'
        || b[19] != b'.'
        || b[29] != b'Z'
    {
        return None;
    }
    let (y, mo, d) = (digits(0..4)?, digits(5..7)?, digits(8..10)?);
    let (h, mi, sec, ns) = (
        digits(11..13)?,
        digits(14..16)?,
        digits(17..19)?,
        digits(20..29)?,
    );
    let secs = days_from_civil(y, mo, d) * 86_400 + h * 3600 + mi * 60 + sec;
    Some(secs as f64 + ns as f64 / 1e9)
}

fn now_secs() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64())
        .unwrap_or(0.0)
}

fn hostname() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .expect("read the host name")
        .trim()
        .to_string()
}

/// True when `t` is Falco's text time: `HH:MM:SS.nnnnnnnnn`.
fn is_text_time(t: &str) -> bool {
    let b = t.as_bytes();
    b.len() == 18
        && b.iter().enumerate().all(|(i, c)| match i {
            2 | 5 => *c == b':',
            8 => *c == b'.',
            _ => c.is_ascii_digit(),
        })
}

// ---------------------------------------------------------------------------------------------
// 1. stdout: Falco JSON with json_output=true, Falco's text line without.

#[test]
fn json_output_prints_falco_json_alerts() {
    if !can_load_bpf() {
        return;
    }
    let setup = Setup::new("json", "", "");
    let mk = setup.marker();
    std::fs::write(&setup.rules, exec_rule("E2E json marker", &mk, "WARNING")).unwrap();
    let mut m = setup.start(&["-o", "json_output=true"]);
    let fired_at = now_secs();
    mk.fire("json-arg");
    let a = m
        .wait_json(WAIT, |v| has_marker(v, &mk))
        .unwrap_or_else(|| panic!("no JSON alert for {}; stdout: {:?}", mk.name, m.lines));

    let mut keys: Vec<&str> = a.as_object().unwrap().keys().map(String::as_str).collect();
    keys.sort();
    assert_eq!(
        keys,
        [
            "hostname",
            "output",
            "output_fields",
            "priority",
            "rule",
            "source",
            "tags",
            "time"
        ],
        "Falco's JSON keys: {a}"
    );
    assert_eq!(s(&a, "rule"), "E2E json marker");
    assert_eq!(s(&a, "priority"), "Warning");
    assert_eq!(s(&a, "source"), "syscall");
    assert_eq!(s(&a, "hostname"), hostname());
    assert_eq!(
        a["tags"],
        serde_json::json!(["e2e", format!("test_{}", mk.name)])
    );
    let time = s(&a, "time");
    let t =
        parse_falco_time(time).unwrap_or_else(|| panic!("time is not RFC 3339 with ns: {time}"));
    assert!(
        (t - fired_at).abs() < 30.0,
        "alert time {time} is not the time of the event (fired at {fired_at})"
    );
    let f = &a["output_fields"];
    assert_eq!(f["proc.name"], mk.name.as_str());
    assert_eq!(f["proc.cmdline"], format!("{} json-arg", mk.name));
    let pid = f["proc.pid"].as_i64().expect("proc.pid is a number");
    assert!(pid > 0);
    // `output`: Falco's text line, whose time is the JSON time's clock part.
    let out = s(&a, "output");
    assert_eq!(
        out,
        format!(
            "{}: Warning e2e marker ran (proc.name={} cmdline={} json-arg pid={pid})",
            &time[11..29],
            mk.name,
            mk.name
        )
    );
}

#[test]
fn text_output_prints_falco_text_lines() {
    if !can_load_bpf() {
        return;
    }
    let setup = Setup::new("text", "", "");
    let mk = setup.marker();
    std::fs::write(&setup.rules, exec_rule("E2E text marker", &mk, "CRITICAL")).unwrap();
    let mut m = setup.start(&[]);
    mk.fire("text-arg");
    let needle = format!("proc.name={} ", mk.name);
    let line = m
        .wait_line(WAIT, |l| l.contains(&needle))
        .unwrap_or_else(|| panic!("no text alert for {}; stdout: {:?}", mk.name, m.lines));
    assert!(
        serde_json::from_str::<Value>(&line).is_err(),
        "text, not JSON: {line}"
    );
    let (time, rest) = line.split_once(": ").expect("`TIME: Priority output`");
    assert!(
        is_text_time(time),
        "Falco's HH:MM:SS.nnnnnnnnn time: {line}"
    );
    let tail = rest
        .strip_prefix("Critical e2e marker ran (proc.name=")
        .unwrap_or_else(|| panic!("priority then output: {line}"));
    assert!(
        tail.starts_with(&format!("{} cmdline={} text-arg pid=", mk.name, mk.name)),
        "{line}"
    );
}

// ---------------------------------------------------------------------------------------------
// 2. syslog: a real rsyslogd, on its unix socket and over UDP.

/// `input|facility|severity|hostname|app|procid|msgid|msg` lines of rsyslogd's file for `mk`.
fn syslog_lines_for(rs: &Rsyslog, input: &str, mk: &Marker, n: usize) -> Vec<Vec<String>> {
    let until = Instant::now() + WAIT;
    let needle = format!("proc.name={} ", mk.name);
    loop {
        let got: Vec<Vec<String>> = rs
            .wait_for(input, 0, Duration::ZERO)
            .into_iter()
            .filter(|l| l.contains(&needle))
            .map(|l| l.splitn(8, '|').map(str::to_string).collect())
            .collect();
        if got.len() >= n || Instant::now() >= until {
            return got;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn check_syslog(rs: &Rsyslog, input: &str, syslog_cfg: &str) {
    let setup = Setup::new("syslog", "", "");
    let (warn, crit) = (setup.marker(), setup.marker());
    std::fs::write(
        &setup.rules,
        exec_rule("E2E syslog warning", &warn, "WARNING")
            + &exec_rule("E2E syslog critical", &crit, "CRITICAL"),
    )
    .unwrap();
    std::fs::write(&setup.config, syslog_cfg).unwrap();
    let m = setup.start(&[]);
    let pid = m.pid().to_string();
    warn.fire("w");
    crit.fire("c");
    let w = syslog_lines_for(rs, input, &warn, 1);
    let c = syslog_lines_for(rs, input, &crit, 1);
    assert_eq!(
        w.len(),
        1,
        "one message for the warning on {input}: {:?}",
        rs.lines()
    );
    assert_eq!(
        c.len(),
        1,
        "one message for the critical on {input}: {:?}",
        rs.lines()
    );
    // local3 = 19; severities as Falco maps priorities: warning 4, critical 2.
    let fields = |l: &Vec<String>| (l[1].clone(), l[2].clone(), l[4].clone(), l[5].clone());
    assert_eq!(
        fields(&w[0]),
        ("19".into(), "4".into(), "monitor".into(), pid.clone()),
        "facility, severity, app, pid: {:?}",
        w[0]
    );
    assert_eq!(
        fields(&c[0]),
        ("19".into(), "2".into(), "monitor".into(), pid),
        "{:?}",
        c[0]
    );
    assert_eq!(w[0][3], hostname(), "{:?}", w[0]);
    // The message is the alert's text line.
    let msg = &c[0][7];
    let (time, rest) = msg.split_once(": ").expect("text alert");
    assert!(is_text_time(time), "{msg}");
    assert!(
        rest.starts_with(&format!(
            "Critical e2e marker ran (proc.name={} ",
            crit.name
        )),
        "{msg}"
    );
    drop(m);
}

#[test]
fn syslog_alerts_reach_rsyslogd_on_its_unix_socket_with_their_severity() {
    if !can_load_bpf() {
        return;
    }
    let Some(rs) = Rsyslog::start().expect("start rsyslogd") else {
        return;
    };
    let cfg = format!(
        "stdout_output: {{enabled: false}}\nsyslog_output:\n  enabled: true\n  socket: {}\n  facility: local3\n",
        rs.socket.display()
    );
    check_syslog(&rs, "imuxsock", &cfg);
}

#[test]
fn syslog_alerts_reach_rsyslogd_over_udp_with_their_severity() {
    if !can_load_bpf() {
        return;
    }
    let Some(rs) = Rsyslog::start().expect("start rsyslogd") else {
        return;
    };
    let cfg = format!(
        "stdout_output: {{enabled: false}}\nsyslog_output:\n  enabled: true\n  facility: local3\n  remote: {{address: \"127.0.0.1:{}\", protocol: udp}}\n",
        rs.udp_port
    );
    check_syslog(&rs, "imudp", &cfg);
}

// ---------------------------------------------------------------------------------------------
// 3. webhook: a real HTTP server on 127.0.0.1; up, down then back, slow.

fn webhook_config(url: &str, extra: &str) -> String {
    format!(
        "stdout_output: {{enabled: true}}\njson_output: true\nhttp_output:\n  enabled: true\n  url: \"{url}\"\n{extra}"
    )
}

/// The `n` in the marker's argument `n=N` of a webhook body's `proc.cmdline`.
fn arg_number(v: &Value) -> Option<u64> {
    v["output_fields"]["proc.cmdline"]
        .as_str()?
        .rsplit_once(" n=")?
        .1
        .parse()
        .ok()
}

#[test]
fn webhook_receives_falco_json_alerts() {
    if !can_load_bpf() {
        return;
    }
    let rx = HttpReceiver::start().expect("start the webhook receiver");
    let setup = Setup::new("webhook", &webhook_config(&rx.url("/falco"), ""), "");
    let mk = setup.marker();
    std::fs::write(&setup.rules, exec_rule("E2E webhook marker", &mk, "ERROR")).unwrap();
    let _m = setup.start(&[]);
    mk.fire("n=1");
    mk.fire("n=2");
    let got = rx.wait_for(2, WAIT);
    assert_eq!(got.len(), 2, "two POSTs: {got:?}");
    for (i, r) in got.iter().enumerate() {
        assert_eq!((r.method.as_str(), r.path.as_str()), ("POST", "/falco"));
        assert_eq!(r.header("content-type"), Some("application/json"));
        let v = r.json().expect("the body is JSON");
        assert_eq!(s(&v, "rule"), "E2E webhook marker");
        assert_eq!(s(&v, "priority"), "Error");
        assert_eq!(s(&v, "source"), "syscall");
        assert_eq!(s(&v, "hostname"), hostname());
        assert!(parse_falco_time(s(&v, "time")).is_some(), "{v}");
        assert!(has_marker(&v, &mk), "{v}");
        assert_eq!(arg_number(&v), Some(i as u64 + 1), "in order: {v}");
    }
}

#[test]
fn webhook_down_for_30s_then_back_gets_what_its_queue_held_and_the_rest_is_counted() {
    if !can_load_bpf() {
        return;
    }
    const CAPACITY: usize = 5;
    const FIRED: u64 = 20;
    // A port nobody listens on yet: connections are refused until the receiver starts.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let url = format!("http://127.0.0.1:{port}/falco");
    let cfg = webhook_config(
        &url,
        "  max_retries: 1000\n  backoff_ms: 200\n  max_backoff_ms: 1000\n  timeout_ms: 2000\n",
    ) + &format!("outputs_queue: {{capacity: {CAPACITY}}}\n");
    let setup = Setup::new("webhook-down", &cfg, "");
    let mk = setup.marker();
    std::fs::write(
        &setup.rules,
        exec_rule("E2E webhook outage", &mk, "WARNING"),
    )
    .unwrap();
    let mut m = setup.start(&[]);
    let web = web_addr(&m);
    let down_since = Instant::now();
    // One at a time, each printed before the next (stdout shares the small queue bound, and
    // is not held up by the dead webhook).
    for i in 0..FIRED {
        let arg = format!("n={i}");
        mk.fire(&arg);
        let tail = format!("{} {arg} ", mk.name);
        assert!(
            m.wait_line(WAIT, |l| l.contains(&tail)).is_some(),
            "stdout alert for {arg}: {:?}",
            m.lines
        );
    }
    // The webhook's queue takes (or refuses) an alert just after stdout prints it: wait for
    // the count to settle before reading it.
    let dropped_series = r#"monitor_output_dropped_total{output="webhook",reason="queue_full"}"#;
    let page = scrape_until(
        web,
        dropped_series,
        (FIRED - CAPACITY as u64 - 1) as f64,
        Duration::from_secs(5),
    );
    assert_eq!(
        metric(
            &page,
            r#"monitor_alerts_total{rule="E2E webhook outage",priority="Warning"}"#
        ),
        Some(FIRED as f64),
        "{page}"
    );
    let dropped = metric(&page, dropped_series).unwrap_or(0.0) as u64;
    // One alert in delivery (retrying), CAPACITY waiting, the rest dropped.
    assert_eq!(dropped, FIRED - CAPACITY as u64 - 1, "{page}");
    assert!(
        metric(&page, r#"monitor_output_retries_total{output="webhook"}"#).unwrap_or(0.0) >= 1.0,
        "the webhook is being retried: {page}"
    );

    let left = Duration::from_secs(30).saturating_sub(down_since.elapsed());
    std::thread::sleep(left);
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", port)).is_err(),
        "the port stayed closed during the outage"
    );
    let rx = HttpReceiver::start_on(port, Duration::ZERO).expect("the webhook comes back");
    let want = CAPACITY + 1;
    let got = rx.wait_for(want, WAIT);
    // Nothing more than what the queue held arrives.
    std::thread::sleep(Duration::from_secs(2));
    let got_all = rx.requests();
    assert_eq!(got.len(), want, "{got:?}");
    assert_eq!(got_all.len(), want, "no more than the queue held");
    let numbers: Vec<u64> = got_all
        .iter()
        .map(|r| {
            r.json()
                .ok()
                .as_ref()
                .and_then(arg_number)
                .unwrap_or(u64::MAX)
        })
        .collect();
    assert_eq!(
        numbers,
        (0..want as u64).collect::<Vec<_>>(),
        "the oldest alerts, in order"
    );
    let page = scrape(web);
    assert_eq!(
        metric(&page, r#"monitor_output_sent_total{output="webhook"}"#),
        Some(want as f64),
        "{page}"
    );
    assert_eq!(
        metric(&page, r#"monitor_output_failed_total{output="webhook"}"#),
        Some(0.0),
        "{page}"
    );
    assert_eq!(
        metric(
            &page,
            r#"monitor_output_dropped_total{output="webhook",reason="queue_full"}"#
        ),
        Some(dropped as f64)
    );
}

#[test]
fn a_slow_webhook_does_not_delay_stdout_alerts() {
    if !can_load_bpf() {
        return;
    }
    const FIRED: usize = 5;
    const DELAY: Duration = Duration::from_secs(5);
    let rx = HttpReceiver::start_on(0, DELAY).expect("start the slow receiver");
    let setup = Setup::new(
        "webhook-slow",
        &webhook_config(&rx.url("/slow"), "  timeout_ms: 60000\n"),
        "",
    );
    let mk = setup.marker();
    std::fs::write(&setup.rules, exec_rule("E2E slow webhook", &mk, "NOTICE")).unwrap();
    let mut m = setup.start(&[]);
    for i in 0..FIRED {
        mk.fire(&format!("n={i}"));
    }
    // The webhook needs FIRED * DELAY = 25 s for these; stdout must not wait for it.
    let printed = m.wait_lines(DELAY * 2, FIRED, |l| l.contains(&mk.name));
    let seen_by_webhook = rx.requests().len();
    assert_eq!(printed.len(), FIRED, "stdout alerts: {printed:?}");
    assert!(
        seen_by_webhook < FIRED,
        "stdout had all {FIRED} alerts while the slow webhook had only {seen_by_webhook}"
    );
    // And the slow webhook still gets them all, in order.
    let got = rx.wait_for(FIRED, DELAY * (FIRED as u32 + 2));
    let numbers: Vec<u64> = got
        .iter()
        .filter_map(|r| r.json().ok().as_ref().and_then(arg_number))
        .collect();
    assert_eq!(numbers, (0..FIRED as u64).collect::<Vec<_>>());
}

// ---------------------------------------------------------------------------------------------
// 4. reload: SIGHUP, file change, broken rules.

/// Pads rules text with a YAML comment to exactly `len` bytes.
fn padded(text: &str, len: usize) -> String {
    assert!(text.len() + 2 <= len, "padding too small");
    format!("{text}#{}\n", "x".repeat(len - text.len() - 2))
}

#[test]
fn rules_reload_on_sighup_and_on_file_change_and_survive_a_broken_file() {
    if !can_load_bpf() {
        return;
    }
    const LEN: usize = 2048;
    let setup = Setup::new("reload", "", "");
    let (a, b) = (setup.marker(), setup.marker());
    let opened = setup.dir.0.join("e2e-reload-opened.txt");
    std::fs::write(&opened, "x").unwrap();
    let rule_a = exec_rule("E2E reload A", &a, "WARNING");
    let rule_b = exec_rule("E2E reload B", &b, "WARNING");
    let rule_c = open_rule("E2E reload C", &opened);
    std::fs::write(&setup.rules, padded(&rule_a, LEN)).unwrap();
    let mut m = setup.start(&["-o", "json_output=true"]);
    let web = web_addr(&m);
    let rule_is = |v: &Value, r: &str| s(v, "rule") == r;

    a.fire("1");
    assert!(
        m.wait_json(WAIT, |v| rule_is(v, "E2E reload A")).is_some(),
        "A fires"
    );
    b.fire("1");

    // SIGHUP: rewrite the file in place keeping its size and mtime, so that the file watcher
    // cannot see the change and only the signal can cause the reload.
    let before = std::fs::metadata(&setup.rules).unwrap();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(&setup.rules)
        .unwrap();
    f.write_all_at(padded(&(rule_a.clone() + &rule_b), LEN).as_bytes(), 0)
        .unwrap();
    let times = [
        libc::timespec {
            tv_sec: before.mtime(),
            tv_nsec: before.mtime_nsec(),
        },
        libc::timespec {
            tv_sec: before.mtime(),
            tv_nsec: before.mtime_nsec(),
        },
    ];
    // SAFETY: futimens on an open fd with two valid timespecs.
    assert_eq!(
        unsafe { libc::futimens(std::os::fd::AsRawFd::as_raw_fd(&f), times.as_ptr()) },
        0
    );
    drop(f);
    // Longer than a poll of the watcher: it must not have reloaded on its own.
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        !m.log.iter().any(|l| l.contains("reload requested")),
        "the watcher saw an invisible change: {:?}",
        m.log
    );
    let from = m.log.len();
    m.signal(libc::SIGHUP);
    let (i, _) = m
        .wait_log_from(WAIT, from, "reload requested (Signal)")
        .unwrap_or_else(|| panic!("SIGHUP asked for no reload: {:?}", m.log));
    m.wait_log_from(WAIT, i, "reload done: 2 rules")
        .unwrap_or_else(|| panic!("SIGHUP reload not done: {:?}", m.log));
    assert!(
        m.wait_json(Duration::from_secs(1), |v| rule_is(v, "E2E reload B"))
            .is_none(),
        "B was not loaded when its marker ran"
    );
    b.fire("2");
    let hit = m
        .wait_json(WAIT, |v| rule_is(v, "E2E reload B"))
        .expect("B fires after SIGHUP");
    assert_eq!(
        hit["output_fields"]["proc.cmdline"],
        format!("{} 2", b.name)
    );

    // File change alone (no signal): a new rule on a new event type (openat).
    let from = m.log.len();
    replace_file(&setup.rules, &(rule_a.clone() + &rule_b + &rule_c));
    let (i, line) = m
        .wait_log_from(WAIT, from, "reload requested (Changed")
        .unwrap_or_else(|| panic!("the file change was not seen: {:?}", m.log));
    assert!(line.contains("rules.yaml"), "{line}");
    m.wait_log_from(WAIT, i, "reload done: 3 rules")
        .unwrap_or_else(|| panic!("file-change reload not done: {:?}", m.log));
    std::fs::read(&opened).unwrap();
    let hit = m
        .wait_json(WAIT, |v| rule_is(v, "E2E reload C"))
        .expect("C (openat) fires after the file-change reload");
    assert_eq!(
        hit["output_fields"]["fd.name"],
        opened.to_string_lossy().as_ref()
    );

    // A broken file: the error is logged with file:line:col and counted; the old rules stay.
    let broken_cond = "evt.type in (execve, execveat) and and proc.name = nothing";
    let broken = format!(
        "{rule_a}- rule: E2E reload broken\n  desc: broken\n  condition: {broken_cond}\n  output: \"x\"\n  priority: WARNING\n"
    );
    let cond_line = broken
        .lines()
        .position(|l| l.contains(broken_cond))
        .expect("condition line")
        + 1;
    let cond_col = broken
        .lines()
        .nth(cond_line - 1)
        .unwrap()
        .find(broken_cond)
        .unwrap()
        + 1;
    let from = m.log.len();
    replace_file(&setup.rules, &broken);
    let (_, err) = m
        .wait_log_from(WAIT, from, "reload failed")
        .unwrap_or_else(|| panic!("no reload failure logged: {:?}", m.log));
    assert!(
        !err.contains('\u{1b}'),
        "plain text in a log that is not a terminal: {err:?}"
    );
    let at = format!("{}:{cond_line}:", setup.rules.display());
    let pos = err
        .find(&at)
        .unwrap_or_else(|| panic!("no {at}COL in the error: {err}"));
    let col: usize = err[pos + at.len()..]
        .split(':')
        .next()
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("no column after {at}: {err}"));
    assert!(
        (cond_col..cond_col + broken_cond.len()).contains(&col),
        "column {col} is inside the condition (from column {cond_col}): {err}"
    );
    let page = scrape_until(web, r#"monitor_reloads_total{result="failure"}"#, 1.0, WAIT);
    assert_eq!(
        metric(&page, r#"monitor_reloads_total{result="failure"}"#),
        Some(1.0),
        "{page}"
    );
    assert_eq!(
        metric(&page, r#"monitor_reloads_total{result="success"}"#),
        Some(2.0),
        "{page}"
    );
    // The rules of before are still in force: A, B and C fire.
    let n_before = |m: &Monitor, r: &str| {
        m.lines
            .iter()
            .filter(|l| serde_json::from_str::<Value>(l).is_ok_and(|v| s(&v, "rule") == r))
            .count()
    };
    let (na, nb, nc) = (
        n_before(&m, "E2E reload A"),
        n_before(&m, "E2E reload B"),
        n_before(&m, "E2E reload C"),
    );
    a.fire("3");
    b.fire("3");
    std::fs::read(&opened).unwrap();
    for (rule, before) in [
        ("E2E reload A", na),
        ("E2E reload B", nb),
        ("E2E reload C", nc),
    ] {
        let got = m.wait_lines(WAIT, before + 1, |l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| s(&v, "rule") == rule)
        });
        assert_eq!(
            got.len(),
            before + 1,
            "{rule} still fires after the failed reload"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// 5. metrics, health and readiness of the running daemon.

#[test]
fn metrics_of_the_running_daemon_move_with_its_alerts() {
    if !can_load_bpf() {
        return;
    }
    const FIRED: u64 = 3;
    let setup = Setup::new("metrics", "", "");
    let mk = setup.marker();
    std::fs::write(
        &setup.rules,
        exec_rule("E2E metrics \"quoted\" marker", &mk, "ERROR"),
    )
    .unwrap();
    let mut m = setup.start(&["-o", "json_output=true"]);
    let web = web_addr(&m);
    assert!(web.ip().is_loopback(), "loopback by default: {web}");
    assert_eq!(http_get(web, "/healthz").expect("GET /healthz").0, 200);
    assert_eq!(http_get(web, "/readyz").expect("GET /readyz").0, 200);

    let series_alerts =
        r#"monitor_alerts_total{rule="E2E metrics \"quoted\" marker",priority="Error"}"#;
    let series_exec = r#"monitor_events_total{type="execve"}"#;
    let before = scrape(web);
    let exec_before = metric(&before, series_exec).expect("execve counter present");
    assert_eq!(
        metric(&before, series_alerts),
        None,
        "no alert yet: {before}"
    );
    assert!(
        before.contains("# TYPE monitor_events counter"),
        "Prometheus text: {before}"
    );

    for i in 0..FIRED {
        mk.fire(&i.to_string());
    }
    let lines = m.wait_lines(WAIT, FIRED as usize, |l| l.contains(&mk.name));
    assert_eq!(lines.len(), FIRED as usize, "{lines:?}");
    let page = scrape_until(web, series_alerts, FIRED as f64, WAIT);
    assert_eq!(metric(&page, series_alerts), Some(FIRED as f64), "{page}");
    let exec_after = metric(&page, series_exec).expect("execve counter present");
    assert!(
        exec_after >= exec_before + FIRED as f64,
        "execve events {exec_before} -> {exec_after} after {FIRED} executions"
    );
    // The rules capture only execve/execveat (and what the process table needs): an event
    // type no rule asks for is not counted.
    assert_eq!(
        metric(&page, r#"monitor_events_total{type="connect"}"#),
        Some(0.0),
        "{page}"
    );
    // Counted once the line is written, so a scrape may come just before the last count.
    let sent = r#"monitor_output_sent_total{output="stdout"}"#;
    let page = scrape_until(web, sent, FIRED as f64, WAIT);
    assert!(metric(&page, sent).unwrap_or(0.0) >= FIRED as f64, "{page}");
    assert!(
        metric(&page, "monitor_rule_eval_seconds_count").unwrap_or(0.0) >= FIRED as f64,
        "{page}"
    );
    // The process table gauge is refreshed every few seconds.
    let page = scrape_until(web, "monitor_process_table_size", 1.0, WAIT);
    let size = metric(&page, "monitor_process_table_size").unwrap_or(0.0);
    assert!(size > 0.0, "process table size {size}: {page}");
    assert!(page.trim_end().ends_with("# EOF"), "OpenMetrics page end");
}

// ---------------------------------------------------------------------------------------------
// 6. graceful shutdown with a file output.

#[test]
fn sigterm_delivers_every_alert_to_the_file_and_exits_0() {
    if !can_load_bpf() {
        return;
    }
    const FIRED: usize = 50;
    let setup = Setup::new("shutdown", "", "");
    let file = setup.dir.0.join("alerts.jsonl");
    std::fs::write(
        &setup.config,
        format!(
            "stdout_output: {{enabled: false}}\njson_output: true\nbuffered_outputs: true\nfile_output:\n  enabled: true\n  keep_alive: true\n  filename: {}\n",
            file.display()
        ),
    )
    .unwrap();
    let mk = setup.marker();
    std::fs::write(
        &setup.rules,
        exec_rule("E2E shutdown marker", &mk, "WARNING"),
    )
    .unwrap();
    let m = setup.start(&[]);
    for i in 0..FIRED {
        mk.fire(&format!("n={i}"));
    }
    // No waiting for the alerts: SIGTERM right after the last execution has ended.
    let (status, took, _, log) = m.terminate(SHUTDOWN_BOUND);
    let status =
        status.unwrap_or_else(|| panic!("still running {SHUTDOWN_BOUND:?} after SIGTERM: {log:?}"));
    assert_eq!(status.code(), Some(0), "exit status; log: {log:?}");
    eprintln!("SIGTERM to exit: {took:?}");
    let text = std::fs::read_to_string(&file).expect("the alerts file");
    let numbers: Vec<u64> = text
        .lines()
        .map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .as_ref()
                .and_then(arg_number)
                .unwrap_or_else(|| panic!("not an alert of this test: {l}"))
        })
        .collect();
    assert_eq!(
        numbers,
        (0..FIRED as u64).collect::<Vec<_>>(),
        "every alert triggered before SIGTERM, in order; log: {log:?}"
    );
    assert!(
        log.iter().any(|l| l.contains("monitor: stats")),
        "the final stats line: {log:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Falco's own rules, unmodified.

#[test]
fn falco_rules_unmodified_flag_reading_etc_shadow() {
    if !can_load_bpf() {
        return;
    }
    let falco = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/falco_rules.yaml");
    assert!(falco.exists(), "Falco's rules at {}", falco.display());
    let falco = falco.to_string_lossy().to_string();
    let setup = Setup::new("falco", "", "");
    let mut m = Monitor::start(&[
        "run",
        "-c",
        &setup.config.to_string_lossy(),
        "-r",
        &falco,
        "-o",
        "webserver.listen_port=0",
        "-o",
        "json_output=true",
    ]);
    let out = Command::new("/bin/cat")
        .arg("/etc/shadow")
        .output()
        .expect("cat /etc/shadow");
    assert!(out.status.success());
    let a = m
        .wait_json(WAIT, |v| {
            s(v, "rule") == "Read sensitive file untrusted"
                && v["output_fields"]["fd.name"] == "/etc/shadow"
                && v["output_fields"]["proc.name"] == "cat"
        })
        .unwrap_or_else(|| {
            panic!(
                "no alert for cat /etc/shadow; stdout: {:?}; log: {:?}",
                m.lines, m.log
            )
        });
    assert_eq!(s(&a, "priority"), "Warning");
    assert_eq!(s(&a, "source"), "syscall");
    assert_eq!(a["output_fields"]["proc.cmdline"], "cat /etc/shadow");
    assert_eq!(a["output_fields"]["proc.exepath"], "/bin/cat");
    let tags = a["tags"].as_array().expect("tags");
    assert!(
        tags.contains(&Value::from("mitre_credential_access")),
        "{a}"
    );
    assert!(
        s(&a, "output").contains(
            "Sensitive file opened for reading by non-trusted program | file=/etc/shadow"
        ),
        "{a}"
    );
}

/// The kernel's open prefilter keeps a path that only a suffix of the rules can match (no
/// prefix does): Falco's "Clear Log Activities" for a file named `syslog` in a temporary
/// directory. A path ending in the same two bytes but another name is dropped in the kernel
/// and, rightly, never alerts.
#[test]
fn falco_rules_unmodified_flag_truncating_a_log_file_matched_by_its_name_only() {
    if !can_load_bpf() {
        return;
    }
    let falco = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../rules/falco_rules.yaml");
    let falco = falco.to_string_lossy().to_string();
    let setup = Setup::new("falco-suffix", "", "");
    let logs = TempDir::new("logs");
    let mut m = Monitor::start(&[
        "run",
        "-c",
        &setup.config.to_string_lossy(),
        "-r",
        &falco,
        "-o",
        "webserver.listen_port=0",
        "-o",
        "json_output=true",
    ]);
    let near_miss = logs.0.join("notsyslog");
    let log = logs.0.join("syslog");
    for path in [&near_miss, &log] {
        let out = Command::new("/bin/sh")
            .arg("-c")
            .arg(format!(": > '{}'", path.display()))
            .output()
            .expect("truncate with sh");
        assert!(out.status.success());
    }
    let want = log.to_string_lossy().to_string();
    let a = m
        .wait_json(WAIT, |v| {
            s(v, "rule") == "Clear Log Activities" && v["output_fields"]["fd.name"] == want
        })
        .unwrap_or_else(|| panic!("no alert for truncating {want}; stdout: {:?}", m.lines));
    assert_eq!(a["output_fields"]["proc.name"], "sh");
    let miss = near_miss.to_string_lossy().to_string();
    assert!(
        !m.lines.iter().any(|l| l.contains(&miss)),
        "{miss} is no log file: {:?}",
        m.lines
    );
}

#[test]
fn sigterm_to_a_busy_daemon_still_delivers_the_alerts_of_events_before_it() {
    if !can_load_bpf() {
        return;
    }
    const FIRED: usize = 20;
    let setup = Setup::new("shutdown-busy", "", "");
    let file = setup.dir.0.join("alerts.jsonl");
    std::fs::write(
        &setup.config,
        format!(
            "stdout_output: {{enabled: false}}\njson_output: true\nfile_output:\n  enabled: true\n  filename: {}\n",
            file.display()
        ),
    )
    .unwrap();
    let mk = setup.marker();
    std::fs::write(&setup.rules, exec_rule("E2E busy shutdown", &mk, "WARNING")).unwrap();
    let m = setup.start(&[]);
    // Stopped, the daemon reads nothing: the events wait in the ring buffer, and the SIGTERM
    // is pending when it resumes, as for a daemon busy when the signal comes.
    m.signal(libc::SIGSTOP);
    for i in 0..FIRED {
        mk.fire(&format!("n={i}"));
    }
    m.signal(libc::SIGTERM);
    m.signal(libc::SIGCONT);
    let (status, _, _, log) = m.terminate(SHUTDOWN_BOUND);
    let status =
        status.unwrap_or_else(|| panic!("still running {SHUTDOWN_BOUND:?} after SIGTERM: {log:?}"));
    assert_eq!(status.code(), Some(0), "exit status; log: {log:?}");
    let text = std::fs::read_to_string(&file).unwrap_or_default();
    let numbers: Vec<u64> = text
        .lines()
        .filter_map(|l| {
            serde_json::from_str::<Value>(l)
                .ok()
                .as_ref()
                .and_then(arg_number)
        })
        .collect();
    assert_eq!(
        numbers,
        (0..FIRED as u64).collect::<Vec<_>>(),
        "alerts of the events before SIGTERM; log: {log:?}"
    );
}

// ---------------------------------------------------------------------------------------------
// Configuration: a changed file applies without restart; SIGUSR1 reopens output files;
// Falco's `priority` threshold.

#[test]
fn a_changed_configuration_file_switches_the_output_format_without_restart() {
    if !can_load_bpf() {
        return;
    }
    let setup = Setup::new("config-reload", "json_output: false\n", "");
    let mk = setup.marker();
    std::fs::write(&setup.rules, exec_rule("E2E config reload", &mk, "WARNING")).unwrap();
    let mut m = setup.start(&[]);
    let needle = format!("proc.name={} ", mk.name);
    mk.fire("before");
    let line = m
        .wait_line(WAIT, |l| l.contains(&needle) && l.contains(" before "))
        .expect("a text alert");
    assert!(
        serde_json::from_str::<Value>(&line).is_err(),
        "text: {line}"
    );

    let from = m.log.len();
    replace_file(&setup.config, "json_output: true\n");
    let (i, line) = m
        .wait_log_from(WAIT, from, "reload requested (Changed")
        .unwrap_or_else(|| panic!("the configuration change was not seen: {:?}", m.log));
    assert!(line.contains("monitor.yaml"), "{line}");
    m.wait_log_from(WAIT, i, "reload done")
        .unwrap_or_else(|| panic!("reload not done: {:?}", m.log));
    mk.fire("after");
    let a = m
        .wait_json(WAIT, |v| {
            has_marker(v, &mk) && v["output_fields"]["proc.cmdline"] == format!("{} after", mk.name)
        })
        .unwrap_or_else(|| panic!("no JSON alert after the reload: {:?}", m.lines));
    assert_eq!(s(&a, "rule"), "E2E config reload");
    // The `-o webserver.listen_port=0` override still holds: no restart warning, same server.
    assert!(
        !m.log.iter().any(|l| l.contains("next restart")),
        "{:?}",
        m.log
    );
}

#[test]
fn sigusr1_reopens_the_output_file_after_logrotate_moved_it() {
    if !can_load_bpf() {
        return;
    }
    let setup = Setup::new("reopen", "", "");
    let file = setup.dir.0.join("alerts.jsonl");
    let rotated = setup.dir.0.join("alerts.jsonl.1");
    std::fs::write(
        &setup.config,
        format!(
            "stdout_output: {{enabled: false}}\njson_output: true\nfile_output:\n  enabled: true\n  keep_alive: true\n  filename: {}\n",
            file.display()
        ),
    )
    .unwrap();
    let mk = setup.marker();
    std::fs::write(&setup.rules, exec_rule("E2E reopen", &mk, "WARNING")).unwrap();
    let mut m = setup.start(&[]);
    let numbers_in = |p: &Path| -> Vec<u64> {
        std::fs::read_to_string(p)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| {
                serde_json::from_str::<Value>(l)
                    .ok()
                    .as_ref()
                    .and_then(arg_number)
            })
            .collect()
    };
    let wait_numbers = |p: &Path, n: usize| {
        let until = Instant::now() + WAIT;
        while numbers_in(p).len() < n && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(50));
        }
        numbers_in(p)
    };
    mk.fire("n=0");
    assert_eq!(wait_numbers(&file, 1), [0]);
    // logrotate: move the file away, then SIGUSR1 (Falco's signal to reopen output files).
    std::fs::rename(&file, &rotated).unwrap();
    let from = m.log.len();
    m.signal(libc::SIGUSR1);
    m.wait_log_from(WAIT, from, "reopened")
        .unwrap_or_else(|| panic!("SIGUSR1 not handled: {:?}", m.log));
    mk.fire("n=1");
    assert_eq!(wait_numbers(&file, 1), [1], "the new alert in a new file");
    assert_eq!(
        numbers_in(&rotated),
        [0],
        "the rotated file keeps the old one only"
    );
    // SIGUSR1 is not a reload.
    assert!(
        !m.log.iter().any(|l| l.contains("reload requested")),
        "{:?}",
        m.log
    );
}

#[test]
fn rules_below_the_configured_priority_do_not_alert() {
    if !can_load_bpf() {
        return;
    }
    let setup = Setup::new("priority", "priority: error\njson_output: true\n", "");
    let (warn, crit) = (setup.marker(), setup.marker());
    std::fs::write(
        &setup.rules,
        exec_rule("E2E below threshold", &warn, "WARNING")
            + &exec_rule("E2E above threshold", &crit, "CRITICAL"),
    )
    .unwrap();
    let mut m = setup.start(&[]);
    let web = web_addr(&m);
    warn.fire("1");
    crit.fire("1");
    let a = m
        .wait_json(WAIT, |v| has_marker(v, &crit))
        .expect("the critical rule alerts");
    assert_eq!(s(&a, "priority"), "Critical");
    // Executed before the critical one: had it alerted, it would be printed by now.
    m.collect_for(Duration::from_millis(500));
    assert!(
        !m.lines.iter().any(|l| l.contains(&warn.name)),
        "a Warning rule alerted under priority: error: {:?}",
        m.lines
    );
    let page = scrape(web);
    assert_eq!(
        metric(
            &page,
            r#"monitor_alerts_total{rule="E2E below threshold",priority="Warning"}"#
        ),
        None,
        "{page}"
    );
}

#[test]
fn syslog_alerts_reach_rsyslogd_over_tcp_with_their_severity() {
    if !can_load_bpf() {
        return;
    }
    let Some(rs) = Rsyslog::start().expect("start rsyslogd") else {
        return;
    };
    let cfg = format!(
        "stdout_output: {{enabled: false}}\nsyslog_output:\n  enabled: true\n  facility: local3\n  remote: {{address: \"127.0.0.1:{}\", protocol: tcp}}\n",
        rs.tcp_port
    );
    check_syslog(&rs, "imtcp", &cfg);
}

// ---------------------------------------------------------------------------------------------
// Start-up errors, rate limiting, shutdown with an unreachable webhook.

#[test]
fn broken_rules_or_configuration_at_start_up_are_refused_with_where_and_why() {
    let setup = Setup::new("startup-errors", "", "");
    let broken = "- rule: E2E broken at start\n  desc: x\n  condition: evt.type = execve and (proc.name = x\n  output: \"x\"\n  priority: WARNING\n";
    std::fs::write(&setup.rules, broken).unwrap();
    let run = |extra: &[&str]| {
        let started = Instant::now();
        let out = Command::new(e2e::monitor_bin())
            .args(["run", "-c"])
            .arg(&setup.config)
            .arg("-r")
            .arg(&setup.rules)
            .args(["-o", "webserver.listen_port=0"])
            .args(extra)
            .output()
            .expect("run the monitor");
        assert!(
            started.elapsed() < Duration::from_secs(30),
            "it gave up quickly"
        );
        (
            out.status.code(),
            String::from_utf8_lossy(&out.stderr).to_string(),
        )
    };
    let (code, err) = run(&[]);
    assert_eq!(code, Some(1), "{err}");
    let at = format!("{}:3:", setup.rules.display());
    assert!(err.contains(&at), "file:line:col of the condition: {err}");
    assert!(!err.contains("ready"), "{err}");

    std::fs::write(&setup.rules, "").unwrap();
    let (code, err) = run(&["-o", "syslog_output.facility=nowhere"]);
    assert_eq!(code, Some(1), "{err}");
    assert!(
        err.contains("syslog_output.facility") && err.contains("nowhere"),
        "the key at fault: {err}"
    );
}

#[test]
fn the_rate_limiter_passes_a_burst_then_counts_what_it_drops() {
    if !can_load_bpf() {
        return;
    }
    let setup = Setup::new(
        "ratelimit",
        "json_output: true\noutputs:\n  rate: 0.001\n  max_burst: 2\n",
        "",
    );
    let mk = setup.marker();
    std::fs::write(&setup.rules, exec_rule("E2E rate limited", &mk, "WARNING")).unwrap();
    let mut m = setup.start(&[]);
    let web = web_addr(&m);
    for i in 0..5 {
        mk.fire(&format!("n={i}"));
    }
    let series = r#"monitor_rate_limited_alerts_total{rule="E2E rate limited"}"#;
    let page = scrape_until(web, series, 3.0, WAIT);
    assert_eq!(metric(&page, series), Some(3.0), "{page}");
    m.collect_for(Duration::from_millis(500));
    let printed: Vec<u64> = m
        .lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| has_marker(v, &mk))
        .filter_map(|v| arg_number(&v))
        .collect();
    assert_eq!(printed, [0, 1], "the burst passes, the rest is held back");
}

#[test]
fn sigterm_with_an_unreachable_webhook_exits_0_in_bounded_time_and_counts_the_loss() {
    if !can_load_bpf() {
        return;
    }
    const FIRED: usize = 3;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port();
    let cfg = webhook_config(
        &format!("http://127.0.0.1:{port}/never"),
        "  max_retries: 1000\n  backoff_ms: 100\n  max_backoff_ms: 500\n",
    );
    let setup = Setup::new("shutdown-webhook", &cfg, "");
    let mk = setup.marker();
    std::fs::write(&setup.rules, exec_rule("E2E unreachable", &mk, "WARNING")).unwrap();
    let mut m = setup.start(&[]);
    for i in 0..FIRED {
        mk.fire(&format!("n={i}"));
    }
    let printed = m.wait_lines(WAIT, FIRED, |l| l.contains(&mk.name));
    assert_eq!(printed.len(), FIRED, "stdout alerts: {printed:?}");
    // Outputs get 5 s to deliver; a webhook that never answers must not hold the exit longer.
    let (status, took, _, log) = m.terminate(SHUTDOWN_BOUND);
    let status =
        status.unwrap_or_else(|| panic!("still running {SHUTDOWN_BOUND:?} after SIGTERM: {log:?}"));
    assert_eq!(status.code(), Some(0), "{log:?}");
    eprintln!("SIGTERM to exit with a dead webhook: {took:?}");
    assert!(
        log.iter()
            .any(|l| l.contains(&format!("{FIRED} alerts could not be delivered"))),
        "the loss is reported: {log:?}"
    );
}

#[test]
fn sigterm_exits_0_when_nobody_reads_stderr_any_more() {
    if !can_load_bpf() {
        return;
    }
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let setup = Setup::new("stderr-gone", "stdout_output: {enabled: false}\n", "");
    let mk = setup.marker();
    std::fs::write(&setup.rules, exec_rule("E2E stderr gone", &mk, "WARNING")).unwrap();
    let mut child = Command::new(e2e::monitor_bin())
        .args(["run", "-c"])
        .arg(&setup.config)
        .arg("-r")
        .arg(&setup.rules)
        .args(["-o", "webserver.listen_port=0"])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the monitor");
    let stderr = child.stderr.take().expect("piped stderr");
    let mut lines = BufReader::new(stderr).lines();
    let ready = lines
        .by_ref()
        .map_while(Result::ok)
        .any(|l| l.contains("ready"));
    assert!(ready, "the monitor did not get ready");
    // The reader of the daemon's log goes away (a log shipper restarting, a closed terminal).
    drop(lines);
    // SAFETY: kill(2) of our own child.
    unsafe { libc::kill(child.id() as i32, libc::SIGTERM) };
    let until = Instant::now() + SHUTDOWN_BOUND;
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for the monitor") {
            break st;
        }
        if Instant::now() > until {
            let _ = child.kill();
            let _ = child.wait();
            panic!("still running {SHUTDOWN_BOUND:?} after SIGTERM");
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(
        status.code(),
        Some(0),
        "a clean exit, not a panic: {status}"
    );
}

/// The kernel's open prefilter judges a path through a hidden directory like any other, and
/// still passes what lexical cleaning would change: a rule on a hidden directory fires for a
/// path that reaches it only through `/./` or `/../`, while opens in a hidden directory no
/// rule can match stay in the kernel (they used to be sent, every one).
#[test]
fn open_prefilter_judges_hidden_directories_and_passes_dot_components() {
    if !can_load_bpf() {
        return;
    }
    let setup = Setup::new("dotdirs", "json_output: true\n", "");
    let keys = setup.dir.0.join(".keys");
    let cache = setup.dir.0.join(".cache");
    let other = setup.dir.0.join("other");
    for d in [&keys, &cache, &other] {
        std::fs::create_dir_all(d).expect("mkdir");
    }
    std::fs::write(
        &setup.rules,
        format!(
            r#"- rule: E2E hidden keys
  desc: e2e test rule
  condition: evt.type in (open, openat, openat2) and fd.name startswith "{}/"
  output: "e2e key opened (file=%fd.name)"
  priority: NOTICE
"#,
            keys.display()
        ),
    )
    .expect("write rules");
    let mut m = setup.start(&[]);
    let addr = web_addr(&m);
    let dir = setup.dir.0.display().to_string();
    for k in ["k1", "k2", "k3"] {
        std::fs::write(keys.join(k), "k").expect("create a key");
    }
    let opened = |raw: &str| {
        std::fs::File::open(raw).unwrap_or_else(|e| panic!("open {raw}: {e}"));
    };
    // Straight in, through `/./` before the hidden directory, and through `/../`.
    for (raw, clean) in [
        (format!("{dir}/.keys/k1"), format!("{dir}/.keys/k1")),
        (format!("{dir}/./.keys/k2"), format!("{dir}/.keys/k2")),
        (
            format!("{dir}/other/../.keys/k3"),
            format!("{dir}/.keys/k3"),
        ),
    ] {
        opened(&raw);
        m.wait_json(WAIT, |v| {
            s(v, "rule") == "E2E hidden keys" && v["output_fields"]["fd.name"] == clean.as_str()
        })
        .unwrap_or_else(|| panic!("no alert for opening {raw}; stdout: {:?}", m.lines));
    }
    // Opens in a hidden directory that no rule can match: dropped in the kernel. Opens of
    // other processes can only add events, so fewer than half of ours reaching the daemon
    // means ours were dropped.
    let file = cache.join("f");
    std::fs::write(&file, "x").expect("write");
    let series = r#"monitor_events_total{type="openat"}"#;
    const N: usize = 500;
    // Up to three bursts: while the daemon rewrites its kernel tables (a reload) the filter
    // is off and every open passes, rightly. A broken filter passes all three.
    let mut sent = Vec::new();
    for _ in 0..3 {
        let before = metric(&scrape(addr), series).unwrap_or(0.0);
        for _ in 0..N {
            std::fs::File::open(&file).expect("open");
        }
        // Had they been sent, the count would reach `before + N` within a few seconds.
        let page = scrape_until(addr, series, before + N as f64, Duration::from_secs(3));
        let after = metric(&page, series).unwrap_or(0.0);
        sent.push(after - before);
        if after - before < (N / 2) as f64 {
            return;
        }
    }
    panic!(
        "openat events for {N} opens in a hidden directory no rule names, in three bursts: {sent:?}; log: {:?}",
        m.log
    );
}
