//! Hot reload: SIGHUP, or a change to the configuration or rules files, asks for a reload; a
//! reload that fails keeps the running configuration and says why.
//!
//! Files are watched by polling their metadata rather than through inotify, because the usual
//! ways files change in production defeat inotify watches on the file itself: editors that
//! write a new file and rename it, and Kubernetes ConfigMaps that swap a `..data` symlink.

use std::collections::BTreeMap;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::Notify;
use tokio::task::JoinHandle;

use crate::config::{Config, ConfigError};
use crate::metrics::Metrics;
use crate::output::{OutputError, Outputs};

/// Why a reload was asked for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ReloadReason {
    /// SIGHUP: reload the configuration and the rules.
    Signal,
    /// A watched file or directory changed: reload the configuration and the rules.
    Changed(PathBuf),
    /// SIGUSR1, Falco's signal to close and reopen output files (not a reload): call
    /// [`Outputs::reopen`].
    ReopenFiles,
}

/// What identifies a version of a file (or of a directory's files): a change to any of these
/// means the content may have changed.
type Fingerprint = Vec<(PathBuf, i64, i64, u64, u64)>;

fn fingerprint(path: &Path) -> Fingerprint {
    let mut out = Vec::new();
    let mut add = |p: &Path| {
        if let Ok(m) = std::fs::metadata(p) {
            out.push((
                p.to_path_buf(),
                m.mtime(),
                m.mtime_nsec(),
                m.ino(),
                m.size(),
            ));
        }
    };
    add(path);
    if path.is_dir()
        && let Ok(entries) = std::fs::read_dir(path)
    {
        let mut names: Vec<PathBuf> = entries.flatten().map(|e| e.path()).collect();
        names.sort();
        for p in names {
            add(&p);
        }
    }
    out
}

/// Requests not yet taken: at most one reload (they are idempotent, so later ones are
/// absorbed) and one reopen, kept apart so that neither kind ever hides the other.
#[derive(Default)]
struct Pending {
    reload: Option<ReloadReason>,
    reopen: bool,
}

#[derive(Default)]
struct Shared {
    pending: Mutex<Pending>,
    notify: Notify,
    /// The watched paths and the fingerprint each had when last looked at.
    watched: Mutex<BTreeMap<PathBuf, Fingerprint>>,
}

impl Shared {
    fn post(&self, request: ReloadReason) {
        {
            let mut p = self.pending.lock().unwrap_or_else(|e| e.into_inner());
            match request {
                ReloadReason::ReopenFiles => p.reopen = true,
                r => {
                    p.reload.get_or_insert(r);
                }
            }
        }
        self.notify.notify_one();
    }
}

/// Watches paths, SIGHUP and SIGUSR1; [`Reloader::next`] yields the requests. A burst of
/// changes yields one reload.
pub struct Reloader {
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
}

impl Reloader {
    /// Starts watching `paths` every `interval`, and SIGHUP and SIGUSR1 when `signals` is
    /// true. Must be called inside a tokio runtime.
    pub fn start(paths: Vec<PathBuf>, interval: Duration, signals: bool) -> std::io::Result<Self> {
        // The first fingerprints are taken here, before the caller says it is ready: taken by
        // the polling task instead, they could miss a change made in the moment before that
        // task first ran (seen in CI, on a busy machine).
        let shared = Arc::new(Shared {
            watched: Mutex::new(
                paths
                    .into_iter()
                    .map(|p| {
                        let fp = fingerprint(&p);
                        (p, fp)
                    })
                    .collect(),
            ),
            ..Default::default()
        });
        let mut tasks = Vec::new();
        if signals {
            use tokio::signal::unix::{SignalKind, signal};
            let mut hup = signal(SignalKind::hangup())?;
            let mut usr1 = signal(SignalKind::user_defined1())?;
            let shared = shared.clone();
            tasks.push(tokio::spawn(async move {
                loop {
                    let request = tokio::select! {
                        Some(()) = hup.recv() => ReloadReason::Signal,
                        Some(()) = usr1.recv() => ReloadReason::ReopenFiles,
                        else => break,
                    };
                    shared.post(request);
                }
            }));
        }
        let watcher = shared.clone();
        tasks.push(tokio::spawn(async move {
            let mut tick =
                tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let mut changed = None;
                {
                    let mut watched = watcher.watched.lock().unwrap_or_else(|p| p.into_inner());
                    for (p, seen) in watched.iter_mut() {
                        let fp = fingerprint(p);
                        if *seen != fp {
                            changed.get_or_insert_with(|| p.clone());
                            *seen = fp;
                        }
                    }
                }
                if let Some(p) = changed {
                    watcher.post(ReloadReason::Changed(p));
                }
            }
        }));
        Ok(Reloader { shared, tasks })
    }

    /// Replaces the watched paths (after a reload changed `rules_files`). A path already
    /// watched keeps its last fingerprint, so a change made during the reload is still seen; a
    /// path newly added is compared from its state now.
    pub fn watch(&self, paths: Vec<PathBuf>) {
        let mut watched = self
            .shared
            .watched
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        let mut next = BTreeMap::new();
        for p in paths {
            let fp = watched.remove(&p).unwrap_or_else(|| fingerprint(&p));
            next.insert(p, fp);
        }
        *watched = next;
    }

    /// Waits for the next request: a pending reload first, then a pending reopen.
    pub async fn next(&mut self) -> ReloadReason {
        loop {
            {
                let mut p = self
                    .shared
                    .pending
                    .lock()
                    .unwrap_or_else(|e| e.into_inner());
                if let Some(r) = p.reload.take() {
                    return r;
                }
                if std::mem::take(&mut p.reopen) {
                    return ReloadReason::ReopenFiles;
                }
            }
            self.shared.notify.notified().await;
        }
    }
}

