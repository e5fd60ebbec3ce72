//! Drift: an applied migration whose file changed or disappeared is an
//! error (exit 6) naming the file and both checksums, never re-run; a file
//! that only changed its line endings is not drift.

use super::app::{Kind, MigrateApp, expect_code, stderr, stdout};
use super::both;

fn changed_or_missing_files_are_drift(kind: Kind) {
    let app = MigrateApp::new(kind);
    let text = "CREATE TABLE users (id bigint PRIMARY KEY);\n-- cutover:down\nDROP TABLE users;\n";
    app.migration("0001_create_users.sql", text);
    app.migration(
        "0002_add_email.sql",
        "ALTER TABLE users ADD COLUMN email text;\n",
    );
    expect_code(&app.cli(&["migrate", "up", "--to", "1"]), 0);
    let recorded = app.json(&["migrate", "status"])["applied"][0]["checksum"]
        .as_str()
        .expect("checksum")
        .to_owned();

    app.migration("0001_create_users.sql", &text.replace('\n', "\r\n"));
    expect_code(&app.cli(&["migrate", "status"]), 0);

    app.migration("0001_create_users.sql", &text.replace("bigint", "integer"));
    let out = app.cli(&["migrate", "status"]);
    expect_code(&out, 6);
    let text_out = stdout(&out);
    assert!(
        text_out.contains("0001_create_users.sql changed after it was applied"),
        "{text_out}"
    );
    assert!(
        text_out.contains(&format!("recorded {recorded}")),
        "{text_out}"
    );
    let json_out = app.cli(&["migrate", "status", "--json"]);
    expect_code(&json_out, 6);
    let status: serde_json::Value = serde_json::from_slice(&json_out.stdout).expect("JSON");
    assert_eq!(status["drift"][0]["recorded"], recorded.as_str());
    assert!(
        status["drift"][0]["current"]
            .as_str()
            .is_some_and(|c| c != recorded && c.len() == 64)
    );

    for args in [
        &["migrate", "up"][..],
        &["migrate", "plan"],
        &["migrate", "down", "--to", "0"],
    ] {
        let out = app.cli(args);
        expect_code(&out, 6);
        let err = stderr(&out);
        assert!(
            err.contains("0001_create_users.sql") && err.contains(&recorded),
            "{args:?}: {err}"
        );
    }
    assert_eq!(
        app.versions_allowing_drift(),
        (vec![1], vec![2]),
        "nothing ran"
    );

    app.remove_migration("0001_create_users.sql");
    let out = app.cli(&["migrate", "status"]);
    expect_code(&out, 6);
    assert!(
        stdout(&out).contains("migration 1 `create_users` was applied"),
        "{}",
        stdout(&out)
    );
    assert!(
        stdout(&out).contains("its file is gone"),
        "{}",
        stdout(&out)
    );
}
both!(
    changed_or_missing_files_are_drift,
    super::changed_or_missing_files_are_drift
);

impl MigrateApp {
    /// Applied and pending versions from `status --json`, whatever its exit code.
    fn versions_allowing_drift(&self) -> (Vec<u64>, Vec<u64>) {
        let out = self.cli(&["migrate", "status", "--json"]);
        let status: serde_json::Value = serde_json::from_slice(&out.stdout).expect("JSON");
        let versions = |key: &str| -> Vec<u64> {
            status[key]
                .as_array()
                .expect("an array")
                .iter()
                .map(|m| m["version"].as_u64().expect("a version"))
                .collect()
        };
        (versions("applied"), versions("pending"))
    }
}
