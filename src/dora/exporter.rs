//! The DORA figures as Prometheus gauges, one series per environment over
//! the last 30 days (with the default fix window), through the `metrics`
//! facade (the recorder `cutover serve` installs): refreshed every 30
//! seconds, and soon after a deployment changes. A figure with nothing to
//! measure (no succeeded deploy with a commit time, no change, no restored
//! failure) is NaN, so a dashboard shows no value rather than a wrong one.

use std::sync::Arc;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use tokio_util::sync::CancellationToken;

use super::report::EnvironmentDora;
use crate::runtime::Daemon;

/// Successful deploys per day, per environment.
pub const DEPLOYMENTS_PER_DAY: &str = "cutover_dora_deployments_per_day";
/// Median lead time for changes, per environment.
pub const LEAD_TIME_SECONDS: &str = "cutover_dora_lead_time_seconds";
/// Change failure rate (0 to 1), per environment.
pub const CHANGE_FAILURE_RATIO: &str = "cutover_dora_change_failure_ratio";
/// Median time to restore service, per environment.
pub const TIME_TO_RESTORE_SECONDS: &str = "cutover_dora_time_to_restore_seconds";

/// The period the gauges cover.
pub const PERIOD: SignedDuration = SignedDuration::from_hours(30 * 24);
/// How often the gauges are refreshed when nothing happens.
pub const REFRESH: Duration = Duration::from_secs(30);
/// How long after a change to the history they are refreshed (changes
/// come in bursts: one refresh for a deployment's events).
const SETTLE: Duration = Duration::from_secs(1);

/// Describes the gauges (name, unit, help), once the recorder is installed.
pub fn describe() {
    metrics::describe_gauge!(
        DEPLOYMENTS_PER_DAY,
        "DORA deployment frequency: deploys that succeeded per day over the last 30 days"
    );
    metrics::describe_gauge!(
        LEAD_TIME_SECONDS,
        metrics::Unit::Seconds,
        "DORA lead time for changes: median from commit to serving over the last 30 days (NaN without a commit time)"
    );
    metrics::describe_gauge!(
        CHANGE_FAILURE_RATIO,
        "DORA change failure rate: failed changes over changes in the last 30 days, 0 to 1 (NaN without a change)"
    );
    metrics::describe_gauge!(
        TIME_TO_RESTORE_SECONDS,
        metrics::Unit::Seconds,
        "DORA time to restore service: median from a failed change to a good release over the last 30 days (NaN without one)"
    );
}

/// Sets the gauges of one environment from its figures.
pub fn set(figures: &EnvironmentDora) {
    let env = || figures.environment.clone();
    metrics::gauge!(DEPLOYMENTS_PER_DAY, "environment" => env())
        .set(figures.deployment_frequency.per_day);
    metrics::gauge!(LEAD_TIME_SECONDS, "environment" => env())
        .set(figures.lead_time.median_seconds.unwrap_or(f64::NAN));
    metrics::gauge!(CHANGE_FAILURE_RATIO, "environment" => env())
        .set(figures.change_failure_rate.ratio.unwrap_or(f64::NAN));
    metrics::gauge!(TIME_TO_RESTORE_SECONDS, "environment" => env())
        .set(figures.time_to_restore.median_seconds.unwrap_or(f64::NAN));
}

/// Keeps the gauges fresh until `stop`.
pub async fn run(daemon: Arc<Daemon>, stop: CancellationToken) {
    describe();
    let environments: Vec<String> = daemon.environments().map(|e| e.name().to_owned()).collect();
    let mut changes = daemon.store().watch_deployments();
    loop {
        refresh(&daemon, &environments).await;
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(REFRESH) => {}
            changed = changes.changed() => {
                if changed.is_err() {
                    // The store is gone: the daemon stops.
                    stop.cancelled().await;
                    return;
                }
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(SETTLE) => {}
                }
                changes.borrow_and_update();
            }
        }
    }
}

async fn refresh(daemon: &Daemon, environments: &[String]) {
    let now = Timestamp::now();
    let Ok(since) = now.checked_sub(PERIOD) else {
        return;
    };
    match super::report(
        daemon.store(),
        environments,
        since,
        now,
        super::DEFAULT_FIX_WINDOW,
    )
    .await
    {
        Ok(report) => report.environments.iter().for_each(set),
        Err(e) => tracing::warn!(error = %e, "cannot read the history for the DORA metrics"),
    }
}
