//! The API's wire format: every JSON body the daemon's HTTP API accepts or
//! answers with, and [`ErrorCode`], the one list of error codes the server
//! answers with, the client reads back and the CLI turns into an exit code
//! (`crate::exit::for_error_code`).
//!
//! These types are the API's promise to its clients (the CLI, `--json`
//! output, scripts); they are deliberately separate from the state store's
//! rows (`crate::store`), which may change without the API changing. Each
//! answer built from a store row has a `From` conversion here; the tests at
//! the bottom pin the JSON of every type.

use axum::http::StatusCode;
use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use crate::store;

/// `GET /v1/dora`: the DORA report (its types live with the figures, in
/// `crate::dora::report`, and are this API's; its tests pin the JSON).
pub use crate::dora::report::{
    ChangeFailureRate, DoraReport, EnvironmentDora, Failure, FailureKind, Frequency, LeadTime,
    Restore, TimeToRestore,
};

/// What went wrong, as a machine-readable code: the `error` field of every
/// error answer ([`ApiErrorBody`]). Each code has one HTTP status
/// ([`ErrorCode::status`]) and one exit code (`crate::exit::for_error_code`).
///
/// The strings are stable: clients match on them. A code added later reads
/// as [`ErrorCode::Unknown`] in an older client.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// `bad_request` (400): the request cannot be served as asked (unknown
    /// environment or service, a version label outside the pattern, nothing
    /// to roll back to), or it cannot be read (a body that is not JSON or
    /// lacks a field, a bad query string or path parameter).
    BadRequest,
    /// `unauthorized` (401): missing or wrong API token, or a named token
    /// that was revoked or has expired (the message says which).
    Unauthorized,
    /// `forbidden` (403): the token's role may not do this (the message
    /// names the roles that may).
    Forbidden,
    /// `not_found` (404): nothing matches (no such deployment, no running
    /// instance, no such rollout command, no such route).
    NotFound,
    /// `method_not_allowed` (405): the route exists, not with this method.
    MethodNotAllowed,
    /// `locked` (409): another deployment holds the environment's lock.
    Locked,
    /// `refused` (409): an operator command that does not apply now.
    Refused,
    /// `preflight_failed` (422): a check before the deploy failed (an image
    /// missing, Docker unreachable); nothing was changed.
    PreflightFailed,
    /// `payload_too_large` (413): the request's body is over the API's limit.
    PayloadTooLarge,
    /// `unsupported_media_type` (415): a body that is not sent as
    /// `Content-Type: application/json`.
    UnsupportedMediaType,
    /// `promotion_required` (409): the environment promotes from another
    /// one, and the release has not run there as it must (not at all, not
    /// for the soak time, rolled back, or with other artifacts).
    PromotionRequired,
    /// `outside_window` (409): the environment is outside every one of its
    /// deploy windows; the message says when the next one opens.
    OutsideWindow,
    /// `not_leader` (421): this daemon follows another that shares its
    /// PostgreSQL store (docs/cluster.md) and changes nothing; the message
    /// names the leader and how to ask it.
    NotLeader,
    /// `store` (500): the daemon's state store failed.
    Store,
    /// `internal` (500): a bug or an impossible state on the daemon's side.
    Internal,
    /// A code this build does not know (sent by a newer daemon). Never sent.
    #[serde(other)]
    Unknown,
}

impl ErrorCode {
    /// Every code, in declaration order.
    pub const ALL: [ErrorCode; 16] = [
        ErrorCode::BadRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::MethodNotAllowed,
        ErrorCode::Locked,
        ErrorCode::Refused,
        ErrorCode::PreflightFailed,
        ErrorCode::PayloadTooLarge,
        ErrorCode::UnsupportedMediaType,
        ErrorCode::PromotionRequired,
        ErrorCode::OutsideWindow,
        ErrorCode::NotLeader,
        ErrorCode::Store,
        ErrorCode::Internal,
        ErrorCode::Unknown,
    ];

    /// The string it is sent as (the same as its JSON).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::MethodNotAllowed => "method_not_allowed",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::UnsupportedMediaType => "unsupported_media_type",
            ErrorCode::Locked => "locked",
            ErrorCode::Refused => "refused",
            ErrorCode::PreflightFailed => "preflight_failed",
            ErrorCode::PromotionRequired => "promotion_required",
            ErrorCode::OutsideWindow => "outside_window",
            ErrorCode::NotLeader => "not_leader",
            ErrorCode::Store => "store",
            ErrorCode::Internal => "internal",
            ErrorCode::Unknown => "unknown",
        }
    }

    /// The HTTP status the server answers with.
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::Locked
            | ErrorCode::Refused
            | ErrorCode::PromotionRequired
            | ErrorCode::OutsideWindow => StatusCode::CONFLICT,
            ErrorCode::PreflightFailed => StatusCode::UNPROCESSABLE_ENTITY,
            ErrorCode::NotLeader => StatusCode::MISDIRECTED_REQUEST,
            ErrorCode::Store | ErrorCode::Internal | ErrorCode::Unknown => {
                StatusCode::INTERNAL_SERVER_ERROR
            }
        }
    }

    /// The code of an error answer whose body is not an [`ApiErrorBody`]
    /// (axum's own rejections, something in between): read from the status.
    pub fn from_status(status: StatusCode) -> ErrorCode {
        match status {
            StatusCode::BAD_REQUEST => ErrorCode::BadRequest,
            StatusCode::UNAUTHORIZED => ErrorCode::Unauthorized,
            StatusCode::FORBIDDEN => ErrorCode::Forbidden,
            StatusCode::NOT_FOUND => ErrorCode::NotFound,
            StatusCode::METHOD_NOT_ALLOWED => ErrorCode::MethodNotAllowed,
            StatusCode::PAYLOAD_TOO_LARGE => ErrorCode::PayloadTooLarge,
            StatusCode::UNSUPPORTED_MEDIA_TYPE => ErrorCode::UnsupportedMediaType,
            StatusCode::CONFLICT => ErrorCode::Locked,
            StatusCode::MISDIRECTED_REQUEST => ErrorCode::NotLeader,
            _ => ErrorCode::Internal,
        }
    }
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Machine-readable code.
    pub error: ErrorCode,
    /// What went wrong, for people.
    pub message: String,
}

/// `POST /v1/deployments`: deploy a version to an environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployRequest {
    /// Environment name; may be omitted when there is one.
    pub environment: Option<String>,
    /// Version label to deploy: 1 to 128 letters, digits, `.`, `_`, `-`,
    /// `+`, not starting with `-` (`crate::label::check_version`); any other
    /// is answered 400 `bad_request`.
    pub version: String,
    /// Ignored, kept so that older clients' requests still read: who asks
    /// is the name of the request's API token, never a value the client
    /// sends (docs/security.md, "Roles and tokens").
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
    /// Roll only this service (default: every service of the release).
    #[serde(default)]
    pub service: Option<String>,
    /// Deploy even though the release has not run where the environment
    /// promotes from as it must (admin; needs `reason`; recorded).
    #[serde(default)]
    pub skip_promotion_check: bool,
    /// Why a check is overridden (`skip_promotion_check`, or deploying
    /// outside the deploy windows); cleaned like `requested_by`.
    #[serde(default)]
    pub reason: Option<String>,
    /// The commit this version was built from: 7 to 64 hex digits
    /// (`cutover deploy --commit SHA`); anything else is answered 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit: Option<String>,
    /// When that commit was made (RFC 3339), for the DORA lead time; one in
    /// the future (beyond an hour of clock skew) is answered 400.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_time: Option<Timestamp>,
}

