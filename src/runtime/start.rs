//! Starting a service's instances for a rollout, whichever driver runs them.
//!
//! - http services: every replica at once, then wait until all are healthy
//!   ([`start_service`]); they join the live set, not yet the proxy's table.
//! - workers: a rolling restart, one instance at a time ([`start_workers`]):
//!   start new #1, wait until it is ready, stop old #1, then #2, … A new
//!   worker that fails is stopped, the old ones not yet replaced keep running,
//!   and the rollout fails. A revert puts the previous release's workers back
//!   the same way, one at a time ([`restore_workers`]).
//! - workers whose driver hands a release over in place
//!   (`Drivers::hands_over_in_place`: the engine rolls one long-lived service
//!   itself): every replica is recorded, the driver's `hand_over` rolls the
//!   service and waits for the engine's verdict, then the old release's
//!   instances are retired ([`hand_over_workers`]); a revert hands it back.
//!
//! Any failure says why, with the last lines of the failing instance's output.

use cutover_core::EventKind;
use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;

use super::deploy::{event, fmt_duration};
use super::environment::{EnvRuntime, LiveInstance};
use super::{Daemon, retire};
use crate::config::{ServiceConfig, ServiceKind};
use crate::drivers::{Drivers, InstanceSpec, check, health};
use crate::store::{InstanceRecord, InstanceState};

/// Lines of a failing instance's output shown with the failure (the
/// drivers cap what they quote at 20 lines and 4 KiB).
const LOG_TAIL_LINES: usize = 15;

/// Starts every replica of one service at `version` and waits until all are
/// ready; they join the environment's live set (not the proxy's table). On
/// any failure, stops them all and says why. Workers are started one at a
/// time ([`start_workers`] with no old instances).
pub(crate) async fn start_service(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    id: i64,
    version: &str,
    svc: &str,
    cancel: &CancellationToken,
) -> Result<Vec<LiveInstance>, String> {
    let Some(sc) = daemon.config.service_in(&env.name, svc) else {
        return Err(format!("no service named {svc}"));
    };
    if sc.kind == ServiceKind::Worker {
        return start_workers(daemon, env, id, version, svc, Vec::new(), cancel).await;
    }
    let mut started: Vec<LiveInstance> = Vec::new();
    for n in 0..sc.replicas {
        if cancel.is_cancelled() {
            return Err(CANCELLED.into());
        }
        match start_one(daemon, env, id, version, svc, n).await {
            Ok(live) => started.push(live),
            Err(reason) => {
                stop_started(daemon, env, &started).await;
                return Err(reason);
            }
        }
    }

    let mut checks = JoinSet::new();
    for inst in &started {
        let (daemon, env, inst, sc) = (daemon.clone(), env.clone(), inst.clone(), sc.clone());
        checks.spawn(async move {
            let result = wait_ready(&daemon, &env, &inst, &sc).await;
            (inst, result)
        });
    }
    let mut failures = Vec::new();
    loop {
        let joined = tokio::select! {
            joined = checks.join_next() => joined,
            _ = cancel.cancelled() => {
                // The instances stay in the live set: whoever cancelled
                // stops them.
                checks.abort_all();
                return Err(CANCELLED.into());
            }
        };
        let Some(joined) = joined else { break };
        let Ok((inst, result)) = joined else {
            failures.push("a health check task panicked".to_owned());
            continue;
        };
        match result {
            Ok(took) => healthy(daemon, id, &inst, took).await,
            Err(why) => failures.push(failed(daemon, id, &inst, &why).await),
        }
    }
    if let Some(first) = failures.into_iter().next() {
        stop_started(daemon, env, &started).await;
        return Err(first);
    }
    Ok(started)
}

/// Why a start ended early.
const CANCELLED: &str = "the start was cancelled";

/// Takes instances this start added to the live set back out and stops them.
async fn stop_started(daemon: &Daemon, env: &EnvRuntime, started: &[LiveInstance]) {
    let ids: Vec<&str> = started.iter().map(|i| i.id.as_str()).collect();
    let gone = env.take(|i| ids.contains(&i.id.as_str()));
    stop_unrouted(daemon, env, gone).await;
}

