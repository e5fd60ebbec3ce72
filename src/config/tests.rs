//! Tests of loading valid configs: values, defaults, `${VAR}`, the state
//! path, environment selection, the summary and the JSON Schema.

use std::collections::BTreeMap;
use std::env::VarError;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

/// The variables `${VAR}` sees in these tests.
fn test_env(name: &str) -> Result<String, VarError> {
    match name {
        "LOG_LEVEL" => Ok("debug".to_owned()),
        "DATA_DIR" => Ok("data".to_owned()),
        "TOKEN" => Ok("s3cret".to_owned()),
        "TRACK_SECRET" => Ok("0123456789abcdef-track".to_owned()),
        _ => Err(VarError::NotPresent),
    }
}

fn parse_at(source: &str, path: &str) -> Result<Config, ConfigError> {
    parse_with_env(source, Path::new(path), &test_env)
}

fn valid(source: &str) -> Config {
    match parse_at(source, "/srv/hello/cutover.toml") {
        Ok(config) => config,
        Err(err) => panic!("expected a valid config, got:\n{}", render(&err)),
    }
}

fn addr(text: &str) -> SocketAddr {
    text.parse().expect("test addresses are valid")
}

const FULL: &str = r#"
[app]
name = "hello"

[server]
listen = "127.0.0.1:7171"

[state]
url = "sqlite://.cutover/state.db"

[service.web]
kind = "http"
driver = "process"
command = ["./bin/hello", "--port", "{port}", "--version", "{version}"]
env = { RUST_LOG = "info" }
replicas = 2
health = { path = "/healthz", interval = "500ms", timeout = "2s", healthy = 2, unhealthy = 3, start_timeout = "90s" }
drain_timeout = "45s"
stop_timeout = "5s"
host = "shop.example"
path_prefix = "/"

[service.web.rollout]
strategy = "canary"
steps = [10, 50, 100]
step_duration = "1m"
check_interval = "2s"
max_inconclusive = 5
on_inconclusive = "pause"
on_daemon_restart = "resume"
analysis = { max_error_rate = 0.01, max_p95 = "500ms", max_p99 = "1s", max_error_rate_increase = 0.005, max_latency_ratio = 1.5, min_requests = 100, abort_error_rate = 0.05 }

[service.worker]
kind = "worker"
command = ["./bin/worker"]
after = ["web"]

[environment.production]
listen = "127.0.0.1:8080"
rollback_window = "1h"

[database.main]
url = "postgres://shop:${TOKEN}@db.local/shop"
migrations = "db/migrations"
lock_timeout = "250ms"
statement_timeout = "1m"
lock_wait = "10s"
retries = 5

[database.cache]
url = "sqlite://data/cache.db"
"#;

const MINIMAL: &str = r#"
[app]
name = "hello"

[service.web]
command = ["./bin/hello", "--port", "{port}"]

[environment.production]
listen = "127.0.0.1:8080"
"#;

#[test]
fn full_example_parses_to_its_values() {
    let config = valid(FULL);
    assert_eq!(config.path, PathBuf::from("/srv/hello/cutover.toml"));
    assert_eq!(config.base_dir, PathBuf::from("/srv/hello"));
    assert_eq!(config.app.name, "hello");
    assert_eq!(config.server.listen, addr("127.0.0.1:7171"));
    assert_eq!(config.state.url, "sqlite:///srv/hello/.cutover/state.db");

    let web = &config.services["web"];
    let expected_web = ServiceConfig {
        kind: ServiceKind::Http,
        driver: DriverKind::Process,
        command: ["./bin/hello", "--port", "{port}", "--version", "{version}"]
            .map(str::to_owned)
            .to_vec(),
        env: BTreeMap::from([("RUST_LOG".to_owned(), "info".to_owned())]),
        inherit_env: false,
        logs: LogsConfig::default(),
        replicas: 2,
        health: HealthConfig {
            path: "/healthz".to_owned(),
            interval: Duration::from_millis(500),
            timeout: Duration::from_secs(2),
            healthy: 2,
            unhealthy: 3,
            start_timeout: Duration::from_secs(90),
            command: Vec::new(),
        },
        drain_timeout: Duration::from_secs(45),
        stop_timeout: Duration::from_secs(5),
        host: Some("shop.example".to_owned()),
        path_prefix: "/".to_owned(),
        after: Vec::new(),
        rollout: RolloutConfig {
            strategy: Strategy::Canary,
            steps: vec![10, 50, 100],
            step_duration: Duration::from_secs(60),
            check_interval: Duration::from_secs(2),
            max_inconclusive: 5,
            on_inconclusive: InconclusivePolicy::Pause,
            on_daemon_restart: RestartPolicy::Resume,
            switch: crate::config::SwitchMode::Auto,
            analysis: AnalysisConfig {
                max_error_rate: Some(0.01),
                max_p95: Some(Duration::from_millis(500)),
                max_p99: Some(Duration::from_secs(1)),
                max_error_rate_increase: Some(0.005),
                max_latency_ratio: Some(1.5),
                min_requests: 100,
                abort_error_rate: Some(0.05),
            },
        },
        docker: None,
        max_request_body: None,
        allowed_upgrades: vec!["websocket".to_owned()],
        artifacts: Vec::new(),
    };
    assert_eq!(web, &expected_web);

    let worker = &config.services["worker"];
    assert_eq!(worker.kind, ServiceKind::Worker);
    assert_eq!(worker.command, vec!["./bin/worker".to_owned()]);
    assert_eq!(worker.after, ["web"]);
    assert_eq!(worker.rollout, RolloutConfig::default());

    assert_eq!(
        config.environments["production"],
        EnvironmentConfig {
            rollback_window: Duration::from_secs(3600),
            services: config.services.clone(),
            databases: config.databases.clone(),
            ..EnvironmentConfig::new(addr("127.0.0.1:8080"))
        }
    );
}

