//! The daemon's HTTP API (axum). Built by [`app`] so tests can drive it
//! in-process; `cutover serve` binds it to `server.listen` (loopback by default).
//!
//! Routes: `GET /healthz` and `GET /metrics` are open; everything under `/v1`
//! needs `Authorization: Bearer <token>`.

use std::sync::Arc;

use axum::extract::{Path, Query, Request, State};
use axum::http::{StatusCode, header};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Deserialize;

use super::token;
use super::{
    Accepted, ApiErrorBody, DeployRequest, DeploymentDetail, EnvironmentStatus, InstanceView,
    RollbackRequest, RolloutCommandRequest, StatusResponse, TrafficView,
};
use crate::runtime::{Daemon, DeployError, deploy};
use crate::store::StoreError;

/// Most deployments one history call returns.
const MAX_HISTORY: u32 = 500;

/// What every handler can reach.
#[derive(Clone)]
pub struct ApiState {
    /// The runtime.
    pub daemon: Arc<Daemon>,
    /// The bearer token.
    pub token: Arc<str>,
    /// Prometheus exposition of the process's metrics.
    pub metrics: Option<PrometheusHandle>,
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
        .route("/rollback", post(create_rollback))
        .route("/rollout/{command}", post(rollout_command))
        .route("/logs", get(super::logs::logs))
        .route_layer(middleware::from_fn_with_state(state.clone(), require_token));
    Router::new()
        .route("/healthz", get(|| async { "ok\n" }))
        .route("/metrics", get(metrics))
        .nest("/v1", v1)
        .with_state(state)
}

async fn require_token(State(state): State<ApiState>, req: Request, next: Next) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim);
    match presented {
        Some(t) if token::matches(t, &state.token) => next.run(req).await,
        _ => ApiError::new(
            StatusCode::UNAUTHORIZED,
            "unauthorized",
            "missing or wrong API token (Authorization: Bearer …)",
        )
        .into_response(),
    }
}

/// An error answer.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    code: &'static str,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> ApiError {
        ApiError {
            status,
            code,
            message: message.into(),
        }
    }
}

impl ApiError {
    /// 400: the request cannot be served as asked.
    pub(crate) fn bad_request(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::BAD_REQUEST, "bad_request", message)
    }

    /// 404: nothing matches.
    pub(crate) fn not_found(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::NOT_FOUND, "not_found", message)
    }

    /// 500: something failed on the daemon's side.
    pub(crate) fn internal(message: impl Into<String>) -> ApiError {
        ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ApiErrorBody {
            error: self.code.to_owned(),
            message: self.message,
        };
        (self.status, Json(body)).into_response()
    }
}

impl From<DeployError> for ApiError {
    fn from(e: DeployError) -> Self {
        match e {
            DeployError::BadRequest(m) => ApiError::new(StatusCode::BAD_REQUEST, "bad_request", m),
            DeployError::Locked(e) => ApiError::new(StatusCode::CONFLICT, "locked", e.to_string()),
            DeployError::Refused(m) => ApiError::new(StatusCode::CONFLICT, "refused", m),
            DeployError::Preflight(m) => {
                ApiError::new(StatusCode::UNPROCESSABLE_ENTITY, "preflight_failed", m)
            }
            DeployError::Store(e) => ApiError::from(e),
            DeployError::Internal(m) => {
                ApiError::new(StatusCode::INTERNAL_SERVER_ERROR, "internal", m)
            }
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        tracing::error!(error = %e, "state store error");
        ApiError::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("state store: {e}"),
        )
    }
}

async fn metrics(State(state): State<ApiState>) -> Response {
    match &state.metrics {
        Some(handle) => (
            [(
                header::CONTENT_TYPE,
                "text/plain; version=0.0.4; charset=utf-8",
            )],
            handle.render(),
        )
            .into_response(),
        None => (StatusCode::NOT_FOUND, "metrics are not enabled\n").into_response(),
    }
}

