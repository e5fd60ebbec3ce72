//! Starting and stopping instances as Swarm tasks.
//!
//! Start: under the service's lock, the release's Swarm service is created
//! with `replica + 1` tasks, or scaled up to that many (never down); then the
//! slot's task is awaited until it runs, and its node's address and
//! published port are the instance's address. A task of an instance that
//! was stopped while its service stayed is never handed out again: its
//! container is stopped, and Swarm starts a fresh task in the slot.
//!
//! Stop: the instance's slot leaves the live set; the Swarm service is
//! removed with its last live slot (Swarm stops every task with the
//! service's stop signal and grace) and this waits until its containers
//! on this node are gone. A task of a service that stays keeps running,
//! out of the proxy's table, until the service is removed.

use std::time::Duration;

use bollard::models::Service;
use bollard::query_parameters::{InspectServiceOptions, UpdateServiceOptionsBuilder};
use tokio::time::Instant;

use super::spec::{self, IMAGE_LABEL};
use super::{SwarmDriver, SwarmError, TaskHandle};
use crate::config::DockerConfig;
use crate::drivers::docker::client::{describe, status_of};
use crate::drivers::docker::{DockerError, labels};
use crate::drivers::{InstanceSpec, StopOutcome};

/// How long a slot's task may take to reach `running` (scheduling, creating
/// the container, and Swarm's own health check if any).
pub(super) const START_TIMEOUT: Duration = Duration::from_secs(120);
/// How much longer than the grace removing a service may take.
const STOP_SLACK: Duration = Duration::from_secs(30);
/// How often the engine is asked while waiting.
pub(super) const POLL: Duration = Duration::from_millis(250);

impl SwarmDriver {
    /// Starts instance `spec.replica` of the release as task slot
    /// `replica + 1` of its Swarm service; returns once that task runs.
    pub async fn start(
        &self,
        spec: &InstanceSpec,
        settings: &DockerConfig,
    ) -> Result<TaskHandle, SwarmError> {
        let name = spec::name_for(spec);
        let slot = u64::from(spec.replica).saturating_add(1);
        let image = settings.image_for(&spec.version);
        let service_id = {
            let lock = self.service_lock(&name);
            let _held = lock.lock().await;
            let image_ref = self.image_ref(&image, &spec.service).await?;
            self.ensure(spec, settings, &name, &image, &image_ref, slot)
                .await?
        };
        let deadline = crate::drivers::deadline(Instant::now(), START_TIMEOUT);
        let task = match self.wait_for_slot(&name, &service_id, slot, deadline).await {
            Ok(task) => task,
            Err(e) => {
                self.remove_if_unused(&name, &service_id).await;
                return Err(e);
            }
        };
        let addr = match settings.port {
            Some(port) => {
                Some(
                    self.task_addr(&task, port)
                        .await
                        .map_err(|reason| SwarmError::Task {
                            name: name.clone(),
                            slot,
                            reason,
                        })?,
                )
            }
            None => None,
        };
        let handle = TaskHandle {
            instance_id: spec.instance_id.clone(),
            service_name: name.clone(),
            service_id,
            slot,
            task_id: task.id.clone().unwrap_or_default(),
            container_id: task
                .status
                .as_ref()
                .and_then(|s| s.container_status.as_ref())
                .and_then(|c| c.container_id.clone()),
            image,
            addr,
            in_place: (spec.kind == crate::config::ServiceKind::Worker)
                .then(|| spec.version.clone()),
        };
        self.state().live.entry(name).or_default().insert(slot);
        self.watch(&handle);
        tracing::info!(instance = %spec.instance_id, task = %handle.describe(), ?addr, "swarm task running");
        Ok(handle)
    }

    /// What the tasks run: a reference with a digest as written (a node that
    /// has it does not pull), else the image's id on this engine (a tag
    /// would make every node ask a registry first).
    pub(super) async fn image_ref(&self, image: &str, service: &str) -> Result<String, SwarmError> {
        if image.contains('@') {
            return Ok(image.to_owned());
        }
        match self.docker.image_id(image).await {
            Ok(id) => Ok(id),
            Err(DockerError::Api { reason, .. }) if reason.contains("No such image") => {
                Err(DockerError::ImageMissing {
                    image: image.to_owned(),
                    service: service.to_owned(),
                }
                .into())
            }
            Err(e) => Err(e.into()),
        }
    }

