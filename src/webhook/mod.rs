//! Notifications (docs/observability.md, "Webhooks and Slack"): the
//! daemon's notifier, one task that
//!
//! 1. tails the history (`events`, `environment_events` and deployments'
//!    conclusions) from cursors kept in the store, turns each event that
//!    maps to an [`EventType`] (`event.rs`) into one delivery per
//!    `[[notify.webhook]]` / `[[notify.slack]]` that wants it, and queues
//!    them in the same transaction that moves the cursors
//!    (`store::notify`), so a crash neither loses nor repeats one;
//! 2. sends the deliveries that are due (`deliver.rs`): webhooks signed per
//!    Standard Webhooks (`sign.rs`; the `webhook-id` is the delivery's, the
//!    same on every attempt), Slack as a readable message (`slack.rs`);
//!    a 2xx ends a delivery, anything else is tried again with backoff for
//!    24 hours (`schedule.rs`), then given up with a log line and an
//!    environment event (`notification_failed`).
//!
//! Only the daemon holding the store's lock runs it, and it pauses while
//! the daemon is quiesced (a hand-over): delivery is at least once.
//! Secrets (signing keys, Slack URLs) stay in the config: the queue holds
//! bodies and an endpoint's key (a hash), nothing to sign or reach it with.

pub mod deliver;
pub mod event;
pub mod schedule;
pub mod sign;
pub mod slack;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use jiff::Timestamp;
use serde_json::json;
use sha2::{Digest, Sha256};
use tokio_util::sync::CancellationToken;

use self::deliver::{Sender, Signing};
use self::event::Payload;
use crate::config::{Config, EventType, redact_url};
use crate::runtime::Daemon;
use crate::store::{
    AttemptResult, CursorAdvance, Delivery, DeliveryTarget, Deployment, NewDelivery, Store,
    StoreError,
};

/// How often the notifier looks for news when nothing wakes it.
const TICK: Duration = Duration::from_secs(1);
/// History rows read per source per round.
const BATCH: u32 = 200;
/// Deliveries attempted per round.
const DUE_BATCH: u32 = 100;
/// The environment event of a delivery given up.
pub const NOTIFICATION_FAILED: &str = "notification_failed";

/// One configured endpoint.
#[derive(Clone)]
struct Endpoint {
    /// Stable across restarts and reorderings: a hash of target and URL.
    key: String,
    target: DeliveryTarget,
    /// The URL (a secret for Slack).
    url: String,
    /// The signing key, for a webhook.
    signing_key: Option<Vec<u8>>,
    events: Vec<EventType>,
    environments: Vec<String>,
}

impl Endpoint {
    fn wants(&self, p: &Payload) -> bool {
        self.events.contains(&p.event_type)
            && (self.environments.is_empty() || self.environments.contains(&p.data.environment))
    }

    /// How the endpoint is named in logs and events: never a Slack URL.
    fn shown(&self) -> String {
        match self.target {
            DeliveryTarget::Webhook => format!("webhook {}", redact_url(&self.url)),
            DeliveryTarget::Slack => format!("slack ({})", self.key),
        }
    }
}

/// The key of an endpoint: 16 hex digits of SHA-256 over target and URL.
fn endpoint_key(target: DeliveryTarget, url: &str) -> String {
    let digest = Sha256::digest(format!("{}\0{url}", target.as_str()).as_bytes());
    let hex: String = digest.iter().take(8).map(|b| format!("{b:02x}")).collect();
    format!("{}-{hex}", target.as_str())
}

fn endpoints(config: &Config) -> Vec<Endpoint> {
    let mut all = Vec::new();
    for hook in &config.notify.webhooks {
        let Ok(key) = crate::config::notify::webhook_key(hook.secret.expose()) else {
            continue; // the config checked it
        };
        all.push(Endpoint {
            key: endpoint_key(DeliveryTarget::Webhook, &hook.url),
            target: DeliveryTarget::Webhook,
            url: hook.url.clone(),
            signing_key: Some(key),
            events: hook.events.clone(),
            environments: hook.environments.clone(),
        });
    }
    for slack in &config.notify.slack {
        let url = slack.url.expose().to_owned();
        all.push(Endpoint {
            key: endpoint_key(DeliveryTarget::Slack, &url),
            target: DeliveryTarget::Slack,
            url,
            signing_key: None,
            events: slack.events.clone(),
            environments: slack.environments.clone(),
        });
    }
    all
}

