//! Blue-green deployment and rollback of one environment.
//!
//! A deploy takes the environment's lock, starts every replica of every service
//! at the new version, waits for each to pass its health check, and only then
//! switches the proxy to the new release in one table swap. The old release
//! stays warm for the rollback window, so a rollback is one more swap. If the
//! new release does not become healthy, its instances are stopped and the old
//! release never stops serving.
//!
//! Every step is an event in the deployment's history; the CLI follows them.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use cutover_core::{
    CanarySpec, InconclusivePolicy, Millis, Plan, RestartPolicy, Rollout, ServicePlan, Thresholds,
};

use super::environment::{EnvRuntime, LiveInstance};
use super::runner::Runner;
use super::schema;
use super::{Daemon, retire};
use crate::config::{ServiceKind, Strategy};
use crate::drivers::health;
use crate::store::{DeploymentKind, DeploymentState, InstanceState, NewDeployment, StoreError};

/// Timeout of the single probe that checks a warm release before a rollback.
const WARM_PROBE_TIMEOUT: Duration = Duration::from_secs(1);
/// Longest version label.
const MAX_VERSION_LEN: usize = 128;

/// Why a deployment could not start.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The request itself is wrong (unknown environment, bad version, nothing to roll back to).
    #[error("{0}")]
    BadRequest(String),
    /// Another deployment holds the environment's lock.
    #[error("{0}")]
    Locked(StoreError),
    /// A check before the deploy failed (an image missing, the Docker daemon
    /// unreachable); nothing was changed.
    #[error("{0}")]
    Preflight(String),
    /// An operator command that does not apply now.
    #[error("{0}")]
    Refused(String),
    /// The store failed.
    #[error("state store: {0}")]
    Store(StoreError),
    /// A bug or an impossible state.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for DeployError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LockHeld { .. } => DeployError::Locked(e),
            other => DeployError::Store(other),
        }
    }
}

