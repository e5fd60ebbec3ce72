//! Header hygiene of a reverse proxy: hop-by-hop headers removed (RFC 9110 §7.6.1),
//! `X-Forwarded-For` / `-Proto` / `-Host` set, `X-Request-Id` kept or created, and
//! the routing overrides read (`X-Cutover-Track`, the sticky cookie).

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::table::Track;

/// Request header that forces a track: `canary` or `stable`.
pub const TRACK_HEADER: &str = "x-cutover-track";
/// Request id header, created when the client sent none.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REQUEST_ID: HeaderName = HeaderName::from_static(REQUEST_ID_HEADER);
static KEEP_ALIVE: HeaderName = HeaderName::from_static("keep-alive");
static PROXY_CONNECTION: HeaderName = HeaderName::from_static("proxy-connection");

/// Longest client-sent request id kept as is; a longer one is replaced.
const MAX_REQUEST_ID_LEN: usize = 200;

/// Hop-by-hop headers that never cross the proxy.
fn fixed_hop_by_hop() -> [&'static HeaderName; 8] {
    [
        &header::CONNECTION,
        &KEEP_ALIVE,
        &PROXY_CONNECTION,
        &header::PROXY_AUTHENTICATE,
        &header::PROXY_AUTHORIZATION,
        &header::TE,
        &header::TRAILER,
        &header::TRANSFER_ENCODING,
    ]
}

/// Removes hop-by-hop headers: the fixed list, `Upgrade`, and every header the
/// `Connection` header names. With `keep_upgrade`, `Upgrade` survives and
/// `Connection: upgrade` is set again, for a request or response that switches
/// protocols.
pub(crate) fn strip_hop_by_hop(headers: &mut HeaderMap, keep_upgrade: bool) {
    // Headers named in Connection are hop-by-hop too (RFC 9110 §7.6.1).
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|name| HeaderName::from_bytes(name.trim().as_bytes()).ok())
        .collect();
    for name in named {
        if keep_upgrade && name == header::UPGRADE {
            continue;
        }
        headers.remove(&name);
    }
    for name in fixed_hop_by_hop() {
        headers.remove(name);
    }
    if keep_upgrade {
        headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
    } else {
        headers.remove(header::UPGRADE);
    }
}

/// True when a request asks to switch protocols (`Connection: upgrade` plus `Upgrade`).
pub(crate) fn wants_upgrade(headers: &HeaderMap) -> bool {
    headers.contains_key(header::UPGRADE)
        && headers
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

/// Appends the client to `X-Forwarded-For` and sets `X-Forwarded-Proto` and
/// `X-Forwarded-Host`.
pub(crate) fn set_forwarded(
    headers: &mut HeaderMap,
    client: IpAddr,
    proto: &'static str,
    host: Option<&str>,
) {
    let xff = match headers.get(&X_FORWARDED_FOR).and_then(|v| v.to_str().ok()) {
        Some(prior) if !prior.trim().is_empty() => format!("{prior}, {client}"),
        _ => client.to_string(),
    };
    if let Ok(v) = HeaderValue::from_str(&xff) {
        headers.insert(X_FORWARDED_FOR.clone(), v);
    }
    headers.insert(X_FORWARDED_PROTO.clone(), HeaderValue::from_static(proto));
    if let Some(host) = host
        && let Ok(v) = HeaderValue::from_str(host)
    {
        headers.insert(X_FORWARDED_HOST.clone(), v);
    }
}

/// The request's id: the client's `X-Request-Id` when it is short printable
/// ASCII, else a new random one, which is written into the headers.
pub(crate) fn ensure_request_id(headers: &mut HeaderMap) -> HeaderValue {
    if let Some(v) = headers.get(&X_REQUEST_ID)
        && !v.is_empty()
        && v.len() <= MAX_REQUEST_ID_LEN
        && v.to_str().is_ok()
    {
        return v.clone();
    }
    let id = new_request_id();
    headers.insert(X_REQUEST_ID.clone(), id.clone());
    id
}

/// 128 random bits as 32 lower-case hex digits.
fn new_request_id() -> HeaderValue {
    let text = format!("{:032x}", fastrand::u128(..));
    HeaderValue::from_str(&text).expect("hex digits are a valid header value")
}

/// Adds `X-Request-Id` to a response.
pub(crate) fn set_request_id(headers: &mut HeaderMap, id: &HeaderValue) {
    headers.insert(X_REQUEST_ID.clone(), id.clone());
}

/// The track forced by `X-Cutover-Track`, if any.
pub(crate) fn forced_track(headers: &HeaderMap) -> Option<Track> {
    headers
        .get(TRACK_HEADER)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| Track::parse(v.trim()))
}

