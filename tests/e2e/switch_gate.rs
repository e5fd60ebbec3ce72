//! A gate before the switch: with `switch = "manual"` a deploy starts the new
//! release, waits until it is healthy and holds before any traffic moves;
//! the new release answers on the environment's `preview_listen` while the
//! public listener keeps serving the old one. `cutover switch` moves the
//! traffic (0 failed requests), `cutover abort` stops the new release
//! without a user ever reaching it, and a daemon killed while holding still
//! holds after its restart.

use std::time::Duration;

use cutover_kit::load::Load;
use cutover_kit::ports;

use crate::common::{Release, TestApp, fetch, more_requests, ok, stderr, stdout, wait_until};

/// An app whose web service waits for the switch, with a preview listener;
/// v1 deployed (the first deploy holds too, and is switched by hand here),
/// v2 ready to deploy. Returns the app and the preview's URL.
fn gated_app() -> (TestApp, String) {
    gated_app_with("switch = \"manual\"\n")
}

/// [`gated_app`] with this `[service.web.rollout]` table.
fn gated_app_with(rollout: &str) -> (TestApp, String) {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    let preview = ports::free_ports(1).expect("a free port")[0];
    // The config ends with [environment.production]: the key goes there.
    app.append_config(&format!(
        "preview_listen = \"127.0.0.1:{preview}\"\n\n[service.web.rollout]\n{rollout}"
    ));
    app.serve();
    let out = app.cli(&["deploy", "v1"]);
    ok(&app, &out);
    assert!(
        stdout(&out).contains("v1 is healthy in production and awaits the switch"),
        "{}",
        stdout(&out)
    );
    ok(&app, &app.cli(&["switch"]));
    app.wait_for_state("succeeded");
    (app, format!("http://127.0.0.1:{preview}/"))
}

