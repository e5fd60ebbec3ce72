//! Supervision between deploys: the serving instances of each environment are
//! watched after a rollout ends, and one that fails is replaced.
//!
//! - **What is watched:** while no release of the environment is in its
//!   rollout (`control.rs`: none registered and not concluded) and none waits
//!   for an operator, every HTTP instance on a track of the proxy's table and
//!   every running worker of the live set — the serving release, whether this
//!   daemon started it or adopted it after a restart. The warm previous
//!   release (in the live set, not in the table) is left to a rollback's own
//!   probe.
//! - **Failure:** an instance whose driver says it no longer runs (asked every
//!   [`EXIT_POLL`]: a watch for the daemon's own children and containers, a
//!   `/proc` read for adopted processes) or, for HTTP, that fails `unhealthy`
//!   health probes in a row (`drivers::health::Monitor`). It leaves the live
//!   set and the table at once (one read-modify-write of the table), and is
//!   drained and stopped in the background (`retire.rs`).
//! - **Replacement:** the same service, release and replica number, started
//!   like a rollout's instance (`start::launch`: recorded in the store before
//!   it starts, in the live set from then on, so the serving release's retire
//!   or a clean stop stops it), waited for until healthy (`start::wait_ready`),
//!   then put on the stable track. The first restart of a slot is immediate;
//!   each further failure of the same slot waits 1 s, doubling up to 30 s
//!   ([`backoff`]); a slot that stayed healthy for [`RESET_AFTER`] starts over.
//! - **Rollouts win:** a release pauses supervision before it registers
//!   (`executor::spawn` → [`Supervision::pause`]): a replacement still
//!   starting is stopped and taken out of the live set, so the release sees a
//!   live set no one else changes; supervision forgets what it knew and picks
//!   up the table as the release leaves it once its rollout has concluded.
//!   Every change supervision makes to the live set or the table happens under
//!   the same gate.
//! - **Seen from outside:** each change is an environment event (`kinds`) and
//!   a metric (`cutover_instance_failures_total`,
//!   `cutover_instance_restarts_total`, `cutover_healthy_instances`). The proxy
//!   is told only which instances are on which track: a service whose
//!   instances have all left the table is answered 503 with `Retry-After`.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::sync::{MutexGuard, mpsc};
use tokio::task::{JoinHandle, JoinSet};
use tokio::time::{Instant, MissedTickBehavior};
use tokio_util::sync::CancellationToken;

use super::deploy::fmt_duration;
use super::environment::{EnvRuntime, LiveInstance};
use super::{Daemon, retire, start};
use crate::config::ServiceKind;
use crate::drivers::health::{Monitor, MonitorState};
use crate::store::InstanceState;

/// How often each watched instance is asked whether it still runs.
pub const EXIT_POLL: Duration = Duration::from_millis(250);
/// The wait before the second restart of a slot; doubled for each further one.
pub const BACKOFF_FIRST: Duration = Duration::from_secs(1);
/// The longest wait between restarts of a slot.
pub const BACKOFF_MAX: Duration = Duration::from_secs(30);
/// A slot whose instance stayed healthy this long starts its backoff over.
pub const RESET_AFTER: Duration = Duration::from_secs(60);

/// Failures of serving instances, by environment, service and `reason`
/// (`exited`, `unhealthy`).
pub const FAILURES_TOTAL: &str = "cutover_instance_failures_total";
/// Replacement instances started, by environment and service.
pub const RESTARTS_TOTAL: &str = "cutover_instance_restarts_total";
/// Instances of a service that serve now, by environment and service: on a
/// track of the table (HTTP) or running (workers).
pub const HEALTHY_INSTANCES: &str = "cutover_healthy_instances";

/// Kinds of the environment events supervision records.
pub mod kinds {
    /// A serving instance exited; it left the table and is replaced.
    pub const INSTANCE_EXITED: &str = "instance_exited";
    /// A serving instance failed its health check `unhealthy` times in a row.
    pub const INSTANCE_UNHEALTHY: &str = "instance_unhealthy";
    /// A replacement was started.
    pub const INSTANCE_RESTARTED: &str = "instance_restarted";
    /// A replacement did not become healthy; another follows after a backoff.
    pub const INSTANCE_RESTART_FAILED: &str = "instance_restart_failed";
    /// A replacement is healthy and serves (back in the table).
    pub const INSTANCE_RECOVERED: &str = "instance_recovered";
}

