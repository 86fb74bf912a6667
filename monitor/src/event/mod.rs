//! The typed event: what one syscall (entry and exit joined) or one scheduler event looks like
//! once decoded and enriched. Every later stage (rules, enforcement reports, `monitor trace`)
//! reads this plain data; none of them sees eBPF records.

use std::fmt;
use std::net::IpAddr;
use std::sync::Arc;

pub mod decode;
pub mod names;

use crate::container::ContainerInfo;
use crate::process::Process;

/// Event types, named as Falco names them in `evt.type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[repr(u16)]
pub enum EventType {
    Execve,
    Execveat,
    Clone,
    Clone3,
    Fork,
    Vfork,
    Chdir,
    Fchdir,
    Procexit,
    Open,
    Openat,
    Openat2,
    Creat,
    Unlink,
    Unlinkat,
    Rename,
    Renameat,
    Renameat2,
    Mkdir,
    Mkdirat,
    Rmdir,
    Chmod,
    Fchmod,
    Fchmodat,
    Link,
    Linkat,
    Symlink,
    Symlinkat,
    Socket,
    Connect,
    Accept,
    Accept4,
    Bind,
    Listen,
    Sendto,
    Sendmsg,
    Recvfrom,
    Recvmsg,
    Dup,
    Dup2,
    Dup3,
    Close,
    Setuid,
    Setgid,
    Setresuid,
    Setresgid,
    Capset,
    Ptrace,
    Mount,
    Umount2,
    InitModule,
    FinitModule,
    Bpf,
    MemfdCreate,
    Setns,
    Unshare,
    Userfaultfd,
    Chroot,
}

