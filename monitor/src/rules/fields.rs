//! The field registry: every field a condition or an output may name, declared as data (name,
//! type, description, whether the capture side provides it, how to read it from an `Event`).
//! Conditions, outputs, `monitor trace` and `monitor rules check` all read this one table.

use std::borrow::Cow;
use std::net::IpAddr;
use std::sync::OnceLock;

use crate::event::{ArgValue, Event, FdKind};
use crate::process::Process;

/// Falco's field types, as far as comparisons care.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    Str,
    /// Signed integers (PT_INT64 and friends).
    Int,
    /// Unsigned integers (PT_UINT32, PT_UINT64).
    Uint,
    Port,
    Bool,
    IpAddr,
    /// Filter-only network fields: compared with CIDR values (`fd.net`, `fd.snet`...).
    IpNet,
    /// Nanoseconds since the epoch.
    AbsTime,
    /// A duration in nanoseconds.
    RelTime,
    Bytes,
}

impl FieldType {
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Str => "string",
            FieldType::Int => "int64",
            FieldType::Uint => "uint64",
            FieldType::Port => "port",
            FieldType::Bool => "bool",
            FieldType::IpAddr => "ipaddr",
            FieldType::IpNet => "ipnet",
            FieldType::AbsTime => "abstime",
            FieldType::RelTime => "reltime",
            FieldType::Bytes => "bytebuf",
        }
    }

    pub fn is_numeric(self) -> bool {
        matches!(
            self,
            FieldType::Int
                | FieldType::Uint
                | FieldType::Port
                | FieldType::AbsTime
                | FieldType::RelTime
        )
    }
}

/// Whether a field takes an argument in `[...]` (or, for `evt.arg.NAME`, after a dot).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ArgSpec {
    None,
    /// `proc.aname` or `proc.aname[N]`.
    OptionalIndex,
    /// `proc.env` or `proc.env[NAME]`.
    OptionalKey,
    /// `k8s.pod.label[KEY]`, `evt.arg[N]`/`evt.arg.NAME`.
    RequiredKey,
}

/// The parsed argument of a field reference.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum FieldArg {
    None,
    Index(usize),
    Key(String),
}

/// A value read out of an event. Borrowed where the event holds it as is, so that evaluation
/// on the no-match path does not allocate.
#[derive(Clone, Debug, PartialEq)]
pub enum Value<'a> {
    Missing,
    Str(Cow<'a, str>),
    Int(i64),
    Uint(u64),
    Bool(bool),
    Ip(IpAddr),
    Bytes(Cow<'a, [u8]>),
    /// Fields with several values (`proc.aname`, `fd.ip`): a check holds if it holds for one.
    Many(Vec<Value<'a>>),
}

impl Value<'_> {
    /// The value as Falco prints it in outputs; `<NA>` when missing.
    pub fn render(&self, out: &mut String) {
        use std::fmt::Write;
        match self {
            Value::Missing => out.push_str("<NA>"),
            Value::Str(s) => out.push_str(s),
            Value::Int(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Uint(v) => {
                let _ = write!(out, "{v}");
            }
            Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            Value::Ip(ip) => {
                let _ = write!(out, "{ip}");
            }
            Value::Bytes(b) => out.push_str(&String::from_utf8_lossy(b)),
            Value::Many(vs) => {
                for (i, v) in vs.iter().enumerate() {
                    if i > 0 {
                        out.push(' ');
                    }
                    v.render(out);
                }
            }
        }
    }

    pub fn to_display_string(&self) -> String {
        let mut s = String::new();
        self.render(&mut s);
        s
    }

    /// The value as typed JSON (`null` when missing), for alerts' `output_fields`.
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Value::Missing => serde_json::Value::Null,
            Value::Str(s) => s.as_ref().into(),
            Value::Int(v) => (*v).into(),
            Value::Uint(v) => (*v).into(),
            Value::Bool(b) => (*b).into(),
            Value::Ip(ip) => ip.to_string().into(),
            Value::Bytes(b) => String::from_utf8_lossy(b).into_owned().into(),
            Value::Many(vs) => vs.iter().map(Value::to_json).collect::<Vec<_>>().into(),
        }
    }
}

pub type Extract = for<'a> fn(&'a Event, &'a FieldArg) -> Value<'a>;

/// One field of the registry.
pub struct FieldDef {
    pub name: &'static str,
    pub ty: FieldType,
    pub desc: &'static str,
    /// False when the capture side never fills what this field reads: rules using it load,
    /// but `monitor rules check` reports them as not fully supported.
    pub provided: bool,
    pub arg: ArgSpec,
    /// Only usable in conditions, not in outputs (Falco's EPF_FILTER_ONLY).
    pub filter_only: bool,
    pub extract: Extract,
}

impl std::fmt::Debug for FieldDef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FieldDef")
            .field("name", &self.name)
            .field("ty", &self.ty)
            .finish()
    }
}

fn s(x: &str) -> Value<'_> {
    Value::Str(Cow::Borrowed(x))
}

fn opt_s(x: Option<&str>) -> Value<'_> {
    x.map(s).unwrap_or(Value::Missing)
}

fn nonempty(x: &str) -> Value<'_> {
    if x.is_empty() { Value::Missing } else { s(x) }
}

fn hostname() -> &'static str {
    static HOST: OnceLock<String> = OnceLock::new();
    HOST.get_or_init(|| {
        nix::unistd::gethostname()
            .ok()
            .and_then(|h| h.into_string().ok())
            .unwrap_or_default()
    })
}

