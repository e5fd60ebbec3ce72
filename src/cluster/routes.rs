//! Route propagation: the leader persists every environment's route table
//! after each change, and every follower's proxy applies it.
//!
//! The runtime tells of each change of an environment's public table in one
//! place (`EnvRuntime::table_changes`, bumped by the four operations that
//! change it). While this daemon leads, [`publish`] writes the table it
//! serves then — each service's instances per track (id and address) and its
//! canary weight, [`RouteSnapshot`] — to `cutover_cluster_routes` under the
//! next generation, fenced by the leader's term (a deposed leader's write
//! changes nothing), and `NOTIFY cutover_routes, 'APP\tENV\tGENERATION'` in the
//! same transaction. While it follows, [`follow`] `LISTEN`s and applies the
//! newer table of the environment notified in one swap of its proxy, and reads
//! every table again every [`REREAD_INTERVAL`](super::REREAD_INTERVAL) (a
//! notification lost while the listener reconnected). Hosts, paths and the
//! services' settings come from the config every daemon reads.
//!
//! Every daemon records the generation it applied and when (the leader: when
//! its own proxy swapped the table in) in `cutover_cluster_applied`.
//!
//! Draining is per proxy: an instance the leader retires leaves the
//! followers' tables when they apply the next table, and is stopped after the
//! leader's own proxy drained it.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use cutover_proxy::{Instance, Proxy, RouteTable, TableError, Track, Weights};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::postgres::PgListener;
use tokio_util::sync::CancellationToken;

use super::{CHANNEL, Cluster, ClusterError, REREAD_INTERVAL, Role, now_ms};
use crate::runtime::{Daemon, EnvRuntime};

/// How long to wait before writing again after a failed write.
const RETRY_DELAY: Duration = Duration::from_millis(200);

/// What a proxy needs of one environment's table to route as the leader's
/// does.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RouteSnapshot {
    /// Per service (HTTP services only).
    pub services: BTreeMap<String, ServiceSnapshot>,
}

/// One service of a [`RouteSnapshot`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ServiceSnapshot {
    /// Basis points of traffic on canary (the rest on stable).
    pub canary_bp: u16,
    /// Instances on the stable track.
    pub stable: Vec<InstanceSnapshot>,
    /// Instances on the canary track.
    pub canary: Vec<InstanceSnapshot>,
}

/// One instance: its id and where it listens.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct InstanceSnapshot {
    /// The instance's id.
    pub id: String,
    /// Its address.
    pub addr: SocketAddr,
}

impl RouteSnapshot {
    /// What `table` routes to.
    pub fn of(table: &RouteTable) -> RouteSnapshot {
        let list = |instances: Vec<Instance>| -> Vec<InstanceSnapshot> {
            instances
                .into_iter()
                .map(|i| InstanceSnapshot {
                    id: i.id.to_string(),
                    addr: i.addr,
                })
                .collect()
        };
        let services = table
            .service_names()
            .into_iter()
            .filter_map(|name| {
                let view = table.service(&name)?;
                Some((
                    name,
                    ServiceSnapshot {
                        canary_bp: view.weights.canary_bp(),
                        stable: list(view.stable),
                        canary: list(view.canary),
                    },
                ))
            })
            .collect();
        RouteSnapshot { services }
    }

    /// Makes `proxy` route as this snapshot says, in one swap. Services the
    /// proxy does not declare are left out (a config that differs); returns
    /// the proxy's new generation.
    pub fn apply(&self, proxy: &Proxy) -> Result<u64, TableError> {
        let known = proxy.table().service_names();
        proxy.update(|u| {
            for (name, service) in &self.services {
                if !known.contains(name) {
                    continue;
                }
                let to = |list: &[InstanceSnapshot]| -> Vec<Instance> {
                    list.iter()
                        .map(|i| Instance::new(i.id.as_str(), i.addr))
                        .collect()
                };
                // Clear first so an instance may move between tracks at once.
                u.set_instances(name, Track::Canary, Vec::new())?
                    .set_instances(name, Track::Stable, to(&service.stable))?
                    .set_instances(name, Track::Canary, to(&service.canary))?
                    .set_weights(name, Weights::canary(service.canary_bp)?)?;
            }
            Ok(())
        })
    }
}

/// While this daemon leads: writes each environment's table after every
/// change (and once when it starts to lead).
pub(super) async fn publish(cluster: Arc<Cluster>, daemon: Arc<Daemon>) {
    let stop = cluster.stop.clone();
    let mut roles = cluster.roles();
    loop {
        let role = *roles.borrow_and_update();
        if let Role::Leader { term } = role {
            let leading = stop.child_token();
            let mut tasks = tokio::task::JoinSet::new();
            for env in daemon.environments() {
                tasks.spawn(publish_environment(
                    cluster.clone(),
                    env.clone(),
                    term,
                    leading.clone(),
                ));
            }
            // Until the role changes.
            loop {
                tokio::select! {
                    () = stop.cancelled() => break,
                    changed = roles.changed() => {
                        if changed.is_err() || *roles.borrow() != role {
                            break;
                        }
                    }
                }
            }
            leading.cancel();
            while tasks.join_next().await.is_some() {}
            if stop.is_cancelled() {
                return;
            }
            continue;
        }
        tokio::select! {
            () = stop.cancelled() => return,
            changed = roles.changed() => if changed.is_err() { return },
        }
    }
}

