//! Notifications through the real daemon: webhooks verified by the
//! Standard Webhooks reference library (`standardwebhooks`, PyPI) in a real
//! receiver (tests/support/webhook_receiver.py), a receiver that is down
//! and then failing, a daemon killed while it retries, a wrong secret, and
//! a Slack-shaped receiver on a canary rollback.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use cutover_kit::ports;
use cutover_kit::wait::Wait;
use serde_json::Value;

use crate::common::{Release, TestApp, more_requests, stderr, wait_until};

/// A Standard Webhooks secret (32 bytes of key).
const SECRET: &str = "whsec_Y3V0b3Zlci1lMmUtdGVzdC1rZXktMDEyMzQ1Njc4OWFi";
/// Another one: what a receiver with the wrong secret verifies with.
const OTHER_SECRET: &str = "whsec_bm90LXRoZS1zZWNyZXQtY3V0b3Zlci1zaWducy13aXRo";

/// The Python that has `standardwebhooks` (scripts/test installs it):
/// `CUTOVER_TEST_PYTHON`, else `python3`.
fn python() -> String {
    let python = std::env::var("CUTOVER_TEST_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let check = Command::new(&python)
        .args(["-c", "import standardwebhooks"])
        .output()
        .unwrap_or_else(|e| panic!("cannot run {python}: {e}"));
    assert!(
        check.status.success(),
        "{python} has no `standardwebhooks`: run scripts/test (it installs it) or `{python} -m pip install standardwebhooks`\n{}",
        String::from_utf8_lossy(&check.stderr)
    );
    python
}

/// tests/support/webhook_receiver.py on a port, writing one JSON line per request.
struct Receiver {
    port: u16,
    secret: String,
    out: PathBuf,
    args: Vec<String>,
    child: Option<Child>,
}

impl Receiver {
    fn new(dir: &Path, port: u16, secret: &str, args: &[&str]) -> Receiver {
        Receiver {
            port,
            secret: secret.to_owned(),
            out: dir.join(format!("receiver-{port}.jsonl")),
            args: args.iter().map(|a| (*a).to_owned()).collect(),
            child: None,
        }
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hooks", self.port)
    }

    /// Starts it and waits until it listens.
    fn start(&mut self) {
        let script =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/support/webhook_receiver.py");
        let child = Command::new(python())
            .arg(script)
            .arg("--port")
            .arg(self.port.to_string())
            .arg("--out")
            .arg(&self.out)
            .args(&self.args)
            .env("WEBHOOK_SECRET", &self.secret)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .spawn()
            .expect("start the receiver");
        self.child = Some(child);
        let port = self.port;
        Wait::up_to(Duration::from_secs(20))
            .until(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
            .expect("the receiver listens");
    }

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Every request it got, in order.
    fn records(&self) -> Vec<Value> {
        std::fs::read_to_string(&self.out)
            .unwrap_or_default()
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect()
    }

    /// The deliveries it accepted (verified, answered 204).
    fn accepted(&self) -> Vec<Value> {
        self.records()
            .into_iter()
            .filter(|r| r["status"] == 204)
            .collect()
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        self.stop();
    }
}

fn webhook_config(url: &str, extra: &str) -> String {
    format!(
        "\n[[notify.webhook]]\nurl = \"{url}\"\nsecret = \"${{CUTOVER_TEST_WEBHOOK_SECRET}}\"\n{extra}\n"
    )
}

fn types(records: &[Value]) -> Vec<String> {
    records
        .iter()
        .map(|r| r["type"].as_str().unwrap_or("").to_owned())
        .collect()
}

fn count(records: &[Value], t: &str) -> usize {
    types(records).iter().filter(|x| *x == t).count()
}

#[test]
fn deliveries_verify_with_the_reference_library_and_a_wrong_secret_does_not() {
    let app = TestApp::new("10m");
    let free = ports::free_ports(2).expect("ports");
    let mut good = Receiver::new(app.path(), free[0], SECRET, &[]);
    let mut wrong = Receiver::new(app.path(), free[1], OTHER_SECRET, &[]);
    good.start();
    wrong.start();
    app.set_env("CUTOVER_TEST_WEBHOOK_SECRET", SECRET);
    app.append_config(&webhook_config(&good.url(), ""));
    app.append_config(&webhook_config(
        &wrong.url(),
        "events = [\"deployment.succeeded\"]\nenvironments = [\"production\"]",
    ));
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1", "v2"]);

    wait_until(Duration::from_secs(30), "both deploys notified", || {
        count(&good.accepted(), "deployment.succeeded") == 2
    });
    let records = good.records();
    assert!(
        records
            .iter()
            .all(|r| r["verified"] == true && r["status"] == 204),
        "{records:#?}"
    );
    assert_eq!(count(&records, "deployment.started"), 2, "{records:#?}");
    let ids: BTreeSet<&str> = records.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(ids.len(), records.len(), "one id per delivery");
    let v2 = records
        .iter()
        .find(|r| r["type"] == "deployment.succeeded" && r["body"]["data"]["version"] == "v2")
        .expect("v2 succeeded");
    let data = &v2["body"]["data"];
    assert_eq!(data["environment"], "production");
    assert_eq!(data["previous_version"], "v1");
    assert_eq!(data["app"], "hello");
    assert!(data["deployment_id"].is_i64(), "{v2}");
    assert!(data["requested_by"].as_str().is_some_and(|s| !s.is_empty()));
    assert!(
        v2["signature"]
            .as_str()
            .is_some_and(|s| s.starts_with("v1,"))
    );
    eprintln!(
        "a verified delivery: webhook-id {} webhook-timestamp {} webhook-signature {}\n{}",
        v2["id"],
        v2["timestamp"],
        v2["signature"],
        serde_json::to_string_pretty(&v2["body"]).unwrap_or_default()
    );
    // Nothing secret in what was sent.
    assert!(
        !serde_json::to_string(&records)
            .unwrap_or_default()
            .contains("Y3V0b3Zl")
    );

    // The receiver with the wrong secret got only what it asked for, and
    // could verify none of it.
    wait_until(
        Duration::from_secs(30),
        "the wrong receiver got both",
        || {
            let seen: BTreeSet<String> = wrong
                .records()
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect();
            seen.len() >= 2
        },
    );
    let refused = wrong.records();
    assert!(
        refused
            .iter()
            .all(|r| r["verified"] == false && r["status"] == 401),
        "{refused:#?}"
    );
    assert!(
        refused.iter().all(|r| r["error"]
            .as_str()
            .is_some_and(|e| e.contains("No matching signature"))),
        "{refused:#?}"
    );
    assert!(
        refused.iter().all(|r| r["body"]
            .as_str()
            .is_some_and(|b| b.contains("deployment.succeeded"))),
        "{refused:#?}"
    );
    // The secret never reaches the daemon's log or `check --json`.
    assert!(!app.daemon_log().contains("Y3V0b3Zl"));
    let check = app.cli(&["check", "--json"]);
    assert!(check.status.success(), "{}", stderr(&check));
    let shown = String::from_utf8_lossy(&check.stdout);
    assert!(
        !shown.contains("Y3V0b3Zl") && shown.contains("notify"),
        "{shown}"
    );
}

#[test]
fn a_receiver_down_for_10_s_gets_every_event_afterwards_with_the_same_ids() {
    let app = TestApp::new("10m");
    let port = ports::free_ports(1).expect("port")[0];
    // Up again after the outage, it fails the first two requests too.
    let mut receiver = Receiver::new(app.path(), port, SECRET, &["--fail-first", "2"]);
    app.set_env("CUTOVER_TEST_WEBHOOK_SECRET", SECRET);
    app.append_config(&webhook_config(&receiver.url(), ""));
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    let down = Instant::now();
    app.serve_and_deploy(&["v1", "v2"]);
    let since = down.elapsed();
    if since < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_secs(10) - since);
    }
    assert!(
        app.daemon_log().contains("notification not delivered"),
        "{}",
        app.daemon_log()
    );
    receiver.start();
    wait_until(Duration::from_secs(60), "every event delivered", || {
        let accepted = receiver.accepted();
        count(&accepted, "deployment.succeeded") == 2 && count(&accepted, "deployment.started") == 2
    });
    let records = receiver.records();
    let failed: Vec<&Value> = records.iter().filter(|r| r["status"] == 500).collect();
    assert_eq!(failed.len(), 2, "{records:#?}");
    let accepted = receiver.accepted();
    let accepted_ids: BTreeSet<&str> = accepted.iter().filter_map(|r| r["id"].as_str()).collect();
    assert_eq!(
        accepted_ids.len(),
        accepted.len(),
        "each delivered once: {records:#?}"
    );
    for f in &failed {
        let id = f["id"].as_str().expect("id");
        assert!(
            accepted_ids.contains(id),
            "a retry of {id} came with another id: {records:#?}"
        );
    }
    // Every attempt was signed for its own time and verified.
    assert!(
        records.iter().all(|r| r["verified"] == true),
        "{records:#?}"
    );
}

