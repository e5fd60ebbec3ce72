//! Environment events: per environment, newest first, limited.

use serde_json::json;

use super::{TestResult, both, temp_store};
use crate::store::Backend;

both!(environment_events_are_kept_per_environment_and_read_newest_first);
async fn environment_events_are_kept_per_environment_and_read_newest_first(
    backend: Backend,
) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let mut added = Vec::new();
    for i in 0..3 {
        added.push(
            store
                .add_environment_event(
                    "production",
                    "certificate_reloaded",
                    &format!("reload {i}"),
                    json!({ "i": i }),
                )
                .await?,
        );
    }
    store
        .add_environment_event("staging", "certificate_issued", "other", json!({}))
        .await?;

    let read = store.environment_events("production", 10).await?;
    added.reverse();
    assert_eq!(read, added, "read back as returned, newest first");
    let two = store.environment_events("production", 2).await?;
    assert_eq!(two, added[..2], "the limit keeps the newest");
    let staging = store.environment_events("staging", 10).await?;
    assert_eq!(staging.len(), 1);
    assert_eq!(staging[0].kind, "certificate_issued");
    assert!(store.environment_events("nowhere", 10).await?.is_empty());
    Ok(())
}
