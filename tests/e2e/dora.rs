//! DORA metrics from a history made by real deploys through a real daemon:
//! deploys with `--commit` and `CUTOVER_COMMIT_TIME`, a canary promoted, an
//! operator's rollback, a deploy whose instances never became healthy, a
//! canary aborted after it took traffic. `cutover dora --json` and the
//! daemon's gauges are checked against figures worked out here from the
//! times the history recorded. Also the commit time from `git log` in the
//! config's folder, and bad input.

use std::process::{Command, Output};
use std::thread::JoinHandle;
use std::time::Duration;

use jiff::{SignedDuration, Timestamp};
use serde_json::Value;

use crate::common::{Release, TestApp, ok, stderr, stdout};

/// Canary steps that only an operator moves on.
const CANARY: &str = r#"
[service.web.rollout]
strategy = "canary"
steps = [50, 100]
step_duration = "60s"
check_interval = "250ms"
analysis = { max_error_rate = 0.02, min_requests = 20 }
"#;

/// `cutover ARGS` with extra environment variables.
fn command(app: &TestApp, args: &[&str], vars: &[(&str, String)]) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cutover"));
    command
        .arg("-c")
        .arg(app.config())
        .args(args)
        .env("NO_COLOR", "1")
        .env_remove("CUTOVER_COMMIT_TIME")
        .envs(vars.iter().map(|(k, v)| (*k, v.as_str())));
    command
}

fn run(app: &TestApp, args: &[&str], vars: &[(&str, String)]) -> Output {
    command(app, args, vars).output().expect("run cutover")
}

fn background(app: &TestApp, args: &[&str], vars: &[(&str, String)]) -> JoinHandle<Output> {
    let mut command = command(app, args, vars);
    std::thread::spawn(move || command.output().expect("run cutover"))
}

/// A canary deploy of `version` that an operator ends after its first step
/// with `then` (`promote --full` or `abort`).
fn canary(
    app: &TestApp,
    version: &str,
    args: &[&str],
    vars: &[(&str, String)],
    then: &[&str],
) -> Output {
    let mut all = vec!["deploy", version];
    all.extend_from_slice(args);
    let deploy = background(app, &all, vars);
    app.wait_for_event(version, "step");
    ok(app, &app.cli(then));
    deploy.join().expect("join the deploy")
}

fn json_of(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout)
        .unwrap_or_else(|e| panic!("not JSON ({e}): {}\n{}", stdout(out), stderr(out)))
}

fn time(v: &Value) -> Timestamp {
    v.as_str()
        .unwrap_or_else(|| panic!("no time: {v}"))
        .parse()
        .expect("an RFC 3339 time")
}

fn seconds(from: Timestamp, to: Timestamp) -> f64 {
    (to.as_millisecond() - from.as_millisecond()) as f64 / 1000.0
}

fn ids(v: &Value) -> Vec<i64> {
    v.as_array()
        .unwrap_or_else(|| panic!("not a list: {v}"))
        .iter()
        .map(|i| i.as_i64().expect("an id"))
        .collect()
}

fn close(a: &Value, b: f64) -> bool {
    a.as_f64().is_some_and(|a| (a - b).abs() < 1e-6)
}

