//! The daemon's HTTP API (axum). Built by [`app`] so tests can drive it
//! in-process; `cutover serve` binds it to `server.listen` (loopback by default).
//!
//! Routes: `GET /healthz` is open; everything under `/v1` needs
//! `Authorization: Bearer <token>` whose role allows the route
//! (`auth.rs`: the token check and the one table of what each route needs).
//! `GET /metrics` is open on a loopback API and needs a valid token (any
//! role) on an API off loopback; [`metrics_app`] serves it alone, without a
//! token, on `[server] metrics_listen`. "Who" in the history and the audit
//! log is the caller's token name; a `requested_by` a client sends is
//! ignored.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post};
use axum::{Json, Router};

use super::extract::{self, Json as JsonBody, Path, Query};
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use super::auth::{self, require_token};
use super::wire::{
    Accepted, ApiErrorBody, ApproveRequest, AwaitingApprovalView, AwaitingSwitchView,
    DecisionAnswer, DeployRequest, Deployment, DeploymentDetail, EnvironmentEvent,
    EnvironmentStatus, ErrorCode, InstanceView, OpenFileLimit, RejectRequest, ReleaseProgressView,
    RollbackRequest, RolloutCommandRequest, StatusResponse, TrafficView,
};
use crate::identity::Caller;
use crate::label;
use crate::runtime::approval::{Decided, Decision};
use crate::runtime::{Daemon, DeployError, deploy, gates, rollback};
use crate::store::StoreError;
use crate::telemetry::Telemetry;

/// Most deployments one history call returns.
const MAX_HISTORY: u32 = 500;

/// How many of an environment's latest edge events `status` shows.
const STATUS_EDGE_EVENTS: u32 = 5;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    /// The runtime.
    pub daemon: Arc<Daemon>,
    /// The bootstrap admin's token (the token file).
    pub token: Arc<str>,
    /// Prometheus exposition of the process's and the daemon's metrics.
    pub metrics: Option<Arc<Telemetry>>,
    /// `/metrics` needs the token (the API listens off loopback).
    pub metrics_need_token: bool,
    /// The daemon process's upgrade, reload and stop, once it serves.
    pub lifecycle: super::daemon::LifecycleSlot,
    /// Cancelled when the daemon stops: a long-poll answers at once then,
    /// so it never holds up the API's graceful shutdown.
    pub stop: CancellationToken,
}

/// The API's router.
pub fn app(state: ApiState) -> Router {
    let v1 = Router::new()
        .route("/status", get(status))
        .route(
            "/deployments",
            get(list_deployments).post(create_deployment),
        )
        .route("/deployments/{id}", get(get_deployment))
        .route("/deployments/{id}/approve", post(approve_deployment))
        .route("/deployments/{id}/reject", post(reject_deployment))
        .route("/rollback", post(create_rollback))
        .route("/rollout/{command}", post(rollout_command))
        .route("/logs", get(super::logs::logs))
        .route("/releases", get(super::gates::releases))
        .route("/locks", post(super::gates::lock))
        .route("/locks/{environment}", delete(super::gates::unlock))
        .route("/events", get(list_environment_events))
        .route("/events/feed", get(super::events::feed))
        .route("/events/stream", get(super::events::stream))
        .route("/daemon/{action}", post(super::daemon::action))
        .route(
            "/tokens",
            get(super::tokens::list).post(super::tokens::create),
        )
        .route("/tokens/{name}", delete(super::tokens::revoke))
        .route("/audit", get(super::audit::list))
        .route("/dora", get(super::dora::report))
        .route("/cluster", get(super::cluster::view))
        .method_not_allowed_fallback(extract::method_not_allowed)
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    let metrics_route = if state.metrics_need_token {
        get(metrics).route_layer(middleware::from_fn_with_state(state.clone(), require_token))
    } else {
        get(metrics)
    };
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", metrics_route)
        .nest("/v1", v1)
        .method_not_allowed_fallback(extract::method_not_allowed)
        .fallback(extract::not_found)
        .layer(DefaultBodyLimit::max(extract::MAX_BODY_BYTES))
        .with_state(state)
}

