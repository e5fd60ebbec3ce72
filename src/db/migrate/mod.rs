//! Schema migrations of an application database: the engine behind
//! `cutover migrate status|plan|up|down|baseline|lint`.
//!
//! ```text
//! files.rs       migrations/NNNN_name.sql → Migration (up, down, phase, transaction, allows, sha256)
//! statements.rs  a part → statements with their lines
//! history.rs     cutover_migrations in the target database
//! lock.rs        one migrator at a time (postgres.rs: advisory lock; sqlite.rs: lease)
//! connection.rs  one connection, SQLite or PostgreSQL
//! lint.rs        squawk-linter plus the rules only cutover knows (phases)
//! mod.rs         this file: status, plan, up, down, baseline, repair
//! ```
//!
//! **Invariants.** An applied migration whose file changed or disappeared
//! is drift: every command that would run something refuses, and nothing is
//! ever re-run. A migration and its `cutover_migrations` row commit in one
//! transaction (unless the file says `-- cutover:no-transaction`), so a
//! failure or a killed migrator leaves the migration simply not applied.
//! Every command that changes the database holds the migrator lock.

mod connection;
pub mod error;
pub mod files;
pub mod history;
pub mod lint;
mod lock;
mod postgres;
pub(crate) use self::connection::describe as describe_error;
pub(crate) use self::postgres::connect as connect_postgres;
mod sqlite;
pub mod statements;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use serde::Serialize;

use self::connection::Connection;
pub use self::error::{Drift, MigrateError};
pub use self::files::{Migration, Phase};
pub use self::history::Applied;
pub(crate) use self::lock::MigratorLock;
pub(crate) use self::sqlite::{connect as connect_sqlite, exists as sqlite_exists};
use self::statements::Statement;
use crate::config::DatabaseConfig;

/// A migration that has not been applied, as `status` and `plan` show it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Pending {
    /// Its version.
    pub version: u64,
    /// Its name.
    pub name: String,
    /// Its file.
    pub file: PathBuf,
    /// Expand or contract.
    pub phase: Phase,
    /// Whether it runs in a transaction.
    pub transaction: bool,
    /// Whether it has a down part.
    pub has_down: bool,
    /// How many statements its up part has.
    pub statements: usize,
    /// Whether a later version is already applied (it still runs, in order).
    pub out_of_order: bool,
}

/// Where the database stands: `cutover migrate status`.
#[derive(Debug, Clone, Serialize)]
pub struct Status {
    /// The `[database.NAME]`.
    pub database: String,
    /// Its URL, without password.
    pub url: String,
    /// The migrations folder.
    pub folder: PathBuf,
    /// Recorded migrations, by version.
    pub applied: Vec<Applied>,
    /// Files not applied yet, by version.
    pub pending: Vec<Pending>,
    /// Applied migrations whose file changed or disappeared.
    pub drift: Vec<Drift>,
}

/// Why `up` stops before a pending migration.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stop {
    /// The migration it stops at.
    pub version: u64,
    /// Its name.
    pub name: String,
    /// Its phase.
    pub phase: Phase,
    /// Why.
    pub reason: String,
}

/// What `up` would run: `cutover migrate plan`.
#[derive(Debug, Clone, Serialize)]
pub struct Plan {
    /// The `[database.NAME]`.
    pub database: String,
    /// The migrations, in the order they would run.
    pub steps: Vec<Pending>,
    /// Where a `--phase` stops it, if it does.
    pub stopped: Option<Stop>,
}

/// Which part of a migration runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Direction {
    /// The up part: apply.
    Up,
    /// The down part: revert.
    Down,
}

/// A migration applied or reverted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Done {
    /// Its version.
    pub version: u64,
    /// Its name.
    pub name: String,
    /// Its file.
    pub file: PathBuf,
    /// Its phase.
    pub phase: Phase,
    /// Applied or reverted.
    pub direction: Direction,
    /// How long it took, retries included.
    pub duration_ms: u64,
}

/// What `up` did.
#[derive(Debug, Clone, Serialize)]
pub struct UpReport {
    /// The `[database.NAME]`.
    pub database: String,
    /// The migrations applied, in order.
    pub applied: Vec<Done>,
    /// Where a `--phase` stopped it, if it did.
    pub stopped: Option<Stop>,
}

