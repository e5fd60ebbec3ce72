//! Supervision between deploys: a serving instance that exits or turns
//! unhealthy leaves the table and is replaced (process instances, started or
//! adopted after a restart, and workers; `docker.rs` has containers), a service with no instance left is answered 503 with
//! `Retry-After` at once, and supervision never restarts an instance of a
//! release that does not serve, nor fights a deploy that starts while a
//! replacement is starting.

use std::io::{Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::time::{Duration, Instant};

use cutover_kit::wait::Wait;

use crate::common::{Release, TestApp, hello_bin, more_requests, ok};

/// `kill -9`.
fn kill_9(pid: i32) {
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    );
}

/// `cutover status --json`, the first environment.
fn env_status(app: &TestApp) -> serde_json::Value {
    let out = app.cli(&["status", "--json"]);
    ok(app, &out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    json["environments"][0].clone()
}

/// The environment's instances as `(id, state, port)`.
fn instances(app: &TestApp) -> Vec<(String, String, Option<u16>)> {
    env_status(app)["instances"]
        .as_array()
        .map(|list| {
            list.iter()
                .map(|i| {
                    let port = i["addr"]
                        .as_str()
                        .and_then(|a| a.rsplit(':').next())
                        .and_then(|p| p.parse().ok());
                    (
                        i["id"].as_str().unwrap_or("").to_owned(),
                        i["state"].as_str().unwrap_or("").to_owned(),
                        port,
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// The pid of the instance listening on `port`.
fn pid_on_port(app: &TestApp, port: u16) -> i32 {
    let needle = format!("--port {port} ");
    app.instance_pids()
        .into_iter()
        .find(|(_, cmd)| cmd.contains(&needle))
        .map(|(pid, _)| pid)
        .unwrap_or_else(|| panic!("no instance on port {port}: {:?}", app.instance_pids()))
}

/// One GET over a fresh connection: status, headers (lower-case names) and
/// body.
fn raw_get(port: u16, path: &str, auth: Option<&str>) -> (u16, Vec<(String, String)>, String) {
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let auth = auth
        .map(|t| format!("Authorization: Bearer {t}\r\n"))
        .unwrap_or_default();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n{auth}Connection: close\r\n\r\n"
    )
    .expect("send");
    let mut raw = Vec::new();
    stream.read_to_end(&mut raw).expect("read the answer");
    let text = String::from_utf8_lossy(&raw).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let mut lines = head.lines();
    let status = lines
        .next()
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    (status, headers, body.to_owned())
}

/// The environment's events (`GET /v1/events`), oldest first, as `(kind,
/// message)`.
pub fn env_events(app: &TestApp) -> Vec<(String, String)> {
    let token = std::fs::read_to_string(app.path().join(".cutover").join("api.token"))
        .expect("read the API token");
    let (status, _, body) = raw_get(
        app.api_port,
        "/v1/events?environment=production&limit=500",
        Some(token.trim()),
    );
    assert_eq!(status, 200, "{body}");
    // A chunked body: the JSON array is between the first `[` and the last `]`.
    let json = match (body.find('['), body.rfind(']')) {
        (Some(a), Some(b)) if a <= b => &body[a..=b],
        _ => panic!("no JSON list in {body:?}"),
    };
    let list: serde_json::Value = serde_json::from_str(json).expect("events JSON");
    let mut events: Vec<(String, String)> = list
        .as_array()
        .expect("a list")
        .iter()
        .map(|e| {
            (
                e["kind"].as_str().unwrap_or("").to_owned(),
                e["message"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect();
    events.reverse();
    events
}

pub fn has(events: &[(String, String)], kind: &str, mentions: &str) -> bool {
    events
        .iter()
        .any(|(k, m)| k == kind && m.contains(mentions))
}

/// Waits until `web` has two instances in state `serving`, none of them in
/// `gone`; returns their ids.
fn wait_two_serving_without(app: &TestApp, gone: &[String], limit: Duration) -> Vec<String> {
    Wait::up_to(limit)
        .every(Duration::from_millis(50))
        .until_some(|| {
            let now = instances(app);
            let serving: Vec<String> = now
                .iter()
                .filter(|(_, state, _)| state == "serving")
                .map(|(id, _, _)| id.clone())
                .collect();
            (serving.len() == 2 && !serving.iter().any(|id| gone.contains(id))).then_some(serving)
        })
        .unwrap_or_else(|e| {
            panic!(
                "web is not back to two serving instances ({e}): {:?}\nevents: {:#?}\n{}",
                instances(app),
                env_events(app),
                app.daemon_log()
            )
        })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_of_two_instances_under_load_fails_no_request_and_it_is_back_within_3s() {
    let app = TestApp::deployed("10m", &["v1"]);
    let before = instances(&app);
    assert_eq!(before.len(), 2, "{before:?}");
    let (victim, _, port) = before[0].clone();
    let pid = pid_on_port(&app, port.expect("an address"));
    let load = app.load(4);
    more_requests(&load, 20).await;

    let killed = Instant::now();
    kill_9(pid);
    let ids: Vec<String> = before.iter().map(|(id, _, _)| id.clone()).collect();
    let after =
        wait_two_serving_without(&app, std::slice::from_ref(&victim), Duration::from_secs(10));
    let back = killed.elapsed();
    more_requests(&load, 20).await;
    let report = load.stop().await.expect("stop the load");

    assert_eq!(report.failed(), 0, "requests failed: {:?}", report.tally());
    assert!(
        back < Duration::from_secs(3),
        "back in the table after {back:?}"
    );
    assert!(
        after.contains(&ids[1]),
        "the other instance was replaced too"
    );
    let events = env_events(&app);
    assert!(has(&events, "instance_exited", &victim), "{events:#?}");
    assert!(has(&events, "instance_restarted", &victim), "{events:#?}");
    assert!(has(&events, "instance_recovered", &victim), "{events:#?}");
    assert_eq!(app.running_version("v1"), 2);
    eprintln!("kill -9 → replacement serving: {back:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adopted_instance_that_exits_is_replaced_too() {
    let app = TestApp::deployed("10m", &["v1"]);
    // After a restart the instances are not the daemon's children.
    app.kill_daemon();
    app.serve();
    let before = instances(&app);
    let (victim, _, port) = before[0].clone();
    kill_9(pid_on_port(&app, port.expect("an address")));
    wait_two_serving_without(&app, std::slice::from_ref(&victim), Duration::from_secs(10));
    let events = env_events(&app);
    assert!(has(&events, "instance_exited", &victim), "{events:#?}");
    assert!(has(&events, "instance_recovered", &victim), "{events:#?}");
    assert_eq!(app.running_version("v1"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_every_instance_down_the_proxy_answers_503_with_retry_after_at_once() {
    let app = TestApp::deployed("10m", &["v1"]);
    // From now on v1 crashes as it starts: the replacements fail.
    let script = app.path().join("releases").join("v1").join("hello");
    let crashing = format!(
        "#!/bin/sh\nexec {} --crash-on-start \"$@\"\n",
        hello_bin().display()
    );
    std::fs::write(&script, crashing).expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    for (pid, _) in app.instance_pids() {
        kill_9(pid);
    }
    let answered = Wait::up_to(Duration::from_secs(10))
        .every(Duration::from_millis(50))
        .until_some(|| {
            let asked = Instant::now();
            let (status, headers, body) = raw_get(app.proxy_port, "/", None);
            (status == 503).then(|| (asked.elapsed(), headers, body))
        });
    let (took, headers, body) = answered.unwrap_or_else(|e| {
        panic!(
            "never 503 ({e}); events {:#?}\n{}",
            env_events(&app),
            app.daemon_log()
        )
    });
    assert!(
        took < Duration::from_millis(500),
        "the 503 took {took:?}: {body}"
    );
    assert!(
        headers.iter().any(|(k, v)| k == "retry-after" && v == "1"),
        "{headers:?}"
    );
    assert!(body.contains("no healthy instance"), "{body}");
    // Replacements keep failing, with backoff, until the release works again.
    Wait::up_to(Duration::from_secs(10))
        .every(Duration::from_millis(100))
        .until(|| {
            has(
                &env_events(&app),
                "instance_restart_failed",
                "next attempt in 1.0s",
            )
        })
        .unwrap_or_else(|e| panic!("no failed restart ({e}): {:#?}", env_events(&app)));
    app.release("v1", Release::Good);
    wait_two_serving_without(&app, &[], Duration::from_secs(20));
    let (status, _, body) = raw_get(app.proxy_port, "/", None);
    assert_eq!((status, body.trim()), (200, "hello from v1"));
    let events = env_events(&app);
    let failed_restarts = events
        .iter()
        .filter(|(k, _)| k == "instance_restart_failed")
        .count();
    assert!(failed_restarts >= 2, "{events:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_that_fails_its_health_check_leaves_the_table_and_is_replaced() {
    let app = TestApp::new("10m");
    // Each instance fails /health while the file sick-<its id> exists.
    let dir = app.path().join("releases").join("v1");
    std::fs::create_dir_all(&dir).expect("release dir");
    let script = dir.join("hello");
    std::fs::write(
        &script,
        format!(
            "#!/bin/sh\nexec {} --fail-health-when \"$PWD/sick-$CUTOVER_INSTANCE\" \"$@\"\n",
            hello_bin().display()
        ),
    )
    .expect("script");
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    app.serve_and_deploy(&["v1"]);
    let before = instances(&app);
    let (sick, _, port) = before[0].clone();
    let sick_pid = pid_on_port(&app, port.expect("an address"));
    let load = app.load(4);
    more_requests(&load, 10).await;

    std::fs::write(app.path().join(format!("sick-{sick}")), "").expect("make it sick");
    wait_two_serving_without(&app, std::slice::from_ref(&sick), Duration::from_secs(10));
    more_requests(&load, 10).await;
    let report = load.stop().await.expect("stop the load");
    assert_eq!(report.failed(), 0, "{:?}", report.tally());
    let events = env_events(&app);
    assert!(has(&events, "instance_unhealthy", &sick), "{events:#?}");
    assert!(has(&events, "instance_recovered", &sick), "{events:#?}");
    assert!(
        !events.iter().any(|(k, _)| k == "instance_exited"),
        "{events:#?}"
    );
    // The sick instance was drained and stopped.
    Wait::up_to(Duration::from_secs(10))
        .every(Duration::from_millis(100))
        .until(|| app.instance_pids().iter().all(|(pid, _)| *pid != sick_pid))
        .unwrap_or_else(|e| panic!("the unhealthy instance still runs ({e})"));
    assert_eq!(app.running_version("v1"), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_worker_that_exits_is_restarted() {
    let app = TestApp::new("10m");
    let text = std::fs::read_to_string(app.config()).expect("config");
    let at = text.find("[environment.production]").expect("environment");
    let worker = r#"[service.jobs]
kind = "worker"
command = ["./releases/{version}/hello", "--port", "{port}", "--version", "{version}"]
replicas = 2
health = { interval = "100ms", healthy = 2 }
stop_timeout = "3s"

"#;
    std::fs::write(
        app.config(),
        format!("{}{worker}{}", &text[..at], &text[at..]),
    )
    .expect("write config");
    app.release("v1", Release::Good);
    app.serve_and_deploy(&["v1"]);
    assert_eq!(app.running_version("v1"), 4, "2 web + 2 jobs");
    let jobs: Vec<(String, String, Option<u16>)> = instances(&app)
        .into_iter()
        .filter(|(id, _, _)| id.contains("-jobs-"))
        .collect();
    let (victim, _, port) = jobs[0].clone();
    kill_9(pid_on_port(&app, port.expect("a port")));
    Wait::up_to(Duration::from_secs(10))
        .every(Duration::from_millis(100))
        .until(|| {
            let events = env_events(&app);
            has(&events, "instance_exited", &victim) && has(&events, "instance_recovered", &victim)
        })
        .unwrap_or_else(|e| {
            panic!(
                "the worker was not restarted ({e}): {:#?}\n{}",
                env_events(&app),
                app.daemon_log()
            )
        });
    assert_eq!(app.running_version("v1"), 4);
    let now = instances(&app);
    assert!(!now.iter().any(|(id, _, _)| *id == victim), "{now:?}");
    assert_eq!(now.len(), 4, "{now:?}");
}

/// Processes running a script or binary of release `version` (a
/// replacement still in its start-up script included).
fn processes_of(app: &TestApp, version: &str) -> usize {
    let needle = format!("releases/{version}/");
    let dir = app.path().canonicalize().expect("canonical");
    std::fs::read_dir("/proc")
        .expect("proc")
        .flatten()
        .filter(|e| std::fs::read_link(e.path().join("cwd")).is_ok_and(|cwd| cwd == dir))
        .filter(|e| {
            let stat = std::fs::read_to_string(e.path().join("stat")).unwrap_or_default();
            !stat.contains(") Z ")
        })
        .filter(|e| {
            String::from_utf8_lossy(&std::fs::read(e.path().join("cmdline")).unwrap_or_default())
                .contains(&needle)
        })
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_release_that_does_not_serve_is_never_restarted() {
    // v2 takes 1.5 s to start; v1 is warm for 3 s after the switch, then
    // retired.
    let app = TestApp::new("3s");
    app.release("v1", Release::Good);
    app.release("v2", Release::SlowStart(Duration::from_millis(1500)));
    app.serve_and_deploy(&["v1"]);
    let v1 = instances(&app);
    let deploy = app.cli_background(&["deploy", "v2"]);
    // Mid-rollout, one of v1's instances dies: the rollout owns the table,
    // supervision leaves it alone.
    Wait::up_to(Duration::from_secs(10))
        .every(Duration::from_millis(20))
        .until(|| {
            app.last_deployment()["version"] == "v2"
                && app
                    .last_events()
                    .iter()
                    .any(|(k, _)| k == "instance_started")
        })
        .expect("v2 starting");
    kill_9(pid_on_port(&app, v1[0].2.expect("port")));
    ok(&app, &deploy.join().expect("deploy"));
    // In the window the other v1 instance is warm, not serving: killed, it
    // stays dead.
    let warm_port = v1[1].2.expect("port");
    assert!(
        app.instance_pids()
            .iter()
            .any(|(_, c)| c.contains(&format!("--port {warm_port} "))),
        "v1 is not warm any more: {:?}",
        instances(&app)
    );
    kill_9(pid_on_port(&app, warm_port));
    // The window ends: v1 is retired, and nothing of it comes back.
    Wait::up_to(Duration::from_secs(10))
        .every(Duration::from_millis(100))
        .until(|| {
            instances(&app)
                .iter()
                .all(|(id, _, _)| !id.contains("-v1-"))
        })
        .unwrap_or_else(|e| panic!("v1 not retired ({e}): {:?}", instances(&app)));
    for _ in 0..5 {
        assert_eq!(processes_of(&app, "v1"), 0, "a v1 process runs");
        tokio::time::sleep(EXIT_POLL_AND_THEN_SOME).await;
    }
    let events = env_events(&app);
    assert!(
        !events.iter().any(|(k, _)| k.starts_with("instance_")),
        "supervision acted on v1: {events:#?}"
    );
    assert_eq!(app.running_version("v2"), 2);
}

/// Longer than supervision's poll of whether instances run (250 ms).
const EXIT_POLL_AND_THEN_SOME: Duration = Duration::from_millis(300);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_that_starts_while_a_replacement_starts_stops_it_and_leaves_nothing_behind() {
    let app = TestApp::new("1s");
    // v1 takes 1.5 s to start: its replacement is still starting when the
    // deploy of v2 comes.
    app.release("v1", Release::SlowStart(Duration::from_millis(1500)));
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1"]);
    let v1 = instances(&app);
    kill_9(pid_on_port(&app, v1[0].2.expect("port")));
    Wait::up_to(Duration::from_secs(10))
        .every(Duration::from_millis(50))
        .until(|| has(&env_events(&app), "instance_restarted", &v1[0].0))
        .unwrap_or_else(|e| panic!("no replacement started ({e}):\n{}", app.daemon_log()));
    app.deploy_ok("v2");
    let events = env_events(&app);
    assert!(
        !events.iter().any(|(k, _)| k == "instance_recovered"),
        "the replacement finished after the deploy began: {events:#?}"
    );
    // After v2's window v1 is retired: no process of it, no record.
    Wait::up_to(Duration::from_secs(15))
        .every(Duration::from_millis(100))
        .until(|| {
            processes_of(&app, "v1") == 0
                && instances(&app)
                    .iter()
                    .all(|(id, _, _)| !id.contains("-v1-"))
        })
        .unwrap_or_else(|e| {
            panic!(
                "v1 left behind ({e}): {:?}, {} process(es)\n{}",
                instances(&app),
                processes_of(&app, "v1"),
                app.daemon_log()
            )
        });
    let now = instances(&app);
    assert_eq!(now.len(), 2, "{now:?}");
    assert!(
        now.iter().all(|(_, state, _)| state == "serving"),
        "{now:?}"
    );
    let (status, _, body) = raw_get(app.proxy_port, "/", None);
    assert_eq!((status, body.trim()), (200, "hello from v2"));
}
