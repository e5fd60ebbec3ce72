//! Release digests and operator locks.

use super::{TestResult, both, temp_store};
use crate::store::Backend;

both!(a_release_digest_is_recorded_once_per_deployment);
async fn a_release_digest_is_recorded_once_per_deployment(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let services = serde_json::json!({ "web": { "digest": "aa", "parts": [] } });
    store
        .record_release_digest(7, "staging", "v2", "d1", &services)
        .await?;
    store
        .record_release_digest(7, "staging", "v2", "other", &services)
        .await?;
    store
        .record_release_digest(9, "production", "v2", "d2", &services)
        .await?;
    let seven = store.release_digest(7).await?.ok_or("not recorded")?;
    assert_eq!((seven.digest.as_str(), &seven.services), ("d1", &services));
    let staging = store.release_digests(Some("staging")).await?;
    assert_eq!(staging.len(), 1);
    let all = store.release_digests(None).await?;
    let ids: Vec<i64> = all.iter().map(|d| d.deployment_id).collect();
    assert_eq!(ids, [7, 9]);
    assert_eq!(store.release_digest(8).await?, None);
    Ok(())
}

both!(an_operator_lock_holds_until_unlocked_or_its_time_passes);
async fn an_operator_lock_holds_until_unlocked_or_its_time_passes(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    assert_eq!(store.operator_lock_of("production").await?, None);
    let lock = store
        .operator_lock("production", "maintenance", "alice@host", None)
        .await?;
    assert_eq!(
        store.operator_lock_of("production").await?,
        Some(lock.clone())
    );
    assert_eq!(store.operator_lock_of("staging").await?, None);
    // Locking again replaces it.
    let later = jiff::Timestamp::now() + jiff::SignedDuration::from_hours(1);
    let replaced = store
        .operator_lock("production", "freeze", "bob@host", Some(later))
        .await?;
    assert_eq!(replaced.locked_by, "bob@host");
    assert_eq!(
        store.operator_unlock("production").await?.map(|l| l.reason),
        Some("freeze".into())
    );
    assert_eq!(store.operator_unlock("production").await?, None);
    // A lock whose time passed is gone.
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(1);
    store
        .operator_lock("production", "old", "alice@host", Some(past))
        .await?;
    assert_eq!(store.operator_lock_of("production").await?, None);
    assert_eq!(store.operator_unlock("production").await?, None);
    Ok(())
}
