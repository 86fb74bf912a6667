//! Every map of the kernel side, in one place.

use aya_ebpf::{
    helpers::generated as helper,
    macros::map,
    maps::{Array, HashMap, LpmTrie, PerCpuArray, RingBuf},
};
use monitor_common::{
    CommKey, EnfConj, KernelOffsets, KindConfig, MAX_SUFFIXES, NameBits, PREFIX_HEAD_WORDS,
    PREFIX_MAX, RecordHeader, SUFFIX_TAIL_WORDS, Settings, Suffix, drop, enforce, filtered, kind,
    limits,
};

/// Bytes of the per-CPU scratch record: header, items area, and room for the last item to run
/// past the items bound (offsets are masked, sizes are constant, so the slack must be there).
pub const SCRATCH_SIZE: usize =
    core::mem::size_of::<RecordHeader>() + limits::MAX_PAYLOAD + 2 * limits::MAX_STR + 64;

#[repr(C)]
pub struct Scratch {
    pub buf: [u8; SCRATCH_SIZE],
}

/// An exec's arguments, kept from its point of no return (`task_rename`) until the new program
/// is loaded (`sched_process_exec`), by which time its registers have been reset.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Pending {
    pub args: [u64; 6],
    /// The record kind of the syscall (exec's second half needs to know which exec it was).
    pub kind: u64,
}

/// The one ring buffer to userspace. The daemon sets its size at load.
#[map]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(8 << 20, 0);

#[map]
pub static SCRATCH: PerCpuArray<Scratch> = PerCpuArray::with_max_entries(1, 0);

/// Where the open prefilter reads a path at syscall entry: the path starts at `PATH_AT`, so
/// that the suffix check may read the bytes before it, and the window after it is zeroed.
pub const PATH_AT: usize = 64;
#[repr(C)]
pub struct PathBuf {
    pub buf: [u8; 512],
}
#[map]
pub static PATHBUF: PerCpuArray<PathBuf> = PerCpuArray::with_max_entries(1, 0);

/// A task-local storage map, declared the way the kernel wants it (with BTF: the kernel
/// refuses local storage maps without). aya-ebpf has no task storage type yet.
#[repr(C)]
pub struct TaskStorage<T> {
    r#type: *const [i32; 29], // BPF_MAP_TYPE_TASK_STORAGE
    key: *const i32,
    value: *const T,
    max_entries: *const [i32; 0],
    map_flags: *const [i32; 1], // BPF_F_NO_PREALLOC
}

// SAFETY: placeholder pointers the loader reads as BTF; never dereferenced.
unsafe impl<T> Sync for TaskStorage<T> {}

impl<T> TaskStorage<T> {
    const fn new() -> Self {
        TaskStorage {
            r#type: core::ptr::null(),
            key: core::ptr::null(),
            value: core::ptr::null(),
            max_entries: core::ptr::null(),
            map_flags: core::ptr::null(),
        }
    }

    /// The current task's value (created zeroed if `create`).
    #[inline(always)]
    fn current(&self, create: bool) -> Option<*mut T> {
        // SAFETY: plain helper calls; the map pointer is this map's definition, which the
        // loader turns into the map.
        let p = unsafe {
            let task = helper::bpf_get_current_task_btf();
            helper::bpf_task_storage_get(
                self as *const Self as *mut core::ffi::c_void,
                task,
                core::ptr::null_mut(),
                u64::from(create),
            )
        };
        if p.is_null() { None } else { Some(p as *mut T) }
    }
}

/// Each task's exec waiting for its new program. Task-local: found from the task itself
/// (no hashing, no locks, nothing to age out: it goes with the task).
#[unsafe(link_section = ".maps")]
#[unsafe(export_name = "PENDING")]
pub static PENDING: TaskStorage<Pending> = TaskStorage::new();

/// The current task's slot for an exec's arguments (created on its first exec). None only
/// if the kernel could not allocate it.
#[inline(always)]
pub fn pending_slot() -> Option<*mut Pending> {
    PENDING.current(true)
}

/// Take the current task's waiting entry, if there is one.
#[inline(always)]
pub fn pending_take() -> Option<Pending> {
    let slot = PENDING.current(false)?;
    // SAFETY: the task's own slot; `kind` 0 marks it empty.
    unsafe {
        if (*slot).kind == 0 {
            return None;
        }
        let p = *slot;
        (*slot).kind = 0;
        Some(p)
    }
}

/// Architecture syscall number -> record kind (0: not captured). Filled by the daemon.
#[map]
pub static NR_KIND: Array<u16> = Array::with_max_entries(1024, 0);

/// The record kind of 64-bit syscall number `nr` (0: not captured).
#[inline(always)]
pub fn kind_of_nr(nr: i64) -> u16 {
    if !(0..1024).contains(&nr) {
        return 0;
    }
    NR_KIND.get(nr as u32).copied().unwrap_or(0)
}

/// Per-kind switches (enabled, want failed, prefilter), filled from the loaded rules.
#[map]
pub static KIND_CONFIG: Array<KindConfig> = Array::with_max_entries(kind::MAX as u32, 0);

#[map]
pub static SETTINGS: Array<Settings> = Array::with_max_entries(1, 0);

/// Non-zero while the reader sleeps without a tick, waiting to be woken: then every record
/// wakes it. Written by the reader alone (apart from `SETTINGS`, which the probe rewrites on
/// every reload), so a reload can never put it to sleep unawares.
#[map]
pub static READER_ASLEEP: Array<u32> = Array::with_max_entries(1, 0);

