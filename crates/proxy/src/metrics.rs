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
//!
//! Every series starts with [`crate::ProxyConfig::metric_labels`]: the daemon
//! sets `environment` (and `proxy`, `public` or `preview`), so two
//! environments' services of the same name are separate series. The library
//! used alone (benchmarks, tests) sets none, and its series carry only their
//! own labels (`service`, `track`, …). The labels are joined once per service
//! or proxy when a handle is first resolved, never per request.

use std::sync::OnceLock;

use metrics::{Counter, Gauge, Histogram, Label, Unit};

use crate::table::Track;

/// Requests answered, by service, track and status code (proxy-made 502/504 included).
pub const REQUESTS_TOTAL: &str = "cutover_proxy_requests_total";
/// Time from request received to response body finished, by service and track.
pub const REQUEST_DURATION_SECONDS: &str = "cutover_proxy_request_duration_seconds";
/// Responses the proxy made itself, by service, track and reason.
pub const PROXY_ERRORS_TOTAL: &str = "cutover_proxy_errors_total";

/// Requests that failed by the client's fault, by service, track and reason
/// (`bad_body`, `body_too_large`, `slow_body`, `upgrade_refused`); never
/// counted as errors.
pub const CLIENT_FAULTS_TOTAL: &str = "cutover_proxy_client_faults_total";
/// Requests whose track was forced with an honoured `X-Cutover-Track`, by
/// service and track. They are also in [`REQUESTS_TOTAL`] (and its errors in
/// [`PROXY_ERRORS_TOTAL`]) but never in the observations the analysis reads.
pub const FORCED_REQUESTS_TOTAL: &str = "cutover_proxy_forced_requests_total";

/// Requests answered before any service was chosen, by reason: `bad_host`
/// (400: missing, repeated or mismatched host) and `no_route` (404).
pub const REJECTED_TOTAL: &str = "cutover_proxy_rejected_total";

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
    metrics::describe_counter!(
        CLIENT_FAULTS_TOTAL,
        Unit::Count,
        "Requests that failed by the client's fault (malformed, cut short, too large or stalled body); not errors of the app."
    );
    metrics::describe_counter!(
        REJECTED_TOTAL,
        Unit::Count,
        "Requests cutover's proxy answered before choosing a service (bad host: 400, no route: 404)."
    );
    metrics::describe_counter!(
        FORCED_REQUESTS_TOTAL,
        Unit::Count,
        "Requests whose track was forced with X-Cutover-Track; left out of the canary analysis."
    );
    describe_connections();
}

/// The constant labels of a proxy as `metrics` labels.
pub(crate) fn constant_labels(labels: &[(String, String)]) -> Vec<Label> {
    labels
        .iter()
        .map(|(k, v)| Label::new(k.clone(), v.clone()))
        .collect()
}

/// `base` followed by `more`.
fn with(base: &[Label], more: impl IntoIterator<Item = Label>) -> Vec<Label> {
    base.iter().cloned().chain(more).collect()
}

/// Status codes 100..=599 get a slot each.
const CODES: usize = 500;

/// Cached metric handles of one track of one service.
#[derive(Debug)]
pub(crate) struct TrackMetrics {
    /// The proxy's constant labels, `service` and `track`.
    labels: Vec<Label>,
    by_code: Box<[OnceLock<Counter>]>,
    duration: OnceLock<Histogram>,
    forced: OnceLock<Counter>,
}

impl TrackMetrics {
    fn new(base: &[Label], service: &str, track: Track) -> TrackMetrics {
        TrackMetrics {
            labels: with(
                base,
                [
                    Label::new("service", service.to_owned()),
                    Label::from_static_parts("track", track.as_str()),
                ],
            ),
            by_code: (0..CODES).map(|_| OnceLock::new()).collect(),
            duration: OnceLock::new(),
            forced: OnceLock::new(),
        }
    }

    pub(crate) fn count(&self, status: u16) {
        let index = usize::from(status.clamp(100, 599) - 100);
        self.by_code[index]
            .get_or_init(|| {
                metrics::counter!(
                    REQUESTS_TOTAL,
                    with(&self.labels, [Label::new("code", status.to_string())])
                )
            })
            .increment(1);
    }

