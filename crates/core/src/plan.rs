//! What a rollout is asked to do: the plan. Built by the runtime from the
//! config and the request; never changed once the rollout starts, and
//! persisted with its state so a restarted daemon rolls the same plan.

use serde::{Deserialize, Serialize};

use crate::time::Millis;

/// One deployment of one environment: every service of the release, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The version being rolled out.
    pub version: String,
    /// The version serving before, if any.
    pub previous_version: Option<String>,
    /// Services in rollout order (dependencies first).
    pub services: Vec<ServicePlan>,
    /// What a restarted daemon does with a rollout it finds unfinished.
    pub on_restart: RestartPolicy,
}

/// How one service is rolled.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServicePlan {
    /// Service name.
    pub name: String,
    /// `blue-green` or `canary` with its steps.
    pub strategy: Strategy,
    /// Hold once the new instances are healthy, before any traffic moves,
    /// until [`crate::Command::Switch`] (`[service.X.rollout] switch =
    /// "manual"`). Plans saved before this field existed switch by themselves.
    #[serde(default)]
    pub manual_switch: bool,
}

/// How traffic moves to the new release of a service.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", tag = "kind")]
pub enum Strategy {
    /// Start everything, then switch 100 % in one step. Also used for workers
    /// and for a service's first release (no stable to compare with).
    BlueGreen,
    /// Weighted steps with analysis at the end of each.
    Canary(CanarySpec),
}

/// Canary steps and their gates.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CanarySpec {
    /// Percent of traffic on the new release at each step; strictly
    /// increasing, ending at 100.
    pub steps: Vec<u8>,
    /// How long each step lasts before its analysis.
    pub step_duration: Millis,
    /// How often the fast-failure check runs.
    pub check_interval: Millis,
    /// How often a step without enough data is extended.
    pub max_inconclusive: u32,
    /// What happens after that.
    pub on_inconclusive: InconclusivePolicy,
    /// The thresholds.
    pub thresholds: Thresholds,
}

/// Analysis thresholds. A `None` is not checked.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct Thresholds {
    /// Highest error rate (0.0–1.0) of the canary.
    pub max_error_rate: Option<f64>,
    /// Highest p95 latency of the canary, in ms.
    pub max_p95_ms: Option<f64>,
    /// Highest p99 latency of the canary, in ms.
    pub max_p99_ms: Option<f64>,
    /// Highest canary error rate minus stable error rate.
    pub max_error_rate_increase: Option<f64>,
    /// Highest canary p95 / stable p95.
    pub max_latency_ratio: Option<f64>,
    /// Fewer requests than this: no verdict (inconclusive).
    pub min_requests: u64,
    /// Error rate that rolls back at once, between steps.
    pub abort_error_rate: Option<f64>,
}

/// After `max_inconclusive` extensions of a step.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum InconclusivePolicy {
    /// Roll back.
    Fail,
    /// Wait for an operator (`resume`, `promote` or `abort`).
    Pause,
}

/// What a restarted daemon does with an unfinished rollout.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RestartPolicy {
    /// Roll everything back (the safe default: the daemon cannot know what
    /// happened while it was down).
    Rollback,
    /// Continue from the last persisted step.
    Resume,
}
