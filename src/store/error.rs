//! The one error type of the state store.

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
        /// The URL given to [`Store::open`](super::Store::open).
        url: String,
        /// Why: an unsupported URL, a directory that cannot be created, a file
        /// that cannot be opened for writing, …
        source: sqlx::Error,
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
}

impl StoreError {
    pub(crate) fn not_found(what: &'static str, key: impl std::fmt::Debug) -> StoreError {
        StoreError::NotFound {
            what,
            key: format!("{key:?}"),
        }
    }
}
