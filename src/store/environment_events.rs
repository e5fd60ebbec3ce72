//! Environment events: what happened to an environment outside any
//! deployment (today: its TLS certificates, from `crate::edge`). An
//! append-only list per environment, read newest first.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::codec;
use super::{Store, StoreError};

/// One entry of an environment's history outside deployments.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct EnvironmentEvent {
    /// Its number, increasing with every environment event.
    pub id: i64,
    /// The environment it belongs to.
    pub environment: String,
    /// When it was recorded.
    pub at: Timestamp,
    /// What happened, as a short machine-readable word, e.g. `certificate_reloaded`.
    pub kind: String,
    /// What happened, for people.
    pub message: String,
    /// Details, free-form.
    pub data: serde_json::Value,
}

#[derive(sqlx::FromRow)]
struct EnvironmentEventRow {
    id: i64,
    environment: String,
    at: i64,
    kind: String,
    message: String,
    data: String,
}

impl TryFrom<EnvironmentEventRow> for EnvironmentEvent {
    type Error = StoreError;

    fn try_from(row: EnvironmentEventRow) -> Result<EnvironmentEvent, StoreError> {
        Ok(EnvironmentEvent {
            id: row.id,
            environment: row.environment,
            at: codec::timestamp(row.at, "environment_events.at")?,
            kind: row.kind,
            message: row.message,
            data: codec::json(&row.data, "environment_events.data")?,
        })
    }
}

impl Store {
    /// Appends an event, stamped now, to the history of `environment`.
    pub async fn add_environment_event(
        &self,
        environment: &str,
        kind: &str,
        message: &str,
        data: serde_json::Value,
    ) -> Result<EnvironmentEvent, StoreError> {
        let (now, at) = codec::now();
        let mut writer = self.writer().await?;
        let result = sqlx::query_scalar::<_, i64>(
            "INSERT INTO environment_events (environment, at, kind, message, data)
             VALUES ($1, $2, $3, $4, $5)
             RETURNING id",
        )
        .bind(environment)
        .bind(now)
        .bind(kind)
        .bind(message)
        .bind(data.to_string())
        // Every row, not the first: SQLite commits when the statement runs
        // to its end, and only then reports a failed commit (a full disk).
        .fetch_all(writer.conn())
        .await;
        let id = writer
            .check(result)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("an insert returned no row".into()))?;
        Ok(EnvironmentEvent {
            id,
            environment: environment.to_owned(),
            at,
            kind: kind.to_owned(),
            message: message.to_owned(),
            data,
        })
    }

    /// The latest `limit` events of `environment`, newest first.
    pub async fn environment_events(
        &self,
        environment: &str,
        limit: u32,
    ) -> Result<Vec<EnvironmentEvent>, StoreError> {
        sqlx::query_as::<_, EnvironmentEventRow>(
            "SELECT id, environment, at, kind, message, data
             FROM environment_events WHERE environment = $1
             ORDER BY id DESC LIMIT $2",
        )
        .bind(environment)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(EnvironmentEvent::try_from)
        .collect()
    }
}
