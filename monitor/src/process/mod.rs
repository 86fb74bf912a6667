//! The process table: what the monitor knows of every live process, kept by fork, exec and
//! exit events and seeded from /proc at start.

pub mod path;
pub mod procfs;
pub mod table;
pub mod users;

use std::sync::Arc;

pub use table::{ProcessTable, TableConfig, TableStats};

/// What is known of one process (thread group) at one point of its life. Immutable: an exec
/// or a chdir makes a new `Process` in the table, so an event keeps the view it was
/// evaluated against, and a child keeps its parent's view even after the parent is gone.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Process {
    /// `proc.pid` (thread group id).
    pub pid: u32,
    /// `proc.ppid`.
    pub ppid: u32,
    /// `proc.vpid`: the pid inside the process's own pid namespace.
    pub vpid: u32,
    /// Session id (`proc.sid`).
    pub sid: u32,
    /// Process group id inside its namespace (`proc.vpgid`).
    pub vpgid: u32,
    /// `proc.name`: the kernel's comm (up to 15 bytes).
    pub name: String,
    /// `proc.exe`: argv[0] as the process was started.
    pub exe: String,
    /// `proc.exepath`: the full path of the executable.
    pub exepath: String,
    /// `proc.args`: argv[1..].
    pub args: Vec<String>,
    /// `proc.env`: the environment at exec, when captured.
    pub env: Vec<String>,
    /// `proc.cwd`, with a trailing `/` as Falco shows it.
    pub cwd: String,
    /// `proc.tty`: controlling terminal device number, 0 when none.
    pub tty: u32,
    /// `user.loginuid` of the process; u32::MAX when unset.
    pub loginuid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Process start, nanoseconds since the Unix epoch.
    pub start_ts: u64,
    /// Time of the process's last exec, nanoseconds since the Unix epoch.
    pub exec_ts: u64,
    /// ctime and mtime of the executable file at exec, nanoseconds since the epoch (0 unknown).
    pub exe_ino_ctime: u64,
    pub exe_ino_mtime: u64,
    /// The executable was loaded from a memfd (`proc.is_exe_from_memfd`).
    pub exe_from_memfd: bool,
    /// The executable lives in the writable upper layer of an overlay root: written after the
    /// container started (`proc.is_exe_upper_layer`).
    pub exe_upper_layer: bool,
    /// The executable is writable by the user running it (`proc.is_exe_writable`).
    pub exe_writable: bool,
    /// Capability sets (`thread.cap_effective`, `thread.cap_permitted`), bit masks.
    pub cap_effective: u64,
    pub cap_permitted: u64,
    /// cgroup v2 id of the process.
    pub cgroup_id: u64,
    /// The parent as it was when this process was forked (or re-seeded).
    pub parent: Option<Arc<Process>>,
}

impl Process {
    /// The `n`th ancestor: 0 is the process itself, 1 its parent (`proc.aname[n]`).
    pub fn ancestor(&self, n: usize) -> Option<&Process> {
        let mut p = self;
        for _ in 0..n {
            p = p.parent.as_deref()?;
        }
        Some(p)
    }

    /// Iterator over the ancestors, parent first.
    pub fn ancestors(&self) -> impl Iterator<Item = &Process> {
        std::iter::successors(self.parent.as_deref(), |p| p.parent.as_deref())
    }

    /// `proc.cmdline`: name and arguments, space separated, as Falco renders it.
    pub fn cmdline(&self) -> String {
        let mut s = self.name.clone();
        for a in &self.args {
            s.push(' ');
            s.push_str(a);
        }
        s
    }

    /// `proc.args`: the arguments, space separated.
    pub fn args_string(&self) -> String {
        self.args.join(" ")
    }
}
