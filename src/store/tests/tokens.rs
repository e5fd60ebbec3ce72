//! Named tokens: stored by hash, names never reused, revoked once.

use super::{TestResult, both, temp_store};
use crate::store::Backend;
use crate::store::{NewToken, StoreError};

fn token<'a>(name: &'a str, hash: &'a str) -> NewToken<'a> {
    NewToken {
        name,
        hash,
        role: "deployer",
        created_by: "admin",
        expires_at: None,
    }
}

both!(tokens_are_found_by_hash_revoked_once_and_names_never_reused);
async fn tokens_are_found_by_hash_revoked_once_and_names_never_reused(
    backend: Backend,
) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let ci = store.add_token(token("ci", "h1")).await?;
    assert_eq!((ci.name.as_str(), ci.role.as_str()), ("ci", "deployer"));
    assert_eq!(store.token_by_hash("h1").await?, Some(ci.clone()));
    assert_eq!(store.token_by_hash("h2").await?, None);

    let again = store.add_token(token("ci", "h2")).await;
    assert!(matches!(again, Err(StoreError::Conflict(_))), "{again:?}");

    let revoked = store.revoke_token("ci").await?.expect("revoked");
    assert!(revoked.revoked_at.is_some());
    assert!(matches!(
        store.revoke_token("ci").await,
        Err(StoreError::Conflict(_))
    ));
    assert_eq!(store.revoke_token("nobody").await?, None);
    // Revoked, the name still may not be reused.
    assert!(store.add_token(token("ci", "h3")).await.is_err());

    store.touch_token("ci").await?;
    let touched = store.token_by_hash("h1").await?.expect("still there");
    assert!(touched.last_used_at.is_some());
    assert_eq!(store.tokens().await?.len(), 1);
    Ok(())
}
