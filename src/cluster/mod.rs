//! Several daemons, one PostgreSQL store: who leads, and how every daemon's
//! proxies follow the leader's route tables. Owns the `cutover_cluster_*`
//! tables (created here, idempotently), the leader election
//! (`leader.rs`: a session advisory lock on a dedicated connection, checked
//! every 500 ms) and route propagation (`routes.rs`: the leader persists each
//! environment's table and `NOTIFY`s; followers `LISTEN`, apply, and re-read
//! every 2 s as a safety net).
//!
//! **Only the leader changes the world.** A follower is a quiesced
//! [`Daemon`](crate::runtime::Daemon) (no release runs, supervision and the
//! notifier wait, deployments are refused) whose proxies serve the tables the
//! leader wrote; the API answers its reads and refuses its writes with
//! `not_leader`, naming the leader. A follower that wins the lock unquiesces
//! and runs the recovery a restarted daemon runs (adopt instances by their
//! records, restore every release that is not done), then supervises. A
//! leader whose session is lost quiesces at once and follows again.
//!
//! SQLite stores are not clustered: their daemon keeps the `flock` of
//! `src/daemon/lock.rs`.

mod leader;
mod routes;
mod schema;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;

pub use routes::{RouteSnapshot, ServiceSnapshot};

/// The PostgreSQL channel the leader notifies on after each table it writes
/// (payload: `APP<TAB>ENVIRONMENT<TAB>GENERATION`).
pub const CHANNEL: &str = "cutover_routes";
/// How often a follower tries the leader lock.
pub const TRY_INTERVAL: Duration = Duration::from_millis(300);
/// How often the leader checks its lock session (`SELECT 1`).
pub const HEARTBEAT_INTERVAL: Duration = Duration::from_millis(500);
/// How long that check may take before the session counts as lost.
pub const HEARTBEAT_TIMEOUT: Duration = Duration::from_millis(1500);
/// How often a follower reads every table again (lost notifications).
pub const REREAD_INTERVAL: Duration = Duration::from_secs(2);
/// How often a daemon says it is alive (`cutover_cluster_daemons.seen_at`).
pub const SEEN_INTERVAL: Duration = Duration::from_secs(1);
/// A daemon not seen for this long is not listed as alive.
pub const ALIVE_WITHIN_MS: i64 = 5_000;

/// Why the cluster could not start or answer.
#[derive(Debug, thiserror::Error)]
pub enum ClusterError {
    /// The database does not answer or refused a statement.
    #[error(
        "the cluster's PostgreSQL store ({url}) failed: {source}; check that the server runs and [state] url is right"
    )]
    Database {
        /// The URL, without its password.
        url: String,
        #[source]
        source: sqlx::Error,
    },
    /// A stored route table is not JSON this build reads.
    #[error("the route table stored for environment {environment} cannot be read: {detail}")]
    BadTable {
        /// Its environment.
        environment: String,
        /// What is wrong.
        detail: String,
    },
}

/// Whether a URL names a PostgreSQL database (a clustered store).
pub fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}

/// What this daemon is now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "role")]
pub enum Role {
    /// Serves its proxies from the leader's tables; changes nothing.
    Follower,
    /// Holds the lock; `term` counts leaderships of the store.
    Leader {
        /// This leadership's number (fences its route writes).
        term: i64,
    },
}

/// Who this daemon is, as the others see it.
#[derive(Debug, Clone, Serialize)]
pub struct Member {
    /// Unique per daemon process: `HOST-PID-RANDOM`.
    pub daemon_id: String,
    /// The host name (`--host`, else the machine's).
    pub host: String,
    /// Where its API answers (`http://ADDR` or `https://ADDR`).
    pub api_url: String,
}

impl Member {
    /// A member on `host` whose API is at `api_url`, with a fresh id.
    pub fn new(host: &str, api_url: &str) -> Member {
        let mut raw = [0u8; 4];
        let _ = getrandom::fill(&mut raw);
        let suffix: String = raw.iter().map(|b| format!("{b:02x}")).collect();
        Member {
            daemon_id: format!("{host}-{}-{suffix}", std::process::id()),
            host: host.to_owned(),
            api_url: api_url.to_owned(),
        }
    }
}

/// The machine's host name (`/proc/sys/kernel/hostname`), else `localhost`.
pub fn machine_host_name() -> String {
    std::fs::read_to_string("/proc/sys/kernel/hostname")
        .ok()
        .map(|s| s.trim().to_owned())
        .filter(|s| !s.is_empty())
        .unwrap_or_else(|| "localhost".to_owned())
}

/// The generation of an environment's table a daemon applied, and when.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The table's generation (counted by the store, across leaders).
    pub generation: i64,
    /// When this daemon's proxy swapped it in (ms since the Unix epoch).
    pub applied_at_ms: i64,
}

