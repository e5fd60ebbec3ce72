//! Tests of what users see when `cutover.toml` is wrong: each kind of
//! problem, rendered without color and snapshotted, with file, line, column,
//! caret, label and help.

use std::env::VarError;
use std::path::Path;

use super::*;

fn no_variables(name: &str) -> Result<String, VarError> {
    match name {
        "PRESENT" => Ok("yes".to_owned()),
        _ => Err(VarError::NotPresent),
    }
}

/// The error for `source`, read as `cutover.toml`.
fn error(source: &str) -> ConfigError {
    match parse_with_env(source, Path::new("cutover.toml"), &no_variables) {
        Ok(config) => panic!("expected an error, got {config:#?}"),
        Err(err) => err,
    }
}

/// The one problem in `source`, rendered; also checks where it starts.
fn one_problem(source: &str, line: usize, column: usize) -> String {
    let err = error(source);
    let rendered = render(&err);
    let problems = err.problems();
    assert_eq!(problems.len(), 1, "{rendered}");
    assert_eq!(problems[0].line_column(), (line, column), "{rendered}");
    assert!(
        rendered.contains(&format!("[cutover.toml:{line}:{column}]")),
        "{rendered}"
    );
    assert!(problems[0].help_text().is_some(), "no help in {rendered}");
    rendered
}

/// A valid file with `extra` lines added to `[service.web]`.
fn with_service_keys(extra: &str) -> String {
    format!(
        "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./bin/hello\", \"--port\", \"{{port}}\"]\n{extra}\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n"
    )
}

#[test]
fn unknown_top_level_table() {
    let source = "[app]\nname = \"hello\"\n\n[databse.main]\nurl = \"x\"\n";
    insta::assert_snapshot!(one_problem(source, 4, 2));
}

#[test]
fn unknown_service_key_suggests_the_right_one() {
    insta::assert_snapshot!(one_problem(&with_service_keys("replica = 2"), 6, 1));
}

#[test]
fn unknown_key_in_inline_health_table() {
    insta::assert_snapshot!(one_problem(
        &with_service_keys("health = { path = \"/health\", intervall = \"1s\" }"),
        6,
        30
    ));
}

#[test]
fn wrong_type_for_a_count() {
    insta::assert_snapshot!(one_problem(&with_service_keys("replicas = \"two\""), 6, 12));
}

#[test]
fn wrong_type_for_command() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = \"./bin/hello --port {port}\"\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 5, 11));
}

#[test]
fn wrong_type_for_a_duration() {
    insta::assert_snapshot!(one_problem(&with_service_keys("drain_timeout = 30"), 6, 17));
}

#[test]
fn bad_duration_unit() {
    insta::assert_snapshot!(one_problem(
        &with_service_keys("drain_timeout = \"30x\""),
        6,
        17
    ));
}

#[test]
fn duration_without_unit() {
    insta::assert_snapshot!(one_problem(
        &with_service_keys("health = { interval = \"5\" }"),
        6,
        23
    ));
}

#[test]
fn zero_health_interval() {
    insta::assert_snapshot!(one_problem(
        &with_service_keys("health = { interval = \"0s\" }"),
        6,
        23
    ));
}

#[test]
fn bad_socket_address() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"localhost:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 8, 10));
}

#[test]
fn socket_address_without_port() {
    let source = "[app]\nname = \"hello\"\n\n[server]\nlisten = \"127.0.0.1\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 5, 10));
}

#[test]
fn missing_app_table() {
    let source = "[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 1, 1));
}

#[test]
fn missing_app_name() {
    let source = "[app]\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 1, 1));
}

#[test]
fn missing_environment_listen() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nrollback_window = \"5m\"\n";
    insta::assert_snapshot!(one_problem(source, 7, 1));
}

#[test]
fn missing_command_for_the_process_driver() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\nreplicas = 2\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 4, 1));
}

#[test]
fn empty_command() {
    insta::assert_snapshot!(one_problem(
        "[app]\nname = \"hello\"\n[service.web]\ncommand = []\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n",
        4,
        11
    ));
}

#[test]
fn no_environment() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n";
    insta::assert_snapshot!(one_problem(source, 1, 1));
}

#[test]
fn no_service() {
    let source =
        "[app]\nname = \"hello\"\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 1, 1));
}

#[test]
fn zero_replicas() {
    insta::assert_snapshot!(one_problem(&with_service_keys("replicas = 0"), 6, 12));
}

#[test]
fn too_many_replicas() {
    let err = error(&with_service_keys("replicas = 65"));
    assert!(render(&err).contains("`replicas` must be between 1 and 64"));
}

#[test]
fn zero_healthy() {
    insta::assert_snapshot!(one_problem(
        &with_service_keys("health = { healthy = 0 }"),
        6,
        22
    ));
}

#[test]
fn path_prefix_without_slash() {
    insta::assert_snapshot!(one_problem(
        &with_service_keys("path_prefix = \"api\""),
        6,
        15
    ));
}

#[test]
fn health_path_without_slash() {
    insta::assert_snapshot!(one_problem(
        &with_service_keys("health = { path = \"health\" }"),
        6,
        19
    ));
}

