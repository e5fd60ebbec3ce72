//! Start-up after a restart or a crash: re-adopt the instances that still run
//! and pass their health check, rebuild each proxy table from them, stop the
//! ones that cannot be adopted, remove stray containers (labelled with the
//! app and environment but not adopted), close deployments a crash
//! interrupted, and start the serving release again where none of its
//! instances survived. Instances of both drivers go through the same steps.
//!
//! `cutover serve --adopt-orphans` comes first ([`Daemon::adopt_orphans`]):
//! running instances that no record names (the store was lost) are recorded
//! again, as the serving release of their environment, or stopped when they
//! cannot serve, and what was done is an environment event; the steps above
//! then adopt the recorded ones as after any restart.

use cutover_core::EventKind;
use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use cutover_core::{Phase, Plan, Release, ReleaseKind, ReleasePlan, ReleaseState, State};

use super::control::Stuck;
use super::environment::{EnvRuntime, LiveInstance};
use super::executor::{self, Executor};
use super::{Daemon, retire};
use crate::config::ServiceKind;
use crate::drivers::health;
use crate::drivers::{FoundInstance, Handle};
use crate::store::{Deployment, DeploymentState, InstanceRecord, InstanceState, StoreError};

/// Timeout of the one probe that decides whether an instance is adopted.
const ADOPT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

/// How a daemon came to run the store's releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Takeover {
    /// It started after another stopped or crashed.
    Restart,
    /// The daemon before it handed over its sockets and paused its releases.
    Handover,
}

/// What start-up found, for the log and for tests.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct AdoptionReport {
    /// Instances adopted, by id.
    pub adopted: Vec<String>,
    /// Instances found but stopped (wrong release, unhealthy, gone).
    pub stopped: Vec<String>,
    /// Deployments that were running when the daemon died.
    pub interrupted: Vec<i64>,
    /// Environments whose serving release had to be started again.
    pub restarted: Vec<String>,
    /// Releases picked up again (a rollout resumed or rolled back per
    /// policy, a rollback window, a retire, contract migrations).
    pub resumed: Vec<i64>,
    /// Deployments whose saved state could not be restored: they wait for
    /// an operator (`cutover abort` / `cutover rollback`).
    pub needs_operator: Vec<i64>,
}

/// What [`Daemon::adopt_orphans`] did, per environment.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct OrphanReport {
    /// Environment → the release its adopted instances run.
    pub serving: BTreeMap<String, String>,
    /// Instances recorded again (`instance (pid 42)`), to be adopted.
    pub adopted: Vec<String>,
    /// Instances stopped, each with why.
    pub stopped: Vec<(String, String)>,
}

impl OrphanReport {
    /// What was done, for people: one line per environment and instance.
    pub fn describe(&self) -> Vec<String> {
        let mut lines: Vec<String> = self
            .serving
            .iter()
            .map(|(env, version)| format!("environment {env}: release {version} serves again"))
            .collect();
        lines.extend(self.adopted.iter().map(|i| format!("adopted {i}")));
        lines.extend(
            self.stopped
                .iter()
                .map(|(i, why)| format!("stopped {i}: {why}")),
        );
        lines
    }
}

/// A release a previous daemon saved with something left to do.
struct SavedRelease {
    deployment: Deployment,
    /// Its plan and state, or why they cannot be restored.
    parsed: Result<(ReleasePlan, ReleaseState), String>,
}

impl Daemon {
    /// Brings the world back in line with the store; see the module doc.
    pub async fn recover(self: &Arc<Self>) -> Result<AdoptionReport, StoreError> {
        self.recover_from(Takeover::Restart).await
    }

