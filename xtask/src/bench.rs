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

const RUNS: usize = 5;

struct Monitor {
    child: Child,
    stderr_lines: std::sync::mpsc::Receiver<String>,
}

impl Monitor {
    fn start(bin: &Path, rules: &[PathBuf], extra: &[String]) -> Result<Monitor> {
        let mut cmd = Command::new(bin);
        cmd.arg("run");
        for r in rules {
            cmd.arg("-r").arg(r);
        }
        cmd.args(["-o", "stdout_output.enabled=false"])
            .args(extra)
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
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
        Ok(Monitor {
            child,
            stderr_lines: rx,
        })
    }

    /// Stop it and return its final statistics line (JSON), if it printed one.
    fn stop(mut self) -> Option<serde_json::Value> {
        // SAFETY: plain kill(2) of our child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let _ = self.child.wait();
        let mut stats = None;
        while let Ok(line) = self.stderr_lines.recv_timeout(Duration::from_secs(2)) {
            if let Some(j) = line.split_once("stats ").map(|(_, j)| j) {
                stats = serde_json::from_str(j).ok();
            }
        }
        stats
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

/// Seconds for `n` open+close of /etc/hostname.
fn open_close(n: u64) -> f64 {
    let path = CString::new("/etc/hostname").expect("no NUL in a literal");
    let t = Instant::now();
    for _ in 0..n {
        // SAFETY: valid C string; the fd is closed right away.
        unsafe {
            let fd = libc::open(path.as_ptr(), libc::O_RDONLY);
            if fd >= 0 {
                libc::close(fd);
            }
        }
    }
    t.elapsed().as_secs_f64()
}

/// Seconds for `n` fork+exec+wait of /bin/true.
fn fork_exec(n: u64) -> f64 {
    let t = Instant::now();
    for _ in 0..n {
        let _ = Command::new("/bin/true").status();
    }
    t.elapsed().as_secs_f64()
}

struct Redis(HostRedis);

impl Redis {
    fn start() -> Result<Redis> {
        Ok(Redis(
            HostRedis::start(&[]).context("starting redis-server")?,
        ))
    }

    /// Requests per second of SET and GET together.
    fn bench(&self, n: u64) -> Result<f64> {
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

struct Measures {
    open_close_s: f64,
    fork_exec_s: f64,
    redis_rps: f64,
}

fn measure(iterations: u64, redis: &Redis) -> Result<Measures> {
    let oc: Vec<f64> = (0..RUNS).map(|_| open_close(iterations)).collect();
    let fe: Vec<f64> = (0..RUNS).map(|_| fork_exec(iterations / 100)).collect();
    let mut rr = Vec::new();
    for _ in 0..3 {
        rr.push(redis.bench(iterations / 2)?);
    }
    Ok(Measures {
        open_close_s: median(oc),
        fork_exec_s: median(fe),
        redis_rps: median(rr),
    })
}

pub fn capture(
    root: &Path,
    iterations: Option<u64>,
    rules: &[PathBuf],
    containers: usize,
) -> Result<()> {
    let iterations = iterations.unwrap_or(200_000);
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
    // Started first, so that both halves run beside the same containers.
    let load = if containers > 0 {
        eprintln!("bench: starting a private dockerd and {containers} containers");
        Some(ContainerLoad::start(containers)?)
    } else {
        None
    };
    let monitor_options = load
        .as_ref()
        .map(ContainerLoad::monitor_options)
        .unwrap_or_default();
    let redis = Redis::start()?;
    eprintln!(
        "bench: {iterations} open+close, {} fork+exec, {} redis requests per run; median of runs",
        iterations / 100,
        iterations / 2
    );
    let base = measure(iterations, &redis)?;
    let monitor = Monitor::start(&bin, &rules, &monitor_options)?;
    let with = measure(iterations, &redis)?;
    // A fork+exec loop at full speed, for the drop count.
    let stats = monitor.stop();

    let per = |s: f64, n: u64| s * 1e9 / n as f64;
    println!(
        "capture benchmark (rules: {}; {containers} containers running)",
        rules
            .iter()
            .map(|r| r.display().to_string())
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "  open+close   : {:8.0} ns/iter unmonitored, {:8.0} ns/iter monitored, ratio {:.3}x (target <= 1.20x), {:+.0} ns per open+close",
        per(base.open_close_s, iterations),
        per(with.open_close_s, iterations),
        with.open_close_s / base.open_close_s,
        per(with.open_close_s - base.open_close_s, iterations)
    );
    println!(
        "  fork+exec    : {:8.0} us/iter unmonitored, {:8.0} us/iter monitored, ratio {:.3}x (target <= 1.10x)",
        per(base.fork_exec_s, iterations / 100) / 1000.0,
        per(with.fork_exec_s, iterations / 100) / 1000.0,
        with.fork_exec_s / base.fork_exec_s
    );
    println!(
        "  redis        : {:8.0} req/s unmonitored, {:8.0} req/s monitored, {:.1}% (target >= 97%)",
        base.redis_rps,
        with.redis_rps,
        100.0 * with.redis_rps / base.redis_rps
    );
    match stats {
        Some(s) => println!("  monitor stats: {s}"),
        None => println!("  monitor stats: none printed"),
    }
    drop(redis);
    drop(load);
    Ok(())
}