#[test]
fn two_environments_with_the_same_listen_address() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.staging]\nlisten = \"127.0.0.1:8080\"\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 11, 10));
}

#[test]
fn environments_clash_through_the_unspecified_address() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.staging]\nlisten = \"127.0.0.1:8080\"\n\n[environment.production]\nlisten = \"0.0.0.0:8080\"\n";
    let rendered = one_problem(source, 11, 10);
    assert!(rendered.contains("both listen on port 8080"), "{rendered}");
}

#[test]
fn environment_listen_equal_to_the_server_listen() {
    let source = "[app]\nname = \"hello\"\n\n[server]\nlisten = \"127.0.0.1:9000\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:9000\"\n";
    insta::assert_snapshot!(one_problem(source, 11, 10));
}

#[test]
fn environment_listen_equal_to_the_default_server_listen() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:7070\"\n";
    insta::assert_snapshot!(one_problem(source, 8, 10));
}

#[test]
fn unsupported_driver() {
    insta::assert_snapshot!(one_problem(
        &with_service_keys("driver = \"kubernetes\""),
        6,
        10
    ));
}

/// A valid docker service with `extra` lines added to `[service.web]`.
fn docker_service(extra: &str) -> String {
    format!(
        "[app]\nname = \"hello\"\n\n[service.web]\ndriver = \"docker\"\n{extra}\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n"
    )
}

#[test]
fn docker_service_without_an_image() {
    insta::assert_snapshot!(one_problem(&docker_service("port = 8080"), 4, 1));
}

#[test]
fn docker_http_service_without_a_port() {
    insta::assert_snapshot!(one_problem(
        &docker_service("image = \"hello:{version}\""),
        4,
        1
    ));
}

#[test]
fn command_with_the_docker_driver() {
    insta::assert_snapshot!(one_problem(
        &docker_service("image = \"hello:{version}\"\nport = 8080\ncommand = [\"./hello\"]"),
        8,
        11
    ));
}

#[test]
fn image_with_the_process_driver() {
    insta::assert_snapshot!(one_problem(
        &with_service_keys("image = \"hello:{version}\""),
        6,
        9
    ));
}

#[test]
fn bad_docker_values() {
    let source = docker_service(
        "image = \"hello:{version}\"\nport = 70000\nvolumes = [\"data\", \"data:rel\"]\nstop_signal = \"SIGNOPE\"\nresources = { memory = \"12x\", cpus = 0 }",
    );
    insta::assert_snapshot!(render(&error(&source)));
    assert_eq!(error(&source).problems().len(), 6);
}

#[test]
fn health_command_on_an_http_service() {
    insta::assert_snapshot!(one_problem(
        &with_service_keys("health = { command = [\"./check\"] }"),
        6,
        22
    ));
}

#[test]
fn kubernetes_driver_is_parsed_but_unsupported() {
    let source = "[app]\nname = \"hello\"\n[service.web]\ndriver = \"kubernetes\"\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    let rendered = one_problem(source, 4, 10);
    assert!(
        rendered.contains("driver `kubernetes` is not supported yet"),
        "{rendered}"
    );
}

#[test]
fn unknown_service_kind() {
    insta::assert_snapshot!(one_problem(&with_service_keys("kind = \"wrker\""), 6, 8));
}

#[test]
fn unset_environment_variable() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\", \"--db\", \"postgres://${DB_HOST}/shop\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 5, 41));
}

#[test]
fn unset_environment_variable_in_env_and_state() {
    let source = "[app]\nname = \"hello\"\n[state]\nurl = \"${STATE_URL}\"\n[service.web]\ncommand = [\"./web\"]\nenv = { TOKEN = \"${PRESENT}${TOKEN}\" }\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    let err = error(source);
    let problems = err.problems();
    assert_eq!(problems.len(), 2, "{}", render(&err));
    assert_eq!(problems[0].line_column(), (4, 8));
    assert_eq!(
        problems[0].message(),
        "environment variable `STATE_URL` is not set"
    );
    assert_eq!(problems[1].line_column(), (7, 28));
    assert_eq!(
        problems[1].message(),
        "environment variable `TOKEN` is not set"
    );
}

#[test]
fn unclosed_variable() {
    insta::assert_snapshot!(one_problem(
        &with_service_keys("env = { URL = \"http://${HOST:8080\" }"),
        6,
        23
    ));
}

#[test]
fn unsupported_state_url() {
    let source = "[app]\nname = \"hello\"\n[state]\nurl = \"mysql://db/state\"\n[service.web]\ncommand = [\"./web\"]\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 4, 7));
}

#[test]
fn two_services_on_the_same_route() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[service.api]\ncommand = [\"./api\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 7, 1));
}

#[test]
fn route_keys_on_a_worker() {
    let source = "[app]\nname = \"hello\"\n[service.web]\ncommand = [\"./web\"]\n[service.jobs]\nkind = \"worker\"\ncommand = [\"./jobs\"]\nhost = \"jobs.example\"\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 8, 8));
}

