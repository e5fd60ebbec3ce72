//! End-to-end tests of the process driver and health checks: real processes
//! (the workspace's `hello` example app and small shell scripts) and real HTTP
//! over loopback. Every test is bounded by a timeout, and every process a test
//! starts is SIGKILLed with its whole group when the test ends, pass or fail.

use std::future::Future;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::{Duration, Instant};

use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::health::{
    self, GroupMonitor, HealthCheck, HealthFailure, Monitor, MonitorState, ProbeError,
};
use super::{
    DriverError, Drivers, Handle, InstanceHandle, InstanceSpec, PreflightFindings, ProcessDriver,
    ServiceToCheck, SpawnProblem, StopOutcome, logs, procfs,
};

/// Upper bound for any one test: a guard against a hang, not a speed check
/// (on a loaded 2-core machine a test of a few seconds took over 30).
const BOUND: Duration = Duration::from_secs(90);

fn workspace() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// Profile the `hello` example is built with for these tests. Release, because
/// a debug build of `hello` panics at start-up: clap's debug assertions reject
/// its `--version` option, which collides with the flag `#[command(version)]`
/// generates. Once that is fixed in examples/hello, "debug" works here too.
const HELLO_PROFILE: &str = "debug";

/// The `hello` example binary, built once per test run so that the tests also
/// work on a fresh checkout.
fn hello_bin() -> &'static Path {
    static HELLO: OnceLock<PathBuf> = OnceLock::new();
    HELLO.get_or_init(|| {
        let mut cargo = std::process::Command::new(env!("CARGO"));
        cargo
            .args(["build", "--quiet", "-p", "hello", "--manifest-path"])
            .arg(workspace().join("Cargo.toml"));
        if HELLO_PROFILE == "release" {
            cargo.arg("--release");
        }
        let status = cargo
            .status()
            .expect("cargo can be run to build the hello example");
        assert!(status.success(), "`cargo build -p hello` failed: {status}");
        let target = match std::env::var_os("CARGO_TARGET_DIR") {
            Some(dir) => workspace().join(dir),
            None => workspace().join("target"),
        };
        let bin = target.join(HELLO_PROFILE).join("hello");
        assert!(
            bin.is_file(),
            "hello was built but {} is missing",
            bin.display()
        );
        bin
    })
}

/// Runs a test body with a time limit.
async fn bounded<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(BOUND, body)
        .await
        .expect("the test finished within its time limit")
}

/// Polls `cond` every 20 ms until it holds; panics after 10 s.
async fn eventually(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A temporary app directory, a driver, and a guard that kills the process
/// group of every instance started through it when dropped.
struct Fixture {
    dir: tempfile::TempDir,
    driver: ProcessDriver,
    started: Mutex<Vec<InstanceHandle>>,
}

impl Fixture {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("a temp dir");
        std::fs::create_dir(dir.path().join("app")).expect("create the app dir");
        Self {
            dir,
            driver: ProcessDriver::new(),
            started: Mutex::new(Vec::new()),
        }
    }

    fn workdir(&self) -> PathBuf {
        self.dir.path().join("app")
    }

    fn log_dir(&self) -> PathBuf {
        self.dir.path().join(".cutover").join("logs")
    }

    fn spec(&self, instance_id: &str, command: &[&str]) -> InstanceSpec {
        InstanceSpec {
            app: "shop".to_owned(),
            environment: "staging".to_owned(),
            service: "web".to_owned(),
            version: "1.2.3".to_owned(),
            instance_id: instance_id.to_owned(),
            command: command.iter().map(|s| (*s).to_owned()).collect(),
            env: Default::default(),
            inherit_env: false,
            logs: Default::default(),
            workdir: self.workdir(),
            log_dir: self.log_dir(),

            replica: 0,
            health: Default::default(),
            stop_timeout: Duration::from_secs(10),
            kind: crate::config::ServiceKind::Http,
        }
    }

    fn hello_spec(&self, instance_id: &str, extra: &[&str]) -> InstanceSpec {
        let hello = hello_bin().to_str().expect("a UTF-8 target path");
        let mut command = vec![hello, "--port", "{port}", "--version", "{version}"];
        command.extend_from_slice(extra);
        self.spec(instance_id, &command)
    }

    /// Starts an instance and registers it for the kill-on-drop guard.
    async fn start(&self, spec: &InstanceSpec) -> InstanceHandle {
        self.start_with(&self.driver, spec).await
    }

    async fn start_with(&self, driver: &ProcessDriver, spec: &InstanceSpec) -> InstanceHandle {
        let handle = driver.start(spec).await.expect("the instance starts");
        self.started
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(handle.clone());
        handle
    }

    /// Writes an executable shell script into the app directory.
    fn script(&self, rel: &str, body: &str) -> PathBuf {
        let path = self.workdir().join(rel);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir).expect("create the script's dir");
        }
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).expect("write the script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .expect("make the script executable");
        path
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let started = self.started.lock().unwrap_or_else(PoisonError::into_inner);
        for h in started.iter() {
            if procfs::group_is_ours(h.pgid, h.start_time_ticks)
                && !procfs::group_members(h.pgid).is_empty()
            {
                let _ = killpg(Pid::from_raw(h.pgid), Signal::SIGKILL);
            }
        }
    }
}

