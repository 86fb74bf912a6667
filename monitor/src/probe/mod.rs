//! Loading and attaching the kernel programs, and configuring their maps: which syscalls are
//! captured, the path prefilter, the settings. The ring buffer is handed to the reader.

pub mod btf;
pub mod syscalls;

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use aya::maps::lpm_trie::{Key, LpmTrie};
use aya::maps::{Array, PerCpuArray, RingBuf};
use aya::programs::trace_point::TracePointLinkId;
use aya::programs::{BtfTracePoint, RawTracePoint, TracePoint};
use aya::{Ebpf, EbpfLoader};
use monitor_common::{
    CommKey, EnfConj, KindConfig, MAX_SUFFIXES, NameBits, PREFIX_HEAD_WORDS, PREFIX_MAX,
    SUFFIX_MAX, SUFFIX_TAIL_WORDS, Settings, Suffix, drop, enforce, filtered, kind,
    prefix_head_index, suffix_tail_index,
};
use tracing::{debug, warn};

/// The eBPF object, built from the workspace by build.rs and embedded here.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/monitor"));

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error(
        "missing privileges: {0} (run as root, or grant CAP_BPF, CAP_PERFMON, CAP_SYS_RESOURCE and CAP_SYS_PTRACE)"
    )]
    Privileges(String),
    #[error(
        "tracefs is not mounted and mounting it failed ({0}); mount it with: mount -t tracefs nodev /sys/kernel/tracing"
    )]
    Tracefs(String),
    #[error(transparent)]
    Btf(#[from] btf::BtfError),
    #[error("loading the eBPF programs failed: {0}")]
    Load(#[from] aya::EbpfError),
    #[error("eBPF program {name}: {source}")]
    Program {
        name: &'static str,
        source: aya::programs::ProgramError,
    },
    #[error("eBPF map {name}: {source}")]
    Map {
        name: &'static str,
        source: aya::maps::MapError,
    },
    #[error("eBPF map {0} is missing from the object")]
    MissingMap(&'static str),
    #[error("the ring buffer reader: {0}")]
    Reader(std::io::Error),
}

/// Where syscall exits are caught (see the kernel side's `probes::syscalls` for the costs).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyscallHook {
    /// Each captured syscall's own `syscalls/sys_exit_*` event: nothing on the others.
    #[default]
    SyscallTracepoints,
    /// One program on the raw `sys_exit` tracepoint: cheaper per captured syscall, a little
    /// on every syscall of the machine.
    RawSysExit,
}

impl std::fmt::Display for SyscallHook {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SyscallHook::SyscallTracepoints => "syscall_tracepoints",
            SyscallHook::RawSysExit => "raw_sys_exit",
        })
    }
}

/// The `capture` section of the configuration: how the kernel side is attached. Read at
/// start; a change takes effect at the next restart.
#[derive(Clone, Debug, Default, PartialEq, Eq, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct CaptureConfig {
    pub syscall_hook: SyscallHook,
}

/// Settings for loading.
#[derive(Clone, Debug)]
pub struct ProbeConfig {
    /// Size of the ring buffer in bytes (a power of two, a multiple of the page size).
    pub ring_buffer_bytes: u32,
    /// Where the kernel's BTF is.
    pub btf_path: PathBuf,
    pub hook: SyscallHook,
}

impl Default for ProbeConfig {
    fn default() -> Self {
        ProbeConfig {
            ring_buffer_bytes: 16 << 20,
            btf_path: PathBuf::from("/sys/kernel/btf/vmlinux"),
            hook: SyscallHook::default(),
        }
    }
}

/// The in-kernel prefilter of open paths, derived from the rules (see `rules::PathPrefilter`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Prefilter {
    pub prefixes: Vec<String>,
    pub suffixes: Vec<String>,
}

/// What the kernel side captures: the kinds and whether opens are prefiltered.
#[derive(Clone, Debug, Default)]
pub struct CaptureSet {
    pub kinds: BTreeSet<u16>,
    pub prefilter: Option<Prefilter>,
    /// Kinds that no rule can match on a TCP socket: dropped at entry for those sockets.
    pub skip_inet_stream: BTreeSet<u16>,
    /// Kinds dropped in the kernel when they carry no destination address (sendto).
    pub skip_no_addr: BTreeSet<u16>,
}

