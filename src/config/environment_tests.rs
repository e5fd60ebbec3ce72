//! Tests of per-environment settings and databases: service overrides
//! merged, unknown services refused, one database URL in two environments
//! refused unless `shared = true`, backup folders per environment, the
//! database a local command picks with `-e`, and redaction of per-environment
//! URLs.

use std::env::VarError;
use std::path::{Path, PathBuf};
use std::time::Duration;

use super::*;

fn variables(name: &str) -> Result<String, VarError> {
    match name {
        "PROD_DB" => Ok("postgres://shop:prod-s3cret@db.local/shop".to_owned()),
        "STAGING_DB" => Ok("postgres://shop:staging-s3cret@db.local/shop_staging".to_owned()),
        _ => Err(VarError::NotPresent),
    }
}

fn parse(source: &str) -> Result<Config, ConfigError> {
    parse_with_env(source, Path::new("/srv/shop/cutover.toml"), &variables)
}

fn valid(source: &str) -> Config {
    parse(source).unwrap_or_else(|err| panic!("expected a valid config:\n{}", render(&err)))
}

/// The error of `source`, rendered, with its problems.
fn invalid(source: &str) -> (String, ConfigError) {
    match parse(source) {
        Ok(_) => panic!("expected an error"),
        Err(err) => (render(&err), err),
    }
}

const TWO: &str = r#"
[app]
name = "shop"

[service.web]
command = ["./web", "--port", "{port}"]
replicas = 4
env = { RUST_LOG = "info", GREETING = "hello" }
health = { path = "/up", interval = "2s", start_timeout = "60s" }

[service.jobs]
kind = "worker"
command = ["./jobs"]

[environment.staging]
listen = "127.0.0.1:8081"

[environment.production]
listen = "127.0.0.1:8080"
"#;

#[test]
fn service_overrides_replace_replicas_and_merge_env_and_health() {
    let config = valid(&format!(
        "{TWO}\n[environment.staging.service.web]\nreplicas = 1\nenv = {{ RUST_LOG = \"debug\", EXTRA = \"1\" }}\nhealth = {{ start_timeout = \"5m\" }}\n"
    ));
    let summary = config.summary();
    assert!(
        summary.contains("service web: 1 replica, env EXTRA, RUST_LOG, health"),
        "{summary}"
    );
    assert!(
        !summary.contains("debug"),
        "env values are never shown: {summary}"
    );
    let staging = config.service_in("staging", "web").expect("web in staging");
    assert_eq!(staging.replicas, 1);
    assert_eq!(
        staging.env["RUST_LOG"], "debug",
        "the environment's value wins"
    );
    assert_eq!(
        staging.env["GREETING"], "hello",
        "the service's others stay"
    );
    assert_eq!(staging.env["EXTRA"], "1");
    assert_eq!(staging.health.path, "/up", "health keys not written stay");
    assert_eq!(staging.health.interval, Duration::from_secs(2));
    assert_eq!(staging.health.start_timeout, Duration::from_secs(300));

    // production has no overrides: the service as written.
    let production = config.service_in("production", "web").expect("web");
    assert_eq!(production, &config.services["web"]);
    assert_eq!(production.replicas, 4);
    // An unknown environment falls back to the service as written.
    assert_eq!(
        config.service_in("nowhere", "web"),
        Some(&config.services["web"])
    );
    assert_eq!(config.services_in("staging").len(), 2);

    // check --json: the environment's env names, never its values.
    let json = serde_json::to_value(&config).expect("serializes");
    let env = &json["environments"]["staging"]["services"]["web"]["env"];
    assert_eq!(env["RUST_LOG"], REDACTED);
    assert_eq!(
        json["environments"]["staging"]["services"]["web"]["replicas"],
        1
    );
}

#[test]
fn a_bad_override_value_is_located() {
    let source = format!("{TWO}\n[environment.staging.service.web]\nreplicas = 0\n");
    let (rendered, err) = invalid(&source);
    assert_eq!(err.problems().len(), 1, "{rendered}");
    let line = source
        .lines()
        .position(|l| l == "replicas = 0")
        .expect("line")
        + 1;
    assert!(
        rendered.contains(&format!("cutover.toml:{line}:12")),
        "{rendered}"
    );
}

#[test]
fn an_override_of_an_unknown_service_suggests_the_right_one() {
    let source = format!("{TWO}\n[environment.staging.service.webb]\nreplicas = 1\n");
    let (rendered, err) = invalid(&source);
    assert_eq!(err.problems().len(), 1, "{rendered}");
    let line = source
        .lines()
        .position(|l| l == "[environment.staging.service.webb]")
        .expect("line")
        + 1;
    assert_eq!(err.problems()[0].line_column(), (line, 30), "{rendered}");
    assert!(
        rendered
            .contains("environment `staging` changes service `webb`, which is not in the config"),
        "{rendered}"
    );
    assert!(rendered.contains("did you mean `web`?"), "{rendered}");
    insta::assert_snapshot!("override_of_an_unknown_service", rendered);
}

