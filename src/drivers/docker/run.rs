//! Creating, starting, stopping and removing containers.
//!
//! A container gets the instance's labels, its environment (the service's
//! `env`, `PORT` set to the container's port, and the `CUTOVER_*` variables),
//! its volumes and limits, the service's stop signal, json-file logs rotated
//! as `[logs]` says, and its port published
//! on 127.0.0.1 at a port the engine picks (so two instances never race for
//! one). Stopping asks the engine to send the stop signal, wait the grace,
//! then SIGKILL; the container is then removed.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::time::Duration;

use bollard::models::{ContainerCreateBody, HostConfig, HostConfigLogConfig, PortBinding};
use bollard::query_parameters::{
    CreateContainerOptionsBuilder, InspectContainerOptions, RemoveContainerOptionsBuilder,
    StopContainerOptionsBuilder,
};
use tokio::time::Instant;

use super::client::status_of;

/// How much longer than the grace a stop request may take.
const STOP_SLACK: Duration = Duration::from_secs(30);
use super::{ContainerHandle, DockerDriver, DockerError, labels};
use crate::config::DockerConfig;
use crate::drivers::{InstanceSpec, StopOutcome};

impl DockerDriver {
    /// Creates and starts a container for `spec`; returns once it runs (whether
    /// it serves is for the health checks to find out).
    pub async fn start(
        &self,
        spec: &InstanceSpec,
        settings: &DockerConfig,
    ) -> Result<ContainerHandle, DockerError> {
        let docker = self.client().await?;
        let image = settings.image_for(&spec.version);
        let name = container_name(&spec.app, &spec.instance_id);
        let body = create_body(spec, settings, &image);
        let options = CreateContainerOptionsBuilder::default().name(&name).build();
        let created = docker
            .create_container(Some(options), body)
            .await
            .map_err(|e| match status_of(&e) {
                Some(404) => DockerError::ImageMissing {
                    image: image.clone(),
                    service: spec.service.clone(),
                },
                _ => self.api_error(format!("creating container {name} from {image}"), &e),
            })?;
        let id = created.id;
        if let Err(e) = docker.start_container(&id, None).await {
            let err = self.api_error(format!("starting container {name}"), &e);
            self.remove(&id).await;
            return Err(err);
        }
        let addr = match settings.port {
            Some(port) => match self.published(&id, port).await {
                Ok(addr) => Some(addr),
                Err(e) => {
                    self.remove(&id).await;
                    return Err(e);
                }
            },
            None => None,
        };
        self.watch(&id, &spec.instance_id);
        tracing::info!(instance = %spec.instance_id, container = %short(&id), %image, ?addr, "container started");
        Ok(ContainerHandle {
            instance_id: spec.instance_id.clone(),
            container_id: id,
            name,
            image,
            addr,
        })
    }

    /// Where the engine published `port` of container `id` on 127.0.0.1.
    async fn published(&self, id: &str, port: u16) -> Result<SocketAddr, DockerError> {
        let docker = self.client().await?;
        let info = docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
            .map_err(|e| self.api_error(format!("inspecting container {}", short(id)), &e))?;
        let key = format!("{port}/tcp");
        let host_port = info
            .network_settings
            .and_then(|n| n.ports)
            .and_then(|mut ports| ports.remove(&key))
            .flatten()
            .unwrap_or_default()
            .into_iter()
            .filter_map(|b| b.host_port)
            .find_map(|p| p.parse::<u16>().ok());
        match host_port {
            Some(p) => Ok(SocketAddr::from((Ipv4Addr::LOCALHOST, p))),
            None => Err(DockerError::Api {
                what: format!("publishing port {port} of container {}", short(id)),
                reason: "the engine reports no published port (did the container exit at once?)"
                    .into(),
            }),
        }
    }

    /// Stops the container (its stop signal, then SIGKILL after `grace`) and
    /// removes it. A container that is gone or stopped already is fine.
    pub async fn stop(
        &self,
        handle: &ContainerHandle,
        grace: Duration,
    ) -> Result<StopOutcome, DockerError> {
        let docker = self.client().await?;
        let id = &handle.container_id;
        let running = match docker
            .inspect_container(id, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => info.state.and_then(|s| s.running).unwrap_or(false),
            Err(e) if status_of(&e) == Some(404) => return Ok(StopOutcome::NotRunning),
            Err(e) => {
                return Err(self.api_error(format!("inspecting container {}", handle.name), &e));
            }
        };
        let mut outcome = StopOutcome::NotRunning;
        if running {
            // Whole seconds, rounded up: the engine's grace is in seconds.
            let secs = grace
                .as_secs()
                .saturating_add(u64::from(grace.subsec_nanos() > 0));
            let t = i32::try_from(secs).unwrap_or(i32::MAX);
            let started = Instant::now();
            let options = StopContainerOptionsBuilder::default().t(t).build();
            // The engine answers only once the container is down: allow for the grace.
            let patient = docker
                .clone()
                .with_timeout(grace.saturating_add(STOP_SLACK).max(docker.timeout()));
            match patient.stop_container(id, Some(options)).await {
                Ok(()) => {}
                Err(e) if matches!(status_of(&e), Some(304 | 404)) => {}
                Err(e) => {
                    return Err(self.api_error(format!("stopping container {}", handle.name), &e));
                }
            }
            outcome = if started.elapsed() >= grace && grace > Duration::ZERO {
                StopOutcome::Killed
            } else {
                StopOutcome::Exited
            };
        }
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        match docker.remove_container(id, Some(options)).await {
            Ok(()) => {}
            Err(e) if status_of(&e) == Some(404) => {}
            // Already being removed by the engine.
            Err(e) if status_of(&e) == Some(409) => {}
            Err(e) => return Err(self.api_error(format!("removing container {}", handle.name), &e)),
        }
        tracing::info!(instance = %handle.instance_id, container = %handle.short_id(), ?outcome, "container stopped and removed");
        Ok(outcome)
    }

