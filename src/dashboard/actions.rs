//! What the dashboard's forms do: sign in (an API token, checked by the
//! API's own code, for a session), sign out, and steer a deployment —
//! pause, resume, promote, abort, approve, reject. Every POST must carry the
//! CSRF token (403 without it); an action needs the permission its API route
//! needs (`crate::api::auth::ROUTES`: 403 for a role without it, whatever the
//! form says) and then runs the API's own handler with the session's caller,
//! so the history and the audit log name the token, as the CLI's calls do.

use std::time::Duration;

use axum::extract::{Path, State};
use axum::http::{HeaderMap, Method, StatusCode, header};
use axum::response::{AppendHeaders, IntoResponse, Redirect, Response};
use axum::{Form, Json};
use serde::Deserialize;

use super::pages::{api_error, login_page};
use super::{DashState, SignedIn, csrf, error_page, session};
use crate::api::auth::{self, Credential, resolve_credential};
use crate::api::extract::{Json as JsonBody, Path as ApiPath};
use crate::api::server;
use crate::api::wire::{ApproveRequest, RejectRequest, RolloutCommandRequest};

/// The sign-in form.
#[derive(Debug, Deserialize)]
pub struct LoginForm {
    token: Option<String>,
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /ui/login`: the token for a session cookie.
pub async fn login(
    State(state): State<DashState>,
    headers: HeaderMap,
    Form(form): Form<LoginForm>,
) -> Response {
    let expected = session::cookie(&headers, csrf::LOGIN_COOKIE).unwrap_or_default();
    if let Err(e) = csrf::check(&expected, form.csrf.as_deref()) {
        return login_page(&state, StatusCode::FORBIDDEN, Some(e.to_string()));
    }
    let token = form.token.as_deref().map(str::trim).unwrap_or_default();
    if token.is_empty() {
        return login_page(
            &state,
            StatusCode::UNAUTHORIZED,
            Some("Paste an API token: `cutover token create NAME --role viewer` makes one.".into()),
        );
    }
    let credential = Credential::of(&state.api, token);
    let caller = match resolve_credential(&state.api, &credential).await {
        Ok(caller) => caller,
        Err(e) => {
            tracing::info!(reason = %e.message(), "dashboard sign-in refused");
            return login_page(
                &state,
                StatusCode::UNAUTHORIZED,
                Some(e.message().to_owned()),
            );
        }
    };
    let id = match state.sessions.create(credential, &caller.name) {
        Ok(id) => id,
        Err(e) => {
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("no randomness for a session id: {e}"),
            );
        }
    };
    tracing::info!(token = %caller.name, role = %caller.role, "signed in to the dashboard");
    let cookie = session::set_cookie(session::COOKIE, &id, state.sessions.ttl(), state.tls);
    let clear = session::set_cookie(csrf::LOGIN_COOKIE, "", Duration::ZERO, state.tls);
    (
        StatusCode::SEE_OTHER,
        AppendHeaders([
            (header::SET_COOKIE, cookie),
            (header::SET_COOKIE, clear),
            (header::LOCATION, "/ui/".to_owned()),
        ]),
    )
        .into_response()
}

/// A form that only carries the CSRF token (sign-out).
#[derive(Debug, Deserialize)]
pub struct PlainForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
}

/// `POST /ui/logout`.
pub async fn logout(
    State(state): State<DashState>,
    signed: SignedIn,
    Form(form): Form<PlainForm>,
) -> Response {
    if let Err(e) = csrf::check(&signed.session.csrf, form.csrf.as_deref()) {
        return error_page(StatusCode::FORBIDDEN, &e.to_string());
    }
    state.sessions.remove(&signed.id);
    let clear = session::set_cookie(session::COOKIE, "", Duration::ZERO, state.tls);
    (
        StatusCode::SEE_OTHER,
        [(header::SET_COOKIE, clear)],
        [(header::LOCATION, "/ui/login")],
    )
        .into_response()
}

/// A deployment's action form.
#[derive(Debug, Deserialize)]
pub struct ActionForm {
    #[serde(rename = "_csrf")]
    csrf: Option<String>,
    /// `abort`: why; `reject`: why (required).
    reason: Option<String>,
    /// `approve`: a comment.
    comment: Option<String>,
    /// `promote`: straight to 100 % when present.
    full: Option<String>,
}

/// The API route an action is, for its permission.
fn api_route(action: &str, id: i64) -> Option<String> {
    match action {
        "pause" | "resume" | "promote" | "abort" => Some(format!("/v1/rollout/{action}")),
        "approve" | "reject" => Some(format!("/v1/deployments/{id}/{action}")),
        _ => None,
    }
}

/// `POST /ui/deployments/{id}/{action}`.
pub async fn act(
    State(state): State<DashState>,
    signed: SignedIn,
    Path((id, action)): Path<(String, String)>,
    Form(form): Form<ActionForm>,
) -> Response {
    if let Err(e) = csrf::check(&signed.session.csrf, form.csrf.as_deref()) {
        tracing::warn!(token = %signed.caller.name, %action, "dashboard POST refused: {e}");
        return error_page(StatusCode::FORBIDDEN, &e.to_string());
    }
    let Ok(id) = id.parse::<i64>() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "A deployment's number is a whole number.",
        );
    };
    let Some(route) = api_route(&action, id) else {
        return error_page(
            StatusCode::NOT_FOUND,
            "No such action: pause, resume, promote, abort, approve or reject.",
        );
    };
    let caller = signed.caller;
    let needed = auth::permission_for(&Method::POST, &route);
    if let Err(denied) = caller.require(needed, &format!("{action} deployment {id}")) {
        tracing::warn!(token = %caller.name, role = %caller.role, %action, "dashboard action refused: role lacks permission");
        return error_page(StatusCode::FORBIDDEN, &denied.to_string());
    }
    let store = state.api.daemon.store();
    let deployment = match store.deployment(id).await {
        Ok(Some(d)) => d,
        Ok(None) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("There is no deployment {id}."),
            );
        }
        Err(e) => return api_error(&e.into()),
    };
    let api = state.api.clone();
    let done = match action.as_str() {
        "approve" => server::approve_deployment(
            State(api),
            caller,
            ApiPath(id),
            JsonBody(ApproveRequest {
                comment: form.comment,
                requested_by: None,
            }),
        )
        .await
        .map(|Json(_)| ()),
        "reject" => {
            let reason = form.reason.unwrap_or_default();
            if reason.trim().is_empty() {
                return error_page(
                    StatusCode::BAD_REQUEST,
                    "A rejection needs a reason: write one in the field beside the button.",
                );
            }
            server::reject_deployment(
                State(api),
                caller,
                ApiPath(id),
                JsonBody(RejectRequest {
                    reason,
                    requested_by: None,
                }),
            )
            .await
            .map(|Json(_)| ())
        }
        command => {
            // A rollout command steers the environment's release: only
            // while this deployment is that release.
            let under_way = state
                .api
                .daemon
                .environment(Some(&deployment.environment))
                .map(|env| {
                    env.releases
                        .reports()
                        .iter()
                        .any(|r| r.progress.deployment == id)
                })
                .unwrap_or(false);
            if !under_way {
                return error_page(
                    StatusCode::CONFLICT,
                    &format!(
                        "Deployment {id} is not under way: there is nothing of it to {command}."
                    ),
                );
            }
            server::rollout_command(
                State(api),
                caller,
                ApiPath(command.to_owned()),
                JsonBody(RolloutCommandRequest {
                    environment: Some(deployment.environment.clone()),
                    full: form.full.is_some(),
                    reason: form.reason.filter(|r| !r.trim().is_empty()),
                    requested_by: None,
                }),
            )
            .await
            .map(|Json(_)| ())
        }
    };
    match done {
        Ok(()) => Redirect::to(&format!("/ui/deployments/{id}")).into_response(),
        Err(e) => api_error(&e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::identity::Permission;

    #[test]
    fn each_action_needs_its_api_routes_permission() {
        let need =
            |action| api_route(action, 7).map(|route| auth::permission_for(&Method::POST, &route));
        for action in ["pause", "resume", "promote", "abort"] {
            assert_eq!(need(action), Some(Permission::Deploy), "{action}");
        }
        assert_eq!(need("approve"), Some(Permission::Approve));
        assert_eq!(need("reject"), Some(Permission::Approve));
        assert_eq!(need("switch"), None);
        assert_eq!(need("deploy"), None);
    }
}