/// Why a replacement ended early.
const CANCELLED: &str = "supervision paused (a release started) or stopped";

/// The wait before restarting a slot that has failed `failures` times
/// before (since it last stayed healthy for [`RESET_AFTER`]): none the first
/// time, then 1 s, 2 s, 4 s, … up to 30 s.
pub fn backoff(failures: u32) -> Duration {
    match failures {
        0 => Duration::ZERO,
        n => {
            let doublings = n.saturating_sub(1).min(16);
            BACKOFF_FIRST
                .saturating_mul(2u32.saturating_pow(doublings))
                .min(BACKOFF_MAX)
        }
    }
}

/// One environment's supervision: the gate that serialises its changes with
/// the start of a release, the replacements under way, and its task.
#[derive(Default)]
pub(crate) struct Supervision {
    gate: tokio::sync::Mutex<Work>,
    stop: CancellationToken,
    task: Mutex<Option<JoinHandle<()>>>,
}

/// What is behind the gate.
#[derive(Default)]
pub(crate) struct Work {
    /// Bumped by every pause: what the loop knew before is stale.
    generation: u64,
    /// Replacements under way.
    replacements: Vec<Replacement>,
    /// Failed instances being drained and stopped.
    retiring: JoinSet<()>,
}

struct Replacement {
    cancel: CancellationToken,
    task: JoinHandle<()>,
}

/// Supervision held still: nothing changes the live set or the table on its
/// behalf until this is dropped.
pub(crate) struct Paused<'a> {
    _work: MutexGuard<'a, Work>,
}

impl Supervision {
    /// Stops every replacement under way (its instance is stopped and leaves
    /// the live set) and holds the gate: the caller registers its release
    /// before dropping the guard, and supervision stays idle while that
    /// release's rollout runs.
    pub(crate) async fn pause(&self) -> Paused<'_> {
        let mut work = self.gate.lock().await;
        for r in &work.replacements {
            r.cancel.cancel();
        }
        for r in work.replacements.drain(..) {
            if let Err(e) = r.task.await
                && e.is_panic()
            {
                tracing::error!("a replacement task panicked");
            }
        }
        work.generation = work.generation.wrapping_add(1);
        Paused { _work: work }
    }
}

impl Daemon {
    /// Stops every replacement under way; with the daemon quiesced,
    /// supervision then does nothing until it is unquiesced (a hand-over:
    /// the new daemon supervises).
    pub async fn pause_supervision(&self) {
        for env in self.environments.values() {
            drop(env.supervision.pause().await);
        }
    }

    /// Starts supervising the serving instances of every environment (see the
    /// module doc); called once recovery is done. A second call does nothing.
    pub fn supervise(self: &Arc<Self>) {
        describe_metrics();
        for env in self.environments.values() {
            let mut task = env
                .supervision
                .task
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            if task.is_none() && !env.supervision.stop.is_cancelled() {
                *task = Some(tokio::spawn(run(self.clone(), env.clone())));
            }
        }
    }

    /// Stops supervision for good: once this returns nothing is restarted, a
    /// replacement under way has been stopped, and failed instances have been
    /// stopped. For a daemon that exits (or hands over to another).
    pub async fn stop_supervision(&self) {
        for env in self.environments.values() {
            env.supervision.stop.cancel();
            let task = env
                .supervision
                .task
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .take();
            if let Some(task) = task
                && let Err(e) = task.await
                && e.is_panic()
            {
                tracing::error!(env = %env.name, "the supervision task panicked");
            }
            let mut work = env.supervision.gate.lock().await;
            for r in &work.replacements {
                r.cancel.cancel();
            }
            for r in work.replacements.drain(..) {
                let _ = r.task.await;
            }
            while work.retiring.join_next().await.is_some() {}
        }
    }
}

/// Registers the metrics' descriptions with the installed recorder.
fn describe_metrics() {
    metrics::describe_counter!(
        FAILURES_TOTAL,
        metrics::Unit::Count,
        "Serving instances that exited or failed their health check between deploys, by environment, service and reason."
    );
    metrics::describe_counter!(
        RESTARTS_TOTAL,
        metrics::Unit::Count,
        "Replacement instances cutover started for failed ones, by environment and service."
    );
    metrics::describe_gauge!(
        HEALTHY_INSTANCES,
        metrics::Unit::Count,
        "Instances of a service that serve now: in the route table (http) or running (workers)."
    );
}

