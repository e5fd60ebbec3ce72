//! One daemon per state store on a database server: what `lock.rs`'s lock
//! file is for a SQLite store, a PostgreSQL session-level advisory lock is
//! for `[state] url = "postgres://…"`. [`ServerLock::acquire`] takes
//! `pg_try_advisory_lock(KEY)` on a connection of its own, which it keeps for
//! the daemon's life (the lock goes when the session ends: the daemon exits,
//! is killed, or its connection drops). `KEY` comes from a constant and the
//! app's name, so two apps may share one database.
//!
//! `cutover serve` takes this lock through the leader election of
//! `src/cluster` (`leader.rs` tries [`lock_key`] on its own session), so
//! that several daemons share a store and one drives it; [`ServerLock`] and
//! [`is_held`] take or test the same lock from outside a daemon.

use std::time::Duration;

use sha2::{Digest, Sha256};
use sqlx::postgres::{PgConnectOptions, PgConnection};
use sqlx::{ConnectOptions, Connection};

use crate::config::redact_url;

/// How often the held lock's connection is checked.
const KEEPALIVE: Duration = Duration::from_secs(5);

/// Why the lock was not taken.
#[derive(Debug, thiserror::Error)]
pub enum ServerLockError {
    /// Another daemon holds it.
    #[error(
        "another cutover serve holds the state store at {url} for app {app:?} ({holder}); stop it first (`cutover down` stops it and its instances, SIGTERM only the daemon), or give this config another [state] url"
    )]
    Held {
        /// The store, without its password.
        url: String,
        /// The app.
        app: String,
        /// Who holds it, as PostgreSQL sees that session.
        holder: String,
    },
    /// The server cannot be reached or refused the query.
    #[error(
        "cannot take the daemon lock of the state store at {url}: {source}; check that the server answers and the role may connect"
    )]
    Connect {
        /// The store, without its password.
        url: String,
        /// What the server or driver said.
        #[source]
        source: sqlx::Error,
    },
}

/// The held lock: a session that holds `pg_try_advisory_lock(key)`.
#[derive(Debug)]
pub struct ServerLock {
    conn: PgConnection,
    key: i64,
    url: String,
}

/// The advisory lock key of `app`'s daemon: the first 8 bytes of
/// SHA-256("cutover daemon lock\0" + app).
pub fn lock_key(app: &str) -> i64 {
    let digest = Sha256::digest(format!("cutover daemon lock\0{app}").as_bytes());
    let mut bytes = [0u8; 8];
    bytes.copy_from_slice(&digest[..8]);
    i64::from_be_bytes(bytes)
}

/// A connection of its own to `url`, named so that a second daemon can say
/// who holds the lock.
async fn connect(url: &str) -> Result<PgConnection, ServerLockError> {
    let failed = |source| ServerLockError::Connect {
        url: redact_url(url),
        source,
    };
    let name = format!(
        "cutover serve pid {} since {}",
        std::process::id(),
        jiff::Timestamp::now()
            .round(jiff::Unit::Second)
            .unwrap_or_else(|_| jiff::Timestamp::now())
    );
    url.parse::<PgConnectOptions>()
        .map_err(failed)?
        .application_name(&name)
        .connect()
        .await
        .map_err(failed)
}

impl ServerLock {
    /// Takes the daemon lock of `app` on the PostgreSQL store at `url`, or
    /// says who holds it.
    pub async fn acquire(url: &str, app: &str) -> Result<ServerLock, ServerLockError> {
        let failed = |source| ServerLockError::Connect {
            url: redact_url(url),
            source,
        };
        let mut conn = connect(url).await?;
        let key = lock_key(app);
        let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
            .bind(key)
            .fetch_one(&mut conn)
            .await
            .map_err(failed)?;
        if !taken {
            let holder = holder(&mut conn, key).await;
            let _ = conn.close().await;
            return Err(ServerLockError::Held {
                url: redact_url(url),
                app: app.to_owned(),
                holder,
            });
        }
        Ok(ServerLock {
            conn,
            key,
            url: redact_url(url),
        })
    }

    /// Holds the lock until the process ends, checking its session every few
    /// seconds; a lost session is logged as an error (another daemon may then
    /// take the store).
    pub fn hold(mut self) {
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(KEEPALIVE).await;
                if let Err(e) = self.conn.ping().await {
                    tracing::error!(
                        store = %self.url,
                        key = self.key,
                        "lost the session holding this daemon's lock on the state store ({e}); another cutover serve may now take it"
                    );
                    return;
                }
            }
        });
    }
}

/// Whether a daemon holds `app`'s lock on the store at `url` now.
pub async fn is_held(url: &str, app: &str) -> Result<bool, ServerLockError> {
    let failed = |source| ServerLockError::Connect {
        url: redact_url(url),
        source,
    };
    let mut conn = connect(url).await?;
    let key = lock_key(app);
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(key)
        .fetch_one(&mut conn)
        .await
        .map_err(failed)?;
    let _ = conn.close().await;
    Ok(!taken)
}

/// A session as `pg_stat_activity` shows it: server pid, application name,
/// client address.
type Session = (i32, Option<String>, Option<String>);

/// The session holding advisory lock `key`, as `pg_stat_activity` shows it.
async fn holder(conn: &mut PgConnection, key: i64) -> String {
    // A bigint key is stored as classid (high 32 bits) and objid (low).
    let found: Result<Option<Session>, _> = sqlx::query_as(
        "SELECT a.pid, a.application_name, host(a.client_addr)
         FROM pg_locks l JOIN pg_stat_activity a ON a.pid = l.pid
         WHERE l.locktype = 'advisory' AND l.granted AND l.objsubid = 1
           AND l.classid::bigint = ($1 >> 32) & 4294967295
           AND l.objid::bigint = $1 & 4294967295
         LIMIT 1",
    )
    .bind(key)
    .fetch_optional(conn)
    .await;
    match found {
        Ok(Some((pid, name, addr))) => {
            let name = name
                .filter(|n| !n.is_empty())
                .map(|n| crate::label::printable(&n).to_string())
                .unwrap_or_else(|| "a session".to_owned());
            let from = addr.unwrap_or_else(|| "a local socket".to_owned());
            format!("{name}, from {from}, server pid {pid}")
        }
        _ => "a session that could not be named".to_owned(),
    }
}
