//! The weighted split and its overrides.

use std::collections::HashMap;

use bytes::Bytes;
use cutover_proxy::{ProxyConfig, ServiceSpec, TrackOverride, Weights};
use http_body_util::Full;
use hyper::Request;

use crate::common::{TestProxy, Upstream, client, get, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ten_percent_canary_lands_within_one_and_a_half_points() {
    let stable = Upstream::start("stable-1").await;
    let canary = Upstream::start("canary-1").await;
    let p = TestProxy::with_tracks(&[&stable], &[&canary]).await;
    p.proxy
        .set_weights("app", Weights::canary(1_000).expect("weights"))
        .expect("set");
    let c = client();
    let mut counts: HashMap<String, u32> = HashMap::new();
    let url = p.url("/");
    for _ in 0..10_000 {
        let got = get(&c, &url).await;
        assert_eq!(got.status, 200);
        *counts.entry(got.body).or_default() += 1;
    }
    let on_canary = f64::from(counts.get("canary-1").copied().unwrap_or(0)) / 100.0;
    assert!(
        (on_canary - 10.0).abs() <= 1.5,
        "canary got {on_canary:.2} % of 10,000 requests, want 10 ± 1.5: {counts:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn header_override_forces_a_track() {
    let stable = Upstream::start("stable-h").await;
    let canary = Upstream::start("canary-h").await;
    let config = ProxyConfig {
        track_override: Some(TrackOverride {
            secret: Some("split-test-secret".into()),
            trusted_sources: vec![],
        }),
        ..ProxyConfig::default()
    };
    let p = TestProxy::start(config, ServiceSpec::default()).await;
    p.set_tracks(&[&stable], &[&canary]);
    // No traffic on canary by weight, yet the header reaches it.
    p.proxy
        .set_weights("app", Weights::ALL_STABLE)
        .expect("set");
    let c = client();
    for _ in 0..50 {
        let req = Request::get(p.url("/"))
            .header("x-cutover-track", "canary")
            .header("x-cutover-track-secret", "split-test-secret")
            .body(Full::new(Bytes::new()))
            .expect("req");
        assert_eq!(send(&c, req).await.body, "canary-h");
        let req = Request::get(p.url("/"))
            .header("x-cutover-track", "stable")
            .header("x-cutover-track-secret", "split-test-secret")
            .body(Full::new(Bytes::new()))
            .expect("req");
        assert_eq!(send(&c, req).await.body, "stable-h");
    }
    // And the reverse with all weight on canary.
    p.proxy
        .set_weights("app", Weights::ALL_CANARY)
        .expect("set");
    let req = Request::get(p.url("/"))
        .header("x-cutover-track", "stable")
        .header("x-cutover-track-secret", "split-test-secret")
        .body(Full::new(Bytes::new()))
        .expect("req");
    assert_eq!(send(&c, req).await.body, "stable-h");
    assert_eq!(get(&c, &p.url("/")).await.body, "canary-h");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sticky_cookie_keeps_a_client_on_its_track() {
    let stable = Upstream::start("stable-s").await;
    let canary = Upstream::start("canary-s").await;
    let p = TestProxy::start(ProxyConfig::default(), ServiceSpec::sticky("cutover_track")).await;
    p.set_tracks(&[&stable], &[&canary]);
    p.proxy
        .set_weights("app", Weights::canary(5_000).expect("w"))
        .expect("set");
    let c = client();
    let mut seen_tracks = HashMap::new();
    for _ in 0..20 {
        // A new client: no cookie. It is told which track it landed on...
        let first = get(&c, &p.url("/")).await;
        let cookie = first
            .headers
            .get("set-cookie")
            .and_then(|v| v.to_str().ok())
            .expect("sticky cookie set while split")
            .to_owned();
        let pair = cookie.split(';').next().expect("pair").to_owned();
        let track = pair.split('=').nth(1).expect("value").to_owned();
        assert_eq!(first.body, format!("{track}-s"));
        // ...and stays there for every later request that sends the cookie.
        for _ in 0..20 {
            let req = Request::get(p.url("/"))
                .header("cookie", format!("other=1; {pair}"))
                .body(Full::new(Bytes::new()))
                .expect("req");
            let got = send(&c, req).await;
            assert_eq!(got.body, first.body, "sticky client moved track");
            assert!(got.headers.get("set-cookie").is_none());
        }
        *seen_tracks.entry(track).or_insert(0) += 1;
    }
    assert_eq!(
        seen_tracks.len(),
        2,
        "50 % split put 20 clients on one track: {seen_tracks:?}"
    );

    // Once the rollout ends (no split), the cookie no longer pins: weights rule.
    p.proxy
        .set_weights("app", Weights::ALL_STABLE)
        .expect("set");
    let req = Request::get(p.url("/"))
        .header("cookie", "cutover_track=canary")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let got = send(&c, req).await;
    assert_eq!(got.body, "stable-s");
    assert!(got.headers.get("set-cookie").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn routes_by_host_and_path_prefix() {
    use cutover_proxy::{Route, Track};
    let web = Upstream::start("web").await;
    let api = Upstream::start("api").await;
    let admin = Upstream::start("admin").await;
    let p = TestProxy::start(ProxyConfig::default(), ServiceSpec::default()).await;
    for (svc, up) in [("web", &web), ("api", &api), ("admin", &admin)] {
        p.proxy
            .set_service(svc, ServiceSpec::default())
            .expect("svc");
        p.proxy
            .set_instances(svc, Track::Stable, vec![up.instance()])
            .expect("inst");
    }
    p.proxy
        .set_routes(vec![
            Route::any("web"),
            Route::any("api").with_prefix("/api"),
            Route::host("admin.example", "admin"),
        ])
        .expect("routes");
    let c = client();
    let with_host = |path: &str, host: &str| {
        Request::get(p.url(path))
            .header("host", host)
            .body(Full::new(Bytes::new()))
            .expect("req")
    };
    assert_eq!(send(&c, with_host("/", "shop.example")).await.body, "web");
    assert_eq!(
        send(&c, with_host("/api/users", "shop.example")).await.body,
        "api"
    );
    assert_eq!(
        send(&c, with_host("/api", "shop.example")).await.body,
        "api"
    );
    assert_eq!(
        send(&c, with_host("/apis", "shop.example")).await.body,
        "web"
    );
    assert_eq!(
        send(&c, with_host("/api/x", "ADMIN.example:8080"))
            .await
            .body,
        "admin"
    );
}
