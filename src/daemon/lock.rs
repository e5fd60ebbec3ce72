//! One daemon per state store: an exclusive `flock(2)` on a file beside the
//! state database (`state.db` → `state.db.lock`), taken before anything else
//! a daemon does. The file says who holds it (pid and start time), so that a
//! second `cutover serve` can name the holder. The lock belongs to the open
//! file, not the process: an upgrade hands the descriptor to the new daemon
//! (`fds::LOCK_NAME`), which then writes its own pid; it is released only
//! when the last daemon holding it exits.

use std::fs::{File, OpenOptions, TryLockError};
use std::io::{Read, Seek, SeekFrom, Write};
use std::os::fd::OwnedFd;
use std::os::unix::fs::{MetadataExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum LockError {
    /// Another daemon holds it.
    #[error(
        "another cutover daemon serves this state store: {holder} holds {path}; stop it first (`cutover down` stops it and its instances, SIGTERM only the daemon), or give this config another [state] url"
    )]
    Held { path: PathBuf, holder: String },
    /// The file cannot be opened or locked.
    #[error("cannot lock {path}: {source}; check that its folder exists and is writable")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    /// A handed-over descriptor is not this store's lock.
    #[error(
        "the lock handed over is not {path}: the old daemon serves another state store; nothing was changed"
    )]
    NotThisLock { path: PathBuf },
}

/// The held lock; released when the last copy of its descriptor closes.
#[derive(Debug)]
pub struct DaemonLock {
    file: File,
    path: PathBuf,
}

/// The lock file of the state database at `db`.
pub fn lock_path(db: &Path) -> PathBuf {
    let mut name = db.file_name().unwrap_or_default().to_os_string();
    name.push(".lock");
    db.with_file_name(name)
}

impl DaemonLock {
    /// Takes the lock of the state database at `db`, or says who holds it.
    pub fn acquire(db: &Path) -> Result<DaemonLock, LockError> {
        let path = lock_path(db);
        let io = |source| LockError::Io {
            path: lock_path(db),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(io)?;
        match file.try_lock() {
            Ok(()) => {}
            Err(TryLockError::WouldBlock) => {
                let holder = read_holder(&path);
                return Err(LockError::Held { path, holder });
            }
            Err(TryLockError::Error(e)) => return Err(io(e)),
        }
        let mut lock = DaemonLock { file, path };
        lock.write_holder().map_err(io)?;
        Ok(lock)
    }

    /// The lock the daemon this one replaces handed over, checked to be the
    /// lock of the state database at `db`; this process is written in as
    /// its holder.
    pub fn inherit(fd: OwnedFd, db: &Path) -> Result<DaemonLock, LockError> {
        let path = lock_path(db);
        let file = File::from(fd);
        let same = match (file.metadata(), std::fs::metadata(&path)) {
            (Ok(a), Ok(b)) => a.dev() == b.dev() && a.ino() == b.ino(),
            _ => false,
        };
        if !same {
            return Err(LockError::NotThisLock { path });
        }
        let mut lock = DaemonLock { file, path };
        lock.write_holder().map_err(|source| LockError::Io {
            path: lock.path.clone(),
            source,
        })?;
        Ok(lock)
    }

    /// The lock file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The descriptor, to hand over.
    pub fn file(&self) -> &File {
        &self.file
    }

    fn write_holder(&mut self) -> std::io::Result<()> {
        let text = format!(
            "pid {}\nstarted {}\n",
            std::process::id(),
            jiff::Timestamp::now()
                .round(jiff::Unit::Second)
                .unwrap_or_else(|_| jiff::Timestamp::now())
        );
        self.file.set_len(0)?;
        self.file.seek(SeekFrom::Start(0))?;
        self.file.write_all(text.as_bytes())?;
        self.file.sync_data()
    }
}

/// `pid 42, started 2026-12-03T20:00:00Z`, from the lock file.
fn read_holder(path: &Path) -> String {
    let mut text = String::new();
    let _ = File::open(path).and_then(|f| f.take(4096).read_to_string(&mut text));
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .map(|v| crate::label::printable(v.trim()))
    };
    match (field("pid "), field("started ")) {
        (Some(pid), Some(started)) => format!("pid {pid}, started {started}"),
        (Some(pid), None) => format!("pid {pid}"),
        _ => "a daemon that has not written its pid yet".to_owned(),
    }
}

/// Whether a daemon holds the lock of the store at `db` now (the file is
/// only read and test-locked, never written).
pub fn is_held(db: &Path) -> bool {
    let Ok(file) = File::open(lock_path(db)) else {
        return false;
    };
    match file.try_lock_shared() {
        Ok(()) => {
            let _ = file.unlock();
            false
        }
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_second_lock_names_the_first_holder() {
        let dir = tempfile::tempdir().expect("must succeed");
        let db = dir.path().join("state.db");
        let first = DaemonLock::acquire(&db).expect("must succeed");
        assert_eq!(first.path(), dir.path().join("state.db.lock"));
        let written = std::fs::read_to_string(first.path()).expect("the lock file");
        assert!(
            written.starts_with(&format!("pid {}\nstarted 20", std::process::id())),
            "{written}"
        );
        let err = DaemonLock::acquire(&db).expect_err("must fail");
        let text = err.to_string();
        assert!(matches!(err, LockError::Held { .. }), "{text}");
        assert!(
            text.contains(&format!("pid {}", std::process::id())) && text.contains("started 20"),
            "{text}"
        );
        assert!(is_held(&db));
        drop(first);
        assert!(!is_held(&db));
        DaemonLock::acquire(&db).expect("free again once the holder is gone");
    }

    #[test]
    fn an_inherited_lock_must_be_this_stores() {
        let dir = tempfile::tempdir().expect("must succeed");
        let (a, b) = (dir.path().join("a.db"), dir.path().join("b.db"));
        let lock_a = DaemonLock::acquire(&a).expect("must succeed");
        let _lock_b = DaemonLock::acquire(&b).expect("must succeed");
        let fd: OwnedFd = lock_a.file().try_clone().expect("must succeed").into();
        let err = DaemonLock::inherit(fd, &b).expect_err("must fail");
        assert!(matches!(err, LockError::NotThisLock { .. }), "{err}");
        let fd: OwnedFd = lock_a.file().try_clone().expect("must succeed").into();
        let inherited = DaemonLock::inherit(fd, &a).expect("must succeed");
        drop(lock_a);
        // The inherited copy still holds it.
        assert!(matches!(
            DaemonLock::acquire(&a),
            Err(LockError::Held { .. })
        ));
        drop(inherited);
        DaemonLock::acquire(&a).expect("must succeed");
    }
}
