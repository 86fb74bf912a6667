//! `cargo xtask bench capture`: syscall-heavy workloads with and without the monitor
//! attached, in one invocation, and the ratios. The monitor runs with Falco's default rules
//! (or the rules given), as a user would run it.

use std::ffi::CString;
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use e2e::docker::{Container, Dockerd, RunSpec, docker_missing};
use e2e::redis_attack::HostRedis;

struct Monitor {
    child: Child,
    stderr_lines: std::sync::mpsc::Receiver<String>,
    /// Its CPU time when it said ready: what loading and attaching took is not counted.
    cpu_at_ready: Option<Duration>,
}

/// What a monitor run left: its statistics line, and the CPU time (user and system) it spent
/// between saying ready and being stopped, the cost of its capture and rules that the
/// workload's timings do not show on a machine with a spare CPU.
struct Stopped {
    stats: Option<serde_json::Value>,
    cpu: Option<Duration>,
}

/// User plus system CPU time of process `pid`.
fn cpu_time(pid: u32) -> Option<Duration> {
    let stat = procfs::process::Process::new(pid as i32)
        .ok()?
        .stat()
        .ok()?;
    let ticks = procfs::ticks_per_second().max(1);
    Some(Duration::from_secs_f64(
        (stat.utime + stat.stime) as f64 / ticks as f64,
    ))
}

impl Monitor {
    fn start(bin: &Path, rules: &[PathBuf], extra: &[String]) -> Result<Monitor> {
        let mut cmd = Command::new(bin);
        cmd.arg("run");
        for r in rules {
            cmd.arg("-r").arg(r);
        }
        cmd.args(["-o", "stdout_output.enabled=false"]).args(extra);
        Monitor::spawn(cmd)
    }

    /// `monitor bench-floor`: only a do-nothing program where the monitor's exit program
    /// would be, or (`read_path`) one that only reads openat's path as the prefilter does.
    fn floor(bin: &Path, hook: &str, read_path: bool) -> Result<Monitor> {
        let mut cmd = Command::new(bin);
        cmd.args(["bench-floor", "--hook", hook]);
        if read_path {
            cmd.arg("--read-path");
        }
        Monitor::spawn(cmd)
    }

    fn spawn(mut cmd: Command) -> Result<Monitor> {
        cmd.stdout(Stdio::null()).stderr(Stdio::piped());
        let mut child = cmd.spawn().context("starting the monitor")?;
        let stderr = child.stderr.take().context("monitor stderr")?;
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) if line.contains("ready") => break,
                Ok(line) => eprintln!("  monitor: {line}"),
                Err(_) => bail!("the monitor did not become ready within 60 s"),
            }
        }
        let cpu_at_ready = cpu_time(child.id());
        Ok(Monitor {
            child,
            stderr_lines: rx,
            cpu_at_ready,
        })
    }

    /// Stop it: its final statistics line (JSON), if it printed one, and its CPU time since
    /// it said ready.
    fn stop(mut self) -> Stopped {
        let cpu = match (self.cpu_at_ready, cpu_time(self.child.id())) {
            (Some(a), Some(b)) => Some(b.saturating_sub(a)),
            _ => None,
        };
        // SAFETY: plain kill(2) of our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let mut stats = None;
        while let Ok(line) = self.stderr_lines.recv_timeout(Duration::from_secs(2)) {
            if let Some(j) = line.split_once("stats ").map(|(_, j)| j) {
                stats = serde_json::from_str(j).ok();
            }
        }
        Stopped { stats, cpu }
    }
}

