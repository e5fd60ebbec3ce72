//! `POST /v1/daemon/upgrade`, `/reload` and `/down`: the daemon's own life
//! (`cutover upgrade`, `cutover reload`, `cutover down`). An upgrade or a
//! reload answers once the new daemon serves (or failed, the old one still
//! serving); `down` answers at once and the daemon then stops its instances
//! and exits. Each (and its outcome) is audited.

use std::sync::{Arc, OnceLock};

use axum::Json;
use axum::extract::State;

use super::auth;
use super::extract::Path;
use super::server::{ApiError, ApiState};
use super::wire::{DaemonAnswer, ErrorCode};
use crate::daemon::lifecycle::{HandoverReport, Lifecycle, ReloadError};
use crate::identity::Caller;

/// Where the handlers find the daemon's lifecycle (set once it serves).
pub type LifecycleSlot = Arc<OnceLock<Arc<Lifecycle>>>;

/// The handler.
pub async fn action(
    State(state): State<ApiState>,
    caller: Caller,
    Path(action): Path<String>,
) -> Result<Json<DaemonAnswer>, ApiError> {
    let lifecycle = state.lifecycle.get().cloned().ok_or_else(|| {
        ApiError::new(
            ErrorCode::Refused,
            "this daemon is still starting; try again in a moment",
        )
    })?;
    let audit = |outcome: &str| {
        caller
            .audit(&format!("daemon_{action}"))
            .details(serde_json::json!({ "outcome": outcome }))
    };
    let answer = match action.as_str() {
        "upgrade" => {
            let done = lifecycle.upgrade().await;
            let outcome = if done.is_ok() { "upgraded" } else { "failed" };
            auth::record(&state, audit(outcome)).await;
            done.map(|r| answer("upgraded", r))
                .map_err(|e| ApiError::internal(format!("{e}; the running daemon keeps serving")))?
        }
        "reload" => {
            let done = lifecycle.reload().await;
            let outcome = if done.is_ok() { "reloaded" } else { "failed" };
            auth::record(&state, audit(outcome)).await;
            done.map(|r| answer("reloaded", r)).map_err(|e| match e {
                ReloadError::Config(text) => ApiError::bad_request(format!(
                    "the config is not valid; the running daemon was left as it is:\n{text}"
                )),
                ReloadError::Handover(e) => ApiError::internal(format!(
                    "{e}; the running daemon keeps serving with the config it has"
                )),
            })?
        }
        "down" => {
            auth::record(&state, audit("stopping")).await;
            lifecycle.request_exit(true);
            DaemonAnswer {
                outcome: "stopping".into(),
                pid: std::process::id(),
                took_ms: 0,
                pending: Vec::new(),
            }
        }
        other => {
            return Err(ApiError::not_found(format!(
                "no daemon action {:?}; there are upgrade, reload and down",
                crate::label::printable(other)
            )));
        }
    };
    Ok(Json(answer))
}

fn answer(outcome: &str, r: HandoverReport) -> DaemonAnswer {
    DaemonAnswer {
        outcome: outcome.into(),
        pid: r.pid,
        took_ms: u64::try_from(r.took.as_millis()).unwrap_or(u64::MAX),
        pending: r.pending,
    }
}
