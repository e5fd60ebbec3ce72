//! The HTTP/1.1 fast path (`ProxyConfig::http1_fast_path`) and hyper give the
//! client the same answers: each test runs with both. One client connection
//! carries requests the fast path serves and ones it hands to hyper;
//! pipelined requests are answered in order; upstream connections are
//! reused across requests.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use bytes::Bytes;
use cutover_proxy::{Instance, ProxyConfig, ServiceSpec, Track};
use http_body_util::Full;
use hyper_util::rt::TokioIo;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

use crate::common::{TestProxy, Upstream};

fn config(fast: bool) -> ProxyConfig {
    ProxyConfig {
        http1_fast_path: fast,
        ..ProxyConfig::default()
    }
}

/// One response read off a raw connection.
struct Answer {
    head: String,
    body: Vec<u8>,
}

/// Reads one response (Content-Length, chunked, or none for HEAD/204/304).
async fn read_answer(s: &mut TcpStream, buf: &mut Vec<u8>, head_request: bool) -> Answer {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    let fill = async |s: &mut TcpStream, buf: &mut Vec<u8>| {
        let mut chunk = [0u8; 4096];
        match tokio::time::timeout_at(deadline, s.read(&mut chunk)).await {
            Ok(Ok(0)) => panic!("closed early; have {:?}", String::from_utf8_lossy(buf)),
            Ok(Ok(n)) => buf.extend_from_slice(&chunk[..n]),
            Ok(Err(e)) => panic!("read: {e}"),
            Err(_) => panic!("no answer in 10 s; have {:?}", String::from_utf8_lossy(buf)),
        }
    };
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        fill(s, buf).await;
    };
    let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
    buf.drain(..end);
    let status: u16 = head[9..12].parse().expect("status");
    let header = |name: &str| {
        head.lines()
            .find_map(|l| l.strip_prefix(&format!("{name}:")))
            .map(|v| v.trim().to_owned())
    };
    let mut body = Vec::new();
    if head_request || status == 204 || status == 304 {
        // No body.
    } else if header("transfer-encoding").as_deref() == Some("chunked") {
        loop {
            let line_end = loop {
                if let Some(i) = buf.windows(2).position(|w| w == b"\r\n") {
                    break i;
                }
                fill(s, buf).await;
            };
            let size_text = String::from_utf8_lossy(&buf[..line_end]).into_owned();
            let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
                .expect("chunk size");
            while buf.len() < line_end + 2 + size + 2 {
                fill(s, buf).await;
            }
            body.extend_from_slice(&buf[line_end + 2..line_end + 2 + size]);
            buf.drain(..line_end + 2 + size + 2);
            if size == 0 {
                break;
            }
        }
    } else {
        let len: usize = header("content-length").map_or(0, |v| v.parse().expect("length"));
        while buf.len() < len {
            fill(s, buf).await;
        }
        body = buf.drain(..len).collect();
    }
    Answer { head, body }
}

