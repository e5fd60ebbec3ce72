//! The resolved configuration: the clean, validated types the rest of cutover
//! codes against. Every default is filled in, every `${VAR}` expanded, every
//! path made absolute; nothing here carries a span or an `Option` that means
//! "not written".

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use ipnet::IpNet;
use serde::{Serialize, Serializer};

use super::defaults;
use super::error::ConfigError;
use super::redact::{REDACTED, redact_url, redact_urls_in};

/// A whole `cutover.toml`, resolved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Config {
    /// The file as given on the command line (used in messages).
    pub path: PathBuf,
    /// The absolute directory of the file; relative paths in it are resolved against this.
    pub base_dir: PathBuf,
    /// `[app]`.
    pub app: AppConfig,
    /// `[server]`: the daemon.
    pub server: ServerConfig,
    /// `[state]`: cutover's own database.
    pub state: StateConfig,
    /// `[service.NAME]`, by name. Never empty.
    pub services: BTreeMap<String, ServiceConfig>,
    /// `[environment.NAME]`, by name. Never empty.
    pub environments: BTreeMap<String, EnvironmentConfig>,
    /// `[database.NAME]`, by name. May be empty.
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// `[notify]`: webhooks and Slack. Empty when not written.
    pub notify: super::notify::NotifyConfig,
    /// `[host.NAME]`: per-daemon addresses (docs/cluster.md). Empty when
    /// not written; applied by [`Config::for_host`].
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub hosts: BTreeMap<String, HostConfig>,
}

/// `[host.NAME]`: where one daemon of several sharing this file listens.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostConfig {
    /// Instead of `[server] listen`.
    pub listen: Option<SocketAddr>,
    /// Instead of `[server] metrics_listen`.
    pub metrics_listen: Option<SocketAddr>,
    /// Per environment, instead of its `listen` / `preview_listen`.
    pub environments: BTreeMap<String, HostEnvironmentConfig>,
}

/// `[host.NAME.environment.ENV]`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct HostEnvironmentConfig {
    /// Instead of the environment's `listen`.
    pub listen: Option<SocketAddr>,
    /// Instead of the environment's `preview_listen`.
    pub preview_listen: Option<SocketAddr>,
}

impl Config {
    /// This config as the daemon of host `name` uses it: `[host.NAME]`'s
    /// addresses replace `[server]`'s and the environments'. Fails, saying
    /// which hosts there are, when the file has no `[host.NAME]`.
    pub fn for_host(mut self, name: &str) -> Result<Config, String> {
        let Some(host) = self.hosts.get(name).cloned() else {
            let known: Vec<&str> = self.hosts.keys().map(String::as_str).collect();
            return Err(if known.is_empty() {
                format!(
                    "--host {name:?}: {} has no [host.NAME] table; add [host.{name}] with this daemon's addresses (docs/cluster.md)",
                    self.path.display()
                )
            } else {
                format!(
                    "--host {name:?}: {} has no [host.{name}]; its hosts are {}",
                    self.path.display(),
                    known.join(", ")
                )
            });
        };
        if let Some(listen) = host.listen {
            self.server.listen = listen;
        }
        if let Some(metrics) = host.metrics_listen {
            self.server.metrics_listen = Some(metrics);
        }
        for (env, over) in host.environments {
            if let Some(e) = self.environments.get_mut(&env) {
                if let Some(listen) = over.listen {
                    e.listen = listen;
                }
                if let Some(preview) = over.preview_listen {
                    e.preview_listen = Some(preview);
                }
            }
        }
        Ok(self)
    }
}

/// `[app]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AppConfig {
    /// The application's name.
    pub name: String,
}

/// `[server]`: the daemon (`cutover serve`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServerConfig {
    /// Where the daemon's HTTP API listens.
    pub listen: SocketAddr,
    /// Serve the API over HTTPS with this certificate and key.
    pub tls: Option<TlsFilesConfig>,
    /// A `listen` off loopback without `tls` is allowed (with a warning at
    /// every start). A loaded config off loopback has `tls` or this.
    pub allow_plaintext: bool,
    /// Also serve `/metrics` alone, without a token, on this address.
    pub metrics_listen: Option<SocketAddr>,
    /// Serve the web dashboard under `/ui` (docs/dashboard.md).
    pub dashboard: bool,
    /// Serve the dashboard on this address (with the API's `tls`) instead
    /// of on `listen`.
    pub dashboard_listen: Option<SocketAddr>,
    /// How long a dashboard sign-in lasts.
    pub dashboard_session: std::time::Duration,
    /// How the daemon writes its log (`--log-format` wins).
    pub log_format: LogFormat,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: defaults::SERVER_LISTEN,
            tls: None,
            allow_plaintext: false,
            metrics_listen: None,
            dashboard: true,
            dashboard_listen: None,
            dashboard_session: defaults::DASHBOARD_SESSION,
            log_format: LogFormat::Text,
        }
    }
}