async fn status(State(state): State<ApiState>) -> Result<Json<StatusResponse>, ApiError> {
    let daemon = &state.daemon;
    let mut environments = Vec::new();
    for env in daemon.environments() {
        let serving = daemon.store().serving(env.name()).await?;
        let lock = daemon.store().lock(env.name()).await?;
        let records = daemon.store().instances(Some(env.name())).await?;
        let live = env.instances();
        let instances = records
            .into_iter()
            .map(|r| {
                let addr = live
                    .iter()
                    .find(|l| l.id == r.instance_id)
                    .and_then(|l| l.handle.addr())
                    .map(|a| a.to_string());
                InstanceView {
                    in_flight: env
                        .proxy()
                        .in_flight(&cutover_proxy::InstanceId::from(r.instance_id.as_str()))
                        .requests,
                    id: r.instance_id,
                    service: r.service,
                    version: r.version,
                    state: serde_json::to_value(r.state)
                        .ok()
                        .and_then(|v| v.as_str().map(str::to_owned))
                        .unwrap_or_default(),
                    addr,
                }
            })
            .collect();
        let table = env.proxy().table();
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
            serving: serving.as_ref().map(|s| s.current.clone()),
            previous: serving.as_ref().and_then(|s| s.previous.clone()),
            since: serving.as_ref().map(|s| s.since),
            lock,
            held: env.releases.held(),
            needs_operator: env
                .releases
                .stuck()
                .map(|s| format!("deployment {}: {}", s.id, s.reason)),
            traffic,
            instances,
        });
    }
    Ok(Json(StatusResponse {
        app: daemon.config().app.name.clone(),
        cutover_version: env!("CARGO_PKG_VERSION").to_owned(),
        environments,
    }))
}

#[derive(Debug, Deserialize)]
struct ListQuery {
    environment: Option<String>,
    limit: Option<u32>,
}

async fn list_deployments(
    State(state): State<ApiState>,
    Query(q): Query<ListQuery>,
) -> Result<Json<Vec<crate::store::Deployment>>, ApiError> {
    let limit = q.limit.unwrap_or(20).min(MAX_HISTORY);
    let list = state
        .daemon
        .store()
        .deployments(q.environment.as_deref(), limit)
        .await?;
    Ok(Json(list))
}

async fn get_deployment(
    State(state): State<ApiState>,
    Path(id): Path<i64>,
) -> Result<Json<DeploymentDetail>, ApiError> {
    let store = state.daemon.store();
    let deployment = store.deployment(id).await?.ok_or_else(|| {
        ApiError::new(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("no deployment {id}"),
        )
    })?;
    let events = store.events(id).await?;
    Ok(Json(DeploymentDetail { deployment, events }))
}

async fn create_deployment(
    State(state): State<ApiState>,
    Json(req): Json<DeployRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (environment, deployment_id) = deploy::begin_deploy(
        &state.daemon,
        req.environment.as_deref(),
        &req.version,
        &req.requested_by,
        req.service.as_deref(),
    )
    .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            deployment_id,
            environment,
        }),
    ))
}

async fn create_rollback(
    State(state): State<ApiState>,
    Json(req): Json<RollbackRequest>,
) -> Result<(StatusCode, Json<Accepted>), ApiError> {
    let (environment, deployment_id) =
        deploy::begin_rollback(&state.daemon, req.environment.as_deref(), &req.requested_by)
            .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(Accepted {
            deployment_id,
            environment,
        }),
    ))
}

async fn rollout_command(
    State(state): State<ApiState>,
    Path(command): Path<String>,
    Json(req): Json<RolloutCommandRequest>,
) -> Result<Json<Accepted>, ApiError> {
    use cutover_core::Command;
    let command = match command.as_str() {
        "pause" => Command::Pause,
        "resume" => Command::Resume,
        "promote" => Command::Promote { full: req.full },
        "abort" => Command::Abort {
            reason: req
                .reason
                .clone()
                .unwrap_or_else(|| format!("asked by {}", req.requested_by)),
        },
        other => {
            return Err(ApiError::new(
                StatusCode::NOT_FOUND,
                "not_found",
                format!("no rollout command {other:?}: use pause, resume, promote or abort"),
            ));
        }
    };
    tracing::info!(by = %req.requested_by, ?command, "operator command");
    let (environment, deployment_id) = state
        .daemon
        .command(req.environment.as_deref(), command)
        .await?;
    Ok(Json(Accepted {
        deployment_id,
        environment,
    }))
}
