//! The generic syscall programs. A syscall is captured by its exit alone: the arguments are
//! still in the task's saved registers there, and what they point to is still valid, so one
//! tracepoint hit per call does it (the fixed cost of a hit is most of the cost of capture).
//! Only exec needs its entry too (its registers are reset when the new program is loaded):
//! the entry program keeps exec's arguments in task-local storage.

use aya_ebpf::{
    EbpfContext,
    helpers::{bpf_ktime_get_boot_ns, generated as raw},
    macros::tracepoint,
    programs::TracePointContext,
};
use monitor_common::{Settings, drop, filtered, flags, item, kind};

use crate::maps::{self, DROPS, FILTERED, NR_KIND};
use crate::probes::network;
use crate::record::Record;
use crate::task;

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

/// A field of a syscall tracepoint's context: `int __syscall_nr` at 8, then the arguments
/// (enter) or `long ret` (exit) from 16, 8 bytes each. A plain load: the verifier allows
/// constant-offset reads of a tracepoint context, where `read_at` would be a helper call.
#[inline(always)]
pub fn field<T: Copy>(ctx: &TracePointContext, off: usize) -> T {
    // SAFETY: `off` is a constant, aligned offset inside the context the kernel built.
    // Volatile, so that the compiler keeps each load at its constant offset instead of
    // merging two into one load from a computed address, which the verifier refuses.
    unsafe { core::ptr::read_volatile((ctx.as_ptr() as *const u8).add(off) as *const T) }
}

/// Keep a syscall's entry until its exit, written straight into the task's slot: the six
/// argument slots (a syscall with fewer arguments leaves garbage in the rest, which nothing
/// reads), the time and the kind. Only the first argument is loaded directly: a program may
/// not load past the smallest context it is attached to (a one-argument syscall's), so the
/// rest are copied with one helper call.
#[inline(always)]
pub fn remember(ctx: &TracePointContext, k: u16) {
    let Some(slot) = maps::pending_slot() else {
        maps::count(&DROPS, drop::PENDING_FULL);
        return;
    };
    // SAFETY: the task's own slot; the helper copies 40 bytes of the context (the kernel's
    // six-slot argument array) into its argument array, zeroes on failure.
    unsafe {
        (*slot).args[0] = field(ctx, 16);
        raw::bpf_probe_read_kernel(
            (*slot).args.as_mut_ptr().add(1) as *mut _,
            40,
            (ctx.as_ptr() as *const u8).add(24) as *const _,
        );
        (*slot).ts = bpf_ktime_get_boot_ns();
        (*slot).kind = u64::from(k);
    }
}

/// The arguments of a call that passed the cheap filters, for its record. None, and nothing
/// is to be sent, for the monitor's own calls (checked this late because most calls end in
/// those filters) or when the registers cannot be read (counted as a drop).
#[inline(always)]
pub fn args_to_send(settings: &Settings) -> Option<[u64; 6]> {
    if maps::is_self(settings) {
        return None;
    }
    let args = task::syscall_args();
    if args.is_none() {
        maps::count(&DROPS, drop::NO_ENTRY);
    }
    args
}

#[inline(always)]
pub fn kind_of(ctx: &TracePointContext) -> u16 {
    let nr: i32 = field(ctx, 8);
    if nr < 0 {
        return 0;
    }
    NR_KIND.get(nr as u32).copied().unwrap_or(0)
}

/// Entry of execve and execveat only (every other syscall is captured by its exit alone):
/// the exec's arguments are gone from the registers by the time it has replaced the program.
#[tracepoint]
pub fn sys_enter(ctx: TracePointContext) -> u32 {
    let _ = try_sys_enter(&ctx);
    0
}

fn try_sys_enter(ctx: &TracePointContext) -> Result<(), i64> {
    let k = kind_of(ctx);
    if k == 0 {
        return Ok(());
    }
    if maps::wanted(k).is_none() {
        return Ok(());
    }
    remember(ctx, k);
    Ok(())
}

/// Does nothing. Attached alone by the capture benchmark (`monitor bench-floor`), never by the
/// daemon: the cost of a tracepoint hit itself, which no program can go below.
#[tracepoint]
pub fn sys_exit_noop(_ctx: TracePointContext) -> u32 {
    0
}

#[tracepoint]
pub fn sys_exit(ctx: TracePointContext) -> u32 {
    let _ = try_sys_exit(&ctx);
    0
}

fn try_sys_exit(ctx: &TracePointContext) -> Result<(), i64> {
    let k = kind_of(ctx);
    if k == 0 || matches!(k, kind::OPEN | kind::OPENAT | kind::OPENAT2 | kind::CREAT) {
        // Opens have their own exit program (sys_exit_open).
        return Ok(());
    }
    // The monitor's own calls are dropped after the cheap filters below (most sends end in
    // the no-address one), not before them.
    let Some((cfg, settings)) = maps::enabled(k) else {
        return Ok(());
    };
    let ret: i64 = field(ctx, 16);

    if k == kind::EXECVE || k == kind::EXECVEAT {
        // Only a failed exec gets here with its entry (a successful one was sent, and its
        // entry taken, by sched_process_exec). The old program's memory is still there, and
        // the kernel has just read the strings, so they are in.
        // (The entry program keeps no entry for the monitor's own execs.)
        let Some(p) = maps::pending_take().filter(|p| p.kind == u64::from(k)) else {
            return Ok(());
        };
        let (filename, argv) = if k == kind::EXECVE {
            (p.args[0], p.args[1])
        } else {
            (p.args[1], p.args[2])
        };
        let mut r = Record::new(k, &p.args, p.ts, ret).ok_or(0)?;
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
    if cfg.skip_no_addr != 0 && task::syscall_arg(4) == Some(0) {
        // (Set by the daemon for sendto only, whose argument 4 is the destination.)
        maps::count(&FILTERED, filtered::NO_ADDR);
        return Ok(());
    }
    // Every other syscall is captured by its exit alone: the arguments are still in the
    // task's registers, so one tracepoint hit per call instead of two.
    let Some(args) = args_to_send(&settings) else {
        return Ok(());
    };
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
