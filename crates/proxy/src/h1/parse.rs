//! Request and response heads of the HTTP/1 fast path: parsed in place with
//! `httparse`, checked against what the fast path handles, routed, and
//! rewritten straight into the bytes sent on — no `HeaderMap`, no `Request`.
//!
//! The rewrite is the one `forward.rs` and `headers.rs` do on a `HeaderMap`:
//! hop-by-hop headers and the ones `Connection` names removed, `Host` set to
//! the one checked host, the track override headers removed, `X-Request-Id`
//! kept or created, and the forwarding headers of `forwarded.rs` (the same
//! contract: replaced for an untrusted peer, appended to for a trusted one).
//!
//! A request the fast path does not handle is *handed off* before anything
//! is sent anywhere: the connection, with the bytes read so far, goes to
//! hyper (see `conn.rs`). That covers every rare or refused case with
//! hyper's exact answer: HTTP/1.0, absolute-form and `*` targets, `CONNECT`,
//! request bodies, `Upgrade`, `Expect`, a missing, repeated or invalid
//! `Host` (400), pending ACME HTTP-01 answers, heads that do not parse.

use std::sync::Arc;

use http::StatusCode;

use crate::Shared;
use crate::balance::{self, TrackChoice};
use crate::forwarded;
use crate::headers;
use crate::host;
use crate::table::{RouteTable, ServiceEntry};
use crate::track_override;

/// Most headers a head may have (hyper's default); more: handed off.
pub(crate) const MAX_HEADERS: usize = 100;

/// Longest client-sent request id kept as is (as `headers.rs`).
const MAX_REQUEST_ID_LEN: usize = 200;

/// What a connection knows once, for every request it carries.
#[derive(Debug)]
pub(crate) struct ConnFacts {
    /// The peer as the forwarding headers write it (`to_canonical`).
    pub(crate) peer_text: String,
    /// `for=<peer>;proto=<scheme>`, the start of this hop's `Forwarded` element.
    pub(crate) forwarded_base: String,
    /// `http` or `https`.
    pub(crate) proto: &'static str,
    /// The peer is one of `trusted_proxies`.
    pub(crate) trusted: bool,
    /// The TCP peer.
    pub(crate) peer: std::net::IpAddr,
}

impl ConnFacts {
    pub(crate) fn new(shared: &Shared, peer: std::net::IpAddr, tls: bool) -> ConnFacts {
        let canonical = peer.to_canonical();
        let proto = if tls { "https" } else { "http" };
        ConnFacts {
            peer_text: canonical.to_string(),
            forwarded_base: forwarded::forwarded_element(canonical, proto, None),
            proto,
            trusted: forwarded::is_trusted(peer, &shared.config.trusted_proxies),
            peer,
        }
    }
}

/// A request the fast path forwards.
#[derive(Debug)]
pub(crate) struct RequestPlan {
    /// Bytes of the client's head (consumed once the plan is made).
    pub(crate) head_len: usize,
    pub(crate) service: Arc<ServiceEntry>,
    pub(crate) choice: TrackChoice,
    pub(crate) request_id: http::HeaderValue,
    /// `HEAD`: the response has no body whatever its headers say.
    pub(crate) is_head: bool,
    /// `GET` or `HEAD` (the fast path carries no request body): retried once
    /// on another instance when the upstream fails before answering.
    pub(crate) retryable: bool,
    /// The client sent `Connection: close`.
    pub(crate) client_close: bool,
}

/// What to do with the bytes a client has sent so far.
#[derive(Debug)]
pub(crate) enum Plan {
    /// The head is not complete yet.
    Partial,
    /// Forward it; the upstream head is in `out`.
    Forward(RequestPlan),
    /// No route: answered 404 by the fast path.
    NoRoute {
        head_len: usize,
        request_id: http::HeaderValue,
        client_close: bool,
    },
    /// Not for the fast path: hyper serves the connection from here on.
    Handoff,
}

/// One parsed header's name compared case-insensitively.
fn is(name: &str, want: &str) -> bool {
    name.eq_ignore_ascii_case(want)
}

/// True when any `Connection` value lists `token`.
fn lists(values: &[&[u8]], token: &str) -> bool {
    values.iter().any(|v| {
        v.split(|&b| b == b',')
            .any(|t| t.trim_ascii().eq_ignore_ascii_case(token.as_bytes()))
    })
}

