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
