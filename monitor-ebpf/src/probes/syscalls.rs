//! The syscall programs. A syscall is captured by its exit alone: the arguments are still in
//! the task's saved registers there, and what they point to is still valid, so one tracepoint
//! hit per call does it (the fixed cost of a hit is most of the cost of capture). A successful
//! exec is the exception: its registers belong to the new program by then, so it is recorded
//! from inside the exec (`process`).
//!
//! Two ways in, one capture (the daemon attaches one of them, `capture.syscall_hook`):
//! - `sys_exit`, on each captured syscall's own `syscalls/sys_exit_*` event: a syscall no
//!   rule needs never runs a program. Each hit pays the event's perf path (buffer, recursion
//!   context, caller registers, program array) and two helper calls to reach the registers.
//! - `sys_exit_raw`, one BTF program on the raw `sys_exit` tracepoint (as Falco's modern
//!   probe): a hit costs less (measured here: about 110 ns less per open, and the registers
//!   come as a typed pointer), but every syscall of the machine runs it, if only to look up
//!   its number (about 30 ns a syscall here; redis-benchmark lost some 4% more than with
//!   per-syscall events). It pays where the captured syscalls are a large part of all
//!   syscalls (builds, scripts: opens and execs), and costs where they are not (servers).

use aya_ebpf::{
    EbpfContext,
    helpers::generated as raw,
    macros::{btf_tracepoint, tracepoint},
    programs::{BtfTracePointContext, TracePointContext},
};
use monitor_common::{
    SYSCALL_ARG_REGS, SYSCALL_NR_REG, Settings, drop, filtered, flags, item, kind,
};

use crate::maps::{self, DROPS, FILTERED};
use crate::probes::{file, network};
use crate::record::Record;
use crate::task;

/// A syscall at its exit: its kind, its return value, and the task's saved user registers,
/// which still hold its arguments.
pub struct Exit {
    pub kind: u16,
    pub ret: i64,
    regs: *const u8,
}

impl Exit {
    /// From a syscall's own exit event (None for a kind the capture tables do not know).
    /// The context holds the number at 8 and the return value at 16.
    #[inline(always)]
    pub fn of_tracepoint(ctx: &TracePointContext) -> Option<Exit> {
        let nr: i32 = field(ctx, 8);
        let kind = maps::kind_of_nr(i64::from(nr));
        if kind == 0 {
            return None;
        }
        let Some(regs) = task::user_regs() else {
            maps::count(&DROPS, drop::READ_FAILED);
            return None;
        };
        Some(Exit {
            kind,
            ret: field(ctx, 16),
            regs,
        })
    }

    /// From the raw `sys_exit` tracepoint, which passes the registers (a typed pointer) and
    /// the return value; the number is the registers' `orig_ax`.
    #[inline(always)]
    pub fn of_raw(ctx: &BtfTracePointContext) -> Option<Exit> {
        let regs: *const u8 = ctx.arg(0);
        let ret: i64 = ctx.arg(1);
        let kind = maps::kind_of_nr(task::reg(regs, SYSCALL_NR_REG) as i64);
        if kind == 0 {
            return None;
        }
        Some(Exit { kind, ret, regs })
    }

    /// Argument `i` (0..6): one load, so a filter that looks at one argument loads only it.
    #[inline(always)]
    pub fn arg(&self, i: usize) -> u64 {
        task::reg(self.regs, SYSCALL_ARG_REGS[i % 6])
    }

    #[inline(always)]
    pub fn args(&self) -> [u64; 6] {
        [
            self.arg(0),
            self.arg(1),
            self.arg(2),
            self.arg(3),
            self.arg(4),
            self.arg(5),
        ]
    }
}

/// A field of a syscall tracepoint's context: `int __syscall_nr` at 8, `long ret` at 16. A
/// plain load: the verifier allows constant-offset reads of a tracepoint context.
#[inline(always)]
fn field<T: Copy>(ctx: &TracePointContext, off: usize) -> T {
    // SAFETY: `off` is a constant, aligned offset inside the context the kernel built.
    // Volatile, so that the compiler keeps each load at its constant offset.
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(off) as *const T) }
}

#[inline(always)]
fn capture(e: &Exit) {
    let _ = if file::is_open(e.kind) {
        file::try_exit_open(e)
    } else {
        try_sys_exit(e)
    };
}

/// A captured syscall's exit, from its own `syscalls/sys_exit_*` event.
#[tracepoint]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    if let Some(e) = Exit::of_tracepoint(&ctx) {
        capture(&e);
    }
    0
}

