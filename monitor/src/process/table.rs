//! The process table proper: applies decoded records in ring-buffer order and turns each
//! syscall record into an `Event` with its process, fd and user.
//!
//! Records arrive in the order the kernel reserved them, and a child's PROC_FORK is reserved
//! before the child can run, so a pid the table does not know is a process that was running
//! before the monitor attached (or whose fork record was lost): it is seeded from /proc.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::Arc;

use monitor_common::{SockTuple, flags, kind};

use super::Process;
use super::path::resolve;
use super::procfs;
use super::users::UserDb;
use crate::container::ContainerInfo;
use crate::event::decode::{Header, RawRecord};
use crate::event::names;
use crate::event::{
    Arg, ArgValue, Event, EventType, FdInfo, FdKind, KernelEnforcement, L4Proto, SockAddr,
    SocketTuple, UserInfo,
};

const AT_FDCWD: i64 = -100;

/// Limits that keep the table bounded whatever the workload.
#[derive(Clone, Debug)]
pub struct TableConfig {
    pub max_processes: usize,
    pub max_fds_per_process: usize,
}

impl Default for TableConfig {
    fn default() -> Self {
        TableConfig {
            max_processes: 131_072,
            max_fds_per_process: 4096,
        }
    }
}

/// Counters of what the table did, for metrics.
#[derive(Clone, Copy, Debug, Default)]
pub struct TableStats {
    pub seeded_from_proc: u64,
    pub exits: u64,
    pub swept: u64,
    pub dropped_over_limit: u64,
}

#[derive(Clone, Debug)]
struct FdEntry {
    kind: FdKind,
    name: String,
    flags: u32,
    tuple: Option<SocketTuple>,
}

struct Entry {
    proc: Arc<Process>,
    fds: HashMap<i64, FdEntry>,
}

pub struct ProcessTable {
    procs: HashMap<u32, Entry>,
    users: UserDb,
    /// Wall-clock time at boot: wall = boot_wall_ns + boot-clock ns.
    boot_wall_ns: u64,
    seq: u64,
    cfg: TableConfig,
    pub stats: TableStats,
}

/// Wall-clock nanoseconds at boot (CLOCK_REALTIME - CLOCK_BOOTTIME).
pub fn boot_wall_ns() -> u64 {
    let now = |clock| {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid pointer to a timespec.
        unsafe { libc::clock_gettime(clock, &mut ts) };
        ts.tv_sec as u64 * 1_000_000_000 + ts.tv_nsec as u64
    };
    now(libc::CLOCK_REALTIME).saturating_sub(now(libc::CLOCK_BOOTTIME))
}

impl ProcessTable {
    /// An empty table (tests, replay).
    pub fn new(cfg: TableConfig) -> ProcessTable {
        ProcessTable {
            procs: HashMap::new(),
            users: UserDb::load(),
            boot_wall_ns: boot_wall_ns(),
            seq: 0,
            cfg,
            stats: TableStats::default(),
        }
    }

    /// A table holding every process now alive, read from /proc.
    pub fn seeded(cfg: TableConfig) -> ProcessTable {
        let mut t = ProcessTable::new(cfg);
        let procs: HashMap<u32, Process> = procfs::all_pids()
            .into_iter()
            .filter_map(|pid| Some((pid, procfs::read_process(pid, t.boot_wall_ns)?)))
            .collect();
        for (pid, proc) in procfs::link_parents(procs) {
            t.procs.insert(
                pid,
                Entry {
                    proc,
                    fds: HashMap::new(),
                },
            );
        }
        t.stats.seeded_from_proc = t.procs.len() as u64;
        t
    }

    pub fn len(&self) -> usize {
        self.procs.len()
    }

    pub fn is_empty(&self) -> bool {
        self.procs.is_empty()
    }

    pub fn get(&self, pid: u32) -> Option<&Arc<Process>> {
        self.procs.get(&pid).map(|e| &e.proc)
    }

    /// Drop processes that are gone without an exit record (a lost record): bounded memory
    /// even when the ring buffer overflowed.
    pub fn sweep(&mut self) {
        let before = self.procs.len();
        self.procs.retain(|pid, _| procfs::is_alive(*pid));
        self.stats.swept += (before - self.procs.len()) as u64;
    }

    /// Apply one record; returns the event it makes, if it makes one.
    pub fn apply(&mut self, rec: RawRecord) -> Option<Event> {
        let k = rec.hdr.kind;
        match k {
            kind::PROC_FORK => {
                self.fork(&rec);
                None
            }
            kind::PROC_EXIT => self.exit(&rec),
            kind::EXECVE | kind::EXECVEAT => self.exec(rec),
            _ => self.syscall(&rec),
        }
    }

    /// The process `pid` of a record, seeded from /proc (or from the record) if unknown.
    fn ensure(&mut self, h: &Header) -> Arc<Process> {
        if let Some(e) = self.procs.get(&h.pid) {
            return e.proc.clone();
        }
        let proc = self.seed(h.pid, Some(h), 0);
        self.insert(h.pid, proc.clone(), HashMap::new());
        proc
    }