/// `POST /v1/locks`: lock an environment against deploys.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct LockRequest {
    /// Environment name; may be omitted when there is one.
    pub environment: Option<String>,
    /// Why (required, not blank; cleaned like `requested_by`).
    pub reason: String,
    /// Until when: RFC 3339 (`2026-12-04T18:00:00Z`) or a duration from
    /// now (`2h`, `30m`); absent: until `DELETE /v1/locks/{environment}`.
    #[serde(default)]
    pub until: Option<String>,
    /// Ignored: who locks is the API token's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// An operator's lock of an environment (`cutover lock`): deploys to it are
/// refused while it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OperatorLock {
    /// The environment it locks.
    pub environment: String,
    /// Why.
    pub reason: String,
    /// Who took it.
    pub locked_by: String,
    /// Since when.
    pub since: Timestamp,
    /// Until when; absent: until `cutover unlock`.
    #[serde(default)]
    pub until: Option<Timestamp>,
}

impl From<store::OperatorLock> for OperatorLock {
    fn from(l: store::OperatorLock) -> Self {
        OperatorLock {
            environment: l.environment,
            reason: l.reason,
            locked_by: l.locked_by,
            since: l.since,
            until: l.until,
        }
    }
}

/// The answer of `DELETE /v1/locks/{environment}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Unlocked {
    /// The environment.
    pub environment: String,
    /// The lock that was removed; absent when none held.
    #[serde(default)]
    pub removed: Option<OperatorLock>,
}

/// `GET /v1/releases`: one version and where it has run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseView {
    /// The version label.
    pub version: String,
    /// The release digests it was deployed with, oldest first (more than
    /// one when the same label was built twice).
    pub digests: Vec<String>,
    /// Each deploy of it, oldest first.
    pub runs: Vec<ReleaseRun>,
}

/// One deploy of a version to an environment, and how long it served.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseRun {
    /// The environment.
    pub environment: String,
    /// The deployment.
    pub deployment_id: i64,
    /// The release digest deployed; absent for deployments made before
    /// digests were recorded.
    #[serde(default)]
    pub digest: Option<String>,
    /// How the deployment ended (`running`, `succeeded`, `failed`,
    /// `rolled_back`, `interrupted`).
    pub outcome: DeploymentState,
    /// When it started serving all traffic; absent if it never did.
    #[serde(default)]
    pub from: Option<Timestamp>,
    /// When it stopped serving; absent while it serves (or never did).
    #[serde(default)]
    pub to: Option<Timestamp>,
    /// Whether it serves the environment now.
    pub serving: bool,
    /// Whether it was rolled back (by its own deployment or a later
    /// `cutover rollback`).
    pub rolled_back: bool,
}

/// `POST /v1/rollout/{pause|resume|promote|abort}`: steer the running rollout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutCommandRequest {
    /// Environment name; may be omitted when there is one.
    pub environment: Option<String>,
    /// With `promote`: straight to 100 %.
    #[serde(default)]
    pub full: bool,
    /// With `abort`: why, for the history (cleaned: controls to `?`, at
    /// most 200 characters, `crate::label::clean_text`).
    #[serde(default)]
    pub reason: Option<String>,
    /// Ignored (see [`DeployRequest::requested_by`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// `POST /v1/deployments/{id}/approve`: approve a deployment that awaits
/// approval (never by whoever asked for it: four eyes).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApproveRequest {
    /// What the approver says, for the history (cleaned like `requested_by`).
    #[serde(default)]
    pub comment: Option<String>,
    /// Ignored: who approves is the API token's name (kept so that older
    /// clients that send it are still understood).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// `POST /v1/deployments/{id}/reject`: reject a deployment that awaits
/// approval; it ends with nothing started.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RejectRequest {
    /// Why, for the history (required; cleaned like `requested_by`).
    pub reason: String,
    /// Ignored: who rejects is the API token's name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// The answer to an approval or a rejection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DecisionAnswer {
    /// The deployment.
    pub deployment_id: i64,
    /// Its environment.
    pub environment: String,
    /// `approved` (enough approvals: it goes on), `waiting` (more are
    /// needed) or `rejected` (it ends, nothing started).
    pub outcome: String,
    /// Approvals given so far.
    pub approvals: u32,
    /// Approvals needed.
    pub required: u32,
}

/// `POST /v1/rollback`: back to the previous release.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// Environment name; may be omitted when there is one.
    pub environment: Option<String>,
    /// Ignored (see [`DeployRequest::requested_by`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub requested_by: Option<String>,
}

/// `GET /v1/logs`: which output to read (sent as the query string).
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
pub struct LogsRequest {
    /// The service.
    pub service: String,
    /// Environment name; may be omitted when there is one.
    pub environment: Option<String>,
    /// Only this release (default: the serving one).
    pub release: Option<String>,
    /// Last lines of each instance (default: all).
    pub tail: Option<usize>,
    /// Keep streaming until the instances stop.
    pub follow: bool,
}

/// A deployment started (or a rollout command taken): where to follow it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    /// The deployment's id.
    pub deployment_id: i64,
    /// Its environment.
    pub environment: String,
}

/// The answer of `POST /v1/daemon/{upgrade,reload,down}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DaemonAnswer {
    /// What was done: `upgraded`, `reloaded` or `stopping`.
    pub outcome: String,
    /// The pid of the daemon that serves now (the new one after a hand-over,
    /// the answering one for `down`).
    pub pid: u32,
    /// From the request to the new daemon serving, in milliseconds (0 for `down`).
    pub took_ms: u64,
    /// Settings that apply at the next deploy (a reload's).
    #[serde(default)]
    pub pending: Vec<String>,
}

/// Why a deployment was started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentKind {
    /// `deploy`: moving forward to a new version.
    Deploy,
    /// `rollback`: going back to an earlier version.
    Rollback,
}

impl DeploymentKind {
    /// The string it is sent as.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentKind::Deploy => "deploy",
            DeploymentKind::Rollback => "rollback",
        }
    }
}

impl From<store::DeploymentKind> for DeploymentKind {
    fn from(kind: store::DeploymentKind) -> Self {
        match kind {
            store::DeploymentKind::Deploy => DeploymentKind::Deploy,
            store::DeploymentKind::Rollback => DeploymentKind::Rollback,
        }
    }
}

