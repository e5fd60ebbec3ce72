//! The Slack message of a notification: one readable line (`text`, which
//! Slack also shows in push notifications) saying what changed, where and
//! who asked, plus, for a rollback or a failure, the figures behind it.
//! Values from the history are escaped for Slack's mrkdwn (`&`, `<`, `>`).

use serde_json::{Value, json};

use super::event::Payload;
use crate::config::EventType;

/// The JSON body for a Slack incoming webhook.
pub fn message(p: &Payload) -> Value {
    json!({ "text": text(p) })
}

/// The message's text.
pub fn text(p: &Payload) -> String {
    let d = &p.data;
    let env = format!("*{}*", esc(&d.environment));
    let app = esc(&d.app);
    let version = d.version.as_deref().map(esc).unwrap_or_default();
    let previous = d.previous_version.as_deref().map(esc);
    let by = d
        .requested_by
        .as_deref()
        .map(|who| format!(" — requested by {}", esc(who)))
        .unwrap_or_default();
    let id = d
        .deployment_id
        .map(|id| format!(" (deployment {id})"))
        .unwrap_or_default();
    let message = esc(&d.message);
    let rollback = d.kind.as_deref() == Some("rollback");
    let mut text = match p.event_type {
        EventType::DeploymentStarted if rollback => format!(
            ":rewind: {env}: rolling {app} back to `{version}`{}{by}{id}",
            previous
                .map(|v| format!(" (from `{v}`)"))
                .unwrap_or_default()
        ),
        EventType::DeploymentStarted => format!(
            ":rocket: {env}: deploying {app} `{version}`{}{}{by}{id}",
            previous
                .map(|v| format!(" (now `{v}`)"))
                .unwrap_or_default(),
            d.strategy
                .as_deref()
                .map(|s| format!(", {}", esc(s)))
                .unwrap_or_default()
        ),
        EventType::DeploymentStep => format!(":arrow_forward: {env}: {message}{id}"),
        EventType::DeploymentAwaitingSwitch => format!(
            ":double_vertical_bar: {env}: {app} `{version}` is healthy and waits for `cutover switch`{by}{id}"
        ),
        EventType::DeploymentHeld => format!(":warning: {env}: deployment held: {message}{id}"),
        EventType::DeploymentRollingBack => {
            format!(":leftwards_arrow_with_hook: {env}: {app} `{version}` {message}{id}")
        }
        EventType::DeploymentNeedsOperator => {
            format!(":sos: {env}: deployment of `{version}` needs an operator: {message}{id}")
        }
        EventType::DeploymentSucceeded => format!(
            ":white_check_mark: {env}: {app} `{version}` is live{}{by}{id}",
            previous
                .map(|v| format!(" (was `{v}`)"))
                .unwrap_or_default()
        ),
        EventType::DeploymentRolledBack if rollback => format!(
            ":rewind: {env}: {app} rolled back to `{version}`{}{by}{id}",
            previous
                .map(|v| format!(" (from `{v}`)"))
                .unwrap_or_default()
        ),
        EventType::DeploymentRolledBack => format!(
            ":rotating_light: {env}: {app} `{version}` was rolled back{}{}{by}{id}",
            previous.map(|v| format!(" to `{v}`")).unwrap_or_default(),
            reason(d.reason.as_deref())
        ),
        EventType::DeploymentFailed => format!(
            ":x: {env}: {} of {app} `{version}` failed{}{by}{id}",
            if rollback { "rollback" } else { "deploy" },
            reason(d.reason.as_deref())
        ),
        EventType::ApprovalRequested => format!(
            ":raised_hand: {env}: {app} `{version}` awaits approval{by}{id}: `cutover approve`"
        ),
        EventType::ApprovalDecided => format!(":ballot_box_with_check: {env}: {message}{id}"),
        EventType::BackupFailed => format!(":floppy_disk: {env}: {message}{by}{id}"),
        EventType::InstanceRestarted => format!(":repeat: {env}: {message}"),
        EventType::InstanceRestartFailed => format!(":warning: {env}: {message}"),
        EventType::CertificateFailed => format!(":lock: {env}: {message}"),
    };
    if let Some(figures) = &d.figures {
        text.push_str(&figures_line(d.service.as_deref(), figures));
    }
    text
}

fn reason(reason: Option<&str>) -> String {
    reason.map(|r| format!(": {}", esc(r))).unwrap_or_default()
}

/// "\n> web — canary: 40 requests, 9 errors (22.5 %), p95 12 ms · stable: …"
fn figures_line(service: Option<&str>, figures: &Value) -> String {
    let track = |name: &str| {
        let t = figures.get(name)?;
        let requests = t.get("requests")?.as_u64()?;
        if requests == 0 && name == "stable" {
            return None;
        }
        let errors = t.get("errors").and_then(Value::as_u64).unwrap_or(0);
        let rate = if requests > 0 {
            format!(" ({:.1} %)", errors as f64 * 100.0 / requests as f64)
        } else {
            String::new()
        };
        let p95 = t
            .get("p95_ms")
            .and_then(Value::as_f64)
            .map(|ms| format!(", p95 {ms:.0} ms"))
            .unwrap_or_default();
        Some(format!(
            "{name}: {requests} requests, {errors} errors{rate}{p95}"
        ))
    };
    let parts: Vec<String> = ["canary", "stable"].into_iter().filter_map(track).collect();
    if parts.is_empty() {
        return String::new();
    }
    let service = service
        .map(|s| format!("{} — ", esc(s)))
        .unwrap_or_default();
    format!("\n> {service}{}", parts.join(" · "))
}

/// Escapes text for Slack's mrkdwn.
fn esc(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::webhook::event::Data;

    #[test]
    fn a_rollback_says_what_where_who_and_why_with_the_figures() {
        let p = Payload {
            event_type: EventType::DeploymentRolledBack,
            timestamp: "2026-01-01T00:00:00.000Z".into(),
            data: Data {
                app: "hello".into(),
                environment: "production".into(),
                deployment_id: Some(7),
                kind: Some("deploy".into()),
                version: Some("v2".into()),
                previous_version: Some("v1".into()),
                requested_by: Some("alice@host".into()),
                service: Some("web".into()),
                reason: Some("web: error rate 22.5% > 2% <b>".into()),
                figures: Some(json!({
                    "canary": {"requests": 40, "errors": 9, "p95_ms": 12.4},
                    "stable": {"requests": 0, "errors": 0}
                })),
                ..Data::default()
            },
        };
        assert_eq!(
            text(&p),
            ":rotating_light: *production*: hello `v2` was rolled back to `v1`: web: error rate 22.5% &gt; 2% &lt;b&gt; — requested by alice@host (deployment 7)\n> web — canary: 40 requests, 9 errors (22.5 %), p95 12 ms"
        );
    }
}