impl Drop for Reloader {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    #[error("configuration: {0}")]
    Config(#[from] ConfigError),
    #[error("outputs: {0}")]
    Outputs(#[from] OutputError),
}

/// The running configuration and how to read it again (same file, same `-o` overrides).
#[derive(Debug)]
pub struct LiveConfig {
    path: Option<PathBuf>,
    overrides: Vec<String>,
    current: Arc<Config>,
}

impl LiveConfig {
    pub fn load(
        path: Option<&Path>,
        overrides: &[String],
    ) -> Result<(LiveConfig, Vec<String>), ConfigError> {
        let (cfg, warnings) = Config::load(path, overrides)?;
        Ok((
            LiveConfig {
                path: cfg.source.clone(),
                overrides: overrides.to_vec(),
                current: Arc::new(cfg),
            },
            warnings,
        ))
    }

    pub fn current(&self) -> Arc<Config> {
        self.current.clone()
    }

    /// The files whose change should trigger a reload: the configuration and the rules.
    pub fn watched_paths(&self) -> Vec<PathBuf> {
        let mut v: Vec<PathBuf> = self.path.iter().cloned().collect();
        v.extend(self.current.rules_files.iter().cloned());
        v
    }

    /// Reads the configuration again without applying it (so that the caller can load the
    /// rules it names first, and give up on both if either is broken).
    pub fn read(&self) -> Result<(Config, Vec<String>), ConfigError> {
        let (cfg, mut warnings) = Config::load(self.path.as_deref(), &self.overrides)?;
        if cfg.webserver != self.current.webserver {
            warnings
                .push("webserver: changed settings take effect at the next restart".to_string());
        }
        Ok((cfg, warnings))
    }

    /// Applies a configuration read by [`LiveConfig::read`] to the outputs; on error the old
    /// configuration stays in force everywhere.
    pub fn apply(&mut self, new: Config, outputs: &Outputs) -> Result<Arc<Config>, OutputError> {
        outputs.reconfigure(&new)?;
        self.current = Arc::new(new);
        Ok(self.current.clone())
    }

    /// `read` then `apply`, counting the result in `monitor_reloads_total`: for a caller with
    /// nothing else to reload.
    pub fn reload(
        &mut self,
        outputs: &Outputs,
        metrics: &Metrics,
    ) -> Result<(Arc<Config>, Vec<String>), ReloadError> {
        let result = self
            .read()
            .map_err(ReloadError::from)
            .and_then(|(cfg, w)| Ok((self.apply(cfg, outputs)?, w)));
        metrics.reload(result.is_ok());
        result
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_change_right_after_start_is_seen() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("monitor.yaml");
        std::fs::write(&cfg, "json_output: false\n").unwrap();
        // A current-thread runtime: the polling task cannot run before the change is made.
        let mut r = Reloader::start(vec![cfg.clone()], Duration::from_millis(20), false).unwrap();
        std::fs::write(&cfg, "json_output: true\n").unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), r.next())
            .await
            .expect("the change made before the first poll is seen");
        assert_eq!(got, ReloadReason::Changed(cfg));
    }

    #[tokio::test]
    async fn a_path_added_by_watch_is_compared_from_when_it_was_added() {
        let dir = tempfile::tempdir().unwrap();
        let a = dir.path().join("a.yaml");
        let b = dir.path().join("b.yaml");
        std::fs::write(&a, "a\n").unwrap();
        std::fs::write(&b, "b\n").unwrap();
        let mut r = Reloader::start(vec![a.clone()], Duration::from_millis(20), false).unwrap();
        r.watch(vec![a.clone(), b.clone()]);
        std::fs::write(&b, "bb\n").unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), r.next())
            .await
            .expect("the change to the added path is seen");
        assert_eq!(got, ReloadReason::Changed(b));
    }

    #[tokio::test]
    async fn a_changed_file_asks_for_one_reload() {
        let dir = tempfile::tempdir().unwrap();
        let cfg = dir.path().join("monitor.yaml");
        let rules = dir.path().join("rules.d");
        std::fs::write(&cfg, "json_output: false\n").unwrap();
        std::fs::create_dir(&rules).unwrap();
        let mut r = Reloader::start(
            vec![cfg.clone(), rules.clone()],
            Duration::from_millis(20),
            false,
        )
        .unwrap();
        tokio::time::sleep(Duration::from_millis(60)).await;
        std::fs::write(rules.join("new.yaml"), "- rule: x\n").unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), r.next())
            .await
            .unwrap();
        assert_eq!(got, ReloadReason::Changed(rules.clone()));
        // Replacing the file by rename (as editors do) is seen too.
        let tmp = dir.path().join("tmp.yaml");
        std::fs::write(&tmp, "json_output: true\n").unwrap();
        std::fs::rename(&tmp, &cfg).unwrap();
        let got = tokio::time::timeout(Duration::from_secs(5), r.next())
            .await
            .unwrap();
        assert_eq!(got, ReloadReason::Changed(cfg));
    }
}
