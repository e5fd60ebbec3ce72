//! Retiring instances: out of the proxy's table first, drained, and only then
//! signalled to stop — so no request is ever sent to a stopping instance (the
//! race that makes Kubernetes users add preStop sleeps). The stop happens
//! whatever the drain did (timed out, failed, even panicked): an instance
//! handed to `retire_now` is never left running. When a release retires
//! what is decided by the release machine (`executor.rs`).

use std::time::Duration;

use cutover_proxy::{DrainOutcome, InstanceId};

use super::Daemon;
use super::environment::{EnvRuntime, LiveInstance};
use crate::store::InstanceState;

/// Drain and stop `instances`, which the caller has already taken out of the
/// environment's live set. Instances still in the proxy's table are removed
/// from it first, and from the preview's (which follows the live set); each
/// is drained on both.
/// How long a retire waits for the other daemons' proxies (a cluster) to
/// apply the table without the instances it stops.
const FOLLOWERS_APPLY_LIMIT: std::time::Duration = std::time::Duration::from_secs(2);

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
    // Several daemons: the other proxies stop sending to them first (the
    // table they left may have been swapped by the caller just before).
    if let Some(cluster) = daemon.cluster() {
        let changed = *env.table_changes().borrow();
        cluster
            .wait_followers(&env.name, changed, FOLLOWERS_APPLY_LIMIT)
            .await;
    }
    env.sync_preview();
    let mut tasks = tokio::task::JoinSet::new();
    for inst in instances {
        let (drain_timeout, stop_timeout) = daemon
            .config
            .service_in(&env.name, &inst.service)
            .map(|s| (s.drain_timeout, s.stop_timeout))
            .unwrap_or((Duration::from_secs(30), Duration::from_secs(10)));
        let proxy = env.proxy.clone();
        let preview = env.preview().cloned();
        let store = daemon.store.clone();
        let driver = daemon.driver.clone();
        let why = why.to_owned();
        tasks.spawn(async move {
            let _ = store
                .set_instance_state(&inst.id, InstanceState::Draining)
                .await;
            let id = InstanceId::from(inst.id.as_str());
            // The drain runs on its own task: whatever happens to it, the
            // instance is stopped below.
            let drained = tokio::spawn(async move {
                let public = proxy.drain(&id, drain_timeout).await;
                if let Some(preview) = preview {
                    // Its own requests (smoke tests) finish too.
                    let _ = preview.drain(&id, drain_timeout).await;
                }
                public
            })
            .await;
            match drained {
                Ok(DrainOutcome::TimedOut { left }) => {
                    tracing::warn!(instance = %inst.id, ?left, "drain timed out; stopping anyway")
                }
                Ok(_) => {}
                Err(e) => {
                    tracing::error!(instance = %inst.id, error = %e, "draining failed; stopping anyway")
                }
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
