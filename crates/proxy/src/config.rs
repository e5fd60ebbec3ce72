//! Limits and timeouts of the proxy, with named defaults.

use std::time::Duration;

/// Default for [`ProxyConfig::connect_timeout`].
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);
/// Default for [`ProxyConfig::response_header_timeout`].
pub const DEFAULT_RESPONSE_HEADER_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`ProxyConfig::client_idle_timeout`].
pub const DEFAULT_CLIENT_IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// Default for [`ProxyConfig::upstream_idle_timeout`].
pub const DEFAULT_UPSTREAM_IDLE_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`ProxyConfig::max_header_bytes`].
pub const DEFAULT_MAX_HEADER_BYTES: usize = 64 * 1024;
/// Default for [`ProxyConfig::shutdown_timeout`].
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Default for [`ProxyConfig::suspect_for`].
pub const DEFAULT_SUSPECT_FOR: Duration = Duration::from_secs(5);
/// Default for [`ProxyConfig::observation_history`].
pub const DEFAULT_OBSERVATION_HISTORY: Duration = Duration::from_secs(300);
/// Default for [`ProxyConfig::max_idle_upstream_connections`].
pub const DEFAULT_MAX_IDLE_UPSTREAM_CONNECTIONS: usize = 512;

/// How the proxy treats clients and upstreams.
#[derive(Debug, Clone)]
pub struct ProxyConfig {
    /// Longest wait for a TCP connection to an upstream; past it the instance is
    /// marked suspect and the client gets 502.
    pub connect_timeout: Duration,
    /// Longest wait from sending a request upstream to its response headers;
    /// past it the client gets 504.
    pub response_header_timeout: Duration,
    /// A client connection idle this long between requests (or this slow to send
    /// a request's headers) is closed.
    pub client_idle_timeout: Duration,
    /// Pooled upstream connections idle this long are closed.
    pub upstream_idle_timeout: Duration,
    /// Largest request head (request line and headers) accepted, in bytes; a
    /// larger one gets 431.
    pub max_header_bytes: usize,
    /// On shutdown, how long in-flight requests and upgraded connections get to
    /// finish before they are cut.
    pub shutdown_timeout: Duration,
    /// How long an instance that refused a connection is avoided.
    pub suspect_for: Duration,
    /// How much observation history each instance keeps (one-second slots).
    pub observation_history: Duration,
    /// Idle keep-alive connections kept per upstream instance.
    pub max_idle_upstream_connections: usize,
}

impl Default for ProxyConfig {
    fn default() -> Self {
        ProxyConfig {
            connect_timeout: DEFAULT_CONNECT_TIMEOUT,
            response_header_timeout: DEFAULT_RESPONSE_HEADER_TIMEOUT,
            client_idle_timeout: DEFAULT_CLIENT_IDLE_TIMEOUT,
            upstream_idle_timeout: DEFAULT_UPSTREAM_IDLE_TIMEOUT,
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            suspect_for: DEFAULT_SUSPECT_FOR,
            observation_history: DEFAULT_OBSERVATION_HISTORY,
            max_idle_upstream_connections: DEFAULT_MAX_IDLE_UPSTREAM_CONNECTIONS,
        }
    }
}