/// Capability names by bit number, as Falco prints `thread.cap_*`.
const CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_DAC_READ_SEARCH",
    "CAP_FOWNER",
    "CAP_FSETID",
    "CAP_KILL",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETPCAP",
    "CAP_LINUX_IMMUTABLE",
    "CAP_NET_BIND_SERVICE",
    "CAP_NET_BROADCAST",
    "CAP_NET_ADMIN",
    "CAP_NET_RAW",
    "CAP_IPC_LOCK",
    "CAP_IPC_OWNER",
    "CAP_SYS_MODULE",
    "CAP_SYS_RAWIO",
    "CAP_SYS_CHROOT",
    "CAP_SYS_PTRACE",
    "CAP_SYS_PACCT",
    "CAP_SYS_ADMIN",
    "CAP_SYS_BOOT",
    "CAP_SYS_NICE",
    "CAP_SYS_RESOURCE",
    "CAP_SYS_TIME",
    "CAP_SYS_TTY_CONFIG",
    "CAP_MKNOD",
    "CAP_LEASE",
    "CAP_AUDIT_WRITE",
    "CAP_AUDIT_CONTROL",
    "CAP_SETFCAP",
    "CAP_MAC_OVERRIDE",
    "CAP_MAC_ADMIN",
    "CAP_SYSLOG",
    "CAP_WAKE_ALARM",
    "CAP_BLOCK_SUSPEND",
    "CAP_AUDIT_READ",
    "CAP_PERFMON",
    "CAP_BPF",
    "CAP_CHECKPOINT_RESTORE",
];

fn caps(mask: u64) -> Value<'static> {
    let mut out = String::new();
    for (bit, name) in CAPS.iter().enumerate() {
        if mask & (1u64 << bit) != 0 {
            if !out.is_empty() {
                out.push(' ');
            }
            out.push_str(name);
        }
    }
    Value::Str(Cow::Owned(out))
}

fn parent(e: &Event) -> Option<&Process> {
    e.process.parent.as_deref()
}

/// `proc.aname` and friends: one ancestor for `[N]`, all of them (parent first) without.
fn ancestors<'a>(e: &'a Event, a: &FieldArg, f: fn(&'a Process) -> Value<'a>) -> Value<'a> {
    match a {
        FieldArg::Index(n) => e.process.ancestor(*n).map(f).unwrap_or(Value::Missing),
        _ => {
            let vs: Vec<Value<'a>> = e.process.ancestors().map(f).collect();
            if vs.is_empty() {
                Value::Missing
            } else {
                Value::Many(vs)
            }
        }
    }
}

/// The session leader: the nearest ancestor (or self) whose pid is the session id.
fn session_leader(p: &Process) -> Option<&Process> {
    std::iter::once(p)
        .chain(p.ancestors())
        .find(|a| a.pid == p.sid)
}

fn fd(e: &Event) -> Option<&crate::event::FdInfo> {
    e.fd.as_ref()
}

fn tuple_ip(e: &Event, pick: fn(&crate::event::SocketTuple) -> (IpAddr, u16)) -> Value<'_> {
    fd(e)
        .and_then(|f| f.tuple.as_ref())
        .map(|t| Value::Ip(pick(t).0))
        .unwrap_or(Value::Missing)
}

fn tuple_port(e: &Event, pick: fn(&crate::event::SocketTuple) -> (IpAddr, u16)) -> Value<'_> {
    fd(e)
        .and_then(|f| f.tuple.as_ref())
        .map(|t| Value::Uint(u64::from(pick(t).1)))
        .unwrap_or(Value::Missing)
}

/// The host names registered by rules that resolve to the chosen IP of the event's socket.
fn dns_names(e: &Event, pick: fn(&crate::event::SocketTuple) -> (IpAddr, u16)) -> Value<'_> {
    let Some(t) = fd(e).and_then(|f| f.tuple.as_ref()) else {
        return Value::Missing;
    };
    let names = super::dns::names_of(&pick(t).0);
    match names.len() {
        0 => Value::Missing,
        1 => Value::Str(Cow::Owned(names[0].to_string())),
        _ => Value::Many(
            names
                .iter()
                .map(|n| Value::Str(Cow::Owned(n.to_string())))
                .collect(),
        ),
    }
}

fn both_ips(e: &Event) -> Value<'_> {
    fd(e)
        .and_then(|f| f.tuple.as_ref())
        .map(|t| Value::Many(vec![Value::Ip(t.client().0), Value::Ip(t.server().0)]))
        .unwrap_or(Value::Missing)
}

fn arg_value<'a>(e: &'a Event, a: &FieldArg) -> Option<&'a ArgValue> {
    match a {
        FieldArg::Index(i) => e.arg_at(*i),
        FieldArg::Key(k) => e.arg(k),
        FieldArg::None => None,
    }
}

fn render_arg(v: &ArgValue) -> Value<'_> {
    match v {
        ArgValue::Str(x) | ArgValue::Path(x) => s(x),
        other => Value::Str(Cow::Owned(other.render())),
    }
}

fn env_var<'a>(p: &'a Process, name: &str) -> Option<&'a str> {
    p.env.iter().find_map(|kv| {
        kv.strip_prefix(name)
            .and_then(|rest| rest.strip_prefix('='))
    })
}

fn mount_by<'a>(
    e: &'a Event,
    a: &FieldArg,
    by_source: bool,
) -> Option<&'a crate::container::Mount> {
    let mounts = &e.container.mounts;
    match a {
        FieldArg::Index(i) => mounts.get(*i),
        FieldArg::Key(k) => mounts.iter().find(|m| {
            let key = if by_source { &m.source } else { &m.dest };
            super::eval::glob_match(k.as_bytes(), key.as_bytes(), false)
        }),
        FieldArg::None => None,
    }
}

fn mount_string(m: &crate::container::Mount) -> String {
    format!(
        "{}:{}:{}:{}:{}",
        m.source, m.dest, m.mode, m.rw, m.propagation
    )
}

fn ns(ts: u64) -> Value<'static> {
    if ts == 0 {
        Value::Missing
    } else {
        Value::Uint(ts)
    }
}