impl EventType {
    /// Every event type, in declaration order.
    pub const ALL: &'static [EventType] = &[
        Self::Execve,
        Self::Execveat,
        Self::Clone,
        Self::Clone3,
        Self::Fork,
        Self::Vfork,
        Self::Chdir,
        Self::Fchdir,
        Self::Procexit,
        Self::Open,
        Self::Openat,
        Self::Openat2,
        Self::Creat,
        Self::Unlink,
        Self::Unlinkat,
        Self::Rename,
        Self::Renameat,
        Self::Renameat2,
        Self::Mkdir,
        Self::Mkdirat,
        Self::Rmdir,
        Self::Chmod,
        Self::Fchmod,
        Self::Fchmodat,
        Self::Link,
        Self::Linkat,
        Self::Symlink,
        Self::Symlinkat,
        Self::Socket,
        Self::Connect,
        Self::Accept,
        Self::Accept4,
        Self::Bind,
        Self::Listen,
        Self::Sendto,
        Self::Sendmsg,
        Self::Recvfrom,
        Self::Recvmsg,
        Self::Dup,
        Self::Dup2,
        Self::Dup3,
        Self::Close,
        Self::Setuid,
        Self::Setgid,
        Self::Setresuid,
        Self::Setresgid,
        Self::Capset,
        Self::Ptrace,
        Self::Mount,
        Self::Umount2,
        Self::InitModule,
        Self::FinitModule,
        Self::Bpf,
        Self::MemfdCreate,
        Self::Setns,
        Self::Unshare,
        Self::Userfaultfd,
        Self::Chroot,
    ];

    /// Falco's name (`evt.type`).
    pub fn name(self) -> &'static str {
        use EventType::*;
        match self {
            Execve => "execve",
            Execveat => "execveat",
            Clone => "clone",
            Clone3 => "clone3",
            Fork => "fork",
            Vfork => "vfork",
            Chdir => "chdir",
            Fchdir => "fchdir",
            Procexit => "procexit",
            Open => "open",
            Openat => "openat",
            Openat2 => "openat2",
            Creat => "creat",
            Unlink => "unlink",
            Unlinkat => "unlinkat",
            Rename => "rename",
            Renameat => "renameat",
            Renameat2 => "renameat2",
            Mkdir => "mkdir",
            Mkdirat => "mkdirat",
            Rmdir => "rmdir",
            Chmod => "chmod",
            Fchmod => "fchmod",
            Fchmodat => "fchmodat",
            Link => "link",
            Linkat => "linkat",
            Symlink => "symlink",
            Symlinkat => "symlinkat",
            Socket => "socket",
            Connect => "connect",
            Accept => "accept",
            Accept4 => "accept4",
            Bind => "bind",
            Listen => "listen",
            Sendto => "sendto",
            Sendmsg => "sendmsg",
            Recvfrom => "recvfrom",
            Recvmsg => "recvmsg",
            Dup => "dup",
            Dup2 => "dup2",
            Dup3 => "dup3",
            Close => "close",
            Setuid => "setuid",
            Setgid => "setgid",
            Setresuid => "setresuid",
            Setresgid => "setresgid",
            Capset => "capset",
            Ptrace => "ptrace",
            Mount => "mount",
            Umount2 => "umount2",
            InitModule => "init_module",
            FinitModule => "finit_module",
            Bpf => "bpf",
            MemfdCreate => "memfd_create",
            Setns => "setns",
            Unshare => "unshare",
            Userfaultfd => "userfaultfd",
            Chroot => "chroot",
        }
    }

    /// The event type Falco calls `name`, if this monitor captures it.
    pub fn from_name(name: &str) -> Option<EventType> {
        // `umount` is what older Falco rules call umount2.
        if name == "umount" {
            return Some(EventType::Umount2);
        }
        Self::ALL.iter().copied().find(|t| t.name() == name)
    }

    /// Index into dense per-type tables.
    pub fn index(self) -> usize {
        self as usize
    }

    /// The kernel record kind that carries this event type.
    pub fn kind(self) -> u16 {
        use EventType::*;
        use monitor_common::kind as k;
        match self {
            Execve => k::EXECVE,
            Execveat => k::EXECVEAT,
            Clone => k::CLONE,
            Clone3 => k::CLONE3,
            Fork => k::FORK,
            Vfork => k::VFORK,
            Chdir => k::CHDIR,
            Fchdir => k::FCHDIR,
            Procexit => k::PROC_EXIT,
            Open => k::OPEN,
            Openat => k::OPENAT,
            Openat2 => k::OPENAT2,
            Creat => k::CREAT,
            Unlink => k::UNLINK,
            Unlinkat => k::UNLINKAT,
            Rename => k::RENAME,
            Renameat => k::RENAMEAT,
            Renameat2 => k::RENAMEAT2,
            Mkdir => k::MKDIR,
            Mkdirat => k::MKDIRAT,
            Rmdir => k::RMDIR,
            Chmod => k::CHMOD,
            Fchmod => k::FCHMOD,
            Fchmodat => k::FCHMODAT,
            Link => k::LINK,
            Linkat => k::LINKAT,
            Symlink => k::SYMLINK,
            Symlinkat => k::SYMLINKAT,
            Socket => k::SOCKET,
            Connect => k::CONNECT,
            Accept => k::ACCEPT,
            Accept4 => k::ACCEPT4,
            Bind => k::BIND,
            Listen => k::LISTEN,
            Sendto => k::SENDTO,
            Sendmsg => k::SENDMSG,
            Recvfrom => k::RECVFROM,
            Recvmsg => k::RECVMSG,
            Dup => k::DUP,
            Dup2 => k::DUP2,
            Dup3 => k::DUP3,
            Close => k::CLOSE,
            Setuid => k::SETUID,
            Setgid => k::SETGID,
            Setresuid => k::SETRESUID,
            Setresgid => k::SETRESGID,
            Capset => k::CAPSET,
            Ptrace => k::PTRACE,
            Mount => k::MOUNT,
            Umount2 => k::UMOUNT2,
            InitModule => k::INIT_MODULE,
            FinitModule => k::FINIT_MODULE,
            Bpf => k::BPF,
            MemfdCreate => k::MEMFD_CREATE,
            Setns => k::SETNS,
            Unshare => k::UNSHARE,
            Userfaultfd => k::USERFAULTFD,
            Chroot => k::CHROOT,
        }
    }

    /// The event type of a kernel record kind.
    pub fn from_kind(kind: u16) -> Option<EventType> {
        Self::ALL.iter().copied().find(|t| t.kind() == kind)
    }

    /// Falco's event category (`evt.category`).
    pub fn category(self) -> &'static str {
        use EventType::*;
        match self {
            Execve | Execveat | Clone | Clone3 | Fork | Vfork | Procexit | Chdir | Fchdir
            | Setuid | Setgid | Setresuid | Setresgid | Capset | Ptrace | Setns | Unshare
            | Chroot => "process",
            Open | Openat | Openat2 | Creat | Unlink | Unlinkat | Rename | Renameat | Renameat2
            | Mkdir | Mkdirat | Rmdir | Chmod | Fchmod | Fchmodat | Link | Linkat | Symlink
            | Symlinkat | Dup | Dup2 | Dup3 | Close | MemfdCreate | Userfaultfd => "file",
            Socket | Connect | Accept | Accept4 | Bind | Listen => "net",
            Sendto | Sendmsg | Recvfrom | Recvmsg => "IO",
            Mount | Umount2 | InitModule | FinitModule | Bpf => "system",
        }
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One argument's value, typed the way Falco's event table types it.
#[derive(Clone, Debug, PartialEq)]
pub enum ArgValue {
    Int(i64),
    Uint(u64),
    /// A file descriptor number.
    Fd(i64),
    /// A process or thread id.
    Pid(i64),
    /// A string or path as the task passed it.
    Str(String),
    /// A path made absolute (Falco's `PT_FSPATH`/`PT_FSRELPATH` after resolution).
    Path(String),
    /// A bit set with its symbolic names (rendered `O_RDONLY|O_CLOEXEC`).
    Flags {
        raw: u64,
        names: &'static [(u64, &'static str)],
    },
    /// A value out of an enumeration (ptrace request, socket domain...).
    Enum {
        raw: i64,
        names: &'static [(u64, &'static str)],
    },
    /// File mode bits, rendered in octal as Falco does (`0755`).
    Mode(u32),
    /// A socket address or tuple, rendered as Falco does (`1.2.3.4:80`, `/run/x.sock`).
    SockAddr(SockAddr),
    /// A user or group id.
    Uid(u32),
    /// Raw bytes (`PT_BYTEBUF`).
    Bytes(Vec<u8>),
}

