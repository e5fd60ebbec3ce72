//! Keeping instance logs private and in bounds, for as long as the daemon
//! runs ([`Daemon::keep_logs`]): once at start, every permission beyond
//! 0750 (folders) and 0640 (files) is taken away under `.cutover/logs`
//! (logs an older cutover created 0644 in 0755 folders); then every
//! [`INTERVAL`] the log of each live instance is rotated when it is larger
//! than its service's `logs.max_size` (`drivers::rotate`: copied, then
//! removed in place, so the instance keeps writing to its own descriptor whether
//! the daemon runs or not). A check is one `stat` per instance.
//!
//! Instances that run while no daemon does are not rotated until a daemon
//! adopts them; their logs grow meanwhile.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;

use super::Daemon;
use crate::config::{Config, LogsConfig};
use crate::drivers::Handle;

/// How often instance logs are checked for rotation.
pub const INTERVAL: Duration = Duration::from_secs(1);

/// Where the process driver writes instance logs: `.cutover/logs` beside
/// the config file.
pub(crate) fn log_dir(config: &Config) -> PathBuf {
    config.base_dir.join(".cutover").join("logs")
}

impl Daemon {
    /// Tightens the log folder's permissions, then rotates live instances'
    /// logs every [`INTERVAL`] until `stop` is cancelled.
    pub async fn keep_logs(self: Arc<Self>, stop: CancellationToken) {
        let dir = log_dir(&self.config);
        let driver = self.driver.clone();
        match tokio::task::spawn_blocking(move || driver.tighten_logs(&dir)).await {
            Ok(Ok(0)) => {}
            Ok(Ok(n)) => {
                tracing::info!(
                    changed = n,
                    "instance logs made private (files 0640, folders 0750)"
                );
            }
            Ok(Err(e)) => {
                tracing::warn!(error = %e, "cannot tighten the permissions of instance logs")
            }
            Err(e) => tracing::warn!(error = %e, "cannot tighten the permissions of instance logs"),
        }
        // Paths whose rotation failed, so that a lasting problem is logged
        // once and not every second.
        let mut failing: BTreeSet<PathBuf> = BTreeSet::new();
        let mut tick = tokio::time::interval(INTERVAL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if self.is_quiesced() {
                // Handing over: the new daemon rotates; two would race.
                continue;
            }
            let due = self.log_checks();
            if due.is_empty() {
                continue;
            }
            let driver = self.driver.clone();
            let outcomes = tokio::task::spawn_blocking(move || {
                due.into_iter()
                    .map(|(id, handle, limits)| {
                        let started = std::time::Instant::now();
                        let outcome = driver.rotate_log(&handle, limits);
                        (id, handle.log_source(), outcome, started.elapsed())
                    })
                    .collect::<Vec<_>>()
            })
            .await;
            let Ok(outcomes) = outcomes else { continue };
            for (id, source, outcome, took) in outcomes {
                let path = PathBuf::from(&source);
                match outcome {
                    Ok(true) => {
                        failing.remove(&path);
                        metrics::counter!("cutover_instance_log_rotations_total").increment(1);
                        tracing::debug!(instance = %id, log = %source, ?took, "instance log rotated");
                    }
                    Ok(false) => {
                        failing.remove(&path);
                    }
                    Err(e) => {
                        if failing.insert(path) {
                            tracing::warn!(instance = %id, error = %e, "cannot rotate the instance's log");
                        }
                    }
                }
            }
        }
    }

    /// Every live instance with a log file of its own, and its service's
    /// rotation settings.
    fn log_checks(&self) -> Vec<(String, Handle, LogsConfig)> {
        let mut due = Vec::new();
        for env in self.environments.values() {
            for inst in env.instances() {
                if !matches!(inst.handle, Handle::Process(_)) {
                    continue;
                }
                let limits = self
                    .config
                    .service_in(&env.name, &inst.service)
                    .map(|s| s.logs)
                    .unwrap_or_default();
                due.push((inst.id, inst.handle, limits));
            }
        }
        due
    }
}
