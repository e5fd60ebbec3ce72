//! What the app receives in the forwarding headers, from an untrusted client
//! and from a trusted proxy in front.

use bytes::Bytes;
use cutover_proxy::{ProxyConfig, ServiceSpec};
use http_body_util::Full;
use hyper::Request;

use crate::common::{TestProxy, Upstream, client, send};

fn spoofed(url: &str) -> Request<Full<Bytes>> {
    Request::get(url)
        .header("host", "shop.example")
        .header("x-forwarded-for", "203.0.113.9")
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-host", "evil.example")
        .header("forwarded", "for=203.0.113.9;proto=https")
        .header("x-real-ip", "203.0.113.9")
        .body(Full::new(Bytes::new()))
        .expect("req")
}

/// The headers the app saw, one `name: value` per line, lower-case.
async fn seen_by_app(p: &TestProxy) -> String {
    let got = send(&client(), spoofed(&p.url("/echo-headers"))).await;
    assert_eq!(got.status, 200);
    got.body.to_lowercase()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spoofing_client_does_not_reach_the_app() {
    let up = Upstream::start("fwd-untrusted").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    let seen = seen_by_app(&p).await;
    assert!(!seen.contains("203.0.113.9"), "{seen}");
    assert!(!seen.contains("evil.example"), "{seen}");
    for line in [
        "x-forwarded-for: 127.0.0.1\n",
        "x-forwarded-proto: http\n",
        "x-forwarded-host: shop.example\n",
        "forwarded: for=127.0.0.1;proto=http;host=shop.example\n",
        "x-real-ip: 127.0.0.1\n",
        "host: shop.example\n",
    ] {
        assert!(seen.contains(line), "want {line:?} in\n{seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_proxy_is_appended_to_and_believed() {
    let up = Upstream::start("fwd-trusted").await;
    let config = ProxyConfig {
        trusted_proxies: vec!["127.0.0.0/8".parse().expect("net")],
        ..ProxyConfig::default()
    };
    let p = TestProxy::start(config, ServiceSpec::default()).await;
    p.set_tracks(&[&up], &[]);
    let seen = seen_by_app(&p).await;
    for line in [
        "x-forwarded-for: 203.0.113.9, 127.0.0.1\n",
        "x-forwarded-proto: https\n",
        "x-forwarded-host: evil.example\n",
        "forwarded: for=203.0.113.9;proto=https, for=127.0.0.1;proto=http;host=shop.example\n",
        "x-real-ip: 203.0.113.9\n",
    ] {
        assert!(seen.contains(line), "want {line:?} in\n{seen}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ipv6_client_is_bracketed_and_quoted_in_forwarded() {
    use cutover_proxy::{Proxy, Route, Track};
    let up = Upstream::start("fwd-v6").await;
    crate::common::prometheus();
    let proxy = Proxy::new(crate::common::http1_choice(ProxyConfig::default()));
    proxy
        .set_service("app", ServiceSpec::default())
        .expect("service");
    proxy.set_routes(vec![Route::any("app")]).expect("routes");
    proxy
        .set_instances("app", Track::Stable, vec![up.instance()])
        .expect("instances");
    let listener = tokio::net::TcpListener::bind("[::1]:0")
        .await
        .expect("bind [::1] (this test needs IPv6 loopback)");
    let addr = listener.local_addr().expect("addr");
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let proxy = proxy.clone();
        async move {
            proxy
                .serve(listener, async move {
                    let _ = stopped.await;
                })
                .await
        }
    });
    let req = Request::get(format!("http://{addr}/echo-headers"))
        .header("forwarded", "for=\"[2001:db8::1]\"")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let got = send(&client(), req).await;
    assert_eq!(got.status, 200);
    let seen = got.body.to_lowercase();
    let port = addr.port();
    for line in [
        "x-forwarded-for: ::1\n".to_owned(),
        "x-real-ip: ::1\n".to_owned(),
        format!("forwarded: for=\"[::1]\";proto=http;host=\"[::1]:{port}\"\n"),
    ] {
        assert!(seen.contains(&line), "want {line:?} in\n{seen}");
    }
    assert!(!seen.contains("2001:db8"), "{seen}");
    let _ = stop.send(());
    serving.await.expect("join").expect("serve");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_listener_says_https_to_the_app() {
    use std::sync::Arc;

    use cutover_proxy::{Certificates, ListenerSpec, Proxy, Route, Track};
    let up = Upstream::start("fwd-tls").await;
    // A self-signed certificate made by the openssl CLI.
    let dir = std::env::temp_dir().join(format!("cutover-fwd-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    let made = std::process::Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:P-256",
        ])
        .args(["-nodes", "-days", "1", "-subj", "/CN=shop.example"])
        .args(["-addext", "subjectAltName=DNS:shop.example", "-keyout"])
        .arg(&key)
        .arg("-out")
        .arg(&cert)
        .output()
        .expect("run openssl (Debian package openssl)");
    assert!(made.status.success(), "{made:?}");
    let certified = cutover_proxy::certs::load_pem_files(&cert, &key).expect("load pem");
    let certs = Certificates::new();
    certs
        .set("test", Arc::new(certified))
        .expect("set certificate");

    crate::common::prometheus();
    let proxy = Proxy::new(crate::common::http1_choice(ProxyConfig::default()));
    proxy
        .set_service("app", ServiceSpec::default())
        .expect("service");
    proxy.set_routes(vec![Route::any("app")]).expect("routes");
    proxy
        .set_instances("app", Track::Stable, vec![up.instance()])
        .expect("instances");
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind");
    let port = listener.local_addr().expect("addr").port();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let serving = tokio::spawn({
        let proxy = proxy.clone();
        let spec = ListenerSpec::tls(certs.server_config());
        async move {
            proxy
                .serve_with(listener, spec, async move {
                    let _ = stopped.await;
                })
                .await
        }
    });

    // curl, a client no one here wrote, spoofing the scheme.
    let out = tokio::process::Command::new("curl")
        .args(["-sS", "--max-time", "10", "--cacert"])
        .arg(&cert)
        .args(["--resolve", &format!("shop.example:{port}:127.0.0.1")])
        .args(["-H", "X-Forwarded-Proto: http"])
        .arg(format!("https://shop.example:{port}/echo-headers"))
        .output()
        .await
        .expect("run curl");
    let _ = std::fs::remove_dir_all(&dir);
    assert!(out.status.success(), "{out:?}");
    let seen = String::from_utf8_lossy(&out.stdout).to_lowercase();
    for line in [
        "x-forwarded-proto: https\n".to_owned(),
        format!("forwarded: for=127.0.0.1;proto=https;host=\"shop.example:{port}\"\n"),
        format!("host: shop.example:{port}\n"),
    ] {
        assert!(seen.contains(&line), "want {line:?} in\n{seen}");
    }
    let _ = stop.send(());
    serving.await.expect("join").expect("serve");
}
