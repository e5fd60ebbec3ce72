//! Limits and timeouts of the proxy, with named defaults.

use std::time::Duration;

use ipnet::IpNet;

use crate::track_override::TrackOverride;

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

/// Default for [`ProxyConfig::max_request_body`]: 100 MiB, a generous
/// `client_max_body_size` (nginx's own default is 1 MiB).
pub const DEFAULT_MAX_REQUEST_BODY: u64 = 100 * 1024 * 1024;
/// Default for [`ProxyConfig::first_request_timeout`] (HAProxy's recommended
/// `timeout http-request` is 10 s).
pub const DEFAULT_FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// Default for [`ProxyConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// Default for [`ProxyConfig::h2_max_concurrent_streams`] (nginx's
/// `http2_max_concurrent_streams`).
pub const DEFAULT_H2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// Default for [`ProxyConfig::h2_idle_timeout`] (nginx's former
/// `http2_idle_timeout`).
pub const DEFAULT_H2_IDLE_TIMEOUT: Duration = Duration::from_secs(180);
/// Default for [`ProxyConfig::upgrade_idle_timeout`].
pub const DEFAULT_UPGRADE_IDLE_TIMEOUT: Duration = Duration::from_secs(300);

/// Default for [`ProxyConfig::http1_fast_path`].
pub const DEFAULT_HTTP1_FAST_PATH: bool = true;

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
    /// Peers whose `X-Forwarded-*`, `Forwarded` and `X-Real-IP` headers are
    /// believed (a load balancer in front). Empty (the default): nobody's are;
    /// the app receives what the proxy itself saw. See docs/proxy.md, "What the
    /// app receives".
    pub trusted_proxies: Vec<IpNet>,
    /// Who may force a track with `X-Cutover-Track`. `None` (the default): no
    /// one; the header is ignored. Either way it never reaches the app.
    pub track_override: Option<TrackOverride>,
    /// Largest request body accepted, in bytes, for services that set no
    /// limit of their own ([`crate::ServiceSpec::max_request_body`]); a larger
    /// one gets 413.
    pub max_request_body: u64,

    // Connection layer (server.rs, upgrade.rs).
    /// On TLS listeners, every response gets `Strict-Transport-Security:
    /// max-age=<seconds>` unless the app set one. `None`: no header.
    pub hsts: Option<Duration>,
    /// Deadline for a new connection's first request head, measured from
    /// accept: covers the TLS handshake and the HTTP/2 preface. A connection
    /// that has not sent a whole request head by then is closed. (On
    /// HTTP/1.1, `client_idle_timeout` also bounds the wait for a head: the
    /// shorter one applies.)
    pub first_request_timeout: Duration,
    /// Most client connections open at once over all listeners of this proxy
    /// (upgraded tunnels included). Beyond it the proxy stops accepting; new
    /// connections wait in the kernel's backlog.
    pub max_connections: usize,
    /// Most concurrent streams per HTTP/2 connection.
    pub h2_max_concurrent_streams: u32,
    /// An HTTP/2 connection with no open stream for this long is closed
    /// gracefully (GOAWAY); pings do not count as activity.
    pub h2_idle_timeout: Duration,
    /// An upgraded connection (WebSocket) with no byte either way for this long
    /// is closed.
    pub upgrade_idle_timeout: Duration,

    /// Labels put first on every Prometheus series this proxy emits (per
    /// service and per listener): `cutover serve` sets `environment` and
    /// `proxy` (`public` or `preview`), so proxies in one process keep
    /// separate series. Empty (the default, the library used alone): none;
    /// the series carry only their own labels. Names must be valid
    /// Prometheus label names other than the proxy's own (`service`,
    /// `track`, `code`, `reason`, `kind`).
    pub metric_labels: Vec<(String, String)>,

    /// Serve HTTP/1.1 requests on the proxy's own fast path (`h1/`: heads
    /// parsed in place, upstream connections driven by the client
    /// connection's task) and hand to hyper only HTTP/2 and the requests it
    /// does not handle. `false`: hyper serves every connection. The answers
    /// are the same either way; this exists to compare the two.
    pub http1_fast_path: bool,
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
            trusted_proxies: Vec::new(),
            track_override: None,
            max_request_body: DEFAULT_MAX_REQUEST_BODY,
            hsts: None,
            first_request_timeout: DEFAULT_FIRST_REQUEST_TIMEOUT,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            h2_max_concurrent_streams: DEFAULT_H2_MAX_CONCURRENT_STREAMS,
            h2_idle_timeout: DEFAULT_H2_IDLE_TIMEOUT,
            upgrade_idle_timeout: DEFAULT_UPGRADE_IDLE_TIMEOUT,
            metric_labels: Vec::new(),
            http1_fast_path: DEFAULT_HTTP1_FAST_PATH,
        }
    }
}

/// `at + timeout`, or about thirty years on when that would overflow: a
/// timeout from a caller's configuration never panics the clock arithmetic.
pub(crate) fn deadline_after(at: tokio::time::Instant, timeout: Duration) -> tokio::time::Instant {
    const FAR: Duration = Duration::from_secs(30 * 365 * 24 * 60 * 60);
    at.checked_add(timeout)
        .or_else(|| at.checked_add(FAR))
        .unwrap_or(at)
}