/// The leader, as recorded in the store.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LeaderRecord {
    /// Its leadership's number.
    pub term: i64,
    /// Its daemon id.
    pub daemon_id: String,
    /// Its host.
    pub host: String,
    /// Its API.
    pub api_url: String,
    /// When it took the lock (ms since the Unix epoch).
    pub since_ms: i64,
}

/// One daemon of the store, as recorded.
#[derive(Debug, Clone, Serialize)]
pub struct DaemonRecord {
    /// Its id.
    pub daemon_id: String,
    /// Its host.
    pub host: String,
    /// Its API.
    pub api_url: String,
    /// Its pid.
    pub pid: i64,
    /// When it started (ms).
    pub started_at_ms: i64,
    /// When it last said it was alive (ms).
    pub seen_at_ms: i64,
    /// Whether it was seen within [`ALIVE_WITHIN_MS`].
    pub alive: bool,
    /// Per environment, the table generation it applied and when.
    pub applied: BTreeMap<String, Applied>,
}

/// An environment's stored table: its generation and times.
#[derive(Debug, Clone, Serialize)]
pub struct TableRecord {
    /// The environment.
    pub environment: String,
    /// Its generation.
    pub generation: i64,
    /// The leadership that wrote it.
    pub term: i64,
    /// When the leader's own proxy swapped it in (ms).
    pub changed_at_ms: i64,
    /// When it was written to the store (ms).
    pub written_at_ms: i64,
}

/// Everything `GET /v1/cluster` says.
#[derive(Debug, Clone, Serialize)]
pub struct ClusterView {
    /// The daemon that answered.
    pub this: Member,
    /// Its role.
    pub role: Role,
    /// A new leader still taking over the store's releases (it refuses
    /// changes until it is done).
    pub recovering: bool,
    /// The leader recorded in the store, if any.
    pub leader: Option<LeaderRecord>,
    /// Every daemon recorded (alive or not).
    pub daemons: Vec<DaemonRecord>,
    /// Every environment's stored table.
    pub tables: Vec<TableRecord>,
}

/// This daemon's part in the cluster.
pub struct Cluster {
    url: String,
    app: String,
    options: PgConnectOptions,
    pool: PgPool,
    me: Member,
    role: watch::Sender<Role>,
    applied: Mutex<BTreeMap<String, Applied>>,
    /// Per environment, the last table this daemon wrote as leader: when
    /// its proxy changed, and the generation.
    published: watch::Sender<BTreeMap<String, (i64, i64)>>,
    /// Set once the first try of the lock is over: lost, or won and the
    /// recovery done (see [`Cluster::wait_ready`]).
    ready: watch::Sender<bool>,
    /// How this daemon's first leadership takes over: after a hand-over
    /// (`cutover upgrade` / `reload`), a rollout continues whatever its
    /// `on_daemon_restart` says, as on a SQLite store.
    first_takeover: Mutex<Option<crate::runtime::Takeover>>,
    /// True while a new leader runs its recovery: it refuses changes then.
    recovering: std::sync::atomic::AtomicBool,
    stop: CancellationToken,
}

impl std::fmt::Debug for Cluster {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Cluster")
            .field("me", &self.me)
            .field("role", &*self.role.borrow())
            .finish()
    }
}

impl Cluster {
    /// Connects to the store at `url`, creates the cluster's tables if they
    /// are missing, and records this daemon. Nothing runs yet: see
    /// [`Cluster::start`].
    pub async fn connect(url: &str, app: &str, me: Member) -> Result<Arc<Cluster>, ClusterError> {
        let shown = crate::config::redact_url(url);
        let db = |source| ClusterError::Database {
            url: shown.clone(),
            source,
        };
        let options: PgConnectOptions = url.parse().map_err(db)?;
        let pool = PgPoolOptions::new()
            .max_connections(6)
            .acquire_timeout(Duration::from_secs(5))
            .connect_with(options.clone())
            .await
            .map_err(db)?;
        schema::ensure(&pool).await.map_err(db)?;
        let cluster = Arc::new(Cluster {
            url: shown.clone(),
            app: app.to_owned(),
            options,
            pool,
            me,
            role: watch::channel(Role::Follower).0,
            applied: Mutex::new(BTreeMap::new()),
            published: watch::channel(BTreeMap::new()).0,
            ready: watch::channel(false).0,
            first_takeover: Mutex::new(None),
            recovering: std::sync::atomic::AtomicBool::new(false),
            stop: CancellationToken::new(),
        });
        cluster.record_me().await.map_err(db)?;
        Ok(cluster)
    }

    /// This daemon.
    pub fn me(&self) -> &Member {
        &self.me
    }

