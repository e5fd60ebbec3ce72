//! Observations for analysis: per instance, response counts by status class,
//! proxy-made errors, and latency, over a sliding window of recent seconds.
//!
//! What the analysis must not see never gets here: requests whose track was
//! forced with `X-Cutover-Track` are not recorded at all, and requests that
//! failed by the client's fault (a malformed, cut-short or too large body) are
//! only counted in [`Observation::client_faults`], outside the request count
//! and the error rate.
//!
//! The window is a ring of one-second slots, each with its own counters and HDR
//! histogram. Recording touches one slot; a slot older than the ring is reset on
//! reuse. Reading merges the slots that fall inside the asked span, so error rate
//! and p50/p95/p99 over "the last N seconds" cost a few array additions, at any
//! moment, without stopping recording for long.

use std::time::{Duration, Instant};

use hdrhistogram::Histogram;

/// Latencies are recorded in microseconds, up to this bound (longer ones are
/// clamped to it: a minute is "very slow" for any quantile a gate reads).
const MAX_LATENCY_US: u64 = 60_000_000;
/// Two significant digits: 1 % resolution on every quantile.
const SIGNIFICANT_DIGITS: u8 = 2;
/// Width of one slot of the ring.
pub const SLOT_WIDTH: Duration = Duration::from_secs(1);

/// What happened to one request, as recorded for observations.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Outcome {
    /// The upstream answered with this status after this long (to the end of
    /// the response body).
    Response { status: u16, latency: Duration },
    /// The proxy answered by itself (connect failure, timeout).
    ProxyError,
    /// The request failed by the client's fault (malformed, cut short or too
    /// large body); never an error of the instance.
    ClientFault,
}

/// Response counts by status class.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatusClasses {
    /// 1xx.
    pub informational: u64,
    /// 2xx.
    pub success: u64,
    /// 3xx.
    pub redirection: u64,
    /// 4xx.
    pub client_error: u64,
    /// 5xx answered by the upstream.
    pub server_error: u64,
}

impl StatusClasses {
    fn add(&mut self, status: u16) {
        match status / 100 {
            1 => self.informational += 1,
            2 => self.success += 1,
            3 => self.redirection += 1,
            4 => self.client_error += 1,
            _ => self.server_error += 1,
        }
    }

    fn merge(&mut self, other: &StatusClasses) {
        self.informational += other.informational;
        self.success += other.success;
        self.redirection += other.redirection;
        self.client_error += other.client_error;
        self.server_error += other.server_error;
    }

    /// Sum over all classes.
    pub fn total(&self) -> u64 {
        self.informational + self.success + self.redirection + self.client_error + self.server_error
    }
}

/// Counts and latency quantiles over a span of recent time.
#[derive(Debug, Clone)]
pub struct Observation {
    /// The span asked for (clamped to what the ring keeps).
    pub span: Duration,
    /// Upstream responses by status class.
    pub statuses: StatusClasses,
    /// Responses the proxy made itself (502, 504) for lack of an upstream answer.
    pub proxy_errors: u64,
    /// Requests that failed by the client's fault (malformed, cut short or too
    /// large request body). Not part of [`Observation::requests`] nor of the
    /// error rate: a client cannot make an instance look broken.
    pub client_faults: u64,
    latency_us: Histogram<u32>,
}

impl Observation {
    pub(crate) fn empty(span: Duration) -> Observation {
        Observation {
            span,
            statuses: StatusClasses::default(),
            proxy_errors: 0,
            client_faults: 0,
            latency_us: new_histogram(),
        }
    }

    /// All requests answered: upstream responses plus proxy errors.
    pub fn requests(&self) -> u64 {
        self.statuses.total() + self.proxy_errors
    }

    /// Server errors (upstream 5xx plus proxy-made errors) per request; `None`
    /// when there were no requests, which is "no data", not "no errors".
    pub fn error_rate(&self) -> Option<f64> {
        let n = self.requests();
        (n > 0).then(|| (self.statuses.server_error + self.proxy_errors) as f64 / n as f64)
    }

    /// Latency at quantile `q` (0.0 to 1.0) of upstream responses; `None` with none.
    pub fn latency_quantile(&self, q: f64) -> Option<Duration> {
        (!self.latency_us.is_empty())
            .then(|| Duration::from_micros(self.latency_us.value_at_quantile(q)))
    }

    /// Median latency.
    pub fn p50(&self) -> Option<Duration> {
        self.latency_quantile(0.50)
    }

    /// 95th percentile latency.
    pub fn p95(&self) -> Option<Duration> {
        self.latency_quantile(0.95)
    }

    /// 99th percentile latency.
    pub fn p99(&self) -> Option<Duration> {
        self.latency_quantile(0.99)
    }

    /// Adds another observation's counts and latencies to this one.
    pub fn merge(&mut self, other: &Observation) {
        self.statuses.merge(&other.statuses);
        self.proxy_errors += other.proxy_errors;
        self.client_faults += other.client_faults;
        // Both histograms share bounds, so adding cannot fail.
        let _ = self.latency_us.add(&other.latency_us);
    }
}

