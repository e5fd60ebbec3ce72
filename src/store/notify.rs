//! The notification queue (`migrations/state/0007_webhook_deliveries.sql`):
//! how far the notifier has read the history (`notify_cursors`, and the
//! deployments whose conclusion it has turned into deliveries), and the
//! deliveries themselves with their retry state (`webhook_deliveries`).
//!
//! A cursor only moves in the same transaction as the deliveries it
//! produced ([`Store::enqueue_notifications`]), so a crash between the two
//! neither loses nor repeats an event. What the deliveries say and where
//! they go is `crate::webhook`'s business; this file only keeps them.

use jiff::Timestamp;
use serde::Serialize;

use super::codec::{self, text_enum};
use super::deployments::{DeploymentState, Event};
use super::environment_events::EnvironmentEvent;
use super::{Store, StoreError};

text_enum! {
    /// Where a delivery goes.
    pub enum DeliveryTarget in "webhook_deliveries.target" {
        /// A `[[notify.webhook]]`, signed per Standard Webhooks.
        Webhook = "webhook",
        /// A `[[notify.slack]]` incoming webhook.
        Slack = "slack",
    }
}

text_enum! {
    /// Where a delivery stands. Every state but `Pending` is final.
    pub enum DeliveryState in "webhook_deliveries.state" {
        /// Not yet answered with a 2xx; another attempt is due at `next_attempt_at`.
        Pending = "pending",
        /// An attempt was answered with a 2xx.
        Delivered = "delivered",
        /// Given up: too old, or its endpoint is no longer configured.
        Failed = "failed",
    }
}

/// How far the notifier has read, per source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NotifyCursors {
    /// The last `events.id` read.
    pub events: i64,
    /// The last `environment_events.id` read.
    pub environment_events: i64,
    /// Conclusions of deployments up to this id are never notified.
    pub deployments_floor: i64,
}

/// One delivery to enqueue.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewDelivery {
    /// The `webhook-id`, unique.
    pub message_id: String,
    /// Webhook or Slack.
    pub target: DeliveryTarget,
    /// The endpoint's key (see `crate::webhook`): no secret.
    pub endpoint: String,
    /// The event type, e.g. `deployment.started`.
    pub event_type: String,
    /// The environment the event is about.
    pub environment: String,
    /// The exact body to send.
    pub body: String,
}

/// What a batch of the history read moves forward.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct CursorAdvance {
    /// The new last `events.id`, if it moves.
    pub events: Option<i64>,
    /// The new last `environment_events.id`, if it moves.
    pub environment_events: Option<i64>,
    /// Deployments whose conclusion is now notified.
    pub concluded: Vec<i64>,
}

/// A queued delivery, as kept.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Delivery {
    /// Its row number.
    pub id: i64,
    /// The `webhook-id`.
    pub message_id: String,
    /// Webhook or Slack.
    pub target: DeliveryTarget,
    /// The endpoint's key.
    pub endpoint: String,
    /// The event type.
    pub event_type: String,
    /// The environment.
    pub environment: String,
    /// The body sent on every attempt.
    pub body: String,
    /// When it was queued.
    pub created_at: Timestamp,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts made so far.
    pub attempts: u32,
    /// When the next attempt is due (meaningful while pending).
    pub next_attempt_at: Timestamp,
    /// The HTTP status of the last attempt, if it got one.
    pub last_status: Option<u16>,
    /// Why the last attempt failed, if it did.
    pub last_error: Option<String>,
}

/// How an attempt ended, for [`Store::record_attempt`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AttemptResult {
    /// A 2xx.
    Delivered { status: u16 },
    /// Failed; try again at `next`.
    Retry {
        status: Option<u16>,
        error: String,
        next: Timestamp,
    },
    /// Failed for good.
    GiveUp { status: Option<u16>, error: String },
}

#[derive(sqlx::FromRow)]
struct DeliveryRow {
    id: i64,
    message_id: String,
    target: String,
    endpoint: String,
    event_type: String,
    environment: String,
    body: String,
    created_at: i64,
    state: String,
    attempts: i64,
    next_attempt_at: i64,
    last_status: Option<i64>,
    last_error: Option<String>,
}

impl TryFrom<DeliveryRow> for Delivery {
    type Error = StoreError;

    fn try_from(row: DeliveryRow) -> Result<Delivery, StoreError> {
        Ok(Delivery {
            id: row.id,
            message_id: row.message_id,
            target: DeliveryTarget::decode(&row.target)?,
            endpoint: row.endpoint,
            event_type: row.event_type,
            environment: row.environment,
            body: row.body,
            created_at: codec::timestamp(row.created_at, "webhook_deliveries.created_at")?,
            state: DeliveryState::decode(&row.state)?,
            attempts: u32::try_from(row.attempts).unwrap_or(u32::MAX),
            next_attempt_at: codec::timestamp(
                row.next_attempt_at,
                "webhook_deliveries.next_attempt_at",
            )?,
            last_status: row.last_status.and_then(|s| u16::try_from(s).ok()),
            last_error: row.last_error,
        })
    }
}

