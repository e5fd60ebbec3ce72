//! cutover's own state: releases, deployments and their events, deployment
//! locks, what serves where, and the instances the daemon runs.
//!
//! [`Store`] is a cheap-to-clone handle on a SQLite database in WAL mode
//! (busy timeout 5 s, foreign keys on, `synchronous = NORMAL`). Several
//! processes may open the same file: every write is a single statement or an
//! immediate transaction, so they serialize on SQLite's write lock instead of
//! failing. Opening brings the schema up to date with the migrations embedded
//! from `migrations/state/`.
//!
//! Each concept lives in its own file and adds its methods to [`Store`]:
//! `releases`, `deployments` (with their events), `locks`, `environments`
//! (what serves where), `environment_events` (outside deployments),
//! `instances`, `tokens` (named API tokens, hashed) and `audit` (the
//! tamper-evident audit log, [`Store::append_audit`]). `codec` says how values are stored.
//! `instances`, `release_digests` (what each deployment released) and
//! `operator_locks` (`cutover lock`), `notify` (the notification queue:
//! cursors over the history and webhook deliveries with their retry state),
//! `feed` (both histories read as one list after a cursor, for
//! `cutover events --follow`) and `dora` (what the DORA figures read).
//! `codec` says how values are stored.
//!
//! Opening refuses a store it cannot trust: SQLite's `PRAGMA quick_check`
//! must pass ([`StoreError::Damaged`]) and the schema must be one this binary
//! knows ([`StoreError::NewerSchema`]). [`Store::inspect`] says, before
//! opening, whether the file is there at all, so that `cutover serve` can
//! refuse to start with an empty store while instances still run.
//!
//! Each change to a deployment or its history made through a [`Store`]
//! (created, an event added, finished) bumps a counter that
//! [`Store::watch_deployments`] hands out, so the API can answer a
//! long-poll as soon as there is news instead of being polled on a timer.
//! Writes by another process on the same file are not seen there: a waiter
//! reads the store again when its wait times out.
//!
//! A PostgreSQL backend with the same API is planned, so the SQL uses `$n`
//! parameters, `ON CONFLICT` and `RETURNING`, which both databases accept.

mod audit;
mod codec;
mod deployments;
mod dora;
mod environment_events;
mod environments;
mod error;
mod feed;
mod instances;
mod locks;
mod notify;
mod operator_locks;
mod release_digests;
mod releases;
mod rollouts;
#[cfg(test)]
mod tests;
mod tokens;

use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use sqlx::migrate::Migrator;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::sync::watch;

pub use audit::{
    AuditEntry, AuditRecord, ChainBreak, GENESIS, canonical_json, row_hash, verify_chain,
};
pub use deployments::{
    AnalysisVerdict, Deployment, DeploymentKind, DeploymentState, Event, NewDeployment,
};
pub use dora::{DoraRow, SERVED_KINDS};
pub use environment_events::EnvironmentEvent;
pub use environments::Serving;
pub use error::StoreError;
pub use feed::{FeedCursor, FeedEvent, FeedSource};
pub use instances::{InstanceRecord, InstanceState};
pub use locks::Lock;
pub use notify::{
    AttemptResult, CursorAdvance, Delivery, DeliveryState, DeliveryTarget, NewDelivery,
    NotifyCursors,
};
pub use operator_locks::OperatorLock;
pub use release_digests::ReleaseDigest;
pub use releases::Release;
pub use tokens::{NewToken, TokenRecord, needs_touch};

/// The schema migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/state");

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// What is at a store's URL before it is opened ([`Store::inspect`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreFile {
    /// An in-memory store: nothing to find.
    InMemory,
    /// No file: opening creates an empty store.
    Missing(PathBuf),
    /// A file of zero bytes: opening makes it an empty store.
    Empty(PathBuf),
    /// A file with something in it.
    Present(PathBuf),
}