/// Rolls a worker service to `version` one instance at a time, replacing the
/// `old` instances as it goes (see the module doc). On failure the new
/// instances that became ready stay in the live set (a revert replaces them
/// with the previous release again, see [`restore_workers`]).
pub(crate) async fn start_workers(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    id: i64,
    version: &str,
    svc: &str,
    mut old: Vec<LiveInstance>,
    cancel: &CancellationToken,
) -> Result<Vec<LiveInstance>, String> {
    let Some(sc) = daemon.config.service_in(&env.name, svc) else {
        return Err(format!("no service named {svc}"));
    };
    if Drivers::hands_over_in_place(sc.docker.as_ref(), sc.kind) {
        return hand_over_workers(daemon, env, id, version, svc, old, cancel).await;
    }
    let mut ready = Vec::new();
    for n in 0..sc.replicas {
        if cancel.is_cancelled() {
            return Err(CANCELLED.into());
        }
        let inst = start_one(daemon, env, id, version, svc, n).await?;
        let ready_or_cancelled = tokio::select! {
            r = wait_ready(daemon, env, &inst, sc) => r,
            _ = cancel.cancelled() => return Err(CANCELLED.into()),
        };
        match ready_or_cancelled {
            Ok(took) => healthy(daemon, id, &inst, took).await,
            Err(why) => {
                let reason = failed(daemon, id, &inst, &why).await;
                stop_started(daemon, env, std::slice::from_ref(&inst)).await;
                if !old.is_empty() {
                    event(daemon, id, EventKind::WorkersKept,
                        &format!("{} old {svc} instance(s) keep running", old.len()),
                        json!({ "instances": old.iter().map(|i| i.id.clone()).collect::<Vec<_>>() }),
                    )
                    .await;
                }
                return Err(reason);
            }
        }
        if !old.is_empty() {
            let replaced = old.remove(0);
            replace(daemon, env, id, &replaced, &inst).await;
        }
        ready.push(inst);
    }
    for extra in old {
        let ids = [extra.id.clone()];
        let gone = env.take(|i| ids.contains(&i.id));
        retire::retire_now(daemon, env, gone, "more instances than replicas").await;
    }
    Ok(ready)
}

/// After a worker rollout is reverted: starts the previous release's workers
/// again one at a time, each replacing one of `version`'s, until the service
/// has its replicas of `previous`; then stops what is left of `version`. If
/// the previous release cannot start, the new instances are kept (never stop
/// the only running copy).
pub(crate) async fn restore_workers(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    id: i64,
    svc: &str,
    version: &str,
    previous: &str,
) {
    let Some(sc) = daemon.config.service_in(&env.name, svc) else {
        return;
    };
    let of = |v: &str| -> Vec<LiveInstance> {
        env.instances()
            .into_iter()
            .filter(|i| i.service == svc && i.version == v)
            .collect()
    };
    if Drivers::hands_over_in_place(sc.docker.as_ref(), sc.kind) {
        // Nothing of `version` runs when the engine already rolled it back.
        let new = of(version);
        if new.is_empty() {
            return;
        }
        let never = CancellationToken::new();
        if let Err(e) = hand_over_workers(daemon, env, id, previous, svc, new, &never).await {
            tracing::error!(env = %env.name, service = %svc, error = %e, "cannot hand the workers back to {previous}");
        }
        return;
    }
    let mut new = of(version);
    let mut have = of(previous).len();
    let mut n = 0;
    while have < sc.replicas as usize {
        let inst = match start_one(daemon, env, id, previous, svc, n).await {
            Ok(inst) => inst,
            Err(_) => return,
        };
        n = n.saturating_add(1);
        match wait_ready(daemon, env, &inst, sc).await {
            Ok(took) => healthy(daemon, id, &inst, took).await,
            Err(why) => {
                failed(daemon, id, &inst, &why).await;
                stop_started(daemon, env, std::slice::from_ref(&inst)).await;
                return;
            }
        }
        let _ = daemon
            .store
            .set_instance_state(&inst.id, InstanceState::Serving)
            .await;
        have = have.saturating_add(1);
        if !new.is_empty() {
            let replaced = new.remove(0);
            replace(daemon, env, id, &replaced, &inst).await;
        }
    }
    let left: Vec<String> = new.iter().map(|i| i.id.clone()).collect();
    let gone = env.take(|i| left.contains(&i.id));
    retire::retire_now(daemon, env, gone, "rolled back").await;
}

