//! The listeners: accept TCP connections (at most
//! [`ProxyConfig::max_connections`](crate::ProxyConfig::max_connections) open
//! over all listeners of a proxy; beyond it the rest wait in the backlog),
//! terminate TLS when the listener has a certificate store, serve HTTP/1.1
//! (keep-alive) and HTTP/2 (by ALPN on TLS, by prior knowledge on plain TCP),
//! and shut down gracefully: stop accepting, let in-flight requests and tunnels
//! finish up to the shutdown timeout, then cut what is left.
//!
//! Each connection runs in its own task, which owns its timers:
//! - the *first request deadline*, from accept until the first request head
//!   is read; it covers the TLS handshake and hyper-util's HTTP/2 preface
//!   sniffing, which have no timer of their own;
//! - on HTTP/2, the *idle timeout*: no open stream for that long sends GOAWAY
//!   (pings are not activity);
//! - on HTTP/1.1, hyper's header read timeout (the keep-alive idle time).
//!
//! With [`ProxyConfig::http1_fast_path`](crate::ProxyConfig::http1_fast_path)
//! (the default), a connection that is not HTTP/2 by ALPN goes to the HTTP/1
//! fast path (`h1/`) first, which keeps the same timers and drain rules and
//! hands the connection back here, to hyper, for what it does not handle.
//!
//! A listener has a role: the proxy itself, or a redirect to HTTPS that
//! answers everything with `308` except ACME HTTP-01 challenges.

use std::convert::Infallible;
use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode, Version};
use http_body::{Body, Frame, SizeHint};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, OwnedSemaphorePermit};
use tokio::time::Instant;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::Shared;
use crate::body::ResponseBody;
use crate::certs::ACME_TLS_ALPN;
use crate::forward::{self, ConnInfo};
use crate::h1;
use crate::headers;
use crate::metrics::ProxyMetrics;
use crate::upgrade::ListenerCtx;

/// Smallest buffer hyper accepts for a request head.
const MIN_HEADER_BUF: usize = 8192;
/// Pause after an accept error such as EMFILE, so the loop does not spin.
const ACCEPT_ERROR_BACKOFF: Duration = Duration::from_millis(50);
/// How long a TLS-ALPN-01 validation connection gets to read our close_notify.
const ACME_CLOSE_TIMEOUT: Duration = Duration::from_secs(1);

/// Backlog of listeners made by [`bind_listener`]: connections the kernel has
/// completed but the proxy has not accepted yet (the kernel caps it at
/// `net.core.somaxconn`, 4096 by default since Linux 5.4). Connections over
/// [`crate::ProxyConfig::max_connections`] wait here; std's and tokio's
/// `bind` use 128, which drops handshakes under a burst.
pub const LISTEN_BACKLOG: u32 = 4096;

/// A TCP listener for [`crate::Proxy::serve_with`]: `SO_REUSEADDR`, and a
/// backlog of [`LISTEN_BACKLOG`].
pub fn bind_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    bind(addr, false)
}

/// [`bind_listener`] with `SO_REUSEPORT` too, for several listeners on one
/// address (one per runtime; the kernel spreads new connections over them).
pub fn bind_listener_reuse_port(addr: SocketAddr) -> std::io::Result<TcpListener> {
    bind(addr, true)
}

fn bind(addr: SocketAddr, reuse_port: bool) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    if reuse_port {
        socket.set_reuseport(true)?;
    }
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// How one listener serves: with or without TLS, and in which role.
#[derive(Debug, Clone)]
pub struct ListenerSpec {
    /// Terminate TLS with this configuration (usually
    /// [`Certificates::server_config`](crate::Certificates::server_config)).
    pub tls: Option<Arc<rustls::ServerConfig>>,
    /// What the listener does with requests.
    pub role: ListenerRole,
}

impl ListenerSpec {
    /// Plain HTTP, proxying (what [`crate::Proxy::serve`] does).
    pub fn plain() -> ListenerSpec {
        ListenerSpec {
            tls: None,
            role: ListenerRole::Proxy,
        }
    }

    /// HTTPS, proxying.
    pub fn tls(config: Arc<rustls::ServerConfig>) -> ListenerSpec {
        ListenerSpec {
            tls: Some(config),
            role: ListenerRole::Proxy,
        }
    }

