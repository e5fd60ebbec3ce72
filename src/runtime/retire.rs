//! Retiring instances: out of the proxy's table first, drained, and only then
//! signalled to stop — so no request is ever sent to a stopping instance (the
//! race that makes Kubernetes users add preStop sleeps). Also the timer that
//! retires the previous release when its rollback window ends.

use std::sync::Arc;
use std::time::Duration;

use cutover_proxy::{DrainOutcome, InstanceId};

use super::Daemon;
use super::environment::{EnvRuntime, LiveInstance};
use crate::store::InstanceState;

/// Drain and stop `instances`, which the caller has already taken out of the
/// environment's live set. Instances still in the proxy's table are removed
/// from it first.
pub(crate) async fn retire_now(
    daemon: &Daemon,
    env: &EnvRuntime,
    instances: Vec<LiveInstance>,
    why: &str,
) {
    if instances.is_empty() {
        return;
    }
    let routed = env.routed_ids();
    if instances.iter().any(|i| routed.contains(&i.id)) {
        // Never stop what the proxy still routes to: take it out of the table.
        let still_live: Vec<LiveInstance> = env
            .instances()
            .into_iter()
            .filter(|i| routed.contains(&i.id))
            .collect();
        if let Err(e) = env.switch_to(&still_live) {
            tracing::error!(env = %env.name, error = %e, "cannot remove instances from the table");
        }
    }
    let mut tasks = tokio::task::JoinSet::new();
    for inst in instances {
        let (drain_timeout, stop_timeout) = daemon
            .config
            .services
            .get(&inst.service)
            .map(|s| (s.drain_timeout, s.stop_timeout))
            .unwrap_or((Duration::from_secs(30), Duration::from_secs(10)));
        let proxy = env.proxy.clone();
        let store = daemon.store.clone();
        let driver = daemon.driver.clone();
        let why = why.to_owned();
        tasks.spawn(async move {
            let _ = store
                .set_instance_state(&inst.id, InstanceState::Draining)
                .await;
            let drained = proxy
                .drain(&InstanceId::from(inst.id.as_str()), drain_timeout)
                .await;
            if let DrainOutcome::TimedOut { left } = drained {
                tracing::warn!(instance = %inst.id, ?left, "drain timed out; stopping anyway");
            }
            match driver.stop(&inst.handle, stop_timeout).await {
                Ok(outcome) => tracing::info!(instance = %inst.id, ?outcome, "stopped ({why})"),
                Err(e) => tracing::warn!(instance = %inst.id, error = %e, "stop failed ({why})"),
            }
            driver.forget(&inst.handle);
            let _ = store.remove_instance(&inst.id).await;
        });
    }
    while tasks.join_next().await.is_some() {}
}

/// Retires the instances of `version` after `after`, unless by then they serve
/// again (a rollback) or the timer is replaced by a newer switch.
pub(crate) fn schedule(
    daemon: Arc<Daemon>,
    env: Arc<EnvRuntime>,
    version: String,
    after: Duration,
) {
    let cancel = tokio_util::sync::CancellationToken::new();
    {
        let mut timer = env.retire_timer.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(old) = timer.replace(cancel.clone()) {
            // Only the wait is cancelled: a retirement under way finishes.
            old.cancel();
        }
    }
    tokio::spawn(async move {
        tokio::select! {
            _ = tokio::time::sleep(after) => {}
            _ = cancel.cancelled() => return,
        }
        let routed = env.routed_ids();
        let idle = env.take(|i| i.version == version && !routed.contains(&i.id));
        if !idle.is_empty() {
            tracing::info!(env = %env.name, %version, "rollback window over: retiring the previous release");
            retire_now(&daemon, &env, idle, "rollback window over").await;
        }
        // The old release is gone: the serving release's contract migrations may run.
        let job = {
            let mut pending = env
                .pending_contract
                .lock()
                .unwrap_or_else(|p| p.into_inner());
            match pending.as_ref() {
                Some(job)
                    if job.version != version
                        && env.of_version_other_than(&job.version).is_empty() =>
                {
                    pending.take()
                }
                _ => None,
            }
        };
        if let Some(job) = job {
            super::schema::contract(&daemon, job).await;
        }
    });
}