/// Counters summed over CPUs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KernelCounters {
    pub drops: [u64; drop::COUNT as usize],
    pub filtered: [u64; filtered::COUNT as usize],
}

/// Check privileges, mount tracefs if needed, and load the object with this kernel's offsets.
/// Nothing is attached.
fn load_object(cfg: &ProbeConfig) -> Result<Ebpf, ProbeError> {
    check_privileges()?;
    ensure_tracefs()?;
    let offsets = btf::kernel_offsets(&cfg.btf_path)?;
    btf::check_syscall_regs(&cfg.btf_path)?;
    raise_memlock();
    Ok(EbpfLoader::new()
        .override_global("OFFSETS", &offsets, true)
        .map_max_entries("EVENTS", cfg.ring_buffer_bytes)
        // PENDING is task-local storage, which aya has no userspace type for; only the
        // programs use it.
        .allow_unsupported_maps()
        .load(EBPF_OBJECT)?)
}

/// A program that does nothing, attached where the monitor's exit program would be (openat's
/// exit event, or the raw `sys_exit`) and nothing else: what a tracepoint hit costs before any
/// work, the floor under the monitor's own cost (the capture benchmark measures it). Dropping
/// it detaches the program.
pub struct Floor {
    _ebpf: Ebpf,
}

impl Floor {
    /// Attach the do-nothing program. With `read_path`, the program also reaches openat's
    /// registers and reads its path as the open prefilter does.
    pub fn attach(cfg: &ProbeConfig, read_path: bool) -> Result<Floor, ProbeError> {
        let mut ebpf = load_object(cfg)?;
        fill_nr_kind(&mut ebpf)?;
        match (cfg.hook, read_path) {
            (SyscallHook::RawSysExit, false) => {
                attach_raw_exit(&mut ebpf, cfg, "sys_exit_raw_noop")?
            }
            (SyscallHook::RawSysExit, true) => {
                attach_raw_exit(&mut ebpf, cfg, "sys_exit_raw_noop_read")?
            }
            (SyscallHook::SyscallTracepoints, false) => {
                load_exit_event(&mut ebpf, "sys_exit_noop", "openat")?;
            }
            (SyscallHook::SyscallTracepoints, true) => {
                load_exit_event(&mut ebpf, "sys_exit_noop_read", "openat")?;
            }
        }
        Ok(Floor { _ebpf: ebpf })
    }
}

/// Load program `name` for the raw `sys_exit` tracepoint (BTF-typed) and attach it; the link
/// lives as long as the object.
fn attach_raw_exit(
    ebpf: &mut Ebpf,
    cfg: &ProbeConfig,
    name: &'static str,
) -> Result<(), ProbeError> {
    let btf = aya::Btf::parse_file(&cfg.btf_path, aya::Endianness::default())
        .map_err(|e| ProbeError::Btf(btf::BtfError::Other(e.to_string())))?;
    let p: &mut BtfTracePoint = program(ebpf, name)?;
    p.load("sys_exit", &btf)
        .map_err(|source| ProbeError::Program { name, source })?;
    p.attach()
        .map_err(|source| ProbeError::Program { name, source })?;
    Ok(())
}

/// Load program `name` for syscall exit events and attach it to `syscalls/sys_exit_{syscall}`;
/// the link lives as long as the object.
fn load_exit_event(
    ebpf: &mut Ebpf,
    name: &'static str,
    syscall: &str,
) -> Result<TracePointLinkId, ProbeError> {
    let p: &mut TracePoint = program(ebpf, name)?;
    p.load()
        .map_err(|source| ProbeError::Program { name, source })?;
    p.attach("syscalls", &format!("sys_exit_{syscall}"))
        .map_err(|source| ProbeError::Program { name, source })
}

/// Architecture syscall number -> record kind, for the programs' look-up.
fn fill_nr_kind(ebpf: &mut Ebpf) -> Result<(), ProbeError> {
    let mut nr_kind: Array<_, u16> = map(ebpf, "NR_KIND")?;
    for sc in syscalls::SYSCALLS {
        if let Some(nr) = sc.nr
            && let Ok(nr) = u32::try_from(nr)
        {
            nr_kind
                .set(nr, sc.kind, 0)
                .map_err(|source| ProbeError::Map {
                    name: "NR_KIND",
                    source,
                })?;
        }
    }
    Ok(())
}