/// Where a deployment stands. Every state but `Running` and
/// `AwaitingApproval` is final.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeploymentState {
    /// `running`: in progress.
    Running,
    /// `awaiting_approval`: waiting for approvals (`cutover approve ID`);
    /// nothing has changed yet.
    AwaitingApproval,
    /// `succeeded`: the new version serves all traffic.
    Succeeded,
    /// `failed`: stopped by an error; nothing was rolled back.
    Failed,
    /// `rolled_back`: stopped, and traffic went back to the previous version.
    RolledBack,
    /// `interrupted`: the daemon stopped (or crashed) while it was running.
    Interrupted,
}

impl DeploymentState {
    /// The string it is sent as.
    pub fn as_str(self) -> &'static str {
        match self {
            DeploymentState::Running => "running",
            DeploymentState::AwaitingApproval => "awaiting_approval",
            DeploymentState::Succeeded => "succeeded",
            DeploymentState::Failed => "failed",
            DeploymentState::RolledBack => "rolled_back",
            DeploymentState::Interrupted => "interrupted",
        }
    }
}

impl From<store::DeploymentState> for DeploymentState {
    fn from(state: store::DeploymentState) -> Self {
        match state {
            store::DeploymentState::Running => DeploymentState::Running,
            store::DeploymentState::Succeeded => DeploymentState::Succeeded,
            store::DeploymentState::Failed => DeploymentState::Failed,
            store::DeploymentState::RolledBack => DeploymentState::RolledBack,
            store::DeploymentState::Interrupted => DeploymentState::Interrupted,
        }
    }
}

/// One deployment, as `GET /v1/deployments` lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Deployment {
    /// Its number, increasing with every deployment.
    pub id: i64,
    /// The environment deployed to.
    pub environment: String,
    /// The version deployed.
    pub version: String,
    /// The version serving when the deployment started, if any.
    pub previous_version: Option<String>,
    /// `blue-green`, `canary`, `rolling`.
    pub strategy: String,
    /// Deploy or rollback.
    pub kind: DeploymentKind,
    /// Where it stands.
    pub state: DeploymentState,
    /// Why it ended as it did, if said.
    pub reason: Option<String>,
    /// Who asked for it: the name of the API token the request came with
    /// (`admin` for the token file).
    pub requested_by: String,
    /// When it was created.
    pub started_at: Timestamp,
    /// When it reached a final state; `None` while running.
    pub finished_at: Option<Timestamp>,
    /// The commit it released (hex), when the deploy said (`--commit`, or
    /// what `git log` resolved the version to); absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_sha: Option<String>,
    /// When that commit was made, when known; absent otherwise.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub commit_time: Option<Timestamp>,
}

impl From<store::Deployment> for Deployment {
    fn from(d: store::Deployment) -> Self {
        Deployment {
            id: d.id,
            environment: d.environment,
            version: d.version,
            previous_version: d.previous_version,
            strategy: d.strategy,
            kind: d.kind.into(),
            state: if d.awaiting_approval {
                DeploymentState::AwaitingApproval
            } else {
                d.state.into()
            },
            reason: d.reason,
            requested_by: d.requested_by,
            started_at: d.started_at,
            finished_at: d.finished_at,
            commit_sha: d.commit_sha,
            commit_time: d.commit_time,
        }
    }
}

/// One entry of a deployment's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Its number, increasing with every event of every deployment.
    pub id: i64,
    /// The deployment it belongs to.
    pub deployment_id: i64,
    /// When it was recorded.
    pub at: Timestamp,
    /// What happened, as a short machine-readable word, e.g. `switched`.
    pub kind: String,
    /// What happened, for people.
    pub message: String,
    /// Details, free-form.
    pub data: serde_json::Value,
}

impl From<store::Event> for Event {
    fn from(e: store::Event) -> Self {
        Event {
            id: e.id,
            deployment_id: e.deployment_id,
            at: e.at,
            kind: e.kind,
            message: e.message,
            data: e.data,
        }
    }
}

/// One event of an environment outside any deployment (`GET /v1/events`):
/// today, what happened to its TLS certificates. Never holds key material.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentEvent {
    /// Its number, increasing with every environment event.
    pub id: i64,
    /// The environment it belongs to.
    pub environment: String,
    /// When it was recorded.
    pub at: Timestamp,
    /// What happened, as a short machine-readable word, e.g.
    /// `certificate_reloaded`.
    pub kind: String,
    /// What happened, for people.
    pub message: String,
    /// Details, free-form.
    pub data: serde_json::Value,
}

impl From<store::EnvironmentEvent> for EnvironmentEvent {
    fn from(e: store::EnvironmentEvent) -> Self {
        EnvironmentEvent {
            id: e.id,
            environment: e.environment,
            at: e.at,
            kind: e.kind,
            message: e.message,
            data: e.data,
        }
    }
}

/// One event of the feed (`GET /v1/events/feed`, and each server-sent
/// event of `GET /v1/events/stream`, whose `id:` is its `cursor`): an
/// event of a deployment or of an environment outside deployments.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FeedEvent {
    /// Where a reader resumes to get the events after this one
    /// (`Last-Event-ID`, or `?after=`): `D-E`, the last deployment event
    /// and the last environment event seen.
    pub cursor: String,
    /// `deployment` or `environment`.
    pub source: String,
    /// The environment.
    pub environment: String,
    /// The deployment, for a deployment's event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deployment_id: Option<i64>,
    /// The version the deployment brings, for a deployment's event.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub version: Option<String>,
    /// Its number in its own history (`cutover history --events` shows
    /// the same for a deployment's event).
    pub id: i64,
    /// When it was recorded.
    pub at: Timestamp,
    /// What happened, as a short machine-readable word, e.g. `step`.
    pub kind: String,
    /// What happened, for people.
    pub message: String,
    /// Details, free-form.
    pub data: serde_json::Value,
}

impl From<store::FeedEvent> for FeedEvent {
    fn from(e: store::FeedEvent) -> Self {
        let (source, deployment_id, version) = match e.source {
            store::FeedSource::Deployment {
                deployment_id,
                version,
            } => ("deployment", Some(deployment_id), Some(version)),
            store::FeedSource::Environment => ("environment", None, None),
        };
        FeedEvent {
            cursor: e.cursor.to_string(),
            source: source.to_owned(),
            environment: e.environment,
            deployment_id,
            version,
            id: e.id,
            at: e.at,
            kind: e.kind,
            message: e.message,
            data: e.data,
        }
    }
}

/// `GET /v1/events/feed`: the latest events, oldest first.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EventFeed {
    /// The events.
    pub events: Vec<FeedEvent>,
    /// The cursor after the newest event: `GET /v1/events/stream?after=`
    /// it streams what comes next.
    pub cursor: String,
}

/// `GET /v1/deployments/{id}`: a deployment with its events.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DeploymentDetail {
    /// The deployment.
    #[serde(flatten)]
    pub deployment: Deployment,
    /// Its events, oldest first.
    pub events: Vec<Event>,
}

impl DeploymentDetail {
    /// A deployment and its events, as the store has them.
    pub fn from_store(deployment: store::Deployment, events: Vec<store::Event>) -> Self {
        DeploymentDetail {
            deployment: deployment.into(),
            events: events.into_iter().map(Event::from).collect(),
        }
    }
}

