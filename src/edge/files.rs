//! Certificate files: every configured certificate/key pair loaded into the
//! environment's SNI resolver (source: the certificate's path), watched by
//! polling each file's identity (device, inode, length, modification time)
//! and reloaded when it changes (once it has stayed the same for one poll,
//! so a rotation written as two files or in several writes is read whole)
//! or on [`CertFiles::reload_now`] (SIGHUP).
//!
//! A new pair that cannot be used (bad PEM, a key that does not match,
//! a file cut short, no DNS name) is kept out: the old certificate keeps
//! serving, a warning is logged and a `certificate_reload_failed` event says
//! why. The same broken files raise that event once, not at every poll.

use std::os::unix::fs::MetadataExt;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use cutover_proxy::certs::{self, Certificates};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{EdgeError, EdgeEvent, EdgeEvents, kinds};
use crate::config::TlsFilesConfig;

/// A file's identity as far as a reload cares.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct FileStamp {
    dev: u64,
    ino: u64,
    len: u64,
    mtime: Option<SystemTime>,
    ctime: (i64, i64),
}

/// Both files of a pair; `None` for a file that cannot be read.
type Stamp = (Option<FileStamp>, Option<FileStamp>);

fn stamp_of(path: &Path) -> Option<FileStamp> {
    let m = std::fs::metadata(path).ok()?;
    Some(FileStamp {
        dev: m.dev(),
        ino: m.ino(),
        len: m.len(),
        mtime: m.modified().ok(),
        ctime: (m.ctime(), m.ctime_nsec()),
    })
}

fn stamp(files: &TlsFilesConfig) -> Stamp {
    (stamp_of(&files.cert), stamp_of(&files.key))
}

struct PairState {
    /// The files as they were when what serves was loaded.
    loaded: Stamp,
    /// The files as the last poll saw them.
    seen: Stamp,
    /// Files that failed to load, so their event is raised once.
    failed: Option<Stamp>,
}

struct Pair {
    files: TlsFilesConfig,
    state: Mutex<PairState>,
}

/// An environment's certificate files and the resolver they are loaded into.
pub struct CertFiles {
    environment: String,
    certificates: Arc<Certificates>,
    pairs: Vec<Pair>,
    events: Arc<dyn EdgeEvents>,
}

/// Loads one pair; the reason it cannot be used otherwise.
fn load_pair(certificates: &Certificates, files: &TlsFilesConfig) -> Result<LoadedPair, String> {
    let key = certs::load_pem_files(&files.cert, &files.key).map_err(|e| e.to_string())?;
    let not_after = certs::not_after(&key);
    let names = certificates
        .set(&source_of(files), Arc::new(key))
        .map_err(|e| e.to_string())?;
    Ok(LoadedPair { names, not_after })
}

struct LoadedPair {
    names: Vec<String>,
    not_after: Option<SystemTime>,
}

fn source_of(files: &TlsFilesConfig) -> String {
    files.cert.display().to_string()
}

fn rfc3339(t: Option<SystemTime>) -> Option<String> {
    let t = t?;
    let ts = jiff::Timestamp::try_from(t).ok()?;
    Some(ts.to_string())
}

impl CertFiles {
    /// Loads every pair of `files` into `certificates`. A pair that cannot be
    /// used is an error naming its files and why.
    pub fn load(
        environment: &str,
        files: &[TlsFilesConfig],
        certificates: Arc<Certificates>,
        events: Arc<dyn EdgeEvents>,
    ) -> Result<Arc<CertFiles>, EdgeError> {
        let mut pairs = Vec::new();
        for f in files {
            let before = stamp(f);
            let loaded = load_pair(&certificates, f).map_err(|reason| EdgeError::CertFile {
                environment: environment.to_owned(),
                cert: f.cert.clone(),
                key: f.key.clone(),
                reason,
            })?;
            tracing::info!(
                environment,
                cert = %f.cert.display(),
                names = ?loaded.names,
                not_after = rfc3339(loaded.not_after).unwrap_or_default(),
                "certificate loaded"
            );
            pairs.push(Pair {
                files: f.clone(),
                state: Mutex::new(PairState {
                    loaded: before,
                    seen: before,
                    failed: None,
                }),
            });
        }
        Ok(Arc::new(CertFiles {
            environment: environment.to_owned(),
            certificates,
            pairs,
            events,
        }))
    }

    /// Reads every pair again now, changed or not.
    pub async fn reload_now(&self) {
        for event in self.check(true) {
            self.events.record(event).await;
        }
    }

    /// Polls the files every `interval` until `stop`, reloading changed pairs.
    pub fn spawn_watch(self: &Arc<Self>, interval: Duration, stop: CancellationToken) {
        let this = self.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(interval);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tokio::select! {
                    () = stop.cancelled() => return,
                    _ = tick.tick() => {}
                }
                for event in this.check(false) {
                    this.events.record(event).await;
                }
            }
        });
    }

    /// Checks each pair; reloads those that changed and have settled (or
    /// all, with `force`). Returns the events to record.
    fn check(&self, force: bool) -> Vec<EdgeEvent> {
        let mut events = Vec::new();
        for pair in &self.pairs {
            let mut state = pair.state.lock().unwrap_or_else(|p| p.into_inner());
            let now = stamp(&pair.files);
            let settled = now == state.seen;
            state.seen = now;
            let changed = now != state.loaded && settled && state.failed != Some(now);
            if !(force || changed) {
                continue;
            }
            let reason = if force { "SIGHUP" } else { "the files changed" };
            match load_pair(&self.certificates, &pair.files) {
                Ok(loaded) => {
                    state.loaded = now;
                    state.failed = None;
                    let not_after = rfc3339(loaded.not_after);
                    tracing::info!(
                        environment = %self.environment,
                        cert = %pair.files.cert.display(),
                        names = ?loaded.names,
                        not_after = not_after.as_deref().unwrap_or_default(),
                        "certificate reloaded ({reason})"
                    );
                    events.push(EdgeEvent {
                        environment: self.environment.clone(),
                        kind: kinds::CERTIFICATE_RELOADED,
                        message: format!(
                            "reloaded {} ({reason}): now serving {}",
                            pair.files.cert.display(),
                            loaded.names.join(", ")
                        ),
                        data: json!({
                            "cert": pair.files.cert,
                            "key": pair.files.key,
                            "names": loaded.names,
                            "not_after": not_after,
                        }),
                    });
                }
                Err(why) => {
                    state.failed = Some(now);
                    tracing::warn!(
                        environment = %self.environment,
                        cert = %pair.files.cert.display(),
                        key = %pair.files.key.display(),
                        error = %why,
                        "cannot reload a certificate; the one loaded before keeps serving"
                    );
                    events.push(EdgeEvent {
                        environment: self.environment.clone(),
                        kind: kinds::CERTIFICATE_RELOAD_FAILED,
                        message: format!(
                            "cannot use {} with {} ({reason}): {why}; the certificate loaded \
                             before keeps serving. Fix the files; they are read again when \
                             they change or on SIGHUP",
                            pair.files.cert.display(),
                            pair.files.key.display()
                        ),
                        data: json!({
                            "cert": pair.files.cert,
                            "key": pair.files.key,
                            "error": why,
                        }),
                    });
                }
            }
        }
        events
    }
}
