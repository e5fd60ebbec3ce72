//! What a hostile or careless client sends (issue 12): version labels outside
//! the documented pattern are refused by the CLI (exit 2) and by the API (400
//! `bad_request`) before anything starts; `requested_by` with newlines and
//! escape sequences is ignored (who asked is the token's name), so it
//! neither prints in `cutover history` nor forges a line of the daemon's log; every rejection of the API —
//! axum's own included — is the JSON error shape; `--json` commands print a
//! JSON error on stdout when they fail. Requests are raw HTTP over a TCP
//! socket, so nothing in between fixes them up.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use serde_json::Value;

use crate::common::{Release, TestApp, ok, stderr, stdout};

/// An answer: status and body.
struct Answer {
    status: u16,
    content_type: String,
    body: String,
}

/// Sends `head` (request line and headers, without the final blank line)
/// and `body` to the app's API, with `Connection: close`, and reads the
/// whole answer.
fn raw(app: &TestApp, head: &str, body: &[u8]) -> Answer {
    let mut stream = TcpStream::connect(("127.0.0.1", app.api_port)).expect("connect to the API");
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let request = format!(
        "{head}\r\nHost: 127.0.0.1:{}\r\nConnection: close\r\n\r\n",
        app.api_port
    );
    stream.write_all(request.as_bytes()).expect("send head");
    // The server may answer (413) before reading a body: a failed write is fine.
    let _ = stream.write_all(body);
    let mut bytes = Vec::new();
    let _ = stream.read_to_end(&mut bytes);
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status in {head:?}"));
    let content_type = head
        .lines()
        .find_map(|l| {
            l.to_ascii_lowercase()
                .strip_prefix("content-type:")
                .map(|v| v.trim().to_owned())
        })
        .unwrap_or_default();
    Answer {
        status,
        content_type,
        body: body.to_owned(),
    }
}

fn token(app: &TestApp) -> String {
    std::fs::read_to_string(app.path().join(".cutover").join("api.token"))
        .expect("token")
        .trim()
        .to_owned()
}

/// `POST path` with a JSON body and the token.
fn post_json(app: &TestApp, path: &str, body: &str) -> Answer {
    raw(
        app,
        &format!(
            "POST {path} HTTP/1.1\r\nAuthorization: Bearer {}\r\nContent-Type: application/json\r\nContent-Length: {}",
            token(app),
            body.len()
        ),
        body.as_bytes(),
    )
}

/// Asserts `answer` is the documented error shape with `status` and `code`;
/// returns its message.
fn assert_error(what: &str, answer: &Answer, status: u16, code: &str) -> String {
    assert_eq!(answer.status, status, "{what}: {}", answer.body);
    assert!(
        answer.content_type.starts_with("application/json"),
        "{what}: content type {:?}, body {}",
        answer.content_type,
        answer.body
    );
    let body: Value = serde_json::from_str(&answer.body)
        .unwrap_or_else(|e| panic!("{what}: not JSON ({e}): {}", answer.body));
    let object = body.as_object().expect("an object");
    assert_eq!(object.len(), 2, "{what}: {body}");
    assert_eq!(body["error"], code, "{what}: {body}");
    let message = body["message"].as_str().expect("a message").to_owned();
    assert!(!message.is_empty(), "{what}");
    message
}

/// The JSON a failed `--json` command printed on stdout.
fn json_error(out: &std::process::Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "stdout is not a JSON error ({e}): {:?} / stderr {}",
            stdout(out),
            stderr(out)
        )
    })
}