/// Loaded and attached programs. Dropping it detaches everything.
pub struct Probe {
    ebpf: Ebpf,
    cfg: ProbeConfig,
    /// With per-syscall events: the exit events attached now, by kind. Only the syscalls some
    /// rule or the process table needs are attached: every attached event costs each of its
    /// syscalls a program run, and detaching costs time at shutdown.
    attached: std::collections::HashMap<u16, TracePointLinkId>,
    /// Syscall events this kernel does not have (e.g. init_module without CONFIG_MODULES).
    pub missing: Vec<&'static str>,
    settings: Settings,
}

impl Probe {
    /// Check privileges, mount tracefs if needed, load the programs with this kernel's
    /// offsets, and attach them. Nothing is captured until `set_capture`.
    pub fn load(cfg: &ProbeConfig) -> Result<Probe, ProbeError> {
        let mut ebpf = load_object(cfg)?;
        fill_nr_kind(&mut ebpf)?;
        let mut probe = Probe {
            ebpf,
            cfg: cfg.clone(),
            attached: std::collections::HashMap::new(),
            missing: Vec::new(),
            settings: Settings {
                self_pid: std::process::id(),
                // A sixteenth of the ring: the reader's tick collects anything less, and a
                // burst wakes it long before the ring fills.
                wake_bytes: cfg.ring_buffer_bytes / 16,
                ..Settings::default()
            },
        };
        probe.write_settings()?;
        probe.attach()?;
        Ok(probe)
    }

    /// Attach the programs. Which syscalls are captured is then up to `KIND_CONFIG` (all off
    /// until `set_capture`) and, with per-syscall events, to which events are attached.
    fn attach(&mut self) -> Result<(), ProbeError> {
        let exit: &mut TracePoint = program(&mut self.ebpf, "sched_process_exit")?;
        exit.load().map_err(|source| ProbeError::Program {
            name: "sched_process_exit",
            source,
        })?;
        // task_rename keeps an exec's arguments from its point of no return for
        // sched_process_exec, so it is attached first.
        for name in ["task_rename", "sched_process_fork", "sched_process_exec"] {
            let p: &mut RawTracePoint = program(&mut self.ebpf, name)?;
            p.load()
                .map_err(|source| ProbeError::Program { name, source })?;
            p.attach(name)
                .map_err(|source| ProbeError::Program { name, source })?;
        }
        let exit: &mut TracePoint = program(&mut self.ebpf, "sched_process_exit")?;
        exit.attach("sched", "sched_process_exit")
            .map_err(|source| ProbeError::Program {
                name: "sched_process_exit",
                source,
            })?;
        let cfg = self.cfg.clone();
        match cfg.hook {
            SyscallHook::RawSysExit => attach_raw_exit(&mut self.ebpf, &cfg, "sys_exit_raw"),
            SyscallHook::SyscallTracepoints => {
                let p: &mut TracePoint = program(&mut self.ebpf, "sys_exit")?;
                p.load().map_err(|source| ProbeError::Program {
                    name: "sys_exit",
                    source,
                })?;
                for sc in syscalls::SYSCALLS {
                    if sc.nr.is_some() && !tracepoint_exists(&format!("sys_exit_{}", sc.tracepoint))
                    {
                        debug!(
                            "tracepoint syscalls/sys_exit_{} does not exist on this kernel",
                            sc.tracepoint
                        );
                        self.missing.push(sc.tracepoint);
                    }
                }
                if !self.missing.is_empty() {
                    warn!(
                        "this kernel has no tracepoints for: {} (those events are never seen)",
                        self.missing.join(", ")
                    );
                }
                Ok(())
            }
        }
    }