#[test]
fn unknown_keys_in_a_service_override_are_refused() {
    // Only replicas, env and health may change per environment.
    let (rendered, _) = invalid(&format!(
        "{TWO}\n[environment.staging.service.web]\ncommand = [\"./other\"]\n"
    ));
    assert!(rendered.contains("unknown"), "{rendered}");
    assert!(rendered.contains("`replicas`"), "{rendered}");
}

#[test]
fn two_environments_on_one_database_url_are_refused_naming_both() {
    let source = format!("{TWO}\n[database.main]\nurl = \"${{PROD_DB}}\"\n");
    let (rendered, err) = invalid(&source);
    assert_eq!(err.problems().len(), 1, "{rendered}");
    let line = source
        .lines()
        .position(|l| l.starts_with("url ="))
        .expect("url")
        + 1;
    assert_eq!(err.problems()[0].line_column(), (line, 7), "{rendered}");
    assert!(
        rendered.contains("environments `production` and `staging` would migrate and back up the same database `main`"),
        "{rendered}"
    );
    // Both fixes, and never the password.
    assert!(
        rendered.contains("[environment.staging.database.main]"),
        "{rendered}"
    );
    assert!(rendered.contains("shared = true"), "{rendered}");
    assert!(!rendered.contains("prod-s3cret"), "{rendered}");
    insta::assert_snapshot!("two_environments_on_one_database_url", rendered);
}

#[test]
fn two_environments_writing_the_same_url_are_refused_at_both_places() {
    let source = format!(
        "{TWO}\n[environment.staging.database.main]\nurl = \"sqlite://app.db\"\n\n[environment.production.database.main]\nurl = \"sqlite://./app.db?mode=rwc\"\n"
    );
    let (rendered, err) = invalid(&source);
    assert_eq!(err.problems().len(), 1, "{rendered}");
    assert!(
        rendered.contains("`production` and `staging`"),
        "{rendered}"
    );
    assert!(rendered.contains("used by `staging`"), "{rendered}");
    assert!(rendered.contains("used by `production`"), "{rendered}");
}

#[test]
fn shared_true_allows_one_database_in_two_environments() {
    let config = valid(&format!(
        "{TWO}\n[database.main]\nurl = \"${{PROD_DB}}\"\nshared = true\nbackup = {{ recipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"] }}\n"
    ));
    let staging = &config.databases_in("staging")["main"];
    let production = &config.databases_in("production")["main"];
    assert_eq!(staging.url, production.url);
    assert!(staging.shared);
    // One database, one backup folder.
    let dir = |d: &DatabaseConfig| d.backup.as_ref().map(|b| b.dir.clone());
    assert_eq!(
        dir(staging),
        Some(PathBuf::from("/srv/shop/.cutover/backups"))
    );
    assert_eq!(dir(staging), dir(production));
    // And a local command needs no -e.
    let (env, name, database) = config.database_for(None, None).expect("one database");
    assert_eq!((env, name), (None, "main"));
    assert_eq!(database.url, staging.url);
}

#[test]
fn a_single_environment_needs_neither_shared_nor_its_own_url() {
    let config = valid(
        "[app]\nname = \"shop\"\n[service.web]\ncommand = [\"./web\"]\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n[database.main]\nurl = \"sqlite://app.db\"\nbackup = { recipients = [\"age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p\"] }\n",
    );
    let main = &config.databases_in("production")["main"];
    assert_eq!(main, &config.databases["main"]);
    assert_eq!(
        main.backup.as_ref().map(|b| b.dir.clone()),
        Some(PathBuf::from("/srv/shop/.cutover/backups")),
        "the backup folder of a single environment is unchanged"
    );
}