    /// [`Daemon::recover`], saying how this daemon took over: after a
    /// hand-over, a rollout in progress continues whatever its
    /// `on_daemon_restart` says (the old daemon paused it cleanly).
    pub async fn recover_from(
        self: &Arc<Self>,
        how: Takeover,
    ) -> Result<AdoptionReport, StoreError> {
        let mut report = AdoptionReport::default();
        let mut saved = Vec::new();
        for (id, plan, state) in self.store.unfinished_releases().await? {
            let Some(deployment) = self.store.deployment(id).await? else {
                continue;
            };
            let Some(env) = self.environments.get(&deployment.environment) else {
                tracing::warn!(deployment = id, env = %deployment.environment, "the environment is not in the config any more; its release is left alone");
                continue;
            };
            let parsed = parse_saved(plan, state, env).and_then(|(plan, state)| {
                super::plan::fits_config(&plan, &self.config, &deployment.environment)
                    .map(|()| (plan, state))
                    .map_err(|m| m.0)
            });
            saved.push(SavedRelease { deployment, parsed });
        }
        for dep in self.store.running_deployments().await? {
            if saved.iter().any(|s| s.deployment.id == dep.id) {
                continue;
            }
            // Crashed before the release saved anything: nothing had started.
            let reason = "the daemon stopped during this deployment; the serving release was kept";
            self.store
                .add_event(dep.id, EventKind::Interrupted, reason, json!({}))
                .await?;
            self.store
                .finish_deployment(dep.id, DeploymentState::Interrupted, Some(reason))
                .await?;
            report.interrupted.push(dep.id);
        }
        for env in self.environments.values() {
            let mine: Vec<&SavedRelease> = saved
                .iter()
                .filter(|s| s.deployment.environment == env.name)
                .collect();
            // A deploy or rollback lock belongs to the daemon that died, unless
            // a release restored below still runs its deployment.
            let running = mine
                .iter()
                .any(|s| s.deployment.state == DeploymentState::Running);
            if let Some(lock) = self.store.lock(&env.name).await?
                && !running
                && (lock.purpose.starts_with("deploy ") || lock.purpose.starts_with("rollback "))
            {
                self.store.force_unlock(&env.name).await?;
                tracing::warn!(env = %env.name, holder = ?lock.holder, "released a deployment lock left by a stopped daemon");
            }
            let wanted: Vec<String> = mine
                .iter()
                .flat_map(|s| {
                    [
                        Some(s.deployment.version.clone()),
                        s.deployment.previous_version.clone(),
                    ]
                })
                .flatten()
                .collect();
            self.recover_environment(env, &wanted, &mut report).await?;
        }
        for s in saved {
            self.restore_release(s, how, &mut report).await?;
        }
        Ok(report)
    }