/// A held deployment lock, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Lock {
    /// The environment it locks.
    pub environment: String,
    /// Who holds it, e.g. `alice@host` or a daemon's id.
    pub holder: String,
    /// What for, e.g. `deploy v2`.
    pub purpose: String,
    /// Since when.
    pub since: Timestamp,
}

impl From<store::Lock> for Lock {
    fn from(l: store::Lock) -> Self {
        Lock {
            environment: l.environment,
            holder: l.holder,
            purpose: l.purpose,
            since: l.since,
        }
    }
}

/// One instance as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct InstanceView {
    /// Instance id.
    pub id: String,
    /// Service it belongs to.
    pub service: String,
    /// Version it runs.
    pub version: String,
    /// Lifecycle state (serving, idle, …).
    pub state: String,
    /// Address the proxy sends to.
    pub addr: Option<String>,
    /// Requests in flight right now.
    pub in_flight: usize,
    /// `stable` or `canary`: the proxy track it is on now (absent when
    /// the proxy does not route to it, e.g. a worker or a retired copy).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub track: Option<String>,
    /// Whether its last health check passed (absent: not checked by this
    /// daemon yet).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub healthy: Option<bool>,
    /// Since when it is healthy (or not).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_since: Option<Timestamp>,
    /// Why it is not healthy.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub health_reason: Option<String>,
    /// When it was started.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub started_at: Option<Timestamp>,
}

/// The record as stored; the live fields (`addr`, `in_flight`) are left
/// empty for the server to fill in from the running environment.
impl From<store::InstanceRecord> for InstanceView {
    fn from(r: store::InstanceRecord) -> Self {
        InstanceView {
            id: r.instance_id,
            service: r.service,
            version: r.version,
            state: r.state.as_str().to_owned(),
            addr: None,
            in_flight: 0,
            track: None,
            healthy: None,
            health_since: None,
            health_reason: None,
            started_at: Some(r.created_at),
        }
    }
}

/// One environment as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentStatus {
    /// Environment name.
    pub name: String,
    /// Where its proxy listens.
    pub listen: String,
    /// Where its preview proxy listens (`preview_listen`), if configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub preview_listen: Option<String>,
    /// The deployment whose rollout holds before moving traffic
    /// (`switch = "manual"`), until `cutover switch` or `cutover abort`.
    #[serde(default)]
    pub awaiting_switch: Option<AwaitingSwitchView>,
    /// Version serving all traffic, if any.
    pub serving: Option<String>,
    /// The version before it (warm while within the rollback window).
    pub previous: Option<String>,
    /// Since when `serving` serves.
    pub since: Option<Timestamp>,
    /// The deployment lock, if held.
    pub lock: Option<Lock>,
    /// An operator's lock (`cutover lock`), if one holds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub operator_lock: Option<OperatorLock>,
    /// `held: cannot write the state store: …` while a release of this
    /// environment waits for the store to take its state.
    #[serde(default)]
    pub held: Option<String>,
    /// Why a deployment of this environment waits for an operator (its
    /// saved state could not be restored), if one does.
    #[serde(default)]
    pub needs_operator: Option<String>,
    /// The deployment of this environment that awaits approval, if one does.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub awaiting_approval: Option<AwaitingApprovalView>,
    /// How each HTTP service's traffic is split right now.
    pub traffic: Vec<TrafficView>,
    /// Instances the daemon runs for this environment.
    pub instances: Vec<InstanceView>,
    /// The latest events of the environment outside deployments (its
    /// certificates, the supervision of its instances), newest first.
    #[serde(default)]
    pub edge_events: Vec<EnvironmentEvent>,
    /// The releases under way in this environment (rolling, or in their
    /// rollback window), newest first.
    #[serde(default)]
    pub releases: Vec<ReleaseProgressView>,
}

/// A release under way, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseProgressView {
    /// The deployment.
    pub deployment_id: i64,
    /// `deploy`, `rollback` or `restart`.
    pub kind: String,
    /// The version it brings.
    pub version: String,
    /// The version it replaces.
    #[serde(default)]
    pub previous_version: Option<String>,
    /// `pending`, `awaiting_approval`, `backup`, `expand`, `probe_warm`,
    /// `rolling`, `warm` (in its rollback window), `retiring`,
    /// `contract` or `done`.
    pub phase: String,
    /// Paused by an operator (`cutover pause`) or the inconclusive policy.
    #[serde(default)]
    pub paused: bool,
    /// Why it holds (`held: cannot write the state store: …`), if it does.
    #[serde(default)]
    pub held: Option<String>,
    /// The service that awaits `cutover switch`, if one does.
    #[serde(default)]
    pub awaiting_switch: Option<String>,
    /// The approvals it waits for, if it does.
    #[serde(default)]
    pub awaiting_approval: Option<ApprovalWaitView>,
    /// End of the rollback window (the replaced release stays warm until
    /// then; `cutover rollback` is one switch).
    #[serde(default)]
    pub rollback_window_until: Option<Timestamp>,
    /// Each service of its rollout, in rollout order.
    #[serde(default)]
    pub services: Vec<ServiceProgressView>,
}

/// Approvals a release waits for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ApprovalWaitView {
    /// Distinct approvals given.
    pub have: u32,
    /// Needed.
    pub required: u32,
    /// When the wait ends (rejected) without them.
    pub until: Option<Timestamp>,
}

/// One service's part of a rollout.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceProgressView {
    /// The service.
    pub service: String,
    /// `canary` or `blue-green`.
    pub strategy: String,
    /// `pending`, `starting`, `awaiting_switch`, `stepping`, `promoted`,
    /// `reverted` or `kept_new`.
    pub stage: String,
    /// The canary step now (1-based), while stepping.
    #[serde(default)]
    pub step: Option<usize>,
    /// How many steps the canary has (0 for blue-green).
    #[serde(default)]
    pub steps: usize,
    /// Percent of requests on the new release now.
    pub canary_percent: f64,
    /// When the step began.
    #[serde(default)]
    pub step_started_at: Option<Timestamp>,
    /// When the step's analysis is due (absent while paused).
    #[serde(default)]
    pub step_ends_at: Option<Timestamp>,
    /// Milliseconds left in the step, while paused.
    #[serde(default)]
    pub paused_left_ms: Option<u64>,
    /// Times the step was extended for lack of data.
    #[serde(default)]
    pub extensions: u32,
}

/// A wall-clock millisecond of the release machine as a timestamp.
fn millis_timestamp(m: cutover_core::Millis) -> Option<Timestamp> {
    Timestamp::from_millisecond(i64::try_from(m.0).ok()?).ok()
}