/// Every syscall's exit, from the raw tracepoint.
#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_raw(ctx: BtfTracePointContext) -> i32 {
    if let Some(e) = Exit::of_raw(&ctx) {
        capture(&e);
    }
    0
}

const NONE: u8 = 0xff;

/// How the arguments of a kind are read at exit.
#[derive(Clone, Copy)]
struct Shape {
    /// Argument indexes of up to three strings (NONE: absent).
    p1: u8,
    p2: u8,
    p3: u8,
    /// A buffer argument: pointer index, length index, how the length is given.
    blob_ptr: u8,
    blob_len: u8,
    blob_mode: u8,
    blob_tag: u16,
    /// Where the fd of a socket whose tuple is read comes from.
    tuple: u8,
}

/// The length is the value of argument `blob_len`.
const LEN_VALUE: u8 = 1;
/// The length is behind the pointer in argument `blob_len` (accept, recvfrom).
const LEN_PTR: u8 = 2;
/// Argument `blob_ptr` is a `struct msghdr *` whose msg_name is the buffer.
const MSGHDR: u8 = 3;

const TUPLE_ARG0: u8 = 1;
const TUPLE_RET: u8 = 2;

const fn paths(p1: u8, p2: u8) -> Shape {
    Shape {
        p1,
        p2,
        p3: NONE,
        blob_ptr: NONE,
        blob_len: NONE,
        blob_mode: 0,
        blob_tag: 0,
        tuple: 0,
    }
}

const fn sockaddr(ptr: u8, len: u8, mode: u8, tuple: u8) -> Shape {
    Shape {
        p1: NONE,
        p2: NONE,
        p3: NONE,
        blob_ptr: ptr,
        blob_len: len,
        blob_mode: mode,
        blob_tag: item::SOCKADDR,
        tuple,
    }
}

const PLAIN: Shape = paths(NONE, NONE);

#[inline(always)]
fn shape(k: u16) -> Shape {
    match k {
        kind::UNLINK
        | kind::MKDIR
        | kind::RMDIR
        | kind::CHMOD
        | kind::CHDIR
        | kind::UMOUNT2
        | kind::MEMFD_CREATE
        | kind::CHROOT => paths(0, NONE),
        kind::UNLINKAT | kind::MKDIRAT | kind::FCHMODAT | kind::FINIT_MODULE => paths(1, NONE),
        kind::INIT_MODULE => paths(2, NONE),
        kind::RENAME | kind::LINK | kind::SYMLINK => paths(0, 1),
        kind::RENAMEAT | kind::RENAMEAT2 | kind::LINKAT => paths(1, 3),
        kind::SYMLINKAT => paths(0, 2),
        kind::MOUNT => Shape {
            p3: 2,
            ..paths(0, 1)
        },
        kind::CONNECT => sockaddr(1, 2, LEN_VALUE, TUPLE_ARG0),
        kind::BIND | kind::SENDTO => {
            if k == kind::BIND {
                sockaddr(1, 2, LEN_VALUE, 0)
            } else {
                sockaddr(4, 5, LEN_VALUE, TUPLE_ARG0)
            }
        }
        kind::ACCEPT | kind::ACCEPT4 => sockaddr(1, 2, LEN_PTR, TUPLE_RET),
        kind::RECVFROM => sockaddr(4, 5, LEN_PTR, TUPLE_ARG0),
        kind::SENDMSG | kind::RECVMSG => sockaddr(1, NONE, MSGHDR, TUPLE_ARG0),
        kind::CLONE3 => Shape {
            blob_ptr: 0,
            blob_len: 1,
            blob_mode: LEN_VALUE,
            blob_tag: item::RAW,
            ..PLAIN
        },
        _ => PLAIN,
    }
}

/// Whether a call that passed the cheap filters is to be sent. Not the monitor's own calls,
/// and not 32-bit syscalls, whose numbers the kind table does not describe (a 32-bit `fork`
/// has the number of the 64-bit `open`). Checked this late because most calls end in those
/// filters, and neither check is free.
#[inline(always)]
pub fn to_send(settings: &Settings) -> bool {
    if maps::is_self(settings) {
        return false;
    }
    if task::in_compat_syscall(maps::offsets()) {
        maps::count(&FILTERED, filtered::COMPAT);
        return false;
    }
    true
}

/// Do nothing. Attached alone by the capture benchmark (`monitor bench-floor`), never by the
/// daemon: the cost of a tracepoint hit itself, which no program can go below.
#[tracepoint]
pub fn sys_exit_noop(_ctx: TracePointContext) -> u32 {
    0
}

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_raw_noop(_ctx: BtfTracePointContext) -> i32 {
    0
}

