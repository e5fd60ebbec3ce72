//! One client connection on the fast path, from its first byte until it
//! closes or is handed to hyper: read a request head, plan it
//! (`parse.rs`), send the rewritten head upstream on a pooled connection
//! driven by this same task (`upstream.rs`), pass the response on
//! (`body.rs`), do the request's bookkeeping, and wait for the next head.
//!
//! It keeps the connection layer's contract of `server.rs`: the first
//! request deadline, the keep-alive idle timeout, and on shutdown
//! `Connection: close` on the next response and a 1 s linger for an idle
//! connection that has served before; the request layer's of `forward.rs`:
//! 404 / 502 / 503 / 504 with the request id, one retry on another instance
//! of a `GET`/`HEAD` that failed before any answer, suspect marks,
//! observations and metrics through the same `Finish`.

use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use http::HeaderValue;
use http::Response;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::body::{Relayed, relay, write_two};
use super::parse::{Answer, ConnFacts, Framing, Plan, RequestPlan, ResponseExtras, ResponsePlan};
use super::upstream::{self, READ_CHUNK, UpstreamConn};
use crate::Shared;
use crate::balance;
use crate::body::{Finish, ResponseBody};
use crate::forward::{self, ConnInfo, ProxyFailure};
use crate::headers;

/// Room read at once from a client.
const CLIENT_READ: usize = 4096;
/// Largest upstream response head passed on (hyper's client allows about
/// 400 KiB); a larger one is a 502.
const MAX_RESPONSE_HEAD: usize = 256 * 1024;
/// How long an HTTP/1 connection open at shutdown is still served (as
/// `server.rs`).
const DRAIN_LINGER: Duration = Duration::from_secs(1);

/// What the fast path needs from its listener.
pub(crate) struct ConnParams<'a> {
    pub(crate) shared: &'a Arc<Shared>,
    pub(crate) hsts: Option<&'a HeaderValue>,
    /// Shutdown began.
    pub(crate) graceful: &'a CancellationToken,
    /// The shutdown timeout passed: stop at once.
    pub(crate) cut: &'a CancellationToken,
}

/// How the fast path left a connection.
#[derive(Debug)]
pub(crate) enum Ended<I> {
    Closed,
    /// hyper serves it from here: `buffered` is what was read and not used
    /// (a whole request head, or the start of one); `served` says whether
    /// the fast path answered a request on it before.
    Handoff {
        io: I,
        buffered: BytesMut,
        served: bool,
    },
}

/// Serves `io` until it closes or needs hyper.
pub(crate) async fn serve<I>(
    p: ConnParams<'_>,
    mut io: I,
    info: &ConnInfo,
    first_deadline: Instant,
) -> Ended<I>
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let shared = p.shared;
    let config = &shared.config;
    let facts = ConnFacts::new(shared, info.peer.ip(), info.tls);
    let mut buf = BytesMut::with_capacity(CLIENT_READ);
    let mut upstream_head = Vec::with_capacity(512);
    let mut client_head = Vec::with_capacity(512);
    let mut served = false;
    let mut lingering = false;
    let first_idle = crate::config::deadline_after(Instant::now(), config.client_idle_timeout);
    let idle = tokio::time::sleep_until(first_deadline.min(first_idle));
    tokio::pin!(idle);
    loop {
        let plan = loop {
            if !buf.is_empty() {
                let table = shared.table.load();
                match super::parse::plan_request(&buf, shared, &table, &facts, &mut upstream_head) {
                    Plan::Partial if buf.len() < config.max_header_bytes => {}
                    // Too large (431), unparsable or rare: hyper's answer.
                    Plan::Partial | Plan::Handoff => {
                        return Ended::Handoff {
                            io,
                            buffered: buf,
                            served,
                        };
                    }
                    plan => break plan,
                }
            }
            buf.reserve(CLIENT_READ);
            tokio::select! {
                biased;
                _ = p.cut.cancelled() => return Ended::Closed,
                read = io.read_buf(&mut buf) => match read {
                    Ok(0) | Err(_) => return Ended::Closed,
                    Ok(_) => {}
                },
                () = &mut idle => {
                    if !served && Instant::now() >= first_deadline {
                        shared.metrics.first_request_timeout();
                        tracing::debug!(peer = %info.peer, "no request head by the first request deadline; closing");
                    }
                    return Ended::Closed;
                }
                _ = p.graceful.cancelled(), if !lingering => {
                    // An idle connection that never sent a request closes
                    // now; one that has is served a moment longer, so a
                    // request already on its way is answered (with
                    // `Connection: close`), then closes.
                    if !served && buf.is_empty() {
                        return Ended::Closed;
                    }
                    lingering = true;
                    let until = Instant::now() + DRAIN_LINGER;
                    if until < idle.deadline() {
                        idle.as_mut().reset(until);
                    }
                }
            }
        };
        let keep_open = match plan {
            Plan::Forward(req) => {
                buf.advance(req.head_len);
                forward(&p, &mut io, req, &upstream_head, &mut client_head).await
            }
            Plan::NoRoute {
                head_len,
                request_id,
                client_close,
            } => {
                buf.advance(head_len);
                shared.metrics.rejected(ProxyFailure::NoRoute.reason());
                let resp = forward::local_response(ProxyFailure::NoRoute, &request_id, None);
                let close = client_close || p.graceful.is_cancelled();
                write_local(&mut io, resp, close, p.hsts, &mut client_head).await && !close
            }
            Plan::Partial | Plan::Handoff => false,
        };
        if !keep_open {
            let _ = tokio::time::timeout(DRAIN_LINGER, io.shutdown()).await;
            return Ended::Closed;
        }
        served = true;
        let next = crate::config::deadline_after(Instant::now(), config.client_idle_timeout);
        let at = if lingering {
            next.min(idle.deadline())
        } else {
            next
        };
        idle.as_mut().reset(at);
    }
}