#[test]
fn invalid_service_name() {
    let source = "[app]\nname = \"hello\"\n[service.\"my web\"]\ncommand = [\"./web\"]\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 3, 10));
}

#[test]
fn toml_syntax_error() {
    let source = "[app]\nname = hello\n";
    insta::assert_snapshot!(one_problem(source, 2, 8));
}

#[test]
fn toml_duplicate_key() {
    insta::assert_snapshot!(one_problem(
        &with_service_keys("replicas = 2\nreplicas = 3"),
        7,
        1
    ));
}

#[test]
fn every_problem_is_reported_at_once_in_file_order() {
    let source = r#"[app]
name = "hello"

[service.web]
command = ["./web"]
replicas = 0
drain_timeout = "soon"

[environment.production]
listen = "127.0.0.1:8080"

[environment.staging]
listen = "127.0.0.1:8080"
rollback_window = "10 minutes please"
"#;
    let err = error(source);
    let lines: Vec<(usize, usize)> = err.problems().iter().map(Problem::line_column).collect();
    assert_eq!(lines, [(6, 12), (7, 17), (13, 10), (14, 19)]);
    insta::assert_snapshot!(render(&err));
}

/// A valid file whose `[service.web]` has a `[service.web.rollout]` table
/// (line 7) with `lines` from line 8 on.
fn with_rollout(lines: &str) -> String {
    with_service_keys(&format!("\n[service.web.rollout]\n{lines}"))
}

/// Like [`with_rollout`], with `strategy = "canary"` on line 8.
fn with_canary(lines: &str) -> String {
    with_rollout(&format!("strategy = \"canary\"\n{lines}"))
}

#[test]
fn steps_not_strictly_increasing() {
    insta::assert_snapshot!(one_problem(&with_canary("steps = [5, 50, 25, 100]"), 9, 17));
}

#[test]
fn a_repeated_step_is_not_increasing() {
    let rendered = one_problem(&with_canary("steps = [5, 50, 50, 100]"), 9, 17);
    assert!(
        rendered.contains("`rollout.steps` must be strictly increasing"),
        "{rendered}"
    );
}

#[test]
fn step_outside_1_to_100() {
    insta::assert_snapshot!(one_problem(&with_canary("steps = [0, 50, 100]"), 9, 10));
}

#[test]
fn steps_above_100_and_negative_are_out_of_range() {
    let err = error(&with_canary("steps = [-5, 50, 150]"));
    let problems = err.problems();
    let found: Vec<(&str, (usize, usize))> = problems
        .iter()
        .map(|problem| (problem.label(), problem.line_column()))
        .collect();
    // 150 is out of range; it is not also reported as "does not end at 100".
    assert_eq!(
        found,
        [("got -5", (9, 10)), ("got 150", (9, 18))],
        "{}",
        render(&err)
    );
}

#[test]
fn steps_not_ending_at_100() {
    insta::assert_snapshot!(one_problem(&with_canary("steps = [10, 50]"), 9, 14));
}

#[test]
fn empty_steps() {
    let rendered = one_problem(&with_canary("steps = []"), 9, 9);
    assert!(rendered.contains("`rollout.steps` is empty"), "{rendered}");
}

#[test]
fn steps_with_strategy_blue_green() {
    insta::assert_snapshot!(one_problem(
        &with_rollout("strategy = \"blue-green\"\nsteps = [5, 25, 50, 100]"),
        9,
        9
    ));
}

#[test]
fn steps_with_the_default_strategy() {
    insta::assert_snapshot!(one_problem(&with_rollout("steps = [5, 25, 50, 100]"), 8, 9));
}

#[test]
fn canary_on_a_worker() {
    let source = "[app]\nname = \"hello\"\n[service.web]\ncommand = [\"./web\"]\n[service.jobs]\nkind = \"worker\"\ncommand = [\"./jobs\"]\nrollout = { strategy = \"canary\" }\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 8, 24));
}

#[test]
fn thresholds_without_min_requests() {
    insta::assert_snapshot!(one_problem(
        &with_canary("analysis = { max_error_rate = 0.01, max_p95 = \"500ms\" }"),
        9,
        12
    ));
}

#[test]
fn thresholds_in_their_own_table_without_min_requests() {
    let source = with_canary("\n[service.web.rollout.analysis]\nmax_p99 = \"1s\"");
    let rendered = one_problem(&source, 10, 1);
    assert!(
        rendered.contains(
            "thresholds need min_requests: without it, 1 request could pass or fail a step"
        ),
        "{rendered}"
    );
}

#[test]
fn an_explicit_abort_error_rate_is_a_threshold_too() {
    let rendered = one_problem(&with_canary("analysis = { abort_error_rate = 0.2 }"), 9, 12);
    assert!(
        rendered.contains("thresholds need min_requests"),
        "{rendered}"
    );
}

#[test]
fn error_rate_outside_0_to_1() {
    insta::assert_snapshot!(one_problem(
        &with_canary("analysis = { max_error_rate = 5, min_requests = 50 }"),
        9,
        31
    ));
}