/// How far the daemon's API is exposed, from `[server]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ApiExposure {
    /// `listen` is a loopback address: only this machine reaches it.
    Loopback,
    /// Off loopback, over HTTPS.
    Tls,
    /// Off loopback, plain HTTP, allowed by `allow_plaintext = true`.
    PlaintextAllowed,
    /// Off loopback, plain HTTP, not allowed: refused.
    PlaintextRefused,
}

impl ServerConfig {
    /// Whether `listen` is reachable only from this machine.
    pub fn is_loopback(&self) -> bool {
        self.listen.ip().to_canonical().is_loopback()
    }

    /// How far the API is exposed; see [`ApiExposure`].
    pub fn exposure(&self) -> ApiExposure {
        if self.tls.is_some() {
            if self.is_loopback() {
                ApiExposure::Loopback
            } else {
                ApiExposure::Tls
            }
        } else if self.is_loopback() {
            ApiExposure::Loopback
        } else if self.allow_plaintext {
            ApiExposure::PlaintextAllowed
        } else {
            ApiExposure::PlaintextRefused
        }
    }
}

/// The message for an API off loopback without TLS, naming both fixes.
impl ServerConfig {
    /// The dashboard's own listener is off loopback, without `tls` and
    /// without `allow_plaintext`.
    pub fn dashboard_plaintext_refused(&self) -> bool {
        self.dashboard
            && self
                .dashboard_listen
                .is_some_and(|a| !a.ip().to_canonical().is_loopback())
            && self.tls.is_none()
            && !self.allow_plaintext
    }
}

pub(crate) fn plaintext_api_help() -> &'static str {
    "the API carries the bearer token and can deploy: give it a certificate with [server] tls = { cert = \"api.pem\", key = \"api.key\" }, or, if a network you trust protects it, set [server] allow_plaintext = true (a warning is logged at every start), or listen on 127.0.0.1"
}

/// A certificate chain and its private key, as PEM files.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TlsFilesConfig {
    /// The certificate chain (leaf first), absolute.
    pub cert: PathBuf,
    /// Its private key, absolute.
    pub key: PathBuf,
}

/// `[environment.NAME] tls = { … }`: where the proxy's certificates come
/// from. At least one of `files` and `acme`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvTlsConfig {
    /// Certificate files: `cert`/`key` first, then each of `certificates`, in
    /// the order written. A request gets the first whose names match its SNI.
    pub files: Vec<TlsFilesConfig>,
    /// Automatic certificates.
    pub acme: Option<AcmeConfig>,
}

/// `tls.acme = { … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct AcmeConfig {
    /// The account's contact address.
    pub email: String,
    /// The names to get a certificate for, lowercase, without duplicates. Never empty.
    pub domains: Vec<String>,
    /// The ACME directory URL (https).
    pub directory: String,
    /// A PEM file of the CA of the directory's HTTPS certificate, absolute.
    pub directory_ca: Option<PathBuf>,
    /// How the CA checks the names. `Http01` only with a `redirect_listen`.
    pub challenge: AcmeChallenge,
    /// Renew this long before expiry.
    #[serde(serialize_with = "serialize_duration")]
    pub renew_before: Duration,
}

/// How an ACME CA checks that we hold a name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum AcmeChallenge {
    /// A token at `http://NAME/.well-known/acme-challenge/…`, on `redirect_listen`.
    #[serde(rename = "http-01")]
    Http01,
    /// A special certificate for ALPN `acme-tls/1`, on `listen`.
    #[serde(rename = "tls-alpn-01")]
    TlsAlpn01,
}

impl AcmeChallenge {
    /// The name used in `cutover.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http01 => "http-01",
            Self::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

impl fmt::Display for AcmeChallenge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// `track_override = { … }`: who may pin a request to a track with
/// `X-Cutover-Track`. At least one of the two is set.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackOverrideConfig {
    /// The secret a request must present (at least 16 bytes).
    pub secret: Option<Secret>,
    /// Peers whose header is honoured without the secret.
    #[serde(serialize_with = "serialize_nets")]
    pub trusted_sources: Vec<IpNet>,
}