/// Hop-by-hop headers that never cross the proxy (as `headers.rs`), `Upgrade`
/// included (the fast path never switches protocols).
fn hop_by_hop(name: &str) -> bool {
    [
        "connection",
        "keep-alive",
        "proxy-connection",
        "proxy-authenticate",
        "proxy-authorization",
        "te",
        "trailer",
        "transfer-encoding",
        "upgrade",
    ]
    .iter()
    .any(|h| is(name, h))
}

fn put_header(out: &mut Vec<u8>, name: &[u8], value: &[u8]) {
    out.extend_from_slice(name);
    out.extend_from_slice(b": ");
    out.extend_from_slice(value);
    out.extend_from_slice(b"\r\n");
}

/// A request id the client sent that is kept: short printable ASCII.
fn usable_request_id(v: &[u8]) -> bool {
    !v.is_empty()
        && v.len() <= MAX_REQUEST_ID_LEN
        && v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b))
}

/// The common `Host`, checked without parsing an `Authority`: a name of
/// letters, digits, `-` and `.` (not starting with `.` or `-`), with an
/// optional port of 1–5 digits that fits a `u16`. `None` for anything else,
/// which `host::valid_authority` then decides.
fn plain_host(value: &[u8]) -> Option<String> {
    let (name, port) = match value.iter().position(|&b| b == b':') {
        Some(i) => (&value[..i], Some(&value[i + 1..])),
        None => (value, None),
    };
    let name_ok = name.first().is_some_and(|b| b.is_ascii_alphanumeric())
        && name
            .iter()
            .all(|&b| b.is_ascii_alphanumeric() || b == b'-' || b == b'.');
    let port_ok = port.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 5
            && p.iter().all(u8::is_ascii_digit)
            && std::str::from_utf8(p).is_ok_and(|p| p.parse::<u16>().is_ok())
    });
    if !(name_ok && port_ok) {
        return None;
    }
    String::from_utf8(value.to_vec()).ok()
}

