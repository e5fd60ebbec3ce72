//! The live figures of `cutover status`: per service and track, what the
//! proxy served in the last [`WINDOW`] — request rate, error rate, p95 —
//! read from the same observations the canary analysis reads
//! (`cutover_proxy::Proxy::observe_track`: requests whose track a client
//! forced and failures a client caused are never counted).

use std::time::Duration;

use cutover_proxy::{Observation, Proxy, Track};

use super::wire::{TrackNow, TrafficNow};

/// The span the figures cover: the proxy's last ten one-second slots, the
/// current one partly filled.
pub const WINDOW: Duration = Duration::from_secs(10);

/// What `service`'s two tracks served in the last [`WINDOW`].
pub fn traffic_now(proxy: &Proxy, service: &str) -> TrafficNow {
    TrafficNow {
        window_seconds: WINDOW.as_secs(),
        stable: track_now(&proxy.observe_track(service, Track::Stable, WINDOW)),
        canary: track_now(&proxy.observe_track(service, Track::Canary, WINDOW)),
    }
}

/// One track's figures from an observation over [`WINDOW`].
pub fn track_now(o: &Observation) -> TrackNow {
    let requests = o.requests();
    TrackNow {
        requests,
        requests_per_second: requests as f64 / WINDOW.as_secs_f64(),
        error_rate: o.error_rate(),
        p95_ms: o.p95().map(|d| d.as_secs_f64() * 1000.0),
    }
}