    /// With per-syscall events: attach the exit events of `kinds`, detach the others.
    fn attach_kinds(&mut self, kinds: &BTreeSet<u16>) -> Result<(), ProbeError> {
        if self.cfg.hook != SyscallHook::SyscallTracepoints {
            return Ok(());
        }
        let stale: Vec<u16> = self
            .attached
            .keys()
            .copied()
            .filter(|k| !kinds.contains(k))
            .collect();
        for k in stale {
            if let Some(link) = self.attached.remove(&k) {
                let p: &mut TracePoint = program(&mut self.ebpf, "sys_exit")?;
                p.detach(link).map_err(|source| ProbeError::Program {
                    name: "sys_exit",
                    source,
                })?;
            }
        }
        for sc in syscalls::SYSCALLS {
            if sc.nr.is_none()
                || !kinds.contains(&sc.kind)
                || self.attached.contains_key(&sc.kind)
                || self.missing.contains(&sc.tracepoint)
            {
                continue;
            }
            let p: &mut TracePoint = program(&mut self.ebpf, "sys_exit")?;
            let link = p
                .attach("syscalls", &format!("sys_exit_{}", sc.tracepoint))
                .map_err(|source| ProbeError::Program {
                    name: "sys_exit",
                    source,
                })?;
            self.attached.insert(sc.kind, link);
        }
        Ok(())
    }

    /// Switch capture to `set`: the kinds it names (plus those the process table needs),
    /// and the open prefilter. Takes effect for the next syscall.
    pub fn set_capture(&mut self, set: &CaptureSet) -> Result<(), ProbeError> {
        let mut wanted: BTreeSet<u16> = set.kinds.clone();
        wanted.extend(syscalls::ALWAYS.iter().copied());
        // Configure first, attach second: a newly attached event sees its configuration.
        self.write_kind_config(&wanted, set)?;
        self.attach_kinds(&wanted)?;
        self.set_prefilter(set.prefilter.as_ref())
    }

    fn write_kind_config(
        &mut self,
        wanted: &BTreeSet<u16>,
        set: &CaptureSet,
    ) -> Result<(), ProbeError> {
        let mut cfg: Array<_, KindConfig> = map(&mut self.ebpf, "KIND_CONFIG")?;
        for k in 1..kind::MAX {
            let enabled = wanted.contains(&k);
            let value = KindConfig {
                enabled: u8::from(enabled),
                want_failed: 1,
                prefilter: u8::from(syscalls::PREFILTERED.contains(&k)),
                skip_inet_stream: u8::from(set.skip_inet_stream.contains(&k)),
                skip_no_addr: u8::from(k == kind::SENDTO && set.skip_no_addr.contains(&k)),
                _pad: [0; 3],
            };
            cfg.set(u32::from(k), value, 0)
                .map_err(|source| ProbeError::Map {
                    name: "KIND_CONFIG",
                    source,
                })?;
        }
        Ok(())
    }

    fn set_prefilter(&mut self, pf: Option<&Prefilter>) -> Result<(), ProbeError> {
        // Turn the filter off while its tables change, so no open is judged by half a filter.
        self.settings.prefilter_on = 0;
        self.write_settings()?;
        let Some(pf) = pf else { return Ok(()) };
        if pf.suffixes.len() > MAX_SUFFIXES as usize
            || pf
                .suffixes
                .iter()
                .any(|s| s.len() > SUFFIX_MAX || s.is_empty())
        {
            warn!("path prefilter has suffixes the kernel cannot hold: prefilter disabled");
            return Ok(());
        }
        {
            let mut trie: LpmTrie<_, [u8; PREFIX_MAX], u8> = map(&mut self.ebpf, "PREFIXES")?;
            let old: Vec<Key<[u8; PREFIX_MAX]>> = trie.keys().filter_map(Result::ok).collect();
            for k in old {
                let _ = trie.remove(&k);
            }
            for p in &pf.prefixes {
                let bytes = p.as_bytes();
                let n = bytes.len().min(PREFIX_MAX);
                let mut data = [0u8; PREFIX_MAX];
                data[..n].copy_from_slice(&bytes[..n]);
                trie.insert(&Key::new((n * 8) as u32, data), 1, 0)
                    .map_err(|source| ProbeError::Map {
                        name: "PREFIXES",
                        source,
                    })?;
            }
        }
        {
            let mut suffixes: Array<_, Suffix> = map(&mut self.ebpf, "SUFFIXES")?;
            for (i, s) in pf.suffixes.iter().enumerate() {
                suffixes
                    .set(i as u32, suffix_entry(s.as_bytes()), 0)
                    .map_err(|source| ProbeError::Map {
                        name: "SUFFIXES",
                        source,
                    })?;
            }
        }
        let heads = prefix_heads(&pf.prefixes);
        if let Some(words) = &heads {
            let mut map_heads: Array<_, u64> = map(&mut self.ebpf, "PREFIX_HEADS")?;
            for (i, w) in words.iter().enumerate() {
                map_heads
                    .set(i as u32, *w, 0)
                    .map_err(|source| ProbeError::Map {
                        name: "PREFIX_HEADS",
                        source,
                    })?;
            }
        }
        self.settings.prefix_heads_on = u32::from(heads.is_some());
        {
            let mut tails: Array<_, u64> = map(&mut self.ebpf, "SUFFIX_TAILS")?;
            for (i, w) in suffix_tails(&pf.suffixes).into_iter().enumerate() {
                tails
                    .set(i as u32, w, 0)
                    .map_err(|source| ProbeError::Map {
                        name: "SUFFIX_TAILS",
                        source,
                    })?;
            }
        }
        debug!(
            prefixes = ?pf.prefixes,
            suffixes = ?pf.suffixes,
            "open path prefilter loaded"
        );
        self.settings.suffix_count = pf.suffixes.len() as u32;
        self.settings.prefilter_on = 1;
        self.write_settings()
    }