/// Parses the head at the start of `buf` and, when the fast path forwards
/// it, writes the upstream head into `out` (cleared first).
pub(crate) fn plan_request(
    buf: &[u8],
    shared: &Shared,
    table: &RouteTable,
    conn: &ConnFacts,
    out: &mut Vec<u8>,
) -> Plan {
    // Left uninitialised: httparse writes the ones it fills.
    let mut slots = [const { std::mem::MaybeUninit::uninit() }; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut []);
    let head_len = match req.parse_with_uninit_headers(buf, &mut slots) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Plan::Partial,
        Err(_) => return Plan::Handoff,
    };
    let (Some(method), Some(target), Some(1)) = (req.method, req.path, req.version) else {
        return Plan::Handoff;
    };
    if !target.starts_with('/') || method == "CONNECT" {
        return Plan::Handoff;
    }
    let path = target.split_once('?').map_or(target, |(p, _)| p);
    if method == "GET" && !shared.http01.is_empty() && path.starts_with(crate::HTTP01_PATH_PREFIX) {
        return Plan::Handoff;
    }

    // One pass: what decides the plan.
    let mut host: Option<&[u8]> = None;
    let mut hosts = 0;
    let mut connection: Vec<&[u8]> = Vec::new();
    let mut track: Option<&[u8]> = None;
    let mut secret: Option<&[u8]> = None;
    let mut sent_id: Option<&[u8]> = None;
    let mut has_cookie = false;
    for h in req.headers.iter() {
        let name = h.name;
        match name.len() {
            4 if is(name, "host") => {
                hosts += 1;
                host = Some(h.value);
            }
            10 if is(name, "connection") => connection.push(h.value),
            // A request body: hyper's path streams it.
            14 if is(name, "content-length") && h.value.trim_ascii() != b"0" => {
                return Plan::Handoff;
            }
            17 if is(name, "transfer-encoding") => return Plan::Handoff,
            7 if is(name, "upgrade") => return Plan::Handoff,
            6 if is(name, "expect") => return Plan::Handoff,
            6 if is(name, "cookie") => has_cookie = true,
            15 if is(name, track_override::TRACK_HEADER) => {
                track = track.or(Some(h.value));
            }
            22 if is(name, track_override::TRACK_SECRET_HEADER) => {
                secret = secret.or(Some(h.value));
            }
            12 if is(name, headers::REQUEST_ID_HEADER) => {
                sent_id = sent_id.or(Some(h.value));
            }
            _ => {}
        }
    }
    // A missing, repeated or invalid host: hyper's path answers 400 and closes.
    let (1, Some(host)) = (hosts, host) else {
        return Plan::Handoff;
    };
    let Some(host) = plain_host(host).or_else(|| host::valid_authority(host).ok()) else {
        return Plan::Handoff;
    };
    let client_close = lists(&connection, "close");
    let keep_id = sent_id.filter(|v| usable_request_id(v));
    let request_id = match keep_id.and_then(|v| http::HeaderValue::from_bytes(v).ok()) {
        Some(id) => id,
        None => headers::new_request_id(),
    };

    let Some(service) = table.route(Some(headers::hostname(&host)), path).cloned() else {
        return Plan::NoRoute {
            head_len,
            request_id,
            client_close,
        };
    };
    let forced = track_override::forced_track_raw(
        shared.config.track_override.as_ref(),
        track,
        secret,
        conn.peer,
    );
    let choice = balance::choose_track_by(&service, forced, |name| {
        if !has_cookie {
            return None;
        }
        headers::cookie_track_in(
            req.headers
                .iter()
                .filter(|h| is(h.name, "cookie"))
                .map(|h| h.value),
            name,
        )
    });

    // The upstream head.
    out.clear();
    out.extend_from_slice(method.as_bytes());
    out.push(b' ');
    out.extend_from_slice(target.as_bytes());
    out.extend_from_slice(b" HTTP/1.1\r\n");
    put_header(out, b"host", host.as_bytes());
    let mut xff: Vec<&[u8]> = Vec::new();
    let mut fwd: Vec<&[u8]> = Vec::new();
    let (mut has_proto, mut has_xhost, mut has_real_ip) = (false, false, false);
    for h in req.headers.iter() {
        let name = h.name;
        if hop_by_hop(name)
            || is(name, "host")
            || is(name, track_override::TRACK_HEADER)
            || is(name, track_override::TRACK_SECRET_HEADER)
            || (keep_id.is_none() && is(name, headers::REQUEST_ID_HEADER))
            || (!connection.is_empty() && lists(&connection, name))
        {
            continue;
        }
        if is(name, "x-forwarded-for") {
            xff.push(h.value);
            continue;
        }
        if is(name, "forwarded") {
            fwd.push(h.value);
            continue;
        }
        let forwarding = if is(name, "x-forwarded-proto") {
            Some(&mut has_proto)
        } else if is(name, "x-forwarded-host") {
            Some(&mut has_xhost)
        } else if is(name, "x-real-ip") {
            Some(&mut has_real_ip)
        } else {
            None
        };
        if let Some(seen) = forwarding {
            if !conn.trusted {
                continue;
            }
            *seen = true;
        }
        put_header(out, name.as_bytes(), h.value);
    }
    if keep_id.is_none() {
        put_header(out, b"x-request-id", request_id.as_bytes());
    }
    write_forwarding(
        out,
        conn,
        &host,
        &xff,
        &fwd,
        [has_proto, has_xhost, has_real_ip],
    );
    out.extend_from_slice(b"\r\n");

    Plan::Forward(RequestPlan {
        head_len,
        service,
        choice,
        request_id,
        is_head: method == "HEAD",
        retryable: method == "GET" || method == "HEAD",
        client_close,
    })
}

/// The forwarding headers of `forwarded.rs`, written: for a trusted peer,
/// `X-Forwarded-For` and `Forwarded` joined and appended to, the other three
/// set when absent (`present`); for anyone else, all five as the proxy saw it.
fn write_forwarding(
    out: &mut Vec<u8>,
    conn: &ConnFacts,
    host: &str,
    xff: &[&[u8]],
    fwd: &[&[u8]],
    present: [bool; 3],
) {
    let trusted = conn.trusted;
    let joined = |out: &mut Vec<u8>, name: &[u8], prior: &[&[u8]], last: &dyn Fn(&mut Vec<u8>)| {
        out.extend_from_slice(name);
        out.extend_from_slice(b": ");
        if trusted {
            for p in prior
                .iter()
                .map(|p| p.trim_ascii())
                .filter(|p| !p.is_empty())
            {
                out.extend_from_slice(p);
                out.extend_from_slice(b", ");
            }
        }
        last(out);
        out.extend_from_slice(b"\r\n");
    };
    joined(out, b"x-forwarded-for", xff, &|o| {
        o.extend_from_slice(conn.peer_text.as_bytes())
    });
    joined(out, b"forwarded", fwd, &|o| {
        o.extend_from_slice(conn.forwarded_base.as_bytes());
        o.extend_from_slice(b";host=");
        forwarded::quote_into(o, host);
    });
    let [has_proto, has_xhost, has_real_ip] = present;
    if !(trusted && has_proto) {
        put_header(out, b"x-forwarded-proto", conn.proto.as_bytes());
    }
    if !(trusted && has_xhost) {
        put_header(out, b"x-forwarded-host", host.as_bytes());
    }
    if !(trusted && has_real_ip) {
        put_header(out, b"x-real-ip", conn.peer_text.as_bytes());
    }
}

