//! The counters and the histogram of what happened, tallied from the
//! history in the state store: deploys by outcome and duration, rollbacks
//! by reason, canary analyses by verdict.
//!
//! Each deployment is counted once, when it is seen ended; each analysis
//! event once. A new process counts the whole history on its first scrape,
//! so its counters start where the previous daemon's stood.

use std::collections::BTreeSet;

use metrics::Label;

use super::{
    ANALYSIS_VERDICTS_TOTAL, DEPLOYMENT_DURATION_SECONDS, DEPLOYMENTS_TOTAL, ROLLBACKS_TOTAL,
};
use crate::runtime::Daemon;
use crate::store::{Deployment, DeploymentKind, DeploymentState, Store, StoreError};

/// Every `reason` of [`ROLLBACKS_TOTAL`].
pub const REASONS: &[&str] = &[
    "operator",
    "error_rate",
    "analysis",
    "inconclusive",
    "unhealthy",
    "start_failed",
    "aborted",
    "other",
];

/// Every `outcome` of [`DEPLOYMENTS_TOTAL`].
const OUTCOMES: &[DeploymentState] = &[
    DeploymentState::Succeeded,
    DeploymentState::Failed,
    DeploymentState::RolledBack,
    DeploymentState::Interrupted,
];

/// Analysis events read per query.
const VERDICT_BATCH: u32 = 5000;

/// How far the tally has read.
#[derive(Debug, Default)]
pub(super) struct History {
    /// The lowest deployment id not yet seen ended: everything below it is
    /// counted.
    floor: i64,
    /// Ids at or above `floor` already counted (ended while one before
    /// them still ran).
    counted: BTreeSet<i64>,
    /// The last analysis event counted.
    last_event: i64,
}

impl History {
    /// Counts the deployments that ended and the analyses recorded since
    /// the last call.
    pub(super) async fn catch_up(&mut self, store: &Store) -> Result<(), StoreError> {
        let deployments = store.deployments_from(self.floor).await?;
        for d in self.take_ended(&deployments) {
            count(d);
        }
        loop {
            let verdicts = store
                .analysis_verdicts_after(self.last_event, VERDICT_BATCH)
                .await?;
            for v in &verdicts {
                self.last_event = self.last_event.max(v.event_id);
                if let (Some(service), Some(verdict)) = (&v.service, &v.verdict) {
                    metrics::counter!(
                        ANALYSIS_VERDICTS_TOTAL,
                        "environment" => v.environment.clone(),
                        "service" => service.clone(),
                        "verdict" => verdict.clone()
                    )
                    .increment(1);
                }
            }
            if verdicts.len() < VERDICT_BATCH as usize {
                return Ok(());
            }
        }
    }
}

impl History {
    /// The deployments of `batch` (every deployment from `floor` on, oldest
    /// first) that have ended and were not counted yet; moves the floor up
    /// to the oldest one still running.
    fn take_ended<'a>(&mut self, batch: &'a [Deployment]) -> Vec<&'a Deployment> {
        let mut ended = Vec::new();
        let mut running = None;
        let mut next = self.floor;
        for d in batch {
            next = next.max(d.id.saturating_add(1));
            if d.state == DeploymentState::Running {
                running.get_or_insert(d.id);
            } else if self.counted.insert(d.id) {
                ended.push(d);
            }
        }
        self.floor = running.unwrap_or(next);
        self.counted = self.counted.split_off(&self.floor);
        ended
    }
}

/// Counts one ended deployment.
fn count(d: &Deployment) {
    let env = Label::new("environment", d.environment.clone());
    if d.kind == DeploymentKind::Deploy {
        let outcome = Label::from_static_parts("outcome", d.state.as_str());
        metrics::counter!(DEPLOYMENTS_TOTAL, vec![env.clone(), outcome.clone()]).increment(1);
        if let Some(finished) = d.finished_at {
            let ms = finished
                .as_millisecond()
                .saturating_sub(d.started_at.as_millisecond())
                .max(0);
            #[allow(clippy::cast_precision_loss)] // milliseconds of a deploy: far below 2^52
            let seconds = ms as f64 / 1000.0;
            metrics::histogram!(DEPLOYMENT_DURATION_SECONDS, vec![env.clone(), outcome])
                .record(seconds);
        }
    }
    if let Some(reason) = rollback_reason(d) {
        metrics::counter!(
            ROLLBACKS_TOTAL,
            vec![env, Label::from_static_parts("reason", reason)]
        )
        .increment(1);
    }
}

/// Whether deployment `d` was a rollback, and why: a `cutover rollback`
/// that succeeded is `operator`; a deploy that ended rolled back is
/// classified by the reason the rollout recorded (`crates/core`'s
/// `rollout.rs` and `analysis.rs` write them). Anything else: `None`.
pub fn rollback_reason(d: &Deployment) -> Option<&'static str> {
    match (d.kind, d.state) {
        (DeploymentKind::Rollback, DeploymentState::Succeeded) => Some("operator"),
        (DeploymentKind::Deploy, DeploymentState::RolledBack) => {
            Some(classify(d.reason.as_deref().unwrap_or_default()))
        }
        _ => None,
    }
}

