//! Test helpers: real upstream HTTP servers on loopback, a proxy on a loopback
//! port, and a pooled keep-alive client.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use cutover_proxy::{Instance, ListenerSpec, Proxy, ProxyConfig, Route, ServiceSpec, Track};
use futures_util::{SinkExt, StreamExt};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::sync::oneshot;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role;

type TestBody = BoxBody<Bytes, Infallible>;

/// The Prometheus recorder of this test binary; installed before any proxy.
pub fn prometheus() -> &'static PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE.get_or_init(|| {
        let handle = PrometheusBuilder::new()
            .set_buckets_for_metric(
                metrics_exporter_prometheus::Matcher::Full(
                    cutover_proxy::metrics::REQUEST_DURATION_SECONDS.to_owned(),
                ),
                cutover_proxy::metrics::DURATION_BUCKETS_SECONDS,
            )
            .expect("buckets")
            .install_recorder()
            .expect("install recorder");
        cutover_proxy::metrics::describe();
        handle
    })
}

/// A real HTTP/1.1 server on loopback that names itself in every answer.
pub struct Upstream {
    pub name: String,
    pub addr: SocketAddr,
    stop: Option<oneshot::Sender<()>>,
}

impl Upstream {
    pub async fn start(name: &str) -> Upstream {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let addr = listener.local_addr().expect("addr");
        let (stop_tx, mut stop_rx) = oneshot::channel::<()>();
        let name_owned = name.to_owned();
        tokio::spawn(async move {
            loop {
                let (stream, _) = tokio::select! {
                    _ = &mut stop_rx => break,
                    accepted = listener.accept() => match accepted {
                        Ok(c) => c,
                        Err(_) => continue,
                    },
                };
                let name = name_owned.clone();
                tokio::spawn(async move {
                    let service =
                        hyper::service::service_fn(move |req| upstream_handler(name.clone(), req));
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        Upstream {
            name: name.to_owned(),
            addr,
            stop: Some(stop_tx),
        }
    }

    pub fn instance(&self) -> Instance {
        Instance::new(self.name.as_str(), self.addr)
    }

    /// Stops accepting new connections.
    pub fn stop(&mut self) {
        if let Some(tx) = self.stop.take() {
            let _ = tx.send(());
        }
    }
}

impl Drop for Upstream {
    fn drop(&mut self) {
        self.stop();
    }
}

fn query(req: &Request<Incoming>, key: &str) -> Option<u64> {
    req.uri()
        .query()?
        .split('&')
        .filter_map(|p| p.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}

fn text(status: StatusCode, name: &str, body: String) -> Response<TestBody> {
    Response::builder()
        .status(status)
        .header("x-upstream", name)
        .body(Full::new(Bytes::from(body)).boxed())
        .expect("response")
}

async fn upstream_handler(
    name: String,
    mut req: Request<Incoming>,
) -> Result<Response<TestBody>, Infallible> {
    let path = req.uri().path().to_owned();
    let resp = match path.as_str() {
        "/slow" => {
            let ms = query(&req, "ms").unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text(StatusCode::OK, &name, name.clone())
        }
        "/status" => {
            let code = query(&req, "code").unwrap_or(200) as u16;
            text(
                StatusCode::from_u16(code).expect("status"),
                &name,
                name.clone(),
            )
        }
        "/echo-headers" => {
            let mut out = String::new();
            for (k, v) in req.headers() {
                out.push_str(&format!("{}: {}\n", k, v.to_str().unwrap_or("?")));
            }
            text(StatusCode::OK, &name, out)
        }
        "/upload" => {
            let body = req.into_body().collect().await.map(|c| c.to_bytes());
            let n = body.map(|b| b.len()).unwrap_or(0);
            text(StatusCode::OK, &name, n.to_string())
        }
        "/stream" => {
            // First chunk now, second after `ms`: a proxy that buffers whole
            // bodies delivers nothing until the second.
            let ms = query(&req, "ms").unwrap_or(1000);
            let (tx, rx) = tokio::sync::mpsc::channel::<Result<Frame<Bytes>, Infallible>>(2);
            tokio::spawn(async move {
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(b"first\n"))))
                    .await;
                tokio::time::sleep(Duration::from_millis(ms)).await;
                let _ = tx
                    .send(Ok(Frame::data(Bytes::from_static(b"second\n"))))
                    .await;
            });
            let stream = tokio_stream_from(rx);
            Response::builder()
                .header("x-upstream", &name)
                .body(BodyExt::boxed(StreamBody::new(stream)))
                .expect("response")
        }
        "/ws" => {
            let key = req
                .headers()
                .get("sec-websocket-key")
                .map(|k| derive_accept_key(k.as_bytes()));
            let Some(accept) = key else {
                return Ok(text(StatusCode::BAD_REQUEST, &name, "no key".into()));
            };
            let on_upgrade = hyper::upgrade::on(&mut req);
            let name_ws = name.clone();
            tokio::spawn(async move {
                let Ok(upgraded) = on_upgrade.await else {
                    return;
                };
                let mut ws = tokio_tungstenite::WebSocketStream::from_raw_socket(
                    TokioIo::new(upgraded),
                    Role::Server,
                    None,
                )
                .await;
                while let Some(Ok(msg)) = ws.next().await {
                    if msg.is_close() {
                        break;
                    }
                    if msg.is_text() {
                        let reply = format!("{name_ws}: {}", msg.to_text().unwrap_or(""));
                        if ws.send(reply.into()).await.is_err() {
                            break;
                        }
                    }
                }
            });
            Response::builder()
                .status(StatusCode::SWITCHING_PROTOCOLS)
                .header("connection", "upgrade")
                .header("upgrade", "websocket")
                .header("sec-websocket-accept", accept)
                .body(Full::new(Bytes::new()).boxed())
                .expect("response")
        }
        _ => text(StatusCode::OK, &name, name.clone()),
    };
    Ok(resp)
}

fn tokio_stream_from<T: Send + 'static>(
    mut rx: tokio::sync::mpsc::Receiver<T>,
) -> impl futures_util::Stream<Item = T> + Send + 'static {
    futures_util::stream::poll_fn(move |cx| rx.poll_recv(cx))
}

/// A proxy serving on a loopback port, with one service ("app" unless named
/// otherwise) on all routes.
pub struct TestProxy {
    pub proxy: Proxy,
    pub addr: SocketAddr,
    pub service: String,
    shutdown: Option<oneshot::Sender<()>>,
    pub served: Option<tokio::task::JoinHandle<std::io::Result<()>>>,
}

impl TestProxy {
    pub async fn start(config: ProxyConfig, spec: ServiceSpec) -> TestProxy {
        TestProxy::start_service("app", config, spec).await
    }

