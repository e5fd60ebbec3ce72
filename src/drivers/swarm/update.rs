//! A worker's release handed over in place: all releases of a worker run in
//! one long-lived Swarm service per environment (`APP-ENV-SERVICE`, labelled
//! `cutover.in-place`), and a deploy changes its image, env and labels with
//! Swarm's own rolling update (`update_config` from `[service.NAME.swarm]`:
//! parallelism, delay, monitor, failure action; `start-first`, so an old
//! task stops only once its replacement runs).
//!
//! [`SwarmDriver::hand_over`] creates the service on the first deploy, or
//! updates it and follows its `UpdateStatus` until Swarm says `completed`
//! (the handles of the new release's tasks are returned) or
//! `rollback_started` → `rollback_completed`, `paused` or `rollback_paused`
//! ([`SwarmError::UpdateFailed`], with Swarm's message and why the task
//! failed): Swarm has then put the previous spec back, and the previous
//! release's instances keep running in it.
//!
//! Stopping an instance of a release the service no longer runs
//! ([`SwarmDriver::stop_in_place`]) leaves the service alone: the old
//! release's retire must never remove what the new release now runs in.

use std::collections::BTreeSet;

use bollard::models::{Service, ServiceUpdateStatusStateEnum as UpdateState, Task};
use bollard::query_parameters::{InspectServiceOptions, UpdateServiceOptionsBuilder};
use tokio::time::Instant;

use super::run::{POLL, START_TIMEOUT};
use super::spec;
use super::tasks::{describe_task, state_of};
use super::{SwarmDriver, SwarmError, TaskHandle};
use crate::config::DockerConfig;
use crate::drivers::docker::client::status_of;
use crate::drivers::docker::labels;
use crate::drivers::{InstanceSpec, StopOutcome};

impl SwarmDriver {
    /// Runs `spec.version` of a worker with one task per id in `ids` (task
    /// slot `n + 1` is instance `ids[n]`), in its environment's long-lived
    /// Swarm service: created on the first deploy, else rolled to the new
    /// release by Swarm's rolling update and watched until it completes.
    /// Fails with Swarm's message when Swarm rolls the update back (the
    /// previous release then runs again) or pauses it.
    pub async fn hand_over(
        &self,
        spec: &InstanceSpec,
        settings: &DockerConfig,
        ids: &[String],
    ) -> Result<Vec<TaskHandle>, SwarmError> {
        let name = spec::name_for(spec);
        let replicas = u64::try_from(ids.len()).unwrap_or(u64::MAX);
        let image = settings.image_for(&spec.version);
        let swarm = settings.swarm.clone().unwrap_or_default();
        let per_task = START_TIMEOUT
            .saturating_add(swarm.update_monitor)
            .saturating_add(swarm.update_delay);
        let deadline = crate::drivers::deadline(
            Instant::now(),
            per_task.saturating_mul(u32::try_from(ids.len()).unwrap_or(u32::MAX).max(1)),
        );
        let lock = self.service_lock(&name);
        let _held = lock.lock().await;
        let image_ref = self.image_ref(&image, &spec.service).await?;
        let body = spec::service_spec(spec, settings, &image, &image_ref, replicas);
        let docker = self.docker.client().await?;
        let found = match docker
            .inspect_service(&name, None::<InspectServiceOptions>)
            .await
        {
            Ok(found) => Some(found),
            Err(e) if status_of(&e) == Some(404) => None,
            Err(e) => {
                return Err(self
                    .docker
                    .api_error(format!("inspecting Swarm service {name}"), &e)
                    .into());
            }
        };
        let id = match found {
            None => {
                let created = docker
                    .create_service(body, None)
                    .await
                    .map_err(|e| self.create_error(&name, &e))?;
                let id = created.id.unwrap_or_else(|| name.clone());
                tracing::info!(service = %name, %id, %image, "swarm worker service created");
                id
            }
            Some(found) => {
                check_worker(&name, &found, spec)?;
                let id = found.id.clone().unwrap_or_else(|| name.clone());
                let same = label(&found, labels::RELEASE) == spec.version
                    && super::run::replicas_of(&found) == replicas
                    && super::run::image_of(&found) == image;
                if !same {
                    let before = started_at(&found);
                    let version = found
                        .version
                        .as_ref()
                        .and_then(|v| v.index)
                        .and_then(|i| i32::try_from(i).ok())
                        .unwrap_or_default();
                    let options = UpdateServiceOptionsBuilder::default()
                        .version(version)
                        .build();
                    docker
                        .update_service(&id, body, options, None)
                        .await
                        .map_err(|e| {
                            self.docker.api_error(
                                format!("updating Swarm service {name} to {}", spec.version),
                                &e,
                            )
                        })?;
                    tracing::info!(service = %name, from = %label(&found, labels::RELEASE), to = %spec.version, "swarm rolling update started");
                    self.wait_update(&name, &id, &spec.version, &image_ref, &before, deadline)
                        .await?;
                }
                id
            }
        };
        let mut handles = Vec::new();
        for (n, instance_id) in ids.iter().enumerate() {
            let slot = u64::try_from(n).unwrap_or(u64::MAX).saturating_add(1);
            let task = self.wait_for_slot(&name, &id, slot, deadline).await?;
            handles.push(TaskHandle {
                instance_id: instance_id.clone(),
                service_name: name.clone(),
                service_id: id.clone(),
                slot,
                task_id: task.id.clone().unwrap_or_default(),
                container_id: task
                    .status
                    .as_ref()
                    .and_then(|s| s.container_status.as_ref())
                    .and_then(|c| c.container_id.clone()),
                image: image.clone(),
                addr: None,
                in_place: Some(spec.version.clone()),
            });
        }
        self.state()
            .live
            .insert(name.clone(), (1..=replicas).collect::<BTreeSet<u64>>());
        for handle in &handles {
            self.watch(handle);
        }
        tracing::info!(service = %name, release = %spec.version, tasks = handles.len(), "swarm worker service runs the release");
        Ok(handles)
    }

