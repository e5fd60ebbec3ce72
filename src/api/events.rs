//! The event feed over the API: `GET /v1/events/feed` (the latest events of
//! both histories, JSON) and `GET /v1/events/stream` (what comes next, as
//! server-sent events), for `cutover events [--follow]` and scripts.
//!
//! The stream resumes from a cursor (`Last-Event-ID`, else `?after=`, else
//! now): each event's SSE `id:` is the cursor after it (see
//! `store/feed.rs`), so a client that reconnects with the last id it got
//! misses nothing and sees nothing twice, across a daemon restart too. It
//! wakes on the store's change counter (deployments' events written by this
//! daemon) and reads the store again every second anyway (environment
//! events, and events another process wrote). A comment line every
//! [`KEEP_ALIVE`] keeps idle connections open through proxies. The stream
//! ends when the daemon stops (`ApiState::stop`), so no open stream holds
//! up a shutdown or a hand-over; the client reconnects to the next daemon.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::time::Duration;

use axum::extract::State;
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use futures_util::stream::{self, Stream};
use serde::Deserialize;

use super::extract::Query;
use super::server::{ApiError, ApiState};
use super::wire::{self, EventFeed};
use crate::store::{FeedCursor, Store};

/// How often an idle stream sends a keep-alive comment.
pub const KEEP_ALIVE: Duration = Duration::from_secs(15);
/// How often the stream reads the store without being woken.
const POLL: Duration = Duration::from_secs(1);
/// Most events read from the store at once.
const BATCH: u32 = 200;
/// Most events `GET /v1/events/feed` returns.
const MAX_FEED: u32 = 1000;

#[derive(Debug, Deserialize)]
pub struct FeedQuery {
    environment: Option<String>,
    limit: Option<u32>,
}

/// `GET /v1/events/feed?environment=E&limit=N`: the latest N (default 20,
/// at most 1000) events, oldest first, and the cursor after them.
pub async fn feed(
    State(state): State<ApiState>,
    Query(q): Query<FeedQuery>,
) -> Result<axum::Json<EventFeed>, ApiError> {
    check_environment(&state, q.environment.as_deref())?;
    let limit = q.limit.unwrap_or(20).min(MAX_FEED);
    let (events, cursor) = state
        .daemon
        .store()
        .feed_latest(q.environment.as_deref(), limit)
        .await?;
    Ok(axum::Json(EventFeed {
        events: events.into_iter().map(wire::FeedEvent::from).collect(),
        cursor: cursor.to_string(),
    }))
}

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    environment: Option<String>,
    after: Option<String>,
}

/// `GET /v1/events/stream?environment=E&after=CURSOR`.
pub async fn stream(
    State(state): State<ApiState>,
    headers: HeaderMap,
    Query(q): Query<StreamQuery>,
) -> Result<Sse<impl Stream<Item = Result<Event, Infallible>>>, ApiError> {
    check_environment(&state, q.environment.as_deref())?;
    let last_id = headers
        .get("last-event-id")
        .map(|v| {
            v.to_str()
                .map(str::to_owned)
                .map_err(|_| ApiError::bad_request("Last-Event-ID is not text"))
        })
        .transpose()?;
    let store = state.daemon.store().clone();
    let cursor = match last_id.or(q.after) {
        Some(text) => text.parse::<FeedCursor>().map_err(ApiError::bad_request)?,
        None => store.feed_latest(None, 0).await?.1,
    };
    let tail = Tail {
        store,
        environment: q.environment,
        cursor,
        pending: VecDeque::new(),
        stop: state.stop.clone(),
    };
    let events = stream::unfold(tail, |mut tail| async move {
        let event = tail.next().await?;
        Some((Ok(event), tail))
    });
    Ok(Sse::new(events).keep_alive(KeepAlive::new().interval(KEEP_ALIVE)))
}

/// Unknown environments are refused by name rather than streaming nothing.
fn check_environment(state: &ApiState, environment: Option<&str>) -> Result<(), ApiError> {
    match environment {
        Some(name) if !state.daemon.environments().any(|e| e.name() == name) => {
            Err(ApiError::bad_request(format!(
                "no environment {name:?} in the configuration; `cutover status` lists them"
            )))
        }
        _ => Ok(()),
    }
}

/// One stream's reading position.
struct Tail {
    store: Store,
    environment: Option<String>,
    cursor: FeedCursor,
    pending: VecDeque<wire::FeedEvent>,
    stop: tokio_util::sync::CancellationToken,
}

impl Tail {
    /// The next event, waiting for it; `None` once the daemon stops.
    async fn next(&mut self) -> Option<Event> {
        loop {
            if self.stop.is_cancelled() {
                return None;
            }
            if let Some(event) = self.pending.pop_front() {
                return Some(sse_event(&event));
            }
            // Subscribe before reading: a change in between is not missed.
            let mut changes = self.store.watch_deployments();
            match self
                .store
                .feed_after(self.cursor, self.environment.as_deref(), BATCH)
                .await
            {
                Ok(events) if !events.is_empty() => {
                    if let Some(last) = events.last() {
                        self.cursor = last.cursor;
                    }
                    self.pending
                        .extend(events.into_iter().map(wire::FeedEvent::from));
                    continue;
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "the event stream cannot read the store; trying again")
                }
            }
            tokio::select! {
                _ = changes.changed() => {}
                () = tokio::time::sleep(POLL) => {}
                () = self.stop.cancelled() => return None,
            }
        }
    }
}

fn sse_event(event: &wire::FeedEvent) -> Event {
    let base = Event::default().id(event.cursor.clone());
    // A wire event always serialises; should it not, the id still moves on.
    match serde_json::to_string(event) {
        Ok(json) => base.data(json),
        Err(e) => base.comment(format!("event {} could not be encoded: {e}", event.cursor)),
    }
}
