//! `GET /ui/deployments/{id}/live?after=EVENT`: a deployment's page's live
//! figures as server-sent events, for the page's script (cookie-signed-in,
//! any role). Each message is a [`LiveView`]: the state, each service's
//! step, split and per-track figures (what `status` shows), and the events
//! after the last one sent. Like `/v1/events/stream` it wakes on the
//! store's change counter and reads again every second anyway (the figures
//! move without events); it ends after the deployment ends, when the
//! session ends or its token is revoked, or when the daemon stops.

use std::convert::Infallible;
use std::time::Duration;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::sse::{Event, KeepAlive, Sse};
use axum::response::{IntoResponse, Response};
use futures_util::stream;
use serde::{Deserialize, Serialize};

use super::pages::{buttons, progress_of};
use super::{DashState, SignedIn, error_page};
use crate::api::auth::resolve_credential;
use crate::api::server::status;
use crate::api::wire::{self, TrackNow};

/// How often the figures are sent while nothing else happens.
const TICK: Duration = Duration::from_secs(1);

/// One message.
#[derive(Debug, Serialize)]
pub struct LiveView {
    /// `running`, `awaiting_approval`, `succeeded`, `rolled_back`, …
    pub state: &'static str,
    /// It ended: the last message.
    pub finished: bool,
    /// Why it ended, if said.
    pub reason: Option<String>,
    /// The release's phase while under way.
    pub phase: Option<String>,
    /// Paused by an operator.
    pub paused: bool,
    /// Which buttons the viewer's role may use now.
    pub buttons: LiveButtons,
    /// Each service of the rollout.
    pub services: Vec<LiveService>,
    /// Events after the last one sent, oldest first.
    pub events: Vec<LiveEvent>,
}

/// The buttons to show.
#[derive(Debug, Serialize)]
pub struct LiveButtons {
    pub pause: bool,
    pub resume: bool,
    pub promote: bool,
    pub abort: bool,
    pub decide: bool,
}

/// One service's step, split and figures.
#[derive(Debug, Serialize)]
pub struct LiveService {
    pub service: String,
    pub stage: String,
    pub step: Option<usize>,
    pub steps: usize,
    pub canary_percent: f64,
    pub step_ends_at: Option<jiff::Timestamp>,
    pub paused_left_ms: Option<u64>,
    pub stable: Option<TrackNow>,
    pub canary: Option<TrackNow>,
}

/// One event of the timeline.
#[derive(Debug, Serialize)]
pub struct LiveEvent {
    pub id: i64,
    pub at: jiff::Timestamp,
    pub kind: String,
    pub message: String,
}

#[derive(Debug, Deserialize)]
pub struct LiveQuery {
    after: Option<i64>,
}

struct Follow {
    state: DashState,
    signed: SignedIn,
    id: i64,
    after: i64,
    done: bool,
}

/// `GET /ui/deployments/{id}/live`.
pub async fn stream(
    State(state): State<DashState>,
    signed: SignedIn,
    Path(id): Path<String>,
    Query(q): Query<LiveQuery>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "A deployment's number is a whole number.",
        );
    };
    let follow = Follow {
        state,
        signed,
        id,
        after: q.after.unwrap_or(0),
        done: false,
    };
    let events = stream::unfold((follow, true), |(mut f, first)| async move {
        if f.done {
            return None;
        }
        if !first {
            let mut changes = f.state.api.daemon.store().watch_deployments();
            changes.mark_unchanged();
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(TICK) => {}
                () = f.state.api.stop.cancelled() => return None,
            }
        }
        let event = match view(&mut f).await {
            Ok(v) => match serde_json::to_string(&v) {
                Ok(json) => Event::default().event("live").data(json),
                Err(e) => Event::default().comment(format!("cannot encode: {e}")),
            },
            Err(message) => {
                f.done = true;
                Event::default().event("gone").data(message)
            }
        };
        Some((Ok::<_, Infallible>(event), (f, false)))
    });
    Sse::new(events)
        .keep_alive(KeepAlive::new().interval(Duration::from_secs(15)))
        .into_response()
}

/// What is true now; `Err` when the deployment cannot be read.
async fn view(f: &mut Follow) -> Result<LiveView, String> {
    // The session and its token are checked at every message too: signing
    // out or revoking the token ends the stream.
    let Some(session) = f.state.sessions.get(&f.signed.id) else {
        return Err("the session ended: sign in again".to_owned());
    };
    f.signed.caller = resolve_credential(&f.state.api, &session.credential)
        .await
        .map_err(|e| e.message().to_owned())?;
    let store = f.state.api.daemon.store();
    let deployment = match store.deployment(f.id).await {
        Ok(Some(d)) => wire::Deployment::from(d),
        Ok(None) => return Err(format!("no deployment {}", f.id)),
        Err(e) => return Err(format!("cannot read the state store: {e}")),
    };
    let events = store
        .events(f.id)
        .await
        .map_err(|e| format!("cannot read the state store: {e}"))?;
    let status = status(State(f.state.api.clone()))
        .await
        .map_err(|e| e.message().to_owned())?
        .0;
    let finished = deployment.finished_at.is_some();
    let progress = progress_of(&status, f.id);
    let b = buttons(&f.signed.caller, !finished, progress.map(|(_, p)| p));
    let services = progress
        .map(|(env, p)| {
            p.services
                .iter()
                .map(|s| {
                    let now = env
                        .traffic
                        .iter()
                        .find(|t| t.service == s.service)
                        .and_then(|t| t.now.clone());
                    LiveService {
                        service: s.service.clone(),
                        stage: s.stage.clone(),
                        step: s.step,
                        steps: s.steps,
                        canary_percent: s.canary_percent,
                        step_ends_at: s.step_ends_at,
                        paused_left_ms: s.paused_left_ms,
                        stable: now.as_ref().map(|n| n.stable.clone()),
                        canary: now.map(|n| n.canary),
                    }
                })
                .collect()
        })
        .unwrap_or_default();
    let new: Vec<LiveEvent> = events
        .into_iter()
        .filter(|e| e.id > f.after)
        .map(|e| LiveEvent {
            id: e.id,
            at: e.at,
            kind: e.kind,
            message: e.message,
        })
        .collect();
    if let Some(last) = new.last() {
        f.after = last.id;
    }
    f.done = finished;
    Ok(LiveView {
        state: deployment.state.as_str(),
        finished,
        reason: deployment.reason,
        phase: progress.map(|(_, p)| p.phase.clone()),
        paused: progress.is_some_and(|(_, p)| p.paused),
        buttons: LiveButtons {
            pause: b.pause,
            resume: b.resume,
            promote: b.promote,
            abort: b.abort,
            decide: b.decide,
        },
        services,
        events: new,
    })
}