/// Hands a worker over to `version` in place, when its driver runs all its
/// releases in one engine-side service and rolls it itself (Swarm's rolling
/// update, see `Drivers::hands_over_in_place`): every replica is recorded
/// before, the driver rolls the service and waits until the engine says
/// the release runs, then the `old` instances are retired (their driver
/// leaves the service the new release now runs in). On failure the engine
/// has put the previous release back: the `old` instances keep running,
/// and the error says what the engine said.
async fn hand_over_workers(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    id: i64,
    version: &str,
    svc: &str,
    old: Vec<LiveInstance>,
    cancel: &CancellationToken,
) -> Result<Vec<LiveInstance>, String> {
    let Some(sc) = daemon.config.service_in(&env.name, svc) else {
        return Err(format!("no service named {svc}"));
    };
    let mut specs = Vec::new();
    for n in 0..sc.replicas {
        let (spec, intent) = instance_spec(daemon, env, sc, version, svc, n);
        if let Err(e) = daemon.store.put_instance(&intent).await {
            forget_intents(daemon, &specs).await;
            return Err(format!(
                "cannot record {} before starting it, so {svc} {version} was not started: {e}",
                spec.instance_id
            ));
        }
        specs.push(spec);
    }
    let Some(first) = specs.first() else {
        return Ok(Vec::new());
    };
    let ids: Vec<String> = specs.iter().map(|s| s.instance_id.clone()).collect();
    let started = std::time::Instant::now();
    let handed = tokio::select! {
        handed = daemon.driver.hand_over(first, sc.docker.as_ref(), &ids) => handed,
        _ = cancel.cancelled() => {
            forget_intents(daemon, &specs).await;
            return Err(CANCELLED.into());
        }
    };
    let handles =
        match handed {
            Ok(handles) => handles,
            Err(e) => {
                forget_intents(daemon, &specs).await;
                let reason = format!("{svc} {version} did not roll out: {e}");
                event(
                    daemon,
                    id,
                    EventKind::InstanceFailed,
                    &reason,
                    json!({ "service": svc, "version": version, "error": e.to_string() }),
                )
                .await;
                if !old.is_empty() {
                    event(daemon, id, EventKind::WorkersKept,
                    &format!("{} old {svc} instance(s) keep running", old.len()),
                    json!({ "instances": old.iter().map(|i| i.id.clone()).collect::<Vec<_>>() }),
                )
                .await;
                }
                return Err(reason);
            }
        };
    let took = started.elapsed();
    let mut ready = Vec::new();
    for (instance_id, handle) in ids.iter().zip(handles) {
        let live = LiveInstance {
            id: instance_id.clone(),
            service: svc.to_owned(),
            version: version.to_owned(),
            kind: sc.kind,
            handle,
        };
        if let Err(e) = record_instance(daemon, env, &live, InstanceState::Starting).await {
            daemon.log_store_error("cannot record a worker handed over in place", &e);
        }
        env.add([live.clone()]);
        event(
            daemon,
            id,
            EventKind::InstanceStarted,
            &format!("{} started ({})", live.id, live.handle.describe()),
            json!({
                "instance": live.id,
                "addr": null,
                "driver": live.handle.driver_name(),
                "handle": live.handle.to_json(),
            }),
        )
        .await;
        env.mark_health(&live.id, true, None);
        healthy(daemon, id, &live, took).await;
        ready.push(live);
    }
    for (replaced, by) in old.iter().zip(
        ready
            .iter()
            .map(|i| i.id.clone())
            .chain(std::iter::repeat(String::new())),
    ) {
        let ids = [replaced.id.clone()];
        let gone = env.take(|i| ids.contains(&i.id));
        retire::retire_now(daemon, env, gone, "handed over in place").await;
        let by_text = if by.is_empty() {
            "no successor (fewer replicas)".to_owned()
        } else {
            by.clone()
        };
        event(
            daemon,
            id,
            EventKind::InstanceReplaced,
            &format!("{} stopped: replaced in place by {by_text}", replaced.id),
            json!({ "instance": replaced.id, "by": by }),
        )
        .await;
    }
    Ok(ready)
}

/// Forgets the store's records of instances that were never started.
async fn forget_intents(daemon: &Daemon, specs: &[InstanceSpec]) {
    for spec in specs {
        let _ = daemon.store.remove_instance(&spec.instance_id).await;
    }
}

/// Stops `old` now that `new` runs in its place.
async fn replace(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    id: i64,
    old: &LiveInstance,
    new: &LiveInstance,
) {
    let ids = [old.id.clone()];
    let gone = env.take(|i| ids.contains(&i.id));
    retire::retire_now(daemon, env, gone, "replaced by a new instance").await;
    event(
        daemon,
        id,
        EventKind::InstanceReplaced,
        &format!("{} stopped: replaced by {}", old.id, new.id),
        json!({ "instance": old.id, "by": new.id }),
    )
    .await;
}

