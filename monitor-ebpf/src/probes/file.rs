//! Opens: their own exit program, because they carry the in-kernel path prefilter. An open
//! whose path no loaded rule can care about never reaches the ring buffer. The prefilter must
//! stay a necessary condition of the rules, so anything it cannot judge exactly (relative
//! paths, `.`/`..`/`//` that lexical cleaning would change, long paths) passes.

use aya_ebpf::{
    helpers::generated as raw,
    macros::{btf_tracepoint, tracepoint},
    maps::lpm_trie::Key,
    programs::{BtfTracePointContext, TracePointContext},
};
use monitor_common::{
    MAX_SUFFIXES, PREFIX_MAX, SUFFIX_MAX, Settings, filtered, item, kind, prefix_head_index,
    suffix_tail_index,
};

use crate::maps::{
    self, FILTERED, PATH_AT, PATHBUF, PREFIX_HEADS, PREFIXES, SUFFIX_TAILS, SUFFIXES,
};
use crate::probes::syscalls::{Exit, to_send};
use crate::record::Record;

/// Paths longer than this are not judged (they pass).
const SCAN_MAX: usize = 128;

/// The kinds whose exits this module handles.
#[inline(always)]
pub fn is_open(k: u16) -> bool {
    matches!(k, kind::OPEN | kind::OPENAT | kind::OPENAT2 | kind::CREAT)
}

/// An open's exit (called by the exit programs).
#[inline(always)]
pub fn try_exit_open(e: &Exit) -> Result<(), i64> {
    let k = e.kind;
    let path_arg = if matches!(k, kind::OPENAT | kind::OPENAT2) {
        1
    } else {
        0
    };
    // Most opens end in the prefilter, so everything it does not need waits until after it:
    // the monitor's own opens are dropped after it, and five of the six arguments are loaded
    // after it.
    let Some((cfg, settings)) = maps::enabled(k) else {
        return Ok(());
    };
    let ret = e.ret;
    if ret < 0 && cfg.want_failed == 0 {
        maps::count(&FILTERED, filtered::FAILED);
        return Ok(());
    }
    let path = e.arg(path_arg);
    if cfg.prefilter != 0 && settings.prefilter_on != 0 && !prefilter_pass_user(path, &settings) {
        maps::count(&FILTERED, filtered::PREFILTER);
        return Ok(());
    }
    if !to_send(&settings) {
        return Ok(());
    }
    let args = e.args();
    let mut r = Record::new(k, &args, 0, ret).ok_or(0)?;
    r.push_user_str(item::PATH, path);
    if k == kind::OPENAT2 {
        r.push_user_bytes(item::OPEN_HOW, args[2], args[3]);
    }
    r.submit();
    Ok(())
}

/// The trie key sits just before the path, so that the path read from the task is the key's
/// data where it lies: no copy.
const KEY_AT: usize = PATH_AT - 4;
const _: () = assert!(core::mem::size_of::<Key<[u8; PREFIX_MAX]>>() == 4 + PREFIX_MAX);

/// The prefilter: read the path (user pointer `ptr`) into the per-CPU path
/// buffer and judge it. True: the open may matter (keep it).
#[inline(always)]
pub fn prefilter_pass_user(ptr: u64, settings: &Settings) -> bool {
    match read_path(ptr) {
        // A path longer than SCAN_MAX reads as SCAN_MAX + 1 bytes: judged too long, it passes.
        Some((base, n)) => prefilter_pass(base, (n - 1) & (2 * SCAN_MAX - 1), settings),
        None => true,
    }
}

/// Read the path at user pointer `ptr` to PATH_AT in the per-CPU path buffer: the buffer and
/// the bytes read, with the NUL (at most SCAN_MAX + 2). None when it cannot be read.
#[inline(always)]
fn read_path(ptr: u64) -> Option<(*mut u8, usize)> {
    let pb = PATHBUF.get_ptr_mut(0)?;
    if ptr == 0 {
        return None;
    }
    // SAFETY: the per-CPU buffer is ours while the program runs; PATH_AT + SCAN_MAX + 16
    // bytes fit in it.
    unsafe {
        let base = (*pb).buf.as_mut_ptr();
        let n = raw::bpf_probe_read_user_str(
            base.add(PATH_AT) as *mut _,
            (SCAN_MAX + 2) as u32,
            ptr as *const _,
        );
        if n <= 0 {
            None
        } else {
            Some((base, n as usize))
        }
    }
}

/// Read an openat's path as the prefilter does, and do nothing else. Attached alone by the
/// capture benchmark (`monitor bench-floor --read-path`), never by the daemon: the tracepoint
/// hit, reaching the registers, and the one read no path filter can do without.
#[tracepoint]
pub fn sys_exit_noop_read(ctx: TracePointContext) -> u32 {
    if let Some(e) = Exit::of_tracepoint(&ctx)
        && e.kind == kind::OPENAT
    {
        let _ = read_path(e.arg(1));
    }
    0
}

#[btf_tracepoint(function = "sys_exit")]
pub fn sys_exit_raw_noop_read(ctx: BtfTracePointContext) -> i32 {
    if let Some(e) = Exit::of_raw(&ctx)
        && e.kind == kind::OPENAT
    {
        let _ = read_path(e.arg(1));
    }
    0
}

const ONES: u64 = 0x0101_0101_0101_0101;
const LOW7: u64 = 0x7f7f_7f7f_7f7f_7f7f;

