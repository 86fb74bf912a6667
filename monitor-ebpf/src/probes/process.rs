//! Process life: exec (from inside a successful exec, where the new program's path and
//! arguments are in kernel and fresh user memory), fork (from the scheduler, before the child can run, so the daemon learns of a child
//! before any of its events) and exit.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_send_signal},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use monitor_common::{
    ForkInfo, IA32_NR_EXECVE, IA32_NR_EXECVEAT, IA32_SYSCALL_ARG_REGS, SYSCALL_ARG_REGS,
    SYSCALL_NR_REG, drop, enforce, flags, item, kind,
};

use crate::maps::{self, DROPS};
use crate::probes;
use crate::record::Record;
use crate::task;

/// A successful exec, from inside it: the new program is in place (its memory holds the
/// arguments the kernel just copied there, `bprm->filename` the path as given) but has not run
/// one instruction. Everything is read here, where nothing can be paged out, and enforcement
/// decides here: a SIGKILL sent now is taken before the return to user mode.
#[raw_tracepoint(tracepoint = "sched_process_exec")]
pub fn sched_process_exec(ctx: RawTracePointContext) -> i32 {
    let _ = try_exec(&ctx);
    0
}

fn try_exec(ctx: &RawTracePointContext) -> Result<(), i64> {
    // TP_PROTO(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)
    let bprm: u64 = ctx.arg(2);
    // The exec'ing task keeps its task_struct (and storage) even when it takes over the
    // thread group leader's pid.
    let pending = maps::pending_take();
    let k = match pending {
        Some(p) if p.kind == u64::from(kind::EXECVEAT) => kind::EXECVEAT,
        _ => kind::EXECVE,
    };
    if maps::kind_config(k).enabled == 0 {
        return Ok(());
    }
    let settings = maps::settings();
    if bpf_get_current_pid_tgid() >> 32 == u64::from(settings.self_pid) {
        return Ok(());
    }
    let args = match pending {
        Some(p) => p.args,
        None => [0; 6],
    };
    let o = maps::offsets();
    let mut r = Record::new(k, &args, 0, 0).ok_or(0)?;
    r.zero_next_item(enforce::EXE_KEY_MAX + 8);
    let filename: u64 = task::read(bprm, o.bprm_filename);
    let path = r.push_kernel_str(item::PATH, filename);
    let (start, end) = task::arg_area(&o);
    r.push_user_block(item::ARGV, start, end);
    r.push_value(item::EXEC_INFO, &task::exec_info(&o));
    // Only an exec a task asked for (its arguments are waiting): never one the kernel
    // starts itself (a usermode helper such as modprobe, whose exec comes from a kernel
    // thread).
    if settings.enf_count != 0
        && pending.is_some()
        && let Some((data, len)) = path
    {
        let on = if k == kind::EXECVE {
            enforce::ON_EXECVE
        } else {
            enforce::ON_EXECVEAT
        };
        if let Some(c) = probes::enforce::decide(data, len, on, settings.enf_count) {
            if c.flags & enforce::DRY_RUN != 0 || settings.dry_run != 0 {
                r.set_flag(flags::WOULD_KILL);
            } else {
                // SAFETY: signals the current task; SIGKILL cannot be caught, and it is taken
                // before the new program returns to user mode.
                unsafe { bpf_send_signal(9) };
                r.set_flag(flags::KILLED);
            }
            r.push_value(item::ENFORCE, &c.rule_id);
        }
    }
    r.submit();
    Ok(())
}

/// An exec past its point of no return: the kernel renames the task after the new program
/// (`begin_new_exec`), before it sets up the new program's registers. The syscall's number
/// and arguments are still in them, so they are kept here for `sched_process_exec`. This is
/// what makes an exec one the task asked for, not one the kernel starts itself (a usermode
/// helper runs no exec syscall). Renames by `prctl` or `/proc/PID/comm` run other syscalls and
/// are left alone. Rare, unlike a syscall entry program, which every syscall of the machine
/// would pay for.
#[raw_tracepoint(tracepoint = "task_rename")]
pub fn task_rename(_ctx: RawTracePointContext) -> i32 {
    let _ = try_rename();
    0
}

fn try_rename() -> Result<(), i64> {
    let regs = task::user_regs().ok_or(0)?;
    let nr = task::reg(regs, SYSCALL_NR_REG) as i64;
    let compat = task::in_compat_syscall(maps::offsets());
    let k = if compat {
        match nr {
            IA32_NR_EXECVE => kind::EXECVE,
            IA32_NR_EXECVEAT => kind::EXECVEAT,
            _ => return Ok(()),
        }
    } else {
        match maps::kind_of_nr(nr) {
            k @ (kind::EXECVE | kind::EXECVEAT) => k,
            _ => return Ok(()),
        }
    };
    if maps::wanted(k).is_none() {
        return Ok(());
    }
    let Some(slot) = maps::pending_slot() else {
        maps::count(&DROPS, drop::PENDING_FULL);
        return Ok(());
    };
    let at = if compat {
        IA32_SYSCALL_ARG_REGS
    } else {
        SYSCALL_ARG_REGS
    };
    let mut args = [0u64; 6];
    for (a, off) in args.iter_mut().zip(at) {
        *a = task::reg(regs, off);
        if compat {
            // 32-bit registers: an fd such as AT_FDCWD is a negative int.
            *a = *a as u32 as i32 as i64 as u64;
        }
    }
    // SAFETY: the task's own slot.
    unsafe {
        (*slot).args = args;
        (*slot).kind = u64::from(k);
    }
    Ok(())
}

#[raw_tracepoint(tracepoint = "sched_process_fork")]
pub fn sched_process_fork(ctx: RawTracePointContext) -> i32 {
    let _ = try_fork(&ctx);
    0
}

fn try_fork(ctx: &RawTracePointContext) -> Result<(), i64> {
    if maps::kind_config(kind::PROC_FORK).enabled == 0 {
        return Ok(());
    }
    let o = maps::offsets();
    if o.valid == 0 {
        return Ok(());
    }
    let child: u64 = ctx.arg(1);
    let child_pid: u32 = task::read(child, o.task_tgid);
    let child_tid: u32 = task::read(child, o.task_pid);
    if child_pid != child_tid {
        // A new thread of an existing process: the process table is per process.
        return Ok(());
    }
    let mut r = Record::new(kind::PROC_FORK, &[0; 6], 0, i64::from(child_pid)).ok_or(0)?;
    r.push_value(
        item::FORK,
        &ForkInfo {
            child_pid,
            child_tid,
            is_thread: 0,
            _pad: 0,
        },
    );
    r.submit();
    Ok(())
}

#[tracepoint]
pub fn sched_process_exit(_ctx: TracePointContext) -> u32 {
    let _ = try_exit();
    0
}

fn try_exit() -> Result<(), i64> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tid = pid_tgid as u32;
    if (pid_tgid >> 32) as u32 != tid || maps::kind_config(kind::PROC_EXIT).enabled == 0 {
        return Ok(());
    }
    let r = Record::new(kind::PROC_EXIT, &[0; 6], 0, 0).ok_or(0)?;
    r.submit();
    Ok(())
}
