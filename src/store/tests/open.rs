//! Opening: files, directories, pragmas, migrations, bad URLs and paths.

use std::error::Error as _;
use std::path::{Component, Path, PathBuf};

use super::{TestResult, temp_store, url_of};
use crate::store::Backend;
use crate::store::{MIGRATOR, Store, StoreError};

async fn pragma_int(store: &Store, sql: &'static str) -> TestResult<i64> {
    Ok(sqlx::query_scalar(sql).fetch_one(&store.pool).await?)
}

#[tokio::test]
async fn open_creates_the_file_and_its_directories_in_wal_mode() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("a/b/.cutover/state.db");
    let store = Store::open(&url_of(&path)).await?;
    assert!(path.is_file(), "{} was not created", path.display());

    let journal_mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&store.pool)
        .await?;
    assert_eq!(journal_mode, "wal");
    assert_eq!(pragma_int(&store, "PRAGMA foreign_keys").await?, 1);
    assert_eq!(pragma_int(&store, "PRAGMA synchronous").await?, 1, "NORMAL");
    assert_eq!(pragma_int(&store, "PRAGMA busy_timeout").await?, 5000);
    Ok(())
}

#[tokio::test]
async fn open_accepts_a_relative_url() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("rel/state.db");
    // The same file, relative to the working directory: up to the root, then down.
    let cwd = std::env::current_dir()?;
    let mut relative = PathBuf::new();
    for component in cwd.components() {
        if let Component::Normal(_) = component {
            relative.push("..");
        }
    }
    relative.push(path.strip_prefix("/")?);
    assert!(relative.is_relative());

    let store = Store::open(&format!("sqlite://{}", relative.display())).await?;
    store.upsert_release("shop", "v1", "h").await?;
    assert!(path.is_file());
    Ok(())
}

#[tokio::test]
async fn reopening_applies_no_migration_twice() -> TestResult {
    let dir = tempfile::tempdir()?;
    let url = url_of(&dir.path().join("state.db"));
    let store = Store::open(&url).await?;
    store.upsert_release("shop", "v1", "h1").await?;
    store.close().await;

    let store = Store::open(&url).await?;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&store.pool)
        .await?;
    assert_eq!(applied, i64::try_from(MIGRATOR.iter().count())?);
    assert!(applied >= 1);
    assert!(
        store.release("shop", "v1").await?.is_some(),
        "data survives"
    );

    // And a third time, with the second handle still open.
    let again = Store::open(&url).await?;
    assert!(again.release("shop", "v1").await?.is_some());
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_opens_of_a_new_file_all_succeed() -> TestResult {
    let dir = tempfile::tempdir()?;
    let url = url_of(&dir.path().join("state.db"));
    let mut tasks = tokio::task::JoinSet::new();
    for _ in 0..6 {
        let url = url.clone();
        tasks.spawn(async move { Store::open(&url).await });
    }
    let mut stores = Vec::new();
    while let Some(opened) = tasks.join_next().await {
        stores.push(opened??);
    }
    let first = stores.first().ok_or("no store")?;
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&first.pool)
        .await?;
    assert_eq!(applied, i64::try_from(MIGRATOR.iter().count())?);
    Ok(())
}

#[tokio::test]
async fn in_memory_store_works() -> TestResult {
    let store = Store::open("sqlite::memory:").await?;
    store.set_serving("staging", "v1").await?;
    assert_eq!(
        store.serving("staging").await?.map(|s| s.current),
        Some("v1".to_owned())
    );
    Ok(())
}

#[tokio::test]
async fn a_store_is_shared_between_clones() -> TestResult {
    let (_dir, store) = temp_store(Backend::Sqlite).await?;
    let clone = store.clone();
    clone.set_serving("staging", "v1").await?;
    assert!(store.serving("staging").await?.is_some());
    Ok(())
}

/// Asserts that `result` is an `Open` error that names `needle` in its message.
fn assert_open_error(result: Result<Store, StoreError>, needle: &str) -> TestResult {
    let err = match result {
        Ok(_) => return Err("opening succeeded".into()),
        Err(err) => err,
    };
    let message = err.to_string();
    assert!(
        matches!(err, StoreError::Open { .. }),
        "not an Open error: {err:?}"
    );
    assert!(
        message.contains(needle),
        "{message:?} does not name {needle:?}"
    );
    assert!(err.source().is_some(), "the cause is kept as the source");
    Ok(())
}

#[tokio::test]
async fn open_rejects_a_url_of_another_database() -> TestResult {
    let url = "mysql://localhost/cutover";
    assert_open_error(Store::open(url).await, url)
}

#[tokio::test]
async fn open_under_a_regular_file_fails_naming_the_path() -> TestResult {
    let dir = tempfile::tempdir()?;
    let file = dir.path().join("not-a-dir");
    std::fs::write(&file, "x")?;
    let path = file.join("state.db");
    let result = Store::open(&url_of(&path)).await;
    let Err(err) = &result else {
        return Err("opening succeeded".into());
    };
    let cause = err.source().map(|s| s.to_string()).unwrap_or_default();
    assert!(
        cause.contains("not-a-dir"),
        "cause {cause:?} names the directory"
    );
    assert_open_error(result, &path.display().to_string())
}

#[tokio::test]
async fn open_in_a_read_only_directory_fails_naming_the_path() -> TestResult {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir()?;
    let ro = dir.path().join("ro");
    std::fs::create_dir(&ro)?;
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o555))?;
    // Permissions do not bind root; a read-only file system does.
    let mount = if writable(&ro) {
        Some(Tmpfs::mount(&ro, "ro,size=1m")?)
    } else {
        None
    };
    assert!(!writable(&ro), "{} is still writable", ro.display());
    let path = ro.join("state.db");
    let result = Store::open(&url_of(&path)).await;
    drop(mount);
    std::fs::set_permissions(&ro, std::fs::Permissions::from_mode(0o755))?;
    assert_open_error(result, &path.display().to_string())
}

