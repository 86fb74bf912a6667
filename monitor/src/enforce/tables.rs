//! From compiled enforcing rules to the kernel's tables (plain data the probe writes to its
//! maps), and the per-container facts that follow containers as they are seen.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use monitor_common::{EnfConj, enforce};

use super::{Atom, EnforcedRule};
use crate::container::ContainerInfo;
use crate::event::{Event, EventType};
use crate::rules::eval::Program;

/// Everything the kernel needs to enforce a set of rules.
#[derive(Clone, Debug, Default)]
pub struct KernelTables {
    /// `/NAME` suffixes of the exec'd path and the bits they set.
    pub names: Vec<(String, u64)>,
    /// (slot, comm) -> bits (see `monitor_common::enforce`).
    pub comms: Vec<(u32, [u8; 16], u64)>,
    /// Exec path keys (prefixes; exact paths end with a NUL) -> bits, each including the bits
    /// of the shorter keys it extends (the kernel's trie returns only the longest match).
    pub exes: Vec<(Vec<u8>, u64)>,
    pub uids: Vec<(u32, u64)>,
    pub conjs: Vec<EnfConj>,
    in_container: u64,
    container_checks: Vec<(Arc<Program>, u64)>,
    /// Engine rule index for each kernel rule id.
    pub rule_index: Vec<usize>,
}

impl KernelTables {
    pub fn build(rules: &[EnforcedRule], dry_run_all: bool) -> KernelTables {
        // At most 64 atoms: a vector searched by equality.
        let mut bit_of: Vec<(Atom, u64)> = Vec::new();
        let mut t = KernelTables::default();
        for (id, r) in rules.iter().enumerate() {
            t.rule_index.push(r.engine_index);
            for c in &r.conjs {
                let mut conj = EnfConj {
                    rule_id: id as u32,
                    flags: 0,
                    ..EnfConj::default()
                };
                if c.on_execve {
                    conj.flags |= enforce::ON_EXECVE;
                }
                if c.on_execveat {
                    conj.flags |= enforce::ON_EXECVEAT;
                }
                if r.dry_run || dry_run_all {
                    conj.flags |= enforce::DRY_RUN;
                }
                for l in &c.lits {
                    let bit = match bit_of.iter().find(|(a, _)| *a == l.atom) {
                        Some((_, b)) => *b,
                        None => {
                            let b = 1u64 << (bit_of.len() % 64);
                            bit_of.push((l.atom.clone(), b));
                            b
                        }
                    };
                    if l.negated {
                        conj.must_clear |= bit;
                    } else {
                        conj.must_set |= bit;
                    }
                }
                t.conjs.push(conj);
            }
        }
        let mut names: BTreeMap<String, u64> = BTreeMap::new();
        let mut comms: BTreeMap<(u32, [u8; 16]), u64> = BTreeMap::new();
        let mut exes: BTreeMap<Vec<u8>, u64> = BTreeMap::new();
        let mut uids: BTreeMap<u32, u64> = BTreeMap::new();
        for (atom, bit) in &bit_of {
            match atom {
                Atom::Name(ns) => {
                    for n in ns {
                        *names.entry(format!("/{n}")).or_default() |= bit;
                    }
                }
                Atom::Ancestor(depth, ns) => {
                    let slot = depth.unwrap_or(enforce::SLOT_ANY_ANCESTOR);
                    for n in ns {
                        *comms.entry((slot, comm_bytes(n))).or_default() |= bit;
                    }
                }
                Atom::ExePrefix(ps) => {
                    for p in ps {
                        *exes.entry(exe_key(p.as_bytes(), false)).or_default() |= bit;
                    }
                }
                Atom::ExeExact(ps) => {
                    for p in ps {
                        *exes.entry(exe_key(p.as_bytes(), true)).or_default() |= bit;
                    }
                }
                Atom::InContainer => t.in_container |= bit,
                Atom::Container(c) => t.container_checks.push((c.program.clone(), *bit)),
                Atom::Uid(us) => {
                    for u in us {
                        *uids.entry(*u).or_default() |= bit;
                    }
                }
            }
        }
        // Closure over shorter keys: a longest-prefix lookup must also report them.
        let keys: Vec<(Vec<u8>, u64)> = exes.into_iter().collect();
        t.exes = keys
            .iter()
            .map(|(k, b)| {
                let bits = keys
                    .iter()
                    .filter(|(o, _)| k.starts_with(o))
                    .fold(*b, |acc, (_, ob)| acc | ob);
                (k.clone(), bits)
            })
            .collect();
        t.names = names.into_iter().collect();
        t.comms = comms.into_iter().map(|((s, c), b)| (s, c, b)).collect();
        t.uids = uids.into_iter().collect();
        t
    }

    pub fn is_empty(&self) -> bool {
        self.conjs.is_empty()
    }

    /// Whether any rule looks at containers (so that cgroups must be reported).
    pub fn uses_containers(&self) -> bool {
        self.in_container != 0 || !self.container_checks.is_empty()
    }

    /// The facts of a container, for its cgroup's entry.
    pub fn container_bits(&self, info: &Arc<ContainerInfo>) -> u64 {
        if info.is_host() {
            return 0;
        }
        let mut bits = self.in_container;
        if !self.container_checks.is_empty() {
            let ev = Event {
                container: info.clone(),
                ..Event::blank(EventType::Execve)
            };
            for (p, b) in &self.container_checks {
                if p.eval(&ev) {
                    bits |= b;
                }
            }
        }
        bits
    }
}

/// A task name as the kernel keeps it: 15 bytes and a NUL.
fn comm_bytes(n: &str) -> [u8; 16] {
    let mut c = [0u8; 16];
    let b = n.as_bytes();
    let len = b.len().min(15);
    c[..len].copy_from_slice(&b[..len]);
    c
}

/// An exec-path trie key: the path (a NUL after an exact path), cut to the kernel's key size.
fn exe_key(p: &[u8], exact: bool) -> Vec<u8> {
    let mut k = p.to_vec();
    if exact {
        k.push(0);
    }
    k.truncate(enforce::EXE_KEY_MAX);
    k
}

/// Keeps the kernel's per-cgroup facts in step with the containers the pipeline sees.
#[derive(Default)]
pub struct CgroupFacts {
    pushed: HashMap<u64, (usize, u64)>,
}

impl CgroupFacts {
    /// The bits to write for `cgroup` if they changed (first sight, or new metadata).
    pub fn update(
        &mut self,
        tables: &KernelTables,
        cgroup: u64,
        info: &Arc<ContainerInfo>,
    ) -> Option<u64> {
        if cgroup == 0 || info.is_host() || !tables.uses_containers() {
            return None;
        }
        let key = Arc::as_ptr(info) as usize;
        if let Some((k, _)) = self.pushed.get(&cgroup)
            && *k == key
        {
            return None;
        }
        let bits = tables.container_bits(info);
        let changed = self.pushed.get(&cgroup).map(|(_, b)| *b) != Some(bits);
        self.pushed.insert(cgroup, (key, bits));
        changed.then_some(bits)
    }

    /// After the tables changed (a reload): every known cgroup's bits again.
    pub fn recompute(
        &mut self,
        tables: &KernelTables,
        containers: impl Iterator<Item = (u64, Arc<ContainerInfo>)>,
    ) -> Vec<(u64, u64)> {
        self.pushed.clear();
        containers
            .filter_map(|(cg, info)| self.update(tables, cg, &info).map(|b| (cg, b)))
            .collect()
    }

    pub fn forget(&mut self, cgroup: u64) {
        self.pushed.remove(&cgroup);
    }
}
