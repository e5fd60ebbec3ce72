//! What an instance's environment holds: an allowlist of the daemon's
//! (PATH, HOME, LANG, LC_*, TZ), the service's `env` and cutover's own
//! variables — never the daemon's secrets (`CUTOVER_BACKUP_IDENTITY`, the
//! API token, anything else it was started with) unless `inherit_env = true`
//! opts back in, and even then never cutover's own `CUTOVER_*`. And `cutover
//! check` shows no `env` value and no password of a URL.

use crate::common::{Release, TestApp, fetch, ok, stdout};

/// A secret the service's `env` holds, in a URL and as a query parameter.
const DB_URL: &str = "postgres://app:hunter2@db.internal/app?sslpassword=hunter3&sslmode=require";

/// Inserts `keys` into `[service.web]` of the app's config.
fn service_keys(app: &TestApp, keys: &str) {
    let config = std::fs::read_to_string(app.config()).expect("read config");
    let config = config.replacen(
        "stop_timeout = \"3s\"\n",
        &format!("stop_timeout = \"3s\"\n{keys}\n"),
        1,
    );
    std::fs::write(app.config(), config).expect("write config");
}

/// The environment of the instance serving `/`, as `NAME=value` lines.
async fn instance_env(app: &TestApp) -> Vec<String> {
    let body = fetch(&format!("{}env", app.proxy_url()))
        .await
        .expect("the instance answers /env");
    body.lines().map(str::to_owned).collect()
}

fn names(vars: &[String]) -> Vec<&str> {
    vars.iter()
        .filter_map(|v| v.split_once('=').map(|(k, _)| k))
        .collect()
}

fn serve_with_secrets(app: &TestApp) {
    app.serve_with_env(&[
        (
            "CUTOVER_BACKUP_IDENTITY",
            "/etc/cutover/backup-identity.txt",
        ),
        ("SECRET_FROM_DAEMON", "x"),
        ("LC_TIME", "C"),
    ]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_instance_gets_the_allowlist_and_its_env_not_the_daemon_s_secrets() {
    let app = TestApp::new("1m");
    app.release("v1", Release::Good);
    service_keys(
        &app,
        &format!("env = {{ FROM_CONFIG = \"set in the config\", DATABASE_URL = \"{DB_URL}\" }}"),
    );
    serve_with_secrets(&app);
    app.deploy_ok("v1");

    let vars = instance_env(&app).await;
    let names = names(&vars);
    for wanted in [
        "FROM_CONFIG=set in the config".to_owned(),
        format!("DATABASE_URL={DB_URL}"),
        "CUTOVER_VERSION=v1".to_owned(),
        "CUTOVER_SERVICE=web".to_owned(),
        "CUTOVER_ENVIRONMENT=production".to_owned(),
        "CUTOVER_APP=hello".to_owned(),
        "LC_TIME=C".to_owned(),
    ] {
        assert!(vars.contains(&wanted), "{wanted} missing from {vars:#?}");
    }
    assert!(
        names.contains(&"PORT") && names.contains(&"CUTOVER_INSTANCE") && names.contains(&"PATH")
    );
    for name in &names {
        assert!(
            // PWD: set by the release's `#!/bin/sh` wrapper itself.
            [
                "PWD",
                "PATH",
                "HOME",
                "LANG",
                "TZ",
                "PORT",
                "FROM_CONFIG",
                "DATABASE_URL",
                "CUTOVER_VERSION",
                "CUTOVER_INSTANCE",
                "CUTOVER_SERVICE",
                "CUTOVER_ENVIRONMENT",
                "CUTOVER_APP",
            ]
            .contains(name)
                || name.starts_with("LC_"),
            "{name} reached the instance: {vars:#?}"
        );
    }
    // Neither the API token's value nor its file's path is in any variable.
    let token_path = app.path().join(".cutover").join("api.token");
    let token = std::fs::read_to_string(&token_path).expect("the daemon wrote its token");
    let all = vars.join("\n");
    assert!(
        !all.contains(token.trim()),
        "the token reached the instance"
    );
    assert!(
        !all.contains("api.token"),
        "the token's path reached the instance"
    );

    // `cutover check` and `check --json` show the names, not the values.
    for args in [&["check"][..], &["check", "--json"][..]] {
        let out = app.cli(args);
        ok(&app, &out);
        let text = stdout(&out);
        assert!(text.contains("FROM_CONFIG"), "{args:?}: {text}");
        for secret in ["hunter2", "hunter3", "set in the config"] {
            assert!(!text.contains(secret), "{args:?} shows {secret}: {text}");
        }
    }
    let json: serde_json::Value =
        serde_json::from_slice(&app.cli(&["check", "--json"]).stdout).expect("check --json");
    assert_eq!(json["services"]["web"]["env"]["DATABASE_URL"], "***");
    assert_eq!(json["services"]["web"]["inherit_env"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inherit_env_passes_the_daemon_s_environment_but_not_cutover_s_own() {
    let app = TestApp::new("1m");
    app.release("v1", Release::Good);
    service_keys(&app, "inherit_env = true\nenv = { FROM_CONFIG = \"yes\" }");
    serve_with_secrets(&app);
    app.deploy_ok("v1");

    let vars = instance_env(&app).await;
    assert!(
        vars.contains(&"SECRET_FROM_DAEMON=x".to_owned()),
        "{vars:#?}"
    );
    assert!(vars.contains(&"FROM_CONFIG=yes".to_owned()), "{vars:#?}");
    let names = names(&vars);
    assert!(!names.contains(&"CUTOVER_BACKUP_IDENTITY"), "{vars:#?}");
    for name in names.iter().filter(|n| n.starts_with("CUTOVER_")) {
        assert!(
            [
                "CUTOVER_VERSION",
                "CUTOVER_INSTANCE",
                "CUTOVER_SERVICE",
                "CUTOVER_ENVIRONMENT",
                "CUTOVER_APP"
            ]
            .contains(name),
            "the daemon's {name} reached the instance"
        );
    }
}
