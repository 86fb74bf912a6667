//! The command line, shaped for people who know Falco.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "monitor",
    version,
    about = "Runtime security monitor (eBPF, Falco rules)"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the rules, attach the probes, and print alerts.
    Run(RunArgs),
    /// Stream the enriched events as JSON lines, keyed by Falco's field names.
    Trace(TraceArgs),
    /// Validate or list rules files.
    Rules {
        #[command(subcommand)]
        cmd: crate::rules::cmd::RulesCommand,
    },
    /// Check a configuration file.
    Config {
        #[command(subcommand)]
        cmd: crate::config::ConfigCommand,
    },
    /// For `cargo xtask bench capture`: attach a program that does nothing where the exit
    /// program would be, print `ready`, and wait for SIGTERM (the floor under capture's cost).
    #[command(hide = true)]
    BenchFloor {
        /// `syscall_tracepoints` (openat's exit event) or `raw_sys_exit`.
        #[arg(long, default_value = "syscall_tracepoints")]
        hook: String,
        /// Read openat's path into the path buffer as the open prefilter does, nothing more.
        #[arg(long)]
        read_path: bool,
    },
}

/// Options shared by `run` and `trace`.
#[derive(Debug, clap::Args)]
pub struct CommonArgs {
    /// Configuration file (YAML).
    #[arg(short = 'c', long = "config")]
    pub config: Option<PathBuf>,
    /// Rules file or directory; repeat for several. Replaces `rules_files` of the config.
    #[arg(short = 'r', long = "rules")]
    pub rules: Vec<PathBuf>,
    /// Override a configuration key: `-o json_output=true`.
    #[arg(short = 'o', long = "option", value_name = "KEY=VALUE")]
    pub options: Vec<String>,
}

#[derive(Debug, clap::Args)]
pub struct RunArgs {
    #[command(flatten)]
    pub common: CommonArgs,
}

#[derive(Debug, clap::Args)]
pub struct TraceArgs {
    #[command(flatten)]
    pub common: CommonArgs,
    /// Only print events matching this condition (Falco's condition language).
    #[arg(long)]
    pub filter: Option<String>,
    /// Event types to capture (comma separated); all by default.
    #[arg(long, value_delimiter = ',')]
    pub types: Vec<String>,
}
