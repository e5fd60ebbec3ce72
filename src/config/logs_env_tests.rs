//! Tests of `[logs]` (and a service's `logs`), `inherit_env`, and what
//! `cutover check` shows of secrets (the summary and `--json`).

use std::env::VarError;
use std::path::Path;

use super::*;

fn vars(name: &str) -> Result<String, VarError> {
    match name {
        "DB_PASSWORD" => Ok("hunter2".to_owned()),
        _ => Err(VarError::NotPresent),
    }
}

fn parse_it(source: &str) -> Result<Config, ConfigError> {
    parse_with_env(source, Path::new("/srv/hello/cutover.toml"), &vars)
}

fn file(top: &str, service: &str) -> String {
    format!(
        "[app]\nname = \"hello\"\n{top}\n[service.web]\ncommand = [\"./bin/hello\", \"--port\", \"{{port}}\"]\n{service}\n\n[service.api]\nkind = \"worker\"\ncommand = [\"./bin/api\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n"
    )
}

/// The one problem of `source`, rendered, checked to start at `line`.
fn problem(source: &str, line: usize) -> String {
    let err = parse_it(source).expect_err("an error");
    let rendered = render(&err);
    let problems = err.problems();
    assert_eq!(problems.len(), 1, "{rendered}");
    assert_eq!(problems[0].line_column().0, line, "{rendered}");
    assert!(problems[0].help_text().is_some(), "{rendered}");
    rendered
}

#[test]
fn logs_default_to_10_mib_and_5_files() {
    let config = parse_it(&file("", "")).expect("valid");
    for service in config.services.values() {
        assert_eq!(
            service.logs,
            LogsConfig {
                max_size: 10 * 1024 * 1024,
                max_files: 5
            }
        );
        assert!(!service.inherit_env);
    }
}

#[test]
fn a_service_s_logs_override_the_top_level_table_key_by_key() {
    let config = parse_it(&file(
        "\n[logs]\nmax_size = \"10MiB\"\nmax_files = 2\n",
        "logs = { max_size = \"64k\" }\ninherit_env = true",
    ))
    .expect("valid");
    assert_eq!(
        config.services["web"].logs,
        LogsConfig {
            max_size: 64 * 1024,
            max_files: 2
        }
    );
    assert_eq!(
        config.services["api"].logs,
        LogsConfig {
            max_size: 10 * 1024 * 1024,
            max_files: 2
        }
    );
    assert!(config.services["web"].inherit_env);
    assert!(!config.services["api"].inherit_env);
    let json = serde_json::to_value(&config).expect("serializes");
    assert_eq!(json["services"]["web"]["logs"]["max_size"], "64k");
    assert_eq!(json["services"]["api"]["logs"]["max_files"], 2);
    let summary = config.summary();
    assert!(summary.contains("logs rotated at 64k, 2 kept"), "{summary}");
    assert!(summary.contains("inherit_env"), "{summary}");
    let none = parse_it(&file("\n[logs]\nmax_files = 0\n", "")).expect("0 keeps none");
    assert_eq!(none.services["web"].logs.max_files, 0);
}

#[test]
fn bad_log_settings_are_located() {
    let rendered = problem(&file("\n[logs]\nmax_size = \"12 parsecs\"\n", ""), 5);
    assert!(
        rendered.contains("`logs.max_size` is not a size"),
        "{rendered}"
    );
    let rendered = problem(&file("\n[logs]\nmax_size = 100\n", ""), 5);
    assert!(
        rendered.contains("`logs.max_size` must be at least 1k"),
        "{rendered}"
    );
    let rendered = problem(&file("\n[logs]\nmax_size = \"2048g\"\n", ""), 5);
    assert!(
        rendered.contains("`logs.max_size` must be at most 1024g"),
        "{rendered}"
    );
    let rendered = problem(&file("", "logs = { max_files = 101 }"), 6);
    assert!(
        rendered.contains("`logs.max_files` must be between 0 and 100"),
        "{rendered}"
    );
    let rendered = problem(&file("", "logs = { max_files = -1 }"), 6);
    assert!(rendered.contains("`logs.max_files`"), "{rendered}");
    let rendered = problem(&file("", "logs = { size = \"1m\" }"), 6);
    assert!(rendered.contains("size"), "{rendered}");
}

#[test]
fn inherit_env_is_for_the_process_driver_only() {
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ndriver = \"docker\"\nimage = \"hello:{version}\"\nport = 8080\ninherit_env = true\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    let rendered = problem(source, 8);
    assert!(
        rendered.contains("`inherit_env` applies only to the process driver"),
        "{rendered}"
    );
}

#[test]
fn check_shows_no_env_value_and_no_password() {
    let source = "[app]\nname = \"hello\"\n\n[state]\nurl = \"postgres://cutover:${DB_PASSWORD}@db/cutover?sslmode=require\"\n\n[service.web]\ncommand = [\"./bin/hello\", \"--db=postgres://app:${DB_PASSWORD}@db/app\", \"https://hooks.example/x?token=${DB_PASSWORD}\"]\nenv = { SECRET_KEY = \"${DB_PASSWORD}\", PLAIN = \"not secret either\" }\n\n[service.worker]\nkind = \"worker\"\ncommand = [\"./bin/worker\"]\nhealth = { command = [\"./bin/check\", \"postgres://u:${DB_PASSWORD}@db/app\"] }\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    let config = parse_it(source).expect("valid");
    // The resolved values keep the secret: instances need it.
    assert_eq!(config.services["web"].env["SECRET_KEY"], "hunter2");
    let summary = config.summary();
    let json = serde_json::to_string_pretty(&config).expect("serializes");
    for shown in [&summary, &json] {
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("not secret either"), "{shown}");
        assert!(shown.contains("SECRET_KEY"), "{shown}");
        assert!(shown.contains("postgres://app:***@db/app"), "{shown}");
    }
    assert!(
        summary.contains("postgres://cutover:***@db/cutover?sslmode=require"),
        "{summary}"
    );
    assert!(summary.contains("env PLAIN, SECRET_KEY"), "{summary}");
    let json: serde_json::Value = serde_json::from_str(&json).expect("json");
    assert_eq!(json["services"]["web"]["env"]["SECRET_KEY"], "***");
    assert_eq!(
        json["services"]["web"]["command"][2],
        "https://hooks.example/x?token=***"
    );
    assert_eq!(
        json["services"]["worker"]["health"]["command"][1],
        "postgres://u:***@db/app"
    );
    assert_eq!(
        json["state"]["url"],
        "postgres://cutover:***@db/cutover?sslmode=require"
    );
}

#[test]
fn the_schema_accepts_the_new_keys() {
    let schema = json_schema();
    let defs = &schema["$defs"];
    assert!(schema["properties"]["logs"].is_object(), "{schema:#}");
    assert!(defs["Service"]["properties"]["inherit_env"].is_object());
    assert!(defs["Service"]["properties"]["logs"].is_object());
    assert_eq!(defs["Logs"]["properties"]["max_size"]["default"], "10m");
    assert_eq!(defs["Logs"]["properties"]["max_files"]["default"], 5);
    assert_eq!(defs["Logs"]["properties"]["max_files"]["maximum"], 100);
}
