//! Deployments and their events.

use cutover_core::EventKind;
use serde_json::json;

use super::{TestResult, both, temp_store};
use crate::store::Backend;
use crate::store::{DeploymentKind, DeploymentState, NewDeployment, Store, StoreError};

fn new_deployment(environment: &str, version: &str) -> NewDeployment {
    NewDeployment {
        environment: environment.to_owned(),
        version: version.to_owned(),
        previous_version: Some("v1".to_owned()),
        strategy: "blue-green".to_owned(),
        kind: DeploymentKind::Deploy,
        requested_by: "alice@host".to_owned(),
        commit_sha: None,
        commit_time: None,
    }
}

async fn create(store: &Store, environment: &str, version: &str) -> TestResult<i64> {
    Ok(store
        .create_deployment(&new_deployment(environment, version))
        .await?)
}

both!(a_deployment_runs_records_events_in_order_and_finishes);
async fn a_deployment_runs_records_events_in_order_and_finishes(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let before = jiff::Timestamp::now();
    let id = create(&store, "production", "v2").await?;

    let running = store.deployment(id).await?.ok_or("not recorded")?;
    assert_eq!(running.id, id);
    assert_eq!(running.environment, "production");
    assert_eq!(running.version, "v2");
    assert_eq!(running.previous_version.as_deref(), Some("v1"));
    assert_eq!(running.strategy, "blue-green");
    assert_eq!(running.kind, DeploymentKind::Deploy);
    assert_eq!(running.state, DeploymentState::Running);
    assert_eq!(running.reason, None);
    assert_eq!(running.requested_by, "alice@host");
    assert!(
        running.started_at
            >= before.round(jiff::Unit::Millisecond)? - jiff::SignedDuration::from_millis(1)
    );
    assert_eq!(running.finished_at, None);

    let mut added = Vec::new();
    for (i, kind) in [
        EventKind::Started,
        EventKind::InstanceHealthy,
        EventKind::Switched,
        EventKind::WindowOver,
    ]
    .iter()
    .enumerate()
    {
        let event = store
            .add_event(
                id,
                *kind,
                &format!("step {i}"),
                json!({ "step": i, "ok": true }),
            )
            .await?;
        assert_eq!(event.deployment_id, id);
        added.push(event);
    }
    let events = store.events(id).await?;
    assert_eq!(events, added, "read back as returned, oldest first");
    let kinds: Vec<_> = events.iter().map(|e| e.kind.as_str()).collect();
    assert_eq!(
        kinds,
        ["started", "instance_healthy", "switched", "window_over"]
    );
    assert!(
        events
            .windows(2)
            .all(|w| w[0].id < w[1].id && w[0].at <= w[1].at)
    );
    assert_eq!(events[2].data, json!({ "step": 2, "ok": true }));

    store
        .finish_deployment(id, DeploymentState::Succeeded, Some("all traffic on v2"))
        .await?;
    let done = store.deployment(id).await?.ok_or("gone")?;
    assert_eq!(done.state, DeploymentState::Succeeded);
    assert_eq!(done.reason.as_deref(), Some("all traffic on v2"));
    let finished_at = done.finished_at.ok_or("finished_at not set")?;
    assert!(finished_at >= done.started_at);

    // Finishing again in the same state keeps the first finish time.
    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store
        .finish_deployment(id, DeploymentState::Succeeded, Some("all traffic on v2"))
        .await?;
    assert_eq!(store.deployment(id).await?, Some(done));
    Ok(())
}

both!(unknown_deployments);
async fn unknown_deployments(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    assert_eq!(store.deployment(42).await?, None);
    assert_eq!(store.events(42).await?, vec![]);
    let err = store
        .finish_deployment(42, DeploymentState::Failed, None)
        .await
        .err()
        .ok_or("finished a deployment that does not exist")?;
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "deployment",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), "deployment 42 not found");
    let err = store
        .add_event(42, EventKind::Started, "", json!(null))
        .await
        .err()
        .ok_or("added an event to a deployment that does not exist")?;
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "deployment",
                ..
            }
        ),
        "{err:?}"
    );
    Ok(())
}

both!(deployments_are_listed_newest_first_and_by_environment);
async fn deployments_are_listed_newest_first_and_by_environment(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let s1 = create(&store, "staging", "v1").await?;
    let p1 = create(&store, "production", "v1").await?;
    let s2 = create(&store, "staging", "v2").await?;
    let p2 = create(&store, "production", "v2").await?;
    let ids =
        |list: Vec<crate::store::Deployment>| list.into_iter().map(|d| d.id).collect::<Vec<_>>();

    assert_eq!(ids(store.deployments(None, 10).await?), [p2, s2, p1, s1]);
    assert_eq!(ids(store.deployments(None, 3).await?), [p2, s2, p1]);
    assert_eq!(ids(store.deployments(Some("staging"), 10).await?), [s2, s1]);
    assert_eq!(ids(store.deployments(Some("production"), 1).await?), [p2]);
    assert_eq!(
        ids(store.deployments(Some("nowhere"), 10).await?),
        Vec::<i64>::new()
    );
    assert_eq!(ids(store.deployments(None, 0).await?), Vec::<i64>::new());
    Ok(())
}