const OWN_URLS: &str = r#"
[database.main]
url = "${PROD_DB}"
migrations = "db/migrations"
lock_timeout = "250ms"
backup = { before_deploy = true, recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"] }

[environment.staging.database.main]
url = "${STAGING_DB}"

[environment.staging.database.cache]
url = "sqlite://data/staging-cache.db"
"#;

#[test]
fn each_environment_gets_its_own_url_and_backup_folder() {
    let config = valid(&format!("{TWO}{OWN_URLS}"));
    let staging = config.databases_in("staging");
    let production = config.databases_in("production");
    assert_eq!(
        staging["main"].url,
        "postgres://shop:staging-s3cret@db.local/shop_staging"
    );
    assert_eq!(
        production["main"].url,
        "postgres://shop:prod-s3cret@db.local/shop"
    );
    // The rest is the top-level table's: migrations shared.
    assert_eq!(
        staging["main"].migrations,
        PathBuf::from("/srv/shop/db/migrations")
    );
    assert_eq!(staging["main"].lock_timeout, Duration::from_millis(250));
    assert!(
        staging["main"]
            .backup
            .as_ref()
            .is_some_and(|b| b.before_deploy)
    );
    // Backups per environment.
    let dir = |d: &DatabaseConfig| d.backup.as_ref().map(|b| b.dir.clone());
    assert_eq!(
        dir(&staging["main"]),
        Some(PathBuf::from("/srv/shop/.cutover/backups/staging"))
    );
    assert_eq!(
        dir(&production["main"]),
        Some(PathBuf::from("/srv/shop/.cutover/backups/production"))
    );
    // A database of staging alone.
    assert_eq!(
        staging["cache"].url,
        "sqlite:///srv/shop/data/staging-cache.db"
    );
    assert!(!production.contains_key("cache"));
    assert_eq!(
        staging["cache"].migrations,
        PathBuf::from("/srv/shop/migrations")
    );

    // Passwords of per-environment URLs never reach --json.
    let json = serde_json::to_string(&config).expect("serializes");
    assert!(!json.contains("staging-s3cret"), "{json}");
    assert!(!json.contains("prod-s3cret"), "{json}");
    assert!(
        json.contains("postgres://shop:***@db.local/shop_staging"),
        "{json}"
    );
    let summary = config.summary();
    assert!(!summary.contains("s3cret"), "{summary}");
    assert!(
        summary.contains("database main: postgres://shop:***@db.local/shop_staging  backups /srv/shop/.cutover/backups/staging"),
        "{summary}"
    );
}

#[test]
fn a_local_command_picks_the_environment_s_database() {
    let config = valid(&format!("{TWO}{OWN_URLS}"));
    let (env, name, database) = config
        .database_for(Some("staging"), Some("main"))
        .expect("staging's");
    assert_eq!((env, name), (Some("staging"), "main"));
    assert!(database.url.ends_with("shop_staging"));

    // Without -e, a database that differs between environments is an error
    // that lists them.
    let err = config
        .database_for(None, Some("main"))
        .expect_err("differs");
    let rendered = render(&err);
    assert!(matches!(
        err,
        ConfigError::DatabaseEnvironmentRequired { .. }
    ));
    assert!(rendered.contains("`production`, `staging`"), "{rendered}");
    assert!(rendered.contains("-e"), "{rendered}");

    // A database only one environment has needs no -e.
    let (env, _, cache) = config
        .database_for(None, Some("cache"))
        .expect("only staging's");
    assert_eq!(env, None);
    assert!(cache.url.ends_with("staging-cache.db"));

    // Unknown names say what there is.
    let err = config
        .database_for(Some("staging"), Some("mains"))
        .expect_err("unknown");
    assert!(render(&err).contains("did you mean `main`?"));
    let err = config
        .database_for(Some("prod"), None)
        .expect_err("unknown environment");
    assert!(render(&err).contains("did you mean `production`?"));
}

#[test]
fn two_environments_backing_up_into_one_folder_are_refused() {
    let source = format!(
        "{TWO}{OWN_URLS}\n[environment.production.database.main]\nbackup = {{ dir = \"backups\" }}\n"
    )
    .replace(
        "[environment.staging.database.main]\nurl = \"${STAGING_DB}\"\n",
        "[environment.staging.database.main]\nurl = \"${STAGING_DB}\"\nbackup = { dir = \"backups\" }\n",
    );
    let (rendered, err) = invalid(&source);
    assert_eq!(err.problems().len(), 1, "{rendered}");
    assert!(
        err.to_string()
            .contains("back up different databases `main` into the same folder"),
        "{err}"
    );
    assert!(rendered.contains("own backup.dir"), "{rendered}");
}

#[test]
fn an_environment_database_without_url_is_located() {
    let source = format!("{TWO}\n[environment.staging.database.cache]\nretries = 1\n");
    let (rendered, err) = invalid(&source);
    assert_eq!(err.problems().len(), 1, "{rendered}");
    assert!(
        rendered.contains("database `cache` has no `url`"),
        "{rendered}"
    );
}

#[test]
fn a_problem_of_a_shared_top_level_value_is_reported_once() {
    let source = format!(
        "{TWO}\n[database.main]\nurl = \"sqlite://a.db\"\nlock_timeout = \"0s\"\n\n[environment.staging.database.main]\nurl = \"sqlite://b.db\"\n"
    );
    let (rendered, err) = invalid(&source);
    assert_eq!(err.problems().len(), 1, "{rendered}");
}

#[test]
fn the_schema_describes_per_environment_tables() {
    let schema = json_schema();
    let environment = &schema["$defs"]["Environment"]["properties"];
    assert!(environment["service"].is_object());
    assert_eq!(
        environment["database"]["additionalProperties"]["$ref"],
        "#/$defs/EnvironmentDatabase"
    );
    let database = &schema["$defs"]["EnvironmentDatabase"];
    assert!(database.get("required").is_none(), "{database}");
    assert!(database["properties"]["url"].is_object());
    assert!(schema["$defs"]["Database"]["properties"]["shared"].is_object());
    let service = &schema["$defs"]["ServiceOverride"]["properties"];
    for key in ["replicas", "env", "health"] {
        assert!(service[key].is_object(), "{key}");
    }
}
