//! The runner: the async shell around one `cutover_core::Rollout`. It is the
//! only place that reads the clock for a rollout; it carries out the core's
//! actions through the proxy, the driver and the store, and feeds the world's
//! answers back (str0m style: after every input, drain every output).
//!
//! Persist actions are written to the store before the actions that follow
//! them, so a daemon killed at any moment finds the last state it acted on
//! and can resume or roll back (see `adopt.rs`).

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cutover_core::{Action, Command, Event, Input, Millis, Outcome, Output, Rollout, Stats};
use cutover_proxy::{InstanceId, Observation};
use serde_json::json;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::environment::{EnvRuntime, LiveInstance};
use super::{Daemon, deploy, retire, schema, start};
use crate::drivers::health::Monitor;
use crate::store::{DeploymentState, InstanceState};

/// An operator command on its way to a running rollout, with where to answer.
pub struct CommandMsg {
    /// The command.
    pub command: Command,
    /// Ok, or why it was refused.
    pub reply: oneshot::Sender<Result<(), String>>,
}

/// Wall-clock milliseconds since the Unix epoch: the core's `now`.
pub(crate) fn now() -> Millis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    Millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// One rollout being carried out.
pub(crate) struct Runner {
    pub(crate) daemon: Arc<Daemon>,
    pub(crate) env: Arc<EnvRuntime>,
    pub(crate) id: i64,
    pub(crate) holder: String,
    pub(crate) rollout: Rollout,
    pub(crate) old_version: Option<String>,
    answers_tx: mpsc::UnboundedSender<Input>,
    answers_rx: mpsc::UnboundedReceiver<Input>,
    monitors: Vec<JoinHandle<()>>,
    outcome: Option<Outcome>,
    /// Contract migrations to run once the old release is gone, if this
    /// rollout succeeds.
    pub(crate) contract: Option<schema::ContractJob>,
}

impl Runner {
    pub(crate) fn new(
        daemon: Arc<Daemon>,
        env: Arc<EnvRuntime>,
        id: i64,
        holder: String,
        rollout: Rollout,
        old_version: Option<String>,
    ) -> Runner {
        let (answers_tx, answers_rx) = mpsc::unbounded_channel();
        Runner {
            daemon,
            env,
            id,
            holder,
            rollout,
            old_version,
            answers_tx,
            answers_rx,
            monitors: Vec::new(),
            outcome: None,
            contract: None,
        }
    }

    fn version(&self) -> String {
        self.rollout.plan().version.clone()
    }

    /// Runs the rollout to its end; `start` feeds [`Input::Start`] first (a
    /// restored rollout has its actions queued already).
    pub(crate) async fn run(mut self, start: bool) {
        let (cmd_tx, mut cmd_rx) = mpsc::channel::<CommandMsg>(8);
        self.daemon.set_active(&self.env.name, Some(cmd_tx));
        if start {
            self.rollout.handle_input(now(), Input::Start);
        }
        loop {
            let wake = self.drain().await;
            if self.rollout.is_finished() {
                break;
            }
            let sleep = wake.map(|t| Duration::from_millis(t.since(now()).0));
            tokio::select! {
                Some(input) = self.answers_rx.recv() => self.rollout.handle_input(now(), input),
                Some(msg) = cmd_rx.recv() => {
                    let result = self.rollout.command(now(), msg.command).map_err(|r| r.0);
                    let _ = msg.reply.send(result);
                }
                _ = tokio::time::sleep(sleep.unwrap_or_default()), if sleep.is_some() => {
                    self.rollout.handle_input(now(), Input::Tick);
                }
            }
        }
        self.daemon.set_active(&self.env.name, None);
        self.conclude().await;
    }

    /// Carries out every queued output; returns when the core next wants a tick.
    async fn drain(&mut self) -> Option<Millis> {
        loop {
            match self.rollout.poll_output() {
                Output::Action(action) => {
                    if let Some(input) = self.act(action).await {
                        self.rollout.handle_input(now(), input);
                    }
                }
                Output::Event(event) => self.record(event).await,
                Output::Timeout(t) => return Some(t),
                Output::Idle => return None,
            }
        }
    }

