//! The docker driver end to end, on the real Docker Engine of this machine:
//! the same rollouts as the process driver (blue-green and canary under load,
//! rollback, a canary of failing containers, abort, a failing health check, a
//! container that dies mid-canary), adoption after
//! `kill -9` of the daemon with strays removed, the preflight checks, worker
//! containers rolled one at a time, `cutover logs`, and supervision between
//! deploys (a killed container replaced, started or adopted).
//!
//! The images (`hello:v1`, `hello:bad`, …) are built by `scripts/test-images`,
//! which `scripts/test` runs first; a test fails, saying so, when one is
//! missing. Every test uses its own app name, and every container labelled
//! with it is removed when the test ends, pass or fail. The tests may use the
//! docker CLI; cutover itself talks to the engine's API only.

use std::ops::Deref;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cutover_kit::wait::Wait;

use crate::common::{TestApp, count as kinds, fetch, more_requests, ok, stderr, stdout};
use crate::supervise::{env_events, has};
use crate::workers::assert_rolled_one_at_a_time;

/// A scratch app whose services run in containers; removes its containers
/// when dropped.
struct DockerApp {
    app: TestApp,
    name: String,
}

impl Deref for DockerApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Drop for DockerApp {
    fn drop(&mut self) {
        self.app.stop_daemon();
        let ids = docker_ids(&["ps", "-aq", "--filter", &self.label()]);
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["rm", "-f"])
                .args(&ids)
                .output();
        }
    }
}

/// The web service of every docker test app; `{extra}` adds keys.
const WEB: &str = r#"
[service.web]
driver = "docker"
image = "hello:{version}"
port = 8080
replicas = 2
health = { path = "/health", interval = "100ms", timeout = "1s", healthy = 2, start_timeout = "20s" }
drain_timeout = "5s"
stop_timeout = "3s"
"#;

impl DockerApp {
    /// An app with `services` (TOML of `[service.*]` tables) run by docker.
    fn new(services: &str, images: &[&str]) -> DockerApp {
        require_images(images);
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "dk{}x{}",
            std::process::id(),
            N.fetch_add(1, Ordering::Relaxed)
        );
        let app = TestApp::new("10m");
        let config = format!(
            r#"[app]
name = "{name}"

[server]
listen = "127.0.0.1:{api}"
{services}
[environment.production]
listen = "127.0.0.1:{proxy}"
rollback_window = "10m"
"#,
            api = app.api_port,
            proxy = app.proxy_port,
        );
        std::fs::write(app.config(), config).expect("write config");
        DockerApp { app, name }
    }

    fn label(&self) -> String {
        format!("label=cutover.app={}", self.name)
    }

    /// Ids of this app's running containers with the extra label filters.
    fn running(&self, labels: &[&str]) -> Vec<String> {
        self.containers(false, labels)
    }

    /// Ids of this app's containers (`all`: running or not).
    fn containers(&self, all: bool, labels: &[&str]) -> Vec<String> {
        let mut args = vec![
            "ps".to_owned(),
            "-q".to_owned(),
            "--no-trunc".to_owned(),
            "--filter".to_owned(),
            self.label(),
        ];
        if all {
            args.push("-a".to_owned());
        }
        for l in labels {
            args.push("--filter".to_owned());
            args.push(format!("label={l}"));
        }
        let mut ids = docker_ids(&args.iter().map(String::as_str).collect::<Vec<_>>());
        ids.sort();
        ids
    }

    /// Waits until no container of `release` is left, running or not.
    fn wait_gone(&self, release: &str) {
        let label = format!("cutover.release={release}");
        Wait::up_to(Duration::from_secs(20))
            .every(Duration::from_millis(100))
            .until(|| self.containers(true, &[&label]).is_empty())
            .unwrap_or_else(|e| {
                panic!(
                    "containers of {release} left behind ({e}):\n{}",
                    self.daemon_log()
                )
            });
    }
}

/// Fails the test when an image is missing: never skip silently.
fn require_images(images: &[&str]) {
    for image in images {
        let found = Command::new("docker")
            .args(["image", "inspect", "-f", "{{.Id}}", image])
            .output()
            .map(|o| o.status.success());
        assert!(
            matches!(found, Ok(true)),
            "test image {image} is missing (or docker is not available): run scripts/test, \
             which builds the test images (scripts/test-images)"
        );
    }
}

