//! SQLite backups, streamed so that memory stays bounded whatever the
//! database's size:
//!
//! - **dump**: one `SELECT data FROM sqlite_dbpage('main')` — one statement,
//!   so one read transaction and one consistent snapshot, while writers go
//!   on (in WAL mode they are not even blocked) — streams every page, in
//!   page order, through a bounded channel into the sealing thread (zstd,
//!   then age). The pages are the database file's image; no plaintext
//!   touches the disk.
//! - **verify**: decrypts into a scratch file ([`Scratch`]: an owner-only
//!   folder in the backup folder, removed afterwards) and runs
//!   `PRAGMA integrity_check` and row counts on it.
//! - **restore**: the same scratch file, checked, is copied into the target
//!   with SQLite's online backup API (`sqlite_copy`), so connections open
//!   on the target see one consistent database.
//!
//! The only plaintext files are the restore target and the scratch copy.

use std::collections::BTreeMap;
use std::os::unix::fs::{DirBuilderExt as _, OpenOptionsExt as _};
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::TryStreamExt as _;
use sqlx::Connection as _;
use sqlx::sqlite::SqliteConnection;

use super::keys::{Identity, Recipient};
use super::seal::{self, Sealed};
use super::{BackupError, sqlite_copy};

const BUSY: Duration = Duration::from_secs(10);

fn db_error(error: sqlx::Error) -> BackupError {
    BackupError::Database(error.to_string())
}

async fn open(url: &str, create: bool) -> Result<SqliteConnection, BackupError> {
    crate::db::migrate::connect_sqlite(url, create, BUSY)
        .await
        .map_err(db_error)
}

/// Seals a snapshot of `url` into `path`.
pub(super) async fn dump(
    url: &str,
    path: &Path,
    recipients: Vec<Recipient>,
) -> Result<Sealed, BackupError> {
    if !crate::db::migrate::sqlite_exists(url) {
        return Err(BackupError::Database(format!(
            "{url}: no such SQLite database"
        )));
    }
    let mut connection = open(url, false).await?;
    let (pages, mut from_reader) = tokio::sync::mpsc::channel::<Vec<u8>>(PAGES_IN_FLIGHT);
    let path = path.to_owned();
    let sealing = tokio::task::spawn_blocking(move || {
        seal::seal(&path, &recipients, |w| {
            while let Some(page) = from_reader.blocking_recv() {
                w.write_all(&page)
                    .map_err(|e| BackupError::Io(format!("compress/encrypt: {e}")))?;
            }
            Ok(())
        })
    });
    let read = async {
        // No ORDER BY: the table yields pages in page order, and a sort
        // could spill plaintext into a temporary file.
        let mut rows = sqlx::query_scalar::<_, Vec<u8>>("SELECT data FROM sqlite_dbpage('main')")
            .fetch(&mut connection);
        while let Some(page) = rows.try_next().await.map_err(db_error)? {
            if pages.send(page).await.is_err() {
                // The sealing thread stopped: its error says why.
                break;
            }
        }
        Ok::<(), BackupError>(())
    }
    .await;
    drop(pages);
    let sealed = sealing.await.map_err(|e| BackupError::Io(e.to_string()))?;
    let _ = connection.close().await;
    read?;
    sealed
}

/// How many pages may wait between the reader and the sealing thread: the
/// bound on a dump's memory (64 pages of at most 64 KiB).
const PAGES_IN_FLIGHT: usize = 64;

