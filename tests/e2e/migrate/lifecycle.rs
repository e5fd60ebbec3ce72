//! status, plan, up (with --to, --phase, --release), down, baseline, a
//! missing down part, and a failing statement reported with file and line.

use super::app::{Kind, MigrateApp, expect_code, stderr, stdout};
use super::both;

/// Three migrations: create, add a column (expand), drop a column (contract).
fn three(app: &MigrateApp) {
    app.migration(
        "0001_create_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY, name text NOT NULL);\n-- cutover:down\nDROP TABLE users;\n",
    );
    app.migration(
        "0002_add_email.sql",
        "ALTER TABLE users ADD COLUMN email text;\n-- cutover:down\nALTER TABLE users DROP COLUMN email;\n",
    );
    app.migration(
        "0003_drop_name.sql",
        "-- cutover:phase contract\nALTER TABLE users DROP COLUMN name;\n-- cutover:down\nALTER TABLE users ADD COLUMN name text;\n",
    );
}

fn up_plan_status_down(kind: Kind) {
    let app = MigrateApp::new(kind);
    three(&app);
    assert_eq!(app.versions(), (vec![], vec![1, 2, 3]));

    let plan = app.json(&["migrate", "plan", "--phase", "expand"]);
    let steps: Vec<(u64, &str)> = plan["steps"]
        .as_array()
        .expect("steps")
        .iter()
        .map(|s| {
            (
                s["version"].as_u64().expect("version"),
                s["phase"].as_str().expect("phase"),
            )
        })
        .collect();
    assert_eq!(steps, [(1, "expand"), (2, "expand")]);
    assert_eq!(plan["stopped"]["version"], 3);
    assert_eq!(plan["stopped"]["phase"], "contract");
    let human = stdout(&app.cli(&["migrate", "plan"]));
    assert!(human.contains("0001  create_users  expand"), "{human}");
    assert!(human.contains("0003  drop_name  contract"), "{human}");
    assert_eq!(
        app.versions(),
        (vec![], vec![1, 2, 3]),
        "plan changes nothing"
    );
    assert!(!app.has_table("users"));

    let up = app.json(&["migrate", "up", "--phase", "expand", "--release", "v2"]);
    assert_eq!(up["applied"].as_array().map(Vec::len), Some(2));
    assert_eq!(up["stopped"]["version"], 3);
    let status = app.json(&["migrate", "status"]);
    assert_eq!(status["applied"][0]["release"], "v2");
    assert_eq!(status["applied"][1]["name"], "add_email");
    assert_eq!(status["applied"][0]["kind"], "applied");
    assert!(
        status["applied"][0]["applied_by"]
            .as_str()
            .is_some_and(|by| by.contains('@'))
    );
    assert_eq!(
        status["applied"][0]["checksum"].as_str().map(str::len),
        Some(64)
    );
    assert_eq!(app.versions(), (vec![1, 2], vec![3]));

    let out = app.cli(&["migrate", "up"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("applying 0003_drop_name.sql (contract)"),
        "{}",
        stdout(&out)
    );
    assert_eq!(app.versions(), (vec![1, 2, 3], vec![]));
    let again = app.cli(&["migrate", "up"]);
    expect_code(&again, 0);
    assert!(stdout(&again).contains("up to date"), "{}", stdout(&again));

    let down = app.json(&["migrate", "down", "--to", "1"]);
    let reverted: Vec<u64> = down["reverted"]
        .as_array()
        .expect("reverted")
        .iter()
        .map(|d| d["version"].as_u64().expect("version"))
        .collect();
    assert_eq!(reverted, [3, 2]);
    assert_eq!(app.versions(), (vec![1], vec![2, 3]));
    assert!(app.has_table("users"));

    expect_code(&app.cli(&["migrate", "up", "--to", "2"]), 0);
    assert_eq!(app.versions(), (vec![1, 2], vec![3]));
    expect_code(&app.cli(&["migrate", "down", "--to", "0"]), 0);
    assert_eq!(app.versions(), (vec![], vec![1, 2, 3]));
    assert!(!app.has_table("users"));
}
both!(up_plan_status_down, super::up_plan_status_down);

fn down_refuses_without_a_down_part(kind: Kind) {
    let app = MigrateApp::new(kind);
    app.migration(
        "0001_create_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n-- cutover:down\nDROP TABLE users;\n",
    );
    app.migration(
        "0002_create_orders.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY);\n",
    );
    expect_code(&app.cli(&["migrate", "up"]), 0);
    let out = app.cli(&["migrate", "down", "--to", "0"]);
    expect_code(&out, 2);
    let err = stderr(&out);
    assert!(err.contains("0002_create_orders.sql"), "{err}");
    assert!(err.contains("-- cutover:down"), "{err}");
    assert_eq!(app.versions(), (vec![1, 2], vec![]), "nothing was reverted");
    assert!(app.has_table("users") && app.has_table("orders"));
}
both!(
    down_refuses_without_a_down_part,
    super::down_refuses_without_a_down_part
);

fn baseline_adopts_a_database_migrated_by_hand(kind: Kind) {
    let app = MigrateApp::new(kind);
    app.migration(
        "0001_create_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n",
    );
    app.migration(
        "0002_create_orders.sql",
        "CREATE TABLE orders (id bigint PRIMARY KEY);\n",
    );
    app.migration(
        "0003_create_items.sql",
        "CREATE TABLE items (id bigint PRIMARY KEY);\n",
    );
    app.sql(
        "CREATE TABLE users (id bigint PRIMARY KEY); CREATE TABLE orders (id bigint PRIMARY KEY);",
    );

    let out = app.cli(&["migrate", "baseline", "2"]);
    expect_code(&out, 0);
    assert!(
        stdout(&out).contains("recorded 2 migrations"),
        "{}",
        stdout(&out)
    );
    let status = app.json(&["migrate", "status"]);
    assert_eq!(status["applied"][0]["kind"], "baseline");
    assert_eq!(app.versions(), (vec![1, 2], vec![3]));

    expect_code(&app.cli(&["migrate", "up"]), 0);
    assert_eq!(app.versions(), (vec![1, 2, 3], vec![]));
    assert!(app.has_table("items"));

    let again = app.cli(&["migrate", "baseline", "3"]);
    expect_code(&again, 2);
    assert!(
        stderr(&again).contains("already records 3 migrations"),
        "{}",
        stderr(&again)
    );
}
both!(
    baseline_adopts_a_database_migrated_by_hand,
    super::baseline_adopts_a_database_migrated_by_hand
);

fn a_failing_statement_is_reported_with_file_and_line(kind: Kind) {
    let app = MigrateApp::new(kind);
    app.migration(
        "0001_create_users.sql",
        "CREATE TABLE users (id bigint PRIMARY KEY);\n",
    );
    app.migration(
        "0002_orders.sql",
        "-- orders and their lines\nCREATE TABLE orders (id bigint PRIMARY KEY);\n\nINSERT INTO orders (id) VALUES (1);\nINSERT INTO no_such_table (id)\n  VALUES (2);\n",
    );
    app.migration(
        "0003_items.sql",
        "CREATE TABLE items (id bigint PRIMARY KEY);\n",
    );
    let out = app.cli(&["migrate", "up", "--json"]);
    expect_code(&out, 1);
    let err = stderr(&out);
    assert!(
        err.contains(
            "0002_orders.sql:5: migration 2 failed and was rolled back; nothing was recorded"
        ),
        "{err}"
    );
    assert!(
        err.contains("statement: INSERT INTO no_such_table (id) VALUES (2)"),
        "{err}"
    );
    assert!(err.contains("no_such_table"), "the database's error: {err}");
    let report: serde_json::Value =
        serde_json::from_slice(&out.stdout).expect("JSON even on failure");
    assert_eq!(report["applied"].as_array().map(Vec::len), Some(1));
    assert!(
        report["error"]
            .as_str()
            .is_some_and(|e| e.contains("0002_orders.sql:5")),
        "{report}"
    );

    assert_eq!(app.versions(), (vec![1], vec![2, 3]));
    assert!(
        !app.has_table("orders"),
        "the failed migration was rolled back"
    );
    assert!(!app.has_table("items"), "nothing after it ran");
    // The lock was released: the next run goes ahead (and fails the same way).
    expect_code(&app.cli(&["migrate", "up"]), 1);
}
both!(
    a_failing_statement_is_reported_with_file_and_line,
    super::a_failing_statement_is_reported_with_file_and_line
);