#[test]
fn a_daemon_killed_while_it_retries_delivers_each_exactly_once_after_restart() {
    killed_while_retrying(TestApp::new("10m"));
}

/// The same with the state store (and its webhook queue) on PostgreSQL.
#[test]
fn pg_state_a_daemon_killed_while_it_retries_delivers_each_exactly_once_after_restart() {
    killed_while_retrying(TestApp::with_pg_state("10m"));
}

fn killed_while_retrying(app: TestApp) {
    let port = ports::free_ports(1).expect("port")[0];
    let failing = app.path().join("receiver-failing");
    std::fs::write(&failing, "").expect("flag");
    let flag = failing.display().to_string();
    let mut receiver = Receiver::new(app.path(), port, SECRET, &["--fail-while", &flag]);
    receiver.start();
    app.set_env("CUTOVER_TEST_WEBHOOK_SECRET", SECRET);
    app.append_config(&webhook_config(&receiver.url(), ""));
    app.release("v1", Release::Good);
    app.serve_and_deploy(&["v1"]);
    // Retrying: the same id seen at least twice.
    wait_until(Duration::from_secs(30), "a delivery retried", || {
        let mut seen: BTreeMap<String, usize> = BTreeMap::new();
        for r in receiver.records() {
            *seen
                .entry(r["id"].as_str().unwrap_or("").to_owned())
                .or_default() += 1;
        }
        seen.values().any(|n| *n >= 2)
    });
    app.kill_daemon();
    let before: BTreeSet<String> = receiver
        .records()
        .iter()
        .filter_map(|r| r["id"].as_str().map(str::to_owned))
        .collect();
    assert!(receiver.accepted().is_empty());
    std::fs::remove_file(&failing).expect("receiver accepts now");
    app.serve();
    wait_until(
        Duration::from_secs(60),
        "every delivery after restart",
        || {
            let accepted: BTreeSet<String> = receiver
                .accepted()
                .iter()
                .filter_map(|r| r["id"].as_str().map(str::to_owned))
                .collect();
            before.is_subset(&accepted) && count(&receiver.accepted(), "deployment.succeeded") == 1
        },
    );
    // Let any late attempt arrive. Delivery is at least once: an attempt
    // whose answer came after its 10 s timeout (a busy machine) may come
    // again, with the same id, so a receiver that keeps ids processes each
    // event exactly once. By id, then: one of each event, none lost, and
    // every repeat of an id is the same event.
    std::thread::sleep(Duration::from_secs(3));
    let accepted = receiver.accepted();
    let mut per_id: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for r in &accepted {
        per_id
            .entry(r["id"].as_str().unwrap_or(""))
            .or_default()
            .insert(r["body"].to_string());
    }
    assert!(
        per_id.values().all(|bodies| bodies.len() == 1),
        "{accepted:#?}"
    );
    let distinct = |t: &str| {
        accepted
            .iter()
            .filter(|r| types(std::slice::from_ref(*r)).iter().any(|x| x == t))
            .filter_map(|r| r["id"].as_str())
            .collect::<BTreeSet<_>>()
            .len()
    };
    assert_eq!(distinct("deployment.started"), 1, "{accepted:#?}");
    assert_eq!(distinct("deployment.succeeded"), 1, "{accepted:#?}");
}