macro_rules! field {
    ($name:expr, $ty:ident, $provided:expr, $arg:ident, $desc:expr, $f:expr) => {
        FieldDef {
            name: $name,
            ty: FieldType::$ty,
            desc: $desc,
            provided: $provided,
            arg: ArgSpec::$arg,
            filter_only: false,
            extract: $f,
        }
    };
    (filter $name:expr, $ty:ident, $provided:expr, $arg:ident, $desc:expr, $f:expr) => {
        FieldDef {
            name: $name,
            ty: FieldType::$ty,
            desc: $desc,
            provided: $provided,
            arg: ArgSpec::$arg,
            filter_only: true,
            extract: $f,
        }
    };
}

/// Every field, in Falco's class order.
pub static FIELDS: &[FieldDef] = &[
    // ---- evt ----
    field!(
        "evt.num",
        Uint,
        true,
        None,
        "event sequence number",
        |e, _| Value::Uint(e.num)
    ),
    field!(
        "evt.time",
        Str,
        true,
        None,
        "event time as HH:MM:SS.nnnnnnnnn (UTC)",
        |e, _| {
            let secs = e.ts / 1_000_000_000;
            Value::Str(Cow::Owned(format!(
                "{:02}:{:02}:{:02}.{:09}",
                (secs / 3600) % 24,
                (secs / 60) % 60,
                secs % 60,
                e.ts % 1_000_000_000
            )))
        }
    ),
    field!(
        "evt.time.s",
        Str,
        true,
        None,
        "event time as HH:MM:SS",
        |e, _| {
            let secs = e.ts / 1_000_000_000;
            Value::Str(Cow::Owned(format!(
                "{:02}:{:02}:{:02}",
                (secs / 3600) % 24,
                (secs / 60) % 60,
                secs % 60
            )))
        }
    ),
    field!(
        "evt.time.iso8601",
        Str,
        true,
        None,
        "event time in ISO 8601 with nanoseconds",
        |e, _| { Value::Str(Cow::Owned(crate::alert::format_rfc3339_nanos(e.ts))) }
    ),
    field!(
        "evt.datetime",
        Str,
        true,
        None,
        "event time with date",
        |e, _| { Value::Str(Cow::Owned(crate::alert::format_rfc3339_nanos(e.ts))) }
    ),
    field!(
        "evt.rawtime",
        AbsTime,
        true,
        None,
        "event time, nanoseconds since the epoch",
        |e, _| { Value::Uint(e.ts) }
    ),
    field!(
        "evt.latency",
        RelTime,
        true,
        None,
        "time spent in the syscall (ns)",
        |e, _| { Value::Uint(e.latency_ns) }
    ),
    field!(
        "evt.type",
        Str,
        true,
        None,
        "syscall name (open, execve...)",
        |e, _| s(e.ty.name())
    ),
    field!(
        "evt.dir",
        Str,
        true,
        None,
        "direction: always '<' (entry and exit are joined)",
        |_, _| { s("<") }
    ),
    field!(
        "evt.category",
        Str,
        true,
        None,
        "event category (process, file, net, IO, system)",
        |e, _| { s(e.ty.category()) }
    ),
    field!(
        "evt.cpu",
        Int,
        true,
        None,
        "CPU the event was read from",
        |e, _| { Value::Int(i64::from(e.cpu)) }
    ),
    field!(
        "evt.res",
        Str,
        true,
        None,
        "SUCCESS, the errno name, or the returned value",
        |e, _| {
            match e.res {
                r if r < 0 => match crate::event::errno_name(-r) {
                    Some(n) => s(n),
                    None => Value::Str(Cow::Owned(r.to_string())),
                },
                0 => s("SUCCESS"),
                r => Value::Str(Cow::Owned(r.to_string())),
            }
        }
    ),
    field!("evt.rawres", Int, true, None, "raw return value", |e, _| {
        Value::Int(e.res)
    }),
    field!(
        "evt.failed",
        Bool,
        true,
        None,
        "true when the syscall returned an error",
        |e, _| { Value::Bool(e.res < 0) }
    ),
    field!(
        "evt.args",
        Str,
        true,
        None,
        "all arguments as name=value",
        |e, _| { Value::Str(Cow::Owned(e.args_string())) }
    ),
    field!(
        "evt.arg",
        Str,
        true,
        RequiredKey,
        "one argument by name (evt.arg.NAME) or index (evt.arg[N]), rendered",
        |e, a| { arg_value(e, a).map(render_arg).unwrap_or(Value::Missing) }
    ),
    field!(
        "evt.rawarg",
        Str,
        true,
        RequiredKey,
        "one argument by name, unrendered",
        |e, a| {
            match arg_value(e, a) {
                Some(v) => match v.as_i64() {
                    Some(n) => Value::Int(n),
                    None => render_arg(v),
                },
                None => Value::Missing,
            }
        }
    ),
    field!(
        "evt.is_open_read",
        Bool,
        true,
        None,
        "an open-family event asking for reading",
        |e, _| { Value::Bool(e.is_open_read()) }
    ),
    field!(
        "evt.is_open_write",
        Bool,
        true,
        None,
        "an open-family event asking for writing",
        |e, _| { Value::Bool(e.is_open_write()) }
    ),
    field!(
        "evt.is_open_exec",
        Bool,
        true,
        None,
        "an open-family event creating an executable file",
        |e, _| {
            let exec = e.open_flags().is_some()
                && match e.arg("mode") {
                    Some(ArgValue::Mode(m)) => {
                        m & 0o111 != 0
                            && e.open_flags()
                                .is_some_and(|f| f & libc::O_CREAT as u32 != 0)
                    }
                    _ => false,
                };
            Value::Bool(exec)
        }
    ),
    field!(
        "evt.hostname",
        Str,
        true,
        None,
        "host name of the machine",
        |_, _| s(hostname())
    ),
    field!(
        "evt.buffer",
        Bytes,
        false,
        None,
        "I/O buffer of read/write events (not captured)",
        |e, _| {
            match e.arg("data") {
                Some(ArgValue::Bytes(b)) => Value::Bytes(Cow::Borrowed(b)),
                _ => Value::Missing,
            }
        }
    ),
    // ---- proc ----
    field!(
        "proc.pid",
        Int,
        true,
        None,
        "process id",
        |e, _| Value::Int(i64::from(e.process.pid))
    ),
    field!("proc.ppid", Int, true, None, "parent process id", |e, _| {
        Value::Int(i64::from(e.process.ppid))
    }),
    field!(
        "proc.vpid",
        Int,
        true,
        None,
        "process id in its pid namespace",
        |e, _| Value::Int(i64::from(e.process.vpid))
    ),
    field!(
        "proc.sid",
        Int,
        true,
        None,
        "session id",
        |e, _| Value::Int(i64::from(e.process.sid))
    ),
    field!(
        "proc.vpgid",
        Int,
        true,
        None,
        "process group id in its namespace",
        |e, _| Value::Int(i64::from(e.process.vpgid))
    ),
    field!(
        "proc.is_vpgid_leader",
        Bool,
        true,
        None,
        "the process leads its process group",
        |e, _| { Value::Bool(e.process.vpgid != 0 && e.process.vpid == e.process.vpgid) }
    ),
    field!(
        "proc.is_sid_leader",
        Bool,
        true,
        None,
        "the process leads its session",
        |e, _| { Value::Bool(e.process.sid != 0 && e.process.pid == e.process.sid) }
    ),
    field!(
        "proc.name",
        Str,
        true,
        None,
        "process name (comm)",
        |e, _| nonempty(&e.process.name)
    ),
    field!("proc.exe", Str, true, None, "argv[0]", |e, _| nonempty(
        &e.process.exe
    )),
    field!(
        "proc.exepath",
        Str,
        true,
        None,
        "full path of the executable",
        |e, _| nonempty(&e.process.exepath)
    ),
    field!(
        "proc.args",
        Str,
        true,
        None,
        "arguments, space separated",
        |e, _| { Value::Str(Cow::Owned(e.process.args_string())) }
    ),
    field!(
        "proc.cmdline",
        Str,
        true,
        None,
        "name and arguments",
        |e, _| { Value::Str(Cow::Owned(e.process.cmdline())) }
    ),
    field!(
        "proc.cwd",
        Str,
        true,
        None,
        "current working directory",
        |e, _| nonempty(&e.process.cwd)
    ),
    field!(
        "proc.tty",
        Uint,
        true,
        None,
        "controlling terminal, 0 if none",
        |e, _| Value::Uint(u64::from(e.process.tty))
    ),
    field!(
        "proc.env",
        Str,
        true,
        OptionalKey,
        "environment (all, or one variable with proc.env[NAME])",
        |e, a| {
            match a {
                FieldArg::Key(k) => opt_s(env_var(&e.process, k)),
                _ => Value::Str(Cow::Owned(e.process.env.join(" "))),
            }
        }
    ),
    field!(
        "proc.duration",
        RelTime,
        true,
        None,
        "time since the process started (ns)",
        |e, _| {
            if e.process.start_ts == 0 {
                Value::Missing
            } else {
                Value::Uint(e.ts.saturating_sub(e.process.start_ts))
            }
        }
    ),
    field!(
        "proc.start_ts",
        AbsTime,
        true,
        None,
        "process start time",
        |e, _| ns(e.process.start_ts)
    ),
    field!(
        "proc.pname",
        Str,
        true,
        None,
        "parent process name",
        |e, _| parent(e)
            .map(|p| nonempty(&p.name))
            .unwrap_or(Value::Missing)
    ),
    field!("proc.pexe", Str, true, None, "parent argv[0]", |e, _| {
        parent(e)
            .map(|p| nonempty(&p.exe))
            .unwrap_or(Value::Missing)
    }),
    field!(
        "proc.pexepath",
        Str,
        true,
        None,
        "parent executable path",
        |e, _| parent(e)
            .map(|p| nonempty(&p.exepath))
            .unwrap_or(Value::Missing)
    ),
    field!(
        "proc.pcmdline",
        Str,
        true,
        None,
        "parent command line",
        |e, _| {
            parent(e)
                .map(|p| Value::Str(Cow::Owned(p.cmdline())))
                .unwrap_or(Value::Missing)
        }
    ),
    field!(
        "proc.aname",
        Str,
        true,
        OptionalIndex,
        "ancestor name: proc.aname[N] (1 = parent), or any ancestor",
        |e, a| { ancestors(e, a, |p| nonempty(&p.name)) }
    ),
    field!(
        "proc.aexe",
        Str,
        true,
        OptionalIndex,
        "ancestor argv[0]",
        |e, a| ancestors(e, a, |p| nonempty(&p.exe))
    ),
    field!(
        "proc.aexepath",
        Str,
        true,
        OptionalIndex,
        "ancestor executable path",
        |e, a| ancestors(e, a, |p| nonempty(&p.exepath))
    ),
    field!(
        "proc.acmdline",
        Str,
        true,
        OptionalIndex,
        "ancestor command line",
        |e, a| { ancestors(e, a, |p| Value::Str(Cow::Owned(p.cmdline()))) }
    ),
    field!(
        "proc.apid",
        Int,
        true,
        OptionalIndex,
        "ancestor pid",
        |e, a| ancestors(e, a, |p| Value::Int(i64::from(p.pid)))
    ),
    field!(
        "proc.sname",
        Str,
        true,
        None,
        "name of the session leader",
        |e, _| {
            session_leader(&e.process)
                .map(|p| nonempty(&p.name))
                .unwrap_or(Value::Missing)
        }
    ),
    field!(
        "proc.is_exe_upper_layer",
        Bool,
        true,
        None,
        "executable written in the container's upper layer",
        |e, _| Value::Bool(e.process.exe_upper_layer)
    ),
    field!(
        "proc.is_exe_from_memfd",
        Bool,
        true,
        None,
        "executable loaded from a memfd",
        |e, _| Value::Bool(e.process.exe_from_memfd)
    ),
    field!(
        "proc.is_exe_writable",
        Bool,
        true,
        None,
        "executable writable by its user",
        |e, _| Value::Bool(e.process.exe_writable)
    ),
    field!(
        "proc.exe_ino.ctime",
        AbsTime,
        true,
        None,
        "ctime of the executable",
        |e, _| ns(e.process.exe_ino_ctime)
    ),
    field!(
        "proc.exe_ino.mtime",
        AbsTime,
        true,
        None,
        "mtime of the executable",
        |e, _| ns(e.process.exe_ino_mtime)
    ),
    field!(
        "proc.exe_ino.ctime_duration_proc_start",
        RelTime,
        true,
        None,
        "ns between the executable's ctime and the process start",
        |e, _| {
            let p = &e.process;
            let start = if p.exec_ts != 0 {
                p.exec_ts
            } else {
                p.start_ts
            };
            if p.exe_ino_ctime == 0 || start == 0 {
                Value::Missing
            } else {
                Value::Uint(start.saturating_sub(p.exe_ino_ctime))
            }
        }
    ),
    // ---- thread ----
    field!("thread.tid", Int, true, None, "thread id", |e, _| {
        Value::Int(i64::from(e.tid))
    }),
    field!(
        "thread.cap_effective",
        Str,
        true,
        None,
        "effective capabilities (CAP_* names)",
        |e, _| caps(e.process.cap_effective)
    ),
    field!(
        "thread.cap_permitted",
        Str,
        true,
        None,
        "permitted capabilities (CAP_* names)",
        |e, _| caps(e.process.cap_permitted)
    ),
    field!(
        "thread.cap_inheritable",
        Str,
        false,
        None,
        "inheritable capabilities (not captured)",
        |_, _| Value::Missing
    ),
    // ---- user / group ----
    field!("user.uid", Uint, true, None, "user id", |e, _| Value::Uint(
        u64::from(e.user.uid)
    )),
    field!("user.name", Str, true, None, "user name", |e, _| s(&e
        .user
        .name)),
    field!(
        "user.loginuid",
        Int,
        true,
        None,
        "audit login uid, -1 when unset",
        |e, _| Value::Int(e.user.loginuid)
    ),
    field!(
        "user.loginname",
        Str,
        true,
        None,
        "name of the login user",
        |e, _| s(&e.user.loginname)
    ),
    field!(
        "user.homedir",
        Str,
        false,
        None,
        "home directory (not captured)",
        |_, _| Value::Missing
    ),
    field!(
        "user.shell",
        Str,
        false,
        None,
        "login shell (not captured)",
        |_, _| Value::Missing
    ),
    field!("group.gid", Uint, true, None, "group id", |e, _| {
        Value::Uint(u64::from(e.user.gid))
    }),
    field!("group.name", Str, true, None, "group name", |e, _| s(&e
        .user
        .group)),
    // ---- fd ----
    field!(
        "fd.num",
        Int,
        true,
        None,
        "file descriptor number",
        |e, _| fd(e).map(|f| Value::Int(f.num)).unwrap_or(Value::Missing)
    ),
    field!(
        "fd.type",
        Str,
        true,
        None,
        "fd type (file, directory, ipv4, ipv6, unix...)",
        |e, _| fd(e).map(|f| s(f.kind.name())).unwrap_or(Value::Missing)
    ),
    field!(
        "fd.typechar",
        Str,
        true,
        None,
        "fd type as one letter",
        |e, _| {
            fd(e)
                .map(|f| {
                    let c = f.kind.typechar();
                    // A static one-letter string per type, so that no allocation is needed.
                    const LETTERS: &str = "fd46upeslitnbmo";
                    match LETTERS.find(c) {
                        Some(i) => s(&LETTERS[i..i + 1]),
                        None => Value::Str(Cow::Owned(c.to_string())),
                    }
                })
                .unwrap_or(Value::Missing)
        }
    ),
    field!(
        "fd.name",
        Str,
        true,
        None,
        "file path, socket tuple or unix path",
        |e, _| fd(e).map(|f| s(&f.name)).unwrap_or(Value::Missing)
    ),
    field!(
        "fd.nameraw",
        Str,
        true,
        None,
        "the path as the task passed it",
        |e, _| fd(e).map(|f| s(&f.nameraw)).unwrap_or(Value::Missing)
    ),
    field!(
        "fd.directory",
        Str,
        true,
        None,
        "directory of a file",
        |e, _| opt_s(fd(e).and_then(|f| f.directory()))
    ),
    field!(
        "fd.filename",
        Str,
        true,
        None,
        "file name without directory",
        |e, _| opt_s(fd(e).and_then(|f| f.filename()))
    ),
    field!(
        "fd.name_changed",
        Bool,
        true,
        None,
        "the event changed the fd's name",
        |e, _| fd(e)
            .map(|f| Value::Bool(f.name_changed))
            .unwrap_or(Value::Missing)
    ),
    field!("fd.cip", IpAddr, true, None, "client IP", |e, _| tuple_ip(
        e,
        |t| t.client()
    )),
    field!("fd.sip", IpAddr, true, None, "server IP", |e, _| tuple_ip(
        e,
        |t| t.server()
    )),
    field!("fd.lip", IpAddr, true, None, "local IP", |e, _| tuple_ip(
        e,
        |t| t.local
    )),
    field!("fd.rip", IpAddr, true, None, "remote IP", |e, _| tuple_ip(
        e,
        |t| t.remote
    )),
    field!("fd.cport", Port, true, None, "client port", |e, _| {
        tuple_port(e, |t| t.client())
    }),
    field!("fd.sport", Port, true, None, "server port", |e, _| {
        tuple_port(e, |t| t.server())
    }),
    field!("fd.lport", Port, true, None, "local port", |e, _| {
        tuple_port(e, |t| t.local)
    }),
    field!("fd.rport", Port, true, None, "remote port", |e, _| {
        tuple_port(e, |t| t.remote)
    }),
    field!(filter "fd.ip", IpAddr, true, None, "client or server IP", |e, _| both_ips(e)),
    field!(filter "fd.port", Port, true, None, "client or server port", |e, _| {
        fd(e).and_then(|f| f.tuple.as_ref())
            .map(|t| Value::Many(vec![Value::Uint(u64::from(t.client().1)), Value::Uint(u64::from(t.server().1))]))
            .unwrap_or(Value::Missing)
    }),
    field!(filter "fd.net", IpNet, true, None, "client or server IP, compared with a CIDR", |e, _| both_ips(e)),
    field!(filter "fd.cnet", IpNet, true, None, "client IP, compared with a CIDR", |e, _| tuple_ip(e, |t| t.client())),
    field!(filter "fd.snet", IpNet, true, None, "server IP, compared with a CIDR", |e, _| tuple_ip(e, |t| t.server())),
    field!(filter "fd.lnet", IpNet, true, None, "local IP, compared with a CIDR", |e, _| tuple_ip(e, |t| t.local)),
    field!(filter "fd.rnet", IpNet, true, None, "remote IP, compared with a CIDR", |e, _| tuple_ip(e, |t| t.remote)),
    field!(
        "fd.cip.name",
        Str,
        true,
        None,
        "names compared in rules that resolve to the client IP",
        |e, _| dns_names(e, |t| t.client())
    ),
    field!(
        "fd.sip.name",
        Str,
        true,
        None,
        "names compared in rules that resolve to the server IP",
        |e, _| dns_names(e, |t| t.server())
    ),
    field!(
        "fd.lip.name",
        Str,
        true,
        None,
        "names compared in rules that resolve to the local IP",
        |e, _| dns_names(e, |t| t.local)
    ),
    field!(
        "fd.rip.name",
        Str,
        true,
        None,
        "names compared in rules that resolve to the remote IP",
        |e, _| dns_names(e, |t| t.remote)
    ),
    field!(
        "fd.l4proto",
        Str,
        true,
        None,
        "tcp, udp, icmp or raw",
        |e, _| {
            fd(e)
                .and_then(|f| f.tuple.as_ref())
                .map(|t| s(t.proto.name()))
                .unwrap_or(Value::Missing)
        }
    ),
    field!("fd.sockfamily", Str, true, None, "ip or unix", |e, _| {
        match fd(e).map(|f| f.kind) {
            Some(FdKind::Ipv4 | FdKind::Ipv6) => s("ip"),
            Some(FdKind::Unix) => s("unix"),
            _ => Value::Missing,
        }
    }),
    field!(
        "fd.is_server",
        Bool,
        true,
        None,
        "the local side is the server",
        |e, _| {
            fd(e)
                .and_then(|f| f.tuple.as_ref())
                .map(|t| Value::Bool(t.local_is_server))
                .unwrap_or(Value::Missing)
        }
    ),
    field!(
        "fd.connected",
        Bool,
        true,
        None,
        "the socket is connected",
        |e, _| {
            fd(e)
                .map(|f| {
                    Value::Bool(
                        f.tuple.is_some()
                            && matches!(f.kind, FdKind::Ipv4 | FdKind::Ipv6 | FdKind::Unix),
                    )
                })
                .unwrap_or(Value::Missing)
        }
    ),
    // ---- container ----
    field!(
        "container.id",
        Str,
        true,
        None,
        "container id (12 characters) or 'host'",
        |e, _| s(&e.container.id)
    ),
    field!(
        "container.full_id",
        Str,
        true,
        None,
        "full container id",
        |e, _| s(&e.container.full_id)
    ),
    field!(
        "container.name",
        Str,
        true,
        None,
        "container name",
        |e, _| opt_s(e.container.name.as_deref())
    ),
    field!(
        "container.image",
        Str,
        true,
        None,
        "container image",
        |e, _| opt_s(e.container.image.as_deref())
    ),
    field!("container.image.id", Str, true, None, "image id", |e, _| {
        opt_s(e.container.image_id.as_deref())
    }),
    field!(
        "container.image.repository",
        Str,
        true,
        None,
        "image repository",
        |e, _| opt_s(e.container.image_repository.as_deref())
    ),
    field!(
        "container.image.tag",
        Str,
        true,
        None,
        "image tag",
        |e, _| opt_s(e.container.image_tag.as_deref())
    ),
    field!(
        "container.image.digest",
        Str,
        true,
        None,
        "image digest",
        |e, _| opt_s(e.container.image_digest.as_deref())
    ),
    field!(
        "container.type",
        Str,
        true,
        None,
        "container runtime (docker, containerd, cri-o...)",
        |e, _| s(e.container.runtime.name())
    ),
    field!(
        "container.privileged",
        Bool,
        true,
        None,
        "privileged container",
        |e, _| {
            e.container
                .privileged
                .map(Value::Bool)
                .unwrap_or(Value::Missing)
        }
    ),
    field!(
        "container.start_ts",
        AbsTime,
        true,
        None,
        "container start time",
        |e, _| {
            e.container
                .start_ts
                .map(Value::Uint)
                .unwrap_or(Value::Missing)
        }
    ),
    field!(
        "container.mounts",
        Str,
        true,
        None,
        "all mounts as source:dest:mode:rw:propagation, comma separated",
        |e, _| {
            if e.container.is_host() {
                return Value::Missing;
            }
            Value::Str(Cow::Owned(
                e.container
                    .mounts
                    .iter()
                    .map(mount_string)
                    .collect::<Vec<_>>()
                    .join(","),
            ))
        }
    ),
    field!(
        "container.mount",
        Str,
        true,
        RequiredKey,
        "one mount by index or source (glob)",
        |e, a| {
            mount_by(e, a, true)
                .map(|m| Value::Str(Cow::Owned(mount_string(m))))
                .unwrap_or(Value::Missing)
        }
    ),
    field!(
        "container.mount.source",
        Str,
        true,
        RequiredKey,
        "mount source, by index or destination (glob)",
        |e, a| {
            mount_by(e, a, false)
                .map(|m| s(&m.source))
                .unwrap_or(Value::Missing)
        }
    ),
    field!(
        "container.mount.dest",
        Str,
        true,
        RequiredKey,
        "mount destination, by index or source (glob)",
        |e, a| {
            mount_by(e, a, true)
                .map(|m| s(&m.dest))
                .unwrap_or(Value::Missing)
        }
    ),
    field!(
        "container.mount.mode",
        Str,
        true,
        RequiredKey,
        "mount mode, by index or source (glob)",
        |e, a| {
            mount_by(e, a, true)
                .map(|m| s(&m.mode))
                .unwrap_or(Value::Missing)
        }
    ),
    field!(
        "container.mount.rdwr",
        Str,
        true,
        RequiredKey,
        "mount read/write flag, by index or source (glob)",
        |e, a| {
            mount_by(e, a, true)
                .map(|m| s(if m.rw { "true" } else { "false" }))
                .unwrap_or(Value::Missing)
        }
    ),
    field!(
        "container.mount.propagation",
        Str,
        true,
        RequiredKey,
        "mount propagation, by index or source (glob)",
        |e, a| {
            mount_by(e, a, true)
                .map(|m| s(&m.propagation))
                .unwrap_or(Value::Missing)
        }
    ),
    field!(
        "container.label",
        Str,
        true,
        RequiredKey,
        "one container label",
        |e, a| match a {
            FieldArg::Key(k) => opt_s(e.container.labels.get(k).map(String::as_str)),
            _ => Value::Missing,
        }
    ),
    field!(
        "container.labels",
        Str,
        true,
        None,
        "all labels as key:value, comma separated",
        |e, _| {
            Value::Str(Cow::Owned(
                e.container
                    .labels
                    .iter()
                    .map(|(k, v)| format!("{k}:{v}"))
                    .collect::<Vec<_>>()
                    .join(", "),
            ))
        }
    ),
    // ---- k8s ----
    field!(
        "k8s.ns.name",
        Str,
        true,
        None,
        "Kubernetes namespace",
        |e, _| opt_s(e.container.k8s.as_ref().map(|k| k.ns_name.as_str()))
    ),
    field!(
        "k8s.pod.name",
        Str,
        true,
        None,
        "Kubernetes pod name",
        |e, _| opt_s(e.container.k8s.as_ref().map(|k| k.pod_name.as_str()))
    ),
    field!(
        "k8s.pod.uid",
        Str,
        true,
        None,
        "Kubernetes pod uid",
        |e, _| opt_s(e.container.k8s.as_ref().map(|k| k.pod_uid.as_str()))
    ),
    field!(
        "k8s.pod.id",
        Str,
        true,
        None,
        "Kubernetes pod uid (older name)",
        |e, _| opt_s(e.container.k8s.as_ref().map(|k| k.pod_uid.as_str()))
    ),
    field!(
        "k8s.pod.label",
        Str,
        true,
        RequiredKey,
        "one pod label",
        |e, a| match a {
            FieldArg::Key(key) => opt_s(
                e.container
                    .k8s
                    .as_ref()
                    .and_then(|k| k.pod_labels.get(key))
                    .map(String::as_str)
            ),
            _ => Value::Missing,
        }
    ),
    field!(
        "k8s.pod.labels",
        Str,
        true,
        None,
        "all pod labels as key:value",
        |e, _| {
            match e.container.k8s.as_ref() {
                Some(k) => Value::Str(Cow::Owned(
                    k.pod_labels
                        .iter()
                        .map(|(k, v)| format!("{k}:{v}"))
                        .collect::<Vec<_>>()
                        .join(", "),
                )),
                None => Value::Missing,
            }
        }
    ),
];