fn docker_ids(args: &[&str]) -> Vec<String> {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker CLI");
    assert!(
        out.status.success(),
        "docker {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(str::to_owned)
        .filter(|l| !l.is_empty())
        .collect()
}

fn docker_out(args: &[&str]) -> String {
    let out = Command::new("docker")
        .args(args)
        .output()
        .expect("run the docker CLI");
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blue_green_of_containers_under_load_without_a_failed_request() {
    let app = DockerApp::new(WEB, &["hello:v1", "hello:v2"]);
    app.serve_and_deploy(&["v1"]);
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    let v1 = app.running(&["cutover.release=v1"]);
    assert_eq!(v1.len(), 2, "{}", app.daemon_log());

    // Labelled, published on loopback only, running as the image's user.
    let id = &v1[0];
    let labels = docker_out(&["inspect", "-f", "{{json .Config.Labels}}", id]);
    let labels: serde_json::Value = serde_json::from_str(&labels).expect("labels json");
    assert_eq!(labels["cutover.app"], app.name.as_str());
    assert_eq!(labels["cutover.environment"], "production");
    assert_eq!(labels["cutover.service"], "web");
    assert_eq!(labels["cutover.release"], "v1");
    assert!(
        labels["cutover.instance"]
            .as_str()
            .is_some_and(|i| i.starts_with("production-web-v1-")),
        "{labels}"
    );
    let ports = docker_out(&["port", id, "8080"]);
    assert!(ports.starts_with("127.0.0.1:"), "{ports}");

    let load = app.load(8);
    // Every client is under way on v1 before the deploy starts.
    more_requests(&load, 3).await;
    let out = app.cli_async(&["deploy", "v2"]).await;
    // Load on v2 for a while after the switch.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let report = load.stop().await.expect("stop the load");
    let (bodies, failed) = (report.bodies(), report.failed());
    ok(&app, &out);
    assert_eq!(failed, 0, "requests failed during the switch");
    let total: usize = bodies.iter().map(Vec::len).sum();
    assert!(total > 100, "too little load: {total}");
    for client in &bodies {
        let first_v2 = client
            .iter()
            .position(|b| b == "hello from v2")
            .expect("reached v2");
        assert!(client[..first_v2].iter().all(|b| b == "hello from v1"));
        assert!(client[first_v2..].iter().all(|b| b == "hello from v2"));
    }
    // v1 stays warm for the rollback window.
    assert_eq!(app.running(&["cutover.release=v1"]), v1);
    assert_eq!(app.running(&["cutover.release=v2"]).len(), 2);
    let events = app.last_events();
    assert!(kinds(&events, "preflight") == 1, "{events:#?}");

    // `cutover logs` reads the containers' output through the engine.
    let out = app.cli(&["logs", "web"]);
    ok(&app, &out);
    let text = stdout(&out);
    assert_eq!(
        text.matches("hello v2 listening on 0.0.0.0:8080").count(),
        2,
        "{text}"
    );
    assert!(text.contains("production-web-v2-"), "prefixed: {text}");
    let out = app.cli(&["logs", "web", "--release", "v1", "--tail", "1"]);
    ok(&app, &out);
    assert!(
        stdout(&out).contains("hello v1 listening"),
        "{}",
        stdout(&out)
    );

    // Rollback is one switch back to the warm containers.
    ok(&app, &app.cli(&["rollback"]));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn canary_of_containers_under_load_without_a_failed_request() {
    let services = format!(
        "{WEB}{}",
        r#"
[service.web.rollout]
strategy = "canary"
steps = [20, 50, 100]
step_duration = "1s"
check_interval = "250ms"
analysis = { max_error_rate = 0.02, min_requests = 20 }
"#
    );
    let app = DockerApp::new(&services, &["hello:v1", "hello:v2"]);
    app.serve_and_deploy(&["v1"]);
    let load = app.load(6);
    let out = app.cli_async(&["deploy", "v2"]).await;
    let report = load.stop().await.expect("stop the load");
    let (answers, failed) = (report.replies(), report.failed());
    ok(&app, &out);
    assert_eq!(failed, 0, "requests failed during the canary");
    let events = app.last_events();
    assert_eq!(kinds(&events, "step"), 3, "{events:#?}");
    let all: Vec<&String> = answers.iter().flatten().map(|(_, b)| b).collect();
    assert!(all.iter().any(|b| *b == "hello from v1"));
    assert!(all.iter().any(|b| *b == "hello from v2"));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_of_failing_containers_rolls_back_and_abort_works() {
    let services = format!(
        "{WEB}{}",
        r#"
[service.web.rollout]
strategy = "canary"
steps = [20, 50, 100]
step_duration = "30s"
check_interval = "250ms"
analysis = { max_error_rate = 0.02, min_requests = 20 }
"#
    );
    let app = DockerApp::new(&services, &["hello:v1", "hello:v2", "hello:errors"]);
    app.serve_and_deploy(&["v1"]);

    // 20 % of the canary's answers are 500: the fast check rolls it back.
    let load = app.load(6);
    let out = app.cli_async(&["deploy", "errors"]).await;
    // Some load after the rollback too.
    more_requests(&load, 6).await;
    let answers = load.stop().await.expect("stop the load").replies();
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("error rate"), "{}", stderr(&out));
    for client in &answers {
        for (status, body) in client {
            if *status >= 500 {
                assert!(!body.contains("v1"), "stable failed: {body}");
            }
        }
    }
    app.wait_gone("errors");

    // An operator abort mid-step.
    let running = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "step");
    ok(&app, &app.cli(&["abort", "--reason", "looks wrong"]));
    let out = running.join().expect("deploy");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("looks wrong"), "{}", stderr(&out));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    app.wait_gone("v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unhealthy_container_is_removed_and_the_old_release_keeps_serving() {
    let app = DockerApp::new(WEB, &["hello:v1", "hello:bad"]);
    app.serve_and_deploy(&["v1"]);
    let out = app.cli(&["deploy", "bad"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("did not become healthy"), "{err}");
    assert!(err.contains("v1 still serves"), "{err}");
    assert!(
        err.contains("hello bad listening on 0.0.0.0:8080"),
        "the container's output is shown: {err}"
    );
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    app.wait_gone("bad");
    assert_eq!(app.running(&["cutover.release=v1"]).len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_container_that_dies_mid_canary_rolls_the_release_back() {
    let services = format!(
        "{WEB}{}",
        r#"
[service.web.rollout]
strategy = "canary"
steps = [20, 50, 100]
step_duration = "30s"
"#
    );
    let app = DockerApp::new(&services, &["hello:v1", "hello:v2"]);
    app.serve_and_deploy(&["v1"]);
    let running = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "step");
    let victim = app.running(&["cutover.release=v2"]);
    assert_eq!(victim.len(), 2);
    let killed = Command::new("docker")
        .args(["kill", &victim[0]])
        .output()
        .expect("docker kill");
    assert!(killed.status.success());

    let out = running.join().expect("deploy");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(stderr(&out).contains("unhealthy"), "{}", stderr(&out));
    assert_eq!(app.last_deployment()["state"], "rolled_back");
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    app.wait_gone("v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_kill_9_containers_are_adopted_and_strays_removed() {
    let app = DockerApp::new(WEB, &["hello:v1", "hello:v2"]);
    app.serve_and_deploy(&["v1", "v2"]);
    let before = app.running(&[]);
    assert_eq!(before.len(), 4, "2 serving + 2 warm");

    app.kill_daemon();
    // A container of this app and environment that the store does not know.
    let stray = docker_out(&[
        "run",
        "-d",
        "--label",
        &format!("cutover.app={}", app.name),
        "--label",
        "cutover.environment=production",
        "--label",
        "cutover.service=web",
        "--label",
        "cutover.release=v0",
        "--label",
        "cutover.instance=production-web-v0-0-dead",
        "hello:v1",
    ]);
    assert!(!stray.is_empty(), "stray container started");
    assert_eq!(app.running(&[]).len(), 5);

    app.serve();
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
    assert_eq!(app.running(&[]), before, "not adopted as they were");
    app.wait_gone("v0");
    let status = app.cli(&["status", "--json"]);
    ok(&app, &status);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(json["environments"][0]["serving"], "v2");
    assert_eq!(
        json["environments"][0]["instances"]
            .as_array()
            .map(Vec::len),
        Some(4)
    );
    // The adopted, warm v1 is still one switch away.
    ok(&app, &app.cli(&["rollback"]));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preflight_warns_about_root_and_refuses_a_missing_image_changing_nothing() {
    let app = DockerApp::new(WEB, &["hello:root"]);
    app.serve_and_deploy(&["root"]);
    let events = app.last_events();
    assert!(
        events
            .iter()
            .any(|(k, m)| k == "warning" && m.contains("hello:root") && m.contains("runs as root")),
        "{events:#?}"
    );

    let out = app.cli(&["deploy", "v9"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("image hello:v9 is not on this machine"),
        "{err}"
    );
    assert!(err.contains("pull = true"), "{err}");
    // Nothing changed: no deployment, no lock, no container.
    assert_eq!(app.last_deployment()["version"], "root");
    let status = app.cli(&["status", "--json"]);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(json["environments"][0]["serving"], "root");
    assert!(json["environments"][0]["lock"].is_null(), "{json}");
    assert!(app.containers(true, &["cutover.release=v9"]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_docker_daemon_fails_the_deploy_before_anything_changes() {
    let app = DockerApp::new(WEB, &["hello:v1"]);
    app.serve_with_env(&[("DOCKER_HOST", "unix:///nonexistent/docker.sock")]);
    let out = app.cli(&["deploy", "v1"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cannot reach the Docker daemon at unix:///nonexistent/docker.sock"),
        "{err}"
    );
    assert!(err.contains("Is Docker running?"), "{err}");
    let history = app.cli(&["history", "--json"]);
    ok(&app, &history);
    assert_eq!(stdout(&history).trim(), "[]", "a deployment was recorded");
    assert!(app.containers(true, &[]).is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn worker_containers_are_replaced_one_at_a_time() {
    let services = r#"
[service.jobs]
kind = "worker"
driver = "docker"
image = "hello:{version}"
replicas = 3
health = { command = ["/hello", "--probe"], interval = "200ms", timeout = "2s", healthy = 2, start_timeout = "20s" }
stop_timeout = "3s"
"#;
    let app = DockerApp::new(services, &["hello:v1", "hello:v2"]);
    app.serve_and_deploy(&["v1"]);
    assert_rolled_one_at_a_time(&app.last_events(), 3, false);
    app.deploy_ok("v2");
    assert_rolled_one_at_a_time(&app.last_events(), 3, true);
    assert_eq!(app.running(&["cutover.release=v2"]).len(), 3);
    app.wait_gone("v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_store_with_containers_running_is_refused_and_adopt_orphans_takes_them_back() {
    let app = DockerApp::new(WEB, &["hello:v1"]);
    app.serve_and_deploy(&["v1"]);
    let before = app.running(&["cutover.release=v1"]);
    assert_eq!(before.len(), 2);
    app.kill_daemon();
    std::fs::remove_file(app.path().join(".cutover").join("state.db")).expect("delete state.db");

    let refused = crate::state_store::serve_refused(&app);
    let message = stderr(&refused);
    assert_ne!(refused.status.code(), Some(0), "{message}");
    assert!(message.contains("is missing"), "{message}");
    assert!(
        message.contains("production web v1 (container "),
        "{message}"
    );
    assert!(message.contains("--adopt-orphans"), "{message}");
    assert_eq!(
        app.running(&["cutover.release=v1"]),
        before,
        "nothing is stopped"
    );

    app.serve_with(&["serve", "--adopt-orphans"], &[]);
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1"),
        "{}",
        app.daemon_log()
    );
    assert_eq!(
        app.running(&["cutover.release=v1"]),
        before,
        "the same containers serve again"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_killed_container_is_replaced_whether_started_or_adopted() {
    let app = DockerApp::new(WEB, &["hello:v1"]);
    app.serve_and_deploy(&["v1"]);
    let recovered = |app: &DockerApp| {
        env_events(app)
            .iter()
            .filter(|(k, _)| k == "instance_recovered")
            .count()
    };
    let replaced = |app: &DockerApp, victim: &str, recoveries: usize| {
        Wait::up_to(Duration::from_secs(20))
            .every(Duration::from_millis(100))
            .until(|| {
                let now = app.running(&["cutover.release=v1"]);
                now.len() == 2 && !now.iter().any(|c| c == victim) && recovered(app) >= recoveries
            })
            .unwrap_or_else(|e| {
                panic!(
                    "the killed container was not replaced ({e}): {:#?}\n{}",
                    env_events(app),
                    app.daemon_log()
                )
            });
    };

    // Started by this daemon, under load: no failed request.
    let load = app.load(4);
    more_requests(&load, 10).await;
    let victim = app.running(&["cutover.release=v1"])[0].clone();
    assert!(
        Command::new("docker")
            .args(["kill", &victim])
            .output()
            .expect("docker kill")
            .status
            .success()
    );
    replaced(&app, &victim, 1);
    more_requests(&load, 10).await;
    let report = load.stop().await.expect("stop the load");
    assert_eq!(report.failed(), 0, "{:?}", report.tally());
    assert!(has(&env_events(&app), "instance_exited", "exited"));

    // Adopted after a restart of the daemon: watched all the same.
    app.kill_daemon();
    app.serve();
    let victim = app.running(&["cutover.release=v1"])[0].clone();
    assert!(
        Command::new("docker")
            .args(["kill", &victim])
            .output()
            .expect("docker kill")
            .status
            .success()
    );
    replaced(&app, &victim, 2);
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}