/// High bit set in each byte of `w` equal to `c`, and in no other: no carry crosses a byte
/// (`(x & 0x7f) + 0x7f` fits in one). The shorter borrow trick would also flag a `.` just
/// above a `/` (they differ in the low bit only), and so pass every `/.` as `//`.
#[inline(always)]
fn eq_bytes(w: u64, c: u8) -> u64 {
    let x = w ^ (ONES * u64::from(c));
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// Word `k` of the path (8-aligned in the buffer), with the bytes past its end cleared: the
/// buffer holds whatever an earlier, longer path left there.
#[inline(always)]
fn word(data: *const u8, k: usize, len: usize) -> u64 {
    let at = 8 * k;
    if at >= len {
        return 0;
    }
    // SAFETY: k <= SCAN_MAX / 8, inside the buffer; the path starts 8-aligned.
    let w = unsafe { core::ptr::read((data as *const u64).add(k)) };
    let rem = len - at;
    if rem >= 8 {
        w
    } else {
        w & ((1u64 << (8 * rem)) - 1)
    }
}

/// True when the path (as the task passed it, `len` bytes at `PATH_AT` in the path buffer
/// `base`) may match some rule. Works on words without per-byte branches: what the verifier
/// walks, and what the CPU runs, stay short.
#[inline(always)]
pub fn prefilter_pass(base: *mut u8, len: usize, settings: &Settings) -> bool {
    let suffix_count = settings.suffix_count;
    // SAFETY: PATH_AT + SCAN_MAX + 16 bytes are inside the buffer.
    let data = unsafe { base.add(PATH_AT) };
    if len == 0 || len > SCAN_MAX || unsafe { *data } != b'/' {
        return true;
    }
    // A `.` component (`/./`, or `/.` at the end), `//`, and `..` anywhere: lexical cleaning
    // would change the path, so the prefixes below, which are of clean paths, cannot judge
    // it. (`..` anywhere, not only as a component: a rule may test the raw name for `../`.)
    // A name that merely starts with a dot, as in `/root/.cache/x`, is judged like any other:
    // cleaning leaves it alone.
    // Each word's byte masks are computed once, and the masks (not the words) are shifted to
    // line byte i up with bytes i + 1 and i + 2 (little-endian words; bytes past the end are
    // 0, so they count as a component's end).
    let mut odd = 0u64;
    let w = word(data, 0, len);
    let mut slash = eq_bytes(w, b'/');
    let mut dot = eq_bytes(w, b'.');
    let mut end = slash | eq_bytes(w, 0);
    for k in 0..SCAN_MAX / 8 {
        if 8 * k >= len {
            break;
        }
        let next = word(data, k + 1, len);
        let next_slash = eq_bytes(next, b'/');
        let next_dot = eq_bytes(next, b'.');
        let next_end = next_slash | eq_bytes(next, 0);
        let slash1 = (slash >> 8) | (next_slash << 56);
        let dot1 = (dot >> 8) | (next_dot << 56);
        let end2 = (end >> 16) | (next_end << 48);
        odd |= (slash & slash1) | (dot & dot1) | (slash & dot1 & end2);
        slash = next_slash;
        dot = next_dot;
        end = next_end;
    }
    if odd != 0 {
        return true;
    }
    // The prefix-head bitmap first: most paths start with no prefix's first 8 bytes, and a
    // clear bit says so without the trie.
    let head_may_match = if settings.prefix_heads_on != 0 && len >= 8 {
        let i = prefix_head_index(word(data, 0, len));
        matches!(PREFIX_HEADS.get(i / 64), Some(w) if *w & (1u64 << (i % 64)) != 0)
    } else {
        true
    };
    if head_may_match && prefix_match(base, len) {
        return true;
    }
    if suffix_count == 0 {
        return false;
    }
    suffix_match(data, len, suffix_count)
}

/// Whether the path starts with one of the prefixes (the trie).
#[inline(always)]
fn prefix_match(base: *mut u8, len: usize) -> bool {
    let n = if len < PREFIX_MAX { len } else { PREFIX_MAX };
    // SAFETY: KEY_AT is 4-aligned and the key's data is the path itself; the trie compares
    // only `prefix_len` bits of it.
    let key = unsafe { &mut *(base.add(KEY_AT) as *mut Key<[u8; PREFIX_MAX]>) };
    key.prefix_len = (n * 8) as u32;
    PREFIXES.get(key).is_some()
}

/// Whether the path ends with one of the suffixes.
#[inline(always)]
fn suffix_match(data: *const u8, len: usize, suffix_count: u32) -> bool {
    if len >= 2 {
        // SAFETY: 2 <= len <= SCAN_MAX: both bytes are inside the buffer.
        let (a, b) = unsafe { (*data.add(len - 2), *data.add(len - 1)) };
        let i = suffix_tail_index(a, b);
        match SUFFIX_TAILS.get(i / 64) {
            Some(w) if *w & (1u64 << (i % 64)) != 0 => {}
            // No suffix ends with these two bytes.
            _ => return false,
        }
    }
    // The path's last SUFFIX_MAX bytes, right-aligned (bytes before a short path are junk, and
    // masked off by any suffix no longer than the path).
    let mut tail = [0u64; SUFFIX_MAX / 8];
    // SAFETY: reads from the path buffer; the path sits PATH_AT >= SUFFIX_MAX bytes in, so
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
