//! The four keys on hand-made histories: every figure, band and list of ids
//! is worked out by hand in each test.

use std::time::Duration;

use jiff::Timestamp;

use super::bands::Band;
use super::compute::{self, Period};
use super::report::{EnvironmentDora, Failure, FailureKind, Restore};
use super::{parse_fix_window, parse_since};
use crate::store::{Deployment, DeploymentKind, DeploymentState, DoraRow};

const HOUR: i64 = 3600;
const DAY: i64 = 24 * HOUR;
/// The period's start: 2026-11-01T00:00:00Z.
const T0: i64 = 1_793_491_200;

fn at(second: i64) -> Timestamp {
    Timestamp::from_second(second).expect("a time")
}

/// A 30-day period from `T0`.
fn period() -> Period {
    Period {
        since: at(T0),
        until: at(T0 + 30 * DAY),
    }
}

/// A history built one deployment at a time, ids from 1.
struct Builder {
    rows: Vec<DoraRow>,
    serving: Option<String>,
}

/// One deployment to add: its times in seconds after `T0`.
struct Row {
    kind: DeploymentKind,
    version: &'static str,
    state: DeploymentState,
    start: i64,
    served: Option<i64>,
    end: Option<i64>,
    commit: Option<i64>,
    strategy: &'static str,
}

fn deploy(version: &'static str, state: DeploymentState, start: i64, end: i64) -> Row {
    Row {
        kind: DeploymentKind::Deploy,
        version,
        state,
        start,
        // A succeeded or rolled back deploy took traffic a few seconds in,
        // unless the test says otherwise.
        served: match state {
            DeploymentState::Succeeded | DeploymentState::RolledBack | DeploymentState::Failed => {
                Some(start + 10)
            }
            _ => None,
        },
        end: Some(end),
        commit: None,
        strategy: "blue-green",
    }
}

impl Row {
    fn commit(mut self, seconds: i64) -> Row {
        self.commit = Some(seconds);
        self
    }

    fn served(mut self, seconds: Option<i64>) -> Row {
        self.served = seconds;
        self
    }

    fn strategy(mut self, strategy: &'static str) -> Row {
        self.strategy = strategy;
        self
    }
}

fn rollback(state: DeploymentState, start: i64, end: i64) -> Row {
    Row {
        kind: DeploymentKind::Rollback,
        version: "",
        state,
        start,
        served: Some(start + 1),
        end: Some(end),
        commit: None,
        strategy: "switch",
    }
}

impl Builder {
    fn new() -> Builder {
        Builder {
            rows: Vec::new(),
            serving: None,
        }
    }

    /// Adds `row`; returns its id. A rollback goes back to the version that
    /// served before the one serving.
    fn add(&mut self, row: Row) -> i64 {
        let id = self.rows.len() as i64 + 1;
        let previous = self.serving.clone();
        let version = match row.kind {
            DeploymentKind::Deploy => row.version.to_owned(),
            DeploymentKind::Rollback => self.version_before(previous.as_deref()),
        };
        if row.state == DeploymentState::Succeeded {
            self.serving = Some(version.clone());
        }
        self.rows.push(DoraRow {
            deployment: Deployment {
                id,
                environment: "production".into(),
                version,
                previous_version: previous,
                strategy: row.strategy.into(),
                kind: row.kind,
                state: row.state,
                reason: None,
                requested_by: "alice".into(),
                started_at: at(T0 + row.start),
                finished_at: row.end.map(|e| at(T0 + e)),
                awaiting_approval: false,
                commit_sha: row.commit.map(|_| "3f2a9c1".into()),
                commit_time: row.commit.map(|c| at(T0 + c)),
            },
            served_at: row.served.map(|s| at(T0 + s)),
        });
        id
    }

    /// The version that served before the last succeeded deploy of `current`.
    fn version_before(&self, current: Option<&str>) -> String {
        self.rows
            .iter()
            .rev()
            .find(|r| {
                r.deployment.state == DeploymentState::Succeeded
                    && Some(r.deployment.version.as_str()) == current
            })
            .and_then(|r| r.deployment.previous_version.clone())
            .unwrap_or_default()
    }

    fn figures(&self, fix_window: Duration) -> EnvironmentDora {
        compute::environment("production", &self.rows, period(), fix_window)
    }
}

const NO_FIX: Duration = Duration::ZERO;
const FIX_HOUR: Duration = Duration::from_secs(3600);

