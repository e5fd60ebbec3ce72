//! Per-environment settings and databases with the real binary: staging and
//! production each with their own SQLite database; a staging deploy migrates
//! only staging's; production's instances get production's `env` and
//! `replicas`; `cutover migrate -e` picks an environment's database; a
//! config that would migrate one database from two environments is refused.

use std::path::Path;

use cutover_kit::ports;

use crate::common::{Release, TestApp, fetch, ok, stderr, stdout};

/// The versions recorded in `cutover_migrations` of the SQLite file at
/// `path`; `None` when the file or the table does not exist.
fn migrated(path: &Path) -> Option<Vec<i64>> {
    use sqlx::Connection as _;
    if !path.is_file() {
        return None;
    }
    let url = format!("sqlite://{}?mode=ro", path.display());
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    rt.block_on(async {
        let mut connection = sqlx::SqliteConnection::connect(&url).await.ok()?;
        sqlx::query_scalar::<_, i64>("SELECT version FROM cutover_migrations ORDER BY version")
            .fetch_all(&mut connection)
            .await
            .ok()
    })
}

/// The app with two environments: production on the app's proxy port with
/// 3 replicas and its own `GREETING`, staging on another port with 1; each
/// with its own database file and one migration.
fn two_environments() -> (TestApp, u16) {
    let app = TestApp::new("1s");
    let staging_port = ports::free_ports(1).expect("a free port")[0];
    let config = format!(
        r#"[app]
name = "hello"

[server]
listen = "127.0.0.1:{api}"

[service.web]
command = ["./releases/{{version}}/hello", "--port", "{{port}}", "--version", "{{version}}"]
replicas = 2
env = {{ GREETING = "from the service", COMMON = "kept" }}
health = {{ path = "/health", interval = "100ms", timeout = "1s", healthy = 2, start_timeout = "5s" }}
drain_timeout = "5s"
stop_timeout = "3s"

[environment.staging]
listen = "127.0.0.1:{staging_port}"
rollback_window = "1s"

[environment.staging.service.web]
replicas = 1

[environment.staging.database.main]
url = "sqlite://staging.db"

[environment.production]
listen = "127.0.0.1:{production_port}"
rollback_window = "1s"

[environment.production.service.web]
replicas = 3
env = {{ GREETING = "from production" }}

[database.main]
url = "sqlite://production.db"
migrations = "migrations"
"#,
        api = app.api_port,
        production_port = app.proxy_port,
    );
    std::fs::write(app.config(), config).expect("write config");
    let migrations = app.path().join("migrations");
    std::fs::create_dir_all(&migrations).expect("migrations dir");
    std::fs::write(
        migrations.join("0001_create_users.sql"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    )
    .expect("write migration");
    app.release("v1", Release::Good);
    (app, staging_port)
}

fn applied(app: &TestApp, env: &str) -> Vec<i64> {
    let out = app.cli(&["migrate", "status", "-e", env, "--json"]);
    ok(app, &out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    json["applied"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["version"].as_i64()).collect())
        .unwrap_or_default()
}

// A plain #[test]: `migrated` opens the files with a runtime of its own.
#[test]
fn a_staging_deploy_migrates_only_staging_s_database() {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (app, staging_port) = two_environments();
    let (staging_db, production_db) = (
        app.path().join("staging.db"),
        app.path().join("production.db"),
    );
    app.serve();

    let out = app.cli(&["deploy", "v1", "-e", "staging"]);
    ok(&app, &out);
    assert_eq!(migrated(&staging_db), Some(vec![1]), "staging was migrated");
    assert_eq!(
        migrated(&production_db),
        None,
        "a staging deploy touched production's database"
    );
    // staging's replicas: 1.
    assert_eq!(app.running_version("v1"), 1);

    // `migrate status -e` reads each environment's own database.
    assert_eq!(applied(&app, "staging"), vec![1]);
    assert_eq!(applied(&app, "production"), Vec::<i64>::new());
    // Without -e, the databases differ: the error names the environments.
    let out = app.cli(&["migrate", "status"]);
    assert!(!out.status.success(), "{}", stdout(&out));
    let err = stderr(&out);
    assert!(
        err.contains("`production`") && err.contains("`staging`") && err.contains("--env"),
        "{err}"
    );

    // The production deploy migrates production's database, with production's
    // replicas and env.
    let out = app.cli(&["deploy", "v1", "-e", "production"]);
    ok(&app, &out);
    assert_eq!(migrated(&production_db), Some(vec![1]));
    assert_eq!(
        app.running_version("v1"),
        4,
        "3 in production + 1 in staging"
    );

    let production = rt
        .block_on(fetch(&format!("{}env", app.proxy_url())))
        .expect("production answers /env");
    assert!(
        production.contains("GREETING=from production\n"),
        "{production}"
    );
    assert!(production.contains("COMMON=kept\n"), "{production}");
    assert!(
        production.contains("CUTOVER_ENVIRONMENT=production\n"),
        "{production}"
    );
    let staging = rt
        .block_on(fetch(&format!("http://127.0.0.1:{staging_port}/env")))
        .expect("staging answers /env");
    assert!(staging.contains("GREETING=from the service\n"), "{staging}");
    assert!(
        staging.contains("CUTOVER_ENVIRONMENT=staging\n"),
        "{staging}"
    );
    app.stop_daemon();
}

#[test]
fn one_database_for_two_environments_is_refused_until_shared() {
    let (app, _) = two_environments();
    // Remove staging's own url: both environments would use production.db.
    let config = std::fs::read_to_string(app.config()).expect("read config");
    let shared = config.replace(
        "[environment.staging.database.main]\nurl = \"sqlite://staging.db\"\n",
        "",
    );
    std::fs::write(app.config(), &shared).expect("write config");
    let out = app.cli(&["check"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("environments `production` and `staging` would migrate and back up the same database `main`"),
        "{err}"
    );
    assert!(err.contains("cutover.toml:"), "{err}");
    assert!(err.contains("shared = true"), "{err}");
    assert!(!app.path().join("production.db").exists());

    // Said so: accepted, and `migrate` needs no -e.
    std::fs::write(
        app.config(),
        shared.replace(
            "migrations = \"migrations\"\n",
            "migrations = \"migrations\"\nshared = true\n",
        ),
    )
    .expect("write config");
    ok(&app, &app.cli(&["check"]));
    ok(&app, &app.cli(&["migrate", "up"]));
    assert_eq!(migrated(&app.path().join("production.db")), Some(vec![1]));
}

/// `backup create -e ENV` backs up that environment's database into its own
/// folder; `list` per environment sees only its own backups.
#[test]
fn backups_are_per_environment() {
    let (app, _) = two_environments();
    let key = app.path().join("key.txt");
    let out = app.cli(&["backup", "keygen", "-o", &key.display().to_string()]);
    ok(&app, &out);
    let recipient = stdout(&out).trim().to_owned();
    let config = std::fs::read_to_string(app.config()).expect("read config");
    std::fs::write(
        app.config(),
        config.replace(
            "migrations = \"migrations\"\n",
            &format!(
                "migrations = \"migrations\"\nbackup = {{ recipients = [\"{recipient}\"] }}\n"
            ),
        ),
    )
    .expect("write config");
    ok(&app, &app.cli(&["migrate", "up", "-e", "staging"]));
    ok(&app, &app.cli(&["migrate", "up", "-e", "production"]));

    ok(&app, &app.cli(&["backup", "create", "-e", "staging"]));
    let count = |env: &str| {
        let out = app.cli(&["backup", "list", "-e", env, "--json"]);
        ok(&app, &out);
        let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("list json");
        json.as_array().map_or(0, Vec::len)
    };
    assert_eq!(count("staging"), 1);
    assert_eq!(
        count("production"),
        0,
        "staging's backup is not production's"
    );
    let in_folder = |env: &str| {
        std::fs::read_dir(app.path().join(".cutover/backups").join(env))
            .map(|dir| {
                dir.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "age"))
                    .count()
            })
            .unwrap_or(0)
    };
    assert_eq!((in_folder("staging"), in_folder("production")), (1, 0));

    // Without -e: which one? The error lists the environments.
    let out = app.cli(&["backup", "list"]);
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("`production`") && err.contains("`staging`"),
        "{err}"
    );
    // An unknown environment says what there is.
    let out = app.cli(&["preflight", "-e", "prod"]);
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("did you mean `production`?"),
        "{}",
        stderr(&out)
    );
}
