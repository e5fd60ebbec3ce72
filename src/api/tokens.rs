//! `GET/POST /v1/tokens` and `DELETE /v1/tokens/{name}` (admin only): named
//! API tokens. A new token is answered once, in `POST`'s answer, and never
//! again: the store keeps only its SHA-256. Making and revoking a token are
//! audited.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;

use super::auth;
use super::extract::{Json as JsonBody, Path};
use super::server::{ApiError, ApiState};
use super::wire::{ErrorCode, TokenCreateRequest, TokenCreated, TokenInfo};
use crate::identity::{self, Caller, Role};
use crate::store::NewToken;

/// Longest a token may be made to last (about 100 years: longer is "never").
const MAX_EXPIRY: std::time::Duration = std::time::Duration::from_secs(100 * 365 * 24 * 3600);

/// `GET /v1/tokens`: every named token, without its secret.
pub async fn list(State(state): State<ApiState>) -> Result<Json<Vec<TokenInfo>>, ApiError> {
    let now = jiff::Timestamp::now();
    let tokens = state.daemon.store().tokens().await?;
    Ok(Json(
        tokens
            .into_iter()
            .map(|t| TokenInfo::from_store(t, now))
            .collect(),
    ))
}

/// `POST /v1/tokens`: makes a token; the answer holds it, once.
pub async fn create(
    State(state): State<ApiState>,
    caller: Caller,
    JsonBody(req): JsonBody<TokenCreateRequest>,
) -> Result<(StatusCode, Json<TokenCreated>), ApiError> {
    identity::check_name(&req.name).map_err(ApiError::bad_request)?;
    let role = Role::parse(&req.role).ok_or_else(|| {
        ApiError::bad_request(format!(
            "no role {:?}: use viewer, deployer, approver or admin",
            crate::label::printable(&req.role)
        ))
    })?;
    let expires_at = match &req.expires_in {
        None => None,
        Some(text) => {
            let span = humantime::parse_duration(text.trim()).map_err(|e| {
                ApiError::bad_request(format!(
                    "expires {:?} is not a duration ({e}); write e.g. 90d, 12h or 30m",
                    crate::label::printable(text)
                ))
            })?;
            if span.is_zero() || span > MAX_EXPIRY {
                return Err(ApiError::bad_request(
                    "expires must be more than 0 and at most 100 years; leave it out for a token that lasts until revoked",
                ));
            }
            let span = jiff::SignedDuration::try_from(span)
                .map_err(|e| ApiError::bad_request(e.to_string()))?;
            Some(
                jiff::Timestamp::now()
                    .checked_add(span)
                    .map_err(|e| ApiError::bad_request(format!("expires: {e}")))?,
            )
        }
    };
    let token = identity::new_token()
        .map_err(|e| ApiError::internal(format!("cannot make a random token: {e}")))?;
    let record = state
        .daemon
        .store()
        .add_token(NewToken {
            name: &req.name,
            hash: &identity::hash_token(&token),
            role: role.as_str(),
            created_by: &caller.name,
            expires_at,
        })
        .await?;
    tracing::info!(name = %record.name, role = %record.role, by = %caller.name, "API token created");
    auth::record(
        &state,
        caller
            .audit("token_create")
            .target(&record.name)
            .details(serde_json::json!({
                "role": record.role,
                "expires_at": record.expires_at.map(|t| t.to_string()),
            })),
    )
    .await;
    Ok((
        StatusCode::CREATED,
        Json(TokenCreated {
            info: TokenInfo::from_store(record, jiff::Timestamp::now()),
            token,
        }),
    ))
}

/// `DELETE /v1/tokens/{name}`: revokes a token (its row stays, so the name
/// is never reused).
pub async fn revoke(
    State(state): State<ApiState>,
    caller: Caller,
    Path(name): Path<String>,
) -> Result<Json<TokenInfo>, ApiError> {
    let record = state
        .daemon
        .store()
        .revoke_token(&name)
        .await?
        .ok_or_else(|| {
            let hint = if name == identity::BOOTSTRAP_ADMIN {
                "; the token file .cutover/api.token is not revoked this way: replace the file and restart the daemon"
            } else {
                "; `cutover token list` shows the tokens"
            };
            ApiError::new(
                ErrorCode::NotFound,
                format!("no token named {:?}{hint}", crate::label::printable(&name)),
            )
        })?;
    tracing::info!(name = %record.name, by = %caller.name, "API token revoked");
    auth::record(
        &state,
        caller
            .audit("token_revoke")
            .target(&record.name)
            .details(serde_json::json!({ "role": record.role })),
    )
    .await;
    Ok(Json(TokenInfo::from_store(record, jiff::Timestamp::now())))
}
