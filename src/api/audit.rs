//! `GET /v1/audit?since=TIME&after=ID&limit=N` (every role): rows of the
//! audit log with their hashes, oldest first — the newest `limit` (100 by
//! default, at most 1000) written at `since` or later, or with `after`, the
//! `limit` rows after that id (how `cutover audit export` and `verify` page
//! through the whole log).

use axum::Json;
use axum::extract::State;
use serde::Deserialize;

use super::extract::Query;
use super::server::{ApiError, ApiState};
use super::wire::AuditRow;

/// Most rows one call returns.
pub const MAX_ROWS: u32 = 1000;

#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Only rows written at or after this time (RFC 3339).
    since: Option<jiff::Timestamp>,
    /// Only rows with an id above this, oldest first (paging).
    after: Option<i64>,
    /// At most this many rows.
    limit: Option<u32>,
}

/// The handler.
pub async fn list(
    State(state): State<ApiState>,
    Query(q): Query<AuditQuery>,
) -> Result<Json<Vec<AuditRow>>, ApiError> {
    let limit = q.limit.unwrap_or(100).min(MAX_ROWS);
    let store = state.daemon.store();
    let rows = match q.after {
        Some(after) => store.audit(after, q.since, limit).await?,
        None => store.audit_latest(q.since, limit).await?,
    };
    Ok(Json(rows.into_iter().map(AuditRow::from).collect()))
}