    fn insert(&mut self, pid: u32, proc: Arc<Process>, fds: HashMap<i64, FdEntry>) {
        if self.procs.len() >= self.cfg.max_processes && !self.procs.contains_key(&pid) {
            // Over the bound: forget processes that are gone, then, if still full, any one.
            self.sweep();
            if self.procs.len() >= self.cfg.max_processes
                && let Some(victim) = self.procs.keys().next().copied()
            {
                self.procs.remove(&victim);
                self.stats.dropped_over_limit += 1;
            }
        }
        self.procs.insert(pid, Entry { proc, fds });
    }

    fn seed(&mut self, pid: u32, h: Option<&Header>, depth: usize) -> Arc<Process> {
        self.stats.seeded_from_proc += 1;
        let mut p = procfs::read_process(pid, self.boot_wall_ns).unwrap_or_else(|| {
            // Gone already: what the record says is all there is.
            let mut p = Process {
                pid,
                vpid: pid,
                ..Process::default()
            };
            if let Some(h) = h {
                p.ppid = h.ppid;
                p.name = h.comm.clone();
                p.uid = h.uid;
                p.gid = h.gid;
                p.loginuid = h.loginuid;
                p.tty = h.tty;
                p.cgroup_id = h.cgroup_id;
            }
            p
        });
        if let Some(h) = h {
            p.cgroup_id = h.cgroup_id;
        }
        let ppid = p.ppid;
        if ppid != 0 && ppid != pid {
            p.parent = match self.procs.get(&ppid) {
                Some(e) => Some(e.proc.clone()),
                None if depth < 16 => {
                    let parent = self.seed(ppid, None, depth + 1);
                    self.insert(ppid, parent.clone(), HashMap::new());
                    Some(parent)
                }
                None => None,
            };
        }
        Arc::new(p)
    }

    fn fork(&mut self, rec: &RawRecord) {
        let Some(f) = rec.fork else { return };
        let h = &rec.hdr;
        let parent = self.ensure(h);
        let fds = self
            .procs
            .get(&h.pid)
            .map(|e| e.fds.clone())
            .unwrap_or_default();
        let child = Process {
            pid: f.child_pid,
            ppid: parent.pid,
            vpid: f.child_pid,
            start_ts: self.boot_wall_ns + h.ts_ns,
            parent: Some(parent.clone()),
            ..Process::clone(&parent)
        };
        self.insert(f.child_pid, Arc::new(child), fds);
    }

    fn exit(&mut self, rec: &RawRecord) -> Option<Event> {
        let h = &rec.hdr;
        self.stats.exits += 1;
        let entry = self.procs.remove(&h.pid)?;
        Some(self.event(h, EventType::Procexit, Vec::new(), entry.proc, None))
    }

