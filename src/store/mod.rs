//! cutover's own state: releases, deployments and their events, deployment
//! locks, what serves where, and the instances the daemon runs.
//!
//! [`Store`] is a cheap-to-clone handle on a sqlx `AnyPool` over one of two
//! [`Backend`]s. **SQLite**: a file in WAL mode (busy timeout 5 s, foreign
//! keys on, `synchronous = NORMAL`) that several processes may open: every
//! write is a single statement or an immediate transaction
//! ([`Store::begin_write`]), so they serialize on SQLite's write lock instead
//! of failing. **PostgreSQL** (`postgres://…`): a database on a server, which
//! any number of processes and hosts may open; writes are single statements or
//! plain transactions, and the audit chain's append locks its table. Opening
//! brings the schema up to date with the migrations embedded from
//! `migrations/state/` (SQLite) or `migrations/state_pg/` (PostgreSQL: the
//! same versions and meaning). Every query is written once, in the SQL both
//! accept (`$n` parameters, `ON CONFLICT`, `RETURNING`; the two JSON
//! functions SQLite has are defined on PostgreSQL by its migrations).
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
//! knows ([`StoreError::NewerSchema`], both backends). [`Store::inspect`]
//! says, before opening, whether the file is there at all (or that the store
//! is on a server, where [`Store::is_new`] asks whether it holds a store
//! yet), so that `cutover serve` can refuse to start with an empty store
//! while instances still run.
//!
//! Each change to a deployment or its history made through a [`Store`]
//! (created, an event added, finished) bumps a counter that
//! [`Store::watch_deployments`] hands out, so the API can answer a
//! long-poll as soon as there is news instead of being polled on a timer.
//! Writes by another process on the same file are not seen there: a waiter
//! reads the store again when its wait times out.
//!

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
use std::sync::{Arc, Once};
use std::time::{Duration, Instant};

use sqlx::any::AnyPoolOptions;
use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{AnyConnection, AnyPool};
use sqlx::{Connection, Executor};
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

/// The SQLite schema migrations, embedded at compile time.
static MIGRATOR: Migrator = sqlx::migrate!("./migrations/state");

/// The PostgreSQL schema migrations: the same versions, the same meaning.
static MIGRATOR_PG: Migrator = sqlx::migrate!("./migrations/state_pg");

/// How long a statement waits for another connection's write lock.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// Which database a store is kept in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// A SQLite file (or memory), `sqlite:…`.
    Sqlite,
    /// A PostgreSQL database, `postgres://…` or `postgresql://…`.
    Postgres,
}

impl Backend {
    /// The backend a state URL names, if cutover supports it.
    pub fn of(url: &str) -> Option<Backend> {
        if url.starts_with("sqlite:") {
            Some(Backend::Sqlite)
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            Some(Backend::Postgres)
        } else {
            None
        }
    }
}

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
    /// A database on a server (PostgreSQL), not a file; the URL with its
    /// password redacted. [`Store::is_new`] says whether it holds a store yet.
    Server(String),
}

impl StoreFile {
    /// Whether opening starts from nothing (a missing or zero-length file).
    /// A server database is never fresh here: ask [`Store::is_new`].
    pub fn is_fresh(&self) -> bool {
        matches!(self, StoreFile::Missing(_) | StoreFile::Empty(_))
    }

    /// The database file, if the store is one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            StoreFile::InMemory | StoreFile::Server(_) => None,
            StoreFile::Missing(p) | StoreFile::Empty(p) | StoreFile::Present(p) => Some(p),
        }
    }
}

/// A handle on the state store. Clones share one connection pool (and one
/// change counter, see [`Store::watch_deployments`]).
#[derive(Debug, Clone)]
pub struct Store {
    pool: AnyPool,
    backend: Backend,
    /// Bumped after every committed change to a deployment or its events.
    deployment_changes: Arc<watch::Sender<u64>>,
}

/// Makes sqlx's `Any` driver know SQLite and PostgreSQL (once per process).
fn install_drivers() {
    static ONCE: Once = Once::new();
    ONCE.call_once(sqlx::any::install_default_drivers);
}