/// Records lost, per CPU and reason (`monitor_common::drop`).
#[map]
pub static DROPS: PerCpuArray<u64> = PerCpuArray::with_max_entries(drop::COUNT, 0);

/// Records filtered out on purpose, per CPU and reason (`monitor_common::filtered`).
#[map]
pub static FILTERED: PerCpuArray<u64> = PerCpuArray::with_max_entries(filtered::COUNT, 0);

/// Path prefixes of the open prefilter.
#[map]
pub static PREFIXES: LpmTrie<[u8; PREFIX_MAX], u8> = LpmTrie::with_max_entries(4096, 0);

/// The prefix-head bitmap of the open prefilter (`monitor_common::PREFIX_HEAD_WORDS`).
#[map]
pub static PREFIX_HEADS: Array<u64> = Array::with_max_entries(PREFIX_HEAD_WORDS, 0);

/// The suffix-tail bitmap of the open prefilter (`monitor_common::SUFFIX_TAIL_WORDS`).
#[map]
pub static SUFFIX_TAILS: Array<u64> = Array::with_max_entries(SUFFIX_TAIL_WORDS, 0);

/// Path suffixes of the open prefilter (`Settings::suffix_count` valid entries).
#[map]
pub static SUFFIXES: Array<Suffix> = Array::with_max_entries(MAX_SUFFIXES, 0);

/// Enforcement facts from task names: which predicate bits a name in a slot sets.
#[map]
pub static COMM_BITS: HashMap<CommKey, u64> = HashMap::with_max_entries(4096, 0);

/// Enforcement facts from the exec'd path (prefixes, and exact paths ending in a NUL byte);
/// each entry's bits include those of every shorter entry it extends.
/// (Keyed by words, not bytes, so that building a key is a few stores, not a byte loop.)
#[map]
pub static EXE_BITS: LpmTrie<[u64; enforce::EXE_KEY_MAX / 8], u64> =
    LpmTrie::with_max_entries(1024, 0);

/// Enforcement facts from the new program's name (`Settings::name_count` valid).
#[map]
pub static NAME_BITS: Array<NameBits> = Array::with_max_entries(enforce::MAX_NAMES, 0);

/// Enforcement facts from the task's cgroup: container membership and container predicates,
/// kept up to date by the daemon as containers come and go.
#[map]
pub static CGROUP_BITS: HashMap<u64, u64> = HashMap::with_max_entries(16384, 0);

/// Enforcement facts from the uid.
#[map]
pub static UID_BITS: HashMap<u32, u64> = HashMap::with_max_entries(1024, 0);

/// The conjunctions of the enforcing rules (`Settings::enf_count` valid).
#[map]
pub static ENF_CONJ: Array<EnfConj> = Array::with_max_entries(enforce::MAX_CONJ, 0);

/// Offsets into kernel structures, set by the daemon at load from the running kernel's BTF.
/// A global in .rodata: constant for the verifier, no map lookup per event.
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = unsafe { core::mem::zeroed() };

/// The offsets, by reference (the struct is too big to copy onto a 512-byte stack in every
/// program that reads it).
#[inline(always)]
pub fn offsets() -> &'static KernelOffsets {
    let p: *const KernelOffsets = &OFFSETS;
    // SAFETY: a volatile read of the pointer hides where it points from the compiler, so that
    // the fields are loaded at run time (the values patched in at load) rather than folded to
    // the zeroes it sees; the pointer itself is the global's address.
    unsafe { &*core::ptr::read_volatile(&p) }
}

#[inline(always)]
pub fn settings() -> Settings {
    match SETTINGS.get(0) {
        Some(s) => *s,
        None => Settings::default(),
    }
}

/// `Settings::wake_bytes`, without copying the whole settings.
#[inline(always)]
pub fn settings_wake_bytes() -> u32 {
    match SETTINGS.get(0) {
        Some(s) => s.wake_bytes,
        None => 0,
    }
}

/// Is the reader asleep, waiting for a record to wake it?
#[inline(always)]
pub fn reader_asleep() -> bool {
    READER_ASLEEP.get(0).is_some_and(|v| *v != 0)
}

#[inline(always)]
pub fn count(map: &PerCpuArray<u64>, index: u32) {
    if let Some(p) = map.get_ptr_mut(index) {
        // SAFETY: per-CPU slot, only this CPU writes it while the program runs.
        unsafe { *p += 1 }
    }
}

/// When calls of kind `k` by the current task are to be looked at (the kind is enabled, the
/// task is not the monitor): the kind's configuration and the settings.
#[inline(always)]
pub fn wanted(k: u16) -> Option<(KindConfig, Settings)> {
    let (cfg, settings) = enabled(k)?;
    if is_self(&settings) {
        return None;
    }
    Some((cfg, settings))
}

/// The kind's configuration and the settings, when the kind is enabled. Whoever calls this
/// instead of `wanted` must still drop the monitor's own calls (`is_self`) before sending.
#[inline(always)]
pub fn enabled(k: u16) -> Option<(KindConfig, Settings)> {
    let cfg = kind_config(k);
    if cfg.enabled == 0 {
        return None;
    }
    Some((cfg, settings()))
}

/// Whether the current task belongs to the monitor itself.
#[inline(always)]
pub fn is_self(settings: &Settings) -> bool {
    (aya_ebpf::helpers::bpf_get_current_pid_tgid() >> 32) as u32 == settings.self_pid
}

#[inline(always)]
pub fn kind_config(k: u16) -> KindConfig {
    match KIND_CONFIG.get(u32::from(k)) {
        Some(c) => *c,
        None => KindConfig::default(),
    }
}