impl ArgValue {
    /// Falco's rendering of the value (what `evt.arg.NAME` and `evt.args` show).
    pub fn render(&self) -> String {
        match self {
            ArgValue::Int(v) | ArgValue::Fd(v) | ArgValue::Pid(v) => v.to_string(),
            ArgValue::Uint(v) => v.to_string(),
            ArgValue::Str(s) | ArgValue::Path(s) => s.clone(),
            ArgValue::Flags { raw, names } => render_flags(*raw, names),
            ArgValue::Enum { raw, names } => names
                .iter()
                .find(|(v, _)| *v as i64 == *raw)
                .map(|(_, n)| (*n).to_string())
                .unwrap_or_else(|| raw.to_string()),
            ArgValue::Mode(0) => "0".to_string(),
            ArgValue::Mode(m) => format!("0{m:o}"),
            ArgValue::SockAddr(a) => a.to_string(),
            ArgValue::Uid(u) => u.to_string(),
            ArgValue::Bytes(b) => String::from_utf8_lossy(b).into_owned(),
        }
    }

    /// The value as a number, when it is one (for numeric comparisons).
    pub fn as_i64(&self) -> Option<i64> {
        match self {
            ArgValue::Int(v) | ArgValue::Fd(v) | ArgValue::Pid(v) => Some(*v),
            ArgValue::Uint(v) => i64::try_from(*v).ok(),
            ArgValue::Flags { raw, .. } => i64::try_from(*raw).ok(),
            ArgValue::Enum { raw, .. } => Some(*raw),
            ArgValue::Mode(m) => Some(i64::from(*m)),
            ArgValue::Uid(u) => Some(i64::from(*u)),
            _ => None,
        }
    }
}