/// `/metrics` alone, without a token, for `[server] metrics_listen`.
pub fn metrics_app(metrics: Option<Arc<Telemetry>>) -> Router {
    Router::new().route(
        "/metrics",
        get(move || {
            let metrics = metrics.clone();
            async move { render_metrics(metrics.as_deref()).await }
        }),
    )
}

/// An error answer: a code (which decides the HTTP status) and a message.
#[derive(Debug)]
pub struct ApiError {
    code: ErrorCode,
    message: String,
}

impl ApiError {
    /// An answer with `code`'s status and `message`.
    pub(crate) fn new(code: ErrorCode, message: impl Into<String>) -> ApiError {
        ApiError {
            code,
            message: message.into(),
        }
    }

    /// 400: the request cannot be served as asked.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::BadRequest, message)
    }

    /// 404: nothing matches.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::NotFound, message)
    }

    /// 500: something failed on the daemon's side.
    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(ErrorCode::Internal, message)
    }

    /// The HTTP status it answers with.
    pub(crate) fn status(&self) -> StatusCode {
        self.code.status()
    }

    /// What it says.
    pub(crate) fn message(&self) -> &str {
        &self.message
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody {
            error: self.code,
            message: self.message,
        };
        (self.code.status(), Json(body)).into_response()
    }
}

/// The code each way a deploy, rollback or operator command can fail answers with.
impl From<&DeployError> for ErrorCode {
    fn from(e: &DeployError) -> Self {
        match e {
            DeployError::BadRequest(_) => ErrorCode::BadRequest,
            DeployError::Locked(_) => ErrorCode::Locked,
            DeployError::Refused(_) => ErrorCode::Refused,
            DeployError::EnvironmentLocked(_) => ErrorCode::Locked,
            DeployError::PromotionRequired(_) => ErrorCode::PromotionRequired,
            DeployError::OutsideWindow(_) => ErrorCode::OutsideWindow,
            DeployError::Forbidden(_) => ErrorCode::Forbidden,
            DeployError::Preflight(_) => ErrorCode::PreflightFailed,
            DeployError::Store(e) => ErrorCode::from(e),
            DeployError::Internal(_) => ErrorCode::Internal,
        }
    }
}

/// A held lock is `locked`, a write against the store's rules `refused`;
/// every other store failure is `store`.
impl From<&StoreError> for ErrorCode {
    fn from(e: &StoreError) -> Self {
        match e {
            StoreError::LockHeld { .. } => ErrorCode::Locked,
            StoreError::Conflict(_) => ErrorCode::Refused,
            _ => ErrorCode::Store,
        }
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        let code = ErrorCode::from(&e);
        if code == ErrorCode::Store {
            tracing::error!(error = %e, "state store error");
        }
        ApiError::new(code, e.to_string())
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match ErrorCode::from(&e) {
            ErrorCode::Store => {
                tracing::error!(error = %e, "state store error");
                ApiError::new(ErrorCode::Store, format!("state store: {e}"))
            }
            code => ApiError::new(code, e.to_string()),
        }
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    render_metrics(state.metrics.as_deref()).await
}

async fn render_metrics(metrics: Option<&Telemetry>) -> Response {
    match metrics {
        Some(telemetry) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            telemetry.render().await,
        )
            .into_response(),
        None => {
            ApiError::not_found("metrics are not enabled ([server] metrics, see docs/config.md)")
                .into_response()
        }
    }
}

