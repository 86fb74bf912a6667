//! Process life: exec (entry half, with filename and argv, read before the old memory is
//! gone), fork (from the scheduler, before the child can run, so the daemon learns of a child
//! before any of its events) and exit.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, bpf_send_signal},
    macros::{raw_tracepoint, tracepoint},
    programs::{RawTracePointContext, TracePointContext},
};
use monitor_common::{ForkInfo, enforce, flags, item, kind};

use crate::maps::{self, PENDING};
use crate::probes;
use crate::record::Record;
use crate::task;

#[tracepoint]
pub fn sys_enter_execve(ctx: TracePointContext) -> u32 {
    let _ = try_exec_enter(&ctx, kind::EXECVE);
    0
}

#[tracepoint]
pub fn sys_enter_execveat(ctx: TracePointContext) -> u32 {
    let _ = try_exec_enter(&ctx, kind::EXECVEAT);
    0
}

fn try_exec_enter(ctx: &TracePointContext, k: u16) -> Result<(), i64> {
    if maps::kind_config(k).enabled == 0 {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    if (pid_tgid >> 32) as u32 == maps::settings().self_pid {
        return Ok(());
    }
    let mut args = [0u64; 6];
    for i in 0..6 {
        // SAFETY: syscall arguments start at offset 16, 8 bytes each.
        args[i] = unsafe { ctx.read_at(16 + 8 * i) }.unwrap_or(0);
    }
    let (filename, argv) = if k == kind::EXECVE {
        (args[0], args[1])
    } else {
        (args[1], args[2])
    };
    let now = unsafe { bpf_ktime_get_boot_ns() };
    let mut r = Record::new(k, &args, now, 0).ok_or(0)?;
    r.set_flag(flags::ENTER_ONLY);
    r.zero_next_item(enforce::EXE_KEY_MAX + 8);
    let path = r.push_user_str(item::PATH, filename);
    r.push_user_argv(item::ARGV, argv);
    let settings = maps::settings();
    if settings.enf_count != 0
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
                // SAFETY: signals the current task; SIGKILL cannot be caught, so the new program
                // never runs.
                unsafe { bpf_send_signal(9) };
                r.set_flag(flags::KILLED);
            }
            r.push_value(item::ENFORCE, &c.rule_id);
        }
    }
    r.submit();
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
    let _ = PENDING.remove(&tid);
    if (pid_tgid >> 32) as u32 != tid || maps::kind_config(kind::PROC_EXIT).enabled == 0 {
        return Ok(());
    }
    let r = Record::new(kind::PROC_EXIT, &[0; 6], 0, 0).ok_or(0)?;
    r.submit();
    Ok(())
}
