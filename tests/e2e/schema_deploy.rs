//! Migrations inside `cutover deploy`: lint first, expand before the new
//! release starts, contract only once the old release is gone, never after a
//! rollback.

use crate::common::{Release, TestApp, count, ok, stderr};

const DATABASE: &str = r#"
[database.main]
url = "sqlite://app.db"
migrations = "migrations"
"#;

fn app_with_db(rollback_window: &str) -> TestApp {
    let app = TestApp::new(rollback_window);
    app.append_config(DATABASE);
    std::fs::create_dir_all(app.path().join("migrations")).expect("migrations dir");
    migration(
        &app,
        "0001_create_users.sql",
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    );
    app.release("v1", Release::Good);
    app
}

fn migration(app: &TestApp, file: &str, sql: &str) {
    std::fs::write(app.path().join("migrations").join(file), sql).expect("write migration");
}

fn applied(app: &TestApp) -> Vec<i64> {
    let out = app.cli(&["migrate", "status", "--json"]);
    ok(app, &out);
    let json: serde_json::Value = serde_json::from_slice(&out.stdout).expect("status json");
    json["applied"]
        .as_array()
        .map(|a| a.iter().filter_map(|m| m["version"].as_i64()).collect())
        .unwrap_or_default()
}

/// Waits until the newest deployment, of `version`, records that its contract
/// migrations ran.
fn wait_for_contract(app: &TestApp, version: &str) {
    app.wait_for_event(version, "contract_done");
}

fn position(events: &[(String, String)], pred: impl Fn(&(String, String)) -> bool) -> usize {
    events.iter().position(pred).unwrap_or(usize::MAX)
}

/// SQLite's contract migration (PostgreSQL's needs an allow, see below).
const SQLITE_CONTRACT: &str = "-- cutover:phase contract\nALTER TABLE users DROP COLUMN name;\n";

/// v1 with 0001; then v2 with an expand (0002) and a contract (0003)
/// migration under load: expand before v2 starts, contract only once v1 is gone.
fn expand_then_contract(app: &TestApp, contract: &str) {
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    app.serve_and_deploy(&["v1"]);
    assert_eq!(applied(app), vec![1]);

    migration(
        app,
        "0002_add_email.sql",
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    );
    migration(app, "0003_drop_name.sql", contract);
    app.release("v2", Release::Good);
    let load = {
        let _inside = rt.enter();
        app.load(6)
    };
    let out = app.cli(&["deploy", "v2"]);
    let failed = rt.block_on(load.stop()).expect("stop the load").failed();
    ok(app, &out);
    assert_eq!(failed, 0, "requests failed while the schema changed");
    // v1 is still warm: the contract migration waits.
    assert_eq!(applied(app), vec![1, 2]);

    // v1 is retired when its window ends; then the contract migration runs.
    wait_for_contract(app, "v2");
    assert_eq!(applied(app), vec![1, 2, 3], "contract never ran");
    assert_eq!(
        app.running_version("v1"),
        0,
        "contract ran while v1 still ran"
    );
    let events = app.last_events();
    let expand = position(&events, |(k, m)| k == "migration" && m.contains("0002"));
    let started = position(&events, |(k, _)| k == "instance_started");
    let contract = position(&events, |(k, m)| k == "migration" && m.contains("0003"));
    let finished = position(&events, |(k, _)| k == "finished");
    assert!(
        expand < started,
        "expand after the new release started: {events:#?}"
    );
    assert!(finished < contract && contract != usize::MAX, "{events:#?}");
}

