//! Finding containers again after a daemon restart: whether a persisted
//! handle still names a running container of ours ([`DockerDriver::adopt`]),
//! every container labelled with an app and environment
//! ([`DockerDriver::labelled`]), and the removal of those that were not
//! adopted ([`DockerDriver::remove_strays`]).

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{InspectContainerOptions, ListContainersOptionsBuilder};

use super::client::status_of;
use super::{ContainerHandle, DockerDriver, DockerError, labels};

/// A container carrying cutover's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledContainer {
    /// Full id.
    pub id: String,
    /// Name, without the leading `/`.
    pub name: String,
    /// `cutover.instance`.
    pub instance_id: String,
    /// `cutover.service`.
    pub service: String,
    /// `cutover.release`.
    pub release: String,
    /// Whether it is running.
    pub running: bool,
    /// The image it was created from, as the engine names it.
    pub image: String,
    /// Where its port is published on 127.0.0.1, if it is.
    pub addr: Option<std::net::SocketAddr>,
    /// When it was created, in seconds since the epoch (0 when unknown).
    pub created: i64,
}

impl DockerDriver {
    /// After a daemon restart: whether the container of `handle` still runs
    /// and is the one that was started for that instance (by its label). An
    /// adopted container is watched from now on.
    pub async fn adopt(&self, handle: &ContainerHandle) -> Result<bool, DockerError> {
        let docker = self.client().await?;
        let info = match docker
            .inspect_container(&handle.container_id, None::<InspectContainerOptions>)
            .await
        {
            Ok(info) => info,
            Err(e) if status_of(&e) == Some(404) => return Ok(false),
            Err(e) => {
                return Err(self.api_error(format!("inspecting container {}", handle.name), &e));
            }
        };
        let running = info.state.and_then(|s| s.running).unwrap_or(false);
        let ours = info
            .config
            .and_then(|c| c.labels)
            .and_then(|l| l.get(labels::INSTANCE).cloned())
            .is_some_and(|id| id == handle.instance_id);
        if running && ours {
            self.watch(&handle.container_id, &handle.instance_id);
        }
        Ok(running && ours)
    }

    /// Stops and removes every container labelled with `app` and
    /// `environment` whose instance is not in `keep`: started by a daemon that
    /// died before it recorded them, forgotten by the store, or left over from
    /// a failed stop. Each is given `grace_of(service)` after its stop signal.
    /// Returns the names of the containers removed; one that cannot be
    /// removed is logged and skipped. An error only when the containers
    /// cannot be listed.
    pub async fn remove_strays(
        &self,
        app: &str,
        environment: &str,
        keep: &[String],
        grace_of: impl Fn(&str) -> Duration,
    ) -> Result<Vec<String>, DockerError> {
        let found = self.labelled(app, environment).await?;
        let mut removed = Vec::new();
        for stray in found.into_iter().filter(|c| !keep.contains(&c.instance_id)) {
            let handle = ContainerHandle {
                instance_id: stray.instance_id.clone(),
                container_id: stray.id.clone(),
                name: stray.name.clone(),
                image: String::new(),
                addr: None,
            };
            tracing::warn!(env = %environment, container = %stray.name, release = %stray.release, running = stray.running, "removing a stray container");
            if let Err(e) = self.stop(&handle, grace_of(&stray.service)).await {
                tracing::warn!(container = %stray.name, "cannot remove a stray container: {e}");
                continue;
            }
            removed.push(stray.name);
        }
        Ok(removed)
    }

    /// Every container (running or not) labelled with `app` and `environment`.
    pub async fn labelled(
        &self,
        app: &str,
        environment: &str,
    ) -> Result<Vec<LabelledContainer>, DockerError> {
        let docker = self.client().await?;
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{}={app}", labels::APP),
                format!("{}={environment}", labels::ENVIRONMENT),
            ],
        )]);
        let options = ListContainersOptionsBuilder::default()
            .all(true)
            .filters(&filters)
            .build();
        let list = docker
            .list_containers(Some(options))
            .await
            .map_err(|e| self.api_error("listing containers", &e))?;
        Ok(list
            .into_iter()
            .filter_map(|c| {
                let labels = c.labels.unwrap_or_default();
                let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
                Some(LabelledContainer {
                    id: c.id?,
                    name: c
                        .names
                        .and_then(|n| n.into_iter().next())
                        .map(|n| n.trim_start_matches('/').to_owned())
                        .unwrap_or_default(),
                    instance_id: label(labels::INSTANCE),
                    service: label(labels::SERVICE),
                    release: label(labels::RELEASE),
                    running: c.state.is_some_and(|s| s.to_string() == "running"),
                    image: c.image.unwrap_or_default(),
                    created: c.created.unwrap_or_default(),
                    addr: c
                        .ports
                        .unwrap_or_default()
                        .into_iter()
                        .find_map(|p| p.public_port)
                        .map(|port| std::net::SocketAddr::from(([127, 0, 0, 1], port))),
                })
            })
            .collect())
    }
}
