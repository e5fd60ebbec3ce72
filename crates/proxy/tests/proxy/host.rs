//! One host, one meaning: requests whose host is missing, repeated or
//! ambiguous get 400 naming the request id, from raw TCP and HTTP/2 clients.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::Request;
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use crate::common::{TestProxy, Upstream, client, get, raw_request};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_repeated_and_mismatched_hosts_get_400() {
    let up = Upstream::start("host-app").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    for (what, raw) in [
        ("no Host", &b"GET / HTTP/1.1\r\n\r\n"[..]),
        (
            "two Hosts",
            b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        ),
        (
            "two equal Hosts",
            b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
        ),
        (
            "absolute-form target naming another host",
            b"GET http://b.example/ HTTP/1.1\r\nHost: a.example\r\n\r\n",
        ),
        (
            "absolute-form target without Host",
            b"GET http://a.example/ HTTP/1.1\r\n\r\n",
        ),
        (
            "Host with user info",
            b"GET / HTTP/1.1\r\nHost: u@a.example\r\n\r\n",
        ),
        (
            "Host with a bad port",
            b"GET / HTTP/1.1\r\nHost: a.example:x\r\n\r\n",
        ),
    ] {
        let answer = raw_request(p.addr, raw, false).await;
        assert!(answer.starts_with("HTTP/1.1 400"), "{what}: {answer:?}");
        let lower = answer.to_ascii_lowercase();
        let id_line = lower
            .lines()
            .find_map(|l| l.strip_prefix("x-request-id: "))
            .unwrap_or_else(|| panic!("{what}: no request id in {answer:?}"))
            .trim()
            .to_owned();
        assert!(
            lower.contains(&format!("(request id {id_line})")),
            "{what}: body does not name the request id: {answer:?}"
        );
        assert!(lower.contains("connection: close"), "{what}: {answer:?}");
        assert!(!answer.contains("host-app"), "{what}: reached the app");
    }

    // Agreeing forms are served, and the app gets that one host.
    for (what, raw) in [
        (
            "absolute-form agreeing with Host",
            &b"GET http://A.example/echo-headers HTTP/1.1\r\nHost: a.example:80\r\nConnection: close\r\n\r\n"[..],
        ),
        (
            "HTTP/1.0 without Host",
            b"GET /echo-headers HTTP/1.0\r\n\r\n",
        ),
    ] {
        let answer = raw_request(p.addr, raw, false).await;
        assert!(answer.starts_with("HTTP/1."), "{what}: {answer:?}");
        assert!(answer[..12].contains(" 200"), "{what}: {answer:?}");
    }
    assert_eq!(get(&client(), &p.url("/")).await.status, 200);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http2_authority_and_host_must_agree() {
    let up = Upstream::start("host-h2").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    let h2: Client<_, Full<Bytes>> = Client::builder(TokioExecutor::new())
        .http2_only(true)
        .build_http();
    let ask = |host: Option<&str>| {
        let mut req = Request::get(p.url("/echo-headers"));
        if let Some(h) = host {
            req = req.header("host", h);
        }
        req.body(Full::new(Bytes::new())).expect("req")
    };
    let resp = h2
        .request(ask(Some("other.example")))
        .await
        .expect("h2 request");
    assert_eq!(resp.version(), hyper::Version::HTTP_2);
    let status = resp.status();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&body);
    assert_eq!(status, 400, "{text}");
    assert!(text.contains("request id"), "{text}");

    // :authority alone is the host the app receives.
    let resp = h2.request(ask(None)).await.expect("h2 request");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let text = String::from_utf8_lossy(&body).to_lowercase();
    assert!(text.contains(&format!("host: {}\n", p.addr)), "{text}");
}
