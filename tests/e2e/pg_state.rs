//! The core scenarios with the state store on PostgreSQL (`[state] url =
//! "postgres://…"`, one database per test on `CUTOVER_TEST_PG_URL`'s
//! server): deploys and a rollback, a canary rolled back by its analysis, a
//! daemon killed with -9 mid-canary whose successor adopts the instances and
//! rolls back, a second daemon refused by the advisory lock, and tokens with
//! the audit chain verified (and broken by hand). No state file is made.

use crate::common::{Release, TestApp, count, fetch, more_requests, ok, stderr, stdout};

const CANARY: &str = r#"
[service.web.rollout]
strategy = "canary"
steps = [20, 50, 100]
step_duration = "STEP"
check_interval = "250ms"
analysis = { max_error_rate = 0.02, max_p95 = "150ms", min_requests = 20 }
"#;

fn canary_app(step_duration: &str) -> TestApp {
    let app = TestApp::with_pg_state("10m");
    app.append_config(&CANARY.replace("STEP", step_duration));
    app.release("v1", Release::Good);
    app.serve_and_deploy(&["v1"]);
    app
}

/// No SQLite file was made beside the config.
fn no_state_file(app: &TestApp) {
    assert!(
        !app.path().join(".cutover/state.db").exists(),
        "a SQLite store was made although [state] url is PostgreSQL"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_state_deploys_and_a_rollback_are_kept_in_postgres() {
    let app = TestApp::with_pg_state("10m");
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1", "v2"]);
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
    ok(&app, &app.cli(&["rollback"]));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    let last = app.last_deployment();
    assert_eq!(last["kind"], "rollback", "{last}");
    assert_eq!(last["state"], "succeeded", "{last}");
    let out = app.cli(&["--json", "history"]);
    ok(&app, &out);
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history JSON");
    assert_eq!(history.as_array().map(Vec::len), Some(3), "{history}");
    no_state_file(&app);
    // The password is in the config, never in what the daemon logs.
    assert!(
        !app.daemon_log().contains(":cutover_test@"),
        "{}",
        app.daemon_log()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_state_a_bad_canary_is_rolled_back() {
    let app = canary_app("1s");
    app.release("v2", Release::Errors(0.2));
    let load = app.load(6);
    let out = app.cli(&["deploy", "v2"]);
    more_requests(&load, 6).await;
    let answers = load.stop().await.expect("stop the load").replies();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        stderr(&out),
        app.daemon_log()
    );
    assert!(stderr(&out).contains("rolled back"), "{}", stderr(&out));
    assert_eq!(app.last_deployment()["state"], "rolled_back");
    for client in &answers {
        let tail = &client[client.len().saturating_sub(5)..];
        assert!(
            tail.iter().all(|(s, b)| *s == 200 && b == "hello from v1"),
            "{tail:?}"
        );
    }
    assert_eq!(
        app.running_version("v2"),
        0,
        "canary instances left running"
    );
    no_state_file(&app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_state_kill_9_mid_canary_the_next_daemon_adopts_and_rolls_back() {
    let app = canary_app("30s");
    let v1: Vec<i32> = app.instance_pids().into_iter().map(|(p, _)| p).collect();
    app.release("v2", Release::Good);
    let deploy = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "step");
    app.kill_daemon();
    let _ = deploy.join();
    // The killed daemon's session (and its advisory lock) is gone: a new
    // daemon starts, adopts v1's instances and rolls the canary back.
    app.serve();
    app.wait_for_state("rolled_back");
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    app.wait_gone("v2");
    let now: Vec<i32> = app.instance_pids().into_iter().map(|(p, _)| p).collect();
    for pid in &v1 {
        assert!(
            now.contains(pid),
            "v1 instance {pid} was not adopted: {now:?}"
        );
    }
    let events = app.last_events();
    assert!(count(&events, "step") >= 1, "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_state_a_second_daemon_on_the_same_addresses_is_refused() {
    // A second daemon on the same store joins the first as a follower
    // (docs/cluster.md, tests/e2e/cluster.rs) — on its own addresses only.
    let app = TestApp::with_pg_state("10m");
    app.release("v1", Release::Good);
    app.serve_and_deploy(&["v1"]);
    let out = app.cli(&["serve"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot listen on 127.0.0.1:"), "{err}");
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    // `cutover down` waits until the lock is free.
    ok(&app, &app.cli(&["down"]));
    app.serve();
    assert_eq!(app.last_deployment()["version"], "v1");
}

#[test]
fn pg_state_tokens_and_the_audit_chain_verify_and_an_edit_is_named() {
    let app = TestApp::with_pg_state("10m");
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1"]);
    let ci = app.token("ci", "deployer");
    ok(&app, &app.cli_with_token(&ci, &["deploy", "v2"]));
    ok(&app, &app.cli_with_token(&ci, &["rollback"]));
    app.token("temp", "viewer");
    ok(&app, &app.cli(&["token", "revoke", "temp"]));
    let out = app.cli_with_token("cutover_not-a-token", &["status"]);
    assert_ne!(out.status.code(), Some(0), "a made-up token was accepted");

    let viewer = app.token("auditor", "viewer");
    let out = app.cli_with_token(&viewer, &["audit", "verify"]);
    ok(&app, &out);
    assert!(
        stdout(&out).contains("audit log intact: 7 rows"),
        "{}",
        stdout(&out)
    );
    // Straight from the store, while the daemon serves.
    let out = app.cli(&["--json", "audit", "verify", "--store"]);
    ok(&app, &out);
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (verdict["intact"].as_bool(), verdict["rows"].as_u64()),
        (Some(true), Some(7))
    );

    app.pg()
        .execute("UPDATE audit_log SET who = 'alice' WHERE id = 3");
    for args in [&["audit", "verify"][..], &["audit", "verify", "--store"]] {
        let out = app.cli(args);
        assert_eq!(out.status.code(), Some(11), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("audit row 3 (deploy by alice"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    no_state_file(&app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_state_an_upgrade_hands_over_and_the_new_daemon_takes_the_lock() {
    let app = TestApp::with_pg_state("10m");
    app.release("v1", Release::Good);
    app.serve_and_deploy(&["v1"]);
    let load = app.load(4);
    more_requests(&load, 20).await;
    let out = app.cli(&["upgrade", "--json"]);
    ok(&app, &out);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("upgrade JSON");
    assert_eq!(answer["outcome"], "upgraded", "{answer}");
    let new = answer["pid"].as_i64().expect("pid") as i32;
    more_requests(&load, 20).await;
    let report = load.stop().await.expect("stop the load");
    assert_eq!(report.failed(), 0, "requests failed during the upgrade");
    // The old daemon's session is gone; the new one takes the lock: it
    // leads (docs/cluster.md).
    let token = std::fs::read_to_string(app.path().join(".cutover").join("api.token"))
        .expect("the API token");
    crate::common::wait_until(
        std::time::Duration::from_secs(15),
        "the new daemon holds the lock",
        || {
            let (status, view) = app.api_call(Some(token.trim()), "GET", "/v1/cluster", None);
            status == 200
                && view["role"]["role"] == "leader"
                && view["recovering"] == false
                && view["this"]["daemon_id"]
                    .as_str()
                    .is_some_and(|id| id.contains(&format!("-{new}-")))
        },
    );
    // It drives deploys.
    app.release("v2", Release::Good);
    ok(&app, &app.cli(&["deploy", "v2"]));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
    // Not this test's child: `down` stops it and its instances.
    ok(&app, &app.cli(&["down"]));
    assert!(!TestApp::alive(new), "the upgraded daemon still runs");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pg_state_a_state_backup_is_made_with_pg_dump_and_restored() {
    let app = TestApp::with_pg_state("10m");
    for v in ["v1", "v2"] {
        app.release(v, Release::Good);
    }
    let key_file = app.path().join("state-key.txt");
    let key_file = key_file.to_str().expect("a UTF-8 path");
    let key = app.cli(&["backup", "keygen", "-o", key_file]);
    ok(&app, &key);
    let recipient = String::from_utf8_lossy(&key.stdout).trim().to_owned();
    // Still in the [state] table with_pg_state appended last.
    app.append_config(&format!(
        "backup = {{ recipients = [\"{recipient}\"], dir = \"state-backups\" }}\n"
    ));
    app.serve_and_deploy(&["v1", "v2"]);
    let created = app.cli(&["backup", "create", "--state", "--json"]);
    ok(&app, &created);
    let manifest: serde_json::Value = serde_json::from_slice(&created.stdout).expect("json");
    let id = manifest["id"].as_str().expect("id").to_owned();
    assert!(
        !String::from_utf8_lossy(&created.stdout).contains(":cutover_test@"),
        "the manifest holds the password"
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

    app.stop_daemon();
    app.pg()
        .execute("DELETE FROM events; DELETE FROM rollouts; DELETE FROM deployments");
    let restored = app.cli(&[
        "backup",
        "restore",
        "--state",
        &id,
        "--identity",
        key_file,
        "--allow-unsigned",
        "--force",
    ]);
    ok(&app, &restored);
    app.serve();
    let out = app.cli(&["--json", "history"]);
    ok(&app, &out);
    let history: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history JSON");
    let versions: Vec<&str> = history
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|d| d["version"].as_str())
        .collect();
    assert!(versions.ends_with(&["v2", "v1"]), "{versions:?}");
    no_state_file(&app);
}
