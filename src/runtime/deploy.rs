//! `cutover deploy`: the checks a deploy makes before it changes anything
//! (version, service, migration lint, database preflight, driver preflight),
//! then the environment's lock, the deployment's record, and a release
//! machine (`cutover_core::Release`) carried out by an executor in the
//! background: backup → expand → rollout → warm window → retire → contract.
//!
//! Before those: an operator's lock and the deploy windows (`gates.rs`);
//! after the driver preflight, the release's identity (`identity.rs`) and,
//! where the environment promotes from another, the promotion check
//! (`promotion.rs`). A failed check is an error for the caller with nothing
//! changed. Releases
//! of one environment never overlap: a deploy first ends the rollback window
//! of the release before it and waits until that one has retired its old
//! release and run its contract migrations (a deploy behind an approval gate
//! does so once approved, so that waiting for approval changes nothing).

use cutover_core::EventKind;
use std::sync::Arc;
use std::time::Duration;

use cutover_core::{ApprovalPolicy, Release, ReleaseKind};
use serde_json::json;

use super::executor::{self, Executor};
use super::gates::{self, Overrides};
use super::plan::{self, Extras};
use super::{Daemon, DeployError, identity, promotion, schema};
use crate::config::ApprovalAt;
use crate::store::{DeploymentKind, NewDeployment, StoreError};