/// Starts replica `n` of `svc` at `version` and records it.
async fn start_one(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    id: i64,
    version: &str,
    svc: &str,
    n: u32,
) -> Result<LiveInstance, String> {
    let live = launch(daemon, env, version, svc, n).await?;
    let addr = live.handle.addr();
    let place = addr.map(|a| format!(" on {a}")).unwrap_or_default();
    event(
        daemon,
        id,
        EventKind::InstanceStarted,
        &format!("{} started{place} ({})", live.id, live.handle.describe()),
        json!({
            "instance": live.id,
            "addr": addr.map(|a| a.to_string()),
            "driver": live.handle.driver_name(),
            "handle": live.handle.to_json(),
        }),
    )
    .await;
    Ok(live)
}

/// Starts replica `n` of `svc` at `version`: recorded in the store before it
/// starts (then with its handle), and in the environment's live set (not
/// the proxy's table) once it runs. Also how supervision starts a
/// replacement (`supervise.rs`), which records its own events.
pub(crate) async fn launch(
    daemon: &Daemon,
    env: &EnvRuntime,
    version: &str,
    svc: &str,
    n: u32,
) -> Result<LiveInstance, String> {
    let config = &daemon.config;
    let Some(sc) = config.service_in(&env.name, svc) else {
        return Err(format!("no service named {svc}"));
    };
    let (spec, intent) = instance_spec(daemon, env, sc, version, svc, n);
    let instance_id = spec.instance_id.clone();
    daemon.store.put_instance(&intent).await.map_err(|e| {
        format!("cannot record {instance_id} before starting it, so it was not started: {e}")
    })?;
    let handle = match daemon.driver.start(&spec, sc.docker.as_ref()).await {
        Ok(handle) => handle,
        Err(e) => {
            let _ = daemon.store.remove_instance(&instance_id).await;
            return Err(format!("cannot start {svc} {version}: {e}"));
        }
    };
    let live = LiveInstance {
        id: instance_id.clone(),
        service: svc.to_owned(),
        version: version.to_owned(),
        kind: sc.kind,
        handle,
    };
    if let Err(e) = record_instance(daemon, env, &live, InstanceState::Starting).await {
        // Never run an instance whose handle is not recorded.
        stop_unrouted(daemon, env, vec![live]).await;
        return Err(format!(
            "cannot record {instance_id}'s handle, so it was stopped again: {e}"
        ));
    }
    env.add([live.clone()]);
    Ok(live)
}

/// The spec of replica `n` of `svc` at `version` (with a new instance id),
/// and its record as the store keeps it before it starts.
fn instance_spec(
    daemon: &Daemon,
    env: &EnvRuntime,
    sc: &ServiceConfig,
    version: &str,
    svc: &str,
    n: u32,
) -> (InstanceSpec, InstanceRecord) {
    let config = &daemon.config;
    let instance_id = format!("{}-{svc}-{version}-{n}-{:04x}", env.name, fastrand::u16(..));
    let spec = InstanceSpec {
        app: config.app.name.clone(),
        environment: env.name.clone(),
        service: svc.to_owned(),
        version: version.to_owned(),
        instance_id: instance_id.clone(),
        replica: n,
        command: sc.command.clone(),
        env: sc.env.clone(),
        inherit_env: sc.inherit_env,
        logs: sc.logs,
        workdir: config.base_dir.clone(),
        log_dir: super::logs::log_dir(config),
        health: sc.health.clone(),
        stop_timeout: sc.stop_timeout,
        kind: sc.kind,
    };
    let intent = InstanceRecord {
        instance_id: instance_id.clone(),
        environment: env.name.clone(),
        service: svc.to_owned(),
        version: version.to_owned(),
        state: InstanceState::Starting,
        driver: crate::drivers::Drivers::name_for(sc.docker.as_ref()).into(),
        handle: serde_json::Value::Null,
        created_at: jiff::Timestamp::now(),
    };
    (spec, intent)
}

/// Waits until one instance is ready: HTTP health for `http` services; for
/// workers, their health command or still running after `healthy` intervals.
/// The answer is marked on the instance for `cutover status`.
pub(crate) async fn wait_ready(
    daemon: &Daemon,
    env: &EnvRuntime,
    inst: &LiveInstance,
    sc: &ServiceConfig,
) -> Result<Duration, String> {
    let ready = wait_ready_unmarked(daemon, inst, sc).await;
    env.mark_health(&inst.id, ready.is_ok(), ready.as_ref().err().cloned());
    ready
}