    /// Plain HTTP that redirects to HTTPS on `https_port`.
    pub fn redirect_to_https(https_port: u16) -> ListenerSpec {
        ListenerSpec {
            tls: None,
            role: ListenerRole::RedirectToHttps { https_port },
        }
    }
}

/// What a listener does with requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ListenerRole {
    /// Route and forward them (the proxy).
    Proxy,
    /// Answer `308 Permanent Redirect` to `https://HOST[:https_port]/path?query`
    /// (the port is left out when it is 443), except
    /// `GET /.well-known/acme-challenge/<token>`, which is handled as on a
    /// proxy listener (a pending HTTP-01 challenge is answered, anything else
    /// is routed).
    RedirectToHttps {
        /// The port of the HTTPS listener.
        https_port: u16,
    },
}

/// Everything a connection task needs from its listener.
struct Listener {
    shared: Arc<Shared>,
    builder: auto::Builder<TokioExecutor>,
    tls: Option<TlsAcceptor>,
    role: ListenerRole,
    hsts: Option<HeaderValue>,
    ctx: ListenerCtx,
    /// Asks connections to finish gracefully (shutdown began).
    graceful: CancellationToken,
}

pub(crate) async fn serve(
    shared: Arc<Shared>,
    listener: TcpListener,
    spec: ListenerSpec,
    shutdown: impl Future<Output = ()> + Send,
) -> std::io::Result<()> {
    let config = &shared.config;
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .keep_alive(true)
        .header_read_timeout(config.client_idle_timeout)
        .max_buf_size(config.max_header_bytes.max(MIN_HEADER_BUF));
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(config.h2_max_concurrent_streams)
        .max_header_list_size(u32::try_from(config.max_header_bytes).unwrap_or(u32::MAX))
        .keep_alive_interval(Some(config.client_idle_timeout / 2));
    let tls = spec.tls.map(TlsAcceptor::from);
    let hsts = match (&tls, config.hsts) {
        (Some(_), Some(age)) => HeaderValue::from_str(&format!("max-age={}", age.as_secs())).ok(),
        _ => None,
    };
    let ctx = ListenerCtx {
        upgrade_idle_timeout: config.upgrade_idle_timeout,
        ..ListenerCtx::default()
    };
    let this = Arc::new(Listener {
        shared: shared.clone(),
        builder,
        tls,
        role: spec.role,
        hsts,
        ctx: ctx.clone(),
        graceful: CancellationToken::new(),
    });
    let connections = TaskTracker::new();
    let _pruner = Pruner(tokio::spawn({
        let shared = shared.clone();
        async move {
            let every = shared.h1_pool.prune_every();
            loop {
                tokio::time::sleep(every).await;
                shared.h1_pool.prune();
            }
        }
    }));

    let local = listener.local_addr()?;
    tracing::info!(%local, tls = this.tls.is_some(), role = ?this.role, "proxy listening");
    tokio::pin!(shutdown);
    loop {
        // A slot first: at the cap, leave new connections in the backlog.
        let slot = match shared.connections.clone().try_acquire_owned() {
            Ok(slot) => slot,
            Err(_) => {
                shared.metrics.limit_reached();
                tracing::debug!(%local, max = shared.config.max_connections, "connection limit reached; not accepting");
                tokio::select! {
                    biased;
                    _ = &mut shutdown => break,
                    slot = shared.connections.clone().acquire_owned() => match slot {
                        Ok(slot) => slot,
                        Err(_) => break, // the semaphore is never closed
                    },
                }
            }
        };
        let accepted = tokio::select! {
            biased;
            _ = &mut shutdown => break,
            accepted = listener.accept() => accepted,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => conn,
            Err(e) => {
                tracing::warn!(error = %e, "accept failed");
                tokio::time::sleep(ACCEPT_ERROR_BACKOFF).await;
                continue;
            }
        };
        let deadline =
            crate::config::deadline_after(Instant::now(), shared.config.first_request_timeout);
        let _ = stream.set_nodelay(true);
        connections.spawn(this.clone().connection(stream, peer, deadline, slot));
    }
    drop(listener);
    tracing::info!(%local, "proxy stopped accepting; finishing in-flight requests");
    this.graceful.cancel();
    connections.close();
    let timeout = shared.config.shutdown_timeout;
    let finished = tokio::time::timeout(timeout, async {
        connections.wait().await;
        ctx.tunnels.close();
        ctx.tunnels.wait().await;
    })
    .await;
    if finished.is_err() {
        tracing::warn!(%local, ?timeout, "shutdown timeout passed; cutting remaining connections");
        ctx.cut.cancel();
        ctx.tunnels.close();
        connections.wait().await;
        ctx.tunnels.wait().await;
    }
    Ok(())
}

