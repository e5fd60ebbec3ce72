//! From the history to notifications: which history events (and which
//! deployment conclusions) are which [`EventType`], and the payload every
//! endpoint receives: `{type, timestamp, data}` (docs/observability.md,
//! "Webhooks and Slack"). Every key of `data` is always present (`null`
//! when it does not apply), so receivers can rely on the shape.

use jiff::Timestamp;
use serde::Serialize;
use serde_json::Value;

use crate::config::EventType;
use crate::store::{Deployment, DeploymentKind, DeploymentState, EnvironmentEvent, Event};

/// One notification, before it is addressed to an endpoint.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Payload {
    /// What happened.
    #[serde(rename = "type")]
    pub event_type: EventType,
    /// When it happened (RFC 3339, UTC, milliseconds).
    pub timestamp: String,
    /// The details.
    pub data: Data,
}

/// `data` of a [`Payload`].
#[derive(Debug, Clone, PartialEq, Serialize, Default)]
pub struct Data {
    /// The application (`[app] name`).
    pub app: String,
    /// The environment it happened in.
    pub environment: String,
    /// The deployment it belongs to, if any.
    pub deployment_id: Option<i64>,
    /// `deploy` or `rollback`, for a deployment.
    pub kind: Option<String>,
    /// The version deployed (or rolled back to).
    pub version: Option<String>,
    /// The version serving before.
    pub previous_version: Option<String>,
    /// `blue-green`, `canary`, `rolling`.
    pub strategy: Option<String>,
    /// The service concerned, if one.
    pub service: Option<String>,
    /// Who asked for the deployment.
    pub requested_by: Option<String>,
    /// What happened, for people.
    pub message: String,
    /// A concluded deployment's state: `succeeded`, `failed`, `rolled_back`.
    pub state: Option<String>,
    /// Why it ended so, if said.
    pub reason: Option<String>,
    /// For `approval.decided`: `approved`, `rejected` or `expired`.
    pub decision: Option<String>,
    /// The figures behind a decision (canary and stable: requests, errors,
    /// p50/p95/p99 in ms), for steps, rollbacks and their conclusion.
    pub figures: Option<Value>,
    /// The analysis verdict, when there was one.
    pub verdict: Option<Value>,
    /// Further details of the history event (instance, database, …).
    pub details: Option<Value>,
}

/// The type of a deployment's history event, if it is notified.
fn deployment_event_type(kind: &str) -> Option<(EventType, Option<&'static str>)> {
    Some(match kind {
        "started" => (EventType::DeploymentStarted, None),
        "step" => (EventType::DeploymentStep, None),
        "awaiting_switch" => (EventType::DeploymentAwaitingSwitch, None),
        "held" => (EventType::DeploymentHeld, None),
        "rollback" => (EventType::DeploymentRollingBack, None),
        "needs_operator" => (EventType::DeploymentNeedsOperator, None),
        "awaiting_approval" => (EventType::ApprovalRequested, None),
        "approved" => (EventType::ApprovalDecided, Some("approved")),
        "rejected" => (EventType::ApprovalDecided, Some("rejected")),
        "approval_expired" => (EventType::ApprovalDecided, Some("expired")),
        "backup_failed" => (EventType::BackupFailed, None),
        _ => return None,
    })
}

/// The type of an environment event, if it is notified.
fn environment_event_type(kind: &str) -> Option<EventType> {
    Some(match kind {
        "instance_restarted" => EventType::InstanceRestarted,
        "instance_restart_failed" => EventType::InstanceRestartFailed,
        "certificate_reload_failed" | "certificate_order_failed" | "certificate_renewal_failed" => {
            EventType::CertificateFailed
        }
        _ => return None,
    })
}

