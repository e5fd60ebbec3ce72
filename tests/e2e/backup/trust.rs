//! A backup folder is not trusted: a planted manifest that points outside
//! it, or names itself falsely, is refused by list, verify, prune and
//! restore, and nothing is deleted. A restore into the database the config
//! uses holds its environments' deployment locks (refused while a
//! deployment runs) and says how its migrations compare with the folder.
//! A backup that no trusted key signed — unsigned, signed by another key,
//! or whose manifest changed after signing — needs `--allow-unsigned`.

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
    let out = app.cli(&[
        "backup",
        "restore",
        &id,
        "--force",
        "--identity",
        key_arg,
        "--allow-unsigned",
    ]);
    assert_eq!(out.status.code(), Some(4), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("cannot restore into main now"), "{err}");
    assert!(err.contains("deploy v2"), "{err}");

    ok(&app, &app.cli(&["abort", "--reason", "restoring"]));
    app.wait_for_state("rolled_back");
    let out = app.cli(&[
        "backup",
        "restore",
        &id,
        "--force",
        "--identity",
        key_arg,
        "--allow-unsigned",
    ]);
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

#[test]
fn only_backups_signed_by_a_listed_key_are_verified_or_restored() {
    let app = setup();
    let ours = app.create();
    app.json(&["backup", "verify", &ours]);

    // Unsigned: made without a signing key while no signer was listed.
    app.write_config_signed_by(&[], "");
    let out = app.with_signing_key(&["backup", "create", "--json"], None);
    assert!(out.status.success(), "{}", stderr(&out));
    let unsigned: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let unsigned = unsigned["id"].as_str().expect("id").to_owned();

    // Signed by a key the config does not list.
    let out = app.cli(&["backup", "keygen", "--signing", "-o", "foreign.key"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let foreign_public = crate::common::stdout(&out).trim().to_owned();
    app.write_config_signed_by(&[&foreign_public], "");
    let foreign_key = app.path().join("foreign.key");
    let out = app.with_signing_key(&["backup", "create", "--json"], Some(&foreign_key));
    assert!(out.status.success(), "{}", stderr(&out));
    let foreign: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let foreign = foreign["id"].as_str().expect("id").to_owned();

    // Back to trusting our key only.
    app.write_config("");
    refused(&app, &["backup", "verify", &unsigned], "is not signed");
    refused(
        &app,
        &["backup", "verify", &foreign],
        "which is not in backup.signers",
    );
    refused(
        &app,
        &["backup", "restore", &foreign, "--force"],
        "not trusted",
    );
    // A signed manifest changed afterwards.
    let path = app.backups().join(format!("{ours}.json"));
    let text = std::fs::read_to_string(&path).expect("manifest");
    std::fs::write(&path, text.replace("\"manual\"", "\"before-deploy\"")).expect("edit");
    refused(
        &app,
        &["backup", "restore", &ours, "--force"],
        "does not match its manifest",
    );
    std::fs::write(&path, text).expect("put back");

    // --allow-unsigned, knowingly.
    let out = app.cli(&["backup", "verify", &unsigned, "--allow-unsigned"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stderr(&out).contains("not signed"), "{}", stderr(&out));
    app.json(&["backup", "restore", &foreign, "--force", "--allow-unsigned"]);
    app.json(&["backup", "restore", &ours, "--force"]);

    // With signers listed, a backup needs the key, and the listed one.
    let out = app.with_signing_key(&["backup", "create"], None);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("CUTOVER_BACKUP_SIGNING_KEY"),
        "{}",
        stderr(&out)
    );
    let out = app.with_signing_key(&["backup", "create"], Some(&foreign_key));
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("does not list"), "{}", stderr(&out));
}