fn close(a: f64, b: f64) -> bool {
    (a - b).abs() < 1e-9
}

#[test]
fn an_empty_history_has_a_frequency_of_zero_and_nothing_else() {
    let f = Builder::new().figures(FIX_HOUR);
    assert_eq!(f.deployment_frequency.per_day, 0.0);
    assert_eq!(f.deployment_frequency.band, Band::Low);
    assert!(f.deployment_frequency.deployments.is_empty());
    assert_eq!(f.lead_time.median_seconds, None);
    assert_eq!(f.lead_time.band, None);
    assert_eq!(f.change_failure_rate.ratio, None);
    assert_eq!(f.change_failure_rate.band, None);
    assert_eq!(f.time_to_restore.median_seconds, None);
    assert_eq!(f.time_to_restore.band, None);
}

#[test]
fn frequency_counts_succeeded_deploys_in_the_period_per_day() {
    let mut h = Builder::new();
    use DeploymentState::*;
    // Ended before the period: not counted.
    h.add(deploy("v0", Succeeded, -2 * DAY, -2 * DAY + 60));
    let mut counted = Vec::new();
    for day in 0..6 {
        let start = day * 5 * DAY + HOUR;
        counted.push(h.add(deploy(
            ["v1", "v2", "v3", "v4", "v5", "v6"][day as usize],
            Succeeded,
            start,
            start + 60,
        )));
    }
    // Neither a failed deploy, nor a rollback, nor a restart, nor a
    // running one counts.
    h.add(deploy("v7", Failed, 29 * DAY, 29 * DAY + 30).served(None));
    h.add(rollback(Succeeded, 29 * DAY + HOUR, 29 * DAY + HOUR + 5));
    h.add(
        deploy(
            "v5",
            Succeeded,
            29 * DAY + 2 * HOUR,
            29 * DAY + 2 * HOUR + 9,
        )
        .strategy("restart"),
    );
    h.add(Row {
        end: None,
        ..deploy("v8", Running, 29 * DAY + 3 * HOUR, 0)
    });
    let f = h.figures(NO_FIX);
    // 6 in 30 days: 0.2 a day, at least weekly: high.
    assert!(close(f.deployment_frequency.per_day, 0.2), "{f:?}");
    assert_eq!(f.deployment_frequency.band, Band::High);
    assert_eq!(f.deployment_frequency.deployments, counted);
}

#[test]
fn lead_time_is_the_median_from_commit_to_the_end_of_a_succeeded_deploy() {
    use DeploymentState::*;
    let mut h = Builder::new();
    // Lead times 2 h, 30 min, 5 h, 26 h: median (2 h + 5 h) / 2 = 3.5 h.
    let a = h.add(deploy("v1", Succeeded, DAY, DAY + 600).commit(DAY + 600 - 2 * HOUR));
    let b = h.add(deploy("v2", Succeeded, 2 * DAY, 2 * DAY + 60).commit(2 * DAY + 60 - 1800));
    let none = h.add(deploy("v3", Succeeded, 3 * DAY, 3 * DAY + 60));
    let c = h.add(deploy("v4", Succeeded, 4 * DAY, 4 * DAY + 60).commit(4 * DAY + 60 - 5 * HOUR));
    // A failed deploy's commit does not count.
    h.add(deploy("v5", RolledBack, 5 * DAY, 5 * DAY + 60).commit(0));
    let d = h.add(deploy("v6", Succeeded, 6 * DAY, 6 * DAY + 60).commit(6 * DAY + 60 - 26 * HOUR));
    let f = h.figures(NO_FIX);
    assert_eq!(f.lead_time.median_seconds, Some(3.5 * 3600.0));
    assert_eq!(f.lead_time.band, Some(Band::Elite));
    assert_eq!(f.lead_time.deployments, vec![a, b, c, d]);
    assert_eq!(f.lead_time.without_commit_time, vec![none]);

    // An odd count takes the middle one; a commit "after" the deploy (clocks
    // that disagree) counts as 0.
    let mut h = Builder::new();
    h.add(deploy("v1", Succeeded, DAY, DAY + 60).commit(DAY + 60 - 8 * DAY));
    h.add(deploy("v2", Succeeded, 2 * DAY, 2 * DAY + 60).commit(2 * DAY + 60 - 2 * DAY));
    h.add(deploy("v3", Succeeded, 3 * DAY, 3 * DAY + 60).commit(3 * DAY + 600));
    let f = h.figures(NO_FIX);
    assert_eq!(f.lead_time.median_seconds, Some(2.0 * 86400.0));
    assert_eq!(f.lead_time.band, Some(Band::High));
}

