//! `backup.before_deploy = true`: every deploy backs the database up before
//! its expand migrations and records the backup's id; a failing preflight
//! check (backup folder not writable) refuses the deploy, and a backup that
//! fails aborts it, with the old release still serving.

use crate::common::{Release, TestApp, ok, stderr, stdout};

fn app_with_backups() -> TestApp {
    let app = TestApp::new("1s");
    let key = app.path().join("key.txt");
    let key = key.to_str().expect("a UTF-8 path");
    let out = app.cli(&["backup", "keygen", "-o", key]);
    assert!(out.status.success(), "{}", stderr(&out));
    let recipient = stdout(&out).trim().to_owned();
    app.append_config(&format!(
        r#"
[database.main]
url = "sqlite://app.db"
migrations = "migrations"
backup = {{ before_deploy = true, dir = "backups", recipients = ["{recipient}"] }}
"#
    ));
    std::fs::create_dir_all(app.path().join("migrations")).expect("migrations dir");
    std::fs::write(
        app.path().join("migrations/0001_create_users.sql"),
        "CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT);\n",
    )
    .expect("migration");
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.release("v3", Release::Good);
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deploy_backs_up_first_and_a_failed_backup_keeps_the_old_release() {
    let app = app_with_backups();
    // v1: the database does not exist yet; nothing to back up.
    app.serve_and_deploy(&["v1"]);

    std::fs::write(
        app.path().join("migrations/0002_add_email.sql"),
        "ALTER TABLE users ADD COLUMN email TEXT;\n",
    )
    .expect("migration");
    app.deploy_ok("v2");
    let events = app.last_events();
    let backup = events
        .iter()
        .position(|(kind, _)| kind == "backup")
        .unwrap_or_else(|| panic!("no backup event: {events:?}"));
    let migration = events
        .iter()
        .position(|(_, message)| message.contains("0002"))
        .unwrap_or(usize::MAX);
    assert!(
        backup < migration,
        "the backup comes before expand: {events:?}"
    );
    let list = app.cli(&["backup", "list", "--json"]);
    ok(&app, &list);
    let list: serde_json::Value = serde_json::from_slice(&list.stdout).expect("json");
    assert_eq!(list.as_array().map(Vec::len), Some(1), "{list}");
    assert_eq!(list[0]["release"], "v2");
    assert_eq!(list[0]["trigger"], "before-deploy");
    let id = list[0]["id"].as_str().expect("id");
    assert!(events[backup].1.contains(id), "{events:?}");
    // The backup is of the schema before v2's migration.
    let key = app.path().join("key.txt");
    let key = key.to_str().expect("a UTF-8 path");
    // The daemon had no signing key: the backup is unsigned.
    let verify = app.cli(&["backup", "verify", id, "--identity", key, "--json"]);
    assert_eq!(verify.status.code(), Some(7), "{}", stderr(&verify));
    assert!(
        stderr(&verify).contains("not signed"),
        "{}",
        stderr(&verify)
    );
    let verify = app.cli(&[
        "backup",
        "verify",
        id,
        "--identity",
        key,
        "--allow-unsigned",
        "--json",
    ]);
    ok(&app, &verify);

    // A backup folder that cannot be written: preflight refuses the deploy
    // before anything changes; v2 serves on.
    std::fs::remove_dir_all(app.path().join("backups")).expect("remove backups");
    std::fs::write(app.path().join("backups"), "not a folder").expect("block backups");
    let out = app.cli(&["deploy", "v3"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("preflight"), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("backup dir writable"),
        "{}",
        stderr(&out)
    );
    let preflight = app.cli(&["preflight"]);
    assert_eq!(preflight.status.code(), Some(1), "{}", stdout(&preflight));
    assert!(stdout(&preflight).contains("FAIL database main backup dir writable"));

    // A backup that fails during the deploy (verify = true, but the daemon
    // has no identity to verify with): the deployment fails before expand,
    // v2 serves on. The daemon restarts with the new config and adopts v2.
    std::fs::remove_file(app.path().join("backups")).expect("unblock backups");
    app.kill_daemon();
    let config = std::fs::read_to_string(app.config()).expect("read config");
    let config = config.replace("recipients = [", "verify = true, recipients = [");
    std::fs::write(app.config(), config).expect("write config");
    app.serve();
    let out = app.cli(&["deploy", "v3"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    let last = app.last_deployment();
    let reason = last["reason"].as_str().unwrap_or_default();
    assert!(reason.contains("backup before deploy failed"), "{last}");
    assert!(reason.contains("CUTOVER_BACKUP_IDENTITY"), "{last}");
    // The failed backup is an event of its own (`backup.failed` for notifications).
    let events = app.last_events();
    assert!(
        events
            .iter()
            .any(|(kind, message)| kind == "backup_failed" && message.contains("database main")),
        "{events:?}"
    );
    assert_eq!(app.running_version("v3"), 0);
    assert!(app.running_version("v2") > 0);
    let body = crate::common::fetch(&format!("{}/", app.proxy_url())).await;
    assert!(body.is_some_and(|b| b.contains("v2")), "v2 still answers");
}