/// The type of a deployment's conclusion, if it is notified.
fn conclusion_type(d: &Deployment) -> Option<EventType> {
    Some(match (d.kind, d.state) {
        (DeploymentKind::Deploy, DeploymentState::Succeeded) => EventType::DeploymentSucceeded,
        (DeploymentKind::Rollback, DeploymentState::Succeeded) => EventType::DeploymentRolledBack,
        (_, DeploymentState::RolledBack) => EventType::DeploymentRolledBack,
        (_, DeploymentState::Failed) => EventType::DeploymentFailed,
        (_, DeploymentState::Running | DeploymentState::Interrupted) => return None,
    })
}

fn timestamp(at: Timestamp) -> String {
    // jiff prints UTC with `Z`; milliseconds are what the store keeps.
    format!("{at:.3}")
}

/// What is known of a deployment, for every payload about it.
fn deployment_data(app: &str, d: &Deployment, message: String) -> Data {
    Data {
        app: app.to_owned(),
        environment: d.environment.clone(),
        deployment_id: Some(d.id),
        kind: Some(d.kind.as_str().to_owned()),
        version: Some(d.version.clone()),
        previous_version: d.previous_version.clone(),
        strategy: Some(d.strategy.clone()),
        requested_by: Some(d.requested_by.clone()),
        message,
        ..Data::default()
    }
}

/// A value of an event's `data`, unless missing or null.
fn field(data: &Value, key: &str) -> Option<Value> {
    data.get(key).filter(|v| !v.is_null()).cloned()
}

/// The payload of a deployment's history event, if it is notified.
pub fn from_deployment_event(app: &str, d: &Deployment, e: &Event) -> Option<Payload> {
    let (event_type, decision) = deployment_event_type(&e.kind)?;
    let mut data = deployment_data(app, d, crate::label::printable(&e.message));
    data.service = field(&e.data, "service").and_then(|v| v.as_str().map(str::to_owned));
    data.figures = field(&e.data, "figures");
    data.verdict = field(&e.data, "verdict");
    data.decision = decision.map(str::to_owned);
    if event_type == EventType::BackupFailed {
        data.details = Some(e.data.clone());
    }
    Some(Payload {
        event_type,
        timestamp: timestamp(e.at),
        data,
    })
}

/// The payload of an environment event, if it is notified.
pub fn from_environment_event(app: &str, e: &EnvironmentEvent) -> Option<Payload> {
    let event_type = environment_event_type(&e.kind)?;
    let text = |key: &str| field(&e.data, key).and_then(|v| v.as_str().map(str::to_owned));
    Some(Payload {
        event_type,
        timestamp: timestamp(e.at),
        data: Data {
            app: app.to_owned(),
            environment: e.environment.clone(),
            service: text("service"),
            version: text("version"),
            message: crate::label::printable(&e.message),
            details: Some(e.data.clone()),
            ..Data::default()
        },
    })
}

