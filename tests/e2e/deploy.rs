//! Blue-green deploys through the daemon.

use std::time::Duration;

use crate::common::{Release, TestApp, fetch, more_requests, ok, stderr, stdout};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn v1_then_v2_under_load_without_a_failed_request() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve();

    let out = app.cli(&["deploy", "v1"]);
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
    assert_eq!(app.running_version("v1"), 2);

    let load = app.load(8);
    // Every client is under way on v1 before the deploy starts.
    more_requests(&load, 3).await;
    let deploy = app.cli_async(&["deploy", "v2"]).await;
    // Load on v2 for a while after the switch.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = load.stop().await.expect("stop the load");
    let (bodies, failed) = (report.bodies(), report.failed());
    ok(&app, &deploy);
    let progress = stderr(&deploy);
    for step in ["instance_started", "instance_healthy", "switch"] {
        assert!(
            progress.contains(step),
            "progress lacks {step}:\n{progress}"
        );
    }
    assert_eq!(failed, 0, "requests failed during the switch");
    let total: usize = bodies.iter().map(Vec::len).sum();
    assert!(total > 100, "too little load: {total}");
    for client in &bodies {
        // Each client saw v1, then v2, never back.
        let first_v2 = client
            .iter()
            .position(|b| b == "hello from v2")
            .expect("reached v2");
        assert!(client[..first_v2].iter().all(|b| b == "hello from v1"));
        assert!(client[first_v2..].iter().all(|b| b == "hello from v2"));
        assert_eq!(client.first().map(String::as_str), Some("hello from v1"));
    }
    // v1 stays warm for the rollback window, idle.
    assert_eq!(app.running_version("v1"), 2);
    assert_eq!(app.running_version("v2"), 2);

    let status = app.cli(&["status", "--json"]);
    ok(&app, &status);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    let env = &json["environments"][0];
    assert_eq!(env["serving"], "v2");
    assert_eq!(env["previous"], "v1");

    let history = app.cli(&["history", "--json"]);
    ok(&app, &history);
    let list: serde_json::Value = serde_json::from_slice(&history.stdout).expect("history json");
    assert_eq!(list[0]["version"], "v2");
    assert_eq!(list[0]["state"], "succeeded");
    assert_eq!(list[1]["version"], "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_release_fails_and_the_old_one_keeps_serving() {
    let app = TestApp::new("10m");
    app.release("v2", Release::Good);
    app.release("v3", Release::FailsHealth);
    app.serve_and_deploy(&["v2"]);

    let out = app.cli(&["deploy", "v3"]);
    assert_eq!(
        out.status.code(),
        Some(3),
        "stdout {}\nstderr {}",
        stdout(&out),
        stderr(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("did not become healthy"), "{err}");
    assert!(err.contains("v2 still serves"), "{err}");
    assert!(
        err.contains("starting with a broken health check"),
        "log tail missing:\n{err}"
    );
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
    assert_eq!(app.running_version("v3"), 0, "a v3 process was left behind");
    assert_eq!(app.running_version("v2"), 2);
}