impl Listener {
    /// One client connection, from accept to close.
    async fn connection(
        self: Arc<Self>,
        stream: TcpStream,
        peer: SocketAddr,
        deadline: Instant,
        slot: OwnedSemaphorePermit,
    ) {
        let slot = Arc::new(Slot::new(slot, self.shared.metrics.clone()));
        let Some(tls) = self.tls.clone() else {
            self.http(stream, ConnInfo { peer, tls: false }, deadline, slot, false)
                .await;
            return;
        };
        let handshake = tokio::select! {
            hs = tokio::time::timeout_at(deadline, tls.accept(stream)) => hs,
            _ = self.graceful.cancelled() => return,
            _ = self.ctx.cut.cancelled() => return,
        };
        let mut stream = match handshake {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                self.shared.metrics.tls_handshake_error();
                tracing::debug!(%peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_elapsed) => {
                self.shared.metrics.first_request_timeout();
                tracing::debug!(%peer, "TLS handshake not done by the first request deadline");
                return;
            }
        };
        if stream.get_ref().1.alpn_protocol() == Some(ACME_TLS_ALPN) {
            // TLS-ALPN-01 validation: the handshake was the answer.
            let _ = tokio::time::timeout(ACME_CLOSE_TIMEOUT, stream.shutdown()).await;
            return;
        }
        let h2 = stream.get_ref().1.alpn_protocol() == Some(b"h2");
        self.http(stream, ConnInfo { peer, tls: true }, deadline, slot, h2)
            .await;
    }

    /// Serves HTTP on an established connection until it closes: on the
    /// HTTP/1 fast path when it is on and the connection is not HTTP/2 by
    /// ALPN, else (or when the fast path hands it over) with hyper.
    async fn http<I>(
        self: Arc<Self>,
        io: I,
        info: ConnInfo,
        first_deadline: Instant,
        slot: Arc<Slot>,
        alpn_h2: bool,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        if alpn_h2 || !self.shared.config.http1_fast_path || self.role != ListenerRole::Proxy {
            self.hyper_http(io, info, first_deadline, slot).await;
            return;
        }
        let params = h1::ConnParams {
            shared: &self.shared,
            hsts: self.hsts.as_ref(),
            graceful: &self.graceful,
            cut: &self.ctx.cut,
        };
        match h1::serve(params, io, &info, first_deadline).await {
            h1::Ended::Closed => {}
            h1::Ended::Handoff {
                io,
                buffered,
                served,
            } => {
                // A whole request head is waiting after served ones: hyper's
                // first-request deadline starts now.
                let deadline = if served {
                    crate::config::deadline_after(
                        Instant::now(),
                        self.shared.config.first_request_timeout,
                    )
                } else {
                    first_deadline
                };
                self.hyper_http(h1::Rewind::new(buffered, io), info, deadline, slot)
                    .await;
            }
        }
    }