/// The median; of an even count, the mean of the middle two (the upper one alone would lean
/// every ratio's figure up).
fn median(v: &[f64]) -> f64 {
    let mut v = v.to_vec();
    v.sort_by(|a, b| a.total_cmp(b));
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// Each run is timed in this many slices; the slices of every round make the quiet figure.
const SLICES: u64 = 20;

/// A run: its total (seconds, or mean requests per second) and each slice's sample (seconds
/// per iteration, or requests per second). A shared VM's interference only ever slows a
/// slice down, so the quietest slices of two configurations compare what each costs itself;
/// the totals also carry whatever else the machine was doing.
#[derive(Clone)]
struct Run {
    total: f64,
    samples: Vec<f64>,
}

/// The quiet figure of a configuration: the 10th percentile of all its slices, the fast end
/// (`low` for times, the high end for rates). A percentile rather than the single best
/// slice, so that one lucky slice does not make the figure.
fn quiet(v: &[Run], low: bool) -> f64 {
    let mut all: Vec<f64> = v.iter().flat_map(|r| r.samples.iter().copied()).collect();
    all.sort_by(|a, b| a.total_cmp(b));
    if !low {
        all.reverse();
    }
    all.get(all.len() / 10).copied().unwrap_or(f64::NAN)
}

/// Time `n` iterations of `f` in `SLICES` slices.
fn sliced(n: u64, mut f: impl FnMut()) -> Run {
    let per = (n / SLICES).max(1);
    let mut total = 0.0;
    let mut samples = Vec::with_capacity(SLICES as usize);
    for _ in 0..SLICES {
        let t = Instant::now();
        for _ in 0..per {
            f();
        }
        let s = t.elapsed().as_secs_f64();
        total += s;
        samples.push(s / per as f64);
    }
    Run { total, samples }
}

/// `n` open+close of /etc/hostname.
fn open_close(n: u64) -> Run {
    let path = CString::new("/etc/hostname").expect("no NUL in a literal");
    sliced(n, || {
        // SAFETY: valid C string; the fd is closed right away.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
            if fd >= 0 {
                libc::close(fd);
            }
        }
    })
}

/// `n` fork+exec+wait of /bin/true.
fn fork_exec(n: u64) -> Run {
    sliced(n, || {
        let _ = Command::new("/bin/true").status();
    })
}

struct Redis(HostRedis);

impl Redis {
    fn start() -> Result<Redis> {
        Ok(Redis(
            HostRedis::start(&[]).context("starting redis-server")?,
        ))
    }

    /// Requests per second of SET and GET together, over five runs of `n / 5` requests: the
    /// mean and each run.
    fn bench(&self, n: u64) -> Result<Run> {
        let mut samples = Vec::with_capacity(5);
        for _ in 0..5 {
            samples.push(self.bench_once((n / 5).max(1000))?);
        }
        let total = samples.iter().sum::<f64>() / samples.len() as f64;
        Ok(Run { total, samples })
    }

    fn bench_once(&self, n: u64) -> Result<f64> {
        // Bounded: a redis-benchmark whose server died would spin forever.
        let out = Command::new("timeout")
            .arg("300")
            .arg("redis-benchmark")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &self.0.port.to_string(),
                "-q",
                "--csv",
                "-t",
                "set,get",
                "-c",
                "20",
                "-n",
            ])
            .arg(n.to_string())
            .output()
            .context("running redis-benchmark")?;
        let text = String::from_utf8_lossy(&out.stdout);
        let mut total = 0.0;
        let mut count = 0;
        for line in text.lines() {
            let fields: Vec<&str> = line.split(',').map(|f| f.trim_matches('"')).collect();
            if fields.len() >= 2
                && let Ok(rps) = fields[1].parse::<f64>()
            {
                total += rps;
                count += 1;
            }
        }
        if count == 0 {
            bail!("redis-benchmark printed no results: {text}");
        }
        Ok(total / count as f64)
    }
}

/// Containers kept running while both halves of the bench run: a private Docker engine
/// (the tests' harness) and `n` busybox containers sleeping. Removed, with the engine, on
/// drop.
struct ContainerLoad {
    // Fields drop in order: the containers before their engine.
    containers: Vec<Container>,
    dockerd: Dockerd,
}

const BENCH_IMAGE: &str = "monitor-bench/busybox:1";

impl ContainerLoad {
    fn start(n: usize) -> Result<ContainerLoad> {
        if let Some(missing) = docker_missing() {
            bail!("--containers: {missing}");
        }
        let dockerd = Dockerd::try_start().context("starting a private dockerd")?;
        dockerd
            .busybox_image(BENCH_IMAGE)
            .context("importing the busybox image")?;
        let mut load = ContainerLoad {
            containers: Vec::with_capacity(n),
            dockerd,
        };
        for i in 0..n {
            let name = format!("monitor-bench-{}-{i}", std::process::id());
            let spec = RunSpec::new(&name, BENCH_IMAGE, &["/bin/busybox", "sleep", "3600"]);
            let c = load
                .dockerd
                .run(&spec)
                .with_context(|| format!("docker run {name}"))?;
            load.containers.push(c);
        }
        let running = load
            .dockerd
            .docker(&["ps", "-q", "--filter", "status=running"])?
            .lines()
            .count();
        if running != n {
            bail!("{running} of {n} containers are running");
        }
        Ok(load)
    }