fn classify(reason: &str) -> &'static str {
    if reason.starts_with("aborted:") {
        "aborted"
    } else if reason.starts_with("analysis of step") {
        "analysis"
    } else if reason.contains("stayed inconclusive") {
        "inconclusive"
    } else if reason.starts_with("error rate ") && reason.contains("abort_error_rate") {
        "error_rate"
    } else if reason.contains("did not start") {
        "start_failed"
    } else if reason.contains("unhealthy") {
        "unhealthy"
    } else {
        "other"
    }
}

/// Registers every environment's outcome and reason series (and
/// supervision's restarts per service) at 0, so the first deploy, rollback
/// or restart of a fresh environment is an increase Prometheus sees (a
/// series that appears at 1 has no increase).
pub(super) fn register_zeros(daemon: &Daemon) {
    for env in daemon.environments() {
        for outcome in OUTCOMES {
            metrics::counter!(
                DEPLOYMENTS_TOTAL,
                "environment" => env.name().to_owned(),
                "outcome" => outcome.as_str()
            )
            .absolute(0);
        }
        for reason in REASONS {
            metrics::counter!(
                ROLLBACKS_TOTAL,
                "environment" => env.name().to_owned(),
                "reason" => *reason
            )
            .absolute(0);
        }
        // Supervision counts these; at 0 from the start, its first
        // restarts are an increase the restart-loop alert sees.
        for service in daemon.config().services_in(env.name()).keys() {
            metrics::counter!(
                crate::runtime::supervise::RESTARTS_TOTAL,
                "environment" => env.name().to_owned(),
                "service" => service.clone()
            )
            .absolute(0);
        }
    }
}

#[cfg(test)]
mod tests {
    use cutover_core::analysis::breaches_abort;
    use cutover_core::plan::Thresholds;

    use super::{History, classify};
    use crate::store::{Deployment, DeploymentKind, DeploymentState};

    fn deployment(id: i64, state: DeploymentState) -> Deployment {
        let at = jiff::Timestamp::from_second(1_800_000_000).expect("a time");
        Deployment {
            id,
            environment: "production".into(),
            version: format!("v{id}"),
            previous_version: None,
            strategy: "canary".into(),
            kind: DeploymentKind::Deploy,
            state,
            reason: None,
            requested_by: "alice".into(),
            started_at: at,
            finished_at: (state != DeploymentState::Running).then_some(at),
            awaiting_approval: false,
            commit_sha: None,
            commit_time: None,
        }
    }

    fn ids(list: &[&Deployment]) -> Vec<i64> {
        list.iter().map(|d| d.id).collect()
    }

    #[test]
    fn each_deployment_is_counted_once_when_it_ends_whatever_the_order() {
        use DeploymentState::{Running, Succeeded};
        let mut history = History::default();
        // 2 runs (awaiting approval, say) while 3 ends.
        let batch = [
            deployment(1, Succeeded),
            deployment(2, Running),
            deployment(3, Succeeded),
        ];
        assert_eq!(ids(&history.take_ended(&batch)), [1, 3]);
        assert_eq!(history.floor, 2, "reads again from the one still running");
        let batch = [deployment(2, Running), deployment(3, Succeeded)];
        assert!(
            history.take_ended(&batch).is_empty(),
            "3 is not counted twice"
        );
        let batch = [
            deployment(2, Succeeded),
            deployment(3, Succeeded),
            deployment(4, Running),
        ];
        assert_eq!(ids(&history.take_ended(&batch)), [2]);
        assert_eq!(history.floor, 4);
        let batch = [deployment(4, Succeeded)];
        assert_eq!(ids(&history.take_ended(&batch)), [4]);
        assert_eq!(history.floor, 5, "nothing runs: from the next id on");
        assert!(history.counted.is_empty(), "nothing kept below the floor");
        assert!(history.take_ended(&[]).is_empty());
        assert_eq!(history.floor, 5);
    }

    #[test]
    fn rollback_reasons_are_classified_from_what_the_rollout_records() {
        let thresholds = Thresholds {
            max_error_rate: None,
            max_p95_ms: None,
            max_p99_ms: None,
            max_error_rate_increase: None,
            max_latency_ratio: None,
            min_requests: 10,
            abort_error_rate: Some(0.05),
        };
        let canary = cutover_core::analysis::Stats {
            requests: 100,
            errors: 20,
            ..Default::default()
        };
        let fast = breaches_abort(&thresholds, &canary).expect("a breach");
        assert_eq!(classify(&fast), "error_rate");
        assert_eq!(
            classify("analysis of step 2 failed: error rate 3.00% > 2.00%"),
            "analysis"
        );
        assert_eq!(
            classify("step 1 stayed inconclusive after 2 extensions: too few requests"),
            "inconclusive"
        );
        assert_eq!(classify("aborted: alice: 5xx"), "aborted");
        assert_eq!(classify("web did not start: exited"), "start_failed");
        assert_eq!(
            classify("a new instance of web is unhealthy: timeout"),
            "unhealthy"
        );
        assert_eq!(classify("something new"), "other");
    }
}