both!(running_deployments_are_the_unfinished_ones);
async fn running_deployments_are_the_unfinished_ones(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let a = create(&store, "staging", "v1").await?;
    let b = create(&store, "production", "v1").await?;
    let c = create(&store, "staging", "v2").await?;
    let rollback = store
        .create_deployment(&NewDeployment {
            kind: DeploymentKind::Rollback,
            ..new_deployment("canary", "v0")
        })
        .await?;
    store
        .finish_deployment(a, DeploymentState::Interrupted, Some("daemon restarted"))
        .await?;
    store
        .finish_deployment(c, DeploymentState::RolledBack, Some("error rate 7 %"))
        .await?;

    let running = store.running_deployments().await?;
    let ids: Vec<_> = running.iter().map(|d| d.id).collect();
    assert_eq!(ids, [b, rollback]);
    assert_eq!(running[1].kind, DeploymentKind::Rollback);
    assert!(
        running
            .iter()
            .all(|d| d.state == DeploymentState::Running && d.finished_at.is_none())
    );

    // Back to running clears the finish time again.
    store
        .finish_deployment(a, DeploymentState::Running, None)
        .await?;
    let resumed = store.deployment(a).await?.ok_or("gone")?;
    assert_eq!(
        (resumed.state, resumed.finished_at),
        (DeploymentState::Running, None)
    );
    assert_eq!(store.running_deployments().await?.len(), 3);
    Ok(())
}

both!(enums_are_lower_case_text);
async fn enums_are_lower_case_text(backend: Backend) -> TestResult {
    assert_eq!(
        serde_json::to_value(DeploymentState::RolledBack)?,
        json!("rolled_back")
    );
    assert_eq!(
        serde_json::to_value(DeploymentKind::Rollback)?,
        json!("rollback")
    );
    for state in DeploymentState::ALL {
        assert_eq!(serde_json::to_value(state)?, json!(state.as_str()));
        assert_eq!(
            serde_json::from_value::<DeploymentState>(json!(state.to_string()))?,
            *state
        );
        assert_eq!(state.as_str(), state.as_str().to_lowercase());
    }

    let (_dir, store) = temp_store(backend).await?;
    let id = create(&store, "staging", "v1").await?;
    for state in DeploymentState::ALL {
        store.finish_deployment(id, *state, None).await?;
        let stored: String = sqlx::query_scalar("SELECT state FROM deployments WHERE id = $1")
            .bind(id)
            .fetch_one(&store.pool)
            .await?;
        assert_eq!(stored, state.as_str());
        assert_eq!(store.deployment(id).await?.map(|d| d.state), Some(*state));
    }
    // The schema refuses anything else.
    let refused = sqlx::query("UPDATE deployments SET state = 'Running' WHERE id = $1")
        .bind(id)
        .execute(&store.pool)
        .await;
    assert!(refused.is_err(), "CHECK constraint let 'Running' in");
    Ok(())
}

both!(a_bad_value_read_back_is_corruption);
async fn a_bad_value_read_back_is_corruption(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let id = create(&store, "staging", "v1").await?;
    let mut conn = store.pool.acquire().await?;
    let (off, on) = match backend {
        Backend::Sqlite => (
            "PRAGMA ignore_check_constraints = ON",
            "PRAGMA ignore_check_constraints = OFF",
        ),
        // Put back NOT VALID: the bad row stays.
        Backend::Postgres => (
            "ALTER TABLE deployments DROP CONSTRAINT deployments_kind_check",
            "ALTER TABLE deployments ADD CONSTRAINT deployments_kind_check
             CHECK (kind IN ('deploy', 'rollback')) NOT VALID",
        ),
    };
    sqlx::query(off).execute(&mut *conn).await?;
    sqlx::query("UPDATE deployments SET kind = 'redeploy' WHERE id = $1")
        .bind(id)
        .execute(&mut *conn)
        .await?;
    sqlx::query(on).execute(&mut *conn).await?;
    drop(conn);

    let err = store.deployment(id).await.err().ok_or("read a bad kind")?;
    assert!(matches!(err, StoreError::Corrupt(_)), "{err:?}");
    let message = err.to_string();
    assert!(
        message.contains("deployments.kind") && message.contains("redeploy"),
        "{message}"
    );
    assert!(store.deployments(None, 10).await.is_err());

    sqlx::query("INSERT INTO events (deployment_id, at, kind, message, data) VALUES ($1, 0, 'x', '', '{oops')")
        .bind(id)
        .execute(&store.pool)
        .await?;
    let err = store.events(id).await.err().ok_or("read bad JSON")?;
    assert!(err.to_string().contains("events.data"), "{err}");
    Ok(())
}