    /// A proxy whose one service is `service`: a name no other test uses keeps
    /// its Prometheus series to itself (the recorder is shared by the binary).
    pub async fn start_service(service: &str, config: ProxyConfig, spec: ServiceSpec) -> TestProxy {
        TestProxy::start_full(service, config, spec, ListenerSpec::plain()).await
    }

    /// A proxy with one service "app" whose first listener serves as
    /// `listener_spec` says.
    pub async fn start_with(
        config: ProxyConfig,
        spec: ServiceSpec,
        listener_spec: ListenerSpec,
    ) -> TestProxy {
        TestProxy::start_full("app", config, spec, listener_spec).await
    }

    async fn start_full(
        service: &str,
        config: ProxyConfig,
        spec: ServiceSpec,
        listener_spec: ListenerSpec,
    ) -> TestProxy {
        prometheus();
        let proxy = Proxy::new(http1_choice(config));
        proxy.set_service(service, spec).expect("service");
        proxy.set_routes(vec![Route::any(service)]).expect("routes");
        let listener =
            cutover_proxy::bind_listener(([127, 0, 0, 1], 0).into()).expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let (tx, rx) = oneshot::channel::<()>();
        let p = proxy.clone();
        let served = tokio::spawn(async move {
            p.serve_with(listener, listener_spec, async move {
                let _ = rx.await;
            })
            .await
        });
        TestProxy {
            proxy,
            addr,
            service: service.to_owned(),
            shutdown: Some(tx),
            served: Some(served),
        }
    }

    pub async fn with_tracks(stable: &[&Upstream], canary: &[&Upstream]) -> TestProxy {
        let p = TestProxy::start(ProxyConfig::default(), ServiceSpec::default()).await;
        p.set_tracks(stable, canary);
        p
    }

    pub fn set_tracks(&self, stable: &[&Upstream], canary: &[&Upstream]) {
        self.proxy
            .set_instances(
                &self.service,
                Track::Stable,
                stable.iter().map(|u| u.instance()).collect(),
            )
            .expect("stable");
        self.proxy
            .set_instances(
                &self.service,
                Track::Canary,
                canary.iter().map(|u| u.instance()).collect(),
            )
            .expect("canary");
    }

