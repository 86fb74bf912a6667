//! Installing what is missing. The eBPF crate needs a nightly toolchain with rust-src and a
//! bpf-linker built against the same LLVM as that nightly; no prebuilt LLVM can be fetched, so
//! bpf-linker is built against the libLLVM that the nightly toolchain ships.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::run;

fn output(cmd: &mut Command) -> Option<String> {
    let out = cmd.stderr(Stdio::null()).output().ok()?;
    out.status
        .success()
        .then(|| String::from_utf8_lossy(&out.stdout).trim().to_string())
}

/// nightly + rust-src + bpf-linker.
pub fn toolchain() -> Result<()> {
    let sysroot = output(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))
        .context(
            "the nightly toolchain is missing (rustup toolchain install nightly); it builds the eBPF programs",
        )?;
    let sysroot = PathBuf::from(sysroot);
    if !sysroot.join("lib/rustlib/src/rust/library/core").exists() {
        eprintln!("xtask: adding rust-src to the nightly toolchain");
        run(Command::new("rustup").args([
            "component",
            "add",
            "rust-src",
            "--toolchain",
            "nightly",
        ]))?;
    }
    if bpf_linker_works() {
        return Ok(());
    }
    install_bpf_linker(&sysroot)
}

fn bpf_linker_works() -> bool {
    output(Command::new("bpf-linker").arg("--version")).is_some()
}

/// Build bpf-linker against the nightly toolchain's own libLLVM, with an rpath to it so that
/// it runs from any environment.
fn install_bpf_linker(sysroot: &Path) -> Result<()> {
    let lib = sysroot.join("lib");
    let llvm = std::fs::read_dir(&lib)
        .with_context(|| format!("reading {}", lib.display()))?
        .filter_map(|e| e.ok())
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|n| n.starts_with("libLLVM.so.") || (n.starts_with("libLLVM-") && n.ends_with(".so")))
        .context("the nightly toolchain ships no libLLVM; cannot build bpf-linker")?;
    let major = llvm
        .trim_start_matches("libLLVM.so.")
        .trim_start_matches("libLLVM-")
        .split(['.', '-'])
        .next()
        .and_then(|m| m.parse::<u32>().ok())
        .with_context(|| format!("cannot read the LLVM version from {llvm}"))?;
    let prefix = std::env::temp_dir().join(format!("monitor-llvm-{major}"));
    std::fs::create_dir_all(prefix.join("lib"))?;
    let link = prefix.join("lib/libLLVM.so");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(lib.join(&llvm), &link)?;
    eprintln!("xtask: building bpf-linker against {llvm} (about a minute)");
    run(Command::new("cargo")
        .args([
            "install",
            "bpf-linker",
            "--no-default-features",
            "--features",
        ])
        .arg(format!("llvm-{major}"))
        .env("LLVM_PREFIX", &prefix)
        .env(
            "RUSTFLAGS",
            format!("-C link-arg=-Wl,-rpath,{}", lib.display()),
        ))?;
    if !bpf_linker_works() {
        bail!("bpf-linker was installed but does not run");
    }
    Ok(())
}

/// Debian packages the end-to-end tests use: a Docker engine, redis, rsyslog, static
/// busybox for container images, gcc for static helpers, systemd-analyze; and PyPI's
/// kubernetes-validate for the manifests.
const TEST_PACKAGES: &[(&str, &str)] = &[
    ("dockerd", "docker.io"),
    ("redis-server", "redis-server"),
    ("redis-benchmark", "redis-tools"),
    ("rsyslogd", "rsyslog"),
    ("logger", "bsdutils"),
    ("/bin/busybox", "busybox-static"),
    ("gcc", "gcc"),
    ("systemd-analyze", "systemd"),
    ("ctr", "containerd"),
    ("ip", "iproute2"),
];

pub fn test_packages() -> Result<()> {
    apt(TEST_PACKAGES)?;
    if output(Command::new("kubernetes-validate").arg("--version")).is_none() {
        eprintln!("xtask: installing kubernetes-validate (PyPI)");
        run(Command::new("python3").args([
            "-m",
            "pip",
            "install",
            "--quiet",
            "kubernetes-validate",
        ]))?;
    }
    Ok(())
}

pub fn bench_packages() -> Result<()> {
    apt(&[
        ("redis-server", "redis-server"),
        ("redis-benchmark", "redis-tools"),
        ("gcc", "gcc"),
        ("dockerd", "docker.io"),
        ("/bin/busybox", "busybox-static"),
    ])
}

fn have(cmd: &str) -> bool {
    if cmd.starts_with('/') {
        return Path::new(cmd).exists();
    }
    std::env::var_os("PATH")
        .map(|p| std::env::split_paths(&p).any(|d| d.join(cmd).is_file()))
        .unwrap_or(false)
        || Path::new("/usr/sbin").join(cmd).is_file()
        || Path::new("/sbin").join(cmd).is_file()
}

fn apt(wanted: &[(&str, &str)]) -> Result<()> {
    let missing: Vec<&str> = wanted
        .iter()
        .filter(|(cmd, _)| !have(cmd))
        .map(|(_, pkg)| *pkg)
        .collect();
    if missing.is_empty() {
        return Ok(());
    }
    eprintln!("xtask: installing {}", missing.join(" "));
    run(Command::new("apt-get")
        .args(["update", "-qq"])
        .env("DEBIAN_FRONTEND", "noninteractive"))?;
    run(Command::new("apt-get")
        .args(["install", "-y", "-qq", "--no-install-recommends"])
        .args(&missing)
        .env("DEBIAN_FRONTEND", "noninteractive"))
}
