//! What gates a deploy: promotion from staging to production (the same
//! release digest, soaked, not rolled back; the admin override), operator
//! locks (`cutover lock` / `unlock`, `--until`), and deploy windows.

use std::time::Duration;

use cutover_kit::ports;
use cutover_kit::wait::Wait;

use crate::common::{Release, TestApp, ok, stderr, stdout};

/// An app with `[environment.staging]` beside production, where production
/// promotes from staging after `soak`, and the service lists
/// `dist/app-{version}.tar.gz` as its artifact.
fn staged_app(soak: &str) -> TestApp {
    let app = TestApp::new("10m");
    let staging_port = ports::free_port().expect("a free port");
    let config = std::fs::read_to_string(app.config()).expect("read config");
    let config = config.replacen(
        "drain_timeout = \"5s\"\n",
        "drain_timeout = \"5s\"\nartifacts = [\"dist/app-{version}.tar.gz\"]\n",
        1,
    );
    std::fs::write(app.config(), config).expect("write config");
    // The production table is the last one: these keys land in it.
    app.append_config(&format!(
        "promote_from = \"staging\"\nsoak = \"{soak}\"\n\n[environment.staging]\nlisten = \"127.0.0.1:{staging_port}\"\n"
    ));
    app
}

fn artifact(app: &TestApp, version: &str, content: &str) {
    let dir = app.path().join("dist");
    std::fs::create_dir_all(&dir).expect("dist");
    std::fs::write(dir.join(format!("app-{version}.tar.gz")), content).expect("artifact");
}

fn refused(app: &TestApp, args: &[&str], code: i32, needle: &str) {
    let out = app.cli(args);
    let err = stderr(&out);
    assert_eq!(
        out.status.code(),
        Some(code),
        "{args:?} was not refused with {code}: {err}\n{}",
        stdout(&out)
    );
    assert!(
        err.contains(needle),
        "{args:?}: expected {needle:?} in: {err}"
    );
}