    /// Its role now.
    pub fn role(&self) -> Role {
        *self.role.borrow()
    }

    /// Whether it leads now.
    pub fn is_leader(&self) -> bool {
        matches!(self.role(), Role::Leader { .. })
    }

    /// Whether this daemon has just won the lock and still recovers.
    pub fn is_recovering(&self) -> bool {
        self.recovering.load(std::sync::atomic::Ordering::SeqCst)
    }

    /// Changes of role.
    pub fn roles(&self) -> watch::Receiver<Role> {
        self.role.subscribe()
    }

    /// What it applied, per environment.
    pub fn applied(&self) -> BTreeMap<String, Applied> {
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    fn db_error(&self, source: sqlx::Error) -> ClusterError {
        ClusterError::Database {
            url: self.url.clone(),
            source,
        }
    }

    /// Starts the election, route propagation and this daemon's heartbeat,
    /// driving `daemon` (which must be quiesced: it follows until it wins).
    pub fn start(self: &Arc<Self>, daemon: Arc<crate::runtime::Daemon>) {
        metrics::describe_gauge!(
            LEADER_GAUGE,
            "1 while this daemon leads the daemons sharing its PostgreSQL store, else 0"
        );
        metrics::describe_gauge!(
            GENERATION_GAUGE,
            "Generation of the environment's route table this daemon's proxy serves"
        );
        metrics::describe_gauge!(
            APPLIED_GAUGE,
            "When this daemon's proxy applied the environment's route table (Unix seconds)"
        );
        metrics::gauge!(LEADER_GAUGE).set(0.0);
        tokio::spawn(leader::run(self.clone(), daemon.clone()));
        tokio::spawn(routes::follow(self.clone(), daemon.clone()));
        tokio::spawn(routes::publish(self.clone(), daemon));
        tokio::spawn(self.clone().keep_seen());
    }

    /// Applies the route tables the store holds to this daemon's proxies,
    /// once, before they serve (a daemon that joins, or takes over by a
    /// hand-over, routes as the leader does from its first request).
    pub async fn catch_up(self: &Arc<Self>, daemon: &crate::runtime::Daemon) {
        routes::apply_newer(self, daemon, None).await;
    }

    /// Says that this daemon was started by a hand-over: if its first
    /// leadership is the next one (the old daemon's lock goes when it
    /// exits), it recovers as a hand-over does.
    pub fn handed_over(&self) {
        *self
            .first_takeover
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = Some(crate::runtime::Takeover::Handover);
    }

    /// Waits (up to `limit`) until this daemon's first try of the leader
    /// lock is over: another daemon leads, or this one won and has
    /// recovered, as a lone daemon has before its API serves.
    pub async fn wait_ready(&self, limit: Duration) {
        let mut ready = self.ready.subscribe();
        let _ = tokio::time::timeout(limit, ready.wait_for(|r| *r)).await;
    }

    /// Stops everything [`Cluster::start`] started; the lock's session ends,
    /// so another daemon may lead. For a daemon that exits.
    pub fn stop(&self) {
        self.stop.cancel();
    }

    /// The leader recorded in the store.
    pub async fn leader(&self) -> Result<Option<LeaderRecord>, ClusterError> {
        schema::leader(&self.pool, &self.app)
            .await
            .map_err(|e| self.db_error(e))
    }

    /// Everything `GET /v1/cluster` answers.
    pub async fn view(&self) -> Result<ClusterView, ClusterError> {
        let leader = self.leader().await?;
        let daemons = schema::daemons(&self.pool, &self.app)
            .await
            .map_err(|e| self.db_error(e))?;
        let tables = schema::tables(&self.pool, &self.app)
            .await
            .map_err(|e| self.db_error(e))?;
        Ok(ClusterView {
            this: self.me.clone(),
            role: self.role(),
            recovering: self.is_recovering(),
            leader,
            daemons,
            tables,
        })
    }

    /// While this daemon leads: waits (up to `limit`) until every daemon
    /// seen alive has applied a table of `environment` at least as new as
    /// the change its proxy made at `changed_at_ms` — so that an instance
    /// taken out of the table gets no new request through a follower before
    /// it is stopped. Returns whether they all did.
    pub async fn wait_followers(
        &self,
        environment: &str,
        changed_at_ms: i64,
        limit: Duration,
    ) -> bool {
        if !self.is_leader() || self.stop.is_cancelled() {
            return true;
        }
        let waited = tokio::time::timeout(limit, async {
            let mut published = self.published.subscribe();
            let generation = loop {
                if let Some((at, generation)) = published.borrow_and_update().get(environment)
                    && *at >= changed_at_ms
                {
                    break *generation;
                }
                if published.changed().await.is_err() {
                    return false;
                }
            };
            loop {
                let behind: Result<i64, sqlx::Error> = sqlx::query_scalar(
                    "SELECT count(*) FROM cutover_cluster_daemons d
                     LEFT JOIN cutover_cluster_applied a
                       ON a.daemon_id = d.daemon_id AND a.environment = $1
                     WHERE d.app = $4 AND d.seen_at_ms >= $3
                       AND (a.generation IS NULL OR a.generation < $2)",
                )
                .bind(environment)
                .bind(generation)
                .bind(now_ms().saturating_sub(ALIVE_WITHIN_MS))
                .bind(&self.app)
                .fetch_one(&self.pool)
                .await;
                match behind {
                    Ok(0) => return true,
                    Ok(_) => {}
                    Err(e) => {
                        tracing::warn!(error = %e, "cannot read which daemons applied the route table");
                        return false;
                    }
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await;
        let all = waited.unwrap_or(false);
        if !all {
            tracing::warn!(
                env = %environment,
                ?limit,
                "not every daemon applied the route table in time; stopping the instances taken out of it anyway"
            );
        }
        all
    }

    async fn record_me(&self) -> Result<(), sqlx::Error> {
        let now = now_ms();
        sqlx::query(
            "INSERT INTO cutover_cluster_daemons (daemon_id, app, host, api_url, pid, started_at_ms, seen_at_ms)
             VALUES ($1, $6, $2, $3, $4, $5, $5)
             ON CONFLICT (daemon_id) DO UPDATE SET seen_at_ms = EXCLUDED.seen_at_ms",
        )
        .bind(&self.me.daemon_id)
        .bind(&self.me.host)
        .bind(&self.me.api_url)
        .bind(i64::from(std::process::id()))
        .bind(now)
        .bind(&self.app)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Says every second that this daemon is alive; forgets daemons not
    /// seen for an hour.
    async fn keep_seen(self: Arc<Self>) {
        let mut tick = tokio::time::interval(SEEN_INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = self.stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            if let Err(e) = self.record_me().await {
                tracing::warn!(error = %e, "cannot record that this daemon is alive in the cluster's store");
            }
            let _ = sqlx::query("DELETE FROM cutover_cluster_daemons WHERE seen_at_ms < $1")
                .bind(now_ms().saturating_sub(3_600_000))
                .execute(&self.pool)
                .await;
        }
        let _ = sqlx::query("DELETE FROM cutover_cluster_daemons WHERE daemon_id = $1")
            .bind(&self.me.daemon_id)
            .execute(&self.pool)
            .await;
    }

    /// Records that this daemon's proxy for `environment` serves
    /// `generation` since `applied_at_ms` (in memory and metrics at once,
    /// in the store in the background).
    fn record_applied(self: &Arc<Self>, environment: &str, generation: i64, applied_at_ms: i64) {
        let applied = Applied {
            generation,
            applied_at_ms,
        };
        self.applied
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(environment.to_owned(), applied);
        let labels = [("environment", environment.to_owned())];
        #[allow(clippy::cast_precision_loss)]
        {
            metrics::gauge!(GENERATION_GAUGE, &labels).set(generation as f64);
            metrics::gauge!(APPLIED_GAUGE, &labels).set(applied_at_ms as f64 / 1000.0);
        }
        let this = self.clone();
        let environment = environment.to_owned();
        tokio::spawn(async move {
            let written = sqlx::query(
                "INSERT INTO cutover_cluster_applied (daemon_id, environment, generation, applied_at_ms)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (daemon_id, environment) DO UPDATE
                 SET generation = EXCLUDED.generation, applied_at_ms = EXCLUDED.applied_at_ms
                 WHERE cutover_cluster_applied.generation <= EXCLUDED.generation",
            )
            .bind(&this.me.daemon_id)
            .bind(&environment)
            .bind(generation)
            .bind(applied_at_ms)
            .execute(&this.pool)
            .await;
            if let Err(e) = written {
                tracing::warn!(error = %e, env = %environment, "cannot record the route table applied");
            }
        });
    }
}

/// `cutover_cluster_leader`: 1 while this daemon leads.
pub const LEADER_GAUGE: &str = "cutover_cluster_leader";
/// `cutover_route_generation{environment}`: the table generation served.
pub const GENERATION_GAUGE: &str = "cutover_route_generation";
/// `cutover_route_applied_timestamp_seconds{environment}`: when it was applied.
pub const APPLIED_GAUGE: &str = "cutover_route_applied_timestamp_seconds";

/// Milliseconds since the Unix epoch, on the wall clock (a stamp: the
/// daemons of one store compare them, so their clocks must agree).
pub fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

#[cfg(test)]
mod tests;
