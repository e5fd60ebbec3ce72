//! Rollback: one switch while the previous release is warm, a fresh start
//! after; the CLI follows a deployment by long-polling the API, so it sees
//! the end as soon as it is saved.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use crate::common::{Release, TestApp, fetch, ok, stderr, stdout};

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
    // The event that follows the switch is recorded before the deployment
    // ends, so the CLI, which stops at the end, shows it.
    assert!(stderr(&out).contains("v2 stays warm"), "{}", stderr(&out));

    // And forward again: v2 is now the warm one.
    ok(&app, &app.cli(&["rollback"]));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
}

#[test]
fn a_deploy_right_after_a_rollback_returns_finds_the_environment_free() {
    let app = TestApp::deployed("10m", &["v1", "v2"]);
    // The deployment ends and its lock is freed in one write: whoever sees
    // it ended (the CLI) is never refused with `locked` by a next command.
    ok(&app, &app.cli(&["rollback"]));
    ok(&app, &app.cli(&["rollback"]));
    ok(&app, &app.cli(&["deploy", "v1"]));
    assert_eq!(app.last_deployment()["state"], "succeeded");
}

/// `GET path` on the app's API with its token: how long the answer took and
/// its JSON body (the status must be 200).
fn api_get(app: &TestApp, path: &str) -> (Duration, serde_json::Value) {
    let token =
        std::fs::read_to_string(app.path().join(".cutover").join("api.token")).expect("token");
    let mut stream = TcpStream::connect(("127.0.0.1", app.api_port)).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let t = Instant::now();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {}\r\nConnection: close\r\n\r\n",
        token.trim()
    )
    .expect("send");
    let mut text = String::new();
    stream.read_to_string(&mut text).expect("read the answer");
    let took = t.elapsed();
    let (head, body) = text.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{text}");
    (took, serde_json::from_str(body).expect("JSON body"))
}

#[test]
fn following_a_deployment_waits_for_news_and_wakes_on_it() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.release("v2", Release::SlowStart(Duration::from_secs(2)));
    app.serve_and_deploy(&["v1"]);
    let v1 = app.last_deployment()["id"].as_i64().expect("id");

    // Ended: answered at once, whatever `seen` says.
    let (took, done) = api_get(
        &app,
        &format!("/v1/deployments/{v1}?seen=1000&wait_ms=10000"),
    );
    assert_eq!(done["state"], "succeeded");
    assert!(
        took < Duration::from_secs(5),
        "an ended deployment waited {took:?}"
    );

    let deploy = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "instance_started");
    let v2 = app.last_deployment()["id"].as_i64().expect("id");
    // Without `wait_ms`: at once, as before.
    let (_, now) = api_get(&app, &format!("/v1/deployments/{v2}"));
    let seen = now["events"].as_array().expect("events").len();
    // Waiting: the answer comes with the next event (the instances are
    // healthy about 2 s from their start), not at the end of the wait.
    let (took, news) = api_get(
        &app,
        &format!("/v1/deployments/{v2}?seen={seen}&wait_ms=15000"),
    );
    let got = news["events"].as_array().expect("events").len();
    assert!(
        got > seen || news["state"] != "running",
        "no news after {took:?}: {news:#}"
    );
    assert!(took < Duration::from_secs(10), "the news took {took:?}");
    ok(&app, &deploy.join().expect("join the deploy"));
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
