//! PostgreSQL specifics: opening connections, the migration connection's
//! timeouts, and the migrator lock as a session-level advisory lock.
//!
//! The lock lives on a connection of its own that does nothing else, and is
//! a *session* lock: a transaction-level lock would keep a transaction open
//! for the whole run, and `CREATE INDEX CONCURRENTLY` waits for every open
//! transaction to end — forever, when that transaction is its own
//! migrator's. When the migrator dies, its connections end and PostgreSQL
//! releases the lock; nothing is ever released by guessing.

use std::str::FromStr;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection as _};

/// The advisory lock key: "cutover" in ASCII. Advisory locks belong to one
/// database, so each database has its own migrator lock.
pub(crate) const LOCK_KEY: i64 = 0x0063_7574_6f76_6572;

/// How often a dead client's running statement is noticed and cancelled
/// (PostgreSQL 14 and later), so a killed migrator's transaction does not
/// outlive it.
const CLIENT_CHECK_INTERVAL: &str = "1s";

/// Opens `url` with `application_name` (at most 63 bytes are kept), which
/// is how a waiting migrator names the holder of the lock.
pub(crate) async fn connect(
    url: &str,
    application_name: &str,
) -> Result<PgConnection, sqlx::Error> {
    let mut name = application_name.to_owned();
    while name.len() > 63 {
        name.pop();
    }
    PgConnectOptions::from_str(url)?
        .application_name(&name)
        .connect()
        .await
}

/// Sets the timeouts every migration statement runs with.
pub(crate) async fn set_timeouts(
    connection: &mut PgConnection,
    lock_timeout: Duration,
    statement_timeout: Duration,
) -> Result<(), sqlx::Error> {
    let version: i32 = sqlx::query_scalar("SELECT current_setting('server_version_num')::int")
        .fetch_one(&mut *connection)
        .await?;
    let mut settings = format!(
        "SET lock_timeout = '{}ms'; SET statement_timeout = '{}ms';",
        lock_timeout.as_millis().max(1),
        statement_timeout.as_millis().max(1)
    );
    if version >= 140_000 {
        settings.push_str(&format!(
            " SET client_connection_check_interval = '{CLIENT_CHECK_INTERVAL}';"
        ));
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(settings))
        .execute(&mut *connection)
        .await?;
    Ok(())
}

/// Takes the lock if it is free; `false` if another session holds it.
pub(crate) async fn try_lock(connection: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut *connection)
        .await
}

/// A lock holder's pid, application name, address and connection time.
type HolderRow = (i32, Option<String>, Option<String>, Option<String>);

/// Who holds the lock: the holder's `application_name` (cutover puts
/// `user@host pid N` there), its backend pid, address and start.
pub(crate) async fn holder(connection: &mut PgConnection) -> Result<String, sqlx::Error> {
    let row: Option<HolderRow> = sqlx::query_as(
        "SELECT a.pid, NULLIF(a.application_name, ''), host(a.client_addr),
                to_char(a.backend_start AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted
           AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())
           AND l.classid::bigint = $1 AND l.objid::bigint = $2 AND l.objsubid = 1
         LIMIT 1",
    )
    .bind(LOCK_KEY >> 32)
    .bind(LOCK_KEY & 0xffff_ffff)
    .fetch_optional(&mut *connection)
    .await?;
    Ok(match row {
        Some((pid, name, address, since)) => {
            let mut text = name.unwrap_or_else(|| "a session".to_owned());
            text.push_str(&format!(" (backend pid {pid}"));
            if let Some(address) = address {
                text.push_str(&format!(", from {address}"));
            }
            if let Some(since) = since {
                text.push_str(&format!(", connected since {since}"));
            }
            text.push(')');
            text
        }
        None => "a session that has just let it go".to_owned(),
    })
}

/// Server-side TCP keepalives on the lock's session, so that PostgreSQL
/// notices a migrator whose network went away (and frees its lock) within
/// about 25 s instead of hours.
pub(crate) async fn keepalive(connection: &mut PgConnection) -> Result<(), sqlx::Error> {
    sqlx::raw_sql(
        "SET tcp_keepalives_idle = 10; SET tcp_keepalives_interval = 5; SET tcp_keepalives_count = 3;",
    )
    .execute(&mut *connection)
    .await?;
    Ok(())
}

/// Whether the lock's session is alive and still holds the lock (a
/// session ended by `pg_terminate_backend`, a restart or a network failure
/// errors; one whose lock is gone answers `false`).
pub(crate) async fn still_locked(connection: &mut PgConnection) -> Result<bool, sqlx::Error> {
    sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks
                        WHERE locktype = 'advisory' AND granted AND pid = pg_backend_pid()
                          AND classid::bigint = $1 AND objid::bigint = $2 AND objsubid = 1)",
    )
    .bind(LOCK_KEY >> 32)
    .bind(LOCK_KEY & 0xffff_ffff)
    .fetch_one(&mut *connection)
    .await
}

/// Indexes PostgreSQL marks invalid — what an interrupted or failed
/// `CREATE INDEX CONCURRENTLY` leaves behind — as `(index, table)`.
pub(crate) async fn invalid_indexes(
    connection: &mut PgConnection,
) -> Result<Vec<(String, String)>, sqlx::Error> {
    sqlx::query_as(
        "SELECT i.indexrelid::regclass::text, i.indrelid::regclass::text
         FROM pg_index i JOIN pg_class c ON c.oid = i.indexrelid
         JOIN pg_namespace n ON n.oid = c.relnamespace
         WHERE NOT i.indisvalid AND n.nspname NOT IN ('pg_catalog', 'information_schema')
         ORDER BY 1",
    )
    .fetch_all(&mut *connection)
    .await
}

/// Gives the lock up and closes its connection.
pub(crate) async fn unlock(mut connection: PgConnection) {
    let unlocked: Result<bool, _> = sqlx::query_scalar("SELECT pg_advisory_unlock($1)")
        .bind(LOCK_KEY)
        .fetch_one(&mut connection)
        .await;
    if let Err(error) = unlocked {
        tracing::debug!(%error, "pg_advisory_unlock failed; closing the session releases it");
    }
    if let Err(error) = connection.close().await {
        tracing::debug!(%error, "closing the lock connection failed");
    }
}