    /// Serves HTTP with hyper on an established connection until it closes.
    async fn hyper_http<I>(
        self: Arc<Self>,
        io: I,
        info: ConnInfo,
        first_deadline: Instant,
        slot: Arc<Slot>,
    ) where
        I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    {
        let streams = Arc::new(Streams::default());
        // Shared by the connection's requests: one reference count per
        // request instead of one per field.
        let ctx = Arc::new(ListenerCtx {
            slot: Some(slot),
            ..self.ctx.clone()
        });
        let listener = self.clone();
        let conn_streams = streams.clone();
        let service = service_fn(move |req: Request<Incoming>| {
            let listener = listener.clone();
            let ctx = ctx.clone();
            let guard = conn_streams.open(req.version());
            async move {
                let resp = listener.respond(req, &info, &ctx).await;
                Ok::<_, Infallible>(resp.map(|body| Tracked {
                    body,
                    _guard: guard,
                }))
            }
        });
        let conn = self
            .builder
            .serve_connection_with_upgrades(TokioIo::new(io), service)
            .into_owned();
        tokio::pin!(conn);
        let h2_idle = self.shared.config.h2_idle_timeout;
        let peer = info.peer;
        let mut closing = false;
        // An HTTP/1 connection open when shutdown began: served a moment
        // longer (each response says `Connection: close`), then closed.
        let mut linger_until: Option<Instant> = None;
        loop {
            let timer = if closing {
                linger_until.map(|at| (at, Timer::Linger))
            } else if !streams.seen_first() {
                Some((first_deadline, Timer::FirstRequest))
            } else {
                streams
                    .idle_since()
                    .map(|since| (since + h2_idle, Timer::H2Idle))
            };
            let changed = streams.changed.notified();
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(e) = result {
                        tracing::debug!(%peer, error = %e, "client connection ended with an error");
                    }
                    return;
                }
                () = sleep_until(timer.map(|(at, _)| at)) => match timer.map(|(_, t)| t) {
                    Some(Timer::FirstRequest) => {
                        self.shared.metrics.first_request_timeout();
                        tracing::debug!(%peer, "no request head by the first request deadline; closing");
                        return;
                    }
                    // Re-checked: a stream may have opened at the last moment.
                    Some(Timer::H2Idle)
                        if streams.idle_since().is_some_and(|since| since + h2_idle <= Instant::now()) =>
                    {
                        self.shared.metrics.idle_closed_h2();
                        tracing::debug!(%peer, "HTTP/2 connection idle; sending GOAWAY");
                        conn.as_mut().graceful_shutdown();
                        closing = true;
                    }
                    Some(Timer::Linger) => {
                        linger_until = None;
                        conn.as_mut().graceful_shutdown();
                    }
                    Some(Timer::H2Idle) | None => {}
                },
                () = changed => {}
                _ = self.graceful.cancelled(), if !closing => {
                    // HTTP/2 says GOAWAY, which clients retry safely. Closing
                    // an idle HTTP/1 connection races a request the client
                    // may be sending on it, so each one is first told to
                    // close after its next response, and only the ones still
                    // idle after the linger are closed.
                    if streams.h2.load(Ordering::Acquire) || !streams.seen_first() {
                        conn.as_mut().graceful_shutdown();
                    } else {
                        linger_until = Some(Instant::now() + DRAIN_LINGER);
                    }
                    closing = true;
                }
                _ = self.ctx.cut.cancelled() => return,
            }
        }
    }

    /// The response to one request, per the listener's role.
    async fn respond(
        &self,
        req: Request<Incoming>,
        info: &ConnInfo,
        ctx: &ListenerCtx,
    ) -> Response<ResponseBody> {
        let mut resp = match self.role {
            ListenerRole::RedirectToHttps { https_port }
                if req.method() != http::Method::GET
                    || !req.uri().path().starts_with(crate::HTTP01_PATH_PREFIX) =>
            {
                redirect(&req, https_port)
            }
            _ => {
                let http1 = req.version() < Version::HTTP_2;
                let mut resp = forward::handle(&self.shared, req, info, ctx).await;
                if http1
                    && self.graceful.is_cancelled()
                    && resp.status() != http::StatusCode::SWITCHING_PROTOCOLS
                {
                    // Shutting down: the client opens its next request elsewhere.
                    resp.headers_mut()
                        .insert(header::CONNECTION, HeaderValue::from_static("close"));
                }
                resp
            }
        };
        if let Some(hsts) = &self.hsts
            && !resp
                .headers()
                .contains_key(header::STRICT_TRANSPORT_SECURITY)
        {
            resp.headers_mut()
                .insert(header::STRICT_TRANSPORT_SECURITY, hsts.clone());
        }
        resp
    }
}

/// Closes the fast path's idle upstream connections that idled too long,
/// while its listener serves.
struct Pruner(tokio::task::JoinHandle<()>);

impl Drop for Pruner {
    fn drop(&mut self) {
        self.0.abort();
    }
}

#[derive(Debug, Clone, Copy)]
enum Timer {
    FirstRequest,
    H2Idle,
    Linger,
}

/// How long an HTTP/1 connection open at shutdown is still served (with
/// `Connection: close` on each response) before it is closed.
const DRAIN_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

