//! Schema changes around a deployment, in the zero-downtime order:
//!
//! 1. before anything changes, the pending migrations of every
//!    `[database.NAME]` are linted; an error blocks the deploy (unless the
//!    file allows it with a reasoned `-- cutover:allow`);
//! 2. pending **expand** migrations run before the new release starts, while
//!    the old one keeps serving against the expanded schema; a failure ends
//!    the deployment with the old release untouched;
//! 3. pending **contract** migrations run only once the old release is
//!    drained and stopped — at the end of the rollback window, or at once when
//!    there was no previous release — and never when the deployment rolled back.
//!
//! Every migration that runs is an event in the deployment's history.

use std::sync::Arc;

use serde_json::json;

use super::Daemon;
use crate::db::migrate::{Actor, Event, Migrator, Phase};

/// Event kind: contract migrations left for when the old release is gone.
pub(crate) const CONTRACT_PENDING: &str = "contract_pending";
/// Event kind: those contract migrations ran (or were attempted).
pub(crate) const CONTRACT_DONE: &str = "contract_done";

/// Contract migrations a successful deployment leaves for later: per
/// database, up to which version (the newest file when the deploy began).
#[derive(Debug, Clone)]
pub(crate) struct ContractJob {
    /// The deployment that asked for them.
    pub(crate) deployment_id: i64,
    /// The release they belong to.
    pub(crate) version: String,
    /// `(database, highest version)`.
    pub(crate) targets: Vec<(String, u64)>,
}

/// Lint findings of pending migrations that block a deploy, one line each
/// (`file:line:column rule: message`); empty when the deploy may go on.
pub(crate) async fn lint_pending(daemon: &Daemon) -> Result<Vec<String>, String> {
    let mut blocking = Vec::new();
    for (name, db) in &daemon.config.databases {
        let migrator = Migrator::new(name, db).map_err(|e| format!("database {name}: {e}"))?;
        let status = migrator
            .status()
            .await
            .map_err(|e| format!("database {name}: {e}"))?;
        let pending: Vec<u64> = status.pending.iter().map(|p| p.version).collect();
        for (migration, report) in migrator.migrations().iter().zip(migrator.lint()) {
            if !pending.contains(&migration.version) {
                continue;
            }
            for f in report.findings {
                blocking.push(format!(
                    "{}:{}:{} {}: {}",
                    f.file.display(),
                    f.line,
                    f.column,
                    f.rule,
                    f.message
                ));
            }
        }
    }
    Ok(blocking)
}

/// Runs the pending expand migrations of every database; returns the
/// contract migrations left for after the old release is gone.
pub(crate) async fn expand(
    daemon: &Daemon,
    deployment_id: i64,
    version: &str,
    requested_by: &str,
) -> Result<ContractJob, String> {
    let actor = Actor {
        applied_by: requested_by.to_owned(),
        release: Some(version.to_owned()),
    };
    let mut targets = Vec::new();
    for (name, db) in &daemon.config.databases {
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
        if let Some(highest) = status
            .pending
            .iter()
            .filter(|p| p.phase == Phase::Contract)
            .map(|p| p.version)
            .max()
        {
            targets.push((name.clone(), highest));
        }
    }
    Ok(ContractJob {
        deployment_id,
        version: version.to_owned(),
        targets,
    })
}

/// Runs a deployment's contract migrations (the old release is gone).
pub(crate) async fn contract(daemon: &Arc<Daemon>, job: ContractJob) {
    let actor = Actor {
        applied_by: "cutover daemon".to_owned(),
        release: Some(job.version.clone()),
    };
    for (name, upto) in &job.targets {
        let Some(db) = daemon.config.databases.get(name) else {
            continue;
        };
        let outcome = match Migrator::new(name, db) {
            Ok(migrator) => run_up(
                daemon,
                job.deployment_id,
                &migrator,
                Phase::Contract,
                Some(*upto),
                &actor,
            )
            .await
            .map(drop),
            Err(e) => Err(format!("database {name}: {e}")),
        };
        if let Err(reason) = outcome {
            tracing::error!(database = %name, "contract migrations failed: {reason}");
            record(
                daemon,
                job.deployment_id,
                "migration_failed",
                &reason,
                json!({ "database": name }),
            )
            .await;
        }
    }
    record(
        daemon,
        job.deployment_id,
        CONTRACT_DONE,
        "contract migrations done",
        json!({}),
    )
    .await;
}

/// After a restart: the contract migrations the serving release's deployment
/// left waiting, if they have not run yet.
pub(crate) async fn pending_after_restart(
    daemon: &Daemon,
    environment: &str,
    serving: &str,
) -> Option<ContractJob> {
    let last = daemon
        .store
        .deployments(Some(environment), 1)
        .await
        .ok()?
        .into_iter()
        .next()?;
    if last.version != serving || last.state != crate::store::DeploymentState::Succeeded {
        return None;
    }
    let events = daemon.store.events(last.id).await.ok()?;
    if events.iter().any(|e| e.kind == CONTRACT_DONE) {
        return None;
    }
    let pending = events.iter().rev().find(|e| e.kind == CONTRACT_PENDING)?;
    let targets: Vec<(String, u64)> =
        serde_json::from_value(pending.data["targets"].clone()).ok()?;
    Some(ContractJob {
        deployment_id: last.id,
        version: last.version,
        targets,
    })
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
        record(
            daemon,
            deployment_id,
            "migration",
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

async fn record(daemon: &Daemon, id: i64, kind: &str, message: &str, data: serde_json::Value) {
    tracing::info!(deployment = id, kind, "{message}");
    if let Err(e) = daemon.store.add_event(id, kind, message, data).await {
        daemon.log_store_error("cannot record an event", &e);
    }
}
