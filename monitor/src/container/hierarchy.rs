//! The cgroup v2 hierarchy: where it is mounted, and which directory a kernel cgroup id names.
//!
//! `bpf_get_current_cgroup_id()` is the id of the task's cgroup in the v2 (default) hierarchy,
//! which is the inode number of that cgroup's directory. Resolving an id is thus finding the
//! directory with that inode: first from what we have seen, then from the task's own
//! `/proc/<pid>/cgroup`, and last by a bounded, rate-limited rescan.

use std::collections::HashMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::cgroup::ProcCgroups;

/// Where the v2 hierarchy is mounted, from a `/proc/self/mountinfo` text: `/sys/fs/cgroup`
/// on unified hosts, `/sys/fs/cgroup/unified` on hybrid ones. The second value is the root of
/// the mount inside the hierarchy (`/` unless we are in a cgroup namespace's view).
pub fn find_v2_mount(mountinfo: &str) -> Option<(PathBuf, String)> {
    for line in mountinfo.lines() {
        let Some((pre, post)) = line.split_once(" - ") else {
            continue;
        };
        if post.split_whitespace().next() != Some("cgroup2") {
            continue;
        }
        let fields: Vec<&str> = pre.split_whitespace().collect();
        if let (Some(root), Some(mount_point)) = (fields.get(3), fields.get(4)) {
            return Some((PathBuf::from(unescape(mount_point)), unescape(root)));
        }
    }
    None
}

