//! The tamper-evident audit log (issue 15) on a real history: deploys, a
//! rollback, a token made and revoked, each a row naming who did it;
//! `audit verify` (through the API and straight from the store file, while
//! the daemon serves) passes, `audit export` writes chained JSON lines, and
//! after one row is edited with the `sqlite3` shell, `verify` exits 11
//! naming that row. `migrate up/down` and `backup restore` run from the CLI
//! are recorded as `local:<user>`.

use std::process::Command;

use crate::common::{Release, TestApp, ok, stderr, stdout};

fn rows(app: &TestApp) -> Vec<serde_json::Value> {
    let out = app.cli(&["--json", "audit"]);
    ok(app, &out);
    serde_json::from_slice::<serde_json::Value>(&out.stdout)
        .expect("audit JSON")
        .as_array()
        .cloned()
        .expect("a list")
}

fn sqlite3(app: &TestApp, sql: &str) {
    let out = Command::new("sqlite3")
        .arg(app.path().join(".cutover/state.db"))
        .arg(sql)
        .output()
        .expect("run the sqlite3 shell");
    assert!(out.status.success(), "sqlite3: {}", stderr(&out));
}

#[test]
fn verify_passes_on_a_real_history_and_names_the_row_edited_by_hand() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1"]);
    let ci = app.token("ci", "deployer");
    ok(&app, &app.cli_with_token(&ci, &["deploy", "v2"]));
    ok(&app, &app.cli_with_token(&ci, &["rollback"]));
    app.token("temp", "viewer");
    ok(&app, &app.cli(&["token", "revoke", "temp"]));

    let log = rows(&app);
    let summary: Vec<(&str, &str)> = log
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or(""),
                r["who"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("deploy", "admin"),
            ("token_create", "admin"),
            ("deploy", "ci"),
            ("rollback", "ci"),
            ("token_create", "admin"),
            ("token_revoke", "admin"),
        ]
    );
    assert_eq!(log[2]["role"], "deployer");
    assert_eq!(log[2]["environment"], "production");
    assert_eq!(log[2]["target"], "v2");
    assert!(log[2]["deployment_id"].is_i64(), "{}", log[2]);
    assert!(
        !serde_json::to_string(&log).expect("json").contains(&ci),
        "a token reached the audit log"
    );

    // Intact: through the API (as a viewer) and from the store file.
    let viewer = app.token("auditor", "viewer");
    let out = app.cli_with_token(&viewer, &["audit", "verify"]);
    ok(&app, &out);
    assert!(
        stdout(&out).contains("audit log intact: 7 rows"),
        "{}",
        stdout(&out)
    );
    let out = app.cli(&["--json", "audit", "verify", "--store"]);
    ok(&app, &out);
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(
        (verdict["intact"].as_bool(), verdict["rows"].as_u64()),
        (Some(true), Some(7))
    );

    // Export: one JSON object per line, each chained to the one before.
    let file = app.path().join("audit.jsonl");
    let out = app.cli(&["audit", "export", "--output", file.to_str().expect("utf-8")]);
    ok(&app, &out);
    let text = std::fs::read_to_string(&file).expect("export");
    let lines: Vec<serde_json::Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 7);
    assert_eq!(lines[0]["prev_hash"], "0".repeat(64));
    for pair in lines.windows(2) {
        assert_eq!(pair[1]["prev_hash"], pair[0]["hash"]);
    }
    assert_eq!(lines[6]["hash"], verdict["last_hash"]);

    // --since: how long ago, or a time; --limit keeps the newest.
    let count = |args: &[&str]| {
        let out = app.cli(&[&["--json", "audit"][..], args].concat());
        ok(&app, &out);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        list.as_array().map(Vec::len).unwrap_or(0)
    };
    assert_eq!(count(&["--since", "1h"]), 7);
    assert_eq!(count(&["--since", "2999-01-01T00:00:00Z"]), 0);
    assert_eq!(count(&["--limit", "2"]), 2);
    let out = app.cli(&["audit", "--since", "yesterday"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));

    // Someone with write access to the file changes who deployed v2.
    sqlite3(&app, "UPDATE audit_log SET who = 'alice' WHERE id = 3");
    for args in [&["audit", "verify"][..], &["audit", "verify", "--store"]] {
        let out = app.cli(args);
        assert_eq!(out.status.code(), Some(11), "{args:?}: {}", stderr(&out));
        assert!(
            stderr(&out).contains("audit row 3 (deploy by alice"),
            "{args:?}: {}",
            stderr(&out)
        );
    }
    let out = app.cli(&["--json", "audit", "verify"]);
    assert_eq!(out.status.code(), Some(11));
    let verdict: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
    assert_eq!(verdict["broken_at"], 3, "{verdict}");

    // Put back, but a row removed: the row after the gap is named.
    sqlite3(&app, "UPDATE audit_log SET who = 'ci' WHERE id = 3");
    ok(&app, &app.cli(&["audit", "verify"]));
    sqlite3(&app, "DELETE FROM audit_log WHERE id = 5");
    let out = app.cli(&["audit", "verify"]);
    assert_eq!(out.status.code(), Some(11), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("audit row 6 does not follow row 4: row 5 is missing"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn migrations_and_a_restore_run_from_the_cli_are_audited_as_the_local_user() {
    let app = TestApp::new("10m");
    let key = app.path().join("key.txt");
    let out = app.cli(&["backup", "keygen", "-o", key.to_str().expect("utf-8")]);
    ok(&app, &out);
    let recipient = stdout(&out).trim().to_owned();
    app.append_config(&format!(
        r#"
[database.main]
url = "sqlite://data/app.db"
migrations = "migrations"
backup = {{ recipients = ["{recipient}"] }}
"#
    ));
    std::fs::create_dir_all(app.path().join("migrations")).expect("migrations");
    std::fs::write(
        app.path().join("migrations/0001_users.sql"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY);\n-- cutover:down\nDROP TABLE users;\n",
    )
    .expect("migration");
    app.serve();

    ok(&app, &app.cli(&["migrate", "up"]));
    let out = app.cli(&["--json", "backup", "create"]);
    ok(&app, &out);
    let backup: serde_json::Value = serde_json::from_slice(&out.stdout).expect("manifest");
    let id = backup["id"].as_str().expect("an id").to_owned();
    let restored = format!("sqlite://{}", app.path().join("data/restored.db").display());
    let out = app.cli(&[
        "backup",
        "restore",
        &id,
        "--to",
        &restored,
        "--identity",
        key.to_str().expect("utf-8"),
        "--allow-unsigned",
    ]);
    ok(&app, &out);
    ok(&app, &app.cli(&["migrate", "down", "--to", "0"]));
    // Nothing to apply: nothing changed, nothing recorded.
    ok(&app, &app.cli(&["migrate", "down", "--to", "0"]));

    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let log = rows(&app);
    let summary: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or(""),
                r["who"].as_str().unwrap_or(""),
                r["role"].as_str().unwrap_or(""),
            )
        })
        .collect();
    let who = format!("local:{user}");
    assert_eq!(
        summary,
        [
            ("migrate_up", who.as_str(), "local"),
            ("backup_restore", who.as_str(), "local"),
            ("migrate_down", who.as_str(), "local"),
        ]
    );
    assert_eq!(log[0]["target"], "main");
    assert_eq!(log[0]["details"]["versions"], serde_json::json!([1]));
    assert_eq!(log[1]["target"], id.as_str());
    assert_eq!(log[1]["details"]["database"], "main");
    ok(&app, &app.cli(&["audit", "verify"]));
}

#[test]
fn the_daemons_upgrade_and_reload_are_audited_with_their_outcome() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.serve_and_deploy(&["v1"]);
    ok(&app, &app.cli(&["upgrade"]));
    ok(&app, &app.cli(&["reload"]));
    let log = rows(&app);
    let summary: Vec<(&str, &str, &str)> = log
        .iter()
        .map(|r| {
            (
                r["action"].as_str().unwrap_or(""),
                r["who"].as_str().unwrap_or(""),
                r["details"]["outcome"].as_str().unwrap_or(""),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            ("deploy", "admin", ""),
            ("daemon_upgrade", "admin", "upgraded"),
            ("daemon_reload", "admin", "reloaded"),
        ]
    );
    ok(&app, &app.cli(&["audit", "verify"]));
}