/// A secret from the config: never printed. `Debug`, `Display` and
/// `Serialize` show `***`; [`Secret::expose`] is the one way to the value.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(value: impl Into<String>) -> Secret {
        Secret(value.into())
    }

    /// The value, to compare with what a request presents (in constant time).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Secret(***)")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl Serialize for Secret {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str("***")
    }
}

/// `[environment.NAME.limits]`: what one client may hold of the proxy.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct LimitsConfig {
    /// A new connection's first request head (HTTP/2 preface included) must
    /// arrive within this, from accept. Greater than zero.
    #[serde(serialize_with = "serialize_duration")]
    pub first_request_timeout: Duration,
    /// Open client connections at most. At least 1.
    pub max_connections: u32,
    /// Concurrent streams per HTTP/2 connection. At least 1.
    pub h2_max_concurrent_streams: u32,
    /// An HTTP/2 connection without an open stream is closed after this. Greater than zero.
    #[serde(serialize_with = "serialize_duration")]
    pub h2_idle_timeout: Duration,
    /// An upgraded connection with no bytes either way is closed after this. Greater than zero.
    #[serde(serialize_with = "serialize_duration")]
    pub upgrade_idle_timeout: Duration,
    /// An HTTP/1.1 connection waiting for its next request is closed after this. Greater than zero.
    #[serde(serialize_with = "serialize_duration")]
    pub idle_timeout: Duration,
    /// The largest request body in bytes, for services that set none. At least 1.
    pub max_request_body: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        Self {
            first_request_timeout: defaults::FIRST_REQUEST_TIMEOUT,
            max_connections: defaults::MAX_CONNECTIONS,
            h2_max_concurrent_streams: defaults::H2_MAX_CONCURRENT_STREAMS,
            h2_idle_timeout: defaults::H2_IDLE_TIMEOUT,
            upgrade_idle_timeout: defaults::UPGRADE_IDLE_TIMEOUT,
            idle_timeout: defaults::IDLE_TIMEOUT,
            max_request_body: defaults::MAX_REQUEST_BODY,
        }
    }
}

/// `[state]`: where cutover keeps releases, deployments, locks and its audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateConfig {
    /// A database URL. A `sqlite://` URL always carries an absolute path
    /// (`sqlite:///abs/dir/.cutover/state.db`) or is an in-memory database;
    /// `postgres://` URLs are passed through unchanged. May hold a password:
    /// serialized (`check --json`) without it.
    #[serde(serialize_with = "serialize_redacted_url")]
    pub url: String,
    /// `[state] backup = { … }`: backups of the store itself (`cutover backup
    /// create --state`); `None` without it.
    pub backup: Option<BackupConfig>,
}

/// Whether a service receives traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ServiceKind {
    /// Receives HTTP traffic through cutover's proxy.
    Http,
    /// Receives no traffic.
    Worker,
}

impl ServiceKind {
    /// The name used in `cutover.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Http => "http",
            Self::Worker => "worker",
        }
    }
}

impl fmt::Display for ServiceKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What starts and stops a service's instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum DriverKind {
    /// A local process per instance.
    Process,
    /// A Docker container per instance.
    Docker,
    /// A Docker Swarm service per release, a task per instance.
    Swarm,
    /// Kubernetes pods (not supported yet).
    Kubernetes,
}

impl DriverKind {
    /// The name used in `cutover.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Docker => "docker",
            Self::Swarm => "swarm",
            Self::Kubernetes => "kubernetes",
        }
    }
}

impl fmt::Display for DriverKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// `[service.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ServiceConfig {
    /// `http` or `worker`.
    pub kind: ServiceKind,
    /// What runs the instances.
    pub driver: DriverKind,
    /// Program and arguments, `${VAR}` expanded. `{port}` and `{version}` are
    /// left in place for the driver to fill. Never empty for the process driver.
    /// Serialized with the passwords of URLs in it redacted.
    #[serde(serialize_with = "serialize_redacted_command")]
    pub command: Vec<String>,
    /// Extra environment for every instance, `${VAR}` expanded. Serialized
    /// with every value as `***`.
    #[serde(serialize_with = "serialize_redacted_env")]
    pub env: BTreeMap<String, String>,
    /// process driver: instances get the daemon's whole environment (less
    /// cutover's own variables) instead of the allowlist.
    pub inherit_env: bool,
    /// When this service's instance logs are rotated.
    pub logs: LogsConfig,
    /// Instances per release, 1 to 64.
    pub replicas: u32,
    /// How instances are health-checked.
    pub health: HealthConfig,
    /// How long in-flight requests may take to finish on an instance that is leaving.
    #[serde(serialize_with = "serialize_duration")]
    pub drain_timeout: Duration,
    /// Grace between SIGTERM and SIGKILL.
    #[serde(serialize_with = "serialize_duration")]
    pub stop_timeout: Duration,
    /// The `Host` this service's route matches; `None` matches any host.
    pub host: Option<String>,
    /// The path prefix this service's route matches; starts with `/`.
    pub path_prefix: String,
    /// Within one release, this service is rolled out after these services
    /// (names of other services, as written). See [`Config::rollout_order`].
    pub after: Vec<String>,
    /// How a new release of this service takes over from the previous one.
    pub rollout: RolloutConfig,
    /// The container settings; `Some` exactly when `driver` is docker or
    /// swarm (then with its `swarm` settings).
    pub docker: Option<super::container::DockerConfig>,
    /// The largest request body in bytes; `None`: the environment's
    /// `limits.max_request_body`. Always `None` for workers.
    pub max_request_body: Option<u64>,
    /// `Upgrade` protocols tunnelled to the app, lowercase (default
    /// `["websocket"]`; never `h2c`).
    pub allowed_upgrades: Vec<String>,
    /// Files of the release, as written (relative to the config file,
    /// `{version}` left in place): hashed into the release's digest.
    pub artifacts: Vec<String>,
}

