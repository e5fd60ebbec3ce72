//! A Swarm service's tasks: waiting until a slot's task runs, where it is
//! reachable (its node's address and the port Swarm published in host mode),
//! and one watcher per instance's task that notices when it stops running,
//! so [`SwarmDriver::is_running`] answers without a request.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use bollard::models::{Task, TaskState};
use bollard::query_parameters::ListTasksOptionsBuilder;
use tokio::sync::watch;
use tokio::time::Instant;

use super::run::POLL;
use super::{SwarmDriver, SwarmError, TaskHandle};
use crate::drivers::docker::ContainerHandle;
use crate::drivers::docker::client::status_of;

/// How many failed tasks of one slot end a start (Swarm would go on
/// restarting them).
const MAX_FAILED: usize = 3;

impl SwarmDriver {
    /// The tasks of Swarm service `id`.
    pub(super) async fn tasks(&self, id: &str) -> Result<Vec<Task>, SwarmError> {
        let docker = self.docker.client().await?;
        let filters = HashMap::from([("service".to_owned(), vec![id.to_owned()])]);
        let options = ListTasksOptionsBuilder::default().filters(&filters).build();
        docker
            .list_tasks(Some(options))
            .await
            .map_err(|e| self.docker.api_error("listing Swarm tasks", &e).into())
    }

    /// Waits until slot `slot` of service `id` has a running task that no
    /// stopped instance had; fails with Swarm's error when the slot's tasks
    /// keep failing or are rejected, or at `deadline`.
    pub(super) async fn wait_for_slot(
        &self,
        name: &str,
        id: &str,
        slot: u64,
        deadline: Instant,
    ) -> Result<Task, SwarmError> {
        let fail = |reason: String| SwarmError::Task {
            name: name.to_owned(),
            slot,
            reason,
        };
        // The slot's tasks from before this start (an earlier instance's
        // history): their failures do not count.
        let before: Vec<String> = self
            .tasks(id)
            .await?
            .iter()
            .filter(|t| {
                t.slot.and_then(|s| u64::try_from(s).ok()) == Some(slot)
                    && t.desired_state != Some(TaskState::RUNNING)
            })
            .filter_map(|t| t.id.clone())
            .collect();
        let mut replaced: Vec<String> = Vec::new();
        let mut last = String::from("no task scheduled yet");
        loop {
            let tasks = self.tasks(id).await?;
            let of_slot: Vec<&Task> = tasks
                .iter()
                .filter(|t| t.slot.and_then(|s| u64::try_from(s).ok()) == Some(slot))
                .collect();
            for task in &of_slot {
                let task_id = task.id.clone().unwrap_or_default();
                let wanted = task.desired_state == Some(TaskState::RUNNING);
                if wanted && state_of(task) == Some(TaskState::RUNNING) {
                    let stale = self.state().stopped.contains(&task_id);
                    if !stale {
                        return Ok((*task).clone());
                    }
                    // An instance stopped this task while its service stayed:
                    // end it, so that Swarm starts a fresh one in the slot.
                    if !replaced.contains(&task_id) {
                        self.end_task(task).await;
                        replaced.push(task_id);
                    }
                }
            }
            let failed: Vec<&&Task> = of_slot
                .iter()
                .filter(|t| {
                    matches!(state_of(t), Some(TaskState::FAILED | TaskState::REJECTED))
                        && t.id.as_ref().is_some_and(|id| !before.contains(id))
                })
                .collect();
            if let Some(task) = of_slot
                .iter()
                .find(|t| t.desired_state == Some(TaskState::RUNNING))
                .or(failed.last().copied())
            {
                last = describe_task(task);
            }
            if failed
                .iter()
                .any(|t| state_of(t) == Some(TaskState::REJECTED))
                || failed.len() >= MAX_FAILED
            {
                return Err(fail(format!(
                    "the task did not start: {last} (see `docker service ps --no-trunc {name}`)"
                )));
            }
            if Instant::now() >= deadline {
                return Err(fail(format!(
                    "no running task after {:?}: {last} (see `docker service ps --no-trunc {name}`)",
                    super::run::START_TIMEOUT
                )));
            }
            tokio::time::sleep(POLL).await;
        }
    }

    /// Stops a task's container on this node (Swarm then replaces the task).
    async fn end_task(&self, task: &Task) {
        let Some(container_id) = container_of(task) else {
            return;
        };
        let handle = ContainerHandle {
            instance_id: String::new(),
            container_id,
            name: task.name.clone().unwrap_or_default(),
            image: String::new(),
            addr: None,
        };
        if let Err(e) = self.docker.stop(&handle, Duration::from_secs(10)).await {
            tracing::warn!(task = ?task.id, "cannot end a Swarm task that an instance stopped: {e}");
        }
    }