    /// Creates the release's Swarm service with `slot` tasks, or scales the
    /// existing one up to `slot`; returns its id.
    async fn ensure(
        &self,
        spec: &InstanceSpec,
        settings: &DockerConfig,
        name: &str,
        image: &str,
        image_ref: &str,
        slot: u64,
    ) -> Result<String, SwarmError> {
        let docker = self.docker.client().await?;
        let found = match docker
            .inspect_service(name, None::<InspectServiceOptions>)
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
        let Some(found) = found else {
            let body = spec::service_spec(spec, settings, image, image_ref, slot);
            let created = docker
                .create_service(body, None)
                .await
                .map_err(|e| self.create_error(name, &e))?;
            let id = created.id.unwrap_or_else(|| name.to_owned());
            tracing::info!(service = %name, %id, %image, "swarm service created");
            return Ok(id);
        };
        self.check_ours(name, &found, spec)?;
        let id = found.id.clone().unwrap_or_else(|| name.to_owned());
        let replicas = replicas_of(&found);
        if replicas >= slot {
            return Ok(id);
        }
        let mut body = found.spec.clone().unwrap_or_default();
        if let Some(mode) = body.mode.as_mut().and_then(|m| m.replicated.as_mut()) {
            mode.replicas = Some(i64::try_from(slot).unwrap_or(i64::MAX));
        }
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
                self.docker
                    .api_error(format!("scaling Swarm service {name} to {slot}"), &e)
            })?;
        tracing::info!(service = %name, from = replicas, to = slot, "swarm service scaled");
        Ok(id)
    }

    pub(super) fn create_error(&self, name: &str, e: &bollard::errors::Error) -> SwarmError {
        let text = describe(e);
        if text.contains("not a swarm manager") {
            if text.contains("Worker nodes") {
                return SwarmError::NotManager {
                    node: "<this node>".into(),
                };
            }
            return SwarmError::NotActive {
                state: "inactive".into(),
            };
        }
        self.docker
            .api_error(format!("creating Swarm service {name}"), e)
            .into()
    }

    /// Refuses a service of that name whose labels name another release.
    fn check_ours(
        &self,
        name: &str,
        found: &Service,
        spec: &InstanceSpec,
    ) -> Result<(), SwarmError> {
        let labels = found
            .spec
            .as_ref()
            .and_then(|s| s.labels.clone())
            .unwrap_or_default();
        let get = |k: &str| labels.get(k).map(String::as_str).unwrap_or("");
        let ours = get(labels::APP) == spec.app
            && get(labels::ENVIRONMENT) == spec.environment
            && get(labels::SERVICE) == spec.service
            && get(labels::RELEASE) == spec.version;
        if ours {
            return Ok(());
        }
        Err(SwarmError::NotOurs {
            name: name.to_owned(),
            found: format!(
                "app {:?}, environment {:?}, service {:?}, release {:?}",
                get(labels::APP),
                get(labels::ENVIRONMENT),
                get(labels::SERVICE),
                get(labels::RELEASE)
            ),
        })
    }

    /// Stops the instance. Its service is removed with its last live slot
    /// (Swarm gives each task the stop signal and the service's grace); a
    /// task whose service stays is only marked stopped.
    pub async fn stop(
        &self,
        handle: &TaskHandle,
        grace: Duration,
    ) -> Result<StopOutcome, SwarmError> {
        let lock = self.service_lock(&handle.service_name);
        let _held = lock.lock().await;
        if let Some(release) = &handle.in_place
            && let Some(outcome) = self.stop_in_place(handle, release).await?
        {
            return Ok(outcome);
        }
        let last = {
            let mut state = self.state();
            let live = state.live.entry(handle.service_name.clone()).or_default();
            live.remove(&handle.slot);
            let last = live.is_empty();
            if last {
                state.live.remove(&handle.service_name);
            } else {
                state.stopped.insert(handle.task_id.clone());
            }
            last
        };
        if !last {
            tracing::info!(instance = %handle.instance_id, task = %handle.describe(), "swarm task out of use; its service stays for the other instances");
            return Ok(StopOutcome::Exited);
        }
        self.remove_service(&handle.service_name, &handle.service_id, grace)
            .await
    }

    /// Removes Swarm service `id` and waits (up to `grace` and some) until
    /// its containers on this node are gone.
    pub(super) async fn remove_service(
        &self,
        name: &str,
        id: &str,
        grace: Duration,
    ) -> Result<StopOutcome, SwarmError> {
        let docker = self.docker.client().await?;
        let started = Instant::now();
        match docker.delete_service(id).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => return Ok(StopOutcome::NotRunning),
            Err(e) => {
                return Err(self
                    .docker
                    .api_error(format!("removing Swarm service {name}"), &e)
                    .into());
            }
        }
        let deadline = crate::drivers::deadline(started, grace.saturating_add(STOP_SLACK));
        while self.containers_left(id).await? > 0 {
            if Instant::now() >= deadline {
                tracing::warn!(service = %name, "Swarm service removed, but its containers still run after the grace");
                break;
            }
            tokio::time::sleep(POLL).await;
        }
        let outcome = if started.elapsed() >= grace && grace > Duration::ZERO {
            StopOutcome::Killed
        } else {
            StopOutcome::Exited
        };
        tracing::info!(service = %name, ?outcome, "swarm service removed");
        Ok(outcome)
    }

    /// Removes the service after a failed start when no instance uses it.
    async fn remove_if_unused(&self, name: &str, id: &str) {
        let lock = self.service_lock(name);
        let _held = lock.lock().await;
        let unused = self.state().live.get(name).is_none_or(|l| l.is_empty());
        if unused && let Err(e) = self.remove_service(name, id, Duration::from_secs(10)).await {
            tracing::warn!(service = %name, "cannot remove a Swarm service after a failed start: {e}");
        }
    }

    /// How many containers of Swarm service `id` still run on this node.
    async fn containers_left(&self, id: &str) -> Result<usize, SwarmError> {
        let docker = self.docker.client().await?;
        let filters = std::collections::HashMap::from([(
            "label".to_owned(),
            vec![format!("com.docker.swarm.service.id={id}")],
        )]);
        let options = bollard::query_parameters::ListContainersOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.docker.api_error("listing containers", &e))?;
        Ok(list.len())
    }
}

/// The replicas a replicated service asks for.
pub(super) fn replicas_of(service: &Service) -> u64 {
    service
        .spec
        .as_ref()
        .and_then(|s| s.mode.as_ref())
        .and_then(|m| m.replicated.as_ref())
        .and_then(|r| r.replicas)
        .and_then(|r| u64::try_from(r).ok())
        .unwrap_or(0)
}

/// The image a Swarm service was made from, as written.
pub(super) fn image_of(service: &Service) -> String {
    service
        .spec
        .as_ref()
        .and_then(|s| s.labels.as_ref())
        .and_then(|l| l.get(IMAGE_LABEL).cloned())
        .unwrap_or_default()
}
