//! Judging a canary: observations in, a verdict out. Pure arithmetic.
//!
//! Lessons from Argo Rollouts (#1466, #4479): no data is *inconclusive*, never
//! a pass and never a failure.

use serde::{Deserialize, Serialize};

use crate::plan::Thresholds;

/// What the proxy saw of one track over a window, as the runtime summarises it.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Stats {
    /// Requests answered.
    pub requests: u64,
    /// Of which server errors (5xx and proxy-made errors).
    pub errors: u64,
    /// Median latency, ms.
    pub p50_ms: Option<f64>,
    /// 95th percentile latency, ms.
    pub p95_ms: Option<f64>,
    /// 99th percentile latency, ms.
    pub p99_ms: Option<f64>,
}

impl Stats {
    /// Errors per request; `None` without requests.
    pub fn error_rate(&self) -> Option<f64> {
        (self.requests > 0).then(|| self.errors as f64 / self.requests as f64)
    }
}

/// The figures a verdict was based on, recorded with every decision.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Figures {
    /// Canary observations.
    pub canary: Stats,
    /// Stable observations.
    pub stable: Stats,
}

/// The outcome of one analysis.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "verdict")]
pub enum Verdict {
    /// Every configured threshold holds.
    Pass,
    /// At least one threshold is breached; each reason names one.
    Fail {
        /// What was breached, with the numbers.
        reasons: Vec<String>,
    },
    /// Too little data to say.
    Inconclusive {
        /// Why.
        reason: String,
    },
}

/// Judges the canary against the thresholds (step-end analysis).
pub fn judge(t: &Thresholds, canary: &Stats, stable: &Stats) -> Verdict {
    if canary.requests < t.min_requests {
        return Verdict::Inconclusive {
            reason: format!(
                "canary had {} requests, fewer than min_requests {}",
                canary.requests, t.min_requests
            ),
        };
    }
    let mut reasons = Vec::new();
    let rate = canary.error_rate().unwrap_or(0.0);
    if let Some(max) = t.max_error_rate
        && rate > max
    {
        reasons.push(format!(
            "error rate {} above max_error_rate {}",
            pct(rate),
            pct(max)
        ));
    }
    for (name, max, value) in [
        ("p95", t.max_p95_ms, canary.p95_ms),
        ("p99", t.max_p99_ms, canary.p99_ms),
    ] {
        if let (Some(max), Some(v)) = (max, value)
            && v > max
        {
            reasons.push(format!("{name} {v:.1}ms above max_{name} {max:.1}ms"));
        }
    }
    let relative = t.max_error_rate_increase.is_some() || t.max_latency_ratio.is_some();
    if relative && stable.requests < t.min_requests && reasons.is_empty() {
        return Verdict::Inconclusive {
            reason: format!(
                "stable had {} requests, fewer than min_requests {}, to compare with",
                stable.requests, t.min_requests
            ),
        };
    }
    if relative && stable.requests >= t.min_requests {
        let stable_rate = stable.error_rate().unwrap_or(0.0);
        if let Some(max) = t.max_error_rate_increase
            && rate - stable_rate > max
        {
            reasons.push(format!(
                "error rate {} is {} above stable's {}, more than max_error_rate_increase {}",
                pct(rate),
                pct(rate - stable_rate),
                pct(stable_rate),
                pct(max)
            ));
        }
        if let (Some(max), Some(c), Some(s)) = (t.max_latency_ratio, canary.p95_ms, stable.p95_ms)
            && s > 0.0
            && c / s > max
        {
            reasons.push(format!(
                "p95 {c:.1}ms is {:.2}× stable's {s:.1}ms, more than max_latency_ratio {max}",
                c / s
            ));
        }
    }
    if reasons.is_empty() {
        Verdict::Pass
    } else {
        Verdict::Fail { reasons }
    }
}

/// The fast-failure check between step boundaries: `Some(reason)` when the
/// canary breaches `abort_error_rate` on at least `min_requests` requests.
pub fn breaches_abort(t: &Thresholds, canary: &Stats) -> Option<String> {
    let limit = t.abort_error_rate?;
    let rate = canary.error_rate()?;
    (canary.requests >= t.min_requests.max(1) && rate >= limit).then(|| {
        format!(
            "error rate {} over {} requests reached abort_error_rate {}",
            pct(rate),
            canary.requests,
            pct(limit)
        )
    })
}

fn pct(x: f64) -> String {
    format!("{:.2}%", x * 100.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn th() -> Thresholds {
        Thresholds {
            max_error_rate: Some(0.01),
            max_p95_ms: Some(500.0),
            min_requests: 50,
            abort_error_rate: Some(0.03),
            ..Thresholds::default()
        }
    }

    fn stats(requests: u64, errors: u64, p95: f64) -> Stats {
        Stats {
            requests,
            errors,
            p50_ms: Some(p95 / 2.0),
            p95_ms: Some(p95),
            p99_ms: Some(p95 * 1.5),
        }
    }

    #[test]
    fn no_data_is_inconclusive_never_pass_or_fail() {
        // Argo Rollouts #1466 / #4479.
        let v = judge(&th(), &Stats::default(), &stats(1000, 0, 10.0));
        assert!(matches!(v, Verdict::Inconclusive { .. }), "{v:?}");
        assert_eq!(breaches_abort(&th(), &Stats::default()), None);
        let few = stats(10, 10, 10.0);
        assert!(matches!(
            judge(&th(), &few, &few),
            Verdict::Inconclusive { .. }
        ));
        assert_eq!(breaches_abort(&th(), &few), None);
    }

    #[test]
    fn absolute_thresholds() {
        assert_eq!(
            judge(&th(), &stats(100, 1, 100.0), &Stats::default()),
            Verdict::Pass
        );
        assert!(matches!(
            judge(&th(), &stats(100, 2, 100.0), &Stats::default()),
            Verdict::Fail { .. }
        ));
        assert!(matches!(
            judge(&th(), &stats(100, 0, 600.0), &Stats::default()),
            Verdict::Fail { .. }
        ));
    }

    #[test]
    fn relative_thresholds_need_stable_data() {
        let t = Thresholds {
            max_latency_ratio: Some(1.5),
            max_error_rate_increase: Some(0.01),
            min_requests: 50,
            ..Thresholds::default()
        };
        let canary = stats(100, 0, 200.0);
        assert!(matches!(
            judge(&t, &canary, &stats(10, 0, 100.0)),
            Verdict::Inconclusive { .. }
        ));
        assert!(matches!(
            judge(&t, &canary, &stats(100, 0, 100.0)),
            Verdict::Fail { .. }
        ));
        assert_eq!(judge(&t, &canary, &stats(100, 0, 150.0)), Verdict::Pass);
        let erring = stats(100, 5, 100.0);
        assert!(matches!(
            judge(&t, &erring, &stats(100, 1, 100.0)),
            Verdict::Fail { .. }
        ));
    }

    #[test]
    fn abort_needs_enough_requests() {
        assert!(breaches_abort(&th(), &stats(100, 20, 10.0)).is_some());
        assert_eq!(breaches_abort(&th(), &stats(100, 2, 10.0)), None);
    }
}
