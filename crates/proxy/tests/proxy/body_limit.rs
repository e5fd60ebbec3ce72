//! The request body limit: a declared length over it gets 413 without
//! contacting the app; a chunked body that grows past it is cut and answered
//! 413; neither counts as an error of the instance.

use std::time::Duration;

use bytes::Bytes;
use cutover_proxy::metrics::PROXY_ERRORS_TOTAL;
use cutover_proxy::{ProxyConfig, ServiceSpec, Track};
use http_body_util::Full;
use hyper::Request;

use crate::common::{TestProxy, Upstream, client, raw_request, sample_sum, send};

const LIMIT: u64 = 64 * 1024;

fn chunked_upload(size: usize) -> Vec<u8> {
    let mut raw =
        b"POST /upload HTTP/1.1\r\nHost: shop.example\r\nTransfer-Encoding: chunked\r\n\r\n"
            .to_vec();
    let chunk = vec![b'x'; 8 * 1024];
    let mut left = size;
    while left > 0 {
        let n = left.min(chunk.len());
        raw.extend_from_slice(format!("{n:x}\r\n").as_bytes());
        raw.extend_from_slice(&chunk[..n]);
        raw.extend_from_slice(b"\r\n");
        left -= n;
    }
    raw.extend_from_slice(b"0\r\n\r\n");
    raw
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bodies_over_the_limit_get_413() {
    let up = Upstream::start("limit-app").await;
    let service = "limit-svc";
    let config = ProxyConfig {
        max_request_body: LIMIT,
        ..ProxyConfig::default()
    };
    let p = TestProxy::start_service(service, config, ServiceSpec::default()).await;
    p.set_tracks(&[&up], &[]);
    let c = client();
    let upload = |n: usize| {
        Request::post(p.url("/upload"))
            .body(Full::new(Bytes::from(vec![b'x'; n])))
            .expect("req")
    };

    // At the limit: served.
    let got = send(&c, upload(LIMIT as usize)).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, LIMIT.to_string());

    // Content-Length over it: 413, and the app never hears of it.
    let got = send(&c, upload(LIMIT as usize + 1)).await;
    assert_eq!(got.status, 413, "{}", got.body);
    assert!(got.body.contains("request id"), "{}", got.body);
    assert!(got.headers.get("x-upstream").is_none());
    let obs = p
        .proxy
        .observe(&up.instance().id, Duration::from_secs(60))
        .expect("known instance");
    assert_eq!(obs.requests(), 1, "only the first upload reached the app");
    assert_eq!(obs.client_faults, 0, "{obs:?}");

    // Chunked under it: served; growing past it: cut and 413.
    let answer = raw_request(p.addr, &chunked_upload(LIMIT as usize / 2), false).await;
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer:?}");
    let answer = raw_request(p.addr, &chunked_upload(4 * LIMIT as usize), false).await;
    assert!(answer.starts_with("HTTP/1.1 413"), "{answer:?}");
    assert!(answer.contains("request id"), "{answer:?}");

    let obs = p
        .proxy
        .observe_track(service, Track::Stable, Duration::from_secs(60));
    assert_eq!(obs.client_faults, 1, "{obs:?}");
    assert_eq!(obs.error_rate(), Some(0.0), "{obs:?}");
    assert_eq!(sample_sum(PROXY_ERRORS_TOTAL, service, &[]), 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_service_limit_overrides_the_proxy_limit() {
    let up = Upstream::start("limit-svc-app").await;
    let config = ProxyConfig {
        max_request_body: LIMIT,
        ..ProxyConfig::default()
    };
    let spec = ServiceSpec {
        max_request_body: Some(4 * LIMIT),
        ..ServiceSpec::default()
    };
    let p = TestProxy::start(config, spec).await;
    p.set_tracks(&[&up], &[]);
    let c = client();
    let req = Request::post(p.url("/upload"))
        .body(Full::new(Bytes::from(vec![b'x'; 2 * LIMIT as usize])))
        .expect("req");
    let got = send(&c, req).await;
    assert_eq!(got.status, 200);
    let req = Request::post(p.url("/upload"))
        .body(Full::new(Bytes::from(vec![b'x'; 4 * LIMIT as usize + 1])))
        .expect("req");
    assert_eq!(send(&c, req).await.status, 413);
}

/// curl's status code for an upload of `size` bytes, chunked or with a length.
async fn curl_upload(url: &str, size: usize, chunked: bool) -> String {
    let dir = std::env::temp_dir().join(format!("cutover-limit-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join(format!("body-{size}-{chunked}"));
    std::fs::write(&file, vec![b'x'; size]).expect("write body");
    let mut cmd = tokio::process::Command::new("curl");
    cmd.args([
        "-sS",
        "--max-time",
        "20",
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
    ]);
    if chunked {
        cmd.args(["-H", "Transfer-Encoding: chunked"]);
    }
    let out = cmd
        .arg("--data-binary")
        .arg(format!("@{}", file.display()))
        .arg(url)
        .output()
        .await
        .expect("run curl");
    let _ = std::fs::remove_file(&file);
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn curl_uploading_past_the_limit_reads_413() {
    let up = Upstream::start("limit-curl").await;
    let config = ProxyConfig {
        max_request_body: LIMIT,
        ..ProxyConfig::default()
    };
    let p = TestProxy::start(config, ServiceSpec::default()).await;
    p.set_tracks(&[&up], &[]);
    let url = p.url("/upload");
    for chunked in [false, true] {
        assert_eq!(curl_upload(&url, LIMIT as usize, chunked).await, "200");
        // 16 times the limit: curl is still sending when the answer comes.
        assert_eq!(
            curl_upload(&url, 16 * LIMIT as usize, chunked).await,
            "413",
            "chunked: {chunked}"
        );
    }
}
