//! `cutover dora [-e ENV] [--since 30d] [--fix-window 1h]`: DORA's four keys
//! from the daemon (`GET /v1/dora`), as a table with bands, or the report's
//! stable JSON with `--json` (docs/observability.md, "DORA metrics").

use std::path::Path;
use std::time::Duration;

use super::output;
use crate::api::wire::{DoraReport, EnvironmentDora, FailureKind};
use crate::dora::bands::Band;
use crate::exit::{self, CliError};

/// How many deployment ids a line lists before it says how many more.
const SHOWN_IDS: usize = 8;

/// `cutover dora`.
pub async fn dora(
    path: &Path,
    environment: Option<&str>,
    since: &str,
    fix_window: &str,
    json: bool,
) -> Result<(), CliError> {
    // Checked here first, so a typo is a usage error (exit 2) before the
    // daemon is asked; the daemon checks the same way.
    let usage = |e: String| CliError::new(exit::USAGE, format!("--{e}"));
    crate::dora::parse_since(since, jiff::Timestamp::now()).map_err(usage)?;
    crate::dora::parse_fix_window(fix_window)
        .map_err(|e| usage(e.replacen("fix window", "fix-window", 1)))?;
    let config = output::load_config(path)?;
    let report = output::client(&config)?
        .dora(environment, since, Some(fix_window))
        .await?;
    if json {
        return output::print_json(&report);
    }
    print!("{}", render(&report));
    Ok(())
}

/// The report for people.
pub fn render(report: &DoraReport) -> String {
    let mut out = format!(
        "DORA metrics from {:.0} to {:.0} ({}); bands per {}\n",
        report.since,
        report.until,
        days(report.period_days),
        report.bands_source
    );
    for env in &report.environments {
        out.push('\n');
        out.push_str(&environment(env, report.fix_window_seconds));
    }
    out
}

fn environment(env: &EnvironmentDora, fix_window: u64) -> String {
    let mut lines = vec![format!("environment {}", env.environment)];
    let mut row = |what: &str, figure: String, band: Option<Band>, from: String| {
        lines.push(format!(
            "  {what:<22} {figure:<20} {:<7} {from}",
            band.map_or("-", Band::as_str)
        ));
    };

    let f = &env.deployment_frequency;
    row(
        "deployment frequency",
        format!("{:.2} a day", f.per_day),
        Some(f.band),
        match f.deployments.len() {
            0 => "no deploy succeeded".to_owned(),
            n => format!("{n} deploy{}: {}", plural(n), ids(&f.deployments)),
        },
    );

    let l = &env.lead_time;
    let without = match l.without_commit_time.len() {
        0 => String::new(),
        n => format!(
            "; {n} without a commit time ({})",
            ids(&l.without_commit_time)
        ),
    };
    row(
        "lead time for changes",
        l.median_seconds
            .map_or("-".to_owned(), |s| format!("{} median", duration(s))),
        l.band,
        match l.deployments.len() {
            0 => format!("no succeeded deploy with a commit time (deploy --commit){without}"),
            n => format!("{n} deploy{}: {}{without}", plural(n), ids(&l.deployments)),
        },
    );

    let c = &env.change_failure_rate;
    let failures: Vec<String> = c
        .failures
        .iter()
        .take(SHOWN_IDS)
        .map(|f| {
            let by = f.by.map(|b| format!(" #{b}")).unwrap_or_default();
            match f.how {
                FailureKind::RolledBack => format!("#{} rolled back", f.deployment),
                FailureKind::FailedAfterServing => {
                    format!("#{} failed after serving", f.deployment)
                }
                FailureKind::RolledBackByOperator => {
                    format!("#{} rolled back by{by}", f.deployment)
                }
                FailureKind::FixedWithinWindow => format!(
                    "#{} fixed by{by} within {}",
                    f.deployment,
                    duration(fix_window as f64)
                ),
            }
        })
        .collect();
    row(
        "change failure rate",
        c.ratio.map_or("-".to_owned(), |r| {
            format!(
                "{:.1}% ({} of {})",
                r * 100.0,
                c.failures.len(),
                c.changes.len()
            )
        }),
        c.band,
        match (c.changes.len(), failures.is_empty()) {
            (0, _) => "no change took traffic".to_owned(),
            (n, true) => format!("none of {n} change{} failed", plural(n)),
            (_, false) => format!("{}{}", failures.join(", "), more(c.failures.len())),
        },
    );

    let t = &env.time_to_restore;
    let restores: Vec<String> = t
        .restores
        .iter()
        .take(SHOWN_IDS)
        .map(|r| {
            if r.restored_by == r.failure {
                format!("#{} in {}", r.failure, duration(r.seconds))
            } else {
                format!(
                    "#{} by #{} in {}",
                    r.failure,
                    r.restored_by,
                    duration(r.seconds)
                )
            }
        })
        .collect();
    let open = match t.unrestored.len() {
        0 => String::new(),
        _ => format!("; not restored yet: {}", ids(&t.unrestored)),
    };
    row(
        "time to restore",
        t.median_seconds
            .map_or("-".to_owned(), |s| format!("{} median", duration(s))),
        t.band,
        match restores.is_empty() {
            true => format!("no failed change restored{open}"),
            false => format!("{}{}{open}", restores.join(", "), more(t.restores.len())),
        },
    );
    let mut text = lines.join("\n");
    text.push('\n');
    text
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

/// `#3 #5 #8`, the first few.
fn ids(list: &[i64]) -> String {
    let shown: Vec<String> = list
        .iter()
        .take(SHOWN_IDS)
        .map(|i| format!("#{i}"))
        .collect();
    format!("{}{}", shown.join(" "), more(list.len()))
}

fn more(n: usize) -> String {
    match n.checked_sub(SHOWN_IDS) {
        Some(more) if more > 0 => format!(" … ({more} more)"),
        _ => String::new(),
    }
}

/// Seconds for people: `0.4s`, `42s`, `12m 3s`, `3h 20m`, `2days 4h`.
fn duration(seconds: f64) -> String {
    if seconds < 60.0 {
        return format!("{seconds:.1}s");
    }
    let whole = seconds.round() as u64;
    // Minutes from an hour on, hours from a day on.
    let whole = match whole {
        s if s >= 86_400 => s - s % 3600,
        s if s >= 3600 => s - s % 60,
        s => s,
    };
    humantime::format_duration(Duration::from_secs(whole)).to_string()
}

fn days(days: f64) -> String {
    if (days - days.round()).abs() < 1e-6 {
        let n = days.round() as u64;
        format!("{n} day{}", if n == 1 { "" } else { "s" })
    } else if days >= 1.0 {
        format!("{days:.1} days")
    } else {
        duration(days * 86_400.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_read_well() {
        assert_eq!(duration(0.4), "0.4s");
        assert_eq!(duration(42.04), "42.0s");
        assert_eq!(duration(723.0), "12m 3s");
        assert_eq!(duration(3.5 * 3600.0 + 17.0), "3h 30m");
        assert_eq!(duration(2.0 * 86_400.0 + 4.0 * 3600.0 + 125.0), "2days 4h");
        assert_eq!(days(30.0), "30 days");
        assert_eq!(days(1.0), "1 day");
        assert_eq!(days(0.5), "12h");
    }

    #[test]
    fn long_lists_say_how_many_more() {
        let list: Vec<i64> = (1..=10).collect();
        assert_eq!(ids(&list), "#1 #2 #3 #4 #5 #6 #7 #8 … (2 more)");
        assert_eq!(ids(&[4]), "#4");
    }
}