/// How a response body is delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Framing {
    /// No body (`HEAD`, 204, 304).
    Empty,
    /// `Content-Length`.
    Length(u64),
    /// `Transfer-Encoding: chunked`, passed on as it came.
    Chunked,
    /// Until the upstream closes; the client connection closes after it.
    Close,
}

/// A response head the fast path passes on.
#[derive(Debug)]
pub(crate) struct ResponsePlan {
    pub(crate) head_len: usize,
    pub(crate) status: u16,
    pub(crate) framing: Framing,
    /// The upstream connection may carry another request after this one.
    pub(crate) reusable: bool,
}

/// What an upstream has answered so far.
#[derive(Debug)]
pub(crate) enum Answer {
    Partial,
    /// An interim 1xx (not 101): skipped, as hyper's client does.
    Interim(usize),
    /// 101 to a request that did not ask to switch.
    Switching,
    Complete(ResponsePlan),
    Invalid,
}

/// What the client's response head gets besides the upstream's headers.
#[derive(Debug)]
pub(crate) struct ResponseExtras<'a> {
    pub(crate) request_id: &'a [u8],
    pub(crate) set_cookie: Option<&'a [u8]>,
    pub(crate) hsts: Option<&'a [u8]>,
    /// Say `Connection: close` (the client asked, or the proxy is closing).
    pub(crate) close: bool,
    pub(crate) is_head: bool,
}