fn new_histogram() -> Histogram<u32> {
    Histogram::new_with_bounds(1, MAX_LATENCY_US, SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

#[derive(Debug)]
struct Slot {
    /// Which second (since the window's epoch) this slot holds; `u64::MAX` = none.
    second: u64,
    statuses: StatusClasses,
    proxy_errors: u64,
    client_faults: u64,
    /// Allocated on the first latency recorded in this slot (about 10 KiB), so
    /// an idle instance costs almost nothing.
    latency_us: Option<Histogram<u32>>,
}

impl Slot {
    fn reset(&mut self, second: u64) {
        self.second = second;
        self.statuses = StatusClasses::default();
        self.proxy_errors = 0;
        self.client_faults = 0;
        if let Some(h) = &mut self.latency_us {
            h.reset();
        }
    }
}

/// The ring of slots for one instance.
#[derive(Debug)]
pub(crate) struct Window {
    epoch: Instant,
    slots: Vec<Slot>,
}

impl Window {
    /// A window that keeps `keep` of history (rounded up to whole seconds).
    pub(crate) fn new(epoch: Instant, keep: Duration) -> Window {
        let n = keep.as_secs().max(1) as usize + usize::from(keep.subsec_nanos() > 0);
        // One extra slot: the current second is only partly filled.
        let slots = (0..=n)
            .map(|_| Slot {
                second: u64::MAX,
                statuses: StatusClasses::default(),
                proxy_errors: 0,
                client_faults: 0,
                latency_us: None,
            })
            .collect();
        Window { epoch, slots }
    }

    fn second(&self, now: Instant) -> u64 {
        now.saturating_duration_since(self.epoch).as_secs()
    }

    pub(crate) fn record(&mut self, now: Instant, outcome: Outcome) {
        let second = self.second(now);
        let len = self.slots.len() as u64;
        let slot = &mut self.slots[(second % len) as usize];
        if slot.second != second {
            slot.reset(second);
        }
        match outcome {
            Outcome::Response { status, latency } => {
                slot.statuses.add(status);
                let us = u64::try_from(latency.as_micros())
                    .unwrap_or(MAX_LATENCY_US)
                    .clamp(1, MAX_LATENCY_US);
                let _ = slot.latency_us.get_or_insert_with(new_histogram).record(us);
            }
            Outcome::ProxyError => slot.proxy_errors += 1,
            Outcome::ClientFault => slot.client_faults += 1,
        }
    }

    /// Observations over the last `span` (including the current, partial second).
    pub(crate) fn read(&self, now: Instant, span: Duration) -> Observation {
        let mut obs = Observation::empty(span);
        self.merge_into(now, span, &mut obs);
        obs
    }

    pub(crate) fn merge_into(&self, now: Instant, span: Duration, into: &mut Observation) {
        let current = self.second(now);
        let want = span
            .as_secs()
            .max(1)
            .saturating_add(u64::from(span.subsec_nanos() > 0));
        let want = want.min(self.slots.len() as u64 - 1);
        // Slots for seconds (current - want, current]: `want` whole seconds back
        // plus the current partial one would over-count, so the current second
        // counts as one of them.
        let oldest = current.saturating_sub(want.saturating_sub(1));
        for slot in &self.slots {
            if slot.second != u64::MAX && slot.second >= oldest && slot.second <= current {
                into.statuses.merge(&slot.statuses);
                into.proxy_errors += slot.proxy_errors;
                into.client_faults += slot.client_faults;
                if let Some(h) = &slot.latency_us {
                    let _ = into.latency_us.add(h);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(ms: u64) -> Outcome {
        Outcome::Response {
            status: 200,
            latency: Duration::from_millis(ms),
        }
    }

    #[test]
    fn no_requests_is_no_data_not_zero_errors() {
        let t0 = Instant::now();
        let w = Window::new(t0, Duration::from_secs(10));
        let obs = w.read(t0, Duration::from_secs(5));
        assert_eq!(obs.requests(), 0);
        assert_eq!(obs.error_rate(), None);
        assert_eq!(obs.p99(), None);
    }

    #[test]
    fn quantiles_and_error_rate_over_span() {
        let t0 = Instant::now();
        let mut w = Window::new(t0, Duration::from_secs(10));
        for i in 1..=100 {
            w.record(t0, ok(i));
        }
        for _ in 0..5 {
            w.record(
                t0,
                Outcome::Response {
                    status: 503,
                    latency: Duration::from_millis(1),
                },
            );
        }
        w.record(t0, Outcome::ProxyError);
        w.record(t0, Outcome::ClientFault);
        let obs = w.read(t0, Duration::from_secs(1));
        assert_eq!(obs.requests(), 106);
        assert_eq!(obs.client_faults, 1);
        assert_eq!(obs.statuses.success, 100);
        assert_eq!(obs.statuses.server_error, 5);
        let rate = obs.error_rate().expect("has data");
        assert!((rate - 6.0 / 106.0).abs() < 1e-9);
        let p50 = obs.p50().expect("has data").as_millis();
        assert!((45..=55).contains(&p50), "p50 {p50}");
        let p99 = obs.p99().expect("has data").as_millis();
        assert!((97..=101).contains(&p99), "p99 {p99}");
    }

    #[test]
    fn old_seconds_fall_out_of_the_span_and_the_ring() {
        let t0 = Instant::now();
        let mut w = Window::new(t0, Duration::from_secs(5));
        w.record(t0, ok(10));
        let later = t0 + Duration::from_secs(3);
        w.record(later, ok(10));
        assert_eq!(w.read(later, Duration::from_secs(1)).requests(), 1);
        assert_eq!(w.read(later, Duration::from_secs(4)).requests(), 2);
        // After the ring wraps, the first second's slot is reused and reset.
        let much_later = t0 + Duration::from_secs(6);
        w.record(much_later, ok(10));
        assert_eq!(w.read(much_later, Duration::from_secs(60)).requests(), 2);
        let way_later = t0 + Duration::from_secs(100);
        assert_eq!(w.read(way_later, Duration::from_secs(60)).requests(), 0);
        assert_eq!(w.read(way_later, Duration::MAX).requests(), 0);
        assert_eq!(w.read(much_later, Duration::MAX).requests(), 2);
    }
}