    async fn act(&mut self, action: Action) -> Option<Input> {
        match action {
            Action::Persist(state) => {
                let plan = serde_json::to_value(self.rollout.plan()).unwrap_or_default();
                let state = serde_json::to_value(&state).unwrap_or_default();
                if let Err(e) = self.daemon.store.save_rollout(self.id, &plan, &state).await {
                    self.daemon
                        .log_store_error("cannot persist the rollout state", &e);
                }
                None
            }
            Action::StartInstances { service } => {
                self.start(service);
                None
            }
            Action::SetCanaryWeight { service, canary_bp } => {
                let (old, new) = self.instances_of(&service);
                self.apply(&service, &old, &new, canary_bp);
                self.mark(&new, InstanceState::Serving).await;
                None
            }
            Action::Promote { service } => {
                let (old, new) = self.instances_of(&service);
                self.apply(&service, &new, &[], 0);
                self.mark(&new, InstanceState::Serving).await;
                self.mark(&old, InstanceState::Idle).await;
                None
            }
            Action::Revert { service } => {
                let (old, _) = self.instances_of(&service);
                self.apply(&service, &old, &[], 0);
                let version = self.version();
                let is_worker = self
                    .daemon
                    .config
                    .services
                    .get(&service)
                    .is_some_and(|s| s.kind == crate::config::ServiceKind::Worker);
                if is_worker && let Some(previous) = self.old_version.clone() {
                    // Workers were replaced one by one: put the previous ones
                    // back the same way before the deployment ends.
                    start::restore_workers(
                        &self.daemon,
                        &self.env,
                        self.id,
                        &service,
                        &version,
                        &previous,
                    )
                    .await;
                    return None;
                }
                let gone = self
                    .env
                    .take(|i| i.service == service && i.version == version);
                if !gone.is_empty() {
                    let (d, e) = (self.daemon.clone(), self.env.clone());
                    tokio::spawn(
                        async move { retire::retire_now(&d, &e, gone, "rolled back").await },
                    );
                }
                None
            }
            Action::Analyze {
                service,
                canary_window,
                stable_window,
            } => {
                let (old, new) = self.instances_of(&service);
                Some(Input::Analysis {
                    canary: self.stats(&new, canary_window),
                    stable: self.stats(&old, stable_window),
                    service,
                })
            }
            Action::Check { service, window } => {
                let (_, new) = self.instances_of(&service);
                Some(Input::Check {
                    canary: self.stats(&new, window),
                    service,
                })
            }
            Action::Finish(outcome) => {
                self.outcome = Some(outcome);
                None
            }
        }
    }

    /// Old and new live instances of one service.
    fn instances_of(&self, service: &str) -> (Vec<LiveInstance>, Vec<LiveInstance>) {
        let version = self.version();
        let all = self.env.instances();
        let old = all
            .iter()
            .filter(|i| i.service == service && Some(&i.version) == self.old_version.as_ref())
            .cloned()
            .collect();
        let new = all
            .into_iter()
            .filter(|i| i.service == service && i.version == version)
            .collect();
        (old, new)
    }

    /// Records the lifecycle state of instances (best effort: the table is what counts).
    async fn mark(&self, instances: &[LiveInstance], state: InstanceState) {
        for i in instances {
            if let Err(e) = self.daemon.store.set_instance_state(&i.id, state).await {
                self.daemon
                    .log_store_error("cannot record an instance's state", &e);
            }
        }
    }

    fn apply(
        &self,
        service: &str,
        stable: &[LiveInstance],
        canary: &[LiveInstance],
        canary_bp: u16,
    ) {
        if let Err(e) = self
            .env
            .set_service_tracks(service, stable, canary, canary_bp)
        {
            tracing::error!(env = %self.env.name, service, error = %e, "cannot update the proxy table");
        }
    }