both!(watchers_see_each_change_to_a_deployment_and_its_events);
async fn watchers_see_each_change_to_a_deployment_and_its_events(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    // Any clone of the store tells the same watchers.
    let mut changes = store.clone().watch_deployments();
    let id = create(&store, "production", "v2").await?;
    assert!(changes.has_changed()?, "creating a deployment is a change");
    changes.mark_unchanged();
    store
        .add_event(id, EventKind::Started, "started", json!({}))
        .await?;
    assert!(changes.has_changed()?, "an event is a change");
    changes.mark_unchanged();
    store
        .finish_deployment(id, DeploymentState::Succeeded, None)
        .await?;
    assert!(changes.has_changed()?, "finishing is a change");
    changes.mark_unchanged();
    // A failed write tells nobody.
    assert!(matches!(
        store
            .add_event(id + 1, EventKind::Started, "nobody", json!({}))
            .await,
        Err(StoreError::NotFound { .. })
    ));
    assert!(!changes.has_changed()?);
    Ok(())
}

both!(concluding_ends_the_deployment_and_frees_its_lock_together);
async fn concluding_ends_the_deployment_and_frees_its_lock_together(
    backend: Backend,
) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    store
        .try_lock("production", "alice@host", "rollback to v1")
        .await?;
    let id = create(&store, "production", "v1").await?;
    let mut changes = store.watch_deployments();
    changes.mark_unchanged();
    store
        .conclude_deployment(
            id,
            DeploymentState::Succeeded,
            None,
            "production",
            "alice@host",
        )
        .await?;
    assert!(changes.has_changed()?);
    let done = store.deployment(id).await?.ok_or("not recorded")?;
    assert_eq!(done.state, DeploymentState::Succeeded);
    assert!(done.finished_at.is_some());
    assert_eq!(store.lock("production").await?, None);

    // Another holder's lock is left alone; an unknown deployment is an
    // error and frees nothing.
    store
        .try_lock("production", "bob@other", "deploy v3")
        .await?;
    store
        .conclude_deployment(
            id,
            DeploymentState::Succeeded,
            None,
            "production",
            "alice@host",
        )
        .await?;
    assert!(store.lock("production").await?.is_some());
    let unknown = store
        .conclude_deployment(
            id + 1,
            DeploymentState::Failed,
            None,
            "production",
            "bob@other",
        )
        .await;
    assert!(
        matches!(unknown, Err(StoreError::NotFound { .. })),
        "{unknown:?}"
    );
    assert!(store.lock("production").await?.is_some());
    Ok(())
}

both!(the_metrics_read_deployments_from_an_id_and_analyses_after_an_event);
async fn the_metrics_read_deployments_from_an_id_and_analyses_after_an_event(
    backend: Backend,
) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let a = create(&store, "production", "v2").await?;
    let b = create(&store, "staging", "v3").await?;
    store
        .finish_deployment(
            a,
            DeploymentState::RolledBack,
            Some("analysis of step 1 failed"),
        )
        .await?;
    let ids: Vec<i64> = store
        .deployments_from(a)
        .await?
        .iter()
        .map(|d| d.id)
        .collect();
    assert_eq!(ids, [a, b], "oldest first");
    let from_b = store.deployments_from(b).await?;
    assert_eq!(from_b.len(), 1);
    assert_eq!(from_b[0].state, DeploymentState::Running);

    let verdict =
        |v: &str| json!({ "service": "web", "figures": null, "verdict": { "verdict": v } });
    store
        .add_event(a, EventKind::Analysis, "web step 1 passed", verdict("pass"))
        .await?;
    store
        .add_event(
            a,
            EventKind::Step,
            "web at 50%",
            json!({ "service": "web" }),
        )
        .await?;
    store
        .add_event(b, EventKind::Analysis, "web step 1 failed", verdict("fail"))
        .await?;
    let all = store.analysis_verdicts_after(0, 10).await?;
    let seen: Vec<(&str, Option<&str>, Option<&str>)> = all
        .iter()
        .map(|v| {
            (
                v.environment.as_str(),
                v.service.as_deref(),
                v.verdict.as_deref(),
            )
        })
        .collect();
    assert_eq!(
        seen,
        [
            ("production", Some("web"), Some("pass")),
            ("staging", Some("web"), Some("fail"))
        ],
        "only analyses, oldest first"
    );
    let after = store.analysis_verdicts_after(all[0].event_id, 10).await?;
    assert_eq!(after.len(), 1);
    assert_eq!(after[0].verdict.as_deref(), Some("fail"));
    assert_eq!(
        store.analysis_verdicts_after(0, 1).await?.len(),
        1,
        "the limit"
    );
    Ok(())
}
