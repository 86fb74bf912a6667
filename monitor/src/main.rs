//! The `monitor` binary: parse the command line, run the chosen command, map errors to exit
//! codes. Everything else lives in the library.

use std::process::ExitCode;

use clap::Parser;
use monitor::cli::{Cli, Command};
use monitor::daemon::{self, EnvironmentError};

fn main() -> ExitCode {
    let cli = Cli::parse();
    // Commands that need no runtime and no logging set-up.
    let command = match cli.command {
        Command::Rules { cmd } => return monitor::rules::cmd::run(cmd),
        Command::Config { cmd } => return monitor::config::run_command(cmd),
        other => other,
    };
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("MONITOR_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .with_writer(std::io::stderr)
        // Colour codes only for a person at a terminal, not in the journal or a log file.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("monitor: cannot start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    // The command runs as a task on a worker, not on this thread: a future polled by
    // `block_on` here is woken by the workers (which drive the timers and the I/O) across
    // threads, a futex wake and an eventfd write each time; measured, those handoffs were
    // most of the daemon's CPU under an exec loop.
    let task = runtime.spawn(async move {
        match command {
            Command::Trace(args) => daemon::trace(args).await,
            Command::Run(args) => daemon::run(args).await,
            Command::BenchFloor { hook, read_path } => {
                match serde_yaml::from_str::<monitor::probe::SyscallHook>(&hook) {
                    Ok(hook) => daemon::bench_floor(hook, read_path).await,
                    Err(_) => Err(anyhow::anyhow!(
                        "--hook: '{hook}' is neither syscall_tracepoints nor raw_sys_exit"
                    )),
                }
            }
            Command::Rules { .. } | Command::Config { .. } => Ok(()),
        }
    });
    let result = runtime
        .block_on(task)
        .unwrap_or_else(|e| Err(anyhow::anyhow!("the main task failed: {e}")));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("monitor: {e:#}");
            if e.downcast_ref::<EnvironmentError>().is_some() {
                ExitCode::from(daemon::EXIT_ENV)
            } else {
                ExitCode::FAILURE
            }
        }
    }
}
