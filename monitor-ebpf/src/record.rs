//! Building one record in the per-CPU scratch buffer and sending it on the ring buffer.
//!
//! Offsets into the buffer are masked before every use, and every copy has a constant size,
//! so the verifier can prove each access in bounds; the buffer has slack past the items bound
//! for the last item.

use aya_ebpf::bindings;
use aya_ebpf::helpers::{
    bpf_get_current_cgroup_id, bpf_get_current_comm, bpf_get_current_pid_tgid,
    bpf_get_current_uid_gid, bpf_get_smp_processor_id, bpf_ktime_get_boot_ns, generated as raw,
};
use monitor_common::{ItemHeader, RecordHeader, drop, flags, limits};

use crate::maps::{self, DROPS, EVENTS, SCRATCH, SCRATCH_SIZE};
use crate::task;

const HDR: usize = core::mem::size_of::<RecordHeader>();
const ITEM_HDR: usize = core::mem::size_of::<ItemHeader>();
const ITEMS_MASK: usize = limits::MAX_PAYLOAD - 1;
const STR_MASK: usize = limits::MAX_STR - 1;

/// A record being built in the scratch buffer.
pub struct Record {
    buf: *mut u8,
    /// Bytes of items written so far.
    off: usize,
    nitems: u16,
    flags: u16,
}

impl Record {
    /// Start a record of `kind` for the current task. None only if the scratch map is missing.
    #[inline(always)]
    pub fn new(kind: u16, args: &[u64; 6], enter_ts: u64, ret: i64) -> Option<Record> {
        let scratch = SCRATCH.get_ptr_mut(0)?;
        // SAFETY: the per-CPU scratch value is ours for the duration of this program.
        let buf = unsafe { (*scratch).buf.as_mut_ptr() };
        let now = unsafe { bpf_ktime_get_boot_ns() };
        let pid_tgid = bpf_get_current_pid_tgid();
        let uid_gid = bpf_get_current_uid_gid();
        let o = maps::offsets();
        let info = task::task_info(&o);
        let hdr = RecordHeader {
            ts_ns: now,
            latency_ns: if enter_ts != 0 { now - enter_ts } else { 0 },
            cgroup_id: unsafe { bpf_get_current_cgroup_id() },
            ret,
            args: *args,
            kind,
            flags: 0,
            nitems: 0,
            payload_len: 0,
            cpu: unsafe { bpf_get_smp_processor_id() },
            _pad: 0,
            pid: (pid_tgid >> 32) as u32,
            tid: pid_tgid as u32,
            ppid: info.ppid,
            uid: uid_gid as u32,
            gid: (uid_gid >> 32) as u32,
            loginuid: info.loginuid,
            sid: 0,
            tty: info.tty,
            comm: bpf_get_current_comm().unwrap_or_default(),
        };
        // SAFETY: the buffer is larger than the header; unaligned write of plain data.
        unsafe { core::ptr::write_unaligned(buf as *mut RecordHeader, hdr) };
        Some(Record {
            buf,
            off: 0,
            nitems: 0,
            flags: 0,
        })
    }

    #[inline(always)]
    pub fn set_flag(&mut self, f: u16) {
        self.flags |= f;
    }

    /// Pointer and room for the next item, or None when the items area is full.
    #[inline(always)]
    fn slot(&mut self) -> Option<*mut u8> {
        if self.off >= limits::MAX_PAYLOAD {
            self.flags |= flags::TRUNCATED;
            return None;
        }
        let off = self.off & ITEMS_MASK;
        // SAFETY: off < MAX_PAYLOAD and the buffer holds HDR + MAX_PAYLOAD + 2 * MAX_STR.
        Some(unsafe { self.buf.add(HDR + off) })
    }

    #[inline(always)]
    fn finish_item(&mut self, at: *mut u8, tag: u16, len: usize) {
        let len = len & (2 * limits::MAX_STR - 1);
        // SAFETY: `at` came from `slot`, which left room for the header.
        unsafe {
            core::ptr::write_unaligned(
                at as *mut ItemHeader,
                ItemHeader {
                    tag,
                    len: len as u16,
                },
            )
        };
        self.off = (self.off & ITEMS_MASK) + ITEM_HDR + len;
        self.nitems += 1;
    }

    /// Zero `n` bytes (a constant, at most MAX_STR) where the next item's data will go.
    #[inline(always)]
    pub fn zero_next_item(&mut self, n: usize) {
        let Some(at) = self.slot() else { return };
        for i in 0..n / 8 {
            // SAFETY: within the slot's room (MAX_STR past the items bound).
            unsafe { core::ptr::write_unaligned(at.add(ITEM_HDR + 8 * i) as *mut u64, 0) };
        }
    }

    /// Copy a NUL-terminated string from user memory (the NUL is not kept). A failed read
    /// still adds an empty item, so item positions stay meaningful.
    /// Returns the item's data and length, for filters that look at it.
    #[inline(always)]
    pub fn push_user_str(&mut self, tag: u16, src: u64) -> Option<(*const u8, usize)> {
        self.push_str(tag, src, false)
    }

    /// Copy a NUL-terminated string from kernel memory (the NUL is not kept).
    #[inline(always)]
    pub fn push_kernel_str(&mut self, tag: u16, src: u64) -> Option<(*const u8, usize)> {
        self.push_str(tag, src, true)
    }

