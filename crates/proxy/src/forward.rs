//! Forwarding one request: answer a pending ACME HTTP-01 challenge, settle
//! the request's one host, route it to a service, choose track and instance,
//! clean its headers, send it upstream on a pooled connection, retry an
//! idempotent body-less request once on another instance, and turn failures
//! into the proxy's own answers (400 / 404 / 408 / 413 / 502 / 503 / 504) that
//! name the request id. A service with no instance on either track is answered
//! 503 with `Retry-After` at once (its instances are down or being replaced);
//! an instance that fails is 502 or 504.
//!
//! A failure is charged to the instance only when it is the instance's: a
//! request whose body the client broke, cut short, sent too slowly or made too
//! large is answered by the proxy and recorded as a client fault, outside the
//! error rate the canary analysis reads.

use std::borrow::Cow;
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
use crate::balance::{self, TrackChoice};
use crate::body::{ClientBody, ClientFaultKind, ClientState, Finish, ResponseBody};
use crate::forwarded;
use crate::headers;
use crate::host::{self, HostError};
use crate::observe::Outcome;
use crate::table::{ServiceEntry, Upstream};
use crate::track_override;
use crate::upgrade::{self, ListenerCtx};

/// Body type sent upstream: the client's, streamed, or empty for a retryable request.
pub(crate) type UpstreamBody = Either<ClientBody, Empty<Bytes>>;
/// The pooled HTTP/1.1 client to upstreams.
pub(crate) type UpstreamClient = Client<HttpConnector, UpstreamBody>;

/// `Retry-After` of a 503 for a service with no instance: a restarted
/// instance is usually back within a second or two.
const RETRY_AFTER_SECONDS: &str = "1";

/// Why the proxy answered by itself.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ProxyFailure {
    NoRoute,
    NoInstance,
    Connect,
    Upstream,
    Timeout,
    /// The instance answered 101 to a request that did not ask to switch.
    UnaskedUpgrade,
    /// The request's host is missing, repeated or ambiguous.
    BadHost(HostError),
    /// The client's body broke, was too large or too slow.
    Client(ClientFaultKind),
}

impl ProxyFailure {
    fn status(self) -> StatusCode {
        match self {
            ProxyFailure::NoRoute => StatusCode::NOT_FOUND,
            ProxyFailure::NoInstance => StatusCode::SERVICE_UNAVAILABLE,
            ProxyFailure::Connect | ProxyFailure::Upstream | ProxyFailure::UnaskedUpgrade => {
                StatusCode::BAD_GATEWAY
            }
            ProxyFailure::Timeout => StatusCode::GATEWAY_TIMEOUT,
            ProxyFailure::BadHost(_)
            | ProxyFailure::Client(ClientFaultKind::BadBody | ClientFaultKind::UpgradeRefused) => {
                StatusCode::BAD_REQUEST
            }
            ProxyFailure::Client(ClientFaultKind::TooLarge) => StatusCode::PAYLOAD_TOO_LARGE,
            ProxyFailure::Client(ClientFaultKind::SlowBody) => StatusCode::REQUEST_TIMEOUT,
        }
    }

