//! Forwarding one request: route it to a service, choose track and instance,
//! clean its headers, send it upstream on a pooled connection, retry an
//! idempotent body-less request once on another instance, and turn failures
//! into the proxy's own 502 / 504 answers that name the request id.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::Bytes;
use http::header::{self, HeaderValue};
use http::uri::{PathAndQuery, Scheme};
use http::{Method, Request, Response, StatusCode, Uri, Version};
use http_body::Body;
use http_body_util::{Either, Empty};
use hyper::body::Incoming;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;

use crate::Shared;
use crate::balance;
use crate::body::{Finish, ResponseBody};
use crate::headers;
use crate::observe::Outcome;
use crate::table::{ServiceEntry, Track, Upstream};
use crate::upgrade::{self, ListenerCtx};

/// Body type sent upstream: the client's, streamed, or empty for a retryable request.
pub(crate) type UpstreamBody = Either<Incoming, Empty<Bytes>>;
/// The pooled HTTP/1.1 client to upstreams.
pub(crate) type UpstreamClient = Client<HttpConnector, UpstreamBody>;

/// Why the proxy answered by itself.
#[derive(Debug, Clone, Copy)]
enum ProxyFailure {
    NoRoute,
    NoInstance,
    Connect,
    Upstream,
    Timeout,
}

impl ProxyFailure {
    fn status(self) -> StatusCode {
        match self {
            ProxyFailure::NoRoute => StatusCode::NOT_FOUND,
            ProxyFailure::NoInstance | ProxyFailure::Connect | ProxyFailure::Upstream => {
                StatusCode::BAD_GATEWAY
            }
            ProxyFailure::Timeout => StatusCode::GATEWAY_TIMEOUT,
        }
    }

    /// Label value for the errors metric.
    fn reason(self) -> &'static str {
        match self {
            ProxyFailure::NoRoute => "no_route",
            ProxyFailure::NoInstance => "no_instance",
            ProxyFailure::Connect => "connect",
            ProxyFailure::Upstream => "upstream",
            ProxyFailure::Timeout => "timeout",
        }
    }

    fn explain(self) -> &'static str {
        match self {
            ProxyFailure::NoRoute => "no route for this host and path",
            ProxyFailure::NoInstance => "no healthy instance",
            ProxyFailure::Connect => "could not connect to an instance",
            ProxyFailure::Upstream => "the instance closed the connection without answering",
            ProxyFailure::Timeout => "the instance did not answer in time",
        }
    }
}

/// What the proxy knows about the client connection a request came on.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ConnInfo {
    /// The TCP peer (the client, or a proxy in front).
    pub(crate) peer: SocketAddr,
    /// True on a TLS listener: `X-Forwarded-Proto: https`.
    pub(crate) tls: bool,
}