/// A deploy whose release never becomes healthy runs no contract migration.
fn failed_deploy_runs_no_contract(app: &TestApp, contract: &str) {
    app.serve_and_deploy(&["v1"]);
    migration(app, "0002_drop_name.sql", contract);
    app.release("v2", Release::FailsHealth);
    let out = app.cli(&["deploy", "v2"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    // Contract migrations run at the end of a successful deploy when no old
    // release runs, or are left waiting (`contract_pending`) until the
    // rollback window that the `warm` event opens ends and the old release is
    // retired. Wait until this deploy is cleaned up (its release's instances
    // gone), then check that it opened no window and left nothing waiting: no
    // timer is left that could run one later.
    app.wait_gone("v2");
    let events = app.last_events();
    assert_eq!(app.last_deployment()["version"], "v2");
    for kind in ["warm", "contract_pending", "contract_done"] {
        assert_eq!(count(&events, kind), 0, "{kind}: {events:#?}");
    }
    assert_eq!(applied(app), vec![1]);
}

#[test]
fn expand_runs_before_the_release_and_contract_after_the_old_one_is_gone() {
    expand_then_contract(&app_with_db("1s"), SQLITE_CONTRACT);
}

#[test]
fn a_deploy_that_fails_runs_no_contract_migration() {
    failed_deploy_runs_no_contract(&app_with_db("1s"), SQLITE_CONTRACT);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_errors_block_the_deploy_before_anything_changes() {
    let app = app_with_db("10m");
    app.serve_and_deploy(&["v1"]);
    migration(
        &app,
        "0002_drop_name.sql",
        "ALTER TABLE users DROP COLUMN name;\n",
    );
    app.release("v2", Release::Good);
    let out = app.cli(&["deploy", "v2"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("0002_drop_name.sql:1:"), "{err}");
    assert!(err.contains("drop-in-expand"), "{err}");
    assert_eq!(applied(&app), vec![1]);
    assert_eq!(app.running_version("v2"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_expand_migration_aborts_the_deploy_with_the_old_release_untouched() {
    let app = app_with_db("10m");
    app.serve_and_deploy(&["v1"]);
    migration(
        &app,
        "0002_broken.sql",
        "ALTER TABLE nope ADD COLUMN x TEXT;\n",
    );
    app.release("v2", Release::Good);
    let out = app.cli(&["deploy", "v2"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("expand migrations failed"),
        "{}",
        stderr(&out)
    );
    assert!(stderr(&out).contains("0002_broken.sql"), "{}", stderr(&out));
    assert_eq!(applied(&app), vec![1]);
    assert_eq!(app.running_version("v2"), 0);
    assert_eq!(
        crate::common::fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn waiting_contract_migrations_survive_a_daemon_crash() {
    let app = app_with_db("2s");
    app.serve_and_deploy(&["v1"]);
    migration(
        &app,
        "0002_drop_name.sql",
        "-- cutover:phase contract\nALTER TABLE users DROP COLUMN name;\n",
    );
    app.release("v2", Release::Good);
    app.deploy_ok("v2");
    app.kill_daemon();
    assert_eq!(applied(&app), vec![1]);
    app.serve();
    // The restarted daemon retires v1 when its window ends; then the contract
    // migration left waiting runs.
    wait_for_contract(&app, "v2");
    assert_eq!(applied(&app), vec![1, 2], "contract lost in the crash");
    assert_eq!(app.running_version("v1"), 0);
}

/// The same order on PostgreSQL: a scratch database of the test's own.
mod postgres {
    use super::migration;
    use crate::common::{Release, TestApp, stderr};
    use crate::migrate::app::{Kind, MigrateApp};

    fn app_with_pg(rollback_window: &str) -> (TestApp, MigrateApp) {
        let db = MigrateApp::new(Kind::Postgres);
        let app = TestApp::new(rollback_window);
        app.append_config(&format!(
            "\n[database.main]\nurl = \"{}\"\nmigrations = \"migrations\"\n",
            db.url
        ));
        std::fs::create_dir_all(app.path().join("migrations")).expect("migrations dir");
        migration(
            &app,
            "0001_create_users.sql",
            "CREATE TABLE users (id BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name TEXT);\n",
        );
        app.release("v1", Release::Good);
        (app, db)
    }

    const CONTRACT: &str = "-- cutover:phase contract\n\
        -- cutover:allow ban-drop-column because only v1 read it and v1 is gone when this runs\n\
        ALTER TABLE users DROP COLUMN name;\n";

    // Plain #[test]s: MigrateApp makes and drops its database with a runtime
    // of its own, which cannot nest in a tokio test's.
    #[test]
    fn expand_before_and_contract_after_on_postgres() {
        let (app, _db) = app_with_pg("1s");
        super::expand_then_contract(&app, CONTRACT);
    }

    /// A first migration with SERIAL deploys, its style advice recorded as
    /// warnings; an index without CONCURRENTLY on a table that exists still
    /// blocks, until the config moves the rule to `warn`.
    #[test]
    fn style_warns_danger_blocks_and_the_config_moves_a_rule() {
        let db = MigrateApp::new(Kind::Postgres);
        let app = TestApp::new("1s");
        app.append_config(&format!(
            "\n[database.main]\nurl = \"{}\"\nmigrations = \"migrations\"\n",
            db.url
        ));
        std::fs::create_dir_all(app.path().join("migrations")).expect("migrations dir");
        migration(
            &app,
            "0001_jobs.sql",
            "CREATE TABLE jobs (id SERIAL PRIMARY KEY, name varchar(50));\nCREATE INDEX jobs_name ON jobs (name);\n",
        );
        app.release("v1", Release::Good);
        app.release("v2", Release::Good);
        app.serve_and_deploy(&["v1"]);
        let events = app.last_events();
        assert!(
            events.iter().any(|(kind, message)| kind == "warning"
                && message.contains("prefer-identity")
                && message.contains("does not block")),
            "{events:#?}"
        );

        migration(
            &app,
            "0002_index.sql",
            "CREATE INDEX jobs_name2 ON jobs (name);\n",
        );
        let out = app.cli(&["deploy", "v2"]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("require-concurrent-index-creation"),
            "{}",
            stderr(&out)
        );
        assert_eq!(app.running_version("v2"), 0);

        // The config ends with [database.main]: the key goes there.
        app.append_config("lint = { warn = [\"require-concurrent-index-creation\"] }\n");
        app.stop_daemon();
        app.serve();
        app.deploy_ok("v2");
        let events = app.last_events();
        assert!(
            events.iter().any(|(kind, message)| kind == "warning"
                && message.contains("require-concurrent-index-creation")),
            "{events:#?}"
        );
    }

    #[test]
    fn a_failed_deploy_runs_no_contract_on_postgres() {
        let (app, _db) = app_with_pg("1s");
        super::failed_deploy_runs_no_contract(&app, CONTRACT);
    }
}
