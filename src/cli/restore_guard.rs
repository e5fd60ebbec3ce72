//! What `cutover backup restore` holds while it replaces a database the
//! config uses, and what it says afterwards.
//!
//! - The deployment lock of every environment whose database it is: a
//!   restore is refused while a deployment runs there (exit 4, naming it),
//!   and no deployment starts during the restore.
//! - The database's migrator lock: refused while a migration runs. On
//!   PostgreSQL it is held for the whole restore (an advisory lock on a
//!   session of its own); SQLite's lock is a lease row inside the very file
//!   the restore replaces, so there it is taken and given back just before.
//! - Afterwards, the restored database's recorded migrations are compared
//!   with the migrations folder of the serving release.

use crate::config::{Config, DatabaseConfig};
use crate::db::migrate::{Migrator, MigratorLock};
use crate::exit::{self, CliError};
use crate::identity;
use crate::store::{Store, StoreError};

/// The locks a restore holds; [`Guard::release`] gives them back.
pub(crate) struct Guard {
    store: Option<Store>,
    environments: Vec<String>,
    holder: String,
    migrator: Option<MigratorLock>,
}

/// Takes the locks for restoring backup `id` into `database` (the
/// `[database.NAME]` called `name`).
pub(crate) async fn take(
    config: &Config,
    name: &str,
    database: &DatabaseConfig,
    id: &str,
) -> Result<Guard, CliError> {
    let holder = format!(
        "restore by {} pid {}",
        identity::local_name(),
        std::process::id()
    );
    let environments: Vec<String> = config
        .environments
        .keys()
        .filter(|env| {
            config
                .databases_in(env)
                .values()
                .any(|d| d.url == database.url)
        })
        .cloned()
        .collect();
    let mut guard = Guard {
        store: open_store(config).await?,
        environments: Vec::new(),
        holder,
        migrator: None,
    };
    if let Some(store) = &guard.store {
        let purpose = format!("restore backup {id} of {name}");
        for env in environments {
            match store.try_lock(&env, &guard.holder, &purpose).await {
                Ok(_) => guard.environments.push(env),
                Err(e) => {
                    guard.release().await;
                    let code = match e {
                        StoreError::LockHeld { .. } => exit::LOCKED,
                        _ => exit::FAILURE,
                    };
                    return Err(CliError::new(
                        code,
                        format!(
                            "cannot restore into {name} now: {e}; restore once it is over (`cutover status` shows it, `cutover abort -e {env}` ends a deployment)"
                        ),
                    ));
                }
            }
        }
    }
    // Without a migrations folder nothing migrates this database.
    if !database.migrations.is_dir() {
        return Ok(guard);
    }
    let migrator = match Migrator::new(name, database) {
        Ok(m) => m,
        Err(e) => {
            guard.release().await;
            return Err(CliError::new(exit::USAGE, format!("database {name}: {e}")));
        }
    };
    match migrator.hold_lock(&guard.holder).await {
        Ok(lock) if database.is_postgres() => guard.migrator = Some(lock),
        Ok(lock) => lock.release().await,
        Err(e) => {
            guard.release().await;
            return Err(CliError::new(
                exit::LOCKED,
                format!("cannot restore into {name} while a migration runs: {e}"),
            ));
        }
    }
    Ok(guard)
}

impl Guard {
    /// Gives every lock back.
    pub(crate) async fn release(self) {
        if let Some(lock) = self.migrator {
            lock.release().await;
        }
        if let Some(store) = self.store {
            for env in &self.environments {
                if let Err(e) = store.unlock(env, &self.holder).await {
                    eprintln!(
                        "warning: the deployment lock of {env} was not released ({e}): `cutover unlock -e {env}` releases it"
                    );
                }
            }
            store.close().await;
        }
    }
}

/// The state store, when a daemon ever ran here (else nothing can deploy).
async fn open_store(config: &Config) -> Result<Option<Store>, CliError> {
    let fresh = Store::inspect(&config.state.url)
        .map(|file| file.is_fresh())
        .map_err(|e| CliError::new(exit::FAILURE, format!("cannot read the state store: {e}")))?;
    if fresh {
        return Ok(None);
    }
    Store::open(&config.state.url)
        .await
        .map(Some)
        .map_err(|e| CliError::new(exit::FAILURE, format!("cannot open the state store: {e}")))
}

/// How the restored database's migrations compare with the folder: lines
/// to print (empty when they match).
pub(crate) async fn compare_migrations(name: &str, database: &DatabaseConfig) -> Vec<String> {
    if !database.migrations.is_dir() {
        return Vec::new();
    }
    let status = match Migrator::new(name, database) {
        Ok(m) => m.status().await,
        Err(e) => return vec![format!("cannot compare the migrations: {e}")],
    };
    let status = match status {
        Ok(s) => s,
        Err(e) => return vec![format!("cannot compare the migrations: {e}")],
    };
    let mut lines = Vec::new();
    let newest = status.applied.iter().map(|a| a.version).max();
    if !status.pending.is_empty() {
        let versions: Vec<String> = status
            .pending
            .iter()
            .map(|p| p.version.to_string())
            .collect();
        lines.push(format!(
            "the restored database has migrations up to {} and lacks {} of the folder: `cutover migrate up --db {name}` applies them (or deploy the release the backup was taken under)",
            newest.map_or("none".to_owned(), |v| v.to_string()),
            versions.join(", ")
        ));
    }
    for drift in &status.drift {
        lines.push(format!(
            "the restored database records a migration the folder does not match: {drift}"
        ));
    }
    lines
}
