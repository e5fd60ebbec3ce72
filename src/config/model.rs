//! The resolved configuration: the clean, validated types the rest of cutover
//! codes against. Every default is filled in, every `${VAR}` expanded, every
//! path made absolute; nothing here carries a span or an `Option` that means
//! "not written".

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Serialize, Serializer};

use super::defaults;
use super::error::ConfigError;

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
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            listen: defaults::SERVER_LISTEN,
        }
    }
}

/// `[state]`: where cutover keeps releases, deployments, locks and its audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct StateConfig {
    /// A database URL. A `sqlite://` URL always carries an absolute path
    /// (`sqlite:///abs/dir/.cutover/state.db`) or is an in-memory database;
    /// `postgres://` URLs are passed through unchanged.
    pub url: String,
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
    /// A Docker container per instance (not supported yet).
    Docker,
    /// Kubernetes pods (not supported yet).
    Kubernetes,
}

impl DriverKind {
    /// The name used in `cutover.toml`.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Process => "process",
            Self::Docker => "docker",
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
    pub command: Vec<String>,
    /// Extra environment for every instance, `${VAR}` expanded.
    pub env: BTreeMap<String, String>,
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
        }
    }
}

/// `[environment.NAME]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct EnvironmentConfig {
    /// The proxy listener of this environment. Distinct from every other
    /// environment's and from the daemon's.
    pub listen: SocketAddr,
    /// How long the previous release stays warm for an instant rollback.
    #[serde(serialize_with = "serialize_duration")]
    pub rollback_window: Duration,
}

/// Durations serialize as the config file writes them: "30s", "10m", "1h 30m".
fn serialize_duration<S: Serializer>(
    duration: &Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&humantime::format_duration(*duration))
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

    /// The services that receive traffic through the proxy, by name.
    pub fn http_services(&self) -> impl Iterator<Item = (&str, &ServiceConfig)> {
        self.services
            .iter()
            .filter(|(_, service)| service.kind == ServiceKind::Http)
            .map(|(name, service)| (name.as_str(), service))
    }
}
