//! The request side of the edge through the real daemon: the environment's
//! `trusted_proxies`, `track_override` and `limits` in `cutover.toml` reach
//! its proxy, and what the app receives is what docs/proxy.md says.
//! (Each behaviour is tested in depth in crates/proxy/tests; here the point
//! is that the config keys are honoured.)

use std::net::SocketAddr;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpSocket;

use crate::common::{Release, TestApp};

/// Sends one raw HTTP/1.1 request from `source` (an address of the loopback
/// network) to `to` and returns the whole answer (the request closes it).
async fn raw_request(source: [u8; 4], to: u16, request: &str) -> String {
    let socket = TcpSocket::new_v4().expect("socket");
    socket
        .bind(SocketAddr::from((source, 0)))
        .expect("bind the client's source address");
    let mut stream = socket
        .connect(SocketAddr::from(([127, 0, 0, 1], to)))
        .await
        .expect("connect to the proxy");
    stream
        .write_all(request.as_bytes())
        .await
        .expect("send the request");
    let mut answer = Vec::new();
    tokio::time::timeout(
        std::time::Duration::from_secs(10),
        stream.read_to_end(&mut answer),
    )
    .await
    .expect("the proxy answered within 10 s")
    .expect("read the answer");
    String::from_utf8_lossy(&answer).into_owned()
}

fn headers_request(extra: &str) -> String {
    format!("GET /headers HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\n{extra}\r\n")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_environments_trust_and_limits_in_the_config_reach_its_proxy() {
    let app = TestApp::new("10m");
    // [environment.production] is the file's last table: these keys join it.
    app.append_config(
        r#"trusted_proxies = ["127.0.0.2"]
track_override = { secret = "a-long-enough-test-secret" }

[environment.production.limits]
max_request_body = "64k"
"#,
    );
    app.release("v1", Release::Good);
    tokio::task::block_in_place(|| app.serve_and_deploy(&["v1"]));
    let port = app.proxy_port;

    // An untrusted client: its forwarding headers are replaced by what the
    // proxy saw, and neither track header reaches the app.
    let answer = raw_request(
        [127, 0, 0, 1],
        port,
        &headers_request(
            "X-Forwarded-For: 6.6.6.6\r\nX-Real-IP: 6.6.6.6\r\nX-Forwarded-Proto: https\r\n\
             X-Cutover-Track: canary\r\nX-Cutover-Track-Secret: a-long-enough-test-secret\r\n",
        ),
    )
    .await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    let body = answer.to_ascii_lowercase();
    assert!(body.contains("x-forwarded-for: 127.0.0.1\n"), "{answer}");
    assert!(body.contains("x-real-ip: 127.0.0.1\n"), "{answer}");
    assert!(body.contains("x-forwarded-proto: http\n"), "{answer}");
    assert!(body.contains("x-forwarded-host: shop.test\n"), "{answer}");
    assert!(
        !body.contains("6.6.6.6"),
        "a spoofed address reached the app: {answer}"
    );
    assert!(
        !body.contains("x-cutover-track"),
        "a track header reached the app: {answer}"
    );

    // The trusted proxy (127.0.0.2, as configured): its X-Forwarded-For is
    // appended to.
    let answer = raw_request(
        [127, 0, 0, 2],
        port,
        &headers_request("X-Forwarded-For: 203.0.113.9\r\n"),
    )
    .await;
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("x-forwarded-for: 203.0.113.9, 127.0.0.2\n"),
        "{answer}"
    );

    // limits.max_request_body: a declared body over 64 KiB gets 413 from the
    // proxy; one under it reaches the app.
    let too_big = raw_request(
        [127, 0, 0, 1],
        port,
        "POST / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\nContent-Length: 70000\r\n\r\n",
    )
    .await;
    assert!(too_big.starts_with("HTTP/1.1 413"), "{too_big}");
    let small = raw_request(
        [127, 0, 0, 1],
        port,
        "POST / HTTP/1.1\r\nHost: shop.test\r\nConnection: close\r\nContent-Length: 5\r\n\r\nhello",
    )
    .await;
    assert!(small.starts_with("HTTP/1.1 200"), "{small}");

    // One host: an HTTP/1.1 request without Host is refused.
    let no_host = raw_request(
        [127, 0, 0, 1],
        port,
        "GET / HTTP/1.1\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(no_host.starts_with("HTTP/1.1 400"), "{no_host}");
}