/// Handles one client request from start to response headers.
pub(crate) async fn handle(
    shared: &Shared,
    mut req: Request<Incoming>,
    conn: &ConnInfo,
    ctx: &ListenerCtx,
) -> Response<ResponseBody> {
    let started = Instant::now();
    let request_id = headers::ensure_request_id(req.headers_mut());
    if req.method() == Method::GET
        && !shared.http01.is_empty()
        && let Some(key_authorization) = shared.http01.answer(req.uri().path())
    {
        return http01_response(key_authorization, &request_id);
    }
    let table = shared.table.load_full();

    let host = headers::host_of(req.uri(), req.headers()).map(str::to_owned);
    let Some(service) = table
        .route(host.as_deref().map(headers::hostname), req.uri().path())
        .cloned()
    else {
        return local_response(ProxyFailure::NoRoute, &request_id, None);
    };
    let choice = balance::choose_track(&service, req.headers());

    let upgrade = req.version() == Version::HTTP_11 && headers::wants_upgrade(req.headers());
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    headers::set_forwarded(
        &mut parts.headers,
        conn.peer.ip(),
        if conn.tls { "https" } else { "http" },
        host.as_deref(),
    );
    if !parts.headers.contains_key(header::HOST)
        && let Some(h) = host.as_deref().and_then(|h| HeaderValue::from_str(h).ok())
    {
        parts.headers.insert(header::HOST, h);
    }
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let retryable = (parts.method == Method::GET || parts.method == Method::HEAD)
        && body.is_end_stream()
        && !upgrade;
    let mut body = if retryable {
        Some(Either::Right(Empty::new()))
    } else {
        Some(Either::Left(body))
    };

    let upstreams = service.track(choice.track);
    let now = Instant::now();
    let Some(mut target) = balance::pick(upstreams, now, None).cloned() else {
        return failure(
            &service,
            choice.track,
            None,
            ProxyFailure::NoInstance,
            &request_id,
        );
    };
    let mut attempt = 0;
    loop {
        attempt += 1;
        let guard = target.state.begin_request();
        let mut upstream_req =
            Request::new(body.take().unwrap_or_else(|| Either::Right(Empty::new())));
        *upstream_req.method_mut() = parts.method.clone();
        *upstream_req.uri_mut() = upstream_uri(&target, &path);
        *upstream_req.version_mut() = Version::HTTP_11;
        *upstream_req.headers_mut() = parts.headers.clone();

        let sent = tokio::time::timeout(
            shared.config.response_header_timeout,
            shared.client.request(upstream_req),
        )
        .await;
        let failure_kind = match sent {
            Ok(Ok(mut resp)) => {
                target.state.clear_suspect();
                let status = resp.status();
                if status == StatusCode::SWITCHING_PROTOCOLS
                    && let Some(client_upgrade) = client_upgrade
                {
                    let upstream_upgrade = hyper::upgrade::on(&mut resp);
                    upgrade::spawn_tunnel(ctx, &target.state, client_upgrade, upstream_upgrade);
                    headers::strip_hop_by_hop(resp.headers_mut(), true);
                } else {
                    headers::strip_hop_by_hop(resp.headers_mut(), false);
                }
                let (mut resp_parts, resp_body) = resp.into_parts();
                headers::set_request_id(&mut resp_parts.headers, &request_id);
                if choice.pin_cookie
                    && let Some(cookie_name) = service.spec.sticky_cookie.as_deref()
                    && let Some(cookie) = headers::sticky_cookie(cookie_name, choice.track)
                {
                    resp_parts.headers.append(header::SET_COOKIE, cookie);
                }
                let finish = Finish {
                    guard,
                    started,
                    status: status.as_u16(),
                    metrics: service.metrics.clone(),
                    track: choice.track,
                    broken: false,
                };
                return Response::from_parts(resp_parts, ResponseBody::upstream(resp_body, finish));
            }
            Ok(Err(e)) if e.is_connect() => {
                target
                    .state
                    .mark_suspect(Instant::now(), shared.config.suspect_for);
                tracing::debug!(instance = %target.instance.id, error = %e, "connect to instance failed");
                ProxyFailure::Connect
            }
            Ok(Err(e)) => {
                tracing::debug!(instance = %target.instance.id, error = %e, "instance failed before answering");
                ProxyFailure::Upstream
            }
            Err(_elapsed) => ProxyFailure::Timeout,
        };
        drop(guard);
        // One retry, on another instance, for GET/HEAD without a body that
        // failed before any response (a timeout may have had effects: no retry).
        if retryable && attempt == 1 && !matches!(failure_kind, ProxyFailure::Timeout) {
            let other =
                balance::pick(upstreams, Instant::now(), Some(&target.instance.id)).cloned();
            let again = match other {
                Some(other) => Some(other),
                // A lone instance that did not refuse the connection may have
                // closed a stale pooled connection: worth one more try.
                None if matches!(failure_kind, ProxyFailure::Upstream) => Some(target.clone()),
                None => None,
            };
            if let Some(next) = again {
                target.state.record(Instant::now(), Outcome::ProxyError);
                target = next;
                body = Some(Either::Right(Empty::new()));
                continue;
            }
        }
        return failure(
            &service,
            choice.track,
            Some(&target),
            failure_kind,
            &request_id,
        );
    }
}

fn upstream_uri(target: &Upstream, path: &PathAndQuery) -> Uri {
    let mut parts = http::uri::Parts::default();
    parts.scheme = Some(Scheme::HTTP);
    parts.authority = Some(target.authority.clone());
    parts.path_and_query = Some(path.clone());
    Uri::from_parts(parts).expect("scheme, authority and path make a valid URI")
}

/// Records a proxy-made failure and answers it.
fn failure(
    service: &ServiceEntry,
    track: Track,
    target: Option<&Arc<Upstream>>,
    kind: ProxyFailure,
    request_id: &HeaderValue,
) -> Response<ResponseBody> {
    if let Some(target) = target {
        target.state.record(Instant::now(), Outcome::ProxyError);
    }
    let metrics = service.metrics.track(track);
    metrics.count(kind.status().as_u16());
    metrics.proxy_error(kind.reason());
    tracing::warn!(
        service = %service.name,
        track = %track,
        instance = target.map(|t| t.instance.id.as_str()),
        request_id = request_id.to_str().unwrap_or("?"),
        reason = kind.reason(),
        "proxy answered {}",
        kind.status().as_u16()
    );
    local_response(kind, request_id, Some(&service.name))
}

/// The answer to a pending ACME HTTP-01 challenge.
fn http01_response(key_authorization: String, request_id: &HeaderValue) -> Response<ResponseBody> {
    let mut resp = Response::new(ResponseBody::text(key_authorization));
    let h = resp.headers_mut();
    h.insert(header::CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    headers::set_request_id(h, request_id);
    resp
}

/// A short text response made by the proxy, naming the request id.
fn local_response(
    kind: ProxyFailure,
    request_id: &HeaderValue,
    service: Option<&str>,
) -> Response<ResponseBody> {
    let status = kind.status();
    let id = request_id.to_str().unwrap_or("-");
    let text = match service {
        Some(s) => format!(
            "{} {}: {} for service {s} (request id {id})\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            kind.explain()
        ),
        None => format!(
            "{} {}: {} (request id {id})\n",
            status.as_u16(),
            status.canonical_reason().unwrap_or(""),
            kind.explain()
        ),
    };
    let mut resp = Response::new(ResponseBody::text(text));
    *resp.status_mut() = status;
    let h = resp.headers_mut();
    h.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    headers::set_request_id(h, request_id);
    resp
}
