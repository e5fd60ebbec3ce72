//! `cutover status` (what serves where, each release under way — canary
//! step and weight, when the step ends, paused, held or awaiting, the
//! rollback window —, per-track request rate, error rate and p95 over the
//! last 10 s, each instance's track and health), `cutover status --watch`
//! (the same, redrawn on every event), and `cutover history` (past
//! deployments, newest first).

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use tokio::sync::Notify;

use super::output;
use crate::api::wire::{ReleaseProgressView, StatusResponse, TrackNow};
use crate::exit::CliError;
use crate::label::printable;

/// How often `status --watch` refreshes the live figures without an event.
const WATCH_REFRESH: Duration = Duration::from_secs(2);

/// `cutover status`.
pub async fn status(path: &Path, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let status = output::client(&config)?.status().await?;
    if json {
        return output::print_json(&status);
    }
    print!("{}", render(&status, Timestamp::now(), color_stdout()));
    Ok(())
}

/// `cutover status --watch`: the status again on every event of the event
/// stream (`cli::events::follow`) and every [`WATCH_REFRESH`], until
/// Ctrl-C (exit 0). On a terminal the screen is cleared and redrawn;
/// piped, each status that differs from the last is printed after a line
/// of dashes (with `--json`, as one JSON object per line). While the daemon
/// cannot be reached, that is what is shown, and the watch goes on.
pub async fn watch(path: &Path, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let client = output::client(&config)?;
    let tty = std::io::stdout().is_terminal();
    let color = color_stdout();
    let news = Arc::new(Notify::new());
    let follower = {
        let (client, news) = (client.clone(), news.clone());
        tokio::spawn(async move {
            // From now: the first status is read after the stream starts.
            let cursor = match client.event_feed(None, 0).await {
                Ok(feed) => feed.cursor,
                Err(_) => "0-0".to_owned(),
            };
            super::events::follow(&client, None, cursor, false, |_| {
                news.notify_one();
                Ok(())
            })
            .await
        })
    };
    let mut last = String::new();
    let watched = async {
        loop {
            let shown = match client.status().await {
                Ok(status) if json => serde_json::to_string(&status).unwrap_or_default() + "\n",
                Ok(status) => render(&status, Timestamp::now(), color),
                Err(e) => format!(
                    "{}: {e}\n(retrying every {} s; Ctrl-C ends the watch)\n",
                    Timestamp::now(),
                    WATCH_REFRESH.as_secs()
                ),
            };
            if shown != last {
                let mut out = std::io::stdout().lock();
                let written = if tty && !json {
                    // Home, clear the screen, draw.
                    write!(out, "\x1b[H\x1b[2J{shown}")
                } else if json {
                    write!(out, "{shown}")
                } else {
                    write!(out, "{WATCH_SEPARATOR}\n{shown}")
                };
                if written.and_then(|()| out.flush()).is_err() {
                    return; // the reader went away
                }
                last = shown;
            }
            tokio::select! {
                () = news.notified() => {}
                () = tokio::time::sleep(WATCH_REFRESH) => {}
            }
        }
    };
    tokio::select! {
        () = watched => {}
        _ = tokio::signal::ctrl_c() => {}
    }
    follower.abort();
    Ok(())
}

/// The line between two statuses of a piped `status --watch`.
pub const WATCH_SEPARATOR: &str = "----";

/// Colour on stdout: a terminal, and `NO_COLOR` unset.
fn color_stdout() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stdout().is_terminal()
}

/// `text` in ANSI colour `code` (31 red, 32 green, 33 yellow) when `color`.
fn paint(text: &str, code: u8, color: bool) -> String {
    if color {
        format!("\x1b[{code}m{text}\x1b[0m")
    } else {
        text.to_owned()
    }
}

/// How far `t` is from `now`: `in 23s`, `4m 10s ago`.
fn relative(t: Timestamp, now: Timestamp) -> String {
    let ms = t.as_millisecond().saturating_sub(now.as_millisecond());
    let d = Duration::from_millis(ms.unsigned_abs());
    let text = short_duration(d);
    if ms >= 0 {
        format!("in {text}")
    } else {
        format!("{text} ago")
    }
}

