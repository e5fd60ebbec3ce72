//! The deployment lock: at most one holder per environment, so that two
//! deployments never race.
//!
//! Taking the lock is a single `INSERT … ON CONFLICT DO NOTHING` on the
//! environment's primary key, so exactly one of any number of concurrent
//! callers, in any number of processes, gets it. The lock is not reentrant:
//! asking again while holding it fails like any other conflict.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::codec;
use super::{Store, StoreError};

/// A held deployment lock.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Lock {
    /// The environment it locks.
    pub environment: String,
    /// Who holds it, e.g. `alice@host` or a daemon's id.
    pub holder: String,
    /// What for, e.g. `deploy v2`.
    pub purpose: String,
    /// Since when.
    pub since: Timestamp,
}

impl Lock {
    /// The error telling someone else that this lock is taken.
    pub(crate) fn held_error(&self) -> StoreError {
        StoreError::LockHeld {
            environment: self.environment.clone(),
            holder: self.holder.clone(),
            purpose: self.purpose.clone(),
            since: self.since,
        }
    }
}

#[derive(sqlx::FromRow)]
struct LockRow {
    environment: String,
    holder: String,
    purpose: String,
    since: i64,
}

impl TryFrom<LockRow> for Lock {
    type Error = StoreError;

    fn try_from(row: LockRow) -> Result<Lock, StoreError> {
        Ok(Lock {
            environment: row.environment,
            holder: row.holder,
            purpose: row.purpose,
            since: codec::timestamp(row.since, "locks.since")?,
        })
    }
}

fn locks_from(rows: Vec<LockRow>) -> Result<Vec<Lock>, StoreError> {
    let mut locks = rows
        .into_iter()
        .map(Lock::try_from)
        .collect::<Result<Vec<_>, _>>()?;
    locks.sort_by(|a, b| a.environment.cmp(&b.environment));
    Ok(locks)
}

impl Store {
    /// Takes the lock of `environment` for `holder`, or fails with
    /// [`StoreError::LockHeld`] naming whoever has it.
    pub async fn try_lock(
        &self,
        environment: &str,
        holder: &str,
        purpose: &str,
    ) -> Result<Lock, StoreError> {
        loop {
            let (now, _) = codec::now();
            let taken = sqlx::query_as::<_, LockRow>(
                "INSERT INTO locks (environment, holder, purpose, since)
                 VALUES ($1, $2, $3, $4)
                 ON CONFLICT (environment) DO NOTHING
                 RETURNING environment, holder, purpose, since",
            )
            .bind(environment)
            .bind(holder)
            .bind(purpose)
            .bind(now)
            // Every row, not the first: SQLite reports a failed commit (a
            // full disk) only when the statement runs to its end.
            .fetch_all(&self.pool)
            .await?
            .into_iter()
            .next();
            if let Some(row) = taken {
                return Lock::try_from(row);
            }
            // Someone holds it. Unless they let go in the meantime (then try
            // again), tell who.
            if let Some(lock) = self.lock(environment).await? {
                return Err(lock.held_error());
            }
        }
    }

    /// Releases the lock of `environment` if `holder` holds it. Returns
    /// whether a lock was released.
    pub async fn unlock(&self, environment: &str, holder: &str) -> Result<bool, StoreError> {
        let mut writer = self.writer().await?;
        let done = sqlx::query("DELETE FROM locks WHERE environment = $1 AND holder = $2")
            .bind(environment)
            .bind(holder)
            .execute(writer.conn())
            .await;
        let done = writer.check(done)?;
        Ok(done.rows_affected() > 0)
    }

    /// Releases the lock of `environment` whoever holds it, and returns it.
    pub async fn force_unlock(&self, environment: &str) -> Result<Option<Lock>, StoreError> {
        sqlx::query_as::<_, LockRow>(
            "DELETE FROM locks WHERE environment = $1
             RETURNING environment, holder, purpose, since",
        )
        .bind(environment)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .next()
        .map(Lock::try_from)
        .transpose()
    }

    /// The lock of `environment`, if held.
    pub async fn lock(&self, environment: &str) -> Result<Option<Lock>, StoreError> {
        sqlx::query_as::<_, LockRow>(
            "SELECT environment, holder, purpose, since FROM locks WHERE environment = $1",
        )
        .bind(environment)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .next()
        .map(Lock::try_from)
        .transpose()
    }

    /// Releases every lock whose holder starts with `holder_prefix` (compared
    /// case-sensitively; an empty prefix matches every holder) and returns
    /// them, by environment. A daemon calls this at start with its own holder
    /// prefix to clear the locks it left behind when it crashed.
    pub async fn release_locks_of(&self, holder_prefix: &str) -> Result<Vec<Lock>, StoreError> {
        let rows = sqlx::query_as::<_, LockRow>(
            "DELETE FROM locks WHERE substr(holder, 1, length($1)) = $1
             RETURNING environment, holder, purpose, since",
        )
        .bind(holder_prefix)
        .fetch_all(&self.pool)
        .await?;
        locks_from(rows)
    }
}
