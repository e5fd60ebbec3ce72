//! cutover under systemd: the units `cutover systemd` prints (checked by
//! `systemd-analyze verify`), `cutover serve` taking every listener from
//! socket activation (Debian's `systemd-socket-activate`, fed the names and
//! addresses of those units), and a daemon restarted under load while a
//! holder keeps the sockets, as systemd's socket units do: no failed request,
//! the same instances, `READY=1` with the new daemon's pid; and what an
//! upgrade tells systemd (`RELOADING=1`, then the new `MAINPID=`).

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use cutover_kit::activation::{NotifySocket, Sockets};
use cutover_kit::http;
use cutover_kit::load::Load;
use cutover_kit::ports;
use cutover_kit::wait::Wait;

use crate::common::{Release, TestApp, fetch, more_requests, ok, stderr, stdout};

/// The test app with `/metrics` on a port of its own too.
fn app_with_metrics() -> (TestApp, u16) {
    let app = TestApp::new("10m");
    let metrics_port = ports::free_port().expect("a free port");
    let config = std::fs::read_to_string(app.config()).expect("read config");
    let config = config.replacen(
        "[server]\n",
        &format!("[server]\nmetrics_listen = \"127.0.0.1:{metrics_port}\"\n"),
        1,
    );
    std::fs::write(app.config(), config).expect("write config");
    app.release("v1", Release::Good);
    (app, metrics_port)
}

