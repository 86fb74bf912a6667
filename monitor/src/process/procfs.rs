//! Reading what the kernel says of a live process in /proc: used to seed the table at start,
//! and for processes whose fork happened before the monitor attached.

use std::path::Path;
use std::sync::Arc;

use super::Process;

/// What /proc tells of one process (without the parent link).
pub fn read_process(pid: u32, boot_wall_ns: u64) -> Option<Process> {
    let p = procfs::process::Process::new(pid as i32).ok()?;
    let stat = p.stat().ok()?;
    let status = p.status().ok();
    let cmdline = p.cmdline().unwrap_or_default();
    let exepath = p
        .exe()
        .map(|e| e.to_string_lossy().into_owned())
        .unwrap_or_default();
    let cwd = p
        .cwd()
        .map(|c| with_slash(&c.to_string_lossy()))
        .unwrap_or_default();
    let ticks = procfs::ticks_per_second().max(1);
    let start_ts = boot_wall_ns + stat.starttime * 1_000_000_000 / ticks;
    let loginuid = std::fs::read_to_string(format!("/proc/{pid}/loginuid"))
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(u32::MAX);
    let (uid, gid, vpid, cap_eff, cap_prm) = match &status {
        Some(s) => (
            s.euid,
            s.egid,
            s.nspid
                .as_ref()
                .and_then(|v| v.last().copied())
                .unwrap_or(pid as i32) as u32,
            s.capeff,
            s.capprm,
        ),
        None => (0, 0, pid, 0, 0),
    };
    let exe = cmdline.first().cloned().unwrap_or_default();
    Some(Process {
        pid,
        ppid: stat.ppid as u32,
        vpid,
        sid: stat.session as u32,
        vpgid: stat.pgrp as u32,
        name: stat.comm.clone(),
        exe,
        exepath: exepath.trim_end_matches(" (deleted)").to_string(),
        args: cmdline.into_iter().skip(1).collect(),
        env: Vec::new(),
        cwd,
        tty: stat.tty_nr as u32,
        loginuid,
        uid,
        gid,
        start_ts,
        exec_ts: start_ts,
        exe_from_memfd: exepath.starts_with("/memfd:"),
        cap_effective: cap_eff,
        cap_permitted: cap_prm,
        ..Process::default()
    })
}

/// Capabilities and namespace pid of a live process, read after an exec.
pub fn read_status(pid: u32) -> Option<(u64, u64, u32)> {
    let s = procfs::process::Process::new(pid as i32)
        .ok()?
        .status()
        .ok()?;
    let vpid = s
        .nspid
        .as_ref()
        .and_then(|v| v.last().copied())
        .unwrap_or(pid as i32) as u32;
    Some((s.capeff, s.capprm, vpid))
}

/// Pids of every process now alive.
pub fn all_pids() -> Vec<u32> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .collect()
}

/// Where fd `fd` of process `pid` points now (for fds the table missed).
pub fn fd_target(pid: u32, fd: i64) -> Option<String> {
    std::fs::read_link(format!("/proc/{pid}/fd/{fd}"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

pub fn is_alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// Falco shows proc.cwd with a trailing slash.
pub fn with_slash(p: &str) -> String {
    if p.ends_with('/') {
        p.to_string()
    } else {
        format!("{p}/")
    }
}

/// Link seeded processes to their parents, ancestors first, so every `parent` Arc is final.
pub fn link_parents(
    mut procs: std::collections::HashMap<u32, Process>,
) -> std::collections::HashMap<u32, Arc<Process>> {
    let mut done: std::collections::HashMap<u32, Arc<Process>> = Default::default();
    let pids: Vec<u32> = procs.keys().copied().collect();
    for pid in pids {
        link_one(pid, &mut procs, &mut done, 0);
    }
    done
}

fn link_one(
    pid: u32,
    procs: &mut std::collections::HashMap<u32, Process>,
    done: &mut std::collections::HashMap<u32, Arc<Process>>,
    depth: usize,
) -> Option<Arc<Process>> {
    if let Some(p) = done.get(&pid) {
        return Some(p.clone());
    }
    let mut p = procs.remove(&pid)?;
    if depth < 64 && p.ppid != 0 && p.ppid != pid {
        p.parent = link_one(p.ppid, procs, done, depth + 1);
    }
    let arc = Arc::new(p);
    done.insert(pid, arc.clone());
    Some(arc)
}
