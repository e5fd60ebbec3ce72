//! Standard proxy hygiene: headers, HTTP/2 clients, streaming, bad requests.

use std::time::{Duration, Instant};

use bytes::Bytes;
use cutover_proxy::{ProxyConfig, ServiceSpec};
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use crate::common::{TestProxy, Upstream, client, get, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_are_removed_and_forwarded_headers_set() {
    let up = Upstream::start("echo").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    let req = Request::get(p.url("/echo-headers"))
        .header("host", "shop.example")
        .header("connection", "x-hop")
        .header("x-hop", "secret")
        .header("proxy-authorization", "Basic Zm9vOmJhcg==")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-end-to-end", "kept")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let got = send(&client(), req).await;
    assert_eq!(got.status, 200);
    let seen = got.body.to_lowercase();
    assert!(!seen.contains("x-hop:"), "{seen}");
    assert!(!seen.contains("proxy-authorization"), "{seen}");
    assert!(seen.contains("x-end-to-end: kept"), "{seen}");
    assert!(seen.contains("host: shop.example"), "{seen}");
    // The loopback peer is not a trusted proxy: its X-Forwarded-For is replaced.
    assert!(seen.contains("x-forwarded-for: 127.0.0.1\n"), "{seen}");
    assert!(!seen.contains("203.0.113.9"), "{seen}");
    assert!(seen.contains("x-forwarded-proto: http"), "{seen}");
    assert!(seen.contains("x-forwarded-host: shop.example"), "{seen}");
    // A request id was created, passed on, and returned.
    let id = got.headers["x-request-id"].to_str().expect("id");
    assert!(seen.contains(&format!("x-request-id: {id}")), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_clients_are_served() {
    let up = Upstream::start("h2-up").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    let h2: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    for _ in 0..20 {
        let resp = h2
            .request(
                Request::get(p.url("/echo-headers"))
                    .body(Full::new(Bytes::new()))
                    .expect("req"),
            )
            .await
            .expect("h2 request");
        assert_eq!(resp.version(), hyper::Version::HTTP_2);
        assert_eq!(resp.status(), 200);
        let body = resp.into_body().collect().await.expect("body").to_bytes();
        let text = String::from_utf8_lossy(&body).to_lowercase();
        // The upstream speaks HTTP/1.1 and still gets a Host header.
        assert!(text.contains(&format!("host: {}", p.addr)), "{text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn response_bodies_stream_without_buffering() {
    let up = Upstream::start("streamer").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    let started = Instant::now();
    let resp = client()
        .request(
            Request::get(p.url("/stream?ms=1500"))
                .body(Full::new(Bytes::new()))
                .expect("req"),
        )
        .await
        .expect("response");
    let mut body = resp.into_body();
    let first = body
        .frame()
        .await
        .expect("a frame")
        .expect("ok")
        .into_data()
        .expect("data");
    assert_eq!(&first[..], b"first\n");
    assert!(
        started.elapsed() < Duration::from_millis(1000),
        "first chunk took {:?}: the body was buffered",
        started.elapsed()
    );
    let rest = body.collect().await.expect("rest").to_bytes();
    assert_eq!(&rest[..], b"second\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn request_bodies_stream_to_the_upstream() {
    let up = Upstream::start("sink").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    let payload = vec![b'x'; 8 * 1024 * 1024];
    let req = Request::post(p.url("/upload"))
        .body(Full::new(Bytes::from(payload)))
        .expect("req");
    let got = send(&client(), req).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, (8 * 1024 * 1024).to_string());
}

async fn raw_exchange(addr: std::net::SocketAddr, bytes: &[u8]) -> String {
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    let mut out = vec![0u8; 4096];
    let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut out))
        .await
        .expect("answer in time")
        .expect("read");
    String::from_utf8_lossy(&out[..n]).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn malformed_requests_get_400() {
    let up = Upstream::start("m").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    for garbage in [
        &b"GET / HTTP/1.1\r\nHost: x\r\nBad Header Without Colon\r\n\r\n"[..],
        b"NOT A REQUEST\r\n\r\n",
        b"GET / HTTP/1.1\r\nContent-Length: abc\r\n\r\n",
    ] {
        let answer = raw_exchange(p.addr, garbage).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    }
    // The proxy is still serving.
    assert_eq!(get(&client(), &p.url("/")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_headers_are_refused() {
    let up = Upstream::start("big").await;
    let config = ProxyConfig {
        max_header_bytes: 16 * 1024,
        ..ProxyConfig::default()
    };
    let p = TestProxy::start(config, ServiceSpec::default()).await;
    p.set_tracks(&[&up], &[]);
    let big = "a".repeat(32 * 1024);
    let req = format!("GET / HTTP/1.1\r\nHost: x\r\nX-Big: {big}\r\n\r\n");
    let answer = raw_exchange(p.addr, req.as_bytes()).await;
    assert!(answer.starts_with("HTTP/1.1 431"), "{answer:?}");
    assert_eq!(get(&client(), &p.url("/")).await.status, 200);
}
