//! The election: the leader is the daemon holding a PostgreSQL session
//! advisory lock ([`leader_lock`]) on a connection of its own. Followers try
//! `pg_try_advisory_lock` every [`TRY_INTERVAL`](super::TRY_INTERVAL); the
//! leader runs `SELECT 1` on its lock session every
//! [`HEARTBEAT_INTERVAL`](super::HEARTBEAT_INTERVAL) and, when that fails or
//! takes longer than [`HEARTBEAT_TIMEOUT`](super::HEARTBEAT_TIMEOUT), counts
//! the session (and so the lock) as lost: it quiesces at once and follows
//! again. The session asks the server for short TCP keepalives
//! (`tcp_keepalives_idle` 1 s, 2 probes 1 s apart), so a leader whose host or
//! network dies loses the lock within seconds, and a killed leader's
//! socket closes at once.
//!
//! Winning records the leadership (`cutover_cluster_leader`: a new `term`,
//! who, the lock session's backend pid, since when), then unquiesces the
//! runtime and runs the recovery a restarted daemon runs
//! ([`Daemon::recover_from`]), then supervision.

use std::sync::Arc;
use std::time::Duration;

use sqlx::{Connection, PgConnection};

use super::{Cluster, HEARTBEAT_INTERVAL, HEARTBEAT_TIMEOUT, LEADER_GAUGE, Role, TRY_INTERVAL};
use crate::runtime::{Daemon, Takeover};

/// The advisory lock whose holder leads an app's daemons: the key of the
/// one-daemon lock of a PostgreSQL store (`daemon/server_lock.rs`), so that
/// a daemon that does not take part in elections never drives the store
/// beside a leader.
pub fn leader_lock(app: &str) -> i64 {
    crate::daemon::server_lock::lock_key(app)
}

/// How long to wait before connecting again after the database failed.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);

/// The lock session: its own connection, with short server-side keepalives.
async fn connect(cluster: &Cluster) -> Result<PgConnection, sqlx::Error> {
    let options = cluster
        .options
        .clone()
        .application_name("cutover-leader-lock")
        .options([
            ("tcp_keepalives_idle", "1"),
            ("tcp_keepalives_interval", "1"),
            ("tcp_keepalives_count", "2"),
        ]);
    tokio::time::timeout(Duration::from_secs(5), PgConnection::connect_with(&options))
        .await
        .map_err(|_| sqlx::Error::PoolTimedOut)?
}