impl From<crate::runtime::ReleaseReport> for ReleaseProgressView {
    fn from(r: crate::runtime::ReleaseReport) -> Self {
        let p = r.progress;
        ReleaseProgressView {
            deployment_id: p.deployment,
            kind: p.kind.to_owned(),
            version: p.version,
            previous_version: p.previous,
            phase: p.phase.to_owned(),
            paused: p.paused,
            held: r.held,
            awaiting_switch: r.awaiting_switch,
            awaiting_approval: p.approval.map(|a| ApprovalWaitView {
                have: a.have,
                required: a.required,
                until: millis_timestamp(a.until),
            }),
            rollback_window_until: p.window_until.and_then(millis_timestamp),
            services: p
                .services
                .into_iter()
                .map(|s| ServiceProgressView {
                    service: s.service,
                    strategy: s.strategy.to_owned(),
                    stage: s.stage.to_owned(),
                    step: s.step,
                    steps: s.steps,
                    canary_percent: s.canary_percent,
                    step_started_at: s.step_started.and_then(millis_timestamp),
                    step_ends_at: s.step_ends.and_then(millis_timestamp),
                    paused_left_ms: s.paused_left.map(|m| m.0),
                    extensions: s.extensions,
                })
                .collect(),
        }
    }
}

/// A deployment that awaits approval, as `status` shows it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwaitingApprovalView {
    /// The deployment (`cutover approve ID`).
    pub deployment_id: i64,
    /// The version it brings.
    pub version: String,
    /// Who asked for it (who may not approve it).
    pub requested_by: String,
}

/// A rollout that holds before moving traffic to a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AwaitingSwitchView {
    /// The deployment.
    pub deployment_id: i64,
    /// The version it brings (healthy, taking no public traffic).
    pub version: String,
    /// The service that waits.
    pub service: String,
}

/// One service's split, as the proxy's table has it now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficView {
    /// Service name.
    pub service: String,
    /// Percent of requests on the stable track.
    pub stable_percent: f64,
    /// Versions of the stable track's instances.
    pub stable_versions: Vec<String>,
    /// Percent of requests on the canary track.
    pub canary_percent: f64,
    /// Versions of the canary track's instances.
    pub canary_versions: Vec<String>,
    /// What each track served lately, from the proxy's observations (the
    /// same the canary analysis reads); absent from older daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub now: Option<TrafficNow>,
}

/// Per-track request rate, error rate and p95 over the last few seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrafficNow {
    /// The span the figures cover, in seconds: the proxy's one-second
    /// slots up to now, the current one partly filled.
    pub window_seconds: u64,
    /// The stable track.
    pub stable: TrackNow,
    /// The canary track.
    pub canary: TrackNow,
}

/// What one track served in [`TrafficNow::window_seconds`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrackNow {
    /// Requests answered (upstream responses plus the proxy's own 502/504;
    /// never a request whose track a client forced, nor a client's fault).
    pub requests: u64,
    /// Requests per second over the window.
    pub requests_per_second: f64,
    /// Server errors (5xx and the proxy's 502/504) per request; absent
    /// with no request ("no data", not "no errors").
    #[serde(default)]
    pub error_rate: Option<f64>,
    /// 95th percentile latency in milliseconds; absent with no response.
    #[serde(default)]
    pub p95_ms: Option<f64>,
}

/// `GET /v1/status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StatusResponse {
    /// App name.
    pub app: String,
    /// cutover's version.
    pub cutover_version: String,
    /// Every environment.
    pub environments: Vec<EnvironmentStatus>,
    /// The daemon's open-file limit (`RLIMIT_NOFILE`), for `cutover
    /// preflight`; absent from older daemons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub open_files: Option<OpenFileLimit>,
}

/// A process's open-file limit (`RLIMIT_NOFILE`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct OpenFileLimit {
    /// The soft limit: what the process may open now.
    pub soft: u64,
    /// The hard limit (`u64::MAX` when unlimited).
    pub hard: u64,
}

/// `POST /v1/tokens`: make a named token (admin only).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCreateRequest {
    /// Its name: 1 to 64 letters, digits, `.`, `_` or `-`; never one used
    /// before, never `admin`.
    pub name: String,
    /// `viewer`, `deployer`, `approver` or `admin`.
    pub role: String,
    /// How long it works, e.g. `90d` or `12h` (default: until revoked).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expires_in: Option<String>,
}

/// A named token, as `GET /v1/tokens` lists it: never the token itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenInfo {
    /// Its name.
    pub name: String,
    /// Its role.
    pub role: String,
    /// `active`, `expired` or `revoked`.
    pub state: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// Who made it.
    pub created_by: String,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked.
    pub revoked_at: Option<Timestamp>,
    /// When it was last used (to the minute).
    pub last_used_at: Option<Timestamp>,
}

impl TokenInfo {
    /// A stored token's view at `now`.
    pub fn from_store(t: store::TokenRecord, now: Timestamp) -> TokenInfo {
        let state = if t.revoked_at.is_some() {
            "revoked"
        } else if t.expires_at.is_some_and(|e| e <= now) {
            "expired"
        } else {
            "active"
        };
        TokenInfo {
            name: t.name,
            role: t.role,
            state: state.into(),
            created_at: t.created_at,
            created_by: t.created_by,
            expires_at: t.expires_at,
            revoked_at: t.revoked_at,
            last_used_at: t.last_used_at,
        }
    }
}

/// The answer of `POST /v1/tokens`: the token's details and, this once,
/// the token. The only answer of the API that holds a secret.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenCreated {
    /// The token's details.
    #[serde(flatten)]
    pub info: TokenInfo,
    /// The token: shown now and never again (the daemon keeps only its hash).
    pub token: String,
}

/// One row of the audit log (`GET /v1/audit`, `cutover audit export`):
/// the stored row with its hash and the previous row's hash, so anyone can
/// recompute the chain (docs/security.md, "Audit log").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRow {
    /// Its number: 1, 2, 3, … without gaps.
    pub id: i64,
    /// When it was written.
    pub at: Timestamp,
    /// Who: a token's name, `admin` (the token file) or `local:<user>`.
    pub who: String,
    /// Their role, or `local`.
    pub role: String,
    /// What was done, e.g. `deploy`, `token_revoke`, `migrate_up`.
    pub action: String,
    /// The environment, if one.
    pub environment: Option<String>,
    /// The deployment, if one.
    pub deployment_id: Option<i64>,
    /// What else it concerns (a token's name, a database, a backup id).
    pub target: Option<String>,
    /// Details (a JSON object).
    pub details: serde_json::Value,
    /// The previous row's hash (64 zeros for the first row).
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
}