/// `[logs]`, or a service's `logs = { … }`: when an instance's log file is
/// rotated (process driver) and the container's json-file log options
/// (docker driver).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct LogsConfig {
    /// Rotate once the log is larger than this many bytes. At least 1 KiB.
    #[serde(serialize_with = "serialize_size")]
    pub max_size: u64,
    /// Rotated files kept beside the live one (`.1` … `.N`); 0 keeps none.
    pub max_files: u32,
}

impl Default for LogsConfig {
    fn default() -> Self {
        Self {
            max_size: defaults::LOG_MAX_SIZE,
            max_files: defaults::LOG_MAX_FILES,
        }
    }
}

/// `health = { … }` of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct HealthConfig {
    /// The HTTP path probed; starts with `/`.
    pub path: String,
    /// Time between probes. Greater than zero.
    #[serde(serialize_with = "serialize_duration")]
    pub interval: Duration,
    /// How long one probe may take. Greater than zero.
    #[serde(serialize_with = "serialize_duration")]
    pub timeout: Duration,
    /// Consecutive passes before an instance counts as healthy. At least 1.
    pub healthy: u32,
    /// Consecutive failures before an instance counts as unhealthy. At least 1.
    pub unhealthy: u32,
    /// How long a new instance may take to become healthy. Greater than zero.
    #[serde(serialize_with = "serialize_duration")]
    pub start_timeout: Duration,
    /// Workers: a command whose exit status 0 means healthy; empty when not
    /// written (a worker is then healthy while it runs).
    #[serde(serialize_with = "serialize_redacted_command")]
    pub command: Vec<String>,
}

impl Default for HealthConfig {
    fn default() -> Self {
        Self {
            path: defaults::HEALTH_PATH.to_owned(),
            interval: defaults::HEALTH_INTERVAL,
            timeout: defaults::HEALTH_TIMEOUT,
            healthy: defaults::HEALTH_HEALTHY,
            unhealthy: defaults::HEALTH_UNHEALTHY,
            start_timeout: defaults::HEALTH_START_TIMEOUT,
            command: Vec::new(),
        }
    }
}

/// How a new release takes over from the previous one.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// Start the new release beside the old one, then move all traffic at once.
    #[default]
    BlueGreen,
    /// Move traffic to the new release in steps, judging each step.
    Canary,
}

impl Strategy {
    /// The name used in `cutover.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::BlueGreen => "blue-green",
            Self::Canary => "canary",
        }
    }
}

impl fmt::Display for Strategy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// What happens to a canary step that is still inconclusive (too few
/// requests) after `max_inconclusive` extensions.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum InconclusivePolicy {
    /// The rollout fails and traffic goes back to the previous release.
    #[default]
    Fail,
    /// The rollout pauses at its current step until someone decides.
    Pause,
}

impl InconclusivePolicy {
    /// The name used in `cutover.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Fail => "fail",
            Self::Pause => "pause",
        }
    }
}

impl fmt::Display for InconclusivePolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// How `cutover serve` writes its log: `[server] log_format` (or
/// `cutover serve --log-format`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    /// Lines for people.
    #[default]
    Text,
    /// One JSON object per line, for log shippers.
    Json,
}

impl LogFormat {
    /// The name used in `cutover.toml` and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Text => "text",
            Self::Json => "json",
        }
    }
}

