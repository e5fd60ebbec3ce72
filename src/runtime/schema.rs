//! Schema changes around a deployment, in the zero-downtime order:
//!
//! 1. before anything changes, the pending migrations of every database
//!    of the environment (`Config::databases_in`: its own version of each
//!    `[database.NAME]`) are linted; an error blocks the deploy (unless the
//!    file allows it with a reasoned `-- cutover:allow`);
//! 2. pending **expand** migrations run before the new release starts, while
//!    the old one keeps serving against the expanded schema; a failure ends
//!    the deployment with the old release untouched;
//! 3. pending **contract** migrations run only once the old release is
//!    drained and stopped — at the end of the rollback window, or at once when
//!    there was no previous release — and never when the deployment rolled back.
//!
//! Every migration that runs is an event in the deployment's history.

use cutover_core::ContractTarget;
use cutover_core::EventKind;
use serde_json::json;

use super::Daemon;
use super::deploy::event;
use crate::db::migrate::{Actor, Event, Migrator, Phase};

/// One `[database.NAME]`: its name, its migrator, where its migrations stand.
pub(crate) type DatabaseStatus = (String, Migrator, crate::db::migrate::Status);

/// What the lint says of the pending migrations, one line each
/// (`file:line:column rule: message`).
#[derive(Debug, Default)]
pub(crate) struct PendingLint {
    /// Findings that block the deploy.
    pub(crate) denied: Vec<String>,
    /// Findings that are only reported (style advice, or moved to `warn`).
    pub(crate) warnings: Vec<String>,
}

/// Lints the pending migrations of every database.
pub(crate) fn lint_pending(statuses: &[DatabaseStatus]) -> PendingLint {
    let mut lint = PendingLint::default();
    let line = |f: &crate::db::migrate::lint::Finding| {
        format!(
            "{}:{}:{} {}: {}",
            f.file.display(),
            f.line,
            f.column,
            f.rule,
            f.message
        )
    };
    for (_, migrator, status) in statuses {
        let pending: Vec<u64> = status.pending.iter().map(|p| p.version).collect();
        for (migration, report) in migrator.migrations().iter().zip(migrator.lint()) {
            if !pending.contains(&migration.version) {
                continue;
            }
            lint.denied.extend(report.denied().map(line));
            lint.warnings.extend(report.warnings().map(line));
        }
    }
    lint
}

/// Every `[database.NAME]`'s migrator and where its migrations stand.
pub(crate) async fn statuses(daemon: &Daemon, env: &str) -> Result<Vec<DatabaseStatus>, String> {
    let mut all = Vec::new();
    for (name, db) in daemon.config.databases_in(env) {
        let migrator = Migrator::new(name, db).map_err(|e| format!("database {name}: {e}"))?;
        let status = migrator
            .status()
            .await
            .map_err(|e| format!("database {name}: {e}"))?;
        all.push((name.clone(), migrator, status));
    }
    Ok(all)
}

/// The contract migrations a deploy will run once the old release is gone:
/// per database, the newest pending contract migration now (fixed when the
/// deploy begins, saved in the release plan).
pub(crate) fn contract_targets(statuses: &[DatabaseStatus]) -> Vec<ContractTarget> {
    let mut targets = Vec::new();
    for (name, _, status) in statuses {
        if let Some(upto) = status
            .pending
            .iter()
            .filter(|p| p.phase == Phase::Contract)
            .map(|p| p.version)
            .max()
        {
            targets.push(ContractTarget {
                database: name.clone(),
                upto,
            });
        }
    }
    targets
}

/// Runs the pending expand migrations of every database.
pub(crate) async fn expand(
    daemon: &Daemon,
    env: &str,
    deployment_id: i64,
    version: &str,
    requested_by: &str,
) -> Result<(), String> {
    let actor = Actor {
        applied_by: requested_by.to_owned(),
        release: Some(version.to_owned()),
    };
    for (name, db) in daemon.config.databases_in(env) {
        let migrator = Migrator::new(name, db).map_err(|e| format!("database {name}: {e}"))?;
        let report = run_up(
            daemon,
            deployment_id,
            &migrator,
            Phase::Expand,
            None,
            &actor,
        )
        .await?;
        let status = migrator
            .status()
            .await
            .map_err(|e| format!("database {name}: {e}"))?;
        if let Some(stop) = &report.stopped
            && status
                .pending
                .iter()
                .any(|p| p.phase == Phase::Expand && p.version > stop.version)
        {
            return Err(format!(
                "database {name}: contract migration {} ({}) is still pending and comes before expand \
                 migrations of this release; it runs when the release before the serving one is gone \
                 (or run `cutover migrate up --phase contract` yourself once no older release runs)",
                stop.version, stop.name
            ));
        }
    }
    Ok(())
}

/// Runs a release's contract migrations (the old release is gone); every
/// database is tried, the first failure is the answer.
pub(crate) async fn contract(
    daemon: &Daemon,
    env: &str,
    deployment_id: i64,
    version: &str,
    targets: &[ContractTarget],
) -> Result<(), String> {
    let actor = Actor {
        applied_by: "cutover daemon".to_owned(),
        release: Some(version.to_owned()),
    };
    let mut failures = Vec::new();
    for target in targets {
        let name = &target.database;
        let Some(db) = daemon.config.databases_in(env).get(name) else {
            failures.push(format!("database {name} is not in the config any more"));
            continue;
        };
        let outcome = match Migrator::new(name, db) {
            Ok(migrator) => run_up(
                daemon,
                deployment_id,
                &migrator,
                Phase::Contract,
                Some(target.upto),
                &actor,
            )
            .await
            .map(drop),
            Err(e) => Err(format!("database {name}: {e}")),
        };
        if let Err(reason) = outcome {
            tracing::error!(database = %name, "contract migrations failed: {reason}");
            failures.push(reason);
        }
    }
    if failures.is_empty() {
        Ok(())
    } else {
        Err(failures.join("; "))
    }
}

async fn run_up(
    daemon: &Daemon,
    deployment_id: i64,
    migrator: &Migrator,
    phase: Phase,
    to: Option<u64>,
    actor: &Actor,
) -> Result<crate::db::migrate::UpReport, String> {
    let name = migrator.name().to_owned();
    let mut done = Vec::new();
    let result = migrator
        .up(to, Some(phase), actor, &mut |event| {
            if let Event::Finished(d) = event {
                done.push(d.clone());
            }
        })
        .await;
    for d in &done {
        event(daemon, deployment_id, EventKind::Migration,
            &format!(
                "database {name}: applied {:04} {} ({}) in {} ms",
                d.version,
                d.name,
                phase_name(d.phase),
                d.duration_ms
            ),
            json!({ "database": name, "version": d.version, "name": d.name, "phase": d.phase, "ms": d.duration_ms }),
        )
        .await;
    }
    result.map_err(|e| format!("database {name}: {e}"))
}

fn phase_name(phase: Phase) -> &'static str {
    match phase {
        Phase::Expand => "expand",
        Phase::Contract => "contract",
    }
}