#[test]
fn omitted_keys_take_their_defaults() {
    let config = valid(MINIMAL);
    assert_eq!(config.server.listen, addr("127.0.0.1:7070"));
    assert_eq!(config.state.url, "sqlite:///srv/hello/.cutover/state.db");
    let web = &config.services["web"];
    assert_eq!(web.kind, ServiceKind::Http);
    assert_eq!(web.driver, DriverKind::Process);
    assert!(web.env.is_empty());
    assert_eq!(web.replicas, 1);
    assert_eq!(
        web.health,
        HealthConfig {
            path: "/health".to_owned(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            healthy: 2,
            unhealthy: 3,
            start_timeout: Duration::from_secs(60),
            command: Vec::new(),
        }
    );
    assert_eq!(web.health, HealthConfig::default());
    assert_eq!(web.drain_timeout, Duration::from_secs(30));
    assert_eq!(web.stop_timeout, Duration::from_secs(10));
    assert_eq!(web.host, None);
    assert_eq!(web.path_prefix, "/");
    assert!(web.after.is_empty());
    assert_eq!(
        web.rollout,
        RolloutConfig {
            strategy: Strategy::BlueGreen,
            steps: Vec::new(),
            step_duration: Duration::from_secs(30),
            check_interval: Duration::from_secs(1),
            max_inconclusive: 3,
            on_inconclusive: InconclusivePolicy::Fail,
            on_daemon_restart: RestartPolicy::Rollback,
            switch: crate::config::SwitchMode::Auto,
            analysis: AnalysisConfig {
                max_error_rate: None,
                max_p95: None,
                max_p99: None,
                max_error_rate_increase: None,
                max_latency_ratio: None,
                min_requests: 50,
                abort_error_rate: None,
            },
        }
    );
    assert_eq!(web.rollout, RolloutConfig::default());
    assert_eq!(
        config.environments["production"].rollback_window,
        Duration::from_secs(600)
    );
}

#[test]
fn partial_health_keeps_the_other_defaults() {
    let source = MINIMAL.replace(
        "command = [",
        "health = { path = \"/up\", healthy = 1 }\ncommand = [",
    );
    let health = &valid(&source).services["web"].health;
    assert_eq!(health.path, "/up");
    assert_eq!(health.healthy, 1);
    assert_eq!(health.unhealthy, 3);
    assert_eq!(health.interval, Duration::from_secs(1));
}

#[test]
fn health_may_be_its_own_table() {
    let source = format!("{MINIMAL}\n[service.web.health]\ninterval = \"250ms\"\n");
    let health = &valid(&source).services["web"].health;
    assert_eq!(health.interval, Duration::from_millis(250));
    assert_eq!(health.path, "/health");
}

/// `MINIMAL` with `lines` as its `[service.web.rollout]` table.
fn rollout_of(lines: &str) -> RolloutConfig {
    let source = format!("{MINIMAL}\n[service.web.rollout]\n{lines}\n");
    valid(&source).services["web"].rollout.clone()
}

#[test]
fn a_canary_without_steps_gets_the_default_steps() {
    let rollout = rollout_of("strategy = \"canary\"");
    assert_eq!(rollout.strategy, Strategy::Canary);
    assert_eq!(rollout.steps, [5, 25, 50, 100]);
    assert_eq!(rollout.step_duration, Duration::from_secs(30));
    assert_eq!(rollout.check_interval, Duration::from_secs(1));
    assert_eq!(rollout.analysis, AnalysisConfig::default());
    assert_eq!(rollout.analysis.min_requests, 50);
}

#[test]
fn a_blue_green_rollout_has_no_steps() {
    let rollout = rollout_of("strategy = \"blue-green\"\nstep_duration = \"10s\"");
    assert_eq!(rollout.strategy, Strategy::BlueGreen);
    assert!(rollout.steps.is_empty());
    assert_eq!(rollout.step_duration, Duration::from_secs(10));
}

#[test]
fn a_single_step_of_100_is_a_canary_that_moves_everything_at_once() {
    assert_eq!(
        rollout_of("strategy = \"canary\"\nsteps = [100]").steps,
        [100]
    );
}

#[test]
fn abort_error_rate_defaults_to_three_times_max_error_rate_at_most_1() {
    let analysis = |table: &str| rollout_of(&format!("analysis = {{ {table} }}")).analysis;
    let derived = analysis("max_error_rate = 0.01, min_requests = 20");
    let abort = derived
        .abort_error_rate
        .expect("derived from max_error_rate");
    assert!((abort - 0.03).abs() < 1e-12, "{abort}");
    assert_eq!(derived.min_requests, 20);

    let capped = analysis("max_error_rate = 0.5, min_requests = 20");
    assert_eq!(capped.abort_error_rate, Some(1.0));

    let written = analysis("max_error_rate = 0.01, abort_error_rate = 0.01, min_requests = 20");
    assert_eq!(written.abort_error_rate, Some(0.01));

    let latency_only = analysis("max_p99 = \"1s\", min_requests = 20");
    assert_eq!(latency_only.abort_error_rate, None);
    assert_eq!(latency_only.max_p99, Some(Duration::from_secs(1)));
}

#[test]
fn analysis_may_be_its_own_table_and_numbers_may_be_integers() {
    let source = format!(
        "{MINIMAL}\n[service.web.rollout]\nstrategy = \"canary\"\n\n[service.web.rollout.analysis]\nmax_latency_ratio = 2\nmax_error_rate = 0\nmin_requests = 10\n"
    );
    let analysis = &valid(&source).services["web"].rollout.analysis;
    assert_eq!(analysis.max_latency_ratio, Some(2.0));
    assert_eq!(analysis.max_error_rate, Some(0.0));
    assert_eq!(analysis.abort_error_rate, Some(0.0));
    assert_eq!(analysis.min_requests, 10);
}

#[test]
fn min_requests_alone_is_kept() {
    let analysis = rollout_of("analysis = { min_requests = 7 }").analysis;
    assert_eq!(analysis.min_requests, 7);
    assert_eq!(analysis.max_error_rate, None);
}

#[test]
fn a_worker_may_set_blue_green_and_analysis() {
    let source = format!(
        "{MINIMAL}\n[service.jobs]\nkind = \"worker\"\ncommand = [\"./jobs\"]\nrollout = {{ strategy = \"blue-green\", analysis = {{ max_error_rate = 0.1, min_requests = 5 }} }}\n"
    );
    let jobs = &valid(&source).services["jobs"];
    assert_eq!(jobs.rollout.strategy, Strategy::BlueGreen);
    assert_eq!(jobs.rollout.analysis.max_error_rate, Some(0.1));
}

/// A config with these services (each `[service.NAME]` with a command and `after`).
fn services_after(services: &[(&str, &str)]) -> Config {
    let mut source = String::from(
        "[app]\nname = \"hello\"\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n",
    );
    for (name, after) in services {
        source.push_str(&format!(
            "\n[service.{name}]\nkind = \"worker\"\ncommand = [\"./{name}\"]\nafter = [{after}]\n"
        ));
    }
    valid(&source)
}

#[test]
fn rollout_order_puts_each_service_after_the_ones_it_names() {
    let config = services_after(&[
        ("web", r#""api", "auth""#),
        ("api", r#""db""#),
        ("auth", ""),
        ("db", ""),
        ("jobs", r#""db""#),
    ]);
    assert_eq!(config.services["web"].after, ["api", "auth"]);
    assert_eq!(config.rollout_order(), ["auth", "db", "api", "jobs", "web"]);
}

#[test]
fn rollout_order_without_after_is_by_name() {
    let config = services_after(&[("web", ""), ("api", ""), ("jobs", "")]);
    assert_eq!(config.rollout_order(), ["api", "jobs", "web"]);
    assert_eq!(valid(MINIMAL).rollout_order(), ["web"]);
}

#[test]
fn rollout_order_tolerates_hand_built_configs_with_cycles() {
    let mut config = services_after(&[("a", ""), ("b", ""), ("c", "")]);
    for (name, after) in [("a", "b"), ("b", "a"), ("c", "c")] {
        if let Some(service) = config.services.get_mut(name) {
            service.after = vec![after.to_owned(), "unknown".to_owned()];
        }
    }
    assert_eq!(config.rollout_order(), ["c", "a", "b"]);
}

#[test]
fn relative_state_path_is_resolved_against_the_config_directory() {
    let source = format!("{MINIMAL}\n[state]\nurl = \"sqlite://var/state.db?mode=rwc\"\n");
    let config = parse_at(&source, "/etc/shop/cutover.toml").expect("valid config");
    assert_eq!(config.state.url, "sqlite:///etc/shop/var/state.db?mode=rwc");

    let absolute = format!("{MINIMAL}\n[state]\nurl = \"sqlite:///var/lib/cutover.db\"\n");
    let config = parse_at(&absolute, "/etc/shop/cutover.toml").expect("valid config");
    assert_eq!(config.state.url, "sqlite:///var/lib/cutover.db");

    let postgres = format!("{MINIMAL}\n[state]\nurl = \"postgres://cutover@db/cutover\"\n");
    let config = parse_at(&postgres, "/etc/shop/cutover.toml").expect("valid config");
    assert_eq!(config.state.url, "postgres://cutover@db/cutover");
}

#[test]
fn a_relative_config_path_gets_an_absolute_base_dir() {
    let config = parse_at(MINIMAL, "cutover.toml").expect("valid config");
    let cwd = std::env::current_dir().expect("the test has a current directory");
    assert_eq!(config.path, PathBuf::from("cutover.toml"));
    assert_eq!(config.base_dir, cwd);
    assert_eq!(
        config.state.url,
        format!("sqlite://{}/.cutover/state.db", cwd.display())
    );

    let config = parse_at(MINIMAL, "./deploy/cutover.toml").expect("valid config");
    assert_eq!(config.base_dir, cwd.join("deploy"));
}

#[test]
fn variables_are_expanded_and_escapes_kept_literal() {
    let source = r#"
[app]
name = "hello"

[state]
url = "sqlite://${DATA_DIR}/state.db"

[service.web]
command = ["./bin/hello", "--log=${LOG_LEVEL}", "--port", "{port}", "--literal", "$${NOT_EXPANDED}", "$HOME"]
env = { TOKEN = "${TOKEN}", TEMPLATE = "$${TOKEN}-{version}" }

[environment.production]
listen = "127.0.0.1:8080"
"#;
    let config = valid(source);
    assert_eq!(config.state.url, "sqlite:///srv/hello/data/state.db");
    let web = &config.services["web"];
    assert_eq!(
        web.command,
        [
            "./bin/hello",
            "--log=debug",
            "--port",
            "{port}",
            "--literal",
            "${NOT_EXPANDED}",
            "$HOME"
        ]
        .map(str::to_owned)
    );
    assert_eq!(web.env["TOKEN"], "s3cret");
    assert_eq!(web.env["TEMPLATE"], "${TOKEN}-{version}");
}

#[test]
fn parse_reads_the_process_environment() {
    // `parse` (not `parse_with_env`) uses std::env; PATH is set wherever tests run.
    let path = std::env::var("PATH").expect("PATH is set for tests");
    let source = MINIMAL.replace("\"{port}\"]", "\"{port}\", \"${PATH}\"]");
    let config = parse(&source, Path::new("cutover.toml")).expect("valid config");
    assert_eq!(config.services["web"].command[3], path);

    let unset = MINIMAL.replace("\"{port}\"]", "\"${CUTOVER_TEST_SURELY_UNSET_VARIABLE}\"]");
    let err = parse(&unset, Path::new("cutover.toml")).expect_err("the variable is unset");
    assert!(
        err.to_string()
            .contains("`CUTOVER_TEST_SURELY_UNSET_VARIABLE` is not set"),
        "{err}"
    );
}

#[test]
fn environment_none_needs_exactly_one() {
    let one = valid(MINIMAL);
    let (name, environment) = one.environment(None).expect("the only environment");
    assert_eq!(name, "production");
    assert_eq!(environment.listen, addr("127.0.0.1:8080"));

    let two = valid(&format!(
        "{MINIMAL}\n[environment.staging]\nlisten = \"127.0.0.1:8081\"\n"
    ));
    let err = two.environment(None).expect_err("two environments");
    assert!(matches!(err, ConfigError::EnvironmentRequired { .. }));
    insta::assert_snapshot!("environment_none_with_two", render(&err));

    let (name, environment) = two.environment(Some("staging")).expect("named");
    assert_eq!(name, "staging");
    assert_eq!(environment.listen, addr("127.0.0.1:8081"));

    let err = two
        .environment(Some("prod"))
        .expect_err("no such environment");
    assert!(matches!(err, ConfigError::UnknownEnvironment { .. }));
    insta::assert_snapshot!("environment_unknown", render(&err));
}

#[test]
fn databases_resolve_urls_folders_and_defaults() {
    let config = valid(FULL);
    let main = &config.databases["main"];
    assert_eq!(
        main,
        &DatabaseConfig {
            url: "postgres://shop:s3cret@db.local/shop".to_owned(),
            migrations: PathBuf::from("/srv/hello/db/migrations"),
            lock_timeout: Duration::from_millis(250),
            statement_timeout: Duration::from_secs(60),
            lock_wait: Duration::from_secs(10),
            retries: 5,
            backup: None,
            shared: false,
            lint: Default::default(),
        }
    );
    assert!(main.is_postgres());
    assert_eq!(main.display_url(), "postgres://shop:***@db.local/shop");

    let cache = &config.databases["cache"];
    assert_eq!(
        cache,
        &DatabaseConfig {
            url: "sqlite:///srv/hello/data/cache.db".to_owned(),
            migrations: PathBuf::from("/srv/hello/migrations"),
            lock_timeout: Duration::from_millis(500),
            statement_timeout: Duration::from_secs(300),
            lock_wait: Duration::from_secs(30),
            retries: 3,
            backup: None,
            shared: false,
            lint: Default::default(),
        }
    );
    assert!(!cache.is_postgres());

    let json = serde_json::to_value(&config).expect("config serializes");
    assert_eq!(
        json["databases"]["main"]["url"],
        "postgres://shop:***@db.local/shop"
    );
    assert_eq!(json["databases"]["main"]["lock_timeout"], "250ms");
    assert_eq!(json["databases"]["cache"]["statement_timeout"], "5m");
    assert!(valid(MINIMAL).databases.is_empty());
}

#[test]
fn database_none_needs_exactly_one() {
    let two = valid(FULL);
    let err = two.database(None).expect_err("two databases");
    assert!(matches!(err, ConfigError::DatabaseRequired { .. }));
    insta::assert_snapshot!("database_none_with_two", render(&err));
    let err = two.database(Some("mian")).expect_err("no such database");
    insta::assert_snapshot!("database_unknown", render(&err));
    let (name, _) = two.database(Some("cache")).expect("named");
    assert_eq!(name, "cache");

    let none = valid(MINIMAL);
    let err = none.database(None).expect_err("no databases");
    insta::assert_snapshot!("database_none_defined", render(&err));

    let one = valid(&format!(
        "{MINIMAL}\n[database.main]\nurl = \"sqlite://app.db\"\n"
    ));
    let (name, database) = one.database(None).expect("the only database");
    assert_eq!(name, "main");
    assert_eq!(database.url, "sqlite:///srv/hello/app.db");
}

#[test]
fn redact_url_hides_only_the_password() {
    let cases = [
        (
            "postgres://u:p@h:5432/db?sslmode=require",
            "postgres://u:***@h:5432/db?sslmode=require",
        ),
        ("postgres://u@h/db", "postgres://u@h/db"),
        ("postgres://h/db", "postgres://h/db"),
        ("sqlite:///srv/a.db", "sqlite:///srv/a.db"),
        ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
    ];
    for (url, expected) in cases {
        assert_eq!(redact_url(url), expected, "{url}");
    }
}

#[test]
fn http_services_leaves_out_workers() {
    let config = valid(FULL);
    let names: Vec<&str> = config.http_services().map(|(name, _)| name).collect();
    assert_eq!(names, ["web"]);
}

#[test]
fn services_on_different_routes_may_share_a_listener() {
    let source = format!(
        "{MINIMAL}\n[service.api]\ncommand = [\"./api\"]\npath_prefix = \"/api\"\n\n[service.shop]\ncommand = [\"./shop\"]\nhost = \"shop.example\"\n"
    );
    assert_eq!(valid(&source).http_services().count(), 3);
}

#[test]
fn summary_lists_app_services_and_environments() {
    let config = valid(FULL);
    insta::assert_snapshot!(config.summary());
}

#[test]
fn config_serializes_durations_as_text() {
    let json = serde_json::to_value(valid(FULL)).expect("config serializes");
    let web = &json["services"]["web"];
    assert_eq!(web["drain_timeout"], "45s");
    assert_eq!(web["health"]["interval"], "500ms");
    assert_eq!(web["kind"], "http");
    assert_eq!(web["driver"], "process");
    let rollout = &web["rollout"];
    assert_eq!(rollout["strategy"], "canary");
    assert_eq!(rollout["steps"], serde_json::json!([10, 50, 100]));
    assert_eq!(rollout["step_duration"], "1m");
    assert_eq!(rollout["check_interval"], "2s");
    assert_eq!(rollout["on_inconclusive"], "pause");
    assert_eq!(rollout["on_daemon_restart"], "resume");
    assert_eq!(rollout["analysis"]["max_p95"], "500ms");
    assert_eq!(rollout["analysis"]["max_error_rate"], 0.01);
    assert_eq!(rollout["analysis"]["min_requests"], 100);
    let worker = &json["services"]["worker"];
    assert_eq!(worker["after"], serde_json::json!(["web"]));
    assert_eq!(worker["rollout"]["strategy"], "blue-green");
    assert_eq!(worker["rollout"]["on_daemon_restart"], "rollback");
    assert_eq!(
        worker["rollout"]["analysis"]["max_p99"],
        serde_json::Value::Null
    );
    assert_eq!(json["environments"]["production"]["rollback_window"], "1h");
    assert_eq!(
        json["environments"]["production"]["listen"],
        "127.0.0.1:8080"
    );
}

#[test]
fn json_schema_describes_the_file() {
    let schema = json_schema();
    let text = serde_json::to_string_pretty(&schema).expect("the schema serializes");
    let reparsed: serde_json::Value =
        serde_json::from_str(&text).expect("the schema is valid JSON");
    assert_eq!(reparsed, schema);

    let properties = &schema["properties"];
    for key in [
        "app",
        "server",
        "state",
        "service",
        "environment",
        "database",
    ] {
        assert!(properties.get(key).is_some(), "missing property {key}");
    }
    let required: Vec<&str> = schema["required"]
        .as_array()
        .expect("required is an array")
        .iter()
        .filter_map(|v| v.as_str())
        .collect();
    for key in ["app", "service", "environment"] {
        assert!(
            required.contains(&key),
            "{key} is not required: {required:?}"
        );
    }
    assert!(!required.contains(&"database"), "databases are optional");
    let database = &schema["$defs"]["Database"];
    assert_eq!(database["required"], serde_json::json!(["url"]));
    assert_eq!(database["additionalProperties"], false);
    assert_eq!(database["properties"]["lock_timeout"]["default"], "500ms");
    assert_eq!(
        database["properties"]["migrations"]["default"],
        "migrations"
    );
    assert_eq!(database["properties"]["retries"]["default"], 3);
    assert_eq!(schema["additionalProperties"], false);
    assert!(!text.contains("null"), "TOML has no null: {text}");
    assert!(
        text.contains("\"30s\""),
        "the drain_timeout default is advertised"
    );
    assert!(
        text.contains("\"127.0.0.1:7070\""),
        "the server.listen default is advertised"
    );

    let service = &schema["$defs"]["Service"]["properties"];
    assert_eq!(service["after"]["type"], "array");
    for key in [
        "image",
        "port",
        "volumes",
        "stop_signal",
        "resources",
        "pull",
    ] {
        assert!(service.get(key).is_some(), "service lacks {key}");
    }
    assert_eq!(service["port"]["maximum"], serde_json::json!(65535));
    assert_eq!(
        schema["$defs"]["DriverKind"]["enum"],
        serde_json::json!(["process", "docker", "swarm", "kubernetes"])
    );
    assert_eq!(schema["$defs"]["Resources"]["additionalProperties"], false);
    assert_eq!(
        schema["$defs"]["Health"]["properties"]["command"]["type"],
        "array"
    );
    let rollout = &schema["$defs"]["Rollout"];
    assert_eq!(rollout["additionalProperties"], false);
    for key in [
        "strategy",
        "steps",
        "step_duration",
        "check_interval",
        "max_inconclusive",
        "on_inconclusive",
        "on_daemon_restart",
        "analysis",
    ] {
        assert!(
            rollout["properties"].get(key).is_some(),
            "rollout lacks {key}: {rollout:#}"
        );
    }
    assert_eq!(
        rollout["properties"]["steps"]["items"]["maximum"],
        serde_json::json!(100)
    );
    assert_eq!(
        schema["$defs"]["Strategy"]["enum"],
        serde_json::json!(["blue-green", "canary"])
    );
    let analysis = &schema["$defs"]["Analysis"];
    assert_eq!(analysis["additionalProperties"], false);
    for key in [
        "max_error_rate",
        "max_p95",
        "max_p99",
        "max_error_rate_increase",
        "max_latency_ratio",
        "min_requests",
        "abort_error_rate",
    ] {
        assert!(
            analysis["properties"].get(key).is_some(),
            "analysis lacks {key}: {analysis:#}"
        );
    }
    assert_eq!(
        analysis["properties"]["max_error_rate"]["maximum"],
        serde_json::json!(1)
    );
}

#[test]
fn a_docker_service_resolves_its_container_settings() {
    let source = r#"
[app]
name = "hello"

[service.web]
driver = "docker"
image = "hello:{version}"
port = 8080
env = { RUST_LOG = "info" }
volumes = ["data:/data", "./static:/srv/static:ro", "/var/cache:/cache"]
replicas = 2
stop_signal = "quit"
resources = { memory = "256m", cpus = 0.5 }
pull = true

[service.jobs]
kind = "worker"
driver = "docker"
image = "registry.example/jobs@sha256:0123"
health = { command = ["/jobs", "--check"], interval = "1s" }

[environment.production]
listen = "127.0.0.1:8080"
"#;
    let config = valid(source);
    let web = &config.services["web"];
    assert_eq!(web.driver, DriverKind::Docker);
    assert!(web.command.is_empty());
    let docker = web.docker.as_ref().expect("docker settings");
    assert_eq!(docker.image_for("v2"), "hello:v2");
    assert_eq!(docker.port, Some(8080));
    assert_eq!(
        docker.volumes,
        [
            "data:/data",
            "/srv/hello/static:/srv/static:ro",
            "/var/cache:/cache"
        ]
    );
    assert_eq!(docker.stop_signal, "SIGQUIT");
    assert_eq!(docker.memory_bytes, Some(256 * 1024 * 1024));
    assert_eq!(docker.nano_cpus, Some(500_000_000));
    assert!(docker.pull);
    let jobs = &config.services["jobs"];
    let docker = jobs.docker.as_ref().expect("docker settings");
    assert_eq!(docker.port, None, "a worker needs no port");
    assert_eq!(docker.stop_signal, "SIGTERM");
    assert!(!docker.pull);
    assert_eq!(jobs.health.command, ["/jobs", "--check"]);
    assert_eq!(
        config.services["web"].docker.as_ref().map(|d| d.pull),
        Some(true)
    );
    assert!(valid(MINIMAL).services["web"].docker.is_none());
}

#[test]
fn load_reads_a_file_and_resolves_against_its_directory() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("cutover.toml");
    std::fs::write(&path, MINIMAL).expect("write the config");
    let config = load(&path).expect("a valid config");
    assert_eq!(config.base_dir, dir.path());
    assert_eq!(
        config.state.url,
        format!("sqlite://{}/.cutover/state.db", dir.path().display())
    );
}

#[test]
fn load_names_a_missing_file_and_suggests_init() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let path = dir.path().join("cutover.toml");
    let err = load(&path).expect_err("no file");
    assert!(matches!(err, ConfigError::NotFound { .. }));
    let text = render(&err).replace(&dir.path().display().to_string(), "DIR");
    insta::assert_snapshot!(text);
}

#[test]
fn load_names_the_path_on_io_errors() {
    let dir = tempfile::tempdir().expect("a temporary directory");
    let err = load(dir.path()).expect_err("a directory is not a file");
    assert!(matches!(err, ConfigError::Read { .. }));
    let text = render(&err);
    assert!(text.contains(&dir.path().display().to_string()), "{text}");
}

#[test]
fn config_error_can_cross_threads_and_into_reports() {
    fn assert_error<E: std::error::Error + miette::Diagnostic + Send + Sync + 'static>() {}
    assert_error::<ConfigError>();
    assert_error::<Problem>();
}

#[test]
fn database_backup_resolves_with_defaults() {
    let config = valid(
        r#"[app]
name = "hello"

[service.web]
command = ["./web"]

[environment.production]
listen = "127.0.0.1:8080"

[database.main]
url = "sqlite://data/app.db"
backup = { before_deploy = true, recipients = ["age1xzupnqn4stl3rgvhc0w7k7mvq0x8d0ch80tfnm4e0q6yxlr2k4kqjcjxkq"], recipients_file = "keys/backup.pub", keep_within = "30d", verify = true, compress = "zstd" }
"#,
    );
    let backup = config.databases["main"]
        .backup
        .clone()
        .expect("a backup table");
    assert!(backup.before_deploy && backup.verify);
    assert_eq!(backup.dir, PathBuf::from("/srv/hello/.cutover/backups"));
    assert_eq!(
        backup.recipients_file,
        Some(PathBuf::from("/srv/hello/keys/backup.pub"))
    );
    assert_eq!(backup.keep_last, 30);
    assert_eq!(backup.keep_within, Some(Duration::from_secs(30 * 86400)));
}

/// Every key of the edge (issue 11): the API off loopback with TLS, a
/// metrics listener, an environment with certificates, ACME, redirect, HSTS,
/// trusted peers, track override and limits, and per-service body limits and
/// upgrades.
const EDGE: &str = r#"
[app]
name = "hello"

[server]
listen = "0.0.0.0:7070"
tls = { cert = "api.pem", key = "/etc/cutover/api.key" }
metrics_listen = "127.0.0.1:9100"

[service.web]
command = ["./bin/hello", "--port", "{port}"]
max_request_body = "10m"
allowed_upgrades = ["WebSocket", "my-proto", "websocket"]

[service.upload]
command = ["./bin/upload", "--port", "{port}"]
path_prefix = "/upload"
max_request_body = 1048576
allowed_upgrades = []

[environment.production]
listen = "0.0.0.0:443"
redirect_listen = "0.0.0.0:80"
hsts = "365d"
tls = { cert = "a.pem", key = "a.key", certificates = [{ cert = "certs/b.pem", key = "certs/b.key" }], acme = { email = "ops@example.com", domains = ["Example.com", "www.example.com"], directory = "https://127.0.0.1:14000/dir", directory_ca = "pebble.pem", renew_before = "7d" } }
trusted_proxies = ["10.0.0.0/8", "192.0.2.7", "2001:db8::/32"]
track_override = { secret = "${TRACK_SECRET}", trusted_sources = ["10.1.0.0/16"] }

[environment.production.limits]
first_request_timeout = "5s"
max_connections = 2000
h2_max_concurrent_streams = 64
h2_idle_timeout = "1m"
upgrade_idle_timeout = "2m"
idle_timeout = "30s"
max_request_body = "1g"

[environment.staging]
listen = "127.0.0.1:8081"
tls = { acme = { email = "ops@example.com", domains = ["staging.example.com"] } }
track_override = { trusted_sources = ["127.0.0.1"] }
"#;

#[test]
fn edge_keys_resolve_to_their_values() {
    let config = valid(EDGE);
    let net = |text: &str| -> ipnet::IpNet { text.parse().expect("test networks are valid") };

    assert_eq!(
        config.server,
        ServerConfig {
            listen: addr("0.0.0.0:7070"),
            tls: Some(TlsFilesConfig {
                cert: PathBuf::from("/srv/hello/api.pem"),
                key: PathBuf::from("/etc/cutover/api.key"),
            }),
            allow_plaintext: false,
            metrics_listen: Some(addr("127.0.0.1:9100")),
            dashboard: true,
            dashboard_listen: None,
            dashboard_session: std::time::Duration::from_secs(12 * 3600),
            log_format: LogFormat::Text,
        }
    );
    assert_eq!(config.server.exposure(), ApiExposure::Tls);

    let web = &config.services["web"];
    assert_eq!(web.max_request_body, Some(10 * 1024 * 1024));
    assert_eq!(web.allowed_upgrades, ["websocket", "my-proto"]);
    let upload = &config.services["upload"];
    assert_eq!(upload.max_request_body, Some(1_048_576));
    assert!(upload.allowed_upgrades.is_empty());

    let production = &config.environments["production"];
    assert_eq!(
        production,
        &EnvironmentConfig {
            listen: addr("0.0.0.0:443"),
            rollback_window: Duration::from_secs(600),
            redirect_listen: Some(addr("0.0.0.0:80")),
            preview_listen: None,
            hsts: Some(Duration::from_secs(365 * 24 * 3600)),
            tls: Some(EnvTlsConfig {
                files: vec![
                    TlsFilesConfig {
                        cert: PathBuf::from("/srv/hello/a.pem"),
                        key: PathBuf::from("/srv/hello/a.key"),
                    },
                    TlsFilesConfig {
                        cert: PathBuf::from("/srv/hello/certs/b.pem"),
                        key: PathBuf::from("/srv/hello/certs/b.key"),
                    },
                ],
                acme: Some(AcmeConfig {
                    email: "ops@example.com".to_owned(),
                    domains: vec!["example.com".to_owned(), "www.example.com".to_owned()],
                    directory: "https://127.0.0.1:14000/dir".to_owned(),
                    directory_ca: Some(PathBuf::from("/srv/hello/pebble.pem")),
                    challenge: AcmeChallenge::Http01,
                    renew_before: Duration::from_secs(7 * 24 * 3600),
                }),
            }),
            trusted_proxies: vec![net("10.0.0.0/8"), net("192.0.2.7/32"), net("2001:db8::/32")],
            track_override: Some(TrackOverrideConfig {
                secret: Some(Secret::new("0123456789abcdef-track")),
                trusted_sources: vec![net("10.1.0.0/16")],
            }),
            limits: LimitsConfig {
                first_request_timeout: Duration::from_secs(5),
                max_connections: 2000,
                h2_max_concurrent_streams: 64,
                h2_idle_timeout: Duration::from_secs(60),
                upgrade_idle_timeout: Duration::from_secs(120),
                idle_timeout: Duration::from_secs(30),
                max_request_body: 1024 * 1024 * 1024,
            },
            services: config.services.clone(),
            databases: BTreeMap::new(),
            promote_from: None,
            soak: Duration::ZERO,
            deploy_windows: Vec::new(),
            approvals: None,
        }
    );
    assert_eq!(production.max_request_body(web), 10 * 1024 * 1024);

    // Without redirect_listen, ACME defaults to tls-alpn-01 on `listen`; and
    // every limit to its default.
    let staging = &config.environments["staging"];
    let acme = staging
        .tls
        .as_ref()
        .and_then(|tls| tls.acme.as_ref())
        .expect("staging has acme");
    assert_eq!(acme.challenge, AcmeChallenge::TlsAlpn01);
    assert_eq!(acme.directory, defaults::ACME_DIRECTORY);
    assert_eq!(acme.renew_before, Duration::from_secs(30 * 24 * 3600));
    assert_eq!(
        staging.track_override,
        Some(TrackOverrideConfig {
            secret: None,
            trusted_sources: vec![net("127.0.0.1/32")],
        })
    );
    assert_eq!(staging.limits, LimitsConfig::default());
}

#[test]
fn edge_defaults_are_closed() {
    let config = valid(MINIMAL);
    assert_eq!(config.server, ServerConfig::default());
    assert_eq!(config.server.exposure(), ApiExposure::Loopback);
    let production = &config.environments["production"];
    assert_eq!(
        production,
        &EnvironmentConfig {
            services: config.services.clone(),
            ..EnvironmentConfig::new(addr("127.0.0.1:8080"))
        }
    );
    assert_eq!(production.track_override, None);
    assert!(production.trusted_proxies.is_empty());
    assert_eq!(
        production.limits,
        LimitsConfig {
            first_request_timeout: Duration::from_secs(10),
            max_connections: 10_000,
            h2_max_concurrent_streams: 128,
            h2_idle_timeout: Duration::from_secs(180),
            upgrade_idle_timeout: Duration::from_secs(300),
            idle_timeout: Duration::from_secs(60),
            max_request_body: 100 * 1024 * 1024,
        }
    );
    let web = &config.services["web"];
    assert_eq!(web.max_request_body, None);
    assert_eq!(production.max_request_body(web), 100 * 1024 * 1024);
    assert_eq!(web.allowed_upgrades, ["websocket"]);
}

#[test]
fn an_api_off_loopback_in_plain_http_is_allowed_only_when_asked() {
    let source = MINIMAL.replace(
        "[service.web]",
        "[server]\nlisten = \"0.0.0.0:7070\"\nallow_plaintext = true\n\n[service.web]",
    );
    let config = valid(&source);
    assert_eq!(config.server.exposure(), ApiExposure::PlaintextAllowed);
    assert!(
        config.summary().contains("allow_plaintext"),
        "{}",
        config.summary()
    );
}

#[test]
fn the_track_secret_is_never_printed() {
    let config = valid(EDGE);
    let secret = "0123456789abcdef-track";
    let json = serde_json::to_string(&config).expect("config serializes");
    assert!(!json.contains(secret), "{json}");
    let track = &serde_json::to_value(&config).expect("config serializes")["environments"]["production"]
        ["track_override"];
    assert_eq!(track["secret"], "***");
    assert_eq!(track["trusted_sources"], serde_json::json!(["10.1.0.0/16"]));
    assert!(!format!("{config:?}").contains(secret));
    assert!(!config.summary().contains(secret));
    let production = &config.environments["production"];
    let exposed = production
        .track_override
        .as_ref()
        .and_then(|track| track.secret.as_ref())
        .map(Secret::expose);
    assert_eq!(exposed, Some(secret));
}

#[test]
fn edge_summary_lists_tls_and_trust() {
    insta::assert_snapshot!(valid(EDGE).summary());
}

#[test]
fn load_checked_names_a_missing_certificate_at_its_key() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("cutover.toml");
    let source = "[app]\nname = \"hello\"\n\n[service.web]\ncommand = [\"./web\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8443\"\ntls = { cert = \"site.pem\", key = \"site.key\" }\n";
    std::fs::write(&path, source).expect("write config");
    std::fs::write(dir.path().join("site.pem"), "pem").expect("write cert");

    // `load` reads no other file; `load_checked` finds the missing key.
    assert!(load(&path).is_ok());
    let err = load_checked(&path).expect_err("the key file is missing");
    let problems = err.problems();
    assert_eq!(problems.len(), 1, "{}", render(&err));
    assert_eq!(problems[0].line_column(), (9, 34), "{}", render(&err));
    let key = dir.path().join("site.key");
    assert!(
        problems[0].message().contains(&format!(
            "the private key file {} does not exist",
            key.display()
        )),
        "{}",
        render(&err)
    );

    std::fs::write(&key, "pem").expect("write key");
    assert!(load_checked(&path).is_ok());
}

#[test]
fn json_schema_describes_the_edge_keys() {
    let schema = json_schema();
    let defs = &schema["$defs"];
    let server = &defs["Server"]["properties"];
    for key in [
        "listen",
        "tls",
        "allow_plaintext",
        "metrics_listen",
        "dashboard",
        "dashboard_listen",
        "dashboard_session",
        "log_format",
    ] {
        assert!(server.get(key).is_some(), "[server] {key} missing");
    }
    let environment = &defs["Environment"]["properties"];
    for key in [
        "redirect_listen",
        "hsts",
        "tls",
        "trusted_proxies",
        "track_override",
        "limits",
    ] {
        assert!(environment.get(key).is_some(), "environment {key} missing");
    }
    assert_eq!(defs["EnvironmentTls"]["additionalProperties"], false);
    assert_eq!(
        defs["Acme"]["required"],
        serde_json::json!(["email", "domains"])
    );
    assert_eq!(
        defs["AcmeChallenge"]["enum"],
        serde_json::json!(["http-01", "tls-alpn-01"])
    );
    assert_eq!(
        defs["TlsFiles"]["required"],
        serde_json::json!(["cert", "key"])
    );
    let limits = &defs["Limits"]["properties"];
    assert_eq!(limits["first_request_timeout"]["default"], "10s");
    assert_eq!(limits["max_connections"]["default"], 10_000);
    assert_eq!(limits["h2_max_concurrent_streams"]["default"], 128);
    assert_eq!(limits["h2_idle_timeout"]["default"], "3m");
    assert_eq!(limits["upgrade_idle_timeout"]["default"], "5m");
    assert_eq!(limits["idle_timeout"]["default"], "1m");
    assert_eq!(limits["max_request_body"]["default"], "100m");
    let service = &defs["Service"]["properties"];
    assert_eq!(
        service["allowed_upgrades"]["default"],
        serde_json::json!(["websocket"])
    );
    assert!(service.get("max_request_body").is_some());
}

#[test]
fn the_complete_example_of_the_reference_is_valid() {
    let reference = include_str!("../../docs/config.md");
    let example = reference
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/config.md starts with a toml example");
    let lookup = |name: &str| match name {
        "DATABASE_URL" => Ok("postgres://shop@db.local/shop".to_owned()),
        "STAGING_DATABASE_URL" => Ok("postgres://shop@db.local/shop_staging".to_owned()),
        "CUTOVER_TRACK_SECRET" => Ok("a-secret-of-at-least-16-bytes".to_owned()),
        _ => Err(VarError::NotPresent),
    };
    let config = parse_with_env(example, Path::new("/srv/shop/cutover.toml"), &lookup)
        .unwrap_or_else(|err| panic!("{}", render(&err)));
    let production = &config.environments["production"];
    assert!(production.tls.is_some());
    assert_eq!(production.limits, LimitsConfig::default());
    // Each environment its own database and settings.
    assert_eq!(
        config.databases_in("staging")["main"].url,
        "postgres://shop@db.local/shop_staging"
    );
    assert_eq!(
        config.databases_in("production")["main"].url,
        "postgres://shop@db.local/shop"
    );
    assert_eq!(
        config.service_in("staging", "web").map(|s| s.replicas),
        Some(1)
    );
    assert_eq!(
        config.service_in("production", "web").map(|s| s.replicas),
        Some(2)
    );
}

#[test]
fn api_exposure_follows_the_address_tls_and_allow_plaintext() {
    let server = |listen: &str, tls: bool, allow_plaintext: bool| ServerConfig {
        listen: addr(listen),
        tls: tls.then(|| TlsFilesConfig {
            cert: PathBuf::from("/c.pem"),
            key: PathBuf::from("/c.key"),
        }),
        allow_plaintext,
        metrics_listen: None,
        dashboard: true,
        dashboard_listen: None,
        dashboard_session: std::time::Duration::from_secs(12 * 3600),
        log_format: LogFormat::Text,
    };
    for loopback in [
        "127.0.0.1:7070",
        "127.0.0.2:7070",
        "[::1]:7070",
        "[::ffff:127.0.0.1]:7070",
    ] {
        assert_eq!(
            server(loopback, false, false).exposure(),
            ApiExposure::Loopback,
            "{loopback}"
        );
        assert_eq!(
            server(loopback, true, false).exposure(),
            ApiExposure::Loopback,
            "{loopback}"
        );
    }
    for open in [
        "0.0.0.0:7070",
        "[::]:7070",
        "192.0.2.10:7070",
        "[2001:db8::1]:7070",
    ] {
        assert_eq!(
            server(open, false, false).exposure(),
            ApiExposure::PlaintextRefused,
            "{open}"
        );
        assert_eq!(
            server(open, false, true).exposure(),
            ApiExposure::PlaintextAllowed,
            "{open}"
        );
        assert_eq!(
            server(open, true, false).exposure(),
            ApiExposure::Tls,
            "{open}"
        );
        assert_eq!(
            server(open, true, true).exposure(),
            ApiExposure::Tls,
            "{open}"
        );
    }
}

#[test]
fn promotion_windows_and_artifacts_resolve_and_are_in_the_schema() {
    let config = valid(
        r#"
[app]
name = "hello"

[service.web]
command = ["./bin/hello"]
artifacts = ["dist/app-{version}.tar.gz", "dist/assets-{version}.zip"]

[environment.production]
listen = "127.0.0.1:8080"
promote_from = "staging"
soak = "30m"
deploy_windows = ["Mon-Thu 09:00-16:00 Europe/Berlin", "Fri 09:00-12:00 Europe/Berlin"]

[environment.staging]
listen = "127.0.0.1:8081"
"#,
    );
    assert_eq!(
        config.services["web"].artifacts,
        ["dist/app-{version}.tar.gz", "dist/assets-{version}.zip"]
    );
    let production = &config.environments["production"];
    assert_eq!(production.promote_from.as_deref(), Some("staging"));
    assert_eq!(production.soak, Duration::from_secs(1800));
    assert_eq!(production.deploy_windows.len(), 2);
    assert_eq!(
        production.deploy_windows[0].to_string(),
        "Mon-Thu 09:00-16:00 Europe/Berlin"
    );
    let summary = config.summary();
    assert!(
        summary.contains("promotes from staging after a soak of 30m"),
        "{summary}"
    );
    assert!(
        summary.contains(
            "deploy windows Mon-Thu 09:00-16:00 Europe/Berlin, Fri 09:00-12:00 Europe/Berlin"
        ),
        "{summary}"
    );
    let staging = &config.environments["staging"];
    assert_eq!(staging.promote_from, None);
    assert!(staging.deploy_windows.is_empty());

    let schema = json_schema();
    let environment = &schema["$defs"]["Environment"]["properties"];
    for key in ["promote_from", "soak", "deploy_windows"] {
        assert!(environment.get(key).is_some(), "environment {key} missing");
    }
    assert_eq!(environment["deploy_windows"]["type"], "array");
    assert_eq!(
        schema["$defs"]["Service"]["properties"]["artifacts"]["type"],
        "array"
    );
}

fn approvals_of(line: &str) -> Result<Config, ConfigError> {
    parse_at(&format!("{MINIMAL}{line}\n"), "/srv/hello/cutover.toml")
}

#[test]
fn approvals_take_their_defaults_and_may_sit_at_the_switch() {
    let config = approvals_of("approvals = {}").expect("valid");
    assert_eq!(
        config.environments["production"].approvals,
        Some(ApprovalsConfig {
            required: 1,
            expires: Duration::from_secs(3600),
            at: ApprovalAt::Start,
        })
    );
    let config = approvals_of(r#"approvals = { required = 2, expires = "30m" }"#).expect("valid");
    assert_eq!(
        config.environments["production"].approvals,
        Some(ApprovalsConfig {
            required: 2,
            expires: Duration::from_secs(1800),
            at: ApprovalAt::Start,
        })
    );
    assert!(
        config.summary().contains("approvals 2 within 30m"),
        "{}",
        config.summary()
    );
    let config = approvals_of(r#"approvals = { at = "switch" }"#).expect("valid");
    assert_eq!(
        config.environments["production"]
            .approvals
            .as_ref()
            .map(|a| a.at),
        Some(ApprovalAt::Switch)
    );
    assert_eq!(valid(MINIMAL).environments["production"].approvals, None);
}

#[test]
fn approvals_need_an_approver_a_deadline_and_a_known_place() {
    for (line, says) in [
        ("approvals = { required = 0 }", "approvals.required"),
        ("approvals = { required = 11 }", "approvals.required"),
        (r#"approvals = { expires = "0s" }"#, "approvals.expires"),
        (r#"approvals = { at = "deploy" }"#, "approvals.at"),
        ("approvals = { needed = 1 }", "needed"),
    ] {
        let err = approvals_of(line).expect_err(line);
        let text = render(&err);
        assert!(text.contains(says), "{line}: {text}");
    }
}

#[test]
fn json_schema_describes_approvals() {
    let schema = json_schema();
    let defs = &schema["$defs"];
    assert!(defs["Environment"]["properties"].get("approvals").is_some());
    let approvals = &defs["Approvals"]["properties"];
    assert_eq!(approvals["required"]["default"], 1);
    assert_eq!(approvals["required"]["minimum"], 1);
    assert_eq!(approvals["expires"]["default"], "1h");
    assert_eq!(approvals["at"]["default"], "start");
}

#[test]
fn switch_is_auto_by_default_and_manual_when_asked() {
    assert_eq!(rollout_of("").switch, crate::config::SwitchMode::Auto);
    assert_eq!(
        rollout_of("switch = \"manual\"").switch,
        crate::config::SwitchMode::Manual
    );
}

#[test]
fn preview_listen_is_read_and_in_the_schema() {
    let source = MINIMAL.replace(
        "[environment.production]\n",
        "[environment.production]\npreview_listen = \"127.0.0.1:8081\"\n",
    );
    assert_ne!(
        source, MINIMAL,
        "MINIMAL has an [environment.production] table"
    );
    let config = valid(&source);
    assert_eq!(
        config.environments["production"].preview_listen,
        Some(addr("127.0.0.1:8081"))
    );
    let schema = json_schema();
    let defs = &schema["$defs"];
    assert!(
        defs["Environment"]["properties"]
            .get("preview_listen")
            .is_some()
    );
    assert_eq!(
        defs["Rollout"]["properties"]["switch"]["default"],
        serde_json::json!("auto")
    );
}

fn lint_of(line: &str) -> Result<Config, ConfigError> {
    parse_at(
        &format!("{MINIMAL}\n[database.main]\nurl = \"sqlite://app.db\"\n{line}\n"),
        "/srv/hello/cutover.toml",
    )
}

#[test]
fn lint_levels_name_known_rules_once() {
    let config = lint_of(
        r#"lint = { deny = ["prefer-identity"], warn = ["require-concurrent-index-creation"], off = ["drop-in-expand"] }"#,
    )
    .expect("valid");
    let lint = &config.databases["main"].lint;
    assert_eq!(lint.deny, ["prefer-identity"]);
    assert_eq!(lint.warn, ["require-concurrent-index-creation"]);
    assert_eq!(lint.off, ["drop-in-expand"]);
    assert_eq!(
        lint_of("").expect("valid").databases["main"].lint,
        crate::config::LintLevels::default()
    );

    let typo = lint_of(r#"lint = { warn = ["prefer-identiy"] }"#)
        .expect_err("unknown rule")
        .to_string();
    assert!(typo.contains("`lint.warn` names no lint rule"), "{typo}");
    let twice = lint_of(r#"lint = { warn = ["prefer-identity"], off = ["prefer-identity"] }"#)
        .expect_err("listed twice")
        .to_string();
    assert!(
        twice.contains("`prefer-identity` is in both `lint.warn` and `lint.off`"),
        "{twice}"
    );
    let unknown_key = lint_of(r#"lint = { block = ["x"] }"#).expect_err("unknown key");
    assert!(unknown_key.to_string().contains("block"), "{unknown_key}");
}

#[test]
fn backup_signers_are_ed25519_public_keys() {
    let key = "ed25519:11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=";
    let config = lint_of(&format!(
        "backup = {{ recipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"], signers = [\"{key}\"] }}"
    ))
    .expect("valid");
    let backup = config.databases["main"].backup.as_ref().expect("backup");
    assert_eq!(backup.signers, [key]);
    for (bad, says) in [
        ("ssh-ed25519 AAAA", "does not start with `ed25519:`"),
        ("ed25519:not base64!", "not base64"),
        ("ed25519:AAAA", "32 bytes"),
    ] {
        let err = lint_of(&format!(
            "backup = {{ recipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"], signers = [\"{bad}\"] }}"
        ))
        .expect_err("refused");
        let rendered = render(&err);
        assert!(rendered.contains("not a backup signing key"), "{rendered}");
        assert!(rendered.contains(says), "{bad}: {rendered}");
    }
}

#[test]
fn check_text_takes_unset_variables_as_unknown_and_checks_the_rest() {
    // The reference's example names variables this process does not set.
    let reference = include_str!("../../docs/config.md");
    let example = reference
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("docs/config.md starts with a toml example");
    if let Err(err) = check_text(example, Path::new("deploy/cutover.toml")) {
        panic!("{}", render(&err));
    }
    // Everything else is checked as `cutover check` does, with its place.
    let broken = "[app]\nname = \"x\"\n\n[service.web]\ncommand = [\"${BIN}\"]\nreplicas = \"two\"\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    let err = check_text(broken, Path::new("cutover.toml")).expect_err("replicas is a string");
    let problems = err.problems();
    assert_eq!(problems.len(), 1, "{}", render(&err));
    assert_eq!(problems[0].line_column(), (6, 12));
    // A malformed `${` is still an error, unlike an unset variable.
    let unclosed = "[app]\nname = \"x\"\n\n[service.web]\ncommand = [\"${BIN\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    let err = check_text(unclosed, Path::new("cutover.toml")).expect_err("unclosed");
    assert_eq!(err.problems()[0].line_column().0, 5);
    // Loading for use still refuses an unset variable.
    let uses_var = "[app]\nname = \"x\"\n\n[service.web]\ncommand = [\"${CUTOVER_TEST_SURELY_UNSET_VARIABLE}\"]\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n";
    assert!(check_text(uses_var, Path::new("cutover.toml")).is_ok());
    let err = parse(uses_var, Path::new("cutover.toml")).expect_err("unset variable");
    assert!(err.problems()[0].message().contains("is not set"));
}

#[test]
fn a_swarm_service_has_the_container_settings_and_its_swarm_part() {
    let config = valid(
        "[app]\nname = \"hello\"\n\n[service.web]\ndriver = \"swarm\"\nimage = \"hello:{version}\"\nport = 8080\nresources = { memory = \"64m\" }\n\n[service.web.swarm]\nconstraints = [\"node.role == manager\"]\nhealth_command = [\"/hello\", \"--probe\"]\n\n[service.api]\ndriver = \"swarm\"\nimage = \"api:{version}\"\nport = 9000\npath_prefix = \"/api\"\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n",
    );
    let web = &config.services["web"];
    assert_eq!(web.driver, DriverKind::Swarm);
    let docker = web.docker.as_ref().expect("container settings");
    assert_eq!(docker.port, Some(8080));
    assert_eq!(docker.memory_bytes, Some(64 * 1024 * 1024));
    assert_eq!(
        docker.swarm,
        Some(crate::config::SwarmConfig {
            constraints: vec!["node.role == manager".into()],
            health_command: vec!["/hello".into(), "--probe".into()],
            ..Default::default()
        })
    );
    // `[service.NAME.swarm]` is optional.
    let api = config.services["api"].docker.as_ref().expect("settings");
    assert_eq!(api.swarm, Some(crate::config::SwarmConfig::default()));
    let schema = crate::config::json_schema();
    assert!(
        schema["$defs"]["Swarm"]["properties"]["constraints"].is_object(),
        "{schema}"
    );
    for key in [
        "update_parallelism",
        "update_delay",
        "update_monitor",
        "update_failure_action",
    ] {
        assert!(
            schema["$defs"]["Swarm"]["properties"][key].is_object(),
            "{key}: {schema}"
        );
    }
}

#[test]
fn a_swarm_worker_has_its_rolling_update_settings() {
    let config = valid(
        "[app]\nname = \"hello\"\n\n[service.jobs]\nkind = \"worker\"\ndriver = \"swarm\"\nimage = \"hello:{version}\"\nreplicas = 4\n\n[service.jobs.swarm]\nupdate_parallelism = 2\nupdate_delay = \"3s\"\nupdate_monitor = \"10s\"\nupdate_failure_action = \"pause\"\n\n[service.mail]\nkind = \"worker\"\ndriver = \"swarm\"\nimage = \"mail:{version}\"\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n",
    );
    let swarm = config.services["jobs"]
        .docker
        .as_ref()
        .and_then(|d| d.swarm.clone())
        .expect("swarm settings");
    assert_eq!(swarm.update_parallelism, 2);
    assert_eq!(swarm.update_delay, std::time::Duration::from_secs(3));
    assert_eq!(swarm.update_monitor, std::time::Duration::from_secs(10));
    assert_eq!(
        swarm.update_failure_action,
        crate::config::UpdateFailureAction::Pause
    );
    // The defaults: 1, 0s, 5s, rollback.
    let mail = config.services["mail"]
        .docker
        .as_ref()
        .and_then(|d| d.swarm.clone())
        .expect("swarm settings");
    assert_eq!(mail.update_parallelism, 1);
    assert_eq!(mail.update_delay, std::time::Duration::ZERO);
    assert_eq!(mail.update_monitor, std::time::Duration::from_secs(5));
    assert_eq!(
        mail.update_failure_action,
        crate::config::UpdateFailureAction::Rollback
    );
}

#[test]
fn a_host_table_gives_one_daemon_its_own_addresses() {
    let config = valid(
        r#"
[app]
name = "hello"

[server]
listen = "127.0.0.1:7000"

[service.web]
command = ["./web", "--port", "{port}"]

[environment.production]
listen = "127.0.0.1:8080"
preview_listen = "127.0.0.1:8090"

[host.a]
listen = "127.0.0.1:7001"

[host.a.environment.production]
listen = "127.0.0.1:8081"
"#,
    );
    let a = config.clone().for_host("a").expect("host a");
    let addr = |s: &str| s.parse::<SocketAddr>().expect("an address");
    assert_eq!(a.server.listen, addr("127.0.0.1:7001"));
    let env = &a.environments["production"];
    assert_eq!(env.listen, addr("127.0.0.1:8081"));
    // What the host does not set stays.
    assert_eq!(env.preview_listen, Some(addr("127.0.0.1:8090")));
    let err = config.for_host("b").expect_err("no [host.b]");
    assert!(err.contains("its hosts are a"), "{err}");
}

#[test]
fn a_host_table_naming_an_unknown_environment_is_refused() {
    let err = parse_at(
        r#"
[app]
name = "hello"

[service.web]
command = ["./web", "--port", "{port}"]

[environment.production]
listen = "127.0.0.1:8080"

[host.a.environment.staging]
listen = "127.0.0.1:8081"
"#,
        "/srv/hello/cutover.toml",
    )
    .expect_err("staging is not an environment");
    let text = render(&err);
    assert!(text.contains("names environment \"staging\""), "{text}");
}