fn events_of(app: &TestApp, environment: &str) -> Vec<(String, String)> {
    let out = app.cli(&[
        "history",
        "--json",
        "--limit",
        "1",
        "--events",
        "-e",
        environment,
    ]);
    let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history json");
    list[0]["events"]
        .as_array()
        .map(|evs| {
            evs.iter()
                .map(|e| {
                    (
                        e["kind"].as_str().unwrap_or("").to_owned(),
                        e["message"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

#[test]
fn production_takes_only_what_soaked_in_staging_with_the_same_digest() {
    let app = staged_app("4s");
    for v in ["v1", "v2", "v3", "v4"] {
        app.release(v, Release::Good);
    }
    for v in ["v1", "v2", "v3"] {
        artifact(&app, v, &format!("build of {v}\n"));
    }
    app.serve();

    // Never ran in staging.
    refused(
        &app,
        &["deploy", "v1", "-e", "production"],
        9,
        "v1 has not run in staging",
    );
    ok(&app, &app.cli(&["deploy", "v1", "-e", "staging"]));
    // Not soaked yet: refused with how long it has soaked, nothing changed.
    refused(
        &app,
        &["deploy", "v1", "-e", "production"],
        9,
        "of 4s in staging",
    );
    let status = app.cli(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status");
    let production = status["environments"]
        .as_array()
        .and_then(|envs| envs.iter().find(|e| e["name"] == "production"))
        .expect("production");
    assert!(production["serving"].is_null(), "{production}");
    // Once soaked, accepted (each refused try changes nothing).
    Wait::up_to(Duration::from_secs(20))
        .until(|| {
            app.cli(&["deploy", "v1", "-e", "production"])
                .status
                .success()
        })
        .unwrap_or_else(|e| panic!("v1 never went to production ({e}):\n{}", app.daemon_log()));
    let events = events_of(&app, "production");
    assert!(
        events
            .iter()
            .any(|(k, m)| k == "preflight" && m.contains("promotion check: v1 served")),
        "{events:?}"
    );
    assert!(
        events
            .iter()
            .any(|(k, m)| k == "digest" && m.contains("release digest sha256")),
        "{events:?}"
    );

    // Same label, another build: refused, naming the file.
    ok(&app, &app.cli(&["deploy", "v2", "-e", "staging"]));
    artifact(&app, "v2", "a different build of v2\n");
    refused(
        &app,
        &["deploy", "v2", "-e", "production"],
        9,
        "v2's artifacts differ from what staging ran: artifact dist/app-v2.tar.gz",
    );
    // --skip-promotion-check needs a reason (clap refuses without one).
    let out = app.cli(&["deploy", "v2", "-e", "production", "--skip-promotion-check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // The admin override: deployed, and recorded with who and why.
    ok(
        &app,
        &app.cli(&[
            "deploy",
            "v2",
            "-e",
            "production",
            "--skip-promotion-check",
            "--reason",
            "hotfix approved by bob",
        ]),
    );
    let events = events_of(&app, "production");
    let (_, message) = events
        .iter()
        .find(|(k, _)| k == "override")
        .unwrap_or_else(|| panic!("no override event: {events:?}"));
    assert!(
        message.contains("overrode the promotion check"),
        "{message}"
    );
    assert!(message.contains("hotfix approved by bob"), "{message}");
    assert!(
        message.starts_with("admin overrode"),
        "who (the token's name) is not named: {message}"
    );

    // Rolled back in staging: refused even after the soak time.
    ok(&app, &app.cli(&["deploy", "v3", "-e", "staging"]));
    ok(&app, &app.cli(&["rollback", "-e", "staging"]));
    refused(
        &app,
        &["deploy", "v3", "-e", "production"],
        9,
        "v3 in staging was rolled back",
    );

    // A missing artifact fails the deploy before anything changes, naming it.
    refused(
        &app,
        &["deploy", "v4", "-e", "staging"],
        3,
        "artifact dist/app-v4.tar.gz of service web cannot be read",
    );

    // `releases` lists each version's digests and where it ran.
    let out = app.cli(&["releases", "--json"]);
    ok(&app, &out);
    let releases: serde_json::Value = serde_json::from_slice(&out.stdout).expect("releases");
    let v2 = releases
        .as_array()
        .and_then(|l| l.iter().find(|r| r["version"] == "v2"))
        .expect("v2 listed");
    assert_eq!(v2["digests"].as_array().map(Vec::len), Some(2), "{v2}");
    let v3 = releases
        .as_array()
        .and_then(|l| l.iter().find(|r| r["version"] == "v3"))
        .expect("v3 listed");
    assert_eq!(v3["runs"][0]["environment"], "staging");
    assert_eq!(v3["runs"][0]["rolled_back"], true, "{v3}");
    let text = stdout(&app.cli(&["releases", "-e", "production"]));
    assert!(text.contains("v1") && text.contains("sha256"), "{text}");
    assert!(!text.contains("v3"), "v3 never ran in production: {text}");
}

#[test]
fn a_lock_refuses_deploys_until_unlocked_or_expired_and_rollback_still_works() {
    let app = TestApp::new("10m");
    for v in ["v1", "v2", "v3"] {
        app.release(v, Release::Good);
    }
    app.serve_and_deploy(&["v1", "v2"]);

    ok(
        &app,
        &app.cli(&[
            "lock",
            "-e",
            "production",
            "--reason",
            "database maintenance",
        ]),
    );
    refused(&app, &["deploy", "v3"], 4, "database maintenance");
    refused(&app, &["deploy", "v3"], 4, "locked by");
    let status = app.cli(&["status", "--json"]);
    let status: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status");
    assert_eq!(
        status["environments"][0]["operator_lock"]["reason"],
        "database maintenance"
    );
    let text = stdout(&app.cli(&["status"]));
    assert!(
        text.contains("LOCKED") && text.contains("database maintenance"),
        "{text}"
    );
    // Rollback is an emergency action: allowed under a lock.
    ok(&app, &app.cli(&["rollback"]));
    ok(&app, &app.cli(&["unlock", "-e", "production"]));
    ok(&app, &app.cli(&["deploy", "v3"]));

    // A lock with --until lifts by itself.
    ok(
        &app,
        &app.cli(&["lock", "--reason", "short freeze", "--until", "2s"]),
    );
    refused(&app, &["deploy", "v2"], 4, "short freeze");
    Wait::up_to(Duration::from_secs(10))
        .until(|| {
            let status = app.cli(&["status", "--json"]);
            serde_json::from_slice::<serde_json::Value>(&status.stdout)
                .is_ok_and(|json| json["environments"][0]["operator_lock"].is_null())
        })
        .unwrap_or_else(|e| panic!("the lock never expired ({e})"));
    ok(&app, &app.cli(&["deploy", "v2"]));

    // A bad --until is refused before the daemon is asked.
    let out = app.cli(&["lock", "--reason", "x", "--until", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
}

#[test]
fn outside_every_window_a_deploy_is_refused_unless_an_admin_gives_a_reason() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    // A whole day three days from today (UTC): now is never inside it.
    let today = jiff::Timestamp::now()
        .to_zoned_datetime(jiff::tz::TimeZone::UTC)
        .weekday()
        .to_monday_zero_offset();
    let day = ["Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun"][((today + 3) % 7) as usize];
    app.append_config(&format!(
        "deploy_windows = [\"{day} 00:00-24:00 UTC\", \"{day} 10:00-11:00 Europe/Berlin\"]\n"
    ));
    app.serve();
    refused(&app, &["deploy", "v1"], 4, "outside its deploy windows");
    refused(&app, &["deploy", "v1"], 4, "the next window opens");
    let out = app.cli(&["deploy", "v1", "--json"]);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json error");
    assert_eq!(answer["error"], "outside_window");
    ok(
        &app,
        &app.cli(&["deploy", "v1", "--reason", "incident 42: fix now"]),
    );
    let events = app.last_events();
    assert!(
        events.iter().any(|(k, m)| k == "override"
            && m.contains("deploy window")
            && m.contains("incident 42: fix now")),
        "{events:?}"
    );
}