impl StoreFile {
    /// Whether opening starts from nothing (a missing or zero-length file).
    pub fn is_fresh(&self) -> bool {
        matches!(self, StoreFile::Missing(_) | StoreFile::Empty(_))
    }

    /// The database file, if the store is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StoreFile::InMemory => None,
            StoreFile::Missing(p) | StoreFile::Empty(p) | StoreFile::Present(p) => Some(p),
        }
    }
}

/// A handle on the state store. Clones share one connection pool (and one
/// change counter, see [`Store::watch_deployments`]).
#[derive(Debug, Clone)]
pub struct Store {
    pool: SqlitePool,
    /// Bumped after every committed change to a deployment or its events.
    deployment_changes: Arc<watch::Sender<u64>>,
}

impl Store {
    /// What is at `url`: no file, an empty one, or one with something in it.
    pub fn inspect(url: &str) -> Result<StoreFile, StoreError> {
        if is_in_memory(url) {
            return Ok(StoreFile::InMemory);
        }
        let open_error = |source| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url).map_err(open_error)?;
        let path = options.get_filename().to_path_buf();
        match std::fs::metadata(&path) {
            Ok(meta) if meta.len() == 0 => Ok(StoreFile::Empty(path)),
            Ok(_) => Ok(StoreFile::Present(path)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(StoreFile::Missing(path)),
            Err(e) => Err(open_error(sqlx::Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot read {}: {e}", path.display()),
            )))),
        }
    }

    /// Checks the file at `url` as [`Store::open`] would (SQLite's
    /// `quick_check`, the schema version) without creating, migrating or
    /// writing anything. For a file that is there; see [`Store::inspect`].
    pub async fn check(url: &str) -> Result<(), StoreError> {
        let open_error = |source| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_error)?
            .create_if_missing(false)
            .busy_timeout(BUSY_TIMEOUT);
        let path = options.get_filename().to_path_buf();
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .map_err(|e| {
                if is_damage(&e) {
                    StoreError::Damaged {
                        path: path.clone(),
                        detail: database_message(&e),
                    }
                } else {
                    open_error(e)
                }
            })?;
        let checked = check_sound(&pool, &path).await;
        pool.close().await;
        checked
    }

    /// Moves a damaged database file and its `-wal` and `-shm` files aside
    /// (`PATH.damaged-MILLIS`, …), keeping them for a post-mortem. Returns
    /// where each went.
    pub fn move_aside(path: &Path) -> std::io::Result<Vec<PathBuf>> {
        rename_with_suffix(path, &["", "-wal", "-shm"], "damaged")
    }

    /// Moves aside the write-ahead log and shared-memory files of a database
    /// file that is gone or empty (`PATH-wal` to `PATH-wal.orphaned-MILLIS`),
    /// so that SQLite does not replay pages of the lost store into the new
    /// one. Returns where each went.
    pub fn set_aside_journal(path: &Path) -> std::io::Result<Vec<PathBuf>> {
        rename_with_suffix(path, &["-wal", "-shm"], "orphaned")
    }

    /// Opens the store at `url`, creating the file and its parent directories
    /// if missing, checks that it is sound ([`StoreError::Damaged`]) and of a
    /// schema this binary knows ([`StoreError::NewerSchema`]), and applies any
    /// pending schema migrations.
    ///
    /// `url` is `sqlite:///absolute/path.db` or `sqlite://relative/path.db`
    /// (relative to the working directory); `sqlite::memory:` gives a private
    /// in-memory store, for tests.
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        let open_error = |source| StoreError::Open {
            url: url.to_owned(),
            source,
        };
        if !url.starts_with("sqlite:") {
            return Err(open_error(sqlx::Error::Configuration(
                "unsupported URL: the state store URL must start with `sqlite:`".into(),
            )));
        }
        let in_memory = is_in_memory(url);
        let options = SqliteConnectOptions::from_str(url)
            .map_err(open_error)?
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            .synchronous(SqliteSynchronous::Normal)
            .foreign_keys(true)
            .busy_timeout(BUSY_TIMEOUT);

        if !in_memory {
            create_parent_dir(options.get_filename()).map_err(open_error)?;
        }

        let mut pool_options = SqlitePoolOptions::new();
        if in_memory {
            // An in-memory database lives as long as its last connection; keep
            // exactly one, forever.
            pool_options = pool_options
                .max_connections(1)
                .min_connections(1)
                .idle_timeout(None)
                .max_lifetime(None);
        }
        // Turning a new file to WAL takes an exclusive lock that SQLite's busy
        // timeout does not wait for, so a process opening the file while
        // another one does that is told "database is locked". Retry, within
        // the busy timeout; once the file is in WAL mode, this does not recur.
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        let pool = loop {
            match pool_options.clone().connect_with(options.clone()).await {
                Ok(pool) => break pool,
                Err(e) if is_busy(&e) && Instant::now() < deadline => {
                    tokio::time::sleep(pause).await;
                    pause = (pause * 2).min(Duration::from_millis(100));
                }
                Err(e) if is_damage(&e) => {
                    return Err(StoreError::Damaged {
                        path: options.get_filename().to_path_buf(),
                        detail: database_message(&e),
                    });
                }
                Err(e) => return Err(open_error(e)),
            }
        };
        if !in_memory {
            let path = options.get_filename();
            if let Err(e) = check_sound(&pool, path).await {
                pool.close().await;
                return Err(e);
            }
        }

        // Migrate inside an immediate transaction: a second process opening the
        // same file at the same time waits for the first, then finds nothing
        // left to do. (sqlx nests each migration's transaction as a savepoint.)
        // `run_direct` is what `run` calls; called with a plain connection it
        // keeps this future `Send`, which `run(&mut *tx)` does not (a
        // higher-ranked `Acquire` bound; sqlx keeps it public for this reason).
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(open_error)?;
        MIGRATOR.run_direct(None, &mut *tx, false).await?;
        // SQLite opens a file it may not write read-only, without a word, and
        // with nothing to migrate nothing has written yet. Find out now rather
        // than at the first deployment: a statement that writes nothing but
        // must be allowed to.
        sqlx::query("DELETE FROM locks WHERE 1 = 0")
            .execute(&mut *tx)
            .await
            .map_err(open_error)?;
        tx.commit().await.map_err(open_error)?;

        Ok(Store {
            pool,
            deployment_changes: Arc::new(watch::channel(0).0),
        })
    }

    /// A receiver that sees a change whenever a deployment is created or
    /// finished or an event is added to one, through this store (any clone
    /// of it). Subscribe *before* reading, then wait for `changed()`: a
    /// change committed in between is not missed.
    pub fn watch_deployments(&self) -> watch::Receiver<u64> {
        self.deployment_changes.subscribe()
    }

    /// Tells the watchers of [`Store::watch_deployments`]: after a commit.
    fn deployments_changed(&self) {
        self.deployment_changes
            .send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A connection for one write. A write that fails (a full disk) may
    /// leave SQLite's transaction or read snapshot open on its connection,
    /// which would make later reads through it stale and later writes fail
    /// with "database is locked"; [`Writer::check`] closes such a connection
    /// instead of returning it to the pool.
    pub(crate) async fn writer(&self) -> Result<Writer, StoreError> {
        Ok(Writer(self.pool.acquire().await?))
    }

    /// Closes every connection, waiting for queries in flight. Further calls on
    /// this store or its clones fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// One pooled connection used for a write; see [`Store::writer`].
pub(crate) struct Writer(sqlx::pool::PoolConnection<sqlx::Sqlite>);

impl Writer {
    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut sqlx::SqliteConnection {
        &mut self.0
    }

    /// Passes `result` on; on an error the connection is closed rather than
    /// returned to the pool.
    pub(crate) fn check<T>(&mut self, result: Result<T, sqlx::Error>) -> Result<T, sqlx::Error> {
        if result.is_err() {
            self.0.close_on_drop();
        }
        result
    }
}

/// The newest schema version this binary embeds.
fn known_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// `PRAGMA quick_check`, then the schema version: a damaged file or one a
/// newer cutover wrote is refused before anything writes to it.
async fn check_sound(pool: &SqlitePool, path: &Path) -> Result<(), StoreError> {
    let damaged = |detail: String| StoreError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let rows: Vec<String> = match sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(pool)
        .await
    {
        Ok(rows) => rows,
        Err(e) if is_damage(&e) => return Err(damaged(database_message(&e))),
        Err(e) => return Err(e.into()),
    };
    if rows.len() != 1 || rows.first().map(String::as_str) != Some("ok") {
        let shown: Vec<&str> = rows.iter().take(3).map(String::as_str).collect();
        let more = if rows.len() > 3 {
            format!(" (and {} more problems)", rows.len() - 3)
        } else {
            String::new()
        };
        return Err(damaged(format!(
            "SQLite's quick_check found: {}{more}",
            shown.join("; ")
        )));
    }
    let has_history: Option<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'",
    )
    .fetch_optional(pool)
    .await?;
    if has_history.is_some() {
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(pool)
            .await?;
        let known = known_schema_version();
        if let Some(found) = found
            && found > known
        {
            return Err(StoreError::NewerSchema {
                path: path.to_path_buf(),
                found,
                known,
            });
        }
    }
    Ok(())
}

