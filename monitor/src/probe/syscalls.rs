//! Which tracepoints carry which record kind, and the architecture's syscall numbers for them.

use monitor_common::kind;

/// One captured syscall: its record kind, the name of its `syscalls/sys_{enter,exit}_NAME`
/// tracepoints, and its number on this architecture (None where the architecture lacks it).
pub struct Syscall {
    pub kind: u16,
    pub tracepoint: &'static str,
    pub nr: Option<i64>,
}

macro_rules! sc {
    ($kind:ident, $tp:literal, $nr:ident) => {
        Syscall {
            kind: kind::$kind,
            tracepoint: $tp,
            nr: Some(libc::$nr as i64),
        }
    };
}

/// Syscalls that only some architectures have (x86_64 keeps the legacy ones).
#[cfg(target_arch = "x86_64")]
macro_rules! legacy {
    ($kind:ident, $tp:literal, $nr:ident) => {
        sc!($kind, $tp, $nr)
    };
}
#[cfg(not(target_arch = "x86_64"))]
macro_rules! legacy {
    ($kind:ident, $tp:literal, $nr:ident) => {
        Syscall {
            kind: kind::$kind,
            tracepoint: $tp,
            nr: None,
        }
    };
}

pub const SYSCALLS: &[Syscall] = &[
    sc!(EXECVE, "execve", SYS_execve),
    sc!(EXECVEAT, "execveat", SYS_execveat),
    sc!(CLONE, "clone", SYS_clone),
    sc!(CLONE3, "clone3", SYS_clone3),
    legacy!(FORK, "fork", SYS_fork),
    legacy!(VFORK, "vfork", SYS_vfork),
    sc!(CHDIR, "chdir", SYS_chdir),
    sc!(FCHDIR, "fchdir", SYS_fchdir),
    legacy!(OPEN, "open", SYS_open),
    sc!(OPENAT, "openat", SYS_openat),
    sc!(OPENAT2, "openat2", SYS_openat2),
    legacy!(CREAT, "creat", SYS_creat),
    legacy!(UNLINK, "unlink", SYS_unlink),
    sc!(UNLINKAT, "unlinkat", SYS_unlinkat),
    legacy!(RENAME, "rename", SYS_rename),
    sc!(RENAMEAT, "renameat", SYS_renameat),
    sc!(RENAMEAT2, "renameat2", SYS_renameat2),
    legacy!(MKDIR, "mkdir", SYS_mkdir),
    sc!(MKDIRAT, "mkdirat", SYS_mkdirat),
    legacy!(RMDIR, "rmdir", SYS_rmdir),
    legacy!(CHMOD, "chmod", SYS_chmod),
    sc!(FCHMOD, "fchmod", SYS_fchmod),
    sc!(FCHMODAT, "fchmodat", SYS_fchmodat),
    legacy!(LINK, "link", SYS_link),
    sc!(LINKAT, "linkat", SYS_linkat),
    legacy!(SYMLINK, "symlink", SYS_symlink),
    sc!(SYMLINKAT, "symlinkat", SYS_symlinkat),
    sc!(SOCKET, "socket", SYS_socket),
    sc!(CONNECT, "connect", SYS_connect),
    sc!(ACCEPT, "accept", SYS_accept),
    sc!(ACCEPT4, "accept4", SYS_accept4),
    sc!(BIND, "bind", SYS_bind),
    sc!(LISTEN, "listen", SYS_listen),
    sc!(SENDTO, "sendto", SYS_sendto),
    sc!(SENDMSG, "sendmsg", SYS_sendmsg),
    sc!(RECVFROM, "recvfrom", SYS_recvfrom),
    sc!(RECVMSG, "recvmsg", SYS_recvmsg),
    sc!(DUP, "dup", SYS_dup),
    legacy!(DUP2, "dup2", SYS_dup2),
    sc!(DUP3, "dup3", SYS_dup3),
    sc!(CLOSE, "close", SYS_close),
    sc!(SETUID, "setuid", SYS_setuid),
    sc!(SETGID, "setgid", SYS_setgid),
    sc!(SETRESUID, "setresuid", SYS_setresuid),
    sc!(SETRESGID, "setresgid", SYS_setresgid),
    sc!(CAPSET, "capset", SYS_capset),
    sc!(PTRACE, "ptrace", SYS_ptrace),
    sc!(MOUNT, "mount", SYS_mount),
    // umount2's tracepoint is named after the kernel's SYSCALL_DEFINE2(umount, ...).
    sc!(UMOUNT2, "umount", SYS_umount2),
    sc!(INIT_MODULE, "init_module", SYS_init_module),
    sc!(FINIT_MODULE, "finit_module", SYS_finit_module),
    sc!(BPF, "bpf", SYS_bpf),
    sc!(MEMFD_CREATE, "memfd_create", SYS_memfd_create),
    sc!(SETNS, "setns", SYS_setns),
    sc!(UNSHARE, "unshare", SYS_unshare),
    sc!(USERFAULTFD, "userfaultfd", SYS_userfaultfd),
    sc!(CHROOT, "chroot", SYS_chroot),
];

/// Kinds the process table needs whatever the rules say.
pub const ALWAYS: &[u16] = &[
    kind::EXECVE,
    kind::EXECVEAT,
    kind::CHDIR,
    kind::FCHDIR,
    kind::PROC_FORK,
    kind::PROC_EXIT,
];

/// Kinds subject to the open path prefilter.
pub const PREFILTERED: &[u16] = &[kind::OPEN, kind::OPENAT, kind::OPENAT2, kind::CREAT];