pub(crate) async fn status(
    State(state): State<ApiState>,
) -> Result<Json<StatusResponse>, ApiError> {
    let daemon = &state.daemon;
    let mut environments = Vec::new();
    for env in daemon.environments() {
        let serving = daemon.store().serving(env.name()).await?;
        let lock = daemon.store().lock(env.name()).await?;
        let records = daemon.store().instances(Some(env.name())).await?;
        let live = env.instances();
        let table = env.proxy().table();
        let track_of = |id: &str| {
            table.service_names().iter().find_map(|name| {
                let view = table.service(name)?;
                let on =
                    |list: &[cutover_proxy::Instance]| list.iter().any(|i| i.id.as_str() == id);
                if on(&view.stable) {
                    Some("stable".to_owned())
                } else if on(&view.canary) {
                    Some("canary".to_owned())
                } else {
                    None
                }
            })
        };
        let instances = records
            .into_iter()
            .map(|r| {
                let addr = live
                    .iter()
                    .find(|l| l.id == r.instance_id)
                    .and_then(|l| l.handle.addr())
                    .map(|a| a.to_string());
                let in_flight = env
                    .proxy()
                    .in_flight(&cutover_proxy::InstanceId::from(r.instance_id.as_str()))
                    .requests;
                let health = env.health_of(&r.instance_id);
                InstanceView {
                    addr,
                    in_flight,
                    track: track_of(&r.instance_id),
                    healthy: health.as_ref().map(|h| h.healthy),
                    health_since: health.as_ref().map(|h| h.since),
                    health_reason: health.and_then(|h| h.reason),
                    ..InstanceView::from(r)
                }
            })
            .collect();
        let version_of = |id: &cutover_proxy::InstanceId| {
            live.iter()
                .find(|l| l.id == id.as_str())
                .map(|l| l.version.clone())
        };
        let versions = |list: &[cutover_proxy::Instance]| {
            let mut v: Vec<String> = list.iter().filter_map(|i| version_of(&i.id)).collect();
            v.sort();
            v.dedup();
            v
        };
        let traffic = table
            .service_names()
            .iter()
            .filter_map(|name| table.service(name))
            .map(|view| TrafficView {
                now: Some(super::live::traffic_now(env.proxy(), &view.name)),
                service: view.name.clone(),
                stable_percent: f64::from(view.weights.stable_bp()) / 100.0,
                stable_versions: versions(&view.stable),
                canary_percent: f64::from(view.weights.canary_bp()) / 100.0,
                canary_versions: versions(&view.canary),
            })
            .collect();
        environments.push(EnvironmentStatus {
            name: env.name().to_owned(),
            listen: env.config().listen.to_string(),
            preview_listen: env.config().preview_listen.map(|a| a.to_string()),
            awaiting_switch: env.releases.awaiting_switch().map(|a| AwaitingSwitchView {
                deployment_id: a.deployment,
                version: a.version,
                service: a.service,
            }),
            serving: serving.as_ref().map(|s| s.current.clone()),
            previous: serving.as_ref().and_then(|s| s.previous.clone()),
            since: serving.as_ref().map(|s| s.since),
            lock: lock.map(Into::into),
            operator_lock: daemon
                .store()
                .operator_lock_of(env.name())
                .await?
                .map(Into::into),
            held: env.releases.held(),
            needs_operator: env
                .releases
                .stuck()
                .map(|s| format!("deployment {}: {}", s.id, s.reason)),
            awaiting_approval: daemon
                .store()
                .deployments(Some(env.name()), 20)
                .await?
                .into_iter()
                .find(|d| d.awaiting_approval)
                .map(|d| AwaitingApprovalView {
                    deployment_id: d.id,
                    version: d.version,
                    requested_by: d.requested_by,
                }),
            traffic,
            instances,
            edge_events: daemon
                .store()
                .environment_events(env.name(), STATUS_EDGE_EVENTS)
                .await?
                .into_iter()
                .map(EnvironmentEvent::from)
                .collect(),
            releases: env
                .releases
                .reports()
                .into_iter()
                .map(ReleaseProgressView::from)
                .collect(),
        });
    }
    Ok(Json(StatusResponse {
        app: daemon.config().app.name.clone(),
        cutover_version: env!("CARGO_PKG_VERSION").to_owned(),
        environments,
        open_files: open_file_limit(),
    }))
}

/// This process's `RLIMIT_NOFILE`, as `cutover preflight` reports it.
fn open_file_limit() -> Option<OpenFileLimit> {
    nix::sys::resource::getrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE)
        .ok()
        .map(|(soft, hard)| OpenFileLimit { soft, hard })
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    environment: Option<String>,
    limit: Option<u32>,
}