/// The payload of a deployment's conclusion, if it is notified. `events`
/// is its history: the last figures recorded (the fast check or analysis
/// behind a rollback) go with it.
pub fn from_conclusion(app: &str, d: &Deployment, events: &[Event]) -> Option<Payload> {
    let event_type = conclusion_type(d)?;
    let what = match d.kind {
        DeploymentKind::Deploy => "deploy",
        DeploymentKind::Rollback => "rollback",
    };
    let message = match (&d.reason, d.state) {
        (Some(reason), _) => format!(
            "{what} of {} {}: {}",
            d.version,
            d.state,
            crate::label::printable(reason)
        ),
        (None, state) => format!("{what} of {} {state}", d.version),
    };
    let mut data = deployment_data(app, d, message);
    data.state = Some(d.state.as_str().to_owned());
    data.reason = d.reason.as_deref().map(crate::label::printable);
    if matches!(
        event_type,
        EventType::DeploymentRolledBack | EventType::DeploymentFailed
    ) && let Some(last) = events
        .iter()
        .rev()
        .find(|e| field(&e.data, "figures").is_some())
    {
        data.figures = field(&last.data, "figures");
        data.verdict = field(&last.data, "verdict");
        data.service = field(&last.data, "service").and_then(|v| v.as_str().map(str::to_owned));
    }
    Some(Payload {
        event_type,
        timestamp: timestamp(d.finished_at.unwrap_or(d.started_at)),
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn deployment(kind: DeploymentKind, state: DeploymentState) -> Deployment {
        Deployment {
            id: 7,
            environment: "production".into(),
            version: "v2".into(),
            previous_version: Some("v1".into()),
            strategy: "canary".into(),
            kind,
            state,
            reason: Some("web: fast check failed: error rate 20.0% > 2.0%".into()),
            requested_by: "alice@host".into(),
            started_at: Timestamp::from_millisecond(1_700_000_000_000).expect("ts"),
            finished_at: Some(Timestamp::from_millisecond(1_700_000_060_123).expect("ts")),
            awaiting_approval: false,
            commit_sha: None,
            commit_time: None,
        }
    }

    fn event(kind: &str, data: Value) -> Event {
        Event {
            id: 1,
            deployment_id: 7,
            at: Timestamp::from_millisecond(1_700_000_001_000).expect("ts"),
            kind: kind.into(),
            message: format!("{kind} happened"),
            data,
        }
    }

    #[test]
    fn the_payload_has_a_stable_shape() {
        let d = deployment(DeploymentKind::Deploy, DeploymentState::Running);
        let e = event(
            "step",
            json!({"service": "web", "figures": null, "verdict": null}),
        );
        let payload = from_deployment_event("hello", &d, &e).expect("notified");
        let json = serde_json::to_value(&payload).expect("json");
        assert_eq!(
            json,
            json!({
                "type": "deployment.step",
                "timestamp": "2023-11-14T22:13:21.000Z",
                "data": {
                    "app": "hello",
                    "environment": "production",
                    "deployment_id": 7,
                    "kind": "deploy",
                    "version": "v2",
                    "previous_version": "v1",
                    "strategy": "canary",
                    "service": "web",
                    "requested_by": "alice@host",
                    "message": "step happened",
                    "state": null,
                    "reason": null,
                    "decision": null,
                    "figures": null,
                    "verdict": null,
                    "details": null
                }
            })
        );
    }

    #[test]
    fn only_the_documented_kinds_are_notified() {
        let d = deployment(DeploymentKind::Deploy, DeploymentState::Running);
        for kind in ["instance_started", "analysis", "warm", "digest", "switch"] {
            assert!(from_deployment_event("a", &d, &event(kind, json!({}))).is_none());
        }
        let rejected = from_deployment_event("a", &d, &event("rejected", json!({})));
        assert_eq!(
            rejected.map(|p| (p.event_type, p.data.decision)),
            Some((EventType::ApprovalDecided, Some("rejected".into())))
        );
    }

    #[test]
    fn a_rollback_carries_the_figures_behind_it() {
        let d = deployment(DeploymentKind::Deploy, DeploymentState::RolledBack);
        let figures = json!({"canary": {"requests": 40, "errors": 9}, "stable": {"requests": 0, "errors": 0}});
        let events = [
            event("step", json!({"service": "web", "figures": null})),
            event("check", json!({"service": "web", "figures": figures})),
            event("rollback", json!({"service": "web", "figures": null})),
        ];
        let p = from_conclusion("hello", &d, &events).expect("notified");
        assert_eq!(p.event_type, EventType::DeploymentRolledBack);
        assert_eq!(p.data.figures, Some(figures));
        assert_eq!(p.data.state.as_deref(), Some("rolled_back"));
        assert_eq!(p.timestamp, "2023-11-14T22:14:20.123Z");
        // An operator's rollback that succeeded is a rollback too.
        let op = deployment(DeploymentKind::Rollback, DeploymentState::Succeeded);
        assert_eq!(
            from_conclusion("hello", &op, &[]).map(|p| p.event_type),
            Some(EventType::DeploymentRolledBack)
        );
        let interrupted = deployment(DeploymentKind::Deploy, DeploymentState::Interrupted);
        assert!(from_conclusion("hello", &interrupted, &[]).is_none());
    }
}