/// A replica of a service at a release: what a replacement takes over.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct SlotKey {
    service: String,
    version: String,
    n: u32,
}

/// What the loop remembers of a slot.
#[derive(Debug, Default)]
struct Slot {
    /// Failures since it last stayed healthy for [`RESET_AFTER`].
    failures: u32,
    /// When its current instance became healthy (or was first seen).
    healthy_since: Option<Instant>,
    /// A replacement to start, or under way.
    pending: Option<Pending>,
}

#[derive(Debug)]
struct Pending {
    kind: ServiceKind,
    /// The instance it replaces.
    replaces: String,
    /// When to start it.
    at: Instant,
    /// Started, not yet reported back.
    running: bool,
}

/// A watched instance.
struct Watched {
    inst: LiveInstance,
    slot: SlotKey,
    /// Health probes (HTTP instances).
    monitor: Option<Monitor>,
}

/// A replacement's end, reported to the loop.
struct Done {
    generation: u64,
    slot: SlotKey,
    result: Result<String, String>,
}

/// The loop's memory; forgotten on every pause.
#[derive(Default)]
struct State {
    generation: u64,
    watched: BTreeMap<String, Watched>,
    slots: BTreeMap<SlotKey, Slot>,
}

/// Why a watched instance failed.
enum Failure {
    Exited,
    Unhealthy(String),
}

/// The replica number in an instance id (`ENV-SERVICE-VERSION-N-XXXX`);
/// 0 when the id has another shape.
fn replica_of(id: &str) -> u32 {
    id.rsplit('-')
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// Whether supervision may act in `env` now.
fn active(env: &EnvRuntime) -> bool {
    env.releases.changing().is_none() && env.releases.stuck().is_none()
}

async fn run(daemon: Arc<Daemon>, env: Arc<EnvRuntime>) {
    let supervision = &env.supervision;
    let (done_tx, mut done_rx) = mpsc::unbounded_channel::<Done>();
    let mut state = State::default();
    let mut ticks = tokio::time::interval(EXIT_POLL);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            () = supervision.stop.cancelled() => return,
            _ = ticks.tick() => {}
            Some(done) = done_rx.recv() => finished(&env, &mut state, done),
        }
        let mut work = tokio::select! {
            () = supervision.stop.cancelled() => return,
            work = supervision.gate.lock() => work,
        };
        round(&daemon, &env, &mut state, &mut work, &done_tx).await;
    }
}

/// One look at every watched instance, under the gate.
async fn round(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    state: &mut State,
    work: &mut Work,
    done_tx: &mpsc::UnboundedSender<Done>,
) {
    work.replacements.retain(|r| !r.task.is_finished());
    while work.retiring.try_join_next().is_some() {}
    if work.generation != state.generation {
        *state = State {
            generation: work.generation,
            ..State::default()
        };
    }
    if daemon.is_quiesced() || !active(env) {
        state.watched.clear();
        state.slots.clear();
        gauges(daemon, env);
        return;
    }
    discover(daemon, env, state);
    let live = env.instances();
    let ids: Vec<String> = state.watched.keys().cloned().collect();
    for id in ids {
        let Some(w) = state.watched.get(&id) else {
            continue;
        };
        if !live.iter().any(|i| i.id == id) {
            // Retired or replaced by someone else: not a failure.
            state.watched.remove(&id);
            continue;
        }
        let failure = if !daemon.driver.is_running(&w.inst.handle) {
            Failure::Exited
        } else if let Some(MonitorState::Unhealthy { last_error }) =
            w.monitor.as_ref().map(Monitor::state)
        {
            Failure::Unhealthy(last_error.to_string())
        } else {
            continue;
        };
        if let Some(w) = state.watched.remove(&id) {
            fail(daemon, env, state, work, w, failure).await;
        }
    }
    restart_due(daemon, env, state, work, done_tx);
    gauges(daemon, env);
}