    /// `-o` options pointing the monitor's container stage at this engine.
    fn monitor_options(&self) -> Vec<String> {
        vec![
            "-o".into(),
            "container.docker_sockets=[]".into(),
            "-o".into(),
            format!(
                "container.docker_sockets[]={}",
                self.dockerd.socket().display()
            ),
        ]
    }
}

/// One run of each workload.
struct Measures {
    open_close: Run,
    fork_exec: Run,
    redis: Run,
}

/// How much of each workload one run does. Each run lasts about a second or more, so that
/// one scheduling hiccup of a shared VM is not the whole run.
#[derive(Clone, Copy)]
struct Sizes {
    open_close: u64,
    fork_exec: u64,
    redis: u64,
}

impl Sizes {
    fn from_iterations(iterations: u64) -> Sizes {
        Sizes {
            open_close: iterations.max(1),
            fork_exec: (iterations / 500).max(1),
            redis: (iterations * 3 / 10).max(1000),
        }
    }
}

fn measure(n: Sizes, redis: &Redis) -> Result<Measures> {
    Ok(Measures {
        open_close: open_close(n.open_close),
        fork_exec: fork_exec(n.fork_exec),
        redis: redis.bench(n.redis)?,
    })
}

/// Median and range of paired ratios (monitored over unmonitored, round by round): pairing
/// cancels the drift of a shared VM between rounds, and the range shows what noise is left.
fn ratios(with: &[f64], base: &[f64]) -> (f64, f64, f64) {
    let r: Vec<f64> = with.iter().zip(base).map(|(w, b)| w / b).collect();
    let lo = r.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = r.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    (median(&r), lo, hi)
}

fn sum_counters(stats: &serde_json::Value, key: &str) -> u64 {
    match stats.get(key) {
        Some(serde_json::Value::Object(m)) => m.values().filter_map(|v| v.as_u64()).sum(),
        Some(v) => v.as_u64().unwrap_or(0),
        None => 0,
    }
}

/// A small xorshift generator for the order of each round's steps: no crate for ten lines.
struct Shuffler(u64);

impl Shuffler {
    fn new(seed: u64) -> Shuffler {
        Shuffler(seed | 1)
    }

    fn next(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        self.0 = x;
        x
    }

    fn shuffle<T>(&mut self, v: &mut [T]) {
        for i in (1..v.len()).rev() {
            let j = (self.next() % (i as u64 + 1)) as usize;
            v.swap(i, j);
        }
    }
}

/// One step of a round: the unmonitored run, a second unmonitored run (the control), or one
/// hook's floor, floor with the path read, or monitor.
#[derive(Clone, Copy)]
enum Step {
    Base,
    Control,
    Floor(usize),
    FloorRead(usize),
    Monitor(usize),
}

/// What one hook measured over the rounds.
#[derive(Default)]
struct HookRuns {
    floor: Vec<Run>,
    /// redis-benchmark under the do-nothing floor: what any syscall tracepoint costs it.
    floor_redis: Vec<Run>,
    floor_read: Vec<Run>,
    with: Vec<Measures>,
    /// What each round's monitored step left.
    stopped: Vec<Stopped>,
}