/// `A|B|C` of the names whose bits are set; a zero value renders as the name of 0 if the table
/// has one (O_RDONLY), else `0`.
pub fn render_flags(raw: u64, names: &[(u64, &str)]) -> String {
    let mut out = String::new();
    let mut rest = raw;
    for (bit, name) in names {
        if *bit == 0 {
            if raw == 0 {
                return (*name).to_string();
            }
            continue;
        }
        if raw & bit == *bit {
            if !out.is_empty() {
                out.push('|');
            }
            out.push_str(name);
            rest &= !bit;
        }
    }
    if rest != 0 {
        if !out.is_empty() {
            out.push('|');
        }
        out.push_str(&format!("0x{rest:x}"));
    }
    if out.is_empty() {
        out.push('0');
    }
    out
}

/// One named argument of an event, in Falco's order for that event type.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub name: &'static str,
    pub value: ArgValue,
}

/// A socket address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum SockAddr {
    Inet { ip: IpAddr, port: u16 },
    Unix(String),
    Other(u16),
}

impl fmt::Display for SockAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            SockAddr::Inet { ip, port } => write!(f, "{ip}:{port}"),
            SockAddr::Unix(p) => f.write_str(p),
            SockAddr::Other(family) => write!(f, "family {family}"),
        }
    }
}

/// Layer-4 protocol of a socket.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum L4Proto {
    Tcp,
    Udp,
    Icmp,
    Raw,
    Unknown,
}

impl L4Proto {
    /// Falco's `fd.l4proto` value.
    pub fn name(self) -> &'static str {
        match self {
            L4Proto::Tcp => "tcp",
            L4Proto::Udp => "udp",
            L4Proto::Icmp => "icmp",
            L4Proto::Raw => "raw",
            L4Proto::Unknown => "<NA>",
        }
    }
}

/// The connection tuple of an inet socket: client and server as Falco sees them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketTuple {
    pub proto: L4Proto,
    /// Local side of the socket in the task doing the syscall.
    pub local: (IpAddr, u16),
    /// Remote side.
    pub remote: (IpAddr, u16),
    /// True when the local side is the server (accepted connection, or a listening socket).
    pub local_is_server: bool,
}

impl SocketTuple {
    pub fn client(&self) -> (IpAddr, u16) {
        if self.local_is_server {
            self.remote
        } else {
            self.local
        }
    }
    pub fn server(&self) -> (IpAddr, u16) {
        if self.local_is_server {
            self.local
        } else {
            self.remote
        }
    }
}

/// Falco's fd types (`fd.type`) with their one-letter forms (`fd.typechar`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FdKind {
    File,
    Directory,
    Ipv4,
    Ipv6,
    Unix,
    Pipe,
    Event,
    Signalfd,
    Eventpoll,
    Inotify,
    Timerfd,
    Netlink,
    Bpf,
    Userfaultfd,
    Memfd,
    Unknown,
}

impl FdKind {
    /// `fd.type`.
    pub fn name(self) -> &'static str {
        match self {
            FdKind::File => "file",
            FdKind::Directory => "directory",
            FdKind::Ipv4 => "ipv4",
            FdKind::Ipv6 => "ipv6",
            FdKind::Unix => "unix",
            FdKind::Pipe => "pipe",
            FdKind::Event => "event",
            FdKind::Signalfd => "signalfd",
            FdKind::Eventpoll => "eventpoll",
            FdKind::Inotify => "inotify",
            FdKind::Timerfd => "timerfd",
            FdKind::Netlink => "netlink",
            FdKind::Bpf => "bpf",
            FdKind::Userfaultfd => "userfaultfd",
            FdKind::Memfd => "memfd",
            FdKind::Unknown => "<NA>",
        }
    }

    /// `fd.typechar`.
    pub fn typechar(self) -> char {
        match self {
            FdKind::File => 'f',
            FdKind::Directory => 'd',
            FdKind::Ipv4 => '4',
            FdKind::Ipv6 => '6',
            FdKind::Unix => 'u',
            FdKind::Pipe => 'p',
            FdKind::Event => 'e',
            FdKind::Signalfd => 's',
            FdKind::Eventpoll => 'l',
            FdKind::Inotify => 'i',
            FdKind::Timerfd => 't',
            FdKind::Netlink => 'n',
            FdKind::Bpf => 'b',
            FdKind::Userfaultfd => 'u',
            FdKind::Memfd => 'm',
            FdKind::Unknown => 'o',
        }
    }
}