    #[inline(always)]
    fn push_str(&mut self, tag: u16, src: u64, kernel: bool) -> Option<(*const u8, usize)> {
        let at = self.slot()?;
        let n = if src == 0 {
            0
        } else {
            // SAFETY: the destination has MAX_STR bytes of room (slack past the items bound).
            unsafe {
                let dst = at.add(ITEM_HDR) as *mut _;
                if kernel {
                    raw::bpf_probe_read_kernel_str(dst, limits::MAX_STR as u32, src as *const _)
                } else {
                    raw::bpf_probe_read_user_str(dst, limits::MAX_STR as u32, src as *const _)
                }
            }
        };
        let len = if n > 0 {
            (n as usize - 1) & STR_MASK
        } else {
            0
        };
        if n == limits::MAX_STR as i64 {
            self.flags |= flags::TRUNCATED;
        }
        if n < 0 {
            maps::count(&DROPS, drop::READ_FAILED);
        }
        self.finish_item(at, tag, len);
        // SAFETY: pointer into the scratch buffer, just past the item header.
        Some((unsafe { at.add(ITEM_HDR) as *const u8 }, len))
    }

    /// Copy the user memory from `start` to `end` as one item, cut at `MAX_ARGV_BYTES`: the
    /// argument area of a new program, whose strings the kernel has just written there.
    #[inline(always)]
    pub fn push_user_block(&mut self, tag: u16, start: u64, end: u64) {
        let Some(at) = self.slot() else { return };
        let mut len = if end > start { end - start } else { 0 };
        if len > limits::MAX_ARGV_BYTES as u64 - 1 {
            len = limits::MAX_ARGV_BYTES as u64 - 1;
            self.flags |= flags::TRUNCATED;
        }
        let len = (len as usize) & (limits::MAX_ARGV_BYTES - 1);
        let ok = start != 0
            && len > 0
            && unsafe {
                raw::bpf_probe_read_user(at.add(ITEM_HDR) as *mut _, len as u32, start as *const _)
            } == 0;
        if !ok && len > 0 {
            maps::count(&DROPS, drop::READ_FAILED);
        }
        self.finish_item(at, tag, if ok { len } else { 0 });
    }

    /// Copy `len` bytes (at most `limits::MAX_SOCKADDR`) of user memory.
    #[inline(always)]
    pub fn push_user_bytes(&mut self, tag: u16, src: u64, len: u64) {
        let Some(at) = self.slot() else { return };
        let len = if len > limits::MAX_SOCKADDR as u64 {
            limits::MAX_SOCKADDR
        } else {
            len as usize
        };
        let ok = src != 0
            && len > 0
            && unsafe {
                raw::bpf_probe_read_user(at.add(ITEM_HDR) as *mut _, len as u32, src as *const _)
            } == 0;
        self.finish_item(at, tag, if ok { len } else { 0 });
    }

    /// Copy a plain value built by the program.
    #[inline(always)]
    pub fn push_value<T: Copy>(&mut self, tag: u16, value: &T) {
        let Some(at) = self.slot() else { return };
        // SAFETY: size_of::<T>() is small and constant; room is there.
        unsafe { core::ptr::write_unaligned(at.add(ITEM_HDR) as *mut T, *value) };
        self.finish_item(at, tag, core::mem::size_of::<T>());
    }

    /// Append the NUL-separated strings of a user `char **` array (argv) as one item.
    #[inline(always)]
    pub fn push_user_argv(&mut self, tag: u16, argv: u64) {
        let Some(at) = self.slot() else { return };
        let data = unsafe { at.add(ITEM_HDR) };
        let mut used: usize = 0;
        if argv != 0 {
            for i in 0..limits::MAX_ARGS {
                if used >= limits::MAX_ARGV_BYTES {
                    self.flags |= flags::TRUNCATED;
                    break;
                }
                let mut p: u64 = 0;
                // SAFETY: reads 8 bytes of user memory into a local.
                let r = unsafe {
                    raw::bpf_probe_read_user(
                        &mut p as *mut u64 as *mut _,
                        8,
                        (argv + (i as u64) * 8) as *const _,
                    )
                };
                if r != 0 || p == 0 {
                    break;
                }
                let cur = used & (limits::MAX_ARGV_BYTES - 1);
                // SAFETY: cur < MAX_ARGV_BYTES; the slot has MAX_PAYLOAD-independent slack of
                // 2 * MAX_STR, and MAX_ARGV_BYTES == MAX_STR.
                let n = unsafe {
                    raw::bpf_probe_read_user_str(
                        data.add(cur) as *mut _,
                        limits::MAX_STR as u32,
                        p as *const _,
                    )
                };
                if n <= 0 {
                    break;
                }
                used = cur + ((n as usize) & STR_MASK);
                if i == limits::MAX_ARGS - 1 {
                    self.flags |= flags::TRUNCATED;
                }
            }
        }
        self.finish_item(at, tag, used);
    }

    /// Fill in the counts and send the record. Counts a drop when the ring buffer is full.
    #[inline(always)]
    pub fn submit(self) {
        let payload = self.off;
        // SAFETY: the header was written by `new`.
        unsafe {
            let hdr = self.buf as *mut RecordHeader;
            let mut h = core::ptr::read_unaligned(hdr);
            h.flags |= self.flags;
            h.nitems = self.nitems;
            h.payload_len = payload as u16;
            core::ptr::write_unaligned(hdr, h);
        }
        let size = HDR + payload;
        if size > SCRATCH_SIZE {
            return;
        }
        // SAFETY: size is bounded by the scratch buffer's size, checked above.
        let bytes = unsafe { core::slice::from_raw_parts(self.buf as *const u8, size) };
        let wake = if maps::reader_asleep()
            || EVENTS.query(u64::from(bindings::BPF_RB_AVAIL_DATA))
                >= u64::from(maps::settings_wake_bytes())
        {
            bindings::BPF_RB_FORCE_WAKEUP
        } else {
            bindings::BPF_RB_NO_WAKEUP
        };
        if EVENTS.output::<[u8]>(bytes, u64::from(wake)).is_err() {
            maps::count(&DROPS, drop::RINGBUF_FULL);
        }
    }
}