pub fn capture(
    root: &Path,
    iterations: Option<u64>,
    rules: &[PathBuf],
    containers: usize,
    hooks: &[String],
    rounds: u32,
) -> Result<()> {
    let n = Sizes::from_iterations(iterations.unwrap_or(1_000_000));
    let bin = crate::target_dir(root).join("release/monitor");
    let rules: Vec<PathBuf> = if rules.is_empty() {
        let falco = root.join("../shared/falco-rules/falco_rules.yaml");
        if falco.exists() {
            vec![falco]
        } else {
            vec![root.join("rules")]
        }
    } else {
        rules.to_vec()
    };
    // A hook named twice is measured once.
    let mut unique: Vec<String> = Vec::new();
    for h in hooks {
        if !unique.contains(h) {
            unique.push(h.clone());
        }
    }
    let hooks = unique;
    // Started first, so that both halves run beside the same containers.
    let load = if containers > 0 {
        eprintln!("bench: starting a private dockerd and {containers} containers");
        Some(ContainerLoad::start(containers)?)
    } else {
        None
    };
    let container_options = load
        .as_ref()
        .map(ContainerLoad::monitor_options)
        .unwrap_or_default();
    let redis = Redis::start()?;
    eprintln!(
        "bench: {} open+close, {} fork+exec, {} redis requests per run",
        n.open_close, n.fork_exec, n.redis
    );
    // Each round runs every step once: unmonitored, unmonitored again (the control), and for
    // each hook the two floors and the monitor. The order is shuffled each round, so that no configuration always runs first
    // or last (a shared VM's drift within a round, or a workload's warm-up, would then fall
    // on one of them); each step is compared with the same round's unmonitored run.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(1);
    let mut shuffler = Shuffler::new(seed);
    let mut base = Vec::new();
    let mut control = Vec::new();
    let mut per_hook: Vec<HookRuns> = hooks.iter().map(|_| HookRuns::default()).collect();
    for round in 1..=rounds {
        let mut steps = vec![Step::Base, Step::Control];
        for h in 0..hooks.len() {
            steps.extend([Step::Floor(h), Step::FloorRead(h), Step::Monitor(h)]);
        }
        shuffler.shuffle(&mut steps);
        eprintln!("bench: round {round} of {rounds}");
        for step in steps {
            match step {
                Step::Base => base.push(measure(n, &redis)?),
                // Unmonitored again, compared with the round's unmonitored run as the
                // monitor is: how far apart two identical configurations land here, the noise
                // every other ratio carries.
                Step::Control => control.push(measure(n, &redis)?),
                // The floor: the monitor's exit tracepoint with a program that does nothing.
                // No capture program can cost less; the monitor's own work is what it adds.
                Step::Floor(h) => {
                    let f = Monitor::floor(&bin, &hooks[h], false)?;
                    per_hook[h].floor.push(open_close(n.open_close));
                    per_hook[h].floor_redis.push(redis.bench(n.redis)?);
                    f.stop();
                }
                // The floor plus reading the path: what any in-kernel path filter costs at
                // least.
                Step::FloorRead(h) => {
                    let f = Monitor::floor(&bin, &hooks[h], true)?;
                    per_hook[h].floor_read.push(open_close(n.open_close));
                    f.stop();
                }
                Step::Monitor(h) => {
                    let mut options = container_options.clone();
                    options.extend([
                        "-o".to_string(),
                        format!("capture.syscall_hook={}", hooks[h]),
                    ]);
                    let monitor = Monitor::start(&bin, &rules, &options)?;
                    per_hook[h].with.push(measure(n, &redis)?);
                    // The fork+exec loop ran at full speed: its drops are in these counters.
                    per_hook[h].stopped.push(monitor.stop());
                }
            }
        }
    }

    println!(
        "capture benchmark (rules: {}; {containers} containers running; {rounds} rounds, steps in a shuffled order each round)",
        rules
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  each line: median of the paired rounds' ratios [their range]; quiet: the ratio of the 10th percentile (the fast end) of every round's {SLICES} slices"
    );
    report_control(&base, &control);
    for (hook, runs) in hooks.iter().zip(&per_hook) {
        report(hook, n, &base, runs);
    }
    if hooks.len() > 1 {
        compare(&hooks, &per_hook);
    }
    drop(redis);
    drop(load);
    Ok(())
}

fn col(v: &[Measures], f: fn(&Measures) -> &Run) -> Vec<Run> {
    v.iter().map(f).cloned().collect()
}

fn totals(v: &[Run]) -> Vec<f64> {
    v.iter().map(|r| r.total).collect()
}

