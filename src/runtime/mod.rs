//! The runtime: it carries out what the release machine of `cutover-core`
//! decides, and decides nothing about a release itself. It owns the proxy of
//! every environment, the drivers that run instances, and the store that
//! remembers them.
//!
//! Files: `deploy.rs` / `rollback.rs` (the entry points: checks, lock, a
//! release machine started), `approval.rs` (approve and reject reach a
//! release awaiting approval; every decision recorded in one place), `plan.rs` (config → release plan, and whether a
//! saved plan still fits the config), `executor.rs` (the loop around one
//! `Release`: retire, backup, migrations, switches), `journal.rs` (its
//! store writes and what happens when they fail), `traffic.rs` (the
//! rollout's actions: starts, weights, switches, measurements), `control.rs`
//! (the releases running in an environment and how commands reach them),
//! `environment.rs` (one environment's live instances and its proxy table),
//! `start.rs` (starting a service's instances: all at once, or workers one
//! at a time), `retire.rs` (draining and stopping), `logs.rs` (instance
//! logs kept private and rotated), `adopt.rs` (start-up: adoption and
//! restoring releases), `supervise.rs` (watching the serving instances
//! between deploys and replacing those that fail), `schema.rs` and
//! `backup.rs` (the database steps), `preflight.rs` (what a deploy checks
//! first), `gates.rs` (operator locks, deploy windows, overrides),
//! `identity.rs` (a release's digest), `promotion.rs` (whether a release
//! ran where it must first), `progress.rs` (where a running release stands,
//! for `cutover status`), `error.rs`.
//! Every instance is started, checked and stopped through [`Drivers`], so none
//! of these files knows which driver runs it.

// Config values (timeouts, intervals, counts) reach this module's arithmetic:
// every `+`, `-` and `*` here is checked or saturating (see
// `drivers::deadline`), so that no value can panic the daemon. Tests may
// use plain arithmetic.
#![cfg_attr(not(test), warn(clippy::arithmetic_side_effects))]

mod adopt;
pub mod approval;
mod backup;
mod control;
pub mod deploy;
mod environment;
mod error;
mod executor;
pub mod gates;
mod identity;
mod journal;
mod logs;
mod plan;
mod preflight;
pub mod progress;
pub(crate) mod promotion;
mod retire;
pub mod rollback;
mod schema;
mod start;
pub mod supervise;
mod traffic;

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::config::Config;
use crate::drivers::Drivers;
use crate::store::{Store, StoreError};

pub use adopt::{AdoptionReport, OrphanReport, Takeover};
pub use control::ReleaseReport;
pub use environment::{EnvRuntime, LiveInstance};
pub use error::DeployError;

/// Everything the daemon runs.
pub struct Daemon {
    pub(crate) config: Config,
    pub(crate) store: Store,
    pub(crate) driver: Drivers,
    pub(crate) environments: BTreeMap<String, Arc<EnvRuntime>>,
    /// Cancelled while the daemon hands over or stops: releases pause where
    /// they are and nothing new starts (see [`Daemon::quiesce`]).
    quiesce: std::sync::Mutex<tokio_util::sync::CancellationToken>,
    /// The daemons sharing a PostgreSQL store, when this one is among them.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
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
            quiesce: std::sync::Mutex::new(tokio_util::sync::CancellationToken::new()),
            cluster: std::sync::OnceLock::new(),
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

