//! The daemon's `/metrics` on a real daemon: a scrape taken during a
//! canary passes `promtool check metrics` and carries the series
//! docs/observability.md lists with the right labels; the counters tally
//! the history (a rollback, the deploys' outcomes) and stand where they
//! were after a restart; two environments with a service of the same name
//! keep separate series; and every metric the Grafana dashboard and the
//! alert rules in `contrib/` use is one a real scrape has.

use std::collections::BTreeSet;
use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cutover_kit::ports;

use crate::common::{Release, TestApp, ok, stderr, stdout};

/// GET `/metrics` on the API (open on loopback).
async fn scrape(app: &TestApp) -> String {
    let url = format!("http://127.0.0.1:{}/metrics", app.api_port);
    let reply = cutover_kit::http::fetch(&url)
        .await
        .unwrap_or_else(|e| panic!("GET {url}: {e}"));
    assert!(reply.is_success(), "GET {url}: {}", reply.body);
    reply.body + "\n"
}

/// The value of the sample `series` (name and labels exactly as rendered).
fn value(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
}

/// Every sample's metric name in a scrape.
fn sample_names(text: &str) -> BTreeSet<String> {
    text.lines()
        .filter(|l| !l.starts_with('#') && !l.trim().is_empty())
        .filter_map(|l| l.split(['{', ' ']).next())
        .map(str::to_owned)
        .collect()
}