/// Looks a field up by its name (without argument). `evt.arg.NAME` style names are split into
/// the field and its key.
pub fn lookup(name: &str) -> Option<(&'static FieldDef, Option<String>)> {
    if let Some(f) = FIELDS.iter().find(|f| f.name == name) {
        return Some((f, None));
    }
    for prefix in ["evt.arg.", "evt.rawarg."] {
        if let Some(rest) = name.strip_prefix(prefix)
            && !rest.is_empty()
        {
            let base = &prefix[..prefix.len() - 1];
            let f = FIELDS.iter().find(|f| f.name == base)?;
            return Some((f, Some(rest.to_string())));
        }
    }
    None
}

/// The known field whose name is closest to `name` (Levenshtein distance), for error messages.
pub fn closest(name: &str) -> &'static str {
    FIELDS
        .iter()
        .map(|f| (edit_distance(name, f.name), f.name))
        .min()
        .map(|(_, n)| n)
        .unwrap_or("")
}

fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur[j + 1] = (prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

/// Resolves a field reference (`name` plus optional `[arg]`) into its definition and parsed
/// argument, or says what is wrong with it.
pub fn resolve(name: &str, arg: Option<&str>) -> Result<(&'static FieldDef, FieldArg), FieldError> {
    let Some((def, dotted_key)) = lookup(name) else {
        return Err(FieldError::Unknown {
            field: name.to_string(),
            closest: closest(name),
        });
    };
    let raw = match (dotted_key, arg) {
        (Some(_), Some(_)) => {
            return Err(FieldError::BadArg {
                field: name.to_string(),
                why: "takes no argument in brackets".into(),
            });
        }
        (Some(k), None) => Some(k),
        (None, a) => a.map(str::to_string),
    };
    let parsed = match (def.arg, raw) {
        (ArgSpec::None, None) => FieldArg::None,
        (ArgSpec::None, Some(_)) => {
            return Err(FieldError::BadArg {
                field: name.to_string(),
                why: "takes no argument".into(),
            });
        }
        (ArgSpec::OptionalIndex, None) | (ArgSpec::OptionalKey, None) => FieldArg::None,
        (ArgSpec::OptionalIndex, Some(a)) => match a.parse::<usize>() {
            Ok(n) => FieldArg::Index(n),
            Err(_) => {
                return Err(FieldError::BadArg {
                    field: name.to_string(),
                    why: format!("needs a numeric argument, got '{a}'"),
                });
            }
        },
        (ArgSpec::RequiredKey, None) => {
            return Err(FieldError::BadArg {
                field: name.to_string(),
                why: "needs an argument".into(),
            });
        }
        (ArgSpec::OptionalKey | ArgSpec::RequiredKey, Some(a)) => {
            if def.name == "evt.arg" || def.name.starts_with("container.mount") {
                match a.parse::<usize>() {
                    Ok(n) => FieldArg::Index(n),
                    Err(_) => FieldArg::Key(a),
                }
            } else {
                FieldArg::Key(a)
            }
        }
    };
    Ok((def, parsed))
}

/// A field reference that does not resolve.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum FieldError {
    #[error("unknown field '{field}' (closest known field: '{closest}')")]
    Unknown {
        field: String,
        closest: &'static str,
    },
    #[error("field '{field}' {why}")]
    BadArg { field: String, why: String },
}