async fn list_deployments(
    State(state): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<Deployment>>, ApiError> {
    let limit = q.limit.unwrap_or(20).min(MAX_HISTORY);
    let list = state
        .daemon
        .store()
        .deployments(q.environment.as_deref(), limit)
        .await?;
    Ok(Json(list.into_iter().map(Deployment::from).collect()))
}

#[derive(Debug, Deserialize)]
struct EventsQuery {
    environment: String,
    limit: Option<u32>,
}

/// `GET /v1/events?environment=NAME&limit=N`: an environment's events outside
/// deployments, newest first (20 unless `limit` says, at most 500).
async fn list_environment_events(
    State(state): State<ApiState>,
    Query(q): Query<EventsQuery>,
) -> Result<Json<Vec<EnvironmentEvent>>, ApiError> {
    if !state
        .daemon
        .environments()
        .any(|e| e.name() == q.environment)
    {
        return Err(ApiError::bad_request(format!(
            "no environment {:?} in the configuration; `cutover status` lists them",
            q.environment
        )));
    }
    let limit = q.limit.unwrap_or(20).min(MAX_HISTORY);
    let list = state
        .daemon
        .store()
        .environment_events(&q.environment, limit)
        .await?;
    Ok(Json(list.into_iter().map(EnvironmentEvent::from).collect()))
}

/// Longest a `GET /v1/deployments/{id}?wait_ms=…` waits for news (the CLI's
/// calls time out after 30 s).
const MAX_DEPLOYMENT_WAIT: Duration = Duration::from_secs(20);

#[derive(Debug, Deserialize)]
struct DeploymentQuery {
    /// How many of the deployment's events the caller has seen already.
    seen: Option<usize>,
    /// Wait up to this long (at most [`MAX_DEPLOYMENT_WAIT`]) for news.
    wait_ms: Option<u64>,
}

/// `GET /v1/deployments/{id}[?seen=N&wait_ms=M]`: the deployment and its
/// events. With `wait_ms`, a long-poll: while the deployment runs and has no
/// more than `seen` events (0 if not given), the answer waits until it has
/// a new event or ends, or `wait_ms` passes (then it is the same as before),
/// so a follower sees each change as it is saved without polling on a timer.
async fn get_deployment(
    State(state): State<ApiState>,
    Path(id): Path<i64>,
    Query(q): Query<DeploymentQuery>,
) -> Result<Json<DeploymentDetail>, ApiError> {
    let store = state.daemon.store();
    let wait = q
        .wait_ms
        .map_or(Duration::ZERO, Duration::from_millis)
        .min(MAX_DEPLOYMENT_WAIT);
    let deadline = tokio::time::Instant::now() + wait;
    let seen = q.seen.unwrap_or(0);
    // Subscribed before each read: a change saved in between is not missed.
    let mut changes = store.watch_deployments();
    loop {
        changes.mark_unchanged();
        let deployment = store
            .deployment(id)
            .await?
            .ok_or_else(|| ApiError::not_found(format!("no deployment {id}")))?;
        let events = store.events(id).await?;
        let news =
            deployment.state != crate::store::DeploymentState::Running || events.len() > seen;
        if news || wait.is_zero() {
            return Ok(Json(DeploymentDetail::from_store(deployment, events)));
        }
        tokio::select! {
            changed = tokio::time::timeout_at(deadline, changes.changed()) => {
                if matches!(changed, Ok(Ok(()))) {
                    continue;
                }
            }
            () = state.stop.cancelled() => {}
        }
        // Timed out, the daemon is stopping (or the store is gone): what
        // there is now.
        return Ok(Json(DeploymentDetail::from_store(deployment, events)));
    }
}

async fn create_deployment(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(req): JsonBody<DeployRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let commit = crate::dora::commit::Commit::checked(
        req.commit.as_deref(),
        req.commit_time,
        jiff::Timestamp::now(),
    )
    .map_err(ApiError::bad_request)?;
    let (environment, deployment_id) = deploy::begin_deploy(
        &state.daemon,
        req.environment.as_deref(),
        &req.version,
        &caller.name,
        req.service.as_deref(),
        &gates::Overrides {
            skip_promotion_check: req.skip_promotion_check,
            reason: req.reason.as_deref().map(label::clean_text),
            caller_is_admin: caller.may(crate::identity::Permission::Admin),
        },
        &commit,
    )
    .await?;
    auth::record(
        &state,
        caller
            .audit("deploy")
            .environment(&environment)
            .deployment(deployment_id)
            .target(&req.version)
            .details(serde_json::json!({ "service": req.service, "commit": commit.sha })),
    )
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            deployment_id,
            environment,
        }),
    ))
}

