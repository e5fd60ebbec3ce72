//! Config errors through the CLI: exit code 2, file, line and column.

use crate::common::{TestApp, stderr};

#[test]
fn check_reports_file_line_and_column_and_exits_2() {
    let app = TestApp::new("10m");
    let path = app.config();
    let text = std::fs::read_to_string(&path).expect("config");
    std::fs::write(&path, text.replace("replicas = 2", "replicas = \"two\"")).expect("write");
    let out = app.cli(&["check"]);
    assert_eq!(out.status.code(), Some(2));
    let err = stderr(&out);
    assert!(err.contains("cutover.toml:11:"), "{err}");
}

#[test]
fn check_summarises_a_valid_config() {
    let app = TestApp::new("10m");
    let out = app.cli(&["check"]);
    assert!(out.status.success(), "{}", stderr(&out));
}

#[test]
fn deploy_without_a_daemon_says_so_and_exits_5() {
    let app = TestApp::new("10m");
    // A token exists but nothing listens.
    std::fs::create_dir_all(app.path().join(".cutover")).expect("dir");
    std::fs::write(app.path().join(".cutover/api.token"), "t").expect("token");
    let out = app.cli(&["deploy", "v1"]);
    assert_eq!(out.status.code(), Some(5), "{}", stderr(&out));
    assert!(stderr(&out).contains("cutover serve"), "{}", stderr(&out));
}