fn status(app: &TestApp) -> serde_json::Value {
    let out = app.cli(&["status", "--json"]);
    ok(app, &out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    json["environments"][0].clone()
}

/// `n` requests, one after the other, to `url`: every answer's body.
async fn bodies(url: &str, n: usize) -> Vec<Option<String>> {
    let mut all = Vec::with_capacity(n);
    for _ in 0..n {
        all.push(fetch(url).await);
    }
    all
}

/// Asserts that `n` requests to `url` are all answered by `version`.
async fn all_from(url: &str, version: &str, n: usize) {
    let want = format!("hello from {version}");
    let got = bodies(url, n).await;
    assert!(
        got.iter().all(|b| b.as_deref() == Some(want.as_str())),
        "{url}: expected {n} answers from {version}, got {got:?}"
    );
}

/// `deploy v2`, which returns once v2 is healthy and held.
async fn deploy_held(app: &TestApp, version: &str) {
    let out = app.cli_async(&["deploy", version]).await;
    ok(app, &out);
    assert!(
        stdout(&out).contains(&format!(
            "{version} is healthy in production and awaits the switch"
        )) && stdout(&out).contains("cutover switch -e production"),
        "stdout:\n{}\nstderr:\n{}",
        stdout(&out),
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("awaiting_switch"),
        "the hold is an event of the deployment:\n{}",
        stderr(&out)
    );
}

/// Waits until the status says `version` awaits the switch.
fn wait_held(app: &TestApp, version: &str) {
    wait_until(
        Duration::from_secs(30),
        "the rollout awaits the switch",
        || status(app)["awaiting_switch"]["version"] == version,
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn held_release_answers_on_the_preview_and_switch_moves_traffic_without_a_failed_request() {
    let (app, preview) = gated_app();
    let load = app.load(8);
    more_requests(&load, 3).await;

    deploy_held(&app, "v2").await;
    assert_eq!(app.running_version("v2"), 2, "v2 started and healthy");
    // Held: the public listener still serves v1 only, the preview v2 only.
    all_from(&preview, "v2", 40).await;
    all_from(&app.proxy_url(), "v1", 40).await;
    more_requests(&load, 20).await;
    let env = status(&app);
    assert_eq!(env["awaiting_switch"]["version"], "v2", "{env}");
    assert_eq!(env["awaiting_switch"]["service"], "web", "{env}");
    assert_eq!(
        env["preview_listen"],
        preview.trim_start_matches("http://").trim_end_matches('/')
    );
    assert_eq!(
        env["traffic"][0]["stable_versions"],
        serde_json::json!(["v1"]),
        "{env}"
    );
    assert_eq!(env["traffic"][0]["canary_percent"], 0.0, "{env}");
    let human = stdout(&app.cli(&["status"]));
    assert!(
        human.contains("awaiting switch: web of v2") && human.contains("preview   http://"),
        "{human}"
    );
    assert_eq!(app.last_deployment()["state"], "running");

    // The switch, under load.
    let switch = app.cli_async(&["switch"]).await;
    ok(&app, &switch);
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
    for client in report.bodies() {
        let first_v2 = client
            .iter()
            .position(|b| b == "hello from v2")
            .expect("each client reached v2");
        assert!(client[..first_v2].iter().all(|b| b == "hello from v1"));
        assert!(client[first_v2..].iter().all(|b| b == "hello from v2"));
    }
    all_from(&app.proxy_url(), "v2", 20).await;
    all_from(&preview, "v2", 5).await;
    assert_eq!(status(&app)["awaiting_switch"], serde_json::Value::Null);

    // Nothing held now: refused, saying so.
    let again = app.cli(&["switch"]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("nothing awaits the switch"),
        "{}",
        stderr(&again)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_while_held_stops_the_new_release_before_any_user_reaches_it() {
    let (app, preview) = gated_app();
    // Load on the public listener for the whole test.
    let load = Load::start(&app.proxy_url(), 6).expect("load");
    more_requests(&load, 3).await;

    deploy_held(&app, "v2").await;
    all_from(&preview, "v2", 20).await;
    more_requests(&load, 10).await;
    ok(
        &app,
        &app.cli(&["abort", "--reason", "the smoke test failed"]),
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
    assert_eq!(report.failed(), 0, "{:?}", tally.by_version());
    assert!(tally.ok("v1") > 0);
    // The preview follows the serving release again.
    all_from(&preview, "v1", 10).await;
    all_from(&app.proxy_url(), "v1", 10).await;
    let events = app.last_events();
    assert!(
        events
            .iter()
            .any(|(k, m)| k == "rollback" && m.contains("the smoke test failed")),
        "{events:#?}"
    );
    assert!(
        !events.iter().any(|(k, _)| k == "switch"),
        "no switch ever happened: {events:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_while_held_still_holds_after_its_restart_and_switch_works() {
    let (app, preview) = gated_app();
    deploy_held(&app, "v2").await;
    app.kill_daemon();
    // The instances outlive the daemon; the public listener comes back with it.
    app.serve();
    wait_held(&app, "v2");
    all_from(&app.proxy_url(), "v1", 30).await;
    wait_until(
        Duration::from_secs(30),
        "the preview shows v2 again",
        || {
            let url = preview.clone();
            tokio::task::block_in_place(|| {
                tokio::runtime::Handle::current()
                    .block_on(async move { fetch(&url).await.as_deref() == Some("hello from v2") })
            })
        },
    );
    all_from(&preview, "v2", 20).await;
    assert_eq!(app.last_deployment()["state"], "running");
    let events = app.last_events();
    assert!(
        events
            .iter()
            .filter(|(k, _)| k == "awaiting_switch")
            .count()
            >= 2,
        "the restart says it still holds: {events:#?}"
    );

    let load = app.load(6);
    more_requests(&load, 3).await;
    ok(&app, &app.cli_async(&["switch"]).await);
    app.wait_for_state("succeeded");
    more_requests(&load, 10).await;
    let report = load.stop().await.expect("stop the load");
    assert_eq!(report.failed(), 0, "{:?}", report.tally().by_version());
    all_from(&app.proxy_url(), "v2", 20).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_on_the_preview_never_count_in_the_canary_analysis() {
    // A canary that needs 50 requests in its step and fails without them.
    let (app, preview) = gated_app_with(
        "strategy = \"canary\"\nsteps = [50, 100]\nstep_duration = \"3s\"\ncheck_interval = \"500ms\"\n\
         max_inconclusive = 0\non_inconclusive = \"fail\"\nswitch = \"manual\"\n\
         analysis = { max_error_rate = 0.5, min_requests = 50 }\n",
    );
    deploy_held(&app, "v2").await;
    ok(&app, &app.cli(&["switch"]));
    app.wait_for_event("v2", "step");
    // Only the preview gets requests during the step: hundreds of them, on
    // the canary's own instances.
    let hits = bodies(&preview, 300).await;
    assert!(
        hits.iter().all(|b| b.as_deref() == Some("hello from v2")),
        "{hits:?}"
    );
    app.wait_for_state("rolled_back");
    let events = app.last_events();
    let analysis = events
        .iter()
        .find(|(k, _)| k == "analysis")
        .unwrap_or_else(|| panic!("no analysis: {events:#?}"));
    assert!(
        analysis.1.contains("canary had 0 requests"),
        "the preview's requests were counted: {analysis:?}"
    );
}
