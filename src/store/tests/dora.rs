//! What the DORA figures read: commit columns, the period, and when each
//! deployment first took traffic.

use cutover_core::EventKind;
use serde_json::json;

use super::{TestResult, both, temp_store};
use crate::store::Backend;
use crate::store::{DeploymentKind, DeploymentState, NewDeployment, Store};

fn new(environment: &str, version: &str, commit: Option<i64>) -> NewDeployment {
    NewDeployment {
        environment: environment.to_owned(),
        version: version.to_owned(),
        previous_version: None,
        strategy: "blue-green".to_owned(),
        kind: DeploymentKind::Deploy,
        requested_by: "alice".to_owned(),
        commit_sha: commit.map(|_| "3f2a9c1".to_owned()),
        commit_time: commit.map(|s| jiff::Timestamp::from_second(s).expect("time")),
    }
}

async fn event(store: &Store, id: i64, kind: EventKind) -> TestResult {
    store.add_event(id, kind, kind.as_str(), json!({})).await?;
    Ok(())
}

both!(commit_columns_are_kept);
async fn commit_columns_are_kept(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let with = store
        .create_deployment(&new("production", "v1", Some(1_796_374_800)))
        .await?;
    let without = store
        .create_deployment(&new("production", "v2", None))
        .await?;
    let d = store.deployment(with).await?.ok_or("recorded")?;
    assert_eq!(d.commit_sha.as_deref(), Some("3f2a9c1"));
    assert_eq!(d.commit_time.map(|t| t.as_second()), Some(1_796_374_800));
    let d = store.deployment(without).await?.ok_or("recorded")?;
    assert_eq!((d.commit_sha, d.commit_time), (None, None));
    Ok(())
}

both!(the_history_holds_the_period_running_ones_and_when_each_served);
async fn the_history_holds_the_period_running_ones_and_when_each_served(
    backend: Backend,
) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    // Ended before the period.
    let old = store
        .create_deployment(&new("production", "v0", None))
        .await?;
    event(&store, old, EventKind::Switch).await?;
    store
        .finish_deployment(old, DeploymentState::Succeeded, None)
        .await?;
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    let since = jiff::Timestamp::now();
    // Took traffic (a canary step, then more), succeeded.
    let served = store
        .create_deployment(&new("production", "v1", None))
        .await?;
    event(&store, served, EventKind::InstanceHealthy).await?;
    event(&store, served, EventKind::Step).await?;
    event(&store, served, EventKind::Step).await?;
    event(&store, served, EventKind::Finished).await?;
    store
        .finish_deployment(served, DeploymentState::Succeeded, None)
        .await?;
    // Never took traffic.
    let unhealthy = store
        .create_deployment(&new("production", "v2", None))
        .await?;
    event(&store, unhealthy, EventKind::InstanceFailed).await?;
    event(&store, unhealthy, EventKind::Rollback).await?;
    store
        .finish_deployment(unhealthy, DeploymentState::RolledBack, Some("unhealthy"))
        .await?;
    // Another environment's.
    let staging = store.create_deployment(&new("staging", "v1", None)).await?;
    event(&store, staging, EventKind::Switch).await?;
    // Running.
    let running = store
        .create_deployment(&new("production", "v3", None))
        .await?;

    let rows = store.dora_history("production", since).await?;
    let ids: Vec<i64> = rows.iter().map(|r| r.deployment.id).collect();
    assert_eq!(ids, vec![served, unhealthy, running]);
    let events = store.events(served).await?;
    let first_step = events
        .iter()
        .find(|e| e.kind == "step")
        .map(|e| e.at)
        .ok_or("a step")?;
    assert_eq!(rows[0].served_at, Some(first_step));
    assert_eq!(rows[1].served_at, None);
    assert_eq!(rows[2].served_at, None);
    Ok(())
}
