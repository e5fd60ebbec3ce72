//! Client faults are not the app's faults: malformed, cut-short, too large
//! and abandoned request bodies are answered by the proxy (or not at all when
//! the client is gone) and never count as errors of the instance or track.

use std::time::Duration;

use bytes::Bytes;
use cutover_kit::wait::Wait;
use cutover_proxy::metrics::{CLIENT_FAULTS_TOTAL, PROXY_ERRORS_TOTAL, REQUESTS_TOTAL};
use cutover_proxy::{ProxyConfig, ServiceSpec, Track, Weights};
use http_body_util::Full;
use hyper::Request;
use tokio::io::AsyncWriteExt;

use crate::common::{TestProxy, Upstream, client, raw_request, sample_sum, send};

const MALFORMED_CHUNKED: &[u8] = b"POST /upload HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\nzz-not-hex\r\n";
const TRUNCATED: &[u8] =
    b"POST /upload HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 1000\r\n\r\nonly a part";
const TRUNCATED_CHUNKED: &[u8] = b"POST /upload HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broken_bodies_leave_a_healthy_canary_at_zero_errors() {
    let stable = Upstream::start("stable-faults").await;
    let canary = Upstream::start("canary-faults").await;
    let service = "faults-svc";
    let p = TestProxy::start_service(service, ProxyConfig::default(), ServiceSpec::default()).await;
    p.set_tracks(&[&stable], &[&canary]);
    p.proxy
        .set_weights(service, Weights::ALL_CANARY)
        .expect("set");

    // The report's attack: 40 malformed chunked POSTs, plus cut-short bodies.
    for _ in 0..40 {
        let answer = raw_request(p.addr, MALFORMED_CHUNKED, false).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
        assert!(answer.contains("malformed or cut short"), "{answer:?}");
    }
    for raw in [TRUNCATED, TRUNCATED_CHUNKED] {
        for _ in 0..10 {
            // The client closed its side: the answer still goes out.
            let answer = raw_request(p.addr, raw, true).await;
            assert!(answer.starts_with("HTTP/1.1 400"), "{answer:?}");
        }
    }
    // Clients that vanish mid-upload, with the connection reset.
    for _ in 0..10 {
        let mut s = tokio::net::TcpStream::connect(p.addr)
            .await
            .expect("connect");
        s.write_all(TRUNCATED).await.expect("write");
        s.set_zero_linger().expect("zero linger");
        drop(s);
    }
    // Real users meanwhile get 200s.
    let c = client();
    for _ in 0..20 {
        let req = Request::post(p.url("/upload"))
            .body(Full::new(Bytes::from_static(b"a good body")))
            .expect("req");
        let got = send(&c, req).await;
        assert_eq!(got.status, 200);
        assert_eq!(got.body, "11");
    }

    // The faults reached the canary and were seen as faults, nothing else.
    let faults_seen = Wait::up_to(Duration::from_secs(5))
        .until_some_async(|| async {
            let obs = p
                .proxy
                .observe_track(service, Track::Canary, Duration::from_secs(60));
            (obs.client_faults >= 60).then_some(obs)
        })
        .await;
    let obs = faults_seen.expect("60 client faults recorded on the canary");
    // The reset clients count as faults only if their head arrived in time.
    assert!(obs.client_faults <= 70, "{obs:?}");
    assert_eq!(obs.proxy_errors, 0, "{obs:?}");
    assert_eq!(obs.statuses.server_error, 0, "{obs:?}");
    assert_eq!(obs.statuses.success, 20, "{obs:?}");
    assert_eq!(obs.error_rate(), Some(0.0), "{obs:?}");

    let canary = ["track=\"canary\""];
    assert_eq!(sample_sum(PROXY_ERRORS_TOTAL, service, &canary), 0.0);
    for code in ["500", "502", "503", "504"] {
        let with_code = format!("code=\"{code}\"");
        assert_eq!(
            sample_sum(REQUESTS_TOTAL, service, &["track=\"canary\"", &with_code]),
            0.0,
            "{code} counted"
        );
    }
    assert!(sample_sum(CLIENT_FAULTS_TOTAL, service, &canary) >= 60.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_upload_is_the_clients_fault_and_a_slow_app_is_not() {
    let up = Upstream::start("slow-faults").await;
    let service = "slow-faults-svc";
    let config = ProxyConfig {
        response_header_timeout: Duration::from_millis(500),
        ..ProxyConfig::default()
    };
    let p = TestProxy::start_service(service, config, ServiceSpec::default()).await;
    p.set_tracks(&[&up], &[]);

    // The client promises 100 bytes, sends 10 and stalls: 408, a client fault.
    let stalled =
        b"POST /upload HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 100\r\n\r\n0123456789";
    let answer = raw_request(p.addr, stalled, false).await;
    assert!(answer.starts_with("HTTP/1.1 408"), "{answer:?}");
    let obs = p
        .proxy
        .observe_track(service, Track::Stable, Duration::from_secs(60));
    assert_eq!(obs.client_faults, 1, "{obs:?}");
    assert_eq!(obs.proxy_errors, 0, "{obs:?}");

    // The whole body sent, the app too slow to answer: 504, the app's error.
    let slow_app = b"POST /slow?ms=2000 HTTP/1.1\r\nHost: shop.example\r\nContent-Length: 10\r\n\r\n0123456789";
    let answer = raw_request(p.addr, slow_app, false).await;
    assert!(answer.starts_with("HTTP/1.1 504"), "{answer:?}");
    let obs = p
        .proxy
        .observe_track(service, Track::Stable, Duration::from_secs(60));
    assert_eq!(obs.client_faults, 1, "{obs:?}");
    assert_eq!(obs.proxy_errors, 1, "{obs:?}");
}