    /// `cutover serve --adopt-orphans`: of `found` (every running instance of
    /// this app, by the drivers' own marks), records again those no record
    /// names, so that [`Daemon::recover`] adopts them, or stops those that
    /// cannot serve; records what it did as an environment event
    /// (`orphans_adopted`). The release that serves an environment is the one
    /// the store names, else the one with a running instance of every
    /// service (of two such, the one that started last: the other is most
    /// likely the release it replaced, kept warm for a rollback; it is
    /// stopped, since without its saved release nothing would retire it).
    pub async fn adopt_orphans(
        self: &Arc<Self>,
        found: Vec<FoundInstance>,
    ) -> Result<OrphanReport, StoreError> {
        let mut report = OrphanReport::default();
        let recorded: HashSet<String> = self
            .store
            .instances(None)
            .await?
            .into_iter()
            .map(|r| r.instance_id)
            .collect();
        for env in self.environments.values() {
            let orphans: Vec<&FoundInstance> = found
                .iter()
                .filter(|f| f.environment == env.name)
                .filter(|f| !recorded.contains(f.handle.instance_id()))
                .collect();
            if orphans.is_empty() {
                continue;
            }
            let serving = self.store.serving(&env.name).await?.map(|s| s.current);
            let chosen = serving.clone().or_else(|| self.complete_release(&orphans));
            let mut adopted = Vec::new();
            let mut stopped = Vec::new();
            for orphan in orphans {
                let who = format!(
                    "{} ({} {} {})",
                    orphan.handle.instance_id(),
                    orphan.service,
                    orphan.version,
                    orphan.handle.describe()
                );
                let why = match (&chosen, self.config.service_in(&env.name, &orphan.service)) {
                    (_, None) => Some(format!(
                        "service {} is not in the config any more",
                        orphan.service
                    )),
                    (None, Some(_)) => Some(
                        "no release has a running instance of every service, so none can serve"
                            .to_owned(),
                    ),
                    (Some(v), Some(_)) if *v != orphan.version => Some(format!(
                        "release {} serves this environment, not {}",
                        v, orphan.version
                    )),
                    (Some(_), Some(_)) => None,
                };
                match why {
                    None => {
                        self.store
                            .upsert_release(
                                &self.config.app.name,
                                &orphan.version,
                                &super::deploy::config_hash(self),
                            )
                            .await?;
                        self.store
                            .put_instance(&InstanceRecord {
                                instance_id: orphan.handle.instance_id().to_owned(),
                                environment: env.name.clone(),
                                service: orphan.service.clone(),
                                version: orphan.version.clone(),
                                state: InstanceState::Serving,
                                driver: orphan.handle.driver_name().to_owned(),
                                handle: orphan.handle.to_json(),
                                created_at: jiff::Timestamp::now(),
                            })
                            .await?;
                        adopted.push(who);
                    }
                    Some(why) => {
                        let grace = self
                            .config
                            .service_in(&env.name, &orphan.service)
                            .map(|s| s.stop_timeout)
                            .unwrap_or(Duration::from_secs(10));
                        let why = match self.driver.stop(&orphan.handle, grace).await {
                            Ok(_) => why,
                            Err(e) => format!("{why}; but stopping it failed: {e}"),
                        };
                        self.driver.forget(&orphan.handle);
                        stopped.push((who, why));
                    }
                }
            }
            if let (None, Some(version), false) = (&serving, &chosen, adopted.is_empty()) {
                self.store.set_serving(&env.name, version).await?;
                report.serving.insert(env.name.clone(), version.clone());
            }
            let message = format!(
                "--adopt-orphans: {} running instance(s) no record named were adopted{}, {} stopped",
                adopted.len(),
                chosen
                    .as_ref()
                    .map(|v| format!(" as release {v}"))
                    .unwrap_or_default(),
                stopped.len()
            );
            tracing::warn!(env = %env.name, "{message}");
            self.store
                .add_environment_event(
                    &env.name,
                    "orphans_adopted",
                    &message,
                    json!({
                        "serving": chosen,
                        "adopted": adopted,
                        "stopped": stopped
                            .iter()
                            .map(|(i, why)| json!({ "instance": i, "why": why }))
                            .collect::<Vec<_>>(),
                    }),
                )
                .await?;
            report.adopted.extend(adopted);
            report.stopped.extend(stopped);
        }
        Ok(report)
    }

    /// The release of which every configured service has a running orphan;
    /// of several, the one whose first instance started last.
    fn complete_release(&self, orphans: &[&FoundInstance]) -> Option<String> {
        let mut versions: Vec<(&str, u64)> = Vec::new();
        for o in orphans {
            match versions.iter_mut().find(|(v, _)| *v == o.version) {
                Some((_, started)) => *started = (*started).min(o.started),
                None => versions.push((&o.version, o.started)),
            }
        }
        versions
            .into_iter()
            .filter(|(v, _)| {
                self.config
                    .services
                    .keys()
                    .all(|svc| orphans.iter().any(|o| o.version == *v && &o.service == svc))
            })
            .max_by_key(|(_, started)| *started)
            .map(|(v, _)| v.to_owned())
    }