/// How long since `t`, e.g. `45s` (zero for a time after `now`).
fn elapsed(t: Timestamp, now: Timestamp) -> String {
    let ms = now
        .as_millisecond()
        .saturating_sub(t.as_millisecond())
        .max(0);
    short_duration(Duration::from_millis(ms.unsigned_abs()))
}

/// `45s`, `9m 58s`, `2h 5m`, `3d 4h`.
fn short_duration(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        0..60 => format!("{s}s"),
        60..3600 => format!("{}m {}s", s / 60, s % 60),
        3600..86400 => format!("{}h {}m", s / 3600, (s % 3600) / 60),
        _ => format!("{}d {}h", s / 86400, (s % 86400) / 3600),
    }
}

/// `12.5 req/s, 0.4% errors, p95 3.1ms` (or `no requests`).
fn track_figures(t: &TrackNow) -> String {
    if t.requests == 0 {
        return "no requests".to_owned();
    }
    let errors = t
        .error_rate
        .map(|r| format!("{:.1}% errors", r * 100.0))
        .unwrap_or_else(|| "errors -".to_owned());
    let p95 = t
        .p95_ms
        .map(|ms| format!("p95 {ms:.1}ms"))
        .unwrap_or_else(|| "p95 -".to_owned());
    format!("{:.1} req/s, {errors}, {p95}", t.requests_per_second)
}

/// The status as text for people, with times relative to `now`.
pub fn render(status: &StatusResponse, now: Timestamp, color: bool) -> String {
    let mut o = String::new();
    // Writing to a String cannot fail.
    macro_rules! line {
        ($($arg:tt)*) => {{ let _ = writeln!(o, $($arg)*); }};
    }
    line!("app {} (cutover {})", status.app, status.cutover_version);
    for env in &status.environments {
        line!();
        line!("environment {} on http://{}", env.name, env.listen);
        if let Some(preview) = &env.preview_listen {
            line!("  preview   http://{preview} (the newest release of each service)");
        }
        match &env.serving {
            Some(v) => line!(
                "  serving   {v}{}",
                env.since.map(|s| format!(" since {s}")).unwrap_or_default()
            ),
            None => line!("  serving   nothing yet (cutover deploy VERSION)"),
        }
        if let Some(p) = &env.previous {
            line!("  previous  {p}");
        }
        if let Some(lock) = &env.lock {
            line!(
                "  locked    by {} ({}) since {}",
                printable(&lock.holder),
                printable(&lock.purpose),
                lock.since
            );
        }
        if let Some(lock) = &env.operator_lock {
            line!(
                "  LOCKED    by {} since {:.0}{}: {} (cutover unlock -e {})",
                printable(&lock.locked_by),
                lock.since,
                lock.until
                    .map(|u| format!(" until {u:.0}"))
                    .unwrap_or_default(),
                printable(&lock.reason),
                env.name
            );
        }
        if let Some(a) = &env.awaiting_approval {
            line!(
                "  awaiting  approval of deployment {id} ({}, asked by {}): `cutover approve {id}` or `cutover reject {id} --reason …`",
                printable(&a.version),
                printable(&a.requested_by),
                id = a.deployment_id
            );
        }
        if let Some(held) = &env.held {
            line!("  {}", paint(held, 33, color));
        }
        let gate_at_switch = |id: i64| {
            env.awaiting_approval
                .as_ref()
                .is_some_and(|g| g.deployment_id == id)
        };
        if let Some(a) = env
            .awaiting_switch
            .as_ref()
            .filter(|a| gate_at_switch(a.deployment_id))
        {
            line!(
                "  awaiting switch: {} of {} is healthy and takes no traffic (deployment {}); \
                 another approver's `cutover approve {}` moves traffic to it, `cutover abort -e {}` stops it",
                a.service,
                a.version,
                a.deployment_id,
                a.deployment_id,
                env.name
            );
        } else if let Some(a) = &env.awaiting_switch {
            line!(
                "  awaiting switch: {} of {} is healthy and takes no traffic (deployment {}); \
                 `cutover switch -e {}` moves traffic to it, `cutover abort -e {}` stops it",
                a.service,
                a.version,
                a.deployment_id,
                env.name,
                env.name
            );
        }
        if let Some(why) = &env.needs_operator {
            line!(
                "  needs an operator: {} (cutover abort | cutover rollback)",
                printable(why)
            );
        }
        for r in &env.releases {
            o.push_str(&render_release(r, now, color));
        }
        for t in &env.traffic {
            let mut text = format!(
                "  traffic   {}: {}% on {}",
                t.service,
                t.stable_percent,
                list_or_none(&t.stable_versions)
            );
            if t.canary_percent > 0.0 || !t.canary_versions.is_empty() {
                text.push_str(&format!(
                    ", {}% on {} (canary)",
                    t.canary_percent,
                    list_or_none(&t.canary_versions)
                ));
            }
            line!("{text}");
            if let Some(now) = &t.now {
                let mut figures = format!(
                    "            last {}s: stable {}",
                    now.window_seconds,
                    track_figures(&now.stable)
                );
                if t.canary_percent > 0.0
                    || !t.canary_versions.is_empty()
                    || now.canary.requests > 0
                {
                    figures.push_str(&format!(" | canary {}", track_figures(&now.canary)));
                }
                line!("{figures}");
            }
        }
        for i in &env.instances {
            let health = match (i.healthy, i.health_since) {
                (Some(true), Some(since)) => {
                    paint(&format!("healthy for {}", elapsed(since, now)), 32, color)
                }
                (Some(false), Some(since)) => paint(
                    &format!(
                        "UNHEALTHY for {}{}",
                        elapsed(since, now),
                        i.health_reason
                            .as_deref()
                            .map(|r| format!(" ({})", printable(r)))
                            .unwrap_or_default()
                    ),
                    31,
                    color,
                ),
                _ => "health -".to_owned(),
            };
            line!(
                "  {:<8} {:<10} {:<9} {:<22} in-flight {}  {:<6} {}  {}",
                i.service,
                i.version,
                i.state,
                i.addr.as_deref().unwrap_or("-"),
                i.in_flight,
                i.track.as_deref().unwrap_or("-"),
                health,
                i.id
            );
        }
        for ev in &env.edge_events {
            line!(
                "  event     {} {} {}",
                ev.at,
                ev.kind,
                printable(&ev.message)
            );
        }
    }
    o
}