/// `POST /v1/deployments/{id}/approve {comment}`. Who approves is the API
/// token's name, never a value the client sends; four eyes compares it with
/// the deployer's (also a token's name).
pub(crate) async fn approve_deployment(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<ApproveRequest>,
) -> Result<Json<DecisionAnswer>, ApiError> {
    let comment = req
        .comment
        .as_deref()
        .map(label::clean_text)
        .filter(|c| !c.trim().is_empty());
    let decision = Decision::Approve {
        by: caller.name.clone(),
        comment: comment.clone(),
    };
    let answer = Json(decide(&state, id, decision).await?);
    auth::record(
        &state,
        caller
            .audit("approve")
            .environment(&answer.environment)
            .deployment(id)
            .details(serde_json::json!({ "comment": comment, "outcome": answer.outcome })),
    )
    .await;
    Ok(answer)
}

/// `POST /v1/deployments/{id}/reject {reason}`.
pub(crate) async fn reject_deployment(
    State(state): State<ApiState>,
    caller: Caller,
    Path(id): Path<i64>,
    JsonBody(req): JsonBody<RejectRequest>,
) -> Result<Json<DecisionAnswer>, ApiError> {
    let reason = label::clean_text(&req.reason);
    if reason.trim().is_empty() {
        return Err(ApiError::bad_request(
            "a rejection needs a reason: --reason \"…\"",
        ));
    }
    let decision = Decision::Reject {
        by: caller.name.clone(),
        reason: reason.clone(),
    };
    let answer = Json(decide(&state, id, decision).await?);
    auth::record(
        &state,
        caller
            .audit("reject")
            .environment(&answer.environment)
            .deployment(id)
            .details(serde_json::json!({ "reason": reason })),
    )
    .await;
    Ok(answer)
}

async fn decide(state: &ApiState, id: i64, decision: Decision) -> Result<DecisionAnswer, ApiError> {
    let deployment = state.daemon.store().deployment(id).await?.ok_or_else(|| {
        ApiError::not_found(format!("no deployment {id}; `cutover history` lists them"))
    })?;
    tracing::info!(deployment = id, ?decision, "approval decision");
    let decided = state.daemon.decide(&deployment, decision).await?;
    let (outcome, approvals, required) = match decided {
        Decided::Approved { have, need } => ("approved", have, need),
        Decided::Waiting { have, need } => ("waiting", have, need),
        Decided::Rejected => ("rejected", 0, 0),
    };
    Ok(DecisionAnswer {
        deployment_id: id,
        environment: deployment.environment,
        outcome: outcome.into(),
        approvals,
        required,
    })
}

async fn create_rollback(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(req): JsonBody<RollbackRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (environment, deployment_id) =
        rollback::begin_rollback(&state.daemon, req.environment.as_deref(), &caller.name).await?;
    auth::record(
        &state,
        caller
            .audit("rollback")
            .environment(&environment)
            .deployment(deployment_id),
    )
    .await;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            deployment_id,
            environment,
        }),
    ))
}