    /// Restores one saved release and carries it on, or leaves it for an
    /// operator when its state does not fit.
    async fn restore_release(
        self: &Arc<Self>,
        saved: SavedRelease,
        how: Takeover,
        report: &mut AdoptionReport,
    ) -> Result<(), StoreError> {
        let dep = saved.deployment;
        let Some(env) = self.environments.get(&dep.environment).cloned() else {
            return Ok(());
        };
        let restored = saved.parsed.and_then(|(mut plan, state)| {
            if how == Takeover::Handover {
                plan.rollout.on_restart = cutover_core::RestartPolicy::Resume;
            }
            let rolling = state.phase == Phase::Rolling;
            let gone: Vec<String> = plan
                .rollout
                .services
                .iter()
                .filter(|s| {
                    !env.of_version(plan.version())
                        .iter()
                        .any(|i| i.service == s.name)
                })
                .map(|s| s.name.clone())
                .collect();
            let policy = plan.rollout.on_restart;
            Release::restore(plan, state, executor::now(), &gone)
                .map(|r| (r, rolling.then_some((policy, gone))))
                .map_err(|m| m.0)
        });
        match restored {
            Ok((release, rolling)) => {
                if let Some((policy, gone)) = rolling {
                    tracing::warn!(
                        deployment = dep.id,
                        ?policy,
                        "picking up a rollout the daemon was running when it stopped"
                    );
                    let message = match how {
                        Takeover::Restart => {
                            format!("the daemon restarted; on_daemon_restart = {policy:?}")
                        }
                        Takeover::Handover => {
                            "a new daemon took over (upgrade or reload); the rollout continues"
                                .to_owned()
                        }
                    };
                    let _ = self
                        .store
                        .add_event(
                            dep.id,
                            EventKind::Restarted,
                            &message,
                            json!({ "gone": gone }),
                        )
                        .await;
                }
                let holder = match self.store.lock(&env.name).await? {
                    Some(lock) if dep.state == DeploymentState::Running => lock.holder,
                    _ => dep.requested_by.clone(),
                };
                executor::spawn(
                    Executor::new(self.clone(), env, dep.id, holder, release),
                    false,
                )
                .await;
                report.resumed.push(dep.id);
            }
            Err(reason) => {
                let message = format!(
                    "the saved state of this deployment cannot be restored: {reason}; the serving release \
                     keeps serving; end the deployment with `cutover abort` or `cutover rollback`"
                );
                tracing::error!(deployment = dep.id, "{message}");
                let _ = self
                    .store
                    .add_event(
                        dep.id,
                        EventKind::NeedsOperator,
                        &message,
                        json!({ "reason": reason }),
                    )
                    .await;
                env.releases.set_stuck(Some(Stuck { id: dep.id, reason }));
                report.needs_operator.push(dep.id);
            }
        }
        Ok(())
    }

    async fn recover_environment(
        self: &Arc<Self>,
        env: &Arc<EnvRuntime>,
        wanted: &[String],
        report: &mut AdoptionReport,
    ) -> Result<(), StoreError> {
        let serving = self.store.serving(&env.name).await?;
        let current = serving.as_ref().map(|s| s.current.clone());
        let previous = serving.as_ref().and_then(|s| s.previous.clone());
        let mut saw_docker = false;
        for record in self.store.instances(Some(&env.name)).await? {
            let handle = Handle::from_json(&record.driver, &record.handle);
            saw_docker |= matches!(record.driver.as_str(), "docker" | "swarm");
            let service = self.config.service_in(&env.name, &record.service);
            let wanted_release = Some(&record.version) == current.as_ref()
                || Some(&record.version) == previous.as_ref()
                || wanted.contains(&record.version);
            let wanted_state = matches!(
                record.state,
                InstanceState::Serving | InstanceState::Idle | InstanceState::Ready
            );
            let alive = match &handle {
                Some(handle) => match self.driver.adopt(handle).await {
                    Ok(alive) => alive,
                    Err(e) => {
                        // Cannot tell (Docker is down?): keep the record, so a
                        // later start can still adopt or remove the instance.
                        tracing::warn!(instance = %record.instance_id, "cannot check the instance; keeping its record: {e}");
                        continue;
                    }
                },
                None => false,
            };
            let mut adopt = false;
            if let (Some(handle), Some(service)) = (&handle, service)
                && wanted_release
                && wanted_state
                && alive
            {
                adopt = match (service.kind, handle.addr()) {
                    (ServiceKind::Http, Some(addr)) => {
                        health::probe(addr, &service.health.path, ADOPT_PROBE_TIMEOUT)
                            .await
                            .is_ok()
                    }
                    (ServiceKind::Http, None) => false,
                    (ServiceKind::Worker, _) => true,
                };
            }
            match (adopt, handle, service) {
                (true, Some(handle), Some(service)) => {
                    env.add([LiveInstance {
                        id: record.instance_id.clone(),
                        service: record.service.clone(),
                        version: record.version.clone(),
                        kind: service.kind,
                        handle,
                    }]);
                    env.mark_health(&record.instance_id, true, None);
                    report.adopted.push(record.instance_id.clone());
                }
                (_, handle, service) => {
                    // A stopped container still exists until it is removed.
                    if let Some(handle) = handle
                        && (alive || matches!(handle, Handle::Docker(_)))
                    {
                        let grace = service
                            .map(|s| s.stop_timeout)
                            .unwrap_or(Duration::from_secs(10));
                        if let Err(e) = self.driver.stop(&handle, grace).await {
                            tracing::warn!(instance = %record.instance_id, error = %e, "cannot stop a stray instance");
                        }
                        self.driver.forget(&handle);
                    }
                    self.store.remove_instance(&record.instance_id).await?;
                    report.stopped.push(record.instance_id.clone());
                }
            }
        }
        let uses_docker = self.config.services.values().any(|s| s.docker.is_some());
        if uses_docker || saw_docker {
            self.remove_stray_containers(env, report).await;
        }
        let Some(current) = current else {
            return Ok(());
        };
        let serving_now = env.of_version(&current);
        let complete = self
            .config
            .services
            .keys()
            .all(|svc| serving_now.iter().any(|i| &i.service == svc));
        if complete {
            env.switch_to(&serving_now)
                .map_err(|e| StoreError::Corrupt(e.to_string()))?;
            for inst in &serving_now {
                self.store
                    .set_instance_state(&inst.id, InstanceState::Serving)
                    .await?;
            }
        } else {
            // The serving release lost instances (a clean stop stops them all):
            // start it again, in the background, like a deploy.
            report.restarted.push(env.name.clone());
            let stale = env.take(|i| i.version == current);
            let (daemon, env) = (self.clone(), env.clone());
            tokio::spawn(async move {
                retire::retire_now(
                    &daemon,
                    &env,
                    stale,
                    "serving release incomplete after restart",
                )
                .await;
                if let Err(e) = super::rollback::restart_serving(&daemon, &env, &current).await {
                    tracing::error!(env = %env.name, version = %current, "cannot start the serving release again: {e}");
                }
            });
        }
        Ok(())
    }

