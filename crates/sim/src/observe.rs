//! Scripted observations: what the proxy would have seen of each track.
//!
//! A service has a request rate (with quiet spells), and each release an error
//! rate and a latency profile (p50/p95/p99), changed for a while by spikes.
//! [`measure`] integrates that over a window against the table's history, so
//! a track gets requests in proportion to its share of the table at each
//! moment: a 5 % step of a quiet service really is short of data.

use cutover_core::{Millis, Stats};

use crate::table::{Release, Route, Track};

/// One release's behaviour when nothing is wrong.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Profile {
    /// Errors per request (0.0–1.0).
    pub error_rate: f64,
    /// Median latency, ms.
    pub p50_ms: f64,
    /// 95th percentile latency, ms.
    pub p95_ms: f64,
    /// 99th percentile latency, ms.
    pub p99_ms: f64,
}

/// A temporary change of one release's behaviour.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spike {
    /// Which release misbehaves.
    pub release: Release,
    /// From (inclusive).
    pub from: Millis,
    /// Until (exclusive).
    pub until: Millis,
    /// How.
    pub kind: SpikeKind,
}

/// How a spike changes a release.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SpikeKind {
    /// This error rate instead of the profile's.
    Errors(f64),
    /// Latencies multiplied by this.
    Latency(f64),
}

/// Everything scripted about one service's traffic.
#[derive(Debug, Clone, PartialEq)]
pub struct Script {
    /// Requests per second to the service (all tracks together).
    pub rate_rps: f64,
    /// Spells without any traffic, `[from, until)`.
    pub quiet: Vec<(Millis, Millis)>,
    /// The old release.
    pub old: Profile,
    /// The new release.
    pub new: Profile,
    /// Spikes, on either release.
    pub spikes: Vec<Spike>,
}

impl Script {
    fn rate_at(&self, t: Millis) -> f64 {
        if self.quiet.iter().any(|&(a, b)| a <= t && t < b) {
            0.0
        } else {
            self.rate_rps
        }
    }

    fn profile_at(&self, release: Release, t: Millis) -> Profile {
        let mut p = match release {
            Release::Old => self.old,
            Release::New => self.new,
        };
        for s in &self.spikes {
            if s.release == release && s.from <= t && t < s.until {
                match s.kind {
                    SpikeKind::Errors(rate) => p.error_rate = p.error_rate.max(rate),
                    SpikeKind::Latency(factor) => {
                        p.p50_ms *= factor;
                        p.p95_ms *= factor;
                        p.p99_ms *= factor;
                    }
                }
            }
        }
        p
    }

    /// Every time at which the script changes, in `(from, to)`.
    fn breakpoints(&self, from: Millis, to: Millis, out: &mut Vec<Millis>) {
        let spikes = self.spikes.iter().flat_map(|s| [s.from, s.until]);
        let quiet = self.quiet.iter().flat_map(|&(a, b)| [a, b]);
        out.extend(spikes.chain(quiet).filter(|&t| from < t && t < to));
    }
}

/// The route in force at `t`, from a history of `(since, route)` in time order.
pub fn route_at(history: &[(Millis, Route)], t: Millis) -> Route {
    let i = history.partition_point(|&(since, _)| since <= t);
    match i.checked_sub(1).and_then(|i| history.get(i)) {
        Some(&(_, route)) => route,
        None => Route::OLD,
    }
}

/// What the proxy saw of `track` of a service over `[from, to)`. Requests that
/// went to the track while it served `release` only: the canary statistic is
/// about the new release on the canary track, the stable one about the old
/// release on the stable track.
pub fn measure(
    script: &Script,
    history: &[(Millis, Route)],
    track: Track,
    release: Release,
    from: Millis,
    to: Millis,
) -> Stats {
    let mut cuts = vec![from, to];
    script.breakpoints(from, to, &mut cuts);
    cuts.extend(
        history
            .iter()
            .map(|&(t, _)| t)
            .filter(|&t| from < t && t < to),
    );
    cuts.sort_unstable();
    cuts.dedup();

    let (mut requests, mut errors) = (0.0_f64, 0.0_f64);
    let mut parts: Vec<(f64, Profile)> = Vec::new();
    for w in cuts.windows(2) {
        let (a, b) = (w[0], w[1]);
        let route = route_at(history, a);
        let serves = match track {
            Track::Canary => Release::New,
            Track::Stable => route.stable,
        };
        if serves != release {
            continue;
        }
        let share = f64::from(route.track_bp(track)) / 10_000.0;
        let n = script.rate_at(a) * share * b.since(a).as_secs_f64();
        if n <= 0.0 {
            continue;
        }
        let p = script.profile_at(release, a);
        requests += n;
        errors += n * p.error_rate;
        parts.push((n, p));
    }
    let requests = requests.round() as u64;
    let errors = (errors.round() as u64).min(requests);
    let quantile = |q: f64| (requests > 0).then(|| mixture_quantile(&parts, q));
    Stats {
        requests,
        errors,
        p50_ms: quantile(0.50),
        p95_ms: quantile(0.95),
        p99_ms: quantile(0.99),
    }
}

