//! Instance logs of the process driver: private (files 0640 in folders
//! 0750, older ones tightened at start), rotated by size keeping
//! `max_files`, and read through `cutover logs` from the end.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use cutover_kit::wait::Wait;

use crate::common::{Release, TestApp, fetch, ok, stdout};

/// `[logs] max_size` of these tests.
const MAX_SIZE: u64 = 64 * 1024;

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).expect("stat").permissions().mode() & 0o7777
}

/// One replica (so the proxy always reaches the same instance), logs
/// rotated at 64 KiB keeping 2 files.
fn app() -> TestApp {
    let app = TestApp::new("1m");
    app.release("v1", Release::Good);
    let config = std::fs::read_to_string(app.config()).expect("read config");
    std::fs::write(
        app.config(),
        config.replacen("replicas = 2", "replicas = 1", 1),
    )
    .expect("write config");
    app.append_config("\n[logs]\nmax_size = \"64k\"\nmax_files = 2\n");
    app
}

/// The live log file of the one instance of `web`.
fn live_log(app: &TestApp) -> PathBuf {
    let dir = app.path().join(".cutover/logs/production/web");
    let logs: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the log folder")
        .filter_map(|e| Some(e.ok()?.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .filter(|p| !p.ends_with("old-instance.log"))
        .collect();
    assert_eq!(logs.len(), 1, "{logs:?}");
    logs[0].clone()
}

fn numbered(path: &Path, n: u32) -> PathBuf {
    PathBuf::from(format!("{}.{n}", path.display()))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logs_are_private_rotated_by_size_and_tailed_through_cutover_logs() {
    let app = app();
    // What an older cutover left: world-readable files in 0755 folders.
    let web = app.path().join(".cutover/logs/production/web");
    std::fs::create_dir_all(&web).expect("mkdir");
    let old = web.join("old-instance.log");
    std::fs::write(&old, "an old instance's output\n").expect("write");
    for (path, mode) in [
        (app.path().join(".cutover/logs"), 0o755),
        (app.path().join(".cutover/logs/production"), 0o755),
        (web.clone(), 0o755),
        (old.clone(), 0o644),
    ] {
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
    }

    app.serve();
    app.deploy_ok("v1");
    let log = live_log(&app);
    Wait::up_to(Duration::from_secs(10))
        .until(|| mode(&old) == 0o640 && mode(&web) == 0o750)
        .unwrap_or_else(|e| panic!("older logs were not tightened ({e}): {:o}", mode(&old)));
    for dir in [".cutover/logs", ".cutover/logs/production"] {
        assert_eq!(mode(&app.path().join(dir)), 0o750, "{dir}");
    }
    assert_eq!(mode(&log), 0o640);

    // About 100 KB of output a request: the log outgrows 64 KiB and is
    // rotated, again and again, keeping .1 and .2 only.
    let flood = format!("{}log?lines=1000&bytes=100", app.proxy_url());
    let mut rounds = 0;
    while !numbered(&log, 2).exists() {
        rounds += 1;
        assert!(rounds <= 50, "no second rotation after {rounds} floods");
        fetch(&flood).await.expect("the instance logs");
        Wait::up_to(Duration::from_secs(5))
            .until(|| std::fs::metadata(&log).is_ok_and(|m| m.len() <= MAX_SIZE))
            .expect("the daemon rotates a log that outgrew max_size within seconds");
    }
    for _ in 0..3 {
        fetch(&flood).await.expect("the instance logs");
        Wait::up_to(Duration::from_secs(5))
            .until(|| std::fs::metadata(&log).is_ok_and(|m| m.len() <= MAX_SIZE))
            .expect("rotated");
    }
    assert!(
        !numbered(&log, 3).exists(),
        "max_files = 2 keeps .1 and .2 only"
    );
    for n in [1, 2] {
        let rotated = numbered(&log, n);
        assert_eq!(mode(&rotated), 0o640, "{}", rotated.display());
        let len = std::fs::metadata(&rotated).expect("stat").len();
        // At least max_size: the whole file, or its whole blocks (collapse).
        assert!(len >= MAX_SIZE, ".{n} holds a whole rotation: {len} bytes");
        let text = String::from_utf8_lossy(&std::fs::read(&rotated).expect("read")).into_owned();
        assert!(
            text.contains("log line "),
            ".{n} holds the instance's output"
        );
    }

    // The last lines, through the daemon: written once the log is settled
    // below max_size (so no rotation moves them away), until they stay.
    // Shorter than the flood's lines, so they cannot be mistaken for them.
    let line = |i: u32| format!("log line {i:08} {}", "x".repeat(10));
    let last: String = (0..7).map(|i| line(i) + "\n").collect();
    let mut tries = 0;
    loop {
        tries += 1;
        assert!(tries <= 5, "the last lines kept being rotated away");
        fetch(&format!("{}log?lines=7&bytes=30", app.proxy_url()))
            .await
            .expect("the instance logs");
        Wait::up_to(Duration::from_secs(5))
            .until(|| std::fs::metadata(&log).is_ok_and(|m| m.len() <= MAX_SIZE))
            .expect("settled");
        let text = std::fs::read(&log).expect("read");
        if text.ends_with(last.as_bytes()) {
            break;
        }
    }
    let out = app.cli(&["logs", "web", "--tail", "5"]);
    ok(&app, &out);
    let lines: Vec<String> = stdout(&out).lines().map(str::to_owned).collect();
    assert_eq!(lines.len(), 5, "{lines:#?}");
    for (got, i) in lines.iter().zip(2..) {
        assert_eq!(got, &line(i));
    }
    // Without --tail: the whole live file, streamed.
    let out = app.cli(&["logs", "web"]);
    ok(&app, &out);
    let whole = std::fs::read(&log).expect("read");
    assert_eq!(out.stdout, whole);
}