/// A Slack-shaped receiver: POSTs to `/services/…` recorded as JSON.
async fn slack_receiver() -> (u16, Arc<Mutex<Vec<Value>>>) {
    let got: Arc<Mutex<Vec<Value>>> = Arc::default();
    let kept = got.clone();
    let app = axum::Router::new().route(
        "/services/T000/B000/{token}",
        axum::routing::post(move |body: String| {
            let kept = kept.clone();
            async move {
                if let Ok(v) = serde_json::from_str::<Value>(&body) {
                    kept.lock().expect("lock").push(v);
                }
                "ok"
            }
        }),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    (port, got)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slack_gets_a_readable_message_with_the_figures_on_a_canary_rollback() {
    let (port, got) = slack_receiver().await;
    let app = TestApp::new("10m");
    app.append_config(
        r#"
[service.web.rollout]
strategy = "canary"
steps = [20, 50, 100]
step_duration = "1s"
check_interval = "250ms"
analysis = { max_error_rate = 0.02, max_p95 = "150ms", min_requests = 20 }

[[notify.slack]]
url = "${CUTOVER_TEST_SLACK_URL}"
"#,
    );
    app.set_env(
        "CUTOVER_TEST_SLACK_URL",
        &format!("http://127.0.0.1:{port}/services/T000/B000/slacktokensecret"),
    );
    app.release("v1", Release::Good);
    app.serve_and_deploy(&["v1"]);
    app.release("v2", Release::Errors(0.2));
    let load = app.load(6);
    let out = app.cli_async(&["deploy", "v2"]).await;
    more_requests(&load, 3).await;
    let _ = load.stop().await;
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let deadline = Instant::now() + Duration::from_secs(30);
    let text = loop {
        let found = got
            .lock()
            .expect("lock")
            .iter()
            .filter_map(|m| m["text"].as_str().map(str::to_owned))
            .find(|t| t.contains("was rolled back"));
        if let Some(text) = found {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no rollback message: {:?}",
            got.lock().expect("lock")
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    eprintln!("Slack got: {text}");
    assert!(text.contains("*production*"), "{text}");
    assert!(
        text.contains("hello `v2` was rolled back to `v1`"),
        "{text}"
    );
    assert!(text.contains("requested by"), "{text}");
    assert!(text.contains("error rate"), "{text}");
    // The figures behind it: the canary's requests and errors.
    assert!(
        text.contains("canary: ") && text.contains(" requests, "),
        "{text}"
    );
    let all = got.lock().expect("lock").clone();
    let texts: Vec<&str> = all.iter().filter_map(|m| m["text"].as_str()).collect();
    assert!(
        texts
            .iter()
            .any(|t| t.contains(":rocket:") && t.contains("`v2`")),
        "{texts:#?}"
    );
    // Slack's default events leave out canary steps.
    assert!(
        !texts.iter().any(|t| t.contains(":arrow_forward:")),
        "{texts:#?}"
    );
    assert!(!app.daemon_log().contains("slacktokensecret"));
}
