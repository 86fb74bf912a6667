//! Enforcement at exec: compute the exec's facts (a 64-bit set of the enforcing rules'
//! predicates) with a few map lookups, then test each rule conjunction's masks. A match sends
//! SIGKILL from the kernel before the new program runs a single instruction (or, in dry run,
//! only marks the record).

use aya_ebpf::{
    helpers::{
        bpf_get_current_cgroup_id, bpf_get_current_pid_tgid, bpf_get_current_uid_gid,
        generated as raw,
    },
    maps::lpm_trie::Key,
};
use monitor_common::{CommKey, EnfConj, SUFFIX_MAX, enforce, limits};

use crate::maps::{self, CGROUP_BITS, COMM_BITS, ENF_CONJ, EXE_BITS, NAME_BITS, PATHBUF, UID_BITS};
use crate::task;

/// The matching conjunction for an exec of the path at `path` (`len` bytes, in the scratch
/// buffer), if any.
#[inline(always)]
pub fn decide(path: *const u8, len: usize, on: u32, count: u32) -> Option<EnfConj> {
    let pid_tgid = bpf_get_current_pid_tgid();
    let tgid = (pid_tgid >> 32) as u32;
    // Never the host's init, never the monitor itself.
    if tgid == 1 || tgid == maps::settings().self_pid {
        return None;
    }
    let mut facts = 0u64;

    // The new program's name, as the path's last component: compare the path's last
    // SUFFIX_MAX bytes with each `/NAME` the rules test (word-wise, like the prefilter).
    let names = maps::settings().name_count;
    if names != 0 && len > 0 {
        // The tail and the path key below live in the per-CPU path buffer: the stack is too
        // small for them beside the record being built.
        let Some(tail) = work_area() else {
            return None;
        };
        // SAFETY: reads from the scratch buffer; `path` sits past the record header, so the
        // window before it is inside the buffer. Bytes before a short path are masked off.
        unsafe {
            raw::bpf_probe_read_kernel(
                tail.add(TAIL_AT) as *mut _,
                SUFFIX_MAX as u32,
                path.wrapping_add(len).wrapping_sub(SUFFIX_MAX) as *const _,
            );
        }
        let tail = unsafe { &*(tail.add(TAIL_AT) as *const [u64; SUFFIX_MAX / 8]) };
        for i in 0..enforce::MAX_NAMES {
            if i >= names {
                break;
            }
            let Some(nb) = NAME_BITS.get(i) else { break };
            if nb.len as usize > len {
                continue;
            }
            let mut diff = 0u64;
            for w in 0..SUFFIX_MAX / 8 {
                diff |= (tail[w] ^ nb.pattern[w]) & nb.mask[w];
            }
            if diff == 0 {
                facts |= nb.bits;
            }
        }
    }

    // Ancestors: the exec'ing task's parent is the new program's parent.
    let o = maps::offsets();
    if o.valid != 0 {
        let mut t = task::current();
        for depth in 1..=limits::MAX_ANCESTORS as u32 {
            t = task::read::<u64>(t, o.task_real_parent);
            if t == 0 {
                break;
            }
            let comm: [u8; 16] = task::read(t, o.task_comm);
            facts |= comm_bits(&CommKey { slot: depth, comm });
            facts |= comm_bits(&CommKey {
                slot: enforce::SLOT_ANY_ANCESTOR,
                comm,
            });
            if task::read::<u32>(t, o.task_tgid) <= 1 {
                break;
            }
        }
    }

    // The exec'd path, NUL included so that exact paths match only themselves.
    let n = if len + 1 < enforce::EXE_KEY_MAX {
        len + 1
    } else {
        enforce::EXE_KEY_MAX
    };
    let area = work_area()?;
    // SAFETY: the key fits in the path buffer (checked by `work_area`'s constants); the trie
    // reads it where it is, in map memory.
    let key = unsafe { &mut *(area as *mut Key<[u64; enforce::EXE_KEY_MAX / 8]>) };
    key.prefix_len = (n * 8) as u32;
    // SAFETY: reads from the scratch buffer, which has room past the path.
    unsafe {
        raw::bpf_probe_read_kernel(
            core::ptr::addr_of_mut!(key.data) as *mut _,
            enforce::EXE_KEY_MAX as u32,
            path as *const _,
        );
    }
    if len < enforce::EXE_KEY_MAX {
        // The record does not keep the path's NUL (the next item follows the path at once),
        // so the copy has the next item's first byte where an exact path's key has its NUL.
        // SAFETY: the index is below EXE_KEY_MAX, inside the key's data.
        unsafe {
            *(core::ptr::addr_of_mut!(key.data) as *mut u8).add(len & (enforce::EXE_KEY_MAX - 1)) =
                0;
        }
    }
    if let Some(b) = EXE_BITS.get(key) {
        facts |= *b;
    }

    // SAFETY: plain helper calls.
    let cgroup = unsafe { bpf_get_current_cgroup_id() };
    if let Some(b) = unsafe { CGROUP_BITS.get(&cgroup) } {
        facts |= *b;
    }
    let uid = bpf_get_current_uid_gid() as u32;
    if let Some(b) = unsafe { UID_BITS.get(&uid) } {
        facts |= *b;
    }

    for i in 0..enforce::MAX_CONJ {
        if i >= count {
            break;
        }
        let Some(c) = ENF_CONJ.get(i) else { break };
        if c.flags & on != 0 && facts & c.must_set == c.must_set && facts & c.must_clear == 0 {
            return Some(*c);
        }
    }
    None
}

/// Where the names' tail is kept in the work area (the path key takes its start).
const TAIL_AT: usize = 256;
const _: () = assert!(
    core::mem::size_of::<Key<[u64; enforce::EXE_KEY_MAX / 8]>>() <= TAIL_AT
        && TAIL_AT + SUFFIX_MAX <= core::mem::size_of::<maps::PathBuf>()
);

/// The per-CPU path buffer, as the work area of one decision (the open prefilter, its other
/// user, never runs in the middle of an exec's program on the same CPU).
#[inline(always)]
fn work_area() -> Option<*mut u8> {
    let pb = PATHBUF.get_ptr_mut(0)?;
    // SAFETY: the per-CPU value is ours while the program runs.
    Some(unsafe { (*pb).buf.as_mut_ptr() })
}

#[inline(always)]
fn comm_bits(key: &CommKey) -> u64 {
    // SAFETY: value copied out at once.
    unsafe { COMM_BITS.get(key) }.copied().unwrap_or(0)
}
