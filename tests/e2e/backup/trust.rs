//! A backup folder is not trusted: a planted manifest that points outside
//! it, or names itself falsely, is refused by list, verify, prune and
//! restore, and nothing is deleted. A restore into the database the config
//! uses holds its environments' deployment locks (refused while a
//! deployment runs) and says how its migrations compare with the folder.

use std::time::Duration;

use super::app::{BackupApp, stderr};
use crate::common::{Release, TestApp, ok, stdout, wait_until};

fn setup() -> BackupApp {
    let app = BackupApp::new("sqlite://data/app.db", "");
    std::fs::create_dir(app.path().join("data")).expect("data folder");
    app.sh("sqlite3 data/app.db 'CREATE TABLE items (id INTEGER PRIMARY KEY); INSERT INTO items VALUES (1);'");
    app
}

/// Writes `manifest` (a real one, changed by `edit`) as `NAME.json`.
fn plant(app: &BackupApp, real: &str, name: &str, edit: impl FnOnce(&mut serde_json::Value)) {
    let dir = app.backups();
    let text = std::fs::read(dir.join(format!("{real}.json"))).expect("manifest");
    let mut manifest: serde_json::Value = serde_json::from_slice(&text).expect("json");
    edit(&mut manifest);
    std::fs::write(
        dir.join(format!("{name}.json")),
        serde_json::to_vec(&manifest).expect("json"),
    )
    .expect("plant");
}

fn refused(app: &BackupApp, args: &[&str], says: &str) {
    let out = app.cli(args);
    assert_eq!(out.status.code(), Some(7), "{args:?}: {}", stderr(&out));
    assert!(stderr(&out).contains(says), "{args:?}: {}", stderr(&out));
}

#[test]
fn a_planted_manifest_is_refused_everywhere_and_nothing_is_deleted() {
    let app = setup();
    let real = app.create();
    // `.cutover/backups/../../victim` is the project's `victim`.
    let victim = app.path().join("victim");
    std::fs::write(&victim, "precious").expect("victim");
    plant(&app, &real, "evil", |m| {
        m["id"] = "evil".into();
        m["file"] = "../../victim".into();
    });
    for args in [
        &["backup", "list"][..],
        &["backup", "prune"],
        &["backup", "verify", "evil"],
        &["backup", "restore", "evil", "--force"],
    ] {
        refused(&app, args, "untrusted backup manifest");
    }
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious"
    );
    assert!(app.file(&real).exists(), "the real backup was deleted");
    std::fs::remove_file(app.backups().join("evil.json")).expect("remove");

    // A manifest that names itself falsely, and an id that is a path.
    plant(&app, &real, "other", |_| {});
    refused(&app, &["backup", "verify", "other"], "says its id is");
    std::fs::remove_file(app.backups().join("other.json")).expect("remove");
    refused(&app, &["backup", "verify", "../../victim"], "plain name");
    refused(
        &app,
        &["backup", "restore", "../victim", "--force"],
        "plain name",
    );

    // With the plants gone, everything works again.
    app.json(&["backup", "verify", &real]);
    assert_eq!(
        app.json(&["backup", "list"]).as_array().map(Vec::len),
        Some(1)
    );
    assert_eq!(
        std::fs::read_to_string(&victim).expect("victim"),
        "precious"
    );
}

#[test]
fn a_restore_waits_for_no_deployment_and_says_which_migrations_differ() {
    let app = TestApp::new("10m");
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    let key = app.path().join("key.txt");
    let key_arg = key.to_str().expect("utf-8 path");
    let out = app.cli(&["backup", "keygen", "-o", key_arg]);
    ok(&app, &out);
    let recipient = stdout(&out).trim().to_owned();
    std::fs::create_dir_all(app.path().join("data")).expect("data");
    std::fs::create_dir_all(app.path().join("migrations")).expect("migrations");
    std::fs::write(
        app.path().join("migrations/0001_items.sql"),
        "CREATE TABLE items (id INTEGER PRIMARY KEY, body TEXT);\n",
    )
    .expect("migration");
    // The config ends with [environment.production]: a new table follows.
    app.append_config(&format!(
        "\n[database.main]\nurl = \"sqlite://data/app.db\"\nmigrations = \"migrations\"\n\
         backup = {{ recipients = [\"{recipient}\"] }}\n\n[service.web.rollout]\nswitch = \"manual\"\n"
    ));
    app.serve();
    ok(&app, &app.cli(&["deploy", "v1"]));
    ok(&app, &app.cli(&["switch"]));
    app.wait_for_state("succeeded");
    let out = app.cli(&["backup", "create", "--json"]);
    ok(&app, &out);
    let manifest: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let id = manifest["id"].as_str().expect("id").to_owned();

    // v2 brings migration 0002 (expand: applied before v2 starts) and holds
    // at the switch: its deployment runs and holds production's lock.
    std::fs::write(
        app.path().join("migrations/0002_notes.sql"),
        "CREATE TABLE notes (id INTEGER PRIMARY KEY);\n",
    )
    .expect("migration");
    ok(&app, &app.cli(&["deploy", "v2"]));
    let out = app.cli(&["backup", "restore", &id, "--force", "--identity", key_arg]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot restore into main now"), "{err}");
    assert!(err.contains("deploy v2"), "{err}");

    ok(&app, &app.cli(&["abort", "--reason", "restoring"]));
    app.wait_for_state("rolled_back");
    let out = app.cli(&["backup", "restore", &id, "--force", "--identity", key_arg]);
    ok(&app, &out);
    let err = stderr(&out);
    assert!(err.contains("lacks 2 of the folder"), "{err}");
    assert!(err.contains("cutover migrate up --db main"), "{err}");
    // The lock was given back: production deploys again.
    wait_until(Duration::from_secs(10), "the lock is free", || {
        app.cli(&["status", "--json"]).status.success()
    });
    let out = app.cli(&["deploy", "v2"]);
    ok(&app, &out);
}
