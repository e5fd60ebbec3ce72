//! The dashboard's pages, server-rendered with askama (templates in
//! `templates/dashboard/`): sign-in, overview, a deployment (its timeline,
//! and while it runs the traffic, step and figures, and the buttons its
//! role allows), history, DORA, the audit log (with `audit verify`'s
//! result), backups and releases. Each reads what the API's handler for the
//! same question reads; the page for a role shows only the buttons it may
//! use (the actions check again: `actions.rs`).

use askama::Template;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use serde::Deserialize;

use super::{DashState, SignedIn, assets, csrf, error_page, session};
use crate::api::server::{ApiError, status};
use crate::api::wire::{self, EnvironmentStatus, ReleaseProgressView, TrackNow};
use crate::identity::{Caller, Permission};

/// `template` as HTML with `status`, or a 500 that says it could not be
/// rendered.
pub fn render<T: Template>(status: StatusCode, template: &T) -> Response {
    match template.render() {
        Ok(html) => (status, Html(html)).into_response(),
        Err(e) => {
            tracing::error!(error = %e, "a dashboard page failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("the page failed to render: {e}; this is a bug, please report it\n"),
            )
                .into_response()
        }
    }
}

fn page<T: Template>(template: &T) -> Response {
    render(StatusCode::OK, template)
}

/// An API error as a page with its status.
pub fn api_error(e: &ApiError) -> Response {
    error_page(e.status(), e.message())
}

/// A time, as `<time datetime=…>` shows it (the script turns it into the
/// viewer's zone).
#[derive(Debug, Clone)]
pub struct When {
    /// RFC 3339, UTC.
    pub iso: String,
    /// For people, UTC.
    pub text: String,
}

impl From<jiff::Timestamp> for When {
    fn from(t: jiff::Timestamp) -> Self {
        When {
            iso: t.to_string(),
            text: t.strftime("%Y-%m-%d %H:%M:%S UTC").to_string(),
        }
    }
}

/// What the frame of every signed-in page shows.
pub struct Chrome {
    /// The page's title.
    pub title: String,
    /// The nav entry to mark.
    pub nav: &'static str,
    /// The token's name.
    pub who: String,
    /// Its role.
    pub role: &'static str,
    /// The session's CSRF token, for the forms.
    pub csrf: String,
    /// The stylesheet.
    pub css: String,
    /// The script.
    pub js: String,
}

impl Chrome {
    fn new(signed: &SignedIn, title: impl Into<String>, nav: &'static str) -> Chrome {
        Chrome {
            title: title.into(),
            nav,
            who: signed.caller.name.clone(),
            role: signed.caller.role.as_str(),
            csrf: signed.session.csrf.clone(),
            css: assets::css_url(),
            js: assets::js_url(),
        }
    }
}

/// The error page.
#[derive(Template)]
#[template(path = "dashboard/error.html")]
pub struct ErrorPage<'a> {
    pub status: u16,
    pub reason: &'a str,
    pub message: &'a str,
    pub css: String,
}

#[derive(Template)]
#[template(path = "dashboard/login.html")]
struct LoginPage {
    css: String,
    js: String,
    csrf: String,
    error: Option<String>,
}

/// The sign-in page with a fresh double-submit CSRF token, and `error`.
pub fn login_page(state: &DashState, status: StatusCode, error: Option<String>) -> Response {
    let token = match session::random_hex() {
        Ok(t) => t,
        Err(e) => {
            return error_page(
                StatusCode::INTERNAL_SERVER_ERROR,
                &format!("no randomness for a CSRF token: {e}"),
            );
        }
    };
    let cookie = session::set_cookie(
        csrf::LOGIN_COOKIE,
        &token,
        std::time::Duration::from_secs(3600),
        state.tls,
    );
    let mut response = render(
        status,
        &LoginPage {
            css: assets::css_url(),
            js: assets::js_url(),
            csrf: token,
            error,
        },
    );
    if let Ok(cookie) = HeaderValue::from_str(&cookie) {
        response.headers_mut().append(header::SET_COOKIE, cookie);
    }
    response
}

/// `GET /ui/login`.
pub async fn login_form(State(state): State<DashState>) -> Response {
    login_page(&state, StatusCode::OK, None)
}