    /// Serves another listener of the same proxy (until the test ends).
    pub async fn add_listener(&self, spec: ListenerSpec) -> SocketAddr {
        let listener =
            cutover_proxy::bind_listener(([127, 0, 0, 1], 0).into()).expect("bind proxy");
        let addr = listener.local_addr().expect("addr");
        let p = self.proxy.clone();
        tokio::spawn(async move { p.serve_with(listener, spec, std::future::pending()).await });
        addr
    }

    pub fn url(&self, path: &str) -> String {
        format!("http://{}{}", self.addr, path)
    }

    /// Signals graceful shutdown; returns the serve task to await.
    pub fn shutdown(&mut self) -> tokio::task::JoinHandle<std::io::Result<()>> {
        if let Some(tx) = self.shutdown.take() {
            let _ = tx.send(());
        }
        self.served.take().expect("served once")
    }
}

pub type TestClient = Client<HttpConnector, Full<Bytes>>;

/// A pooled keep-alive HTTP/1.1 client.
/// `config`, served by hyper alone when `CUTOVER_PROXY_TEST_HTTP1=hyper`
/// (to run the whole suite against both HTTP/1 paths).
pub fn http1_choice(config: ProxyConfig) -> ProxyConfig {
    match std::env::var("CUTOVER_PROXY_TEST_HTTP1").as_deref() {
        Ok("hyper") => ProxyConfig {
            http1_fast_path: false,
            ..config
        },
        _ => config,
    }
}

pub fn client() -> TestClient {
    Client::builder(TokioExecutor::new()).build_http()
}

/// A response read whole.
pub struct Got {
    pub status: StatusCode,
    pub headers: hyper::HeaderMap,
    pub body: String,
}

pub async fn send(client: &TestClient, req: Request<Full<Bytes>>) -> Got {
    let resp = client.request(req).await.expect("request through proxy");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    Got {
        status,
        headers,
        body: String::from_utf8_lossy(&body).into_owned(),
    }
}

pub async fn get(client: &TestClient, url: &str) -> Got {
    send(
        client,
        Request::get(url)
            .body(Full::new(Bytes::new()))
            .expect("request"),
    )
    .await
}

/// An address on which nothing listens (connections are refused).
pub fn dead_addr() -> SocketAddr {
    cutover_kit::ports::free_addr().expect("a free loopback port")
}

/// Sends raw bytes on a new connection, then (with `half_close`) shuts the
/// write side, and reads the answer: one response head and its
/// `Content-Length` body, or whatever arrives before the connection closes.
/// Empty when the proxy closed without answering.
pub async fn raw_request(addr: SocketAddr, bytes: &[u8], half_close: bool) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut s = tokio::net::TcpStream::connect(addr).await.expect("connect");
    s.write_all(bytes).await.expect("write");
    if half_close {
        s.shutdown().await.expect("shutdown write");
    }
    let mut out = Vec::new();
    let mut buf = [0u8; 4096];
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    loop {
        if let Some(end) = out.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&out[..end]).to_ascii_lowercase();
            let len = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok())
                .unwrap_or(0);
            if out.len() >= end + 4 + len {
                break;
            }
        }
        match tokio::time::timeout_at(deadline, s.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => break,
            Ok(Ok(n)) => out.extend_from_slice(&buf[..n]),
            Err(_) => panic!(
                "no complete answer in 10 s; got {:?}",
                String::from_utf8_lossy(&out)
            ),
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The lines of the Prometheus output that are samples of `metric` for
/// `service`.
pub fn samples(metric: &str, service: &str) -> Vec<String> {
    let label = format!("service=\"{service}\"");
    prometheus()
        .render()
        .lines()
        .filter(|l| l.starts_with(metric) && l.contains(&label))
        .map(str::to_owned)
        .collect()
}

/// Sum of the samples of `metric` for `service` whose labels contain every
/// one of `labels` (like `track="canary"`).
pub fn sample_sum(metric: &str, service: &str, labels: &[&str]) -> f64 {
    samples(metric, service)
        .iter()
        .filter(|l| labels.iter().all(|want| l.contains(want)))
        .filter_map(|l| l.rsplit(' ').next()?.parse::<f64>().ok())
        .sum()
}
