//! The deployment lock.

use std::time::Duration;

use crate::common::{Release, TestApp, ok, stderr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_deploy_at_the_same_time_is_refused_naming_the_holder() {
    let app = TestApp::new("10m");
    app.release("v1", Release::SlowStart(Duration::from_secs(2)));
    app.release("v2", Release::Good);
    app.serve();
    let config = app.config();
    let first = std::thread::spawn(move || {
        std::process::Command::new(env!("CARGO_BIN_EXE_cutover"))
            .arg("-c")
            .arg(config)
            .args(["deploy", "v1"])
            .output()
            .expect("run")
    });
    // Wait until the first deploy holds the lock.
    let mut second = None;
    for _ in 0..50 {
        std::thread::sleep(Duration::from_millis(100));
        let out = app.cli(&["deploy", "v2"]);
        if out.status.code() == Some(4) {
            second = Some(out);
            break;
        }
    }
    let second = second.expect("the second deploy was never refused by the lock");
    let err = stderr(&second);
    assert!(err.contains("locked by"), "{err}");
    assert!(err.contains('@'), "holder not named: {err}");
    assert!(err.contains("since"), "{err}");
    assert!(err.contains("deploy v1"), "{err}");
    let first = first.join().expect("first");
    ok(&app, &first);
}