/// One environment on the overview.
struct EnvView {
    status: EnvironmentStatus,
    since: Option<When>,
    deployed_by: Option<String>,
    deployed_in: Option<i64>,
    lock_since: Option<When>,
    instances: Vec<InstanceRow>,
    traffic: Vec<TrafficRow>,
}

struct InstanceRow {
    id: String,
    service: String,
    version: String,
    state: String,
    track: String,
    health: &'static str,
}

/// One service's split and figures.
#[derive(Clone)]
pub struct TrafficRow {
    service: String,
    stable: f64,
    canary: f64,
    stable_versions: String,
    canary_versions: String,
    now: Option<Figures>,
}

/// Per-track figures, formatted.
#[derive(Clone)]
pub struct Figures {
    stable: TrackFigures,
    canary: TrackFigures,
    window: u64,
}

#[derive(Clone)]
pub struct TrackFigures {
    rps: String,
    errors: String,
    p95: String,
}

impl From<&TrackNow> for TrackFigures {
    fn from(t: &TrackNow) -> Self {
        TrackFigures {
            rps: format!("{:.1}", t.requests_per_second),
            errors: t
                .error_rate
                .map_or_else(|| "–".to_owned(), |r| format!("{:.2} %", r * 100.0)),
            p95: t
                .p95_ms
                .map_or_else(|| "–".to_owned(), |p| format!("{p:.0} ms")),
        }
    }
}

fn traffic_rows(env: &EnvironmentStatus) -> Vec<TrafficRow> {
    env.traffic
        .iter()
        .map(|t| TrafficRow {
            service: t.service.clone(),
            stable: t.stable_percent,
            canary: t.canary_percent,
            stable_versions: t.stable_versions.join(", "),
            canary_versions: t.canary_versions.join(", "),
            now: t.now.as_ref().map(|n| Figures {
                stable: TrackFigures::from(&n.stable),
                canary: TrackFigures::from(&n.canary),
                window: n.window_seconds,
            }),
        })
        .collect()
}

#[derive(Template)]
#[template(path = "dashboard/overview.html")]
struct OverviewPage {
    chrome: Chrome,
    app: String,
    environments: Vec<EnvView>,
}

/// `GET /ui/`.
pub async fn overview(State(state): State<DashState>, signed: SignedIn) -> Response {
    let status = match status(State(state.api.clone())).await {
        Ok(axum::Json(s)) => s,
        Err(e) => return api_error(&e),
    };
    let store = state.api.daemon.store();
    let mut environments = Vec::new();
    for env in status.environments {
        // Who deployed what serves: the newest deployment that brought it.
        let history = match store.deployments(Some(&env.name), 50).await {
            Ok(h) => h,
            Err(e) => return api_error(&ApiError::from(e)),
        };
        let brought = env.serving.as_ref().and_then(|serving| {
            history.iter().find(|d| {
                &d.version == serving && d.state == crate::store::DeploymentState::Succeeded
            })
        });
        let instances = env
            .instances
            .iter()
            .map(|i| InstanceRow {
                id: i.id.clone(),
                service: i.service.clone(),
                version: i.version.clone(),
                state: i.state.clone(),
                track: i.track.clone().unwrap_or_default(),
                health: match i.healthy {
                    Some(true) => "healthy",
                    Some(false) => "unhealthy",
                    None => "unknown",
                },
            })
            .collect();
        environments.push(EnvView {
            since: env.since.map(When::from),
            deployed_by: brought.map(|d| d.requested_by.clone()),
            deployed_in: brought.map(|d| d.id),
            lock_since: env.lock.as_ref().map(|l| When::from(l.since)),
            traffic: traffic_rows(&env),
            instances,
            status: env,
        });
    }
    page(&OverviewPage {
        chrome: Chrome::new(&signed, "Overview", "overview"),
        app: status.app,
        environments,
    })
}

/// One row of a timeline.
pub struct EventRow {
    id: i64,
    at: When,
    kind: String,
    message: String,
}

/// An analysis verdict and the figures it judged.
pub struct Verdict {
    at: When,
    message: String,
    figures: Option<String>,
}

