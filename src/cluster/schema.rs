//! The cluster's tables in the PostgreSQL store, created if missing (under
//! a transaction-scoped advisory lock, so daemons starting together do not
//! race), and the reads `GET /v1/cluster` makes.
//!
//! Every table is per app (two apps may share one database).
//!
//! - `cutover_cluster_leader`: one row per app, the current leadership (`term`,
//!   daemon id, host, API URL, since when).
//! - `cutover_cluster_daemons`: every daemon, with when it was last seen.
//! - `cutover_cluster_routes`: per environment, the leader's route table
//!   (JSON, see `routes.rs`), its generation and the term that wrote it.
//! - `cutover_cluster_applied`: per daemon and environment, the generation
//!   its proxy applied and when.

use std::collections::BTreeMap;

use sqlx::{PgPool, Row};

use super::{ALIVE_WITHIN_MS, Applied, DaemonRecord, LeaderRecord, TableRecord, now_ms};

/// The key of the advisory lock held while the tables are created.
const SCHEMA_LOCK: i64 = 0x6375_746f_7665_7201; // "cutover" + 1

const TABLES: &[&str] = &[
    "CREATE TABLE IF NOT EXISTS cutover_cluster_leader (
        app TEXT PRIMARY KEY,
        term BIGINT NOT NULL,
        daemon_id TEXT NOT NULL,
        host TEXT NOT NULL,
        api_url TEXT NOT NULL,
        backend_pid INTEGER NOT NULL,
        since_ms BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS cutover_cluster_daemons (
        daemon_id TEXT PRIMARY KEY,
        app TEXT NOT NULL,
        host TEXT NOT NULL,
        api_url TEXT NOT NULL,
        pid BIGINT NOT NULL,
        started_at_ms BIGINT NOT NULL,
        seen_at_ms BIGINT NOT NULL
    )",
    "CREATE TABLE IF NOT EXISTS cutover_cluster_routes (
        app TEXT NOT NULL,
        environment TEXT NOT NULL,
        generation BIGINT NOT NULL,
        term BIGINT NOT NULL,
        routes TEXT NOT NULL,
        changed_at_ms BIGINT NOT NULL,
        written_at_ms BIGINT NOT NULL,
        PRIMARY KEY (app, environment)
    )",
    "CREATE TABLE IF NOT EXISTS cutover_cluster_applied (
        daemon_id TEXT NOT NULL,
        environment TEXT NOT NULL,
        generation BIGINT NOT NULL,
        applied_at_ms BIGINT NOT NULL,
        PRIMARY KEY (daemon_id, environment)
    )",
];

/// Creates the tables that are missing.
pub(super) async fn ensure(pool: &PgPool) -> Result<(), sqlx::Error> {
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SCHEMA_LOCK)
        .execute(&mut *tx)
        .await?;
    for statement in TABLES {
        sqlx::query(sqlx::AssertSqlSafe(*statement))
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await
}

/// The leadership recorded.
pub(super) async fn leader(pool: &PgPool, app: &str) -> Result<Option<LeaderRecord>, sqlx::Error> {
    let row = sqlx::query(
        "SELECT term, daemon_id, host, api_url, since_ms FROM cutover_cluster_leader WHERE app = $1",
    )
    .bind(app)
    .fetch_optional(pool)
    .await?;
    row.map(|r| {
        Ok(LeaderRecord {
            term: r.try_get("term")?,
            daemon_id: r.try_get("daemon_id")?,
            host: r.try_get("host")?,
            api_url: r.try_get("api_url")?,
            since_ms: r.try_get("since_ms")?,
        })
    })
    .transpose()
}

/// Every daemon recorded, with what each applied.
pub(super) async fn daemons(pool: &PgPool, app: &str) -> Result<Vec<DaemonRecord>, sqlx::Error> {
    let now = now_ms();
    let mut applied: BTreeMap<String, BTreeMap<String, Applied>> = BTreeMap::new();
    for r in sqlx::query(
        "SELECT daemon_id, environment, generation, applied_at_ms FROM cutover_cluster_applied",
    )
    .fetch_all(pool)
    .await?
    {
        applied.entry(r.try_get("daemon_id")?).or_default().insert(
            r.try_get("environment")?,
            Applied {
                generation: r.try_get("generation")?,
                applied_at_ms: r.try_get("applied_at_ms")?,
            },
        );
    }
    let rows = sqlx::query(
        "SELECT daemon_id, host, api_url, pid, started_at_ms, seen_at_ms
         FROM cutover_cluster_daemons WHERE app = $1 ORDER BY started_at_ms, daemon_id",
    )
    .bind(app)
    .fetch_all(pool)
    .await?;
    rows.into_iter()
        .map(|r| {
            let daemon_id: String = r.try_get("daemon_id")?;
            let seen_at_ms: i64 = r.try_get("seen_at_ms")?;
            Ok(DaemonRecord {
                applied: applied.remove(&daemon_id).unwrap_or_default(),
                daemon_id,
                host: r.try_get("host")?,
                api_url: r.try_get("api_url")?,
                pid: r.try_get("pid")?,
                started_at_ms: r.try_get("started_at_ms")?,
                alive: now.saturating_sub(seen_at_ms) <= ALIVE_WITHIN_MS,
                seen_at_ms,
            })
        })
        .collect()
}

/// Every environment's stored table (without the table itself).
pub(super) async fn tables(pool: &PgPool, app: &str) -> Result<Vec<TableRecord>, sqlx::Error> {
    sqlx::query(
        "SELECT environment, generation, term, changed_at_ms, written_at_ms
         FROM cutover_cluster_routes WHERE app = $1 ORDER BY environment",
    )
    .bind(app)
    .fetch_all(pool)
    .await?
    .into_iter()
    .map(|r| {
        Ok(TableRecord {
            environment: r.try_get("environment")?,
            generation: r.try_get("generation")?,
            term: r.try_get("term")?,
            changed_at_ms: r.try_get("changed_at_ms")?,
            written_at_ms: r.try_get("written_at_ms")?,
        })
    })
    .collect()
}