/// A new `webhook-id`: `msg_` and 32 random hex digits.
fn message_id() -> Result<String, getrandom::Error> {
    let mut raw = [0u8; 16];
    getrandom::fill(&mut raw)?;
    Ok(format!(
        "msg_{}",
        raw.iter().map(|b| format!("{b:02x}")).collect::<String>()
    ))
}

/// The notifier of a daemon; see the module doc. Runs until `stop`.
pub async fn run(daemon: Arc<Daemon>, stop: CancellationToken) {
    let sender = match Sender::new() {
        Ok(sender) => sender,
        Err(e) => {
            tracing::error!(error = %e, "notifications are off: cannot set up the HTTPS client");
            return;
        }
    };
    let notifier = Notifier {
        store: daemon.store().clone(),
        app: daemon.config().app.name.clone(),
        endpoints: endpoints(daemon.config()),
        sender,
    };
    let mut changes = daemon.store().watch_deployments();
    loop {
        changes.mark_unchanged();
        let mut next = TICK;
        if !daemon.is_quiesced() {
            if let Err(e) = notifier.tail().await {
                tracing::warn!(error = %e, "notifications: cannot read the history; trying again");
            }
            if let Err(e) = notifier.send_due().await {
                tracing::warn!(error = %e, "notifications: cannot read the queue; trying again");
            }
            if let Ok(Some(due)) = notifier.store.next_delivery_due().await {
                let wait = due.duration_since(Timestamp::now());
                next = Duration::try_from(wait).unwrap_or(Duration::ZERO).min(TICK);
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            _ = changes.changed() => {}
            () = tokio::time::sleep(next) => {}
        }
    }
}

struct Notifier {
    store: Store,
    app: String,
    endpoints: Vec<Endpoint>,
    sender: Sender,
}

impl Notifier {
    /// Reads what happened since the cursors and queues its deliveries.
    async fn tail(&self) -> Result<(), StoreError> {
        let cursors = self.store.notify_cursors().await?;
        let mut advance = CursorAdvance::default();
        let mut payloads = Vec::new();
        let mut deployments: BTreeMap<i64, Option<Deployment>> = BTreeMap::new();

        let events = self.store.events_after(cursors.events, BATCH).await?;
        for e in &events {
            let d = match deployments.entry(e.deployment_id) {
                std::collections::btree_map::Entry::Occupied(known) => known.into_mut(),
                std::collections::btree_map::Entry::Vacant(new) => {
                    new.insert(self.store.deployment(e.deployment_id).await?)
                }
            };
            if let Some(d) = d
                && let Some(p) = event::from_deployment_event(&self.app, d, e)
            {
                payloads.push(p);
            }
        }
        advance.events = events.last().map(|e| e.id);

        let env_events = self
            .store
            .environment_events_after(cursors.environment_events, BATCH)
            .await?;
        payloads.extend(
            env_events
                .iter()
                .filter_map(|e| event::from_environment_event(&self.app, e)),
        );
        advance.environment_events = env_events.last().map(|e| e.id);

        for id in self
            .store
            .unnotified_conclusions(cursors.deployments_floor, BATCH)
            .await?
        {
            if let Some(d) = self.store.deployment(id).await? {
                let history = self.store.events(id).await?;
                payloads.extend(event::from_conclusion(&self.app, &d, &history));
            }
            advance.concluded.push(id);
        }

        if advance == CursorAdvance::default() {
            return Ok(());
        }
        let mut deliveries = Vec::new();
        for p in &payloads {
            for endpoint in self.endpoints.iter().filter(|e| e.wants(p)) {
                let body = match endpoint.target {
                    DeliveryTarget::Webhook => serde_json::to_string(p),
                    DeliveryTarget::Slack => serde_json::to_string(&slack::message(p)),
                };
                let body = body.map_err(|e| StoreError::Corrupt(e.to_string()))?;
                let message_id = message_id()
                    .map_err(|e| StoreError::Corrupt(format!("no randomness for an id: {e}")))?;
                deliveries.push(NewDelivery {
                    message_id,
                    target: endpoint.target,
                    endpoint: endpoint.key.clone(),
                    event_type: p.event_type.as_str().to_owned(),
                    environment: p.data.environment.clone(),
                    body,
                });
            }
        }
        self.store
            .enqueue_notifications(&advance, &deliveries)
            .await?;
        if !deliveries.is_empty() {
            tracing::debug!(count = deliveries.len(), "notifications queued");
        }
        Ok(())
    }

    /// Attempts every due delivery: endpoints in parallel, each endpoint's
    /// deliveries in order.
    async fn send_due(&self) -> Result<(), StoreError> {
        let due = self
            .store
            .due_deliveries(Timestamp::now(), DUE_BATCH)
            .await?;
        let mut by_endpoint: BTreeMap<String, Vec<Delivery>> = BTreeMap::new();
        for d in due {
            by_endpoint.entry(d.endpoint.clone()).or_default().push(d);
        }
        let rounds = by_endpoint.into_iter().map(|(key, deliveries)| async move {
            let endpoint = self.endpoints.iter().find(|e| e.key == key);
            for d in deliveries {
                self.attempt(endpoint, &d).await;
            }
        });
        futures_util::future::join_all(rounds).await;
        Ok(())
    }

    async fn attempt(&self, endpoint: Option<&Endpoint>, d: &Delivery) {
        let Some(endpoint) = endpoint else {
            let why = "its endpoint is no longer in the config";
            tracing::warn!(id = %d.message_id, r#type = %d.event_type, "notification dropped: {why}");
            if let Err(e) = self.store.drop_delivery(d.id, why).await {
                tracing::warn!(error = %e, "cannot record a dropped notification");
            }
            return;
        };
        let now = Timestamp::now();
        let signing = endpoint.signing_key.as_deref().map(|key| Signing {
            key,
            id: &d.message_id,
        });
        let answer = self
            .sender
            .post(&endpoint.url, &d.body, signing, now.as_second())
            .await;
        let attempts = d.attempts.saturating_add(1);
        let result = match answer {
            Ok(status) => {
                tracing::debug!(id = %d.message_id, r#type = %d.event_type, status, "notification delivered");
                AttemptResult::Delivered { status }
            }
            Err((status, error)) => {
                let age = Duration::try_from(now.duration_since(d.created_at)).unwrap_or_default();
                if schedule::give_up(age) {
                    self.gave_up(endpoint, d, attempts, &error).await;
                    AttemptResult::GiveUp { status, error }
                } else {
                    let wait = schedule::jittered(attempts);
                    tracing::warn!(
                        id = %d.message_id,
                        r#type = %d.event_type,
                        endpoint = %endpoint.shown(),
                        attempts,
                        "notification not delivered: {error}; next attempt in {}",
                        humantime::format_duration(Duration::from_secs(wait.as_secs().max(1)))
                    );
                    let next = now.checked_add(wait).unwrap_or(now);
                    AttemptResult::Retry {
                        status,
                        error,
                        next,
                    }
                }
            }
        };
        if let Err(e) = self.store.record_attempt(d.id, now, &result).await {
            // Not recorded: the delivery stays due and is sent again
            // (at least once).
            tracing::warn!(error = %e, id = %d.message_id, "cannot record a notification attempt");
        }
    }

    async fn gave_up(&self, endpoint: &Endpoint, d: &Delivery, attempts: u32, error: &str) {
        let message = format!(
            "gave up delivering {} ({}) to {} after {attempts} attempts in 24 hours: {error}",
            d.event_type,
            d.message_id,
            endpoint.shown()
        );
        tracing::error!(env = %d.environment, "{message}");
        let data = json!({
            "message_id": d.message_id,
            "type": d.event_type,
            "target": d.target.as_str(),
            "endpoint": endpoint.key,
            "attempts": attempts,
            "error": error,
        });
        if let Err(e) = self
            .store
            .add_environment_event(&d.environment, NOTIFICATION_FAILED, &message, data)
            .await
        {
            tracing::warn!(error = %e, "cannot record a failed notification");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoint_keys_are_stable_and_hide_the_url() {
        let a = endpoint_key(
            DeliveryTarget::Slack,
            "https://hooks.slack.com/services/T/B/secret",
        );
        assert_eq!(
            a,
            endpoint_key(
                DeliveryTarget::Slack,
                "https://hooks.slack.com/services/T/B/secret"
            )
        );
        assert!(
            a.starts_with("slack-") && a.len() == "slack-".len() + 16,
            "{a}"
        );
        assert!(!a.contains("secret"));
        assert_ne!(
            a,
            endpoint_key(
                DeliveryTarget::Webhook,
                "https://hooks.slack.com/services/T/B/secret"
            )
        );
    }

    #[test]
    fn message_ids_are_unique() {
        let a = message_id().expect("id");
        assert!(a.starts_with("msg_") && a.len() == 36, "{a}");
        assert_ne!(a, message_id().expect("id"));
    }
}