/// `cutover systemd --json`: (file name, contents) of each unit.
fn units(app: &TestApp) -> Vec<(String, String)> {
    let out = app.cli(&["systemd", "--json", "--bin", env!("CARGO_BIN_EXE_cutover")]);
    ok(app, &out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    json["files"]
        .as_array()
        .expect("files")
        .iter()
        .map(|f| {
            (
                f["name"].as_str().expect("name").to_owned(),
                f["contents"].as_str().expect("contents").to_owned(),
            )
        })
        .collect()
}

/// (FileDescriptorName, ListenStream) of each socket unit, in order.
fn named_addresses(units: &[(String, String)]) -> Vec<(String, String)> {
    units
        .iter()
        .filter(|(name, _)| name.ends_with(".socket"))
        .map(|(name, text)| {
            let value = |key: &str| {
                let found: Vec<&str> = text.lines().filter_map(|l| l.strip_prefix(key)).collect();
                assert_eq!(found.len(), 1, "{key} once in {name}:\n{text}");
                found[0].to_owned()
            };
            (value("FileDescriptorName="), value("ListenStream="))
        })
        .collect()
}

/// Waits until the API answers `/healthz` over HTTP (a held socket accepts
/// connections before any daemon serves them, so a connect proves nothing).
async fn wait_api_serves(app: &TestApp) {
    let client = http::client();
    let uri = http::uri(&format!("http://127.0.0.1:{}/healthz", app.api_port)).expect("uri");
    let client = &client;
    let uri = &uri;
    Wait::up_to(Duration::from_secs(30))
        .every(Duration::from_millis(20))
        .until_async(|| async move {
            http::get_within(client, uri.clone(), Duration::from_secs(2))
                .await
                .is_ok_and(|r| r.is_success())
        })
        .await
        .unwrap_or_else(|e| panic!("the API did not serve ({e}):\n{}", app.daemon_log()));
}

#[test]
fn the_units_pass_systemd_analyze_verify() {
    let (app, metrics_port) = app_with_metrics();
    let dir = app.path().join("units");
    std::fs::create_dir(&dir).expect("units dir");
    let out = app.cli(&[
        "systemd",
        "--out",
        dir.to_str().expect("utf-8"),
        "--bin",
        env!("CARGO_BIN_EXE_cutover"),
    ]);
    ok(&app, &out);
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .expect("read units")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(
        files,
        [
            "cutover-api.socket",
            "cutover-env-production.socket",
            "cutover-metrics.socket",
            "cutover.service",
        ]
    );
    let verify = Command::new("systemd-analyze")
        .args(["verify", "--man=no"])
        .args(&files)
        .current_dir(&dir)
        .output()
        .expect("run systemd-analyze (apt-get install systemd)");
    assert!(
        verify.status.success() && verify.stderr.is_empty(),
        "systemd-analyze verify: {:?}\n{}{}",
        verify.status,
        stdout(&verify),
        stderr(&verify)
    );
    let metrics = std::fs::read_to_string(dir.join("cutover-metrics.socket")).expect("read");
    assert!(metrics.contains(&format!("ListenStream=127.0.0.1:{metrics_port}\n")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_takes_every_listener_from_socket_activation() {
    let (app, metrics_port) = app_with_metrics();
    let named = named_addresses(&units(&app));
    let names: Vec<&str> = named.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(names, ["api", "metrics", "env-production"]);

    // systemd-socket-activate binds every address and execs the daemon with
    // them as descriptors 3, 4, 5 (on the first connection). Since it keeps
    // them bound, a daemon that bound them itself would fail: serving proves
    // it took them.
    let mut command = Command::new("systemd-socket-activate");
    for (_, addr) in &named {
        command.args(["-l", addr]);
    }
    command
        .arg(format!("--fdname={}", names.join(":")))
        .args(["-E", "NO_COLOR=1", "-E", "CUTOVER_LOG=info"])
        .arg(env!("CARGO_BIN_EXE_cutover"))
        .arg("-c")
        .arg(app.config())
        .arg("serve");
    app.serve_command(command);
    wait_api_serves(&app).await;

    ok(&app, &app.cli_async(&["deploy", "v1"]).await);
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    let metrics = fetch(&format!("http://127.0.0.1:{metrics_port}/metrics")).await;
    assert!(
        metrics.is_some(),
        "metrics answered through its inherited socket"
    );
    let status = app.cli_async(&["status", "--json"]).await;
    ok(&app, &status);
}

/// The sockets of `app` (the API and its environment), held by this test.
fn hold_sockets(app: &TestApp) -> Sockets {
    let mut sockets = Sockets::new();
    for (name, port) in [("api", app.api_port), ("env-production", app.proxy_port)] {
        let addr = format!("127.0.0.1:{port}").parse().expect("addr");
        // cutover's own backlog (4096), as the socket units set it.
        let listener = cutover_proxy::bind_listener(addr)
            .and_then(|l| l.into_std())
            .unwrap_or_else(|e| panic!("cannot listen on {addr}: {e}"));
        sockets.hold(name, listener).expect("hold");
    }
    sockets
}

/// `cutover serve` with the held sockets and `notify` as its NOTIFY_SOCKET.
fn serve_activated(app: &TestApp, sockets: &Sockets, notify: &Path) {
    let mut command = sockets.command(env!("CARGO_BIN_EXE_cutover"));
    command
        .arg("-c")
        .arg(app.config())
        .arg("serve")
        .env("NO_COLOR", "1")
        .env("NOTIFY_SOCKET", notify);
    app.serve_command(command);
}

fn sorted_pids(app: &TestApp) -> Vec<i32> {
    let mut pids: Vec<i32> = app.instance_pids().into_iter().map(|(p, _)| p).collect();
    pids.sort();
    pids
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restart_under_socket_activation_fails_no_request() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    let sockets = hold_sockets(&app);
    let notify = NotifySocket::bind(app.path()).expect("notify socket");

    serve_activated(&app, &sockets, notify.path());
    let (ready, _) = notify
        .wait_for("READY", "1", Duration::from_secs(30))
        .unwrap_or_else(|seen| panic!("no READY=1 (got {seen:?}):\n{}", app.daemon_log()));
    wait_api_serves(&app).await;
    ok(&app, &app.cli_async(&["deploy", "v1"]).await);
    let instances = sorted_pids(&app);
    assert_eq!(instances.len(), 2);

    let load: Load = Load::builder(&app.proxy_url())
        .clients(8)
        .timeout(Duration::from_secs(30))
        .start()
        .expect("start load");
    more_requests(&load, 20).await;

    // SIGTERM: the daemon stops accepting, drains and exits; the instances
    // stay. Until the next daemon accepts, connections wait in the queue
    // of the sockets this test holds.
    let stopped_at = Instant::now();
    tokio::task::block_in_place(|| app.stop_daemon());
    let exited_at = Instant::now();
    let stopping = std::iter::from_fn(|| notify.next(Duration::from_millis(1)))
        .any(|n| n.get("STOPPING") == Some("1"));
    assert!(stopping, "STOPPING=1 before exit:\n{}", app.daemon_log());
    assert_eq!(
        sorted_pids(&app),
        instances,
        "SIGTERM left the instances running"
    );
    let previous_pid = ready.get("MAINPID").map(str::to_owned);

    tokio::task::block_in_place(|| serve_activated(&app, &sockets, notify.path()));
    let (ready, _) = notify
        .wait_for("READY", "1", Duration::from_secs(30))
        .unwrap_or_else(|seen| {
            panic!(
                "no READY=1 after the restart ({seen:?}):\n{}",
                app.daemon_log()
            )
        });
    let gap = ready.at.duration_since(stopped_at);
    assert_ne!(ready.get("MAINPID").map(str::to_owned), previous_pid);
    more_requests(&load, 50).await;
    let report = load.stop().await.expect("stop load");

    let tally = report.tally();
    eprintln!(
        "restart under socket activation: {} requests, {} failed, {} answered by the next daemon after waiting; SIGTERM → READY=1 of the new daemon {gap:?}",
        report.total(),
        report.failed(),
        report
            .answers()
            .filter(|a| a.sent < ready.at && a.received > exited_at)
            .count()
    );
    assert_eq!(
        report.failed(),
        0,
        "{} of {} requests failed across the restart (no daemon for {gap:?}): {tally:?}\n{}",
        report.failed(),
        report.total(),
        app.daemon_log()
    );
    assert_eq!(tally.ok("v1") as usize, report.total());
    // Requests really waited for the next daemon: sent before it served,
    // answered after the old one was gone.
    let waited = report
        .answers()
        .filter(|a| a.sent < ready.at && a.received > exited_at)
        .count();
    assert!(waited > 0, "no request was in flight while no daemon ran");
    assert_eq!(
        sorted_pids(&app),
        instances,
        "the new daemon adopted the same instances"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgrade_tells_systemd_reloading_then_the_new_main_pid() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    let sockets = hold_sockets(&app);
    let notify = NotifySocket::bind(app.path()).expect("notify socket");
    serve_activated(&app, &sockets, notify.path());
    let (first, _) = notify
        .wait_for("READY", "1", Duration::from_secs(30))
        .unwrap_or_else(|seen| panic!("no READY=1 (got {seen:?}):\n{}", app.daemon_log()));
    wait_api_serves(&app).await;
    ok(&app, &app.cli_async(&["deploy", "v1"]).await);

    let out = app.cli_async(&["upgrade", "--json"]).await;
    ok(&app, &out);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let new_pid = answer["pid"]
        .as_u64()
        .expect("the new daemon's pid")
        .to_string();
    assert_ne!(first.get("MAINPID"), Some(new_pid.as_str()));
    // The old daemon says RELOADING=1; the new one (its child, hence
    // NotifyAccess=all) READY=1 with its own pid as MAINPID=; the old one
    // then exits without STOPPING=1 (the service is not stopping).
    let (ready, before) = notify
        .wait_for("READY", "1", Duration::from_secs(30))
        .unwrap_or_else(|seen| panic!("no READY=1 after the upgrade ({seen:?})"));
    assert!(
        before.iter().any(|n| n.get("RELOADING") == Some("1")),
        "RELOADING=1 before the new READY=1: {before:?}"
    );
    assert_eq!(ready.get("MAINPID"), Some(new_pid.as_str()));
    let old_pid = first.get("MAINPID").expect("MAINPID").to_owned();
    Wait::up_to(Duration::from_secs(30))
        .until(|| {
            // Gone, or a zombie this test has not reaped (TestApp holds it).
            std::fs::read_to_string(format!("/proc/{old_pid}/stat"))
                .map(|stat| {
                    stat.rsplit(") ")
                        .next()
                        .is_some_and(|rest| rest.starts_with('Z'))
                })
                .unwrap_or(true)
        })
        .expect("the old daemon exits after handing over");
    let after: Vec<_> = std::iter::from_fn(|| notify.next(Duration::from_millis(1))).collect();
    assert!(
        after.iter().all(|n| n.get("STOPPING").is_none()),
        "the old daemon said STOPPING=1 after handing over: {after:?}"
    );
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    ok(&app, &app.cli_async(&["down"]).await);
}
