//! What serves where.

use super::{TestResult, both, temp_store};
use crate::store::Backend;
use crate::store::StoreError;

both!(set_serving_moves_the_current_version_to_previous);
async fn set_serving_moves_the_current_version_to_previous(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    assert_eq!(store.serving("production").await?, None);

    store.set_serving("production", "v1").await?;
    let first = store.serving("production").await?.ok_or("not recorded")?;
    assert_eq!(first.environment, "production");
    assert_eq!(first.current, "v1");
    assert_eq!(first.previous, None);

    tokio::time::sleep(std::time::Duration::from_millis(5)).await;
    store.set_serving("production", "v2").await?;
    let second = store.serving("production").await?.ok_or("gone")?;
    assert_eq!(second.current, "v2");
    assert_eq!(second.previous.as_deref(), Some("v1"));
    assert!(second.since > first.since);

    // The same version again changes nothing.
    store.set_serving("production", "v2").await?;
    assert_eq!(store.serving("production").await?, Some(second));

    // A rollback to v1 makes v2 the previous one.
    store.set_serving("production", "v1").await?;
    let back = store.serving("production").await?.ok_or("gone")?;
    assert_eq!(
        (back.current.as_str(), back.previous.as_deref()),
        ("v1", Some("v2"))
    );

    // Other environments are separate.
    assert_eq!(store.serving("staging").await?, None);
    Ok(())
}

both!(set_previous_overwrites_the_rollback_target);
async fn set_previous_overwrites_the_rollback_target(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let err = store
        .set_previous("production", Some("v0"))
        .await
        .err()
        .ok_or("set previous of an environment nothing serves")?;
    assert!(
        matches!(
            err,
            StoreError::NotFound {
                what: "environment",
                ..
            }
        ),
        "{err:?}"
    );
    assert_eq!(err.to_string(), r#"environment "production" not found"#);

    store.set_serving("production", "v1").await?;
    store.set_serving("production", "v2").await?;
    store.set_previous("production", None).await?;
    let serving = store.serving("production").await?.ok_or("gone")?;
    assert_eq!((serving.current.as_str(), serving.previous), ("v2", None));

    store.set_previous("production", Some("v0")).await?;
    let serving = store.serving("production").await?.ok_or("gone")?;
    assert_eq!(serving.previous.as_deref(), Some("v0"));
    assert_eq!(serving.current, "v2");
    Ok(())
}
