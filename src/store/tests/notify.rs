//! The notification queue: cursors start at the end of the history, move
//! only with the deliveries they produced, and attempts are recorded.

use cutover_core::EventKind;
use serde_json::json;

use super::{TestResult, both, temp_store};
use crate::store::Backend;
use crate::store::{
    AttemptResult, CursorAdvance, DeliveryState, DeliveryTarget, DeploymentKind, DeploymentState,
    NewDelivery, NewDeployment, Store,
};

fn delivery(id: &str) -> NewDelivery {
    NewDelivery {
        message_id: id.to_owned(),
        target: DeliveryTarget::Webhook,
        endpoint: "webhook-0011223344556677".to_owned(),
        event_type: "deployment.started".to_owned(),
        environment: "production".to_owned(),
        body: "{}".to_owned(),
    }
}

async fn deployment(store: &Store) -> TestResult<i64> {
    Ok(store
        .create_deployment(&NewDeployment {
            environment: "production".into(),
            version: "v2".into(),
            previous_version: None,
            strategy: "blue-green".into(),
            kind: DeploymentKind::Deploy,
            requested_by: "alice".into(),
            commit_sha: None,
            commit_time: None,
        })
        .await?)
}

both!(cursors_start_at_the_end_and_move_with_their_deliveries);
async fn cursors_start_at_the_end_and_move_with_their_deliveries(backend: Backend) -> TestResult {
    let (dir, store) = temp_store(backend).await?;
    let old = deployment(&store).await?;
    store
        .add_event(old, EventKind::Started, "before", json!({}))
        .await?;
    store
        .conclude_deployment(old, DeploymentState::Succeeded, None, "production", "x")
        .await?;
    let running = deployment(&store).await?;

    let cursors = store.notify_cursors().await?;
    assert!(store.events_after(cursors.events, 10).await?.is_empty());
    // The running deployment's conclusion is still to come; the old one's is not.
    assert_eq!(cursors.deployments_floor, running - 1);

    store
        .add_event(running, EventKind::Started, "after", json!({}))
        .await?;
    let events = store.events_after(cursors.events, 10).await?;
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].message, "after");
    store
        .conclude_deployment(
            running,
            DeploymentState::RolledBack,
            Some("5xx"),
            "production",
            "x",
        )
        .await?;
    assert_eq!(
        store
            .unnotified_conclusions(cursors.deployments_floor, 10)
            .await?,
        [running]
    );

    let advance = CursorAdvance {
        events: Some(events[0].id),
        environment_events: None,
        concluded: vec![running],
    };
    store
        .enqueue_notifications(&advance, &[delivery("msg_a"), delivery("msg_b")])
        .await?;
    // Again (a retry after an unknown outcome): nothing twice.
    store
        .enqueue_notifications(&advance, &[delivery("msg_a")])
        .await?;
    store.close().await;

    // A restarted daemon resumes where the cursors are.
    let store = Store::open(&dir.url).await?;
    let cursors = store.notify_cursors().await?;
    assert!(store.events_after(cursors.events, 10).await?.is_empty());
    assert!(
        store
            .unnotified_conclusions(cursors.deployments_floor, 10)
            .await?
            .is_empty()
    );
    let queued = store.deliveries(10).await?;
    assert_eq!(queued.len(), 2);
    assert!(queued.iter().all(|d| d.state == DeliveryState::Pending));
    Ok(())
}

both!(attempts_are_recorded_until_delivered_or_given_up);
async fn attempts_are_recorded_until_delivered_or_given_up(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    store
        .enqueue_notifications(
            &CursorAdvance::default(),
            &[delivery("msg_a"), delivery("msg_b")],
        )
        .await?;
    let now = jiff::Timestamp::now().round(jiff::Unit::Millisecond)?;
    let due = store.due_deliveries(now, 10).await?;
    assert_eq!(due.len(), 2);
    let (a, b) = (due[0].id, due[1].id);

    let later = now.checked_add(jiff::SignedDuration::from_secs(60))?;
    store
        .record_attempt(
            a,
            now,
            &AttemptResult::Retry {
                status: Some(503),
                error: "answered 503".into(),
                next: later,
            },
        )
        .await?;
    store
        .record_attempt(b, now, &AttemptResult::Delivered { status: 204 })
        .await?;
    assert!(store.due_deliveries(now, 10).await?.is_empty());
    assert_eq!(store.next_delivery_due().await?, Some(later));
    let retried = store.due_deliveries(later, 10).await?;
    assert_eq!(retried.len(), 1);
    assert_eq!(retried[0].attempts, 1);
    assert_eq!(retried[0].last_status, Some(503));
    assert_eq!(retried[0].message_id, "msg_a", "same id on every attempt");

    store
        .record_attempt(
            a,
            later,
            &AttemptResult::GiveUp {
                status: None,
                error: "cannot connect".into(),
            },
        )
        .await?;
    // A delivered or given-up delivery does not change again.
    store
        .record_attempt(b, later, &AttemptResult::Delivered { status: 200 })
        .await?;
    let all = store.deliveries(10).await?;
    assert_eq!(all[0].state, DeliveryState::Delivered);
    assert_eq!(all[0].attempts, 1);
    assert_eq!(all[0].last_status, Some(204));
    assert_eq!(all[1].state, DeliveryState::Failed);
    assert_eq!(all[1].attempts, 2);
    assert_eq!(all[1].last_error.as_deref(), Some("cannot connect"));
    assert_eq!(store.next_delivery_due().await?, None);
    Ok(())
}
