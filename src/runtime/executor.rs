//! The executor: the async shell around one `cutover_core::Release`. It reads
//! the clock, turns the machine's actions into store, proxy, driver and
//! database calls, and feeds the results back as inputs (str0m style: after
//! every input, drain every output). It decides nothing itself.
//!
//! - The store writes (`Persist`, events, `Conclude`) and what happens when
//!   they fail are `journal.rs`'s: a failed save is answered `SaveFailed` and
//!   the machine holds, so a full disk never makes the daemon act on state it
//!   could not save.
//! - The traffic actions of the rollout are carried out by `traffic.rs`.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use cutover_core::{EventKind, Millis, Release, ReleaseAction, ReleaseInput, ReleaseOutput, Stage};
use tokio::sync::{mpsc, watch};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::control::{AwaitingSwitch, Control, ReleaseHandle};
use super::environment::EnvRuntime;
use super::journal::Journal;
use super::{Daemon, approval, retire, schema};
use crate::store::{InstanceState, Store};

/// Timeout of the single probe that checks a warm release before a rollback.
const WARM_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// Whether `release` waits (or will wait, once started) for approvals
/// before it changes anything (a gate at the switch does not count: its
/// release has started by then).
pub(crate) fn gated(release: &Release) -> bool {
    awaits_before_start(release)
        || (release.state().phase == cutover_core::Phase::Pending
            && release.plan().kind == cutover_core::ReleaseKind::Deploy
            && release
                .plan()
                .approval
                .as_ref()
                .is_some_and(|a| a.at == cutover_core::ApprovalAt::Start))
}

/// Whether `release` holds before it started anything, for approvals.
fn awaits_before_start(release: &Release) -> bool {
    matches!(
        release.state().phase,
        cutover_core::Phase::AwaitingApproval { .. }
    )
}

/// Wall-clock milliseconds since the Unix epoch: the core's `now`.
pub(crate) fn now() -> Millis {
    let ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default();
    Millis(u64::try_from(ms).unwrap_or(u64::MAX))
}

/// A start of a service's instances under way, and how to stop it.
pub(crate) struct StartTask {
    pub(crate) cancel: CancellationToken,
    pub(crate) task: JoinHandle<()>,
}

/// One release being carried out.
pub(crate) struct Executor {
    pub(crate) daemon: Arc<Daemon>,
    pub(crate) env: Arc<EnvRuntime>,
    pub(crate) id: i64,
    /// Who holds the environment's lock for this deployment.
    pub(crate) holder: String,
    pub(crate) release: Release,
    pub(crate) answers_tx: mpsc::UnboundedSender<ReleaseInput>,
    answers_rx: mpsc::UnboundedReceiver<ReleaseInput>,
    /// Per service: its start (and then its health watch).
    pub(crate) starts: BTreeMap<String, StartTask>,
    /// Watches of the old release's health.
    pub(crate) monitors: Vec<JoinHandle<()>>,
    /// The release's store writes and their policy on failure.
    journal: Journal<Store>,
    concluded: Arc<AtomicBool>,
    awaiting: Arc<AtomicBool>,
    /// A release behind an approval gate ends the rollback windows of the
    /// releases before it only once it acts (approved): a rejected or
    /// expired one leaves them as they were.
    clear_way: bool,
    /// Which service awaits the switch (for status and `cutover switch`).
    awaiting_switch: Arc<std::sync::Mutex<Option<AwaitingSwitch>>>,
    /// Where the release stands, for status.
    progress: Arc<std::sync::Mutex<Option<super::progress::Progress>>>,
}

impl Executor {
    pub(crate) fn new(
        daemon: Arc<Daemon>,
        env: Arc<EnvRuntime>,
        id: i64,
        holder: String,
        release: Release,
    ) -> Executor {
        let (answers_tx, answers_rx) = mpsc::unbounded_channel();
        let concluded = Arc::new(AtomicBool::new(release.is_concluded()));
        let awaiting = Arc::new(AtomicBool::new(awaits_before_start(&release)));
        let clear_way = gated(&release);
        let (daemon_store, env_name, holder_name) =
            (daemon.store.clone(), env.name.clone(), holder.clone());
        Executor {
            daemon,
            env,
            id,
            holder,
            release,
            answers_tx,
            answers_rx,
            starts: BTreeMap::new(),
            monitors: Vec::new(),
            journal: Journal::new(daemon_store, id, &env_name, &holder_name),
            concluded,
            awaiting,
            clear_way,
            awaiting_switch: Arc::default(),
            progress: Arc::default(),
        }
    }

    /// The version this release brings.
    pub(crate) fn version(&self) -> String {
        self.release.plan().version().to_owned()
    }