#[test]
fn every_rate_is_checked_to_be_between_0_and_1() {
    let err = error(&with_canary(
        "analysis = { max_error_rate_increase = -0.1, abort_error_rate = 1.5, min_requests = 50 }",
    ));
    let messages: Vec<&str> = err.problems().iter().map(Problem::message).collect();
    assert_eq!(
        messages,
        [
            "`rollout.analysis.max_error_rate_increase` must be between 0 and 1",
            "`rollout.analysis.abort_error_rate` must be between 0 and 1",
        ],
        "{}",
        render(&err)
    );
}

#[test]
fn nan_is_not_a_rate() {
    let rendered = one_problem(
        &with_canary("analysis = { max_error_rate = nan, min_requests = 50 }"),
        9,
        31,
    );
    assert!(rendered.contains("got NaN"), "{rendered}");
}

#[test]
fn latency_ratio_below_1() {
    insta::assert_snapshot!(one_problem(
        &with_canary("analysis = { max_latency_ratio = 0.8, min_requests = 50 }"),
        9,
        34
    ));
}

#[test]
fn wrong_type_for_a_rate() {
    insta::assert_snapshot!(one_problem(
        &with_canary("analysis = { max_error_rate = \"1%\", min_requests = 50 }"),
        9,
        31
    ));
}

#[test]
fn zero_min_requests() {
    let rendered = one_problem(
        &with_canary("analysis = { max_error_rate = 0.01, min_requests = 0 }"),
        9,
        52,
    );
    assert!(
        rendered.contains("`rollout.analysis.min_requests` must be between 1 and 1000000000"),
        "{rendered}"
    );
}

#[test]
fn zero_latency_threshold() {
    let rendered = one_problem(
        &with_canary("analysis = { max_p95 = \"0ms\", min_requests = 50 }"),
        9,
        24,
    );
    assert!(
        rendered.contains("`rollout.analysis.max_p95` must be greater than zero"),
        "{rendered}"
    );
}

#[test]
fn zero_step_duration() {
    insta::assert_snapshot!(one_problem(&with_canary("step_duration = \"0s\""), 9, 17));
}

#[test]
fn zero_check_interval() {
    insta::assert_snapshot!(one_problem(&with_canary("check_interval = \"0ms\""), 9, 18));
}

#[test]
fn check_interval_not_shorter_than_step_duration() {
    insta::assert_snapshot!(one_problem(
        &with_canary("step_duration = \"10s\"\ncheck_interval = \"10s\""),
        10,
        18
    ));
}

#[test]
fn check_interval_not_shorter_than_the_default_step_duration() {
    let rendered = one_problem(&with_canary("check_interval = \"1m\""), 9, 18);
    assert!(
        rendered.contains("step_duration defaults to 30s"),
        "{rendered}"
    );
}

#[test]
fn step_duration_not_longer_than_the_default_check_interval() {
    insta::assert_snapshot!(one_problem(
        &with_canary("step_duration = \"500ms\""),
        9,
        17
    ));
}

#[test]
fn a_zero_duration_is_not_compared_again() {
    // Only the zero is reported, not also "check_interval must be shorter".
    let source = with_canary("step_duration = \"1s\"\ncheck_interval = \"0s\"");
    let rendered = one_problem(&source, 10, 18);
    assert!(rendered.contains("must be greater than zero"), "{rendered}");
}

#[test]
fn abort_error_rate_below_max_error_rate() {
    insta::assert_snapshot!(one_problem(
        &with_canary(
            "analysis = { max_error_rate = 0.05, abort_error_rate = 0.01, min_requests = 50 }"
        ),
        9,
        56
    ));
}

#[test]
fn unknown_strategy() {
    insta::assert_snapshot!(one_problem(&with_rollout("strategy = \"canery\""), 8, 12));
}

#[test]
fn an_unknown_strategy_does_not_also_reject_steps() {
    let rendered = one_problem(
        &with_rollout("strategy = \"gradual\"\nsteps = [5, 100]"),
        8,
        12,
    );
    assert!(
        rendered.contains("expected \"blue-green\" or \"canary\""),
        "{rendered}"
    );
}

#[test]
fn unknown_policies() {
    let err = error(&with_canary(
        "on_inconclusive = \"wait\"\non_daemon_restart = \"rollbak\"",
    ));
    let problems = err.problems();
    assert_eq!(problems.len(), 2, "{}", render(&err));
    assert_eq!(
        problems[0].message(),
        "unknown `on_inconclusive` policy `wait`"
    );
    assert_eq!(
        problems[0].help_text(),
        Some("expected \"fail\" or \"pause\"")
    );
    assert_eq!(
        problems[1].message(),
        "unknown `on_daemon_restart` policy `rollbak`"
    );
    assert_eq!(
        problems[1].help_text(),
        Some("expected \"rollback\" or \"resume\"; did you mean \"rollback\"?")
    );
}

#[test]
fn unknown_rollout_key_suggests_the_right_one() {
    insta::assert_snapshot!(one_problem(&with_canary("step = [5, 100]"), 9, 1));
}

