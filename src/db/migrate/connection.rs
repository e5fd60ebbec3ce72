//! [`Connection`]: one connection to the target database, SQLite or
//! PostgreSQL, with what the engine needs of it: run a statement as
//! written, open and end transactions, and tell a lock timeout from other
//! errors.

use sqlx::AssertSqlSafe;
use sqlx::postgres::{PgConnection, PgDatabaseError, PgErrorPosition};
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection as _, Executor as _};

/// A connection to the database being migrated.
#[derive(Debug)]
pub(crate) enum Connection {
    /// SQLite.
    Sqlite(SqliteConnection),
    /// PostgreSQL.
    Postgres(PgConnection),
}

/// Runs `$body` with `$c` bound to the inner connection, whichever it is.
macro_rules! with_connection {
    ($connection:expr, $c:ident => $body:expr) => {
        match $connection {
            Connection::Sqlite($c) => $body,
            Connection::Postgres($c) => $body,
        }
    };
}
pub(crate) use with_connection;

impl Connection {
    /// Runs `sql` as written (no parameters, PostgreSQL's simple protocol).
    pub async fn execute(&mut self, sql: &str) -> Result<(), sqlx::Error> {
        let sql = AssertSqlSafe(sql.to_owned());
        with_connection!(self, c => c.execute(sqlx::raw_sql(sql)).await.map(|_| ()))
    }

    /// Opens a transaction. SQLite takes the write lock at once (`BEGIN
    /// IMMEDIATE`), so the migration never fails half-way for want of it.
    pub async fn begin(&mut self) -> Result<(), sqlx::Error> {
        match self {
            Connection::Sqlite(_) => self.execute("BEGIN IMMEDIATE").await,
            Connection::Postgres(_) => self.execute("BEGIN").await,
        }
    }

    /// Commits the open transaction.
    pub async fn commit(&mut self) -> Result<(), sqlx::Error> {
        self.execute("COMMIT").await
    }

    /// Rolls the open transaction back; an error doing so is ignored (the
    /// database rolls back a failed transaction when the connection ends).
    pub async fn rollback(&mut self) {
        if let Err(error) = self.execute("ROLLBACK").await {
            tracing::debug!(%error, "rollback failed");
        }
    }

    /// Closes the connection politely.
    pub async fn close(self) {
        let result = with_connection!(self, c => c.close().await);
        if let Err(error) = result {
            tracing::debug!(%error, "closing the migration connection failed");
        }
    }
}

/// Whether `error` is a lock that could not be had in time: PostgreSQL's
/// `lock_timeout` (SQLSTATE 55P03) or SQLite's busy database.
pub(crate) fn is_lock_timeout(error: &sqlx::Error) -> bool {
    let Some(database) = error.as_database_error() else {
        return false;
    };
    match database.code().as_deref() {
        Some("55P03") => true,
        Some(code) => code.parse::<i32>().is_ok_and(|code| code & 0xff == 5),
        None => false,
    }
}

/// The database's error as one text: PostgreSQL's SQLSTATE, message, detail
/// and hint; SQLite's message.
pub(crate) fn describe(error: &sqlx::Error) -> String {
    let Some(database) = error.as_database_error() else {
        return error.to_string();
    };
    let mut text = match database.code() {
        Some(code) => format!("{} ({code})", database.message()),
        None => database.message().to_owned(),
    };
    if let Some(pg) = database.try_downcast_ref::<PgDatabaseError>() {
        if let Some(detail) = pg.detail() {
            text.push_str(&format!("; detail: {detail}"));
        }
        if let Some(hint) = pg.hint() {
            text.push_str(&format!("; hint: {hint}"));
        }
    }
    text
}

/// Where in `statement` PostgreSQL says the error is, as a count of lines
/// after the statement's first.
pub(crate) fn error_line_offset(error: &sqlx::Error, statement: &str) -> usize {
    let position = error
        .as_database_error()
        .and_then(|database| database.try_downcast_ref::<PgDatabaseError>())
        .and_then(PgDatabaseError::position);
    match position {
        Some(PgErrorPosition::Original(characters)) => statement
            .chars()
            .take(characters.saturating_sub(1))
            .filter(|c| *c == '\n')
            .count(),
        _ => 0,
    }
}
