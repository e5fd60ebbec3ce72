//! DORA's four keys (docs/observability.md, "DORA metrics"): deployment
//! frequency, lead time for changes, change failure rate and time to
//! restore service, per environment, from the history of deployments, each
//! with its band (`bands.rs`) and the deployments it came from.
//!
//! `compute.rs` is the pure part (history in, figures out; what counts is
//! documented there); `report.rs` the stable JSON (`GET /v1/dora`, `cutover
//! dora --json`); `commit.rs` what a deploy may say about its commit
//! (`--commit`, `CUTOVER_COMMIT_TIME`); `exporter.rs` the same figures as
//! Prometheus gauges, refreshed by the daemon. [`report`] reads the store
//! and computes; [`parse_since`] and [`parse_fix_window`] read the options.

pub mod bands;
pub mod commit;
pub mod compute;
pub mod exporter;
pub mod report;
#[cfg(test)]
mod tests;

use std::time::Duration;

use jiff::{SignedDuration, Timestamp};

use self::compute::Period;
use self::report::DoraReport;
use crate::store::{Store, StoreError};

/// The period when none is asked for.
pub const DEFAULT_SINCE: &str = "30d";

/// The fix window when none is asked for: a deploy that starts within an
/// hour after a succeeded one is taken for a fix of it.
pub const DEFAULT_FIX_WINDOW: Duration = Duration::from_secs(3600);

/// The longest period one may ask for (ten years).
const MAX_PERIOD: SignedDuration = SignedDuration::from_hours(24 * 3653);

/// `since`: how long ago (`30d`, `12h`, `90m`) or an RFC 3339 time, which
/// must be before `now` and at most ten years back.
pub fn parse_since(text: &str, now: Timestamp) -> Result<Timestamp, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "since {:?}: write how long ago (30d, 12h, 90m) or a time (2026-11-01T00:00:00Z)",
            crate::label::printable(&crate::label::clean_text(text))
        )
    };
    let since = match text.parse::<Timestamp>() {
        Ok(at) => at,
        Err(_) => {
            let ago = humantime::parse_duration(text).map_err(|_| bad())?;
            let ago = SignedDuration::try_from(ago).map_err(|_| bad())?;
            if ago > MAX_PERIOD {
                return Err(format!("{} at most 10 years back", bad()));
            }
            now.checked_sub(ago).map_err(|_| bad())?
        }
    };
    if since >= now {
        return Err(format!(
            "since {since}: the period must start before now ({now:.0})"
        ));
    }
    match now.checked_sub(MAX_PERIOD) {
        Ok(oldest) if since < oldest => Err(format!("{}, at most 10 years back", bad())),
        _ => Ok(since),
    }
}

/// `fix_window`: a duration (`1h`, `30m`; `0` for none).
pub fn parse_fix_window(text: &str) -> Result<Duration, String> {
    let text = text.trim();
    if text == "0" {
        return Ok(Duration::ZERO);
    }
    match humantime::parse_duration(text) {
        Ok(d) if d <= Duration::from_secs(30 * 86_400) => Ok(d),
        _ => Err(format!(
            "fix window {:?}: write a duration of at most 30 days (1h, 30m), or 0 to count no deploy as a fix",
            crate::label::printable(&crate::label::clean_text(text))
        )),
    }
}

/// The report for `environments` over `since..now`, read from `store`.
pub async fn report(
    store: &Store,
    environments: &[String],
    since: Timestamp,
    now: Timestamp,
    fix_window: Duration,
) -> Result<DoraReport, StoreError> {
    let period = Period { since, until: now };
    let mut figures = Vec::new();
    for env in environments {
        let rows = store.dora_history(env, since).await?;
        figures.push(compute::environment(env, &rows, period, fix_window));
    }
    Ok(DoraReport {
        since,
        until: now,
        period_days: period.days(),
        fix_window_seconds: fix_window.as_secs(),
        bands_source: bands::SOURCE.to_owned(),
        environments: figures,
    })
}
