//! A state store that refuses to start wrong: a deleted, empty or damaged
//! `state.db` while instances of the app still run is refused with what to
//! do, nothing is stopped, and `cutover serve --adopt-orphans` takes the
//! instances back.

use std::path::PathBuf;
use std::process::{Output, Stdio};
use std::time::Duration;

use cutover_kit::wait::Wait;

use crate::common::{TestApp, fetch, ok, stderr};

/// The store of the test app.
fn state_db(app: &TestApp) -> PathBuf {
    app.path().join(".cutover").join("state.db")
}

/// `cutover serve ARGS…`, which must exit by itself (a refusal).
pub(crate) fn serve_refused(app: &TestApp) -> Output {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("-c")
        .arg(app.config())
        .arg("serve")
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start cutover serve");
    let exited = Wait::up_to(Duration::from_secs(20))
        .until(|| matches!(child.try_wait(), Ok(Some(_))))
        .is_ok();
    if !exited {
        let _ = child.kill();
        let out = child.wait_with_output().expect("output");
        panic!(
            "cutover serve did not refuse to start:\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    child.wait_with_output().expect("output")
}

/// Folds the write-ahead log into `db` (as SQLite's own tool does), then
/// overwrites every page after the first two with garbage.
fn damage(db: &std::path::Path) {
    let checkpoint = std::process::Command::new("sqlite3")
        .arg(db)
        .arg("PRAGMA wal_checkpoint(TRUNCATE);")
        .output()
        .expect("run sqlite3");
    assert!(checkpoint.status.success(), "{}", stderr(&checkpoint));
    let mut bytes = std::fs::read(db).expect("read state.db");
    let page = 4096;
    let len = bytes.len();
    assert!(len > 4 * page, "state.db has pages to damage ({len} bytes)");
    for b in bytes.get_mut(2 * page..len).into_iter().flatten() {
        *b = 0xa5;
    }
    std::fs::write(db, bytes).expect("damage state.db");
}

/// The instances' pids and the port each listens on (from `--port N`).
fn instances(app: &TestApp) -> Vec<(i32, u16)> {
    let mut found: Vec<(i32, u16)> = app
        .instance_pids()
        .into_iter()
        .filter_map(|(pid, cmd)| {
            let mut words = cmd.split_whitespace();
            words.find(|w| *w == "--port")?;
            Some((pid, words.next()?.parse().ok()?))
        })
        .collect();
    found.sort();
    found
}

/// Each instance still answers, directly, as `version`.
async fn all_answer(found: &[(i32, u16)], version: &str) {
    for (pid, port) in found {
        assert_eq!(
            fetch(&format!("http://127.0.0.1:{port}/")).await.as_deref(),
            Some(format!("hello from {version}").as_str()),
            "instance pid {pid} on port {port}"
        );
    }
}

/// How the store is lost.
enum Loss {
    Deleted,
    Truncated,
}

async fn a_lost_store_is_refused_then_adopted(loss: Loss) {
    let app = TestApp::deployed("10m", &["v1"]);
    let before = instances(&app);
    assert_eq!(before.len(), 2, "2 instances of v1");

    app.kill_daemon();
    let db = state_db(&app);
    match loss {
        Loss::Deleted => std::fs::remove_file(&db).expect("delete state.db"),
        Loss::Truncated => {
            std::fs::File::create(&db).expect("truncate state.db");
        }
    }

    let refused = serve_refused(&app);
    let message = stderr(&refused);
    assert_ne!(refused.status.code(), Some(0), "{message}");
    assert_ne!(refused.status.code(), Some(101), "a panic: {message}");
    assert!(message.contains("refusing to start"), "{message}");
    let how = match loss {
        Loss::Deleted => "is missing",
        Loss::Truncated => "is empty",
    };
    assert!(message.contains(how), "{message}");
    assert!(message.contains(&db.display().to_string()), "{message}");
    assert!(message.contains("2 instance(s)"), "{message}");
    assert!(message.contains("--adopt-orphans"), "{message}");
    assert!(message.contains("backup restore --state"), "{message}");
    // Nothing was stopped, nothing was created.
    assert_eq!(instances(&app), before, "the instances were touched");
    all_answer(&before, "v1").await;
    match loss {
        Loss::Deleted => assert!(!db.exists(), "the refusal created a store"),
        Loss::Truncated => assert_eq!(std::fs::metadata(&db).map(|m| m.len()).ok(), Some(0)),
    }

    app.serve_with(&["serve", "--adopt-orphans"], &[]);
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1"),
        "{}",
        app.daemon_log()
    );
    assert_eq!(instances(&app), before, "the same instances serve again");
    let log = app.daemon_log();
    assert!(log.contains("release v1 serves again"), "{log}");
    let status = app.cli(&["status", "--json"]);
    ok(&app, &status);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(json["environments"][0]["serving"], "v1");
    assert_eq!(
        json["environments"][0]["instances"]
            .as_array()
            .map(Vec::len),
        Some(2)
    );

    // Under management again: a deploy replaces them.
    app.release("v2", crate::common::Release::Good);
    app.deploy_ok("v2");
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_store_with_instances_running_is_refused_and_adopt_orphans_takes_them_back() {
    a_lost_store_is_refused_then_adopted(Loss::Deleted).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_empty_store_with_instances_running_is_refused_and_adopt_orphans_takes_them_back() {
    a_lost_store_is_refused_then_adopted(Loss::Truncated).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_store_is_refused_with_one_clear_message_and_nothing_stopped() {
    let app = TestApp::deployed("10m", &["v1"]);
    let before = instances(&app);
    assert_eq!(before.len(), 2);
    app.kill_daemon();
    let db = state_db(&app);
    damage(&db);

    let refused = serve_refused(&app);
    let message = stderr(&refused);
    assert_ne!(refused.status.code(), Some(0), "{message}");
    assert_ne!(refused.status.code(), Some(101), "a panic: {message}");
    assert!(message.contains("is damaged"), "{message}");
    let path = db.display().to_string();
    assert_eq!(
        message.matches(&path).count(),
        1,
        "the file once: {message}"
    );
    assert!(message.contains("backup restore --state"), "{message}");
    assert!(message.contains("move it aside"), "{message}");
    assert!(
        !message.contains("cannot open the state store"),
        "the old doubled message: {message}"
    );
    assert_eq!(instances(&app), before, "nothing is stopped");
    all_answer(&before, "v1").await;
}

/// `(id, version, state)` of each deployment `cutover history` lists.
fn history(app: &TestApp) -> Vec<(i64, String, String)> {
    let out = app.cli(&["history", "--json"]);
    ok(app, &out);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history json");
    list.as_array()
        .expect("a list")
        .iter()
        .map(|d| {
            (
                d["id"].as_i64().expect("id"),
                d["version"].as_str().expect("version").to_owned(),
                d["state"].as_str().expect("state").to_owned(),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_state_store_backup_round_trips_through_damage() {
    let app = TestApp::new("10m");
    for v in ["v1", "v2"] {
        app.release(v, crate::common::Release::Good);
    }
    let key_file = app.path().join("state-key.txt");
    let key_file = key_file.to_str().expect("a UTF-8 path");
    let key = app.cli(&["backup", "keygen", "-o", key_file]);
    ok(&app, &key);
    let recipient = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    app.append_config(&format!(
        "\n[state]\nbackup = {{ recipients = [\"{recipient}\"], dir = \"state-backups\" }}\n"
    ));
    app.serve_and_deploy(&["v1", "v2"]);
    let before = history(&app);
    assert_eq!(before.len(), 2, "{before:?}");

    // Taken while the daemon runs (SQLite's online backup).
    let created = app.cli(&["backup", "create", "--state", "--json"]);
    ok(&app, &created);
    let manifest: serde_json::Value = serde_json::from_slice(&created.stdout).expect("json");
    let id = manifest["id"].as_str().expect("id").to_owned();
    assert_eq!(manifest["database"], "cutover-state");
    let file = app.path().join("state-backups").join(format!("{id}.age"));
    let sealed = std::fs::read(&file).expect("the backup file");
    assert!(
        sealed.starts_with(b"age-encryption.org/v1"),
        "the backup is age-encrypted"
    );
    let verified = app.cli(&[
        "backup",
        "verify",
        "--state",
        &id,
        "--identity",
        key_file,
        "--allow-unsigned",
    ]);
    ok(&app, &verified);
    let listed = app.cli(&["backup", "list", "--state"]);
    ok(&app, &listed);
    assert!(crate::common::stdout(&listed).contains(&id));

    // A restore is refused while the daemon runs.
    let refused = app.cli(&[
        "backup",
        "restore",
        "--state",
        &id,
        "--identity",
        key_file,
        "--allow-unsigned",
    ]);
    assert!(!refused.status.success());
    assert!(
        stderr(&refused).contains("while the daemon runs"),
        "{}",
        stderr(&refused)
    );

    app.stop_daemon();
    let db = state_db(&app);
    damage(&db);
    let message = stderr(&serve_refused(&app));
    assert!(message.contains("is damaged"), "{message}");

    let restored = app.cli(&[
        "backup",
        "restore",
        "--state",
        &id,
        "--identity",
        key_file,
        "--allow-unsigned",
    ]);
    ok(&app, &restored);
    assert!(
        stderr(&restored).contains("moved aside"),
        "{}",
        stderr(&restored)
    );
    let kept = std::fs::read_dir(db.parent().expect("dir"))
        .expect("list .cutover")
        .flatten()
        .any(|e| {
            e.file_name()
                .to_string_lossy()
                .starts_with("state.db.damaged-")
        });
    assert!(kept, "the damaged store is kept aside");

    app.serve();
    // The history survived (newest first; starting the serving release
    // again after the clean stop may add a deployment on top).
    let after = history(&app);
    assert!(after.ends_with(&before), "{after:?} lost {before:?}");
    let url = app.proxy_url();
    let url = url.as_str();
    Wait::up_to(Duration::from_secs(15))
        .every(Duration::from_millis(100))
        .until_async(|| async move { fetch(url).await.as_deref() == Some("hello from v2") })
        .await
        .unwrap_or_else(|e| panic!("v2 does not serve again ({e}):\n{}", app.daemon_log()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_two_releases_running_the_newest_serves_and_the_other_is_stopped_saying_why() {
    // v2 serves, v1 is kept warm for a rollback: 4 instances.
    let app = TestApp::deployed("10m", &["v1", "v2"]);
    assert_eq!(instances(&app).len(), 4);
    app.kill_daemon();
    std::fs::remove_file(state_db(&app)).expect("delete state.db");

    let message = stderr(&serve_refused(&app));
    assert!(message.contains("4 instance(s)"), "{message}");
    assert_eq!(instances(&app).len(), 4, "nothing is stopped");

    app.serve_with(&["serve", "--adopt-orphans"], &[]);
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2"),
        "{}",
        app.daemon_log()
    );
    app.wait_gone("v1");
    assert_eq!(app.running_version("v2"), 2);
    let log = app.daemon_log();
    assert!(log.contains("release v2 serves again"), "{log}");
    assert!(
        log.contains("release v2 serves this environment, not v1"),
        "{log}"
    );
}
