//! Who may call which route: the bearer token is resolved to a
//! [`Caller`] (the token file is the bootstrap admin, compared in constant
//! time; a named token is looked up by its SHA-256), refused with 401 when
//! missing, wrong, revoked or expired (saying which and what to do), then
//! checked against [`ROUTES`], the one table of what each route needs; a
//! role without that permission gets 403 `forbidden`. The caller goes into
//! the request's extensions, where handlers take it as an extractor
//! (`caller: Caller`), for the history, the audit log, and checks inside a
//! handler (`caller.require(Permission::Admin, "…")?`).

use axum::extract::{FromRequestParts, OriginalUri, Request, State};
use axum::http::request::Parts;
use axum::http::{Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::server::{ApiError, ApiState};
use super::token;
use super::wire::ErrorCode;
use crate::identity::{self, Caller, Denied, Permission};
use crate::store::{AuditEntry, needs_touch};

/// What each route needs: method, path (a `{name}` segment matches any one
/// segment), permission. A route missing here needs [`Permission::Read`]
/// for `GET` and [`Permission::Admin`] otherwise (closed by default).
pub const ROUTES: &[(&str, &str, Permission)] = &[
    // Reads: every role.
    ("GET", "/v1/status", Permission::Read),
    ("GET", "/v1/deployments", Permission::Read),
    ("GET", "/v1/deployments/{id}", Permission::Read),
    ("GET", "/v1/logs", Permission::Read),
    ("GET", "/v1/events", Permission::Read),
    ("GET", "/v1/events/feed", Permission::Read),
    ("GET", "/v1/events/stream", Permission::Read),
    ("GET", "/v1/audit", Permission::Read),
    ("GET", "/v1/releases", Permission::Read),
    ("GET", "/v1/locks", Permission::Read),
    ("GET", "/v1/dora", Permission::Read),
    ("GET", "/v1/cluster", Permission::Read),
    ("GET", "/metrics", Permission::Read),
    // Changing a release: deployer.
    ("POST", "/v1/deployments", Permission::Deploy),
    ("POST", "/v1/rollback", Permission::Deploy),
    // pause, resume, promote, abort, switch
    ("POST", "/v1/rollout/{command}", Permission::Deploy),
    // The second person: approver.
    ("POST", "/v1/deployments/{id}/approve", Permission::Approve),
    ("POST", "/v1/deployments/{id}/reject", Permission::Approve),
    // Admin.
    ("GET", "/v1/tokens", Permission::Admin),
    ("POST", "/v1/tokens", Permission::Admin),
    ("DELETE", "/v1/tokens/{name}", Permission::Admin),
    ("POST", "/v1/locks", Permission::Admin),
    ("DELETE", "/v1/locks/{environment}", Permission::Admin),
    ("POST", "/v1/daemon/{action}", Permission::Admin),
];

/// What `method` on `path` needs ([`ROUTES`]).
pub fn permission_for(method: &Method, path: &str) -> Permission {
    let segments: Vec<&str> = path.trim_end_matches('/').split('/').collect();
    let found = ROUTES.iter().find(|(m, template, _)| {
        let parts: Vec<&str> = template.split('/').collect();
        *m == method.as_str()
            && parts.len() == segments.len()
            && parts
                .iter()
                .zip(&segments)
                .all(|(t, s)| t == s || (t.starts_with('{') && !s.is_empty()))
    });
    match found {
        Some((_, _, permission)) => *permission,
        None if method == Method::GET || method == Method::HEAD => Permission::Read,
        None => Permission::Admin,
    }
}

/// The middleware on every route that needs a token.
pub async fn require_token(
    State(state): State<ApiState>,
    mut req: Request,
    next: Next,
) -> Response {
    let presented = req
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .map(str::trim)
        .filter(|t| !t.is_empty())
        .map(str::to_owned);
    let caller = match presented {
        None => Err(ApiError::new(
            ErrorCode::Unauthorized,
            "missing API token (Authorization: Bearer …): set CUTOVER_TOKEN, or run the CLI where it can read \
             .cutover/api.token",
        )),
        Some(t) => resolve(&state, &t).await,
    };
    let caller = match caller {
        Ok(caller) => caller,
        Err(e) => return e.into_response(),
    };
    // Inside `/v1`'s router the URI has lost its prefix; the original has it.
    let path = req
        .extensions()
        .get::<OriginalUri>()
        .map_or_else(|| req.uri().path().to_owned(), |u| u.0.path().to_owned());
    let what = format!("{} {path}", req.method());
    let needed = permission_for(req.method(), &path);
    if let Err(denied) = caller.require(needed, &what) {
        tracing::warn!(caller = %caller.name, role = %caller.role, %what, "refused: role lacks permission");
        return ApiError::from(denied).into_response();
    }
    if let Some(refused) = super::cluster::refuse_on_follower(&state, req.method(), &path).await {
        return refused.into_response();
    }
    req.extensions_mut().insert(caller);
    next.run(req).await
}

/// What a presented token is, kept without the token itself (the
/// dashboard's sessions keep this and resolve it again on every request, so
/// a revoked or expired token ends its sessions at once).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Credential {
    /// The token file: the bootstrap admin.
    Bootstrap,
    /// A named token (or a wrong one), by its SHA-256.
    Named {
        /// [`identity::hash_token`] of the token.
        hash: String,
    },
}

