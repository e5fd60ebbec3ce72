//! Instances the daemon runs, recorded so that a restarted daemon can find and
//! adopt them (or clean them up) instead of starting over.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::codec::{self, text_enum};
use super::{Store, StoreError};

text_enum! {
    /// The life of an instance.
    pub enum InstanceState in "instances.state" {
        /// Started, not yet healthy.
        Starting = "starting",
        /// Healthy, receiving no traffic yet.
        Ready = "ready",
        /// Receiving traffic.
        Serving = "serving",
        /// Healthy, kept warm for a fast rollback, receiving no traffic.
        Idle = "idle",
        /// Finishing the requests it has, receiving no new ones.
        Draining = "draining",
        /// Stopped on purpose.
        Stopped = "stopped",
        /// Exited or failed its health checks.
        Failed = "failed",
    }
}

/// One running copy of a service at a version.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct InstanceRecord {
    /// Unique across the store.
    pub instance_id: String,
    /// The environment it belongs to.
    pub environment: String,
    /// The service it is a copy of.
    pub service: String,
    /// The version it runs.
    pub version: String,
    /// Where it is in its life.
    pub state: InstanceState,
    /// The driver that runs it: `process`, `docker`, `kubernetes`.
    pub driver: String,
    /// What the driver needs to find it again: pid, pgid, port, container id…
    pub handle: serde_json::Value,
    /// When it was started (kept to the millisecond).
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct InstanceRow {
    instance_id: String,
    environment: String,
    service: String,
    version: String,
    state: String,
    driver: String,
    handle: String,
    created_at: i64,
}

impl TryFrom<InstanceRow> for InstanceRecord {
    type Error = StoreError;

    fn try_from(row: InstanceRow) -> Result<InstanceRecord, StoreError> {
        Ok(InstanceRecord {
            instance_id: row.instance_id,
            environment: row.environment,
            service: row.service,
            version: row.version,
            state: InstanceState::decode(&row.state)?,
            driver: row.driver,
            handle: codec::json(&row.handle, "instances.handle")?,
            created_at: codec::timestamp(row.created_at, "instances.created_at")?,
        })
    }
}

impl Store {
    /// Records an instance, replacing any record with the same `instance_id`.
    pub async fn put_instance(&self, r: &InstanceRecord) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        let done = sqlx::query(
            "INSERT INTO instances
                 (instance_id, environment, service, version, state, driver, handle, created_at)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8)
             ON CONFLICT (instance_id) DO UPDATE SET
                 environment = excluded.environment,
                 service = excluded.service,
                 version = excluded.version,
                 state = excluded.state,
                 driver = excluded.driver,
                 handle = excluded.handle,
                 created_at = excluded.created_at",
        )
        .bind(&r.instance_id)
        .bind(&r.environment)
        .bind(&r.service)
        .bind(&r.version)
        .bind(r.state.as_str())
        .bind(&r.driver)
        .bind(r.handle.to_string())
        .bind(codec::millis(r.created_at))
        .execute(writer.conn())
        .await;
        writer.check(done)?;
        Ok(())
    }

    /// Changes the state of an instance. Fails with [`StoreError::NotFound`]
    /// if there is no such instance.
    pub async fn set_instance_state(
        &self,
        instance_id: &str,
        state: InstanceState,
    ) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        let done = sqlx::query("UPDATE instances SET state = $2 WHERE instance_id = $1")
            .bind(instance_id)
            .bind(state.as_str())
            .execute(writer.conn())
            .await;
        let done = writer.check(done)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("instance", instance_id));
        }
        Ok(())
    }

    /// Forgets an instance. Forgetting an unknown instance is not an error.
    pub async fn remove_instance(&self, instance_id: &str) -> Result<(), StoreError> {
        let mut writer = self.writer().await?;
        let done = sqlx::query("DELETE FROM instances WHERE instance_id = $1")
            .bind(instance_id)
            .execute(writer.conn())
            .await;
        writer.check(done)?;
        Ok(())
    }

    /// The instances of one environment or of all, by environment, service,
    /// then age.
    pub async fn instances(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<InstanceRecord>, StoreError> {
        let rows = match environment {
            Some(environment) => {
                sqlx::query_as::<_, InstanceRow>(
                    "SELECT instance_id, environment, service, version, state, driver, handle,
                            created_at
                     FROM instances WHERE environment = $1
                     ORDER BY environment, service, created_at, instance_id",
                )
                .bind(environment)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as::<_, InstanceRow>(
                    "SELECT instance_id, environment, service, version, state, driver, handle,
                            created_at
                     FROM instances
                     ORDER BY environment, service, created_at, instance_id",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(InstanceRecord::try_from).collect()
    }
}
