//! Restarting, upgrading and reloading the daemon itself: SIGTERM leaves the
//! instances running and the next daemon adopts them; `cutover upgrade` and
//! `cutover reload` hand over without a failed request (and an upgrade to a
//! binary that cannot start leaves the old daemon serving); a canary
//! continues across an upgrade; one daemon per store; stray signals are
//! ignored; `cutover down` stops everything.

use std::path::Path;
use std::time::Duration;

use crate::common::{Release, TestApp, count, fetch, ok, stderr, stdout, wait_until};

fn pids(app: &TestApp) -> Vec<i32> {
    let mut pids: Vec<i32> = app.instance_pids().into_iter().map(|(p, _)| p).collect();
    pids.sort();
    pids
}

fn upgrade(app: &TestApp) -> serde_json::Value {
    let out = app.cli(&["upgrade", "--json"]);
    ok(app, &out);
    serde_json::from_slice(&out.stdout).expect("upgrade json")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_the_instances_running_and_the_next_daemon_adopts_them() {
    let app = TestApp::deployed("10m", &["v1"]);
    let before = pids(&app);
    assert_eq!(before.len(), 2, "two instances of v1");
    app.stop_daemon();
    assert_eq!(pids(&app), before, "SIGTERM stopped instances");
    assert!(
        app.daemon_log()
            .contains("instances keep running for the next daemon"),
        "{}",
        app.daemon_log()
    );
    app.serve();
    let load = app.load(4);
    crate::common::more_requests(&load, 50).await;
    let report = load.stop().await.expect("stop the load");
    assert_eq!(
        report.failed(),
        0,
        "requests failed once the new daemon was up"
    );
    assert_eq!(
        pids(&app),
        before,
        "the same instances serve (adopted, not restarted)"
    );
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_daemon_on_the_same_store_is_refused() {
    let app = TestApp::deployed("10m", &["v1"]);
    let holder = app.lock_holder().expect("the lock names its holder");
    let out = app.cli(&["serve"]);
    assert_eq!(out.status.code(), Some(8), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains(&format!("pid {holder}")) && err.contains("started"),
        "{err}"
    );
    // The first one is untouched.
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upgrades_under_load_fail_no_request() {
    let app = TestApp::deployed("10m", &["v1"]);
    let instances = pids(&app);
    let load = app.load(8);
    crate::common::more_requests(&load, 20).await;
    let mut daemons = vec![app.lock_holder().expect("holder")];
    for _ in 0..3 {
        let answer = upgrade(&app);
        let pid = answer["pid"].as_i64().expect("pid") as i32;
        assert_eq!(answer["outcome"], "upgraded");
        assert!(!daemons.contains(&pid), "a new daemon each time");
        assert_eq!(
            app.lock_holder(),
            Some(pid),
            "the new daemon holds the lock"
        );
        let old = *daemons.last().expect("old");
        wait_until(Duration::from_secs(15), "the old daemon exited", || {
            !TestApp::alive(old)
        });
        daemons.push(pid);
        crate::common::more_requests(&load, 20).await;
    }
    let report = load.stop().await.expect("stop the load");
    assert_eq!(report.failed(), 0, "requests failed during upgrades");
    assert!(report.total() > 100, "load ran: {}", report.total());
    assert_eq!(pids(&app), instances, "instances survive upgrades");
    // The new daemon answers the API and knows the release.
    let status = app.cli(&["status", "--json"]);
    ok(&app, &status);
    assert!(stdout(&status).contains("v1"), "{}", stdout(&status));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_to_a_binary_that_cannot_start_leaves_the_old_daemon_serving() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    // The daemon runs from a copy, which is then replaced by a broken one.
    let bin = app.path().join("cutover-bin");
    std::fs::copy(env!("CARGO_BIN_EXE_cutover"), &bin).expect("copy binary");
    app.serve_binary(&bin, &["serve"], &[]);
    app.deploy_ok("v1");
    let old = app.lock_holder().expect("holder");
    std::fs::remove_file(&bin).expect("remove");
    std::fs::write(&bin, "#!/bin/sh\necho 'this build is broken' >&2\nexit 3\n").expect("write");
    std::fs::set_permissions(&bin, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod");
    let load = app.load(4);
    let out = app.cli(&["upgrade"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("exited before it was ready"),
        "{}",
        stderr(&out)
    );
    crate::common::more_requests(&load, 20).await;
    let report = load.stop().await.expect("stop the load");
    assert_eq!(report.failed(), 0);
    assert!(TestApp::alive(old));
    assert_eq!(app.lock_holder(), Some(old));
    // The old daemon still takes commands.
    app.release("v2", Release::Good);
    app.deploy_ok("v2");
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canary_in_progress_continues_across_an_upgrade() {
    let app = TestApp::new("10m");
    app.append_config(
        r#"
[service.web.rollout]
strategy = "canary"
steps = [20, 100]
step_duration = "60s"
check_interval = "250ms"
analysis = { max_error_rate = 0.02, min_requests = 1 }
"#,
    );
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1"]);
    let load = app.load(4);
    let deploy = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "step");
    upgrade(&app);
    // Still at 20 %: the new daemon resumed the rollout, not rolled it back.
    let status = app.cli(&["status", "--json"]);
    ok(&app, &status);
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status");
    let web = &json["environments"][0]["traffic"][0];
    assert_eq!(web["canary_percent"], 20.0, "{web}");
    ok(&app, &app.cli(&["promote", "--full"]));
    app.wait_for_state("succeeded");
    // The CLI that followed the deployment from the old daemon saw it end.
    ok(&app, &deploy.join().expect("join the deploy"));
    let report = load.stop().await.expect("stop the load");
    assert_eq!(report.failed(), 0, "requests failed across the upgrade");
    let events = app.last_events();
    assert!(
        events
            .iter()
            .any(|(k, m)| k == "restarted" && m.contains("took over")),
        "{events:#?}"
    );
    assert_eq!(count(&events, "rollback"), 0, "{events:#?}");
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_checks_the_config_first_and_lists_what_waits_for_a_deploy() {
    let app = TestApp::deployed("10m", &["v1"]);
    let old = app.lock_holder().expect("holder");
    let good = std::fs::read_to_string(app.config()).expect("config");
    // Invalid: exit 2 with the located error, nothing changed.
    std::fs::write(
        app.config(),
        good.replace("replicas = 2", "replicas = \"two\""),
    )
    .expect("write");
    let out = app.cli(&["reload"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("cutover.toml:"), "{}", stderr(&out));
    assert_eq!(app.lock_holder(), Some(old));
    // A changed command waits for the next deploy.
    std::fs::write(
        app.config(),
        good.replace("\"--version\"", "\"--greeting\", \"hi\", \"--version\""),
    )
    .expect("write");
    let out = app.cli(&["reload", "--json"]);
    ok(&app, &out);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    assert_eq!(answer["outcome"], "reloaded");
    assert_ne!(answer["pid"].as_i64(), Some(old as i64));
    let pending = answer["pending"].to_string();
    assert!(
        pending.contains("service web: command changed"),
        "{pending}"
    );
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stray_signals_are_ignored_and_sighup_reloads() {
    let app = TestApp::deployed("10m", &["v1"]);
    let old = app.lock_holder().expect("holder");
    for signal in [
        nix::sys::signal::Signal::SIGUSR1,
        nix::sys::signal::Signal::SIGQUIT,
        nix::sys::signal::Signal::SIGALRM,
    ] {
        nix::sys::signal::kill(nix::unistd::Pid::from_raw(old), signal).expect("signal");
    }
    wait_until(Duration::from_secs(5), "the signals were logged", || {
        app.daemon_log().matches("received and ignored").count() >= 3
    });
    assert!(TestApp::alive(old));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    wait_until(Duration::from_secs(30), "a new daemon took over", || {
        app.lock_holder().is_some_and(|p| p != old) && !TestApp::alive(old)
    });
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn down_stops_the_instances_and_the_daemon() {
    let app = TestApp::deployed("10m", &["v1"]);
    let daemon = app.lock_holder().expect("holder");
    let out = app.cli(&["down"]);
    ok(&app, &out);
    assert!(!TestApp::alive(daemon), "the daemon exited");
    assert_eq!(pids(&app), Vec::<i32>::new(), "instances stopped");
    // The next start brings the serving release back.
    app.serve();
    wait_until(Duration::from_secs(20), "v1 serves again", || {
        app.running_version("v1") == 2
    });
    assert!(Path::new(&app.path().join(".cutover/state.db.lock")).exists());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_follower_waits_for_a_restarted_daemon() {
    let app = TestApp::new("10m");
    app.append_config(
        r#"
[service.web.rollout]
strategy = "canary"
steps = [20, 100]
step_duration = "60s"
"#,
    );
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1"]);
    let deploy = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "step");
    // SIGTERM mid-canary; the next daemon rolls it back (on_daemon_restart's
    // default), and the CLI that was following says so instead of giving up.
    app.stop_daemon();
    std::thread::sleep(Duration::from_millis(500));
    app.serve();
    let out = deploy.join().expect("join the deploy");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}