/// Starts a deployment of `version`; returns the environment and the
/// deployment id at once. The work goes on in the background.
pub async fn begin_deploy(
    daemon: &Arc<Daemon>,
    environment: Option<&str>,
    version: &str,
    requested_by: &str,
    only_service: Option<&str>,
    overrides: &Overrides,
    commit: &crate::dora::commit::Commit,
) -> Result<(String, i64), DeployError> {
    check_version(version)?;
    let env = daemon.environment(environment)?.clone();
    gates::check_lock(daemon, &env).await?;
    let mut overridden = Vec::new();
    overridden.extend(gates::check_window(
        &env,
        jiff::Timestamp::now(),
        overrides,
        requested_by,
    )?);
    let skip_reason = match overrides.skip_promotion_check {
        true => Some(
            gates::reason_for(overrides, "--skip-promotion-check")
                .map_err(DeployError::BadRequest)?,
        ),
        false => None,
    };
    if let Some(svc) = only_service
        && !daemon.config.services.contains_key(svc)
    {
        return Err(DeployError::BadRequest(format!(
            "no service named {svc:?}; the config has {}",
            daemon
                .config
                .services
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    refuse_if_stuck(&env)?;
    let serving = daemon.store.serving(&env.name).await?;
    if let Some(s) = &serving
        && s.current == version
    {
        return Err(DeployError::BadRequest(format!(
            "{version} already serves {}; deploy another version, or `cutover rollback`",
            env.name
        )));
    }
    let (contract, lint_warnings) = check_databases(daemon, &env.name).await?;
    let old_version = serving.as_ref().map(|s| s.current.clone());
    let extras = Extras {
        kind: ReleaseKind::Deploy,
        backup: daemon
            .config
            .databases_in(&env.name)
            .values()
            .any(|d| d.backup.as_ref().is_some_and(|b| b.before_deploy)),
        migrate: !daemon.config.databases_in(&env.name).is_empty(),
        contract,
    };
    let (mut release_plan, has_previous) = plan::release_plan(
        daemon,
        &env,
        version,
        old_version.as_deref(),
        only_service,
        extras,
    );
    // `[environment.NAME] approvals`: the deployer is who may not approve.
    release_plan.approval = env.config.approvals.as_ref().map(|a| ApprovalPolicy {
        required: a.required,
        expires: plan::millis(a.expires),
        at: match a.at {
            ApprovalAt::Start => cutover_core::ApprovalAt::Start,
            ApprovalAt::Switch => cutover_core::ApprovalAt::Switch,
        },
        requested_by: requested_by.to_owned(),
    });
    // `approvals = { at = "switch" }`: the first service holds at the switch
    // (healthy, on the preview, no traffic) until approved; the others
    // follow it as planned, since traffic has moved by then.
    if env
        .config
        .approvals
        .as_ref()
        .is_some_and(|a| a.at == ApprovalAt::Switch)
        && let Some(first) = release_plan.rollout.services.first_mut()
    {
        first.manual_switch = true;
    }
    let strategy = if release_plan
        .rollout
        .services
        .iter()
        .any(|s| matches!(s.strategy, cutover_core::Strategy::Canary(_)))
    {
        "canary"
    } else {
        "blue-green"
    };
    let names: Vec<String> = release_plan
        .rollout
        .services
        .iter()
        .map(|s| s.name.clone())
        .collect();
    let checked = super::preflight::check(daemon, version, &names).await?;
    let identity = identity::identify(daemon, version, &names).await?;
    let mut promotion_line = None;
    if let Some(from) = &env.config().promote_from {
        let soak = env.config().soak;
        let checked = promotion::require(daemon, version, from, soak, &identity).await;
        match (checked, skip_reason) {
            (Ok(line), _) => promotion_line = Some(line),
            (Err(DeployError::PromotionRequired(refusal)), Some(reason)) => {
                gates::override_allowed(requested_by, overrides)?;
                overridden.push(gates::Overridden {
                    check: "promotion check",
                    refusal,
                    reason,
                });
            }
            (Err(e), _) => return Err(e),
        }
    }
    let id = create(
        daemon,
        &env.name,
        NewDeployment {
            environment: env.name.clone(),
            version: version.to_owned(),
            previous_version: old_version.clone(),
            strategy: strategy.into(),
            kind: DeploymentKind::Deploy,
            requested_by: requested_by.to_owned(),
            commit_sha: commit.sha.clone(),
            commit_time: commit.time,
        },
        &format!("deploy {version}"),
    )
    .await?;
    event(
        daemon,
        id,
        EventKind::Started,
        &format!("deploying {version} to {} ({strategy})", env.name),
        started_data(version, &names, commit),
    )
    .await;
    record_identity(daemon, id, &env.name, version, &identity).await;
    if let Some(line) = &promotion_line {
        event(daemon, id, EventKind::Preflight, line, json!({})).await;
    }
    for o in &overridden {
        gates::record_override(daemon, id, requested_by, o).await;
    }
    if let Some(summary) = &checked.summary {
        event(daemon, id, EventKind::Preflight, summary, json!({})).await;
    }
    for warning in &checked.warnings {
        event(daemon, id, EventKind::Warning, warning, json!({})).await;
    }
    for warning in &lint_warnings {
        let message = format!("migration lint (warning, does not block): {warning}");
        event(daemon, id, EventKind::Warning, &message, json!({})).await;
    }
    let name = env.name.clone();
    let release = Release::new(release_plan, &has_previous);
    let executor = Executor::new(
        daemon.clone(),
        env.clone(),
        id,
        requested_by.to_owned(),
        release,
    );
    let gated = executor::gated(&executor.release);
    tokio::spawn(async move {
        // The release before this one ends its window first (old release
        // retired, contract migrations run): releases never overlap. One
        // behind an approval gate does that once approved, when it is
        // about to act (the executor's `clear_way`).
        if !gated {
            env.releases.end_windows_and_wait(id).await;
        }
        executor::spawn(executor, true).await;
    });
    Ok((name, id))
}

/// The `started` event's data: the version, the services, and the commit
/// when the deploy said one (`commit`, `commit_time`).
fn started_data(
    version: &str,
    names: &[String],
    commit: &crate::dora::commit::Commit,
) -> serde_json::Value {
    let mut data = json!({ "version": version, "services": names });
    if let Some(sha) = &commit.sha {
        data["commit"] = json!(sha);
    }
    if let Some(time) = commit.time {
        data["commit_time"] = json!(time);
    }
    data
}

/// Stores the release's digest with the deployment (what promotion compares)
/// and says it in the history.
async fn record_identity(
    daemon: &Daemon,
    id: i64,
    environment: &str,
    version: &str,
    identity: &identity::ReleaseIdentity,
) {
    let services = identity.services_json();
    if let Err(e) = daemon
        .store
        .record_release_digest(id, environment, version, &identity.digest, &services)
        .await
    {
        daemon.log_store_error("cannot record the release digest", &e);
    }
    let list: Vec<String> = identity
        .services
        .iter()
        .map(|(name, s)| format!("{name} {}", identity::short(&s.digest)))
        .collect();
    event(
        daemon,
        id,
        EventKind::Digest,
        &format!(
            "release digest sha256 {} ({})",
            identity.digest,
            list.join(", ")
        ),
        json!({ "digest": identity.digest, "services": services }),
    )
    .await;
}

/// The database checks of a deploy: pending migrations linted, preflight
/// when backups are taken; the contract migrations the deploy will run, and
/// the lint's warnings (recorded once the deployment exists).
async fn check_databases(
    daemon: &Daemon,
    env: &str,
) -> Result<(Vec<cutover_core::ContractTarget>, Vec<String>), DeployError> {
    let databases = daemon.config.databases_in(env);
    if databases.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    // Read once: the lint and the contract targets both come from it.
    let statuses = schema::statuses(daemon, env).await.map_err(|e| {
        DeployError::BadRequest(format!("cannot check the pending migrations: {e}"))
    })?;
    let lint = schema::lint_pending(&statuses);
    if !lint.denied.is_empty() {
        return Err(DeployError::BadRequest(format!(
            "migration lint blocks the deploy:\n  {}\nfix the migration, allow the rule in its file with a reason \
             (-- cutover:allow RULE because …), or move the rule with `lint = {{ warn = [\"RULE\"] }}` on the database",
            lint.denied.join("\n  ")
        )));
    }
    if databases.values().any(|d| d.backup.is_some()) {
        let failed: Vec<String> = crate::db::preflight::run(databases, true)
            .await
            .into_iter()
            .filter(|check| !check.ok)
            .map(|check| match check.fix {
                Some(fix) => format!("{}: {} → {fix}", check.name, check.detail),
                None => format!("{}: {}", check.name, check.detail),
            })
            .collect();
        if !failed.is_empty() {
            return Err(DeployError::BadRequest(format!(
                "preflight checks failed, nothing was changed:\n  {}",
                failed.join("\n  ")
            )));
        }
    }
    Ok((schema::contract_targets(&statuses), lint.warnings))
}

/// Takes the environment's lock and records a new deployment (the release
/// of the app included); the lock is released again if that fails.
pub(crate) async fn create(
    daemon: &Daemon,
    environment: &str,
    deployment: NewDeployment,
    purpose: &str,
) -> Result<i64, DeployError> {
    if daemon.is_quiesced() {
        return Err(DeployError::Refused(
            "the daemon is handing over to a new one (upgrade or reload) or stopping; nothing was started: run the command again in a few seconds".into(),
        ));
    }
    let holder = deployment.requested_by.clone();
    if let Err(e) = daemon.store.try_lock(environment, &holder, purpose).await {
        return Err(naming_an_awaited_approval(daemon, environment, e)
            .await
            .into());
    }
    let created = async {
        if deployment.kind == DeploymentKind::Deploy {
            daemon
                .store
                .upsert_release(
                    &daemon.config.app.name,
                    &deployment.version,
                    &config_hash(daemon),
                )
                .await?;
        }
        daemon.store.create_deployment(&deployment).await
    }
    .await;
    match created {
        Ok(id) => Ok(id),
        Err(e) => {
            let _ = daemon.store.unlock(environment, &holder).await;
            Err(e.into())
        }
    }
}

/// A held lock whose deployment awaits approval says so, with its id and
/// the commands that decide it.
async fn naming_an_awaited_approval(
    daemon: &Daemon,
    environment: &str,
    error: StoreError,
) -> StoreError {
    let StoreError::LockHeld {
        environment: env,
        holder,
        purpose,
        since,
    } = error
    else {
        return error;
    };
    let awaiting = daemon
        .store
        .deployments(Some(environment), 20)
        .await
        .ok()
        .and_then(|list| list.into_iter().find(|d| d.awaiting_approval));
    let purpose = match awaiting {
        Some(d) => format!(
            "{purpose}; deployment {id} awaits approval: `cutover approve {id}` or `cutover reject {id} --reason …` decides it",
            id = d.id
        ),
        None => purpose,
    };
    StoreError::LockHeld {
        environment: env,
        holder,
        purpose,
        since,
    }
}

/// A deployment whose saved state could not be restored blocks the
/// environment until an operator ends it.
pub(crate) fn refuse_if_stuck(env: &super::EnvRuntime) -> Result<(), DeployError> {
    match env.releases.stuck() {
        Some(stuck) => Err(DeployError::BadRequest(format!(
            "deployment {} in {} needs an operator: {}; end it with `cutover abort` or `cutover rollback`",
            stuck.id, env.name, stuck.reason
        ))),
        None => Ok(()),
    }
}

/// Records an event of a deployment (best effort: logged when the store fails).
pub(crate) async fn event(
    daemon: &Daemon,
    id: i64,
    kind: EventKind,
    message: &str,
    data: serde_json::Value,
) {
    // One log line per event whatever the message holds (it may quote a
    // client's reason or an app's output): lines joined, controls replaced.
    tracing::info!(
        deployment = id,
        kind = kind.as_str(),
        "{}",
        crate::label::printable_lines(message, " | ")
    );
    if let Err(e) = daemon.store.add_event(id, kind, message, data).await {
        daemon.log_store_error("cannot record an event", &e);
    }
}

fn check_version(version: &str) -> Result<(), DeployError> {
    crate::label::check_version(version).map_err(|e| DeployError::BadRequest(e.to_string()))
}

/// sha256 of the config file, as the release's config hash.
pub(super) fn config_hash(daemon: &Daemon) -> String {
    use sha2::{Digest, Sha256};
    let bytes = std::fs::read(&daemon.config.path).unwrap_or_default();
    Sha256::digest(&bytes)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `1.2s`, `350ms`, `10m`.
pub(crate) fn fmt_duration(d: Duration) -> String {
    if d < Duration::from_secs(1) {
        format!("{}ms", d.as_millis())
    } else if d < Duration::from_secs(60) {
        format!("{:.1}s", d.as_secs_f64())
    } else {
        humantime::format_duration(Duration::from_secs(d.as_secs())).to_string()
    }
}
