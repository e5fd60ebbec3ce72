//! The swarm driver end to end, on this machine's real Docker Swarm (a
//! single-node `docker swarm init`, which `scripts/test` makes when the
//! engine is not in a swarm): each release of an http service is a Swarm
//! service, each instance one of its tasks published in host mode, and
//! cutover's proxy moves traffic between the releases' services. Blue-green
//! and canary under load without a failed request, a release whose health
//! check fails rolled back with the old one serving, and `kill -9` of the
//! daemon mid-canary with the tasks adopted by their labels and the rollout
//! rolled back. Workers (`swarm_worker_*`): one long-lived Swarm service per
//! environment, rolled v1 → v2 by Swarm's rolling update and back by
//! `cutover rollback`; an update to an unhealthy image rolled back by Swarm
//! and reported by cutover, with the tasks on v1 again.
//!
//! A test fails (never skips) when the swarm is not active or an image is
//! missing. Every test uses its own app name, and every Swarm service
//! labelled with it is removed when the test ends, pass or fail. The tests
//! may use the docker CLI; cutover itself talks to the engine's API only.

use std::ops::Deref;
use std::process::Command;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use cutover_kit::wait::Wait;

use crate::common::{TestApp, count as kinds, fetch, more_requests, ok, stderr};

/// A scratch app whose http service runs on Docker Swarm; removes its Swarm
/// services when dropped.
struct SwarmApp {
    app: TestApp,
    name: String,
}

impl Deref for SwarmApp {
    type Target = TestApp;
    fn deref(&self) -> &TestApp {
        &self.app
    }
}

impl Drop for SwarmApp {
    fn drop(&mut self) {
        self.app.stop_daemon();
        let ids = self.services(&[]);
        if !ids.is_empty() {
            let _ = Command::new("docker")
                .args(["service", "rm"])
                .args(&ids)
                .output();
        }
    }
}

/// The web service of every swarm test app.
const WEB: &str = r#"
[service.web]
driver = "swarm"
image = "hello:{version}"
port = 8080
replicas = 2
health = { path = "/health", interval = "100ms", timeout = "1s", healthy = 2, start_timeout = "60s" }
drain_timeout = "5s"
stop_timeout = "3s"
"#;

/// A canary of three steps of `step` each.
fn canary(step: &str) -> String {
    format!(
        r#"{WEB}
[service.web.rollout]
strategy = "canary"
steps = [20, 50, 100]
step_duration = "{step}"
check_interval = "250ms"
analysis = {{ max_error_rate = 0.02, min_requests = 20 }}
"#
    )
}

