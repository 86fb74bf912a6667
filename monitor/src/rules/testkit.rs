//! Building `Event`s the way the capture side produces them, for the rule engine's tests,
//! benchmark and fuzz targets (no kernel needed).

use std::net::IpAddr;
use std::sync::Arc;

use crate::container::{ContainerInfo, ContainerRuntime, K8sInfo};
use crate::event::{
    Arg, ArgValue, Event, EventType, FdInfo, FdKind, L4Proto, SockAddr, SocketTuple, UserInfo,
};
use crate::process::Process;

/// The tables the process table renders arguments with, so that test events read as real
/// ones do.
pub use crate::event::names::{OPEN_FLAGS, PTRACE_REQUESTS, SOCKET_FAMILIES as SOCKET_DOMAINS};

pub const O_WRONLY: u64 = 0o1;
pub const O_RDWR: u64 = 0o2;
pub const O_CREAT: u64 = 0o100;
pub const O_TRUNC: u64 = 0o1000;
pub const CAP_DAC_OVERRIDE: u64 = 1 << 1;
pub const CAP_SYS_MODULE: u64 = 1 << 16;
pub const CAP_SYS_ADMIN: u64 = 1 << 21;

/// A process in a chain: the event's process first, then its ancestors.
pub fn proc(name: &str, exepath: &str, args: &[&str]) -> Process {
    Process {
        pid: 1000,
        ppid: 999,
        vpid: 1000,
        sid: 1,
        vpgid: 1000,
        name: name.chars().take(15).collect(),
        exe: exepath.to_string(),
        exepath: exepath.to_string(),
        args: args.iter().map(|a| a.to_string()).collect(),
        cwd: "/root/".into(),
        loginuid: u32::MAX,
        start_ts: 1_700_000_000_000_000_000,
        exec_ts: 1_700_000_000_000_000_000,
        ..Process::default()
    }
}

/// Builds one event.
pub struct Ev {
    pub ev: Event,
    chain: Vec<Process>,
}

impl Ev {
    /// An event of `ty` by `bash` (child of `sshd`, child of `systemd`) on the host, as root.
    pub fn new(ty: EventType) -> Ev {
        Ev {
            ev: Event {
                num: 42,
                ts: 1_700_000_100_000_000_000,
                latency_ns: 1000,
                tid: 1000,
                user: UserInfo {
                    uid: 0,
                    name: "root".into(),
                    gid: 0,
                    group: "root".into(),
                    loginuid: -1,
                    loginname: "<NA>".into(),
                },
                ..Event::blank(ty)
            },
            chain: vec![
                proc("bash", "/usr/bin/bash", &[]),
                proc("sshd", "/usr/sbin/sshd", &["-D"]),
                proc("systemd", "/usr/lib/systemd/systemd", &[]),
            ],
        }
    }

    /// An execve of `exepath` with `args`, as the process table shows it after the exec.
    pub fn exec(exepath: &str, args: &[&str]) -> Ev {
        let name = exepath.rsplit('/').next().unwrap_or(exepath);
        let mut e = Ev::new(EventType::Execve);
        e.chain[0] = proc(name, exepath, args);
        e.ev.args = vec![
            Arg {
                name: "res",
                value: ArgValue::Int(0),
            },
            Arg {
                name: "exe",
                value: ArgValue::Str(exepath.into()),
            },
            Arg {
                name: "flags",
                value: ArgValue::Flags {
                    raw: 0,
                    names: &[(0, "EXE_WRITABLE")],
                },
            },
        ];
        e
    }

    /// An openat of `path` with `flags`, returning fd 3.
    pub fn open(path: &str, flags: u64) -> Ev {
        let mut e = Ev::new(EventType::Openat);
        e.ev.res = 3;
        e.ev.args = vec![
            Arg {
                name: "fd",
                value: ArgValue::Fd(3),
            },
            Arg {
                name: "dirfd",
                value: ArgValue::Fd(-100),
            },
            Arg {
                name: "name",
                value: ArgValue::Path(path.into()),
            },
            Arg {
                name: "flags",
                value: ArgValue::Flags {
                    raw: flags,
                    names: OPEN_FLAGS,
                },
            },
            Arg {
                name: "mode",
                value: ArgValue::Mode(0o644),
            },
        ];
        e.ev.fd = Some(FdInfo {
            num: 3,
            kind: FdKind::File,
            name: path.into(),
            nameraw: path.into(),
            open_flags: flags as u32,
            tuple: None,
            name_changed: true,
        });
        e
    }