    /// Removes the containers labelled with this app and environment that were
    /// not adopted: started by a daemon that died before it recorded them,
    /// forgotten by the store, or left over from a failed stop.
    async fn remove_stray_containers(&self, env: &EnvRuntime, report: &mut AdoptionReport) {
        let adopted: Vec<String> = env.instances().into_iter().map(|i| i.id).collect();
        let grace_of = |service: &str| {
            self.config
                .service_in(&env.name, service)
                .map(|s| s.stop_timeout)
                .unwrap_or(Duration::from_secs(10))
        };
        match self
            .driver
            .remove_strays(&self.config.app.name, &env.name, &adopted, grace_of)
            .await
        {
            Ok(removed) => report.stopped.extend(removed),
            Err(e) => tracing::warn!(env = %env.name, "cannot look for stray containers: {e}"),
        }
    }
}

/// A saved plan and state; releases saved by a daemon before the release
/// machine existed (a bare rollout) are read as a deploy in its rollout.
fn parse_saved(
    plan: serde_json::Value,
    state: serde_json::Value,
    env: &EnvRuntime,
) -> Result<(ReleasePlan, ReleaseState), String> {
    let current = serde_json::from_value::<ReleasePlan>(plan.clone())
        .and_then(|p| serde_json::from_value::<ReleaseState>(state.clone()).map(|s| (p, s)));
    let error = match current {
        Ok(parsed) => return Ok(parsed),
        Err(e) => e,
    };
    let legacy = serde_json::from_value::<Plan>(plan)
        .and_then(|p| serde_json::from_value::<State>(state).map(|s| (p, s)));
    match legacy {
        Ok((rollout, state)) => Ok((
            ReleasePlan {
                kind: ReleaseKind::Deploy,
                rollout,
                backup: false,
                migrate: false,
                rollback_window: super::plan::millis(env.config.rollback_window),
                contract: Vec::new(),
                approval: None,
            },
            ReleaseState {
                phase: Phase::Rolling,
                rollout: Some(state),
                outcome: None,
                superseded: false,
                approvals: None,
            },
        )),
        Err(_) => Err(format!("the saved release is not readable: {error}")),
    }
}
