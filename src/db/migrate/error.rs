//! [`MigrateError`]: everything that can stop `cutover migrate`.

use std::path::PathBuf;
use std::time::Duration;

use serde::Serialize;

use super::files::FilesError;

/// An applied migration whose file changed or disappeared.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Drift {
    /// The migration's version.
    pub version: u64,
    /// Its name as recorded when it was applied.
    pub name: String,
    /// The file now (`None`: there is none with this version).
    pub file: Option<PathBuf>,
    /// The SHA-256 recorded when it was applied.
    pub recorded: String,
    /// The SHA-256 of the file now (`None`: there is no file).
    pub current: Option<String>,
}

impl std::fmt::Display for Drift {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match (&self.file, &self.current) {
            (Some(file), Some(current)) => write!(
                f,
                "{} changed after it was applied: sha256 recorded {}, file now {current}",
                file.display(),
                self.recorded
            ),
            _ => write!(
                f,
                "migration {} `{}` was applied (sha256 {}) but its file is gone",
                self.version, self.name, self.recorded
            ),
        }
    }
}

/// Why a migration command failed.
#[derive(Debug, thiserror::Error)]
pub enum MigrateError {
    /// The migrations folder or one of its files is unusable.
    #[error(transparent)]
    Files(#[from] FilesError),

    /// The database could not be reached or opened.
    #[error("cannot connect to database `{database}` at {url}: {source}")]
    Connect {
        /// The `[database.NAME]`.
        database: String,
        /// Its URL, without password.
        url: String,
        /// Why.
        source: sqlx::Error,
    },

    /// A query of cutover's own (history, lock) failed.
    #[error("{what}: {source}")]
    Sql {
        /// What cutover was doing.
        what: String,
        /// Why.
        source: sqlx::Error,
    },

    /// Another migrator held the lock for all of `lock_wait`.
    #[error(
        "another migrator holds the migrator lock of database `{database}`: {holder} (waited {})",
        humantime::format_duration(*waited)
    )]
    Locked {
        /// The `[database.NAME]`.
        database: String,
        /// Who holds it, as far as the database tells.
        holder: String,
        /// How long this migrator waited.
        waited: Duration,
    },

    /// The lock was lost while migrating (its connection broke, or the
    /// SQLite lease ran out and another migrator took it).
    #[error(
        "lost the migrator lock of database `{database}`: {reason}; stopped (run `cutover migrate status` to see what is applied, then `cutover migrate up` again)"
    )]
    LockLost {
        /// The `[database.NAME]`.
        database: String,
        /// What happened.
        reason: String,
    },

    /// Applied migrations whose files changed or disappeared.
    #[error("{}", drift_message(.0))]
    Drift(Vec<Drift>),

    /// A statement of a migration failed; the migration was not recorded.
    #[error(
        "{}:{line}: migration {version} failed{}; nothing was recorded\n  statement: {}\n  error: {error}",
        file.display(),
        if *transaction { " and was rolled back" } else { " (no-transaction: statements before this one stay applied)" },
        one_line(statement)
    )]
    Statement {
        /// The migration's version.
        version: u64,
        /// The file.
        file: PathBuf,
        /// The 1-based line of the file the failing statement (or the
        /// database's error position in it) is on.
        line: usize,
        /// The statement.
        statement: String,
        /// The database's error.
        error: String,
        /// Whether the migration ran in a transaction.
        transaction: bool,
    },

    /// A migration to revert has no down part.
    #[error("{}: no `-- cutover:down` part, so migration {version} cannot be reverted; nothing was changed", file.display())]
    NoDown {
        /// The migration's version.
        version: u64,
        /// The file.
        file: PathBuf,
    },

    /// `baseline` was asked of a database that already has a history, or
    /// for a version below every file.
    #[error("{0}")]
    Baseline(String),

    /// `repair` cannot re-record a migration whose file is gone, or a
    /// database has an index left invalid by an interrupted
    /// `CREATE INDEX CONCURRENTLY`.
    #[error("{0}")]
    Repair(String),
}

impl MigrateError {
    pub(crate) fn sql(what: impl Into<String>) -> impl FnOnce(sqlx::Error) -> MigrateError {
        let what = what.into();
        move |source| MigrateError::Sql { what, source }
    }
}

fn drift_message(drift: &[Drift]) -> String {
    let mut message = format!(
        "{} applied migration{} changed or disappeared (never re-run; restore the file as it was applied, or fix the database by hand):",
        drift.len(),
        if drift.len() == 1 { "" } else { "s" }
    );
    for one in drift {
        message.push_str(&format!("\n  {one}"));
    }
    message
}

/// A statement on one line, shortened to 200 characters.
fn one_line(statement: &str) -> String {
    let joined = statement.split_whitespace().collect::<Vec<_>>().join(" ");
    if joined.chars().count() > 200 {
        let short: String = joined.chars().take(200).collect();
        format!("{short}…")
    } else {
        joined
    }
}