/// Forwards one request and passes its answer on; false when the client
/// connection is to close after it.
async fn forward<I>(
    p: &ConnParams<'_>,
    io: &mut I,
    req: RequestPlan,
    head: &[u8],
    client_head: &mut Vec<u8>,
) -> bool
where
    I: AsyncRead + AsyncWrite + Unpin,
{
    let shared = p.shared;
    let config = &shared.config;
    let started = std::time::Instant::now();
    let service = &req.service;
    let choice = req.choice;
    if choice.forced {
        service.metrics.track(choice.track).forced();
    }
    let close = req.client_close || p.graceful.is_cancelled();
    let upstreams = service.track(choice.track);
    let Some(mut target) = balance::pick(upstreams, started, None).cloned() else {
        let resp = forward::failure(
            service,
            choice,
            None,
            ProxyFailure::NoInstance,
            &req.request_id,
        );
        return write_local(io, resp, close, p.hsts, client_head).await && !close;
    };
    let cookie = if choice.pin_cookie {
        service
            .spec
            .sticky_cookie
            .as_deref()
            .and_then(|name| headers::sticky_cookie(name, choice.track))
    } else {
        None
    };
    let extras = ResponseExtras {
        request_id: req.request_id.as_bytes(),
        set_cookie: cookie.as_ref().map(HeaderValue::as_bytes),
        hsts: p.hsts.map(HeaderValue::as_bytes),
        close,
        is_head: req.is_head,
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let guard = target.state.begin_request();
        let addr = target.instance.addr;
        let exchanged = tokio::select! {
            biased;
            _ = p.cut.cancelled() => return false,
            exchanged = tokio::time::timeout(
                config.response_header_timeout,
                exchange(shared, addr, head, &extras, client_head),
            ) => exchanged,
        };
        let failure_kind = match exchanged {
            Ok(Ok((mut conn, plan))) => {
                target.state.clear_suspect();
                let mut finish = Some(Finish {
                    guard,
                    started,
                    status: plan.status,
                    metrics: service.metrics.clone(),
                    track: choice.track,
                    broken: false,
                    forced: choice.forced,
                    client: Arc::default(),
                });
                let relayed = tokio::select! {
                    biased;
                    _ = p.cut.cancelled() => return false,
                    relayed = relay(io, client_head, &mut conn, plan.framing, &mut finish) => relayed,
                };
                return match relayed {
                    Relayed::Complete { clean } => {
                        if clean && plan.reusable {
                            shared.h1_pool.checkin(addr, conn);
                        }
                        !close && plan.framing != Framing::Close
                    }
                    Relayed::UpstreamBroke => {
                        tracing::debug!(instance = %target.instance.id, "instance broke off a response body");
                        if let Some(finish) = finish.as_mut() {
                            finish.broken = true;
                        }
                        false
                    }
                    Relayed::ClientGone => false,
                };
            }
            Ok(Err(Failed::Connect(e))) => {
                target
                    .state
                    .mark_suspect(std::time::Instant::now(), config.suspect_for);
                tracing::debug!(instance = %target.instance.id, error = %e, "connect to instance failed");
                ProxyFailure::Connect
            }
            Ok(Err(Failed::Switching)) => {
                tracing::debug!(instance = %target.instance.id, "instance answered 101 to a request without an allowed Upgrade");
                ProxyFailure::UnaskedUpgrade
            }
            Ok(Err(Failed::Upstream(why))) => {
                tracing::debug!(instance = %target.instance.id, error = %why, "instance failed before answering");
                ProxyFailure::Upstream
            }
            Err(_elapsed) => ProxyFailure::Timeout,
        };
        drop(guard);
        // As forward.rs: one retry, on another instance, for GET/HEAD that
        // failed before any response (not after a timeout).
        if req.retryable && attempt == 1 && !matches!(failure_kind, ProxyFailure::Timeout) {
            let now = std::time::Instant::now();
            let other = balance::pick(upstreams, now, Some(&target.instance.id)).cloned();
            let again = match other {
                Some(other) => Some(other),
                None if matches!(failure_kind, ProxyFailure::Upstream) => Some(target.clone()),
                None => None,
            };
            if let Some(next) = again {
                if !choice.forced {
                    target
                        .state
                        .record(now, crate::observe::Outcome::ProxyError);
                }
                target = next;
                continue;
            }
        }
        let resp = forward::failure(
            service,
            choice,
            Some(&target),
            failure_kind,
            &req.request_id,
        );
        return write_local(io, resp, close, p.hsts, client_head).await && !close;
    }
}