/// A release under way: its phase and flags, then one line per service.
fn render_release(r: &ReleaseProgressView, now: Timestamp, color: bool) -> String {
    let mut o = String::new();
    let from = r
        .previous_version
        .as_deref()
        .map(|p| format!(" (from {})", printable(p)))
        .unwrap_or_default();
    let mut head = format!(
        "  release   #{} {} {}{from}: {}",
        r.deployment_id,
        r.kind,
        printable(&r.version),
        r.phase.replace('_', " ")
    );
    if r.paused {
        head.push_str(&format!(
            ", {} (`cutover resume` goes on)",
            paint("PAUSED", 33, color)
        ));
    }
    if let Some(until) = r.rollback_window_until {
        head.push_str(&format!(
            ", rollback window until {until:.0} ({}; `cutover rollback` is one switch)",
            relative(until, now)
        ));
    }
    let _ = writeln!(o, "{head}");
    if let Some(held) = &r.held {
        let _ = writeln!(o, "            {}", paint(&printable(held), 33, color));
    }
    if let Some(a) = &r.awaiting_approval {
        let _ = writeln!(
            o,
            "            {} {}/{} approvals{}",
            paint("awaiting", 33, color),
            a.have,
            a.required,
            a.until
                .map(|u| format!(", until {u:.0} ({})", relative(u, now)))
                .unwrap_or_default()
        );
    }
    if let Some(service) = &r.awaiting_switch {
        let _ = writeln!(
            o,
            "            {} {service}: healthy, no traffic yet",
            paint("awaiting switch", 33, color)
        );
    }
    for s in &r.services {
        let what = match (s.stage.as_str(), s.step) {
            ("stepping", Some(step)) => {
                let when = match (s.step_ends_at, s.paused_left_ms) {
                    (Some(end), _) => format!(", step ends {} ({end:.0})", relative(end, now)),
                    (None, Some(left)) => format!(
                        ", paused with {} of the step left",
                        short_duration(Duration::from_millis(left))
                    ),
                    (None, None) => String::new(),
                };
                let extended = if s.extensions > 0 {
                    format!(", extended {}x for lack of data", s.extensions)
                } else {
                    String::new()
                };
                format!(
                    "canary step {step}/{} at {}%{when}{extended}",
                    s.steps, s.canary_percent
                )
            }
            (stage, _) => format!("{} {}", s.strategy, stage.replace('_', " ")),
        };
        let _ = writeln!(o, "            {:<8} {what}", s.service);
    }
    o
}

