//! Opens: their own exit program, because they carry the in-kernel path prefilter. An open
//! whose path no loaded rule can care about never reaches the ring buffer. The prefilter must
//! stay a necessary condition of the rules, so anything it cannot judge exactly (relative
//! paths, `.`/`..`/`//` that lexical cleaning would change, long paths) passes.

use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, generated as raw},
    macros::tracepoint,
    maps::lpm_trie::Key,
    programs::TracePointContext,
};
use monitor_common::{MAX_SUFFIXES, PREFIX_MAX, SUFFIX_MAX, drop, filtered, item, kind};

use crate::maps::{self, DROPS, FILTERED, PATH_AT, PATHBUF, PENDING, PREFIXES, SUFFIXES};
use crate::probes::syscalls::kind_of;
use crate::record::Record;

/// Paths longer than this are not judged (they pass).
const SCAN_MAX: usize = 128;

#[tracepoint]
pub fn sys_exit_open(ctx: TracePointContext) -> u32 {
    let _ = try_exit_open(&ctx);
    0
}

fn try_exit_open(ctx: &TracePointContext) -> Result<(), i64> {
    let k = kind_of(ctx);
    let path_arg = match k {
        kind::OPEN | kind::CREAT => 0,
        kind::OPENAT | kind::OPENAT2 => 1,
        _ => return Ok(()),
    };
    let cfg = maps::kind_config(k);
    if cfg.enabled == 0 {
        return Ok(());
    }
    let pid_tgid = bpf_get_current_pid_tgid();
    let settings = maps::settings();
    if (pid_tgid >> 32) as u32 == settings.self_pid {
        return Ok(());
    }
    let tid = pid_tgid as u32;
    // SAFETY: the value is copied out before the entry is removed.
    let Some(p) = (unsafe { PENDING.get(&tid) }).copied() else {
        // Dropped at entry by the prefilter, or the entry was lost.
        if cfg.prefilter == 0 || settings.prefilter_on == 0 {
            maps::count(&DROPS, drop::NO_ENTRY);
        }
        return Ok(());
    };
    let _ = PENDING.remove(&tid);
    // SAFETY: sys_exit_* tracepoints have `long ret` at offset 16.
    let ret: i64 = unsafe { ctx.read_at(16) }.unwrap_or(0);
    if ret < 0 && cfg.want_failed == 0 {
        maps::count(&FILTERED, filtered::FAILED);
        return Ok(());
    }
    let mut r = Record::new(k, &p.args, p.ts, ret).ok_or(0)?;
    r.push_user_str(item::PATH, p.args[path_arg]);
    if k == kind::OPENAT2 {
        r.push_user_bytes(item::OPEN_HOW, p.args[2], p.args[3]);
    }
    r.submit();
    Ok(())
}

/// The prefilter at syscall entry: read the path (user pointer `ptr`) into the per-CPU path
/// buffer and judge it. True: the open may matter (keep it).
#[inline(always)]
pub fn prefilter_pass_at_entry(ptr: u64, suffix_count: u32) -> bool {
    let Some(pb) = PATHBUF.get_ptr_mut(0) else {
        return true;
    };
    // SAFETY: the per-CPU buffer is ours while the program runs; PATH_AT + SCAN_MAX + 16
    // bytes fit in it.
    unsafe {
        let base = (*pb).buf.as_mut_ptr();
        let data = base.add(PATH_AT);
        for i in 0..(SCAN_MAX + 16) / 8 {
            core::ptr::write_unaligned(data.add(8 * i) as *mut u64, 0);
        }
        if ptr == 0 {
            return true;
        }
        let n =
            raw::bpf_probe_read_user_str(data as *mut _, (SCAN_MAX + 2) as u32, ptr as *const _);
        if n <= 0 {
            return true;
        }
        // A path longer than SCAN_MAX reads as SCAN_MAX + 1 bytes: judged too long, it passes.
        prefilter_pass(data, (n as usize - 1) & (2 * SCAN_MAX - 1), suffix_count)
    }
}

const ONES: u64 = 0x0101_0101_0101_0101;
const HIGH: u64 = 0x8080_8080_8080_8080;

/// High bit set in each byte of `w` equal to `c`. May also flag a byte just above a true
/// match (borrow), which only makes the filter pass more: still correct.
#[inline(always)]
fn eq_bytes(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * u64::from(c));
    x.wrapping_sub(ONES) & !x & HIGH
}

/// True when the path (as the task passed it, `len` bytes at `data`) may match some rule.
/// `data` has SCAN_MAX + 8 bytes readable, zero past the string (see `try_exit_open`).
/// The scan works on words without branches, so the verifier walks it once.
#[inline(always)]
pub fn prefilter_pass(data: *const u8, len: usize, suffix_count: u32) -> bool {
    // SAFETY: data has at least one byte (the zeroed window).
    if len == 0 || len > SCAN_MAX || unsafe { *data } != b'/' {
        return true;
    }
    let words = data as *const u64;
    let mut odd = 0u64;
    // SAFETY: SCAN_MAX / 8 + 1 words are inside the zeroed window.
    let mut w = unsafe { core::ptr::read_unaligned(words) };
    for k in 0..SCAN_MAX / 8 {
        let next = unsafe { core::ptr::read_unaligned(words.add(k + 1)) };
        // Byte i of `shifted` is byte i + 1 of the path (little-endian words).
        let shifted = (w >> 8) | (next << 56);
        let slash = eq_bytes(w, b'/');
        let dot = eq_bytes(w, b'.');
        let slash1 = eq_bytes(shifted, b'/');
        let dot1 = eq_bytes(shifted, b'.');
        odd |= (slash & (dot1 | slash1)) | (dot & dot1);
        w = next;
    }
    if odd != 0 {
        return true;
    }
    let n = if len < PREFIX_MAX { len } else { PREFIX_MAX };
    let mut key = Key::new((n * 8) as u32, [0u8; PREFIX_MAX]);
    // SAFETY: PREFIX_MAX bytes are readable after `data` (scratch slack).
    unsafe { core::ptr::copy_nonoverlapping(data, key.data.as_mut_ptr(), PREFIX_MAX) };
    if PREFIXES.get(&key).is_some() {
        return true;
    }
    if suffix_count == 0 {
        return false;
    }
    // The path's last SUFFIX_MAX bytes, right-aligned (bytes before a short path are junk, and
    // masked off by any suffix no longer than the path).
    let mut tail = [0u64; SUFFIX_MAX / 8];
    // SAFETY: reads from the scratch buffer; `data` sits past the record header, so
    // `data + len - SUFFIX_MAX` is still inside it. A failed read leaves zeroes.
    unsafe {
        let _ = raw::bpf_probe_read_kernel(
            tail.as_mut_ptr() as *mut _,
            SUFFIX_MAX as u32,
            data.wrapping_add(len).wrapping_sub(SUFFIX_MAX) as *const _,
        );
    }
    for i in 0..MAX_SUFFIXES {
        if i >= suffix_count {
            break;
        }
        let Some(s) = SUFFIXES.get(i) else { break };
        if s.len as usize > len {
            continue;
        }
        let mut diff = 0u64;
        for w in 0..SUFFIX_MAX / 8 {
            diff |= (tail[w] ^ s.pattern[w]) & s.mask[w];
        }
        if diff == 0 {
            return true;
        }
    }
    false
}
