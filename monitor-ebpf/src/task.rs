//! Reads from kernel structures, at offsets the daemon computed from the running kernel's BTF.
//! A failed read yields 0: these values enrich a record, they never decide whether it is sent.

use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel, generated as helper};
use monitor_common::{ExecInfo, KernelOffsets, SockTuple, TS_COMPAT};

#[inline(always)]
pub fn read<T: Default>(base: u64, off: u32) -> T {
    if base == 0 {
        return T::default();
    }
    // SAFETY: bpf_probe_read_kernel checks the address; a fault returns an error, not a crash.
    unsafe { bpf_probe_read_kernel((base + u64::from(off)) as *const T) }.unwrap_or_default()
}

#[inline(always)]
pub fn current() -> u64 {
    // SAFETY: plain helper call.
    unsafe { bpf_get_current_task() }
}

/// Parent tgid, login uid and tty of the current task.
pub struct TaskInfo {
    pub ppid: u32,
    pub loginuid: u32,
    pub tty: u32,
}

#[inline(always)]
pub fn task_info(o: &KernelOffsets) -> TaskInfo {
    if o.valid == 0 {
        return TaskInfo {
            ppid: 0,
            loginuid: u32::MAX,
            tty: 0,
        };
    }
    let task = current();
    let parent: u64 = read(task, o.task_real_parent);
    let ppid: u32 = read(parent, o.task_tgid);
    let loginuid: u32 = if o.task_loginuid != 0 {
        read(task, o.task_loginuid)
    } else {
        u32::MAX
    };
    let signal: u64 = read(task, o.task_signal);
    let tty_ptr: u64 = read(signal, o.signal_tty);
    let mut tty = 0u32;
    if tty_ptr != 0 {
        let index: i32 = read(tty_ptr, o.tty_index);
        let driver: u64 = read(tty_ptr, o.tty_driver);
        let major: i32 = read(driver, o.tty_driver_major);
        let minor_start: i32 = read(driver, o.tty_driver_minor_start);
        // The kernel's new_encode_dev(MKDEV(major, minor_start) + index), as Falco reports it.
        let minor = (minor_start + index) as u32;
        let major = major as u32;
        tty = (minor & 0xff) | ((major & 0xfff) << 8) | ((minor & !0xff) << 12);
    }
    TaskInfo {
        ppid,
        loginuid,
        tty,
    }
}

/// The `struct socket` and `struct sock` behind `fd` of the current task (both non-zero).
#[inline(always)]
fn socket_of(o: &KernelOffsets, fd: i64) -> Option<(u64, u64)> {
    if o.valid == 0 || !(0..=0xffff).contains(&fd) {
        return None;
    }
    let files: u64 = read(current(), o.task_files);
    let fdt: u64 = read(files, o.files_fdt);
    let fd_array: u64 = read(fdt, o.fdtable_fd);
    if fd_array == 0 {
        return None;
    }
    let file: u64 = read(fd_array + (fd as u64) * 8, 0);
    let sock: u64 = read(file, o.file_private_data);
    let sk: u64 = read(sock, o.socket_sk);
    if sk == 0 {
        return None;
    }
    Some((sock, sk))
}

/// The address tuple of the socket behind `fd` of the current task, if it is an inet socket.
#[inline(always)]
pub fn socket_tuple(o: &KernelOffsets, fd: i64) -> Option<SockTuple> {
    let (sock, sk) = socket_of(o, fd)?;
    let family: u16 = read(sk, o.sk_family);
    let sock_type: i16 = read(sock, o.socket_type);
    let protocol: u16 = read(sk, o.sk_protocol);
    let mut t = SockTuple {
        family,
        sock_type: sock_type as u16,
        protocol,
        ..SockTuple::default()
    };
    let dport: u16 = read(sk, o.sk_dport);
    t.rport = u16::from_be(dport);
    t.lport = read(sk, o.sk_num);
    if family == 2 {
        let d: [u8; 4] = read(sk, o.sk_daddr);
        let s: [u8; 4] = read(sk, o.sk_rcv_saddr);
        t.raddr[..4].copy_from_slice(&d);
        t.laddr[..4].copy_from_slice(&s);
    } else if family == 10 {
        t.raddr = read(sk, o.sk_v6_daddr);
        t.laddr = read(sk, o.sk_v6_rcv_saddr);
    } else {
        return None;
    }
    Some(t)
}

/// Whether `fd` of the current task is an inet (v4 or v6) stream socket, i.e. TCP.
#[inline(always)]
pub fn is_inet_stream(o: &KernelOffsets, fd: i64) -> bool {
    let Some((sock, sk)) = socket_of(o, fd) else {
        return false;
    };
    let family: u16 = read(sk, o.sk_family);
    let sock_type: i16 = read(sock, o.socket_type);
    (family == 2 || family == 10) && sock_type == 1
}

/// Credentials and namespace pid of the current task (after an exec: the new program's).
#[inline(always)]
pub fn exec_info(o: &KernelOffsets) -> ExecInfo {
    if o.valid == 0 {
        return ExecInfo::default();
    }
    let task = current();
    let cred: u64 = read(task, o.task_real_cred);
    let pid: u64 = read(task, o.task_thread_pid);
    let level: u32 = read(pid, o.pid_level);
    // The innermost namespace's number: numbers[level].nr (nr is the first field of upid).
    let vpid: u32 = if pid != 0 && level < 32 {
        read(
            pid + u64::from(o.pid_numbers) + u64::from(level * o.upid_size),
            0,
        )
    } else {
        0
    };
    ExecInfo {
        cap_effective: read(cred, o.cred_cap_effective),
        cap_permitted: read(cred, o.cred_cap_permitted),
        vpid,
        _pad: 0,
    }
}

/// Start and end of the current task's argument strings (NUL-separated, in its memory).
#[inline(always)]
pub fn arg_area(o: &KernelOffsets) -> (u64, u64) {
    if o.valid == 0 {
        return (0, 0);
    }
    let mm: u64 = read(current(), o.task_mm);
    (read(mm, o.mm_arg_start), read(mm, o.mm_arg_end))
}

/// Whether the current task is in a 32-bit syscall (`in_ia32_syscall()`: `TS_COMPAT` in its
/// thread_info). False when the kernel's BTF did not give the field.
#[inline(always)]
pub fn in_compat_syscall(o: &KernelOffsets) -> bool {
    if o.valid == 0 || o.task_ti_status == 0 {
        return false;
    }
    let status: u32 = read(current(), o.task_ti_status);
    status & TS_COMPAT != 0
}

/// The current task's saved user registers (a BTF pointer the verifier lets the program load
/// from at constant offsets), for programs that the tracepoint does not hand them to.
#[inline(always)]
pub fn user_regs() -> Option<*const u8> {
    // SAFETY: plain helper calls; the result is a typed pointer to the task's registers or 0.
    let regs = unsafe { helper::bpf_task_pt_regs(helper::bpf_get_current_task_btf()) as *const u8 };
    if regs.is_null() { None } else { Some(regs) }
}

/// The register at byte offset `off` of `regs` (from `user_regs` or a tracepoint).
#[inline(always)]
pub fn reg(regs: *const u8, off: usize) -> u64 {
    // SAFETY: `regs` is a BTF-typed pointer to a pt_regs; `off` is a constant member offset,
    // which the verifier checks against the type. Volatile, so that each load stays at its
    // constant offset.
    unsafe { core::ptr::read_volatile(regs.add(off) as *const u64) }
}
