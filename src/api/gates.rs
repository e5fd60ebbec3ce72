//! The API's routes for what gates a deploy: `GET /v1/releases` (each
//! version, its digests and where it has run), `POST /v1/locks` and
//! `DELETE /v1/locks/{environment}` (an operator's lock of an environment).
//!
//! Who locks is the caller: the API token's name, never a value the client
//! sends. Locks and unlocks are written to the audit log.

use std::collections::BTreeMap;

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::Deserialize;

use super::auth;
use super::extract::{Json as JsonBody, Path, Query};
use super::server::{ApiError, ApiState};
use super::wire::{DeploymentState, LockRequest, OperatorLock, ReleaseRun, ReleaseView, Unlocked};
use crate::identity::Caller;
use crate::label;
use crate::runtime::promotion;

/// How many deployments of each environment `releases` reads.
const HISTORY: u32 = 500;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct ReleasesQuery {
    environment: Option<String>,
}

/// `GET /v1/releases[?environment=NAME]`: every version deployed (to that
/// environment, or any), newest first, with its digests and runs.
pub(crate) async fn releases(
    State(state): State<ApiState>,
    Query(q): Query<ReleasesQuery>,
) -> Result<Json<Vec<ReleaseView>>, ApiError> {
    let daemon = &state.daemon;
    let names: Vec<String> = match &q.environment {
        Some(name) => {
            let env = daemon.environment(Some(name))?;
            vec![env.name().to_owned()]
        }
        None => daemon.environments().map(|e| e.name().to_owned()).collect(),
    };
    // version → (newest deployment id, runs)
    let mut by_version: BTreeMap<String, (i64, Vec<ReleaseRun>)> = BTreeMap::new();
    for env in &names {
        let history = daemon.store().deployments(Some(env), HISTORY).await?;
        let digests: BTreeMap<i64, String> = daemon
            .store()
            .release_digests(Some(env))
            .await?
            .into_iter()
            .map(|d| (d.deployment_id, d.digest))
            .collect();
        let serving = daemon.store().serving(env).await?.map(|s| s.current);
        let mut versions: Vec<&str> = history
            .iter()
            .filter(|d| d.kind == crate::store::DeploymentKind::Deploy)
            .map(|d| d.version.as_str())
            .collect();
        versions.sort_unstable();
        versions.dedup();
        for version in versions {
            let runs = promotion::runs(&history, version);
            let last = runs.last().map(|r| r.deployment_id);
            for run in runs {
                let is_last = Some(run.deployment_id) == last;
                let entry = by_version
                    .entry(version.to_owned())
                    .or_insert_with(|| (0, Vec::new()));
                entry.0 = entry.0.max(run.deployment_id);
                entry.1.push(ReleaseRun {
                    environment: env.clone(),
                    deployment_id: run.deployment_id,
                    digest: digests.get(&run.deployment_id).cloned(),
                    outcome: DeploymentState::from(run.outcome),
                    from: run.from,
                    to: run.to,
                    serving: is_last
                        && run.from.is_some()
                        && run.to.is_none()
                        && serving.as_deref() == Some(version),
                    rolled_back: run.rolled_back,
                });
            }
        }
    }
    let mut list: Vec<(i64, ReleaseView)> = by_version
        .into_iter()
        .map(|(version, (newest, mut runs))| {
            runs.sort_by_key(|r| r.deployment_id);
            let mut digests: Vec<String> = Vec::new();
            for d in runs.iter().filter_map(|r| r.digest.clone()) {
                if !digests.contains(&d) {
                    digests.push(d);
                }
            }
            (
                newest,
                ReleaseView {
                    version,
                    digests,
                    runs,
                },
            )
        })
        .collect();
    list.sort_by_key(|(newest, _)| std::cmp::Reverse(*newest));
    Ok(Json(list.into_iter().map(|(_, v)| v).collect()))
}

/// `POST /v1/locks`: lock an environment against deploys (replacing a lock
/// that holds). Rollback and abort stay allowed.
pub(crate) async fn lock(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(req): JsonBody<LockRequest>,
) -> Result<(StatusCode, Json<OperatorLock>), ApiError> {
    let requested_by = caller.name.clone();
    let env = state.daemon.environment(req.environment.as_deref())?;
    let reason = label::clean_text(req.reason.trim());
    if reason.is_empty() {
        return Err(ApiError::bad_request(
            "a lock needs a reason: say why, e.g. --reason \"database maintenance\"",
        ));
    }
    let until = match &req.until {
        Some(text) => {
            Some(label::parse_until(text, jiff::Timestamp::now()).map_err(ApiError::bad_request)?)
        }
        None => None,
    };
    let lock = state
        .daemon
        .store()
        .operator_lock(env.name(), &reason, &requested_by, until)
        .await?;
    tracing::info!(environment = env.name(), by = ?requested_by, reason = ?reason, "environment locked");
    auth::record(
        &state,
        caller
            .audit("lock")
            .environment(env.name())
            .details(serde_json::json!({ "reason": reason, "until": req.until })),
    )
    .await;
    Ok((StatusCode::CREATED, Json(lock.into())))
}

/// `DELETE /v1/locks/{environment}`: remove the lock (a lock that does not
/// hold is not an error: `removed` is absent).
pub(crate) async fn unlock(
    State(state): State<ApiState>,
    caller: Caller,
    Path(environment): Path<String>,
) -> Result<Json<Unlocked>, ApiError> {
    let requested_by = caller.name.clone();
    let env = state.daemon.environment(Some(&environment))?;
    let removed = state.daemon.store().operator_unlock(env.name()).await?;
    tracing::info!(environment = env.name(), by = ?requested_by, "environment unlocked");
    auth::record(&state, caller.audit("unlock").environment(env.name())).await;
    Ok(Json(Unlocked {
        environment: env.name().to_owned(),
        removed: removed.map(Into::into),
    }))
}