    fn stats(&self, instances: &[LiveInstance], window: Millis) -> Stats {
        let ids: Vec<InstanceId> = instances
            .iter()
            .map(|i| InstanceId::from(i.id.as_str()))
            .collect();
        let span = Duration::from_millis(window.0.max(1000));
        stats_of(&self.env.proxy().observe_all(ids.iter(), span))
    }

    /// Starts a service's new instances in the background (or finds them
    /// running after a restart), then watches their health.
    fn start(&mut self, service: String) {
        let (old, existing) = self.instances_of(&service);
        if !old.is_empty() {
            let (daemon, svc, tx, old) = (
                self.daemon.clone(),
                service.clone(),
                self.answers_tx.clone(),
                old.clone(),
            );
            self.monitors.push(tokio::spawn(async move {
                watch_stable(&daemon, &svc, old, tx).await;
            }));
        }
        let (replicas, kind) = self
            .daemon
            .config
            .services
            .get(&service)
            .map(|s| (s.replicas as usize, s.kind))
            .unwrap_or((1, crate::config::ServiceKind::Http));
        let (daemon, env, id, version, tx) = (
            self.daemon.clone(),
            self.env.clone(),
            self.id,
            self.version(),
            self.answers_tx.clone(),
        );
        let monitors_tx = tx.clone();
        let watch = tokio::spawn(async move {
            let started = if existing.len() >= replicas {
                Ok(existing)
            } else {
                let stale = env.take(|i| i.service == service && i.version == version);
                retire::retire_now(&daemon, &env, stale, "incomplete after a restart").await;
                if kind == crate::config::ServiceKind::Worker {
                    // A rolling restart: each old worker goes as its successor is ready.
                    start::start_workers(&daemon, &env, id, &version, &service, old).await
                } else {
                    start::start_service(&daemon, &env, id, &version, &service).await
                }
            };
            match started {
                Ok(instances) => {
                    let _ = tx.send(Input::Started {
                        service: service.clone(),
                    });
                    watch_health(&daemon, &service, instances, monitors_tx).await;
                }
                Err(reason) => {
                    let _ = tx.send(Input::StartFailed { service, reason });
                }
            }
        });
        self.monitors.push(watch);
    }

    async fn record(&self, event: Event) {
        let data = json!({
            "service": event.service,
            "figures": event.figures,
            "verdict": event.verdict,
        });
        tracing::info!(deployment = self.id, kind = %event.kind, "{}", event.message);
        if let Err(e) = self
            .daemon
            .store
            .add_event(self.id, &event.kind, &event.message, data)
            .await
        {
            self.daemon.log_store_error("cannot record an event", &e);
        }
    }

    /// Records the end, hands the previous release its rollback window, and
    /// frees the lock.
    async fn conclude(mut self) {
        for m in self.monitors.drain(..) {
            m.abort();
        }
        let version = self.version();
        let store = &self.daemon.store;
        let (state, reason) = match &self.outcome {
            Some(Outcome::Succeeded) => (DeploymentState::Succeeded, None),
            Some(Outcome::RolledBack { reason, .. }) => {
                (DeploymentState::RolledBack, Some(reason.clone()))
            }
            Some(Outcome::Failed { reason, .. } | Outcome::NotStarted { reason }) => {
                (DeploymentState::Failed, Some(reason.clone()))
            }
            None => (
                DeploymentState::Failed,
                Some("the rollout ended without an outcome".to_owned()),
            ),
        };
        if state == DeploymentState::Succeeded {
            if let Err(e) = store.set_serving(&self.env.name, &version).await {
                self.daemon
                    .log_store_error("cannot record the serving release", &e);
            }
            if let Some(job) = self.contract.take().filter(|j| !j.targets.is_empty()) {
                if self.env.of_version_other_than(&version).is_empty() {
                    // No older release runs: nothing can break.
                    let daemon = self.daemon.clone();
                    tokio::spawn(async move { schema::contract(&daemon, job).await });
                } else {
                    // Remembered in the history too, so a restarted daemon
                    // still runs them when the old release is gone.
                    if let Err(e) = store
                        .add_event(
                            self.id,
                            schema::CONTRACT_PENDING,
                            "contract migrations wait until the previous release is gone",
                            json!({ "targets": job.targets }),
                        )
                        .await
                    {
                        self.daemon.log_store_error("cannot record an event", &e);
                    }
                    *self
                        .env
                        .pending_contract
                        .lock()
                        .unwrap_or_else(|p| p.into_inner()) = Some(job);
                }
            }
            deploy::after_switch(
                &self.daemon,
                &self.env,
                self.id,
                &version,
                self.old_version.clone(),
            )
            .await;
        }
        if let Err(e) = store
            .finish_deployment(self.id, state, reason.as_deref())
            .await
        {
            self.daemon
                .log_store_error("cannot record the end of a deployment", &e);
        }
        if let Err(e) = store.unlock(&self.env.name, &self.holder).await {
            self.daemon
                .log_store_error("cannot release the deployment lock", &e);
        }
    }
}