/// `308` to the same host, path and query over HTTPS.
fn redirect(req: &Request<Incoming>, https_port: u16) -> Response<ResponseBody> {
    let host = headers::host_of(req.uri(), req.headers()).map(headers::hostname);
    let authority = host.and_then(|h| {
        let h = if h.contains(':') {
            format!("[{h}]")
        } else {
            h.to_owned()
        };
        let a = if https_port == 443 {
            h
        } else {
            format!("{h}:{https_port}")
        };
        a.parse::<http::uri::Authority>().ok()
    });
    let Some(authority) = authority else {
        let mut resp = Response::new(ResponseBody::text(
            "400 Bad Request: no valid Host header to redirect to HTTPS\n".to_owned(),
        ));
        *resp.status_mut() = StatusCode::BAD_REQUEST;
        return resp;
    };
    let path = req
        .uri()
        .path_and_query()
        .map_or("/", http::uri::PathAndQuery::as_str);
    let location = format!("https://{authority}{path}");
    let mut resp = Response::new(ResponseBody::text(format!(
        "308 Permanent Redirect: {location}\n"
    )));
    *resp.status_mut() = StatusCode::PERMANENT_REDIRECT;
    if let Ok(v) = HeaderValue::from_str(&location) {
        resp.headers_mut().insert(header::LOCATION, v);
    }
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

/// The requests (HTTP/2 streams) open on one connection.
#[derive(Debug, Default)]
struct Streams {
    first: AtomicBool,
    h2: AtomicBool,
    state: std::sync::Mutex<StreamCount>,
    changed: Notify,
}

#[derive(Debug, Default)]
struct StreamCount {
    open: usize,
    /// When the last stream ended (`None` while one is open or none was).
    idle_since: Option<Instant>,
}

impl Streams {
    /// Counts a request as open. The connection's loop is woken only when
    /// its timer changes: at the first request (the first-request deadline
    /// ends). A stream opening on an idle HTTP/2 connection needs no wake-up:
    /// the idle timer re-checks when it fires.
    fn open(self: &Arc<Self>, version: Version) -> StreamGuard {
        if version == Version::HTTP_2 {
            self.h2.store(true, Ordering::Release);
        }
        let first = !self.first.swap(true, Ordering::AcqRel);
        {
            let mut state = self.lock();
            state.open += 1;
            state.idle_since = None;
        }
        if first {
            self.changed.notify_one();
        }
        StreamGuard(self.clone())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StreamCount> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn seen_first(&self) -> bool {
        self.first.load(Ordering::Acquire)
    }

    /// For an HTTP/2 connection with no open stream, since when.
    fn idle_since(&self) -> Option<Instant> {
        if !self.h2.load(Ordering::Acquire) {
            return None;
        }
        self.lock().idle_since
    }
}

/// One open request; ends when its response body is finished or dropped.
#[derive(Debug)]
struct StreamGuard(Arc<Streams>);

impl Drop for StreamGuard {
    /// The last open stream of an HTTP/2 connection ending starts its idle
    /// timer, so only that wakes the connection's loop (HTTP/1.1 keep-alive
    /// idleness is hyper's `header_read_timeout`).
    fn drop(&mut self) {
        let h2 = self.0.h2.load(Ordering::Acquire);
        let became_idle = {
            let mut state = self.0.lock();
            state.open = state.open.saturating_sub(1);
            let idle = h2 && state.open == 0;
            if idle {
                state.idle_since = Some(Instant::now());
            }
            idle
        };
        if became_idle {
            self.0.changed.notify_one();
        }
    }
}

pin_project_lite::pin_project! {
    /// A response body that keeps its stream counted as open until it ends.
    struct Tracked {
        #[pin]
        body: ResponseBody,
        _guard: StreamGuard,
    }
}

impl Body for Tracked {
    type Data = Bytes;
    type Error = <ResponseBody as Body>::Error;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.project().body.poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

/// A client connection's place under the connection cap, and in the
/// open-connections gauge; held by the connection and by a tunnel it upgrades
/// to, released when both have ended.
#[derive(Debug)]
pub(crate) struct Slot {
    _permit: OwnedSemaphorePermit,
    metrics: Arc<ProxyMetrics>,
}

impl Slot {
    fn new(permit: OwnedSemaphorePermit, metrics: Arc<ProxyMetrics>) -> Slot {
        metrics.open_connections().increment(1.0);
        Slot {
            _permit: permit,
            metrics,
        }
    }

    /// The proxy's own series (a tunnel counts its idle close there).
    pub(crate) fn metrics(&self) -> &ProxyMetrics {
        &self.metrics
    }
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.metrics.open_connections().decrement(1.0);
    }
}