/// Parses the upstream's response head at the start of `buf` and writes the
/// client's head into `out` (cleared first).
pub(crate) fn plan_response(buf: &[u8], extras: &ResponseExtras<'_>, out: &mut Vec<u8>) -> Answer {
    let mut slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut resp = httparse::Response::new(&mut slots);
    let head_len = match resp.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        Ok(httparse::Status::Partial) => return Answer::Partial,
        Err(_) => return Answer::Invalid,
    };
    let (Some(version), Some(status)) = (resp.version, resp.code) else {
        return Answer::Invalid;
    };
    if status == 101 {
        return Answer::Switching;
    }
    if (100..200).contains(&status) {
        return Answer::Interim(head_len);
    }
    let mut length: Option<u64> = None;
    let mut chunked_last = None;
    let mut connection: Vec<&[u8]> = Vec::new();
    let (mut has_date, mut has_hsts) = (false, false);
    for h in resp.headers.iter() {
        let name = h.name;
        if is(name, "content-length") {
            let Some(n) = std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.trim().parse::<u64>().ok())
            else {
                return Answer::Invalid;
            };
            if length.is_some_and(|l| l != n) {
                return Answer::Invalid;
            }
            length = Some(n);
        } else if is(name, "transfer-encoding") {
            let last = h.value.rsplit(|&b| b == b',').next().unwrap_or_default();
            chunked_last = Some(last.trim_ascii().eq_ignore_ascii_case(b"chunked"));
        } else if is(name, "connection") {
            connection.push(h.value);
        } else if is(name, "date") {
            has_date = true;
        } else if is(name, "strict-transport-security") {
            has_hsts = true;
        }
    }
    let framing = if extras.is_head || status == 204 || status == 304 {
        Framing::Empty
    } else {
        match (chunked_last, length) {
            (Some(true), _) => Framing::Chunked,
            (Some(false), _) | (None, None) => Framing::Close,
            (None, Some(n)) => Framing::Length(n),
        }
    };
    let reusable = version == 1 && !lists(&connection, "close") && framing != Framing::Close;
    let close = extras.close || framing == Framing::Close;

    out.clear();
    out.extend_from_slice(b"HTTP/1.1 ");
    // httparse reads exactly three digits.
    let digit = |n: u16| b'0' + u8::try_from(n % 10).unwrap_or(0);
    out.extend_from_slice(&[digit(status / 100), digit(status / 10), digit(status), b' ']);
    let reason = match resp.reason {
        Some(r) if !r.is_empty() => r,
        _ => StatusCode::from_u16(status)
            .ok()
            .and_then(|s| s.canonical_reason())
            .unwrap_or(""),
    };
    out.extend_from_slice(reason.as_bytes());
    out.extend_from_slice(b"\r\n");
    for h in resp.headers.iter() {
        let name = h.name;
        if hop_by_hop(name)
            || is(name, headers::REQUEST_ID_HEADER)
            || (chunked_last.is_some() && is(name, "content-length"))
            || (!connection.is_empty() && lists(&connection, name))
        {
            continue;
        }
        put_header(out, name.as_bytes(), h.value);
    }
    if framing == Framing::Chunked {
        out.extend_from_slice(b"transfer-encoding: chunked\r\n");
    }
    put_header(out, b"x-request-id", extras.request_id);
    if let Some(cookie) = extras.set_cookie {
        put_header(out, b"set-cookie", cookie);
    }
    if let Some(hsts) = extras.hsts
        && !has_hsts
    {
        put_header(out, b"strict-transport-security", hsts);
    }
    if !has_date {
        super::date::put(out);
    }
    if close {
        out.extend_from_slice(b"connection: close\r\n");
    }
    out.extend_from_slice(b"\r\n");
    Answer::Complete(ResponsePlan {
        head_len,
        status,
        framing,
        reusable,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn extras(close: bool) -> ResponseExtras<'static> {
        ResponseExtras {
            request_id: b"rid",
            set_cookie: None,
            hsts: None,
            close,
            is_head: false,
        }
    }

    fn text(out: &[u8]) -> String {
        String::from_utf8_lossy(out).into_owned()
    }

    #[test]
    fn the_plain_host_check_agrees_with_the_full_one() {
        for h in [
            "a.example",
            "A.example:8080",
            "localhost:80",
            "127.0.0.1:3000",
            "x:65535",
            "x:65536",
            "x:",
            ":80",
            "-a.example",
            ".a",
            "a_b.example",
            "[::1]:80",
            "user@a.example",
            "a b",
            "a.example:port",
            "a.example:123456",
        ] {
            let full = host::valid_authority(h.as_bytes()).ok();
            if let Some(fast) = plain_host(h.as_bytes()) {
                assert_eq!(Some(fast), full, "{h:?}");
            }
        }
        assert_eq!(
            plain_host(b"shop.example:8443").as_deref(),
            Some("shop.example:8443")
        );
    }

    #[test]
    fn a_response_head_is_rewritten_and_framed() {
        let mut out = Vec::new();
        let raw = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\nConnection: keep-alive, x-hop\r\nx-hop: 1\r\nX-Request-Id: theirs\r\nDate: d\r\n\r\nhello";
        let Answer::Complete(plan) = plan_response(raw, &extras(false), &mut out) else {
            panic!("complete");
        };
        assert_eq!(plan.framing, Framing::Length(5));
        assert!(plan.reusable);
        assert_eq!(plan.head_len, raw.len() - 5);
        let head = text(&out);
        assert!(head.starts_with("HTTP/1.1 200 OK\r\n"), "{head}");
        assert!(head.contains("Content-Length: 5\r\n"), "{head}");
        assert!(!head.to_ascii_lowercase().contains("x-hop"), "{head}");
        assert!(!head.contains("theirs"), "{head}");
        assert!(head.contains("x-request-id: rid\r\n"), "{head}");
        assert!(!head.contains("connection"), "{head}");
    }

    #[test]
    fn chunked_and_close_delimited_bodies() {
        let mut out = Vec::new();
        let raw =
            b"HTTP/1.1 200 OK\r\nTransfer-Encoding: gzip, chunked\r\nContent-Length: 3\r\n\r\n";
        let Answer::Complete(plan) = plan_response(raw, &extras(false), &mut out) else {
            panic!("complete");
        };
        assert_eq!(plan.framing, Framing::Chunked);
        let head = text(&out);
        assert!(!head.contains("Content-Length"), "{head}");
        assert!(head.contains("transfer-encoding: chunked\r\n"), "{head}");
        let raw = b"HTTP/1.0 200 OK\r\n\r\nbody";
        let Answer::Complete(plan) = plan_response(raw, &extras(false), &mut out) else {
            panic!("complete");
        };
        assert_eq!(plan.framing, Framing::Close);
        assert!(!plan.reusable);
        assert!(text(&out).contains("connection: close\r\n"));
        assert!(matches!(
            plan_response(
                b"HTTP/1.1 103 Early\r\nLink: x\r\n\r\n",
                &extras(false),
                &mut out
            ),
            Answer::Interim(_)
        ));
        assert!(matches!(
            plan_response(
                b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
                &extras(false),
                &mut out
            ),
            Answer::Invalid
        ));
    }
}