/// What the event's file descriptor is: the fd an open returned, the socket of a connect, the
/// fd a close closes. Plain data, copied out of the process's fd table.
#[derive(Clone, Debug, PartialEq)]
pub struct FdInfo {
    /// `fd.num`; -1 when the syscall failed to produce one.
    pub num: i64,
    pub kind: FdKind,
    /// `fd.name`: absolute path, or the tuple `cip:cport->sip:sport`, or the unix path.
    pub name: String,
    /// `fd.nameraw`: the path as the task passed it, before resolution.
    pub nameraw: String,
    /// Flags the fd was opened with (O_*), for `evt.is_open_*` and `fd.open_flags`-like checks.
    pub open_flags: u32,
    /// Inet tuple, when the fd is a connected or accepted inet socket.
    pub tuple: Option<SocketTuple>,
    /// True when the event changed the fd's name (open, connect, accept...): `fd.name_changed`.
    pub name_changed: bool,
}

impl FdInfo {
    /// `fd.directory`: the directory part of a file path (the path itself for a directory).
    pub fn directory(&self) -> Option<&str> {
        match self.kind {
            FdKind::Directory => Some(self.name.as_str()),
            FdKind::File | FdKind::Memfd => Some(match self.name.rfind('/') {
                Some(0) => "/",
                Some(i) => &self.name[..i],
                None => "",
            }),
            _ => None,
        }
    }

    /// `fd.filename`: the last component of a file path.
    pub fn filename(&self) -> Option<&str> {
        match self.kind {
            FdKind::File | FdKind::Directory | FdKind::Memfd => Some(match self.name.rfind('/') {
                Some(i) => &self.name[i + 1..],
                None => self.name.as_str(),
            }),
            _ => None,
        }
    }
}

/// User and group names, resolved once per uid by the enrichment stage.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct UserInfo {
    pub uid: u32,
    /// `user.name`; `<NA>` when unknown.
    pub name: Arc<str>,
    pub gid: u32,
    /// `group.name`.
    pub group: Arc<str>,
    /// `user.loginuid`; -1 when unset, as Falco shows it.
    pub loginuid: i64,
    /// `user.loginname`.
    pub loginname: Arc<str>,
}

/// One event, entry and exit joined, enriched with the process, its fd and its container.
#[derive(Clone, Debug)]
pub struct Event {
    /// `evt.num`: sequence number, counting from 1 since the monitor started.
    pub num: u64,
    /// `evt.time`: wall-clock time of the syscall's exit, nanoseconds since the Unix epoch.
    pub ts: u64,
    /// Duration of the syscall.
    pub latency_ns: u64,
    pub ty: EventType,
    /// CPU the record was read from (0 when unknown).
    pub cpu: u32,
    /// `evt.rawres`: the raw return value.
    pub res: i64,
    /// Arguments in Falco's order for this event type.
    pub args: Vec<Arg>,
    /// Thread id (`thread.tid`).
    pub tid: u32,
    /// The process (thread group) doing the syscall, as the process table knows it after this
    /// event (so an exec shows the new program).
    pub process: Arc<Process>,
    /// The fd the event concerns, when there is one.
    pub fd: Option<FdInfo>,
    /// Credentials of the thread at the time of the syscall.
    pub user: UserInfo,
    pub container: Arc<ContainerInfo>,
    /// Set when the kernel killed the task because of an enforcing rule, or would have (dry
    /// run): the rule's index in the enforcement tables.
    pub enforcement: Option<KernelEnforcement>,
    /// The kernel's enforcement table entry that matched (see `enforce`), with `enforcement`.
    pub enforcement_rule: Option<u32>,
}