#[test]
fn negative_max_inconclusive() {
    let rendered = one_problem(&with_canary("max_inconclusive = -1"), 9, 20);
    assert!(
        rendered.contains("`rollout.max_inconclusive` must be between 0 and 100"),
        "{rendered}"
    );
}

/// A valid file with services `web` (line 4), `api` (line 8) and `jobs`
/// (line 12), each with the given `after` line (lines 6, 10 and 15).
fn with_after(web: &str, api: &str, jobs: &str) -> String {
    format!(
        "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n{web}\n\n[service.api]\ncommand = [\"./api\"]\n{api}\npath_prefix = \"/api\"\n[service.jobs]\nkind = \"worker\"\ncommand = [\"./jobs\"]\n{jobs}\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n"
    )
}

#[test]
fn after_names_an_unknown_service() {
    insta::assert_snapshot!(one_problem(
        &with_after("after = [\"jobs\", \"apii\"]", "", ""),
        6,
        18
    ));
}

#[test]
fn after_names_an_unknown_service_not_close_to_any() {
    let rendered = one_problem(&with_after("after = [\"database\"]", "", ""), 6, 10);
    assert!(
        rendered.contains("expected the name of another service: `api`, `jobs`"),
        "{rendered}"
    );
}

#[test]
fn after_in_the_only_service() {
    let rendered = one_problem(&with_service_keys("after = [\"api\"]"), 6, 10);
    assert!(rendered.contains("`web` is the only service"), "{rendered}");
}

#[test]
fn after_names_itself() {
    insta::assert_snapshot!(one_problem(&with_after("after = [\"web\"]", "", ""), 6, 10));
}

#[test]
fn after_forms_a_cycle() {
    let source = "[app]\nname = \"hello\"\n\n[service.api]\ncommand = [\"./api\"]\npath_prefix = \"/api\"\nafter = [\"web\"]\n\n[service.web]\ncommand = [\"./web\"]\nafter = [\"api\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem(source, 11, 10));
}

#[test]
fn a_longer_cycle_is_named_in_full() {
    let source = with_after(
        "after = [\"jobs\"]",
        "after = [\"web\"]",
        "after = [\"api\"]",
    );
    let rendered = one_problem(&source, 15, 10);
    assert!(
        rendered.contains("`after` forms a cycle: jobs → api → web → jobs"),
        "{rendered}"
    );
}

#[test]
fn wrong_type_for_after() {
    let rendered = one_problem(&with_service_keys("after = \"api\""), 6, 9);
    assert!(rendered.contains("expected an array"), "{rendered}");
}

/// A valid file with `lines` as its `[database.main]` table.
fn with_database(lines: &str) -> String {
    format!(
        "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n\n[database.main]\n{lines}\n"
    )
}

#[test]
fn database_without_url() {
    insta::assert_snapshot!(one_problem(&with_database("migrations = \"db\""), 10, 1));
}

#[test]
fn unsupported_database_url() {
    insta::assert_snapshot!(one_problem(
        &with_database("url = \"mysql://root:hunter2@db/app\""),
        11,
        7
    ));
}

#[test]
fn database_url_with_an_unset_variable() {
    insta::assert_snapshot!(one_problem(
        &with_database("url = \"${DATABASE_URL}\""),
        11,
        8
    ));
}

#[test]
fn unknown_database_key_suggests_the_right_one() {
    insta::assert_snapshot!(one_problem(
        &with_database("url = \"sqlite://a.db\"\nlock_timout = \"1s\""),
        12,
        1
    ));
}

#[test]
fn zero_lock_timeout() {
    insta::assert_snapshot!(one_problem(
        &with_database("url = \"sqlite://a.db\"\nlock_timeout = \"0s\""),
        12,
        16
    ));
}

#[test]
fn retries_out_of_range() {
    insta::assert_snapshot!(one_problem(
        &with_database("url = \"sqlite://a.db\"\nretries = -1"),
        12,
        11
    ));
}

#[test]
fn backup_without_recipients() {
    insta::assert_snapshot!(one_problem(
        &with_database("url = \"sqlite://a.db\"\nbackup = { before_deploy = true }"),
        12,
        10
    ));
}

#[test]
fn backup_with_a_bad_recipient() {
    insta::assert_snapshot!(one_problem(
        &with_database("url = \"sqlite://a.db\"\nbackup = { recipients = [\"age1nope\"] }"),
        12,
        26
    ));
}

// --- the edge (issue 11) ------------------------------------------------------

/// A valid file with `extra` lines added to `[environment.production]`.
fn with_environment_keys(extra: &str) -> String {
    format!(
        "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8443\"\n{extra}\n"
    )
}

