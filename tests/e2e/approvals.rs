//! Approvals with four eyes: a deploy to an environment with `approvals`
//! waits for someone other than the deployer; rejection and expiry end it
//! with nothing of the new release started; the wait survives a SIGKILL of
//! the daemon.

use std::time::Duration;

use cutover_kit::wait::Wait;

use crate::common::{Release, TestApp, count, fetch, ok, stderr, stdout};

/// An app whose production needs one approval within `expires`, with v1
/// deployed (approved by bob) and releases v2 and v3 ready.
fn gated(expires: &str) -> TestApp {
    let app = TestApp::new("10m");
    app.append_config(&format!(
        "approvals = {{ required = 1, expires = \"{expires}\" }}\n"
    ));
    for v in ["v1", "v2", "v3"] {
        app.release(v, Release::Good);
    }
    app.serve();
    let id = deploy_no_wait(&app, "alice", "v1");
    ok(&app, &app.cli_as("bob", &["approve", &id.to_string()]));
    app.wait_for_state("succeeded");
    app
}

/// `deploy VERSION --no-wait --json` as `who`: the id, once it awaits approval.
fn deploy_no_wait(app: &TestApp, who: &str, version: &str) -> i64 {
    let out = app.cli_as(who, &["deploy", version, "--no-wait", "--json"]);
    ok(app, &out);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("deploy --no-wait --json: {e}: {}", stdout(&out)));
    assert_eq!(answer["status"], "awaiting_approval", "{answer}");
    answer["id"].as_i64().expect("id")
}

