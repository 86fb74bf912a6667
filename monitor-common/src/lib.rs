//! Types shared by the kernel programs and the daemon.
//!
//! Everything here is `#[repr(C)]` plain data with a layout both sides agree on; the kernel
//! writes it, the daemon reads it. Nothing else lives here: no logic, no allocation.
#![no_std]

/// Kinds of record, numbered by the project and not by the architecture's syscall table, so
/// that the record format is the same on every architecture.
pub mod kind {
    // process
    pub const EXECVE: u16 = 1;
    pub const EXECVEAT: u16 = 2;
    pub const CLONE: u16 = 3;
    pub const CLONE3: u16 = 4;
    pub const FORK: u16 = 5;
    pub const VFORK: u16 = 6;
    pub const CHDIR: u16 = 7;
    pub const FCHDIR: u16 = 8;
    /// `sched_process_fork`: a new task, emitted before the child can run.
    pub const PROC_FORK: u16 = 9;
    /// `sched_process_exit`: a task ends (Falco's `procexit`).
    pub const PROC_EXIT: u16 = 10;
    // files
    pub const OPEN: u16 = 16;
    pub const OPENAT: u16 = 17;
    pub const OPENAT2: u16 = 18;
    pub const CREAT: u16 = 19;
    pub const UNLINK: u16 = 20;
    pub const UNLINKAT: u16 = 21;
    pub const RENAME: u16 = 22;
    pub const RENAMEAT: u16 = 23;
    pub const RENAMEAT2: u16 = 24;
    pub const MKDIR: u16 = 25;
    pub const MKDIRAT: u16 = 26;
    pub const RMDIR: u16 = 27;
    pub const CHMOD: u16 = 28;
    pub const FCHMOD: u16 = 29;
    pub const FCHMODAT: u16 = 30;
    pub const LINK: u16 = 31;
    pub const LINKAT: u16 = 32;
    pub const SYMLINK: u16 = 33;
    pub const SYMLINKAT: u16 = 34;
    // network and descriptors
    pub const SOCKET: u16 = 40;
    pub const CONNECT: u16 = 41;
    pub const ACCEPT: u16 = 42;
    pub const ACCEPT4: u16 = 43;
    pub const BIND: u16 = 44;
    pub const LISTEN: u16 = 45;
    pub const SENDTO: u16 = 46;
    pub const SENDMSG: u16 = 47;
    pub const RECVFROM: u16 = 48;
    pub const RECVMSG: u16 = 49;
    pub const DUP: u16 = 50;
    pub const DUP2: u16 = 51;
    pub const DUP3: u16 = 52;
    pub const CLOSE: u16 = 53;
    // privilege and kernel
    pub const SETUID: u16 = 64;
    pub const SETGID: u16 = 65;
    pub const SETRESUID: u16 = 66;
    pub const SETRESGID: u16 = 67;
    pub const CAPSET: u16 = 68;
    pub const PTRACE: u16 = 69;
    pub const MOUNT: u16 = 70;
    pub const UMOUNT2: u16 = 71;
    pub const INIT_MODULE: u16 = 72;
    pub const FINIT_MODULE: u16 = 73;
    pub const BPF: u16 = 74;
    pub const MEMFD_CREATE: u16 = 75;
    pub const SETNS: u16 = 76;
    pub const UNSHARE: u16 = 77;
    pub const USERFAULTFD: u16 = 78;
    pub const CHROOT: u16 = 79;
    /// One past the largest kind: the size of per-kind tables.
    pub const MAX: u16 = 80;
}

/// Record flags (`RecordHeader::flags`).
pub mod flags {
    /// A string or buffer was cut to fit its limit.
    pub const TRUNCATED: u16 = 1;
    /// The kernel sent SIGKILL to the task because of an enforcing rule.
    pub const KILLED: u16 = 2;
    /// An enforcing rule matched but was in dry-run: the task was not killed.
    pub const WOULD_KILL: u16 = 4;
    /// The socket tuple in the payload was read from the kernel's socket.
    pub const HAS_TUPLE: u16 = 32;
}

