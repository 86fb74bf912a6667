//! `cargo xtask ...`: set up the toolchain on a fresh machine, build, run, test, benchmark.
//!
//! Every step checks before it installs, so a second run is quick.

mod bench;
mod setup;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};
use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(name = "xtask")]
struct Cli {
    #[command(subcommand)]
    cmd: Cmd,
}

#[derive(Subcommand)]
enum Cmd {
    /// Install what building and testing need (toolchain parts, bpf-linker, test packages).
    Setup {
        /// Only the build toolchain, not the packages the tests need.
        #[arg(long)]
        build_only: bool,
    },
    /// Build the eBPF object and the daemon; leaves target/release/monitor.
    Build,
    /// Build, then run the monitor with the shipped rules (alerts on stdout). Needs root.
    Run {
        /// Extra arguments for `monitor run`.
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Set up, build, and run every test, unit and end-to-end.
    Test {
        /// Extra arguments for `cargo test` (e.g. a test name filter).
        #[arg(trailing_var_arg = true)]
        args: Vec<String>,
    },
    /// Benchmarks: `capture` (workloads with and without the monitor) or `rules` (criterion).
    Bench {
        #[arg(default_value = "capture")]
        which: String,
        /// Open+close iterations per run (capture; default 1,000,000). The fork+exec loop
        /// runs a 500th of that, redis-benchmark three tenths of it in requests.
        #[arg(long)]
        iterations: Option<u64>,
        /// Rules file or directory to load for the capture bench.
        #[arg(long)]
        rules: Vec<PathBuf>,
        /// Where the monitor catches syscall exits (capture): syscall_tracepoints (default),
        /// raw_sys_exit, or both, comma-separated, measured in the same rounds and compared.
        #[arg(
            long,
            value_delimiter = ',',
            default_value = "syscall_tracepoints",
            value_parser = ["syscall_tracepoints", "raw_sys_exit"]
        )]
        hook: Vec<String>,
        /// Containers to keep running during the capture bench.
        #[arg(long, default_value_t = 0)]
        containers: usize,
        /// Paired rounds (capture): more rounds narrow the medians on a noisy machine.
        #[arg(long, default_value_t = 5, value_parser = clap::value_parser!(u32).range(1..))]
        rounds: u32,
    },
}

fn main() -> Result<()> {
    let cli = Cli::parse();
    let root = workspace_root()?;
    match cli.cmd {
        Cmd::Setup { build_only } => {
            setup::toolchain()?;
            if !build_only {
                setup::test_packages()?;
            }
        }
        Cmd::Build => {
            setup::toolchain()?;
            build(&root)?;
        }
        Cmd::Run { args } => {
            setup::toolchain()?;
            build(&root)?;
            let mut cmd = Command::new(target_dir(&root).join("release/monitor"));
            cmd.arg("run");
            if !args.iter().any(|a| a == "-r" || a == "--rules") {
                cmd.arg("-r").arg(root.join("rules"));
            }
            cmd.args(args);
            let status = cmd.status().context("starting target/release/monitor")?;
            if !status.success() {
                bail!("monitor exited with {status}");
            }
        }
        Cmd::Test { args } => {
            setup::toolchain()?;
            setup::test_packages()?;
            build(&root)?;
            let bin = target_dir(&root).join("release/monitor");
            // Unit tests and end-to-end tests; the end-to-end tests drive the release binary.
            run(Command::new("cargo")
                .current_dir(&root)
                .env("MONITOR_BIN", &bin)
                .args(["test", "--workspace", "--release"])
                .args(&args))?;
        }
        Cmd::Bench {
            which,
            iterations,
            rules,
            hook,
            containers,
            rounds,
        } => {
            setup::toolchain()?;
            match which.as_str() {
                "capture" => {
                    setup::bench_packages()?;
                    build(&root)?;
                    bench::capture(&root, iterations, &rules, containers, &hook, rounds)?;
                }
                "rules" => run(Command::new("cargo")
                    .current_dir(&root)
                    .args(["bench", "-p", "monitor", "--bench", "rules"]))?,
                other => bail!("unknown benchmark '{other}' (capture or rules)"),
            }
        }
    }
    Ok(())
}

fn build(root: &Path) -> Result<()> {
    run(Command::new("cargo")
        .current_dir(root)
        .args(["build", "--release", "-p", "monitor"]))
}

pub fn run(cmd: &mut Command) -> Result<()> {
    let status = cmd
        .status()
        .with_context(|| format!("starting {:?}", cmd.get_program()))?;
    if !status.success() {
        bail!("{:?} failed: {status}", cmd);
    }
    Ok(())
}

/// Cargo's target directory: $CARGO_TARGET_DIR (relative to the workspace if relative), else
/// `target/` in the workspace, where the `cargo build` this tool runs puts the binary.
pub fn target_dir(root: &Path) -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(d) if !d.is_empty() => root.join(d),
        _ => root.join("target"),
    }
}

fn workspace_root() -> Result<PathBuf> {
    let manifest = PathBuf::from(env!("CARGO_MANIFEST_DIR"));
    manifest
        .parent()
        .map(Path::to_path_buf)
        .context("xtask has no parent directory")
}
