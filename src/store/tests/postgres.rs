//! What is particular to a store on PostgreSQL: opening and migrating
//! (again, at once, a newer schema), what `inspect`/`is_new` say, the URL's
//! password never shown, and the daemon's advisory lock.

use super::{TestResult, server_url, temp_place, temp_store, with_database};
use crate::daemon::server_lock::{ServerLock, ServerLockError, is_held};
use crate::store::{Backend, MIGRATOR_PG, Store, StoreError, StoreFile};

#[tokio::test]
async fn reopening_applies_no_migration_twice() -> TestResult {
    let place = temp_place(Backend::Postgres).await?;
    assert!(Store::is_new(&place.url).await?, "an empty database is new");
    let store = Store::open(&place.url).await?;
    assert_eq!(store.backend(), Backend::Postgres);
    store.upsert_release("shop", "v1", "h1").await?;
    store.close().await;
    assert!(!Store::is_new(&place.url).await?);

    let store = Store::open(&place.url).await?;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&store.pool)
        .await?;
    assert_eq!(applied, i64::try_from(MIGRATOR_PG.iter().count())?);
    assert!(store.release("shop", "v1").await?.is_some());
    Store::check(&place.url).await?;
    store.close().await;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_new_database_all_succeed() -> TestResult {
    let place = temp_place(Backend::Postgres).await?;
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = place.url.clone();
        tasks.spawn(async move { Store::open(&url).await });
    }
    while let Some(opened) = tasks.join_next().await {
        opened??.close().await;
    }
    Ok(())
}

#[tokio::test]
async fn a_store_written_by_a_newer_cutover_is_refused() -> TestResult {
    let (place, store) = temp_store(Backend::Postgres).await?;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (999999, 'from the future', TRUE, '\\x00'::bytea, 0)",
    )
    .execute(&store.pool)
    .await?;
    store.close().await;
    for error in [
        Store::open(&place.url).await.err(),
        Store::check(&place.url).await.err(),
    ] {
        let error = error.ok_or("a newer schema must be refused")?;
        assert!(
            matches!(error, StoreError::NewerSchema { found: 999999, .. }),
            "{error:?}"
        );
        let message = error.to_string();
        assert!(message.contains("written by a newer cutover"), "{message}");
        assert!(!message.contains(":cutover_test@"), "{message}");
    }
    Ok(())
}

#[tokio::test]
async fn a_wrong_password_is_an_error_that_does_not_show_it() -> TestResult {
    let server = url::Url::parse(&server_url()?)?;
    let mut url = server.clone();
    url.set_password(Some("not-the-s3cret"))
        .map_err(|()| "cannot set a password")?;
    let error = Store::open(url.as_str())
        .await
        .expect_err("a wrong password must fail");
    let shown = format!("{error} {error:?}");
    assert!(matches!(error, StoreError::Open { .. }), "{shown}");
    assert!(!shown.contains("not-the-s3cret"), "{shown}");
    assert!(shown.contains("***"), "{shown}");
    assert_eq!(
        Store::inspect(url.as_str())?,
        StoreFile::Server(url.as_str().replace("not-the-s3cret", "***"))
    );
    Ok(())
}

#[tokio::test]
async fn a_database_that_does_not_exist_is_named() -> TestResult {
    let url = with_database(&server_url()?, "cutover_no_such_database")?;
    let error = Store::open(&url).await.expect_err("must fail");
    let shown = format!(
        "{error}: {}",
        std::error::Error::source(&error).map_or_else(String::new, ToString::to_string)
    );
    assert!(shown.contains("cutover_no_such_database"), "{shown}");
    Ok(())
}

#[tokio::test]
async fn one_daemon_per_app_holds_the_advisory_lock() -> TestResult {
    let place = temp_place(Backend::Postgres).await?;
    assert!(!is_held(&place.url, "shop").await?);
    let first = ServerLock::acquire(&place.url, "shop").await?;
    assert!(is_held(&place.url, "shop").await?);
    let error = ServerLock::acquire(&place.url, "shop")
        .await
        .expect_err("a second daemon must be refused");
    let message = error.to_string();
    assert!(matches!(error, ServerLockError::Held { .. }), "{message}");
    assert!(
        message.contains("another cutover serve holds the state store")
            && message.contains(&format!("cutover serve pid {}", std::process::id()))
            && !message.contains(":cutover_test@"),
        "{message}"
    );
    // Another app on the same database is another lock.
    let other = ServerLock::acquire(&place.url, "blog").await?;
    drop(first);
    // The session ends with the lock's connection.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(5);
    while is_held(&place.url, "shop").await? {
        assert!(
            std::time::Instant::now() < deadline,
            "the lock outlived its session"
        );
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    drop(other);
    Ok(())
}