/// `cutover history`.
pub async fn history(
    path: &Path,
    environment: Option<&str>,
    limit: u32,
    with_events: bool,
    json: bool,
) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let client = output::client(&config)?;
    let list = client.deployments(environment, limit).await?;
    if json && !with_events {
        return output::print_json(&list);
    }
    let mut details = Vec::new();
    for d in &list {
        if with_events {
            details.push(client.deployment(d.id).await?);
        }
    }
    if json {
        return output::print_json(&details);
    }
    if list.is_empty() {
        println!("no deployments yet");
    }
    // Stored values may predate the API's cleaning (`crate::label`): every
    // client-supplied or free-text field is made printable again here.
    for (n, d) in list.iter().enumerate() {
        let (state, kind) = (d.state.as_str(), d.kind.as_str());
        println!(
            "#{:<4} {:<11} {:<9} {:<12} {} -> {}  by {} at {}",
            d.id,
            state,
            kind,
            d.environment,
            printable(d.previous_version.as_deref().unwrap_or("-")),
            printable(&d.version),
            printable(&d.requested_by),
            d.started_at
        );
        if let Some(reason) = d.reason.as_deref().filter(|_| !with_events) {
            println!("      {}", printable(reason.lines().next().unwrap_or("")));
        }
        if let Some(detail) = details.get(n) {
            for ev in &detail.events {
                println!(
                    "      {} {:<17} {}",
                    ev.at,
                    ev.kind,
                    crate::label::printable_lines(&ev.message, "\n        ")
                );
            }
        }
    }
    Ok(())
}