/// 1-based line and column of the first `needle` in `source`.
fn place_of(source: &str, needle: &str) -> (usize, usize) {
    let at = source
        .find(needle)
        .unwrap_or_else(|| panic!("`{needle}` is not in the source"));
    let before = &source[..at];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

/// The one problem in `source`, which must point at the first `needle`.
fn one_problem_at(source: &str, needle: &str) -> String {
    let (line, column) = place_of(source, needle);
    one_problem(source, line, column)
}

#[test]
fn redirect_listen_without_tls() {
    let source = with_environment_keys("redirect_listen = \"127.0.0.1:8080\"");
    insta::assert_snapshot!(one_problem_at(&source, "\"127.0.0.1:8080\""));
}

#[test]
fn hsts_without_tls() {
    let source = with_environment_keys("hsts = \"365d\"");
    insta::assert_snapshot!(one_problem_at(&source, "\"365d\""));
}

#[test]
fn tls_without_a_certificate_source() {
    let source = with_environment_keys("tls = {}");
    insta::assert_snapshot!(one_problem_at(&source, "{}"));
}

#[test]
fn tls_cert_without_key() {
    let source = with_environment_keys("tls = { cert = \"site.pem\" }");
    insta::assert_snapshot!(one_problem_at(&source, "\"site.pem\""));
}

#[test]
fn tls_certificates_item_without_cert() {
    let source = with_environment_keys(
        "tls = { certificates = [{ cert = \"a.pem\", key = \"a.key\" }, { key = \"b.key\" }] }",
    );
    let rendered = one_problem_at(&source, "\"b.key\"");
    assert!(
        rendered.contains("`tls.certificates[1]` has a `key` but no `cert`"),
        "{rendered}"
    );
}

#[test]
fn acme_without_domains() {
    let source = with_environment_keys("tls = { acme = { email = \"ops@example.com\" } }");
    insta::assert_snapshot!(one_problem_at(&source, "{ email"));
}

#[test]
fn acme_with_an_invalid_email() {
    let source = with_environment_keys(
        "tls = { acme = { email = \"ops at example.com\", domains = [\"example.com\"] } }",
    );
    insta::assert_snapshot!(one_problem_at(&source, "\"ops at"));
}

#[test]
fn acme_with_a_wildcard_domain() {
    let source = with_environment_keys(
        "tls = { acme = { email = \"ops@example.com\", domains = [\"*.example.com\"] } }",
    );
    insta::assert_snapshot!(one_problem_at(&source, "\"*.example.com\""));
}

#[test]
fn acme_http01_without_redirect_listen() {
    let source = with_environment_keys(
        "tls = { acme = { email = \"ops@example.com\", domains = [\"example.com\"], challenge = \"http-01\" } }",
    );
    insta::assert_snapshot!(one_problem_at(&source, "\"http-01\""));
}

#[test]
fn acme_directory_without_https() {
    let source = with_environment_keys(
        "tls = { acme = { email = \"ops@example.com\", domains = [\"example.com\"], directory = \"http://ca.test/dir\" } }",
    );
    let rendered = one_problem_at(&source, "\"http://ca.test/dir\"");
    assert!(rendered.contains("not an https URL"), "{rendered}");
}

#[test]
fn track_override_with_neither_key() {
    let source = with_environment_keys("track_override = { trusted_sources = [] }");
    insta::assert_snapshot!(one_problem_at(&source, "{ trusted_sources"));
}

#[test]
fn track_secret_too_short_is_reported_without_its_value() {
    // PRESENT expands to "yes".
    let source = with_environment_keys("track_override = { secret = \"${PRESENT}\" }");
    let rendered = one_problem_at(&source, "\"${PRESENT}\"");
    assert!(
        rendered.contains("`track_override.secret` is 3 bytes, shorter than 16"),
        "{rendered}"
    );
    // The message names the length only; the source line shows `${PRESENT}`.
    assert!(!rendered.contains("yes"), "{rendered}");
    insta::assert_snapshot!(rendered);
}

#[test]
fn trusted_proxy_with_host_bits() {
    let source = with_environment_keys("trusted_proxies = [\"10.0.0.0/8\", \"10.1.2.3/8\"]");
    insta::assert_snapshot!(one_problem_at(&source, "\"10.1.2.3/8\""));
}

#[test]
fn trusted_proxy_that_is_not_an_address() {
    let source = with_environment_keys("trusted_proxies = [\"proxy.internal\"]");
    let rendered = one_problem_at(&source, "\"proxy.internal\"");
    assert!(rendered.contains("CIDR"), "{rendered}");
}

#[test]
fn limits_must_be_positive_and_sizes_valid() {
    let source = with_environment_keys(
        "[environment.production.limits]\nfirst_request_timeout = \"0s\"\nmax_connections = 0\nmax_request_body = \"12x\"",
    );
    let err = error(&source);
    insta::assert_snapshot!(render(&err));
    assert_eq!(err.problems().len(), 3);
}

#[test]
fn h2c_upgrade_is_refused() {
    insta::assert_snapshot!(one_problem_at(
        &with_service_keys("allowed_upgrades = [\"websocket\", \"h2c\"]"),
        "\"h2c\""
    ));
}

#[test]
fn max_request_body_on_a_worker() {
    let source = "[app]\nname = \"hello\"\n\n[service.jobs]\nkind = \"worker\"\ncommand = [\"./jobs\"]\nmax_request_body = \"1m\"\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    let rendered = one_problem_at(source, "\"1m\"");
    assert!(
        rendered.contains("`max_request_body` applies only to http services"),
        "{rendered}"
    );
}

