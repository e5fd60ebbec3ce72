//! The daemon's own Prometheus metrics, served with the proxies' on
//! `/metrics`: what it deployed, rolled back and analysed (counters and a
//! histogram, tallied from the history in the state store), and what stands
//! now (gauges: releases, canary weights, instances, held or waiting
//! deployments, backups), computed at each scrape.
//!
//! Where the values come from, so that they are right after a restart:
//! - `history.rs` reads the deployments and analysis events the store has
//!   and this process has not counted yet, at each scrape: a new daemon
//!   counts the whole history again, so the counters go on from where the
//!   last one left them (no reset for Prometheus to see) and never decrease
//!   within a process.
//! - `gauges.rs` reads the live state (each environment's route table, live
//!   instances and releases), the `instances` table and the backup manifests
//!   at each scrape, and writes them itself (`text.rs`), so a series that no
//!   longer holds (a retired version, a wait that ended) is gone from the
//!   next scrape instead of lingering at its last value.
//!
//! Names, types and labels: docs/observability.md, "Metrics".

mod backups;
mod gauges;
mod history;
mod text;

use std::sync::Arc;

use metrics::Unit;
use metrics_exporter_prometheus::PrometheusHandle;
use tokio::sync::Mutex;

use crate::runtime::Daemon;

pub use history::{REASONS, rollback_reason};

/// Deploys that ended, by `environment` and `outcome` (`succeeded`,
/// `failed`, `rolled_back`, `interrupted`).
pub const DEPLOYMENTS_TOTAL: &str = "cutover_deployments_total";
/// How long deploys took, from request to outcome, by `environment` and
/// `outcome`.
pub const DEPLOYMENT_DURATION_SECONDS: &str = "cutover_deployment_duration_seconds";
/// Rollbacks, by `environment` and `reason` (see [`REASONS`]).
pub const ROLLBACKS_TOTAL: &str = "cutover_rollbacks_total";
/// Canary analyses, by `environment`, `service` and `verdict`.
pub const ANALYSIS_VERDICTS_TOTAL: &str = "cutover_analysis_verdicts_total";

/// Buckets (seconds) of [`DEPLOYMENT_DURATION_SECONDS`]: a blue-green
/// switch takes seconds, a canary minutes to hours, an approval may wait a day.
pub const DURATION_BUCKETS_SECONDS: &[f64] = &[
    5.0, 15.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1200.0, 1800.0, 3600.0, 7200.0, 14400.0, 43200.0,
    86400.0,
];

/// Registers the descriptions of the metrics that go through the `metrics`
/// facade (the gauges describe themselves in `gauges.rs`).
pub fn describe() {
    metrics::describe_counter!(
        DEPLOYMENTS_TOTAL,
        Unit::Count,
        "Deploys that ended, by environment and outcome (succeeded, failed, rolled_back, interrupted); rollbacks an operator asked for are in cutover_rollbacks_total."
    );
    metrics::describe_histogram!(
        DEPLOYMENT_DURATION_SECONDS,
        Unit::Seconds,
        "Time from a deploy's request to its outcome (approvals and canary steps included), by environment and outcome."
    );
    metrics::describe_counter!(
        ROLLBACKS_TOTAL,
        Unit::Count,
        "Rollbacks, by environment and reason: operator (cutover rollback), or why a deploy was rolled back (error_rate, analysis, inconclusive, unhealthy, start_failed, aborted, other)."
    );
    metrics::describe_counter!(
        ANALYSIS_VERDICTS_TOTAL,
        Unit::Count,
        "Canary analyses of a step, by environment, service and verdict (pass, fail, inconclusive)."
    );
}

/// The `/metrics` answer of a daemon: the facade's series (the proxies',
/// supervision's and the history's) and the gauges of now.
pub struct Telemetry {
    handle: PrometheusHandle,
    daemon: Arc<Daemon>,
    history: Mutex<history::History>,
}

impl Telemetry {
    /// The exporter of `daemon`'s metrics through the installed recorder
    /// `handle`.
    pub fn new(handle: PrometheusHandle, daemon: Arc<Daemon>) -> Arc<Telemetry> {
        history::register_zeros(&daemon);
        Arc::new(Telemetry {
            handle,
            daemon,
            history: Mutex::new(history::History::default()),
        })
    }

    /// Counts what the history gained since the last call, then renders
    /// every series. A store that cannot be read leaves the counters where
    /// they are (a warning in the log) and the scrape still answers.
    pub async fn render(&self) -> String {
        {
            let mut history = self.history.lock().await;
            if let Err(e) = history.catch_up(self.daemon.store()).await {
                tracing::warn!(error = %e, "metrics: cannot read the history; counters not updated");
            }
        }
        let mut out = self.handle.render();
        gauges::render(&self.daemon, &mut out).await;
        out
    }
}