/// Direct readers for the plain fields rules use most, returning the value in registers.
/// They must agree with the registry's extractors (a test checks they do).
#[derive(Clone, Copy)]
pub enum Fast {
    Str(for<'a> fn(&'a Event) -> Option<&'a str>),
    /// Integers and booleans (as 0/1).
    Num(fn(&Event) -> Option<i128>),
}

impl std::fmt::Debug for Fast {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Fast::Str(_) => "Fast::Str",
            Fast::Num(_) => "Fast::Num",
        })
    }
}

fn ne(s: &str) -> Option<&str> {
    (!s.is_empty()).then_some(s)
}

fn typechar_str(k: FdKind) -> &'static str {
    const LETTERS: &str = "fd46upeslitnbmo";
    let c = k.typechar();
    match LETTERS.find(c) {
        Some(i) => &LETTERS[i..i + 1],
        None => "o",
    }
}

fn port(e: &Event, pick: fn(&crate::event::SocketTuple) -> (IpAddr, u16)) -> Option<i128> {
    fd(e)
        .and_then(|f| f.tuple.as_ref())
        .map(|t| i128::from(pick(t).1))
}

/// The fast reader of a field used without argument or transformer, if it has one.
pub fn fast(name: &str) -> Option<Fast> {
    Some(match name {
        "proc.name" => Fast::Str(|e| ne(&e.process.name)),
        "proc.exe" => Fast::Str(|e| ne(&e.process.exe)),
        "proc.exepath" => Fast::Str(|e| ne(&e.process.exepath)),
        "proc.cwd" => Fast::Str(|e| ne(&e.process.cwd)),
        "proc.pname" => Fast::Str(|e| parent(e).and_then(|p| ne(&p.name))),
        "proc.pexe" => Fast::Str(|e| parent(e).and_then(|p| ne(&p.exe))),
        "proc.pexepath" => Fast::Str(|e| parent(e).and_then(|p| ne(&p.exepath))),
        "fd.name" => Fast::Str(|e| fd(e).map(|f| f.name.as_str())),
        "fd.nameraw" => Fast::Str(|e| fd(e).map(|f| f.nameraw.as_str())),
        "fd.directory" => Fast::Str(|e| fd(e).and_then(|f| f.directory())),
        "fd.filename" => Fast::Str(|e| fd(e).and_then(|f| f.filename())),
        "fd.typechar" => Fast::Str(|e| fd(e).map(|f| typechar_str(f.kind))),
        "fd.type" => Fast::Str(|e| fd(e).map(|f| f.kind.name())),
        "fd.l4proto" => Fast::Str(|e| fd(e).and_then(|f| f.tuple.as_ref()).map(|t| t.proto.name())),
        "container.id" => Fast::Str(|e| Some(e.container.id.as_str())),
        "container.image" => Fast::Str(|e| e.container.image.as_deref()),
        "container.image.repository" => Fast::Str(|e| e.container.image_repository.as_deref()),
        "container.name" => Fast::Str(|e| e.container.name.as_deref()),
        "user.name" => Fast::Str(|e| Some(&e.user.name)),
        "evt.type" => Fast::Str(|e| Some(e.ty.name())),
        "k8s.ns.name" => Fast::Str(|e| e.container.k8s.as_ref().map(|k| k.ns_name.as_str())),
        "evt.num" => Fast::Num(|e| Some(i128::from(e.num))),
        "evt.rawres" => Fast::Num(|e| Some(i128::from(e.res))),
        "fd.num" => Fast::Num(|e| fd(e).map(|f| i128::from(f.num))),
        "proc.tty" => Fast::Num(|e| Some(i128::from(e.process.tty))),
        "proc.pid" => Fast::Num(|e| Some(i128::from(e.process.pid))),
        "proc.vpid" => Fast::Num(|e| Some(i128::from(e.process.vpid))),
        "user.uid" => Fast::Num(|e| Some(i128::from(e.user.uid))),
        "user.loginuid" => Fast::Num(|e| Some(i128::from(e.user.loginuid))),
        "evt.is_open_read" => Fast::Num(|e| Some(i128::from(e.is_open_read()))),
        "evt.is_open_write" => Fast::Num(|e| Some(i128::from(e.is_open_write()))),
        "proc.is_exe_upper_layer" => Fast::Num(|e| Some(i128::from(e.process.exe_upper_layer))),
        "proc.is_exe_from_memfd" => Fast::Num(|e| Some(i128::from(e.process.exe_from_memfd))),
        "container.privileged" => Fast::Num(|e| e.container.privileged.map(i128::from)),
        "fd.name_changed" => Fast::Num(|e| fd(e).map(|f| i128::from(f.name_changed))),
        "fd.sport" => Fast::Num(|e| port(e, |t| t.server())),
        "fd.cport" => Fast::Num(|e| port(e, |t| t.client())),
        "fd.lport" => Fast::Num(|e| port(e, |t| t.local)),
        "fd.rport" => Fast::Num(|e| port(e, |t| t.remote)),
        _ => return None,
    })
}
