//! A daemon killed with `kill -9` and started again.

use std::time::Duration;

use cutover_kit::wait::Wait;

use crate::common::{TestApp, fetch, ok};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_the_same_release_serves_with_no_duplicate_or_orphan() {
    let app = TestApp::deployed("10m", &["v1", "v2"]);
    let mut before: Vec<i32> = app.instance_pids().into_iter().map(|(p, _)| p).collect();
    before.sort();
    assert_eq!(before.len(), 4, "2 serving + 2 warm");

    app.kill_daemon();
    // The instances outlive the daemon. (Nothing to wait for: this gives an
    // instance that would die with its parent the time to do so.)
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(app.instance_pids().len(), 4);

    app.serve();
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
    let mut after: Vec<i32> = app.instance_pids().into_iter().map(|(p, _)| p).collect();
    after.sort();
    assert_eq!(before, after, "instances were not re-adopted as they were");
    let status = app.cli(&["status", "--json"]);
    ok(&app, &status);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(json["environments"][0]["serving"], "v2");
    assert_eq!(
        json["environments"][0]["instances"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );

    // Rollback still works on the adopted, warm v1.
    ok(&app, &app.cli(&["rollback"]));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stray_instance_is_stopped_and_a_clean_stop_leaves_no_process() {
    let app = TestApp::deployed("10m", &["v1"]);
    app.kill_daemon();
    // Something kills one instance while the daemon is down.
    let (victim, _) = app.instance_pids()[0].clone();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(victim),
        nix::sys::signal::Signal::SIGKILL,
    );
    Wait::up_to(Duration::from_secs(10))
        .until(|| app.instance_pids().iter().all(|(pid, _)| *pid != victim))
        .expect("the killed instance is gone");
    app.serve();
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    assert_eq!(app.running_version("v1"), 1);

    // `cutover down`: drains and stops every instance.
    ok(&app, &app.cli(&["down"]));
    app.stop_daemon();
    assert_eq!(
        app.instance_pids().len(),
        0,
        "instances left after a clean stop"
    );
    // Started again, the daemon brings the serving release back.
    app.serve();
    let url = app.proxy_url();
    let url = url.as_str();
    Wait::up_to(Duration::from_secs(15))
        .every(Duration::from_millis(100))
        .until_async(|| async move { fetch(url).await.as_deref() == Some("hello from v1") })
        .await
        .unwrap_or_else(|e| panic!("serving release not restarted ({e}):\n{}", app.daemon_log()));
}