/// Limits. Every loop in the kernel programs is bounded by one of these.
pub mod limits {
    /// Longest path or string copied, including the NUL.
    pub const MAX_STR: usize = 4096;
    /// Most argv (or envp) entries copied for an exec.
    pub const MAX_ARGS: usize = 32;
    /// Bytes of argv copied for an exec in all.
    pub const MAX_ARGV_BYTES: usize = 4096;
    /// Where items may start in a record's payload (a power of two: the programs mask offsets
    /// with it to satisfy the verifier). A record's payload may run up to `MAX_PAYLOAD +
    /// MAX_STR + 4` bytes, since the last item may start just below this bound.
    pub const MAX_PAYLOAD: usize = 8192;
    /// Ancestors walked in the kernel for enforcement checks.
    pub const MAX_ANCESTORS: usize = 8;
    /// Bytes of a socket address copied.
    pub const MAX_SOCKADDR: usize = 112;
}

/// Indexes of the per-CPU drop counters (`DROPS` map).
pub mod drop {
    /// The ring buffer was full: the record was lost.
    pub const RINGBUF_FULL: u32 = 0;
    /// An exec's entry could not be kept until the exec (the kernel could not allocate the
    /// task's storage).
    pub const PENDING_FULL: u32 = 1;
    /// Reading the task's memory failed.
    pub const READ_FAILED: u32 = 2;
    pub const COUNT: u32 = 3;
}

/// Indexes of the per-CPU counters of what the kernel filtered out on purpose.
pub mod filtered {
    /// The syscall is not enabled (no rule and no table needs it).
    pub const DISABLED: u32 = 0;
    /// An open/file path was dropped by the in-kernel path prefilter.
    pub const PREFILTER: u32 = 1;
    /// The syscall failed and no rule looks at failures of its kind.
    pub const FAILED: u32 = 2;
    /// The event came from the monitor itself.
    pub const SELF: u32 = 3;
    /// A send/receive on a TCP socket that no rule can match.
    pub const INET_STREAM: u32 = 4;
    /// A send without a destination address that no rule can match.
    pub const NO_ADDR: u32 = 5;
    /// A 32-bit (ia32) syscall: its numbers and argument registers are not the ones the
    /// capture tables describe. (Per-syscall tracepoints never showed these either.)
    pub const COMPAT: u32 = 6;
    pub const COUNT: u32 = 7;
}

/// Fixed head of every record in the ring buffer. Variable items follow it, each an
/// [`ItemHeader`] and its bytes, `nitems` of them.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct RecordHeader {
    /// `bpf_ktime_get_boot_ns` at the syscall's exit (or the tracepoint).
    pub ts_ns: u64,
    /// Duration of the syscall, entry to exit.
    pub latency_ns: u64,
    /// The task's cgroup v2 id (`bpf_get_current_cgroup_id`).
    pub cgroup_id: u64,
    /// Return value of the syscall.
    pub ret: i64,
    /// Raw syscall arguments as integers (pointers included, for what they are worth).
    pub args: [u64; 6],
    pub kind: u16,
    pub flags: u16,
    /// Number of items after the header.
    pub nitems: u16,
    /// Total bytes of items after the header.
    pub payload_len: u16,
    /// CPU that wrote the record.
    pub cpu: u32,
    pub _pad: u32,
    /// Thread group id (what userspace calls the pid).
    pub pid: u32,
    pub tid: u32,
    /// The real parent's thread group id.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Audit login uid; `u32::MAX` when unset.
    pub loginuid: u32,
    /// Session id of the process (for `proc.sname`/tty work); 0 when unknown.
    pub sid: u32,
    /// Controlling tty device number (`tty_struct->index` + major << 20), 0 when none.
    pub tty: u32,
    pub comm: [u8; 16],
}

/// One variable item after a record header.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct ItemHeader {
    /// What the bytes are (see [`item`]).
    pub tag: u16,
    /// Number of bytes that follow (not padded).
    pub len: u16,
}

