//! Rollback: one switch while the previous release is warm, a fresh start after.

use std::time::Instant;

use crate::common::{TestApp, fetch, ok, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_while_warm_is_one_switch() {
    let app = TestApp::deployed("10m", &["v1", "v2"]);
    let pids_before: Vec<i32> = app.instance_pids().into_iter().map(|(p, _)| p).collect();

    let t = Instant::now();
    let out = app.cli(&["rollback"]);
    let took = t.elapsed();
    ok(&app, &out);
    assert!(
        stdout(&out).contains("v1 now serves all traffic"),
        "{}",
        stdout(&out)
    );
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    // No process was started: the warm v1 instances took the traffic back.
    let mut pids_after: Vec<i32> = app.instance_pids().into_iter().map(|(p, _)| p).collect();
    let mut before = pids_before.clone();
    before.sort();
    pids_after.sort();
    assert_eq!(before, pids_after);
    eprintln!("warm rollback, CLI end to end: {took:?}");

    // And forward again: v2 is now the warm one.
    ok(&app, &app.cli(&["rollback"]));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_after_the_window_starts_the_previous_release_again() {
    let app = TestApp::deployed("1s", &["v1", "v2"]);
    // v1 is retired when its window ends.
    app.wait_gone("v1");
    let out = app.cli(&["rollback"]);
    ok(&app, &out);
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    assert_eq!(app.running_version("v1"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rollback_with_nothing_before_is_refused() {
    let app = TestApp::deployed("10m", &["v1"]);
    let out = app.cli(&["rollback"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no previous release"));
}
