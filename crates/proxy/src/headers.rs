//! Header hygiene of a reverse proxy: hop-by-hop headers removed (RFC 9110 §7.6.1),
//! `Upgrade` kept only for the protocols a service allows, `X-Request-Id` kept
//! or created, and the sticky cookie read and written. The forwarding headers
//! are `forwarded.rs`'s, the track override `track_override.rs`'s.

use http::header::{self, HeaderMap, HeaderName, HeaderValue};

use crate::table::{ServiceSpec, Track};

/// Request id header, created when the client sent none.
pub const REQUEST_ID_HEADER: &str = "x-request-id";

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

/// True when every protocol the request's `Upgrade` header names is one
/// `spec` allows (see [`ServiceSpec::allowed_upgrades`]).
pub(crate) fn upgrade_allowed(headers: &HeaderMap, spec: &ServiceSpec) -> bool {
    let mut any = false;
    for value in headers.get_all(header::UPGRADE) {
        let Ok(value) = value.to_str() else {
            return false;
        };
        for protocol in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            if !spec.allows_upgrade(protocol) {
                return false;
            }
            any = true;
        }
    }
    any
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
pub(crate) fn new_request_id() -> HeaderValue {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut n = fastrand::u128(..);
    let mut text = [0u8; 32];
    for digit in text.iter_mut().rev() {
        *digit = HEX[(n & 0xf) as usize];
        n >>= 4;
    }
    HeaderValue::from_bytes(&text).expect("hex digits are a valid header value")
}

/// Adds `X-Request-Id` to a response.
pub(crate) fn set_request_id(headers: &mut HeaderMap, id: &HeaderValue) {
    headers.insert(X_REQUEST_ID.clone(), id.clone());
}

/// The track named by cookie `name`, if the request carries it.
pub(crate) fn cookie_track(headers: &HeaderMap, name: &str) -> Option<Track> {
    cookie_track_in(
        headers.get_all(header::COOKIE).iter().map(|v| v.as_bytes()),
        name,
    )
}

/// The track named by cookie `name` among raw `Cookie` header values.
pub(crate) fn cookie_track_in<'a>(
    values: impl Iterator<Item = &'a [u8]>,
    name: &str,
) -> Option<Track> {
    values
        .filter(|v| v.iter().all(|&b| b == b'\t' || (0x20..0x7f).contains(&b)))
        .filter_map(|v| std::str::from_utf8(v).ok())
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
/// the `Host` header, unchecked. Requests that reach the routes have passed
/// `host.rs`, which refuses the ambiguous ones; this is for answers made before
/// that (the HTTP → HTTPS redirect).
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
    fn request_id_is_kept_or_created() {
        let mut h = map(&[("x-request-id", "abc-123")]);
        assert_eq!(ensure_request_id(&mut h), "abc-123");
        let mut h = HeaderMap::new();
        let id = ensure_request_id(&mut h);
        assert_eq!(id.len(), 32);
        assert!(id.as_bytes().iter().all(u8::is_ascii_hexdigit), "{id:?}");
        assert_eq!(h["x-request-id"], id);
    }

    #[test]
    fn only_allowed_upgrades_pass() {
        let default = ServiceSpec::default();
        let ws = map(&[("connection", "upgrade"), ("upgrade", "WebSocket")]);
        assert!(upgrade_allowed(&ws, &default));
        let h2c = map(&[
            ("connection", "upgrade, http2-settings"),
            ("upgrade", "h2c"),
        ]);
        assert!(!upgrade_allowed(&h2c, &default));
        let both = map(&[("upgrade", "websocket, h2c")]);
        assert!(!upgrade_allowed(&both, &default));
        let mut spec = ServiceSpec {
            allowed_upgrades: vec!["h2c".into()],
            ..ServiceSpec::default()
        };
        assert!(upgrade_allowed(&h2c, &spec));
        assert!(!upgrade_allowed(&ws, &spec), "a list replaces the default");
        spec.allowed_upgrades.push("websocket".into());
        assert!(upgrade_allowed(&both, &spec));
        let versioned = map(&[("upgrade", "foo/2")]);
        spec.allowed_upgrades = vec!["FOO".into()];
        assert!(upgrade_allowed(&versioned, &spec));
        assert!(!upgrade_allowed(&HeaderMap::new(), &spec));
    }

    #[test]
    fn the_sticky_cookie_is_read() {
        let h = map(&[("cookie", "a=1; ct=stable")]);
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