    /// The version it replaces.
    pub(crate) fn old_version(&self) -> Option<String> {
        self.release.plan().previous().map(str::to_owned)
    }

    /// Registers the release in its environment; [`Executor::run`] must follow.
    pub(crate) fn register(&self) -> (ReleaseHandle, mpsc::Receiver<Control>, watch::Sender<bool>) {
        let (tx, rx) = mpsc::channel(8);
        let (done_tx, done_rx) = watch::channel(false);
        let handle = ReleaseHandle {
            id: self.id,
            tx,
            concluded: self.concluded.clone(),
            awaiting: self.awaiting.clone(),
            held: self.journal.held_cell(),
            awaiting_switch: self.awaiting_switch.clone(),
            progress: self.progress.clone(),
            done: done_rx,
        };
        self.env.releases.register(handle.clone());
        (handle, rx, done_tx)
    }

    /// Carries the release out to its end; `start` feeds `Start` first (a
    /// restored release has its actions queued already).
    pub(crate) async fn run(
        mut self,
        start: bool,
        mut control: mpsc::Receiver<Control>,
        done: watch::Sender<bool>,
    ) {
        if start {
            self.release.handle_input(now(), ReleaseInput::Start);
        }
        loop {
            let wake = self.drain().await;
            self.concluded
                .store(self.release.is_concluded(), Ordering::SeqCst);
            self.awaiting
                .store(awaits_before_start(&self.release), Ordering::SeqCst);
            self.after_drain();
            if self.release.is_done() {
                break;
            }
            let sleep = wake.map(|t| Duration::from_millis(t.since(now()).0));
            tokio::select! {
                Some(input) = self.answers_rx.recv() => self.release.handle_input(now(), input),
                Some(message) = control.recv() => self.control(message).await,
                _ = tokio::time::sleep(sleep.unwrap_or_default()), if sleep.is_some() => {
                    self.release.handle_input(now(), ReleaseInput::Tick);
                }
            }
        }
        self.stop_tasks().await;
        *self
            .awaiting_switch
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = None;
        self.env.releases.unregister(self.id);
        let _ = done.send(true);
    }

    /// What the rest of the daemon reads from the machine after a drain:
    /// which service awaits the switch, and the preview's pins (a service
    /// whose new instances are healthy — awaiting the switch, at a step,
    /// promoted — shows this release on the preview; one sent back does not).
    fn after_drain(&mut self) {
        *self.progress.lock().unwrap_or_else(|p| p.into_inner()) =
            Some(super::progress::of(self.id, &self.release));
        let rollout = self.release.rollout();
        let awaiting = rollout
            .and_then(|r| r.awaiting_switch())
            .map(|service| AwaitingSwitch {
                deployment: self.id,
                version: self.version(),
                service: service.to_owned(),
            });
        *self
            .awaiting_switch
            .lock()
            .unwrap_or_else(|p| p.into_inner()) = awaiting;
        if let Some(r) = rollout {
            let pins: Vec<(String, bool)> = r
                .plan()
                .services
                .iter()
                .zip(&r.state().services)
                .map(|(plan, state)| {
                    let shown = matches!(
                        state.stage,
                        Stage::AwaitingSwitch
                            | Stage::Stepping { .. }
                            | Stage::Promoted
                            | Stage::KeptNew
                    );
                    (plan.name.clone(), shown)
                })
                .collect();
            self.env.pin_preview(&self.version(), &pins);
        }
    }

    async fn control(&mut self, message: Control) {
        match message {
            Control::Rollout { command, reply } => {
                let result = self.release.command(now(), command).map_err(|r| r.0);
                let _ = reply.send(result);
            }
            Control::EndWindow => {
                self.release.end_window(now());
            }
            Control::Supersede { reply } => {
                let result = self.release.supersede(now()).map_err(|r| r.0);
                let _ = reply.send(result);
            }
            Control::Decide { decision, reply } => {
                let result = approval::take(&mut self.release, now(), &decision);
                if let Ok(decided) = result {
                    approval::record_decision(&mut self.journal, self.id, &decision, decided).await;
                    if let approval::Decided::Approved { .. } = decided {
                        // From here the release changes the environment:
                        // supervision stops any replacement under way and
                        // stays idle while this release rolls.
                        self.awaiting.store(false, Ordering::SeqCst);
                        drop(self.env.supervision.pause().await);
                    }
                }
                let _ = reply.send(result);
            }
        }
    }