    /// Removes a container by id, forcibly; errors are only logged.
    pub async fn remove(&self, id: &str) {
        let Ok(docker) = self.client().await else {
            return;
        };
        let options = RemoveContainerOptionsBuilder::default().force(true).build();
        if let Err(e) = docker.remove_container(id, Some(options)).await
            && status_of(&e) != Some(404)
        {
            tracing::warn!(container = %short(id), "cannot remove container: {}", super::client::describe(&e));
        }
    }
}

/// The request body that creates the container of `spec`.
fn create_body(spec: &InstanceSpec, settings: &DockerConfig, image: &str) -> ContainerCreateBody {
    let port_text = settings.port.map(|p| p.to_string()).unwrap_or_default();
    let fill = |v: &str| {
        v.replace("{port}", &port_text)
            .replace("{version}", &spec.version)
    };
    let mut env: Vec<String> = spec
        .env
        .iter()
        .map(|(k, v)| format!("{k}={}", fill(v)))
        .collect();
    if let Some(port) = settings.port {
        env.push(format!("PORT={port}"));
    }
    env.extend([
        format!("CUTOVER_VERSION={}", spec.version),
        format!("CUTOVER_INSTANCE={}", spec.instance_id),
        format!("CUTOVER_SERVICE={}", spec.service),
        format!("CUTOVER_ENVIRONMENT={}", spec.environment),
        format!("CUTOVER_APP={}", spec.app),
    ]);
    let container_labels = HashMap::from([
        (labels::APP.to_owned(), spec.app.clone()),
        (labels::ENVIRONMENT.to_owned(), spec.environment.clone()),
        (labels::SERVICE.to_owned(), spec.service.clone()),
        (labels::RELEASE.to_owned(), spec.version.clone()),
        (labels::INSTANCE.to_owned(), spec.instance_id.clone()),
    ]);
    let (exposed_ports, port_bindings) = match settings.port {
        Some(port) => {
            let key = format!("{port}/tcp");
            let binding = PortBinding {
                host_ip: Some("127.0.0.1".to_owned()),
                // Empty: the engine picks a free port.
                host_port: Some(String::new()),
            };
            (
                Some(vec![key.clone()]),
                Some(HashMap::from([(key, Some(vec![binding]))])),
            )
        }
        None => (None, None),
    };
    ContainerCreateBody {
        image: Some(image.to_owned()),
        env: Some(env),
        labels: Some(container_labels),
        exposed_ports,
        stop_signal: Some(settings.stop_signal.clone()),
        host_config: Some(HostConfig {
            port_bindings,
            binds: (!settings.volumes.is_empty()).then(|| settings.volumes.clone()),
            memory: settings.memory_bytes,
            nano_cpus: settings.nano_cpus,
            log_config: Some(log_config(spec.logs)),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// The container's log settings from `[logs]`: the json-file driver (what
/// `cutover logs` reads through the engine), rotated by the engine at
/// `max_size` bytes, keeping `max_files` rotated files beside the live one
/// (Docker's `max-file` counts the live one too). The size is written in
/// bytes: Docker reads `k`/`m` as powers of 1000, the config as 1024.
pub(in crate::drivers) fn log_config(logs: crate::config::LogsConfig) -> HostConfigLogConfig {
    HostConfigLogConfig {
        typ: Some("json-file".to_owned()),
        config: Some(HashMap::from([
            ("max-size".to_owned(), logs.max_size.to_string()),
            (
                "max-file".to_owned(),
                logs.max_files.saturating_add(1).to_string(),
            ),
        ])),
    }
}

/// `APP-INSTANCE`, with anything Docker does not allow in a name made `-`.
pub(super) fn container_name(app: &str, instance_id: &str) -> String {
    format!("{app}-{instance_id}")
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || "_.-".contains(c) {
                c
            } else {
                '-'
            }
        })
        .collect()
}

/// The first 12 characters of a container id.
pub(super) fn short(id: &str) -> &str {
    id.get(..12).unwrap_or(id)
}
