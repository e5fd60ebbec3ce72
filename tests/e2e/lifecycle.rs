//! The life of a release around its rollout: no instance outlives the
//! deployment that started it (abort, crash, store failure, a drain that
//! cannot end), a full state store holds a deployment instead of acting on
//! state it could not save, and a saved state that no longer fits the config
//! waits for an operator. Every test lists the processes afterwards.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use crate::common::{Release, TestApp, Tmpfs, fetch, ok, stdout, wait_until};

fn has_event(app: &TestApp, kind: &str) -> bool {
    app.last_events().iter().any(|(k, _)| k == kind)
}

fn status(app: &TestApp) -> serde_json::Value {
    let out = app.cli(&["status", "--json"]);
    ok(app, &out);
    serde_json::from_slice(&out.stdout).expect("status json")
}

/// v1 serving, and a deploy of v2 (which never becomes healthy) under way
/// with its two instances started.
fn v2_starting(app: &TestApp) -> std::thread::JoinHandle<std::process::Output> {
    app.release("v1", Release::Good);
    app.release("v2", Release::FailsHealth);
    app.serve();
    ok(app, &app.cli(&["deploy", "v1"]));
    let deploy = app.cli_background(&["deploy", "v2"]);
    wait_until(Duration::from_secs(20), "v2's instances started", || {
        app.running_version("v2") == 2
    });
    deploy
}

/// `cutover down` leaves no instance running.
fn assert_clean_stop(app: &TestApp) {
    ok(app, &app.cli(&["down"]));
    app.stop_daemon();
    assert_eq!(app.instance_pids(), Vec::new(), "left after a clean stop");
}

/// An app whose state store lives on a small tmpfs.
fn app_with_state_on_tmpfs(window: &str) -> (TestApp, Tmpfs) {
    let app = TestApp::new(window);
    let tmpfs = Tmpfs::mount(app.path().join("state"), "16m");
    app.append_config(&format!(
        "\n[state]\nurl = \"sqlite://{}\"\n",
        state_db(app.path()).display()
    ));
    (app, tmpfs)
}

