//! The default of every optional key in `cutover.toml`, in one place.
//!
//! The resolver fills missing values from here, the JSON Schema advertises
//! them, and `docs/config.md` repeats them for people.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// `[server] listen`: where the daemon's API listens.
pub const SERVER_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7070);
/// `[state] url`: cutover's own database, relative to the config file's directory.
pub const STATE_URL: &str = "sqlite://.cutover/state.db";
/// `replicas`: instances per service.
pub const REPLICAS: u32 = 1;
/// The largest `replicas` accepted.
pub const MAX_REPLICAS: u32 = 64;
/// `health.path`.
pub const HEALTH_PATH: &str = "/health";
/// `health.interval`.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// `health.timeout`.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// `health.healthy`: consecutive passes before an instance counts as healthy.
pub const HEALTH_HEALTHY: u32 = 2;
/// `health.unhealthy`: consecutive failures before an instance counts as unhealthy.
pub const HEALTH_UNHEALTHY: u32 = 3;
/// `health.start_timeout`: how long a new instance may take to become healthy.
pub const HEALTH_START_TIMEOUT: Duration = Duration::from_secs(60);
/// `drain_timeout`: how long in-flight requests may take to finish on an old instance.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// `stop_timeout`: grace between SIGTERM and SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// `path_prefix`: the route prefix of an http service.
pub const PATH_PREFIX: &str = "/";
/// `rollback_window`: how long the previous release stays warm.
pub const ROLLBACK_WINDOW: Duration = Duration::from_secs(10 * 60);

/// A duration as the config file writes it ("30s"), for the JSON Schema.
pub(crate) fn duration_text(duration: Duration) -> String {
    humantime::format_duration(duration).to_string()
}
