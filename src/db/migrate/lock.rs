//! [`MigratorLock`]: one migrator at a time per database.
//!
//! PostgreSQL: a session-level advisory lock on a dedicated connection
//! (`postgres.rs`), with server-side TCP keepalives and a heartbeat every
//! [`HEARTBEAT`] that checks the session still holds the lock; when it does
//! not, [`MigratorLock::lost`] fires and the migration under way is
//! cancelled (its connection dropped, so its transaction rolls back).
//! SQLite: a lease on a lock row, taken with `BEGIN IMMEDIATE` and renewed
//! in the background (`sqlite.rs`), checked inside each migration. Either
//! way a second migrator polls for at most `lock_wait`, says once who holds
//! the lock, and then gives up naming the holder.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use super::error::MigrateError;
use super::{postgres, sqlite};
use crate::config::DatabaseConfig;

/// How often a waiting migrator tries again.
const POLL: Duration = Duration::from_millis(250);

/// How often the PostgreSQL lock's session is asked whether it still holds
/// the lock.
pub(crate) const HEARTBEAT: Duration = Duration::from_secs(1);

/// The migrator lock of one database, held until [`MigratorLock::release`]
/// (or until the process ends).
#[derive(Debug)]
pub(crate) struct MigratorLock {
    database: String,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Postgres {
        stop: oneshot::Sender<()>,
        heartbeat: JoinHandle<()>,
        /// Why the lock was lost, once it was.
        lost: watch::Receiver<Option<String>>,
    },
    Sqlite {
        holder: String,
        stop: oneshot::Sender<()>,
        renewer: JoinHandle<()>,
    },
}

impl MigratorLock {
    /// Takes the lock of `database` for `holder` (`user@host pid N`),
    /// waiting up to `lock_wait`. `waiting` is called once, with who holds
    /// it, if this has to wait.
    pub async fn acquire(
        name: &str,
        database: &DatabaseConfig,
        holder: &str,
        waiting: &mut (dyn FnMut(&str) + Send),
    ) -> Result<MigratorLock, MigrateError> {
        let connect_error = |source| MigrateError::Connect {
            database: name.to_owned(),
            url: database.display_url(),
            source,
        };
        let started = Instant::now();
        let mut told = false;
        let mut wait = |holder: String| -> Result<(), MigrateError> {
            let waited = started.elapsed();
            if waited >= database.lock_wait {
                return Err(MigrateError::Locked {
                    database: name.to_owned(),
                    holder,
                    waited,
                });
            }
            if !told {
                waiting(&holder);
                told = true;
            }
            Ok(())
        };
        if database.is_postgres() {
            let application_name = format!("cutover migrate {holder}");
            let mut connection = postgres::connect(&database.url, &application_name)
                .await
                .map_err(connect_error)?;
            postgres::keepalive(&mut connection)
                .await
                .map_err(MigrateError::sql(
                    "setting TCP keepalives on the lock's session",
                ))?;
            loop {
                let taken = postgres::try_lock(&mut connection)
                    .await
                    .map_err(MigrateError::sql("taking the migrator lock"))?;
                if taken {
                    return Ok(MigratorLock {
                        database: name.to_owned(),
                        inner: heartbeat(connection),
                    });
                }
                let who = postgres::holder(&mut connection)
                    .await
                    .map_err(MigrateError::sql("asking who holds the migrator lock"))?;
                wait(who)?;
                tokio::time::sleep(POLL).await;
            }
        }
        let mut connection = sqlite::connect(&database.url, true, database.lock_timeout)
            .await
            .map_err(connect_error)?;
        loop {
            let attempt = sqlite::try_lock(&mut connection, holder)
                .await
                .map_err(MigrateError::sql("taking the migrator lock"))?;
            match attempt {
                sqlite::Attempt::Taken => break,
                sqlite::Attempt::Held(who) => {
                    wait(who)?;
                    tokio::time::sleep(POLL).await;
                }
            }
        }
        let (stop, mut stopped) = oneshot::channel();
        let renew_holder = holder.to_owned();
        let renewer = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = &mut stopped => break,
                    () = tokio::time::sleep(sqlite::RENEW_EVERY) => {
                        // Busy while our own migration writes: the lease is
                        // checked inside that transaction instead.
                        if let Err(error) = sqlite::renew(&mut connection, &renew_holder).await {
                            tracing::debug!(%error, "renewing the migrator lease failed");
                        }
                    }
                }
            }
            if let Err(error) = sqlite::unlock(&mut connection, &renew_holder).await {
                tracing::warn!(%error, "releasing the migrator lock failed; its lease runs out by itself");
            }
            sqlite::close(connection).await;
        });
        Ok(MigratorLock {
            database: name.to_owned(),
            inner: Inner::Sqlite {
                holder: holder.to_owned(),
                stop,
                renewer,
            },
        })
    }

    /// The holder written in the SQLite lease (empty for PostgreSQL).
    pub fn sqlite_holder(&self) -> Option<&str> {
        match &self.inner {
            Inner::Sqlite { holder, .. } => Some(holder),
            Inner::Postgres { .. } => None,
        }
    }

    /// PostgreSQL: fails once the heartbeat found the lock lost, before each
    /// migration. (SQLite checks its lease inside each migration.)
    pub async fn check(&mut self) -> Result<(), MigrateError> {
        if let Inner::Postgres { lost, .. } = &self.inner
            && let Some(reason) = lost.borrow().clone()
        {
            return Err(MigrateError::LockLost {
                database: self.database.clone(),
                reason,
            });
        }
        Ok(())
    }

    /// What resolves, with the reason, when the lock is lost (PostgreSQL);
    /// never for SQLite, whose lease each migration checks itself.
    pub fn lost(&self) -> LostSignal {
        LostSignal(match &self.inner {
            Inner::Postgres { lost, .. } => Some(lost.clone()),
            Inner::Sqlite { .. } => None,
        })
    }

    /// Gives the lock up.
    pub async fn release(self) {
        match self.inner {
            Inner::Postgres {
                stop, heartbeat, ..
            } => {
                let _ = stop.send(());
                if let Err(error) = heartbeat.await {
                    tracing::warn!(%error, "the migrator lock's heartbeat failed");
                }
            }
            Inner::Sqlite { stop, renewer, .. } => {
                // A renewer that already ended has nothing to stop.
                let _ = stop.send(());
                if let Err(error) = renewer.await {
                    tracing::warn!(%error, "the migrator lease renewer failed");
                }
            }
        }
    }
}