async fn wait_ready_unmarked(
    daemon: &Daemon,
    inst: &LiveInstance,
    sc: &ServiceConfig,
) -> Result<Duration, String> {
    let check = super::health_check(sc);
    match (inst.kind, inst.handle.addr()) {
        (ServiceKind::Http, Some(addr)) => {
            health::wait_healthy(addr, &check, || daemon.driver.is_running(&inst.handle))
                .await
                .map_err(|e| e.to_string())
        }
        (ServiceKind::Http, None) => Err("the instance has no address to check".to_owned()),
        (ServiceKind::Worker, _) => {
            check::wait_worker_ready(
                &daemon.driver,
                &inst.handle,
                &check,
                &sc.health.command,
                &daemon.config.base_dir,
            )
            .await
        }
    }
}

/// Records that an instance became ready.
async fn healthy(daemon: &Daemon, id: i64, inst: &LiveInstance, took: Duration) {
    let _ = daemon
        .store
        .set_instance_state(&inst.id, InstanceState::Ready)
        .await;
    event(
        daemon,
        id,
        EventKind::InstanceHealthy,
        &format!("{} healthy after {}", inst.id, fmt_duration(took)),
        json!({ "instance": inst.id, "ms": took.as_millis() as u64 }),
    )
    .await;
}

/// Records why an instance did not become ready, with how it ended and the
/// end of its output; returns the reason.
async fn failed(daemon: &Daemon, id: i64, inst: &LiveInstance, why: &str) -> String {
    let (reason, tail) = explain_failure(
        daemon,
        inst,
        &format!("{} did not become healthy: {why}", inst.id),
    )
    .await;
    let source = inst.handle.log_source();
    event(
        daemon,
        id,
        EventKind::InstanceFailed,
        &reason,
        json!({ "instance": inst.id, "log": source, "log_tail": tail }),
    )
    .await;
    reason
}

/// `what` went wrong with `inst`: adds how it ended, if it did, and the last
/// lines of its output; returns the text and those lines.
pub(crate) async fn explain_failure(
    daemon: &Daemon,
    inst: &LiveInstance,
    what: &str,
) -> (String, Vec<String>) {
    let exit = daemon.driver.exit_status(&inst.handle);
    // Capped by the driver (20 lines, 4 KiB). Roles (a later issue): a
    // viewer token must see this event's `log_tail` and the quoted lines in
    // its message redacted; the hook is where events are turned into
    // `api::wire::Event` for an answer, not here (the stored event keeps
    // them for operators).
    let tail = daemon.driver.tail(&inst.handle, LOG_TAIL_LINES).await;
    let mut reason = what.to_owned();
    if let Some(exit) = exit {
        reason.push_str(&format!(" (ended: {exit})"));
    }
    let source = inst.handle.log_source();
    if !tail.is_empty() {
        reason.push_str(&format!(
            "\nlast lines of {source}:\n{}",
            tail.iter()
                .map(|l| format!("  | {l}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    (reason, tail)
}

/// Stops instances that never entered the proxy's table (no drain needed).
pub(crate) async fn stop_unrouted(daemon: &Daemon, env: &EnvRuntime, instances: Vec<LiveInstance>) {
    for inst in instances {
        let grace = daemon
            .config
            .service_in(&env.name, &inst.service)
            .map(|s| s.stop_timeout)
            .unwrap_or(Duration::from_secs(10));
        if let Err(e) = daemon.driver.stop(&inst.handle, grace).await {
            tracing::warn!(instance = %inst.id, error = %e, "stop failed");
        }
        daemon.driver.forget(&inst.handle);
        if let Err(e) = daemon.store.remove_instance(&inst.id).await {
            daemon.log_store_error("cannot forget a stopped instance", &e);
        }
        tracing::info!(env = %env.name, instance = %inst.id, "stopped unrouted instance");
    }
}

async fn record_instance(
    daemon: &Daemon,
    env: &EnvRuntime,
    inst: &LiveInstance,
    state: InstanceState,
) -> Result<(), crate::store::StoreError> {
    let record = InstanceRecord {
        instance_id: inst.id.clone(),
        environment: env.name.clone(),
        service: inst.service.clone(),
        version: inst.version.clone(),
        state,
        driver: inst.handle.driver_name().into(),
        handle: inst.handle.to_json(),
        created_at: jiff::Timestamp::now(),
    };
    daemon.store.put_instance(&record).await
}