fn state_db(dir: &Path) -> PathBuf {
    dir.join("state").join("state.db")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_full_state_store_holds_the_canary_and_it_finishes_once_space_is_freed() {
    let (app, tmpfs) = app_with_state_on_tmpfs("1s");
    app.append_config(
        r#"
[service.web.rollout]
strategy = "canary"
steps = [50, 100]
step_duration = "2s"
check_interval = "250ms"
analysis = { max_error_rate = 0.05, min_requests = 5 }
"#,
    );
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve();
    ok(&app, &app.cli(&["deploy", "v1"]));
    let v1_pids: Vec<i32> = app.instance_pids().into_iter().map(|(p, _)| p).collect();
    assert_eq!(v1_pids.len(), 2);

    let load = app.load(4);
    let deploy = app.cli_background(&["deploy", "v2"]);
    wait_until(Duration::from_secs(20), "the canary's first step", || {
        app.last_events().iter().any(|(k, _)| k == "step")
    });
    let filler = tmpfs.fill();
    // The step ends, its analysis passes, and the next step cannot be saved.
    wait_until(
        Duration::from_secs(20),
        "status says the deployment holds",
        || {
            status(&app)["environments"][0]["held"]
                .as_str()
                .is_some_and(|h| h.starts_with("held: cannot write the state store:"))
        },
    );
    let human = stdout(&app.cli(&["status"]));
    assert!(
        human.contains("held: cannot write the state store"),
        "{human}"
    );
    // Holding: nothing that depends on the unsaved step runs.
    std::thread::sleep(Duration::from_secs(3));
    let mut still: Vec<i32> = app
        .instance_pids()
        .into_iter()
        .filter(|(_, cmd)| cmd.contains("--version v1"))
        .map(|(p, _)| p)
        .collect();
    still.sort();
    let mut before = v1_pids.clone();
    before.sort();
    assert_eq!(still, before, "v1 was touched while the store was full");
    assert!(
        !deploy.is_finished(),
        "the deploy ended while the store was full"
    );

    std::fs::remove_file(&filler).expect("free space");
    let out = deploy.join().expect("deploy thread");
    ok(&app, &out);
    let report = load.stop().await.expect("stop the load");
    assert_eq!(
        report.failed(),
        0,
        "requests failed while the store was full"
    );
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
    // Nothing was lost: the history has the steps, the hold and the end.
    let kinds: Vec<String> = app.last_events().into_iter().map(|(k, _)| k).collect();
    for kind in ["step", "analysis", "held", "store_writable", "finished"] {
        assert!(
            kinds.iter().any(|k| k == kind),
            "no {kind} in {kinds:?}\n{}",
            app.daemon_log()
        );
    }
    // The window (1s) ends and v1 is retired; only v2 runs.
    wait_until(Duration::from_secs(20), "v1 is retired", || {
        app.running_version("v1") == 0
    });
    assert_eq!(app.running_version("v2"), 2);
    assert_eq!(app.instance_pids().len(), 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_failure_mid_deploy_leaves_no_instance_behind() {
    let (app, tmpfs) = app_with_state_on_tmpfs("10m");
    let deploy = v2_starting(&app);
    let filler = tmpfs.fill();
    // v2 never becomes healthy (start_timeout 5s); the rollback cannot be saved.
    wait_until(Duration::from_secs(30), "the deployment holds", || {
        status(&app)["environments"][0]["held"].is_string()
    });
    assert_eq!(app.running_version("v1"), 2, "v1 stopped during the hold");
    std::fs::remove_file(&filler).expect("free space");
    let out = deploy.join().expect("deploy thread");
    assert_eq!(out.status.code(), Some(3), "{}", stdout(&out));
    wait_until(Duration::from_secs(20), "no v2 process is left", || {
        app.running_version("v2") == 0
    });
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    assert_clean_stop(&app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn abort_while_a_blue_green_deploy_waits_for_health_stops_the_new_instances() {
    let app = TestApp::new("10m");
    let deploy = v2_starting(&app);
    let aborted_at = Instant::now();
    ok(&app, &app.cli(&["abort", "--reason", "changed my mind"]));
    let out = deploy.join().expect("deploy thread");
    assert_ne!(out.status.code(), Some(0));
    // Stopped by the abort, well before their start_timeout (5s) would have.
    wait_until(Duration::from_secs(4), "no v2 process is left", || {
        app.running_version("v2") == 0
    });
    assert!(aborted_at.elapsed() < Duration::from_secs(5));
    let instances = status(&app)["environments"][0]["instances"].clone();
    assert!(
        instances
            .as_array()
            .is_some_and(|l| l.iter().all(|i| i["version"] == "v1")),
        "{instances:#}"
    );
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    assert_clean_stop(&app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_after_a_crash_mid_deploy_starts_nothing_of_the_failed_version() {
    let app = TestApp::new("10m");
    let _deploy = v2_starting(&app);
    app.kill_daemon();
    app.serve();
    // The restored deployment rolls back (on_daemon_restart = "rollback"):
    // the instances the dead daemon started are stopped, none is started.
    // Each is drained and stopped in turn: 60 s leaves room for a loaded
    // machine (full CI runs once took over 10 s, once over 30 s, here).
    wait_until(Duration::from_secs(60), "no v2 process is left", || {
        app.running_version("v2") == 0
    });
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(app.running_version("v2"), 0, "v2 was started again");
    assert_eq!(app.running_version("v1"), 2);
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    assert_clean_stop(&app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_drain_timeout_at_its_maximum_still_retires_the_old_release() {
    // Longer is refused by `check` (tests/e2e/hostile_config.rs); the longest
    // accepted must not keep an idle old release from being retired.
    let app = TestApp::new("1s");
    let config = std::fs::read_to_string(app.config()).expect("config");
    std::fs::write(
        app.config(),
        config
            .replace(
                "drain_timeout = \"5s\"",
                "drain_timeout = \"30d\"\nstop_timeout = \"30d\"",
            )
            .replace("stop_timeout = \"3s\"\n", ""),
    )
    .expect("config");
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve();
    ok(&app, &app.cli(&["deploy", "v1"]));
    ok(&app, &app.cli(&["deploy", "v2"]));
    wait_until(Duration::from_secs(15), "v1 is retired", || {
        app.running_version("v1") == 0
    });
    assert_eq!(app.running_version("v2"), 2);
    assert_clean_stop(&app);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_saved_rollout_that_no_longer_fits_the_config_waits_for_an_operator() {
    let app = TestApp::new("10m");
    app.append_config(
        r#"
[service.web.rollout]
strategy = "canary"
steps = [20, 100]
step_duration = "30s"
check_interval = "250ms"
analysis = { max_error_rate = 0.5, min_requests = 1 }
"#,
    );
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.release("v3", Release::Good);
    app.serve();
    ok(&app, &app.cli(&["deploy", "v1"]));
    let _deploy = app.cli_background(&["deploy", "v2"]);
    wait_until(Duration::from_secs(20), "the canary's first step", || {
        has_event(&app, "step")
    });
    app.kill_daemon();
    let config = std::fs::read_to_string(app.config()).expect("config");
    std::fs::write(
        app.config(),
        config.replace("steps = [20, 100]", "steps = [10, 50, 100]"),
    )
    .expect("config");
    app.serve();

    // The daemon starts, serves what it served, and says what differs.
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    let needs = status(&app)["environments"][0]["needs_operator"].clone();
    let needs = needs.as_str().unwrap_or_default().to_owned();
    assert!(
        needs.contains("[20, 100]") && needs.contains("[10, 50, 100]"),
        "{needs}"
    );
    let refused = app.cli(&["deploy", "v3"]);
    assert_eq!(refused.status.code(), Some(2), "{}", stdout(&refused));

    // `cutover abort` ends it: v2's instances go, the lock is free.
    ok(&app, &app.cli(&["abort", "--reason", "steps changed"]));
    wait_until(Duration::from_secs(10), "no v2 process is left", || {
        app.running_version("v2") == 0
    });
    assert!(status(&app)["environments"][0]["needs_operator"].is_null());
    assert!(status(&app)["environments"][0]["lock"].is_null());
    let again = app.cli_background(&["deploy", "v3", "--service", "web"]);
    wait_until(
        Duration::from_secs(30),
        "the v3 canary's first step",
        || {
            app.last_events()
                .iter()
                .any(|(k, m)| k == "step" && m.contains("v3"))
        },
    );
    ok(&app, &app.cli(&["promote", "--full"]));
    ok(&app, &again.join().expect("deploy thread"));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v3")
    );
}
