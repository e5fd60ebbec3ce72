//! The docker driver: runs each instance of a service as a container on a
//! Docker Engine, through its HTTP API (the `bollard` crate; never the docker
//! CLI). The engine is found like the docker CLI finds it: `DOCKER_HOST`, else
//! the local unix socket.
//!
//! Every container carries labels naming its app, environment, service,
//! release and instance ([`labels`]), so that a restarted daemon finds what
//! it started and removes what it cannot adopt. The container's port is
//! published on a free port of 127.0.0.1, where the proxy and the health
//! checks reach it.
//!
//! - `client.rs`: connecting (lazily, with API version negotiation) and errors.
//! - `run.rs`: create and start a container; stop it with its stop signal and
//!   grace, then remove it.
//! - `watch.rs`: one task per container that notices when it exits.
//! - `find.rs`: adoption checks and the labelled containers of an environment.
//! - `logs.rs`: a container's output, whole or followed.
//! - `exec.rs`: running a health command inside a container.
//! - `preflight.rs`: what a deploy checks before it changes anything.

pub(super) mod client;
mod exec;
mod find;
mod logs;
mod preflight;
mod run;
mod watch;

#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::sync::watch as tokio_watch;

pub use client::{DockerError, docker_host};
pub use find::LabelledContainer;
pub use preflight::{ImageToCheck, Preflight};
pub(in crate::drivers) use run::log_config;

/// The labels every container cutover starts carries.
pub mod labels {
    /// `[app] name`.
    pub const APP: &str = "cutover.app";
    /// The environment.
    pub const ENVIRONMENT: &str = "cutover.environment";
    /// The service.
    pub const SERVICE: &str = "cutover.service";
    /// The release's version.
    pub const RELEASE: &str = "cutover.release";
    /// The instance id (also in the store).
    pub const INSTANCE: &str = "cutover.instance";
}

/// What the daemon keeps about a container it started; persisted in the
/// store's `handle` column (with `driver = "docker"`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ContainerHandle {
    /// The instance id (also the `cutover.instance` label).
    pub instance_id: String,
    /// The container's full id.
    pub container_id: String,
    /// The container's name.
    pub name: String,
    /// The image it was created from, as written (`hello:v2`).
    pub image: String,
    /// Where the container's port is published (`127.0.0.1:<free port>`);
    /// `None` for a worker without a port.
    pub addr: Option<SocketAddr>,
}

impl ContainerHandle {
    /// The first 12 characters of the id, as the docker CLI shows it.
    pub fn short_id(&self) -> &str {
        self.container_id
            .get(..12)
            .unwrap_or(self.container_id.as_str())
    }
}

/// Starts, checks and stops containers. Cheap to clone; clones share one
/// connection and the record of the containers being watched.
#[derive(Debug, Clone, Default)]
pub struct DockerDriver {
    inner: Arc<Inner>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Connected on first use; a failed connection is tried again next time.
    client: tokio::sync::OnceCell<bollard::Docker>,
    /// By container id: `None` while it runs, then how it ended.
    exits: Mutex<HashMap<String, tokio_watch::Receiver<Option<String>>>>,
}

impl DockerDriver {
    /// A driver; nothing is connected until it is first used.
    pub fn new() -> Self {
        Self::default()
    }

    fn exits(
        &self,
    ) -> std::sync::MutexGuard<'_, HashMap<String, tokio_watch::Receiver<Option<String>>>> {
        self.inner
            .exits
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    /// Whether the container still runs, as far as its watcher knows (a
    /// container nobody watches counts as running: it was neither seen to
    /// exit nor checked).
    pub fn is_running(&self, handle: &ContainerHandle) -> bool {
        self.exits()
            .get(&handle.container_id)
            .is_none_or(|rx| rx.borrow().is_none())
    }

    /// How the container ended (`"exit status 1"`), or `None` while it runs.
    pub fn exit_status(&self, handle: &ContainerHandle) -> Option<String> {
        self.exits()
            .get(&handle.container_id)
            .and_then(|rx| rx.borrow().clone())
    }

    /// Forgets the container's watcher (the container itself is not touched).
    pub fn forget(&self, handle: &ContainerHandle) {
        self.exits().remove(&handle.container_id);
    }
}
