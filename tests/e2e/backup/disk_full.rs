//! A full disk: backups go to a tiny tmpfs (mounted by the test, which
//! needs root, as `scripts/test` runs). The backup fails, leaving no file
//! that looks complete (no `.age`, no `.partial`, no manifest), and
//! `cutover preflight` says there is not enough space.

use sqlx::{Connection, Executor};

use super::app::{BackupApp, stderr, stdout};
use crate::common::Tmpfs;
use crate::migrate::app::runtime;

#[test]
fn a_full_disk_leaves_no_backup_that_looks_complete() {
    let app = BackupApp::new("sqlite://data/app.db", ", dir = \"full\"");
    std::fs::create_dir(app.path().join("data")).expect("data folder");
    let url = format!("sqlite://{}/data/app.db?mode=rwc", app.path().display());
    runtime().block_on(async {
        let mut connection = sqlx::SqliteConnection::connect(&url).await.expect("create");
        connection
            .execute(
                "CREATE TABLE blobs (id INTEGER PRIMARY KEY, data BLOB NOT NULL);
                 WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < 512)
                 INSERT INTO blobs (data) SELECT randomblob(4096) FROM n;",
            )
            .await
            .expect("fill");
    });
    let mount = Tmpfs::mount(app.path().join("full"), "256k");

    let preflight = app.cli(&["preflight"]);
    assert_eq!(preflight.status.code(), Some(1), "{}", stdout(&preflight));
    assert!(
        stdout(&preflight).contains("FAIL database main backup disk space"),
        "{}",
        stdout(&preflight)
    );

    let out = app.cli(&["backup", "create"]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(stderr(&out).contains("No space left"), "{}", stderr(&out));
    let left: Vec<String> = std::fs::read_dir(&mount.0)
        .expect("backup dir")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
    assert_eq!(app.json(&["backup", "list"]), serde_json::json!([]));
}
