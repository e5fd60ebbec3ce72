//! The API's side of several daemons sharing a PostgreSQL store
//! (`src/cluster`): `GET /v1/cluster` (this daemon, its role, the leader,
//! every daemon with the route-table generation it applied and when, every
//! environment's stored table), and the refusal of a change asked of a
//! follower (`not_leader`, naming the leader and how to ask it).

use axum::Json;
use axum::extract::State;
use axum::http::Method;

use super::server::{ApiError, ApiState};
use super::wire::ErrorCode;
use crate::cluster::ClusterView;

/// Routes a follower refuses (every method but `GET`/`HEAD`): what changes
/// releases, instances or the proxies' tables. Tokens and the daemon's own
/// stop are this daemon's or the store's business, and are served.
const LEADER_ONLY: &[&str] = &[
    "/v1/deployments",
    "/v1/rollback",
    "/v1/rollout",
    "/v1/locks",
];

/// `GET /v1/cluster`.
pub(crate) async fn view(State(state): State<ApiState>) -> Result<Json<ClusterView>, ApiError> {
    let Some(cluster) = state.daemon.cluster() else {
        return Err(ApiError::not_found(
            "this daemon is not one of several: its [state] url is not a PostgreSQL store (docs/cluster.md)",
        ));
    };
    cluster
        .view()
        .await
        .map(Json)
        .map_err(|e| ApiError::new(ErrorCode::Store, e.to_string()))
}

/// The `not_leader` answer to `method` on `path` when this daemon follows
/// and the route changes the world; `None` when it may be served here.
pub(crate) async fn refuse_on_follower(
    state: &ApiState,
    method: &Method,
    path: &str,
) -> Option<ApiError> {
    let cluster = state.daemon.cluster()?;
    if method == Method::GET || method == Method::HEAD {
        return None;
    }
    if !LEADER_ONLY
        .iter()
        .any(|p| path == *p || path.starts_with(&format!("{p}/")))
    {
        return None;
    }
    if cluster.is_leader() {
        if cluster.is_recovering() {
            return Some(ApiError::new(
                ErrorCode::Refused,
                "this daemon has just become the leader and is taking over the store's releases and instances; nothing was changed: run the command again in a few seconds",
            ));
        }
        return None;
    }
    let me = cluster.me();
    let message = match cluster.leader().await {
        Ok(Some(leader)) if leader.daemon_id != me.daemon_id => format!(
            "this daemon (host {}) follows and changes nothing; the leader is daemon {} on host {} (API {}): send it to the leader (`cutover --host {} …` or CUTOVER_HOST={} with this config; from elsewhere, that daemon's config)",
            me.host, leader.daemon_id, leader.host, leader.api_url, leader.host, leader.host
        ),
        Ok(_) => format!(
            "this daemon (host {}) follows and no daemon leads right now (a new leader is elected within seconds of losing one): run the command again shortly",
            me.host
        ),
        Err(e) => format!(
            "this daemon (host {}) follows and cannot read who leads: {e}",
            me.host
        ),
    };
    Some(ApiError::new(ErrorCode::NotLeader, message))
}
