//! The runtime: the daemon's one loop over the real world. It owns the proxy of
//! every environment, the driver that runs instances, and the store that
//! remembers them; it carries out deployments and rollbacks and re-adopts
//! instances after a restart.
//!
//! Files: `environment.rs` (one environment's live instances and its proxy
//! table), `deploy.rs` (blue-green deploy and rollback), `start.rs` (starting
//! a service's instances: all at once, or workers one at a time), `adopt.rs`
//! (start-up: adoption and recovery), `retire.rs` (draining and stopping old
//! releases), `preflight.rs` (what a deploy checks before it changes anything).
//! Every instance is started, checked and stopped through [`Drivers`], so none
//! of these files knows which driver runs it.

mod adopt;
mod backup;
pub mod deploy;
mod environment;
mod preflight;
mod retire;
pub mod runner;
mod schema;
mod start;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use crate::config::Config;
use crate::drivers::Drivers;
use crate::store::{Store, StoreError};

pub use adopt::AdoptionReport;
pub use deploy::DeployError;
pub use environment::{EnvRuntime, LiveInstance};

/// Everything the daemon runs.
pub struct Daemon {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) driver: Drivers,
    pub(crate) environments: BTreeMap<String, Arc<EnvRuntime>>,
    /// Where to send operator commands for the rollout running in an environment.
    active: Mutex<BTreeMap<String, mpsc::Sender<runner::CommandMsg>>>,
}

impl Daemon {
    /// Builds the runtime for `config` on `store`: one proxy per environment,
    /// with the services and routes of the config. Nothing is started yet.
    pub fn new(config: Config, store: Store) -> Result<Arc<Daemon>, DeployError> {
        let mut environments = BTreeMap::new();
        for (name, env) in &config.environments {
            let runtime = EnvRuntime::new(name, env.clone(), &config)?;
            environments.insert(name.clone(), Arc::new(runtime));
        }
        Ok(Arc::new(Daemon {
            config,
            store,
            driver: Drivers::new(),
            environments,
            active: Mutex::new(BTreeMap::new()),
        }))
    }

    /// The config the daemon runs.
    pub fn config(&self) -> &Config {
        &self.config
    }

    /// The drivers that run instances.
    pub fn drivers(&self) -> &crate::drivers::Drivers {
        &self.driver
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// One environment by name, or the only one when `name` is `None`.
    pub fn environment(&self, name: Option<&str>) -> Result<&Arc<EnvRuntime>, DeployError> {
        let (name, _) = self
            .config
            .environment(name)
            .map_err(|e| DeployError::BadRequest(e.to_string()))?;
        self.environments
            .get(name)
            .ok_or_else(|| DeployError::BadRequest(format!("no environment named {name:?}")))
    }

    /// All environments.
    pub fn environments(&self) -> impl Iterator<Item = &Arc<EnvRuntime>> {
        self.environments.values()
    }

    /// Stops every instance the daemon runs (drained first), for a clean exit.
    /// The serving release is remembered, and started again on the next start.
    pub async fn stop_all_instances(&self) {
        for env in self.environments.values() {
            let all = env.take_all();
            retire::retire_now(self, env, all, "daemon stopping").await;
        }
    }

    /// Registers (or clears) the command channel of an environment's rollout.
    pub(crate) fn set_active(&self, env: &str, tx: Option<mpsc::Sender<runner::CommandMsg>>) {
        let mut active = self.active.lock().unwrap_or_else(|p| p.into_inner());
        match tx {
            Some(tx) => {
                active.insert(env.to_owned(), tx);
            }
            None => {
                active.remove(env);
            }
        }
    }

    /// Sends an operator command to the rollout running in `environment`.
    pub async fn command(
        &self,
        environment: Option<&str>,
        command: cutover_core::Command,
    ) -> Result<(String, i64), DeployError> {
        let env = self.environment(environment)?.name.clone();
        let tx = self
            .active
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(&env)
            .cloned()
            .ok_or_else(|| DeployError::BadRequest(format!("no rollout is running in {env}")))?;
        let running = self
            .store
            .running_deployments()
            .await?
            .into_iter()
            .find(|d| d.environment == env)
            .map(|d| d.id)
            .unwrap_or_default();
        let (reply, answer) = tokio::sync::oneshot::channel();
        tx.send(runner::CommandMsg { command, reply })
            .await
            .map_err(|_| DeployError::BadRequest(format!("the rollout in {env} has just ended")))?;
        match answer.await {
            Ok(Ok(())) => Ok((env, running)),
            Ok(Err(refused)) => Err(DeployError::Refused(refused)),
            Err(_) => Err(DeployError::BadRequest(format!(
                "the rollout in {env} has just ended"
            ))),
        }
    }

    /// Records an error that has no deployment to go with it.
    pub(crate) fn log_store_error(&self, what: &str, e: &StoreError) {
        tracing::error!(error = %e, "{what}");
    }
}

/// The driver's health check for a service's config.
pub(crate) fn health_check(
    sc: &crate::config::ServiceConfig,
) -> crate::drivers::health::HealthCheck {
    crate::drivers::health::HealthCheck {
        path: sc.health.path.clone(),
        interval: sc.health.interval,
        timeout: sc.health.timeout,
        healthy: sc.health.healthy,
        unhealthy: sc.health.unhealthy,
        start_timeout: sc.health.start_timeout,
    }
}