#[tokio::test]
async fn one_connection_mixes_fast_and_handed_off_requests() {
    for fast in [true, false] {
        let up = Upstream::start("mix").await;
        let proxy = TestProxy::start(config(fast), ServiceSpec::default()).await;
        proxy.set_tracks(&[&up], &[]);
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        let mut buf = Vec::new();
        let exchanges: [(&[u8], bool, &str, &[u8]); 5] = [
            (
                b"GET /stream?ms=10 HTTP/1.1\r\nHost: a.example\r\n\r\n",
                false,
                "200",
                b"first\nsecond\n",
            ),
            (
                b"POST /upload HTTP/1.1\r\nHost: a.example\r\nContent-Length: 3\r\n\r\nabc",
                false,
                "200",
                b"3",
            ),
            (
                b"HEAD / HTTP/1.1\r\nHost: a.example\r\n\r\n",
                true,
                "200",
                b"",
            ),
            (
                b"GET /status?code=204 HTTP/1.1\r\nHost: a.example\r\n\r\n",
                false,
                "204",
                b"",
            ),
            (
                b"GET / HTTP/1.1\r\nHost: a.example\r\n\r\n",
                false,
                "200",
                b"mix",
            ),
        ];
        for (request, head_request, status, body) in exchanges {
            s.write_all(request).await.expect("write");
            let answer = read_answer(&mut s, &mut buf, head_request).await;
            assert!(
                answer.head.starts_with(&format!("http/1.1 {status}")),
                "fast={fast}: {}",
                answer.head
            );
            assert!(
                answer.head.contains("x-request-id:"),
                "fast={fast}: {}",
                answer.head
            );
            assert!(
                answer.head.contains("\r\ndate:"),
                "fast={fast}: {}",
                answer.head
            );
            assert_eq!(answer.body, body, "fast={fast}: {}", answer.head);
        }
        // Connection: close is answered in kind, then the connection closes.
        s.write_all(b"GET / HTTP/1.1\r\nHost: a.example\r\nConnection: close\r\n\r\n")
            .await
            .expect("write");
        let answer = read_answer(&mut s, &mut buf, false).await;
        assert!(
            answer.head.contains("connection: close"),
            "fast={fast}: {}",
            answer.head
        );
        let mut rest = [0u8; 16];
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut rest))
            .await
            .expect("closed in time")
            .unwrap_or(0);
        assert_eq!(
            n, 0,
            "fast={fast}: the connection closes after Connection: close"
        );
    }
}

#[tokio::test]
async fn pipelined_requests_are_answered_in_order() {
    for fast in [true, false] {
        let up = Upstream::start("pipe").await;
        let proxy = TestProxy::start(config(fast), ServiceSpec::default()).await;
        proxy.set_tracks(&[&up], &[]);
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        s.write_all(
            b"GET /status?code=201 HTTP/1.1\r\nHost: a\r\n\r\nGET /status?code=202 HTTP/1.1\r\nHost: a\r\n\r\nGET /status?code=203 HTTP/1.1\r\nHost: a\r\n\r\n",
        )
        .await
        .expect("write");
        let mut buf = Vec::new();
        for code in ["201", "202", "203"] {
            let answer = read_answer(&mut s, &mut buf, false).await;
            assert!(
                answer.head.starts_with(&format!("http/1.1 {code}")),
                "fast={fast}: {}",
                answer.head
            );
            assert_eq!(answer.body, b"pipe");
        }
    }
}

/// An upstream that counts the connections it accepts.
async fn counting_upstream() -> (std::net::SocketAddr, Arc<AtomicUsize>) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let accepted = Arc::new(AtomicUsize::new(0));
    let count = accepted.clone();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            count.fetch_add(1, Ordering::SeqCst);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    Ok::<_, std::convert::Infallible>(hyper::Response::new(Full::new(
                        Bytes::from_static(b"counted"),
                    )))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    (addr, accepted)
}

#[tokio::test]
async fn upstream_connections_are_reused() {
    for fast in [true, false] {
        let (addr, accepted) = counting_upstream().await;
        let proxy = TestProxy::start(config(fast), ServiceSpec::default()).await;
        proxy
            .proxy
            .set_instances(
                &proxy.service,
                Track::Stable,
                vec![Instance::new("counted", addr)],
            )
            .expect("instances");
        let mut s = TcpStream::connect(proxy.addr).await.expect("connect");
        let mut buf = Vec::new();
        for _ in 0..20 {
            s.write_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                .await
                .expect("write");
            let answer = read_answer(&mut s, &mut buf, false).await;
            assert_eq!(answer.body, b"counted", "fast={fast}: {}", answer.head);
        }
        assert_eq!(
            accepted.load(Ordering::SeqCst),
            1,
            "fast={fast}: one upstream connection for 20 requests"
        );
    }
}
