//! The daemon refuses to start on an API token file it cannot trust: empty,
//! shorter than 32 bytes, a symbolic link, or readable by others. Each time
//! it exits with an error that names the file and what to do, and serves
//! nothing.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::common::TestApp;

/// Runs `cutover serve` and expects it to exit (not serve) within 20 s;
/// returns its stderr.
fn serve_refused(app: &TestApp) -> String {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("-c")
        .arg(app.config())
        .arg("serve")
        .env("NO_COLOR", "1")
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start daemon");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(status) = child.try_wait().expect("wait") {
            assert!(!status.success(), "the daemon accepted the token file");
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon started on an untrusted token file");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", app.api_port)).is_err(),
        "the API answered"
    );
    let out = child.wait_with_output().expect("output");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn an_empty_short_loose_or_linked_token_file_stops_the_daemon_at_start() {
    let app = TestApp::new("10m");
    let token = app.path().join(".cutover").join("api.token");
    std::fs::create_dir_all(token.parent().expect("dir")).expect("dir");
    let write = |text: &str, mode: u32| {
        let _ = std::fs::remove_file(&token);
        std::fs::write(&token, text).expect("write");
        std::fs::set_permissions(&token, std::fs::Permissions::from_mode(mode)).expect("chmod");
    };

    write("", 0o600);
    let err = serve_refused(&app);
    assert!(
        err.contains("api.token") && err.contains("0 bytes"),
        "{err}"
    );

    write("pwned", 0o600);
    assert!(serve_refused(&app).contains("5 bytes"));

    write(&"0123456789abcdef".repeat(4), 0o644);
    let err = serve_refused(&app);
    assert!(err.contains("chmod 600"), "{err}");

    let elsewhere = app.path().join("token-elsewhere");
    std::fs::write(&elsewhere, "0123456789abcdef".repeat(4)).expect("write");
    std::fs::set_permissions(&elsewhere, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    let _ = std::fs::remove_file(&token);
    std::os::unix::fs::symlink(&elsewhere, &token).expect("link");
    assert!(serve_refused(&app).contains("symbolic link"));

    // A good file is used as it is.
    let _ = std::fs::remove_file(&token);
    write(&"0123456789abcdef".repeat(4), 0o600);
    app.serve();
    let status = app.cli(&["status"]);
    assert!(status.status.success(), "{status:?}");
}
