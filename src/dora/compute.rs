//! The four keys computed from an environment's history: pure functions of
//! the deployments (`store::DoraRow`: a deployment and when its release
//! first took traffic), the period and the fix window. No clock, no I/O.
//!
//! Exactly what counts (docs/observability.md, "DORA metrics", says the
//! same for users):
//!
//! - A **deploy** is a deployment of kind `deploy` that is not a restart of
//!   the serving release (strategy `restart`, which the daemon starts after
//!   a clean stop). Rollbacks are never deploys. A deployment is **in the
//!   period** when it ended (`finished_at`) within it.
//! - **Deployment frequency**: deploys in the period that ended
//!   `succeeded`, divided by the period's length in days.
//! - **Lead time for changes**: the median, over those succeeded deploys
//!   that carry a commit time, of `finished_at − commit_time` (a negative
//!   one, from a clock that disagrees, counts as 0).
//! - A **change** is a deploy in the period whose release took traffic: it
//!   succeeded, or one of its events says traffic moved to it (a switch, a
//!   canary step, a promotion, a service kept on it). Deploys that ended
//!   before any traffic reached them (unhealthy instances, a failed backup
//!   or migration, a rejection) and interrupted ones are not changes.
//! - A change **failed** when (first match): it ended `rolled_back`
//!   (`rolled_back`); it ended `failed` (`failed_after_serving`); it
//!   succeeded and the next deployment of the environment that changed what
//!   serves was `cutover rollback` away from its version
//!   (`rolled_back_by_operator`); or it succeeded and another deploy started
//!   within the fix window after it ended (`fixed_within_window`). Looking
//!   for "the next", restarts are skipped, and so are deploys that ended
//!   without taking traffic (they changed nothing) — though such a deploy
//!   still counts as a fix when it started within the window.
//! - **Change failure rate**: failed changes / changes.
//! - **Time to restore service**: for each failed change, from when it first
//!   took traffic to when a good release served all traffic again: its own
//!   end for one that `rolled_back`; otherwise the end of the next
//!   deployment (after it, restarts skipped) that succeeded and is good (a
//!   rollback, or a deploy that is not itself a failed change). The median
//!   of those; a failure not restored yet is listed apart.

use std::time::Duration;

use jiff::Timestamp;

use super::bands::{self, Band};
use super::report::{
    ChangeFailureRate, EnvironmentDora, Failure, FailureKind, Frequency, LeadTime, Restore,
    TimeToRestore,
};
use crate::store::{Deployment, DeploymentKind, DeploymentState, DoraRow};

/// The strategy of a deployment that restarts the serving release.
const RESTART: &str = "restart";

/// Milliseconds in a day.
const DAY_MS: f64 = 86_400_000.0;

/// The period a report covers.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Period {
    /// From (inclusive).
    pub since: Timestamp,
    /// To (inclusive).
    pub until: Timestamp,
}

impl Period {
    /// Its length in days (0 when `until` is not after `since`).
    pub fn days(&self) -> f64 {
        let ms = self.until.as_millisecond() - self.since.as_millisecond();
        (ms.max(0) as f64) / DAY_MS
    }

    fn holds(&self, at: Option<Timestamp>) -> bool {
        at.is_some_and(|at| self.since <= at && at <= self.until)
    }
}

/// The four keys of `environment` from `rows` (its deployments that ended
/// in the period or later, and running ones; any order; other
/// environments' rows are ignored).
pub fn environment(
    environment: &str,
    rows: &[DoraRow],
    period: Period,
    fix_window: Duration,
) -> EnvironmentDora {
    let mut history: Vec<&DoraRow> = rows
        .iter()
        .filter(|r| r.deployment.environment == environment)
        .collect();
    history.sort_by_key(|r| r.deployment.id);
    let history = History {
        rows: history,
        fix_window_ms: i64::try_from(fix_window.as_millis()).unwrap_or(i64::MAX),
    };
    let succeeded: Vec<&DoraRow> = history
        .rows
        .iter()
        .copied()
        .filter(|r| {
            is_deploy(&r.deployment)
                && r.deployment.state == DeploymentState::Succeeded
                && period.holds(r.deployment.finished_at)
        })
        .collect();
    EnvironmentDora {
        environment: environment.to_owned(),
        deployment_frequency: frequency(&succeeded, period),
        lead_time: lead_time(&succeeded),
        change_failure_rate: history.change_failure_rate(period),
        time_to_restore: history.time_to_restore(period),
    }
}

/// A deployment that brings a change: kind deploy, not a restart.
fn is_deploy(d: &Deployment) -> bool {
    d.kind == DeploymentKind::Deploy && d.strategy != RESTART
}

/// Whether its release took traffic.
fn served(r: &DoraRow) -> bool {
    r.deployment.state == DeploymentState::Succeeded || r.served_at.is_some()
}

/// `to − from` in milliseconds, 0 when negative or unknown.
fn span_ms(from: Option<Timestamp>, to: Option<Timestamp>) -> i64 {
    match (from, to) {
        (Some(from), Some(to)) => (to.as_millisecond() - from.as_millisecond()).max(0),
        _ => 0,
    }
}

/// The median of milliseconds, in seconds; `None` for none.
fn median_seconds(mut ms: Vec<i64>) -> Option<f64> {
    ms.sort_unstable();
    let n = ms.len();
    let mid = n / 2;
    let median = match n {
        0 => return None,
        _ if n % 2 == 1 => ms[mid] as f64,
        _ => (ms[mid - 1] as f64 + ms[mid] as f64) / 2.0,
    };
    Some(median / 1000.0)
}