async fn publish_environment(
    cluster: Arc<Cluster>,
    env: Arc<EnvRuntime>,
    term: i64,
    leading: CancellationToken,
) {
    let mut changes = env.table_changes();
    changes.mark_changed();
    loop {
        tokio::select! {
            () = leading.cancelled() => return,
            changed = changes.changed() => if changed.is_err() { return },
        }
        let changed_at = match *changes.borrow_and_update() {
            0 => now_ms(),
            at => at,
        };
        let snapshot = RouteSnapshot::of(&env.proxy().table());
        match write(&cluster, env.name(), term, &snapshot, changed_at).await {
            Ok(Some(generation)) => {
                tracing::debug!(env = %env.name(), generation, "route table written");
                cluster.record_applied(env.name(), generation, changed_at);
                cluster.published.send_modify(|p| {
                    p.insert(env.name().to_owned(), (changed_at, generation));
                });
            }
            Ok(None) => {
                tracing::error!(
                    env = %env.name(),
                    term,
                    "the route table was not written: another daemon leads now (term moved on)"
                );
                return;
            }
            Err(e) => {
                tracing::error!(env = %env.name(), error = %e, "cannot write the route table to the store; trying again");
                tokio::select! {
                    () = leading.cancelled() => return,
                    () = tokio::time::sleep(RETRY_DELAY) => changes.mark_changed(),
                }
            }
        }
    }
}

/// Writes `snapshot` as `environment`'s next generation and notifies, if
/// `term` still leads; `None` when it does not.
async fn write(
    cluster: &Cluster,
    environment: &str,
    term: i64,
    snapshot: &RouteSnapshot,
    changed_at: i64,
) -> Result<Option<i64>, ClusterError> {
    let db = |e| cluster.db_error(e);
    let routes = serde_json::to_string(snapshot).map_err(|e| ClusterError::BadTable {
        environment: environment.to_owned(),
        detail: e.to_string(),
    })?;
    let mut tx = cluster.pool.begin().await.map_err(db)?;
    let generation: Option<i64> = sqlx::query_scalar(
        "WITH fence AS (SELECT 1 FROM cutover_cluster_leader WHERE app = $6 AND term = $2 FOR SHARE)
         INSERT INTO cutover_cluster_routes (app, environment, generation, term, routes, changed_at_ms, written_at_ms)
         SELECT $6, $1, 1, $2, $3, $4, $5 FROM fence
         ON CONFLICT (app, environment) DO UPDATE SET generation = cutover_cluster_routes.generation + 1,
             term = EXCLUDED.term, routes = EXCLUDED.routes,
             changed_at_ms = EXCLUDED.changed_at_ms, written_at_ms = EXCLUDED.written_at_ms
         RETURNING generation",
    )
    .bind(environment)
    .bind(term)
    .bind(&routes)
    .bind(changed_at)
    .bind(now_ms())
    .bind(&cluster.app)
    .fetch_optional(&mut *tx)
    .await
    .map_err(db)?;
    let Some(generation) = generation else {
        return Ok(None);
    };
    sqlx::query("SELECT pg_notify($1, $2)")
        .bind(CHANNEL)
        .bind(format!("{}\t{environment}\t{generation}", cluster.app))
        .execute(&mut *tx)
        .await
        .map_err(db)?;
    tx.commit().await.map_err(db)?;
    Ok(Some(generation))
}

/// While this daemon follows: applies every newer table the leader writes.
pub(super) async fn follow(cluster: Arc<Cluster>, daemon: Arc<Daemon>) {
    let stop = cluster.stop.clone();
    let mut listener: Option<PgListener> = None;
    let mut reread = tokio::time::interval(REREAD_INTERVAL);
    reread.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        if listener.is_none() {
            listener = match listen(&cluster).await {
                Ok(l) => Some(l),
                Err(e) => {
                    tracing::warn!(error = %e, "cannot LISTEN for route tables; reading them every {} s meanwhile", REREAD_INTERVAL.as_secs());
                    None
                }
            };
        }
        let notified = async {
            match listener.as_mut() {
                Some(l) => Some(l.recv().await),
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            () = stop.cancelled() => return,
            got = notified => match got {
                Some(Ok(n)) => {
                    let mut parts = n.payload().split('\t');
                    if parts.next() == Some(cluster.app.as_str()) {
                        let environment = parts.next().unwrap_or_default().to_owned();
                        apply_newer(&cluster, &daemon, Some(&environment)).await;
                    }
                }
                Some(Err(e)) => {
                    tracing::warn!(error = %e, "the route-table listener failed; listening again");
                    listener = None;
                    apply_newer(&cluster, &daemon, None).await;
                    tokio::time::sleep(RETRY_DELAY).await;
                }
                None => {}
            },
            _ = reread.tick() => apply_newer(&cluster, &daemon, None).await,
        }
    }
}

