//! A release of several services: rolled in `after` order, and rolled back as
//! a whole when one of them fails.

use crate::common::{Release, TestApp, fetch, ok, stderr};

const API: &str = r#"
[service.api]
command = ["./releases/{version}/api", "--port", "{port}", "--version", "{version}"]
path_prefix = "/api"
replicas = 1
health = { path = "/health", interval = "100ms", timeout = "1s", healthy = 2, start_timeout = "5s" }
"#;

fn two_services() -> TestApp {
    let app = TestApp::new("10m");
    let text = std::fs::read_to_string(app.config()).expect("config");
    std::fs::write(
        app.config(),
        text.replace("replicas = 2\n", "replicas = 2\nafter = [\"api\"]\n"),
    )
    .expect("write");
    app.append_config(API);
    for v in ["v1", "v2"] {
        app.release_named(v, "api", Release::Good);
    }
    app
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn services_roll_in_after_order() {
    let app = two_services();
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1", "v2"]);
    let api = format!("http://127.0.0.1:{}/api/x", app.proxy_port);
    assert_eq!(fetch(&api).await.as_deref(), Some("hello from v2"));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v2")
    );
    let order: Vec<String> = app
        .last_events()
        .into_iter()
        .filter(|(k, _)| k == "service")
        .map(|(_, m)| m)
        .collect();
    assert_eq!(order, vec!["rolling api to v2", "rolling web to v2"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn when_a_later_service_fails_the_earlier_ones_roll_back_too() {
    let app = two_services();
    app.release("v1", Release::Good);
    app.release("v2", Release::FailsHealth);
    app.serve_and_deploy(&["v1"]);
    let out = app.cli(&["deploy", "v2"]);
    assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("web"),
        "the failing service is named: {}",
        stderr(&out)
    );
    let api = format!("http://127.0.0.1:{}/api/x", app.proxy_port);
    // api had switched to v2; it is back on v1 with web.
    assert_eq!(fetch(&api).await.as_deref(), Some("hello from v1"));
    assert_eq!(
        fetch(&app.proxy_url()).await.as_deref(),
        Some("hello from v1")
    );
    assert_eq!(app.last_deployment()["state"], "rolled_back");
    // No v2 instance is left.
    app.wait_gone("v2");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deploy_can_be_limited_to_one_service() {
    let app = two_services();
    app.release("v1", Release::Good);
    app.release("v2", Release::Good);
    app.serve_and_deploy(&["v1"]);
    ok(&app, &app.cli(&["deploy", "v2", "--service", "api"]));
    let events = app.last_events();
    assert!(events.iter().any(|(_, m)| m == "rolling api to v2"));
    assert!(
        !events.iter().any(|(_, m)| m == "rolling web to v2"),
        "{events:#?}"
    );
    let out = app.cli(&["deploy", "v3", "--service", "nope"]);
    assert_eq!(out.status.code(), Some(2));
}