    /// Load the enforcement tables (replacing the previous ones). Enforcement is off while the
    /// tables change, so no exec is judged by half a table.
    pub fn set_enforcement(
        &mut self,
        t: &crate::enforce::tables::KernelTables,
    ) -> Result<(), ProbeError> {
        self.settings.enf_count = 0;
        self.settings.name_count = 0;
        self.write_settings()?;
        let merr = |name: &'static str| move |source| ProbeError::Map { name, source };
        {
            let mut m: aya::maps::HashMap<_, CommKey, u64> = map(&mut self.ebpf, "COMM_BITS")?;
            let old: Vec<CommKey> = m.keys().filter_map(Result::ok).collect();
            for k in old {
                let _ = m.remove(&k);
            }
            for (slot, comm, bits) in &t.comms {
                m.insert(
                    CommKey {
                        slot: *slot,
                        comm: *comm,
                    },
                    *bits,
                    0,
                )
                .map_err(merr("COMM_BITS"))?;
            }
        }
        {
            let mut m: LpmTrie<_, [u64; enforce::EXE_KEY_MAX / 8], u64> =
                map(&mut self.ebpf, "EXE_BITS")?;
            let old: Vec<Key<[u64; enforce::EXE_KEY_MAX / 8]>> =
                m.keys().filter_map(Result::ok).collect();
            for k in old {
                let _ = m.remove(&k);
            }
            for (key, bits) in &t.exes {
                let mut bytes = [0u8; enforce::EXE_KEY_MAX];
                bytes[..key.len()].copy_from_slice(key);
                let mut words = [0u64; enforce::EXE_KEY_MAX / 8];
                for (i, c) in bytes.chunks_exact(8).enumerate() {
                    let mut a = [0u8; 8];
                    a.copy_from_slice(c);
                    words[i] = u64::from_ne_bytes(a);
                }
                m.insert(&Key::new((key.len() * 8) as u32, words), *bits, 0)
                    .map_err(merr("EXE_BITS"))?;
            }
        }
        {
            let mut m: aya::maps::HashMap<_, u32, u64> = map(&mut self.ebpf, "UID_BITS")?;
            let old: Vec<u32> = m.keys().filter_map(Result::ok).collect();
            for k in old {
                let _ = m.remove(&k);
            }
            for (uid, bits) in &t.uids {
                m.insert(*uid, *bits, 0).map_err(merr("UID_BITS"))?;
            }
        }
        {
            let mut m: aya::maps::HashMap<_, u64, u64> = map(&mut self.ebpf, "CGROUP_BITS")?;
            let old: Vec<u64> = m.keys().filter_map(Result::ok).collect();
            for k in old {
                let _ = m.remove(&k);
            }
        }
        {
            let mut m: Array<_, NameBits> = map(&mut self.ebpf, "NAME_BITS")?;
            for (i, (name, bits)) in t.names.iter().enumerate() {
                let s = suffix_entry(name.as_bytes());
                m.set(
                    i as u32,
                    NameBits {
                        len: s.len,
                        _pad: 0,
                        pattern: s.pattern,
                        mask: s.mask,
                        bits: *bits,
                    },
                    0,
                )
                .map_err(merr("NAME_BITS"))?;
            }
        }
        {
            let mut m: Array<_, EnfConj> = map(&mut self.ebpf, "ENF_CONJ")?;
            for (i, c) in t.conjs.iter().enumerate() {
                m.set(i as u32, *c, 0).map_err(merr("ENF_CONJ"))?;
            }
        }
        self.settings.name_count = t.names.len() as u32;
        self.settings.enf_count = t.conjs.len() as u32;
        self.write_settings()
    }

