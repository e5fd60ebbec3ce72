//! One migrator at a time: a second one waits, says who holds the lock, and
//! gives up after `lock_wait` naming the holder, or goes ahead once the lock
//! is free. PostgreSQL statements that hit `lock_timeout` are retried with
//! backoff.

use std::time::Duration;

use sqlx::{Connection, Executor};

use super::app::{Kind, MigrateApp, Watched, expect_code, runtime, stderr, stdout};
use super::both;

fn a_second_migrator_waits_then_fails_or_goes_ahead(kind: Kind) {
    let app = MigrateApp::new(kind);
    app.migration(
        "0001_create_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n",
    );
    app.migration(
        "0002_slow.sql",
        // Long enough that the second and third migrators both start while
        // it runs, even when SQLite's speed was measured on a busier moment.
        &format!("CREATE TABLE slow (id bigint);\n{}\n", app.slow_sql(8)),
    );
    app.write_config("impatient.toml", "1s", "500ms", 3);

    let mut first = Watched::new(app.spawn(&["migrate", "up"]));
    first.wait_for("applying 0002_slow.sql");
    let pid = first.child.id();

    let impatient = app.cli_with("impatient.toml", &["migrate", "up"]);
    expect_code(&impatient, 4);
    let err = stderr(&impatient);
    assert!(
        err.contains("another migrator holds the migrator lock of database `main`"),
        "{err}"
    );
    assert!(
        err.contains(&format!("pid {pid}")),
        "the holder is named: {err}"
    );
    assert!(err.contains("waited 1s"), "{err}");

    let patient = app.cli(&["migrate", "up"]);
    expect_code(&patient, 0);
    let err = stderr(&patient);
    assert!(
        err.contains("waiting for the migrator lock, held by"),
        "{err}"
    );
    assert!(err.contains(&format!("pid {pid}")), "{err}");
    assert!(
        stdout(&patient).contains("up to date"),
        "{}",
        stdout(&patient)
    );

    let (code, output) = first.finish();
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(app.versions(), (vec![1, 2], vec![]));
}
both!(
    a_second_migrator_waits_then_fails_or_goes_ahead,
    super::a_second_migrator_waits_then_fails_or_goes_ahead
);

#[test]
fn postgres_lock_timeouts_are_retried_with_backoff_then_reported() {
    let app = MigrateApp::new(Kind::Postgres);
    app.migration(
        "0001_create_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n",
    );
    expect_code(&app.cli(&["migrate", "up"]), 0);
    app.migration(
        "0002_add_email.sql",
        "-- a comment\nALTER TABLE users ADD COLUMN email text;\n",
    );
    app.write_config("twice.toml", "30s", "100ms", 2);
    app.write_config("patient.toml", "30s", "100ms", 8);

    let rt = runtime();
    let mut blocker = rt.block_on(async {
        let mut connection = sqlx::PgConnection::connect(&app.url)
            .await
            .expect("connect");
        connection
            .execute("BEGIN; LOCK TABLE users IN ACCESS EXCLUSIVE MODE;")
            .await
            .expect("lock the table");
        connection
    });

    let out = app.cli_with("twice.toml", &["migrate", "up"]);
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(err.contains("lock timeout (55P03); retry 1 in"), "{err}");
    assert!(err.contains("retry 2 in"), "{err}");
    assert!(!err.contains("retry 3"), "{err}");
    assert!(
        err.contains("0002_add_email.sql:2: migration 2 failed and was rolled back"),
        "{err}"
    );
    assert_eq!(app.versions(), (vec![1], vec![2]));

    let mut patient = Watched::new({
        let mut command = std::process::Command::new(env!("CARGO_BIN_EXE_cutover"));
        command
            .arg("-c")
            .arg(app.path().join("patient.toml"))
            .args(["migrate", "up"])
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped());
        command.spawn().expect("start cutover")
    });
    patient.wait_for("retry 1 in");
    std::thread::sleep(Duration::from_millis(100));
    rt.block_on(async { blocker.execute("ROLLBACK").await.expect("unlock") });
    let (code, output) = patient.finish();
    assert_eq!(code, Some(0), "{output}");
    assert_eq!(app.versions(), (vec![1, 2], vec![]));
}

/// A migrator whose lock session is killed (`pg_terminate_backend`, as an
/// operator or a failover would) stops within a few seconds, cancelling the
/// migration under way: its transaction rolls back and nothing is recorded.
#[test]
fn a_postgres_migrator_whose_lock_session_is_killed_stops_and_rolls_back() {
    let app = MigrateApp::new(Kind::Postgres);
    app.migration(
        "0001_create_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n",
    );
    app.migration(
        "0002_slow.sql",
        &format!("CREATE TABLE slow (id bigint);\n{}\n", app.slow_sql(30)),
    );
    app.write_config("cutover.toml", "10s", "60s", 0);
    let mut migrator = Watched::new(app.spawn(&["migrate", "up"]));
    migrator.wait_for("applying 0002_slow.sql");
    let started = std::time::Instant::now();
    let url = app.url.clone();
    let killed: i64 = runtime().block_on(async move {
        let mut connection = sqlx::PgConnection::connect(&url).await.expect("connect");
        sqlx::query_scalar(
            "SELECT COUNT(*) FROM (SELECT pg_terminate_backend(l.pid) FROM pg_locks l
             WHERE l.locktype = 'advisory' AND l.granted
               AND l.database = (SELECT oid FROM pg_database WHERE datname = current_database())) t",
        )
        .fetch_one(&mut connection)
        .await
        .expect("terminate the lock's session")
    });
    assert_eq!(killed, 1, "one session held the migrator lock");
    let (code, output) = migrator.finish();
    let took = started.elapsed();
    assert_eq!(code, Some(1), "{output}");
    assert!(
        output.contains("lost the migrator lock of database `main`"),
        "{output}"
    );
    assert!(output.contains("0002_slow.sql was cancelled"), "{output}");
    assert!(
        took < Duration::from_secs(10),
        "stopped {took:?} after the kill (the migration sleeps 30 s)"
    );
    assert_eq!(app.versions(), (vec![1], vec![2]));
    // Rolled back: its table is not there, and a new run applies it.
    assert!(!app.has_table("slow"));
}
