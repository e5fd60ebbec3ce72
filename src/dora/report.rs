//! The DORA report as clients see it: `GET /v1/dora` and `cutover dora
//! --json` (a stable shape: fields are added, never renamed or removed).
//! Durations are seconds (with milliseconds), ratios 0 to 1; a figure with
//! nothing to measure is `null`, with a `null` band.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::bands::Band;

/// The four keys of each environment asked for, over one period.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DoraReport {
    /// The period's start.
    pub since: Timestamp,
    /// Its end (when the report was made).
    pub until: Timestamp,
    /// Its length in days.
    pub period_days: f64,
    /// A succeeded deployment followed by another deploy that starts within
    /// this many seconds of its end counts as a failed change (0: never).
    pub fix_window_seconds: u64,
    /// Where the bands come from.
    pub bands_source: String,
    /// One entry per environment, in name order.
    pub environments: Vec<EnvironmentDora>,
}

/// The four keys of one environment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnvironmentDora {
    /// The environment.
    pub environment: String,
    /// How often a change reached it.
    pub deployment_frequency: Frequency,
    /// From commit to serving.
    pub lead_time: LeadTime,
    /// How many changes failed.
    pub change_failure_rate: ChangeFailureRate,
    /// From a failed change to service restored.
    pub time_to_restore: TimeToRestore,
}

/// Deployment frequency.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Frequency {
    /// Succeeded deploys per day over the period.
    pub per_day: f64,
    /// Its band.
    pub band: Band,
    /// The deploys counted.
    pub deployments: Vec<i64>,
}

/// Lead time for changes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeadTime {
    /// The median of the deploys' lead times; `null` with none.
    pub median_seconds: Option<f64>,
    /// Its band.
    pub band: Option<Band>,
    /// The succeeded deploys with a commit time, counted.
    pub deployments: Vec<i64>,
    /// The succeeded deploys without one, left out.
    pub without_commit_time: Vec<i64>,
}

/// Change failure rate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChangeFailureRate {
    /// Failures over changes; `null` with no change.
    pub ratio: Option<f64>,
    /// Its band.
    pub band: Option<Band>,
    /// The changes: deploys that ended in the period after taking traffic.
    pub changes: Vec<i64>,
    /// The changes that failed, and how.
    pub failures: Vec<Failure>,
}

/// One failed change.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Failure {
    /// The deploy.
    pub deployment: i64,
    /// How it failed.
    pub how: FailureKind,
    /// The deployment that showed it (the rollback or the fix), for
    /// `rolled_back_by_operator` and `fixed_within_window`.
    pub by: Option<i64>,
}

/// How a change failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// Its rollout took traffic, then rolled back (analysis, a failed check,
    /// `cutover abort`): the deployment ended `rolled_back`.
    RolledBack,
    /// Its rollout took traffic, then failed with the new release kept
    /// somewhere: the deployment ended `failed`.
    FailedAfterServing,
    /// It succeeded and the next change was `cutover rollback` away from it.
    RolledBackByOperator,
    /// It succeeded and another deploy started within the fix window.
    FixedWithinWindow,
}

impl FailureKind {
    /// The name it is sent as.
    pub fn as_str(self) -> &'static str {
        match self {
            FailureKind::RolledBack => "rolled_back",
            FailureKind::FailedAfterServing => "failed_after_serving",
            FailureKind::RolledBackByOperator => "rolled_back_by_operator",
            FailureKind::FixedWithinWindow => "fixed_within_window",
        }
    }
}

/// Time to restore service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TimeToRestore {
    /// The median of the restores; `null` with none.
    pub median_seconds: Option<f64>,
    /// Its band.
    pub band: Option<Band>,
    /// Each failed change that was restored.
    pub restores: Vec<Restore>,
    /// Failed changes not restored yet (left out of the median).
    pub unrestored: Vec<i64>,
}

/// One failed change and what restored service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Restore {
    /// The failed deploy.
    pub failure: i64,
    /// The deployment after which a good release served all traffic again
    /// (the failed deploy itself when its own rollout rolled back).
    pub restored_by: i64,
    /// From when the failed change first took traffic to then.
    pub seconds: f64,
}
