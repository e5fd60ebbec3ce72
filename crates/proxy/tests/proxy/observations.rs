//! Observations for analysis, and their Prometheus exposition.

use std::time::Duration;

use cutover_proxy::{InstanceId, ProxyConfig, ServiceSpec, Track, Weights};

use crate::common::{TestProxy, Upstream, client, get, prometheus};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn per_instance_counts_quantiles_and_error_rate() {
    let stable = Upstream::start("obs-stable").await;
    let canary = Upstream::start("obs-canary").await;
    let p = TestProxy::with_tracks(&[&stable], &[&canary]).await;
    let c = client();
    // Stable: 40 fast successes and 10 slow ones.
    for _ in 0..40 {
        assert_eq!(get(&c, &p.url("/")).await.status, 200);
    }
    for _ in 0..10 {
        assert_eq!(get(&c, &p.url("/slow?ms=100")).await.status, 200);
    }
    // Canary: 30 requests, 10 of them 500s.
    p.proxy.set_weights("app", Weights::ALL_CANARY).expect("w");
    for _ in 0..20 {
        get(&c, &p.url("/")).await;
    }
    for _ in 0..10 {
        assert_eq!(get(&c, &p.url("/status?code=500")).await.status, 500);
    }

    let span = Duration::from_secs(30);
    let s = p
        .proxy
        .observe(&InstanceId::from("obs-stable"), span)
        .expect("known");
    assert_eq!(s.requests(), 50);
    assert_eq!(s.statuses.success, 50);
    assert_eq!(s.error_rate(), Some(0.0));
    let p50 = s.p50().expect("p50");
    let p95 = s.p95().expect("p95");
    assert!(p50 < Duration::from_millis(50), "p50 {p50:?}");
    assert!(p95 >= Duration::from_millis(95), "p95 {p95:?}");

    let k = p.proxy.observe_track("app", Track::Canary, span);
    assert_eq!(k.requests(), 30);
    assert_eq!(k.statuses.server_error, 10);
    let rate = k.error_rate().expect("data");
    assert!((rate - 1.0 / 3.0).abs() < 1e-9, "{rate}");

    // An instance with no traffic has no data, which is not "no errors".
    let idle = Upstream::start("obs-idle").await;
    p.set_tracks(&[&stable, &idle], &[&canary]);
    let none = p
        .proxy
        .observe(&InstanceId::from("obs-idle"), span)
        .expect("known");
    assert_eq!(none.error_rate(), None);
    assert_eq!(none.p99(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn prometheus_exposition_has_requests_and_durations() {
    let up = Upstream::start("prom").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    let c = client();
    for _ in 0..5 {
        get(&c, &p.url("/status?code=418")).await;
    }
    let text = prometheus().render();
    assert!(
        text.contains(r#"cutover_proxy_requests_total{service="app",track="stable",code="418"}"#),
        "{text}"
    );
    assert!(
        text.contains("# TYPE cutover_proxy_request_duration_seconds histogram"),
        "{text}"
    );
    assert!(
        text.contains(r#"cutover_proxy_request_duration_seconds_bucket{service="app",track="stable",le="0.005"}"#),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metric_labels_keep_two_proxies_with_one_service_name_apart() {
    let staging_up = Upstream::start("labels-staging").await;
    let production_up = Upstream::start("labels-production").await;
    let labelled = |env: &str| ProxyConfig {
        metric_labels: vec![
            ("environment".to_owned(), env.to_owned()),
            ("proxy".to_owned(), "public".to_owned()),
        ],
        ..ProxyConfig::default()
    };
    let staging =
        TestProxy::start_service("labelled", labelled("staging"), ServiceSpec::default()).await;
    staging.set_tracks(&[&staging_up], &[]);
    let production =
        TestProxy::start_service("labelled", labelled("production"), ServiceSpec::default()).await;
    production.set_tracks(&[&production_up], &[]);
    let c = client();
    for _ in 0..3 {
        assert_eq!(get(&c, &staging.url("/")).await.status, 200);
    }
    for _ in 0..5 {
        assert_eq!(get(&c, &production.url("/")).await.status, 200);
    }
    let text = prometheus().render();
    let sample = |env: &str| {
        let series = format!(
            r#"cutover_proxy_requests_total{{environment="{env}",proxy="public",service="labelled",track="stable",code="200"}} "#
        );
        text.lines()
            .find_map(|l| l.strip_prefix(&series))
            .unwrap_or_else(|| panic!("no {series}in\n{text}"))
            .to_owned()
    };
    assert_eq!(sample("staging"), "3");
    assert_eq!(sample("production"), "5");
    let durations = r#"cutover_proxy_request_duration_seconds_count{environment="production",proxy="public",service="labelled",track="stable"} 5"#;
    assert!(text.contains(durations), "{text}");
    // The connection layer's gauge is per proxy as well.
    assert!(
        text.contains(r#"cutover_proxy_open_connections{environment="staging",proxy="public"}"#),
        "{text}"
    );
}