impl Credential {
    /// What `presented` is.
    pub fn of(state: &ApiState, presented: &str) -> Credential {
        if token::matches(presented, &state.token) {
            Credential::Bootstrap
        } else {
            Credential::Named {
                hash: identity::hash_token(presented),
            }
        }
    }
}

/// The caller `token` stands for, or the 401 that says why none.
async fn resolve(state: &ApiState, presented: &str) -> Result<Caller, ApiError> {
    resolve_credential(state, &Credential::of(state, presented)).await
}

/// The caller `credential` stands for now, or the 401 that says why none
/// (a wrong, revoked or expired token).
pub async fn resolve_credential(
    state: &ApiState,
    credential: &Credential,
) -> Result<Caller, ApiError> {
    let hash = match credential {
        Credential::Bootstrap => return Ok(Caller::bootstrap_admin()),
        Credential::Named { hash } => hash,
    };
    let store = state.daemon.store();
    let record = store
        .token_by_hash(hash)
        .await?
        .ok_or_else(|| {
            ApiError::new(
                ErrorCode::Unauthorized,
                "wrong API token: it is neither .cutover/api.token nor a named token (`cutover token list` \
                 shows them); check CUTOVER_TOKEN",
            )
        })?;
    if let Some(revoked) = record.revoked_at {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            format!(
                "API token {:?} was revoked at {revoked:.0}; ask an admin for a new one (`cutover token create`)",
                record.name
            ),
        ));
    }
    let now = jiff::Timestamp::now();
    if let Some(expires) = record.expires_at
        && expires <= now
    {
        return Err(ApiError::new(
            ErrorCode::Unauthorized,
            format!(
                "API token {:?} expired at {expires:.0}; ask an admin for a new one (`cutover token create`)",
                record.name
            ),
        ));
    }
    let role = identity::Role::parse(&record.role).ok_or_else(|| {
        ApiError::internal(format!(
            "token {:?} has an unknown role {:?} in the state store",
            record.name, record.role
        ))
    })?;
    if needs_touch(record.last_used_at, now)
        && let Err(e) = store.touch_token(&record.name).await
    {
        tracing::warn!(error = %e, token = %record.name, "cannot note the token's last use");
    }
    Ok(Caller {
        name: record.name,
        role,
    })
}

impl From<Denied> for ApiError {
    fn from(denied: Denied) -> Self {
        ApiError::new(ErrorCode::Forbidden, denied.to_string())
    }
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parts.extensions.get::<Caller>().cloned().ok_or_else(|| {
            ApiError::internal("this route has no caller: it is missing the token check (a bug)")
        })
    }
}

/// Appends `entry` to the audit log; a failure is logged (the change it
/// records was made already) and does not fail the request.
pub async fn record(state: &ApiState, entry: AuditEntry) {
    let action = entry.action.clone();
    if let Err(e) = state.daemon.store().append_audit(entry).await {
        tracing::error!(error = %e, %action, "cannot append to the audit log");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_route_needs_its_permission() {
        let cases = [
            ("GET", "/v1/status", Permission::Read),
            ("GET", "/v1/deployments/12", Permission::Read),
            ("GET", "/v1/audit", Permission::Read),
            ("GET", "/metrics", Permission::Read),
            ("POST", "/v1/deployments", Permission::Deploy),
            ("POST", "/v1/rollback", Permission::Deploy),
            ("POST", "/v1/rollout/switch", Permission::Deploy),
            ("POST", "/v1/rollout/abort", Permission::Deploy),
            ("POST", "/v1/deployments/12/approve", Permission::Approve),
            ("POST", "/v1/deployments/12/reject", Permission::Approve),
            ("GET", "/v1/tokens", Permission::Admin),
            ("POST", "/v1/tokens", Permission::Admin),
            ("DELETE", "/v1/tokens/ci", Permission::Admin),
            ("POST", "/v1/locks", Permission::Admin),
            ("DELETE", "/v1/locks/production", Permission::Admin),
            ("POST", "/v1/daemon/upgrade", Permission::Admin),
            // Not in the table: reads are open to every role, the rest closed.
            ("GET", "/v1/something-new", Permission::Read),
            ("POST", "/v1/something-new", Permission::Admin),
            ("DELETE", "/v1/tokens", Permission::Admin),
            (
                "POST",
                "/v1/deployments/12/approve/extra",
                Permission::Admin,
            ),
        ];
        for (method, path, permission) in cases {
            let method = Method::from_bytes(method.as_bytes()).expect("method");
            assert_eq!(permission_for(&method, path), permission, "{method} {path}");
        }
    }
}