/// Starts watching the serving instances not watched yet.
fn discover(daemon: &Daemon, env: &EnvRuntime, state: &mut State) {
    let routed = env.routed_ids();
    for inst in env.instances() {
        let serving = match inst.kind {
            ServiceKind::Http => routed.contains(&inst.id),
            ServiceKind::Worker => true,
        };
        if !serving || state.watched.contains_key(&inst.id) {
            continue;
        }
        let slot = SlotKey {
            service: inst.service.clone(),
            version: inst.version.clone(),
            n: replica_of(&inst.id),
        };
        let entry = state.slots.entry(slot.clone()).or_default();
        if entry.pending.as_ref().is_some_and(|p| p.running) {
            // Its replacement, still being started: watched once it is done.
            continue;
        }
        entry.pending = None;
        entry.healthy_since.get_or_insert_with(Instant::now);
        let monitor = match (inst.kind, inst.handle.addr()) {
            (ServiceKind::Http, Some(addr)) => daemon
                .config
                .service_in(&env.name, &inst.service)
                .map(|sc| Monitor::spawn(addr, super::health_check(sc))),
            _ => None,
        };
        tracing::debug!(env = %env.name, instance = %inst.id, "supervising");
        state.watched.insert(
            inst.id.clone(),
            Watched {
                inst,
                slot,
                monitor,
            },
        );
    }
}

/// A watched instance failed: out of the live set and the table now, drained
/// and stopped in the background, its replacement scheduled.
async fn fail(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    state: &mut State,
    work: &mut Work,
    watched: Watched,
    failure: Failure,
) {
    let Watched { inst, slot, .. } = watched;
    let taken = env.take(|i| i.id == inst.id);
    if taken.is_empty() {
        return; // someone else took it
    }
    if inst.kind == ServiceKind::Http
        && let Err(e) = env.remove_from_table(&inst.service, &inst.id)
    {
        tracing::error!(env = %env.name, instance = %inst.id, error = %e, "cannot take a failed instance out of the table");
    }
    let entry = state.slots.entry(slot.clone()).or_default();
    if entry
        .healthy_since
        .is_some_and(|t| t.elapsed() >= RESET_AFTER)
    {
        entry.failures = 0;
    }
    let delay = backoff(entry.failures);
    entry.failures = entry.failures.saturating_add(1);
    entry.healthy_since = None;
    entry.pending = Some(Pending {
        kind: inst.kind,
        replaces: inst.id.clone(),
        at: Instant::now()
            .checked_add(delay)
            .unwrap_or_else(Instant::now),
        running: false,
    });
    let left = serving_count(env, &inst.service);
    let when = if delay.is_zero() {
        "now".to_owned()
    } else {
        format!("in {}", fmt_duration(delay))
    };
    let (kind, reason, what) = match &failure {
        Failure::Exited => {
            let (what, _) =
                start::explain_failure(daemon, &inst, &format!("{} exited", inst.id)).await;
            (kinds::INSTANCE_EXITED, "exited", what)
        }
        Failure::Unhealthy(last) => {
            let count = daemon
                .config
                .service_in(&env.name, &inst.service)
                .map_or(1, |s| s.health.unhealthy);
            (
                kinds::INSTANCE_UNHEALTHY,
                "unhealthy",
                format!(
                    "{} failed {count} health check(s) in a row (last: {last})",
                    inst.id
                ),
            )
        }
    };
    let place = match inst.kind {
        ServiceKind::Http => "out of the table",
        ServiceKind::Worker => "stopped",
    };
    let message = format!(
        "{what}; {place}, restarting {when} ({} instance(s) of {} serve)",
        left, inst.service
    );
    metrics::counter!(
        FAILURES_TOTAL,
        "environment" => env.name.clone(),
        "service" => inst.service.clone(),
        "reason" => reason
    )
    .increment(1);
    env_event(
        daemon,
        env,
        kind,
        &message,
        json!({
            "instance": inst.id,
            "service": inst.service,
            "version": inst.version,
            "restart_in_ms": u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
            "serving": left,
        }),
    )
    .await;
    let (daemon, env) = (daemon.clone(), env.clone());
    let why = format!("{reason}; replaced by supervision");
    work.retiring.spawn(async move {
        retire::retire_now(&daemon, &env, taken, &why).await;
    });
}

/// Instances of `service` that serve now: on a track (HTTP) or running
/// (workers).
fn serving_count(env: &EnvRuntime, service: &str) -> usize {
    let routed = env.routed_ids();
    env.instances()
        .iter()
        .filter(|i| i.service == service)
        .filter(|i| match i.kind {
            ServiceKind::Http => routed.contains(&i.id),
            ServiceKind::Worker => true,
        })
        .count()
}

