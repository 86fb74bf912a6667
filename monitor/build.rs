//! Builds the eBPF object from the workspace and leaves it in OUT_DIR, so that the daemon
//! embeds it and one binary ships everything.
use anyhow::{Context as _, anyhow};
use aya_build::{Package, Toolchain};

fn main() -> anyhow::Result<()> {
    let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .ok_or_else(|| anyhow!("monitor crate has no parent directory"))?
        .join("monitor-ebpf");
    let root = root
        .to_str()
        .context("path of monitor-ebpf is not UTF-8")?
        .to_owned();
    let toolchain = match std::env::var("MONITOR_EBPF_TOOLCHAIN") {
        Ok(name) if name == "stable" => Toolchain::Custom("stable"),
        _ => Toolchain::Nightly,
    };
    println!("cargo:rerun-if-env-changed=MONITOR_EBPF_TOOLCHAIN");
    aya_build::build_ebpf(
        [Package {
            name: "monitor-ebpf",
            root_dir: &root,
            ..Default::default()
        }],
        toolchain,
    )
}
