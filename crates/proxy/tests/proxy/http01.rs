//! ACME HTTP-01 answers: a pending token is answered by the proxy itself, for
//! any Host and before routing; an unknown token goes to the app.

use bytes::Bytes;
use http_body_util::Full;
use hyper::Request;

use crate::common::{TestProxy, Upstream, client, get, send};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pending_tokens_are_answered_before_routing() {
    let up = Upstream::start("app-acme").await;
    let p = TestProxy::with_tracks(&[&up], &[]).await;
    p.proxy.http01().insert("tok-abc", "tok-abc.thumbprint");
    let c = client();

    let got = get(&c, &p.url("/.well-known/acme-challenge/tok-abc")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, "tok-abc.thumbprint");
    assert_eq!(got.headers["content-type"], "text/plain");
    assert!(got.headers.get("x-upstream").is_none(), "went to the app");

    // Any Host, even one no route matches.
    p.proxy.set_routes(vec![]).expect("no routes");
    let req = Request::get(p.url("/.well-known/acme-challenge/tok-abc"))
        .header("host", "unrouted.example")
        .body(Full::new(Bytes::new()))
        .expect("req");
    let got = send(&c, req).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, "tok-abc.thumbprint");
    p.proxy
        .set_routes(vec![cutover_proxy::Route::any("app")])
        .expect("routes");

    // An unknown token, and a removed one, fall through to the app.
    let got = get(&c, &p.url("/.well-known/acme-challenge/other")).await;
    assert_eq!(got.status, 200);
    assert_eq!(got.body, "app-acme");
    p.proxy.http01().remove("tok-abc");
    let got = get(&c, &p.url("/.well-known/acme-challenge/tok-abc")).await;
    assert_eq!(got.body, "app-acme");
}