/// Starts the replacements whose time has come.
fn restart_due(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    state: &mut State,
    work: &mut Work,
    done_tx: &mpsc::UnboundedSender<Done>,
) {
    let now = Instant::now();
    for (slot, entry) in &mut state.slots {
        let Some(pending) = entry.pending.as_mut() else {
            continue;
        };
        if pending.running || pending.at > now {
            continue;
        }
        pending.running = true;
        let cancel = CancellationToken::new();
        let job = Job {
            daemon: daemon.clone(),
            env: env.clone(),
            slot: slot.clone(),
            kind: pending.kind,
            replaces: pending.replaces.clone(),
            next_delay: backoff(entry.failures),
            cancel: cancel.clone(),
        };
        let (tx, generation) = (done_tx.clone(), state.generation);
        let task = tokio::spawn(async move {
            let slot = job.slot.clone();
            let result = job.run().await;
            let _ = tx.send(Done {
                generation,
                slot,
                result,
            });
        });
        work.replacements.push(Replacement { cancel, task });
    }
}

/// A replacement's end, in the loop.
fn finished(env: &EnvRuntime, state: &mut State, done: Done) {
    if done.generation != state.generation {
        return;
    }
    let Some(entry) = state.slots.get_mut(&done.slot) else {
        return;
    };
    match done.result {
        Ok(_) => {
            entry.pending = None;
            entry.healthy_since = Some(Instant::now());
        }
        Err(reason) => {
            if reason == CANCELLED {
                entry.pending = None;
                return;
            }
            let delay = backoff(entry.failures);
            entry.failures = entry.failures.saturating_add(1);
            if let Some(pending) = entry.pending.as_mut() {
                pending.running = false;
                pending.at = Instant::now()
                    .checked_add(delay)
                    .unwrap_or_else(Instant::now);
            }
            tracing::warn!(env = %env.name, service = %done.slot.service, next_in = ?delay, "replacement failed");
        }
    }
}

/// One replacement, on its own task.
struct Job {
    daemon: Arc<Daemon>,
    env: Arc<EnvRuntime>,
    slot: SlotKey,
    kind: ServiceKind,
    replaces: String,
    /// The wait before the next attempt if this one fails.
    next_delay: Duration,
    cancel: CancellationToken,
}

