//! Connection limits with real sockets: thousands of silent connections and a
//! slow-header client are closed at the first request deadline while a normal
//! client keeps its latency, connections over the cap wait in the backlog, an
//! idle HTTP/2 connection is closed despite pings, HTTP/2 streams over the
//! maximum wait, and an idle WebSocket is closed.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use cutover_kit::wait::Wait;
use cutover_proxy::{InstanceId, ProxyConfig, ServiceSpec};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Empty};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;

use crate::common::{TestProxy, Upstream, client, get, prometheus};

/// Percentile `p` (0..=100) of sorted latencies.
fn pct(sorted: &[Duration], p: usize) -> Duration {
    sorted[(sorted.len() - 1) * p / 100]
}

/// Sequential keep-alive GETs for `span`: every latency (sorted), all 200.
async fn latencies(url: String, span: Duration) -> Vec<Duration> {
    let c = client();
    let end = Instant::now() + span;
    let mut out = Vec::new();
    while Instant::now() < end {
        let t = Instant::now();
        let got = get(&c, &url).await;
        assert_eq!(got.status, 200, "{}", got.body);
        out.push(t.elapsed());
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    out.sort();
    out
}

/// Reads until the peer closes; returns whether it sent any byte.
async fn read_until_closed(s: &mut TcpStream) -> bool {
    let mut buf = [0u8; 256];
    let mut sent = false;
    loop {
        match s.read(&mut buf).await {
            Ok(0) | Err(_) => return sent,
            Ok(_) => sent = true,
        }
    }
}

async fn proxy_with(config: ProxyConfig, name: &str) -> (TestProxy, Upstream) {
    let up = Upstream::start(name).await;
    let p = TestProxy::start(config, ServiceSpec::default()).await;
    p.set_tracks(&[&up], &[]);
    (p, up)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_thousand_silent_sockets_are_closed_at_the_deadline_while_a_client_is_served() {
    const SOCKETS: usize = 5000;
    let deadline = Duration::from_secs(3);
    let (before, now) = cutover_proxy::raise_nofile_limit().expect("raise RLIMIT_NOFILE");
    let needed = 2 * SOCKETS as u64 + 1000;
    assert!(
        now >= needed,
        "RLIMIT_NOFILE is {now} (was {before}) even at its hard limit; this test needs {needed}: raise the hard limit (ulimit -Hn)"
    );
    let config = ProxyConfig {
        first_request_timeout: deadline,
        ..ProxyConfig::default()
    };
    let (p, _up) = proxy_with(config, "silent-up").await;
    let url = p.url("/");
    let baseline = latencies(url.clone(), Duration::from_secs(1)).await;

    // The normal client runs while the silent sockets connect and wait.
    let during = tokio::spawn(latencies(url.clone(), deadline + Duration::from_secs(1)));
    // In batches, each connected before the next starts, so that the
    // listener's accept queue never overflows (an overflowed handshake is
    // accepted seconds later, which would blur what is measured).
    let opening = Instant::now();
    let mut waiting = Vec::with_capacity(SOCKETS);
    for _ in 0..SOCKETS / 250 {
        let mut batch = Vec::with_capacity(250);
        for _ in 0..250 {
            let (connected_tx, connected_rx) = tokio::sync::oneshot::channel::<()>();
            let addr = p.addr;
            waiting.push(tokio::spawn(async move {
                let mut s = TcpStream::connect(addr)
                    .await
                    .expect("connect a silent socket");
                let connected = Instant::now();
                let _ = connected_tx.send(());
                let sent = read_until_closed(&mut s).await;
                (connected.elapsed(), sent)
            }));
            batch.push(connected_rx);
        }
        for connected in batch {
            connected.await.expect("connected");
        }
    }
    let opening = opening.elapsed();
    let mut closed_after = Vec::with_capacity(SOCKETS);
    let give_up = tokio::time::Instant::now() + deadline + Duration::from_secs(10);
    let mut open = 0;
    for w in waiting {
        match tokio::time::timeout_at(give_up, w).await {
            Ok(joined) => {
                let (after, sent) = joined.expect("join");
                assert!(!sent, "the proxy sent bytes to a silent socket");
                closed_after.push(after);
            }
            Err(_) => open += 1,
        }
    }
    assert_eq!(
        open,
        0,
        "{open} of {SOCKETS} silent sockets still open {:?} after they were opened in {opening:?}",
        deadline + Duration::from_secs(10)
    );
    closed_after.sort();
    let during = during.await.expect("normal client");
    let (first, last) = (closed_after[0], closed_after[SOCKETS - 1]);
    println!(
        "{SOCKETS} silent sockets opened in {opening:?}, closed after {first:?} .. {last:?} (deadline {deadline:?}); normal client p50/p99: before {:?}/{:?} ({} requests), during {:?}/{:?} ({} requests)",
        pct(&baseline, 50),
        pct(&baseline, 99),
        baseline.len(),
        pct(&during, 50),
        pct(&during, 99),
        during.len()
    );
    // Measured from the client's connect: the proxy's accept is later, never earlier.
    assert!(
        first >= deadline - Duration::from_millis(50),
        "closed early: {first:?}"
    );
    assert!(
        last <= deadline + Duration::from_secs(3),
        "closed late: {last:?}"
    );
    // The proxy did not wait on the silent sockets to serve the normal client
    // (had it, requests would have waited for the deadline, 3 s). The slack is
    // for other tests sharing two cores.
    let limit = (pct(&baseline, 99) * 20).max(Duration::from_millis(500));
    assert!(
        pct(&during, 99) <= limit,
        "p99 {:?} while silent sockets were open, {:?} before",
        pct(&during, 99),
        pct(&baseline, 99)
    );
}

/// Sends `head` one byte per second, never finishing; returns how long until
/// the proxy closed the connection, and whether it answered anything.
async fn dribble(addr: SocketAddr, head: &'static [u8]) -> (Duration, bool) {
    let s = TcpStream::connect(addr).await.expect("connect");
    let started = Instant::now();
    let (mut read, mut write) = s.into_split();
    let writer = tokio::spawn(async move {
        for b in head {
            if write.write_all(&[*b]).await.is_err() {
                return;
            }
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    });
    let mut buf = Vec::new();
    let got = tokio::time::timeout(Duration::from_secs(10), read.read_to_end(&mut buf))
        .await
        .expect("the slow client is closed");
    writer.abort();
    (started.elapsed(), !buf.is_empty() && got.is_ok())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_header_clients_are_closed_at_the_deadline() {
    let deadline = Duration::from_millis(2500);
    let config = ProxyConfig {
        first_request_timeout: deadline,
        ..ProxyConfig::default()
    };
    let (p, _up) = proxy_with(config, "slow-header-up").await;
    // An HTTP/1.1 head, and an HTTP/2 preface (hyper-util is still sniffing
    // which protocol it is, with no timer of its own, while it comes in).
    let (h1, h2) = tokio::join!(
        dribble(
            p.addr,
            b"GET / HTTP/1.1\r\nHost: slow.test\r\nX-Padding: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
        ),
        dribble(p.addr, b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
    );
    for (what, (took, answered)) in [("HTTP/1.1 head", h1), ("HTTP/2 preface", h2)] {
        assert!(!answered, "{what}: answered");
        assert!(
            took >= deadline - Duration::from_millis(50)
                && took <= deadline + Duration::from_secs(2),
            "{what}: closed after {took:?}, deadline {deadline:?}"
        );
    }
}

/// The value of an unlabelled counter in the Prometheus rendering.
fn counter(name: &str) -> u64 {
    prometheus()
        .render()
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .unwrap_or(0)
}

async fn http1_get(s: &mut TcpStream) -> String {
    s.write_all(b"GET / HTTP/1.1\r\nHost: cap.test\r\nConnection: close\r\n\r\n")
        .await
        .expect("write");
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf).await;
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connections_over_the_cap_wait_in_the_backlog_until_one_closes() {
    let config = ProxyConfig {
        max_connections: 2,
        first_request_timeout: Duration::from_secs(30),
        ..ProxyConfig::default()
    };
    let (p, _up) = proxy_with(config, "cap-up").await;
    let reached = cutover_proxy::metrics::CONNECTION_LIMIT_REACHED_TOTAL;
    let hits_before = counter(reached);
    let holder1 = TcpStream::connect(p.addr).await.expect("connect 1");
    let _holder2 = TcpStream::connect(p.addr).await.expect("connect 2");
    // The kernel completes the third connection; the proxy does not accept it.
    let mut third = TcpStream::connect(p.addr).await.expect("connect 3");
    let answer = tokio::spawn(async move { http1_get(&mut third).await });
    tokio::time::sleep(Duration::from_millis(700)).await;
    assert!(
        !answer.is_finished(),
        "a connection over the cap was served"
    );
    assert!(
        counter(reached) > hits_before,
        "{reached} did not count the cap"
    );

    drop(holder1);
    let answer = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("served once a slot is free")
        .expect("join");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}

type H2Sender = hyper::client::conn::http2::SendRequest<Empty<Bytes>>;

/// An HTTP/2 (prior knowledge) connection pinging every 100 ms; the task ends
/// when the connection does.
async fn h2_connect(
    addr: SocketAddr,
) -> (
    H2Sender,
    tokio::task::JoinHandle<(Instant, hyper::Result<()>)>,
) {
    let tcp = TcpStream::connect(addr).await.expect("connect");
    let (sender, conn) = hyper::client::conn::http2::Builder::new(TokioExecutor::new())
        .timer(TokioTimer::new())
        .keep_alive_interval(Duration::from_millis(100))
        .keep_alive_while_idle(true)
        .handshake(TokioIo::new(tcp))
        .await
        .expect("h2 handshake");
    let ended = tokio::spawn(async move {
        let result = conn.await;
        (Instant::now(), result)
    });
    (sender, ended)
}

async fn h2_get(sender: &mut H2Sender, path: &str) -> u16 {
    let req = Request::get(format!("http://h2.test{path}"))
        .body(Empty::new())
        .expect("request");
    let resp = sender.send_request(req).await.expect("h2 response");
    let status = resp.status().as_u16();
    resp.into_body().collect().await.expect("h2 body");
    status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_http2_connection_is_closed_with_goaway_despite_pings() {
    let idle = Duration::from_millis(800);
    let config = ProxyConfig {
        h2_idle_timeout: idle,
        ..ProxyConfig::default()
    };
    let (p, _up) = proxy_with(config, "h2-idle-up").await;
    let (mut sender, ended) = h2_connect(p.addr).await;
    // A stream open longer than the idle timeout is not idleness.
    assert_eq!(h2_get(&mut sender, "/slow?ms=1500").await, 200);
    let last_stream_end = Instant::now();
    assert!(!ended.is_finished(), "closed while a stream was open");
    let (ended, result) = tokio::time::timeout(Duration::from_secs(5), ended)
        .await
        .expect("the idle connection is closed despite pings")
        .expect("join");
    // A GOAWAY first makes it a clean end for the client, not a broken connection.
    assert!(result.is_ok(), "not closed gracefully: {result:?}");
    let after = ended - last_stream_end;
    assert!(
        after >= idle - Duration::from_millis(50) && after <= idle + Duration::from_secs(2),
        "closed {after:?} after its last stream; idle timeout {idle:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_streams_over_the_maximum_wait_for_a_free_one() {
    let config = ProxyConfig {
        h2_max_concurrent_streams: 2,
        ..ProxyConfig::default()
    };
    let (p, _up) = proxy_with(config, "h2-streams-up").await;
    let (mut sender, _ended) = h2_connect(p.addr).await;
    // One request first, so that the client has the server's settings.
    assert_eq!(h2_get(&mut sender, "/").await, 200);
    let t = Instant::now();
    let requests: Vec<_> = (0..4)
        .map(|_| {
            let mut s = sender.clone();
            tokio::spawn(async move { h2_get(&mut s, "/slow?ms=600").await })
        })
        .collect();
    for r in requests {
        assert_eq!(r.await.expect("join"), 200);
    }
    // Two at a time: two rounds of 600 ms.
    let took = t.elapsed();
    assert!(
        took >= Duration::from_millis(1150),
        "4 streams ran at once: {took:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_websocket_is_closed_after_its_timeout() {
    let idle = Duration::from_millis(1000);
    let config = ProxyConfig {
        upgrade_idle_timeout: idle,
        ..ProxyConfig::default()
    };
    let (p, _up) = proxy_with(config, "ws-idle-up").await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", p.addr))
        .await
        .expect("websocket through the proxy");
    // Traffic every 400 ms for 2 s keeps it open past the idle timeout.
    for i in 0..5 {
        ws.send(Message::text(format!("m{i}"))).await.expect("send");
        let reply = tokio::time::timeout(Duration::from_secs(2), ws.next())
            .await
            .expect("reply in time");
        assert!(matches!(reply, Some(Ok(Message::Text(_)))), "{reply:?}");
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let quiet_from = Instant::now();
    let end = tokio::time::timeout(Duration::from_secs(5), ws.next())
        .await
        .expect("the idle tunnel is closed");
    let after = quiet_from.elapsed();
    assert!(
        !matches!(end, Some(Ok(Message::Text(_)))),
        "unexpected message {end:?}"
    );
    assert!(
        after >= idle - Duration::from_millis(450) && after <= idle + Duration::from_secs(2),
        "closed after {after:?} of quiet; idle timeout {idle:?}"
    );
    let id = InstanceId::from("ws-idle-up");
    Wait::up_to(Duration::from_secs(5))
        .every(Duration::from_millis(10))
        .until_async(|| async { p.proxy.in_flight(&id).upgraded == 0 })
        .await
        .expect("the tunnel is released");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_upgraded_connection_keeps_its_place_under_the_cap() {
    let config = ProxyConfig {
        max_connections: 1,
        ..ProxyConfig::default()
    };
    let (p, _up) = proxy_with(config, "ws-cap-up").await;
    let (mut ws, _) = tokio_tungstenite::connect_async(format!("ws://{}/ws", p.addr))
        .await
        .expect("websocket through the proxy");
    ws.send(Message::text("hi")).await.expect("send");
    assert!(matches!(ws.next().await, Some(Ok(Message::Text(_)))));
    // The tunnel holds the only slot: a new connection waits.
    let mut other = TcpStream::connect(p.addr).await.expect("connect");
    let answer = tokio::spawn(async move { http1_get(&mut other).await });
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        !answer.is_finished(),
        "served beside an open tunnel at max_connections 1"
    );
    ws.close(None).await.expect("close");
    drop(ws);
    let answer = tokio::time::timeout(Duration::from_secs(5), answer)
        .await
        .expect("served once the tunnel closed")
        .expect("join");
    assert!(answer.starts_with("HTTP/1.1 200 "), "{answer}");
}
