//! WebSocket (and any `Upgrade`) through the proxy, and how draining treats it.

use std::time::{Duration, Instant};

use cutover_proxy::{DrainOutcome, InstanceId};
use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::Message;

use crate::common::{TestProxy, Upstream};

async fn connect(
    p: &TestProxy,
) -> tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>> {
    let (ws, resp) = tokio_tungstenite::connect_async(format!("ws://{}/ws", p.addr))
        .await
        .expect("websocket handshake through the proxy");
    assert_eq!(resp.status(), 101);
    assert!(resp.headers().contains_key("x-request-id"));
    ws
}

async fn echo(
    ws: &mut tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
    text: &str,
) -> Option<String> {
    ws.send(Message::text(text)).await.ok()?;
    match tokio::time::timeout(Duration::from_secs(5), ws.next()).await {
        Ok(Some(Ok(Message::Text(t)))) => Some(t.to_string()),
        _ => None,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_echo_passes_through() {
    let up = Upstream::start("ws-up").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    let mut ws = connect(&p).await;
    for i in 0..10 {
        let reply = echo(&mut ws, &format!("hello {i}")).await;
        assert_eq!(reply.as_deref(), Some(format!("ws-up: hello {i}").as_str()));
    }
    let id = InstanceId::from("ws-up");
    assert_eq!(p.proxy.in_flight(&id).upgraded, 1);
    ws.close(None).await.expect("close");
    drop(ws);
    let t = Instant::now();
    while p.proxy.in_flight(&id).upgraded != 0 {
        assert!(t.elapsed() < Duration::from_secs(5), "tunnel not released");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_keeps_running_while_draining_until_the_timeout() {
    let old = Upstream::start("ws-old").await;
    let new = Upstream::start("ws-new").await;
    let p = TestProxy::with_tracks(&[&old], &[]).await;
    let mut ws = connect(&p).await;
    assert!(echo(&mut ws, "before").await.is_some());

    p.set_tracks(&[&new], &[]);
    let id = InstanceId::from("ws-old");
    let proxy = p.proxy.clone();
    let drain_id = id.clone();
    let drain =
        tokio::spawn(async move { proxy.drain(&drain_id, Duration::from_millis(1500)).await });

    // Draining has started; the connection keeps working.
    for i in 0..5 {
        tokio::time::sleep(Duration::from_millis(100)).await;
        let reply = echo(&mut ws, &format!("during {i}")).await;
        assert_eq!(
            reply.as_deref(),
            Some(format!("ws-old: during {i}").as_str())
        );
    }
    let outcome = drain.await.expect("drain");
    assert!(
        matches!(outcome, DrainOutcome::TimedOut { left } if left.upgraded == 1),
        "{outcome:?}"
    );
    // At the timeout the tunnel is cut.
    assert_eq!(echo(&mut ws, "after").await, None);
}

const H2C_UPGRADE: &str = "Host: shop.example\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAARAAAAAAAIAAAAA\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_is_not_tunnelled() {
    let up = Upstream::start("h2c-up").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    // The app gets an ordinary request: no Upgrade, no HTTP2-Settings.
    let raw = format!("GET /echo-headers HTTP/1.1\r\n{H2C_UPGRADE}\r\n");
    let answer = crate::common::raw_request(p.addr, raw.as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let lower = answer.to_ascii_lowercase();
    assert!(!lower.contains("upgrade: h2c"), "{answer:?}");
    assert!(!lower.contains("http2-settings"), "{answer:?}");

    // An app that switches protocols anyway is not followed: no 101, no
    // tunnel, and the client (who asked) gets the 400, not the app an error.
    let raw = format!(
        "GET /ws HTTP/1.1\r\n{H2C_UPGRADE}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let answer = crate::common::raw_request(p.addr, raw.as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
    assert!(answer.contains("Upgrade protocol"), "{answer:?}");
    let id = InstanceId::from("h2c-up");
    assert_eq!(p.proxy.in_flight(&id).upgraded, 0);
    let obs = p
        .proxy
        .observe(&id, Duration::from_secs(60))
        .expect("known instance");
    assert_eq!(obs.proxy_errors, 0, "{obs:?}");
    assert_eq!(obs.client_faults, 1, "{obs:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_may_allow_more_upgrades() {
    let up = Upstream::start("h2c-allowed").await;
    let spec = cutover_proxy::ServiceSpec {
        allowed_upgrades: vec!["h2c".into()],
        ..cutover_proxy::ServiceSpec::default()
    };
    let p = TestProxy::start(cutover_proxy::ProxyConfig::default(), spec).await;
    p.set_tracks(&[&up], &[]);
    let raw = format!(
        "GET /ws HTTP/1.1\r\n{H2C_UPGRADE}Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n"
    );
    let answer = crate::common::raw_request(p.addr, raw.as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 101"), "{answer:?}");
    // And websocket, no longer in the list, is not tunnelled for this service.
    let raw = "GET /echo-headers HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n";
    let answer = crate::common::raw_request(p.addr, raw.as_bytes(), false).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    assert!(
        !answer.to_ascii_lowercase().contains("upgrade: websocket"),
        "{answer:?}"
    );
}