fn frequency(succeeded: &[&DoraRow], period: Period) -> Frequency {
    let days = period.days();
    let per_day = if days > 0.0 {
        succeeded.len() as f64 / days
    } else {
        0.0
    };
    Frequency {
        per_day,
        band: bands::frequency(per_day),
        deployments: succeeded.iter().map(|r| r.deployment.id).collect(),
    }
}

fn lead_time(succeeded: &[&DoraRow]) -> LeadTime {
    let (with, without): (Vec<&DoraRow>, Vec<&DoraRow>) = succeeded
        .iter()
        .partition(|r| r.deployment.commit_time.is_some());
    let median = median_seconds(
        with.iter()
            .map(|r| span_ms(r.deployment.commit_time, r.deployment.finished_at))
            .collect(),
    );
    LeadTime {
        median_seconds: median,
        band: median.map(bands::lead_time),
        deployments: with.iter().map(|r| r.deployment.id).collect(),
        without_commit_time: without.iter().map(|r| r.deployment.id).collect(),
    }
}

/// One environment's deployments, oldest first.
struct History<'a> {
    rows: Vec<&'a DoraRow>,
    fix_window_ms: i64,
}

impl History<'_> {
    /// The changes in the period, oldest first.
    fn changes(&self, period: Period) -> impl Iterator<Item = (usize, &DoraRow)> {
        self.rows.iter().copied().enumerate().filter(move |(_, r)| {
            let d = &r.deployment;
            is_deploy(d)
                && matches!(
                    d.state,
                    DeploymentState::Succeeded
                        | DeploymentState::RolledBack
                        | DeploymentState::Failed
                )
                && served(r)
                && period.holds(d.finished_at)
        })
    }

    /// Whether (and how) the deploy at `i` is a failed change.
    fn failure(&self, i: usize) -> Option<(FailureKind, Option<i64>)> {
        let row = self.rows.get(i)?;
        let d = &row.deployment;
        if !is_deploy(d) || !served(row) {
            return None;
        }
        match d.state {
            DeploymentState::RolledBack => return Some((FailureKind::RolledBack, None)),
            DeploymentState::Failed => return Some((FailureKind::FailedAfterServing, None)),
            DeploymentState::Succeeded => {}
            DeploymentState::Running | DeploymentState::Interrupted => return None,
        }
        for next in self.rows.iter().skip(i + 1) {
            let n = &next.deployment;
            if n.strategy == RESTART {
                continue;
            }
            if n.kind == DeploymentKind::Rollback {
                if n.previous_version.as_deref() == Some(d.version.as_str()) {
                    return Some((FailureKind::RolledBackByOperator, Some(n.id)));
                }
                return None;
            }
            let gap = span_ms(d.finished_at, Some(n.started_at));
            if self.fix_window_ms > 0 && gap <= self.fix_window_ms {
                return Some((FailureKind::FixedWithinWindow, Some(n.id)));
            }
            if served(next) || n.state == DeploymentState::Running {
                return None;
            }
        }
        None
    }

    fn change_failure_rate(&self, period: Period) -> ChangeFailureRate {
        let mut changes = Vec::new();
        let mut failures = Vec::new();
        for (i, row) in self.changes(period) {
            changes.push(row.deployment.id);
            if let Some((how, by)) = self.failure(i) {
                failures.push(Failure {
                    deployment: row.deployment.id,
                    how,
                    by,
                });
            }
        }
        let ratio = (!changes.is_empty()).then(|| failures.len() as f64 / changes.len() as f64);
        ChangeFailureRate {
            ratio,
            band: ratio.map(bands::change_failure),
            changes,
            failures,
        }
    }

    /// The deployment after `i` that restored service: the first later one
    /// (restarts skipped) that succeeded and is good.
    fn restored_after(&self, i: usize) -> Option<&DoraRow> {
        self.rows
            .iter()
            .copied()
            .enumerate()
            .skip(i + 1)
            .filter(|(_, r)| {
                r.deployment.strategy != RESTART && r.deployment.state == DeploymentState::Succeeded
            })
            .find(|&(j, r)| {
                r.deployment.kind == DeploymentKind::Rollback || self.failure(j).is_none()
            })
            .map(|(_, r)| r)
    }

    fn time_to_restore(&self, period: Period) -> TimeToRestore {
        let mut restores = Vec::new();
        let mut unrestored = Vec::new();
        for (i, row) in self.changes(period) {
            let Some((how, _)) = self.failure(i) else {
                continue;
            };
            let by = match how {
                FailureKind::RolledBack => Some(row),
                _ => self.restored_after(i),
            };
            match by {
                Some(by) => restores.push((
                    row.deployment.id,
                    by.deployment.id,
                    span_ms(
                        row.served_at.or(row.deployment.finished_at),
                        by.deployment.finished_at,
                    ),
                )),
                None => unrestored.push(row.deployment.id),
            }
        }
        let median = median_seconds(restores.iter().map(|&(_, _, ms)| ms).collect());
        TimeToRestore {
            median_seconds: median,
            band: median.map(bands::time_to_restore),
            restores: restores
                .into_iter()
                .map(|(failure, restored_by, ms)| Restore {
                    failure,
                    restored_by,
                    seconds: ms as f64 / 1000.0,
                })
                .collect(),
            unrestored,
        }
    }
}

/// A band's name, or `-` for none.
pub fn band_name(band: Option<Band>) -> &'static str {
    band.map_or("-", Band::as_str)
}
