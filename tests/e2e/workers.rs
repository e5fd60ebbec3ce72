//! Worker services (`kind = "worker"`) are rolled one instance at a time,
//! gated on health: start new #1, wait until it is ready, stop old #1, then
//! #2, … A new worker that fails is stopped, the old ones keep running, and
//! the deployment fails. The process driver here; `docker.rs` has the same
//! for containers.

use std::os::unix::fs::PermissionsExt;

use crate::common::{TestApp, hello_bin, ok, stderr};

const REPLICAS: usize = 3;

/// Asserts that the deployment's events show `replicas` workers started one
/// at a time: each new one started and became healthy (and, when `replacing`,
/// replaced an old one) before the next started, so at most one new worker
/// was starting at any time.
pub fn assert_rolled_one_at_a_time(events: &[(String, String)], replicas: usize, replacing: bool) {
    let steps: Vec<&str> = events
        .iter()
        .map(|(k, _)| k.as_str())
        .filter(|k| {
            matches!(
                *k,
                "instance_started" | "instance_healthy" | "instance_replaced"
            )
        })
        .collect();
    let one: &[&str] = if replacing {
        &["instance_started", "instance_healthy", "instance_replaced"]
    } else {
        &["instance_started", "instance_healthy"]
    };
    let expected: Vec<&str> = one
        .iter()
        .copied()
        .cycle()
        .take(one.len() * replicas)
        .collect();
    assert_eq!(steps, expected, "not one at a time: {events:#?}");
}

/// An app whose only service is a worker running the example app.
fn worker_app(health: &str) -> TestApp {
    let app = TestApp::new("10m");
    let text = std::fs::read_to_string(app.config()).expect("config");
    let start = text.find("[service.web]").expect("web service");
    let end = text.find("[environment.production]").expect("environment");
    let worker = format!(
        r#"[service.jobs]
kind = "worker"
command = ["./releases/{{version}}/hello", "--port", "{{port}}", "--version", "{{version}}"]
replicas = {REPLICAS}
health = {health}
stop_timeout = "3s"

"#
    );
    std::fs::write(
        app.config(),
        format!("{}{worker}{}", &text[..start], &text[end..]),
    )
    .expect("write config");
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn process_workers_are_replaced_one_at_a_time_gated_on_their_health_command() {
    let probe = format!(
        r#"{{ command = ["{}", "--probe"], interval = "100ms", timeout = "1s", healthy = 2, start_timeout = "5s" }}"#,
        hello_bin().display()
    );
    let app = worker_app(&probe);
    app.release("v1", crate::common::Release::Good);
    app.release("v2", crate::common::Release::Good);
    app.serve_and_deploy(&["v1"]);
    assert_eq!(app.running_version("v1"), REPLICAS);
    assert_rolled_one_at_a_time(&app.last_events(), REPLICAS, false);

    app.deploy_ok("v2");
    assert_rolled_one_at_a_time(&app.last_events(), REPLICAS, true);
    assert_eq!(app.running_version("v2"), REPLICAS);
    assert_eq!(app.running_version("v1"), 0, "old workers left running");

    // `cutover logs` reads the workers' log files.
    let out = app.cli(&["logs", "jobs"]);
    ok(&app, &out);
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        text.matches("hello v2 listening").count(),
        REPLICAS,
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_new_worker_is_stopped_and_the_old_ones_keep_running() {
    let app = worker_app(r#"{ interval = "100ms", healthy = 3 }"#);
    app.release("v1", crate::common::Release::Good);
    app.serve_and_deploy(&["v1"]);
    // v2 crashes as soon as it starts.
    let dir = app.path().join("releases").join("v2");
    std::fs::create_dir_all(&dir).expect("release dir");
    let script = dir.join("hello");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec {} --crash-on-start \"$@\"\n",
            hello_bin().display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");

    let out = app.cli(&["deploy", "v2"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("worker exited"), "{}", stderr(&out));
    let events = app.last_events();
    let started = events
        .iter()
        .filter(|(k, m)| k == "instance_started" && m.contains("-v2-"))
        .count();
    assert_eq!(
        started, 1,
        "only the first new worker was tried: {events:#?}"
    );
    assert_eq!(app.running_version("v2"), 0, "the failed worker was left");
    assert_eq!(
        app.running_version("v1"),
        REPLICAS,
        "old workers were stopped"
    );
}