#[test]
fn a_canary_rolled_back_by_its_analysis_is_a_failure_restored_by_itself() {
    use DeploymentState::*;
    let mut h = Builder::new();
    let good = h.add(deploy("v1", Succeeded, DAY, DAY + 60));
    // Took traffic at +10 s, rolled back at +70 s: restored in 60 s.
    let bad = h.add(deploy("v2", RolledBack, 2 * DAY, 2 * DAY + 70));
    let f = h.figures(NO_FIX);
    assert_eq!(f.change_failure_rate.changes, vec![good, bad]);
    assert_eq!(
        f.change_failure_rate.failures,
        vec![Failure {
            deployment: bad,
            how: FailureKind::RolledBack,
            by: None
        }]
    );
    assert_eq!(f.change_failure_rate.ratio, Some(0.5));
    assert_eq!(f.change_failure_rate.band, Some(Band::Low));
    assert_eq!(
        f.time_to_restore.restores,
        vec![Restore {
            failure: bad,
            restored_by: bad,
            seconds: 60.0
        }]
    );
    assert_eq!(f.time_to_restore.median_seconds, Some(60.0));
    assert_eq!(f.time_to_restore.band, Some(Band::Elite));
}

#[test]
fn deploys_that_never_took_traffic_are_not_changes() {
    use DeploymentState::*;
    let mut h = Builder::new();
    let good = h.add(deploy("v1", Succeeded, DAY, DAY + 60));
    // Unhealthy instances: rolled back before any traffic moved.
    h.add(deploy("v2", RolledBack, 2 * DAY, 2 * DAY + 20).served(None));
    // A failed backup: failed before anything started.
    h.add(deploy("v3", Failed, 3 * DAY, 3 * DAY + 5).served(None));
    // The daemon stopped while it ran.
    h.add(deploy("v4", Interrupted, 4 * DAY, 4 * DAY + 5));
    let f = h.figures(FIX_HOUR);
    assert_eq!(f.change_failure_rate.changes, vec![good]);
    assert!(f.change_failure_rate.failures.is_empty());
    assert_eq!(f.change_failure_rate.ratio, Some(0.0));
    assert_eq!(f.change_failure_rate.band, Some(Band::Elite));
    assert_eq!(f.time_to_restore.median_seconds, None);
}

#[test]
fn an_operator_rollback_fails_the_change_it_rolls_back_and_restores_it() {
    use DeploymentState::*;
    let mut h = Builder::new();
    let v1 = h.add(deploy("v1", Succeeded, DAY, DAY + 60));
    // v2 takes traffic at DAY*2+10, is rolled back 3 h later; the rollback
    // ends 5 s after it starts.
    let v2 = h.add(deploy("v2", Succeeded, 2 * DAY, 2 * DAY + 60));
    let back = h.add(rollback(
        Succeeded,
        2 * DAY + 3 * HOUR,
        2 * DAY + 3 * HOUR + 5,
    ));
    let f = h.figures(FIX_HOUR);
    assert_eq!(f.change_failure_rate.changes, vec![v1, v2]);
    assert_eq!(
        f.change_failure_rate.failures,
        vec![Failure {
            deployment: v2,
            how: FailureKind::RolledBackByOperator,
            by: Some(back)
        }]
    );
    // A rollback is not a deploy: two deploys in the frequency.
    assert_eq!(f.deployment_frequency.deployments, vec![v1, v2]);
    let seconds = (3 * HOUR + 5 - 10) as f64;
    assert_eq!(
        f.time_to_restore.restores,
        vec![Restore {
            failure: v2,
            restored_by: back,
            seconds
        }]
    );
    // 3 h: under a day, high.
    assert_eq!(f.time_to_restore.band, Some(Band::High));
}

