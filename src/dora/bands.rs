//! The DORA performance bands (elite, high, medium, low) each figure falls
//! in, with the thresholds cutover uses. They follow the clusters of the
//! *Accelerate State of DevOps Report 2023* (DORA, Google Cloud), table
//! "Software delivery performance": elite deploys on demand with a lead time
//! under a day, 5 % failed changes and recovery under an hour; high between
//! daily and weekly, a lead time under a week, 10 %, under a day; medium
//! between weekly and monthly, under a month, 15 %, under a week. The
//! report's clusters are points and ranges that leave gaps (its "low" shares
//! medium's frequency and lead time); cutover turns them into contiguous
//! thresholds, each band's upper limit being the report's value for it, and
//! calls everything past medium low. docs/observability.md ("DORA metrics")
//! has the table.

use serde::{Deserialize, Serialize};

/// Where a figure sits among the DORA clusters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Band {
    /// The best cluster.
    Elite,
    /// The second.
    High,
    /// The third.
    Medium,
    /// The rest.
    Low,
}

impl Band {
    /// The lower-case name it is shown and sent as.
    pub fn as_str(self) -> &'static str {
        match self {
            Band::Elite => "elite",
            Band::High => "high",
            Band::Medium => "medium",
            Band::Low => "low",
        }
    }
}

impl std::fmt::Display for Band {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.pad(self.as_str())
    }
}

/// Seconds in an hour, a day, a week and a (30-day) month.
const HOUR: f64 = 3600.0;
const DAY: f64 = 24.0 * HOUR;
const WEEK: f64 = 7.0 * DAY;
const MONTH: f64 = 30.0 * DAY;

/// The source the thresholds follow, as the report names it.
pub const SOURCE: &str = "DORA, Accelerate State of DevOps Report 2023";

/// Deployment frequency, in successful deployments per day: elite at least
/// one a day (on demand), high at least one a week, medium at least one a
/// month (30 days), low fewer.
pub fn frequency(per_day: f64) -> Band {
    if per_day >= 1.0 {
        Band::Elite
    } else if per_day >= 1.0 / 7.0 {
        Band::High
    } else if per_day >= 1.0 / 30.0 {
        Band::Medium
    } else {
        Band::Low
    }
}

/// Lead time for changes: elite under a day, high under a week, medium
/// under a month (30 days), low from a month on.
pub fn lead_time(seconds: f64) -> Band {
    by_duration(seconds, DAY, WEEK, MONTH)
}

/// Change failure rate (0 to 1): elite at most 5 %, high at most 10 %,
/// medium at most 15 %, low above.
pub fn change_failure(ratio: f64) -> Band {
    if ratio <= 0.05 {
        Band::Elite
    } else if ratio <= 0.10 {
        Band::High
    } else if ratio <= 0.15 {
        Band::Medium
    } else {
        Band::Low
    }
}

/// Time to restore service (failed deployment recovery time): elite under
/// an hour, high under a day, medium under a week, low from a week on.
pub fn time_to_restore(seconds: f64) -> Band {
    by_duration(seconds, HOUR, DAY, WEEK)
}

fn by_duration(seconds: f64, elite: f64, high: f64, medium: f64) -> Band {
    if seconds < elite {
        Band::Elite
    } else if seconds < high {
        Band::High
    } else if seconds < medium {
        Band::Medium
    } else {
        Band::Low
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frequency_thresholds_are_daily_weekly_monthly() {
        assert_eq!(frequency(3.0), Band::Elite);
        assert_eq!(frequency(1.0), Band::Elite);
        assert_eq!(frequency(0.99), Band::High);
        assert_eq!(frequency(1.0 / 7.0), Band::High);
        assert_eq!(frequency(0.14), Band::Medium);
        assert_eq!(frequency(1.0 / 30.0), Band::Medium);
        assert_eq!(frequency(0.033), Band::Low);
        assert_eq!(frequency(0.0), Band::Low);
    }

    #[test]
    fn lead_time_thresholds_are_a_day_a_week_a_month() {
        assert_eq!(lead_time(0.0), Band::Elite);
        assert_eq!(lead_time(DAY - 1.0), Band::Elite);
        assert_eq!(lead_time(DAY), Band::High);
        assert_eq!(lead_time(WEEK - 1.0), Band::High);
        assert_eq!(lead_time(WEEK), Band::Medium);
        assert_eq!(lead_time(MONTH - 1.0), Band::Medium);
        assert_eq!(lead_time(MONTH), Band::Low);
    }

    #[test]
    fn change_failure_thresholds_are_the_reports_percentages() {
        assert_eq!(change_failure(0.0), Band::Elite);
        assert_eq!(change_failure(0.05), Band::Elite);
        assert_eq!(change_failure(0.051), Band::High);
        assert_eq!(change_failure(0.10), Band::High);
        assert_eq!(change_failure(0.15), Band::Medium);
        assert_eq!(change_failure(0.151), Band::Low);
        assert_eq!(change_failure(1.0), Band::Low);
    }

    #[test]
    fn restore_thresholds_are_an_hour_a_day_a_week() {
        assert_eq!(time_to_restore(59.0 * 60.0), Band::Elite);
        assert_eq!(time_to_restore(HOUR), Band::High);
        assert_eq!(time_to_restore(DAY), Band::Medium);
        assert_eq!(time_to_restore(WEEK), Band::Low);
    }

    #[test]
    fn bands_are_sent_lower_case() {
        assert_eq!(
            serde_json::to_value(Band::Elite).ok(),
            Some(serde_json::json!("elite"))
        );
        assert_eq!(Band::Medium.to_string(), "medium");
    }
}