/// A scratch copy of a backup's plaintext: a file in an owner-only folder
/// of the backup folder, both removed when dropped.
pub(super) struct Scratch {
    dir: PathBuf,
    file: PathBuf,
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

impl Scratch {
    /// Decrypts the backup at `path` into a new scratch file beside it,
    /// streaming (bounded memory).
    fn decrypt(path: &Path, identities: &[Identity]) -> Result<Scratch, BackupError> {
        let parent = path.parent().unwrap_or(Path::new("."));
        let dir = parent.join(format!(".scratch-{:016x}", fastrand::u64(..)));
        std::fs::DirBuilder::new()
            .mode(0o700)
            .create(&dir)
            .map_err(|e| seal::io_error("create", &dir, e))?;
        let scratch = Scratch {
            file: dir.join("restored.db"),
            dir,
        };
        let mut reader = seal::open(path, identities)?;
        let mut out = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&scratch.file)
            .map_err(|e| seal::io_error("create", &scratch.file, e))?;
        std::io::copy(&mut reader, &mut out).map_err(|e| BackupError::Decrypt(e.to_string()))?;
        out.sync_all()
            .map_err(|e| seal::io_error("fsync", &scratch.file, e))?;
        Ok(scratch)
    }

    /// Opens the scratch file.
    async fn open(&self) -> Result<SqliteConnection, BackupError> {
        open(&format!("sqlite://{}", self.file.display()), false).await
    }
}

/// Decrypts the backup into a scratch file, off the async runtime.
async fn decrypt_to_scratch(path: &Path, identities: &[Identity]) -> Result<Scratch, BackupError> {
    // Identities are not Clone, so the work cannot move to a blocking
    // thread: on a multi-threaded runtime this thread becomes one.
    match tokio::runtime::Handle::current().runtime_flavor() {
        tokio::runtime::RuntimeFlavor::MultiThread => {
            tokio::task::block_in_place(|| Scratch::decrypt(path, identities))
        }
        _ => Scratch::decrypt(path, identities),
    }
}

/// Decrypts the backup into a scratch file; integrity check and row counts.
pub(super) async fn verify(
    path: &Path,
    identities: &[Identity],
) -> Result<BTreeMap<String, i64>, BackupError> {
    let scratch = decrypt_to_scratch(path, identities).await?;
    let mut connection = scratch.open().await?;
    let result = check(&mut connection).await;
    let _ = connection.close().await;
    result
}

async fn check(connection: &mut SqliteConnection) -> Result<BTreeMap<String, i64>, BackupError> {
    let rows: Vec<(String,)> = sqlx::query_as("PRAGMA integrity_check")
        .fetch_all(&mut *connection)
        .await
        .map_err(|e| BackupError::Verify(format!("integrity_check: {e}")))?;
    let messages: Vec<String> = rows.into_iter().map(|(m,)| m).collect();
    if messages != ["ok"] {
        return Err(BackupError::Verify(format!(
            "integrity_check: {}",
            messages.join("; ")
        )));
    }
    let tables: Vec<(String,)> = sqlx::query_as(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(db_error)?;
    let mut counts = BTreeMap::new();
    for (table,) in tables {
        let sql = format!("SELECT COUNT(*) FROM \"{}\"", table.replace('"', "\"\""));
        let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *connection)
            .await
            .map_err(db_error)?;
        counts.insert(table, count);
    }
    Ok(counts)
}

/// Whether `url` exists and has tables.
pub(super) async fn has_tables(url: &str) -> Result<bool, BackupError> {
    if !crate::db::migrate::sqlite_exists(url) {
        return Ok(false);
    }
    let mut connection = open(url, false).await?;
    let (count,): (i64,) = sqlx::query_as(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'",
    )
    .fetch_one(&mut connection)
    .await
    .map_err(db_error)?;
    let _ = connection.close().await;
    Ok(count > 0)
}

/// Replaces the database at `url` with the backup at `path`.
pub(super) async fn restore(
    path: &Path,
    url: &str,
    identities: &[Identity],
) -> Result<(), BackupError> {
    let scratch = decrypt_to_scratch(path, identities).await?;
    let mut source = scratch.open().await?;
    check(&mut source).await?;
    let mut target = open(url, true).await?;
    let copied = sqlite_copy::copy(&mut source, &mut target).await;
    let _ = source.close().await;
    let _ = target.close().await;
    copied?;
    Ok(())
}
