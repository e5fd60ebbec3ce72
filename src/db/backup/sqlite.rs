//! SQLite backups: an online-backup snapshot made in memory (see
//! `sqlite_copy`) is sealed; verification decrypts into an in-memory
//! database and runs `PRAGMA integrity_check` and row counts; a restore
//! copies that in-memory database into the target with the same online
//! backup API, so open connections see a consistent database. No
//! plaintext file is written besides the restore target itself.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::str::FromStr as _;
use std::time::Duration;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions as _, Connection as _};

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
    let image = sqlite_copy::snapshot(&mut connection).await;
    let _ = connection.close().await;
    let image = image?;
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        seal::seal(&path, &recipients, |w| {
            w.write_all(&image)
                .map_err(|e| BackupError::Io(format!("compress/encrypt: {e}")))
        })
    })
    .await
    .map_err(|e| BackupError::Io(e.to_string()))?
}

/// Decrypts `path` into an in-memory database.
async fn decrypt_to_memory(
    path: &Path,
    identities: &[Identity],
) -> Result<SqliteConnection, BackupError> {
    let mut reader = seal::open(path, identities)?;
    let mut image = Vec::new();
    reader
        .read_to_end(&mut image)
        .map_err(|e| BackupError::Decrypt(e.to_string()))?;
    let mut connection = SqliteConnectOptions::from_str("sqlite::memory:")
        .map_err(db_error)?
        .connect()
        .await
        .map_err(db_error)?;
    sqlite_copy::load(&mut connection, &image).await?;
    Ok(connection)
}

/// Loads the backup in memory; integrity check and row counts.
pub(super) async fn verify(
    path: &Path,
    identities: &[Identity],
) -> Result<BTreeMap<String, i64>, BackupError> {
    let mut connection = decrypt_to_memory(path, identities).await?;
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
    let mut source = decrypt_to_memory(path, identities).await?;
    check(&mut source).await?;
    let mut target = open(url, true).await?;
    let copied = sqlite_copy::copy(&mut source, &mut target).await;
    let _ = source.close().await;
    let _ = target.close().await;
    copied?;
    Ok(())
}
