//! [`MigratorLock`]: one migrator at a time per database.
//!
//! PostgreSQL: a session-level advisory lock on a dedicated connection
//! (`postgres.rs`). SQLite: a lease on a lock row, taken with `BEGIN
//! IMMEDIATE` and renewed in the background (`sqlite.rs`). Either way a
//! second migrator polls for at most `lock_wait`, says once who holds the
//! lock, and then gives up naming the holder.

use std::time::{Duration, Instant};

use sqlx::postgres::PgConnection;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;

use super::error::MigrateError;
use super::{postgres, sqlite};
use crate::config::DatabaseConfig;

/// How often a waiting migrator tries again.
const POLL: Duration = Duration::from_millis(250);

/// The migrator lock of one database, held until [`MigratorLock::release`]
/// (or until the process ends).
#[derive(Debug)]
pub(crate) struct MigratorLock {
    database: String,
    inner: Inner,
}

#[derive(Debug)]
enum Inner {
    Postgres(PgConnection),
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
            loop {
                let taken = postgres::try_lock(&mut connection)
                    .await
                    .map_err(MigrateError::sql("taking the migrator lock"))?;
                if taken {
                    return Ok(MigratorLock {
                        database: name.to_owned(),
                        inner: Inner::Postgres(connection),
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
            Inner::Postgres(_) => None,
        }
    }

    /// PostgreSQL: checks that the lock's session is alive, before each
    /// migration. (SQLite checks its lease inside each migration.)
    pub async fn check(&mut self) -> Result<(), MigrateError> {
        if let Inner::Postgres(connection) = &mut self.inner {
            postgres::alive(connection)
                .await
                .map_err(|error| MigrateError::LockLost {
                    database: self.database.clone(),
                    reason: format!("its connection failed: {error}"),
                })?;
        }
        Ok(())
    }

    /// Gives the lock up.
    pub async fn release(self) {
        match self.inner {
            Inner::Postgres(connection) => postgres::unlock(connection).await,
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