/// "canary: 120 requests, 0 errors, p95 8 ms · stable: …" from an analysis
/// event's `figures`, if it has them.
fn figures_text(data: &serde_json::Value) -> Option<String> {
    let figures = data.get("figures")?;
    let track = |name: &str| -> Option<String> {
        let t = figures.get(name)?;
        let requests = t.get("requests")?.as_u64()?;
        let errors = t
            .get("errors")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        let p95 = t
            .get("p95_ms")
            .and_then(serde_json::Value::as_f64)
            .map_or_else(|| "–".to_owned(), |p| format!("{p:.0} ms"));
        Some(format!(
            "{name}: {requests} requests, {errors} errors, p95 {p95}"
        ))
    };
    let parts: Vec<String> = ["canary", "stable"].into_iter().filter_map(track).collect();
    (!parts.is_empty()).then(|| parts.join(" · "))
}

/// One service of a rollout under way.
pub struct ServiceRow {
    service: String,
    stage: String,
    step: String,
    step_ends: Option<When>,
    paused_left: Option<String>,
    traffic: Option<TrafficRow>,
}

/// Which buttons a deployment's page shows.
pub struct Buttons {
    /// The role may steer and the deployment runs: the forms are there.
    pub may_steer: bool,
    /// The role may approve and the deployment runs.
    pub may_decide: bool,
    pub pause: bool,
    pub resume: bool,
    pub promote: bool,
    pub abort: bool,
    pub decide: bool,
}

#[derive(Template)]
#[template(path = "dashboard/deployment.html")]
struct DeploymentPage {
    chrome: Chrome,
    d: wire::Deployment,
    state: &'static str,
    running: bool,
    started: When,
    finished: Option<When>,
    phase: String,
    services: Vec<ServiceRow>,
    verdicts: Vec<Verdict>,
    events: Vec<EventRow>,
    buttons: Buttons,
    approvals: Option<String>,
}

/// What the page for `caller` may offer on a deployment in `state` whose
/// release (if under way) is `progress`.
pub fn buttons(caller: &Caller, running: bool, progress: Option<&ReleaseProgressView>) -> Buttons {
    let awaiting = progress.is_some_and(|p| p.awaiting_approval.is_some());
    let steer = caller.may(Permission::Deploy) && running && progress.is_some() && !awaiting;
    let paused = progress.is_some_and(|p| p.paused);
    let stepping = progress.is_some_and(|p| p.services.iter().any(|s| s.stage == "stepping"));
    Buttons {
        may_steer: caller.may(Permission::Deploy) && running,
        may_decide: caller.may(Permission::Approve) && running,
        pause: steer && !paused,
        resume: steer && paused,
        promote: steer && stepping,
        abort: steer,
        decide: caller.may(Permission::Approve) && awaiting,
    }
}

/// The rollout of deployment `id`, if it is under way, from `status`.
pub fn progress_of(
    status: &wire::StatusResponse,
    id: i64,
) -> Option<(&EnvironmentStatus, &ReleaseProgressView)> {
    status.environments.iter().find_map(|env| {
        env.releases
            .iter()
            .find(|r| r.deployment_id == id)
            .map(|r| (env, r))
    })
}

/// The per-service rows of a rollout.
pub fn service_rows(env: &EnvironmentStatus, progress: &ReleaseProgressView) -> Vec<ServiceRow> {
    let traffic = traffic_rows(env);
    progress
        .services
        .iter()
        .map(|s| ServiceRow {
            service: s.service.clone(),
            stage: s.stage.clone(),
            step: match s.step {
                Some(step) if s.steps > 0 => format!("step {step} of {}", s.steps),
                _ => s.stage.replace('_', " "),
            },
            step_ends: s.step_ends_at.map(When::from),
            paused_left: s
                .paused_left_ms
                .map(|ms| format!("{} s left (paused)", ms / 1000)),
            traffic: traffic
                .iter()
                .find(|t| t.service == s.service)
                .map(|t| TrafficRow {
                    stable: 100.0 - s.canary_percent,
                    canary: s.canary_percent,
                    ..t.clone()
                }),
        })
        .collect()
}

