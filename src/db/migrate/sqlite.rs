//! SQLite specifics: opening the target database, and the migrator lock as a
//! lease on a row of `cutover_migrator_lock`, taken with `BEGIN IMMEDIATE`.
//!
//! A lease, because SQLite has no session locks that end with a process:
//! the holder renews it every [`RENEW_EVERY`]; a holder that died stops
//! renewing, and after [`LEASE`] the next migrator takes the lock. While a
//! migration's transaction runs, the holder has SQLite's write lock, so no
//! one can take the migrator lock even if the lease runs out meanwhile; each
//! migration's transaction first checks, under that write lock, that the
//! lease is still its own.

use std::str::FromStr;
use std::time::Duration;

use jiff::Timestamp;
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection as _};

/// How long a lease lasts without renewal.
pub(crate) const LEASE: Duration = Duration::from_secs(10);
/// How often the holder renews it.
pub(crate) const RENEW_EVERY: Duration = Duration::from_secs(2);
/// How long a lock attempt waits for SQLite's write lock.
const TRY_BUSY_TIMEOUT: Duration = Duration::from_millis(200);

const CREATE_LOCK_TABLE: &str = "CREATE TABLE IF NOT EXISTS cutover_migrator_lock (
    id INTEGER PRIMARY KEY CHECK (id = 1),
    holder TEXT NOT NULL,
    since TEXT NOT NULL,
    expires_at_ms INTEGER NOT NULL
)";

/// Opens `url`. `create`: create the file (and its folder) if missing.
/// `busy_timeout`: how long a statement waits for another writer.
pub(crate) async fn connect(
    url: &str,
    create: bool,
    busy_timeout: Duration,
) -> Result<SqliteConnection, sqlx::Error> {
    let options = SqliteConnectOptions::from_str(url)?
        .create_if_missing(create)
        .busy_timeout(busy_timeout);
    if create
        && let Some(folder) = options.get_filename().parent()
        && !folder.as_os_str().is_empty()
    {
        std::fs::create_dir_all(folder)?;
    }
    options.connect().await
}

/// Whether the database file of `url` exists (in-memory databases: no).
pub(crate) fn exists(url: &str) -> bool {
    SqliteConnectOptions::from_str(url).is_ok_and(|options| options.get_filename().is_file())
}

/// What one attempt at the lock found.
pub(crate) enum Attempt {
    /// The lock is ours.
    Taken,
    /// Someone else has it.
    Held(String),
}

/// One attempt to take the lock for `holder`.
pub(crate) async fn try_lock(
    connection: &mut SqliteConnection,
    holder: &str,
) -> Result<Attempt, sqlx::Error> {
    // Fail fast on a busy database: the caller's loop does the waiting.
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "PRAGMA busy_timeout = {}",
        TRY_BUSY_TIMEOUT.as_millis()
    )))
    .execute(&mut *connection)
    .await?;
    if let Err(error) = sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut *connection)
        .await
    {
        if super::connection::is_lock_timeout(&error) {
            return Ok(Attempt::Held(busy_holder(connection).await));
        }
        return Err(error);
    }
    let attempt = take(connection, holder).await;
    let end = match attempt {
        Ok(Attempt::Taken) => "COMMIT",
        _ => "ROLLBACK",
    };
    sqlx::raw_sql(end).execute(&mut *connection).await?;
    attempt
}

/// Inside `BEGIN IMMEDIATE`: takes the row unless a live lease is someone else's.
async fn take(connection: &mut SqliteConnection, holder: &str) -> Result<Attempt, sqlx::Error> {
    sqlx::raw_sql(CREATE_LOCK_TABLE)
        .execute(&mut *connection)
        .await?;
    let now = now_ms();
    let current: Option<(String, String, i64)> = sqlx::query_as(
        "SELECT holder, since, expires_at_ms FROM cutover_migrator_lock WHERE id = 1",
    )
    .fetch_optional(&mut *connection)
    .await?;
    if let Some((other, since, expires)) = current
        && other != holder
        && expires > now
    {
        return Ok(Attempt::Held(format!("{other} (since {since})")));
    }
    sqlx::query(
        "INSERT INTO cutover_migrator_lock (id, holder, since, expires_at_ms) VALUES (1, $1, $2, $3)
         ON CONFLICT (id) DO UPDATE SET holder = excluded.holder, since = excluded.since, expires_at_ms = excluded.expires_at_ms",
    )
    .bind(holder)
    .bind(Timestamp::now().to_string())
    .bind(now + lease_ms())
    .execute(&mut *connection)
    .await?;
    Ok(Attempt::Taken)
}

/// Who holds the database while it is too busy to take the lock: the
/// lease's holder if it can be read, else a plain "a writer".
async fn busy_holder(connection: &mut SqliteConnection) -> String {
    let current: Result<Option<(String, String)>, _> =
        sqlx::query_as("SELECT holder, since FROM cutover_migrator_lock WHERE id = 1")
            .fetch_optional(&mut *connection)
            .await;
    match current {
        Ok(Some((holder, since))) => format!("{holder} (since {since}; migrating now)"),
        _ => "a writer that keeps the database busy".to_owned(),
    }
}

/// Extends `holder`'s lease; false when the lease is no longer its own.
pub(crate) async fn renew(
    connection: &mut SqliteConnection,
    holder: &str,
) -> Result<bool, sqlx::Error> {
    let result = sqlx::query(
        "UPDATE cutover_migrator_lock SET expires_at_ms = $1 WHERE id = 1 AND holder = $2",
    )
    .bind(now_ms() + lease_ms())
    .bind(holder)
    .execute(&mut *connection)
    .await?;
    Ok(result.rows_affected() == 1)
}

/// Gives the lock up, if it is still `holder`'s.
pub(crate) async fn unlock(
    connection: &mut SqliteConnection,
    holder: &str,
) -> Result<(), sqlx::Error> {
    sqlx::query("DELETE FROM cutover_migrator_lock WHERE id = 1 AND holder = $1")
        .bind(holder)
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Closes a lock connection.
pub(crate) async fn close(connection: SqliteConnection) {
    if let Err(error) = connection.close().await {
        tracing::debug!(%error, "closing the lock connection failed");
    }
}

fn now_ms() -> i64 {
    Timestamp::now().as_millisecond()
}

fn lease_ms() -> i64 {
    i64::try_from(LEASE.as_millis()).unwrap_or(i64::MAX)
}
