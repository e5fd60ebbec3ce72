//! Instances the daemon runs.

use serde_json::json;

use super::{TestResult, both, temp_store};
use crate::store::Backend;
use crate::store::{InstanceRecord, InstanceState, StoreError};

fn instance(id: &str, environment: &str, service: &str, ms: i64) -> TestResult<InstanceRecord> {
    Ok(InstanceRecord {
        instance_id: id.to_owned(),
        environment: environment.to_owned(),
        service: service.to_owned(),
        version: "v1".to_owned(),
        state: InstanceState::Starting,
        driver: "process".to_owned(),
        handle: json!({ "pid": 4242, "pgid": 4242, "port": 30001 }),
        created_at: jiff::Timestamp::from_millisecond(ms)?,
    })
}

both!(instances_are_upserted_updated_listed_and_removed);
async fn instances_are_upserted_updated_listed_and_removed(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let web_1 = instance("web-1", "production", "web", 1_790_000_000_000)?;
    let web_2 = instance("web-2", "production", "web", 1_790_000_000_500)?;
    let worker = instance("worker-1", "production", "worker", 1_790_000_000_100)?;
    let staging = instance("web-s", "staging", "web", 1_790_000_000_001)?;
    for r in [&web_2, &staging, &worker, &web_1] {
        store.put_instance(r).await?;
    }

    let production = store.instances(Some("production")).await?;
    assert_eq!(production, [web_1.clone(), web_2.clone(), worker.clone()]);
    assert_eq!(
        store.instances(None).await?,
        [
            web_1.clone(),
            web_2.clone(),
            worker.clone(),
            staging.clone()
        ]
    );
    assert_eq!(store.instances(Some("nowhere")).await?, []);

    // Upsert by id replaces the record.
    let moved = InstanceRecord {
        version: "v2".to_owned(),
        state: InstanceState::Ready,
        handle: json!({ "pid": 5000, "port": 30002 }),
        ..web_1.clone()
    };
    store.put_instance(&moved).await?;
    assert_eq!(store.instances(Some("production")).await?[0], moved);
    assert_eq!(store.instances(None).await?.len(), 4);

    for state in InstanceState::ALL {
        store.set_instance_state("web-2", *state).await?;
        let listed = store.instances(Some("production")).await?;
        assert_eq!(listed[1].state, *state);
    }
    let err = store
        .set_instance_state("web-9", InstanceState::Failed)
        .await
        .err()
        .ok_or("set the state of an unknown instance")?;
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "instance",
                ..
            }
        ),
        "{err:?}"
    );

    store.remove_instance("web-2").await?;
    store.remove_instance("web-2").await?;
    let ids: Vec<_> = store
        .instances(None)
        .await?
        .into_iter()
        .map(|r| r.instance_id)
        .collect();
    assert_eq!(ids, ["web-1", "worker-1", "web-s"]);
    Ok(())
}

#[tokio::test]
async fn instance_states_are_lower_case_text() -> TestResult {
    let names: Vec<_> = InstanceState::ALL.iter().map(|s| s.as_str()).collect();
    assert_eq!(
        names,
        [
            "starting", "ready", "serving", "idle", "draining", "stopped", "failed"
        ]
    );
    assert_eq!(
        serde_json::to_value(InstanceState::Draining)?,
        json!("draining")
    );
    assert_eq!(format!("{:>9}", InstanceState::Idle), "     idle");
    Ok(())
}