/// What happens while `up`, `down` or `baseline` runs, for progress output.
#[derive(Debug)]
pub enum Event<'a> {
    /// Another migrator holds the lock; waiting (at most `lock_wait`).
    Waiting {
        /// Who holds it.
        holder: &'a str,
    },
    /// A migration starts.
    Started {
        /// The migration.
        migration: &'a Migration,
        /// Which part.
        direction: Direction,
    },
    /// A statement hit `lock_timeout`; trying again after a pause.
    Retrying {
        /// The migration.
        migration: &'a Migration,
        /// Which retry this is (1-based).
        attempt: u32,
        /// The pause before it.
        pause: Duration,
        /// The database's error.
        error: String,
    },
    /// A migration finished.
    Finished(&'a Done),
}

/// Who runs a command that changes the database, and for what.
#[derive(Debug, Clone)]
pub struct Actor {
    /// `user@host`, recorded as `applied_by`.
    pub applied_by: String,
    /// The release it is for, recorded as `release`.
    pub release: Option<String>,
}

impl Actor {
    /// How the lock names its holder: `user@host pid N`.
    fn holder(&self) -> String {
        format!("{} pid {}", self.applied_by, std::process::id())
    }
}

/// The migrations of one `[database.NAME]`.
#[derive(Debug)]
pub struct Migrator {
    name: String,
    config: DatabaseConfig,
    migrations: Vec<Migration>,
}

/// A statement failure inside a transactional attempt.
enum Failure {
    /// `lock_timeout` (or SQLite busy): worth another attempt.
    LockTimeout(Option<Statement>, sqlx::Error),
    /// The statement failed for another reason.
    Statement(Statement, sqlx::Error),
    /// Something else (recording, committing, the lock).
    Other(MigrateError),
}

impl Migrator {
    /// Reads the migrations folder of `config`.
    pub fn new(name: &str, config: &DatabaseConfig) -> Result<Migrator, MigrateError> {
        Ok(Migrator {
            name: name.to_owned(),
            config: config.clone(),
            migrations: files::load(&config.migrations)?,
        })
    }

    /// The migration files, by version.
    pub fn migrations(&self) -> &[Migration] {
        &self.migrations
    }

    /// The `[database.NAME]`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Lints every migration's up part.
    pub fn lint(&self) -> Vec<lint::Report> {
        let postgres = self.config.is_postgres();
        self.migrations
            .iter()
            .map(|migration| lint::lint(migration, postgres, &self.config.lint))
            .collect()
    }

    /// Applied, pending and drifted migrations. Changes nothing (a missing
    /// SQLite file is not created).
    pub async fn status(&self) -> Result<Status, MigrateError> {
        let history = if self.config.is_postgres() || sqlite::exists(&self.config.url) {
            let mut connection = self.connect("status", false).await?;
            let history = history::list(&mut connection).await;
            connection.close().await;
            history?
        } else {
            Vec::new()
        };
        Ok(self.compare(history))
    }

    /// What `up` would run with these options. Changes nothing; refuses on drift.
    pub async fn plan(&self, to: Option<u64>, phase: Option<Phase>) -> Result<Plan, MigrateError> {
        let status = self.status().await?;
        if !status.drift.is_empty() {
            return Err(MigrateError::Drift(status.drift));
        }
        let (steps, stopped) = plan(status.pending, to, phase);
        Ok(Plan {
            database: self.name.clone(),
            steps,
            stopped,
        })
    }

