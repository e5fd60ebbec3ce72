//! Start-up after a restart or a crash: re-adopt the instances that still run
//! and pass their health check, rebuild each proxy table from them, stop the
//! ones that cannot be adopted, remove stray containers (labelled with the
//! app and environment but not adopted), close deployments a crash
//! interrupted, and start the serving release again where none of its
//! instances survived. Instances of both drivers go through the same steps.

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;

use cutover_core::{Plan, Rollout, State};

use super::environment::{EnvRuntime, LiveInstance};
use super::runner::{self, Runner};
use super::{Daemon, retire};
use crate::config::ServiceKind;
use crate::drivers::Handle;
use crate::drivers::health;
use crate::store::{DeploymentState, InstanceState, StoreError};

/// Timeout of the one probe that decides whether an instance is adopted.
const ADOPT_PROBE_TIMEOUT: Duration = Duration::from_secs(2);

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
    /// Rollouts picked up again (resumed or rolled back per policy).
    pub resumed: Vec<i64>,
}

impl Daemon {
    /// Brings the world back in line with the store; see the module doc.
    pub async fn recover(self: &Arc<Self>) -> Result<AdoptionReport, StoreError> {
        let mut report = AdoptionReport::default();
        let mut resumable = Vec::new();
        for dep in self.store.running_deployments().await? {
            let saved = self.store.rollout(dep.id).await?;
            let parsed = saved.and_then(|(plan, state)| {
                let plan: Plan = serde_json::from_value(plan).ok()?;
                let state: State = serde_json::from_value(state).ok()?;
                Some((plan, state))
            });
            if let Some((plan, state)) = parsed
                && self.environments.contains_key(&dep.environment)
            {
                resumable.push((dep, plan, state));
                continue;
            }
            let reason = "the daemon stopped during this deployment; the serving release was kept";
            self.store
                .add_event(dep.id, "interrupted", reason, json!({}))
                .await?;
            self.store
                .finish_deployment(dep.id, DeploymentState::Interrupted, Some(reason))
                .await?;
            report.interrupted.push(dep.id);
        }
        for env in self.environments.values() {
            let resuming: Vec<String> = resumable
                .iter()
                .filter(|(d, _, _)| d.environment == env.name)
                .map(|(d, _, _)| d.version.clone())
                .collect();
            // A deploy or rollback lock belongs to the daemon that died, unless
            // its rollout is picked up again below.
            if let Some(lock) = self.store.lock(&env.name).await?
                && resuming.is_empty()
                && (lock.purpose.starts_with("deploy ") || lock.purpose.starts_with("rollback "))
            {
                self.store.force_unlock(&env.name).await?;
                tracing::warn!(env = %env.name, holder = %lock.holder, "released a deployment lock left by a stopped daemon");
            }
            self.recover_environment(env, &resuming, &mut report)
                .await?;
        }
        for (dep, plan, state) in resumable {
            let Some(env) = self.environments.get(&dep.environment).cloned() else {
                continue;
            };
            let gone: Vec<String> = plan
                .services
                .iter()
                .filter(|s| {
                    !env.of_version(&plan.version)
                        .iter()
                        .any(|i| i.service == s.name)
                })
                .map(|s| s.name.clone())
                .collect();
            let policy = plan.on_restart;
            tracing::warn!(
                deployment = dep.id,
                ?policy,
                "picking up a rollout the daemon was running when it stopped"
            );
            let _ = self
                .store
                .add_event(
                    dep.id,
                    "restarted",
                    &format!("the daemon restarted; on_daemon_restart = {policy:?}"),
                    json!({ "gone": gone }),
                )
                .await;
            let rollout = Rollout::restore(plan, state, runner::now(), policy, &gone);
            let lock_holder = self
                .store
                .lock(&env.name)
                .await?
                .map(|l| l.holder)
                .unwrap_or_else(|| dep.requested_by.clone());
            let runner = Runner::new(
                self.clone(),
                env,
                dep.id,
                lock_holder,
                rollout,
                dep.previous_version.clone(),
            );
            tokio::spawn(runner.run(false));
            report.resumed.push(dep.id);
        }
        Ok(report)
    }

    async fn recover_environment(
        self: &Arc<Self>,
        env: &Arc<EnvRuntime>,
        resuming: &[String],
        report: &mut AdoptionReport,
    ) -> Result<(), StoreError> {
        let serving = self.store.serving(&env.name).await?;
        let current = serving.as_ref().map(|s| s.current.clone());
        let previous = serving.as_ref().and_then(|s| s.previous.clone());
        let mut saw_docker = false;
        for record in self.store.instances(Some(&env.name)).await? {
            let handle = Handle::from_json(&record.driver, &record.handle);
            saw_docker |= record.driver == "docker";
            let service = self.config.services.get(&record.service);
            let wanted_release = Some(&record.version) == current.as_ref()
                || Some(&record.version) == previous.as_ref()
                || resuming.contains(&record.version);
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
            if let Some(job) = super::schema::pending_after_restart(self, &env.name, &current).await
            {
                if env.of_version_other_than(&current).is_empty() {
                    let daemon = self.clone();
                    tokio::spawn(async move { super::schema::contract(&daemon, job).await });
                } else {
                    *env.pending_contract
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(job);
                }
            }
            if let Some(previous) = previous
                && !env.of_version(&previous).is_empty()
            {
                let since = serving.as_ref().map(|s| s.since);
                let left = since
                    .and_then(|since| {
                        let elapsed = jiff::Timestamp::now().duration_since(since);
                        let elapsed = Duration::try_from(elapsed).unwrap_or_default();
                        env.config.rollback_window.checked_sub(elapsed)
                    })
                    .unwrap_or_default();
                retire::schedule(self.clone(), env.clone(), previous, left);
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
                if let Err(e) = super::deploy::restart_serving(&daemon, &env, &current).await {
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
                .services
                .get(service)
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