    pub(crate) fn observe_seconds(&self, seconds: f64) {
        self.duration
            .get_or_init(|| metrics::histogram!(REQUEST_DURATION_SECONDS, self.labels.clone()))
            .record(seconds);
    }

    pub(crate) fn forced(&self) {
        self.forced
            .get_or_init(|| metrics::counter!(FORCED_REQUESTS_TOTAL, self.labels.clone()))
            .increment(1);
    }

    pub(crate) fn client_fault(&self, reason: &'static str) {
        // Rare: no cache needed.
        metrics::counter!(
            CLIENT_FAULTS_TOTAL,
            with(&self.labels, [Label::from_static_parts("reason", reason)])
        )
        .increment(1);
    }

    pub(crate) fn proxy_error(&self, reason: &'static str) {
        // Rare: no cache needed.
        metrics::counter!(
            PROXY_ERRORS_TOTAL,
            with(&self.labels, [Label::from_static_parts("reason", reason)])
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
    /// The handles of `service`, under the proxy's constant labels `base`.
    pub(crate) fn new(base: &[Label], service: &str) -> ServiceMetrics {
        ServiceMetrics {
            stable: TrackMetrics::new(base, service, Track::Stable),
            canary: TrackMetrics::new(base, service, Track::Canary),
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

/// Cached handles of one proxy's series that belong to no service: requests
/// rejected before routing and the connection layer's.
#[derive(Debug)]
pub(crate) struct ProxyMetrics {
    /// The proxy's constant labels.
    labels: Vec<Label>,
    open: OnceLock<Gauge>,
    limit_reached: OnceLock<Counter>,
    first_request_timeouts: OnceLock<Counter>,
    tls_errors: OnceLock<Counter>,
    idle_h2: OnceLock<Counter>,
    idle_upgrade: OnceLock<Counter>,
}

impl ProxyMetrics {
    pub(crate) fn new(labels: Vec<Label>) -> ProxyMetrics {
        ProxyMetrics {
            labels,
            open: OnceLock::new(),
            limit_reached: OnceLock::new(),
            first_request_timeouts: OnceLock::new(),
            tls_errors: OnceLock::new(),
            idle_h2: OnceLock::new(),
            idle_upgrade: OnceLock::new(),
        }
    }

    /// The constant labels, for the services' handles.
    pub(crate) fn labels(&self) -> &[Label] {
        &self.labels
    }

    /// Counts a request answered before any service was chosen.
    pub(crate) fn rejected(&self, reason: &'static str) {
        // Rare: no cache needed.
        metrics::counter!(
            REJECTED_TOTAL,
            with(&self.labels, [Label::from_static_parts("reason", reason)])
        )
        .increment(1);
    }

    pub(crate) fn open_connections(&self) -> &Gauge {
        self.open
            .get_or_init(|| metrics::gauge!(OPEN_CONNECTIONS, self.labels.clone()))
    }

    pub(crate) fn limit_reached(&self) {
        self.limit_reached
            .get_or_init(|| metrics::counter!(CONNECTION_LIMIT_REACHED_TOTAL, self.labels.clone()))
            .increment(1);
    }

    pub(crate) fn first_request_timeout(&self) {
        self.first_request_timeouts
            .get_or_init(|| metrics::counter!(FIRST_REQUEST_TIMEOUTS_TOTAL, self.labels.clone()))
            .increment(1);
    }

    pub(crate) fn tls_handshake_error(&self) {
        self.tls_errors
            .get_or_init(|| metrics::counter!(TLS_HANDSHAKE_ERRORS_TOTAL, self.labels.clone()))
            .increment(1);
    }

    /// An idle HTTP/2 connection closed (GOAWAY).
    pub(crate) fn idle_closed_h2(&self) {
        self.idle_closed(&self.idle_h2, "h2");
    }

    /// An idle upgraded connection (tunnel) closed.
    pub(crate) fn idle_closed_upgrade(&self) {
        self.idle_closed(&self.idle_upgrade, "upgrade");
    }

    fn idle_closed(&self, cell: &OnceLock<Counter>, kind: &'static str) {
        cell.get_or_init(|| {
            metrics::counter!(
                IDLE_CLOSED_TOTAL,
                with(&self.labels, [Label::from_static_parts("kind", kind)])
            )
        })
        .increment(1);
    }
}

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