async fn serves(app: &TestApp, version: &str) -> bool {
    fetch(&app.proxy_url())
        .await
        .is_some_and(|body| body.contains(version))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_deployers_own_approval_is_refused_and_another_approvers_runs_the_rollout() {
    let app = gated("1h");
    let id = deploy_no_wait(&app, "alice", "v2");
    let id_text = id.to_string();
    assert_eq!(app.last_deployment()["state"], "awaiting_approval");
    let status = stdout(&app.cli(&["status"]));
    assert!(
        status.contains(&format!(
            "awaiting  approval of deployment {id} (v2, asked by alice)"
        )),
        "{status}"
    );
    assert_eq!(app.running_version("v2"), 0, "v2 started before approval");
    assert!(serves(&app, "v1").await);

    // The environment's lock is held: a second deploy is refused, naming it.
    let second = app.cli_as("carol", &["deploy", "v3", "--no-wait"]);
    assert_eq!(second.status.code(), Some(4), "{}", stderr(&second));
    let err = stderr(&second);
    assert!(err.contains("awaits approval"), "{err}");
    assert!(err.contains(&format!("cutover approve {id}")), "{err}");

    // Four eyes: alice asked for it, alice cannot approve it.
    let own = app.cli_as("alice", &["approve", &id_text]);
    assert_eq!(own.status.code(), Some(2), "{}", stderr(&own));
    assert!(
        stderr(&own).contains("another approver must approve"),
        "{}",
        stderr(&own)
    );
    assert_eq!(app.last_deployment()["state"], "awaiting_approval");
    assert_eq!(app.running_version("v2"), 0);

    let approved = app.cli_as(
        "bob",
        &["approve", &id_text, "--comment", "staging looked fine"],
    );
    ok(&app, &approved);
    assert!(
        stdout(&approved).contains("it goes on"),
        "{}",
        stdout(&approved)
    );
    app.wait_for_state("succeeded");
    assert!(serves(&app, "v2").await, "v2 does not serve after approval");
    let events = app.last_events();
    assert_eq!(count(&events, "awaiting_approval"), 1, "{events:#?}");
    assert!(
        events.iter().any(|(k, m)| k == "approved"
            && m.contains("by bob")
            && m.contains("staging looked fine")),
        "{events:#?}"
    );
    // Once decided, another approval is refused with its state.
    let again = app.cli_as("carol", &["approve", &id_text]);
    assert_eq!(again.status.code(), Some(2), "{}", stderr(&again));
    assert!(
        stderr(&again).contains("not awaiting approval"),
        "{}",
        stderr(&again)
    );

    // The next approved deploy ends v2's rollback window only once approved
    // (releases never overlap): v1 stays warm while v3 waits.
    assert!(app.running_version("v1") > 0, "v1 is not warm");
    let id = deploy_no_wait(&app, "alice", "v3").to_string();
    assert!(app.running_version("v1") > 0, "v1 retired before approval");
    ok(&app, &app.cli_as("bob", &["approve", &id]));
    app.wait_for_state("succeeded");
    app.wait_gone("v1");
    assert!(serves(&app, "v3").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rejection_ends_the_waiting_deploy_with_nothing_started() {
    let app = gated("1h");
    // v2 serves, v1 stays warm for its rollback window.
    let id = deploy_no_wait(&app, "alice", "v2");
    ok(&app, &app.cli_as("bob", &["approve", &id.to_string()]));
    app.wait_for_state("succeeded");
    assert!(app.running_version("v1") > 0, "v1 is not warm");

    let waiting = app.cli_background(&["deploy", "v3"]);
    Wait::up_to(Duration::from_secs(20))
        .until(|| {
            let d = app.last_deployment();
            d["version"] == "v3" && d["state"] == "awaiting_approval"
        })
        .unwrap_or_else(|e| panic!("the deploy never awaited approval ({e})"));
    let id = app.last_deployment()["id"]
        .as_i64()
        .expect("id")
        .to_string();
    // A rejection needs a reason.
    let bare = app.cli_as("bob", &["reject", &id]);
    assert_eq!(bare.status.code(), Some(2), "{}", stderr(&bare));
    ok(
        &app,
        &app.cli_as("bob", &["reject", &id, "--reason", "not during the sale"]),
    );
    let out = waiting.join().expect("deploy");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("awaits approval"), "{err}");
    assert!(err.contains(&format!("cutover approve {id}")), "{err}");
    assert!(err.contains("rejected by bob:"), "{err}");
    assert!(err.contains("not during the sale"), "{err}");
    let d = app.last_deployment();
    assert_eq!(d["state"], "failed", "{d}");
    assert_eq!(app.running_version("v3"), 0, "v3 was started");
    assert!(serves(&app, "v2").await);
    // Nothing changed: the rollback window of v2's deploy is untouched.
    assert!(app.running_version("v1") > 0, "v1 was retired");
    assert!(count(&app.last_events(), "rejected") == 1);
    // The lock is free again: a rollback is still one switch to v1.
    ok(&app, &app.cli(&["rollback"]));
    assert!(serves(&app, "v1").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_approval_that_expires_ends_the_deploy() {
    let app = gated("3s");
    let out = app.cli_as("alice", &["deploy", "v2"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("was not approved"), "{err}");
    assert!(err.contains("approval expired"), "{err}");
    assert_eq!(app.last_deployment()["state"], "failed");
    assert_eq!(count(&app.last_events(), "approval_expired"), 1);
    assert_eq!(app.running_version("v2"), 0, "v2 was started");
    assert!(serves(&app, "v1").await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_daemon_killed_while_a_deploy_awaits_approval_still_awaits_after_restart() {
    let app = gated("1h");
    let id = deploy_no_wait(&app, "alice", "v2").to_string();
    app.kill_daemon();
    app.serve();
    assert_eq!(app.last_deployment()["state"], "awaiting_approval");
    assert_eq!(app.running_version("v2"), 0);
    assert!(serves(&app, "v1").await);
    // Still four eyes after the restart.
    let own = app.cli_as("alice", &["approve", &id]);
    assert_eq!(own.status.code(), Some(2), "{}", stderr(&own));
    ok(&app, &app.cli_as("bob", &["approve", &id]));
    app.wait_for_state("succeeded");
    assert!(serves(&app, "v2").await);
}