/// The control against the unmonitored runs: no configuration differs, so a median away from
/// 1 and the range are what noise alone does to a paired ratio on this machine.
fn report_control(base: &[Measures], control: &[Measures]) {
    let pair = |f: fn(&Measures) -> &Run| ratios(&totals(&col(control, f)), &totals(&col(base, f)));
    let (oc, oc_lo, oc_hi) = pair(|m| &m.open_close);
    let (fe, fe_lo, fe_hi) = pair(|m| &m.fork_exec);
    let (rr, rr_lo, rr_hi) = pair(|m| &m.redis);
    let quiet_ratio = |f: fn(&Measures) -> &Run, low: bool| {
        quiet(&col(control, f), low) / quiet(&col(base, f), low)
    };
    println!(
        "control (unmonitored over unmonitored, same round): open+close {oc:.3}x [{oc_lo:.3}-{oc_hi:.3}], quiet {:.3}x; fork+exec {fe:.3}x [{fe_lo:.3}-{fe_hi:.3}]; redis {:.1}% [{:.1}-{:.1}%], quiet {:.1}%",
        quiet_ratio(|m| &m.open_close, true),
        100.0 * rr,
        100.0 * rr_lo,
        100.0 * rr_hi,
        100.0 * quiet_ratio(|m| &m.redis, false)
    );
}

/// One hook's figures against the unmonitored runs of the same rounds.
fn report(hook: &str, n: Sizes, base: &[Measures], runs: &HookRuns) {
    let per = |s: f64, n: u64| s * 1e9 / n as f64;
    let quiet_time = |v: &[Run]| quiet(v, true);
    let quiet_rate = |v: &[Run]| quiet(v, false);
    let with = &runs.with;
    let (floor, floor_read) = (&runs.floor, &runs.floor_read);
    let (b_oc, w_oc) = (col(base, |m| &m.open_close), col(with, |m| &m.open_close));
    let (b_fe, w_fe) = (col(base, |m| &m.fork_exec), col(with, |m| &m.fork_exec));
    let (b_rr, w_rr) = (col(base, |m| &m.redis), col(with, |m| &m.redis));
    println!("hook: {hook}");
    let (r, lo, hi) = ratios(&totals(&w_oc), &totals(&b_oc));
    let (fr, flo, fhi) = ratios(&totals(floor), &totals(&b_oc));
    let (rr, rlo, rhi) = ratios(&totals(floor_read), &totals(&b_oc));
    let (b, w, f, fread) = (
        per(median(&totals(&b_oc)), n.open_close),
        per(median(&totals(&w_oc)), n.open_close),
        per(median(&totals(floor)), n.open_close),
        per(median(&totals(floor_read)), n.open_close),
    );
    let (bb, wb, fb, frb) = (
        quiet_time(&b_oc) * 1e9,
        quiet_time(&w_oc) * 1e9,
        quiet_time(floor) * 1e9,
        quiet_time(floor_read) * 1e9,
    );
    println!(
        "  open+close   : {b:8.0} ns/iter unmonitored, {w:8.0} monitored, ratio {r:.3}x [{lo:.3}-{hi:.3}]; quiet {bb:.0} -> {wb:.0} ns, {:.3}x (target <= 1.20x)",
        wb / bb
    );
    println!(
        "    floor      : {f:8.0} ns/iter with only a do-nothing program where the exit program is, ratio {fr:.3}x [{flo:.3}-{fhi:.3}]; quiet {fb:.0} ns, {:.3}x",
        fb / bb
    );
    println!(
        "    floor+read : {fread:8.0} ns/iter with a program that only reads openat's path, ratio {rr:.3}x [{rlo:.3}-{rhi:.3}]; quiet {frb:.0} ns, {:.3}x; the monitor adds {:+.0} ns to it",
        frb / bb,
        wb - frb
    );
    let (r, lo, hi) = ratios(&totals(&w_fe), &totals(&b_fe));
    println!(
        "  fork+exec    : {:8.0} us/iter unmonitored, {:8.0} monitored, ratio {r:.3}x [{lo:.3}-{hi:.3}]; quiet {:.0} -> {:.0} us, {:.3}x (target <= 1.10x)",
        per(median(&totals(&b_fe)), n.fork_exec) / 1000.0,
        per(median(&totals(&w_fe)), n.fork_exec) / 1000.0,
        quiet_time(&b_fe) * 1e6,
        quiet_time(&w_fe) * 1e6,
        quiet_time(&w_fe) / quiet_time(&b_fe)
    );
    let (r, lo, hi) = ratios(&totals(&w_rr), &totals(&b_rr));
    println!(
        "  redis        : {:8.0} req/s unmonitored, {:8.0} monitored, {:.1}% [{:.1}-{:.1}%]; quiet {:.0} -> {:.0} req/s, {:.1}% (target >= 97%)",
        median(&totals(&b_rr)),
        median(&totals(&w_rr)),
        100.0 * r,
        100.0 * lo,
        100.0 * hi,
        quiet_rate(&b_rr),
        quiet_rate(&w_rr),
        100.0 * quiet_rate(&w_rr) / quiet_rate(&b_rr)
    );
    let (r, lo, hi) = ratios(&totals(&runs.floor_redis), &totals(&b_rr));
    println!(
        "    floor      : {:8.0} req/s with only the do-nothing program, {:.1}% [{:.1}-{:.1}%]; quiet {:.0} req/s, {:.1}%",
        median(&totals(&runs.floor_redis)),
        100.0 * r,
        100.0 * lo,
        100.0 * hi,
        quiet_rate(&runs.floor_redis),
        100.0 * quiet_rate(&runs.floor_redis) / quiet_rate(&b_rr)
    );
    let printed: Vec<&serde_json::Value> = runs
        .stopped
        .iter()
        .filter_map(|s| s.stats.as_ref())
        .collect();
    let dropped: u64 = printed
        .iter()
        .map(|s| sum_counters(s, "kernel_drops") + sum_counters(s, "kernel_lost"))
        .sum();
    println!(
        "  dropped events: {dropped} in {} rounds with statistics (of {})",
        printed.len(),
        runs.stopped.len()
    );
    let cpu: Vec<f64> = runs
        .stopped
        .iter()
        .filter_map(|s| Some(s.cpu?.as_secs_f64()))
        .collect();
    let per_event: Vec<f64> = runs
        .stopped
        .iter()
        .filter_map(|s| {
            let events = s.stats.as_ref()?.get("events")?.as_u64()?;
            let cpu = s.cpu?;
            (events > 0).then(|| cpu.as_secs_f64() * 1e6 / events as f64)
        })
        .collect();
    if cpu.is_empty() {
        println!("  monitor CPU: not measured");
    } else {
        println!(
            "  monitor CPU : {:.0} ms per monitored run of the three workloads (median of {}), {:.1} us per event sent",
            1e3 * median(&cpu),
            cpu.len(),
            median(&per_event)
        );
    }
    match printed.last() {
        Some(s) => println!("  monitor stats (last round): {s}"),
        None => println!("  monitor stats: none printed"),
    }
}