/// The error of opening the store at `url`, naming it without its password.
fn open_error(url: &str) -> impl Fn(sqlx::Error) -> StoreError + '_ {
    move |source| StoreError::Open {
        url: crate::config::redact_url(url),
        source,
    }
}

/// The error of a URL that names no database cutover supports.
fn unsupported(url: &str) -> StoreError {
    open_error(url)(sqlx::Error::Configuration(
        "unsupported URL: the state store URL must start with `sqlite:` or `postgres://`".into(),
    ))
}

impl Store {
    /// What is at `url`: no file, an empty one, one with something in it, or
    /// a database server.
    pub fn inspect(url: &str) -> Result<StoreFile, StoreError> {
        if Backend::of(url) == Some(Backend::Postgres) {
            return Ok(StoreFile::Server(crate::config::redact_url(url)));
        }
        if is_in_memory(url) {
            return Ok(StoreFile::InMemory);
        }
        let open_error = open_error(url);
        let options = SqliteConnectOptions::from_str(url).map_err(&open_error)?;
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

    /// Whether the store at `url` holds no store yet: for a file, what
    /// [`Store::inspect`] says; for PostgreSQL, whether the database has no
    /// migration recorded (it is reached, nothing is written).
    pub async fn is_new(url: &str) -> Result<bool, StoreError> {
        match Backend::of(url) {
            Some(Backend::Postgres) => {
                install_drivers();
                let mut conn = AnyConnection::connect(url).await.map_err(open_error(url))?;
                let found = pg_schema_version(&mut conn).await;
                let _ = conn.close().await;
                Ok(found?.is_none())
            }
            _ => Ok(Store::inspect(url)?.is_fresh()),
        }
    }

    /// Checks the store at `url` as [`Store::open`] would (SQLite's
    /// `quick_check`, the schema version) without creating, migrating or
    /// writing anything. For a file that is there; see [`Store::inspect`].
    pub async fn check(url: &str) -> Result<(), StoreError> {
        install_drivers();
        let open_error = open_error(url);
        match Backend::of(url) {
            Some(Backend::Postgres) => {
                let mut conn = AnyConnection::connect(url).await.map_err(&open_error)?;
                let checked = check_pg_version(&mut conn, url).await;
                let _ = conn.close().await;
                return checked;
            }
            Some(Backend::Sqlite) => {}
            None => return Err(unsupported(url)),
        }
        let options = SqliteConnectOptions::from_str(url)
            .map_err(&open_error)?
            .create_if_missing(false)
            .busy_timeout(BUSY_TIMEOUT);
        let path = options.get_filename().to_path_buf();
        let mut conn = sqlx::SqliteConnection::connect_with(&options)
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
        let checked = check_sound(&mut conn, &path).await;
        let _ = conn.close().await;
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

    /// Opens the store at `url`, checks that it is sound
    /// ([`StoreError::Damaged`], SQLite only) and of a schema this binary
    /// knows ([`StoreError::NewerSchema`]), and applies any pending schema
    /// migrations.
    ///
    /// `url` is `sqlite:///absolute/path.db` or `sqlite://relative/path.db`
    /// (relative to the working directory; the file and its parent
    /// directories are created if missing); `sqlite::memory:` gives a private
    /// in-memory store, for tests; `postgres://USER:PASSWORD@HOST/DB` (with
    /// `?sslmode=…` as libpq has it) a database on a PostgreSQL server, which
    /// must exist (the role needs to create tables in it).
    pub async fn open(url: &str) -> Result<Store, StoreError> {
        install_drivers();
        let pool = match Backend::of(url) {
            Some(Backend::Sqlite) => open_sqlite(url).await?,
            Some(Backend::Postgres) => open_postgres(url).await?,
            None => return Err(unsupported(url)),
        };
        Ok(Store {
            pool,
            backend: Backend::of(url).unwrap_or(Backend::Sqlite),
            deployment_changes: Arc::new(watch::channel(0).0),
        })
    }

    /// Which database this store is kept in.
    pub fn backend(&self) -> Backend {
        self.backend
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

    /// Starts a transaction that writes: on SQLite an immediate one (it takes
    /// the write lock at once, so that concurrent writers take turns instead
    /// of failing on upgrade), on PostgreSQL a plain one (rows lock as they
    /// are written; [`Store::append_audit`] locks its table itself).
    pub(crate) async fn begin_write<'c>(
        &self,
        conn: &'c mut AnyConnection,
    ) -> Result<sqlx::Transaction<'c, sqlx::Any>, sqlx::Error> {
        match self.backend {
            Backend::Sqlite => Connection::begin_with(conn, "BEGIN IMMEDIATE").await,
            Backend::Postgres => Connection::begin(conn).await,
        }
    }

    /// Closes every connection, waiting for queries in flight. Further calls on
    /// this store or its clones fail.
    pub async fn close(&self) {
        self.pool.close().await;
    }
}

/// Opens (creating it if missing) the SQLite store at `url`, in WAL mode,
/// checked and migrated.
async fn open_sqlite(url: &str) -> Result<AnyPool, StoreError> {
    let open_error = open_error(url);
    let in_memory = is_in_memory(url);
    let options = SqliteConnectOptions::from_str(url)
        .map_err(&open_error)?
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        .synchronous(SqliteSynchronous::Normal)
        .foreign_keys(true)
        .busy_timeout(BUSY_TIMEOUT);

    if !in_memory {
        create_parent_dir(options.get_filename()).map_err(&open_error)?;
        // The pool below speaks to SQLite through sqlx's `Any`, which takes
        // only a URL: this first, native connection creates the file and
        // turns it to WAL (which the file keeps), then checks it.
        //
        // Turning a new file to WAL takes an exclusive lock that SQLite's busy
        // timeout does not wait for, so a process opening the file while
        // another one does that is told "database is locked". Retry, within
        // the busy timeout; once the file is in WAL mode, this does not recur.
        let deadline = Instant::now() + BUSY_TIMEOUT;
        let mut pause = Duration::from_millis(5);
        let mut conn = loop {
            match sqlx::SqliteConnection::connect_with(&options).await {
                Ok(conn) => break conn,
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
        let checked = check_sound(&mut conn, options.get_filename()).await;
        let _ = conn.close().await;
        checked?;
    }

    let mut pool_options = AnyPoolOptions::new().after_connect(|conn, _| {
        Box::pin(async move {
            // What the native options above set; foreign keys and the busy
            // timeout are sqlx's defaults for a URL.
            conn.execute("PRAGMA synchronous = NORMAL").await?;
            conn.execute("PRAGMA foreign_keys = ON").await?;
            Ok(())
        })
    });
    if in_memory {
        // An in-memory database lives as long as its last connection; keep
        // exactly one, forever.
        pool_options = pool_options
            .max_connections(1)
            .min_connections(1)
            .idle_timeout(None)
            .max_lifetime(None);
    }
    let pool_url = if in_memory {
        url.to_owned()
    } else {
        absolute_sqlite_url(url, options.get_filename()).map_err(&open_error)?
    };
    let pool = pool_options.connect(&pool_url).await.map_err(&open_error)?;

    // Migrate inside an immediate transaction: a second process opening the
    // same file at the same time waits for the first, then finds nothing
    // left to do. (sqlx nests each migration's transaction as a savepoint.)
    // `run_direct` is what `run` calls; called with a plain connection it
    // keeps this future `Send`, which `run(&mut *tx)` does not (a
    // higher-ranked `Acquire` bound; sqlx keeps it public for this reason).
    let migrated = async {
        let mut tx = pool
            .begin_with("BEGIN IMMEDIATE")
            .await
            .map_err(&open_error)?;
        MIGRATOR.run_direct(None, &mut *tx, false).await?;
        // SQLite opens a file it may not write read-only, without a word, and
        // with nothing to migrate nothing has written yet. Find out now rather
        // than at the first deployment: a statement that writes nothing but
        // must be allowed to.
        sqlx::query("DELETE FROM locks WHERE 1 = 0")
            .execute(&mut *tx)
            .await
            .map_err(&open_error)?;
        tx.commit().await.map_err(&open_error)?;
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(e) = migrated {
        pool.close().await;
        return Err(e);
    }
    Ok(pool)
}

/// Opens the PostgreSQL store at `url`: the schema version is checked,
/// then the migrations run under sqlx's advisory lock, so that daemons and
/// CLI commands opening the same database at once take turns.
async fn open_postgres(url: &str) -> Result<AnyPool, StoreError> {
    let open_error = open_error(url);
    let pool = AnyPoolOptions::new()
        .max_connections(10)
        .connect(url)
        .await
        .map_err(&open_error)?;
    let migrated = async {
        let mut conn = pool.acquire().await.map_err(&open_error)?;
        check_pg_version(&mut conn, url).await?;
        MIGRATOR_PG.run_direct(None, &mut *conn, false).await?;
        sqlx::query("DELETE FROM locks WHERE 1 = 0")
            .execute(&mut *conn)
            .await
            .map_err(&open_error)?;
        Ok::<_, StoreError>(())
    }
    .await;
    if let Err(e) = migrated {
        pool.close().await;
        return Err(e);
    }
    Ok(pool)
}

/// One pooled connection used for a write; see [`Store::writer`].
pub(crate) struct Writer(sqlx::pool::PoolConnection<sqlx::Any>);

impl Writer {
    /// The connection.
    pub(crate) fn conn(&mut self) -> &mut AnyConnection {
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

/// The newest schema version this binary embeds (both sets have the same).
fn known_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// The newest migration recorded in a PostgreSQL database (`None`: none,
/// the database holds no store yet).
async fn pg_schema_version(conn: &mut AnyConnection) -> Result<Option<i64>, StoreError> {
    let tables: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM information_schema.tables
         WHERE table_schema = current_schema() AND table_name = '_sqlx_migrations'",
    )
    .fetch_one(&mut *conn)
    .await?;
    if tables == 0 {
        return Ok(None);
    }
    Ok(
        sqlx::query_scalar::<_, Option<i64>>("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await?,
    )
}

/// Refuses a PostgreSQL store a newer cutover migrated.
async fn check_pg_version(conn: &mut AnyConnection, url: &str) -> Result<(), StoreError> {
    let known = known_schema_version();
    match pg_schema_version(conn).await? {
        Some(found) if found > known => Err(StoreError::NewerSchema {
            store: crate::config::redact_url(url),
            found,
            known,
        }),
        _ => Ok(()),
    }
}

/// `PRAGMA quick_check`, then the schema version: a damaged file or one a
/// newer cutover wrote is refused before anything writes to it.
async fn check_sound(conn: &mut sqlx::SqliteConnection, path: &Path) -> Result<(), StoreError> {
    let damaged = |detail: String| StoreError::Damaged {
        path: path.to_path_buf(),
        detail,
    };
    let rows: Vec<String> = match sqlx::query_scalar("PRAGMA quick_check")
        .fetch_all(&mut *conn)
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
    .fetch_optional(&mut *conn)
    .await?;
    if has_history.is_some() {
        let found: Option<i64> = sqlx::query_scalar("SELECT MAX(version) FROM _sqlx_migrations")
            .fetch_one(&mut *conn)
            .await?;
        let known = known_schema_version();
        if let Some(found) = found
            && found > known
        {
            return Err(StoreError::NewerSchema {
                store: path.display().to_string(),
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

/// `url` naming `file` by its absolute path (with `url`'s parameters):
/// `Any` reads a URL as a URL, where `sqlite://rel/x.db` has `rel` for a host.
fn absolute_sqlite_url(url: &str, file: &Path) -> Result<String, sqlx::Error> {
    let absolute = std::path::absolute(file).map_err(sqlx::Error::Io)?;
    let Some(path) = absolute.to_str() else {
        return Err(sqlx::Error::Configuration(
            format!("the path {} is not valid UTF-8", absolute.display()).into(),
        ));
    };
    let mut encoded = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => encoded.push_str("%25"),
            '?' => encoded.push_str("%3F"),
            '#' => encoded.push_str("%23"),
            c => encoded.push(c),
        }
    }
    Ok(match url.split_once('?') {
        Some((_, params)) => format!("sqlite://{encoded}?{params}"),
        None => format!("sqlite://{encoded}"),
    })
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