    /// One exec: a successful one is recorded from inside the exec (path as the kernel has it,
    /// the new program's argument area, its credentials), a failed one at the syscall's exit.
    fn exec(&mut self, rec: RawRecord) -> Option<Event> {
        let h = &rec.hdr;
        let ty = if h.kind == kind::EXECVE {
            EventType::Execve
        } else {
            EventType::Execveat
        };
        let enforce_flags = h.flags & (flags::KILLED | flags::WOULD_KILL);
        let path = rec.path.unwrap_or_default();
        let argv_in = rec.argv.unwrap_or_default();
        let old = self.ensure(h);
        let dirfd = h.args[0] as i32 as i64;
        let dir = if h.kind == kind::EXECVEAT {
            self.dir_of(h.pid, dirfd)
        } else {
            None
        }
        .unwrap_or_else(|| old.cwd.clone());
        // execveat relative to a directory fd: the kernel names the program
        // `/dev/fd/N/NAME`, or `/dev/fd/N` for the fd's own file (AT_EMPTY_PATH, as runc does).
        let fd_rest = if h.kind == kind::EXECVEAT {
            dev_fd_rest(&path, dirfd)
        } else {
            None
        };
        let exepath = match fd_rest {
            Some("") => self
                .fd_file(h.pid, dirfd, h.ret == 0)
                .unwrap_or(dir.clone()),
            Some(rest) => resolve(&dir, rest.trim_start_matches('/')),
            None if path.is_empty() && h.kind == kind::EXECVEAT => self
                .fd_file(h.pid, dirfd, h.ret == 0)
                .unwrap_or(dir.clone()),
            None => resolve(&dir, &path),
        };
        // An exec stopped by enforcement is shown as the program it would have run: that is
        // what the rule matched, and what the alert must name.
        let stopped = enforce_flags & flags::KILLED != 0;
        let proc = if h.ret == 0 || stopped {
            let (cap_eff, cap_prm, vpid) = match rec.exec_info {
                Some(i) if i.vpid != 0 => (i.cap_effective, i.cap_permitted, i.vpid),
                _ => (old.cap_effective, old.cap_permitted, old.vpid),
            };
            let mut argv = argv_in.clone().into_iter();
            let exe = argv.next().unwrap_or_else(|| path.clone());
            let memfd_fd = h.kind == kind::EXECVEAT
                && self
                    .procs
                    .get(&h.pid)
                    .and_then(|e| e.fds.get(&(h.args[0] as i32 as i64)))
                    .is_some_and(|f| f.kind == FdKind::Memfd);
            let p = Arc::new(Process {
                pid: h.pid,
                ppid: if h.ppid != 0 { h.ppid } else { old.ppid },
                vpid,
                name: if h.ret == 0 {
                    h.comm.clone()
                } else {
                    comm_of(&exepath)
                },
                exe,
                exepath: exepath.clone(),
                args: argv.collect(),
                tty: h.tty,
                loginuid: h.loginuid,
                uid: h.uid,
                gid: h.gid,
                exec_ts: self.boot_wall_ns + h.ts_ns,
                exe_from_memfd: memfd_fd || exepath.starts_with("/memfd:"),
                exe_upper_layer: false,
                cap_effective: cap_eff,
                cap_permitted: cap_prm,
                cgroup_id: h.cgroup_id,
                ..Process::clone(&old)
            });
            if let Some(e) = self.procs.get_mut(&h.pid) {
                e.proc = p.clone();
                // close-on-exec fds are gone; the others stay.
                e.fds.retain(|_, f| f.flags & libc::O_CLOEXEC as u32 == 0);
            }
            p
        } else {
            old
        };
        let mut args = vec![
            arg("filename", ArgValue::Path(exepath)),
            arg("exe", ArgValue::Str(proc.exe.clone())),
            arg(
                "args",
                ArgValue::Str(
                    argv_in
                        .iter()
                        .skip(1)
                        .cloned()
                        .collect::<Vec<_>>()
                        .join(" "),
                ),
            ),
            arg("tid", ArgValue::Pid(i64::from(h.tid))),
            arg("pid", ArgValue::Pid(i64::from(h.pid))),
            arg("ptid", ArgValue::Pid(i64::from(proc.ppid))),
            arg("cwd", ArgValue::Str(proc.cwd.clone())),
            arg("comm", ArgValue::Str(h.comm.clone())),
            arg("tty", ArgValue::Uint(u64::from(h.tty))),
            arg("loginuid", ArgValue::Int(loginuid(h.loginuid))),
            arg("uid", ArgValue::Uid(h.uid)),
            arg("gid", ArgValue::Uid(h.gid)),
        ];
        if h.kind == kind::EXECVEAT {
            args.insert(0, arg("dirfd", ArgValue::Fd(h.args[0] as i32 as i64)));
            args.push(arg(
                "flags",
                ArgValue::Flags {
                    raw: h.args[4],
                    names: names::AT_FLAGS,
                },
            ));
        }
        let mut ev = self.event(h, ty, args, proc, None);
        if enforce_flags & flags::KILLED != 0 {
            ev.enforcement = Some(KernelEnforcement::Killed);
        } else if enforce_flags & flags::WOULD_KILL != 0 {
            ev.enforcement = Some(KernelEnforcement::WouldKill);
        }
        ev.enforcement_rule = rec.enforce_rule;
        Some(ev)
    }

    /// The file an exec'd fd stands for: the fd table's name for it, else (after a successful
    /// exec, when the fd may be closed on exec) the new program's /proc/PID/exe.
    fn fd_file(&self, pid: u32, fd: i64, succeeded: bool) -> Option<String> {
        if let Some(f) = self.procs.get(&pid).and_then(|e| e.fds.get(&fd)) {
            return Some(f.name.clone());
        }
        if !succeeded {
            return None;
        }
        std::fs::read_link(format!("/proc/{pid}/exe"))
            .ok()
            .map(|p| {
                p.to_string_lossy()
                    .trim_end_matches(" (deleted)")
                    .to_string()
            })
    }

    /// Directory an `*at` syscall's dirfd stands for (AT_FDCWD: the cwd).
    fn dir_of(&self, pid: u32, dirfd: i64) -> Option<String> {
        let e = self.procs.get(&pid)?;
        if dirfd == AT_FDCWD {
            return Some(e.proc.cwd.clone());
        }
        procfs::fd_target(pid, dirfd).or_else(|| e.fds.get(&dirfd).map(|f| f.name.clone()))
    }

    /// The path of a path argument: absolute, resolved against dirfd (or the cwd).
    fn path_at(&self, pid: u32, dirfd: i64, raw: &str) -> String {
        if raw.starts_with('/') {
            return resolve("/", raw);
        }
        let base = self
            .dir_of(pid, dirfd)
            .or_else(|| self.procs.get(&pid).map(|e| e.proc.cwd.clone()))
            .unwrap_or_else(|| "/".to_string());
        resolve(&base, raw)
    }

    fn fd_info(&self, pid: u32, fd: i64) -> Option<FdInfo> {
        let e = self.procs.get(&pid)?;
        if let Some(f) = e.fds.get(&fd) {
            return Some(fd_info(fd, f, false));
        }
        let target = procfs::fd_target(pid, fd)?;
        let kind = if target.starts_with('/') {
            FdKind::File
        } else if target.starts_with("socket:") {
            FdKind::Unknown
        } else if target.starts_with("pipe:") {
            FdKind::Pipe
        } else if target.starts_with("/memfd:") {
            FdKind::Memfd
        } else {
            FdKind::Unknown
        };
        Some(FdInfo {
            num: fd,
            kind,
            name: target.clone(),
            nameraw: target,
            open_flags: 0,
            tuple: None,
            name_changed: false,
        })
    }