    /// An inet socket event (connect, dup of a socket...) from local to remote.
    pub fn socket_fd(ty: EventType, local: (&str, u16), remote: (&str, u16), proto: L4Proto) -> Ev {
        let mut e = Ev::new(ty);
        let l: IpAddr = local.0.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let r: IpAddr = remote.0.parse().unwrap_or(IpAddr::from([0, 0, 0, 0]));
        let kind = if l.is_ipv4() {
            FdKind::Ipv4
        } else {
            FdKind::Ipv6
        };
        e.ev.fd = Some(FdInfo {
            num: 3,
            kind,
            name: format!("{}:{}->{}:{}", l, local.1, r, remote.1),
            nameraw: String::new(),
            open_flags: 0,
            tuple: Some(SocketTuple {
                proto,
                local: (l, local.1),
                remote: (r, remote.1),
                local_is_server: false,
            }),
            name_changed: true,
        });
        e.ev.args = vec![
            Arg {
                name: "res",
                value: ArgValue::Int(0),
            },
            Arg {
                name: "tuple",
                value: ArgValue::SockAddr(SockAddr::Inet {
                    ip: r,
                    port: remote.1,
                }),
            },
            Arg {
                name: "fd",
                value: ArgValue::Fd(3),
            },
        ];
        e
    }

    pub fn raw(mut self, raw: &str) -> Ev {
        if let Some(f) = self.ev.fd.as_mut() {
            f.nameraw = raw.into();
        }
        self
    }

    pub fn fd_num(mut self, num: i64) -> Ev {
        if let Some(f) = self.ev.fd.as_mut() {
            f.num = num;
        }
        self
    }

    pub fn res(mut self, res: i64) -> Ev {
        self.ev.res = res;
        self
    }

    pub fn arg(mut self, name: &'static str, value: ArgValue) -> Ev {
        self.ev.args.retain(|a| a.name != name);
        self.ev.args.push(Arg { name, value });
        self
    }

    /// Replaces the ancestors (parent first).
    pub fn parents(mut self, ancestors: &[(&str, &str, &[&str])]) -> Ev {
        self.chain.truncate(1);
        for (name, exe, args) in ancestors {
            self.chain.push(proc(name, exe, args));
        }
        self
    }

    pub fn with_proc(mut self, f: impl FnOnce(&mut Process)) -> Ev {
        f(&mut self.chain[0]);
        self
    }

    pub fn tty(self, tty: u32) -> Ev {
        self.with_proc(|p| p.tty = tty)
    }

    pub fn user(mut self, uid: u32, name: &str) -> Ev {
        self.ev.user.uid = uid;
        self.ev.user.name = name.into();
        self
    }

    pub fn loginuid(mut self, l: i64) -> Ev {
        self.ev.user.loginuid = l;
        self
    }

    /// Runs in a Docker container of `repository` (with tag `latest`).
    pub fn container(mut self, repository: &str) -> Ev {
        let mut c = ContainerInfo::id_only(
            "3f2a1b4c5d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f708",
            ContainerRuntime::Docker,
        );
        c.name = Some("web".into());
        c.image = Some(format!("{repository}:latest"));
        c.image_repository = Some(repository.into());
        c.image_tag = Some("latest".into());
        c.privileged = Some(false);
        c.start_ts = Some(1_700_000_000_000_000_000);
        c.metadata_complete = true;
        self.ev.container = Arc::new(c);
        self
    }

    pub fn privileged(mut self) -> Ev {
        let mut c = (*self.ev.container).clone();
        c.privileged = Some(true);
        self.ev.container = Arc::new(c);
        self
    }

    pub fn k8s_namespace(mut self, ns: &str) -> Ev {
        let mut c = (*self.ev.container).clone();
        c.k8s = Some(K8sInfo {
            pod_name: "web-0".into(),
            pod_uid: "uid-1".into(),
            ns_name: ns.into(),
            pod_labels: Default::default(),
        });
        self.ev.container = Arc::new(c);
        self
    }

    pub fn build(self) -> Event {
        let mut ev = self.ev;
        let mut parent: Option<Arc<Process>> = None;
        let n = self.chain.len();
        for (i, mut p) in self.chain.into_iter().rev().enumerate() {
            p.pid = 1000 - (n - 1 - i) as u32;
            p.ppid = p.pid.saturating_sub(1);
            p.vpid = p.pid;
            p.parent = parent.take();
            parent = Some(Arc::new(p));
        }
        if let Some(p) = parent {
            ev.tid = p.pid;
            ev.process = p;
        }
        ev
    }
}