/// The columns of a [`Delivery`].
macro_rules! delivery_select {
    () => {
        "SELECT id, message_id, target, endpoint, event_type, environment,
                body, created_at, state, attempts, next_attempt_at, last_status, last_error
         FROM webhook_deliveries"
    };
}

impl Store {
    /// The notifier's cursors; on first use they are set to the end of the
    /// history as it is now (what happened before is never notified).
    pub async fn notify_cursors(&self) -> Result<NotifyCursors, StoreError> {
        let mut writer = self.writer().await?;
        let result = async {
            let mut tx = sqlx::Connection::begin(writer.conn()).await?;
            for init in [
                "INSERT INTO notify_cursors (source, last_id)
                 SELECT 'events', (SELECT COALESCE(MAX(id), 0) FROM events)
                 WHERE NOT EXISTS (SELECT 1 FROM notify_cursors WHERE source = 'events')",
                "INSERT INTO notify_cursors (source, last_id)
                 SELECT 'environment_events', (SELECT COALESCE(MAX(id), 0) FROM environment_events)
                 WHERE NOT EXISTS
                     (SELECT 1 FROM notify_cursors WHERE source = 'environment_events')",
                // A deployment running now is notified when it ends.
                "INSERT INTO notify_cursors (source, last_id)
                 SELECT 'deployments',
                        COALESCE((SELECT MIN(id) - 1 FROM deployments WHERE state = 'running'),
                                 (SELECT MAX(id) FROM deployments), 0)
                 WHERE NOT EXISTS (SELECT 1 FROM notify_cursors WHERE source = 'deployments')",
            ] {
                sqlx::query(init).execute(&mut *tx).await?;
            }
            let rows: Vec<(String, i64)> =
                sqlx::query_as("SELECT source, last_id FROM notify_cursors")
                    .fetch_all(&mut *tx)
                    .await?;
            tx.commit().await?;
            Ok(rows)
        }
        .await;
        let rows = writer.check(result)?;
        let get = |name: &str| {
            rows.iter()
                .find(|(source, _)| source == name)
                .map(|(_, id)| *id)
                .ok_or_else(|| StoreError::Corrupt(format!("no notify cursor for {name}")))
        };
        Ok(NotifyCursors {
            events: get("events")?,
            environment_events: get("environment_events")?,
            deployments_floor: get("deployments")?,
        })
    }