    fn set_fd(&mut self, pid: u32, fd: i64, entry: FdEntry) {
        let max = self.cfg.max_fds_per_process;
        if let Some(e) = self.procs.get_mut(&pid)
            && (e.fds.len() < max || e.fds.contains_key(&fd))
        {
            e.fds.insert(fd, entry);
        }
    }

    fn syscall(&mut self, rec: &RawRecord) -> Option<Event> {
        let h = &rec.hdr;
        let ty = EventType::from_kind(h.kind)?;
        let pid = h.pid;
        self.ensure(h);
        let a = h.args;
        let ret = h.ret;
        let ok = ret >= 0;
        let path = rec.path.clone().unwrap_or_default();
        let path2 = rec.path2.clone().unwrap_or_default();
        let int = |i: usize| a[i] as i64;
        let fd_arg = |i: usize| a[i] as i32 as i64;
        let mut fd: Option<FdInfo> = None;
        let mut args: Vec<Arg> = Vec::with_capacity(6);
        use EventType as T;
        match ty {
            T::Open | T::Openat | T::Openat2 | T::Creat => {
                let dirfd = if matches!(ty, T::Openat | T::Openat2) {
                    fd_arg(0)
                } else {
                    AT_FDCWD
                };
                let (flags, mode) = match ty {
                    T::Open => (a[1], a[2]),
                    T::Openat => (a[2], a[3]),
                    T::Openat2 => rec.open_how.map(|h| (h[0], h[1])).unwrap_or((0, 0)),
                    _ => (0o1101, a[1]), // creat: O_CREAT|O_WRONLY|O_TRUNC
                };
                let name = self.path_at(pid, dirfd, &path);
                let kind = if flags & libc::O_DIRECTORY as u64 != 0 {
                    FdKind::Directory
                } else {
                    FdKind::File
                };
                let entry = FdEntry {
                    kind,
                    name: name.clone(),
                    flags: flags as u32,
                    tuple: None,
                };
                fd = Some(FdInfo {
                    num: if ok { ret } else { -1 },
                    kind,
                    name: name.clone(),
                    nameraw: path.clone(),
                    open_flags: flags as u32,
                    tuple: None,
                    name_changed: true,
                });
                if ok {
                    self.set_fd(pid, ret, entry);
                }
                args.push(arg("fd", ArgValue::Fd(ret)));
                if dirfd != AT_FDCWD || matches!(ty, T::Openat | T::Openat2) {
                    args.push(arg("dirfd", ArgValue::Fd(dirfd)));
                }
                args.push(arg("name", ArgValue::Path(name)));
                args.push(arg(
                    "flags",
                    ArgValue::Flags {
                        raw: flags,
                        names: names::OPEN_FLAGS,
                    },
                ));
                args.push(arg("mode", ArgValue::Mode(mode as u32)));
            }
            T::Chdir => {
                let dir = self.path_at(pid, AT_FDCWD, &path);
                if ok {
                    self.set_cwd(pid, &dir);
                }
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg("path", ArgValue::Path(dir)));
            }
            T::Fchdir => {
                let f = fd_arg(0);
                if ok && let Some(dir) = self.dir_of(pid, f) {
                    self.set_cwd(pid, &dir);
                }
                fd = self.fd_info(pid, f);
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg("fd", ArgValue::Fd(f)));
            }
            T::Unlink | T::Rmdir | T::Mkdir | T::Chmod | T::Chroot | T::Umount2 => {
                let p = self.path_at(pid, AT_FDCWD, &path);
                args.push(arg("res", ArgValue::Int(ret)));
                let name = if matches!(ty, T::Chmod) {
                    "filename"
                } else if matches!(ty, T::Umount2) {
                    "name"
                } else {
                    "path"
                };
                args.push(arg(name, ArgValue::Path(p)));
                match ty {
                    T::Mkdir | T::Chmod => args.push(arg("mode", ArgValue::Mode(a[1] as u32))),
                    T::Umount2 => args.push(arg(
                        "flags",
                        ArgValue::Flags {
                            raw: a[1],
                            names: names::UMOUNT_FLAGS,
                        },
                    )),
                    _ => {}
                }
            }
            T::Unlinkat | T::Mkdirat | T::Fchmodat => {
                let p = self.path_at(pid, fd_arg(0), &path);
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg("dirfd", ArgValue::Fd(fd_arg(0))));
                let name = if matches!(ty, T::Fchmodat) {
                    "filename"
                } else if matches!(ty, T::Mkdirat) {
                    "path"
                } else {
                    "name"
                };
                args.push(arg(name, ArgValue::Path(p)));
                match ty {
                    T::Unlinkat => args.push(arg(
                        "flags",
                        ArgValue::Flags {
                            raw: a[2],
                            names: names::AT_FLAGS,
                        },
                    )),
                    _ => args.push(arg("mode", ArgValue::Mode(a[2] as u32))),
                }
            }
            T::Fchmod => {
                fd = self.fd_info(pid, fd_arg(0));
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg("fd", ArgValue::Fd(fd_arg(0))));
                args.push(arg("mode", ArgValue::Mode(a[1] as u32)));
            }
            T::Rename | T::Link => {
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg(
                    "oldpath",
                    ArgValue::Path(self.path_at(pid, AT_FDCWD, &path)),
                ));
                args.push(arg(
                    "newpath",
                    ArgValue::Path(self.path_at(pid, AT_FDCWD, &path2)),
                ));
            }
            T::Renameat | T::Renameat2 | T::Linkat => {
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg("olddirfd", ArgValue::Fd(fd_arg(0))));
                args.push(arg(
                    "oldpath",
                    ArgValue::Path(self.path_at(pid, fd_arg(0), &path)),
                ));
                args.push(arg("newdirfd", ArgValue::Fd(fd_arg(2))));
                args.push(arg(
                    "newpath",
                    ArgValue::Path(self.path_at(pid, fd_arg(2), &path2)),
                ));
                if !matches!(ty, T::Renameat) {
                    let names = if matches!(ty, T::Linkat) {
                        names::AT_FLAGS
                    } else {
                        names::RENAME_FLAGS
                    };
                    args.push(arg("flags", ArgValue::Flags { raw: a[4], names }));
                }
            }
            T::Symlink => {
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg("target", ArgValue::Str(path.clone())));
                args.push(arg(
                    "linkpath",
                    ArgValue::Path(self.path_at(pid, AT_FDCWD, &path2)),
                ));
            }
            T::Symlinkat => {
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg("target", ArgValue::Str(path.clone())));
                args.push(arg("linkdirfd", ArgValue::Fd(fd_arg(1))));
                args.push(arg(
                    "linkpath",
                    ArgValue::Path(self.path_at(pid, fd_arg(1), &path2)),
                ));
            }
            T::Socket => {
                let domain = a[0];
                let kind = match domain {
                    2 => FdKind::Ipv4,
                    10 => FdKind::Ipv6,
                    1 => FdKind::Unix,
                    16 => FdKind::Netlink,
                    _ => FdKind::Unknown,
                };
                if ok {
                    self.set_fd(
                        pid,
                        ret,
                        FdEntry {
                            kind,
                            name: String::new(),
                            flags: 0,
                            tuple: None,
                        },
                    );
                }
                fd = ok.then(|| FdInfo {
                    num: ret,
                    kind,
                    name: String::new(),
                    nameraw: String::new(),
                    open_flags: 0,
                    tuple: None,
                    name_changed: false,
                });
                args.push(arg("fd", ArgValue::Fd(ret)));
                args.push(arg(
                    "domain",
                    ArgValue::Enum {
                        raw: domain as i64,
                        names: names::SOCKET_FAMILIES,
                    },
                ));
                args.push(arg(
                    "type",
                    ArgValue::Flags {
                        raw: a[1],
                        names: names::SOCKET_TYPES,
                    },
                ));
                args.push(arg("proto", ArgValue::Int(int(2))));
            }
            T::Connect
            | T::Accept
            | T::Accept4
            | T::Bind
            | T::Listen
            | T::Sendto
            | T::Sendmsg
            | T::Recvfrom
            | T::Recvmsg => {
                let sock_fd = if matches!(ty, T::Accept | T::Accept4) {
                    ret
                } else {
                    fd_arg(0)
                };
                let addr = rec.sockaddr.as_deref().and_then(parse_sockaddr);
                let server_side = matches!(ty, T::Accept | T::Accept4 | T::Bind | T::Listen);
                let tuple = rec.tuple.and_then(|t| tuple_of(&t, server_side));
                let known = self.procs.get(&pid).and_then(|e| {
                    e.fds
                        .get(&sock_fd)
                        .or_else(|| e.fds.get(&fd_arg(0)))
                        .cloned()
                });
                let kind = match (&tuple, &addr, &known) {
                    (Some(t), _, _) => {
                        if t.local.0.is_ipv4() {
                            FdKind::Ipv4
                        } else {
                            FdKind::Ipv6
                        }
                    }
                    (_, Some(SockAddr::Unix(_)), _) => FdKind::Unix,
                    (_, Some(SockAddr::Inet { ip, .. }), _) => {
                        if ip.is_ipv4() {
                            FdKind::Ipv4
                        } else {
                            FdKind::Ipv6
                        }
                    }
                    (_, _, Some(k)) => k.kind,
                    _ => FdKind::Unknown,
                };
                let name = match (&tuple, &addr) {
                    (Some(t), _) => tuple_name(t),
                    (None, Some(SockAddr::Unix(p))) => p.clone(),
                    (None, Some(a @ SockAddr::Inet { .. })) if matches!(ty, T::Bind) => {
                        a.to_string()
                    }
                    _ => known.as_ref().map(|k| k.name.clone()).unwrap_or_default(),
                };
                let tuple = tuple.or_else(|| known.as_ref().and_then(|k| k.tuple.clone()));
                let changes = matches!(ty, T::Connect | T::Accept | T::Accept4 | T::Bind);
                if changes && (ok || ret == -(libc::EINPROGRESS as i64)) && sock_fd >= 0 {
                    self.set_fd(
                        pid,
                        sock_fd,
                        FdEntry {
                            kind,
                            name: name.clone(),
                            flags: 0,
                            tuple: tuple.clone(),
                        },
                    );
                }
                fd = Some(FdInfo {
                    num: sock_fd,
                    kind,
                    name,
                    nameraw: String::new(),
                    open_flags: 0,
                    tuple,
                    name_changed: changes,
                });
                match ty {
                    T::Connect => {
                        args.push(arg("res", ArgValue::Int(ret)));
                        if let Some(a) = addr {
                            args.push(arg("addr", ArgValue::SockAddr(a)));
                        }
                        args.push(arg("fd", ArgValue::Fd(sock_fd)));
                    }
                    T::Accept | T::Accept4 => {
                        args.push(arg("fd", ArgValue::Fd(ret)));
                        if let Some(a) = addr {
                            args.push(arg("addr", ArgValue::SockAddr(a)));
                        }
                        if matches!(ty, T::Accept4) {
                            args.push(arg(
                                "flags",
                                ArgValue::Flags {
                                    raw: a[3],
                                    names: names::SOCKET_TYPES,
                                },
                            ));
                        }
                    }
                    T::Bind => {
                        args.push(arg("res", ArgValue::Int(ret)));
                        if let Some(a) = addr {
                            args.push(arg("addr", ArgValue::SockAddr(a)));
                        }
                        args.push(arg("fd", ArgValue::Fd(sock_fd)));
                    }
                    T::Listen => {
                        args.push(arg("res", ArgValue::Int(ret)));
                        args.push(arg("fd", ArgValue::Fd(sock_fd)));
                        args.push(arg("backlog", ArgValue::Int(int(1))));
                    }
                    _ => {
                        args.push(arg("res", ArgValue::Int(ret)));
                        args.push(arg("fd", ArgValue::Fd(sock_fd)));
                        if matches!(ty, T::Sendto | T::Recvfrom) {
                            args.push(arg("size", ArgValue::Uint(a[2])));
                        }
                        if let Some(a) = addr {
                            args.push(arg("addr", ArgValue::SockAddr(a)));
                        }
                    }
                }
            }
            T::Dup | T::Dup2 | T::Dup3 => {
                let old = fd_arg(0);
                let known = self.procs.get(&pid).and_then(|e| e.fds.get(&old).cloned());
                if ok && let Some(k) = known.clone() {
                    self.set_fd(pid, ret, k);
                }
                fd = known
                    .as_ref()
                    .map(|k| fd_info(ret, k, false))
                    .or_else(|| self.fd_info(pid, old));
                args.push(arg("res", ArgValue::Fd(ret)));
                args.push(arg("oldfd", ArgValue::Fd(old)));
                if !matches!(ty, T::Dup) {
                    args.push(arg("newfd", ArgValue::Fd(fd_arg(1))));
                }
                if matches!(ty, T::Dup3) {
                    args.push(arg(
                        "flags",
                        ArgValue::Flags {
                            raw: a[2],
                            names: names::OPEN_FLAGS,
                        },
                    ));
                }
            }
            T::Close => {
                let f = fd_arg(0);
                let known = self.procs.get_mut(&pid).and_then(|e| {
                    if ok {
                        e.fds.remove(&f)
                    } else {
                        e.fds.get(&f).cloned()
                    }
                });
                fd = known.as_ref().map(|k| fd_info(f, k, false));
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg("fd", ArgValue::Fd(f)));
            }
            T::Setuid | T::Setgid => {
                args.push(arg("res", ArgValue::Int(ret)));
                let name = if matches!(ty, T::Setuid) {
                    "uid"
                } else {
                    "gid"
                };
                args.push(arg(name, ArgValue::Uid(a[0] as u32)));
                if ok {
                    self.set_ids(pid, matches!(ty, T::Setuid), a[0] as u32);
                }
            }
            T::Setresuid | T::Setresgid => {
                args.push(arg("res", ArgValue::Int(ret)));
                let u = matches!(ty, T::Setresuid);
                let (r, e, s) = if u {
                    ("ruid", "euid", "suid")
                } else {
                    ("rgid", "egid", "sgid")
                };
                args.push(arg(r, ArgValue::Uid(a[0] as u32)));
                args.push(arg(e, ArgValue::Uid(a[1] as u32)));
                args.push(arg(s, ArgValue::Uid(a[2] as u32)));
                if ok && a[1] as u32 != u32::MAX {
                    self.set_ids(pid, u, a[1] as u32);
                }
            }
            T::Capset => {
                args.push(arg("res", ArgValue::Int(ret)));
                if ok
                    && let Some((eff, prm, _)) = procfs::read_status(pid)
                    && let Some(e) = self.procs.get_mut(&pid)
                {
                    let p = Process {
                        cap_effective: eff,
                        cap_permitted: prm,
                        ..Process::clone(&e.proc)
                    };
                    e.proc = Arc::new(p);
                    args.push(arg("cap_effective", ArgValue::Uint(eff)));
                    args.push(arg("cap_permitted", ArgValue::Uint(prm)));
                }
            }
            T::Ptrace => {
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg(
                    "request",
                    ArgValue::Enum {
                        raw: int(0),
                        names: names::PTRACE_REQUESTS,
                    },
                ));
                args.push(arg("pid", ArgValue::Pid(a[1] as i32 as i64)));
                args.push(arg("addr", ArgValue::Uint(a[2])));
                args.push(arg("data", ArgValue::Uint(a[3])));
            }
            T::Mount => {
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg("dev", ArgValue::Str(path.clone())));
                args.push(arg(
                    "dir",
                    ArgValue::Path(self.path_at(pid, AT_FDCWD, &path2)),
                ));
                args.push(arg(
                    "type",
                    ArgValue::Str(rec.path3.clone().unwrap_or_default()),
                ));
                args.push(arg(
                    "flags",
                    ArgValue::Flags {
                        raw: a[3],
                        names: names::MOUNT_FLAGS,
                    },
                ));
            }
            T::InitModule | T::FinitModule => {
                args.push(arg("res", ArgValue::Int(ret)));
                if matches!(ty, T::FinitModule) {
                    args.push(arg("fd", ArgValue::Fd(fd_arg(0))));
                    fd = self.fd_info(pid, fd_arg(0));
                } else {
                    args.push(arg("length", ArgValue::Uint(a[1])));
                }
                args.push(arg("uargs", ArgValue::Str(path.clone())));
            }
            T::Bpf => {
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg(
                    "cmd",
                    ArgValue::Enum {
                        raw: int(0),
                        names: names::BPF_COMMANDS,
                    },
                ));
            }
            T::MemfdCreate => {
                let name = format!("/memfd:{path}");
                if ok {
                    self.set_fd(
                        pid,
                        ret,
                        FdEntry {
                            kind: FdKind::Memfd,
                            name: name.clone(),
                            flags: a[1] as u32,
                            tuple: None,
                        },
                    );
                    fd = Some(FdInfo {
                        num: ret,
                        kind: FdKind::Memfd,
                        name: name.clone(),
                        nameraw: path.clone(),
                        open_flags: 0,
                        tuple: None,
                        name_changed: true,
                    });
                }
                args.push(arg("fd", ArgValue::Fd(ret)));
                args.push(arg("name", ArgValue::Str(path.clone())));
                args.push(arg(
                    "flags",
                    ArgValue::Flags {
                        raw: a[1],
                        names: names::MEMFD_FLAGS,
                    },
                ));
            }
            T::Setns => {
                fd = self.fd_info(pid, fd_arg(0));
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg("fd", ArgValue::Fd(fd_arg(0))));
                args.push(arg(
                    "nstype",
                    ArgValue::Flags {
                        raw: a[1],
                        names: names::CLONE_FLAGS,
                    },
                ));
            }
            T::Unshare => {
                args.push(arg("res", ArgValue::Int(ret)));
                args.push(arg(
                    "flags",
                    ArgValue::Flags {
                        raw: a[0],
                        names: names::CLONE_FLAGS,
                    },
                ));
            }
            T::Userfaultfd => {
                if ok {
                    fd = Some(FdInfo {
                        num: ret,
                        kind: FdKind::Userfaultfd,
                        name: String::new(),
                        nameraw: String::new(),
                        open_flags: 0,
                        tuple: None,
                        name_changed: false,
                    });
                }
                args.push(arg("res", ArgValue::Fd(ret)));
                args.push(arg(
                    "flags",
                    ArgValue::Flags {
                        raw: a[0],
                        names: names::USERFAULTFD_FLAGS,
                    },
                ));
            }
            T::Clone | T::Clone3 | T::Fork | T::Vfork => {
                let flags = match ty {
                    T::Clone => a[0],
                    T::Clone3 => rec
                        .raw
                        .as_deref()
                        .and_then(|r| r.get(..8))
                        .and_then(|b| b.try_into().ok())
                        .map(u64::from_ne_bytes)
                        .unwrap_or(0),
                    T::Vfork => 0x4100, // CLONE_VM|CLONE_VFORK
                    _ => 0,
                };
                args.push(arg("res", ArgValue::Pid(ret)));
                args.push(arg(
                    "flags",
                    ArgValue::Flags {
                        raw: flags,
                        names: names::CLONE_FLAGS,
                    },
                ));
            }
            T::Execve | T::Execveat | T::Procexit => return None,
        }
        let proc = self.procs.get(&pid)?.proc.clone();
        Some(self.event(h, ty, args, proc, fd))
    }

    fn set_cwd(&mut self, pid: u32, dir: &str) {
        if let Some(e) = self.procs.get_mut(&pid) {
            let p = Process {
                cwd: procfs::with_slash(dir),
                ..Process::clone(&e.proc)
            };
            e.proc = Arc::new(p);
        }
    }

    fn set_ids(&mut self, pid: u32, uid: bool, id: u32) {
        if let Some(e) = self.procs.get_mut(&pid) {
            let mut p = Process::clone(&e.proc);
            if uid {
                p.uid = id;
            } else {
                p.gid = id;
            }
            e.proc = Arc::new(p);
        }
    }

    fn event(
        &mut self,
        h: &Header,
        ty: EventType,
        args: Vec<Arg>,
        process: Arc<Process>,
        fd: Option<FdInfo>,
    ) -> Event {
        self.seq += 1;
        // A task can move to another cgroup (runc joins a container's cgroup before exec).
        let process = if h.cgroup_id != 0 && process.cgroup_id != h.cgroup_id {
            let p = Arc::new(Process {
                cgroup_id: h.cgroup_id,
                ..Process::clone(&process)
            });
            if let Some(e) = self.procs.get_mut(&h.pid) {
                e.proc = p.clone();
            }
            p
        } else {
            process
        };
        let loginuid = loginuid(h.loginuid);
        let user = UserInfo {
            uid: h.uid,
            name: self.users.user(h.uid),
            gid: h.gid,
            group: self.users.group(h.gid),
            loginuid,
            loginname: if loginuid < 0 {
                Arc::from("<NA>")
            } else {
                self.users.user(loginuid as u32)
            },
        };
        let enforcement = if h.flags & flags::KILLED != 0 {
            Some(KernelEnforcement::Killed)
        } else if h.flags & flags::WOULD_KILL != 0 {
            Some(KernelEnforcement::WouldKill)
        } else {
            None
        };
        Event {
            num: self.seq,
            ts: self.boot_wall_ns + h.ts_ns,
            latency_ns: h.latency_ns,
            ty,
            cpu: h.cpu,
            res: h.ret,
            args,
            tid: h.tid,
            process,
            fd,
            user,
            container: ContainerInfo::host(),
            enforcement,
            enforcement_rule: None,
        }
    }
}

