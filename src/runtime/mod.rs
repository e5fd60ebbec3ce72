//! The runtime: the daemon's one loop over the real world. It owns the proxy of
//! every environment, the driver that runs instances, and the store that
//! remembers them; it carries out deployments and rollbacks and re-adopts
//! instances after a restart.
//!
//! Files: `environment.rs` (one environment's live instances and its proxy
//! table), `deploy.rs` (blue-green deploy and rollback), `adopt.rs` (start-up:
//! adoption and recovery), `retire.rs` (draining and stopping old releases).

mod adopt;
pub mod deploy;
mod environment;
mod retire;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Config;
use crate::drivers::process::ProcessDriver;
use crate::store::{Store, StoreError};

pub use adopt::AdoptionReport;
pub use deploy::DeployError;
pub use environment::{EnvRuntime, LiveInstance};

/// Everything the daemon runs.
pub struct Daemon {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) driver: ProcessDriver,
    pub(crate) environments: BTreeMap<String, Arc<EnvRuntime>>,
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
            driver: ProcessDriver::new(),
            environments,
        }))
    }

    /// The config the daemon runs.
    pub fn config(&self) -> &Config {
        &self.config
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

    /// Records an error that has no deployment to go with it.
    pub(crate) fn log_store_error(&self, what: &str, e: &StoreError) {
        tracing::error!(error = %e, "{what}");
    }
}