    /// The enforcement facts of a container's cgroup (0 removes the entry).
    pub fn set_cgroup_bits(&mut self, cgroup: u64, bits: u64) -> Result<(), ProbeError> {
        let mut m: aya::maps::HashMap<_, u64, u64> = map(&mut self.ebpf, "CGROUP_BITS")?;
        let r = if bits == 0 {
            m.remove(&cgroup).or(Ok(()))
        } else {
            m.insert(cgroup, bits, 0)
        };
        r.map_err(|source| ProbeError::Map {
            name: "CGROUP_BITS",
            source,
        })
    }

    /// Global enforcement dry-run switch (kills become "would kill").
    pub fn set_dry_run(&mut self, dry_run: bool) -> Result<(), ProbeError> {
        self.settings.dry_run = u32::from(dry_run);
        self.write_settings()
    }

    fn write_settings(&mut self) -> Result<(), ProbeError> {
        let mut s: Array<_, Settings> = map(&mut self.ebpf, "SETTINGS")?;
        s.set(0, self.settings, 0)
            .map_err(|source| ProbeError::Map {
                name: "SETTINGS",
                source,
            })
    }

    /// The reader's maps: the ring buffer, and the flag by which it asks the kernel to wake it
    /// (`READER_ASLEEP`). Can be taken once.
    pub fn take_reader(&mut self) -> Result<crate::reader::Reader, ProbeError> {
        let ring: RingBuf<_> = take_map(&mut self.ebpf, "EVENTS")?;
        let flag: Array<_, u32> = take_map(&mut self.ebpf, "READER_ASLEEP")?;
        crate::reader::Reader::new(ring, flag).map_err(ProbeError::Reader)
    }

    /// Drop and filter counters, summed over CPUs.
    pub fn counters(&self) -> KernelCounters {
        let mut c = KernelCounters::default();
        sum_percpu(&self.ebpf, "DROPS", &mut c.drops);
        sum_percpu(&self.ebpf, "FILTERED", &mut c.filtered);
        c
    }

    /// Access to the loaded object, for the enforcement tables.
    pub fn ebpf_mut(&mut self) -> &mut Ebpf {
        &mut self.ebpf
    }
}

/// The prefix-head bitmap: bit `prefix_head_index` of each prefix's first 8 bytes. None when a
/// prefix is shorter than 8 bytes (its paths can start with anything after it).
fn prefix_heads(prefixes: &[String]) -> Option<Vec<u64>> {
    let mut words = vec![0u64; PREFIX_HEAD_WORDS as usize];
    for p in prefixes {
        let head: [u8; 8] = p.as_bytes().get(..8)?.try_into().ok()?;
        let i = prefix_head_index(u64::from_le_bytes(head)) as usize;
        words[i / 64] |= 1 << (i % 64);
    }
    Some(words)
}

/// The suffix-tail bitmap: bit `suffix_tail_index(a, b)` is set when some suffix ends with
/// the bytes `a b` (a one-byte suffix `b`: every `a`).
fn suffix_tails(suffixes: &[String]) -> Vec<u64> {
    let mut words = vec![0u64; SUFFIX_TAIL_WORDS as usize];
    let mut set = |a: u8, b: u8| {
        let i = suffix_tail_index(a, b) as usize;
        words[i / 64] |= 1 << (i % 64);
    };
    for s in suffixes {
        match s.as_bytes() {
            [.., a, b] => set(*a, *b),
            [b] => (0..=255).for_each(|a| set(a, *b)),
            [] => {}
        }
    }
    words
}