/// The kernel's comm for a program path: its last component, cut to 15 bytes.
fn comm_of(path: &str) -> String {
    let base = path.rsplit('/').next().unwrap_or(path);
    let mut end = base.len().min(15);
    while !base.is_char_boundary(end) {
        end -= 1;
    }
    base[..end].to_string()
}

fn arg(name: &'static str, value: ArgValue) -> Arg {
    Arg { name, value }
}

fn loginuid(raw: u32) -> i64 {
    if raw == u32::MAX { -1 } else { i64::from(raw) }
}

/// What follows `/dev/fd/FD` in `path` (empty, or `/NAME`), when `path` names that fd.
fn dev_fd_rest(path: &str, fd: i64) -> Option<&str> {
    let rest = path.strip_prefix("/dev/fd/")?;
    let end = rest.find('/').unwrap_or(rest.len());
    (rest[..end].parse::<i64>().ok()? == fd).then(|| &rest[end..])
}

fn fd_info(num: i64, f: &FdEntry, name_changed: bool) -> FdInfo {
    FdInfo {
        num,
        kind: f.kind,
        name: f.name.clone(),
        nameraw: f.name.clone(),
        open_flags: f.flags,
        tuple: f.tuple.clone(),
        name_changed,
    }
}

/// A `struct sockaddr` as the task passed it.
pub fn parse_sockaddr(b: &[u8]) -> Option<SockAddr> {
    let family = u16::from_ne_bytes(b.get(..2)?.try_into().ok()?);
    match family {
        1 => {
            let path = b.get(2..)?;
            // Abstract sockets start with a NUL; Falco shows them with a leading '@'.
            let s = if path.first() == Some(&0) {
                let rest = &path[1..];
                let end = rest.iter().position(|&c| c == 0).unwrap_or(rest.len());
                format!("@{}", String::from_utf8_lossy(&rest[..end]))
            } else {
                let end = path.iter().position(|&c| c == 0).unwrap_or(path.len());
                String::from_utf8_lossy(&path[..end]).into_owned()
            };
            Some(SockAddr::Unix(s))
        }
        2 => {
            let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
            let ip: [u8; 4] = b.get(4..8)?.try_into().ok()?;
            Some(SockAddr::Inet {
                ip: IpAddr::V4(Ipv4Addr::from(ip)),
                port,
            })
        }
        10 => {
            let port = u16::from_be_bytes(b.get(2..4)?.try_into().ok()?);
            let ip: [u8; 16] = b.get(8..24)?.try_into().ok()?;
            Some(SockAddr::Inet {
                ip: IpAddr::V6(Ipv6Addr::from(ip)),
                port,
            })
        }
        f => Some(SockAddr::Other(f)),
    }
}