#[test]
fn a_deploy_within_the_fix_window_makes_the_one_before_a_failure() {
    use DeploymentState::*;
    let mut h = Builder::new();
    let v1 = h.add(deploy("v1", Succeeded, DAY, DAY + 60));
    // v2 ends at 2d+60; v3 starts 30 min later: a fix.
    let v2 = h.add(deploy("v2", Succeeded, 2 * DAY, 2 * DAY + 60));
    let v3 = h.add(deploy(
        "v3",
        Succeeded,
        2 * DAY + 60 + 1800,
        2 * DAY + 60 + 1900,
    ));
    // v4 starts 2 h after v3 ended: not a fix.
    let v4 = h.add(deploy(
        "v4",
        Succeeded,
        2 * DAY + 1960 + 2 * HOUR,
        2 * DAY + 2000 + 2 * HOUR,
    ));
    let f = h.figures(FIX_HOUR);
    assert_eq!(f.change_failure_rate.changes, vec![v1, v2, v3, v4]);
    assert_eq!(
        f.change_failure_rate.failures,
        vec![Failure {
            deployment: v2,
            how: FailureKind::FixedWithinWindow,
            by: Some(v3)
        }]
    );
    assert_eq!(f.change_failure_rate.ratio, Some(0.25));
    // v2 took traffic at 2d+10; v3 (good) ended at 2d+1960.
    assert_eq!(
        f.time_to_restore.restores,
        vec![Restore {
            failure: v2,
            restored_by: v3,
            seconds: 1950.0
        }]
    );
    // Without a fix window, no failure at all.
    let f = h.figures(NO_FIX);
    assert!(f.change_failure_rate.failures.is_empty());
    assert_eq!(f.change_failure_rate.ratio, Some(0.0));
    // The window is inclusive: exactly 30 min apart counts with 30 min.
    let f = h.figures(Duration::from_secs(1800));
    assert_eq!(f.change_failure_rate.failures.len(), 1);
    let f = h.figures(Duration::from_secs(1799));
    assert!(f.change_failure_rate.failures.is_empty());
}

#[test]
fn a_fix_that_fails_is_a_failure_too_and_restore_waits_for_a_good_release() {
    use DeploymentState::*;
    let mut h = Builder::new();
    let v1 = h.add(deploy("v1", Succeeded, DAY, DAY + 60));
    // v2 succeeds; v3, 10 min later, is a fix that fails after serving (a
    // service kept on it); v4, 20 min after, serves and stays.
    let v2 = h.add(deploy("v2", Succeeded, 2 * DAY, 2 * DAY + 60));
    let v3 = h.add(deploy("v3", Failed, 2 * DAY + 660, 2 * DAY + 760));
    let v4 = h.add(deploy(
        "v4",
        Succeeded,
        2 * DAY + 5 * HOUR,
        2 * DAY + 5 * HOUR + 100,
    ));
    let f = h.figures(FIX_HOUR);
    assert_eq!(f.change_failure_rate.changes, vec![v1, v2, v3, v4]);
    assert_eq!(
        f.change_failure_rate.failures,
        vec![
            Failure {
                deployment: v2,
                how: FailureKind::FixedWithinWindow,
                by: Some(v3)
            },
            Failure {
                deployment: v3,
                how: FailureKind::FailedAfterServing,
                by: None
            },
        ]
    );
    assert_eq!(f.change_failure_rate.ratio, Some(0.5));
    // Both restored when v4 ended (5 h + 100 s in): v2 took traffic at +10,
    // v3 at +670.
    let end = 5 * HOUR + 100;
    assert_eq!(
        f.time_to_restore.restores,
        vec![
            Restore {
                failure: v2,
                restored_by: v4,
                seconds: (end - 10) as f64
            },
            Restore {
                failure: v3,
                restored_by: v4,
                seconds: (end - 670) as f64
            },
        ]
    );
    let median = ((end - 10) + (end - 670)) as f64 / 2.0;
    assert_eq!(f.time_to_restore.median_seconds, Some(median));
    assert_eq!(f.time_to_restore.band, Some(Band::High));
}

#[test]
fn an_unrestored_failure_is_listed_apart() {
    use DeploymentState::*;
    let mut h = Builder::new();
    h.add(deploy("v1", Succeeded, DAY, DAY + 60));
    let v2 = h.add(deploy("v2", Failed, 2 * DAY, 2 * DAY + 60));
    let f = h.figures(FIX_HOUR);
    assert_eq!(f.time_to_restore.unrestored, vec![v2]);
    assert!(f.time_to_restore.restores.is_empty());
    assert_eq!(f.time_to_restore.median_seconds, None);
    assert_eq!(f.change_failure_rate.ratio, Some(0.5));
}

