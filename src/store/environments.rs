//! What serves where: per environment, the version serving now and the one a
//! rollback returns to.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::codec;
use super::{Store, StoreError};

/// The versions of one environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Serving {
    /// The environment.
    pub environment: String,
    /// The version serving all traffic.
    pub current: String,
    /// The version that served before it, the target of a rollback.
    pub previous: Option<String>,
    /// Since when `current` serves.
    pub since: Timestamp,
}

#[derive(sqlx::FromRow)]
struct ServingRow {
    environment: String,
    current_version: String,
    previous_version: Option<String>,
    since: i64,
}

impl TryFrom<ServingRow> for Serving {
    type Error = StoreError;

    fn try_from(row: ServingRow) -> Result<Serving, StoreError> {
        Ok(Serving {
            environment: row.environment,
            current: row.current_version,
            previous: row.previous_version,
            since: codec::timestamp(row.since, "serving.since")?,
        })
    }
}

/// Records a version as serving (see [`Store::set_serving`]); binds
/// environment, version, now. One statement, so that two writers cannot lose
/// an update between a read and a write: the right-hand sides all see the
/// old row.
pub(super) const SET_SERVING: &str =
    "INSERT INTO serving (environment, current_version, previous_version, since)
             VALUES ($1, $2, NULL, $3)
             ON CONFLICT (environment) DO UPDATE SET
                 previous_version = CASE
                     WHEN serving.current_version = excluded.current_version
                         THEN serving.previous_version
                     ELSE serving.current_version
                 END,
                 since = CASE
                     WHEN serving.current_version = excluded.current_version
                         THEN serving.since
                     ELSE excluded.since
                 END,
                 current_version = excluded.current_version";

impl Store {
    /// Records that `version` now serves `environment`. The version serving
    /// until now becomes `previous`; setting the version already serving
    /// changes nothing (neither `previous` nor `since`).
    pub async fn set_serving(&self, environment: &str, version: &str) -> Result<(), StoreError> {
        let (now, _) = codec::now();
        sqlx::query(SET_SERVING)
            .bind(environment)
            .bind(version)
            .bind(now)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The versions of `environment`, if anything has served it yet.
    pub async fn serving(&self, environment: &str) -> Result<Option<Serving>, StoreError> {
        sqlx::query_as::<_, ServingRow>(
            "SELECT environment, current_version, previous_version, since
             FROM serving WHERE environment = $1",
        )
        .bind(environment)
        .fetch_optional(&self.pool)
        .await?
        .map(Serving::try_from)
        .transpose()
    }

    /// Overwrites the rollback target of `environment`, e.g. after a rollback
    /// has consumed it. Fails with [`StoreError::NotFound`] if nothing serves
    /// `environment` yet.
    pub async fn set_previous(
        &self,
        environment: &str,
        previous: Option<&str>,
    ) -> Result<(), StoreError> {
        let done = sqlx::query("UPDATE serving SET previous_version = $2 WHERE environment = $1")
            .bind(environment)
            .bind(previous)
            .execute(&self.pool)
            .await?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("environment", environment));
        }
        Ok(())
    }
}