    /// Applies pending migrations in order (up to `to`, only of `phase`
    /// until the first of another phase), each in its own transaction.
    pub async fn up(
        &self,
        to: Option<u64>,
        phase: Option<Phase>,
        actor: &Actor,
        events: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<UpReport, MigrateError> {
        let mut lock = self.lock(actor, events).await?;
        let result = self.up_locked(&mut lock, to, phase, actor, events).await;
        lock.release().await;
        result
    }

    async fn up_locked(
        &self,
        lock: &mut MigratorLock,
        to: Option<u64>,
        phase: Option<Phase>,
        actor: &Actor,
        events: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<UpReport, MigrateError> {
        let mut connection = self.connect(&actor.holder(), true).await?;
        history::create(&mut connection).await?;
        let status = self.compare(history::list(&mut connection).await?);
        if !status.drift.is_empty() {
            return Err(MigrateError::Drift(status.drift));
        }
        let (steps, stopped) = plan(status.pending, to, phase);
        if !steps.is_empty()
            && let Connection::Postgres(pg) = &mut connection
        {
            let invalid = postgres::invalid_indexes(pg)
                .await
                .map_err(MigrateError::sql("looking for invalid indexes"))?;
            if !invalid.is_empty() {
                let names: Vec<String> = invalid
                    .iter()
                    .map(|(index, table)| format!("{index} (on {table})"))
                    .collect();
                let drops: Vec<String> = invalid
                    .iter()
                    .map(|(index, _)| format!("DROP INDEX CONCURRENTLY {index};"))
                    .collect();
                return Err(MigrateError::Repair(format!(
                    "database `{}` has invalid indexes, left by an interrupted or failed CREATE INDEX CONCURRENTLY: {}; \
                     a migration with IF NOT EXISTS would skip them and be recorded as done. Drop them ({}), fix what made \
                     the build fail (duplicates, for a unique index), and run `cutover migrate up` again: the migration builds them anew",
                    self.name,
                    names.join(", "),
                    drops.join(" ")
                )));
            }
        }
        let mut applied = Vec::new();
        for step in steps {
            let Some(migration) = self.migration(step.version) else {
                continue;
            };
            lock.check().await?;
            events(Event::Started {
                migration,
                direction: Direction::Up,
            });
            let mut lost = lock.lost();
            let done = tokio::select! {
                done = self.run(&mut connection, lock, migration, Direction::Up, actor, events) => done?,
                // Returning drops the migration's connection: the server
                // rolls its transaction back.
                reason = lost.wait() => return Err(self.lock_lost(migration, reason)),
            };
            events(Event::Finished(&done));
            applied.push(done);
        }
        connection.close().await;
        Ok(UpReport {
            database: self.name.clone(),
            applied,
            stopped,
        })
    }

    /// Reverts applied migrations above `to`, newest first. Refuses, before
    /// changing anything, when one of them has no down part.
    pub async fn down(
        &self,
        to: u64,
        actor: &Actor,
        events: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<Vec<Done>, MigrateError> {
        let mut lock = self.lock(actor, events).await?;
        let result = self.down_locked(&mut lock, to, actor, events).await;
        lock.release().await;
        result
    }

    async fn down_locked(
        &self,
        lock: &mut MigratorLock,
        to: u64,
        actor: &Actor,
        events: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<Vec<Done>, MigrateError> {
        let mut connection = self.connect(&actor.holder(), true).await?;
        let status = self.compare(history::list(&mut connection).await?);
        if !status.drift.is_empty() {
            return Err(MigrateError::Drift(status.drift));
        }
        let mut revert = Vec::new();
        for applied in status.applied.iter().rev() {
            let version = u64::try_from(applied.version).unwrap_or(0);
            if version <= to {
                break;
            }
            // No drift: every applied migration has its file.
            let Some(migration) = self.migration(version) else {
                continue;
            };
            if migration.down.is_none() {
                return Err(MigrateError::NoDown {
                    version,
                    file: migration.path.clone(),
                });
            }
            revert.push(migration);
        }
        let mut reverted = Vec::new();
        for migration in revert {
            lock.check().await?;
            events(Event::Started {
                migration,
                direction: Direction::Down,
            });
            let mut lost = lock.lost();
            let done = tokio::select! {
                done = self.run(&mut connection, lock, migration, Direction::Down, actor, events) => done?,
                // Returning drops the migration's connection: the server
                // rolls its transaction back.
                reason = lost.wait() => return Err(self.lock_lost(migration, reason)),
            };
            events(Event::Finished(&done));
            reverted.push(done);
        }
        connection.close().await;
        Ok(reverted)
    }

    /// Records every migration up to `version` as applied without running
    /// it: for a database that was migrated by hand. Only for a database
    /// with no recorded migrations.
    pub async fn baseline(
        &self,
        version: u64,
        actor: &Actor,
        events: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<Vec<Applied>, MigrateError> {
        let lock = self.lock(actor, events).await?;
        let result = self.baseline_locked(version, actor).await;
        lock.release().await;
        result
    }

    async fn baseline_locked(
        &self,
        version: u64,
        actor: &Actor,
    ) -> Result<Vec<Applied>, MigrateError> {
        let mut connection = self.connect(&actor.holder(), true).await?;
        history::create(&mut connection).await?;
        let history = history::list(&mut connection).await?;
        if let Some(last) = history.last() {
            return Err(MigrateError::Baseline(format!(
                "database `{}` already records {} migration{} (the latest {} `{}`): baseline is only for a database without a history",
                self.name,
                history.len(),
                if history.len() == 1 { "" } else { "s" },
                last.version,
                last.name
            )));
        }
        let adopted: Vec<Applied> = self
            .migrations
            .iter()
            .filter(|migration| migration.version <= version)
            .map(|migration| Applied {
                version: version_i64(migration.version),
                name: migration.name.clone(),
                checksum: migration.checksum.clone(),
                applied_at: now(),
                duration_ms: 0,
                applied_by: actor.applied_by.clone(),
                release: actor.release.clone(),
                kind: "baseline".to_owned(),
            })
            .collect();
        if adopted.is_empty() {
            return Err(MigrateError::Baseline(format!(
                "no migration in {} has a version of {version} or less",
                self.config.migrations.display()
            )));
        }
        let recording = MigrateError::sql("recording the baseline");
        let result = async {
            connection.begin().await?;
            for applied in &adopted {
                history::insert(&mut connection, applied).await?;
            }
            connection.commit().await
        }
        .await;
        if let Err(error) = result {
            connection.rollback().await;
            return Err(recording(error));
        }
        connection.close().await;
        Ok(adopted)
    }

    /// Re-records the checksum of applied migrations whose file was edited
    /// on purpose (Flyway's `repair`): every drifted one, or only `version`.
    /// Refuses, changing nothing, when a drifted migration's file is gone
    /// (put it back: its history cannot be made up). Returns what changed.
    pub async fn repair(
        &self,
        version: Option<u64>,
        actor: &Actor,
        events: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<Vec<Drift>, MigrateError> {
        let lock = self.lock(actor, events).await?;
        let result = self.repair_locked(version, actor).await;
        lock.release().await;
        result
    }

    async fn repair_locked(
        &self,
        version: Option<u64>,
        actor: &Actor,
    ) -> Result<Vec<Drift>, MigrateError> {
        let mut connection = self.connect(&actor.holder(), true).await?;
        let status = self.compare(history::list(&mut connection).await?);
        let drift: Vec<Drift> = status
            .drift
            .into_iter()
            .filter(|d| version.is_none_or(|v| v == d.version))
            .collect();
        if let Some(gone) = drift.iter().find(|d| d.current.is_none()) {
            connection.close().await;
            return Err(MigrateError::Repair(format!(
                "migration {} `{}` is recorded as applied but its file is gone from {}: put the file back (repair re-records an edited file's checksum, it cannot make up a missing one)",
                gone.version,
                gone.name,
                self.config.migrations.display()
            )));
        }
        let result = async {
            connection.begin().await?;
            for d in &drift {
                if let Some(current) = &d.current {
                    history::set_checksum(&mut connection, version_i64(d.version), current).await?;
                }
            }
            connection.commit().await
        }
        .await;
        if let Err(error) = result {
            connection.rollback().await;
            return Err(MigrateError::sql("re-recording checksums")(error));
        }
        connection.close().await;
        Ok(drift)
    }

    fn migration(&self, version: u64) -> Option<&Migration> {
        self.migrations
            .iter()
            .find(|migration| migration.version == version)
    }

    /// The error of a migration cancelled because the lock was lost.
    fn lock_lost(&self, migration: &Migration, reason: String) -> MigrateError {
        MigrateError::LockLost {
            database: self.name.clone(),
            reason: format!(
                "{reason}; {} was cancelled and its transaction rolls back",
                migration.path.display()
            ),
        }
    }

    /// Takes this database's migrator lock for `holder` (waiting up to
    /// `lock_wait`), for a command that must not run beside a migration
    /// (`backup restore`). Release it with [`MigratorLock::release`].
    pub(crate) async fn hold_lock(&self, holder: &str) -> Result<MigratorLock, MigrateError> {
        MigratorLock::acquire(&self.name, &self.config, holder, &mut |_| {}).await
    }

    async fn lock(
        &self,
        actor: &Actor,
        events: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<MigratorLock, MigrateError> {
        MigratorLock::acquire(&self.name, &self.config, &actor.holder(), &mut |holder| {
            events(Event::Waiting { holder });
        })
        .await
    }

    /// A connection for `who`; `migrating`: with the migration timeouts (and
    /// creating a missing SQLite file).
    async fn connect(&self, who: &str, migrating: bool) -> Result<Connection, MigrateError> {
        let connect_error = |source| MigrateError::Connect {
            database: self.name.clone(),
            url: self.config.display_url(),
            source,
        };
        if self.config.is_postgres() {
            let mut connection =
                postgres::connect(&self.config.url, &format!("cutover migrate {who}"))
                    .await
                    .map_err(connect_error)?;
            if migrating {
                postgres::set_timeouts(
                    &mut connection,
                    self.config.lock_timeout,
                    self.config.statement_timeout,
                )
                .await
                .map_err(MigrateError::sql(
                    "setting lock_timeout and statement_timeout",
                ))?;
            }
            Ok(Connection::Postgres(connection))
        } else {
            let connection = sqlite::connect(&self.config.url, migrating, self.config.lock_timeout)
                .await
                .map_err(connect_error)?;
            Ok(Connection::Sqlite(connection))
        }
    }

    /// Splits `history` against the files: applied, pending, drift.
    fn compare(&self, history: Vec<Applied>) -> Status {
        let by_version: BTreeMap<u64, &Migration> = self
            .migrations
            .iter()
            .map(|migration| (migration.version, migration))
            .collect();
        let mut drift = Vec::new();
        for applied in &history {
            let version = u64::try_from(applied.version).unwrap_or(0);
            match by_version.get(&version) {
                Some(migration) if migration.checksum == applied.checksum => {}
                Some(migration) => drift.push(Drift {
                    version,
                    name: applied.name.clone(),
                    file: Some(migration.path.clone()),
                    recorded: applied.checksum.clone(),
                    current: Some(migration.checksum.clone()),
                }),
                None => drift.push(Drift {
                    version,
                    name: applied.name.clone(),
                    file: None,
                    recorded: applied.checksum.clone(),
                    current: None,
                }),
            }
        }
        let latest = history.last().map(|applied| applied.version).unwrap_or(0);
        let pending = self
            .migrations
            .iter()
            .filter(|migration| {
                !history
                    .iter()
                    .any(|applied| applied.version == version_i64(migration.version))
            })
            .map(|migration| Pending {
                version: migration.version,
                name: migration.name.clone(),
                file: migration.path.clone(),
                phase: migration.phase,
                transaction: migration.transaction,
                has_down: migration.down.is_some(),
                statements: statements::split(&migration.up).len(),
                out_of_order: version_i64(migration.version) < latest,
            })
            .collect();
        Status {
            database: self.name.clone(),
            url: self.config.display_url(),
            folder: self.config.migrations.clone(),
            applied: history,
            pending,
            drift,
        }
    }

    /// Runs one part of `migration`, retrying on `lock_timeout`, and
    /// records (up) or forgets (down) it.
    async fn run(
        &self,
        connection: &mut Connection,
        lock: &MigratorLock,
        migration: &Migration,
        direction: Direction,
        actor: &Actor,
        events: &mut (dyn FnMut(Event<'_>) + Send),
    ) -> Result<Done, MigrateError> {
        let part = match direction {
            Direction::Up => &migration.up,
            Direction::Down => migration
                .down
                .as_ref()
                .ok_or_else(|| MigrateError::NoDown {
                    version: migration.version,
                    file: migration.path.clone(),
                })?,
        };
        let statements = statements::split(part);
        let started = Instant::now();
        let mut attempt = 0u32;
        if migration.transaction {
            loop {
                let tried = self
                    .transaction(
                        connection,
                        lock,
                        migration,
                        &statements,
                        direction,
                        actor,
                        started,
                    )
                    .await;
                match tried {
                    Ok(()) => break,
                    Err(Failure::LockTimeout(_, error)) if attempt < self.config.retries => {
                        attempt += 1;
                        self.pause(migration, attempt, &error, events).await;
                    }
                    Err(
                        Failure::LockTimeout(Some(statement), error)
                        | Failure::Statement(statement, error),
                    ) => {
                        return Err(statement_error(migration, &statement, &error, true));
                    }
                    Err(Failure::LockTimeout(None, error)) => {
                        return Err(MigrateError::Sql {
                            what: format!(
                                "{}: taking the database's write lock",
                                migration.path.display()
                            ),
                            source: error,
                        });
                    }
                    Err(Failure::Other(error)) => return Err(error),
                }
            }
        } else {
            for statement in &statements {
                loop {
                    match connection.execute(&statement.sql).await {
                        Ok(()) => break,
                        Err(error)
                            if connection::is_lock_timeout(&error)
                                && attempt < self.config.retries =>
                        {
                            attempt += 1;
                            self.pause(migration, attempt, &error, events).await;
                        }
                        Err(error) => {
                            return Err(statement_error(migration, statement, &error, false));
                        }
                    }
                }
            }
            self.record(connection, migration, direction, actor, started)
                .await
                .map_err(MigrateError::sql(format!(
                    "{}: its statements ran but recording it failed",
                    migration.path.display()
                )))?;
        }
        Ok(Done {
            version: migration.version,
            name: migration.name.clone(),
            file: migration.path.clone(),
            phase: migration.phase,
            direction,
            duration_ms: u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX),
        })
    }

    /// One attempt at a transactional migration.
    #[allow(clippy::too_many_arguments)]
    async fn transaction(
        &self,
        connection: &mut Connection,
        lock: &MigratorLock,
        migration: &Migration,
        statements: &[Statement],
        direction: Direction,
        actor: &Actor,
        started: Instant,
    ) -> Result<(), Failure> {
        if let Err(error) = connection.begin().await {
            return Err(if connection::is_lock_timeout(&error) {
                Failure::LockTimeout(None, error)
            } else {
                Failure::Other(MigrateError::sql("opening a transaction")(error))
            });
        }
        let result = self
            .in_transaction(
                connection, lock, migration, statements, direction, actor, started,
            )
            .await;
        if result.is_err() {
            connection.rollback().await;
        }
        result
    }

    #[allow(clippy::too_many_arguments)]
    async fn in_transaction(
        &self,
        connection: &mut Connection,
        lock: &MigratorLock,
        migration: &Migration,
        statements: &[Statement],
        direction: Direction,
        actor: &Actor,
        started: Instant,
    ) -> Result<(), Failure> {
        self.check_lease(connection, lock).await?;
        for statement in statements {
            if let Err(error) = connection.execute(&statement.sql).await {
                return Err(if connection::is_lock_timeout(&error) {
                    Failure::LockTimeout(Some(statement.clone()), error)
                } else {
                    Failure::Statement(statement.clone(), error)
                });
            }
        }
        self.record(connection, migration, direction, actor, started)
            .await
            .map_err(|error| Failure::Other(MigrateError::sql("recording the migration")(error)))?;
        self.check_lease(connection, lock).await?;
        connection
            .commit()
            .await
            .map_err(|error| Failure::Other(MigrateError::sql("committing the migration")(error)))
    }

    /// SQLite, inside a migration's transaction (so under the write lock):
    /// the lease must still be ours; extends it.
    async fn check_lease(
        &self,
        connection: &mut Connection,
        lock: &MigratorLock,
    ) -> Result<(), Failure> {
        let (Connection::Sqlite(sqlite_connection), Some(holder)) =
            (&mut *connection, lock.sqlite_holder())
        else {
            return Ok(());
        };
        match sqlite::renew(sqlite_connection, holder).await {
            Ok(true) => Ok(()),
            Ok(false) => Err(Failure::Other(MigrateError::LockLost {
                database: self.name.clone(),
                reason: "its lease ran out and another migrator took it".to_owned(),
            })),
            Err(error) => Err(Failure::Other(MigrateError::sql(
                "renewing the migrator lease",
            )(error))),
        }
    }

    async fn record(
        &self,
        connection: &mut Connection,
        migration: &Migration,
        direction: Direction,
        actor: &Actor,
        started: Instant,
    ) -> Result<(), sqlx::Error> {
        match direction {
            Direction::Up => {
                let applied = Applied {
                    version: version_i64(migration.version),
                    name: migration.name.clone(),
                    checksum: migration.checksum.clone(),
                    applied_at: now(),
                    duration_ms: i64::try_from(started.elapsed().as_millis()).unwrap_or(i64::MAX),
                    applied_by: actor.applied_by.clone(),
                    release: actor.release.clone(),
                    kind: "applied".to_owned(),
                };
                history::insert(connection, &applied).await
            }
            Direction::Down => history::delete(connection, version_i64(migration.version)).await,
        }
    }

    async fn pause(
        &self,
        migration: &Migration,
        attempt: u32,
        error: &sqlx::Error,
        events: &mut (dyn FnMut(Event<'_>) + Send),
    ) {
        let pause = backoff(attempt);
        events(Event::Retrying {
            migration,
            attempt,
            pause,
            error: connection::describe(error),
        });
        tokio::time::sleep(pause).await;
    }
}

/// The pending migrations `up` runs: in order, up to `to`, and with a phase
/// only until the first migration of the other phase.
fn plan(
    pending: Vec<Pending>,
    to: Option<u64>,
    phase: Option<Phase>,
) -> (Vec<Pending>, Option<Stop>) {
    let mut steps = Vec::new();
    for step in pending {
        if to.is_some_and(|to| step.version > to) {
            break;
        }
        if let Some(phase) = phase
            && step.phase != phase
        {
            let reason = format!(
                "it is a {} migration: it runs with `--phase {}` (or without `--phase`), and the migrations after it wait for it",
                step.phase, step.phase
            );
            let stop = Stop {
                version: step.version,
                name: step.name,
                phase: step.phase,
                reason,
            };
            return (steps, Some(stop));
        }
        steps.push(step);
    }
    (steps, None)
}

/// The pause before retry `attempt` (1-based): 200 ms doubling, at most 5 s,
/// plus up to 100 ms of jitter so that two migrators do not retry in step.
fn backoff(attempt: u32) -> Duration {
    let base = Duration::from_millis(200).saturating_mul(1 << attempt.saturating_sub(1).min(5));
    base.min(Duration::from_secs(5)) + Duration::from_millis(fastrand::u64(0..100))
}

fn statement_error(
    migration: &Migration,
    statement: &Statement,
    error: &sqlx::Error,
    transaction: bool,
) -> MigrateError {
    MigrateError::Statement {
        version: migration.version,
        file: migration.path.clone(),
        line: statement.line + connection::error_line_offset(error, &statement.sql),
        statement: statement.sql.clone(),
        error: connection::describe(error),
        transaction,
    }
}

fn version_i64(version: u64) -> i64 {
    i64::try_from(version).unwrap_or(i64::MAX)
}

fn now() -> String {
    jiff::Timestamp::now()
        .round(jiff::Unit::Millisecond)
        .map_or_else(
            |_| jiff::Timestamp::now().to_string(),
            |now| now.to_string(),
        )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pending(version: u64, phase: Phase) -> Pending {
        Pending {
            version,
            name: format!("m{version}"),
            file: PathBuf::from(format!("{version}_m.sql")),
            phase,
            transaction: true,
            has_down: true,
            statements: 1,
            out_of_order: false,
        }
    }

    #[test]
    fn plan_follows_to_and_stops_at_the_other_phase() {
        let all = vec![
            pending(1, Phase::Expand),
            pending(2, Phase::Expand),
            pending(3, Phase::Contract),
            pending(4, Phase::Expand),
        ];
        let versions = |steps: &[Pending]| steps.iter().map(|s| s.version).collect::<Vec<_>>();
        let (steps, stop) = plan(all.clone(), None, None);
        assert_eq!((versions(&steps), stop), (vec![1, 2, 3, 4], None));
        let (steps, stop) = plan(all.clone(), Some(2), None);
        assert_eq!((versions(&steps), stop), (vec![1, 2], None));
        let (steps, stop) = plan(all.clone(), None, Some(Phase::Expand));
        assert_eq!(versions(&steps), [1, 2]);
        assert_eq!(
            stop.map(|s| (s.version, s.phase)),
            Some((3, Phase::Contract))
        );
        let (steps, stop) = plan(all[2..].to_vec(), None, Some(Phase::Contract));
        assert_eq!(versions(&steps), [3]);
        assert_eq!(stop.map(|s| s.version), Some(4));
    }

    #[test]
    fn backoff_doubles_and_is_bounded() {
        for attempt in 1..=20 {
            let pause = backoff(attempt);
            let base = 200u64 << (attempt - 1).min(5);
            let base = Duration::from_millis(base.min(5000));
            assert!(
                pause >= base && pause < base + Duration::from_millis(100),
                "{attempt}: {pause:?}"
            );
        }
    }
}