    /// Carries out every queued output; returns when the machine next wants a tick.
    async fn drain(&mut self) -> Option<Millis> {
        loop {
            match self.release.poll_output() {
                ReleaseOutput::Action(action) => {
                    if self.clear_way
                        && !matches!(
                            action,
                            ReleaseAction::Persist { .. } | ReleaseAction::Conclude(_)
                        )
                    {
                        // Approved: releases of one environment never
                        // overlap (see `deploy::begin_deploy`).
                        self.clear_way = false;
                        self.env.releases.end_windows_and_wait(self.id).await;
                    }
                    if let Some(input) = self.act(action).await {
                        self.release.handle_input(now(), input);
                    }
                }
                ReleaseOutput::Event(event) => self.journal.record(event).await,
                ReleaseOutput::Timeout(t) => return Some(t),
                ReleaseOutput::Idle => return None,
            }
        }
    }

    async fn act(&mut self, action: ReleaseAction) -> Option<ReleaseInput> {
        match action {
            ReleaseAction::Persist { state, serving } => Some(
                self.journal
                    .save(self.release.plan(), &state, serving.as_deref())
                    .await,
            ),
            ReleaseAction::Rollout(action) => self.traffic(action).await.map(ReleaseInput::Rollout),
            ReleaseAction::Backup => {
                let result = super::backup::before_deploy(
                    &self.daemon,
                    &self.env.name,
                    self.id,
                    &self.version(),
                )
                .await
                .map(drop);
                Some(ReleaseInput::BackupDone(result))
            }
            ReleaseAction::Expand => {
                let result = schema::expand(
                    &self.daemon,
                    &self.env.name,
                    self.id,
                    &self.version(),
                    &self.holder,
                )
                .await;
                Some(ReleaseInput::ExpandDone(result))
            }
            ReleaseAction::ProbeWarm { version } => {
                let ready = self.probe_warm(&version).await;
                Some(ReleaseInput::WarmProbed { ready })
            }
            ReleaseAction::SwitchTo { version } => {
                self.switch_to(&version).await;
                None
            }
            ReleaseAction::Conclude(outcome) => {
                let switched_back = self.release.rollout().is_none();
                self.journal.conclude(&outcome, switched_back).await;
                None
            }
            ReleaseAction::Retire { keep, services } => {
                self.retire(keep.as_deref(), &services).await;
                Some(ReleaseInput::Retired)
            }
            ReleaseAction::Contract => {
                let targets = self.release.plan().contract.clone();
                let result = schema::contract(
                    &self.daemon,
                    &self.env.name,
                    self.id,
                    &self.version(),
                    &targets,
                )
                .await;
                Some(ReleaseInput::ContractDone(result))
            }
        }
    }

    /// Drains and stops every instance of `services` that does not run
    /// `keep` and that the proxy does not route to, except the only running
    /// copy of a service (see below).
    async fn retire(&mut self, keep: Option<&str>, services: &[String]) {
        // A start still under way would add instances after this sweep.
        self.stop_starts(|s| services.iter().any(|x| x == s)).await;
        let routed = self.env.routed_ids();
        let all = self.env.instances();
        let driver = &self.daemon.driver;
        // Never stop the only running copy of a service: a worker whose
        // previous instances are gone (replaced one by one, and not brought
        // back), or an http service whose previous instances died (while a
        // rollback waited for the store, say). What else runs stays, for an
        // operator. A service the kept release never had is not protected:
        // its new instances never served.
        let protected: Vec<String> = match keep {
            None => Vec::new(),
            Some(k) => services
                .iter()
                .filter(|svc| {
                    let is_worker = self
                        .daemon
                        .config
                        .service_in(&self.env.name, svc.as_str())
                        .is_some_and(|c| c.kind == crate::config::ServiceKind::Worker);
                    let (mut exists, mut runs) = (false, false);
                    for i in all.iter().filter(|i| &i.service == *svc && i.version == k) {
                        exists = true;
                        runs |= driver.is_running(&i.handle);
                    }
                    !runs && (exists || is_worker)
                })
                .cloned()
                .collect(),
        };
        for service in &protected {
            self.journal
                .note(
                    EventKind::Kept,
                    format!(
                        "{service}: nothing of {} runs, so its other instances are kept",
                        keep.unwrap_or("the kept release")
                    ),
                )
                .await;
        }
        let gone = self.env.take(|i| {
            services.contains(&i.service)
                && Some(i.version.as_str()) != keep
                && !routed.contains(&i.id)
                && !protected.contains(&i.service)
        });
        if gone.is_empty() {
            return;
        }
        let why = match keep {
            Some(k) if Some(k) == self.release.plan().previous() => "rolled back",
            Some(_) => "replaced by a newer release",
            None => "rolled back",
        };
        retire::retire_now(&self.daemon, &self.env, gone, why).await;
    }

