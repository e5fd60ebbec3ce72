//! Finding Swarm services and tasks again after a daemon restart: whether a
//! persisted handle's task still runs ([`SwarmDriver::adopt`]), the Swarm
//! services labelled with an app and environment, the removal of those no
//! adopted instance uses ([`SwarmDriver::remove_strays`]), and a task's
//! output (through the manager, whichever node runs it).

use std::collections::HashMap;
use std::time::Duration;

use bollard::query_parameters::{ListServicesOptionsBuilder, LogsOptionsBuilder};
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{SwarmDriver, SwarmError, TaskHandle};
use crate::drivers::docker::client::describe;
use crate::drivers::docker::{DockerError, labels};

/// A Swarm service carrying cutover's labels.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LabelledService {
    /// Its id.
    pub id: String,
    /// Its name.
    pub name: String,
    /// `cutover.service`.
    pub service: String,
    /// `cutover.release`.
    pub release: String,
    /// The image as written.
    pub image: String,
    /// The replicas it asks for.
    pub replicas: u64,
}

impl SwarmDriver {
    /// After a daemon restart: whether the handle's task still runs in its
    /// slot. An adopted task is watched, and its slot counts as live again.
    pub async fn adopt(&self, handle: &TaskHandle) -> Result<bool, SwarmError> {
        let runs = self.task_runs(handle).await?;
        if runs {
            self.state()
                .live
                .entry(handle.service_name.clone())
                .or_default()
                .insert(handle.slot);
            self.watch(handle);
        }
        Ok(runs)
    }

    /// Every Swarm service labelled with `app` and `environment`. None
    /// when this engine is not a swarm manager (it can have none).
    pub async fn labelled(
        &self,
        app: &str,
        environment: &str,
    ) -> Result<Vec<LabelledService>, SwarmError> {
        let docker = self.docker.client().await?;
        let filters = HashMap::from([(
            "label".to_owned(),
            vec![
                format!("{}={app}", labels::APP),
                format!("{}={environment}", labels::ENVIRONMENT),
            ],
        )]);
        let options = ListServicesOptionsBuilder::default()
            .filters(&filters)
            .build();
        let list = match docker.list_services(Some(options)).await {
            Ok(list) => list,
            Err(e) if describe(&e).contains("not a swarm manager") => return Ok(Vec::new()),
            Err(e) => {
                return Err(self.docker.api_error("listing Swarm services", &e).into());
            }
        };
        Ok(list
            .into_iter()
            .filter_map(|s| {
                let labels = s.spec.as_ref()?.labels.clone().unwrap_or_default();
                let label = |k: &str| labels.get(k).cloned().unwrap_or_default();
                Some(LabelledService {
                    id: s.id.clone()?,
                    name: s.spec.as_ref()?.name.clone().unwrap_or_default(),
                    service: label(labels::SERVICE),
                    release: label(labels::RELEASE),
                    image: super::run::image_of(&s),
                    replicas: super::run::replicas_of(&s),
                })
            })
            .collect())
    }

    /// Removes every Swarm service labelled with `app` and `environment`
    /// that no started or adopted instance uses, giving its tasks
    /// `grace_of(service)`. Returns their names; one that cannot be removed
    /// is logged and skipped.
    pub async fn remove_strays(
        &self,
        app: &str,
        environment: &str,
        grace_of: impl Fn(&str) -> Duration,
    ) -> Result<Vec<String>, SwarmError> {
        let found = self.labelled(app, environment).await?;
        let mut removed = Vec::new();
        for stray in found {
            let lock = self.service_lock(&stray.name);
            let _held = lock.lock().await;
            let used = self
                .state()
                .live
                .get(&stray.name)
                .is_some_and(|l| !l.is_empty());
            if used {
                continue;
            }
            tracing::warn!(env = %environment, service = %stray.name, release = %stray.release, "removing a stray Swarm service");
            match self
                .remove_service(&stray.name, &stray.id, grace_of(&stray.service))
                .await
            {
                Ok(_) => removed.push(stray.name),
                Err(e) => {
                    tracing::warn!(service = %stray.name, "cannot remove a stray Swarm service: {e}");
                }
            }
        }
        Ok(removed)
    }

    /// The task's output: the last `tail` lines (or all), then with
    /// `follow` what it writes next.
    pub async fn logs(
        &self,
        handle: &TaskHandle,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<impl Stream<Item = Result<Bytes, DockerError>> + Send + 'static, SwarmError> {
        let docker = self.docker.client().await?.clone();
        let tail = tail.map_or_else(|| "all".to_owned(), |n| n.to_string());
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail)
            .build();
        let driver = self.docker.clone();
        let what = handle.describe();
        Ok(docker
            .task_logs(&handle.task_id, Some(options))
            .map(move |item| {
                item.map(bollard::container::LogOutput::into_bytes)
                    .map_err(|e| driver.api_error(format!("reading the logs of {what}"), &e))
            }))
    }

    /// The last `lines` lines of the task's output; empty when unreadable.
    pub async fn tail(&self, handle: &TaskHandle, lines: usize) -> Vec<String> {
        let Ok(stream) = self.logs(handle, Some(lines), false).await else {
            return Vec::new();
        };
        let chunks: Vec<Result<Bytes, DockerError>> = stream.collect().await;
        let mut text = Vec::new();
        for chunk in chunks.into_iter().flatten() {
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&text);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|l| (*l).to_owned())
            .collect()
    }
}
