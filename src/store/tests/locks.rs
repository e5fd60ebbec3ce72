//! The deployment lock, including two processes racing for it.

use tokio::task::JoinSet;

use super::{TestResult, both, temp_place, temp_store};
use crate::store::Backend;
use crate::store::{Lock, Store, StoreError};

both!(
    the_lock_is_exclusive_across_two_processes,
    flavor = "multi_thread",
    worker_threads = 4
);
async fn the_lock_is_exclusive_across_two_processes(backend: Backend) -> TestResult {
    let place = temp_place(backend).await?;
    let url = place.url.clone();
    // Two handles on one file, each with its own pool: two processes, as far
    // as SQLite can tell.
    let a = Store::open(&url).await?;
    let b = Store::open(&url).await?;

    for round in 0..25 {
        let environment = format!("env-{round}");
        let (ra, rb) = tokio::join!(
            a.try_lock(&environment, "alice@host", "deploy v2"),
            b.try_lock(&environment, "bob@other", "deploy v3"),
        );
        let (won, lost) = match (ra, rb) {
            (Ok(won), Err(lost)) | (Err(lost), Ok(won)) => (won, lost),
            (Ok(_), Ok(_)) => return Err(format!("{environment}: both won").into()),
            (Err(a), Err(b)) => return Err(format!("{environment}: both lost: {a}; {b}").into()),
        };
        assert_eq!(won.environment, environment);
        match &lost {
            StoreError::LockHeld {
                environment: e,
                holder,
                purpose,
                since,
            } => {
                assert_eq!(e, &environment);
                assert_eq!(holder, &won.holder);
                assert_eq!(purpose, &won.purpose);
                assert_eq!(since, &won.since);
            }
            other => return Err(format!("lost with {other:?}").into()),
        }
        let message = lost.to_string();
        assert!(message.contains(&won.holder), "{message}");
        assert!(message.contains(&won.since.to_string()[..19]), "{message}");
        // Both handles see the same holder.
        assert_eq!(a.lock(&environment).await?, Some(won.clone()));
        assert_eq!(b.lock(&environment).await?, Some(won));
    }
    Ok(())
}

both!(
    many_contenders_one_winner,
    flavor = "multi_thread",
    worker_threads = 4
);
async fn many_contenders_one_winner(backend: Backend) -> TestResult {
    let place = temp_place(backend).await?;
    let url = place.url.clone();
    let stores = [Store::open(&url).await?, Store::open(&url).await?];
    let mut tasks = JoinSet::new();
    for i in 0..16 {
        let store = stores[i % 2].clone();
        tasks.spawn(async move {
            store
                .try_lock("production", &format!("holder-{i}"), "deploy")
                .await
        });
    }
    let mut winners = Vec::new();
    let mut holders_named = Vec::new();
    while let Some(result) = tasks.join_next().await {
        match result? {
            Ok(lock) => winners.push(lock),
            Err(StoreError::LockHeld { holder, .. }) => holders_named.push(holder),
            Err(other) => return Err(other.into()),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(holders_named.len(), 15);
    assert!(holders_named.iter().all(|h| *h == winners[0].holder));
    Ok(())
}

#[tokio::test]
async fn lock_held_message() -> TestResult {
    let err = StoreError::LockHeld {
        environment: "production".to_owned(),
        holder: "alice@host".to_owned(),
        purpose: "deploy v2".to_owned(),
        since: "2026-11-26T10:00:00.123Z".parse()?,
    };
    assert_eq!(
        err.to_string(),
        r#"environment "production" is locked by alice@host (deploy v2) since 2026-11-26T10:00:00Z"#
    );
    Ok(())
}

both!(environments_do_not_conflict_and_only_the_holder_unlocks);
async fn environments_do_not_conflict_and_only_the_holder_unlocks(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    assert_eq!(store.lock("staging").await?, None);

    let staging = store.try_lock("staging", "alice@host", "deploy v2").await?;
    let production = store
        .try_lock("production", "bob@other", "deploy v7")
        .await?;
    assert_eq!(staging.holder, "alice@host");
    assert_eq!(staging.purpose, "deploy v2");
    assert_eq!(store.lock("staging").await?, Some(staging.clone()));
    assert_eq!(store.lock("production").await?, Some(production.clone()));

    // Not reentrant: the holder asking again is refused too.
    assert!(matches!(
        store.try_lock("staging", "alice@host", "deploy v3").await,
        Err(StoreError::LockHeld { .. })
    ));

    assert!(
        !store.unlock("staging", "bob@other").await?,
        "not bob's lock"
    );
    assert!(!store.unlock("nowhere", "alice@host").await?);
    assert_eq!(store.lock("staging").await?, Some(staging));
    assert!(store.unlock("staging", "alice@host").await?);
    assert!(
        !store.unlock("staging", "alice@host").await?,
        "already released"
    );
    assert_eq!(store.lock("staging").await?, None);

    let again = store.try_lock("staging", "bob@other", "rollback").await?;
    assert_eq!(again.holder, "bob@other");
    assert_eq!(store.lock("production").await?, Some(production));
    Ok(())
}

both!(force_unlock_returns_what_it_removed);
async fn force_unlock_returns_what_it_removed(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    assert_eq!(store.force_unlock("staging").await?, None);
    let lock = store.try_lock("staging", "alice@host", "deploy v2").await?;
    assert_eq!(store.force_unlock("staging").await?, Some(lock));
    assert_eq!(store.lock("staging").await?, None);
    store.try_lock("staging", "bob@other", "deploy v3").await?;
    Ok(())
}

both!(release_locks_of_a_holder_prefix);
async fn release_locks_of_a_holder_prefix(backend: Backend) -> TestResult {
    let (_dir, store) = temp_store(backend).await?;
    let mine_b = store.try_lock("b", "daemon:host:41", "deploy v2").await?;
    let mine_a = store
        .try_lock("a", "daemon:host:41/task", "rollback")
        .await?;
    let other = store.try_lock("c", "daemon:host:4", "deploy v9").await?;
    let alice = store.try_lock("d", "alice@host", "deploy v1").await?;
    let upper = store.try_lock("e", "DAEMON:host:41", "deploy v1").await?;

    let released: Vec<Lock> = store.release_locks_of("daemon:host:41").await?;
    assert_eq!(released, [mine_a, mine_b], "by environment");
    assert_eq!(store.lock("a").await?, None);
    assert_eq!(store.lock("b").await?, None);
    assert_eq!(
        store.lock("c").await?,
        Some(other),
        "a shorter holder is not a match"
    );
    assert_eq!(store.lock("d").await?, Some(alice));
    assert_eq!(store.lock("e").await?, Some(upper), "case-sensitive");
    assert_eq!(store.release_locks_of("daemon:host:41").await?, []);
    assert_eq!(store.release_locks_of("%").await?, [], "no LIKE wildcards");
    Ok(())
}
