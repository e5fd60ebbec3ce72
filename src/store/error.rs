//! The one error type of the state store.

use std::path::PathBuf;

use jiff::Timestamp;

/// What can go wrong talking to the state store.
///
/// Messages do not repeat their cause: print the [`std::error::Error::source`]
/// chain to see it (anyhow's `{:#}` and miette both do).
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The database could not be opened or created at `url`.
    #[error("cannot open the state store at {url}")]
    Open {
        /// The URL given to [`Store::open`](super::Store::open), its password
        /// redacted.
        url: String,
        /// Why: an unsupported URL, a directory that cannot be created, a file
        /// that cannot be opened for writing, …
        source: sqlx::Error,
    },

    /// The file is not a sound SQLite database: SQLite's `PRAGMA
    /// quick_check` found damage, or the file is not a database at all.
    #[error(
        "the state store {} is damaged ({detail}); nothing was started or stopped. Restore it from a backup \
         (`cutover backup restore --state ID`, `cutover backup list --state` lists them), or move it aside \
         (with its -wal and -shm files) and start with `cutover serve --adopt-orphans`",
        path.display()
    )]
    Damaged {
        /// The database file.
        path: PathBuf,
        /// What SQLite said, once.
        detail: String,
    },

    /// The store's schema is newer than any this binary knows.
    #[error(
        "the state store {store} was written by a newer cutover (schema version {found}; this cutover knows up \
         to {known}); nothing was changed. Run the newer cutover, or restore a backup of the store made by \
         this version (`cutover backup restore --state ID`)"
    )]
    NewerSchema {
        /// The database file, or the server's URL without its password.
        store: String,
        /// The newest migration recorded in the file.
        found: i64,
        /// The newest migration this binary embeds.
        known: i64,
    },

    /// The schema migrations could not be applied.
    #[error("cannot bring the state store schema up to date")]
    Migrate(#[from] sqlx::migrate::MigrateError),

    /// A query failed.
    #[error(transparent)]
    Sql(#[from] sqlx::Error),

    /// Someone else holds the deployment lock of `environment`.
    #[error("environment {environment:?} is locked by {holder} ({purpose}) since {since:.0}")]
    LockHeld {
        /// The environment whose lock was asked for.
        environment: String,
        /// Who holds it.
        holder: String,
        /// What for, e.g. `deploy v2`.
        purpose: String,
        /// Since when.
        since: Timestamp,
    },

    /// The record an update names does not exist.
    #[error("{what} {key} not found")]
    NotFound {
        /// The kind of record: `deployment`, `instance`, `environment`.
        what: &'static str,
        /// Its key, as text (quoted where it is a name).
        key: String,
    },

    /// A value read back from the database cannot be decoded: an unknown
    /// enumeration value, a time out of range, invalid JSON.
    #[error("the state store holds a bad value: {0}")]
    Corrupt(String),

    /// The write would break a rule of the store (a token name that exists
    /// or existed, a token already revoked); says what to do.
    #[error("{0}")]
    Conflict(String),
}

impl StoreError {
    pub(crate) fn not_found(what: &'static str, key: impl std::fmt::Debug) -> StoreError {
        StoreError::NotFound {
            what,
            key: format!("{key:?}"),
        }
    }
}