/// When traffic moves to a healthy new release: `[service.X.rollout] switch`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum SwitchMode {
    /// As soon as its instances are healthy.
    #[default]
    Auto,
    /// After `cutover switch`: the rollout holds before any traffic moves.
    Manual,
}

impl SwitchMode {
    /// The name used in `cutover.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Auto => "auto",
            Self::Manual => "manual",
        }
    }
}

/// What a restarted daemon does with a canary rollout it finds half-done.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartPolicy {
    /// Send all traffic back to the previous release.
    #[default]
    Rollback,
    /// Carry on from the step it was at.
    Resume,
}

impl RestartPolicy {
    /// The name used in `cutover.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::Resume => "resume",
        }
    }
}

impl fmt::Display for RestartPolicy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// `rollout = { … }` of a service.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RolloutConfig {
    /// Blue-green (the default) or canary.
    pub strategy: Strategy,
    /// Canary: the percent of traffic on the new release at each step,
    /// strictly increasing from 1 and ending at 100. Empty for blue-green.
    pub steps: Vec<u8>,
    /// How long each step lasts before it is judged. Greater than zero.
    #[serde(serialize_with = "serialize_duration")]
    pub step_duration: Duration,
    /// How often a step is checked for fast failure. Greater than zero and
    /// shorter than `step_duration`.
    #[serde(serialize_with = "serialize_duration")]
    pub check_interval: Duration,
    /// How many times a step with too few requests is extended.
    pub max_inconclusive: u32,
    /// What happens after `max_inconclusive` extensions.
    pub on_inconclusive: InconclusivePolicy,
    /// What a restarted daemon does with a canary it finds half-done.
    pub on_daemon_restart: RestartPolicy,
    /// Whether traffic moves by itself once the new release is healthy, or
    /// waits for `cutover switch`.
    pub switch: SwitchMode,
    /// The thresholds each step is judged by.
    pub analysis: AnalysisConfig,
}

impl Default for RolloutConfig {
    /// Blue-green, with no steps.
    fn default() -> Self {
        Self {
            strategy: Strategy::BlueGreen,
            steps: Vec::new(),
            step_duration: defaults::STEP_DURATION,
            check_interval: defaults::CHECK_INTERVAL,
            max_inconclusive: defaults::MAX_INCONCLUSIVE,
            on_inconclusive: InconclusivePolicy::Fail,
            on_daemon_restart: RestartPolicy::Rollback,
            switch: SwitchMode::Auto,
            analysis: AnalysisConfig::default(),
        }
    }
}

/// `rollout.analysis = { … }`: what makes a step pass or fail. `None` is a
/// threshold that is not checked.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AnalysisConfig {
    /// The largest share of failed requests (0 to 1) on the new release.
    pub max_error_rate: Option<f64>,
    /// The largest 95th percentile latency on the new release.
    #[serde(serialize_with = "serialize_optional_duration")]
    pub max_p95: Option<Duration>,
    /// The largest 99th percentile latency on the new release.
    #[serde(serialize_with = "serialize_optional_duration")]
    pub max_p99: Option<Duration>,
    /// How much higher (0 to 1, absolute) the new release's error rate may
    /// be than the previous release's.
    pub max_error_rate_increase: Option<f64>,
    /// How many times the previous release's latency the new release's may
    /// be. At least 1.
    pub max_latency_ratio: Option<f64>,
    /// The fewest requests a step must see before its thresholds are judged.
    /// At least 1.
    pub min_requests: u64,
    /// An error rate (0 to 1) that fails a step at once, without waiting for
    /// its end. At least `max_error_rate`; defaults to 3 × `max_error_rate`
    /// (at most 1) when that is set.
    pub abort_error_rate: Option<f64>,
}

impl Default for AnalysisConfig {
    /// No thresholds.
    fn default() -> Self {
        Self {
            max_error_rate: None,
            max_p95: None,
            max_p99: None,
            max_error_rate_increase: None,
            max_latency_ratio: None,
            min_requests: defaults::MIN_REQUESTS,
            abort_error_rate: None,
        }
    }
}

/// The loader never produces a NaN (every number is range-checked, and NaN
/// is in no range), so equality is an equivalence on loaded configs. This
/// keeps `ServiceConfig` and `Config` `Eq`, as they were before analysis
/// thresholds existed.
impl Eq for AnalysisConfig {}