/// Resolves when a migrator lock is lost; see [`MigratorLock::lost`].
pub(crate) struct LostSignal(Option<watch::Receiver<Option<String>>>);

impl LostSignal {
    /// Why the lock was lost, once it is (pending forever otherwise).
    pub(crate) async fn wait(&mut self) -> String {
        let Some(lost) = self.0.as_mut() else {
            return std::future::pending().await;
        };
        let reason = lost
            .wait_for(Option::is_some)
            .await
            .ok()
            .and_then(|reason| reason.clone());
        match reason {
            Some(reason) => reason,
            // The heartbeat ended without a loss: the lock was released.
            None => std::future::pending().await,
        }
    }
}

/// Moves the lock's session into a task that asks it every [`HEARTBEAT`]
/// whether it still holds the lock, and gives the lock up when stopped.
fn heartbeat(mut connection: PgConnection) -> Inner {
    let (stop, mut stopped) = oneshot::channel();
    let (lost_tx, lost) = watch::channel(None);
    let heartbeat = tokio::spawn(async move {
        loop {
            tokio::select! {
                _ = &mut stopped => break,
                () = tokio::time::sleep(HEARTBEAT) => {
                    let reason = match postgres::still_locked(&mut connection).await {
                        Ok(true) => continue,
                        Ok(false) => "its session no longer holds it".to_owned(),
                        Err(error) => format!("its session ended: {error}"),
                    };
                    tracing::error!(%reason, "the migrator lock was lost");
                    let _ = lost_tx.send(Some(reason));
                    // Keep the sender until stopped, so waiters see the loss.
                    let _ = (&mut stopped).await;
                    return;
                }
            }
        }
        postgres::unlock(connection).await;
    });
    Inner::Postgres {
        stop,
        heartbeat,
        lost,
    }
}