impl From<store::AuditRecord> for AuditRow {
    fn from(r: store::AuditRecord) -> Self {
        AuditRow {
            id: r.id,
            at: r.at,
            who: r.who,
            role: r.role,
            action: r.action,
            environment: r.environment,
            deployment_id: r.deployment_id,
            target: r.target,
            details: r.details,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

impl From<AuditRow> for store::AuditRecord {
    fn from(r: AuditRow) -> Self {
        store::AuditRecord {
            id: r.id,
            at: r.at,
            who: r.who,
            role: r.role,
            action: r.action,
            environment: r.environment,
            deployment_id: r.deployment_id,
            target: r.target,
            details: r.details,
            prev_hash: r.prev_hash,
            hash: r.hash,
        }
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(second).expect("valid timestamp")
    }

    fn store_deployment() -> store::Deployment {
        store::Deployment {
            id: 7,
            environment: "production".into(),
            version: "v2".into(),
            previous_version: Some("v1".into()),
            strategy: "canary".into(),
            kind: store::DeploymentKind::Rollback,
            state: store::DeploymentState::RolledBack,
            reason: Some("error rate 5% > 2%".into()),
            requested_by: "alice@host".into(),
            started_at: at(1_714_564_800),
            finished_at: Some(at(1_714_564_830)),
            awaiting_approval: false,
            commit_sha: None,
            commit_time: None,
        }
    }

    fn deployment_json() -> serde_json::Value {
        json!({
            "id": 7,
            "environment": "production",
            "version": "v2",
            "previous_version": "v1",
            "strategy": "canary",
            "kind": "rollback",
            "state": "rolled_back",
            "reason": "error rate 5% > 2%",
            "requested_by": "alice@host",
            "started_at": "2024-05-01T12:00:00Z",
            "finished_at": "2024-05-01T12:00:30Z",
        })
    }

    fn store_event() -> store::Event {
        store::Event {
            id: 42,
            deployment_id: 7,
            at: at(1_714_564_801),
            kind: "switched".into(),
            message: "web: 10% on v2".into(),
            data: json!({ "service": "web", "canary_percent": 10 }),
        }
    }

    fn event_json() -> serde_json::Value {
        json!({
            "id": 42,
            "deployment_id": 7,
            "at": "2024-05-01T12:00:01Z",
            "kind": "switched",
            "message": "web: 10% on v2",
            "data": { "service": "web", "canary_percent": 10 },
        })
    }

    fn to_json(value: &impl Serialize) -> serde_json::Value {
        serde_json::to_value(value).expect("serializes")
    }

    /// Serializes, checks the JSON, and reads it back.
    fn pin<T>(value: &T, expected: serde_json::Value)
    where
        T: Serialize + serde::de::DeserializeOwned + PartialEq + std::fmt::Debug,
    {
        assert_eq!(to_json(value), expected);
        let back: T = serde_json::from_value(expected).expect("deserializes");
        assert_eq!(&back, value);
    }

    #[test]
    fn every_error_code_round_trips_through_json_as_its_string() {
        for code in ErrorCode::ALL {
            let text = to_json(&code);
            assert_eq!(text, json!(code.as_str()), "{code:?}");
            assert_eq!(code.to_string(), code.as_str());
            let back: ErrorCode = serde_json::from_value(text).expect("deserializes");
            assert_eq!(back, code);
        }
    }

    #[test]
    fn error_code_strings_are_stable() {
        let strings: Vec<&str> = ErrorCode::ALL.iter().map(|c| c.as_str()).collect();
        assert_eq!(
            strings,
            [
                "bad_request",
                "unauthorized",
                "forbidden",
                "not_found",
                "method_not_allowed",
                "locked",
                "refused",
                "preflight_failed",
                "payload_too_large",
                "unsupported_media_type",
                "promotion_required",
                "outside_window",
                "not_leader",
                "store",
                "internal",
                "unknown",
            ]
        );
    }

    #[test]
    fn a_code_from_a_newer_daemon_reads_as_unknown() {
        let code: ErrorCode = serde_json::from_value(json!("on_fire")).expect("deserializes");
        assert_eq!(code, ErrorCode::Unknown);
        let body: ApiErrorBody =
            serde_json::from_value(json!({ "error": "on_fire", "message": "hot" }))
                .expect("deserializes");
        assert_eq!(body.error, ErrorCode::Unknown);
        assert_eq!(body.message, "hot");
    }

    #[test]
    fn each_error_code_has_one_http_status() {
        let table: Vec<(ErrorCode, u16)> = ErrorCode::ALL
            .iter()
            .map(|&c| (c, c.status().as_u16()))
            .collect();
        assert_eq!(
            table,
            [
                (ErrorCode::BadRequest, 400),
                (ErrorCode::Unauthorized, 401),
                (ErrorCode::Forbidden, 403),
                (ErrorCode::NotFound, 404),
                (ErrorCode::MethodNotAllowed, 405),
                (ErrorCode::Locked, 409),
                (ErrorCode::Refused, 409),
                (ErrorCode::PreflightFailed, 422),
                (ErrorCode::PayloadTooLarge, 413),
                (ErrorCode::UnsupportedMediaType, 415),
                (ErrorCode::PromotionRequired, 409),
                (ErrorCode::OutsideWindow, 409),
                (ErrorCode::NotLeader, 421),
                (ErrorCode::Store, 500),
                (ErrorCode::Internal, 500),
                (ErrorCode::Unknown, 500),
            ]
        );
    }

    #[test]
    fn a_bare_status_reads_as_the_code_it_most_likely_means() {
        let table = [
            (400, ErrorCode::BadRequest),
            (401, ErrorCode::Unauthorized),
            (403, ErrorCode::Forbidden),
            (404, ErrorCode::NotFound),
            (409, ErrorCode::Locked),
            (405, ErrorCode::MethodNotAllowed),
            (413, ErrorCode::PayloadTooLarge),
            (415, ErrorCode::UnsupportedMediaType),
            (421, ErrorCode::NotLeader),
            (422, ErrorCode::Internal),
            (500, ErrorCode::Internal),
            (502, ErrorCode::Internal),
        ];
        for (status, code) in table {
            let status = StatusCode::from_u16(status).expect("valid status");
            assert_eq!(ErrorCode::from_status(status), code, "{status}");
        }
    }

    #[test]
    fn error_body_json() {
        pin(
            &ApiErrorBody {
                error: ErrorCode::PreflightFailed,
                message: "image hello:v9 is not on this machine".into(),
            },
            json!({
                "error": "preflight_failed",
                "message": "image hello:v9 is not on this machine",
            }),
        );
    }

    #[test]
    fn deployment_json_from_the_store() {
        pin(&Deployment::from(store_deployment()), deployment_json());
        let running = store::Deployment {
            kind: store::DeploymentKind::Deploy,
            state: store::DeploymentState::Running,
            previous_version: None,
            reason: None,
            finished_at: None,
            ..store_deployment()
        };
        let mut expected = deployment_json();
        expected["kind"] = json!("deploy");
        expected["state"] = json!("running");
        expected["previous_version"] = json!(null);
        expected["reason"] = json!(null);
        expected["finished_at"] = json!(null);
        pin(&Deployment::from(running.clone()), expected.clone());
        // A running deployment whose release waits for approvals.
        let awaiting = store::Deployment {
            awaiting_approval: true,
            ..running
        };
        expected["state"] = json!("awaiting_approval");
        pin(&Deployment::from(awaiting.clone()), expected.clone());
        // A deploy that said its commit: both fields appear, absent otherwise.
        let with_commit = store::Deployment {
            awaiting_approval: false,
            commit_sha: Some("3f2a9c1".into()),
            commit_time: Some(at(1_714_560_000)),
            ..awaiting
        };
        expected["state"] = json!("running");
        expected["commit_sha"] = json!("3f2a9c1");
        expected["commit_time"] = json!("2024-05-01T10:40:00Z");
        pin(&Deployment::from(with_commit), expected);
    }

    #[test]
    fn deployment_kinds_and_states_are_sent_as_the_store_writes_them() {
        for &kind in store::DeploymentKind::ALL {
            let wire = DeploymentKind::from(kind);
            assert_eq!(wire.as_str(), kind.as_str());
            assert_eq!(to_json(&wire), json!(kind.as_str()));
        }
        for &state in store::DeploymentState::ALL {
            let wire = DeploymentState::from(state);
            assert_eq!(wire.as_str(), state.as_str());
            assert_eq!(to_json(&wire), json!(state.as_str()));
        }
    }

    #[test]
    fn event_json_from_the_store() {
        pin(&Event::from(store_event()), event_json());
    }

    #[test]
    fn deployment_detail_json_is_the_deployment_with_its_events() {
        let detail = DeploymentDetail::from_store(store_deployment(), vec![store_event()]);
        let mut expected = deployment_json();
        expected["events"] = json!([event_json()]);
        pin(&detail, expected);
    }

    #[test]
    fn history_json_is_a_list_of_deployments() {
        pin(
            &vec![Deployment::from(store_deployment())],
            json!([deployment_json()]),
        );
    }

    #[test]
    fn operator_lock_and_release_json() {
        let lock = OperatorLock::from(store::OperatorLock {
            environment: "production".into(),
            reason: "freeze for the audit".into(),
            locked_by: "alice@host".into(),
            since: at(1_714_564_800),
            until: Some(at(1_714_572_000)),
        });
        pin(
            &lock,
            json!({
                "environment": "production",
                "reason": "freeze for the audit",
                "locked_by": "alice@host",
                "since": "2024-05-01T12:00:00Z",
                "until": "2024-05-01T14:00:00Z",
            }),
        );
        pin(
            &Unlocked {
                environment: "production".into(),
                removed: None,
            },
            json!({ "environment": "production", "removed": null }),
        );
        let request: LockRequest = serde_json::from_value(json!({
            "environment": "production",
            "reason": "freeze",
            "requested_by": "alice@host",
        }))
        .expect("a lock request");
        assert_eq!(request.until, None);
        let deploy: DeployRequest = serde_json::from_value(
            json!({ "version": "v2", "environment": null, "requested_by": "a" }),
        )
        .expect("an older client's deploy request");
        assert!(!deploy.skip_promotion_check);
        assert_eq!(deploy.reason, None);
        pin(
            &ReleaseView {
                version: "v2".into(),
                digests: vec!["ab12".into()],
                runs: vec![ReleaseRun {
                    environment: "staging".into(),
                    deployment_id: 3,
                    digest: Some("ab12".into()),
                    outcome: DeploymentState::Succeeded,
                    from: Some(at(1_714_564_800)),
                    to: None,
                    serving: true,
                    rolled_back: false,
                }],
            },
            json!({
                "version": "v2",
                "digests": ["ab12"],
                "runs": [{
                    "environment": "staging",
                    "deployment_id": 3,
                    "digest": "ab12",
                    "outcome": "succeeded",
                    "from": "2024-05-01T12:00:00Z",
                    "to": null,
                    "serving": true,
                    "rolled_back": false,
                }],
            }),
        );
    }

    #[test]
    fn status_json() {
        let lock = store::Lock {
            environment: "production".into(),
            holder: "alice@host".into(),
            purpose: "deploy v2".into(),
            since: at(1_714_564_800),
        };
        let record = store::InstanceRecord {
            instance_id: "production-web-v2-1".into(),
            environment: "production".into(),
            service: "web".into(),
            version: "v2".into(),
            state: store::InstanceState::Serving,
            driver: "process".into(),
            handle: json!({ "pid": 4242 }),
            created_at: at(1_714_564_790),
        };
        let status = StatusResponse {
            app: "hello".into(),
            cutover_version: "0.1.0".into(),
            environments: vec![EnvironmentStatus {
                name: "production".into(),
                listen: "127.0.0.1:8080".into(),
                preview_listen: Some("127.0.0.1:8081".into()),
                awaiting_switch: Some(AwaitingSwitchView {
                    deployment_id: 7,
                    version: "v2".into(),
                    service: "web".into(),
                }),
                serving: Some("v1".into()),
                previous: None,
                since: Some(at(1_714_564_700)),
                lock: Some(lock.into()),
                operator_lock: None,
                held: Some("held: cannot write the state store: disk full".into()),
                needs_operator: None,
                awaiting_approval: None,
                traffic: vec![TrafficView {
                    service: "web".into(),
                    stable_percent: 90.0,
                    stable_versions: vec!["v1".into()],
                    canary_percent: 10.0,
                    canary_versions: vec!["v2".into()],
                    now: Some(TrafficNow {
                        window_seconds: 10,
                        stable: TrackNow {
                            requests: 900,
                            requests_per_second: 90.0,
                            error_rate: Some(0.0),
                            p95_ms: Some(4.5),
                        },
                        canary: TrackNow {
                            requests: 0,
                            requests_per_second: 0.0,
                            error_rate: None,
                            p95_ms: None,
                        },
                    }),
                }],
                instances: vec![InstanceView {
                    addr: Some("127.0.0.1:40001".into()),
                    in_flight: 3,
                    track: Some("canary".into()),
                    healthy: Some(true),
                    health_since: Some(at(1_714_564_795)),
                    ..InstanceView::from(record)
                }],
                edge_events: vec![EnvironmentEvent::from(store::EnvironmentEvent {
                    id: 3,
                    environment: "production".into(),
                    at: at(1_714_564_802),
                    kind: "certificate_reloaded".into(),
                    message: "reloaded /etc/tls/cert.pem".into(),
                    data: json!({ "cert": "/etc/tls/cert.pem" }),
                })],
                releases: vec![],
            }],
            open_files: Some(OpenFileLimit {
                soft: 65536,
                hard: 1_048_576,
            }),
        };
        pin(
            &status,
            json!({
                "app": "hello",
                "cutover_version": "0.1.0",
                "environments": [{
                    "name": "production",
                    "listen": "127.0.0.1:8080",
                    "preview_listen": "127.0.0.1:8081",
                    "awaiting_switch": {
                        "deployment_id": 7,
                        "version": "v2",
                        "service": "web",
                    },
                    "serving": "v1",
                    "previous": null,
                    "since": "2024-05-01T11:58:20Z",
                    "lock": {
                        "environment": "production",
                        "holder": "alice@host",
                        "purpose": "deploy v2",
                        "since": "2024-05-01T12:00:00Z",
                    },
                    "held": "held: cannot write the state store: disk full",
                    "needs_operator": null,
                    "traffic": [{
                        "service": "web",
                        "stable_percent": 90.0,
                        "stable_versions": ["v1"],
                        "canary_percent": 10.0,
                        "canary_versions": ["v2"],
                        "now": {
                            "window_seconds": 10,
                            "stable": {
                                "requests": 900,
                                "requests_per_second": 90.0,
                                "error_rate": 0.0,
                                "p95_ms": 4.5,
                            },
                            "canary": {
                                "requests": 0,
                                "requests_per_second": 0.0,
                                "error_rate": null,
                                "p95_ms": null,
                            },
                        },
                    }],
                    "instances": [{
                        "id": "production-web-v2-1",
                        "service": "web",
                        "version": "v2",
                        "state": "serving",
                        "addr": "127.0.0.1:40001",
                        "in_flight": 3,
                        "track": "canary",
                        "healthy": true,
                        "health_since": "2024-05-01T11:59:55Z",
                        "started_at": "2024-05-01T11:59:50Z",
                    }],
                    "edge_events": [{
                        "id": 3,
                        "environment": "production",
                        "at": "2024-05-01T12:00:02Z",
                        "kind": "certificate_reloaded",
                        "message": "reloaded /etc/tls/cert.pem",
                        "data": { "cert": "/etc/tls/cert.pem" },
                    }],
                    "releases": [],
                }],
                "open_files": { "soft": 65536, "hard": 1_048_576 },
            }),
        );
        let old: StatusResponse = serde_json::from_value(
            json!({ "app": "a", "cutover_version": "0.1.0", "environments": [] }),
        )
        .expect("an older daemon's status reads");
        assert_eq!(old.open_files, None);
    }

    #[test]
    fn release_progress_json() {
        pin(
            &ReleaseProgressView {
                deployment_id: 7,
                kind: "deploy".into(),
                version: "v2".into(),
                previous_version: Some("v1".into()),
                phase: "rolling".into(),
                paused: true,
                held: None,
                awaiting_switch: None,
                awaiting_approval: None,
                rollback_window_until: None,
                services: vec![ServiceProgressView {
                    service: "web".into(),
                    strategy: "canary".into(),
                    stage: "stepping".into(),
                    step: Some(1),
                    steps: 3,
                    canary_percent: 10.0,
                    step_started_at: Some(at(1_714_564_796)),
                    step_ends_at: None,
                    paused_left_ms: Some(25_000),
                    extensions: 0,
                }],
            },
            json!({
                "deployment_id": 7,
                "kind": "deploy",
                "version": "v2",
                "previous_version": "v1",
                "phase": "rolling",
                "paused": true,
                "held": null,
                "awaiting_switch": null,
                "awaiting_approval": null,
                "rollback_window_until": null,
                "services": [{
                    "service": "web",
                    "strategy": "canary",
                    "stage": "stepping",
                    "step": 1,
                    "steps": 3,
                    "canary_percent": 10.0,
                    "step_started_at": "2024-05-01T11:59:56Z",
                    "step_ends_at": null,
                    "paused_left_ms": 25000,
                    "extensions": 0,
                }],
            }),
        );
        let old: EnvironmentStatus = serde_json::from_value(json!({
            "name": "production", "listen": "127.0.0.1:8080", "serving": null,
            "previous": null, "since": null, "lock": null,
            "traffic": [{ "service": "web", "stable_percent": 100.0, "stable_versions": ["v1"],
                          "canary_percent": 0.0, "canary_versions": [] }],
            "instances": [{ "id": "i", "service": "web", "version": "v1", "state": "serving",
                            "addr": null, "in_flight": 0 }],
        }))
        .expect("an older daemon's environment reads");
        assert!(old.releases.is_empty());
        assert_eq!(old.traffic[0].now, None);
        assert_eq!(old.instances[0].healthy, None);
    }

    #[test]
    fn accepted_json() {
        let accepted = Accepted {
            deployment_id: 7,
            environment: "production".into(),
        };
        assert_eq!(
            to_json(&accepted),
            json!({ "deployment_id": 7, "environment": "production" })
        );
    }

    #[test]
    fn request_json() {
        let deploy = DeployRequest {
            environment: Some("production".into()),
            version: "v2".into(),
            requested_by: None,
            service: None,
            skip_promotion_check: true,
            reason: Some("hotfix".into()),
            commit: None,
            commit_time: None,
        };
        assert_eq!(
            to_json(&deploy),
            json!({
                "environment": "production",
                "version": "v2",
                "service": null,
                "skip_promotion_check": true,
                "reason": "hotfix",
            })
        );
        let with_commit = DeployRequest {
            commit: Some("3f2a9c1".into()),
            commit_time: Some(at(1_714_560_000)),
            ..deploy
        };
        assert_eq!(
            to_json(&with_commit),
            json!({
                "environment": "production",
                "version": "v2",
                "service": null,
                "skip_promotion_check": true,
                "reason": "hotfix",
                "commit": "3f2a9c1",
                "commit_time": "2024-05-01T10:40:00Z",
            })
        );
        let command = RolloutCommandRequest {
            environment: None,
            full: true,
            reason: Some("looks wrong".into()),
            requested_by: None,
        };
        assert_eq!(
            to_json(&command),
            json!({
                "environment": null,
                "full": true,
                "reason": "looks wrong",
            })
        );
        let rollback = RollbackRequest {
            environment: None,
            requested_by: None,
        };
        assert_eq!(to_json(&rollback), json!({ "environment": null }));
        // Older clients leave out the fields that have defaults.
        let old: DeployRequest = serde_json::from_value(json!({
            "environment": null, "version": "v2", "requested_by": "bob@host",
        }))
        .expect("deserializes");
        assert_eq!(old.service, None);
        let old: RolloutCommandRequest = serde_json::from_value(json!({
            "environment": null, "requested_by": "bob@host",
        }))
        .expect("deserializes");
        assert!(!old.full && old.reason.is_none());
    }

    #[test]
    fn token_and_audit_json() {
        let record = store::TokenRecord {
            name: "ci".into(),
            role: "deployer".into(),
            created_at: at(1_714_564_800),
            created_by: "admin".into(),
            expires_at: Some(at(1_714_564_900)),
            revoked_at: None,
            last_used_at: None,
        };
        let created = TokenCreated {
            info: TokenInfo::from_store(record.clone(), at(1_714_564_850)),
            token: "cutover_abc".into(),
        };
        pin(
            &created,
            json!({
                "name": "ci",
                "role": "deployer",
                "state": "active",
                "created_at": "2024-05-01T12:00:00Z",
                "created_by": "admin",
                "expires_at": "2024-05-01T12:01:40Z",
                "revoked_at": null,
                "last_used_at": null,
                "token": "cutover_abc",
            }),
        );
        assert_eq!(
            TokenInfo::from_store(record, at(1_714_564_900)).state,
            "expired"
        );
        let row = AuditRow::from(store::AuditRecord {
            id: 1,
            at: at(1_714_564_800),
            who: "ci".into(),
            role: "deployer".into(),
            action: "deploy".into(),
            environment: Some("production".into()),
            deployment_id: Some(7),
            target: Some("v2".into()),
            details: json!({ "service": null }),
            prev_hash: store::GENESIS.into(),
            hash: "ab".into(),
        });
        pin(
            &row,
            json!({
                "id": 1,
                "at": "2024-05-01T12:00:00Z",
                "who": "ci",
                "role": "deployer",
                "action": "deploy",
                "environment": "production",
                "deployment_id": 7,
                "target": "v2",
                "details": { "service": null },
                "prev_hash": store::GENESIS,
                "hash": "ab",
            }),
        );
    }
}