/// Item tags.
pub mod item {
    /// A path or string argument, as the task passed it (no NUL).
    pub const PATH: u16 = 1;
    /// A second path (rename/link/symlink targets and the like).
    pub const PATH2: u16 = 2;
    /// argv, each argument followed by a NUL.
    pub const ARGV: u16 = 3;
    /// A `struct sockaddr` as the task passed it.
    pub const SOCKADDR: u16 = 4;
    /// A [`super::SockTuple`] read from the kernel's socket.
    pub const TUPLE: u16 = 5;
    /// An [`super::ExecInfo`]: what a successful exec leaves the new program with.
    pub const EXEC_INFO: u16 = 6;
    /// A [`super::ForkInfo`].
    pub const FORK: u16 = 7;
    /// A `struct open_how` (openat2).
    pub const OPEN_HOW: u16 = 8;
    /// A third string argument (mount's filesystem type).
    pub const PATH3: u16 = 9;
    /// The leading bytes of a struct argument (clone3's `struct clone_args`).
    pub const RAW: u16 = 10;
    /// The enforcement conjunction that matched (a u32 `rule_id` of [`super::EnfConj`]).
    pub const ENFORCE: u16 = 11;
}

/// The address tuple of a socket, read from the kernel at syscall exit.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct SockTuple {
    /// AF_INET, AF_INET6 or AF_UNIX.
    pub family: u16,
    /// SOCK_STREAM, SOCK_DGRAM...
    pub sock_type: u16,
    /// IPPROTO_TCP, IPPROTO_UDP...
    pub protocol: u16,
    /// Local port, host order.
    pub lport: u16,
    /// Remote port, host order.
    pub rport: u16,
    pub _pad: [u16; 3],
    /// Local address (IPv4 in the first 4 bytes).
    pub laddr: [u8; 16],
    /// Remote address (IPv4 in the first 4 bytes).
    pub raddr: [u8; 16],
}

/// What `sched_process_fork` tells about a new task.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ForkInfo {
    pub child_pid: u32,
    pub child_tid: u32,
    /// Set when the child is a thread of the parent's process (`CLONE_THREAD`).
    pub is_thread: u32,
    pub _pad: u32,
}

/// Byte offsets of the syscall argument registers in x86_64's `struct pt_regs` (di, si, dx,
/// r10, r8, r9), where the programs read a syscall's arguments at its exit. A fixed ABI
/// layout, compiled into the programs (the verifier type-checks each load through the
/// pointer, so the offsets must be constants); the daemon checks them against the running
/// kernel's BTF before loading.
pub const SYSCALL_ARG_REGS: [usize; 6] = [112, 104, 96, 56, 72, 64];
/// The `struct pt_regs` members those offsets must belong to.
pub const SYSCALL_ARG_REG_NAMES: [&str; 6] = ["di", "si", "dx", "r10", "r8", "r9"];
/// Byte offset of `orig_ax` in x86_64's `struct pt_regs`: the syscall number, which the raw
/// `sys_exit` tracepoint does not pass on its own. Checked against BTF like the others.
pub const SYSCALL_NR_REG: usize = 120;
/// `TS_COMPAT` in x86's `thread_info.status`: set while the task runs a 32-bit syscall.
pub const TS_COMPAT: u32 = 0x0002;
/// Where a 32-bit (ia32) syscall's six arguments are in `struct pt_regs` (bx, cx, dx, si, di,
/// bp), and its execve and execveat numbers: a 32-bit program's exec is recorded and enforced
/// like a 64-bit one's.
pub const IA32_SYSCALL_ARG_REGS: [usize; 6] = [40, 88, 96, 104, 112, 32];
pub const IA32_SYSCALL_ARG_REG_NAMES: [&str; 6] = ["bx", "cx", "dx", "si", "di", "bp"];
pub const IA32_NR_EXECVE: i64 = 11;
pub const IA32_NR_EXECVEAT: i64 = 358;

/// The new program's credentials and pid as its own namespace sees it, read in the kernel at
/// a successful exec (so that the daemon need not read /proc while the program may be gone).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct ExecInfo {
    pub cap_effective: u64,
    pub cap_permitted: u64,
    /// The pid in the task's own pid namespace (0: unknown).
    pub vpid: u32,
    pub _pad: u32,
}

