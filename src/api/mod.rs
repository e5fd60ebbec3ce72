//! The daemon's HTTP API: the JSON types both sides share (this file), the
//! server (`server.rs`), the streamed instance output (`logs.rs`), the client
//! the CLI uses (`client.rs`) and the bearer token that guards it (`token.rs`).
//!
//! Every route lives under `/v1`. Errors are JSON `{ "error": CODE, "message": … }`
//! with an HTTP status that matches the CLI's exit codes (see `crate::exit`).

pub mod client;
pub mod logs;
pub mod server;
pub mod token;

use serde::{Deserialize, Serialize};

use crate::store::{Deployment, Event, Lock};

/// `POST /v1/deployments`: deploy a version to an environment.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeployRequest {
    /// Environment name; may be omitted when there is one.
    pub environment: Option<String>,
    /// Version label to deploy.
    pub version: String,
    /// Who asks (user@host), for the lock and the history.
    pub requested_by: String,
    /// Roll only this service (default: every service of the release).
    #[serde(default)]
    pub service: Option<String>,
}

/// `POST /v1/rollout/{pause|resume|promote|abort}`: steer the running rollout.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RolloutCommandRequest {
    /// Environment name; may be omitted when there is one.
    pub environment: Option<String>,
    /// With `promote`: straight to 100 %.
    #[serde(default)]
    pub full: bool,
    /// With `abort`: why, for the history.
    #[serde(default)]
    pub reason: Option<String>,
    /// Who asks.
    pub requested_by: String,
}

/// `POST /v1/rollback`: back to the previous release.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RollbackRequest {
    /// Environment name; may be omitted when there is one.
    pub environment: Option<String>,
    /// Who asks.
    pub requested_by: String,
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

/// A deployment started: where to follow it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Accepted {
    /// The deployment's id.
    pub deployment_id: i64,
    /// Its environment.
    pub environment: String,
}

/// A deployment with its events.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct DeploymentDetail {
    /// The deployment.
    #[serde(flatten)]
    pub deployment: Deployment,
    /// Its events, oldest first.
    pub events: Vec<Event>,
}

/// One instance as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

/// One environment as `status` shows it.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct EnvironmentStatus {
    /// Environment name.
    pub name: String,
    /// Where its proxy listens.
    pub listen: String,
    /// Version serving all traffic, if any.
    pub serving: Option<String>,
    /// The version before it (warm while within the rollback window).
    pub previous: Option<String>,
    /// Since when `serving` serves.
    pub since: Option<jiff::Timestamp>,
    /// The deployment lock, if held.
    pub lock: Option<Lock>,
    /// `held: cannot write the state store: …` while a release of this
    /// environment waits for the store to take its state.
    #[serde(default)]
    pub held: Option<String>,
    /// Why a deployment of this environment waits for an operator (its
    /// saved state could not be restored), if one does.
    #[serde(default)]
    pub needs_operator: Option<String>,
    /// How each HTTP service's traffic is split right now.
    pub traffic: Vec<TrafficView>,
    /// Instances the daemon runs for this environment.
    pub instances: Vec<InstanceView>,
}

/// One service's split, as the proxy's table has it now.
#[derive(Debug, Clone, Serialize, Deserialize)]
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
}

/// `GET /v1/status`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusResponse {
    /// App name.
    pub app: String,
    /// cutover's version.
    pub cutover_version: String,
    /// Every environment.
    pub environments: Vec<EnvironmentStatus>,
}

/// Error body of every non-2xx answer.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ApiErrorBody {
    /// Machine-readable code: `locked`, `not_found`, `bad_request`, `unauthorized`, `internal`.
    pub error: String,
    /// What went wrong, for people.
    pub message: String,
}
