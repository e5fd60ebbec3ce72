//! Graceful shutdown: stop accepting, finish in-flight work.

use std::time::{Duration, Instant};

use cutover_proxy::{ProxyConfig, ServiceSpec};

use crate::common::{TestProxy, Upstream, client, get};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn in_flight_requests_finish_and_new_connections_are_refused() {
    let up = Upstream::start("sd").await;
    let mut p = TestProxy::with_tracks(&[&up], &[]).await;
    let c = client();
    let url = p.url("/slow?ms=1000");
    let slow = tokio::spawn(async move { get(&c, &url).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let served = p.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    assert!(
        tokio::net::TcpStream::connect(p.addr).await.is_err(),
        "still accepting after shutdown"
    );
    assert_eq!(slow.await.expect("slow").status, 200);
    served.await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_gives_up_at_its_timeout() {
    let up = Upstream::start("sd-t").await;
    let config = ProxyConfig {
        shutdown_timeout: Duration::from_millis(300),
        ..ProxyConfig::default()
    };
    let mut p = TestProxy::start(config, ServiceSpec::default()).await;
    p.set_tracks(&[&up], &[]);
    let c = client();
    let url = p.url("/slow?ms=5000");
    let slow = tokio::spawn(async move { c.get(url.parse().expect("uri")).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let t = Instant::now();
    p.shutdown().await.expect("join").expect("serve");
    assert!(
        t.elapsed() < Duration::from_secs(2),
        "took {:?}",
        t.elapsed()
    );
    // The cut request fails rather than hanging.
    let r = tokio::time::timeout(Duration::from_secs(2), slow)
        .await
        .expect("not hanging");
    assert!(r.expect("join").is_err());
}

/// One request on a raw HTTP/1.1 connection: the response head, lowercase,
/// with its body read (by `content-length`).
async fn request_on(stream: &mut tokio::net::TcpStream) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: example.test\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let n = tokio::time::timeout(Duration::from_secs(5), stream.read(&mut chunk))
            .await
            .expect("an answer")
            .expect("read");
        assert!(
            n > 0,
            "closed before answering: {:?}",
            String::from_utf8_lossy(&buf)
        );
        buf.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&buf).to_lowercase();
        if let Some(end) = text.find("\r\n\r\n") {
            let length: usize = text
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return text[..end].to_owned();
            }
        }
    }
}

async fn closed(stream: &mut tokio::net::TcpStream, within: Duration) -> bool {
    use tokio::io::AsyncReadExt;
    let mut byte = [0u8; 1];
    matches!(
        tokio::time::timeout(within, stream.read(&mut byte)).await,
        Ok(Ok(0)) | Ok(Err(_))
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_shutdown_keep_alive_clients_are_told_to_close_after_their_next_response() {
    let up = Upstream::start("linger").await;
    let mut p = TestProxy::with_tracks(&[&up], &[]).await;
    let mut busy = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    let mut idle = tokio::net::TcpStream::connect(p.addr)
        .await
        .expect("connect");
    for s in [&mut busy, &mut idle] {
        let head = request_on(s).await;
        assert!(head.starts_with("http/1.1 200"), "{head}");
        assert!(!head.contains("connection: close"), "{head}");
    }
    let served = p.shutdown();
    tokio::time::sleep(Duration::from_millis(100)).await;
    // A request on an open connection is still answered, and told to close.
    let head = request_on(&mut busy).await;
    assert!(head.starts_with("http/1.1 200"), "{head}");
    assert!(head.contains("connection: close"), "{head}");
    assert!(
        closed(&mut busy, Duration::from_secs(2)).await,
        "not closed after its response"
    );
    // An idle one is closed once the linger has passed, not at once.
    assert!(
        !closed(&mut idle, Duration::from_millis(300)).await,
        "closed at once"
    );
    assert!(
        closed(&mut idle, Duration::from_secs(3)).await,
        "idle connection left open"
    );
    served.await.expect("join").expect("serve");
}