    /// Label value for the errors metric.
    pub(crate) fn reason(self) -> &'static str {
        match self {
            ProxyFailure::NoRoute => "no_route",
            ProxyFailure::NoInstance => "no_instance",
            ProxyFailure::Connect => "connect",
            ProxyFailure::Upstream => "upstream",
            ProxyFailure::Timeout => "timeout",
            ProxyFailure::UnaskedUpgrade => "unasked_upgrade",
            ProxyFailure::BadHost(_) => "bad_host",
            ProxyFailure::Client(kind) => kind.reason(),
        }
    }

    fn explain(self) -> Cow<'static, str> {
        Cow::Borrowed(match self {
            ProxyFailure::NoRoute => "no route for this host and path",
            ProxyFailure::NoInstance => "no healthy instance; retry shortly",
            ProxyFailure::Connect => "could not connect to an instance",
            ProxyFailure::Upstream => "the instance closed the connection without answering",
            ProxyFailure::Timeout => "the instance did not answer in time",
            ProxyFailure::UnaskedUpgrade => {
                "the instance switched protocols on a request that did not ask to"
            }
            ProxyFailure::BadHost(e) => return Cow::Owned(e.to_string()),
            ProxyFailure::Client(ClientFaultKind::BadBody) => {
                "the request body was malformed or cut short; send it again whole"
            }
            ProxyFailure::Client(ClientFaultKind::TooLarge) => {
                "the request body is larger than this service accepts"
            }
            ProxyFailure::Client(ClientFaultKind::SlowBody) => {
                "the request body arrived too slowly; send it without pauses"
            }
            ProxyFailure::Client(ClientFaultKind::UpgradeRefused) => {
                "switching to the Upgrade protocol asked for is not allowed"
            }
        })
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

    // The host routed on is exactly the host the app receives.
    let host = match host::request_host(req.version(), req.uri(), req.headers()) {
        Ok(host) => host,
        Err(e) => {
            tracing::debug!(
                peer = %conn.peer,
                request_id = request_id.to_str().unwrap_or("?"),
                reason = %e,
                "refused a request with a bad host"
            );
            let failure = ProxyFailure::BadHost(e);
            shared.metrics.rejected(failure.reason());
            let mut resp = local_response(failure, &request_id, None);
            if req.version() <= Version::HTTP_11 {
                // The connection's framing is not to be trusted any more.
                resp.headers_mut()
                    .insert(header::CONNECTION, HeaderValue::from_static("close"));
            }
            return resp;
        }
    };
    let table = shared.table.load_full();
    let Some(service) = table
        .route(host.as_deref().map(headers::hostname), req.uri().path())
        .cloned()
    else {
        shared.metrics.rejected(ProxyFailure::NoRoute.reason());
        return local_response(ProxyFailure::NoRoute, &request_id, None);
    };

    let peer = conn.peer.ip();
    let forced =
        track_override::forced_track(shared.config.track_override.as_ref(), req.headers(), peer);
    track_override::strip(req.headers_mut());
    let choice = balance::choose_track(&service, forced, req.headers());
    if choice.forced {
        service.metrics.track(choice.track).forced();
    }

    let limit = service
        .spec
        .max_request_body
        .unwrap_or(shared.config.max_request_body);
    if req.body().size_hint().lower() > limit {
        // Content-Length says too much: refused without contacting the app.
        return client_fault(
            &service,
            choice,
            None,
            ClientFaultKind::TooLarge,
            &request_id,
        );
    }

    let asked_upgrade = req.headers().contains_key(header::UPGRADE);
    let upgrade = req.version() == Version::HTTP_11
        && headers::wants_upgrade(req.headers())
        && headers::upgrade_allowed(req.headers(), &service.spec);
    let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));

    let (mut parts, body) = req.into_parts();
    // Removes `Upgrade` too unless the protocol is allowed: `h2c` and the like
    // go upstream as ordinary requests.
    headers::strip_hop_by_hop(&mut parts.headers, upgrade);
    parts.headers.remove(header::HOST);
    if let Some(h) = host.as_deref().and_then(|h| HeaderValue::from_str(h).ok()) {
        parts.headers.insert(header::HOST, h);
    }
    forwarded::apply(
        &mut parts.headers,
        &forwarded::Seen {
            peer,
            proto: if conn.tls { "https" } else { "http" },
            host: host.as_deref(),
        },
        forwarded::is_trusted(peer, &shared.config.trusted_proxies),
    );
    let path = parts
        .uri
        .path_and_query()
        .cloned()
        .unwrap_or_else(|| PathAndQuery::from_static("/"));
    let retryable = (parts.method == Method::GET || parts.method == Method::HEAD)
        && body.is_end_stream()
        && !upgrade;
    let client_state = Arc::new(ClientState::default());
    let mut body = if retryable {
        Some(Either::Right(Empty::new()))
    } else {
        Some(Either::Left(ClientBody::new(
            body,
            limit,
            client_state.clone(),
        )))
    };

    let upstreams = service.track(choice.track);
    let now = Instant::now();
    let Some(mut target) = balance::pick(upstreams, now, None).cloned() else {
        return failure(
            &service,
            choice,
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
            Ok(Ok(resp)) if resp.status() == StatusCode::SWITCHING_PROTOCOLS && !upgrade => {
                // Never pass on a switch that was not allowed (an `h2c`
                // request whose Upgrade was removed, say): the connection
                // would carry a protocol the proxy does not speak.
                tracing::debug!(instance = %target.instance.id, "instance answered 101 to a request without an allowed Upgrade");
                drop(resp);
                if asked_upgrade {
                    // The client asked for it: not the instance's error.
                    return client_fault(
                        &service,
                        choice,
                        Some(&target),
                        ClientFaultKind::UpgradeRefused,
                        &request_id,
                    );
                }
                ProxyFailure::UnaskedUpgrade
            }
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
                    forced: choice.forced,
                    client: client_state,
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
                if let Some(fault) = client_state.fault() {
                    // The request body broke on the client's side, and the
                    // upstream exchange with it: not the instance's fault.
                    tracing::debug!(instance = %target.instance.id, error = %e, "client's request body failed");
                    return client_fault(&service, choice, Some(&target), fault, &request_id);
                }
                tracing::debug!(instance = %target.instance.id, error = %e, "instance failed before answering");
                ProxyFailure::Upstream
            }
            Err(_elapsed) => {
                if client_state.stalled_by_client() {
                    client_state.set_fault(ClientFaultKind::SlowBody);
                    return client_fault(
                        &service,
                        choice,
                        Some(&target),
                        ClientFaultKind::SlowBody,
                        &request_id,
                    );
                }
                ProxyFailure::Timeout
            }
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
                if !choice.forced {
                    target.state.record(Instant::now(), Outcome::ProxyError);
                }
                target = next;
                body = Some(Either::Right(Empty::new()));
                continue;
            }
        }
        return failure(&service, choice, Some(&target), failure_kind, &request_id);
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
pub(crate) fn failure(
    service: &ServiceEntry,
    choice: TrackChoice,
    target: Option<&Arc<Upstream>>,
    kind: ProxyFailure,
    request_id: &HeaderValue,
) -> Response<ResponseBody> {
    let track = choice.track;
    if let Some(target) = target
        && !choice.forced
    {
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

/// Records a request that failed by the client's fault (never as an error of
/// the instance or track) and answers it.
pub(crate) fn client_fault(
    service: &ServiceEntry,
    choice: TrackChoice,
    target: Option<&Arc<Upstream>>,
    kind: ClientFaultKind,
    request_id: &HeaderValue,
) -> Response<ResponseBody> {
    if let Some(target) = target
        && !choice.forced
    {
        target.state.record(Instant::now(), Outcome::ClientFault);
    }
    let failure = ProxyFailure::Client(kind);
    let metrics = service.metrics.track(choice.track);
    metrics.count(failure.status().as_u16());
    metrics.client_fault(kind.reason());
    tracing::debug!(
        service = %service.name,
        track = %choice.track,
        instance = target.map(|t| t.instance.id.as_str()),
        request_id = request_id.to_str().unwrap_or("?"),
        reason = kind.reason(),
        "client fault; proxy answered {}",
        failure.status().as_u16()
    );
    local_response(failure, request_id, Some(&service.name))
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
pub(crate) fn local_response(
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
    if matches!(kind, ProxyFailure::NoInstance) {
        // Answered at once, never held: the client (or a CDN in front) comes
        // back when the runtime has put an instance in the table again.
        h.insert(
            header::RETRY_AFTER,
            HeaderValue::from_static(RETRY_AFTER_SECONDS),
        );
    }
    resp
}