/// Offsets into kernel structures, computed by the daemon from the running kernel's BTF and
/// handed to the programs at load time, so that no kernel's layout is compiled in.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KernelOffsets {
    pub task_real_parent: u32,
    pub task_tgid: u32,
    pub task_pid: u32,
    pub task_loginuid: u32,
    pub task_comm: u32,
    pub task_files: u32,
    pub task_signal: u32,
    pub signal_tty: u32,
    pub tty_index: u32,
    pub tty_driver: u32,
    pub tty_driver_major: u32,
    pub tty_driver_minor_start: u32,
    pub files_fdt: u32,
    pub fdtable_fd: u32,
    pub file_private_data: u32,
    pub socket_sk: u32,
    pub socket_type: u32,
    pub sk_family: u32,
    pub sk_daddr: u32,
    pub sk_rcv_saddr: u32,
    pub sk_dport: u32,
    pub sk_num: u32,
    pub sk_v6_daddr: u32,
    pub sk_v6_rcv_saddr: u32,
    pub sk_protocol: u32,
    pub task_mm: u32,
    pub mm_arg_start: u32,
    pub mm_arg_end: u32,
    pub task_real_cred: u32,
    pub cred_cap_effective: u32,
    pub cred_cap_permitted: u32,
    pub task_thread_pid: u32,
    pub pid_level: u32,
    pub pid_numbers: u32,
    /// Size of `struct upid` (the elements of `pid.numbers`).
    pub upid_size: u32,
    pub bprm_filename: u32,
    /// `task_struct.thread_info.status` (0: unknown, no compat check).
    pub task_ti_status: u32,
    /// Set once the daemon has filled the offsets; the programs read nothing from kernel
    /// structures before that.
    pub valid: u32,
}

/// Per-kind behaviour that the daemon configures (`SYSCALL_CONFIG` map, indexed by kind).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct KindConfig {
    /// Non-zero when some rule or table needs this kind.
    pub enabled: u8,
    /// Non-zero when failed calls of this kind must be sent too.
    pub want_failed: u8,
    /// Non-zero when the path prefilter applies to this kind.
    pub prefilter: u8,
    /// Non-zero when no rule can match this kind on a TCP socket: such calls are dropped at
    /// entry (sends and receives on inet stream sockets).
    pub skip_inet_stream: u8,
    /// Non-zero when no rule can match this kind without a destination address (sendto
    /// with a NULL `dest_addr`, argument 4: a connected socket, whose name does not change):
    /// such calls are dropped before the socket is looked at.
    pub skip_no_addr: u8,
    pub _pad: [u8; 3],
}

/// Key of the path prefilter (an LPM trie on path bytes): an open whose absolute path has
/// none of the loaded prefixes is dropped in the kernel.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct PrefixKey {
    /// Length in bits, as LPM tries want.
    pub prefixlen: u32,
    pub data: [u8; PREFIX_MAX],
}

/// Longest path prefix the prefilter knows; longer prefixes are cut, which only widens the
/// filter (it stays correct).
pub const PREFIX_MAX: usize = 64;

/// Longest path suffix the prefilter compares; a rule's longer suffix disables the prefilter.
pub const SUFFIX_MAX: usize = 32;
/// Most suffixes the prefilter holds.
pub const MAX_SUFFIXES: u32 = 16;
/// Words of the prefilter's suffix-tail bitmap: one bit per possible last two bytes of a path,
/// set when some suffix ends that way. Most paths end in a pair no suffix ends in, and are
/// judged by one lookup instead of a comparison with every suffix.
pub const SUFFIX_TAIL_WORDS: u32 = 65536 / 64;

/// Words of the prefilter's prefix-head bitmap: one bit per hash of a path's first 8 bytes,
/// set for the first 8 bytes of every prefix. A path whose head hashes to a clear bit starts
/// with no prefix, and skips the trie lookup.
pub const PREFIX_HEAD_WORDS: u32 = 65536 / 64;

/// Bit index in the prefix-head bitmap of a path whose first 8 bytes, as a little-endian word,
/// are `head`.
pub const fn prefix_head_index(head: u64) -> u32 {
    (head.wrapping_mul(0x9E37_79B9_7F4A_7C15) >> 48) as u32
}

/// Bit index in the suffix-tail bitmap of a path whose last two bytes are `a`, `b`.
pub const fn suffix_tail_index(a: u8, b: u8) -> u32 {
    ((a as u32) << 8) | b as u32
}

/// One path suffix of the prefilter (`SUFFIXES` map): an open whose path ends with it passes.
/// Stored right-aligned in `SUFFIX_MAX` bytes with a mask of the bytes that count, so the
/// kernel compares the path's last `SUFFIX_MAX` bytes in four word operations.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Suffix {
    pub len: u32,
    pub _pad: u32,
    pub pattern: [u64; SUFFIX_MAX / 8],
    pub mask: [u64; SUFFIX_MAX / 8],
}