/// The hooks against each other, round by round: each later hook over the first.
fn compare(hooks: &[String], per_hook: &[HookRuns]) {
    let first = &per_hook[0];
    for (hook, runs) in hooks.iter().zip(per_hook).skip(1) {
        println!("{hook} over {}, paired by round:", hooks[0]);
        let pair = |f: fn(&Measures) -> &Run| {
            ratios(&totals(&col(&runs.with, f)), &totals(&col(&first.with, f)))
        };
        let (r, lo, hi) = pair(|m| &m.open_close);
        println!("  open+close time : {r:.3}x [{lo:.3}-{hi:.3}]");
        let (r, lo, hi) = pair(|m| &m.fork_exec);
        println!("  fork+exec time  : {r:.3}x [{lo:.3}-{hi:.3}]");
        let (r, lo, hi) = pair(|m| &m.redis);
        println!(
            "  redis rate      : {:.1}% [{:.1}-{:.1}%]",
            100.0 * r,
            100.0 * lo,
            100.0 * hi
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_an_even_count_is_the_mean_of_the_middle_two() {
        assert_eq!(median(&[1.3, 1.1, 1.2, 1.0]), 1.15);
        assert_eq!(median(&[3.0, 1.0, 2.0]), 2.0);
        assert!(median(&[]).is_nan());
    }

    #[test]
    fn a_shuffle_keeps_every_step_once_and_varies_the_order() {
        let mut s = Shuffler::new(42);
        let mut orders = std::collections::HashSet::new();
        for _ in 0..50 {
            let mut v: Vec<u8> = (0..7).collect();
            s.shuffle(&mut v);
            let mut sorted = v.clone();
            sorted.sort();
            assert_eq!(sorted, (0..7).collect::<Vec<u8>>());
            orders.insert(v);
        }
        assert!(orders.len() > 40, "{} distinct orders of 50", orders.len());
    }
}
