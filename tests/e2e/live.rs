//! Live views through the real daemon: `status --json` during a paused
//! canary under load (step, weight, when the step ends, paused, per-track
//! figures, instance health), `events --follow --json` as a child process
//! across a daemon restart and an upgrade (nothing missed or repeated, by
//! cursor; the stop is not held up by the open stream), `status --watch`
//! piped, and `serve --log-format json`.

use std::io::BufRead;
use std::process::{Child, ExitStatus};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::common::{Release, TestApp, ok, stderr, stdout, wait_until};

/// A CLI child whose stdout lines are collected as they come.
struct Lines {
    child: Child,
    lines: Arc<Mutex<Vec<String>>>,
}

impl Lines {
    fn start(mut child: Child) -> Lines {
        let out = child.stdout.take().expect("piped stdout");
        let lines = Arc::new(Mutex::new(Vec::new()));
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                sink.lock().expect("lines").push(line);
            }
        });
        Lines { child, lines }
    }

    fn snapshot(&self) -> Vec<String> {
        self.lines.lock().expect("lines").clone()
    }

    /// Ctrl-C, and how it exited.
    fn interrupt(mut self) -> ExitStatus {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.child.id() as i32),
            nix::sys::signal::Signal::SIGINT,
        );
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "Ctrl-C did not end it");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Lines {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn status_json(app: &TestApp) -> Value {
    let out = app.cli(&["status", "--json"]);
    ok(app, &out);
    serde_json::from_slice(&out.stdout).expect("status json")
}

fn time(v: &Value) -> jiff::Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("not a time: {v}"))
        .parse()
        .expect("a timestamp")
}

const CANARY: &str = r#"
[service.web.rollout]
strategy = "canary"
steps = [20, 50, 100]
step_duration = "60s"
check_interval = "250ms"
analysis = { max_error_rate = 0.02, max_p95 = "150ms", min_requests = 20 }
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_during_a_paused_canary_shows_the_step_its_end_and_each_tracks_figures() {
    let app = TestApp::new("10m");
    app.append_config(CANARY);
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1"]);
    let load = app.load(4);
    let deploy = app.cli_background(&["deploy", "v2"]);
    app.wait_for_event("v2", "step");
    wait_until(
        Duration::from_secs(20),
        "both tracks served requests",
        || {
            let now = &status_json(&app)["environments"][0]["traffic"][0]["now"];
            now["stable"]["requests"].as_u64() > Some(0)
                && now["canary"]["requests"].as_u64() > Some(0)
        },
    );

    let status = status_json(&app);
    let env = &status["environments"][0];
    let release = &env["releases"][0];
    assert_eq!(release["version"], "v2", "{release}");
    assert_eq!(release["previous_version"], "v1", "{release}");
    assert_eq!(release["phase"], "rolling", "{release}");
    assert_eq!(release["paused"], false, "{release}");
    let web = &release["services"][0];
    assert_eq!(web["stage"], "stepping", "{web}");
    assert_eq!(
        (web["step"].as_u64(), web["steps"].as_u64()),
        (Some(1), Some(3))
    );
    assert_eq!(web["canary_percent"], 20.0, "{web}");
    let ends = time(&web["step_ends_at"]);
    let now = jiff::Timestamp::now();
    assert!(
        ends > now && ends <= now + jiff::SignedDuration::from_secs(61),
        "the step ends within its 60 s: {ends} (now {now})"
    );

    ok(&app, &app.cli(&["pause"]));
    let status = status_json(&app);
    let env = &status["environments"][0];
    let release = &env["releases"][0];
    assert_eq!(release["paused"], true, "{release}");
    let web = &release["services"][0];
    assert!(
        web["step_ends_at"].is_null(),
        "a paused step has no end: {web}"
    );
    let left = web["paused_left_ms"].as_u64().expect("time left");
    assert!(left > 0 && left <= 60_000, "{left}");
    let figures = &env["traffic"][0]["now"];
    assert_eq!(figures["window_seconds"], 10, "{figures}");
    for track in ["stable", "canary"] {
        let t = &figures[track];
        assert!(t["requests"].as_u64() > Some(0), "{track}: {t}");
        assert!(
            t["requests_per_second"].as_f64() > Some(0.0),
            "{track}: {t}"
        );
        assert_eq!(t["error_rate"], 0.0, "{track}: {t}");
        assert!(t["p95_ms"].as_f64() > Some(0.0), "{track}: {t}");
    }
    for instance in env["instances"].as_array().expect("instances") {
        let track = if instance["version"] == "v1" {
            "stable"
        } else {
            "canary"
        };
        assert_eq!(instance["track"], track, "{instance}");
        assert_eq!(instance["healthy"], true, "{instance}");
        assert!(time(&instance["health_since"]) <= jiff::Timestamp::now());
    }

    let human = stdout(&app.cli(&["status"]));
    for part in [
        "release   #2 deploy v2 (from v1): rolling, PAUSED",
        "web      canary step 1/3 at 20%, paused with",
        "80% on v1, 20% on v2 (canary)",
        "last 10s: stable ",
        " | canary ",
        "stable healthy for",
        "canary healthy for",
    ] {
        assert!(human.contains(part), "no {part:?} in:\n{human}");
    }
    eprintln!("status during a paused canary:\n{human}");

    ok(&app, &app.cli(&["abort", "--reason", "enough"]));
    let out = deploy.join().expect("deploy");
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert_eq!(load.stop().await.expect("stop the load").failed(), 0);
    wait_until(
        Duration::from_secs(10),
        "the aborted release is gone from status",
        || {
            status_json(&app)["environments"][0]["releases"]
                .as_array()
                .is_some_and(|r| r.iter().all(|r| r["version"] != "v2"))
        },
    );
}

