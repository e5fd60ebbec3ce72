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
        &with_service_keys("driver = \"docker\""),
        6,
        10
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