#[tokio::test]
async fn open_of_a_read_only_file_fails_naming_the_path() -> TestResult {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir()?;
    let folder = dir.path().join("db");
    std::fs::create_dir(&folder)?;
    // Permissions do not bind root; a file system remounted read-only does.
    let mount = if permissions_bind()? {
        None
    } else {
        Some(Tmpfs::mount(&folder, "size=1m")?)
    };
    let path = folder.join("state.db");
    Store::open(&url_of(&path)).await?.close().await;
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o444))?;
    if let Some(mount) = &mount {
        mount.remount_read_only()?;
    }
    assert!(
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .is_err(),
        "{} is still writable",
        path.display()
    );
    assert_open_error(
        Store::open(&url_of(&path)).await,
        &path.display().to_string(),
    )
}

fn writable(dir: &Path) -> bool {
    let probe = dir.join(".probe");
    let ok = std::fs::write(&probe, "x").is_ok();
    let _ = std::fs::remove_file(&probe);
    ok
}

/// Whether file permissions stop this process (they do not stop root).
fn permissions_bind() -> TestResult<bool> {
    use std::os::unix::fs::PermissionsExt as _;

    let dir = tempfile::tempdir()?;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o555))?;
    let bind = !writable(dir.path());
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755))?;
    Ok(bind)
}

/// A tmpfs mounted on a folder (needs root, as CI runs the tests); unmounted
/// when dropped.
struct Tmpfs(PathBuf);

impl Tmpfs {
    fn mount(at: &Path, options: &str) -> TestResult<Tmpfs> {
        run_mount(&["-t", "tmpfs", "-o", options, "tmpfs"], at)?;
        Ok(Tmpfs(at.to_owned()))
    }

    /// Makes the file system read-only (no file on it may be open for writing).
    fn remount_read_only(&self) -> TestResult {
        run_mount(&["-o", "remount,ro"], &self.0)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: detached even if something still has a file open on it.
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

fn run_mount(args: &[&str], at: &Path) -> TestResult {
    let out = std::process::Command::new("mount")
        .args(args)
        .arg(at)
        .output()?;
    if !out.status.success() {
        return Err(format!(
            "mount {args:?} {} failed (this test needs root when permissions do not bind): {}",
            at.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        )
        .into());
    }
    Ok(())
}

#[tokio::test]
async fn a_store_written_by_a_newer_cutover_is_refused() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state.db");
    let store = Store::open(&url_of(&path)).await?;
    sqlx::query(
        "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time)
         VALUES (999999, 'from the future', 1, x'00', 0)",
    )
    .execute(&store.pool)
    .await?;
    store.close().await;

    let error = Store::open(&url_of(&path))
        .await
        .expect_err("a newer schema must be refused");
    assert!(
        matches!(error, StoreError::NewerSchema { found: 999999, .. }),
        "{error:?}"
    );
    let message = error.to_string();
    assert!(message.contains("written by a newer cutover"), "{message}");
    assert!(message.contains(&path.display().to_string()), "{message}");
    Ok(())
}

#[tokio::test]
async fn a_file_that_is_not_a_database_is_refused_as_damaged() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state.db");
    std::fs::write(&path, vec![0xa5_u8; 16 * 1024])?;
    let error = Store::open(&url_of(&path))
        .await
        .expect_err("garbage must be refused");
    assert!(matches!(error, StoreError::Damaged { .. }), "{error:?}");
    let message = error.to_string();
    assert!(message.contains("is damaged"), "{message}");
    assert!(message.contains("backup restore --state"), "{message}");
    // The cause is named once, in the message itself, not again as a source.
    assert!(error.source().is_none());
    Ok(())
}

#[tokio::test]
async fn damaged_pages_are_found_by_quick_check() -> TestResult {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state.db");
    let store = Store::open(&url_of(&path)).await?;
    for i in 0..200 {
        store
            .upsert_release("shop", &format!("v{i}"), &"h".repeat(200))
            .await?;
    }
    sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
        .execute(&store.pool)
        .await?;
    store.close().await;
    let page_size = 4096;
    let mut bytes = std::fs::read(&path)?;
    assert!(bytes.len() > 6 * page_size, "the store has pages to damage");
    // Page 1 (the header and the schema) stays; pages after it are garbage.
    let end = bytes.len();
    for b in bytes.get_mut(page_size * 2..end).into_iter().flatten() {
        *b = 0x5a;
    }
    std::fs::write(&path, bytes)?;

    let error = Store::open(&url_of(&path))
        .await
        .expect_err("damaged pages must be refused");
    assert!(matches!(error, StoreError::Damaged { .. }), "{error:?}");
    Ok(())
}

#[test]
fn inspect_tells_a_missing_an_empty_and_a_present_file_apart() -> TestResult {
    use crate::store::StoreFile;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("state.db");
    assert_eq!(
        Store::inspect(&url_of(&path))?,
        StoreFile::Missing(path.clone())
    );
    std::fs::write(&path, b"")?;
    assert_eq!(
        Store::inspect(&url_of(&path))?,
        StoreFile::Empty(path.clone())
    );
    std::fs::write(&path, b"x")?;
    assert_eq!(
        Store::inspect(&url_of(&path))?,
        StoreFile::Present(path.clone())
    );
    assert_eq!(Store::inspect("sqlite::memory:")?, StoreFile::InMemory);
    Ok(())
}