    /// Deployment events after `after`, oldest first, at most `limit`.
    pub async fn events_after(&self, after: i64, limit: u32) -> Result<Vec<Event>, StoreError> {
        let rows: Vec<(i64, i64, i64, String, String, String)> = sqlx::query_as(
            "SELECT id, deployment_id, at, kind, message, data
             FROM events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, deployment_id, at, kind, message, data)| {
                Ok(Event {
                    id,
                    deployment_id,
                    at: codec::timestamp(at, "events.at")?,
                    kind,
                    message,
                    data: codec::json(&data, "events.data")?,
                })
            })
            .collect()
    }

    /// Environment events after `after`, oldest first, at most `limit`.
    pub async fn environment_events_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<EnvironmentEvent>, StoreError> {
        let rows: Vec<(i64, String, i64, String, String, String)> = sqlx::query_as(
            "SELECT id, environment, at, kind, message, data
             FROM environment_events WHERE id > $1 ORDER BY id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, environment, at, kind, message, data)| {
                Ok(EnvironmentEvent {
                    id,
                    environment,
                    at: codec::timestamp(at, "environment_events.at")?,
                    kind,
                    message,
                    data: codec::json(&data, "environment_events.data")?,
                })
            })
            .collect()
    }

    /// Deployments above `floor` that ended (succeeded, failed, rolled back)
    /// and whose conclusion is not yet notified, oldest first.
    pub async fn unnotified_conclusions(
        &self,
        floor: i64,
        limit: u32,
    ) -> Result<Vec<i64>, StoreError> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM deployments
             WHERE id > $1 AND state IN ($2, $3, $4)
               AND id NOT IN (SELECT deployment_id FROM notify_concluded)
             ORDER BY id LIMIT $5",
        )
        .bind(floor)
        .bind(DeploymentState::Succeeded.as_str())
        .bind(DeploymentState::Failed.as_str())
        .bind(DeploymentState::RolledBack.as_str())
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?)
    }

    /// Queues `deliveries` and moves the cursors by `advance`, in one
    /// transaction. A delivery whose `message_id` is already queued is skipped.
    pub async fn enqueue_notifications(
        &self,
        advance: &CursorAdvance,
        deliveries: &[NewDelivery],
    ) -> Result<(), StoreError> {
        let (now, _) = codec::now();
        let mut writer = self.writer().await?;
        let result = async {
            let mut tx = sqlx::Connection::begin(writer.conn()).await?;
            for d in deliveries {
                sqlx::query(
                    "INSERT INTO webhook_deliveries
                         (message_id, target, endpoint, event_type, environment, body,
                          created_at, state, next_attempt_at)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $7)
                     ON CONFLICT (message_id) DO NOTHING",
                )
                .bind(&d.message_id)
                .bind(d.target.as_str())
                .bind(&d.endpoint)
                .bind(&d.event_type)
                .bind(&d.environment)
                .bind(&d.body)
                .bind(now)
                .bind(DeliveryState::Pending.as_str())
                .execute(&mut *tx)
                .await?;
            }
            for (source, to) in [
                ("events", advance.events),
                ("environment_events", advance.environment_events),
            ] {
                if let Some(to) = to {
                    sqlx::query(
                        "UPDATE notify_cursors SET last_id = $2
                         WHERE source = $1 AND last_id < $2",
                    )
                    .bind(source)
                    .bind(to)
                    .execute(&mut *tx)
                    .await?;
                }
            }
            for id in &advance.concluded {
                sqlx::query(
                    "INSERT INTO notify_concluded (deployment_id) VALUES ($1)
                     ON CONFLICT (deployment_id) DO NOTHING",
                )
                .bind(id)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await
        }
        .await;
        writer.check(result)?;
        Ok(())
    }

    /// Pending deliveries due at `now`, oldest first, at most `limit`.
    pub async fn due_deliveries(
        &self,
        now: Timestamp,
        limit: u32,
    ) -> Result<Vec<Delivery>, StoreError> {
        sqlx::query_as::<_, DeliveryRow>(concat!(
            delivery_select!(),
            " WHERE state = 'pending' AND next_attempt_at <= $1 ORDER BY id LIMIT $2"
        ))
        .bind(codec::millis(now))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Delivery::try_from)
        .collect()
    }

    /// When the next pending delivery is due, if any is pending.
    pub async fn next_delivery_due(&self) -> Result<Option<Timestamp>, StoreError> {
        let next: Option<i64> = sqlx::query_scalar(
            "SELECT MIN(next_attempt_at) FROM webhook_deliveries WHERE state = 'pending'",
        )
        .fetch_one(&self.pool)
        .await?;
        next.map(|ms| codec::timestamp(ms, "webhook_deliveries.next_attempt_at"))
            .transpose()
    }

    /// Records an attempt of delivery `id` (made at `at`) and its result.
    /// Only a pending delivery changes.
    pub async fn record_attempt(
        &self,
        id: i64,
        at: Timestamp,
        result: &AttemptResult,
    ) -> Result<(), StoreError> {
        let at = codec::millis(at);
        let (state, status, error, next, finished) = match result {
            AttemptResult::Delivered { status } => {
                (DeliveryState::Delivered, Some(*status), None, at, Some(at))
            }
            AttemptResult::Retry {
                status,
                error,
                next,
            } => (
                DeliveryState::Pending,
                *status,
                Some(error.as_str()),
                codec::millis(*next),
                None,
            ),
            AttemptResult::GiveUp { status, error } => (
                DeliveryState::Failed,
                *status,
                Some(error.as_str()),
                at,
                Some(at),
            ),
        };
        let mut writer = self.writer().await?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries
             SET attempts = attempts + 1, last_attempt_at = $2, state = $3,
                 last_status = $4, last_error = $5, next_attempt_at = $6, finished_at = $7
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(at)
        .bind(state.as_str())
        .bind(status.map(i64::from))
        .bind(error)
        .bind(next)
        .bind(finished)
        .execute(writer.conn())
        .await;
        writer.check(done)?;
        Ok(())
    }

    /// Ends a pending delivery without an attempt (its endpoint is gone).
    pub async fn drop_delivery(&self, id: i64, why: &str) -> Result<(), StoreError> {
        let (now, _) = codec::now();
        let mut writer = self.writer().await?;
        let done = sqlx::query(
            "UPDATE webhook_deliveries
             SET state = 'failed', last_error = $2, finished_at = $3
             WHERE id = $1 AND state = 'pending'",
        )
        .bind(id)
        .bind(why)
        .bind(now)
        .execute(writer.conn())
        .await;
        writer.check(done)?;
        Ok(())
    }

    /// The latest `limit` deliveries, newest first.
    pub async fn deliveries(&self, limit: u32) -> Result<Vec<Delivery>, StoreError> {
        sqlx::query_as::<_, DeliveryRow>(concat!(delivery_select!(), " ORDER BY id DESC LIMIT $1"))
            .bind(i64::from(limit))
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .map(Delivery::try_from)
            .collect()
    }
}