#[inline(always)]
fn try_sys_exit(e: &Exit) -> Result<(), i64> {
    let k = e.kind;
    // The monitor's own calls are dropped after the cheap filters below (most sends end in
    // the no-address one), not before them.
    let Some((cfg, settings)) = maps::enabled(k) else {
        return Ok(());
    };
    let ret = e.ret;

    if k == kind::EXECVE || k == kind::EXECVEAT {
        // A successful exec was sent by sched_process_exec, and its registers now belong to
        // the new program. A failed one left them alone: its arguments are still there, and
        // the kernel has just read the strings, so they are in.
        if ret >= 0 || !to_send(&settings) {
            return Ok(());
        }
        let args = e.args();
        let (filename, argv) = if k == kind::EXECVE {
            (args[0], args[1])
        } else {
            (args[1], args[2])
        };
        let mut r = Record::new(k, &args, 0, ret).ok_or(0)?;
        r.push_user_str(item::PATH, filename);
        r.push_user_argv(item::ARGV, argv);
        r.submit();
        return Ok(());
    }

    if ret < 0 && cfg.want_failed == 0 {
        maps::count(&FILTERED, filtered::FAILED);
        return Ok(());
    }
    if ret == 0 && matches!(k, kind::CLONE | kind::CLONE3 | kind::FORK | kind::VFORK) {
        // The child's half of a fork says nothing the parent's half and PROC_FORK do not.
        return Ok(());
    }
    if cfg.skip_no_addr != 0 && e.arg(4) == 0 {
        // (Set by the daemon for sendto only, whose argument 4 is the destination.)
        maps::count(&FILTERED, filtered::NO_ADDR);
        return Ok(());
    }
    if !to_send(&settings) {
        return Ok(());
    }
    // Every other syscall is captured by its exit alone: the arguments are still in the
    // task's registers, so one tracepoint hit per call instead of two.
    let args = e.args();
    if cfg.skip_inet_stream != 0 && task::is_inet_stream(maps::offsets(), args[0] as i32 as i64) {
        maps::count(&FILTERED, filtered::INET_STREAM);
        return Ok(());
    }
    let mut r = Record::new(k, &args, 0, ret).ok_or(0)?;
    let s = shape(k);
    if s.p1 != NONE {
        r.push_user_str(item::PATH, arg(&args, s.p1));
    }
    if s.p2 != NONE {
        r.push_user_str(item::PATH2, arg(&args, s.p2));
    }
    if s.p3 != NONE {
        r.push_user_str(item::PATH3, arg(&args, s.p3));
    }
    if s.blob_ptr != NONE {
        let (ptr, len) = blob(&args, &s);
        r.push_user_bytes(s.blob_tag, ptr, len);
    }
    if s.tuple != 0 {
        let fd = if s.tuple == TUPLE_RET {
            ret
        } else {
            args[0] as i64
        };
        if let Some(t) = network::socket_tuple(fd) {
            r.push_value(item::TUPLE, &t);
            r.set_flag(flags::HAS_TUPLE);
        }
    }
    r.submit();
    Ok(())
}

#[inline(always)]
fn arg(args: &[u64; 6], i: u8) -> u64 {
    args[(i as usize) % 6]
}

/// Pointer and length of a shape's buffer argument.
#[inline(always)]
fn blob(args: &[u64; 6], s: &Shape) -> (u64, u64) {
    let ptr = arg(args, s.blob_ptr);
    match s.blob_mode {
        LEN_VALUE => (ptr, arg(args, s.blob_len)),
        LEN_PTR => (ptr, read_user_u32(arg(args, s.blob_len))),
        MSGHDR => {
            // struct msghdr { void *msg_name; int msg_namelen; ... }
            let name = read_user_u64(ptr);
            let len = read_user_u32(ptr + 8);
            (name, len)
        }
        _ => (0, 0),
    }
}

#[inline(always)]
fn read_user_u64(p: u64) -> u64 {
    let mut v: u64 = 0;
    if p != 0 {
        // SAFETY: reads 8 bytes of user memory into a local; failure leaves 0.
        unsafe { raw::bpf_probe_read_user(&mut v as *mut u64 as *mut _, 8, p as *const _) };
    }
    v
}

#[inline(always)]
fn read_user_u32(p: u64) -> u64 {
    let mut v: u32 = 0;
    if p != 0 {
        // SAFETY: reads 4 bytes of user memory into a local; failure leaves 0.
        unsafe { raw::bpf_probe_read_user(&mut v as *mut u32 as *mut _, 4, p as *const _) };
    }
    u64::from(v)
}