/// The track named by cookie `name`, if the request carries it.
pub(crate) fn cookie_track(headers: &HeaderMap, name: &str) -> Option<Track> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .and_then(|(_, v)| Track::parse(v.trim()))
}

/// A `Set-Cookie` value that pins the client to `track`.
pub(crate) fn sticky_cookie(name: &str, track: Track) -> Option<HeaderValue> {
    HeaderValue::from_str(&format!(
        "{name}={}; Path=/; HttpOnly; SameSite=Lax",
        track.as_str()
    ))
    .ok()
}

/// The request's `host[:port]`: the URI's authority (HTTP/2, absolute-form) or
/// the `Host` header.
pub(crate) fn host_of<'a>(uri: &'a http::Uri, headers: &'a HeaderMap) -> Option<&'a str> {
    uri.authority()
        .map(|a| a.as_str())
        .or_else(|| headers.get(header::HOST).and_then(|v| v.to_str().ok()))
}

/// Strips the port from `host:port` (and the brackets of `[v6]:port`).
pub(crate) fn hostname(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split(']').next().unwrap_or(rest);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(
                HeaderName::from_bytes(k.as_bytes()).expect("name"),
                HeaderValue::from_str(v).expect("value"),
            );
        }
        h
    }

    #[test]
    fn hop_by_hop_headers_and_connection_named_ones_are_removed() {
        let mut h = map(&[
            ("connection", "keep-alive, x-secret-hop"),
            ("keep-alive", "timeout=5"),
            ("x-secret-hop", "1"),
            ("transfer-encoding", "chunked"),
            ("te", "trailers"),
            ("upgrade", "websocket"),
            ("x-kept", "yes"),
        ]);
        strip_hop_by_hop(&mut h, false);
        let names: Vec<&str> = h.keys().map(|k| k.as_str()).collect();
        assert_eq!(names, vec!["x-kept"]);
    }

    #[test]
    fn upgrade_survives_when_switching_protocols() {
        let mut h = map(&[("connection", "Upgrade"), ("upgrade", "websocket")]);
        assert!(wants_upgrade(&h));
        strip_hop_by_hop(&mut h, true);
        assert_eq!(
            h.get("upgrade").map(|v| v.as_bytes()),
            Some(&b"websocket"[..])
        );
        assert_eq!(
            h.get("connection").map(|v| v.as_bytes()),
            Some(&b"upgrade"[..])
        );
    }

    #[test]
    fn forwarded_for_is_appended() {
        let mut h = map(&[("x-forwarded-for", "10.0.0.1")]);
        set_forwarded(
            &mut h,
            "127.0.0.1".parse().expect("ip"),
            "http",
            Some("example.com"),
        );
        assert_eq!(h["x-forwarded-for"], "10.0.0.1, 127.0.0.1");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "example.com");
    }

    #[test]
    fn request_id_is_kept_or_created() {
        let mut h = map(&[("x-request-id", "abc-123")]);
        assert_eq!(ensure_request_id(&mut h), "abc-123");
        let mut h = HeaderMap::new();
        let id = ensure_request_id(&mut h);
        assert_eq!(id.len(), 32);
        assert_eq!(h["x-request-id"], id);
    }

    #[test]
    fn overrides_are_read_from_header_and_cookie() {
        let h = map(&[("x-cutover-track", "Canary"), ("cookie", "a=1; ct=stable")]);
        assert_eq!(forced_track(&h), Some(Track::Canary));
        assert_eq!(cookie_track(&h, "ct"), Some(Track::Stable));
        assert_eq!(cookie_track(&h, "other"), None);
    }

    #[test]
    fn hostname_strips_port() {
        assert_eq!(hostname("example.com:8080"), "example.com");
        assert_eq!(hostname("example.com"), "example.com");
        assert_eq!(hostname("[::1]:80"), "::1");
    }
}
