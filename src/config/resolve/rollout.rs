//! Resolving `rollout = { … }` of a service: strategy, canary steps, step
//! timing, policies and the analysis thresholds, each checked on its own and
//! against the others of the same table.

use std::ops::Range;
use std::time::Duration;

use serde_spanned::Spanned;

use super::Resolver;
use crate::config::model::{AnalysisConfig, RolloutConfig, ServiceKind, Strategy};
use crate::config::problem::Finding;
use crate::config::raw::{RawAnalysis, RawRollout};
use crate::config::scalars::{RawCount, RawNumber};
use crate::config::{defaults, limits};

/// How the steps of a canary are written, for help lines.
const STEPS_EXAMPLE: &str = "steps = [5, 25, 50, 100]";

impl Resolver<'_> {
    pub(super) fn rollout(
        &mut self,
        name: &str,
        rollout: Option<&Spanned<RawRollout>>,
        kind: ServiceKind,
        kind_span: Option<Range<usize>>,
    ) -> RolloutConfig {
        let Some(rollout) = rollout else {
            return RolloutConfig::default();
        };
        let raw = rollout.get_ref();

        // `None`: written but unknown (already reported).
        let strategy = match &raw.strategy {
            Some(written) => {
                let strategy = self.choice(
                    written.span(),
                    &written.get_ref().0,
                    "rollout strategy",
                    written.get_ref().parse(),
                );
                if strategy == Some(Strategy::Canary) && kind == ServiceKind::Worker {
                    let mut finding = Finding::new(
                        written.span(),
                        format!("worker `{name}` cannot have a canary rollout"),
                        "canary",
                    )
                    .help(
                        r#"a worker receives no traffic to shift step by step: use strategy = "blue-green" (the default), or kind = "http""#,
                    );
                    if let Some(kind_span) = kind_span {
                        finding = finding.also(kind_span, format!("`{name}` is a worker"));
                    }
                    self.report(finding);
                }
                strategy
            }
            None => Some(Strategy::BlueGreen),
        };
        let steps = self.steps(raw, strategy);
        let (step_duration, check_interval) = self.step_timing(raw);
        let max_inconclusive = self.count(
            raw.max_inconclusive.as_ref(),
            "rollout.max_inconclusive",
            defaults::MAX_INCONCLUSIVE,
            0..=limits::MAX_INCONCLUSIVE,
        );
        let on_inconclusive = raw
            .on_inconclusive
            .as_ref()
            .and_then(|written| {
                self.choice(
                    written.span(),
                    &written.get_ref().0,
                    "`on_inconclusive` policy",
                    written.get_ref().parse(),
                )
            })
            .unwrap_or_default();
        let on_daemon_restart = raw
            .on_daemon_restart
            .as_ref()
            .and_then(|written| {
                self.choice(
                    written.span(),
                    &written.get_ref().0,
                    "`on_daemon_restart` policy",
                    written.get_ref().parse(),
                )
            })
            .unwrap_or_default();
        let switch = raw
            .switch
            .as_ref()
            .and_then(|written| {
                self.choice(
                    written.span(),
                    &written.get_ref().0,
                    "`switch` mode",
                    written.get_ref().parse(),
                )
            })
            .unwrap_or_default();
        let analysis = self.analysis(raw.analysis.as_ref());

        RolloutConfig {
            strategy: strategy.unwrap_or_default(),
            steps,
            step_duration,
            check_interval,
            max_inconclusive,
            on_inconclusive,
            on_daemon_restart,
            switch,
            analysis,
        }
    }

    /// One of a few words; `None` (and a finding) for an unknown one.
    pub(super) fn choice<T>(
        &mut self,
        span: Range<usize>,
        text: &str,
        what: &str,
        parsed: Result<T, String>,
    ) -> Option<T> {
        match parsed {
            Ok(value) => Some(value),
            Err(help) => {
                self.report(
                    Finding::new(span, format!("unknown {what} `{text}`"), "unknown value")
                        .help(help),
                );
                None
            }
        }
    }

    /// The canary steps: each from 1 to 100, strictly increasing, ending at
    /// 100. Empty for blue-green; the default for a canary that lists none.
    fn steps(&mut self, raw: &RawRollout, strategy: Option<Strategy>) -> Vec<u8> {
        let Some(steps) = &raw.steps else {
            return match strategy {
                Some(Strategy::Canary) => defaults::CANARY_STEPS.to_vec(),
                _ => Vec::new(),
            };
        };
        if strategy == Some(Strategy::BlueGreen) {
            let finding = Finding::new(
                steps.span(),
                "`rollout.steps` apply only to canary rollouts",
                "steps of a canary",
            );
            self.report(match &raw.strategy {
                Some(written) => finding
                    .also(written.span(), "all traffic at once")
                    .help(r#"remove `steps`, or move traffic step by step with strategy = "canary""#),
                None => finding.help(
                    r#"the strategy defaults to "blue-green", which moves all traffic at once: add strategy = "canary", or remove `steps`"#,
                ),
            });
        }

        let items = steps.get_ref();
        let mut valid = true;
        let mut percents: Vec<(u8, Range<usize>)> = Vec::with_capacity(items.len());
        for item in items {
            let RawCount(number) = *item.get_ref();
            let Some(percent) = u8::try_from(number)
                .ok()
                .filter(|percent| (1..=100).contains(percent))
            else {
                self.report(
                    Finding::new(
                        item.span(),
                        "a step of `rollout.steps` must be between 1 and 100",
                        format!("got {number}"),
                    )
                    .help("expected the percent of traffic on the new release during the step, a whole number from 1 to 100"),
                );
                valid = false;
                continue;
            };
            if let Some((previous, previous_span)) = percents.last()
                && percent <= *previous
            {
                self.report(
                    Finding::new(
                        item.span(),
                        "`rollout.steps` must be strictly increasing",
                        format!("{percent} after {previous}"),
                    )
                    .also(previous_span.clone(), "the step before")
                    .help(format!(
                        "each step sends more traffic to the new release than the one before, e.g. {STEPS_EXAMPLE}"
                    )),
                );
                valid = false;
            }
            percents.push((percent, item.span()));
        }

        match items.last() {
            None => {
                self.report(
                    Finding::new(steps.span(), "`rollout.steps` is empty", "no steps").help(
                        format!(
                            "list the percent of traffic on the new release at each step, ending at 100, e.g. {STEPS_EXAMPLE}"
                        ),
                    ),
                );
                valid = false;
            }
            Some(last) if (1..100).contains(&last.get_ref().0) => {
                self.report(
                    Finding::new(
                        last.span(),
                        "`rollout.steps` must end at 100",
                        format!("ends at {}", last.get_ref().0),
                    )
                    .help(format!(
                        "the last step sends all traffic to the new release: end with 100, e.g. {STEPS_EXAMPLE}"
                    )),
                );
                valid = false;
            }
            // 100, or out of range (reported above).
            Some(_) => {}
        }

        match strategy {
            Some(Strategy::Canary) if valid => {
                percents.into_iter().map(|(percent, _)| percent).collect()
            }
            Some(Strategy::Canary) => defaults::CANARY_STEPS.to_vec(),
            _ => Vec::new(),
        }
    }

    /// `step_duration` and `check_interval`: each greater than zero, and the
    /// check shorter than the step.
    fn step_timing(&mut self, raw: &RawRollout) -> (Duration, Duration) {
        let written = self.findings.len();
        let step_duration = self.duration(
            raw.step_duration.as_ref(),
            "rollout.step_duration",
            defaults::STEP_DURATION,
            true,
        );
        let step_ok = self.findings.len() == written;
        let written = self.findings.len();
        let check_interval = self.duration(
            raw.check_interval.as_ref(),
            "rollout.check_interval",
            defaults::CHECK_INTERVAL,
            true,
        );
        let check_ok = self.findings.len() == written;
        if !(step_ok && check_ok) || check_interval < step_duration {
            return (step_duration, check_interval);
        }

        let text = |duration: Duration| humantime::format_duration(duration).to_string();
        let message = "`rollout.check_interval` must be shorter than `rollout.step_duration`";
        let finding = match (&raw.check_interval, &raw.step_duration) {
            (Some(check), Some(step)) => Finding::new(
                check.span(),
                message,
                format!("checks every {}", text(check_interval)),
            )
            .also(step.span(), format!("a step lasts {}", text(step_duration)))
            .help(r#"a step is checked several times before it ends, e.g. check_interval = "1s" with step_duration = "30s""#),
            (Some(check), None) => Finding::new(
                check.span(),
                message,
                format!("checks every {}", text(check_interval)),
            )
            .help(format!(
                r#"step_duration defaults to {}: use a shorter check_interval such as "1s", or set a longer step_duration"#,
                text(defaults::STEP_DURATION)
            )),
            (None, Some(step)) => Finding::new(
                step.span(),
                message,
                format!("a step lasts {}", text(step_duration)),
            )
            .help(format!(
                r#"check_interval defaults to {}: make steps longer, e.g. step_duration = "30s", or set a shorter check_interval"#,
                text(defaults::CHECK_INTERVAL)
            )),
            // The defaults are 1s and 30s.
            (None, None) => return (step_duration, check_interval),
        };
        self.report(finding);
        (step_duration, check_interval)
    }

    fn analysis(&mut self, analysis: Option<&Spanned<RawAnalysis>>) -> AnalysisConfig {
        let Some(analysis) = analysis else {
            return AnalysisConfig::default();
        };
        let raw = analysis.get_ref();
        let max_error_rate = self.fraction(
            raw.max_error_rate.as_ref(),
            "rollout.analysis.max_error_rate",
        );
        let max_p95 = raw.max_p95.as_ref().map(|value| {
            self.duration(
                Some(value),
                "rollout.analysis.max_p95",
                Duration::ZERO,
                true,
            )
        });
        let max_p99 = raw.max_p99.as_ref().map(|value| {
            self.duration(
                Some(value),
                "rollout.analysis.max_p99",
                Duration::ZERO,
                true,
            )
        });
        let max_error_rate_increase = self.fraction(
            raw.max_error_rate_increase.as_ref(),
            "rollout.analysis.max_error_rate_increase",
        );
        let max_latency_ratio = self.ratio(
            raw.max_latency_ratio.as_ref(),
            "rollout.analysis.max_latency_ratio",
        );
        let abort_error_rate = self.fraction(
            raw.abort_error_rate.as_ref(),
            "rollout.analysis.abort_error_rate",
        );

        if let (Some(abort), Some(max), Some(abort_at), Some(max_at)) = (
            abort_error_rate,
            max_error_rate,
            &raw.abort_error_rate,
            &raw.max_error_rate,
        ) && abort < max
        {
            self.report(
                Finding::new(
                    abort_at.span(),
                    "`rollout.analysis.abort_error_rate` must not be below `max_error_rate`",
                    format!("aborts at {abort}"),
                )
                .also(max_at.span(), format!("a step fails above {max}"))
                .help("abort_error_rate fails a step at once when errors are far above max_error_rate: make it at least max_error_rate, or leave it out for 3 × max_error_rate"),
            );
        }

        let thresholds = [
            raw.max_error_rate.as_ref().map(Spanned::span),
            raw.max_p95.as_ref().map(Spanned::span),
            raw.max_p99.as_ref().map(Spanned::span),
            raw.max_error_rate_increase.as_ref().map(Spanned::span),
            raw.max_latency_ratio.as_ref().map(Spanned::span),
            raw.abort_error_rate.as_ref().map(Spanned::span),
        ];
        let first_threshold = thresholds
            .into_iter()
            .flatten()
            .min_by_key(|span| span.start);
        let min_requests = match (&raw.min_requests, first_threshold) {
            (Some(written), _) => {
                let RawCount(number) = *written.get_ref();
                match u64::try_from(number) {
                    Ok(count) if (1..=limits::MAX_MIN_REQUESTS).contains(&count) => count,
                    _ => {
                        self.report(
                            Finding::new(
                                written.span(),
                                format!("`rollout.analysis.min_requests` must be between 1 and {}", limits::MAX_MIN_REQUESTS),
                                format!("got {number}"),
                            )
                            .help("expected the fewest requests a step must see before it is judged, a whole number of at least 1"),
                        );
                        defaults::MIN_REQUESTS
                    }
                }
            }
            (None, Some(threshold)) => {
                let mut finding = Finding::new(
                    analysis.span(),
                    "thresholds need min_requests: without it, 1 request could pass or fail a step",
                    "no `min_requests`",
                )
                .help("add the fewest requests a step must see before it is judged, e.g. min_requests = 50");
                // A `[….analysis]` table's span is its header; point at a threshold too.
                if !analysis.span().contains(&threshold.start) {
                    finding = finding.also(threshold, "a threshold");
                }
                self.report(finding);
                defaults::MIN_REQUESTS
            }
            (None, None) => defaults::MIN_REQUESTS,
        };

        AnalysisConfig {
            max_error_rate,
            max_p95,
            max_p99,
            max_error_rate_increase,
            max_latency_ratio,
            min_requests,
            abort_error_rate: abort_error_rate.or_else(|| {
                max_error_rate.map(|max| (defaults::ABORT_ERROR_RATE_FACTOR * max).min(1.0))
            }),
        }
    }

    /// A share of requests, 0 to 1; `None` when not written or out of range.
    fn fraction(&mut self, value: Option<&Spanned<RawNumber>>, key: &str) -> Option<f64> {
        let value = value?;
        let RawNumber(number) = *value.get_ref();
        if (0.0..=1.0).contains(&number) {
            return Some(number);
        }
        self.report(
            Finding::new(
                value.span(),
                format!("`{key}` must be between 0 and 1"),
                format!("got {number}"),
            )
            .help("expected a share of requests from 0 to 1, e.g. 0.01 for 1%"),
        );
        None
    }

    /// A finite ratio of at least 1; `None` when not written or out of range.
    fn ratio(&mut self, value: Option<&Spanned<RawNumber>>, key: &str) -> Option<f64> {
        let value = value?;
        let RawNumber(number) = *value.get_ref();
        if number.is_finite() && number >= 1.0 {
            return Some(number);
        }
        self.report(
            Finding::new(
                value.span(),
                format!("`{key}` must be at least 1"),
                format!("got {number}"),
            )
            .help("expected a ratio of at least 1: how many times the previous release's latency the new release may have, e.g. 1.5"),
        );
        None
    }
}
