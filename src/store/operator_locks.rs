//! Locks an operator takes on an environment (`cutover lock`): while one
//! holds, deploys to the environment are refused. Apart from the deployment
//! lock (`locks.rs`), which a running deployment holds. A lock with an
//! `until` in the past counts as gone: it is never returned, and taking a
//! new lock replaces it.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::codec;
use super::{Store, StoreError};

/// An operator's lock of an environment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct OperatorLock {
    /// The environment it locks.
    pub environment: String,
    /// Why, as the operator said.
    pub reason: String,
    /// Who took it.
    pub locked_by: String,
    /// Since when.
    pub since: Timestamp,
    /// Until when; `None`: until `cutover unlock`.
    pub until: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct OperatorLockRow {
    environment: String,
    reason: String,
    locked_by: String,
    since: i64,
    until: Option<i64>,
}

impl TryFrom<OperatorLockRow> for OperatorLock {
    type Error = StoreError;

    fn try_from(row: OperatorLockRow) -> Result<OperatorLock, StoreError> {
        Ok(OperatorLock {
            environment: row.environment,
            reason: row.reason,
            locked_by: row.locked_by,
            since: codec::timestamp(row.since, "operator_locks.since")?,
            until: row
                .until
                .map(|ms| codec::timestamp(ms, "operator_locks.until"))
                .transpose()?,
        })
    }
}

impl Store {
    /// Locks `environment` (replacing a lock that is there, held or
    /// expired) and returns the lock.
    pub async fn operator_lock(
        &self,
        environment: &str,
        reason: &str,
        locked_by: &str,
        until: Option<Timestamp>,
    ) -> Result<OperatorLock, StoreError> {
        let (now, _) = codec::now();
        let row = sqlx::query_as::<_, OperatorLockRow>(
            "INSERT INTO operator_locks (environment, reason, locked_by, since, until)
             VALUES ($1, $2, $3, $4, $5)
             ON CONFLICT (environment) DO UPDATE SET
                 reason = excluded.reason,
                 locked_by = excluded.locked_by,
                 since = excluded.since,
                 until = excluded.until
             RETURNING environment, reason, locked_by, since, until",
        )
        .bind(environment)
        .bind(reason)
        .bind(locked_by)
        .bind(now)
        .bind(until.map(codec::millis))
        .fetch_all(&self.pool)
        .await?;
        row.into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("an insert returned no row".into()))
            .and_then(OperatorLock::try_from)
    }

    /// Removes the lock of `environment`; returns it if one held (an
    /// expired one is removed too, and not returned).
    pub async fn operator_unlock(
        &self,
        environment: &str,
    ) -> Result<Option<OperatorLock>, StoreError> {
        let (now, _) = codec::now();
        let rows = sqlx::query_as::<_, OperatorLockRow>(
            "DELETE FROM operator_locks WHERE environment = $1
             RETURNING environment, reason, locked_by, since, until",
        )
        .bind(environment)
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .filter(|row| row.until.is_none_or(|until| until > now))
            .map(OperatorLock::try_from)
            .next()
            .transpose()
    }

    /// The lock of `environment` that holds now, if any.
    pub async fn operator_lock_of(
        &self,
        environment: &str,
    ) -> Result<Option<OperatorLock>, StoreError> {
        let (now, _) = codec::now();
        sqlx::query_as::<_, OperatorLockRow>(
            "SELECT environment, reason, locked_by, since, until FROM operator_locks
             WHERE environment = $1 AND (until IS NULL OR until > $2)",
        )
        .bind(environment)
        .bind(now)
        .fetch_optional(&self.pool)
        .await?
        .map(OperatorLock::try_from)
        .transpose()
    }
}