#[test]
fn api_off_loopback_without_tls() {
    let source = "[app]\nname = \"hello\"\n\n[server]\nlisten = \"0.0.0.0:7070\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    let rendered = one_problem_at(source, "\"0.0.0.0:7070\"");
    assert!(
        rendered.contains("allow_plaintext") && rendered.contains("[server] tls"),
        "{rendered}"
    );
    insta::assert_snapshot!(rendered);
}

#[test]
fn redirect_listen_on_another_environments_listener() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.staging]\nlisten = \"127.0.0.1:8080\"\n\n[environment.production]\nlisten = \"127.0.0.1:8443\"\nredirect_listen = \"0.0.0.0:8080\"\ntls = { cert = \"site.pem\", key = \"site.key\" }\n";
    insta::assert_snapshot!(one_problem_at(source, "\"0.0.0.0:8080\""));
}

#[test]
fn metrics_listen_on_the_api_address() {
    let source = "[app]\nname = \"hello\"\n\n[server]\nlisten = \"127.0.0.1:7171\"\nmetrics_listen = \"127.0.0.1:7171\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem_at(source, "\"127.0.0.1:7171\"\n\n"));
}

#[test]
fn dashboard_listen_on_the_api_address() {
    let source = "[app]\nname = \"hello\"\n\n[server]\nlisten = \"127.0.0.1:7171\"\ndashboard_listen = \"127.0.0.1:7171\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    let rendered = one_problem_at(source, "\"127.0.0.1:7171\"\n\n");
    assert!(
        rendered
            .contains("the dashboard's listener ([server] dashboard_listen) is the same address"),
        "{rendered}"
    );
}

#[test]
fn dashboard_listen_off_loopback_without_tls() {
    let source = "[app]\nname = \"hello\"\n\n[server]\ndashboard_listen = \"0.0.0.0:9091\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    let rendered = one_problem_at(source, "\"0.0.0.0:9091\"");
    assert!(
        rendered.contains("the dashboard would listen on 0.0.0.0:9091 as plain HTTP, off loopback"),
        "{rendered}"
    );
    assert!(rendered.contains("allow_plaintext"), "{rendered}");
    // allow_plaintext opens it, as for the API.
    let allowed = source.replace("[server]\n", "[server]\nallow_plaintext = true\n");
    let config = parse_with_env(&allowed, Path::new("cutover.toml"), &no_variables)
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    assert!(config.server.dashboard);
    assert_eq!(config.server.dashboard_listen.map(|a| a.port()), Some(9091));
}

#[test]
fn dashboard_keys_resolve_and_default_on() {
    let base = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    let config = parse_with_env(base, Path::new("cutover.toml"), &no_variables)
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    assert!(config.server.dashboard);
    assert_eq!(config.server.dashboard_listen, None);
    assert_eq!(
        config.server.dashboard_session,
        std::time::Duration::from_secs(12 * 3600)
    );
    let off = base.replace(
        "[service.web]",
        "[server]\ndashboard = false\ndashboard_session = \"30m\"\n\n[service.web]",
    );
    let config = parse_with_env(&off, Path::new("cutover.toml"), &no_variables)
        .unwrap_or_else(|e| panic!("{}", render(&e)));
    assert!(!config.server.dashboard);
    assert_eq!(
        config.server.dashboard_session,
        std::time::Duration::from_secs(1800)
    );
    assert!(!config.server.dashboard_plaintext_refused());
}

#[test]
fn two_redirect_listeners_on_one_port() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.staging]\nlisten = \"127.0.0.1:8080\"\nredirect_listen = \"127.0.0.1:8000\"\ntls = { cert = \"s.pem\", key = \"s.key\" }\n\n[environment.production]\nlisten = \"127.0.0.1:8443\"\nredirect_listen = \"127.0.0.1:8000\"\ntls = { cert = \"p.pem\", key = \"p.key\" }\n";
    let at = source.rfind("\"127.0.0.1:8000\"").expect("second redirect");
    let rendered = {
        let err = error(source);
        assert_eq!(err.problems().len(), 1, "{}", render(&err));
        assert_eq!(err.problems()[0].span().start, at, "{}", render(&err));
        render(&err)
    };
    assert!(rendered.contains("same address"), "{rendered}");
}

#[test]
fn unknown_tls_key_suggests_the_right_one() {
    let source = with_environment_keys("tls = { certs = [] }");
    let rendered = one_problem_at(&source, "certs");
    assert!(rendered.contains("certificates"), "{rendered}");
}

/// A valid file with two environments and `production_keys` /
/// `staging_keys` added to each.
fn with_environments(production_keys: &str, staging_keys: &str) -> String {
    format!(
        "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./bin/hello\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n{production_keys}\n\n[environment.staging]\nlisten = \"127.0.0.1:8081\"\n{staging_keys}\n"
    )
}

#[test]
fn promote_from_must_name_another_environment() {
    let unknown = one_problem(&with_environments("promote_from = \"stagign\"", ""), 9, 16);
    assert!(
        unknown.contains("`promote_from` names an unknown environment `stagign`"),
        "{unknown}"
    );
    assert!(unknown.contains("did you mean `staging`?"), "{unknown}");
    let itself = one_problem(
        &with_environments("promote_from = \"production\"", ""),
        9,
        16,
    );
    assert!(itself.contains("promotes from itself"), "{itself}");
}