/// Global settings (`SETTINGS` map, one entry).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct Settings {
    /// The daemon's own pid: its syscalls are not reported.
    pub self_pid: u32,
    /// Non-zero: the in-kernel path prefilter is active.
    pub prefilter_on: u32,
    /// Non-zero: enforcement rules only report, they never kill (global dry-run).
    pub dry_run: u32,
    /// Number of valid entries in `SUFFIXES`.
    pub suffix_count: u32,
    /// Non-zero when the prefix-head bitmap is loaded (every prefix has 8 bytes or more).
    pub prefix_heads_on: u32,
    /// Number of valid entries in `ENF_CONJ`; 0 turns enforcement off.
    pub enf_count: u32,
    /// Number of valid entries in `NAME_BITS`.
    pub name_count: u32,
    /// Unread bytes in the ring buffer above which a record wakes the reader. Below it,
    /// records are sent without a wakeup and the reader collects them on its next tick: a
    /// wakeup is an interrupt and a context switch per event at low rates, the most expensive
    /// part of sending one.
    pub wake_bytes: u32,
}

/// Enforcement, decided at exec entry. Each distinct predicate of the loaded enforcing rules
/// is one bit of a 64-bit fact set; the kernel computes the facts of an exec with a handful
/// of map lookups, and each rule (in disjunctive normal form) is a list of conjunctions, each
/// a pair of masks: bits that must be set and bits that must be clear.
pub mod enforce {
    /// Most conjunctions over all enforcing rules.
    pub const MAX_CONJ: u32 = 64;
    /// Most entries of `NAME_BITS` (the new program's names the rules test).
    pub const MAX_NAMES: u32 = 32;
    /// `COMM_BITS` slot for a name that any ancestor may have; slots 1..=MAX_ANCESTORS are
    /// the ancestor at exactly that depth (1 = parent).
    pub const SLOT_ANY_ANCESTOR: u32 = 100;
    /// Bytes of an exec path that the `EXE_BITS` trie compares.
    pub const EXE_KEY_MAX: usize = 128;
    /// `EnfConj::flags`: only report.
    pub const DRY_RUN: u32 = 1;
    /// `EnfConj::flags`: applies to execve / execveat.
    pub const ON_EXECVE: u32 = 2;
    pub const ON_EXECVEAT: u32 = 4;
}

/// Key of the `COMM_BITS` map: a task name in a slot (see [`enforce`]).
#[repr(C)]
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CommKey {
    pub slot: u32,
    pub comm: [u8; 16],
}

/// A name of the new program (`NAME_BITS` map): the exec'd path ends with `/NAME`. Stored
/// like [`Suffix`], right-aligned with a mask, plus the fact bits it sets.
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct NameBits {
    pub len: u32,
    pub _pad: u32,
    pub pattern: [u64; SUFFIX_MAX / 8],
    pub mask: [u64; SUFFIX_MAX / 8],
    pub bits: u64,
}

/// One conjunction of an enforcing rule (`ENF_CONJ` map).
#[repr(C)]
#[derive(Clone, Copy, Debug, Default)]
pub struct EnfConj {
    pub must_set: u64,
    pub must_clear: u64,
    /// Index of the enforcing rule (reported back in the `ENFORCE` item).
    pub rule_id: u32,
    pub flags: u32,
}

#[cfg(feature = "user")]
mod pod {
    use super::*;
    // SAFETY: all of these are repr(C) plain data with no padding that carries meaning and no
    // pointers; any bit pattern is a valid value.
    unsafe impl aya::Pod for RecordHeader {}
    unsafe impl aya::Pod for KernelOffsets {}
    unsafe impl aya::Pod for KindConfig {}
    unsafe impl aya::Pod for PrefixKey {}
    unsafe impl aya::Pod for Settings {}
    unsafe impl aya::Pod for SockTuple {}
    unsafe impl aya::Pod for ExecInfo {}
    unsafe impl aya::Pod for ForkInfo {}
    unsafe impl aya::Pod for Suffix {}
    unsafe impl aya::Pod for CommKey {}
    unsafe impl aya::Pod for EnfConj {}
    unsafe impl aya::Pod for NameBits {}
}
