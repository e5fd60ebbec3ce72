//! The web dashboard the daemon serves under `/ui`: sign-in with an API
//! token (`session.rs`), CSRF tokens on every form (`csrf.rs`), the pages
//! (`pages.rs`, askama templates in `templates/dashboard/`), the buttons that
//! steer a rollout (`actions.rs`), the live figures of a rollout as
//! server-sent events (`live.rs`) and the stylesheet and script built into
//! the binary (`assets.rs`).
//!
//! Every page reads through the same code the API's handlers run, and every
//! action calls the API's handler with the session's caller, so roles, four
//! eyes, the history and the audit log are the API's. Every answer carries a
//! strict Content-Security-Policy (no inline script or style), `nosniff`,
//! `Referrer-Policy: same-origin` and `no-store`. Served on the API's
//! listener (`[server] dashboard = true`, the default) or on its own
//! (`dashboard_listen`); see docs/dashboard.md.

pub mod actions;
pub mod assets;
pub mod csrf;
pub mod live;
pub mod pages;
pub mod session;

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::extract::FromRequestParts;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware;
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};

use crate::api::auth::resolve_credential;
use crate::api::server::ApiState;
use crate::identity::Caller;
use session::{Session, Sessions};

/// The Content-Security-Policy of every answer.
pub const CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; \
                       connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'";

/// How the dashboard is served.
#[derive(Debug, Clone, Copy)]
pub struct Settings {
    /// The listener speaks TLS: the cookie gets `Secure`.
    pub tls: bool,
    /// How long a session lasts.
    pub session_ttl: Duration,
}

/// What every dashboard handler can reach.
#[derive(Clone)]
pub struct DashState {
    /// The API's state: the daemon, the token file's token, `stop`.
    pub api: ApiState,
    /// The signed-in browsers.
    pub sessions: Arc<Sessions>,
    /// Whether cookies get `Secure`.
    pub tls: bool,
}

/// The dashboard's routes (all under `/ui`, plus `/` sending a browser
/// there), with the security headers on every answer.
pub fn router(api: ApiState, settings: Settings) -> Router {
    let state = DashState {
        api,
        sessions: Arc::new(Sessions::new(settings.session_ttl)),
        tls: settings.tls,
    };
    Router::new()
        .route("/", get(|| async { Redirect::to("/ui/") }))
        .route("/ui", get(|| async { Redirect::to("/ui/") }))
        .route("/ui/", get(pages::overview))
        .route("/ui/login", get(pages::login_form).post(actions::login))
        .route("/ui/logout", post(actions::logout))
        .route("/ui/history", get(pages::history))
        .route("/ui/dora", get(pages::dora))
        .route("/ui/audit", get(pages::audit))
        .route("/ui/backups", get(pages::backups))
        .route("/ui/releases", get(pages::releases))
        .route("/ui/deployments/{id}", get(pages::deployment))
        .route("/ui/deployments/{id}/live", get(live::stream))
        .route("/ui/deployments/{id}/{action}", post(actions::act))
        .route("/ui/assets/{name}", get(assets::serve))
        .route("/ui/{*rest}", get(not_found).post(not_found))
        .layer(middleware::map_response(security_headers))
        .with_state(state)
}

/// The headers every answer carries.
async fn security_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(CSP),
    );
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    response
}

async fn not_found() -> Response {
    error_page(
        StatusCode::NOT_FOUND,
        "There is no such page. The overview is at /ui/.",
    )
}

/// A page that says what went wrong, with `status`.
pub fn error_page(status: StatusCode, message: &str) -> Response {
    pages::render(
        status,
        &pages::ErrorPage {
            status: status.as_u16(),
            reason: status.canonical_reason().unwrap_or("error"),
            message,
            css: assets::css_url(),
        },
    )
}

/// A signed-in browser: its session and who its token is now.
pub struct SignedIn {
    /// The session's id (its cookie).
    pub id: String,
    /// The session.
    pub session: Session,
    /// Who the token is now (role changes and revocations apply at once).
    pub caller: Caller,
}

impl FromRequestParts<DashState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &DashState) -> Result<Self, Response> {
        let to_login = || {
            if parts.method == axum::http::Method::GET {
                Redirect::to("/ui/login").into_response()
            } else {
                error_page(
                    StatusCode::UNAUTHORIZED,
                    "You are not signed in (or your session ended): sign in again at /ui/login.",
                )
            }
        };
        let Some(id) = session::cookie(&parts.headers, session::COOKIE) else {
            return Err(to_login());
        };
        let Some(session) = state.sessions.get(&id) else {
            return Err(to_login());
        };
        match resolve_credential(&state.api, &session.credential).await {
            Ok(caller) => Ok(SignedIn {
                id,
                session,
                caller,
            }),
            Err(e) => {
                state.sessions.remove(&id);
                tracing::info!(token = %session.name, reason = %e.message(), "dashboard session ended: its token no longer signs in");
                Err(error_page(
                    StatusCode::UNAUTHORIZED,
                    &format!(
                        "Your session ended: {} Sign in again at /ui/login.",
                        e.message()
                    ),
                ))
            }
        }
    }
}