/// The `q` quantile of a mixture of latency distributions, each known by its
/// p50/p95/p99 (linear in between, up to 1.5 × p99) and weighted by requests.
fn mixture_quantile(parts: &[(f64, Profile)], q: f64) -> f64 {
    let total: f64 = parts.iter().map(|(w, _)| w).sum();
    let cdf = |x: f64| -> f64 {
        parts
            .iter()
            .map(|(w, p)| w * profile_cdf(p, x))
            .sum::<f64>()
            / total
    };
    let mut hi = parts
        .iter()
        .map(|(_, p)| p.p99_ms * 1.5)
        .fold(0.0_f64, f64::max);
    let mut lo = 0.0;
    for _ in 0..48 {
        let mid = (lo + hi) / 2.0;
        if cdf(mid) < q {
            lo = mid;
        } else {
            hi = mid;
        }
    }
    hi
}

fn profile_cdf(p: &Profile, x: f64) -> f64 {
    let knots = [
        (0.0, 0.0),
        (p.p50_ms, 0.50),
        (p.p95_ms, 0.95),
        (p.p99_ms, 0.99),
        (p.p99_ms * 1.5, 1.0),
    ];
    if x >= p.p99_ms * 1.5 {
        return 1.0;
    }
    for k in knots.windows(2) {
        let ((x0, y0), (x1, y1)) = (k[0], k[1]);
        if x < x1 {
            return if x1 > x0 {
                y0 + (y1 - y0) * (x - x0) / (x1 - x0)
            } else {
                y1
            };
        }
    }
    1.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn script(rate_rps: f64) -> Script {
        let profile = Profile {
            error_rate: 0.01,
            p50_ms: 10.0,
            p95_ms: 40.0,
            p99_ms: 80.0,
        };
        Script {
            rate_rps,
            quiet: Vec::new(),
            old: profile,
            new: Profile {
                error_rate: 0.10,
                ..profile
            },
            spikes: Vec::new(),
        }
    }

    #[test]
    fn requests_follow_the_canary_share_over_time() {
        // 10 rps; 0–10 s all old, 10–20 s 20 % canary.
        let history = [
            (Millis(0), Route::OLD),
            (Millis(10_000), Route::split(2_000)),
        ];
        let s = script(10.0);
        let canary = measure(
            &s,
            &history,
            Track::Canary,
            Release::New,
            Millis(0),
            Millis(20_000),
        );
        assert_eq!(canary.requests, 20);
        assert_eq!(canary.errors, 2);
        let stable = measure(
            &s,
            &history,
            Track::Stable,
            Release::Old,
            Millis(0),
            Millis(20_000),
        );
        assert_eq!(stable.requests, 180);
        assert!((stable.p95_ms.unwrap_or(0.0) - 40.0).abs() < 0.01);
    }

    #[test]
    fn a_quiet_spell_has_no_data() {
        let mut s = script(10.0);
        s.quiet.push((Millis(0), Millis(60_000)));
        let history = [(Millis(0), Route::split(500))];
        let canary = measure(
            &s,
            &history,
            Track::Canary,
            Release::New,
            Millis(0),
            Millis(30_000),
        );
        assert_eq!(canary, Stats::default());
    }

    #[test]
    fn a_latency_spike_moves_the_tail_first() {
        let mut s = script(100.0);
        s.spikes.push(Spike {
            release: Release::New,
            from: Millis(0),
            until: Millis(1_000),
            kind: SpikeKind::Latency(10.0),
        });
        let history = [(Millis(0), Route::split(10_000))];
        // 10 % of the window at 10× latency: p99 moves a lot, p50 barely.
        let c = measure(
            &s,
            &history,
            Track::Canary,
            Release::New,
            Millis(0),
            Millis(10_000),
        );
        assert!(c.p50_ms.unwrap_or(0.0) < 15.0, "{c:?}");
        assert!(c.p99_ms.unwrap_or(0.0) > 200.0, "{c:?}");
    }
}