/// What the kernel did about the event for enforcement.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum KernelEnforcement {
    Killed,
    WouldKill,
}

impl Event {
    /// An event of `ty` with nothing known: no arguments, an empty process, the host. For
    /// evaluating conditions on hypothetical events (enforcement facts, capture filters) and
    /// for tests to fill in.
    pub fn blank(ty: EventType) -> Event {
        Event {
            num: 0,
            ts: 0,
            latency_ns: 0,
            ty,
            cpu: 0,
            res: 0,
            args: Vec::new(),
            tid: 0,
            process: Arc::new(Process::default()),
            fd: None,
            user: UserInfo::default(),
            container: ContainerInfo::host(),
            enforcement: None,
            enforcement_rule: None,
        }
    }

    /// The argument called `name` (`evt.arg.NAME`).
    pub fn arg(&self, name: &str) -> Option<&ArgValue> {
        self.args.iter().find(|a| a.name == name).map(|a| &a.value)
    }

    /// The argument at `index` (`evt.arg[N]`).
    pub fn arg_at(&self, index: usize) -> Option<&ArgValue> {
        self.args.get(index).map(|a| &a.value)
    }

    /// `evt.args`: all arguments as `name=value` pairs, space separated, as Falco prints them.
    pub fn args_string(&self) -> String {
        let mut out = String::new();
        for a in &self.args {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(a.name);
            out.push('=');
            out.push_str(&a.value.render());
        }
        out
    }

    /// `evt.res`: `SUCCESS` or the errno's name for a negative return (`ENOENT`), as Falco does;
    /// for syscalls that return a value (an fd, a pid) Falco shows the number.
    pub fn res_string(&self) -> String {
        if self.res < 0 {
            errno_name(-self.res)
                .map(str::to_string)
                .unwrap_or_else(|| self.res.to_string())
        } else if self.res == 0 {
            "SUCCESS".to_string()
        } else {
            self.res.to_string()
        }
    }

    /// True when the open flags ask for reading (`evt.is_open_read`).
    pub fn is_open_read(&self) -> bool {
        self.open_flags()
            .is_some_and(|f| f & libc::O_ACCMODE as u32 != libc::O_WRONLY as u32)
    }

    /// True when the open flags ask for writing (`evt.is_open_write`).
    pub fn is_open_write(&self) -> bool {
        self.open_flags().is_some_and(|f| {
            let acc = f & libc::O_ACCMODE as u32;
            acc == libc::O_WRONLY as u32 || acc == libc::O_RDWR as u32
        })
    }

    /// The O_* flags of an open-family event.
    pub fn open_flags(&self) -> Option<u32> {
        use EventType::*;
        match self.ty {
            Open | Openat | Openat2 | Creat => match self.arg("flags") {
                Some(ArgValue::Flags { raw, .. }) => Some(*raw as u32),
                _ => None,
            },
            _ => None,
        }
    }
}

/// The symbolic name of an errno value.
pub fn errno_name(errno: i64) -> Option<&'static str> {
    let name = match errno as i32 {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::ENXIO => "ENXIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENODEV => "ENODEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ENOTTY => "ENOTTY",
        libc::ETXTBSY => "ETXTBSY",
        libc::EFBIG => "EFBIG",
        libc::ENOSPC => "ENOSPC",
        libc::ESPIPE => "ESPIPE",
        libc::EROFS => "EROFS",
        libc::EMLINK => "EMLINK",
        libc::EPIPE => "EPIPE",
        libc::ERANGE => "ERANGE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ENOTEMPTY => "ENOTEMPTY",
        libc::ELOOP => "ELOOP",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::EISCONN => "EISCONN",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EALREADY => "EALREADY",
        libc::EINPROGRESS => "EINPROGRESS",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        _ => return None,
    };
    Some(name)
}