    /// The cluster this daemon is part of (a PostgreSQL store), if any.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// Makes this daemon one of the cluster's: it must be quiesced until
    /// the election says it leads. Once only.
    pub fn join_cluster(&self, cluster: Arc<crate::cluster::Cluster>) {
        let _ = self.cluster.set(cluster);
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

    /// Pauses everything that changes the world: every release's executor
    /// ends where it is (its saved state is what a new daemon restores), and
    /// new deployments are refused. The proxies keep serving. Used before a
    /// hand-over and a stop.
    pub fn quiesce(&self) {
        self.quiesce_token().cancel();
    }

    /// Undoes [`Daemon::quiesce`] (a hand-over failed); the caller restores
    /// the paused releases with [`Daemon::recover`].
    pub fn unquiesce(&self) {
        let mut token = self.quiesce.lock().unwrap_or_else(|p| p.into_inner());
        if token.is_cancelled() {
            *token = tokio_util::sync::CancellationToken::new();
        }
    }

    /// Whether the daemon is quiesced.
    pub fn is_quiesced(&self) -> bool {
        self.quiesce_token().is_cancelled()
    }

    /// A token cancelled when the daemon is quiesced (background work that
    /// changes instances stops on it).
    pub fn quiesced(&self) -> tokio_util::sync::CancellationToken {
        self.quiesce_token()
    }

    fn quiesce_token(&self) -> tokio_util::sync::CancellationToken {
        self.quiesce
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Stops every instance the daemon runs (drained first), for a clean exit.
    /// The serving release is remembered, and started again on the next start.
    pub async fn stop_all_instances(&self) {
        // Nothing may start a replacement behind the stop.
        self.stop_supervision().await;
        for env in self.environments.values() {
            let all = env.take_all();
            retire::retire_now(self, env, all, "daemon stopping").await;
        }
    }

    /// Sends an operator command to the rollout running in `environment`.
    /// `abort` also ends a deployment a restarted daemon could not restore.
    /// `switch` releases a rollout that awaits it (and is the command an
    /// approval at the switch sends too).
    pub async fn command(
        self: &Arc<Self>,
        environment: Option<&str>,
        command: cutover_core::Command,
    ) -> Result<(String, i64), DeployError> {
        let env = self.environment(environment)?.clone();
        let name = env.name.clone();
        if env.releases.stuck().is_some() {
            if let cutover_core::Command::Abort { reason } = &command {
                let id = rollback::end_stuck(self, &env, reason, "aborted").await?;
                return Ok((name, id));
            }
            return Err(DeployError::BadRequest(format!(
                "the deployment in {name} needs an operator: end it with `cutover abort` or `cutover rollback`"
            )));
        }
        let switch = command == cutover_core::Command::Switch;
        let handle = env.releases.rolling().ok_or_else(|| {
            if switch {
                // Nothing to release: say so with the state, not as a bad request.
                DeployError::Refused(format!(
                    "nothing awaits the switch in {name}: no rollout is running (`cutover status` shows what serves)"
                ))
            } else {
                DeployError::BadRequest(format!("no rollout is running in {name}"))
            }
        })?;
        if switch {
            // One path for every switch, whoever sends it.
            self.release_switch(&name, handle.id).await?;
            return Ok((name, handle.id));
        }
        let (reply, answer) = tokio::sync::oneshot::channel();
        handle
            .tx
            .send(control::Control::Rollout { command, reply })
            .await
            .map_err(|_| {
                DeployError::BadRequest(format!("the rollout in {name} has just ended"))
            })?;
        match answer.await {
            Ok(Ok(())) => Ok((name, handle.id)),
            Ok(Err(refused)) => Err(DeployError::Refused(refused)),
            Err(_) => Err(DeployError::BadRequest(format!(
                "the rollout in {name} has just ended"
            ))),
        }
    }

    /// Releases the hold of deployment `deployment` in `environment`, if
    /// its rollout awaits the switch: the same `Command::Switch` as `cutover
    /// switch`, addressed to one deployment (for an approval given at the
    /// switch). Refused, saying why, when that deployment does not await it.
    pub async fn release_switch(
        self: &Arc<Self>,
        environment: &str,
        deployment: i64,
    ) -> Result<(), DeployError> {
        let env = self.environment(Some(environment))?.clone();
        let handle = env
            .releases
            .all()
            .into_iter()
            .find(|h| h.id == deployment)
            .ok_or_else(|| {
                DeployError::Refused(format!(
                    "deployment {deployment} is not running in {environment}; nothing awaits the switch"
                ))
            })?;
        let (reply, answer) = tokio::sync::oneshot::channel();
        let command = cutover_core::Command::Switch;
        let gone = || {
            DeployError::Refused(format!(
                "deployment {deployment} in {environment} has just ended"
            ))
        };
        handle
            .tx
            .send(control::Control::Rollout { command, reply })
            .await
            .map_err(|_| gone())?;
        match answer.await {
            Ok(Ok(())) => Ok(()),
            Ok(Err(refused)) => Err(DeployError::Refused(format!(
                "{environment}, deployment {deployment}: {refused}"
            ))),
            Err(_) => Err(gone()),
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
