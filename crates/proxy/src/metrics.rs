//! Prometheus metrics of the proxy, through the `metrics` facade.
//!
//! The proxy only emits; the program that embeds it installs a recorder (the
//! `cutover` binary installs `metrics-exporter-prometheus` and serves `/metrics`).
//! Handles are resolved once per service, track and status code and then cached,
//! so the hot path is an atomic add, not a registry lookup. A recorder must
//! therefore be installed before the first request a service sees.
//!
//! Names follow the Prometheus conventions: base units (seconds), `_total` on
//! counters, the label `code` for the HTTP status.

use std::sync::OnceLock;

use metrics::{Counter, Histogram, Unit};

use crate::table::Track;

/// Requests answered, by service, track and status code (proxy-made 502/504 included).
pub const REQUESTS_TOTAL: &str = "cutover_proxy_requests_total";
/// Time from request received to response body finished, by service and track.
pub const REQUEST_DURATION_SECONDS: &str = "cutover_proxy_request_duration_seconds";
/// Responses the proxy made itself, by service, track and reason.
pub const PROXY_ERRORS_TOTAL: &str = "cutover_proxy_errors_total";

/// Histogram buckets (seconds) for [`REQUEST_DURATION_SECONDS`], for the
/// recorder's configuration.
pub const DURATION_BUCKETS_SECONDS: &[f64] = &[
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
];

/// Registers descriptions and units with the installed recorder.
pub fn describe() {
    metrics::describe_counter!(
        REQUESTS_TOTAL,
        Unit::Count,
        "HTTP requests answered by cutover's proxy, by service, track and status code."
    );
    metrics::describe_histogram!(
        REQUEST_DURATION_SECONDS,
        Unit::Seconds,
        "Time from request received to response finished, as seen by cutover's proxy."
    );
    metrics::describe_counter!(
        PROXY_ERRORS_TOTAL,
        Unit::Count,
        "Responses cutover's proxy made itself (no instance, connect failure, timeout)."
    );
    describe_connections();
}

/// Status codes 100..=599 get a slot each.
const CODES: usize = 500;

/// Cached metric handles of one track of one service.
#[derive(Debug)]
pub(crate) struct TrackMetrics {
    service: String,
    track: Track,
    by_code: Box<[OnceLock<Counter>]>,
    duration: OnceLock<Histogram>,
}

impl TrackMetrics {
    fn new(service: &str, track: Track) -> TrackMetrics {
        TrackMetrics {
            service: service.to_owned(),
            track,
            by_code: (0..CODES).map(|_| OnceLock::new()).collect(),
            duration: OnceLock::new(),
        }
    }

    pub(crate) fn count(&self, status: u16) {
        let index = usize::from(status.clamp(100, 599) - 100);
        self.by_code[index]
            .get_or_init(|| {
                metrics::counter!(
                    REQUESTS_TOTAL,
                    "service" => self.service.clone(),
                    "track" => self.track.as_str(),
                    "code" => status.to_string()
                )
            })
            .increment(1);
    }

    pub(crate) fn observe_seconds(&self, seconds: f64) {
        self.duration
            .get_or_init(|| {
                metrics::histogram!(
                    REQUEST_DURATION_SECONDS,
                    "service" => self.service.clone(),
                    "track" => self.track.as_str()
                )
            })
            .record(seconds);
    }

    pub(crate) fn proxy_error(&self, reason: &'static str) {
        // Rare: no cache needed.
        metrics::counter!(
            PROXY_ERRORS_TOTAL,
            "service" => self.service.clone(),
            "track" => self.track.as_str(),
            "reason" => reason
        )
        .increment(1);
    }
}

/// Cached metric handles of one service.
#[derive(Debug)]
pub(crate) struct ServiceMetrics {
    stable: TrackMetrics,
    canary: TrackMetrics,
}

impl ServiceMetrics {
    pub(crate) fn new(service: &str) -> ServiceMetrics {
        ServiceMetrics {
            stable: TrackMetrics::new(service, Track::Stable),
            canary: TrackMetrics::new(service, Track::Canary),
        }
    }

    pub(crate) fn track(&self, track: Track) -> &TrackMetrics {
        match track {
            Track::Stable => &self.stable,
            Track::Canary => &self.canary,
        }
    }
}

// ---- Connection layer (server.rs, upgrade.rs) ----

/// Times a listener found [`crate::ProxyConfig::max_connections`] reached and
/// stopped accepting until a connection closed.
pub const CONNECTION_LIMIT_REACHED_TOTAL: &str = "cutover_proxy_connection_limit_reached_total";
/// Client connections open now (upgraded tunnels included).
pub const OPEN_CONNECTIONS: &str = "cutover_proxy_open_connections";
/// Connections closed because no whole request head came within
/// [`crate::ProxyConfig::first_request_timeout`] of accept.
pub const FIRST_REQUEST_TIMEOUTS_TOTAL: &str = "cutover_proxy_first_request_timeouts_total";
/// TLS handshakes that failed (bad client hello, no certificate, reset).
pub const TLS_HANDSHAKE_ERRORS_TOTAL: &str = "cutover_proxy_tls_handshake_errors_total";
/// Connections closed for idleness by the proxy, by `kind` (`h2`, `upgrade`).
pub const IDLE_CLOSED_TOTAL: &str = "cutover_proxy_idle_closed_total";

fn describe_connections() {
    metrics::describe_counter!(
        CONNECTION_LIMIT_REACHED_TOTAL,
        Unit::Count,
        "Times cutover's proxy reached max_connections and left new connections waiting in the backlog."
    );
    metrics::describe_gauge!(
        OPEN_CONNECTIONS,
        Unit::Count,
        "Client connections open on cutover's proxy (upgraded tunnels included)."
    );
    metrics::describe_counter!(
        FIRST_REQUEST_TIMEOUTS_TOTAL,
        Unit::Count,
        "Client connections closed by cutover's proxy because no request head came within first_request_timeout."
    );
    metrics::describe_counter!(
        TLS_HANDSHAKE_ERRORS_TOTAL,
        Unit::Count,
        "TLS handshakes with clients that failed."
    );
    metrics::describe_counter!(
        IDLE_CLOSED_TOTAL,
        Unit::Count,
        "Idle client connections closed by cutover's proxy, by kind (h2, upgrade)."
    );
}
