//! `cutover_migrations`: the table in the target database that records each
//! applied migration (version, name, checksum, when, how long, by whom, for
//! which release, and whether it was applied or adopted by `baseline`).
//!
//! A migration is recorded in the same transaction as its statements, so a
//! failed migration leaves no row: there is no "dirty" state to clear.

use serde::Serialize;

use super::connection::{Connection, with_connection};
use super::error::MigrateError;

const CREATE: &str = "CREATE TABLE IF NOT EXISTS cutover_migrations (
    version BIGINT PRIMARY KEY,
    name TEXT NOT NULL,
    checksum TEXT NOT NULL,
    applied_at TEXT NOT NULL,
    duration_ms BIGINT NOT NULL,
    applied_by TEXT NOT NULL,
    release TEXT,
    kind TEXT NOT NULL DEFAULT 'applied'
)";

/// One row of `cutover_migrations`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, sqlx::FromRow)]
pub struct Applied {
    /// The migration's version.
    pub version: i64,
    /// Its name.
    pub name: String,
    /// SHA-256 of the file when it was applied (CRLF read as LF).
    pub checksum: String,
    /// When (RFC 3339, UTC).
    pub applied_at: String,
    /// How long it took.
    pub duration_ms: i64,
    /// `user@host` of whoever applied it.
    pub applied_by: String,
    /// The release it was applied for, if given.
    pub release: Option<String>,
    /// `applied`, or `baseline` for a migration adopted without running it.
    pub kind: String,
}

/// Creates the table if missing.
pub(crate) async fn create(connection: &mut Connection) -> Result<(), MigrateError> {
    connection
        .execute(CREATE)
        .await
        .map_err(MigrateError::sql("creating cutover_migrations"))
}

/// Every applied migration, by version; empty when the table does not exist.
pub(crate) async fn list(connection: &mut Connection) -> Result<Vec<Applied>, MigrateError> {
    let exists_sql = match connection {
        Connection::Sqlite(_) => {
            "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'cutover_migrations'"
        }
        Connection::Postgres(_) => {
            "SELECT COUNT(*) FROM (SELECT to_regclass('cutover_migrations') AS t) r WHERE t IS NOT NULL"
        }
    };
    let exists: i64 =
        with_connection!(connection, c => sqlx::query_scalar(exists_sql).fetch_one(&mut *c).await)
            .map_err(MigrateError::sql("looking for cutover_migrations"))?;
    if exists == 0 {
        return Ok(Vec::new());
    }
    let select =
        "SELECT version, name, checksum, applied_at, duration_ms, applied_by, release, kind
                  FROM cutover_migrations ORDER BY version";
    with_connection!(connection, c => sqlx::query_as::<_, Applied>(select).fetch_all(&mut *c).await)
        .map_err(MigrateError::sql("reading cutover_migrations"))
}

/// Records `applied`.
pub(crate) async fn insert(
    connection: &mut Connection,
    applied: &Applied,
) -> Result<(), sqlx::Error> {
    let sql = "INSERT INTO cutover_migrations
               (version, name, checksum, applied_at, duration_ms, applied_by, release, kind)
               VALUES ($1, $2, $3, $4, $5, $6, $7, $8)";
    with_connection!(connection, c => sqlx::query(sql)
        .bind(applied.version)
        .bind(&applied.name)
        .bind(&applied.checksum)
        .bind(&applied.applied_at)
        .bind(applied.duration_ms)
        .bind(&applied.applied_by)
        .bind(&applied.release)
        .bind(&applied.kind)
        .execute(&mut *c)
        .await
        .map(|_| ()))
}

/// Records `checksum` as migration `version`'s (`migrate repair`).
pub(crate) async fn set_checksum(
    connection: &mut Connection,
    version: i64,
    checksum: &str,
) -> Result<(), sqlx::Error> {
    let sql = "UPDATE cutover_migrations SET checksum = $1 WHERE version = $2";
    with_connection!(connection, c => sqlx::query(sql).bind(checksum).bind(version).execute(&mut *c).await.map(|_| ()))
}

/// Forgets the migration `version` (it was reverted).
pub(crate) async fn delete(connection: &mut Connection, version: i64) -> Result<(), sqlx::Error> {
    let sql = "DELETE FROM cutover_migrations WHERE version = $1";
    with_connection!(connection, c => sqlx::query(sql).bind(version).execute(&mut *c).await.map(|_| ()))
}