/// `promtool check metrics` on `text`: its complaints, if any.
fn promtool_check_metrics(text: &str) -> Result<(), String> {
    let mut child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run promtool (Debian's prometheus package; scripts/test installs it)");
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("write the scrape");
    let out = child.wait_with_output().expect("promtool");
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    if out.status.success() && said.trim().is_empty() {
        Ok(())
    } else {
        Err(said)
    }
}

/// `deploy VERSION --no-wait` as alice, approved by bob.
fn deploy_approved(app: &TestApp, version: &str) {
    let out = app.cli_as("alice", &["deploy", version, "--no-wait", "--json"]);
    ok(app, &out);
    let answer: serde_json::Value = serde_json::from_slice(&out.stdout).expect("deploy json");
    let id = answer["id"].as_i64().expect("id").to_string();
    ok(app, &app.cli_as("bob", &["approve", &id]));
}

/// A canary app whose production needs one approval, with a database
/// backed up before each deploy; v1 deployed.
fn canary_app() -> TestApp {
    let app = TestApp::new("1s");
    let key = app.path().join("key.txt");
    let out = app.cli(&["backup", "keygen", "-o", key.to_str().expect("UTF-8 path")]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recipient = stdout(&out).trim().to_owned();
    // The config ends with [environment.production]: the key goes there.
    app.append_config(&format!(
        r#"approvals = {{ required = 1, expires = "1h" }}

[service.web.rollout]
strategy = "canary"
steps = [50, 100]
step_duration = "2s"
check_interval = "250ms"
analysis = {{ max_error_rate = 0.02, max_p95 = "150ms", min_requests = 10, abort_error_rate = 0.1 }}

[database.main]
url = "sqlite://app.db"
migrations = "migrations"
backup = {{ before_deploy = true, dir = "backups", recipients = ["{recipient}"] }}
"#
    ));
    std::fs::create_dir_all(app.path().join("migrations")).expect("migrations dir");
    std::fs::write(
        app.path().join("migrations/0001_create_users.sql"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    )
    .expect("migration");
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.release("v3", Release::Errors(0.5));
    app.release("v4", Release::Good);
    app.serve();
    deploy_approved(&app, "v1");
    app.wait_for_state("succeeded");
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_scrape_during_a_canary_passes_promtool_and_the_counters_survive_a_restart() {
    let app = canary_app();
    let mut scrapes = Vec::new();
    let load = app.load(4);

    // During v2's canary: 50 % on the canary.
    deploy_approved(&app, "v2");
    app.wait_for_event("v2", "step");
    let weight = r#"cutover_canary_weight_ratio{environment="production",service="web"}"#;
    let canary_ok = r#"cutover_proxy_requests_total{environment="production",proxy="public",service="web",track="canary",code="200"}"#;
    let deadline = Instant::now() + Duration::from_secs(20);
    let during = loop {
        let text = scrape(&app).await;
        if value(&text, weight) == Some(0.5) && text.contains(canary_ok) {
            break text;
        }
        assert!(
            Instant::now() < deadline,
            "no scrape at 50 % with canary traffic:\n{text}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    // The daemon's own series of this scrape, for the test's log.
    let own: Vec<&str> = during
        .lines()
        .filter(|l| l.starts_with("cutover_") && !l.starts_with("cutover_proxy_"))
        .filter(|l| !l.contains("_bucket{") && !l.ends_with(" 0"))
        .collect();
    eprintln!(
        "scrape during the canary (daemon series, non-zero):\n{}",
        own.join("\n")
    );
    promtool_check_metrics(&during)
        .unwrap_or_else(|e| panic!("promtool check metrics:\n{e}\n--- scrape ---\n{during}"));
    for series in [
        r#"cutover_release_info{environment="production",service="web",version="v1",track="stable"} 1"#,
        r#"cutover_release_info{environment="production",service="web",version="v2",track="canary"} 1"#,
        r#"cutover_deployment_held{environment="production"} 0"#,
        r#"cutover_deployments_total{environment="production",outcome="succeeded"} 1"#,
        r#"cutover_rollbacks_total{environment="production",reason="error_rate"} 0"#,
        r#"cutover_instance_restarts_total{environment="production",service="web"} 0"#,
        "# TYPE cutover_deployment_duration_seconds histogram",
        r#"cutover_deployment_duration_seconds_count{environment="production",outcome="succeeded"} 1"#,
        "# TYPE cutover_proxy_request_duration_seconds histogram",
    ] {
        assert!(during.contains(series), "no {series} in\n{during}");
    }
    assert!(
        during.contains(&format!(
            "cutover_build_info{{version=\"{}\"}} 1",
            env!("CARGO_PKG_VERSION")
        )),
        "{during}"
    );
    // The backup v2's deploy took before its migrations.
    let backup_at = r#"cutover_backup_last_success_timestamp_seconds{environment="production",database="main"}"#;
    let at = value(&during, backup_at).unwrap_or_else(|| panic!("no {backup_at} in\n{during}"));
    let now = jiff::Timestamp::now().as_second() as f64;
    assert!(
        (now - 120.0..=now + 1.0).contains(&at),
        "backup at {at}, now {now}"
    );
    let size = value(
        &during,
        r#"cutover_backup_size_bytes{environment="production",database="main"}"#,
    );
    assert!(size.is_some_and(|s| s > 0.0), "{during}");
    let serving = value(
        &during,
        r#"cutover_instances{environment="production",service="web",state="serving"}"#,
    );
    assert!(serving.is_some_and(|n| n >= 2.0), "{during}");
    scrapes.push(during);
    app.wait_for_state("succeeded");

    // v3 fails its canary: a rollback by the fast check.
    deploy_approved(&app, "v3");
    app.wait_for_state("rolled_back");
    let after = scrape(&app).await;
    let _ = load.stop().await;
    let expect = [
        (
            r#"cutover_deployments_total{environment="production",outcome="succeeded"}"#,
            2.0,
        ),
        (
            r#"cutover_deployments_total{environment="production",outcome="rolled_back"}"#,
            1.0,
        ),
        (
            r#"cutover_rollbacks_total{environment="production",reason="error_rate"}"#,
            1.0,
        ),
        (
            r#"cutover_deployment_duration_seconds_count{environment="production",outcome="succeeded"}"#,
            2.0,
        ),
        (
            r#"cutover_canary_weight_ratio{environment="production",service="web"}"#,
            0.0,
        ),
        (
            r#"cutover_release_info{environment="production",service="web",version="v2",track="stable"}"#,
            1.0,
        ),
    ];
    for (series, want) in expect {
        assert_eq!(value(&after, series), Some(want), "{series} in\n{after}");
    }
    let passed = value(
        &after,
        r#"cutover_analysis_verdicts_total{environment="production",service="web",verdict="pass"}"#,
    );
    assert!(passed.is_some_and(|n| n >= 1.0), "{after}");
    assert!(
        !after.contains(r#"version="v3""#),
        "a rolled back version is not serving: {after}"
    );
    promtool_check_metrics(&after).unwrap_or_else(|e| panic!("promtool:\n{e}\n{after}"));

    // A restarted daemon counts the same history: no reset for Prometheus.
    app.stop_daemon();
    app.serve();
    let restarted = scrape(&app).await;
    for (series, want) in expect.iter().take(4) {
        assert_eq!(
            value(&restarted, series),
            Some(*want),
            "{series} after a restart:\n{restarted}"
        );
    }
    assert_eq!(
        value(
            &restarted,
            r#"cutover_analysis_verdicts_total{environment="production",service="web",verdict="pass"}"#
        ),
        passed
    );
    scrapes.push(after);

    // A deploy that waits for its approval.
    let out = app.cli_as("alice", &["deploy", "v4", "--no-wait", "--json"]);
    ok(&app, &out);
    let waiting = scrape(&app).await;
    let since = value(
        &waiting,
        r#"cutover_deployment_waiting_since_timestamp_seconds{environment="production",waiting_for="approval"}"#,
    );
    assert!(
        since.is_some_and(
            |s| (now - 60.0..=jiff::Timestamp::now().as_second() as f64 + 1.0).contains(&s)
        ),
        "{waiting}"
    );
    promtool_check_metrics(&waiting).unwrap_or_else(|e| panic!("promtool:\n{e}\n{waiting}"));
    scrapes.push(waiting);
    scrapes.push(restarted);

    // Every metric the dashboard and the alert rules use is exported.
    let exported: BTreeSet<String> = scrapes.iter().flat_map(|s| sample_names(s)).collect();
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let used = contrib_metric_names(root);
    assert!(used.len() >= 10, "too few names found: {used:?}");
    let missing: Vec<&String> = used
        .iter()
        .filter(|name| !exported.contains(*name))
        .collect();
    assert!(
        missing.is_empty(),
        "contrib/ uses metrics no scrape has: {missing:?}\nexported: {exported:?}"
    );
}

/// The metric names the dashboard's queries (panels, variables,
/// annotations) and the alert rules use.
fn contrib_metric_names(root: &Path) -> BTreeSet<String> {
    let dashboard = std::fs::read_to_string(root.join("contrib/grafana/cutover.json"))
        .expect("read the dashboard");
    let dashboard: serde_json::Value = serde_json::from_str(&dashboard).expect("dashboard JSON");
    let mut queries = Vec::new();
    collect_queries(&dashboard, &mut queries);
    assert!(queries.len() >= 15, "too few queries found: {queries:?}");
    let rules = std::fs::read_to_string(root.join("contrib/prometheus/cutover-alerts.yml"))
        .expect("read the alert rules");
    // The rules' `expr:` values, one line each in this file; the rest
    // (descriptions) names commands, not metrics.
    let exprs: Vec<String> = rules
        .lines()
        .filter_map(|l| l.trim().strip_prefix("expr:"))
        .map(|e| e.trim().to_owned())
        .collect();
    assert_eq!(exprs.len(), 5, "{rules}");
    queries.extend(exprs);
    queries.iter().flat_map(|q| metric_names(q)).collect()
}

/// Every `expr`, `query` or `definition` string in the dashboard.
fn collect_queries(v: &serde_json::Value, out: &mut Vec<String>) {
    match v {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                match (k.as_str(), v) {
                    ("expr" | "query" | "definition", serde_json::Value::String(s)) => {
                        out.push(s.clone());
                    }
                    _ => collect_queries(v, out),
                }
            }
        }
        serde_json::Value::Array(list) => list.iter().for_each(|v| collect_queries(v, out)),
        _ => {}
    }
}

/// The `cutover_…` identifiers of a PromQL expression.
fn metric_names(expr: &str) -> Vec<String> {
    let mut names = Vec::new();
    let mut rest = expr;
    while let Some(at) = rest.find("cutover_") {
        let before = rest[..at].chars().next_back();
        let tail = &rest[at..];
        let end = tail
            .find(|c: char| !(c.is_ascii_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(tail.len());
        if !before.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_') {
            names.push(tail[..end].to_owned());
        }
        rest = &tail[end..];
    }
    names
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_environments_with_one_service_name_keep_separate_series() {
    let app = TestApp::new("1s");
    let free = ports::free_ports(2).expect("free ports");
    let (staging_port, preview_port) = (free[0], free[1]);
    app.append_config(&format!(
        "\n[environment.staging]\nlisten = \"127.0.0.1:{staging_port}\"\npreview_listen = \"127.0.0.1:{preview_port}\"\nrollback_window = \"1s\"\n"
    ));
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve();
    ok(&app, &app.cli(&["deploy", "v1", "-e", "production"]));
    ok(&app, &app.cli(&["deploy", "v2", "-e", "staging"]));
    let production = app.proxy_url();
    let staging = format!("http://127.0.0.1:{staging_port}/");
    for _ in 0..7 {
        assert_eq!(
            crate::common::fetch(&production).await.as_deref(),
            Some("hello from v1")
        );
    }
    for _ in 0..3 {
        assert_eq!(
            crate::common::fetch(&staging).await.as_deref(),
            Some("hello from v2")
        );
    }
    // A smoke test on staging's preview: its own series, not user traffic.
    let preview = format!("http://127.0.0.1:{preview_port}/");
    assert_eq!(
        crate::common::fetch(&preview).await.as_deref(),
        Some("hello from v2")
    );
    let text = scrape(&app).await;
    let requests = |env: &str| {
        value(
            &text,
            &format!(
                r#"cutover_proxy_requests_total{{environment="{env}",proxy="public",service="web",track="stable",code="200"}}"#
            ),
        )
    };
    assert_eq!(requests("production"), Some(7.0), "{text}");
    assert_eq!(requests("staging"), Some(3.0), "{text}");
    let smoke = r#"cutover_proxy_requests_total{environment="staging",proxy="preview",service="web",track="stable",code="200"}"#;
    assert_eq!(value(&text, smoke), Some(1.0), "{text}");
    for series in [
        r#"cutover_release_info{environment="production",service="web",version="v1",track="stable"} 1"#,
        r#"cutover_release_info{environment="staging",service="web",version="v2",track="stable"} 1"#,
        r#"cutover_deployments_total{environment="production",outcome="succeeded"} 1"#,
        r#"cutover_deployments_total{environment="staging",outcome="succeeded"} 1"#,
        r#"cutover_proxy_request_duration_seconds_count{environment="staging",proxy="public",service="web",track="stable"} 3"#,
    ] {
        assert!(text.contains(series), "no {series} in\n{text}");
    }
    // No series of a per-service proxy metric lacks its environment.
    for line in text
        .lines()
        .filter(|l| l.starts_with("cutover_proxy_requests_total"))
    {
        assert!(line.contains("environment=\""), "{line}");
    }
    promtool_check_metrics(&text).unwrap_or_else(|e| panic!("promtool:\n{e}\n{text}"));
}

/// `promtool ARGS…` in `contrib/prometheus`; fails with what it said.
fn promtool_in_contrib(args: &[&str]) {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("contrib/prometheus");
    let out = Command::new("promtool")
        .args(args)
        .current_dir(&dir)
        .output()
        .expect("run promtool (Debian's prometheus package; scripts/test installs it)");
    assert!(
        out.status.success(),
        "promtool {args:?}:\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn the_alert_rules_pass_promtool_check_and_their_unit_tests() {
    promtool_in_contrib(&["check", "rules", "cutover-alerts.yml"]);
    // Each alert fires on the series that should fire it, and not before.
    promtool_in_contrib(&["test", "rules", "cutover-alerts.test.yml"]);
}
