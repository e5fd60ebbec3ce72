//! The deployment lock.

use std::time::Duration;

use cutover_kit::wait::Wait;

use crate::common::{Release, TestApp, ok, stderr};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_deploy_at_the_same_time_is_refused_naming_the_holder() {
    let app = TestApp::new("10m");
    app.release("v1", Release::SlowStart(Duration::from_secs(2)));
    app.release("v2", Release::Good);
    app.serve();
    let first = app.cli_background(&["deploy", "v1"]);
    // Wait until the first deploy holds the lock (its release takes 2 s to start).
    Wait::up_to(Duration::from_secs(5))
        .until(|| {
            let status = app.cli(&["status", "--json"]);
            serde_json::from_slice::<serde_json::Value>(&status.stdout)
                .is_ok_and(|json| !json["environments"][0]["lock"].is_null())
        })
        .unwrap_or_else(|e| panic!("the first deploy never took the lock ({e})"));
    let second = app.cli(&["deploy", "v2"]);
    assert_eq!(
        second.status.code(),
        Some(4),
        "the second deploy was not refused by the lock: {}",
        stderr(&second)
    );
    let err = stderr(&second);
    assert!(err.contains("locked by"), "{err}");
    assert!(
        err.contains("locked by admin"),
        "holder (the token's name) not named: {err}"
    );
    assert!(err.contains("since"), "{err}");
    assert!(err.contains("deploy v1"), "{err}");
    let first = first.join().expect("first");
    ok(&app, &first);
}