/// Why an upstream exchange gave no response head.
#[derive(Debug)]
enum Failed {
    Connect(std::io::Error),
    Upstream(std::borrow::Cow<'static, str>),
    /// 101 to a request that did not ask to switch.
    Switching,
}

/// Sends `head` to `addr` (on an idle connection when there is one) and
/// reads the response head; the client's head is written into `out`.
async fn exchange(
    shared: &Shared,
    addr: std::net::SocketAddr,
    head: &[u8],
    extras: &ResponseExtras<'_>,
    out: &mut Vec<u8>,
) -> Result<(UpstreamConn, ResponsePlan), Failed> {
    let config = &shared.config;
    let mut conn = match shared.h1_pool.checkout(addr) {
        Some(mut pooled) => {
            if pooled.stream.write_all(head).await.is_ok() {
                pooled
            } else {
                // The instance closed it while it idled: the request was not
                // sent, so a new connection carries it.
                let mut fresh = upstream::connect(addr, config.connect_timeout)
                    .await
                    .map_err(Failed::Connect)?;
                send(&mut fresh, head).await?;
                fresh
            }
        }
        None => {
            let mut fresh = upstream::connect(addr, config.connect_timeout)
                .await
                .map_err(Failed::Connect)?;
            send(&mut fresh, head).await?;
            fresh
        }
    };
    conn.buf.clear();
    loop {
        conn.buf.reserve(READ_CHUNK);
        match conn.stream.read_buf(&mut conn.buf).await {
            Ok(0) => {
                return Err(Failed::Upstream(
                    "the instance closed the connection".into(),
                ));
            }
            Ok(_) => {}
            Err(e) => return Err(Failed::Upstream(e.to_string().into())),
        }
        loop {
            match super::parse::plan_response(&conn.buf, extras, out) {
                Answer::Partial if conn.buf.len() > MAX_RESPONSE_HEAD => {
                    return Err(Failed::Upstream("response head too large".into()));
                }
                Answer::Partial => break,
                Answer::Interim(n) => {
                    conn.buf.advance(n);
                    if conn.buf.is_empty() {
                        break;
                    }
                }
                Answer::Switching => return Err(Failed::Switching),
                Answer::Invalid => return Err(Failed::Upstream("invalid response head".into())),
                Answer::Complete(plan) => {
                    conn.buf.advance(plan.head_len);
                    return Ok((conn, plan));
                }
            }
        }
    }
}

async fn send(conn: &mut UpstreamConn, head: &[u8]) -> Result<(), Failed> {
    conn.stream
        .write_all(head)
        .await
        .map_err(|e| Failed::Upstream(e.to_string().into()))
}

/// Writes a response the proxy made; false when the client is gone.
async fn write_local<I>(
    io: &mut I,
    resp: Response<ResponseBody>,
    close: bool,
    hsts: Option<&HeaderValue>,
    out: &mut Vec<u8>,
) -> bool
where
    I: AsyncWrite + Unpin,
{
    let status = resp.status();
    let body = resp.body().text_bytes().cloned().unwrap_or_default();
    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    out.extend_from_slice(status.as_str().as_bytes());
    out.push(b' ');
    out.extend_from_slice(status.canonical_reason().unwrap_or("").as_bytes());
    out.extend_from_slice(b"\r\n");
    for (name, value) in resp.headers() {
        out.extend_from_slice(name.as_str().as_bytes());
        out.extend_from_slice(b": ");
        out.extend_from_slice(value.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(hsts) = hsts
        && !resp
            .headers()
            .contains_key(http::header::STRICT_TRANSPORT_SECURITY)
    {
        out.extend_from_slice(b"strict-transport-security: ");
        out.extend_from_slice(hsts.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    out.extend_from_slice(b"content-length: ");
    out.extend_from_slice(body.len().to_string().as_bytes());
    out.extend_from_slice(b"\r\n");
    super::date::put(out);
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    write_two(io, out, &body).await.is_ok() && io.flush().await.is_ok()
}