/// mountinfo escapes space, tab, newline and backslash as `\ooo` octal.
fn unescape(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'\\'
            && i + 3 < bytes.len()
            && bytes[i + 1..i + 4]
                .iter()
                .all(|b| (b'0'..=b'7').contains(b))
        {
            let v = (bytes[i + 1] - b'0') as u32 * 64
                + (bytes[i + 2] - b'0') as u32 * 8
                + (bytes[i + 3] - b'0') as u32;
            if let Ok(b) = u8::try_from(v) {
                out.push(b);
                i += 4;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Limits on the rescans done when an id is not found otherwise.
#[derive(Clone, Copy, Debug)]
pub struct ScanLimits {
    /// Directories visited at most by one scan.
    pub max_dirs: usize,
    /// Minimum time between two full-hierarchy scans.
    pub min_full_interval: Duration,
}

/// Maps cgroup ids (inodes) to paths relative to the hierarchy's root (`/docker/<id>`).
#[derive(Debug)]
pub struct CgroupV2 {
    mount: PathBuf,
    mount_root: String,
    by_inode: HashMap<u64, String>,
    last_full_scan: Option<Instant>,
    limits: ScanLimits,
}

impl CgroupV2 {
    /// The v2 hierarchy of this host, or `None` on a v1-only host.
    pub fn discover(limits: ScanLimits) -> Option<CgroupV2> {
        let text = std::fs::read_to_string("/proc/self/mountinfo").ok()?;
        let (mount, mount_root) = find_v2_mount(&text)?;
        Some(CgroupV2::new(mount, mount_root, limits))
    }

    pub fn new(mount: PathBuf, mount_root: String, limits: ScanLimits) -> CgroupV2 {
        CgroupV2 {
            mount,
            mount_root,
            by_inode: HashMap::new(),
            last_full_scan: None,
            limits,
        }
    }

    pub fn mount(&self) -> &Path {
        &self.mount
    }

    /// The directory of a cgroup path as `/proc/<pid>/cgroup` writes it.
    pub fn dir_of(&self, cgroup_path: &str) -> PathBuf {
        let rel = cgroup_path
            .strip_prefix(self.mount_root.trim_end_matches('/'))
            .filter(|_| self.mount_root != "/")
            .unwrap_or(cgroup_path);
        self.mount.join(rel.trim_start_matches('/'))
    }

    /// The id of a cgroup path, by `stat` of its directory.
    pub fn id_of(&self, cgroup_path: &str) -> Option<u64> {
        std::fs::metadata(self.dir_of(cgroup_path))
            .ok()
            .map(|m| m.ino())
    }

    /// The path of cgroup `id`, which task `pid` was in when it made the event.
    pub fn resolve(&mut self, id: u64, pid: u32) -> Option<String> {
        if let Some(path) = self.by_inode.get(&id) {
            return Some(path.clone());
        }
        let mut hint = None;
        if let Ok(cgroups) = ProcCgroups::read(pid)
            && let Some(path) = cgroups.v2
        {
            if self.id_of(&path) == Some(id) {
                self.by_inode.insert(id, path.clone());
                return Some(path);
            }
            hint = Some(path);
        }
        // The task has moved (or is gone): its cgroup is most likely a sibling of where it
        // is now, so that subtree is scanned before the whole hierarchy.
        if let Some(hint) = hint
            && let Some(parent) = Path::new(&hint).parent().and_then(Path::to_str)
            && parent != "/"
        {
            self.scan(parent);
            if let Some(path) = self.by_inode.get(&id) {
                return Some(path.clone());
            }
        }
        let due = self
            .last_full_scan
            .is_none_or(|t| t.elapsed() >= self.limits.min_full_interval);
        if due {
            self.last_full_scan = Some(Instant::now());
            self.scan("/");
        }
        self.by_inode.get(&id).cloned()
    }

    /// Records every cgroup below `subtree`, visiting at most `max_dirs` directories.
    pub fn scan(&mut self, subtree: &str) -> usize {
        let mut stack = vec![subtree.to_string()];
        let mut visited = 0;
        while let Some(path) = stack.pop() {
            if visited >= self.limits.max_dirs {
                break;
            }
            visited += 1;
            let dir = self.dir_of(&path);
            let Ok(meta) = std::fs::metadata(&dir) else {
                continue;
            };
            self.by_inode.insert(meta.ino(), path.clone());
            let Ok(entries) = std::fs::read_dir(&dir) else {
                continue;
            };
            for entry in entries.flatten() {
                if entry.file_type().is_ok_and(|t| t.is_dir())
                    && let Some(name) = entry.file_name().to_str()
                {
                    let child = if path == "/" {
                        format!("/{name}")
                    } else {
                        format!("{path}/{name}")
                    };
                    stack.push(child);
                }
            }
        }
        visited
    }

    /// Drops ids whose directory is gone, and returns them. Cgroup ids are never reused on
    /// 64-bit kernels, so a gone id only costs memory.
    pub fn prune(&mut self) -> Vec<u64> {
        let gone: Vec<u64> = self
            .by_inode
            .iter()
            .filter(|(id, path)| self.id_of(path) != Some(**id))
            .map(|(id, _)| *id)
            .collect();
        for id in &gone {
            self.by_inode.remove(id);
        }
        gone
    }

    pub fn forget(&mut self, id: u64) {
        self.by_inode.remove(&id);
    }

    pub fn path_of(&self, id: u64) -> Option<&str> {
        self.by_inode.get(&id).map(String::as_str)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Skips (returns) with the reason, except under `CI=true`, where a missing need fails.
    fn skip(why: &str) {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "cannot run under CI=true: {why}"
        );
        eprintln!("skipped: {why}");
    }

    #[test]
    fn finds_v2_mount_in_hybrid_and_unified_layouts() {
        let hybrid = "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755\n\
            35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory\n\
            41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw\n";
        assert_eq!(
            find_v2_mount(hybrid),
            Some((PathBuf::from("/sys/fs/cgroup/unified"), "/".to_string()))
        );
        let unified = "30 23 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate\n";
        assert_eq!(
            find_v2_mount(unified),
            Some((PathBuf::from("/sys/fs/cgroup"), "/".to_string()))
        );
        let v1_only = "35 31 0:32 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n";
        assert_eq!(find_v2_mount(v1_only), None);
        let escaped = "41 31 0:38 /x /mnt/cg\\040two rw - cgroup2 cgroup2 rw\n";
        assert_eq!(
            find_v2_mount(escaped),
            Some((PathBuf::from("/mnt/cg two"), "/x".to_string()))
        );
        assert_eq!(find_v2_mount("garbage\n - cgroup2\n"), None);
    }

    #[test]
    fn dir_of_joins_below_the_mount() {
        let limits = ScanLimits {
            max_dirs: 10,
            min_full_interval: Duration::from_secs(1),
        };
        let cg = CgroupV2::new("/sys/fs/cgroup/unified".into(), "/".into(), limits);
        assert_eq!(
            cg.dir_of("/docker/abc"),
            PathBuf::from("/sys/fs/cgroup/unified/docker/abc")
        );
        assert_eq!(cg.dir_of("/"), PathBuf::from("/sys/fs/cgroup/unified/"));
        let ns = CgroupV2::new("/sys/fs/cgroup".into(), "/kubepods/pod1".into(), limits);
        assert_eq!(
            ns.dir_of("/kubepods/pod1/abc"),
            PathBuf::from("/sys/fs/cgroup/abc")
        );
    }

    /// On a real host: our own cgroup id resolves to the path /proc/self/cgroup shows.
    #[test]
    fn resolves_own_cgroup_id() {
        let limits = ScanLimits {
            max_dirs: 100_000,
            min_full_interval: Duration::from_secs(1),
        };
        let Some(mut cg) = CgroupV2::discover(limits) else {
            return skip("no cgroup v2 hierarchy mounted on this host");
        };
        let own = ProcCgroups::read(std::process::id())
            .ok()
            .and_then(|c| c.v2)
            .unwrap_or_default();
        let id = cg.id_of(&own).unwrap_or_default();
        assert_ne!(id, 0, "stat of our own cgroup {own}");
        assert_eq!(
            cg.resolve(id, std::process::id()).as_deref(),
            Some(own.as_str())
        );
        // Unknown ids resolve to nothing, even after the rescan.
        assert_eq!(cg.resolve(u64::MAX - 7, u32::MAX), None);
        // A full scan finds the root.
        let mut fresh = CgroupV2::discover(limits).unwrap_or(cg);
        fresh.scan("/");
        let root = fresh.id_of("/").unwrap_or_default();
        assert_eq!(fresh.path_of(root), Some("/"));
    }

    /// New cgroups are found by rescans when the task cannot tell (gone, or a bogus pid), and
    /// full rescans are rate-limited.
    #[test]
    fn unknown_ids_found_by_bounded_rescan() {
        let limits = ScanLimits {
            max_dirs: 100_000,
            min_full_interval: Duration::from_millis(300),
        };
        let Some(mut cg) = CgroupV2::discover(limits) else {
            return skip("no cgroup v2 hierarchy mounted on this host");
        };
        let top = format!("/monitor-unit-{}", std::process::id());
        if std::fs::create_dir(cg.dir_of(&top)).is_err() {
            return skip("cannot create cgroups here (not root?)");
        }
        let a = format!("{top}/a");
        let b = format!("{top}/b");
        std::fs::create_dir(cg.dir_of(&a)).unwrap();
        let a_id = cg.id_of(&a).unwrap();
        assert_eq!(
            cg.resolve(a_id, u32::MAX).as_deref(),
            Some(a.as_str()),
            "full rescan"
        );
        std::fs::create_dir(cg.dir_of(&b)).unwrap();
        let b_id = cg.id_of(&b).unwrap();
        assert_eq!(
            cg.resolve(b_id, u32::MAX),
            None,
            "no second full scan within the interval"
        );
        std::thread::sleep(Duration::from_millis(350));
        assert_eq!(cg.resolve(b_id, u32::MAX).as_deref(), Some(b.as_str()));

        // A scan visits at most max_dirs directories.
        let mut small = CgroupV2::new(
            cg.mount().to_path_buf(),
            "/".into(),
            ScanLimits {
                max_dirs: 2,
                min_full_interval: Duration::ZERO,
            },
        );
        assert_eq!(small.scan(&top), 2);

        std::fs::remove_dir(cg.dir_of(&a)).unwrap();
        std::fs::remove_dir(cg.dir_of(&b)).unwrap();
        std::fs::remove_dir(cg.dir_of(&top)).unwrap();
        let mut gone = cg.prune();
        gone.sort_unstable();
        let mut want = vec![a_id, b_id];
        want.sort_unstable();
        assert!(
            want.iter().all(|id| gone.contains(id)),
            "pruned {gone:?}, want {want:?}"
        );
        assert_eq!(cg.path_of(a_id), None);
    }
}