/// `GET /ui/deployments/{id}`.
pub async fn deployment(
    State(state): State<DashState>,
    signed: SignedIn,
    Path(id): Path<String>,
) -> Response {
    let Ok(id) = id.parse::<i64>() else {
        return error_page(
            StatusCode::NOT_FOUND,
            "A deployment's number is a whole number; the history lists them.",
        );
    };
    let store = state.api.daemon.store();
    let (deployment, events) = match (store.deployment(id).await, store.events(id).await) {
        (Ok(Some(d)), Ok(events)) => (d, events),
        (Ok(None), _) => {
            return error_page(
                StatusCode::NOT_FOUND,
                &format!("There is no deployment {id}; the history lists them."),
            );
        }
        (Err(e), _) | (_, Err(e)) => return api_error(&ApiError::from(e)),
    };
    let status = match status(State(state.api.clone())).await {
        Ok(axum::Json(s)) => s,
        Err(e) => return api_error(&e),
    };
    let d = wire::Deployment::from(deployment);
    let running = d.finished_at.is_none();
    let progress = progress_of(&status, id);
    let verdicts = events
        .iter()
        .filter(|e| e.kind == "analysis")
        .map(|e| Verdict {
            at: When::from(e.at),
            message: e.message.clone(),
            figures: figures_text(&e.data),
        })
        .collect();
    let events: Vec<EventRow> = events
        .into_iter()
        .map(|e| EventRow {
            id: e.id,
            at: When::from(e.at),
            kind: e.kind,
            message: e.message,
        })
        .collect();
    page(&DeploymentPage {
        chrome: Chrome::new(&signed, format!("Deployment {id}"), "history"),
        state: d.state.as_str(),
        started: When::from(d.started_at),
        finished: d.finished_at.map(When::from),
        phase: progress.map(|(_, p)| p.phase.clone()).unwrap_or_default(),
        services: progress
            .map(|(env, p)| service_rows(env, p))
            .unwrap_or_default(),
        buttons: buttons(&signed.caller, running, progress.map(|(_, p)| p)),
        approvals: progress
            .and_then(|(_, p)| p.awaiting_approval.as_ref())
            .map(|a| format!("{} of {} approvals", a.have, a.required)),
        running,
        verdicts,
        events,
        d,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_analysis_events_figures_read_as_text() {
        let data = serde_json::json!({ "figures": {
            "canary": { "requests": 120, "errors": 1, "p95_ms": 8.4 },
            "stable": { "requests": 800, "errors": 0, "p95_ms": null }
        }});
        assert_eq!(
            figures_text(&data).as_deref(),
            Some(
                "canary: 120 requests, 1 errors, p95 8 ms · stable: 800 requests, 0 errors, p95 –"
            )
        );
        assert_eq!(figures_text(&serde_json::json!({})), None);
        assert_eq!(figures_text(&serde_json::json!({ "figures": null })), None);
    }

    #[test]
    fn deploys_fall_into_their_day_and_scale_to_the_busiest() {
        use crate::store::{Deployment, DeploymentKind, DeploymentState};
        let since: jiff::Timestamp = "2026-11-01T00:00:00Z".parse().expect("time");
        let at = |text: &str, state, kind| Deployment {
            id: 1,
            environment: "production".into(),
            version: "v1".into(),
            previous_version: None,
            strategy: "canary".into(),
            kind,
            state,
            reason: None,
            requested_by: "ci".into(),
            started_at: text.parse().expect("time"),
            finished_at: None,
            awaiting_approval: false,
            commit_sha: None,
            commit_time: None,
        };
        let list = [
            at(
                "2026-11-01T10:00:00Z",
                DeploymentState::Succeeded,
                DeploymentKind::Deploy,
            ),
            at(
                "2026-11-01T11:00:00Z",
                DeploymentState::RolledBack,
                DeploymentKind::Deploy,
            ),
            at(
                "2026-11-03T09:00:00Z",
                DeploymentState::Succeeded,
                DeploymentKind::Deploy,
            ),
            // Not counted: a rollback, one still running, one before and one after.
            at(
                "2026-11-03T10:00:00Z",
                DeploymentState::Succeeded,
                DeploymentKind::Rollback,
            ),
            at(
                "2026-11-03T11:00:00Z",
                DeploymentState::Running,
                DeploymentKind::Deploy,
            ),
            at(
                "2026-10-31T23:00:00Z",
                DeploymentState::Succeeded,
                DeploymentKind::Deploy,
            ),
            at(
                "2026-11-04T01:00:00Z",
                DeploymentState::Failed,
                DeploymentKind::Deploy,
            ),
        ];
        let bars = day_bars(&list, since, 3);
        assert_eq!(bars.len(), 3);
        assert_eq!((bars[0].ok_h, bars[0].bad_h), (20.0, 20.0));
        assert_eq!((bars[0].ok_y, bars[0].bad_y), (20.0, 0.0));
        assert_eq!((bars[1].ok_h, bars[1].bad_h), (0.0, 0.0));
        assert_eq!((bars[2].ok_h, bars[2].bad_h), (20.0, 0.0));
        assert_eq!(bars[2].x, 8);
        assert_eq!(
            bars[0].title,
            "2026-11-01: 1 succeeded, 1 failed or rolled back"
        );
    }
}

#[derive(Debug, Deserialize)]
pub struct HistoryQuery {
    environment: Option<String>,
}

struct HistoryRow {
    d: wire::Deployment,
    state: &'static str,
    started: When,
}

#[derive(Template)]
#[template(path = "dashboard/history.html")]
struct HistoryPage {
    chrome: Chrome,
    environments: Vec<String>,
    selected: String,
    rows: Vec<HistoryRow>,
}

/// `GET /ui/history?environment=NAME`.
pub async fn history(
    State(state): State<DashState>,
    signed: SignedIn,
    Query(q): Query<HistoryQuery>,
) -> Response {
    let environments: Vec<String> = state
        .api
        .daemon
        .environments()
        .map(|e| e.name().to_owned())
        .collect();
    let selected = q.environment.filter(|e| !e.is_empty());
    if let Some(name) = &selected
        && !environments.contains(name)
    {
        return error_page(
            StatusCode::BAD_REQUEST,
            &format!("There is no environment {name:?} in the configuration."),
        );
    }
    let list = match state
        .api
        .daemon
        .store()
        .deployments(selected.as_deref(), 200)
        .await
    {
        Ok(l) => l,
        Err(e) => return api_error(&ApiError::from(e)),
    };
    let rows = list
        .into_iter()
        .map(|d| {
            let d = wire::Deployment::from(d);
            HistoryRow {
                state: d.state.as_str(),
                started: When::from(d.started_at),
                d,
            }
        })
        .collect();
    page(&HistoryPage {
        chrome: Chrome::new(&signed, "History", "history"),
        environments,
        selected: selected.unwrap_or_default(),
        rows,
    })
}

struct DoraRow {
    environment: String,
    frequency: String,
    frequency_band: String,
    lead_time: String,
    lead_time_band: String,
    failure_rate: String,
    failure_rate_band: String,
    restore: String,
    restore_band: String,
}

/// One day of the DORA chart: its deploys that succeeded and that failed,
/// as SVG rectangles (x, then heights from the bottom of a 40-high box).
pub struct DayBar {
    x: usize,
    ok_y: f64,
    ok_h: f64,
    bad_y: f64,
    bad_h: f64,
    title: String,
}

/// An environment's deploys per day over the period.
pub struct DoraChart {
    environment: String,
    width: usize,
    bars: Vec<DayBar>,
}

/// Per day from `since`, for `days` days: deploys that succeeded and deploys
/// that ended failed or rolled back.
pub fn day_bars(
    deployments: &[crate::store::Deployment],
    since: jiff::Timestamp,
    days: usize,
) -> Vec<DayBar> {
    use crate::store::{DeploymentKind, DeploymentState};
    let mut counts = vec![(0u32, 0u32); days];
    for d in deployments {
        if d.kind != DeploymentKind::Deploy {
            continue;
        }
        let after = d.started_at.as_second().saturating_sub(since.as_second());
        let Ok(day) = usize::try_from(after.div_euclid(86_400)) else {
            continue;
        };
        let Some(slot) = counts.get_mut(day) else {
            continue;
        };
        match d.state {
            DeploymentState::Succeeded => slot.0 += 1,
            DeploymentState::Failed | DeploymentState::RolledBack => slot.1 += 1,
            _ => {}
        }
    }
    let most = counts.iter().map(|(a, b)| a + b).max().unwrap_or(0).max(1);
    let scale = 40.0 / f64::from(most);
    counts
        .into_iter()
        .enumerate()
        .map(|(i, (ok, bad))| {
            let ok_h = f64::from(ok) * scale;
            let bad_h = f64::from(bad) * scale;
            let day = since
                .checked_add(jiff::SignedDuration::from_hours(24 * i as i64))
                .map_or_else(|_| String::new(), |t| t.strftime("%Y-%m-%d").to_string());
            DayBar {
                x: i * 4,
                ok_y: 40.0 - ok_h,
                ok_h,
                bad_y: 40.0 - ok_h - bad_h,
                bad_h,
                title: format!("{day}: {ok} succeeded, {bad} failed or rolled back"),
            }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "dashboard/dora.html")]
struct DoraPage {
    chrome: Chrome,
    since: When,
    days: String,
    rows: Vec<DoraRow>,
    charts: Vec<DoraChart>,
}

fn band(b: Option<crate::dora::bands::Band>) -> String {
    b.map_or_else(|| "–".to_owned(), |b| b.as_str().to_owned())
}

fn duration_text(seconds: Option<f64>) -> String {
    match seconds {
        None => "–".to_owned(),
        Some(s) => {
            let d = std::time::Duration::from_secs(s.max(0.0).round() as u64);
            humantime::format_duration(d).to_string()
        }
    }
}

/// `GET /ui/dora`: the last 30 days.
pub async fn dora(State(state): State<DashState>, signed: SignedIn) -> Response {
    let now = jiff::Timestamp::now();
    let since = match crate::dora::parse_since(crate::dora::DEFAULT_SINCE, now) {
        Ok(s) => s,
        Err(e) => return error_page(StatusCode::INTERNAL_SERVER_ERROR, &e),
    };
    let names: Vec<String> = state
        .api
        .daemon
        .environments()
        .map(|e| e.name().to_owned())
        .collect();
    let report = match crate::dora::report(
        state.api.daemon.store(),
        &names,
        since,
        now,
        crate::dora::DEFAULT_FIX_WINDOW,
    )
    .await
    {
        Ok(r) => r,
        Err(e) => return api_error(&ApiError::from(e)),
    };
    let rows = report
        .environments
        .iter()
        .map(|e| DoraRow {
            environment: e.environment.clone(),
            frequency: format!("{:.2} / day", e.deployment_frequency.per_day),
            frequency_band: e.deployment_frequency.band.as_str().to_owned(),
            lead_time: duration_text(e.lead_time.median_seconds),
            lead_time_band: band(e.lead_time.band),
            failure_rate: e
                .change_failure_rate
                .ratio
                .map_or_else(|| "–".to_owned(), |r| format!("{:.0} %", r * 100.0)),
            failure_rate_band: band(e.change_failure_rate.band),
            restore: duration_text(e.time_to_restore.median_seconds),
            restore_band: band(e.time_to_restore.band),
        })
        .collect();
    let days = report.period_days.ceil().max(1.0) as usize;
    let mut charts = Vec::new();
    for name in &names {
        let history = match state.api.daemon.store().deployments(Some(name), 500).await {
            Ok(h) => h,
            Err(e) => return api_error(&ApiError::from(e)),
        };
        charts.push(DoraChart {
            environment: name.clone(),
            width: days * 4,
            bars: day_bars(&history, report.since, days),
        });
    }
    page(&DoraPage {
        chrome: Chrome::new(&signed, "DORA", "dora"),
        since: When::from(report.since),
        days: format!("{:.0}", report.period_days),
        rows,
        charts,
    })
}

struct AuditView {
    row: wire::AuditRow,
    at: When,
}

#[derive(Template)]
#[template(path = "dashboard/audit.html")]
struct AuditPage {
    chrome: Chrome,
    intact: bool,
    verdict: String,
    rows: Vec<AuditView>,
}

/// `GET /ui/audit`: `audit verify`'s result and the newest 100 rows.
pub async fn audit(State(state): State<DashState>, signed: SignedIn) -> Response {
    let store = state.api.daemon.store();
    // The whole chain, page by page, as `cutover audit verify` reads it.
    let mut last: Option<(i64, String)> = None;
    let mut count: u64 = 0;
    let mut broken = None;
    loop {
        let after = last.as_ref().map_or(0, |(id, _)| *id);
        let rows = match store.audit(after, None, 1000).await {
            Ok(r) => r,
            Err(e) => return api_error(&ApiError::from(e)),
        };
        let Some(newest) = rows.last() else { break };
        let newest = (newest.id, newest.hash.clone());
        let from = last.as_ref().map(|(id, hash)| (*id, hash.as_str()));
        if let Err(b) = crate::store::verify_chain(&rows, from) {
            broken = Some(b);
            break;
        }
        count = count.saturating_add(rows.len() as u64);
        last = Some(newest);
    }
    let (intact, verdict) = match (&broken, &last) {
        (Some(b), _) => (
            false,
            format!(
                "{b}. Rows from {} on cannot be trusted: compare them with an export kept elsewhere (`cutover audit export`).",
                b.row()
            ),
        ),
        (None, Some((id, hash))) => (
            true,
            format!("audit log intact: {count} rows, the newest is row {id} with hash {hash}"),
        ),
        (None, None) => (true, "audit log is empty".to_owned()),
    };
    let rows = match store.audit_latest(None, 100).await {
        Ok(r) => r,
        Err(e) => return api_error(&ApiError::from(e)),
    };
    let mut rows: Vec<AuditView> = rows
        .into_iter()
        .map(|r| {
            let row = wire::AuditRow::from(r);
            AuditView {
                at: When::from(row.at),
                row,
            }
        })
        .collect();
    rows.reverse();
    page(&AuditPage {
        chrome: Chrome::new(&signed, "Audit log", "audit"),
        intact,
        verdict,
        rows,
    })
}

struct BackupRow {
    database: String,
    id: String,
    created: String,
    trigger: String,
    size: String,
    verified: String,
}

#[derive(Template)]
#[template(path = "dashboard/backups.html")]
struct BackupsPage {
    chrome: Chrome,
    rows: Vec<BackupRow>,
    problems: Vec<String>,
}

/// `GET /ui/backups`: every configured database's backups, newest first.
pub async fn backups(State(state): State<DashState>, signed: SignedIn) -> Response {
    let mut rows = Vec::new();
    let mut problems = Vec::new();
    for (name, database) in &state.api.daemon.config().databases {
        if database.backup.is_none() {
            continue;
        }
        let listed = crate::db::backup::Backups::new(name, database).and_then(|b| b.list());
        match listed {
            Ok(list) => rows.extend(list.into_iter().map(|m| BackupRow {
                database: m.database.clone(),
                verified: match (&m.verified_at, &m.verification) {
                    (Some(at), Some(v)) if v.ok => format!("ok at {at}"),
                    (Some(at), Some(_)) => format!("FAILED at {at}"),
                    (Some(at), None) => at.clone(),
                    _ => "never".to_owned(),
                },
                size: format!("{:.1} MiB", m.size as f64 / (1024.0 * 1024.0)),
                trigger: m.trigger,
                created: m.created_at,
                id: m.id,
            })),
            Err(e) => problems.push(format!("{name}: {e}")),
        }
    }
    page(&BackupsPage {
        chrome: Chrome::new(&signed, "Backups", "backups"),
        rows,
        problems,
    })
}

struct ReleaseRow {
    version: String,
    digests: String,
    runs: String,
}

#[derive(Template)]
#[template(path = "dashboard/releases.html")]
struct ReleasesPage {
    chrome: Chrome,
    rows: Vec<ReleaseRow>,
}

/// `GET /ui/releases`.
pub async fn releases(State(state): State<DashState>, signed: SignedIn) -> Response {
    let list = match crate::api::gates::releases(
        State(state.api.clone()),
        crate::api::extract::Query(crate::api::gates::ReleasesQuery::default()),
    )
    .await
    {
        Ok(axum::Json(l)) => l,
        Err(e) => return api_error(&e),
    };
    let rows = list
        .into_iter()
        .map(|r| ReleaseRow {
            digests: r.digests.join(", "),
            runs: r
                .runs
                .iter()
                .map(|run| {
                    format!(
                        "{} #{} {}",
                        run.environment,
                        run.deployment_id,
                        run.outcome.as_str()
                    )
                })
                .collect::<Vec<_>>()
                .join(", "),
            version: r.version,
        })
        .collect();
    page(&ReleasesPage {
        chrome: Chrome::new(&signed, "Releases", "releases"),
        rows,
    })
}