fn quick_check() -> HealthCheck {
    HealthCheck {
        path: "/health".to_owned(),
        interval: Duration::from_millis(50),
        timeout: Duration::from_secs(1),
        healthy: 2,
        unhealthy: 2,
        start_timeout: Duration::from_secs(10),
    }
}

/// A minimal HTTP/1.1 GET; returns status and body.
async fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let exchange = async {
        let mut stream = tokio::net::TcpStream::connect(addr).await?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).await?;
        std::io::Result::Ok(raw)
    };
    let raw = tokio::time::timeout(Duration::from_secs(5), exchange)
        .await
        .expect("the GET is answered within 5 s")
        .expect("the GET succeeds");
    let text = String::from_utf8(raw).expect("a UTF-8 answer");
    let (head, body) = text.split_once("\r\n\r\n").expect("a complete HTTP answer");
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("a status line");
    (status, body.to_owned())
}

/// A loopback port with nothing listening on it.
fn closed_port() -> SocketAddr {
    let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind a port");
    listener.local_addr().expect("its address")
}

fn log_text(handle: &InstanceHandle) -> String {
    logs::tail(&handle.log_path, 1000)
        .expect("the log is readable")
        .join("\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn hello_starts_serves_logs_and_stops_on_sigterm() {
    let fx = Fixture::new();
    bounded(async {
        let d = &fx.driver;
        let h = fx.start(&fx.hello_spec("web-1", &[])).await;
        assert_eq!(h.pgid, h.pid, "the instance leads its own process group");
        assert_eq!(h.addr, SocketAddr::from((Ipv4Addr::LOCALHOST, h.port)));
        assert_eq!(
            h.log_path,
            fx.log_dir().join("staging").join("web").join("web-1.log")
        );
        assert!(d.is_running(&h));
        assert!(d.adopt(&h));
        assert_eq!(d.exit_status("web-1"), None);

        let took = health::wait_healthy(h.addr, &quick_check(), || d.is_running(&h))
            .await
            .expect("hello becomes healthy");
        assert!(took < Duration::from_secs(10));
        assert_eq!(
            http_get(h.addr, "/").await,
            (200, "hello from 1.2.3\n".to_owned())
        );
        let log = log_text(&h);
        assert!(
            log.contains(&format!("hello 1.2.3 listening on 127.0.0.1:{}", h.port)),
            "startup line in the log:\n{log}"
        );

        let grace = Duration::from_secs(5);
        let t = Instant::now();
        let outcome = d.stop(&h, grace).await.expect("the stop succeeds");
        assert_eq!(outcome, StopOutcome::Exited);
        assert!(t.elapsed() < grace, "exited on SIGTERM, well within grace");
        assert!(!d.is_running(&h));
        assert!(!d.adopt(&h));
        eventually("the exit is recorded", || d.exit_status("web-1").is_some()).await;
        assert_eq!(d.exit_status("web-1").as_deref(), Some("exit status 0"));
        assert!(log_text(&h).contains("hello 1.2.3: shutting down"));
        assert_eq!(
            health::probe(h.addr, "/health", Duration::from_secs(1)).await,
            Err(ProbeError::Refused)
        );
        // Stopping again is fine.
        assert_eq!(
            d.stop(&h, grace).await.expect("second stop"),
            StopOutcome::NotRunning
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn port_and_version_reach_the_process_through_the_environment() {
    let fx = Fixture::new();
    bounded(async {
        // No flags at all: hello reads PORT and CUTOVER_VERSION.
        let hello = hello_bin().to_str().expect("a UTF-8 target path");
        let h = fx.start(&fx.spec("web-env", &[hello])).await;
        health::wait_healthy(h.addr, &quick_check(), || fx.driver.is_running(&h))
            .await
            .expect("hello becomes healthy");
        assert_eq!(
            http_get(h.addr, "/").await,
            (200, "hello from 1.2.3\n".to_owned())
        );
        let outcome = fx.driver.stop(&h, Duration::from_secs(5)).await;
        assert_eq!(outcome.expect("the stop succeeds"), StopOutcome::Exited);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn relative_program_cwd_arguments_env_and_output() {
    let fx = Fixture::new();
    bounded(async {
        fx.script(
            "bin/show",
            r#"echo "args=$1 $2"
echo "pwd=$(pwd)"
echo "env=$PORT $CUTOVER_VERSION $CUTOVER_INSTANCE $CUTOVER_SERVICE $CUTOVER_ENVIRONMENT $CUTOVER_APP"
echo "greeting=$GREETING"
echo "stdin=$(cat)"
echo "to stderr" >&2
exit 0"#,
        );
        let mut spec = fx.spec("show-1", &["./bin/show", "--port={port}", "{version}"]);
        spec.env.insert("GREETING".to_owned(), "hi on {port}".to_owned());
        let h = fx.start(&spec).await;
        eventually("the script exits", || fx.driver.exit_status("show-1").is_some()).await;
        assert_eq!(fx.driver.exit_status("show-1").as_deref(), Some("exit status 0"));
        assert!(!fx.driver.is_running(&h));

        let lines = logs::tail(&h.log_path, 6).expect("the log is readable");
        let workdir = fx.workdir();
        let p = h.port;
        assert_eq!(
            lines,
            [
                format!("args=--port={p} 1.2.3"),
                format!("pwd={}", workdir.display()),
                format!("env={p} 1.2.3 show-1 web staging shop"),
                format!("greeting=hi on {p}"),
                "stdin=".to_owned(),
                "to stderr".to_owned(),
            ]
        );
        // The driver's own header line comes first.
        let first = logs::tail(&h.log_path, 7).expect("the log is readable");
        assert!(first[0].starts_with("--- cutover "), "header: {}", first[0]);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_instance_gets_the_allowlist_and_its_log_header_no_password() {
    let fx = Fixture::new();
    bounded(async {
        let mut spec = fx.spec(
            "env-1",
            &[
                "/usr/bin/env",
                "DATABASE_URL=postgres://app:hunter2@db/app?sslmode=require",
            ],
        );
        spec.env.insert("FROM_CONFIG".to_owned(), "yes".to_owned());
        spec.env.insert("LISTEN_FDS".to_owned(), "3".to_owned());
        let h = fx.start(&spec).await;
        eventually("env exits", || fx.driver.exit_status("env-1").is_some()).await;
        let text = log_text(&h);
        let (header, output) = text.split_once('\n').expect("a header line");
        assert!(header.starts_with("--- cutover "), "{header}");
        assert!(!header.contains("hunter2"), "{header}");
        assert!(
            header.contains("postgres://app:***@db/app?sslmode=require"),
            "{header}"
        );
        let mut names: Vec<&str> = output
            .lines()
            .filter_map(|l| l.split_once('=').map(|(k, _)| k))
            .collect();
        names.sort_unstable();
        let set_by_cutover = [
            "CUTOVER_APP",
            "CUTOVER_ENVIRONMENT",
            "CUTOVER_INSTANCE",
            "CUTOVER_SERVICE",
            "CUTOVER_VERSION",
            "DATABASE_URL",
            "FROM_CONFIG",
            "PORT",
        ];
        for name in &names {
            assert!(
                set_by_cutover.contains(name)
                    || ["PATH", "HOME", "LANG", "TZ"].contains(name)
                    || name.starts_with("LC_"),
                "{name} reached the instance: {names:?}"
            );
        }
        for name in set_by_cutover {
            assert!(names.contains(&name), "{name} missing: {names:?}");
        }
        assert_eq!(
            std::fs::metadata(&h.log_path)
                .expect("stat")
                .permissions()
                .mode()
                & 0o777,
            0o640
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn failing_health_check_times_out() {
    let fx = Fixture::new();
    bounded(async {
        let d = &fx.driver;
        let h = fx.start(&fx.hello_spec("sick-1", &["--fail-health"])).await;
        let check = HealthCheck {
            start_timeout: Duration::from_millis(800),
            ..quick_check()
        };
        let t = Instant::now();
        let failure = health::wait_healthy(h.addr, &check, || d.is_running(&h))
            .await
            .expect_err("a failing health check never becomes healthy");
        let took = t.elapsed();
        assert_eq!(
            failure,
            HealthFailure::Timeout {
                last_error: Some(ProbeError::Status(hyper::StatusCode::SERVICE_UNAVAILABLE))
            }
        );
        assert!(failure.to_string().contains("503"), "{failure}");
        assert!(took >= Duration::from_millis(800), "gave up after {took:?}");
        assert!(took < Duration::from_secs(3), "gave up after {took:?}");
        assert!(
            d.is_running(&h),
            "a failed health check does not stop the instance"
        );
        let outcome = d.stop(&h, Duration::from_secs(5)).await;
        assert_eq!(outcome.expect("the stop succeeds"), StopOutcome::Exited);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn crash_on_start_is_reported_as_exited() {
    let fx = Fixture::new();
    bounded(async {
        let d = &fx.driver;
        let h = fx
            .start(&fx.hello_spec("crash-1", &["--crash-on-start"]))
            .await;
        let t = Instant::now();
        let failure = health::wait_healthy(h.addr, &quick_check(), || d.is_running(&h))
            .await
            .expect_err("a crashing instance never becomes healthy");
        assert_eq!(failure, HealthFailure::Exited);
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "noticed after {:?}",
            t.elapsed()
        );
        eventually("the exit is recorded", || {
            d.exit_status("crash-1").is_some()
        })
        .await;
        assert_eq!(d.exit_status("crash-1").as_deref(), Some("exit status 1"));
        assert!(log_text(&h).contains("hello 1.2.3: crashing on start as asked"));
        let outcome = d.stop(&h, Duration::from_secs(1)).await;
        assert_eq!(
            outcome.expect("stopping a dead instance is fine"),
            StopOutcome::NotRunning
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_ignoring_group_is_killed_after_grace() {
    let fx = Fixture::new();
    bounded(async {
        let d = &fx.driver;
        let spec = fx.spec(
            "stubborn-1",
            &["sh", "-c", "trap '' TERM; sleep 60 & sleep 60 & wait"],
        );
        let h = fx.start(&spec).await;
        eventually("sh has started its children", || {
            procfs::group_members(h.pgid).len() >= 3
        })
        .await;
        let grandchildren: Vec<_> = procfs::group_members(h.pgid)
            .into_iter()
            .filter(|m| m.pid != h.pid)
            .collect();
        assert_eq!(grandchildren.len(), 2, "two sleeps: {grandchildren:?}");

        let grace = Duration::from_millis(400);
        let t = Instant::now();
        let outcome = d.stop(&h, grace).await.expect("the stop succeeds");
        let took = t.elapsed();
        assert_eq!(outcome, StopOutcome::Killed);
        assert!(took >= grace, "SIGKILL only after grace ({took:?})");
        assert!(
            took < grace + Duration::from_secs(3),
            "stopped after {took:?}"
        );

        assert!(!d.is_running(&h));
        assert!(
            procfs::group_members(h.pgid).is_empty(),
            "nothing left in the group"
        );
        for g in &grandchildren {
            assert!(
                !procfs::is_alive(g.pid, g.start_time_ticks),
                "grandchild {} was killed too",
                g.pid
            );
        }
        eventually("the exit is recorded", || {
            d.exit_status("stubborn-1").is_some()
        })
        .await;
        assert_eq!(
            d.exit_status("stubborn-1").as_deref(),
            Some("killed by signal 9 (SIGKILL)")
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn is_running_follows_exits_and_never_trusts_a_reused_pid() {
    let fx = Fixture::new();
    bounded(async {
        let d = &fx.driver;
        // A process that exits by itself.
        let quitter = fx.start(&fx.spec("quit-1", &["sh", "-c", "exit 3"])).await;
        eventually("the process is gone", || !d.is_running(&quitter)).await;
        eventually("the exit is recorded", || d.exit_status("quit-1").is_some()).await;
        assert_eq!(d.exit_status("quit-1").as_deref(), Some("exit status 3"));
        // Reaped: the PID is gone, for this driver and for a fresh one.
        let fresh = ProcessDriver::new();
        assert!(!fresh.is_running(&quitter));
        assert!(!fresh.adopt(&quitter));
        assert_eq!(
            fresh
                .stop(&quitter, Duration::from_secs(1))
                .await
                .expect("stop"),
            StopOutcome::NotRunning
        );

        // A running process, and a handle whose start time does not match, as if
        // its PID had been reused: not running, and never signalled.
        let sleeper = fx.start(&fx.spec("sleep-1", &["sleep", "60"])).await;
        let impostor = InstanceHandle {
            start_time_ticks: sleeper.start_time_ticks + 1,
            ..sleeper.clone()
        };
        assert!(!d.is_running(&impostor));
        assert!(!fresh.is_running(&impostor));
        assert!(!fresh.adopt(&impostor));
        assert_eq!(
            fresh
                .stop(&impostor, Duration::from_millis(100))
                .await
                .expect("stop"),
            StopOutcome::NotRunning
        );
        assert!(d.is_running(&sleeper), "the real process was left alone");

        // `sleep` dies of the SIGTERM itself.
        let outcome = d.stop(&sleeper, Duration::from_secs(5)).await;
        assert_eq!(outcome.expect("the stop succeeds"), StopOutcome::Exited);
        assert!(!d.is_running(&sleeper));
        eventually("the exit is recorded", || {
            d.exit_status("sleep-1").is_some()
        })
        .await;
        assert_eq!(
            d.exit_status("sleep-1").as_deref(),
            Some("killed by signal 15 (SIGTERM)")
        );
        d.forget("sleep-1");
        assert_eq!(d.exit_status("sleep-1"), None);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn fresh_driver_adopts_and_stops_a_running_instance() {
    let fx = Fixture::new();
    bounded(async {
        let before_restart = ProcessDriver::new();
        let h = fx
            .start_with(&before_restart, &fx.hello_spec("web-2", &[]))
            .await;
        health::wait_healthy(h.addr, &quick_check(), || before_restart.is_running(&h))
            .await
            .expect("hello becomes healthy");

        // The daemon persisted the handle and restarted.
        let json = serde_json::to_string(&h).expect("the handle serializes");
        let restored: InstanceHandle = serde_json::from_str(&json).expect("and deserializes");
        assert_eq!(restored, h);
        let after_restart = ProcessDriver::new();
        assert!(after_restart.adopt(&restored));
        assert!(after_restart.is_running(&restored));
        assert_eq!(after_restart.exit_status("web-2"), None);
        assert_eq!(http_get(restored.addr, "/").await.0, 200);

        let outcome = after_restart.stop(&restored, Duration::from_secs(5)).await;
        assert_eq!(outcome.expect("the stop succeeds"), StopOutcome::Exited);
        assert!(!after_restart.is_running(&restored));
        assert!(!after_restart.adopt(&restored));
        assert!(!before_restart.is_running(&h));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn spawn_errors_name_the_program_and_the_problem() {
    let fx = Fixture::new();
    bounded(async {
        let d = &fx.driver;
        let spawn_error = |result: Result<InstanceHandle, DriverError>| match result {
            Err(e @ DriverError::Spawn { .. }) => e,
            other => panic!("expected a spawn error, got {other:?}"),
        };

        let e = spawn_error(d.start(&fx.spec("m-1", &["./bin/nope", "{port}"])).await);
        let msg = e.to_string();
        assert!(
            matches!(
                e,
                DriverError::Spawn {
                    problem: SpawnProblem::Missing,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("`./bin/nope`"), "{msg}");
        assert!(
            msg.contains(&fx.workdir().join("./bin/nope").display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("does not exist"), "{msg}");
        assert!(msg.contains("os error 2"), "{msg}");

        let e = spawn_error(d.start(&fx.spec("m-2", &["cutover-no-such-program"])).await);
        let msg = e.to_string();
        assert!(
            matches!(
                e,
                DriverError::Spawn {
                    problem: SpawnProblem::Missing,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(msg.contains("looked up on PATH"), "{msg}");

        let plain = fx.workdir().join("data.txt");
        std::fs::write(&plain, "not a program").expect("write a plain file");
        let e = spawn_error(d.start(&fx.spec("m-3", &["./data.txt"])).await);
        let msg = e.to_string();
        assert!(
            matches!(
                e,
                DriverError::Spawn {
                    problem: SpawnProblem::NotExecutable,
                    ..
                }
            ),
            "{msg}"
        );
        assert!(
            msg.contains("not executable") && msg.contains("os error 13"),
            "{msg}"
        );

        let script = fx.script("bin/odd", "");
        std::fs::write(&script, "#!/nonexistent/interpreter\n").expect("rewrite the script");
        let e = spawn_error(d.start(&fx.spec("m-4", &["bin/odd"])).await);
        assert!(
            matches!(
                e,
                DriverError::Spawn {
                    problem: SpawnProblem::MissingInterpreter,
                    ..
                }
            ),
            "{e}"
        );

        let mut spec = fx.spec("m-5", &["sleep", "1"]);
        spec.workdir = fx.dir.path().join("missing");
        let e = d
            .start(&spec)
            .await
            .expect_err("a missing workdir is refused");
        assert!(matches!(e, DriverError::Workdir { .. }), "{e}");

        let e = d
            .start(&fx.spec("m-6", &[]))
            .await
            .expect_err("an empty command");
        assert!(matches!(e, DriverError::InvalidSpec { .. }), "{e}");
        let e = d
            .start(&fx.spec("../escape", &["sleep", "1"]))
            .await
            .expect_err("a bad id");
        assert!(matches!(e, DriverError::InvalidSpec { .. }), "{e}");

        for id in ["m-1", "m-2", "m-3", "m-4", "m-5"] {
            assert_eq!(d.exit_status(id), None, "nothing recorded for {id}");
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn probe_reports_refused_status_and_timeout() {
    let fx = Fixture::new();
    bounded(async {
        let second = Duration::from_secs(1);
        assert_eq!(
            health::probe(closed_port(), "/health", second).await,
            Err(ProbeError::Refused)
        );

        let h = fx
            .start(&fx.hello_spec("slow-1", &["--latency-ms", "3000"]))
            .await;
        health::wait_healthy(h.addr, &quick_check(), || fx.driver.is_running(&h))
            .await
            .expect("hello becomes healthy");
        assert_eq!(health::probe(h.addr, "health", second).await, Ok(()));
        let short = Duration::from_millis(200);
        let t = Instant::now();
        let slow = health::probe(h.addr, "/", short).await;
        assert_eq!(slow, Err(ProbeError::Timeout(short)));
        assert!(t.elapsed() < Duration::from_secs(2));
        assert_eq!(
            slow.expect_err("timed out").to_string(),
            "no answer within 200ms"
        );
        let bad = health::probe(h.addr, "/bad path", second).await;
        assert!(
            matches!(bad, Err(ProbeError::InvalidPath { .. })),
            "{bad:?}"
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn monitor_reports_an_instance_that_stops_answering_and_recovers() {
    let fx = Fixture::new();
    bounded(async {
        let d = &fx.driver;
        let h = fx.start(&fx.hello_spec("mon-1", &[])).await;
        health::wait_healthy(h.addr, &quick_check(), || d.is_running(&h))
            .await
            .expect("hello becomes healthy");
        let mut monitor = Monitor::spawn(h.addr, quick_check());
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert_eq!(monitor.state(), MonitorState::Healthy);

        let outcome = d.stop(&h, Duration::from_secs(5)).await;
        assert_eq!(outcome.expect("the stop succeeds"), StopOutcome::Exited);
        let t = Instant::now();
        let error = monitor.wait_unhealthy().await.expect("the monitor reports");
        assert_eq!(error, ProbeError::Refused);
        assert!(
            t.elapsed() < Duration::from_secs(2),
            "noticed after {:?}",
            t.elapsed()
        );

        // Something answers on that port again.
        let port = h.port.to_string();
        let hello = hello_bin().to_str().expect("a UTF-8 target path");
        let again = fx.start(&fx.spec("mon-2", &[hello, "--port", &port])).await;
        let mut states = monitor.subscribe();
        tokio::time::timeout(
            Duration::from_secs(10),
            states.wait_for(|s| *s == MonitorState::Healthy),
        )
        .await
        .expect("healthy again within 10 s")
        .expect("the monitor runs");
        drop(monitor);
        let outcome = d.stop(&again, Duration::from_secs(5)).await;
        assert_eq!(outcome.expect("the stop succeeds"), StopOutcome::Exited);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn stop_with_an_endless_grace_returns_once_the_process_exits() {
    let fx = Fixture::new();
    bounded(async {
        let script = fx.script("bin/sleeper", "exec sleep 60");
        let script = script.to_str().expect("a UTF-8 path");
        let h = fx.start(&fx.spec("endless-1", &[script])).await;
        assert!(fx.driver.is_running(&h));
        // A `stop_timeout` of "300000000y" cannot be added to the clock.
        let t = Instant::now();
        let outcome = fx.driver.stop(&h, Duration::MAX).await;
        assert_eq!(outcome.expect("the stop succeeds"), StopOutcome::Exited);
        assert!(t.elapsed() < Duration::from_secs(5), "{:?}", t.elapsed());
        assert!(!fx.driver.is_running(&h));
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn endless_health_timeouts_do_not_overflow() {
    bounded(async {
        let server = TestServer::start().await;
        let endless = HealthCheck {
            interval: Duration::MAX,
            timeout: Duration::MAX,
            healthy: 1,
            unhealthy: 1,
            start_timeout: Duration::MAX,
            ..quick_check()
        };
        health::wait_healthy(server.addr, &endless, || true)
            .await
            .expect("healthy at the first probe");
        let monitor = Monitor::spawn(server.addr, endless.clone());
        let group = GroupMonitor::spawn(vec![server.addr], endless);
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert_eq!(monitor.state(), MonitorState::Healthy);
        assert!(group.is_healthy());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_of_local_processes_needs_nothing() {
    bounded(async {
        let found = Drivers::new()
            .preflight(&[ServiceToCheck {
                service: "web",
                version: "1.2.3",
                docker: None,
            }])
            .await
            .expect("nothing to check");
        assert_eq!(found, PreflightFindings::default());
    })
    .await;
}

/// A loopback HTTP server whose every path answers 200, or 503 once told it
/// is unhealthy; dropping it closes its port (connections are refused).
struct TestServer {
    addr: SocketAddr,
    healthy: Arc<AtomicBool>,
    task: tokio::task::JoinHandle<()>,
}

impl TestServer {
    async fn start() -> TestServer {
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .expect("bind a port");
        let addr = listener.local_addr().expect("its address");
        let healthy = Arc::new(AtomicBool::new(true));
        let answers = healthy.clone();
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut stream, _)) = listener.accept().await else {
                    continue;
                };
                let healthy = answers.load(Ordering::SeqCst);
                tokio::spawn(async move {
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !request.windows(4).any(|w| w == b"\r\n\r\n") {
                        match stream.read(&mut chunk).await {
                            Ok(0) | Err(_) => return,
                            Ok(n) => request.extend_from_slice(&chunk[..n]),
                        }
                    }
                    let status = if healthy {
                        "200 OK"
                    } else {
                        "503 Service Unavailable"
                    };
                    let answer = format!(
                        "HTTP/1.1 {status}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
                    );
                    let _ = stream.write_all(answer.as_bytes()).await;
                });
            }
        });
        TestServer {
            addr,
            healthy,
            task,
        }
    }

    fn set_healthy(&self, healthy: bool) {
        self.healthy.store(healthy, Ordering::SeqCst);
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Probes every 50 ms; unhealthy after `unhealthy` failed rounds.
fn group_check(unhealthy: u32) -> HealthCheck {
    HealthCheck {
        interval: Duration::from_millis(50),
        timeout: Duration::from_secs(1),
        unhealthy,
        ..quick_check()
    }
}

/// The next change of `group`, within 5 s.
async fn next_change(group: &mut GroupMonitor) -> bool {
    tokio::time::timeout(Duration::from_secs(5), group.next_change())
        .await
        .expect("a change within 5 s")
        .expect("the monitor runs")
}

#[tokio::test(flavor = "multi_thread")]
async fn group_monitor_is_healthy_while_any_instance_answers() {
    bounded(async {
        let a = TestServer::start().await;
        let b = TestServer::start().await;
        let mut group = GroupMonitor::spawn(vec![a.addr, b.addr], group_check(4));
        assert!(group.is_healthy(), "a group starts healthy");

        // One instance failing (503) leaves the group healthy.
        a.set_healthy(false);
        let quiet = tokio::time::timeout(Duration::from_millis(500), group.next_change()).await;
        assert!(quiet.is_err(), "no change while b answers: {quiet:?}");
        assert!(group.is_healthy());

        // The last one going away (refused): unhealthy, after 4 failed rounds
        // (at least 3 intervals apart).
        let t = Instant::now();
        drop(b);
        assert!(!next_change(&mut group).await);
        assert!(
            t.elapsed() >= Duration::from_millis(140),
            "unhealthy after only {:?}",
            t.elapsed()
        );
        assert!(!group.is_healthy());

        // One round with an answering instance: healthy again.
        a.set_healthy(true);
        assert!(next_change(&mut group).await);
        assert!(group.is_healthy());

        // And unhealthy again when it fails.
        a.set_healthy(false);
        assert!(!next_change(&mut group).await);
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn group_monitor_tolerates_fewer_failed_rounds_than_unhealthy() {
    bounded(async {
        let a = TestServer::start().await;
        let mut group = GroupMonitor::spawn(vec![a.addr], group_check(5));
        let mut states = group.subscribe();
        // Failing for about one round, then answering again: not enough.
        a.set_healthy(false);
        tokio::time::sleep(Duration::from_millis(60)).await;
        a.set_healthy(true);
        let quiet = tokio::time::timeout(Duration::from_millis(400), states.changed()).await;
        assert!(quiet.is_err(), "no change: {quiet:?}");
        assert!(group.is_healthy());
        // Failing for good.
        a.set_healthy(false);
        assert!(!next_change(&mut group).await);
        assert!(!*states.borrow_and_update());
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn an_empty_group_is_unhealthy() {
    bounded(async {
        let mut group = GroupMonitor::spawn(Vec::new(), group_check(2));
        assert!(!next_change(&mut group).await);
        let closed = GroupMonitor::spawn(vec![closed_port()], group_check(2));
        let mut states = closed.subscribe();
        tokio::time::timeout(Duration::from_secs(5), states.wait_for(|h| !*h))
            .await
            .expect("unhealthy within 5 s")
            .expect("the monitor runs");
    })
    .await;
}

#[tokio::test]
async fn a_started_instance_is_found_again_by_its_own_marks() {
    bounded(async {
        let fx = Fixture::new();
        let started = fx.start(&fx.hello_spec("staging-web-1", &[])).await;
        let other = Fixture::new();
        let elsewhere = other.start(&other.hello_spec("staging-web-2", &[])).await;
        let drivers = Drivers::new();
        let envs = ["staging".to_owned()];

        // A process just spawned may not have exec'd yet (its environment is
        // still the test's), so wait until the marks can be read.
        eventually("the instance's marks can be read", || {
            !drivers
                .find_running_processes("shop", &fx.log_dir(), &envs)
                .is_empty()
        })
        .await;
        let found = drivers.find_running_processes("shop", &fx.log_dir(), &envs);
        assert_eq!(found.len(), 1, "only this config's instance: {found:?}");
        let f = &found[0];
        assert_eq!(
            (
                f.environment.as_str(),
                f.service.as_str(),
                f.version.as_str()
            ),
            ("staging", "web", "1.2.3")
        );
        let Handle::Process(h) = &f.handle else {
            panic!("a process handle: {f:?}");
        };
        assert_eq!(h.instance_id, started.instance_id);
        assert_eq!(
            (h.pid, h.pgid, h.port),
            (started.pid, started.pgid, started.port)
        );
        assert_eq!(h.start_time_ticks, started.start_time_ticks);
        assert!(f.started > 0);
        // The rebuilt handle adopts and stops the instance like the original.
        assert!(drivers.adopt(&f.handle).await.expect("adopt"));
        assert!(other.driver.is_running(&elsewhere));

        // Another app, or another environment, is not ours.
        assert!(
            drivers
                .find_running_processes("mall", &fx.log_dir(), &envs)
                .is_empty()
        );
        let prod = ["production".to_owned()];
        assert!(
            drivers
                .find_running_processes("shop", &fx.log_dir(), &prod)
                .is_empty()
        );

        drivers
            .stop(&f.handle, Duration::from_secs(5))
            .await
            .expect("stop");
        eventually("the instance is gone", || {
            drivers
                .find_running_processes("shop", &fx.log_dir(), &envs)
                .is_empty()
        })
        .await;
    })
    .await;
}