#[test]
fn deploys_that_took_no_traffic_are_skipped_looking_for_the_next_change() {
    use DeploymentState::*;
    let mut h = Builder::new();
    h.add(deploy("v1", Succeeded, DAY, DAY + 60));
    let v2 = h.add(deploy("v2", Succeeded, 2 * DAY, 2 * DAY + 60));
    // 3 h later a deploy that never takes traffic (not a fix: outside the
    // window), then a restart, then a rollback away from v2.
    h.add(
        deploy(
            "v3",
            RolledBack,
            2 * DAY + 3 * HOUR,
            2 * DAY + 3 * HOUR + 20,
        )
        .served(None),
    );
    h.add(deploy("v2", Succeeded, 2 * DAY + 4 * HOUR, 2 * DAY + 4 * HOUR + 9).strategy("restart"));
    let back = h.add(rollback(
        Succeeded,
        2 * DAY + 5 * HOUR,
        2 * DAY + 5 * HOUR + 5,
    ));
    let f = h.figures(FIX_HOUR);
    assert_eq!(
        f.change_failure_rate.failures,
        vec![Failure {
            deployment: v2,
            how: FailureKind::RolledBackByOperator,
            by: Some(back)
        }]
    );
    // A deploy that served ends the search: v2 replaced by v3 serving.
    let mut h = Builder::new();
    h.add(deploy("v1", Succeeded, DAY, DAY + 60));
    h.add(deploy("v2", Succeeded, 2 * DAY, 2 * DAY + 60));
    h.add(deploy("v3", Succeeded, 3 * DAY, 3 * DAY + 60));
    let back = h.add(rollback(Succeeded, 3 * DAY + HOUR, 3 * DAY + HOUR + 5));
    let f = h.figures(FIX_HOUR);
    assert_eq!(
        f.change_failure_rate.failures,
        vec![Failure {
            deployment: 3,
            how: FailureKind::RolledBackByOperator,
            by: Some(back)
        }]
    );
}

#[test]
fn a_failed_rollback_does_not_restore_but_the_next_good_release_does() {
    use DeploymentState::*;
    let mut h = Builder::new();
    h.add(deploy("v1", Succeeded, DAY, DAY + 60));
    let v2 = h.add(deploy("v2", Succeeded, 2 * DAY, 2 * DAY + 60));
    let back = h.add(rollback(
        Failed,
        2 * DAY + 2 * HOUR,
        2 * DAY + 2 * HOUR + 30,
    ));
    let v3 = h.add(deploy(
        "v3",
        Succeeded,
        2 * DAY + 4 * HOUR,
        2 * DAY + 4 * HOUR + 60,
    ));
    let f = h.figures(FIX_HOUR);
    assert_eq!(
        f.change_failure_rate.failures,
        vec![Failure {
            deployment: v2,
            how: FailureKind::RolledBackByOperator,
            by: Some(back)
        }]
    );
    assert_eq!(
        f.time_to_restore.restores,
        vec![Restore {
            failure: v2,
            restored_by: v3,
            seconds: (4 * HOUR + 60 - 10) as f64
        }]
    );
}

#[test]
fn a_mixed_month_gets_each_figure_and_band() {
    use DeploymentState::*;
    let mut h = Builder::new();
    // 40 succeeded deploys a day apart-ish (one every 18 h), each 2 h after
    // its commit, one rolled back by an operator 30 min after it ended.
    let mut ids = Vec::new();
    for n in 0..40 {
        let start = n * 18 * HOUR;
        ids.push(h.add(deploy("v", Succeeded, start, start + 120).commit(start + 120 - 2 * HOUR)));
        if n == 20 {
            h.add(rollback(Succeeded, start + 120 + 1800, start + 120 + 1805));
        }
    }
    // Versions must differ for a rollback to name one; the builder's "v"
    // for all makes the rollback go back to "v": only the previous_version
    // matters, which is "v".
    let f = h.figures(NO_FIX);
    assert!(close(f.deployment_frequency.per_day, 40.0 / 30.0));
    assert_eq!(f.deployment_frequency.band, Band::Elite);
    assert_eq!(f.lead_time.median_seconds, Some(2.0 * 3600.0));
    assert_eq!(f.lead_time.band, Some(Band::Elite));
    assert_eq!(f.change_failure_rate.changes, ids);
    assert_eq!(f.change_failure_rate.failures.len(), 1);
    assert!(close(
        f.change_failure_rate.ratio.unwrap_or(-1.0),
        1.0 / 40.0
    ));
    assert_eq!(f.change_failure_rate.band, Some(Band::Elite));
    // Took traffic at +10 s, the rollback ended at +1925 s.
    assert_eq!(f.time_to_restore.median_seconds, Some(1915.0));
    assert_eq!(f.time_to_restore.band, Some(Band::Elite));
}