/// The value of the series `name{environment="production"}` in a scrape.
fn gauge(scrape: &str, name: &str) -> Option<f64> {
    let prefix = format!("{name}{{environment=\"production\"}} ");
    scrape
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .and_then(|v| v.trim().parse().ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dora_figures_match_the_history_worked_out_by_hand() {
    let app = TestApp::new("10m");
    app.append_config(CANARY);
    for v in ["v1", "v2", "v4", "v5"] {
        app.release(v, Release::Good);
    }
    app.release("v3", Release::FailsHealth);
    app.serve();
    // Whole seconds: what the history keeps (milliseconds) shows them as given.
    let now = Timestamp::from_second(Timestamp::now().as_second()).expect("now");
    let hours_ago = |h: i64| now - SignedDuration::from_hours(h);
    let c1 = hours_ago(3);
    let c2 = hours_ago(2);
    let sha1 = "1111111aaaaaaa";
    let sha2 = "2222222bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

    // 1. v1, the first release: RFC 3339 commit time.
    ok(
        &app,
        &run(
            &app,
            &["deploy", "v1", "--commit", sha1],
            &[("CUTOVER_COMMIT_TIME", c1.to_string())],
        ),
    );
    // 2. v2, a canary promoted: the commit time in unix seconds.
    let out = canary(
        &app,
        "v2",
        &["--commit", sha2],
        &[("CUTOVER_COMMIT_TIME", c2.as_second().to_string())],
        &["promote", "--full"],
    );
    ok(&app, &out);
    // 3. An operator rolls v2 back (v1 is warm).
    ok(&app, &app.cli(&["rollback"]));
    // 4. v3 never becomes healthy: it took no traffic.
    let out = app.cli(&["deploy", "v3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // 5. v4 takes canary traffic, then is aborted.
    let out = canary(&app, "v4", &[], &[], &["abort", "--reason", "looks wrong"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // 6. v5 without a commit: promoted.
    ok(&app, &canary(&app, "v5", &[], &[], &["promote", "--full"]));

    // What the history recorded, oldest first.
    let history = json_of(&app.cli(&["history", "--json", "--events", "--limit", "20"]));
    let mut list: Vec<Value> = history.as_array().expect("a list").clone();
    list.reverse();
    let d = |n: usize| &list[n - 1];
    let id = |n: usize| d(n)["id"].as_i64().expect("id");
    let kinds: Vec<(&str, &str, &str)> = (1..=6)
        .map(|n| {
            (
                d(n)["kind"].as_str().unwrap_or(""),
                d(n)["version"].as_str().unwrap_or(""),
                d(n)["state"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        kinds,
        vec![
            ("deploy", "v1", "succeeded"),
            ("deploy", "v2", "succeeded"),
            ("rollback", "v1", "succeeded"),
            ("deploy", "v3", "rolled_back"),
            ("deploy", "v4", "rolled_back"),
            ("deploy", "v5", "succeeded"),
        ],
        "{history:#}"
    );
    assert_eq!(d(1)["commit_sha"], sha1);
    assert_eq!(time(&d(1)["commit_time"]), c1);
    assert_eq!(d(2)["commit_sha"], sha2);
    assert_eq!(time(&d(2)["commit_time"]).as_second(), c2.as_second());
    assert!(d(5).get("commit_sha").is_none(), "{}", d(5));
    let finished = |n: usize| time(&d(n)["finished_at"]);
    // When a deployment first took traffic: its first switch or step.
    let served = |n: usize| {
        list[n - 1]["events"]
            .as_array()
            .expect("events")
            .iter()
            .find(|e| {
                ["switch", "switched", "step", "promoted", "kept", "finished"]
                    .contains(&e["kind"].as_str().unwrap_or(""))
            })
            .map(|e| time(&e["at"]))
    };
    assert_eq!(served(4), None, "v3 never took traffic");

    // By hand, with no fix window: deploys that succeeded are #1, #2, #6;
    // changes (deploys that took traffic) #1, #2, #5, #6; failed: #2 (the
    // operator rolled it back) and #5 (aborted after it took traffic).
    let lead = [
        seconds(c1, finished(1)),
        seconds(time(&d(2)["commit_time"]), finished(2)),
    ];
    let lead_median = (lead[0] + lead[1]) / 2.0;
    let restore2 = seconds(served(2).expect("v2 served"), finished(3));
    let restore5 = seconds(served(5).expect("v4 served"), finished(5));
    let restore_median = (restore2 + restore5) / 2.0;

    let out = app.cli(&["dora", "--json", "--fix-window", "0"]);
    ok(&app, &out);
    let report = json_of(&out);
    assert_eq!(report["fix_window_seconds"], 0);
    assert!(close(&report["period_days"], 30.0), "{report:#}");
    let since = time(&report["since"]);
    let until = time(&report["until"]);
    assert!(
        until >= finished(6) && seconds(since, until) > 30.0 * 86_400.0 - 1.0,
        "{report:#}"
    );
    let env = &report["environments"][0];
    assert_eq!(env["environment"], "production");
    let f = &env["deployment_frequency"];
    assert_eq!(ids(&f["deployments"]), vec![id(1), id(2), id(6)], "{env:#}");
    assert!(close(&f["per_day"], 3.0 / 30.0), "{env:#}");
    assert_eq!(f["band"], "medium");
    let l = &env["lead_time"];
    assert_eq!(ids(&l["deployments"]), vec![id(1), id(2)], "{env:#}");
    assert_eq!(ids(&l["without_commit_time"]), vec![id(6)]);
    assert!(
        close(&l["median_seconds"], lead_median),
        "{env:#} vs {lead_median}"
    );
    assert_eq!(l["band"], "elite");
    let c = &env["change_failure_rate"];
    assert_eq!(
        ids(&c["changes"]),
        vec![id(1), id(2), id(5), id(6)],
        "{env:#}"
    );
    assert_eq!(
        c["failures"],
        serde_json::json!([
            { "deployment": id(2), "how": "rolled_back_by_operator", "by": id(3) },
            { "deployment": id(5), "how": "rolled_back", "by": null },
        ]),
        "{env:#}"
    );
    assert!(close(&c["ratio"], 0.5));
    assert_eq!(c["band"], "low");
    let t = &env["time_to_restore"];
    assert_eq!(
        t["restores"].as_array().map(|r| r
            .iter()
            .map(|r| (r["failure"].as_i64(), r["restored_by"].as_i64()))
            .collect::<Vec<_>>()),
        Some(vec![(Some(id(2)), Some(id(3))), (Some(id(5)), Some(id(5)))]),
        "{env:#}"
    );
    assert!(
        close(&t["restores"][0]["seconds"], restore2),
        "{env:#} vs {restore2}"
    );
    assert!(
        close(&t["restores"][1]["seconds"], restore5),
        "{env:#} vs {restore5}"
    );
    assert!(close(&t["median_seconds"], restore_median), "{env:#}");
    assert_eq!(t["band"], "elite");
    assert_eq!(ids(&t["unrestored"]), Vec::<i64>::new());

    // With the default fix window (1 h), v1 counts as fixed by v2, which
    // started seconds after it ended: 3 of 4 changes failed.
    let out = app.cli(&["dora", "--json", "-e", "production"]);
    ok(&app, &out);
    let report = json_of(&out);
    assert_eq!(report["fix_window_seconds"], 3600);
    let c = &report["environments"][0]["change_failure_rate"];
    assert_eq!(
        c["failures"][0],
        serde_json::json!({ "deployment": id(1), "how": "fixed_within_window", "by": id(2) }),
        "{c:#}"
    );
    assert!(close(&c["ratio"], 0.75), "{c:#}");

    // The table, for people (and for a viewer).
    let viewer = app.token("grafana", "viewer");
    let out = app.cli_with_token(&viewer, &["dora"]);
    ok(&app, &out);
    let text = stdout(&out);
    eprintln!("$ cutover dora\n{text}");
    for line in [
        "environment production",
        "deployment frequency   0.10 a day",
        "medium",
        &format!("#{} rolled back by #{}", id(2), id(3)),
        &format!("#{} rolled back", id(5)),
        &format!("#{} fixed by #{} within 1h", id(1), id(2)),
        "75.0% (3 of 4)",
        "State of DevOps Report 2023",
    ] {
        assert!(text.contains(line), "no {line:?} in:\n{text}");
    }

    // The same figures as gauges (default fix window, last 30 days).
    let url = format!("http://127.0.0.1:{}/metrics", app.api_port);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    let mut scrape;
    loop {
        scrape = cutover_kit::http::fetch(&url)
            .await
            .map(|r| r.body)
            .unwrap_or_default();
        if gauge(&scrape, "cutover_dora_deployments_per_day")
            .is_some_and(|v| (v - 0.1).abs() < 1e-9)
        {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no DORA gauges:\n{scrape}"
        );
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    let value = |name: &str| gauge(&scrape, name).unwrap_or_else(|| panic!("no {name}:\n{scrape}"));
    assert!((value("cutover_dora_change_failure_ratio") - 0.75).abs() < 1e-9);
    assert!((value("cutover_dora_lead_time_seconds") - lead_median).abs() < 1e-3);
    // With the 1 h window v1 is a failure too, restored when v2 ended.
    assert!(value("cutover_dora_time_to_restore_seconds") > 0.0);
    for help in [
        "# HELP cutover_dora_deployments_per_day",
        "# TYPE cutover_dora_lead_time_seconds gauge",
        "# HELP cutover_dora_change_failure_ratio",
        "# HELP cutover_dora_time_to_restore_seconds",
    ] {
        assert!(scrape.contains(help), "no {help:?}:\n{scrape}");
    }
}

/// `git` in `dir` with a fixed identity and dates.
fn git(dir: &std::path::Path, args: &[&str], date: &str) -> String {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args([
            "-c",
            "user.name=Test",
            "-c",
            "user.email=test@example.com",
            "-c",
            "commit.gpgsign=false",
        ])
        .args(args)
        .env("GIT_COMMITTER_DATE", date)
        .env("GIT_AUTHOR_DATE", date)
        .output()
        .expect("run git");
    assert!(out.status.success(), "git {args:?}: {}", stderr(&out));
    stdout(&out).trim().to_owned()
}

#[test]
fn the_commit_time_comes_from_git_log_in_the_configs_folder() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    let dir = app.path();
    git(dir, &["init", "-q"], "2026-06-01T12:00:00Z");
    git(dir, &["add", "cutover.toml"], "2026-06-01T12:00:00Z");
    git(
        dir,
        &["commit", "-q", "-m", "first"],
        "2026-06-01T12:00:00Z",
    );
    git(dir, &["tag", "v1"], "2026-06-01T12:00:00Z");
    let first = git(dir, &["rev-parse", "HEAD"], "2026-06-01T12:00:00Z");
    git(
        dir,
        &["commit", "-q", "--allow-empty", "-m", "second"],
        "2026-07-15T08:30:00Z",
    );
    let second = git(dir, &["rev-parse", "HEAD"], "2026-07-15T08:30:00Z");
    app.serve();

    // The version is a tag: its commit and the commit's time.
    ok(&app, &run(&app, &["deploy", "v1"], &[]));
    let d = app.last_deployment();
    assert_eq!(d["commit_sha"], first.as_str(), "{d}");
    assert_eq!(d["commit_time"], "2026-06-01T12:00:00Z", "{d}");

    // --commit names a commit by a prefix: its time from git, the id as given.
    ok(
        &app,
        &run(&app, &["deploy", "v2", "--commit", &second[..10]], &[]),
    );
    let d = app.last_deployment();
    assert_eq!(d["commit_sha"], &second[..10], "{d}");
    assert_eq!(d["commit_time"], "2026-07-15T08:30:00Z", "{d}");

    // CUTOVER_COMMIT_TIME wins over git.
    ok(
        &app,
        &run(
            &app,
            &["deploy", "v1"],
            &[("CUTOVER_COMMIT_TIME", "1780000000".into())],
        ),
    );
    let d = app.last_deployment();
    assert_eq!(d["commit_time"], "2026-05-28T20:26:40Z", "{d}");

    // A version git does not know: no commit recorded, and no error.
    app.release("v9", Release::Good);
    ok(&app, &run(&app, &["deploy", "v9"], &[]));
    let d = app.last_deployment();
    assert!(
        d.get("commit_sha").is_none() && d.get("commit_time").is_none(),
        "{d}"
    );
}

#[test]
fn bad_input_is_refused_saying_what_to_write() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.serve();

    // A commit time that is neither RFC 3339 nor unix seconds: nothing is
    // deployed.
    let out = run(
        &app,
        &["deploy", "v1", "--commit", "abc1234"],
        &[("CUTOVER_COMMIT_TIME", "yesterday".into())],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("CUTOVER_COMMIT_TIME")
            && err.contains("RFC 3339")
            && err.contains("unix seconds"),
        "{err}"
    );
    // One in the future.
    let out = run(
        &app,
        &["deploy", "v1"],
        &[("CUTOVER_COMMIT_TIME", "2999-01-01T00:00:00Z".into())],
    );
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("in the future"), "{}", stderr(&out));
    // Not a commit id.
    let out = run(&app, &["--json", "deploy", "v1", "--commit", "main"], &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let answer = json_of(&out);
    assert_eq!(answer["error"], "usage", "{answer}");
    assert!(
        answer["message"]
            .as_str()
            .unwrap_or("")
            .contains("7 to 64 hexadecimal digits"),
        "{answer}"
    );
    let history = json_of(&app.cli(&["history", "--json"]));
    assert_eq!(history, serde_json::json!([]), "nothing was deployed");

    // The daemon checks too: a request that skips the CLI.
    let token = std::fs::read_to_string(app.path().join(".cutover/api.token")).expect("token");
    let (status, body) = app.api_call(
        Some(token.trim()),
        "POST",
        "/v1/deployments",
        Some(r#"{"version": "v1", "commit": "zzzzzzz"}"#),
    );
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    let (status, body) = app.api_call(
        Some(token.trim()),
        "POST",
        "/v1/deployments",
        Some(r#"{"version": "v1", "commit_time": "last tuesday"}"#),
    );
    assert_eq!(status, 400, "{body}");

    // A bad period or fix window: exit 2 before the daemon is asked.
    let out = app.cli(&["dora", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("write how long ago (30d, 12h, 90m) or a time"),
        "{}",
        stderr(&out)
    );
    let out = app.cli(&["dora", "--json", "--since", "2999-01-01T00:00:00Z"]);
    assert_eq!(out.status.code(), Some(2));
    assert_eq!(json_of(&out)["error"], "usage");
    let out = app.cli(&["dora", "--fix-window", "soon"]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr(&out).contains("--fix-window"), "{}", stderr(&out));
    let out = app.cli(&["dora", "-e", "nowhere"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    // And the API says the same to a client that skips the CLI.
    let (status, body) = app.api_call(Some(token.trim()), "GET", "/v1/dora?since=yesterday", None);
    assert_eq!(
        (status, body["error"].as_str()),
        (400, Some("bad_request")),
        "{body}"
    );
    assert!(
        body["message"].as_str().unwrap_or("").contains("30d"),
        "{body}"
    );

    // An empty history: every figure but the frequency is null.
    let report = json_of(&app.cli(&["dora", "--json"]));
    let env = &report["environments"][0];
    assert_eq!(env["deployment_frequency"]["per_day"], 0.0, "{report:#}");
    assert_eq!(env["lead_time"]["median_seconds"], Value::Null);
    assert_eq!(env["change_failure_rate"]["ratio"], Value::Null);
    assert_eq!(env["time_to_restore"]["band"], Value::Null);
}