impl SwarmApp {
    /// An app with `services` (TOML of `[service.*]` tables).
    fn new(services: &str, images: &[&str]) -> SwarmApp {
        require_swarm();
        require_images(images);
        static N: AtomicU32 = AtomicU32::new(0);
        let name = format!(
            "sw{}x{}",
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
        SwarmApp { app, name }
    }

    /// Ids of this app's Swarm services with the extra label filters.
    fn services(&self, labels: &[&str]) -> Vec<String> {
        let mut args = vec![
            "service".to_owned(),
            "ls".to_owned(),
            "-q".to_owned(),
            "--filter".to_owned(),
            format!("label=cutover.app={}", self.name),
        ];
        for l in labels {
            args.push("--filter".to_owned());
            args.push(format!("label={l}"));
        }
        let mut ids = docker_lines(&args.iter().map(String::as_str).collect::<Vec<_>>());
        ids.sort();
        ids
    }

    /// The Swarm service of `release` (exactly one).
    fn service_of(&self, release: &str) -> String {
        let ids = self.services(&[&format!("cutover.release={release}")]);
        assert_eq!(ids.len(), 1, "one Swarm service of {release}: {ids:?}");
        ids[0].clone()
    }

    /// Ids of the running tasks of Swarm service `id`.
    fn running_tasks(&self, id: &str) -> Vec<String> {
        let mut tasks = docker_lines(&[
            "service",
            "ps",
            "-q",
            "--no-trunc",
            "--filter",
            "desired-state=running",
            id,
        ]);
        tasks.sort();
        tasks
    }

    /// Waits until no Swarm service of `release` is left.
    fn wait_service_gone(&self, release: &str) {
        let label = format!("cutover.release={release}");
        Wait::up_to(Duration::from_secs(30))
            .every(Duration::from_millis(200))
            .until(|| self.services(&[&label]).is_empty())
            .unwrap_or_else(|e| {
                panic!(
                    "the Swarm service of {release} was left behind ({e}):\n{}",
                    self.daemon_log()
                )
            });
    }
}

/// Fails the test when the engine is not in an active swarm: never skip.
fn require_swarm() {
    let out = Command::new("docker")
        .args([
            "info",
            "--format",
            "{{.Swarm.LocalNodeState}} {{.Swarm.ControlAvailable}}",
        ])
        .output();
    let state = out
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default();
    assert_eq!(
        state, "active true",
        "Docker Swarm is not active on this engine, or this node is not a manager (docker info says {state:?}): \
         run scripts/test, which runs `docker swarm init --advertise-addr 127.0.0.1` when the engine is in no swarm"
    );
}

/// Fails the test when an image is missing.
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

fn docker_lines(args: &[&str]) -> Vec<String> {
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
async fn swarm_blue_green_under_load_without_a_failed_request() {
    let app = SwarmApp::new(WEB, &["hello:v1", "hello:v2"]);
    app.serve_and_deploy(&["v1"]);
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    let v1 = app.service_of("v1");
    let v1_tasks = app.running_tasks(&v1);
    assert_eq!(v1_tasks.len(), 2, "{}", app.daemon_log());

    // One replicated Swarm service per release, labelled, its port published
    // in host mode (no ingress), its image by id (no node pulls a tag).
    let spec = docker_out(&["service", "inspect", "-f", "{{json .Spec}}", &v1]);
    let spec: serde_json::Value = serde_json::from_str(&spec).expect("spec json");
    assert_eq!(spec["Labels"]["cutover.app"], app.name.as_str());
    assert_eq!(spec["Labels"]["cutover.environment"], "production");
    assert_eq!(spec["Labels"]["cutover.service"], "web");
    assert_eq!(spec["Labels"]["cutover.release"], "v1");
    assert_eq!(spec["Labels"]["cutover.image"], "hello:v1");
    assert_eq!(spec["Mode"]["Replicated"]["Replicas"], 2);
    assert_eq!(spec["EndpointSpec"]["Ports"][0]["PublishMode"], "host");
    assert_eq!(spec["EndpointSpec"]["Ports"][0]["TargetPort"], 8080);
    let image = spec["TaskTemplate"]["ContainerSpec"]["Image"]
        .as_str()
        .unwrap_or_default();
    assert!(image.starts_with("sha256:"), "{image}");

    let load = app.load(8);
    more_requests(&load, 3).await;
    let out = app.cli_async(&["deploy", "v2"]).await;
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
    eprintln!("blue-green on swarm: {total} requests, {failed} failed");
    // v1's service stays warm for the rollback window, with its tasks.
    assert_eq!(app.running_tasks(&v1), v1_tasks);
    assert_eq!(app.running_tasks(&app.service_of("v2")).len(), 2);
    let events = app.last_events();
    assert!(
        events
            .iter()
            .any(|(k, m)| k == "preflight" && m.contains("Docker Swarm active")),
        "{events:#?}"
    );

    // `cutover logs` reads the tasks' output through the manager.
    let out = app.cli(&["logs", "web", "--tail", "5"]);
    ok(&app, &out);
    let text = crate::common::stdout(&out);
    assert!(
        text.contains("hello v2 listening on 0.0.0.0:8080"),
        "{text}"
    );

    // Rollback is one switch back to the warm service.
    ok(&app, &app.cli(&["rollback"]));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_canary_under_load_without_a_failed_request() {
    let app = SwarmApp::new(&canary("1s"), &["hello:v1", "hello:v2"]);
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
    eprintln!("canary on swarm: {} requests, {failed} failed", all.len());
    assert!(all.iter().any(|b| *b == "hello from v1"));
    assert!(all.iter().any(|b| *b == "hello from v2"));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_release_failing_its_health_check_is_rolled_back_and_the_old_one_serves() {
    let services = WEB.replace("start_timeout = \"60s\"", "start_timeout = \"8s\"");
    let app = SwarmApp::new(&services, &["hello:v1", "hello:bad"]);
    app.serve_and_deploy(&["v1"]);
    let v1 = app.service_of("v1");
    let v1_tasks = app.running_tasks(&v1);
    let load = app.load(4);
    more_requests(&load, 3).await;
    let out = app.cli(&["deploy", "bad"]);
    let report = load.stop().await.expect("stop the load");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("did not become healthy"), "{err}");
    assert!(err.contains("v1 still serves"), "{err}");
    assert!(
        err.contains("hello bad listening on 0.0.0.0:8080"),
        "the task's output is shown: {err}"
    );
    assert_eq!(report.failed(), 0, "{:?}", report.tally());
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    app.wait_service_gone("bad");
    assert_eq!(app.running_tasks(&v1), v1_tasks, "v1 untouched");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_kill_9_mid_canary_adopts_the_tasks_by_label_and_rolls_back() {
    let app = SwarmApp::new(&canary("30s"), &["hello:v1", "hello:v2"]);
    app.serve_and_deploy(&["v1"]);
    let v1 = app.service_of("v1");
    let v1_tasks = app.running_tasks(&v1);
    let deploy = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "step");
    let v2 = app.service_of("v2");
    assert_eq!(app.running_tasks(&v2).len(), 2);

    app.kill_daemon();
    let _ = deploy.join();
    // A Swarm service of this app and environment that no record names.
    let stray = docker_out(&[
        "service",
        "create",
        "-d",
        "--name",
        &format!("{}-stray", app.name),
        "--label",
        &format!("cutover.app={}", app.name),
        "--label",
        "cutover.environment=production",
        "--label",
        "cutover.service=web",
        "--label",
        "cutover.release=v0",
        "--no-resolve-image",
        "hello:v1",
    ]);
    assert!(!stray.is_empty(), "stray service created");

    app.serve();
    app.wait_for_state("rolled_back");
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    // v1's tasks were adopted as they were; v2 and the stray are gone.
    assert_eq!(app.running_tasks(&v1), v1_tasks, "{}", app.daemon_log());
    app.wait_service_gone("v2");
    app.wait_service_gone("v0");
    let status = app.cli(&["status", "--json"]);
    ok(&app, &status);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("json");
    assert_eq!(json["environments"][0]["serving"], "v1");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_a_killed_task_is_replaced_by_supervision_without_a_failed_request() {
    let app = SwarmApp::new(WEB, &["hello:v1"]);
    app.serve_and_deploy(&["v1"]);
    let v1 = app.service_of("v1");
    let before = app.running_tasks(&v1);
    assert_eq!(before.len(), 2);
    let load = app.load(4);
    more_requests(&load, 10).await;
    // Kill the container of one task: Swarm starts a new task in its slot,
    // and cutover's supervision takes that one as the replacement instance.
    let container = docker_out(&[
        "inspect",
        "-f",
        "{{.Status.ContainerStatus.ContainerID}}",
        &before[0],
    ]);
    assert!(!container.is_empty(), "the task's container");
    let killed = Command::new("docker")
        .args(["kill", &container])
        .output()
        .expect("docker kill");
    assert!(killed.status.success());
    let recovered = || {
        crate::supervise::env_events(&app)
            .iter()
            .any(|(k, _)| k == "instance_recovered")
    };
    Wait::up_to(Duration::from_secs(60))
        .every(Duration::from_millis(200))
        .until(|| {
            let now = app.running_tasks(&v1);
            recovered() && now.len() == 2 && !now.contains(&before[0])
        })
        .unwrap_or_else(|e| {
            panic!(
                "the killed task was not replaced ({e}): {:#?}\n{}",
                crate::supervise::env_events(&app),
                app.daemon_log()
            )
        });
    more_requests(&load, 10).await;
    let report = load.stop().await.expect("stop the load");
    assert_eq!(report.failed(), 0, "{:?}", report.tally());
    assert_eq!(app.service_of("v1"), v1, "the same Swarm service");
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}

/// A worker on Swarm, handed over in place by Swarm's rolling update.
const JOBS: &str = r#"
[service.jobs]
kind = "worker"
driver = "swarm"
image = "hello:{version}"
replicas = 2
health = { interval = "500ms", timeout = "2s", unhealthy = 2, start_timeout = "2s" }
stop_timeout = "3s"

[service.jobs.swarm]
health_command = ["/hello", "--probe"]
update_parallelism = 1
update_delay = "0s"
update_monitor = "2s"
"#;

impl SwarmApp {
    /// The worker's long-lived Swarm service: the app's only one, marked in place.
    fn worker_service(&self) -> String {
        let ids = self.services(&["cutover.in-place=true"]);
        assert_eq!(ids.len(), 1, "one in-place Swarm service: {ids:?}");
        assert_eq!(self.services(&[]), ids, "no other Swarm service of the app");
        ids[0].clone()
    }

    /// Waits until every running task of Swarm service `id` runs `image`
    /// (by id), and there are `n` of them.
    fn wait_tasks_on(&self, id: &str, image: &str, n: usize) {
        let want = docker_out(&["image", "inspect", "-f", "{{.Id}}", image]);
        Wait::up_to(Duration::from_secs(60))
            .every(Duration::from_millis(250))
            .until(|| {
                let images = docker_lines(&[
                    "service",
                    "ps",
                    "--filter",
                    "desired-state=running",
                    "--format",
                    "{{.Image}} {{.CurrentState}}",
                    id,
                ]);
                images.len() == n
                    && images
                        .iter()
                        .all(|l| l.starts_with(&want) && l.contains("Running"))
            })
            .unwrap_or_else(|e| {
                panic!(
                    "the tasks of {id} are not all on {image} ({e}): {}\n{}",
                    docker_out(&["service", "ps", "--no-trunc", id]),
                    self.daemon_log()
                )
            });
    }
}

/// `docker service inspect` of `id` with a Go template.
fn inspect(id: &str, template: &str) -> String {
    docker_out(&["service", "inspect", "-f", template, id])
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_worker_update_is_swarms_rolling_update_and_a_rollback_rolls_it_back() {
    let app = SwarmApp::new(JOBS, &["hello:v1", "hello:v2"]);
    app.serve_and_deploy(&["v1"]);
    let id = app.worker_service();
    assert_eq!(
        inspect(&id, "{{.Spec.Name}}"),
        format!("{}-production-jobs", app.name)
    );
    app.wait_tasks_on(&id, "hello:v1", 2);
    assert_eq!(
        inspect(&id, "{{.Spec.UpdateConfig.FailureAction}}"),
        "rollback"
    );
    assert_eq!(inspect(&id, "{{.Spec.UpdateConfig.Parallelism}}"), "1");

    let started = std::time::Instant::now();
    app.deploy_ok("v2");
    let took = started.elapsed();
    assert_eq!(
        app.worker_service(),
        id,
        "the same Swarm service, updated in place"
    );
    assert_eq!(inspect(&id, "{{.UpdateStatus.State}}"), "completed");
    assert_eq!(
        inspect(&id, r#"{{index .Spec.Labels "cutover.release"}}"#),
        "v2"
    );
    app.wait_tasks_on(&id, "hello:v2", 2);
    eprintln!("swarm worker v1 -> v2 rolling update took {took:?}");

    // The old release's retire left the service alone; a rollback rolls it back.
    ok(&app, &app.cli(&["rollback"]));
    assert_eq!(app.worker_service(), id);
    assert_eq!(
        inspect(&id, r#"{{index .Spec.Labels "cutover.release"}}"#),
        "v1"
    );
    app.wait_tasks_on(&id, "hello:v1", 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swarm_worker_update_to_an_unhealthy_image_is_rolled_back_by_swarm_and_reported() {
    let app = SwarmApp::new(JOBS, &["hello:v1", "hello:bad"]);
    app.serve_and_deploy(&["v1"]);
    let id = app.worker_service();
    app.wait_tasks_on(&id, "hello:v1", 2);

    let out = app.cli(&["deploy", "bad"]);
    let err = stderr(&out);
    assert_ne!(out.status.code(), Some(0), "the deployment fails: {err}");
    eprintln!("cutover deploy bad said: {err}");
    assert!(err.contains("Swarm's rolling update"), "{err}");
    assert!(err.contains("rollback"), "Swarm's rollback is named: {err}");
    assert_eq!(
        inspect(&id, "{{.UpdateStatus.State}}"),
        "rollback_completed"
    );
    assert_eq!(app.worker_service(), id, "the service stays");
    assert_eq!(
        inspect(&id, r#"{{index .Spec.Labels "cutover.release"}}"#),
        "v1"
    );
    app.wait_tasks_on(&id, "hello:v1", 2);
    let events = app.last_events();
    assert!(
        events
            .iter()
            .any(|(kind, message)| kind == "instance_failed"
                && message.contains("did not roll out")
                && message.contains("rollback")),
        "an event names Swarm's rollback: {events:?}"
    );
}