/// `[environment.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentConfig {
    /// The proxy listener of this environment. Distinct from every other
    /// environment's and from the daemon's.
    pub listen: SocketAddr,
    /// How long the previous release stays warm for an instant rollback.
    #[serde(serialize_with = "serialize_duration")]
    pub rollback_window: Duration,
    /// A plain HTTP listener that redirects to HTTPS (308) and answers ACME
    /// HTTP-01. Only with `tls`.
    pub redirect_listen: Option<SocketAddr>,
    /// A plain HTTP proxy listener that routes each service to its newest
    /// release (the new instances while a rollout runs or awaits the
    /// switch). Distinct from every other listener.
    pub preview_listen: Option<SocketAddr>,
    /// `Strict-Transport-Security: max-age=…` on HTTPS answers. Only with `tls`.
    #[serde(serialize_with = "serialize_optional_duration")]
    pub hsts: Option<Duration>,
    /// TLS on `listen`; `None`: plain HTTP.
    pub tls: Option<EnvTlsConfig>,
    /// Peers whose forwarding headers are kept (appended to); empty: nobody's.
    #[serde(serialize_with = "serialize_nets")]
    pub trusted_proxies: Vec<IpNet>,
    /// Who may pin a request to a track; `None`: nobody (`X-Cutover-Track`
    /// is ignored and removed).
    pub track_override: Option<TrackOverrideConfig>,
    /// Connection and request limits of the proxy.
    pub limits: LimitsConfig,
    /// The settings every service has in this environment: the service's
    /// `[service.NAME]` with this environment's
    /// `[environment.ENV.service.NAME]` applied (`replicas` replaced, `env`
    /// and `health` merged, this environment's values winning). Filled by the
    /// loader for every service; empty only in an `EnvironmentConfig::new`.
    /// Read it through [`Config::service_in`] / [`Config::services_in`].
    pub services: BTreeMap<String, ServiceConfig>,
    /// The databases a deploy to this environment migrates and backs up:
    /// each top-level `[database.DB]` with this environment's
    /// `[environment.ENV.database.DB]` merged over it, and the environment's
    /// own databases. Read it through [`Config::databases_in`].
    pub databases: BTreeMap<String, DatabaseConfig>,
    /// The environment a release must have run in first; `None`: any release.
    pub promote_from: Option<String>,
    /// How long it must have served there (only with `promote_from`).
    #[serde(serialize_with = "serialize_duration")]
    pub soak: Duration,
    /// When deploys are allowed; empty: always.
    pub deploy_windows: Vec<super::window::DeployWindow>,
    /// The approval gate of deploys to this environment; `None`: no approvals.
    pub approvals: Option<ApprovalsConfig>,
}

/// `[environment.NAME] approvals = { … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ApprovalsConfig {
    /// Distinct approvers needed (1 to 10), none of them the deployer.
    pub required: u32,
    /// How long a deployment waits for them.
    #[serde(serialize_with = "serialize_duration")]
    pub expires: Duration,
    /// Where the deployment waits.
    pub at: ApprovalAt,
}

/// Where a deployment waits for its approvals.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum ApprovalAt {
    /// Before anything changes (before the backup).
    #[default]
    Start,
    /// The new release started and healthy, before traffic moves.
    Switch,
}

impl ApprovalAt {
    /// The name used in `cutover.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Start => "start",
            Self::Switch => "switch",
        }
    }
}

impl EnvironmentConfig {
    /// An environment listening on `listen` with every other key at its
    /// default (plain HTTP, no trusted peers, no track override).
    pub fn new(listen: SocketAddr) -> EnvironmentConfig {
        EnvironmentConfig {
            listen,
            rollback_window: defaults::ROLLBACK_WINDOW,
            redirect_listen: None,
            preview_listen: None,
            hsts: None,
            tls: None,
            trusted_proxies: Vec::new(),
            track_override: None,
            limits: LimitsConfig::default(),
            services: BTreeMap::new(),
            databases: BTreeMap::new(),
            promote_from: None,
            soak: Duration::ZERO,
            deploy_windows: Vec::new(),
            approvals: None,
        }
    }

    /// The largest request body `service` accepts in this environment.
    pub fn max_request_body(&self, service: &ServiceConfig) -> u64 {
        service
            .max_request_body
            .unwrap_or(self.limits.max_request_body)
    }
}

/// Networks serialize as text: "10.0.0.0/8", "192.0.2.7/32".
fn serialize_nets<S: Serializer>(nets: &[IpNet], serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(nets.iter().map(ToString::to_string))
}

