//! `X-Cutover-Track` is closed by default, opened by the secret or a trusted
//! source, never reaches the app, and forced requests stay out of the
//! observations the canary analysis reads.

use std::time::Duration;

use bytes::Bytes;
use cutover_proxy::{ProxyConfig, ServiceSpec, Track, TrackOverride, Weights};
use http_body_util::Full;
use hyper::Request;

use crate::common::{TestProxy, Upstream, client, sample_sum, send};

const SECRET: &str = "a-long-track-secret-for-tests";

fn forcing(url: &str, track: &str, secret: Option<&str>) -> Request<Full<Bytes>> {
    let mut req = Request::get(url).header("x-cutover-track", track);
    if let Some(secret) = secret {
        req = req.header("x-cutover-track-secret", secret);
    }
    req.body(Full::new(Bytes::new())).expect("req")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn by_default_the_header_is_ignored_and_stripped() {
    let stable = Upstream::start("stable-closed").await;
    let canary = Upstream::start("canary-closed").await;
    let p = TestProxy::with_tracks(&[&stable], &[&canary]).await;
    p.proxy
        .set_weights("app", Weights::ALL_STABLE)
        .expect("set");
    let c = client();
    for _ in 0..20 {
        let got = send(&c, forcing(&p.url("/"), "canary", Some(SECRET))).await;
        assert_eq!(got.body, "stable-closed", "an unconfigured override pinned");
    }
    let got = send(&c, forcing(&p.url("/echo-headers"), "canary", Some(SECRET))).await;
    let seen = got.body.to_lowercase();
    assert!(!seen.contains("x-cutover-track"), "{seen}");
    assert!(!seen.contains(SECRET), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_secret_pins_and_a_wrong_one_does_not() {
    let stable = Upstream::start("stable-secret").await;
    let canary = Upstream::start("canary-secret").await;
    let config = ProxyConfig {
        track_override: Some(TrackOverride {
            secret: Some(SECRET.into()),
            trusted_sources: vec![],
        }),
        ..ProxyConfig::default()
    };
    let p = TestProxy::start(config, ServiceSpec::default()).await;
    p.set_tracks(&[&stable], &[&canary]);
    p.proxy
        .set_weights("app", Weights::ALL_STABLE)
        .expect("set");
    let c = client();
    for _ in 0..20 {
        let got = send(&c, forcing(&p.url("/"), "canary", Some(SECRET))).await;
        assert_eq!(got.body, "canary-secret");
        let got = send(&c, forcing(&p.url("/"), "canary", Some("wrong"))).await;
        assert_eq!(got.body, "stable-secret");
        let got = send(&c, forcing(&p.url("/"), "canary", None)).await;
        assert_eq!(got.body, "stable-secret");
    }
    // Honoured or not, neither header reaches the app.
    let got = send(&c, forcing(&p.url("/echo-headers"), "canary", Some(SECRET))).await;
    assert_eq!(got.headers["x-upstream"], "canary-secret");
    let seen = got.body.to_lowercase();
    assert!(!seen.contains("x-cutover-track"), "{seen}");
    assert!(!seen.contains(SECRET), "{seen}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trusted_source_pins_without_the_secret() {
    let stable = Upstream::start("stable-src").await;
    let canary = Upstream::start("canary-src").await;
    let trusted = |net: &str| ProxyConfig {
        track_override: Some(TrackOverride {
            secret: None,
            trusted_sources: vec![net.parse().expect("net")],
        }),
        ..ProxyConfig::default()
    };
    // The tests' client is 127.0.0.1.
    let p = TestProxy::start(trusted("127.0.0.0/8"), ServiceSpec::default()).await;
    p.set_tracks(&[&stable], &[&canary]);
    p.proxy
        .set_weights("app", Weights::ALL_STABLE)
        .expect("set");
    let got = send(&client(), forcing(&p.url("/"), "canary", None)).await;
    assert_eq!(got.body, "canary-src");

    let q = TestProxy::start(trusted("10.0.0.0/8"), ServiceSpec::default()).await;
    q.set_tracks(&[&stable], &[&canary]);
    q.proxy
        .set_weights("app", Weights::ALL_STABLE)
        .expect("set");
    let got = send(&client(), forcing(&q.url("/"), "canary", None)).await;
    assert_eq!(got.body, "stable-src", "a source outside the list pinned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forced_requests_do_not_move_the_analysis() {
    let stable = Upstream::start("stable-forced").await;
    let canary = Upstream::start("canary-forced").await;
    let config = ProxyConfig {
        track_override: Some(TrackOverride {
            secret: Some(SECRET.into()),
            trusted_sources: vec![],
        }),
        ..ProxyConfig::default()
    };
    let service = "forced-svc";
    let p = TestProxy::start_service(service, config, ServiceSpec::default()).await;
    p.set_tracks(&[&stable], &[&canary]);
    p.proxy
        .set_weights(service, Weights::ALL_STABLE)
        .expect("set");
    let c = client();
    // A tester floods the canary with 500s and with cheap 200s.
    for _ in 0..30 {
        let got = send(
            &c,
            forcing(&p.url("/status?code=500"), "canary", Some(SECRET)),
        )
        .await;
        assert_eq!(got.status, 500);
        assert_eq!(got.headers["x-upstream"], "canary-forced");
        let got = send(&c, forcing(&p.url("/"), "canary", Some(SECRET))).await;
        assert_eq!(got.body, "canary-forced");
    }
    let obs = p
        .proxy
        .observe_track(service, Track::Canary, Duration::from_secs(60));
    assert_eq!(obs.requests(), 0, "forced requests reached the analysis");
    assert_eq!(obs.error_rate(), None);
    // They are still counted in Prometheus, and as forced.
    let forced = sample_sum(
        cutover_proxy::metrics::FORCED_REQUESTS_TOTAL,
        service,
        &["track=\"canary\""],
    );
    assert_eq!(forced, 60.0);
    let answered = sample_sum(
        cutover_proxy::metrics::REQUESTS_TOTAL,
        service,
        &["track=\"canary\"", "code=\"500\""],
    );
    assert_eq!(answered, 30.0);

    // A request with a wrong secret is an ordinary one and is observed.
    send(&c, forcing(&p.url("/"), "canary", Some("nope"))).await;
    let obs = p
        .proxy
        .observe_track(service, Track::Stable, Duration::from_secs(60));
    assert_eq!(obs.requests(), 1);
}