/// The kernel's form of a suffix: right-aligned in SUFFIX_MAX bytes, with a mask of the bytes
/// that count, as native-endian words (the program compares words read from memory).
fn suffix_entry(s: &[u8]) -> Suffix {
    let mut pattern = [0u8; SUFFIX_MAX];
    let mut mask = [0u8; SUFFIX_MAX];
    let start = SUFFIX_MAX - s.len();
    pattern[start..].copy_from_slice(s);
    mask[start..].fill(0xff);
    let words = |b: &[u8; SUFFIX_MAX]| {
        let mut w = [0u64; SUFFIX_MAX / 8];
        for (i, chunk) in b.chunks_exact(8).enumerate() {
            let mut a = [0u8; 8];
            a.copy_from_slice(chunk);
            w[i] = u64::from_ne_bytes(a);
        }
        w
    };
    Suffix {
        len: s.len() as u32,
        _pad: 0,
        pattern: words(&pattern),
        mask: words(&mask),
    }
}

fn sum_percpu(ebpf: &Ebpf, name: &str, out: &mut [u64]) {
    let Some(m) = ebpf.map(name) else { return };
    let Ok(arr) = PerCpuArray::<_, u64>::try_from(m) else {
        return;
    };
    for (i, slot) in out.iter_mut().enumerate() {
        if let Ok(values) = arr.get(&(i as u32), 0) {
            *slot = values.iter().sum();
        }
    }
}

fn map<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<T, ProbeError>
where
    T: TryFrom<&'a mut aya::maps::Map, Error = aya::maps::MapError>,
{
    let m = ebpf.map_mut(name).ok_or(ProbeError::MissingMap(name))?;
    T::try_from(m).map_err(|source| ProbeError::Map { name, source })
}

