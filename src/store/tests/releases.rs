//! Releases: recorded once, never changed.

use super::{TestResult, both, temp_store};
use crate::store::Backend;

both!(upserting_a_release_again_keeps_the_first_record);
async fn upserting_a_release_again_keeps_the_first_record(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    assert_eq!(store.release("shop", "v1").await?, None);

    store.upsert_release("shop", "v1", "hash-1").await?;
    let first = store.release("shop", "v1").await?.ok_or("not recorded")?;
    assert_eq!(first.app, "shop");
    assert_eq!(first.version, "v1");
    assert_eq!(first.config_hash, "hash-1");

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.upsert_release("shop", "v1", "hash-other").await?;
    assert_eq!(store.release("shop", "v1").await?, Some(first.clone()));

    store.upsert_release("shop", "v2", "hash-2").await?;
    store.upsert_release("blog", "v1", "hash-3").await?;
    let v2 = store
        .release("shop", "v2")
        .await?
        .ok_or("v2 not recorded")?;
    assert!(v2.created_at > first.created_at);
    assert_eq!(
        store.release("blog", "v1").await?.map(|r| r.config_hash),
        Some("hash-3".to_owned())
    );
    Ok(())
}