    /// Where a running task's `port` is published: its node's address
    /// (`Status.Addr`) and the port Swarm picked in host mode.
    pub(super) async fn task_addr(&self, task: &Task, port: u16) -> Result<SocketAddr, String> {
        let published = task
            .status
            .as_ref()
            .and_then(|s| s.port_status.as_ref())
            .and_then(|p| p.ports.as_ref())
            .and_then(|ports| {
                ports
                    .iter()
                    .find(|p| p.target_port == Some(i64::from(port)))
                    .and_then(|p| p.published_port)
            })
            .and_then(|p| u16::try_from(p).ok())
            .ok_or_else(|| {
                format!("Swarm reports no published port for container port {port} (is the port published in host mode?)")
            })?;
        let ip = match &task.node_id {
            Some(node) => self.node_ip(node).await,
            None => None,
        };
        Ok(SocketAddr::new(
            ip.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST)),
            published,
        ))
    }

    /// A node's address (`Status.Addr`); `None` when unknown or unspecified.
    async fn node_ip(&self, node: &str) -> Option<IpAddr> {
        let docker = self.docker.client().await.ok()?;
        let info = docker.inspect_node(node).await.ok()?;
        let ip: IpAddr = info.status?.addr?.parse().ok()?;
        (!ip.is_unspecified()).then_some(ip)
    }

    /// Starts watching the instance's task (once).
    pub(super) fn watch(&self, handle: &TaskHandle) {
        let (tx, rx) = watch::channel(None);
        {
            let mut state = self.state();
            if state.exits.contains_key(&handle.task_id) {
                return;
            }
            state.exits.insert(handle.task_id.clone(), rx);
        }
        let (driver, handle) = (self.clone(), handle.clone());
        tokio::spawn(async move {
            tokio::select! {
                ended = driver.wait_end(&handle.task_id) => {
                    tracing::info!(instance = %handle.instance_id, task = %handle.describe(), %ended, "swarm task ended");
                    tx.send_replace(Some(ended));
                }
                () = tx.closed() => {}
            }
        });
    }

    /// Waits until task `id` no longer runs; says how it ended.
    async fn wait_end(&self, id: &str) -> String {
        loop {
            tokio::time::sleep(POLL).await;
            let Ok(docker) = self.docker.client().await else {
                continue;
            };
            match docker.inspect_task(id).await {
                Ok(task) => {
                    let running = state_of(&task) == Some(TaskState::RUNNING)
                        && task.desired_state == Some(TaskState::RUNNING);
                    if !running {
                        return describe_task(&task);
                    }
                }
                Err(e) if status_of(&e) == Some(404) => return "task removed".to_owned(),
                // The engine does not answer (restarting?): ask again.
                Err(_) => {}
            }
        }
    }

    /// After a daemon restart: whether the handle's task still runs in its
    /// slot of its service.
    pub(super) async fn task_runs(&self, handle: &TaskHandle) -> Result<bool, SwarmError> {
        let docker = self.docker.client().await?;
        match docker.inspect_task(&handle.task_id).await {
            Ok(task) => Ok(state_of(&task) == Some(TaskState::RUNNING)
                && task.desired_state == Some(TaskState::RUNNING)
                && task.service_id.as_deref() == Some(handle.service_id.as_str())
                && task.slot.and_then(|s| u64::try_from(s).ok()) == Some(handle.slot)),
            Err(e) if status_of(&e) == Some(404) => Ok(false),
            Err(e) => Err(self.docker.api_error("inspecting a Swarm task", &e).into()),
        }
    }
}

/// The task's observed state.
pub(super) fn state_of(task: &Task) -> Option<TaskState> {
    task.status.as_ref().and_then(|s| s.state)
}

/// Its container's id, when Swarm said.
pub(super) fn container_of(task: &Task) -> Option<String> {
    task.status
        .as_ref()
        .and_then(|s| s.container_status.as_ref())
        .and_then(|c| c.container_id.clone())
        .filter(|c| !c.is_empty())
}

/// `task failed: exit status 1 (task: non-zero exit (1))`: the state,
/// the exit code, and Swarm's error or message.
pub(super) fn describe_task(task: &Task) -> String {
    let status = task.status.clone().unwrap_or_default();
    let state = status
        .state
        .map_or_else(|| "unknown".to_owned(), |s| s.to_string());
    let mut text = format!("task {state}");
    if let Some(code) = status.container_status.and_then(|c| c.exit_code)
        && matches!(status.state, Some(TaskState::FAILED | TaskState::COMPLETE))
    {
        text.push_str(&format!(": exit status {code}"));
    }
    match (status.err, status.message) {
        (Some(err), _) if !err.is_empty() => text.push_str(&format!(" ({err})")),
        (_, Some(message)) if !message.is_empty() => text.push_str(&format!(" ({message})")),
        _ => {}
    }
    text
}