/// `[database.NAME]`: one of the application's databases and its migrations.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DatabaseConfig {
    /// A database URL, `${VAR}` expanded. A `sqlite://` URL always carries an
    /// absolute path (or names an in-memory database); `postgres://` URLs are
    /// passed through unchanged. May hold a password: print
    /// [`DatabaseConfig::display_url`] instead.
    #[serde(rename = "url", serialize_with = "serialize_redacted_url")]
    pub url: String,
    /// The migrations folder, absolute.
    pub migrations: PathBuf,
    /// PostgreSQL `lock_timeout` of each migration statement; for SQLite, how
    /// long to wait for the write lock.
    #[serde(serialize_with = "serialize_duration")]
    pub lock_timeout: Duration,
    /// PostgreSQL `statement_timeout` of each migration statement.
    #[serde(serialize_with = "serialize_duration")]
    pub statement_timeout: Duration,
    /// How long a second migrator waits for the migrator lock.
    #[serde(serialize_with = "serialize_duration")]
    pub lock_wait: Duration,
    /// Retries of a statement that hit `lock_timeout`, with backoff.
    pub retries: u32,
    /// `backup = { … }`; `None` when the table has no `backup`.
    pub backup: Option<BackupConfig>,
    /// `shared = true`: several environments may use this same database
    /// (same URL); otherwise the loader refuses two environments on one URL.
    pub shared: bool,
    /// `lint = { deny, warn, off }`: migration lint rules moved between levels.
    pub lint: LintLevels,
}

/// `[database.NAME] lint = { … }`: which migration lint rules block a deploy
/// (`deny`), are only printed (`warn`), or are not checked (`off`). A rule
/// not listed keeps its own level (style advice warns, the rest denies).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct LintLevels {
    /// Rules that block.
    pub deny: Vec<String>,
    /// Rules that are printed only.
    pub warn: Vec<String>,
    /// Rules not checked.
    pub off: Vec<String>,
}

/// `[database.NAME] backup = { … }`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct BackupConfig {
    /// Take a backup before every deploy.
    pub before_deploy: bool,
    /// Where backups and manifests go, absolute.
    pub dir: PathBuf,
    /// age recipients written inline.
    pub recipients: Vec<String>,
    /// A file of recipients, absolute.
    pub recipients_file: Option<PathBuf>,
    /// Keep at least the newest N backups.
    pub keep_last: u32,
    /// Also keep every backup younger than this.
    #[serde(serialize_with = "serialize_optional_duration")]
    pub keep_within: Option<Duration>,
    /// Verify each new backup right after it is made.
    pub verify: bool,
    /// Public keys (`ed25519:…`) whose backup signatures are trusted.
    pub signers: Vec<String>,
}

impl DatabaseConfig {
    /// Whether the database is PostgreSQL (otherwise SQLite).
    pub fn is_postgres(&self) -> bool {
        self.url.starts_with("postgres://") || self.url.starts_with("postgresql://")
    }

    /// The URL without its password, for messages and output.
    pub fn display_url(&self) -> String {
        redact_url(&self.url)
    }
}

fn serialize_redacted_url<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(url))
}

/// A command with the URLs in its words redacted ([`redact_urls_in`]).
fn serialize_redacted_command<S: Serializer>(
    command: &[String],
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_seq(command.iter().map(|word| redact_urls_in(word)))
}

/// An `env` table with every value shown as `***`: the names are useful,
/// the values may be secrets.
fn serialize_redacted_env<S: Serializer>(
    env: &BTreeMap<String, String>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_map(env.keys().map(|k| (k, REDACTED)))
}

/// Sizes serialize as the config file writes them: "10m", "1g".
fn serialize_size<S: Serializer>(bytes: &u64, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&defaults::size_text(*bytes))
}

/// Durations serialize as the config file writes them: "30s", "10m", "1h 30m".
fn serialize_duration<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&defaults::duration_text(*duration))
}

/// [`serialize_duration`] for an optional duration; `None` is `null`.
fn serialize_optional_duration<S: Serializer>(
    duration: &Option<Duration>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match duration {
        Some(duration) => serialize_duration(duration, serializer),
        None => serializer.serialize_none(),
    }
}

impl Config {
    /// The environment to act on: `name` if given, otherwise the only one.
    ///
    /// `None` is allowed only when the file defines exactly one environment;
    /// every error lists the names there are.
    pub fn environment(
        &self,
        name: Option<&str>,
    ) -> Result<(&str, &EnvironmentConfig), ConfigError> {
        let known = || self.environments.keys().cloned().collect::<Vec<_>>();
        match name {
            Some(name) => self
                .environments
                .get_key_value(name)
                .map(|(name, environment)| (name.as_str(), environment))
                .ok_or_else(|| ConfigError::unknown_environment(name, known())),
            None => {
                let mut all = self.environments.iter();
                match (all.next(), all.next()) {
                    (Some((name, environment)), None) => Ok((name.as_str(), environment)),
                    _ => Err(ConfigError::environment_required(known())),
                }
            }
        }
    }