#[test]
fn labels_outside_the_pattern_are_refused_by_the_cli_and_the_api_and_nothing_starts() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.serve();

    for label in ["-rf", "--help", "v1;rm", "v 1", &"a".repeat(129)] {
        let out = app.cli(&["deploy", "--", label]);
        assert_eq!(out.status.code(), Some(2), "{label}: {}", stderr(&out));
        let err = stderr(&out);
        assert!(err.contains("invalid version"), "{label}: {err}");
        assert!(err.contains("not starting with '-'"), "{label}: {err}");
    }
    let out = app.cli(&["--json", "deploy", "--", "-rf"]);
    assert_eq!(out.status.code(), Some(2));
    let body = json_error(&out);
    assert_eq!(body["error"], "usage", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("starts with '-'")),
        "{body}"
    );
    let out = app.cli(&["logs", "web", "--release=-rf"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // The API refuses the same labels, whoever sends them.
    for label in ["-rf", "--help", "v1\nv2", ""] {
        let body = serde_json::json!({ "version": label, "requested_by": "test" }).to_string();
        let answer = post_json(&app, "/v1/deployments", &body);
        let message = assert_error(label, &answer, 400, "bad_request");
        assert!(message.contains("invalid version"), "{message}");
    }
    let answer = raw(
        &app,
        &format!(
            "GET /v1/logs?service=web&release=-rf HTTP/1.1\r\nAuthorization: Bearer {}",
            token(&app)
        ),
        b"",
    );
    assert_error("logs release", &answer, 400, "bad_request");

    // Nothing was started or recorded.
    assert!(app.instance_pids().is_empty(), "{:?}", app.instance_pids());
    let out = app.cli(&["history", "--json"]);
    ok(&app, &out);
    assert_eq!(json_error(&out), serde_json::json!([]));
    // And a label of the pattern still deploys.
    app.deploy_ok("v1");
}

#[test]
fn every_api_rejection_is_the_json_error_shape() {
    let app = TestApp::new("10m");
    app.serve();
    let token = token(&app);
    let auth = format!("Authorization: Bearer {token}");
    let post = |content_type: &str, body: &str| {
        raw(
            &app,
            &format!(
                "POST /v1/deployments HTTP/1.1\r\n{auth}\r\nContent-Type: {content_type}\r\nContent-Length: {}",
                body.len()
            ),
            body.as_bytes(),
        )
    };

    let m = assert_error(
        "bad JSON",
        &post("application/json", "{not json"),
        400,
        "bad_request",
    );
    assert!(m.contains("README"), "{m}");
    assert_error(
        "missing field",
        &post("application/json", r#"{"environment":"production"}"#),
        400,
        "bad_request",
    );
    assert_error(
        "wrong field type",
        &post("application/json", r#"{"version":1,"requested_by":"x"}"#),
        400,
        "bad_request",
    );
    let m = assert_error(
        "text body",
        &post("text/plain", r#"{"version":"v1","requested_by":"x"}"#),
        415,
        "unsupported_media_type",
    );
    assert!(m.contains("application/json"), "{m}");
    let m = assert_error(
        "no content type",
        &raw(
            &app,
            &format!("POST /v1/rollback HTTP/1.1\r\n{auth}\r\nContent-Length: 2"),
            b"{}",
        ),
        415,
        "unsupported_media_type",
    );
    assert!(m.contains("application/json"), "{m}");
    // One byte over the 64 KiB limit: the daemon reads it all before it
    // answers, so no unread byte makes the connection reset under the answer.
    let big = "x".repeat(64 * 1024 + 1);
    assert_error(
        "too large",
        &post("application/json", &big),
        413,
        "payload_too_large",
    );
    assert_error(
        "unknown route",
        &raw(
            &app,
            &format!("GET /v1/nothing-here HTTP/1.1\r\n{auth}"),
            b"",
        ),
        404,
        "not_found",
    );
    assert_error(
        "unknown route outside /v1",
        &raw(&app, "GET /nothing HTTP/1.1", b""),
        404,
        "not_found",
    );
    assert_error(
        "wrong method",
        &raw(&app, &format!("DELETE /v1/status HTTP/1.1\r\n{auth}"), b""),
        405,
        "method_not_allowed",
    );
    assert_error(
        "wrong method outside /v1",
        &raw(&app, "POST /healthz HTTP/1.1\r\nContent-Length: 0", b""),
        405,
        "method_not_allowed",
    );
    assert_error(
        "bad path parameter",
        &raw(
            &app,
            &format!("GET /v1/deployments/abc HTTP/1.1\r\n{auth}"),
            b"",
        ),
        400,
        "bad_request",
    );
    assert_error(
        "bad query",
        &raw(
            &app,
            &format!("GET /v1/deployments?limit=many HTTP/1.1\r\n{auth}"),
            b"",
        ),
        400,
        "bad_request",
    );
    assert_error(
        "missing query field",
        &raw(&app, &format!("GET /v1/events HTTP/1.1\r\n{auth}"), b""),
        400,
        "bad_request",
    );
    assert_error(
        "unknown deployment",
        &raw(
            &app,
            &format!("GET /v1/deployments/999 HTTP/1.1\r\n{auth}"),
            b"",
        ),
        404,
        "not_found",
    );
    assert_error(
        "no token",
        &raw(&app, "GET /v1/status HTTP/1.1", b""),
        401,
        "unauthorized",
    );
    // What works still works.
    let answer = raw(&app, &format!("GET /v1/status HTTP/1.1\r\n{auth}"), b"");
    assert_eq!(answer.status, 200, "{}", answer.body);
}

#[test]
fn a_hostile_requested_by_is_stored_clean_prints_clean_and_forges_no_log_line() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.serve();
    let hostile = "mallory\nINFO forged: deployment 1 succeeded\u{1b}[31m\u{7}";

    let body = serde_json::json!({ "version": "v1", "requested_by": hostile }).to_string();
    let answer = post_json(&app, "/v1/deployments", &body);
    assert_eq!(answer.status, 202, "{}", answer.body);
    app.wait_for_state("succeeded");
    // An operator command logs who asked, even when it is refused.
    let body = serde_json::json!({ "requested_by": hostile, "reason": hostile }).to_string();
    let answer = post_json(&app, "/v1/rollout/pause", &body);
    assert_error("pause with nothing running", &answer, 400, "bad_request");
    let long = "é".repeat(1000);
    let body = serde_json::json!({ "requested_by": long }).to_string();
    assert_error(
        "rollback with nothing to go back to",
        &post_json(&app, "/v1/rollback", &body),
        400,
        "bad_request",
    );

    // Who asked is the token's name (the token file: "admin"); the
    // client's requested_by is ignored (issue 15).
    let stored = app.last_deployment();
    assert_eq!(stored["requested_by"], "admin", "{stored}");

    let out = app.cli(&["history", "--events"]);
    ok(&app, &out);
    let text = stdout(&out);
    assert!(
        !text.chars().any(|c| c.is_control() && c != '\n'),
        "{text:?}"
    );
    assert!(text.contains("by admin"), "{text}");
    assert!(!text.contains("mallory"), "{text}");
    assert!(
        !text.lines().any(|l| l.starts_with("INFO forged")),
        "{text}"
    );

    let log = app.daemon_log();
    assert!(!log.contains('\u{1b}'), "an escape reached the log:\n{log}");
    assert!(
        !log.lines()
            .any(|l| l.trim_start().starts_with("INFO forged")),
        "a forged line in the daemon log:\n{log}"
    );
    let operator = log
        .lines()
        .find(|l| l.contains("operator command"))
        .unwrap_or_else(|| panic!("no operator command line:\n{log}"));
    assert!(operator.contains("admin"), "{operator}");
    assert!(!log.contains("mallory"), "{log}");
}

#[test]
fn json_commands_print_a_json_error_on_stdout_when_they_fail() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);

    // No daemon yet: unreachable (exit 5). The token file does not exist
    // either until the daemon made it, so start it once and stop it.
    app.serve();
    app.stop_daemon();
    for args in [
        &["--json", "status"][..],
        &["--json", "history"],
        &["--json", "rollback"],
        &["--json", "deploy", "v1"],
    ] {
        let out = app.cli(args);
        assert_eq!(out.status.code(), Some(5), "{args:?}: {}", stderr(&out));
        let body = json_error(&out);
        assert_eq!(body["error"], "unreachable", "{args:?}: {body}");
        assert!(body["message"].as_str().is_some_and(|m| !m.is_empty()));
    }

    app.serve();
    // Nothing to roll back to: the daemon's code, exit 2.
    let out = app.cli(&["--json", "rollback"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let body = json_error(&out);
    assert_eq!(body["error"], "bad_request", "{body}");
    assert!(
        body["message"]
            .as_str()
            .is_some_and(|m| m.contains("nothing has been deployed")),
        "{body}"
    );
    // An operator command with nothing to steer.
    let out = app.cli(&["--json", "pause"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert_eq!(json_error(&out)["error"], "bad_request");
    // A refused label, before the daemon is asked.
    let out = app.cli(&["--json", "deploy", "--", "--help"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_error(&out)["error"], "usage");
    // A command that succeeds prints its answer only.
    let out = app.cli(&["--json", "history"]);
    ok(&app, &out);
    assert_eq!(json_error(&out), serde_json::json!([]));
}

#[test]
fn preflight_reports_the_running_daemons_open_file_limit() {
    let app = TestApp::new("10m");
    let check = |app: &TestApp| {
        let out = app.cli(&["--json", "preflight"]);
        let checks: Value = serde_json::from_slice(&out.stdout)
            .unwrap_or_else(|e| panic!("preflight JSON ({e}): {}", stdout(&out)));
        checks
            .as_array()
            .and_then(|list| list.iter().find(|c| c["name"] == "open files limit"))
            .cloned()
            .unwrap_or_else(|| panic!("no open-file check: {checks}"))
    };
    let cli = check(&app);
    let detail = cli["detail"].as_str().unwrap_or("");
    assert!(
        detail.contains("no daemon answers") && detail.contains("this CLI's limit"),
        "{cli}"
    );
    assert!(
        detail.contains("the daemon raises its soft limit to"),
        "{cli}"
    );

    // The daemon runs with a lower limit than this shell: preflight says so.
    let _daemon = LimitedDaemon::start(&app, 2048);
    let daemon = check(&app);
    assert_eq!(
        daemon["detail"], "the running daemon's: soft 2048, hard 2048, below 65536",
        "{daemon}"
    );
    assert_eq!(daemon["warning"], true, "{daemon}");
}

/// A daemon started with its open-file limit (soft and hard) at `limit`;
/// stopped when dropped.
struct LimitedDaemon(std::process::Child);

impl LimitedDaemon {
    fn start(app: &TestApp, limit: u64) -> LimitedDaemon {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(app.path().join("daemon.log"))
            .expect("daemon log");
        let child = std::process::Command::new("sh")
            .arg("-c")
            .arg(format!("ulimit -n {limit} && exec \"$0\" \"$@\""))
            .arg(env!("CARGO_BIN_EXE_cutover"))
            .arg("-c")
            .arg(app.config())
            .arg("serve")
            .env("NO_COLOR", "1")
            .stdin(std::process::Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start daemon");
        let daemon = LimitedDaemon(child);
        cutover_kit::wait::Wait::up_to(Duration::from_secs(20))
            .until(|| TcpStream::connect(("127.0.0.1", app.api_port)).is_ok())
            .unwrap_or_else(|e| panic!("daemon did not start ({e}):\n{}", app.daemon_log()));
        daemon
    }
}

impl Drop for LimitedDaemon {
    fn drop(&mut self) {
        let _ = nix::sys::signal::kill(
            nix::unistd::Pid::from_raw(self.0.id() as i32),
            nix::sys::signal::Signal::SIGTERM,
        );
        let _ = self.0.wait();
    }
}