async fn listen(cluster: &Cluster) -> Result<PgListener, sqlx::Error> {
    let mut listener = PgListener::connect_with(&cluster.pool).await?;
    listener.listen(CHANNEL).await?;
    Ok(listener)
}

/// Applies the stored tables (of `environment`, or all) that are newer
/// than what this daemon applied, unless it leads.
pub(super) async fn apply_newer(
    cluster: &Arc<Cluster>,
    daemon: &Daemon,
    environment: Option<&str>,
) {
    if cluster.is_leader() {
        return;
    }
    let rows = match environment {
        Some(env) => {
            sqlx::query(
                "SELECT environment, generation, routes FROM cutover_cluster_routes WHERE app = $2 AND environment = $1",
            )
            .bind(env)
            .bind(&cluster.app)
            .fetch_all(&cluster.pool)
            .await
        }
        None => {
            sqlx::query("SELECT environment, generation, routes FROM cutover_cluster_routes WHERE app = $1")
                .bind(&cluster.app)
                .fetch_all(&cluster.pool)
                .await
        }
    };
    let rows = match rows {
        Ok(rows) => rows,
        Err(e) => {
            tracing::warn!(error = %e, "cannot read the route tables from the store");
            return;
        }
    };
    let applied = cluster.applied();
    for row in rows {
        let (Ok(name), Ok(generation), Ok(routes)) = (
            row.try_get::<String, _>("environment"),
            row.try_get::<i64, _>("generation"),
            row.try_get::<String, _>("routes"),
        ) else {
            continue;
        };
        if applied
            .get(&name)
            .is_some_and(|a| a.generation >= generation)
        {
            continue;
        }
        let Some(env) = daemon.environments().find(|e| e.name() == name) else {
            continue;
        };
        let snapshot: RouteSnapshot = match serde_json::from_str(&routes) {
            Ok(s) => s,
            Err(e) => {
                tracing::error!(env = %name, generation, error = %e, "the stored route table cannot be read; keeping the one served");
                continue;
            }
        };
        if cluster.is_leader() {
            return;
        }
        match snapshot.apply(env.proxy()) {
            Ok(_) => {
                let at = now_ms();
                env.sync_preview();
                cluster.record_applied(&name, generation, at);
                tracing::debug!(env = %name, generation, "applied the leader's route table");
            }
            Err(e) => {
                tracing::error!(env = %name, generation, error = %e, "cannot apply the leader's route table; keeping the one served");
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use cutover_proxy::{ProxyConfig, ServiceSpec};

    #[test]
    fn a_snapshot_applied_routes_as_the_table_it_was_taken_from() {
        let leader = Proxy::new(ProxyConfig::default());
        let follower = Proxy::new(ProxyConfig::default());
        for p in [&leader, &follower] {
            p.set_service("web", ServiceSpec::default())
                .expect("service");
        }
        let a: SocketAddr = "127.0.0.1:4001".parse().expect("addr");
        let b: SocketAddr = "127.0.0.1:4002".parse().expect("addr");
        leader
            .update(|u| {
                u.set_instances("web", Track::Stable, vec![Instance::new("s1", a)])?
                    .set_instances("web", Track::Canary, vec![Instance::new("c1", b)])?
                    .set_weights("web", Weights::canary(2500)?)?;
                Ok::<(), TableError>(())
            })
            .expect("update");
        let snapshot = RouteSnapshot::of(&leader.table());
        let json = serde_json::to_string(&snapshot).expect("json");
        let back: RouteSnapshot = serde_json::from_str(&json).expect("back");
        assert_eq!(back, snapshot);
        back.apply(&follower).expect("apply");
        assert_eq!(
            follower.table().service("web"),
            leader.table().service("web")
        );
        // Moving the canary to stable in one swap.
        let moved = RouteSnapshot {
            services: BTreeMap::from([(
                "web".to_owned(),
                ServiceSnapshot {
                    canary_bp: 0,
                    stable: vec![InstanceSnapshot {
                        id: "c1".into(),
                        addr: b,
                    }],
                    canary: vec![],
                },
            )]),
        };
        moved.apply(&follower).expect("apply");
        let view = follower.table().service("web").expect("web");
        assert_eq!(view.stable, vec![Instance::new("c1", b)]);
        assert!(view.canary.is_empty());
        assert_eq!(view.weights.canary_bp(), 0);
    }
}