/// Every event `cutover events --json` lists now.
fn all_events(app: &TestApp) -> Vec<Value> {
    let out = app.cli(&["events", "--json", "--limit", "1000"]);
    ok(app, &out);
    stdout(&out)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON object per line"))
        .collect()
}

fn parsed(lines: &[String]) -> Vec<Value> {
    lines
        .iter()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect()
}

fn finished(events: &[Value], deployment: i64) -> bool {
    events
        .iter()
        .any(|e| e["deployment_id"] == deployment && e["kind"] == "finished")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_streams_a_deploy_and_resumes_across_a_restart_and_an_upgrade() {
    let app = TestApp::deployed("10m", &["v1"]);
    app.release("v2", Release::Good);
    app.release("v3", Release::Good);
    let follow = Lines::start(app.cli_child(
        "follow",
        &["events", "--follow", "--json", "--limit", "1000"],
    ));
    wait_until(Duration::from_secs(10), "v1's deploy is listed", || {
        finished(&parsed(&follow.snapshot()), 1)
    });

    // As it happens.
    let deploy = app.cli_background(&["deploy", "v2"]);
    wait_until(Duration::from_secs(20), "v2's events stream in", || {
        parsed(&follow.snapshot())
            .iter()
            .any(|e| e["deployment_id"] == 2 && e["kind"] == "started")
    });
    ok(&app, &deploy.join().expect("deploy"));
    wait_until(Duration::from_secs(10), "v2 finished, streamed", || {
        finished(&parsed(&follow.snapshot()), 2)
    });

    // A stop is not held up by the open stream, and the stream resumes.
    let stopping = Instant::now();
    app.stop_daemon();
    let stop_took = stopping.elapsed();
    assert!(
        stop_took < Duration::from_secs(8),
        "SIGTERM took {stop_took:?} with a stream open"
    );
    assert!(
        !app.daemon_log().contains("were cut"),
        "{}",
        app.daemon_log()
    );
    app.serve();
    app.deploy_ok("v3");
    wait_until(Duration::from_secs(20), "v3 finished, streamed", || {
        finished(&parsed(&follow.snapshot()), 3)
    });

    // An upgrade (hand-over) with the stream open: the old daemon goes.
    let old = app.lock_holder().expect("holder");
    let upgrading = Instant::now();
    ok(&app, &app.cli(&["upgrade"]));
    wait_until(Duration::from_secs(8), "the old daemon exited", || {
        !TestApp::alive(old)
    });
    eprintln!(
        "upgrade with an event stream open: old daemon gone after {:?}",
        upgrading.elapsed()
    );
    app.deploy_ok("v2");
    wait_until(Duration::from_secs(20), "v2 again, streamed", || {
        finished(&parsed(&follow.snapshot()), 4)
    });

    // Exactly the history, in order: nothing missed, nothing twice.
    let key = |events: &[Value]| -> Vec<String> {
        events
            .iter()
            .map(|e| format!("{} {} {}", e["cursor"], e["source"], e["id"]))
            .collect()
    };
    wait_until(Duration::from_secs(10), "the stream caught up", || {
        key(&parsed(&follow.snapshot())) == key(&all_events(&app))
    });
    let streamed = parsed(&follow.snapshot());
    let mut seen = std::collections::BTreeSet::new();
    for e in &streamed {
        assert!(
            seen.insert((e["source"].to_string(), e["id"].as_i64())),
            "twice: {e}"
        );
    }
    let err = std::fs::read_to_string(app.path().join("follow.stderr")).unwrap_or_default();
    assert!(err.contains("reconnecting from event"), "{err}");
    let exit = follow.interrupt();
    assert_eq!(exit.code(), Some(0), "Ctrl-C ends the follow with 0");
    eprintln!(
        "events --follow: {} events, {} reconnects",
        streamed.len(),
        err.matches("reconnecting").count()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_watch_piped_prints_each_new_status_and_the_rollback_window() {
    let app = TestApp::deployed("10m", &["v1"]);
    app.release("v2", Release::Good);
    let watch = Lines::start(app.cli_child("watch", &["status", "--watch"]));
    wait_until(Duration::from_secs(10), "the first status", || {
        watch.snapshot().iter().any(|l| l.contains("serving   v1"))
    });
    app.deploy_ok("v2");
    wait_until(Duration::from_secs(10), "a status after the deploy", || {
        watch.snapshot().iter().any(|l| l.contains("serving   v2"))
    });
    let lines = watch.snapshot();
    let separators = lines.iter().filter(|l| *l == "----").count();
    assert!(
        separators >= 2,
        "each status after a line:\n{}",
        lines.join("\n")
    );
    assert!(
        lines.iter().all(|l| !l.contains('\u{1b}')),
        "no terminal escapes when piped"
    );
    assert_eq!(watch.interrupt().code(), Some(0), "Ctrl-C ends it with 0");

    // The new release is in its rollback window.
    let status = status_json(&app);
    let release = &status["environments"][0]["releases"][0];
    assert_eq!(release["version"], "v2", "{release}");
    assert_eq!(release["phase"], "warm", "{release}");
    let until = time(&release["rollback_window_until"]);
    let now = jiff::Timestamp::now();
    assert!(
        until > now + jiff::SignedDuration::from_secs(9 * 60)
            && until <= now + jiff::SignedDuration::from_secs(10 * 60),
        "window ends in about 10m: {until} (now {now})"
    );
    let human = stdout(&app.cli(&["status"]));
    assert!(
        human.contains("release   #2 deploy v2 (from v1): warm, rollback window until"),
        "{human}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serve_log_format_json_writes_one_json_object_per_line() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.serve_with(&["serve", "--log-format", "json"], &[]);
    app.deploy_ok("v1");
    app.stop_daemon();
    let token = std::fs::read_to_string(app.path().join(".cutover/api.token")).expect("token");
    let check = |log: &str| {
        assert!(!log.contains(token.trim()), "the token is in the log");
        let objects: Vec<Value> = log
            .lines()
            .filter(|l| !l.trim().is_empty())
            .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
            .collect();
        for o in &objects {
            assert!(
                o["timestamp"].is_string() && o["level"].is_string() && o["fields"].is_object(),
                "{o}"
            );
        }
        objects
    };
    let objects = check(&app.daemon_log());
    let message = |o: &Value| o["fields"]["message"].as_str().unwrap_or("").to_owned();
    assert!(
        objects
            .iter()
            .any(|o| message(o).starts_with("serving hello")),
        "{objects:#?}"
    );
    assert!(
        objects.iter().any(|o| message(o).starts_with("stopping")),
        "{objects:#?}"
    );

    // The same from the config, and a wrong value is named with its place.
    std::fs::remove_file(app.path().join("daemon.log")).expect("clear the log");
    let config = std::fs::read_to_string(app.config()).expect("config");
    let with = |format: &str| {
        config.replace(
            "[server]\n",
            &format!("[server]\nlog_format = \"{format}\"\n"),
        )
    };
    std::fs::write(app.config(), with("yaml")).expect("config");
    let out = app.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("cutover.toml:5:") && err.contains("\"text\"") && err.contains("\"json\""),
        "{err}"
    );
    std::fs::write(app.config(), with("json")).expect("config");
    app.serve();
    app.stop_daemon();
    let objects = check(&app.daemon_log());
    assert!(objects.len() >= 3, "{objects:#?}");
}