/// Take map `name` out of the object, owned (for a consumer that outlives the borrow).
fn take_map<T>(ebpf: &mut Ebpf, name: &'static str) -> Result<T, ProbeError>
where
    T: TryFrom<aya::maps::Map, Error = aya::maps::MapError>,
{
    let m = ebpf.take_map(name).ok_or(ProbeError::MissingMap(name))?;
    T::try_from(m).map_err(|source| ProbeError::Map { name, source })
}

fn program<'a, T>(ebpf: &'a mut Ebpf, name: &'static str) -> Result<&'a mut T, ProbeError>
where
    &'a mut T: TryFrom<&'a mut aya::programs::Program, Error = aya::programs::ProgramError>,
{
    let p = ebpf.program_mut(name).ok_or(ProbeError::Program {
        name,
        source: aya::programs::ProgramError::UnexpectedProgramType,
    })?;
    p.try_into()
        .map_err(|source| ProbeError::Program { name, source })
}

const TRACEFS: &str = "/sys/kernel/tracing";

fn tracepoint_exists(name: &str) -> bool {
    Path::new(TRACEFS)
        .join("events/syscalls")
        .join(name)
        .exists()
}

/// Mount tracefs at /sys/kernel/tracing when it is not there (aya reads tracepoint ids from it).
fn ensure_tracefs() -> Result<(), ProbeError> {
    if Path::new(TRACEFS).join("events").exists() {
        return Ok(());
    }
    nix::mount::mount(
        Some("tracefs"),
        TRACEFS,
        Some("tracefs"),
        nix::mount::MsFlags::empty(),
        None::<&str>,
    )
    .map_err(|e| ProbeError::Tracefs(e.to_string()))?;
    if Path::new(TRACEFS).join("events").exists() {
        Ok(())
    } else {
        Err(ProbeError::Tracefs(
            "no events directory after mount".into(),
        ))
    }
}

const CAP_SYS_ADMIN: u32 = 21;
const CAP_PERFMON: u32 = 38;
const CAP_BPF: u32 = 39;

/// Fail early, with the names of what is missing, rather than with a verifier or EPERM
/// message later.
fn check_privileges() -> Result<(), ProbeError> {
    let status = std::fs::read_to_string("/proc/self/status")
        .map_err(|e| ProbeError::Privileges(format!("cannot read /proc/self/status: {e}")))?;
    let cap_eff = status
        .lines()
        .find_map(|l| l.strip_prefix("CapEff:"))
        .and_then(|v| u64::from_str_radix(v.trim(), 16).ok())
        .unwrap_or(0);
    let has = |c: u32| cap_eff & (1u64 << c) != 0;
    if has(CAP_SYS_ADMIN) || (has(CAP_BPF) && has(CAP_PERFMON)) {
        return Ok(());
    }
    let mut missing = Vec::new();
    if !has(CAP_BPF) {
        missing.push("CAP_BPF");
    }
    if !has(CAP_PERFMON) {
        missing.push("CAP_PERFMON");
    }
    Err(ProbeError::Privileges(format!(
        "not root and lacking {}",
        missing.join(" and ")
    )))
}

/// Kernels before 5.11 charge BPF maps to RLIMIT_MEMLOCK; raising it is harmless elsewhere.
fn raise_memlock() {
    let rlim = libc::rlimit {
        rlim_cur: libc::RLIM_INFINITY,
        rlim_max: libc::RLIM_INFINITY,
    };
    // SAFETY: plain syscall with a valid pointer.
    let ret = unsafe { libc::setrlimit(libc::RLIMIT_MEMLOCK, &rlim) };
    if ret != 0 {
        debug!("could not raise RLIMIT_MEMLOCK");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The programs pass the verifier of the running kernel and attach to every tracepoint it
    /// has. Needs root.
    #[test]
    fn programs_load_and_attach_on_this_kernel() {
        if let Err(e) = check_privileges() {
            if std::env::var("CI").as_deref() == Ok("true") {
                panic!("CI=true but cannot load eBPF programs: {e}");
            }
            eprintln!("skipped: {e}");
            return;
        }
        let mut probe = Probe::load(&ProbeConfig::default()).expect("load and attach");
        let set = CaptureSet {
            kinds: [kind::OPENAT].into_iter().collect(),
            prefilter: Some(Prefilter {
                prefixes: vec!["/etc/shadow".into()],
                suffixes: vec!["release_agent".into()],
            }),
            skip_inet_stream: [kind::SENDTO].into_iter().collect(),
            skip_no_addr: [kind::SENDTO].into_iter().collect(),
        };
        probe.set_capture(&set).expect("configure capture");
        let c = probe.counters();
        assert_eq!(c.drops.len(), drop::COUNT as usize);
    }

    #[test]
    fn prefix_heads_mark_every_prefix_head_or_are_off_for_a_short_prefix() {
        let head = |s: &str| {
            let b: [u8; 8] = s.as_bytes()[..8].try_into().expect("8 bytes");
            prefix_head_index(u64::from_le_bytes(b)) as usize
        };
        let words = prefix_heads(&["/etc/shadow".into(), "/var/log/".into()]).expect("all long");
        for p in [
            "/etc/shadow",
            "/var/log/",
            "/etc/shadow-",
            "/var/log/syslog",
        ] {
            let i = head(p);
            assert!(words[i / 64] & (1 << (i % 64)) != 0, "{p}");
        }
        let set: u32 = words.iter().map(|w| w.count_ones()).sum();
        assert!(set <= 2);
        assert!(prefix_heads(&["/etc/shadow".into(), "/tmp/".into()]).is_none());
    }

    #[test]
    fn suffix_tails_mark_the_last_two_bytes_of_every_suffix_and_nothing_else() {
        let words = suffix_tails(&["/syslog".to_string(), "x".to_string()]);
        let bit = |a: u8, b: u8| {
            let i = suffix_tail_index(a, b) as usize;
            words[i / 64] & (1 << (i % 64)) != 0
        };
        assert!(bit(b'o', b'g'));
        assert!(!bit(b'm', b'e'), "no suffix ends in \"me\"");
        // A one-byte suffix: any byte before it.
        assert!(bit(b'a', b'x') && bit(0, b'x') && bit(255, b'x'));
        let set: u32 = words.iter().map(|w| w.count_ones()).sum();
        assert_eq!(set, 1 + 256);
    }
}