    /// Rollback: is every service of `version` still running and healthy?
    /// Instances that fail the probe are stopped.
    async fn probe_warm(&mut self, version: &str) -> bool {
        let daemon = self.daemon.clone();
        let warm = self.env.of_version(version);
        // One health request to each instance, all at once: the rollback
        // waits for the slowest, not for their sum.
        let env_name = self.env.name.clone();
        let checks = warm.iter().map(|inst| {
            let (daemon, env_name) = (&daemon, &env_name);
            async move {
                daemon.driver.is_running(&inst.handle)
                    && match (inst.kind, inst.handle.addr()) {
                        (crate::config::ServiceKind::Http, None) => false,
                        (crate::config::ServiceKind::Http, Some(addr)) => {
                            let path = daemon
                                .config
                                .service_in(env_name, &inst.service)
                                .map(|s| s.health.path.clone())
                                .unwrap_or_else(|| "/health".into());
                            crate::drivers::health::probe(addr, &path, WARM_PROBE_TIMEOUT)
                                .await
                                .is_ok()
                        }
                        (crate::config::ServiceKind::Worker, _) => true,
                    }
            }
        });
        let passed = futures_util::future::join_all(checks).await;
        let healthy: Vec<_> = warm
            .into_iter()
            .zip(passed)
            .filter_map(|(inst, ok)| ok.then_some(inst))
            .collect();
        let complete = daemon
            .config
            .services
            .keys()
            .all(|svc| healthy.iter().any(|i| &i.service == svc));
        let healthy_ids: Vec<String> = healthy.iter().map(|i| i.id.clone()).collect();
        let (stale, kind, message) = if complete {
            (
                self.env
                    .take(|i| i.version == version && !healthy_ids.contains(&i.id)),
                EventKind::Warm,
                format!(
                    "{version} is still warm ({} instances): switching back",
                    healthy.len()
                ),
            )
        } else {
            (
                self.env.take(|i| i.version == version),
                EventKind::Cold,
                format!("{version} is no longer running: starting it again (blue-green)"),
            )
        };
        self.journal.note(kind, message).await;
        if !stale.is_empty() {
            let why = if complete {
                "failed its check before rollback"
            } else {
                "replaced by a fresh start"
            };
            retire::retire_now(&daemon, &self.env, stale, why).await;
        }
        complete
    }

    /// One table swap to `version`'s instances.
    async fn switch_to(&mut self, version: &str) {
        let instances = self.env.of_version(version);
        // The whole environment goes to one release: so does its preview.
        self.env.clear_preview_pins();
        match self.env.switch_to(&instances) {
            Ok(generation) => {
                self.journal
                    .note(
                        EventKind::Switched,
                        format!("switched {}: 100% of traffic on {version}", self.env.name),
                    )
                    .await;
                tracing::debug!(generation, "table swapped");
            }
            Err(e) => {
                tracing::error!(env = %self.env.name, error = %e, "cannot update the proxy table")
            }
        }
        for inst in &instances {
            let _ = self
                .daemon
                .store
                .set_instance_state(&inst.id, InstanceState::Serving)
                .await;
        }
    }

    /// Cancels the starts (and health watches) of the services `pick`
    /// selects and waits until they have stopped: every instance they started
    /// is in the environment's live set afterwards, none is started later.
    pub(crate) async fn stop_starts(&mut self, pick: impl Fn(&str) -> bool) {
        let names: Vec<String> = self.starts.keys().filter(|s| pick(s)).cloned().collect();
        for name in names {
            if let Some(start) = self.starts.remove(&name) {
                start.cancel.cancel();
                if let Err(e) = start.task.await
                    && e.is_panic()
                {
                    tracing::error!(service = %name, "a start task panicked");
                }
            }
        }
    }

    async fn stop_tasks(&mut self) {
        self.stop_starts(|_| true).await;
        for m in self.monitors.drain(..) {
            m.abort();
        }
    }
}

/// Starts an executor for `release` in the background; `start` feeds `Start`.
/// Supervision of the environment is paused first (a replacement it is
/// starting is stopped), and stays paused while the release's rollout runs
/// (`supervise.rs`): the release sees a live set no one else changes. When
/// the daemon is quiesced (it hands over to a new daemon, or stops), the
/// task ends where it is, as if the daemon had crashed: what it saved is
/// what the next daemon restores.
pub(crate) async fn spawn(executor: Executor, start: bool) -> ReleaseHandle {
    let env = executor.env.clone();
    let paused = env.supervision.pause().await;
    let (handle, control, done) = executor.register();
    drop(paused);
    let quiesced = executor.daemon.quiesced();
    let id = executor.id;
    if quiesced.is_cancelled() {
        env.releases.unregister(id);
        return handle;
    }
    tokio::spawn(async move {
        tokio::select! {
            () = executor.run(start, control, done) => {}
            () = quiesced.cancelled() => {
                tracing::info!(deployment = id, "release paused: the daemon is handing over or stopping");
                env.releases.unregister(id);
            }
        }
    });
    handle
}