#[test]
fn promote_from_cycles_are_refused_once() {
    let source = with_environments(
        "promote_from = \"staging\"",
        "promote_from = \"production\"",
    );
    let rendered = one_problem(&source, 13, 16);
    assert!(
        rendered.contains("`promote_from` forms a cycle: staging → production → staging"),
        "{rendered}"
    );
}

#[test]
fn soak_needs_promote_from_and_windows_must_parse() {
    let soak = one_problem(&with_environments("soak = \"30m\"", ""), 9, 8);
    assert!(soak.contains("`soak` needs `promote_from`"), "{soak}");
    let window = one_problem(
        &with_environments(
            "deploy_windows = [\"Mon-Thu 09:00-16:00 Europe/Berlin\", \"Mon-Fry 09:00-16:00 UTC\"]",
            "",
        ),
        9,
        56,
    );
    assert!(
        window.contains("`Mon-Fry 09:00-16:00 UTC` is not a deploy window"),
        "{window}"
    );
    assert!(window.contains("`Fry` is not a day"), "{window}");
    let empty = one_problem(&with_environments("deploy_windows = []", ""), 9, 18);
    assert!(empty.contains("`deploy_windows` is empty"), "{empty}");
    let artifact = one_problem(&with_service_keys("artifacts = [\"\"]"), 6, 14);
    assert!(artifact.contains("an artifact path is empty"), "{artifact}");
}

#[test]
fn preview_listen_on_the_environments_own_listener() {
    let source = with_environment_keys("preview_listen = \"127.0.0.1:8443\"");
    let (line, column) = place_of(&source, "preview_listen");
    insta::assert_snapshot!(one_problem(
        &source,
        line,
        column + "preview_listen = ".len()
    ));
}

#[test]
fn unknown_switch_mode() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\nrollout = { switch = \"manually\" }\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    insta::assert_snapshot!(one_problem_at(source, "\"manually\""));
}

/// A valid swarm service with `extra` lines added to `[service.web]`.
fn swarm_service(extra: &str) -> String {
    format!(
        "[app]\nname = \"hello\"\n\n[service.web]\ndriver = \"swarm\"\nimage = \"hello:{{version}}\"\nport = 8080\n{extra}\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n"
    )
}

#[test]
fn swarm_keys_are_checked_where_they_are_written() {
    // `swarm` settings on another driver.
    let source = docker_service(
        "image = \"hello:{version}\"\nport = 8080\nswarm = { constraints = [\"node.role == manager\"] }",
    );
    let rendered = one_problem_at(&source, "{ constraints");
    assert!(
        rendered.contains("`swarm` applies only to the swarm driver"),
        "{rendered}"
    );
    // Volumes are not supported with swarm yet.
    let source = swarm_service("volumes = [\"data:/data\"]");
    let rendered = one_problem_at(&source, "[\"data:/data\"]");
    assert!(
        rendered.contains("`volumes` is not supported by the swarm driver yet"),
        "{rendered}"
    );
    // The rolling update's keys of a worker.
    let source = swarm_service("swarm = { update_parallelism = 0 }");
    let rendered = one_problem_at(&source, "0 }");
    assert!(
        rendered.contains("`swarm.update_parallelism` must be between 1 and 64"),
        "{rendered}"
    );
    let source = swarm_service("swarm = { update_delay = \"soon\" }");
    let rendered = one_problem_at(&source, "\"soon\"");
    assert!(rendered.contains("swarm.update_delay"), "{rendered}");
    let source = swarm_service("swarm = { update_monitor = -1 }");
    let rendered = one_problem_at(&source, "-1 }");
    assert!(rendered.contains("update_monitor"), "{rendered}");
    let source = swarm_service("swarm = { update_failure_action = \"continue\" }");
    let rendered = one_problem_at(&source, "\"continue\"");
    assert!(
        rendered.contains("unknown `swarm.update_failure_action` `continue`"),
        "{rendered}"
    );
    assert!(rendered.contains(r#"expected "rollback""#), "{rendered}");
    // An empty health command; a command at all.
    let source = swarm_service("swarm = { health_command = [] }");
    let rendered = one_problem_at(&source, "[] }");
    assert!(
        rendered.contains("`swarm.health_command` is empty"),
        "{rendered}"
    );
    let source = swarm_service("command = [\"./web\"]");
    let rendered = one_problem_at(&source, "[\"./web\"]");
    assert!(
        rendered.contains("`command` does not apply to the swarm driver"),
        "{rendered}"
    );
}

#[test]
fn a_swarm_service_needs_a_port_and_an_image() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ndriver = \"swarm\"\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    let rendered = render(&error(source));
    assert!(
        rendered.contains("service `web` has no `image`"),
        "{rendered}"
    );
    assert!(
        rendered.contains("the swarm driver needs the port the container listens on"),
        "{rendered}"
    );
}