/// Watches new instances; the first that turns unhealthy is reported.
async fn watch_health(
    daemon: &Daemon,
    service: &str,
    instances: Vec<LiveInstance>,
    tx: mpsc::UnboundedSender<Input>,
) {
    let Some(sc) = daemon.config.services.get(service) else {
        return;
    };
    if sc.kind != crate::config::ServiceKind::Http {
        return;
    }
    let check = super::health_check(sc);
    let mut tasks = tokio::task::JoinSet::new();
    for inst in instances {
        let Some(addr) = inst.handle.addr() else {
            continue;
        };
        let mut monitor = Monitor::spawn(addr, check.clone());
        tasks.spawn(async move {
            let err = monitor.wait_unhealthy().await;
            (inst.id, err)
        });
    }
    if let Some(Ok((id, err))) = tasks.join_next().await {
        let why = err
            .map(|e| e.to_string())
            .unwrap_or_else(|| "monitor stopped".into());
        let _ = tx.send(Input::NewUnhealthy {
            service: service.to_owned(),
            reason: format!("{id}: {why}"),
        });
    }
}

/// Tells the core whenever the old release of a service goes from having a
/// healthy instance to having none, or back (so a rollback never switches to
/// nothing).
async fn watch_stable(
    daemon: &Daemon,
    service: &str,
    old: Vec<LiveInstance>,
    tx: mpsc::UnboundedSender<Input>,
) {
    let Some(sc) = daemon.config.services.get(service) else {
        return;
    };
    if sc.kind != crate::config::ServiceKind::Http {
        return;
    }
    let (path, interval, timeout) = (
        sc.health.path.clone(),
        sc.health.interval,
        sc.health.timeout,
    );
    let mut healthy = true;
    let mut failures = 0u32;
    loop {
        tokio::time::sleep(interval).await;
        let mut any = false;
        for inst in &old {
            let Some(addr) = inst.handle.addr() else {
                continue;
            };
            if crate::drivers::health::probe(addr, &path, timeout)
                .await
                .is_ok()
            {
                any = true;
                break;
            }
        }
        failures = if any { 0 } else { failures + 1 };
        let now_healthy = any || failures < sc.health.unhealthy;
        if now_healthy != healthy {
            healthy = now_healthy;
            if tx
                .send(Input::StableHealth {
                    service: service.to_owned(),
                    healthy,
                })
                .is_err()
            {
                return;
            }
        }
    }
}

/// The core's view of a proxy observation.
pub(crate) fn stats_of(o: &Observation) -> Stats {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    Stats {
        requests: o.requests(),
        errors: o.statuses.server_error + o.proxy_errors,
        p50_ms: ms(o.p50()),
        p95_ms: ms(o.p95()),
        p99_ms: ms(o.p99()),
    }
}