/// Starts a blue-green deployment of `version`; returns the environment and the
/// deployment id at once. The work goes on in the background.
pub async fn begin_deploy(
    daemon: &Arc<Daemon>,
    environment: Option<&str>,
    version: &str,
    requested_by: &str,
    only_service: Option<&str>,
) -> Result<(String, i64), DeployError> {
    check_version(version)?;
    let env = daemon.environment(environment)?.clone();
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
    let serving = daemon.store.serving(&env.name).await?;
    if let Some(s) = &serving
        && s.current == version
    {
        return Err(DeployError::BadRequest(format!(
            "{version} already serves {}; deploy another version, or `cutover rollback`",
            env.name
        )));
    }
    if !daemon.config.databases.is_empty() {
        let blocking = schema::lint_pending(daemon).await.map_err(|e| {
            DeployError::BadRequest(format!("cannot check the pending migrations: {e}"))
        })?;
        if !blocking.is_empty() {
            return Err(DeployError::BadRequest(format!(
                "migration lint blocks the deploy:\n  {}\nfix the migration, or allow the rule in its file with a reason: \
                 -- cutover:allow RULE because …",
                blocking.join("\n  ")
            )));
        }
    }
    if daemon.config.databases.values().any(|d| d.backup.is_some()) {
        let failed: Vec<String> = crate::db::preflight::run(&daemon.config, true)
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
    let old_version = serving.as_ref().map(|s| s.current.clone());
    let (plan, has_previous) = build_plan(
        daemon,
        &env,
        version,
        old_version.as_deref(),
        only_service,
        false,
    );
    let strategy = if plan
        .services
        .iter()
        .any(|s| matches!(s.strategy, cutover_core::Strategy::Canary(_)))
    {
        "canary"
    } else {
        "blue-green"
    };
    let names: Vec<String> = plan.services.iter().map(|s| s.name.clone()).collect();
    let checked = super::preflight::check(daemon, version, &names).await?;
    daemon
        .store
        .try_lock(&env.name, requested_by, &format!("deploy {version}"))
        .await?;
    let created = async {
        daemon
            .store
            .upsert_release(&daemon.config.app.name, version, &config_hash(daemon))
            .await?;
        daemon
            .store
            .create_deployment(&NewDeployment {
                environment: env.name.clone(),
                version: version.to_owned(),
                previous_version: serving.as_ref().map(|s| s.current.clone()),
                strategy: strategy.into(),
                kind: DeploymentKind::Deploy,
                requested_by: requested_by.to_owned(),
            })
            .await
    }
    .await;
    let id = match created {
        Ok(id) => id,
        Err(e) => {
            let _ = daemon.store.unlock(&env.name, requested_by).await;
            return Err(e.into());
        }
    };
    event(
        daemon,
        id,
        "started",
        &format!("deploying {version} to {} ({strategy})", env.name),
        json!({ "version": version, "services": plan.services.iter().map(|s| s.name.clone()).collect::<Vec<_>>() }),
    )
    .await;
    if let Some(summary) = &checked.summary {
        event(daemon, id, "preflight", summary, json!({})).await;
    }
    for warning in &checked.warnings {
        event(daemon, id, "warning", warning, json!({})).await;
    }
    let name = env.name.clone();
    let rollout = Rollout::new(plan, &has_previous);
    let mut runner = Runner::new(
        daemon.clone(),
        env.clone(),
        id,
        requested_by.to_owned(),
        rollout,
        old_version,
    );
    let (d, v, holder) = (daemon.clone(), version.to_owned(), requested_by.to_owned());
    tokio::spawn(async move {
        // Backups first (`backup.before_deploy`): a failure leaves the old
        // release untouched.
        if let Err(reason) = super::backup::before_deploy(&d, id, &v).await {
            let reason = format!("backup before deploy failed, nothing was started: {reason}");
            finish(&d, &env, id, &holder, Err(reason)).await;
            return;
        }
        // Expand migrations next: the old release keeps serving on the
        // expanded schema; a failure leaves it untouched.
        if !d.config.databases.is_empty() {
            match schema::expand(&d, id, &v, &holder).await {
                Ok(job) => runner.contract = Some(job),
                Err(reason) => {
                    let reason = format!("expand migrations failed, nothing was started: {reason}");
                    finish(&d, &env, id, &holder, Err(reason)).await;
                    return;
                }
            }
        }
        runner.run(true).await;
    });
    Ok((name, id))
}

/// The rollout plan of `version` for `env`: every service (or only one) in
/// `after` order, canary where configured and possible, blue-green otherwise.
/// Also says which services have a warm previous release to fall back to.
pub(crate) fn build_plan(
    daemon: &Daemon,
    env: &EnvRuntime,
    version: &str,
    old_version: Option<&str>,
    only_service: Option<&str>,
    force_blue_green: bool,
) -> (Plan, Vec<bool>) {
    let config = &daemon.config;
    let mut services = Vec::new();
    let mut has_previous = Vec::new();
    let mut on_restart = RestartPolicy::Rollback;
    for name in config.rollout_order() {
        if only_service.is_some_and(|only| only != name) {
            continue;
        }
        let Some(sc) = config.services.get(&name) else {
            continue;
        };
        let warm =
            old_version.is_some_and(|old| env.of_version(old).iter().any(|i| i.service == name));
        let canary = sc.rollout.strategy == Strategy::Canary
            && sc.kind == ServiceKind::Http
            && warm
            && !force_blue_green;
        if sc.rollout.strategy == Strategy::Canary
            && sc.rollout.on_daemon_restart == crate::config::RestartPolicy::Resume
        {
            on_restart = RestartPolicy::Resume;
        }
        let strategy = if canary {
            let r = &sc.rollout;
            let a = &r.analysis;
            let ms = |d: Duration| Millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
            cutover_core::Strategy::Canary(CanarySpec {
                steps: r.steps.clone(),
                step_duration: ms(r.step_duration),
                check_interval: ms(r.check_interval),
                max_inconclusive: r.max_inconclusive,
                on_inconclusive: match r.on_inconclusive {
                    crate::config::InconclusivePolicy::Fail => InconclusivePolicy::Fail,
                    crate::config::InconclusivePolicy::Pause => InconclusivePolicy::Pause,
                },
                thresholds: Thresholds {
                    max_error_rate: a.max_error_rate,
                    max_p95_ms: a.max_p95.map(|d| d.as_secs_f64() * 1000.0),
                    max_p99_ms: a.max_p99.map(|d| d.as_secs_f64() * 1000.0),
                    max_error_rate_increase: a.max_error_rate_increase,
                    max_latency_ratio: a.max_latency_ratio,
                    min_requests: a.min_requests,
                    abort_error_rate: a.abort_error_rate,
                },
            })
        } else {
            cutover_core::Strategy::BlueGreen
        };
        services.push(ServicePlan {
            name: name.clone(),
            strategy,
        });
        has_previous.push(warm);
    }
    (
        Plan {
            version: version.to_owned(),
            previous_version: old_version.map(str::to_owned),
            services,
            on_restart,
        },
        has_previous,
    )
}

/// Starts a rollback to the previous release; returns at once like [`begin_deploy`].
pub async fn begin_rollback(
    daemon: &Arc<Daemon>,
    environment: Option<&str>,
    requested_by: &str,
) -> Result<(String, i64), DeployError> {
    let env = daemon.environment(environment)?.clone();
    let serving = daemon.store.serving(&env.name).await?.ok_or_else(|| {
        DeployError::BadRequest(format!("nothing has been deployed to {} yet", env.name))
    })?;
    let previous = serving.previous.clone().ok_or_else(|| {
        DeployError::BadRequest(format!(
            "{} has no previous release to roll back to (serving {})",
            env.name, serving.current
        ))
    })?;
    daemon
        .store
        .try_lock(&env.name, requested_by, &format!("rollback to {previous}"))
        .await?;
    let id = match daemon
        .store
        .create_deployment(&NewDeployment {
            environment: env.name.clone(),
            version: previous.clone(),
            previous_version: Some(serving.current.clone()),
            strategy: "switch".into(),
            kind: DeploymentKind::Rollback,
            requested_by: requested_by.to_owned(),
        })
        .await
    {
        Ok(id) => id,
        Err(e) => {
            let _ = daemon.store.unlock(&env.name, requested_by).await;
            return Err(e.into());
        }
    };
    let (d, name, holder) = (daemon.clone(), env.name.clone(), requested_by.to_owned());
    let current = serving.current.clone();
    tokio::spawn(async move {
        match rollback(&d, &env, id, &previous).await {
            // Cold: the previous release is started again, blue-green, by the engine.
            Ok(false) => {
                let (plan, has_previous) =
                    build_plan(&d, &env, &previous, Some(&current), None, true);
                let rollout = Rollout::new(plan, &has_previous);
                Runner::new(d.clone(), env, id, holder, rollout, Some(current))
                    .run(true)
                    .await;
            }
            warm => finish(&d, &env, id, &holder, warm.map(drop)).await,
        }
    });
    Ok((name, id))
}

/// Records the end of a deployment and frees the lock.
async fn finish(
    daemon: &Daemon,
    env: &EnvRuntime,
    id: i64,
    holder: &str,
    outcome: Result<(), String>,
) {
    let store = &daemon.store;
    let result = match &outcome {
        Ok(()) => {
            let _ = store
                .add_event(id, "succeeded", "deployment succeeded", json!({}))
                .await;
            store
                .finish_deployment(id, DeploymentState::Succeeded, None)
                .await
        }
        Err(reason) => {
            let _ = store
                .add_event(id, "failed", reason, json!({ "serving_unchanged": true }))
                .await;
            store
                .finish_deployment(id, DeploymentState::Failed, Some(reason))
                .await
        }
    };
    if let Err(e) = result {
        daemon.log_store_error("cannot record the end of a deployment", &e);
    }
    if let Err(e) = store.unlock(&env.name, holder).await {
        daemon.log_store_error("cannot release the deployment lock", &e);
    }
}

pub(crate) async fn event(
    daemon: &Daemon,
    id: i64,
    kind: &str,
    message: &str,
    data: serde_json::Value,
) {
    tracing::info!(deployment = id, kind, "{message}");
    if let Err(e) = daemon.store.add_event(id, kind, message, data).await {
        daemon.log_store_error("cannot record an event", &e);
    }
}

/// Back to the previous release in one switch when it is warm: `Ok(true)`.
/// `Ok(false)` when it is not running any more and must be started again.
async fn rollback(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    id: i64,
    previous: &str,
) -> Result<bool, String> {
    event(
        daemon,
        id,
        "started",
        &format!("rolling {} back to {previous}", env.name),
        json!({ "version": previous }),
    )
    .await;
    let warm = env.of_version(previous);
    let mut healthy = Vec::new();
    for inst in warm {
        let ok = daemon.driver.is_running(&inst.handle)
            && match (inst.kind, inst.handle.addr()) {
                (ServiceKind::Http, None) => false,
                (ServiceKind::Http, Some(addr)) => {
                    let path = daemon
                        .config
                        .services
                        .get(&inst.service)
                        .map(|s| s.health.path.clone())
                        .unwrap_or_else(|| "/health".into());
                    health::probe(addr, &path, WARM_PROBE_TIMEOUT).await.is_ok()
                }
                (ServiceKind::Worker, _) => true,
            };
        if ok {
            healthy.push(inst);
        }
    }
    let complete = daemon
        .config
        .services
        .keys()
        .all(|svc| healthy.iter().any(|i| &i.service == svc));
    if complete {
        event(
            daemon,
            id,
            "warm",
            &format!(
                "{previous} is still warm ({} instances): switching back",
                healthy.len()
            ),
            json!({ "instances": healthy.iter().map(|i| i.id.clone()).collect::<Vec<_>>() }),
        )
        .await;
        // Warm instances that failed the probe are not switched to.
        let healthy_ids: Vec<String> = healthy.iter().map(|i| i.id.clone()).collect();
        let broken = env.take(|i| i.version == previous && !healthy_ids.contains(&i.id));
        if !broken.is_empty() {
            retire::retire_now(daemon, env, broken, "failed its check before rollback").await;
        }
        let kept = env.take(|i| healthy_ids.contains(&i.id));
        // The release whose contract migrations were waiting no longer serves.
        env.pending_contract
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .take();
        return switch(daemon, env, id, previous, kept).await.map(|()| true);
    }
    event(
        daemon,
        id,
        "cold",
        &format!("{previous} is no longer running: starting it again (blue-green)"),
        json!({}),
    )
    .await;
    let stale = env.take(|i| i.version == previous);
    retire::retire_now(daemon, env, stale, "replaced by a fresh start").await;
    Ok(false)
}

/// One table swap to `new`; the old release stays warm for the rollback window,
/// anything older is drained and stopped.
async fn switch(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    id: i64,
    version: &str,
    new: Vec<LiveInstance>,
) -> Result<(), String> {
    let serving = daemon
        .store
        .serving(&env.name)
        .await
        .map_err(|e| format!("state store: {e}"))?;
    let old_current = serving.map(|s| s.current).filter(|c| c != version);
    env.add(new.clone());
    let generation = env.switch_to(&new).map_err(|e| e.to_string())?;
    event(
        daemon,
        id,
        "switched",
        &format!("switched {}: 100% of traffic on {version}", env.name),
        json!({ "version": version, "table_generation": generation }),
    )
    .await;
    for inst in &new {
        let _ = daemon
            .store
            .set_instance_state(&inst.id, InstanceState::Serving)
            .await;
    }
    daemon
        .store
        .set_serving(&env.name, version)
        .await
        .map_err(|e| format!("state store: {e}"))?;

    after_switch(daemon, env, id, version, old_current).await;
    Ok(())
}

/// After `version` took all traffic: the previous release stays warm for the
/// rollback window; anything older is drained and stopped now.
pub(crate) async fn after_switch(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    id: i64,
    version: &str,
    old_current: Option<String>,
) {
    let old_current = old_current.filter(|c| c != version);
    let keep_warm = old_current.clone();
    let stale = env.take(|i| i.version != version && Some(&i.version) != keep_warm.as_ref());
    if !stale.is_empty() {
        let (d, e) = (daemon.clone(), env.clone());
        tokio::spawn(async move {
            retire::retire_now(&d, &e, stale, "older than the previous release").await
        });
    }
    if let Some(previous) = old_current {
        for inst in env.of_version(&previous) {
            let _ = daemon
                .store
                .set_instance_state(&inst.id, InstanceState::Idle)
                .await;
        }
        let window = env.config.rollback_window;
        event(
            daemon,
            id,
            "warm",
            &format!(
                "{previous} stays warm for {} so that rollback is one switch",
                fmt_duration(window)
            ),
            json!({ "version": previous, "rollback_window_ms": window.as_millis() as u64 }),
        )
        .await;
        retire::schedule(daemon.clone(), env.clone(), previous, window);
    }
}

fn check_version(version: &str) -> Result<(), DeployError> {
    let ok = !version.is_empty()
        && version.len() <= MAX_VERSION_LEN
        && version
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(DeployError::BadRequest(format!(
            "invalid version {version:?}: use 1 to {MAX_VERSION_LEN} letters, digits, '.', '_', '+' or '-'"
        )))
    }
}

/// sha256 of the config file, as the release's config hash.
fn config_hash(daemon: &Daemon) -> String {
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

/// Starts the serving release again after a restart found none of its
/// instances (for example after a clean stop of the daemon).
pub(crate) async fn restart_serving(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    version: &str,
) -> Result<(), DeployError> {
    let holder = "cutover daemon (restart)";
    daemon
        .store
        .try_lock(&env.name, holder, &format!("deploy {version} (restart)"))
        .await?;
    let id = match daemon
        .store
        .create_deployment(&NewDeployment {
            environment: env.name.clone(),
            version: version.to_owned(),
            previous_version: Some(version.to_owned()),
            strategy: "restart".into(),
            kind: DeploymentKind::Deploy,
            requested_by: holder.to_owned(),
        })
        .await
    {
        Ok(id) => id,
        Err(e) => {
            let _ = daemon.store.unlock(&env.name, holder).await;
            return Err(e.into());
        }
    };
    let (plan, has_previous) = build_plan(daemon, env, version, None, None, true);
    let rollout = Rollout::new(plan, &has_previous);
    Runner::new(
        daemon.clone(),
        env.clone(),
        id,
        holder.to_owned(),
        rollout,
        None,
    )
    .run(true)
    .await;
    Ok(())
}
