//! `GET /v1/dora?environment=&since=&fix_window=`: DORA's four keys from
//! the history (`crate::dora`), for one environment or every one. `since`
//! is how long ago (`30d`, the default) or an RFC 3339 time; `fix_window`
//! a duration (`1h`, the default; `0` for none). Any role may read it.

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::extract::Query;
use super::server::{ApiError, ApiState};
use super::wire::DoraReport;
use crate::dora;

/// The query string.
#[derive(Debug, Deserialize)]
pub struct DoraQuery {
    environment: Option<String>,
    since: Option<String>,
    fix_window: Option<String>,
}

/// `GET /v1/dora`.
pub async fn report(
    State(state): State<ApiState>,
    Query(q): Query<DoraQuery>,
) -> Result<Json<DoraReport>, ApiError> {
    // Milliseconds, as the history keeps its times.
    let now = jiff::Timestamp::now();
    let now = jiff::Timestamp::from_millisecond(now.as_millisecond()).unwrap_or(now);
    let since = dora::parse_since(q.since.as_deref().unwrap_or(dora::DEFAULT_SINCE), now)
        .map_err(ApiError::bad_request)?;
    let fix_window = match q.fix_window.as_deref() {
        Some(text) => dora::parse_fix_window(text).map_err(ApiError::bad_request)?,
        None => dora::DEFAULT_FIX_WINDOW,
    };
    let environments: Vec<String> = match q.environment.as_deref() {
        Some(name) => vec![state.daemon.environment(Some(name))?.name().to_owned()],
        None => state
            .daemon
            .environments()
            .map(|e| e.name().to_owned())
            .collect(),
    };
    let report = dora::report(state.daemon.store(), &environments, since, now, fix_window).await?;
    Ok(Json(report))
}