pub(crate) async fn rollout_command(
    State(state): State<ApiState>,
    caller: Caller,
    Path(command): Path<String>,
    JsonBody(req): JsonBody<RolloutCommandRequest>,
) -> Result<Json<Accepted>, ApiError> {
    use cutover_core::Command;
    let requested_by = &caller.name;
    let name = command;
    let command = match name.as_str() {
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "promote" => Command::Promote { full: req.full },
        "switch" => Command::Switch,
        "abort" => Command::Abort {
            reason: req
                .reason
                .as_deref()
                .map(label::clean_text)
                .unwrap_or_else(|| format!("asked by {requested_by}")),
        },
        other => {
            return Err(ApiError::not_found(format!(
                "no rollout command {:?}: use pause, resume, promote, switch or abort",
                label::clean_text(other)
            )));
        }
    };
    tracing::info!(by = ?requested_by, ?command, "operator command");
    let details = match &command {
        Command::Promote { full } => serde_json::json!({ "full": full }),
        Command::Abort { reason } => serde_json::json!({ "reason": reason }),
        _ => serde_json::json!({}),
    };
    let (environment, deployment_id) = state
        .daemon
        .command(req.environment.as_deref(), command)
        .await?;
    auth::record(
        &state,
        caller
            .audit(&label::clean_text(&name))
            .environment(&environment)
            .deployment(deployment_id)
            .details(details),
    )
    .await;
    Ok(Json(Accepted {
        deployment_id,
        environment,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn answer(error: ApiError) -> (u16, serde_json::Value) {
        let response = error.into_response();
        let status = response.status().as_u16();
        let bytes = axum::body::to_bytes(response.into_body(), 64 * 1024)
            .await
            .expect("body");
        let body = serde_json::from_slice(&bytes).expect("JSON body");
        (status, body)
    }

    fn lock_held() -> StoreError {
        StoreError::LockHeld {
            environment: "production".into(),
            holder: "alice@host".into(),
            purpose: "deploy v2".into(),
            since: jiff::Timestamp::UNIX_EPOCH,
        }
    }

    #[tokio::test]
    async fn each_deploy_error_answers_with_its_code_status_and_message() {
        let locked = lock_held().to_string();
        let cases = [
            (
                DeployError::BadRequest("no environment \"x\"".into()),
                400,
                "bad_request",
                "no environment \"x\"".to_owned(),
            ),
            (DeployError::Locked(lock_held()), 409, "locked", locked),
            (
                DeployError::Refused("nothing to pause".into()),
                409,
                "refused",
                "nothing to pause".to_owned(),
            ),
            (
                DeployError::EnvironmentLocked("production is locked by alice".into()),
                409,
                "locked",
                "production is locked by alice".to_owned(),
            ),
            (
                DeployError::PromotionRequired("v2 soaked 12m of 30m in staging".into()),
                409,
                "promotion_required",
                "v2 soaked 12m of 30m in staging".to_owned(),
            ),
            (
                DeployError::OutsideWindow("production is outside its deploy windows".into()),
                409,
                "outside_window",
                "production is outside its deploy windows".to_owned(),
            ),
            (
                DeployError::Preflight("image hello:v9 is missing".into()),
                422,
                "preflight_failed",
                "image hello:v9 is missing".to_owned(),
            ),
            (
                DeployError::Store(StoreError::Corrupt("x".into())),
                500,
                "store",
                "state store: the state store holds a bad value: x".to_owned(),
            ),
            (
                DeployError::Internal("impossible".into()),
                500,
                "internal",
                "impossible".to_owned(),
            ),
        ];
        for (error, status, code, message) in cases {
            assert_eq!(
                answer(ApiError::from(error)).await,
                (
                    status,
                    serde_json::json!({ "error": code, "message": message })
                )
            );
        }
    }

    #[tokio::test]
    async fn a_store_error_answers_store_unless_it_is_a_held_lock() {
        let (status, body) = answer(ApiError::from(StoreError::Corrupt("x".into()))).await;
        assert_eq!((status, body["error"].as_str()), (500, Some("store")));
        assert_eq!(
            body["message"],
            "state store: the state store holds a bad value: x"
        );
        let (status, body) = answer(ApiError::from(lock_held())).await;
        assert_eq!((status, body["error"].as_str()), (409, Some("locked")));
        assert_eq!(body["message"], lock_held().to_string());
    }
}