/// Whether SQLite said the file is damaged (`SQLITE_CORRUPT`) or is not a
/// database (`SQLITE_NOTADB`).
fn is_damage(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| matches!(code & 0xff, 11 | 26))
}

/// What the database said, without sqlx's prefix.
fn database_message(error: &sqlx::Error) -> String {
    match error.as_database_error() {
        Some(e) => e.message().to_owned(),
        None => error.to_string(),
    }
}

/// Whether SQLite said `SQLITE_BUSY` (any extended code of it).
fn is_busy(error: &sqlx::Error) -> bool {
    error
        .as_database_error()
        .and_then(|e| e.code())
        .and_then(|code| code.parse::<i32>().ok())
        .is_some_and(|code| code & 0xff == 5)
}

/// Whether `url` names an in-memory database rather than a file.
fn is_in_memory(url: &str) -> bool {
    let rest = url
        .trim_start_matches("sqlite://")
        .trim_start_matches("sqlite:");
    let (database, params) = rest.split_once('?').unwrap_or((rest, ""));
    database == ":memory:" || params.split('&').any(|p| p == "mode=memory")
}

/// Creates the directory that will hold the database file.
fn create_parent_dir(file: &Path) -> Result<(), sqlx::Error> {
    match file.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => std::fs::create_dir_all(dir).map_err(|e| {
            sqlx::Error::Io(std::io::Error::new(
                e.kind(),
                format!("cannot create directory {}: {e}", dir.display()),
            ))
        }),
        _ => Ok(()),
    }
}

/// Renames `PATH{suffix}` for each of `suffixes` that exists to
/// `PATH{suffix}.{label}-MILLIS`; returns the new paths.
fn rename_with_suffix(
    path: &Path,
    suffixes: &[&str],
    label: &str,
) -> std::io::Result<Vec<PathBuf>> {
    let stamp = jiff::Timestamp::now().as_millisecond();
    let mut moved = Vec::new();
    for suffix in suffixes {
        let mut from = path.as_os_str().to_owned();
        from.push(suffix);
        let from = PathBuf::from(from);
        if !from.exists() {
            continue;
        }
        let mut to = from.as_os_str().to_owned();
        to.push(format!(".{label}-{stamp}"));
        let to = PathBuf::from(to);
        std::fs::rename(&from, &to)?;
        moved.push(to);
    }
    Ok(moved)
}
