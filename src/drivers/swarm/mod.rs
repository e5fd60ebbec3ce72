//! The swarm driver: runs each release of an http service as one Docker
//! Swarm service (replicated), and each of cutover's instances of that
//! release as one of its tasks, through the Engine API (`bollard`; never the
//! docker CLI). Instance `r` of a release is the Swarm service's task slot
//! `r + 1`: starting it creates the service or scales it up to that slot and
//! waits until the slot's task runs; its address is the task's host-mode
//! published port on its node. cutover's proxy moves traffic between the two
//! releases' services exactly as between containers.
//!
//! Every Swarm service carries the labels of the docker driver's containers
//! (app, environment, service, release; [`super::docker::labels`]) and is
//! named after them ([`service_name`]), so a restarted daemon finds it again
//! and removes those no record names.
//!
//! - `spec.rs`: the Swarm service spec of a release (image by id, env, host-mode
//!   port, health check, restart policy, placement, limits, logs).
//! - `run.rs`: starting an instance (create or scale, wait for the slot's
//!   task) and stopping it (the service is removed with its last instance).
//! - `tasks.rs`: a slot's task, its state and address; watching a task.
//! - `find.rs`: adoption, the labelled Swarm services of an environment,
//!   stray removal, and logs.
//! - `update.rs`: a worker's release handed over in place: its environment's
//!   long-lived Swarm service is created, or updated by Swarm's rolling
//!   update and watched (`UpdateStatus`) until it completes or Swarm rolls
//!   it back.
//! - `preflight.rs`: the swarm is active and this node is a manager.
//!
//! Nothing outside `src/drivers` knows this module: the runtime calls
//! [`super::Drivers`] with the service's container settings, whose `swarm`
//! part picks this driver.

mod find;
mod preflight;
mod run;
mod spec;
mod tasks;
mod update;

#[cfg(test)]
mod tests;

use std::collections::{BTreeSet, HashMap, HashSet};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::watch as tokio_watch;

use super::docker::{DockerDriver, DockerError};

pub use spec::{service_name, worker_service_name};

/// What can go wrong with the swarm driver. Every message says what to do.
#[derive(Debug, thiserror::Error)]
pub enum SwarmError {
    /// The engine failed (unreachable, refused a request, image missing).
    #[error(transparent)]
    Docker(#[from] DockerError),
    /// This engine is not part of an active swarm.
    #[error(
        "Docker Swarm is not active on this engine (state: {state}): run `docker swarm init` (or `docker swarm join` to join an existing swarm), then deploy again"
    )]
    NotActive {
        /// The engine's `Swarm.LocalNodeState`.
        state: String,
    },
    /// This node is in a swarm but cannot manage services.
    #[error(
        "this Docker node is a Swarm worker, not a manager, so it cannot create services: run cutover against a manager (DOCKER_HOST) or promote this node with `docker node promote {node}` on a manager"
    )]
    NotManager {
        /// This node's id.
        node: String,
    },
    /// A Swarm service of that name exists that cutover did not make for this release.
    #[error(
        "a Swarm service named {name} exists but is not this release's (its labels say {found}): remove or rename it (`docker service rm {name}`), then deploy again"
    )]
    NotOurs {
        /// The service's name.
        name: String,
        /// What its labels say.
        found: String,
    },
    /// Swarm's rolling update of a worker's service failed (Swarm rolled it
    /// back or paused it).
    #[error("Swarm's rolling update of {name} to {version} failed ({state}): {message}")]
    UpdateFailed {
        /// The Swarm service.
        name: String,
        /// The release it was updated to.
        version: String,
        /// Its `UpdateStatus.State` (`rollback_completed`, `paused`, …).
        state: String,
        /// What Swarm says, and why the task failed when known.
        message: String,
    },
    /// The slot's task did not reach `running`.
    #[error("Swarm service {name}, task slot {slot}: {reason}")]
    Task {
        /// The Swarm service.
        name: String,
        /// The slot.
        slot: u64,
        /// What Swarm says (its task error), or that it took too long.
        reason: String,
    },
}

/// What the daemon keeps about an instance run as a Swarm task; persisted in
/// the store's `handle` column (with `driver = "swarm"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct TaskHandle {
    /// The instance id.
    pub instance_id: String,
    /// The release's Swarm service name.
    pub service_name: String,
    /// Its id.
    pub service_id: String,
    /// The task slot (instance replica + 1).
    pub slot: u64,
    /// The task that ran in that slot when the instance started.
    pub task_id: String,
    /// Its container (on the task's node), when Swarm said.
    pub container_id: Option<String>,
    /// The image as written (`hello:v2`).
    pub image: String,
    /// The node's address and the task's published port.
    pub addr: Option<SocketAddr>,
    /// For a worker: the release this task ran, in its environment's
    /// long-lived Swarm service that later releases are rolled into (see
    /// `update.rs`); `None` for an http service's task.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub in_place: Option<String>,
}

impl TaskHandle {
    /// `web-v2.1 (task 0123456789ab)`, for messages.
    pub fn describe(&self) -> String {
        format!(
            "swarm task {}.{} ({})",
            self.service_name,
            self.slot,
            self.task_id.get(..12).unwrap_or(&self.task_id)
        )
    }
}

/// Starts, checks and stops Swarm tasks. Cheap to clone; clones share one
/// engine connection (the docker driver's) and what is known of the tasks.
#[derive(Debug, Clone, Default)]
pub struct SwarmDriver {
    docker: DockerDriver,
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// What this daemon knows, behind one lock.
    state: Mutex<State>,
    /// One lock per Swarm service name: creating and scaling never race.
    services: Mutex<HashMap<String, Arc<tokio::sync::Mutex<()>>>>,
}

#[derive(Debug, Default)]
struct State {
    /// By Swarm service name: the slots of instances started or adopted and
    /// not stopped. The service is removed when its last one stops.
    live: HashMap<String, BTreeSet<u64>>,
    /// Tasks of instances stopped while their service stays (another slot
    /// still serves): never handed out again for a new instance.
    stopped: HashSet<String>,
    /// By task id: `None` while it runs, then how it ended.
    exits: HashMap<String, tokio_watch::Receiver<Option<String>>>,
}

impl SwarmDriver {
    /// A driver sharing `docker`'s engine connection.
    pub fn new(docker: DockerDriver) -> Self {
        Self {
            docker,
            inner: Arc::default(),
        }
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.inner
            .state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// The lock that serialises changes to Swarm service `name`.
    fn service_lock(&self, name: &str) -> Arc<tokio::sync::Mutex<()>> {
        self.inner
            .services
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(name.to_owned())
            .or_default()
            .clone()
    }

    /// Whether the instance's task still runs, as far as its watcher knows.
    pub fn is_running(&self, handle: &TaskHandle) -> bool {
        let state = self.state();
        if state.stopped.contains(&handle.task_id) {
            return false;
        }
        state
            .exits
            .get(&handle.task_id)
            .is_none_or(|rx| rx.borrow().is_none())
    }

    /// How the task ended (`task failed: …`), or `None` while it runs.
    pub fn exit_status(&self, handle: &TaskHandle) -> Option<String> {
        self.state()
            .exits
            .get(&handle.task_id)
            .and_then(|rx| rx.borrow().clone())
    }

    /// Forgets the task's watcher (the task itself is not touched).
    pub fn forget(&self, handle: &TaskHandle) {
        self.state().exits.remove(&handle.task_id);
    }
}
