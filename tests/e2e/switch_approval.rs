//! Approvals at the switch (`approvals = { at = "switch" }`): a deploy starts
//! the new release, waits until it is healthy and holds before any traffic
//! moves, answering on the preview address meanwhile; another person's
//! `cutover approve` moves the traffic (0 failed requests), a rejection or
//! the deadline stops the new release without a user ever reaching it, and
//! the hold survives a SIGKILL of the daemon.

use std::time::Duration;

use cutover_kit::load::Load;
use cutover_kit::ports;

use crate::common::{
    Release, TestApp, count, fetch, more_requests, ok, stderr, stdout, wait_until,
};

/// An app whose production needs one approval at the switch within
/// `expires`, with a preview listener; v1 deployed (by alice, approved by
/// bob), v2 ready. Returns the app and the preview's URL.
fn gated_at_switch(expires: &str) -> (TestApp, String) {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    let preview = ports::free_ports(1).expect("a free port")[0];
    // The config ends with [environment.production]: the keys go there.
    app.append_config(&format!(
        "preview_listen = \"127.0.0.1:{preview}\"\n\
         approvals = {{ required = 1, expires = \"{expires}\", at = \"switch\" }}\n"
    ));
    app.serve();
    let id = deploy_held(&app, "v1");
    ok(&app, &app.cli_as("bob", &["approve", &id.to_string()]));
    app.wait_for_state("succeeded");
    (app, format!("http://127.0.0.1:{preview}/"))
}

/// `deploy VERSION --no-wait --json` as alice: the deployment's id, once it
/// awaits approval at the switch (its instances started and healthy).
fn deploy_held(app: &TestApp, version: &str) -> i64 {
    let out = app.cli_as("alice", &["deploy", version, "--no-wait", "--json"]);
    ok(app, &out);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("deploy --no-wait --json: {e}: {}", stdout(&out)));
    assert_eq!(answer["status"], "awaiting_approval", "{answer}");
    answer["id"].as_i64().expect("id")
}

fn status(app: &TestApp) -> serde_json::Value {
    let out = app.cli(&["status", "--json"]);
    ok(app, &out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    json["environments"][0].clone()
}

/// Asserts that `n` requests to `url` are all answered by `version`.
async fn all_from(url: &str, version: &str, n: usize) {
    let want = format!("hello from {version}");
    for _ in 0..n {
        let got = fetch(url).await;
        assert_eq!(got.as_deref(), Some(want.as_str()), "{url}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn another_approvers_yes_at_the_switch_moves_traffic_without_a_failed_request() {
    let (app, preview) = gated_at_switch("1h");
    let load = app.load(8);
    more_requests(&load, 3).await;

    let id = deploy_held(&app, "v2");
    let id_text = id.to_string();
    // Held: v2 is healthy and answers on the preview; users still get v1.
    assert_eq!(app.running_version("v2"), 2, "v2 started and healthy");
    all_from(&preview, "v2", 30).await;
    all_from(&app.proxy_url(), "v1", 30).await;
    more_requests(&load, 20).await;
    let env = status(&app);
    assert_eq!(env["awaiting_switch"]["version"], "v2", "{env}");
    assert_eq!(env["awaiting_approval"]["deployment_id"], id, "{env}");
    assert_eq!(app.last_deployment()["state"], "awaiting_approval");
    let human = stdout(&app.cli(&["status"]));
    assert!(
        human.contains(&format!("another approver's `cutover approve {id}`")),
        "{human}"
    );

    // Neither a bare switch nor the deployer's own approval moves traffic.
    let bare = app.cli(&["switch"]);
    assert_eq!(bare.status.code(), Some(2), "{}", stderr(&bare));
    assert!(
        stderr(&bare).contains("awaits approval before the switch"),
        "{}",
        stderr(&bare)
    );
    let own = app.cli_as("alice", &["approve", &id_text]);
    assert_eq!(own.status.code(), Some(2), "{}", stderr(&own));
    assert!(
        stderr(&own).contains("another approver must approve"),
        "{}",
        stderr(&own)
    );
    all_from(&app.proxy_url(), "v1", 10).await;

    // Bob's approval, under load.
    let approved = app.cli_as(
        "bob",
        &["approve", &id_text, "--comment", "preview looks right"],
    );
    ok(&app, &approved);
    app.wait_for_state("succeeded");
    more_requests(&load, 20).await;
    let report = load.stop().await.expect("stop the load");
    assert_eq!(report.failed(), 0, "requests failed around the switch");
    let tally = report.tally();
    assert!(
        tally.ok("v1") > 0 && tally.ok("v2") > 0,
        "{:?}",
        tally.by_version()
    );
    all_from(&app.proxy_url(), "v2", 20).await;
    let events = app.last_events();
    assert_eq!(count(&events, "awaiting_switch"), 1, "{events:?}");
    assert_eq!(count(&events, "awaiting_approval"), 1, "{events:?}");
    assert!(
        events
            .iter()
            .any(|(k, m)| k == "approved" && m.contains("approved by bob (preview looks right)")),
        "{events:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_at_the_switch_stops_the_new_release_before_any_user_reaches_it() {
    let (app, preview) = gated_at_switch("1h");
    let load = Load::start(&app.proxy_url(), 6).expect("load");
    more_requests(&load, 3).await;
    let id = deploy_held(&app, "v2").to_string();
    all_from(&preview, "v2", 10).await;

    // A daemon killed while it holds still holds after its restart, with
    // v2 started again (the new daemon adopts or restarts it).
    app.kill_daemon();
    app.serve();
    wait_until(Duration::from_secs(30), "v2 held again", || {
        status(&app)["awaiting_switch"]["version"] == "v2"
    });
    assert_eq!(app.last_deployment()["state"], "awaiting_approval");
    all_from(&preview, "v2", 10).await;

    ok(
        &app,
        &app.cli_as("bob", &["reject", &id, "--reason", "the smoke test failed"]),
    );
    app.wait_for_state("rolled_back");
    app.wait_gone("v2");
    more_requests(&load, 10).await;
    let report = load.stop().await.expect("stop the load");
    let tally = report.tally();
    assert_eq!(
        tally.ok("v2") + tally.errors("v2"),
        0,
        "a user request reached v2: {:?}",
        tally.by_version()
    );
    assert!(tally.ok("v1") > 0, "{:?}", tally.by_version());
    all_from(&app.proxy_url(), "v1", 10).await;
    all_from(&preview, "v1", 10).await;
    let d = app.last_deployment();
    assert!(
        d["reason"]
            .as_str()
            .is_some_and(|r| r.contains("rejected by bob: the smoke test failed")),
        "{d}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_at_the_switch_that_expires_stops_the_new_release() {
    let (app, _preview) = gated_at_switch("4s");
    let out = app.cli_as("alice", &["deploy", "v2"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("awaits approval"), "{err}");
    assert!(err.contains("approval expired"), "{err}");
    assert_eq!(count(&app.last_events(), "approval_expired"), 1);
    app.wait_gone("v2");
    all_from(&app.proxy_url(), "v1", 10).await;
}
