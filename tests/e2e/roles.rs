//! Identity and roles (issue 15): real named tokens of each role against a
//! real daemon. No token is 401; each route a role may not use is 403
//! `forbidden` (exit 10 in the CLI) and each it may use works; a revoked
//! and an expired token are refused with 401 saying which; "who" in the
//! history is the token's name, whatever `requested_by` the client sends.

use std::time::Duration;

use cutover_kit::wait::Wait;

use crate::common::{Release, TestApp, ok, stderr, stdout};

/// A route, a body, and which roles may call it.
struct Route {
    method: &'static str,
    path: &'static str,
    body: Option<&'static str>,
    allowed: &'static [&'static str],
}

const ALL: &[&str] = &["viewer", "deployer", "approver", "admin"];
const DEPLOYERS: &[&str] = &["deployer", "admin"];
const APPROVERS: &[&str] = &["approver", "admin"];
const ADMINS: &[&str] = &["admin"];

/// Every route of the API today, with bodies that are refused by the
/// handler after the role check (an unknown environment, a token that does
/// not exist), so that calling them changes nothing.
fn routes() -> Vec<Route> {
    let r = |method, path, body, allowed| Route {
        method,
        path,
        body,
        allowed,
    };
    vec![
        r("GET", "/v1/status", None, ALL),
        r("GET", "/v1/deployments", None, ALL),
        r("GET", "/v1/deployments/1", None, ALL),
        r("GET", "/v1/events?environment=production", None, ALL),
        r("GET", "/v1/audit", None, ALL),
        r("GET", "/v1/logs?service=web&tail=1", None, ALL),
        r(
            "POST",
            "/v1/deployments",
            Some(r#"{"environment":"nowhere","version":"v2"}"#),
            DEPLOYERS,
        ),
        r(
            "POST",
            "/v1/rollback",
            Some(r#"{"environment":"nowhere"}"#),
            DEPLOYERS,
        ),
        r(
            "POST",
            "/v1/rollout/pause",
            Some(r#"{"environment":"nowhere"}"#),
            DEPLOYERS,
        ),
        r(
            "POST",
            "/v1/rollout/abort",
            Some(r#"{"environment":"nowhere"}"#),
            DEPLOYERS,
        ),
        r("GET", "/v1/tokens", None, ADMINS),
        r(
            "POST",
            "/v1/tokens",
            Some(r#"{"name":"not a name","role":"viewer"}"#),
            ADMINS,
        ),
        r("DELETE", "/v1/tokens/nobody", None, ADMINS),
        r("GET", "/v1/releases", None, ALL),
        r("GET", "/v1/dora?since=30d", None, ALL),
        r(
            "POST",
            "/v1/rollout/switch",
            Some(r#"{"environment":"nowhere"}"#),
            DEPLOYERS,
        ),
        r(
            "POST",
            "/v1/deployments/999999/approve",
            Some("{}"),
            APPROVERS,
        ),
        r(
            "POST",
            "/v1/deployments/999999/reject",
            Some(r#"{"reason":"no"}"#),
            APPROVERS,
        ),
        r(
            "POST",
            "/v1/locks",
            Some(r#"{"environment":"nowhere","reason":"x"}"#),
            ADMINS,
        ),
        r("DELETE", "/v1/locks/nowhere", None, ADMINS),
        r("POST", "/v1/daemon/nothing", Some("{}"), ADMINS),
    ]
}

#[test]
fn each_role_may_call_exactly_its_routes() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.serve_and_deploy(&["v1"]);
    let tokens: Vec<(&str, String)> = ALL
        .iter()
        .map(|role| (*role, app.token(&format!("{role}-token"), role)))
        .collect();

    // No token, an empty one, a wrong one: 401 on every route.
    for route in routes() {
        for token in [None, Some(""), Some("cutover_0123456789")] {
            let (status, body) = app.api_call(token, route.method, route.path, route.body);
            assert_eq!(
                (status, body["error"].as_str()),
                (401, Some("unauthorized")),
                "{} {} with {token:?}: {body}",
                route.method,
                route.path
            );
        }
    }

    for route in routes() {
        for (role, token) in &tokens {
            let (status, body) = app.api_call(Some(token), route.method, route.path, route.body);
            let what = format!("{role} on {} {}: {status} {body}", route.method, route.path);
            if route.allowed.contains(role) {
                assert!(
                    status != 401 && status != 403 && status < 500,
                    "allowed but refused: {what}"
                );
            } else {
                assert_eq!(
                    (status, body["error"].as_str()),
                    (403, Some("forbidden")),
                    "{what}"
                );
                let message = body["message"].as_str().unwrap_or("");
                assert!(
                    message.contains(&format!("role {role}")) && message.contains("token create"),
                    "the refusal says who and what to do: {what}"
                );
            }
        }
    }
}

#[test]
fn allowed_uses_work_and_who_is_always_the_tokens_name() {
    let app = TestApp::new("10m");
    for v in ["v1", "v2", "v3"] {
        app.release(v, Release::Good);
    }
    app.serve_and_deploy(&["v1"]);
    let viewer = app.token("grafana", "viewer");
    let deployer = app.token("ci", "deployer");
    let approver = app.token("alice", "approver");

    // Every role reads.
    for token in [&viewer, &deployer, &approver] {
        for args in [&["status"][..], &["history"], &["audit"]] {
            let out = app.cli_with_token(token, args);
            ok(&app, &out);
        }
    }
    // A viewer or an approver cannot deploy: exit 10, saying who may.
    for token in [&viewer, &approver] {
        let out = app.cli_with_token(token, &["deploy", "v2"]);
        assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("deployer and admin"),
            "{}",
            stderr(&out)
        );
        let out = app.cli_with_token(token, &["--json", "rollback"]);
        assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
        let answer: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON error");
        assert_eq!(answer["error"], "forbidden", "{answer}");
    }
    // Only the admin manages tokens.
    let out = app.cli_with_token(&deployer, &["token", "list"]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));

    // The deployer deploys; the client's requested_by is ignored.
    let (status, body) = app.api_call(
        Some(&deployer),
        "POST",
        "/v1/deployments",
        Some(r#"{"version":"v2","requested_by":"mallory@evil"}"#),
    );
    assert_eq!(status, 202, "{body}");
    app.wait_for_state("succeeded");
    assert_eq!(app.last_deployment()["requested_by"], "ci");
    let out = app.cli_with_token(&deployer, &["deploy", "v3"]);
    ok(&app, &out);
    assert_eq!(app.last_deployment()["requested_by"], "ci");
    let out = app.cli_with_token(&deployer, &["rollback"]);
    ok(&app, &out);
    assert_eq!(app.last_deployment()["requested_by"], "ci");
    assert_eq!(app.last_deployment()["kind"], "rollback");
    // The bootstrap token file is "admin".
    let history = app.cli(&["history", "--json", "--limit", "10"]);
    let list: serde_json::Value = serde_json::from_slice(&history.stdout).expect("history");
    let who: Vec<&str> = list
        .as_array()
        .expect("list")
        .iter()
        .filter_map(|d| d["requested_by"].as_str())
        .collect();
    assert_eq!(who, ["ci", "ci", "ci", "admin"]);
    // The list shows tokens without their secret, with their last use.
    let out = app.cli(&["--json", "token", "list"]);
    ok(&app, &out);
    let text = stdout(&out);
    assert!(
        !text.contains(&deployer) && !text.contains("cutover_"),
        "{text}"
    );
    let list: serde_json::Value = serde_json::from_str(&text).expect("token list");
    let ci = list
        .as_array()
        .and_then(|l| l.iter().find(|t| t["name"] == "ci"))
        .expect("ci is listed");
    assert_eq!(
        (ci["role"].as_str(), ci["state"].as_str()),
        (Some("deployer"), Some("active"))
    );
    assert!(ci["last_used_at"].is_string(), "{ci}");
    assert!(
        !app.daemon_log().contains(&deployer),
        "a token reached the log"
    );
}

#[test]
fn a_revoked_or_expired_token_is_refused_saying_which() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.serve();
    let viewer = app.token("grafana", "viewer");
    let brief = app.token_with("brief", "viewer", &["--expires", "4s"]);
    ok(&app, &app.cli_with_token(&viewer, &["status"]));
    let first = app.cli_with_token(&brief, &["status"]);

    let out = app.cli(&["token", "revoke", "grafana"]);
    ok(&app, &out);
    let out = app.cli_with_token(&viewer, &["status"]);
    assert_eq!(out.status.code(), Some(10), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("\"grafana\" was revoked") && stderr(&out).contains("token create"),
        "{}",
        stderr(&out)
    );
    let (status, body) = app.api_call(Some(&viewer), "GET", "/v1/status", None);
    assert_eq!(
        (status, body["error"].as_str()),
        (401, Some("unauthorized"))
    );
    // Revoked twice is refused; the name is never given out again.
    assert_eq!(
        app.cli(&["token", "revoke", "grafana"]).status.code(),
        Some(2)
    );
    let out = app.cli(&["token", "create", "grafana", "--role", "viewer"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("never reused"), "{}", stderr(&out));

    // The short-lived token worked at first (unless this machine took
    // its whole life to start the CLI), then is refused as expired.
    assert!(
        first.status.success() || stderr(&first).contains("expired"),
        "{}",
        stderr(&first)
    );
    Wait::up_to(Duration::from_secs(20))
        .every(Duration::from_millis(250))
        .until(|| {
            let out = app.cli_with_token(&brief, &["status"]);
            out.status.code() == Some(10) && stderr(&out).contains("\"brief\" expired at")
        })
        .unwrap_or_else(|e| panic!("the token did not expire: {e}"));
    let out = app.cli(&["--json", "token", "list"]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("token list");
    let states: Vec<(&str, &str)> = list
        .as_array()
        .expect("list")
        .iter()
        .map(|t| {
            (
                t["name"].as_str().unwrap_or(""),
                t["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(states, [("grafana", "revoked"), ("brief", "expired")]);
}
