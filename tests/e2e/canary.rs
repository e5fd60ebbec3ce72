//! Canary rollouts through the real daemon: analysis, fast failure, operator
//! commands, and a daemon killed mid-canary.

use std::time::{Duration, Instant};

use crate::common::{Release, TestApp, count as kinds, fetch, more_requests, ok, stderr};

const CANARY: &str = r#"
[service.web.rollout]
strategy = "canary"
steps = [20, 50, 100]
step_duration = "1s"
check_interval = "250ms"
analysis = { max_error_rate = 0.02, max_p95 = "150ms", min_requests = 20 }
"#;

fn canary_app(step_duration: &str) -> TestApp {
    let app = TestApp::new("10m");
    app.append_config(&CANARY.replace(
        "step_duration = \"1s\"",
        &format!("step_duration = \"{step_duration}\""),
    ));
    app.release("v1", Release::Good);
    app.serve_and_deploy(&["v1"]);
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_good_canary_walks_every_step_to_100_percent() {
    let app = canary_app("1s");
    app.release("v2", Release::Good);
    let load = app.load(6);
    let out = app.cli(&["deploy", "v2"]);
    let report = load.stop().await.expect("stop the load");
    let (answers, failed) = (report.replies(), report.failed());
    ok(&app, &out);
    assert_eq!(failed, 0, "requests failed during the canary");
    let events = app.last_events();
    assert_eq!(kinds(&events, "step"), 3, "{events:#?}");
    assert!(
        events
            .iter()
            .any(|(k, m)| k == "analysis" && m.contains("passed")),
        "{events:#?}"
    );
    // Both versions answered during the canary, and v2 at the end.
    let all: Vec<&String> = answers.iter().flatten().map(|(_, b)| b).collect();
    assert!(all.iter().any(|b| *b == "hello from v1"));
    assert!(all.iter().any(|b| *b == "hello from v2"));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
    assert_eq!(app.last_deployment()["strategy"], "canary");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_with_20_percent_errors_is_rolled_back_while_stable_keeps_answering() {
    let app = canary_app("1s");
    app.release("v2", Release::Errors(0.2));
    let load = app.load(6);
    let started = Instant::now();
    let out = app.cli(&["deploy", "v2"]);
    let took = started.elapsed();
    // Each client sends at least 5 more requests after the rollback.
    more_requests(&load, 6).await;
    let answers = load.stop().await.expect("stop the load").replies();
    assert_eq!(
        out.status.code(),
        Some(3),
        "{}\n{}",
        stderr(&out),
        app.daemon_log()
    );
    let err = stderr(&out);
    assert!(err.contains("rolled back"), "{err}");
    assert!(err.contains("error rate"), "{err}");
    assert_eq!(app.last_deployment()["state"], "rolled_back");
    // Every failed answer came from the canary; stable never failed.
    for client in &answers {
        for (status, body) in client {
            if *status >= 500 {
                assert!(!body.contains("v1"), "stable failed: {body}");
            }
        }
        // After the rollback, only v1 answers.
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
    eprintln!("bad canary rolled back in {took:?} (CLI end to end)");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_canary_is_rolled_back_by_its_p95() {
    let app = canary_app("1s");
    app.release("v2", Release::Slow(300));
    let load = app.load(6);
    let out = app.cli(&["deploy", "v2"]);
    let failed = load.stop().await.expect("stop the load").failed();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("p95"), "{}", stderr(&out));
    assert_eq!(failed, 0, "a slow canary is slow, not failing");
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pause_resume_promote_and_abort_from_the_cli() {
    // Long steps: only the operator moves things on.
    let app = canary_app("60s");
    app.release("v2", Release::Good);
    app.release("v3", Release::Good);
    let load = app.load(4);

    let deploy = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "step");
    ok(&app, &app.cli(&["pause"]));
    let status = app.cli(&["status", "--json"]);
    ok(&app, &status);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    let web = &json["environments"][0]["traffic"][0];
    assert_eq!(web["canary_percent"], 20.0, "{web}");
    assert_eq!(web["canary_versions"][0], "v2", "{web}");
    assert_eq!(web["stable_versions"][0], "v1", "{web}");
    let human = app.cli(&["status"]);
    assert!(
        String::from_utf8_lossy(&human.stdout).contains("80% on v1, 20% on v2 (canary)"),
        "{}",
        String::from_utf8_lossy(&human.stdout)
    );
    assert_eq!(
        app.cli(&["pause"]).status.code(),
        Some(2),
        "pausing twice is refused"
    );
    ok(&app, &app.cli(&["resume"]));
    ok(&app, &app.cli(&["promote"]));
    app.wait_for("v2", |ev| kinds(ev, "step") >= 2);
    ok(&app, &app.cli(&["promote", "--full"]));
    let out = deploy.join().expect("deploy");
    ok(&app, &out);
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
    let events = app.last_events();
    for k in ["paused", "resumed", "promoted"] {
        assert!(kinds(&events, k) >= 1, "no {k} event: {events:#?}");
    }

    let deploy = app.cli_background(&["deploy", "v3"]);
    app.wait_for_event("v3", "step");
    ok(&app, &app.cli(&["abort", "--reason", "looks wrong"]));
    let out = deploy.join().expect("deploy");
    assert_eq!(out.status.code(), Some(3));
    assert!(stderr(&out).contains("looks wrong"), "{}", stderr(&out));
    let failed = load.stop().await.expect("stop the load").failed();
    assert_eq!(failed, 0);
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
    assert_eq!(
        app.cli(&["resume"]).status.code(),
        Some(2),
        "nothing to resume"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_canary_rolls_back_by_default() {
    let app = canary_app("30s");
    app.release("v2", Release::Good);
    let deploy = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "step");
    app.kill_daemon();
    let _ = deploy.join();
    app.serve();
    app.wait_for_state("rolled_back");
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    // No v2 instance is left after the rollback.
    app.wait_gone("v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_canary_resumes_when_configured() {
    let app = TestApp::new("10m");
    app.append_config(&CANARY.replace(
        "step_duration = \"1s\"",
        "step_duration = \"2s\"\non_daemon_restart = \"resume\"",
    ));
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1"]);
    let load = app.load(4);
    let deploy = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "step");
    let killed = Instant::now();
    app.kill_daemon();
    let _ = deploy.join();
    app.serve();
    let back = Instant::now();
    app.wait_for_state("succeeded");
    let failures = load.failure_times();
    let failed = load.stop().await.expect("stop the load").failed();
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
    let events = app.last_events();
    assert!(kinds(&events, "restarted") == 1, "{events:#?}");
    assert!(kinds(&events, "step") >= 3, "{events:#?}");
    // Requests fail only while the daemon (and so its proxy) is down, or
    // were in flight in it when it was killed.
    let in_flight_margin = Duration::from_millis(100);
    let outside: Vec<&Instant> = failures
        .iter()
        .filter(|t| **t + in_flight_margin < killed || **t > back + in_flight_margin)
        .collect();
    assert!(
        outside.is_empty(),
        "{} of {failed} failed requests were sent while the daemon was up: {:?} after the kill (back after {:?})",
        outside.len(),
        outside
            .iter()
            .map(|t| t
                .checked_duration_since(killed)
                .map(|d| d.as_millis() as i64)
                .unwrap_or_else(|| -(killed.duration_since(**t).as_millis() as i64)))
            .collect::<Vec<_>>(),
        back - killed
    );
    eprintln!(
        "{failed} requests failed, all sent while the daemon was down ({:?})",
        back - killed
    );
}