fn tuple_of(t: &SockTuple, local_is_server: bool) -> Option<SocketTuple> {
    let (local, remote) = match t.family {
        2 => {
            let l: [u8; 4] = t.laddr[..4].try_into().ok()?;
            let r: [u8; 4] = t.raddr[..4].try_into().ok()?;
            (IpAddr::V4(l.into()), IpAddr::V4(r.into()))
        }
        10 => {
            let l = Ipv6Addr::from(t.laddr);
            let r = Ipv6Addr::from(t.raddr);
            // v4-mapped addresses are shown as IPv4, as Falco does.
            let map = |a: Ipv6Addr| a.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(a));
            (map(l), map(r))
        }
        _ => return None,
    };
    let proto = match (t.protocol, t.sock_type) {
        (6, _) | (_, 1) => L4Proto::Tcp,
        (17, _) | (_, 2) => L4Proto::Udp,
        (1, _) | (58, _) => L4Proto::Icmp,
        (_, 3) => L4Proto::Raw,
        _ => L4Proto::Unknown,
    };
    Some(SocketTuple {
        proto,
        local: (local, t.lport),
        remote: (remote, t.rport),
        local_is_server,
    })
}

/// `fd.name` of an inet socket: `client:port->server:port`.
fn tuple_name(t: &SocketTuple) -> String {
    let (c, s) = (t.client(), t.server());
    let fmt = |(ip, port): (IpAddr, u16)| match ip {
        IpAddr::V6(v6) => format!("[{v6}]:{port}"),
        IpAddr::V4(v4) => format!("{v4}:{port}"),
    };
    format!("{}->{}", fmt(c), fmt(s))
}