fn list_or_none(versions: &[String]) -> String {
    if versions.is_empty() {
        "no instance".to_owned()
    } else {
        versions.join(", ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::wire::{
        ApprovalWaitView, EnvironmentStatus, InstanceView, ServiceProgressView, TrafficNow,
        TrafficView,
    };

    fn at(s: &str) -> Timestamp {
        s.parse().expect("time")
    }

    fn track(requests: u64, p95: f64) -> TrackNow {
        TrackNow {
            requests,
            requests_per_second: requests as f64 / 10.0,
            error_rate: (requests > 0).then_some(0.004),
            p95_ms: (requests > 0).then_some(p95),
        }
    }

    fn status(paused: bool) -> StatusResponse {
        let instance = |id: &str, version: &str, track: &str| InstanceView {
            id: id.into(),
            service: "web".into(),
            version: version.into(),
            state: "serving".into(),
            addr: Some("127.0.0.1:40001".into()),
            in_flight: 1,
            track: Some(track.into()),
            healthy: Some(true),
            health_since: Some(at("2024-05-01T11:59:15Z")),
            health_reason: None,
            started_at: None,
        };
        let mut sick = instance("web-v2-1", "v2", "canary");
        sick.healthy = Some(false);
        sick.health_since = Some(at("2024-05-01T11:59:58Z"));
        sick.health_reason = Some("connection refused".into());
        StatusResponse {
            app: "hello".into(),
            cutover_version: "0.1.0".into(),
            open_files: None,
            environments: vec![EnvironmentStatus {
                name: "production".into(),
                listen: "127.0.0.1:8080".into(),
                preview_listen: None,
                awaiting_switch: None,
                serving: Some("v1".into()),
                previous: None,
                since: Some(at("2024-05-01T11:00:00Z")),
                lock: None,
                operator_lock: None,
                held: None,
                needs_operator: None,
                awaiting_approval: None,
                traffic: vec![TrafficView {
                    service: "web".into(),
                    stable_percent: 80.0,
                    stable_versions: vec!["v1".into()],
                    canary_percent: 20.0,
                    canary_versions: vec!["v2".into()],
                    now: Some(TrafficNow {
                        window_seconds: 10,
                        stable: track(880, 3.2),
                        canary: track(0, 0.0),
                    }),
                }],
                instances: vec![instance("web-v1-0", "v1", "stable"), sick],
                edge_events: vec![],
                releases: vec![ReleaseProgressView {
                    deployment_id: 7,
                    kind: "deploy".into(),
                    version: "v2".into(),
                    previous_version: Some("v1".into()),
                    phase: "rolling".into(),
                    paused,
                    held: Some("held: cannot write the state store: disk full".into()),
                    awaiting_switch: None,
                    awaiting_approval: Some(ApprovalWaitView {
                        have: 1,
                        required: 2,
                        until: Some(at("2024-05-01T13:00:00Z")),
                    }),
                    rollback_window_until: None,
                    services: vec![ServiceProgressView {
                        service: "web".into(),
                        strategy: "canary".into(),
                        stage: "stepping".into(),
                        step: Some(1),
                        steps: 3,
                        canary_percent: 20.0,
                        step_started_at: Some(at("2024-05-01T11:59:30Z")),
                        step_ends_at: (!paused).then(|| at("2024-05-01T12:00:30Z")),
                        paused_left_ms: paused.then_some(25_000),
                        extensions: 1,
                    }],
                }],
            }],
        }
    }

    #[test]
    fn a_canary_its_figures_and_its_instances_read_as_lines() {
        let now = at("2024-05-01T12:00:00Z");
        let text = render(&status(false), now, false);
        assert_eq!(
            text,
            "app hello (cutover 0.1.0)\n\
             \n\
             environment production on http://127.0.0.1:8080\n\
             \x20 serving   v1 since 2024-05-01T11:00:00Z\n\
             \x20 release   #7 deploy v2 (from v1): rolling\n\
             \x20           held: cannot write the state store: disk full\n\
             \x20           awaiting 1/2 approvals, until 2024-05-01T13:00:00Z (in 1h 0m)\n\
             \x20           web      canary step 1/3 at 20%, step ends in 30s (2024-05-01T12:00:30Z), extended 1x for lack of data\n\
             \x20 traffic   web: 80% on v1, 20% on v2 (canary)\n\
             \x20           last 10s: stable 88.0 req/s, 0.4% errors, p95 3.2ms | canary no requests\n\
             \x20 web      v1         serving   127.0.0.1:40001        in-flight 1  stable healthy for 45s  web-v1-0\n\
             \x20 web      v2         serving   127.0.0.1:40001        in-flight 1  canary UNHEALTHY for 2s (connection refused)  web-v2-1\n"
        );
        let paused = render(&status(true), now, false);
        assert!(
            paused.contains(
                "rolling, PAUSED (`cutover resume` goes on)\n\
                 \x20           held"
            ),
            "{paused}"
        );
        assert!(
            paused.contains("at 20%, paused with 25s of the step left"),
            "{paused}"
        );
    }

    #[test]
    fn colour_only_when_asked() {
        let now = at("2024-05-01T12:00:00Z");
        assert!(!render(&status(true), now, false).contains('\u{1b}'));
        let coloured = render(&status(true), now, true);
        assert!(coloured.contains("\u{1b}[33mPAUSED\u{1b}[0m"), "{coloured}");
        assert!(coloured.contains("\u{1b}[31mUNHEALTHY"), "{coloured}");
    }

    #[test]
    fn durations_read_short() {
        let now = at("2024-05-01T12:00:00Z");
        assert_eq!(relative(at("2024-05-01T12:09:58Z"), now), "in 9m 58s");
        assert_eq!(relative(at("2024-05-01T11:58:00Z"), now), "2m 0s ago");
        assert_eq!(short_duration(Duration::from_secs(90_000)), "1d 1h");
        assert_eq!(elapsed(at("2024-05-01T12:00:05Z"), now), "0s");
    }
}
