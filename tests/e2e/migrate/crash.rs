//! A migrator killed in the middle of a migration leaves it not applied
//! (its transaction rolled back) and no stuck lock: PostgreSQL releases the
//! session's advisory lock when the connection ends; SQLite's lease runs out.

use std::time::{Duration, Instant};

use super::app::{Kind, MigrateApp, Watched, expect_code, stderr};
use super::both;

fn a_killed_migrator_leaves_nothing_half_done(kind: Kind) {
    let app = MigrateApp::new(kind);
    app.migration(
        "0001_create_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n",
    );
    let fast = "CREATE TABLE partial (id bigint);\nINSERT INTO partial VALUES (1);\n";
    app.migration("0002_partial.sql", &format!("{fast}{}\n", app.slow_sql(60)));

    let mut migrator = Watched::new(app.spawn(&["migrate", "up"]));
    migrator.wait_for("applying 0002_partial.sql");
    std::thread::sleep(Duration::from_millis(500));
    migrator.child.kill().expect("kill -9 the migrator");
    let (code, _) = migrator.finish();
    assert_eq!(code, None, "killed by a signal");

    assert_eq!(
        app.versions(),
        (vec![1], vec![2]),
        "the killed migration is not applied"
    );
    assert!(
        !app.has_table("partial"),
        "its first statements were rolled back"
    );

    app.migration("0002_partial.sql", fast);
    let started = Instant::now();
    let out = app.cli(&["migrate", "up"]);
    expect_code(&out, 0);
    let waited = started.elapsed();
    match kind {
        // The lock went with the dead session.
        Kind::Postgres => {
            assert!(
                !stderr(&out).contains("waiting for the migrator lock"),
                "{}",
                stderr(&out)
            );
        }
        // The lease ran out (10 s), and only then.
        Kind::Sqlite => {
            assert!(
                stderr(&out).contains("waiting for the migrator lock"),
                "{}",
                stderr(&out)
            );
            assert!(waited < Duration::from_secs(15), "{waited:?}");
        }
    }
    assert_eq!(app.versions(), (vec![1, 2], vec![]));
    assert!(app.has_table("partial"));
}
both!(
    a_killed_migrator_leaves_nothing_half_done,
    super::a_killed_migrator_leaves_nothing_half_done
);
