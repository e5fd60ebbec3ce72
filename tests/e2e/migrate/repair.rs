//! Putting a database's migrations right: `migrate repair` re-records the
//! checksum of a file edited on purpose (and refuses when the file is gone),
//! and an index left invalid by a failed `CREATE INDEX CONCURRENTLY` is
//! reported with its fix instead of silently skipped by `IF NOT EXISTS`.

use super::app::{Kind, MigrateApp, expect_code, stderr, stdout};
use super::both;

fn repair_re_records_an_edited_file_and_refuses_a_missing_one(kind: Kind) {
    let app = MigrateApp::new(kind);
    app.migration(
        "0001_create_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n",
    );
    app.migration(
        "0002_create_notes.sql",
        "CREATE TABLE notes (id bigint PRIMARY KEY);\n",
    );
    expect_code(&app.cli(&["migrate", "up"]), 0);

    // An intended edit: a comment. Drift blocks until repaired.
    app.migration(
        "0001_create_users.sql",
        "-- users of the shop\nCREATE TABLE users (id bigint PRIMARY KEY);\n",
    );
    expect_code(&app.cli(&["migrate", "status"]), 6);
    let out = app.cli(&["migrate", "repair"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("migration 1 `create_users`: recorded checksum"),
        "{}",
        stdout(&out)
    );
    expect_code(&app.cli(&["migrate", "status"]), 0);
    let again = app.cli(&["migrate", "repair"]);
    expect_code(&again, 0);
    assert!(
        stdout(&again).contains("nothing to repair"),
        "{}",
        stdout(&again)
    );

    // A file that is gone cannot be repaired: nothing changes.
    app.migration(
        "0001_create_users.sql",
        "-- edited twice\nCREATE TABLE users (id bigint PRIMARY KEY);\n",
    );
    app.remove_migration("0002_create_notes.sql");
    let out = app.cli(&["migrate", "repair"]);
    expect_code(&out, 2);
    assert!(
        stderr(&out).contains("its file is gone"),
        "{}",
        stderr(&out)
    );
    expect_code(&app.cli(&["migrate", "status"]), 6);
    // Only the edited one, by version.
    expect_code(&app.cli(&["migrate", "repair", "1"]), 0);
    let status = app.cli(&["migrate", "status"]);
    expect_code(&status, 6);
    assert!(stdout(&status).contains("notes") || stderr(&status).contains("notes"));
}
both!(
    repair_re_records_an_edited_file_and_refuses_a_missing_one,
    super::repair_re_records_an_edited_file_and_refuses_a_missing_one
);

#[test]
fn an_invalid_index_left_by_a_failed_concurrent_build_is_reported_with_its_fix() {
    let app = MigrateApp::new(Kind::Postgres);
    app.migration("0001_create_t.sql", "CREATE TABLE t (x bigint);\n");
    app.migration(
        "0002_unique_x.sql",
        "-- cutover:no-transaction\nCREATE UNIQUE INDEX CONCURRENTLY IF NOT EXISTS t_x ON t (x);\n",
    );
    expect_code(&app.cli(&["migrate", "up", "--to", "1"]), 0);
    app.sql("INSERT INTO t VALUES (1), (1)");
    // The build fails on the duplicates and leaves t_x INVALID.
    let failed = app.cli(&["migrate", "up"]);
    expect_code(&failed, 1);
    assert_eq!(app.versions(), (vec![1], vec![2]));

    // With the data fixed, IF NOT EXISTS would skip the invalid index and
    // record 0002 as done: refused instead, saying what to do.
    app.sql("DELETE FROM t");
    let out = app.cli(&["migrate", "up"]);
    expect_code(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("invalid indexes"), "{err}");
    assert!(err.contains("t_x (on t)"), "{err}");
    assert!(err.contains("DROP INDEX CONCURRENTLY t_x;"), "{err}");
    assert_eq!(app.versions(), (vec![1], vec![2]));

    app.sql("DROP INDEX CONCURRENTLY t_x");
    expect_code(&app.cli(&["migrate", "up"]), 0);
    assert_eq!(app.versions(), (vec![1, 2], vec![]));
}