impl Job {
    /// Starts the replacement, waits until it is ready and puts it in the
    /// table; the new instance's id, or why not. On any failure (or a
    /// cancel) the new instance is stopped and out of the live set.
    async fn run(self) -> Result<String, String> {
        let (daemon, env) = (&self.daemon, &self.env);
        let SlotKey {
            service,
            version,
            n,
            ..
        } = &self.slot;
        let Some(sc) = daemon.config.service_in(&env.name, service) else {
            return Err(format!("no service named {service}"));
        };
        if self.cancel.is_cancelled() {
            return Err(CANCELLED.into());
        }
        // Not cancellable while it starts: the instance must be known (in
        // the live set) before anything may stop it.
        let inst = match start::launch(daemon, env, version, service, *n).await {
            Ok(inst) => inst,
            Err(why) => {
                let message = format!(
                    "cannot start a replacement of {}: {why}; next attempt in {}",
                    self.replaces,
                    fmt_duration(self.next_delay)
                );
                env_event(
                    daemon,
                    env,
                    kinds::INSTANCE_RESTART_FAILED,
                    &message,
                    json!({ "replaces": self.replaces, "service": service }),
                )
                .await;
                return Err(message);
            }
        };
        metrics::counter!(
            RESTARTS_TOTAL,
            "environment" => env.name.clone(),
            "service" => service.clone()
        )
        .increment(1);
        let place = inst
            .handle
            .addr()
            .map(|a| format!(" on {a}"))
            .unwrap_or_default();
        env_event(
            daemon,
            env,
            kinds::INSTANCE_RESTARTED,
            &format!(
                "{} started{place} in place of {} ({})",
                inst.id,
                self.replaces,
                inst.handle.describe()
            ),
            json!({
                "instance": inst.id,
                "replaces": self.replaces,
                "service": service,
                "version": version,
                "addr": inst.handle.addr().map(|a| a.to_string()),
            }),
        )
        .await;
        let ready = tokio::select! {
            ready = start::wait_ready(daemon, env, &inst, sc) => ready,
            () = self.cancel.cancelled() => return Err(self.withdraw(inst).await),
        };
        let took = match ready {
            Ok(took) => took,
            Err(why) => {
                let (what, tail) = start::explain_failure(
                    daemon,
                    &inst,
                    &format!("{} did not become healthy: {why}", inst.id),
                )
                .await;
                let message = format!("{what}\nnext attempt in {}", fmt_duration(self.next_delay));
                env_event(
                    daemon,
                    env,
                    kinds::INSTANCE_RESTART_FAILED,
                    &message,
                    json!({
                        "instance": inst.id,
                        "replaces": self.replaces,
                        "service": service,
                        "log_tail": tail,
                    }),
                )
                .await;
                self.withdraw(inst).await;
                return Err(message);
            }
        };
        let _gate = tokio::select! {
            gate = env.supervision.gate.lock() => gate,
            () = self.cancel.cancelled() => return Err(self.withdraw(inst).await),
        };
        if self.cancel.is_cancelled() || !env.instances().iter().any(|i| i.id == inst.id) {
            return Err(self.withdraw(inst).await);
        }
        if let Err(e) = env.add_to_stable(&inst) {
            let message = format!("cannot put {} in the table: {e}", inst.id);
            self.withdraw(inst).await;
            return Err(message);
        }
        if let Err(e) = daemon
            .store
            .set_instance_state(&inst.id, InstanceState::Serving)
            .await
        {
            daemon.log_store_error("cannot record an instance's state", &e);
        }
        let count = serving_count(env, service);
        let place = match self.kind {
            ServiceKind::Http => "back in the table",
            ServiceKind::Worker => "running",
        };
        env_event(
            daemon,
            env,
            kinds::INSTANCE_RECOVERED,
            &format!(
                "{} healthy after {}: {place} in place of {} ({count} instance(s) of {service} serve)",
                inst.id,
                fmt_duration(took),
                self.replaces
            ),
            json!({
                "instance": inst.id,
                "replaces": self.replaces,
                "service": service,
                "ms": u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
                "serving": count,
            }),
        )
        .await;
        Ok(inst.id)
    }

    /// Takes the new instance back out of the live set (if it is still
    /// there: a clean stop may have taken it) and stops it; why.
    async fn withdraw(&self, inst: LiveInstance) -> String {
        let gone = self.env.take(|i| i.id == inst.id);
        start::stop_unrouted(&self.daemon, &self.env, gone).await;
        if self.cancel.is_cancelled() {
            CANCELLED.to_owned()
        } else {
            format!("{} was withdrawn", inst.id)
        }
    }
}

/// Sets the gauge of serving instances of every service.
fn gauges(daemon: &Daemon, env: &EnvRuntime) {
    for service in daemon.config.services.keys() {
        let count = serving_count(env, service);
        metrics::gauge!(
            HEALTHY_INSTANCES,
            "environment" => env.name.clone(),
            "service" => service.clone()
        )
        .set(count as f64);
    }
}

/// Records an environment event (best effort: logged when the store fails).
async fn env_event(
    daemon: &Daemon,
    env: &EnvRuntime,
    kind: &str,
    message: &str,
    data: serde_json::Value,
) {
    tracing::info!(
        env = %env.name,
        kind,
        "{}",
        crate::label::printable_lines(message, " | ")
    );
    if let Err(e) = daemon
        .store
        .add_environment_event(&env.name, kind, message, data)
        .await
    {
        daemon.log_store_error("cannot record an environment event", &e);
    }
}

#[cfg(test)]
mod tests {
    use super::{Duration, backoff, replica_of};

    #[test]
    fn backoff_is_immediate_then_doubles_from_one_second_up_to_thirty() {
        let waits: Vec<u64> = (0..9).map(|n| backoff(n).as_millis() as u64).collect();
        assert_eq!(
            waits,
            [0, 1000, 2000, 4000, 8000, 16000, 30000, 30000, 30000]
        );
        assert_eq!(backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn the_replica_number_comes_from_the_instance_id() {
        assert_eq!(replica_of("production-web-v1.2-3-0a1f"), 3);
        assert_eq!(replica_of("prod-eu-web-app-v-1-0-ffff"), 0);
        assert_eq!(replica_of("prod-eu-web-app-v-1-12-ffff"), 12);
        assert_eq!(replica_of("odd"), 0);
    }
}
