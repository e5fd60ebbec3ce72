//! What the proxy answers when upstreams fail: 502 / 504 naming the request
//! id, 503 with `Retry-After` when a service has no instance, suspect marks,
//! and the one retry of idempotent requests.

use std::time::Duration;

use bytes::Bytes;
use cutover_proxy::{Instance, InstanceId, ProxyConfig, ServiceSpec, Track};
use http_body_util::Full;
use hyper::Request;

use crate::common::{TestProxy, Upstream, client, dead_addr, get, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn upstream_down_gives_502_naming_the_request_id() {
    let p = TestProxy::start(ProxyConfig::default(), ServiceSpec::default()).await;
    p.proxy
        .set_instances(
            "app",
            Track::Stable,
            vec![Instance::new("gone", dead_addr())],
        )
        .expect("set");
    let req = Request::get(p.url("/"))
        .header("x-request-id", "req-42")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let got = send(&client(), req).await;
    assert_eq!(got.status, 502);
    assert!(got.body.contains("req-42"), "body: {}", got.body);
    assert_eq!(got.headers["x-request-id"], "req-42");

    // Without a client id the proxy makes one, and names it in body and header.
    let got = get(&client(), &p.url("/")).await;
    assert_eq!(got.status, 502);
    let id = got.headers["x-request-id"]
        .to_str()
        .expect("ascii")
        .to_owned();
    assert_eq!(id.len(), 32);
    assert!(got.body.contains(&id));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_instance_gives_503_with_retry_after_at_once() {
    let p = TestProxy::start(ProxyConfig::default(), ServiceSpec::default()).await;
    let started = std::time::Instant::now();
    let got = get(&client(), &p.url("/")).await;
    assert!(
        started.elapsed() < Duration::from_secs(1),
        "answered after {:?}",
        started.elapsed()
    );
    assert_eq!(got.status, 503);
    assert_eq!(got.headers["retry-after"], "1");
    assert!(got.body.contains("no healthy instance"), "{}", got.body);
    assert!(
        got.body
            .contains(got.headers["x-request-id"].to_str().expect("id"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_route_gives_404() {
    let p = TestProxy::start(ProxyConfig::default(), ServiceSpec::default()).await;
    p.proxy.set_routes(vec![]).expect("routes");
    let got = get(&client(), &p.url("/")).await;
    assert_eq!(got.status, 404);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_upstream_gives_504() {
    let slow = Upstream::start("slow").await;
    let config = ProxyConfig {
        response_header_timeout: Duration::from_millis(200),
        ..ProxyConfig::default()
    };
    let p = TestProxy::start(config, ServiceSpec::default()).await;
    p.set_tracks(&[&slow], &[]);
    let got = get(&client(), &p.url("/slow?ms=2000")).await;
    assert_eq!(got.status, 504);
    assert!(
        got.body
            .contains(got.headers["x-request-id"].to_str().expect("id"))
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn get_is_retried_once_on_another_instance_and_the_refuser_is_avoided() {
    let alive = Upstream::start("alive").await;
    let p = TestProxy::start(ProxyConfig::default(), ServiceSpec::default()).await;
    p.proxy
        .set_instances(
            "app",
            Track::Stable,
            vec![Instance::new("refuser", dead_addr()), alive.instance()],
        )
        .expect("set");
    let c = client();
    for _ in 0..100 {
        let got = get(&c, &p.url("/")).await;
        assert_eq!(got.status, 200, "GET not retried: {}", got.body);
        assert_eq!(got.body, "alive");
    }
    // After the first refusal the instance is suspect and skipped: at most a
    // handful of attempts ever went to it.
    let refuser = p
        .proxy
        .observe(&InstanceId::from("refuser"), Duration::from_secs(60))
        .expect("known");
    assert!(
        refuser.proxy_errors >= 1 && refuser.proxy_errors <= 3,
        "{refuser:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn post_with_a_body_is_not_retried() {
    let p = TestProxy::start(ProxyConfig::default(), ServiceSpec::default()).await;
    p.proxy
        .set_instances(
            "app",
            Track::Stable,
            vec![Instance::new("gone-post", dead_addr())],
        )
        .expect("set");
    let req = Request::post(p.url("/upload"))
        .body(Full::new(Bytes::from_static(b"payload")))
        .expect("req");
    assert_eq!(send(&client(), req).await.status, 502);
}