/// Runs the election for this daemon until the cluster stops.
pub(super) async fn run(cluster: Arc<Cluster>, daemon: Arc<Daemon>) {
    let stop = cluster.stop.clone();
    while !stop.is_cancelled() {
        let mut conn = match connect(&cluster).await {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "cannot open the leader-lock session on the state store; trying again");
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(RECONNECT_DELAY) => continue,
                }
            }
        };
        // Follow until the lock is ours (or the session fails).
        let won = loop {
            let tried = tokio::time::timeout(
                HEARTBEAT_TIMEOUT,
                sqlx::query_scalar::<_, bool>("SELECT pg_try_advisory_lock($1)")
                    .bind(leader_lock(&cluster.app))
                    .fetch_one(&mut conn),
            )
            .await;
            match tried {
                Ok(Ok(true)) => break true,
                Ok(Ok(false)) => {
                    cluster.ready.send_replace(true);
                }
                Ok(Err(e)) => {
                    tracing::warn!(error = %e, "the leader-lock session failed; connecting again");
                    break false;
                }
                Err(_) => {
                    tracing::warn!("the leader-lock session did not answer; connecting again");
                    break false;
                }
            }
            tokio::select! {
                () = stop.cancelled() => {
                    close(conn).await;
                    return;
                }
                () = tokio::time::sleep(TRY_INTERVAL) => {}
            }
        };
        if !won {
            drop(conn);
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RECONNECT_DELAY) => continue,
            }
        }
        let term = match take_office(&mut conn, &cluster).await {
            Ok(term) => term,
            Err(e) => {
                tracing::error!(error = %e, "took the leader lock but cannot record the leadership; letting it go");
                cluster.ready.send_replace(true);
                drop(conn);
                continue;
            }
        };
        cluster
            .recovering
            .store(true, std::sync::atomic::Ordering::SeqCst);
        cluster.role.send_replace(Role::Leader { term });
        metrics::gauge!(LEADER_GAUGE).set(1.0);
        tracing::warn!(
            term,
            daemon = %cluster.me.daemon_id,
            "this daemon leads now: recovering the releases and instances from the store"
        );
        let leading = tokio::spawn(lead(cluster.clone(), daemon.clone()));
        let lost = loop {
            tokio::select! {
                () = stop.cancelled() => break None,
                () = tokio::time::sleep(HEARTBEAT_INTERVAL) => {}
            }
            let beat = tokio::time::timeout(
                HEARTBEAT_TIMEOUT,
                sqlx::query("SELECT 1").execute(&mut conn),
            )
            .await;
            match beat {
                Ok(Ok(_)) => {}
                Ok(Err(e)) => break Some(e.to_string()),
                Err(_) => {
                    break Some(format!(
                        "no answer within {} ms",
                        HEARTBEAT_TIMEOUT.as_millis()
                    ));
                }
            }
        };
        // Stop acting first, then let the lock go (or find it gone).
        daemon.quiesce();
        cluster.role.send_replace(Role::Follower);
        metrics::gauge!(LEADER_GAUGE).set(0.0);
        leading.abort();
        cluster.ready.send_replace(true);
        match lost {
            None => {
                daemon.pause_supervision().await;
                close(conn).await;
                return;
            }
            Some(reason) => {
                tracing::error!(
                    term,
                    "lost the leader lock's database session ({reason}): this daemon stopped changing anything and follows the leader's tables; it leads again if it wins the lock"
                );
                daemon.pause_supervision().await;
                drop(conn);
            }
        }
    }
}

/// What a new leader does: the recovery of a restarted daemon, then
/// supervision.
async fn lead(cluster: Arc<Cluster>, daemon: Arc<Daemon>) {
    daemon.unquiesce();
    let how = cluster
        .first_takeover
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .take()
        .unwrap_or(Takeover::Restart);
    match daemon.recover_from(how).await {
        Ok(report) => tracing::info!(
            adopted = report.adopted.len(),
            stopped = report.stopped.len(),
            resumed = ?report.resumed,
            interrupted = ?report.interrupted,
            needs_operator = ?report.needs_operator,
            "the new leader took over the store's releases and instances"
        ),
        Err(e) => tracing::error!(
            error = %e,
            "the new leader cannot recover from the store; releases wait until it can (restart this daemon)"
        ),
    }
    daemon.supervise();
    cluster
        .recovering
        .store(false, std::sync::atomic::Ordering::SeqCst);
    cluster.ready.send_replace(true);
}

/// Records this daemon as the leader under a new term.
async fn take_office(conn: &mut PgConnection, cluster: &Cluster) -> Result<i64, sqlx::Error> {
    sqlx::query_scalar(
        "INSERT INTO cutover_cluster_leader (app, term, daemon_id, host, api_url, backend_pid, since_ms)
         VALUES ($5, 1, $1, $2, $3, pg_backend_pid(), $4)
         ON CONFLICT (app) DO UPDATE SET term = cutover_cluster_leader.term + 1,
             daemon_id = EXCLUDED.daemon_id, host = EXCLUDED.host, api_url = EXCLUDED.api_url,
             backend_pid = EXCLUDED.backend_pid, since_ms = EXCLUDED.since_ms
         RETURNING term",
    )
    .bind(&cluster.me.daemon_id)
    .bind(&cluster.me.host)
    .bind(&cluster.me.api_url)
    .bind(super::now_ms())
    .bind(&cluster.app)
    .fetch_one(conn)
    .await
}

/// Closes the lock session (releasing the lock), without waiting long.
async fn close(conn: PgConnection) {
    let _ = tokio::time::timeout(Duration::from_secs(2), conn.close()).await;
}