    /// Follows the service's `UpdateStatus` after an update (one whose
    /// `StartedAt` differs from `before`) until Swarm completes it, or rolls
    /// it back (then until the rollback ends), or pauses it.
    async fn wait_update(
        &self,
        name: &str,
        id: &str,
        version: &str,
        image_ref: &str,
        before: &str,
        deadline: Instant,
    ) -> Result<(), SwarmError> {
        let docker = self.docker.client().await?;
        let failed = |state: String, message: String| SwarmError::UpdateFailed {
            name: name.to_owned(),
            version: version.to_owned(),
            state,
            message,
        };
        let mut rolling_back: Option<String> = None;
        loop {
            let service = docker
                .inspect_service(id, None::<InspectServiceOptions>)
                .await
                .map_err(|e| {
                    self.docker
                        .api_error(format!("inspecting Swarm service {name}"), &e)
                })?;
            let status = service.update_status.clone().unwrap_or_default();
            let fresh = started_at(&service) != before;
            let message = status.message.clone().unwrap_or_default();
            match status.state.filter(|_| fresh) {
                Some(UpdateState::COMPLETED) => {
                    tracing::info!(service = %name, %version, "swarm rolling update completed");
                    return Ok(());
                }
                Some(UpdateState::ROLLBACK_STARTED) => {
                    if rolling_back.is_none() {
                        tracing::warn!(service = %name, %version, %message, "swarm rolls the update back");
                    }
                    rolling_back = Some(message);
                }
                Some(
                    state @ (UpdateState::ROLLBACK_COMPLETED
                    | UpdateState::ROLLBACK_PAUSED
                    | UpdateState::PAUSED),
                ) => {
                    let first = rolling_back.unwrap_or_default();
                    let why = self.why_failed(id, image_ref).await;
                    return Err(failed(state.to_string(), join(&[&first, &message, &why])));
                }
                _ => {}
            }
            if Instant::now() >= deadline {
                let why = self.why_failed(id, image_ref).await;
                let state = status
                    .state
                    .map_or_else(|| "no status".to_owned(), |s| s.to_string());
                return Err(failed(
                    state,
                    join(&[
                        "the update did not end in time (see `docker service ps --no-trunc` and `docker service inspect` of the service)",
                        &why,
                    ]),
                ));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Why the last task of the new spec ended, when one did.
    async fn why_failed(&self, id: &str, image_ref: &str) -> String {
        let Ok(tasks) = self.tasks(id).await else {
            return String::new();
        };
        let mut ended: Vec<&Task> = tasks
            .iter()
            .filter(|t| {
                t.spec
                    .as_ref()
                    .and_then(|s| s.container_spec.as_ref())
                    .and_then(|c| c.image.as_deref())
                    == Some(image_ref)
                    && !matches!(state_of(t), Some(bollard::models::TaskState::RUNNING))
            })
            .collect();
        ended.sort_by_key(|t| t.updated_at.clone().map(|d| format!("{d:?}")));
        // The last one that failed (a task Swarm shut down for the
        // rollback says nothing about why).
        let failed = ended.iter().rev().find(|t| {
            matches!(
                state_of(t),
                Some(bollard::models::TaskState::FAILED | bollard::models::TaskState::REJECTED)
            ) || t
                .status
                .as_ref()
                .is_some_and(|s| s.err.as_deref().is_some_and(|e| !e.is_empty()))
        });
        failed
            .map(|t| format!("the new task ended: {}", describe_task(t)))
            .unwrap_or_default()
    }

    /// Stopping an instance of a worker's long-lived service. `Some` when
    /// the service is left as it is: it now runs another release (this
    /// release was handed over), it is gone, or the instance's task already
    /// ended (Swarm restarts the slot; a replacement instance takes it), or
    /// the instance is not one of the service's live ones (a stray).
    /// `None`: stop it as any task (the service is removed with the last).
    pub(super) async fn stop_in_place(
        &self,
        handle: &TaskHandle,
        release: &str,
    ) -> Result<Option<StopOutcome>, SwarmError> {
        let docker = self.docker.client().await?;
        let found = match docker
            .inspect_service(&handle.service_id, None::<InspectServiceOptions>)
            .await
        {
            Ok(found) => found,
            Err(e) if status_of(&e) == Some(404) => return Ok(Some(StopOutcome::NotRunning)),
            Err(e) => {
                return Err(self
                    .docker
                    .api_error(
                        format!("inspecting Swarm service {}", handle.service_name),
                        &e,
                    )
                    .into());
            }
        };
        let runs = label(&found, labels::RELEASE);
        if runs != release {
            tracing::info!(instance = %handle.instance_id, task = %handle.describe(), %runs, "release handed over in place: its Swarm service stays for {runs}");
            return Ok(Some(StopOutcome::Exited));
        }
        if self.exit_status(handle).is_some() {
            self.state().stopped.insert(handle.task_id.clone());
            return Ok(Some(StopOutcome::NotRunning));
        }
        // An instance this daemon neither started nor adopted (a stray after
        // a restart) never takes the service with it.
        let live = self
            .state()
            .live
            .get(&handle.service_name)
            .is_some_and(|slots| slots.contains(&handle.slot));
        if !live {
            self.state().stopped.insert(handle.task_id.clone());
            tracing::info!(instance = %handle.instance_id, task = %handle.describe(), "not a live instance of the worker's Swarm service: the service stays");
            return Ok(Some(StopOutcome::Exited));
        }
        Ok(None)
    }
}

/// A label of the service, or `""`.
fn label(service: &Service, key: &str) -> String {
    service
        .spec
        .as_ref()
        .and_then(|s| s.labels.as_ref())
        .and_then(|l| l.get(key).cloned())
        .unwrap_or_default()
}

/// When the service's last update started, as text (`""` for none).
fn started_at(service: &Service) -> String {
    service
        .update_status
        .as_ref()
        .and_then(|s| s.started_at.as_ref())
        .map(|d| format!("{d:?}"))
        .unwrap_or_default()
}

/// The non-empty parts, joined with `; `.
fn join(parts: &[&str]) -> String {
    parts
        .iter()
        .filter(|p| !p.is_empty())
        .copied()
        .collect::<Vec<_>>()
        .join("; ")
}

/// Refuses a service of the worker's name that is not this worker's
/// long-lived service (its labels name another app, environment or
/// service, or it is not marked in place).
fn check_worker(name: &str, found: &Service, spec: &InstanceSpec) -> Result<(), SwarmError> {
    let get = |k: &str| label(found, k);
    let ours = get(labels::APP) == spec.app
        && get(labels::ENVIRONMENT) == spec.environment
        && get(labels::SERVICE) == spec.service
        && get(spec::IN_PLACE_LABEL) == "true";
    if ours {
        return Ok(());
    }
    Err(SwarmError::NotOurs {
        name: name.to_owned(),
        found: format!(
            "app {:?}, environment {:?}, service {:?}, in place {:?}",
            get(labels::APP),
            get(labels::ENVIRONMENT),
            get(labels::SERVICE),
            get(spec::IN_PLACE_LABEL)
        ),
    })
}