    /// The database to act on: `name` if given, otherwise the only one.
    ///
    /// `None` is allowed only when the file defines exactly one database;
    /// every error lists the names there are.
    pub fn database(&self, name: Option<&str>) -> Result<(&str, &DatabaseConfig), ConfigError> {
        pick_database(&self.databases, name)
    }

    /// The settings of service `name` in environment `env`: its
    /// `[service.NAME]` with the environment's overrides applied. An unknown
    /// environment gets the service as written.
    pub fn service_in(&self, env: &str, name: &str) -> Option<&ServiceConfig> {
        self.services_in(env).get(name)
    }

    /// Every service's settings in environment `env` (see
    /// [`EnvironmentConfig::services`]); the services as written for an
    /// unknown environment.
    pub fn services_in(&self, env: &str) -> &BTreeMap<String, ServiceConfig> {
        match self.environments.get(env) {
            Some(environment) if !environment.services.is_empty() => &environment.services,
            _ => &self.services,
        }
    }

    /// The databases a deploy to `env` migrates and backs up (see
    /// [`EnvironmentConfig::databases`]); the top-level ones for an unknown
    /// environment.
    pub fn databases_in(&self, env: &str) -> &BTreeMap<String, DatabaseConfig> {
        match self.environments.get(env) {
            Some(environment) => &environment.databases,
            None => &self.databases,
        }
    }

    /// The database a local command (`cutover migrate`, `cutover backup`)
    /// acts on: database `name` (or the only one) of environment `env`. With
    /// no `env`, every environment that has the database must use the same
    /// one (same URL and backup folder), else the error lists the
    /// environments to choose from. Returns the environment (when one was
    /// chosen or there is only one), the database's name and its settings.
    pub fn database_for(
        &self,
        env: Option<&str>,
        name: Option<&str>,
    ) -> Result<(Option<&str>, &str, &DatabaseConfig), ConfigError> {
        if let Some(env) = env {
            let (env, environment) = self.environment(Some(env))?;
            let (name, database) = pick_database(&environment.databases, name)?;
            return Ok((Some(env), name, database));
        }
        // Every database name any environment has, for `--db` and its errors.
        let mut all: BTreeMap<&str, Vec<(&str, &DatabaseConfig)>> = BTreeMap::new();
        for (env, environment) in &self.environments {
            for (db, database) in &environment.databases {
                all.entry(db.as_str())
                    .or_default()
                    .push((env.as_str(), database));
            }
        }
        let known = || all.keys().map(|k| (*k).to_owned()).collect::<Vec<_>>();
        let (name, versions) = match name {
            Some(name) => all
                .get_key_value(name)
                .ok_or_else(|| ConfigError::unknown_database(name, known()))?,
            None => {
                let mut names = all.iter();
                match (names.next(), names.next()) {
                    (Some(only), None) => only,
                    _ => return Err(ConfigError::database_required(known())),
                }
            }
        };
        let Some(&(first_env, first)) = versions.first() else {
            return Err(ConfigError::database_required(known()));
        };
        let same = versions.iter().all(|(_, database)| {
            database.url == first.url
                && database.backup.as_ref().map(|b| &b.dir) == first.backup.as_ref().map(|b| &b.dir)
        });
        if !same {
            let envs = versions.iter().map(|(env, _)| (*env).to_owned()).collect();
            return Err(ConfigError::database_environment_required(name, envs));
        }
        let env = (self.environments.len() == 1).then_some(first_env);
        Ok((env, name, first))
    }

    /// The services that receive traffic through the proxy, by name.
    pub fn http_services(&self) -> impl Iterator<Item = (&str, &ServiceConfig)> {
        self.services
            .iter()
            .filter(|(_, service)| service.kind == ServiceKind::Http)
            .map(|(name, service)| (name.as_str(), service))
    }
}

/// Database `name` of `databases`, or the only one.
fn pick_database<'a>(
    databases: &'a BTreeMap<String, DatabaseConfig>,
    name: Option<&str>,
) -> Result<(&'a str, &'a DatabaseConfig), ConfigError> {
    let known = || databases.keys().cloned().collect::<Vec<_>>();
    match name {
        Some(name) => databases
            .get_key_value(name)
            .map(|(name, database)| (name.as_str(), database))
            .ok_or_else(|| ConfigError::unknown_database(name, known())),
        None => {
            let mut all = databases.iter();
            match (all.next(), all.next()) {
                (Some((name, database)), None) => Ok((name.as_str(), database)),
                _ => Err(ConfigError::database_required(known())),
            }
        }
    }
}
