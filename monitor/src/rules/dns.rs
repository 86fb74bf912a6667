//! Host names in conditions (`fd.sip.name = kubernetes.default.svc.cluster.local`), as Falco's
//! DNS manager handles them: every name a rule compares with is registered when the rule
//! compiles and resolved in the background, and a check asks whether the event's IP is one of
//! the name's addresses. The event path only reads a table; it never waits on DNS.

use std::collections::HashMap;
use std::net::{IpAddr, ToSocketAddrs};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, OnceLock, RwLock};
use std::time::Duration;

/// How often registered names are resolved again.
const REFRESH: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Table {
    /// Registered names with their last known addresses.
    names: HashMap<Arc<str>, Vec<IpAddr>>,
    /// Reverse index, rebuilt on every refresh.
    by_ip: HashMap<IpAddr, Vec<Arc<str>>>,
    /// Addresses set by `set_static`, never replaced by resolution.
    fixed: HashMap<Arc<str>, Vec<IpAddr>>,
}

impl Table {
    fn reindex(&mut self) {
        self.by_ip.clear();
        for (name, ips) in self.names.iter().chain(self.fixed.iter()) {
            for ip in ips {
                let v = self.by_ip.entry(*ip).or_default();
                if !v.contains(name) {
                    v.push(name.clone());
                }
            }
        }
    }
}

fn table() -> &'static RwLock<Table> {
    static T: OnceLock<RwLock<Table>> = OnceLock::new();
    T.get_or_init(RwLock::default)
}

static RESOLVE: AtomicBool = AtomicBool::new(true);

/// Turns background resolution of registered names on or off (fuzzing and benchmarks must not
/// send DNS queries for made-up names).
pub fn set_resolution(on: bool) {
    RESOLVE.store(on, Ordering::Relaxed);
}

/// Registers `name` for resolution (starting the resolver thread on first use).
pub fn register(name: &str) {
    if !RESOLVE.load(Ordering::Relaxed) {
        return;
    }
    {
        let Ok(mut t) = table().write() else { return };
        if t.names.contains_key(name) {
            return;
        }
        t.names.insert(name.into(), Vec::new());
    }
    start_resolver();
}

/// Sets the addresses of a name by hand, as an /etc/hosts entry would (used where the real
/// name only resolves inside a cluster).
pub fn set_static(name: &str, ips: &[IpAddr]) {
    if let Ok(mut t) = table().write() {
        t.fixed.insert(name.into(), ips.to_vec());
        t.reindex();
    }
}

/// The registered names that resolve to `ip`.
pub fn names_of(ip: &IpAddr) -> Vec<Arc<str>> {
    table()
        .read()
        .ok()
        .and_then(|t| t.by_ip.get(ip).cloned())
        .unwrap_or_default()
}

fn start_resolver() {
    static STARTED: OnceLock<()> = OnceLock::new();
    STARTED.get_or_init(|| {
        let spawned = std::thread::Builder::new()
            .name("rules-dns".into())
            .spawn(|| {
                loop {
                    refresh();
                    std::thread::sleep(REFRESH);
                }
            });
        if let Err(e) = spawned {
            tracing::warn!("cannot start the DNS resolver thread for fd.*.name fields: {e}");
        }
    });
}

fn refresh() {
    let names: Vec<Arc<str>> = match table().read() {
        Ok(t) => t.names.keys().cloned().collect(),
        Err(_) => return,
    };
    let resolved: Vec<(Arc<str>, Vec<IpAddr>)> = names
        .into_iter()
        .map(|n| {
            let ips = (n.as_ref(), 0u16)
                .to_socket_addrs()
                .map(|it| it.map(|a| a.ip()).collect())
                .unwrap_or_default();
            (n, ips)
        })
        .collect();
    if let Ok(mut t) = table().write() {
        for (n, ips) in resolved {
            t.names.insert(n, ips);
        }
        t.reindex();
    }
}