#[test]
fn other_environments_rows_are_ignored() {
    let mut h = Builder::new();
    h.add(deploy("v1", DeploymentState::Succeeded, DAY, DAY + 60));
    h.rows[0].deployment.environment = "staging".into();
    let f = h.figures(FIX_HOUR);
    assert!(f.deployment_frequency.deployments.is_empty());
    assert_eq!(f.environment, "production");
}

#[test]
fn since_is_how_long_ago_or_a_time_before_now() {
    let now = at(T0 + 30 * DAY);
    assert_eq!(parse_since("30d", now), Ok(at(T0)));
    assert_eq!(parse_since("2026-11-01T00:00:00Z", now), Ok(at(T0)));
    assert_eq!(parse_since("12h", now), Ok(at(T0 + 30 * DAY - 12 * HOUR)));
    for bad in ["", "yesterday", "30 days ago", "-3d"] {
        let err = parse_since(bad, now).expect_err(bad);
        assert!(err.contains("write how long ago (30d"), "{bad}: {err}");
    }
    let err = parse_since("2027-01-01T00:00:00Z", now).expect_err("future");
    assert!(err.contains("must start before now"), "{err}");
    let err = parse_since("0s", now).expect_err("empty period");
    assert!(err.contains("must start before now"), "{err}");
    let err = parse_since("20000d", now).expect_err("too far");
    assert!(err.contains("10 years"), "{err}");
}

#[test]
fn the_fix_window_is_a_duration_or_zero() {
    assert_eq!(parse_fix_window("1h"), Ok(Duration::from_secs(3600)));
    assert_eq!(parse_fix_window("0"), Ok(Duration::ZERO));
    assert_eq!(parse_fix_window("0s"), Ok(Duration::ZERO));
    for bad in ["soon", "-1h", "31d"] {
        let err = parse_fix_window(bad).expect_err(bad);
        assert!(err.contains("write a duration"), "{err}");
    }
}

#[test]
fn the_reports_json_is_pinned() {
    use super::report::DoraReport;
    let mut h = Builder::new();
    use DeploymentState::*;
    h.add(deploy("v1", Succeeded, DAY, DAY + 60).commit(DAY + 60 - HOUR));
    h.add(deploy("v2", RolledBack, 2 * DAY, 2 * DAY + 70));
    let report = DoraReport {
        since: at(T0),
        until: at(T0 + 30 * DAY),
        period_days: 30.0,
        fix_window_seconds: 3600,
        bands_source: super::bands::SOURCE.into(),
        environments: vec![h.figures(FIX_HOUR)],
    };
    let json = serde_json::to_value(&report).expect("json");
    assert_eq!(
        json,
        serde_json::json!({
            "since": "2026-11-01T00:00:00Z",
            "until": "2026-12-01T00:00:00Z",
            "period_days": 30.0,
            "fix_window_seconds": 3600,
            "bands_source": "DORA, Accelerate State of DevOps Report 2023",
            "environments": [{
                "environment": "production",
                "deployment_frequency": {
                    "per_day": 1.0 / 30.0,
                    "band": "medium",
                    "deployments": [1],
                },
                "lead_time": {
                    "median_seconds": 3600.0,
                    "band": "elite",
                    "deployments": [1],
                    "without_commit_time": [],
                },
                "change_failure_rate": {
                    "ratio": 0.5,
                    "band": "low",
                    "changes": [1, 2],
                    "failures": [{ "deployment": 2, "how": "rolled_back", "by": null }],
                },
                "time_to_restore": {
                    "median_seconds": 60.0,
                    "band": "elite",
                    "restores": [{ "failure": 2, "restored_by": 2, "seconds": 60.0 }],
                    "unrestored": [],
                },
            }],
        })
    );
    let back: DoraReport = serde_json::from_value(json).expect("read back");
    assert_eq!(back, report);
}
