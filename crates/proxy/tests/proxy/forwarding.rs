//! What the app receives in the forwarding headers, from an untrusted client
//! and from a trusted proxy in front.

use bytes::Bytes;
use cutover_proxy::{ProxyConfig, ServiceSpec};
use http_body_util::Full;
use hyper::Request;

use crate::common::{TestProxy, Upstream, client, send};

fn spoofed(url: &str) -> Request<Full<Bytes>> {
    Request::get(url)
        .header("host", "shop.example")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=203.0.113.9;proto=https")
        .header("x-real-ip", "203.0.113.9")
        .body(Full::new(Bytes::new()))
        .expect("req")
}

/// The headers the app saw, one `name: value` per line, lower-case.
async fn seen_by_app(p: &TestProxy) -> String {
    let got = send(&client(), spoofed(&p.url("/echo-headers"))).await;
    assert_eq!(got.status, 200);
    got.body.to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofing_client_does_not_reach_the_app() {
    let up = Upstream::start("fwd-untrusted").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    let seen = seen_by_app(&p).await;
    assert!(!seen.contains("203.0.113.9"), "{seen}");
    assert!(!seen.contains("evil.example"), "{seen}");
    for line in [
        "x-forwarded-for: 127.0.0.1\n",
        "x-forwarded-proto: http\n",
        "x-forwarded-host: shop.example\n",
        "forwarded: for=127.0.0.1;proto=http;host=shop.example\n",
        "x-real-ip: 127.0.0.1\n",
        "host: shop.example\n",
    ] {
        assert!(seen.contains(line), "want {line:?} in\n{seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_appended_to_and_believed() {
    let up = Upstream::start("fwd-trusted").await;
    let config = ProxyConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().expect("net")],
        ..ProxyConfig::default()
    };
    let p = TestProxy::start(config, ServiceSpec::default()).await;
    p.set_tracks(&[&up], &[]);
    let seen = seen_by_app(&p).await;
    for line in [
        "x-forwarded-for: 203.0.113.9, 127.0.0.1\n",
        "x-forwarded-proto: https\n",
        "x-forwarded-host: evil.example\n",
        "forwarded: for=203.0.113.9;proto=https, for=127.0.0.1;proto=http;host=shop.example\n",
        "x-real-ip: 203.0.113.9\n",
    ] {
        assert!(seen.contains(line), "want {line:?} in\n{seen}");
    }
}
