//! User and group names, from the host's /etc/passwd and /etc/group, read once and on demand
//! after that (a uid never seen before triggers one re-read, at most once a second).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Default)]
pub struct UserDb {
    users: HashMap<u32, Arc<str>>,
    groups: HashMap<u32, Arc<str>>,
    last_load: Option<Instant>,
    na: Arc<str>,
}

impl UserDb {
    pub fn load() -> UserDb {
        let mut db = UserDb {
            na: Arc::from("<NA>"),
            ..UserDb::default()
        };
        db.reload();
        db
    }

    fn reload(&mut self) {
        self.users = parse("/etc/passwd");
        self.groups = parse("/etc/group");
        self.last_load = Some(Instant::now());
    }

    fn maybe_reload(&mut self) {
        if self
            .last_load
            .is_none_or(|t| t.elapsed() > Duration::from_secs(1))
        {
            self.reload();
        }
    }

    pub fn user(&mut self, uid: u32) -> Arc<str> {
        if let Some(n) = self.users.get(&uid) {
            return n.clone();
        }
        self.maybe_reload();
        self.users
            .get(&uid)
            .cloned()
            .unwrap_or_else(|| self.na.clone())
    }

    pub fn group(&mut self, gid: u32) -> Arc<str> {
        if let Some(n) = self.groups.get(&gid) {
            return n.clone();
        }
        self.maybe_reload();
        self.groups
            .get(&gid)
            .cloned()
            .unwrap_or_else(|| self.na.clone())
    }
}

fn parse(path: &str) -> HashMap<u32, Arc<str>> {
    let Ok(text) = std::fs::read_to_string(path) else {
        return HashMap::new();
    };
    text.lines()
        .filter_map(|l| {
            let mut f = l.split(':');
            let name = f.next()?;
            let _pw = f.next()?;
            let id = f.next()?.parse().ok()?;
            Some((id, Arc::from(name)))
        })
        .collect()
}
