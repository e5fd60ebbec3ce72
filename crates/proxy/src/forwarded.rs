//! The forwarding headers the app receives: `X-Forwarded-For`,
//! `X-Forwarded-Proto`, `X-Forwarded-Host`, `Forwarded` (RFC 7239) and
//! `X-Real-IP`.
//!
//! A client can send any of them, so they are believed only from a peer inside
//! `trusted_proxies` (a load balancer in front of the proxy). From a trusted
//! peer, `X-Forwarded-For` and `Forwarded` are appended to and the others are
//! kept (set when absent); from anyone else, all five are replaced by what the
//! proxy itself saw. docs/proxy.md, "What the app receives", is the contract.

use std::net::IpAddr;

use http::header::{self, HeaderMap, HeaderName, HeaderValue};
use ipnet::IpNet;

static X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
static X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
static X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
static X_REAL_IP: HeaderName = HeaderName::from_static("x-real-ip");

/// What the proxy saw of one request.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Seen<'a> {
    /// The TCP peer.
    pub(crate) peer: IpAddr,
    /// `https` on a TLS listener, else `http`.
    pub(crate) proto: &'static str,
    /// The request's host (`host[:port]`, as the app receives it in `Host`).
    pub(crate) host: Option<&'a str>,
}

/// True when `peer` is inside one of `trusted`.
pub(crate) fn is_trusted(peer: IpAddr, trusted: &[IpNet]) -> bool {
    let peer = peer.to_canonical();
    trusted.iter().any(|net| net.contains(&peer))
}

/// Sets the forwarding headers of a request from `seen`, believing what the
/// client sent only when `trusted`.
pub(crate) fn apply(headers: &mut HeaderMap, seen: &Seen<'_>, trusted: bool) {
    let peer = seen.peer.to_canonical();
    let element = forwarded_element(peer, seen.proto, seen.host);
    let peer_value = header_value(&peer.to_string());
    if trusted {
        append(headers, &X_FORWARDED_FOR, &peer.to_string());
        append(headers, &header::FORWARDED, &element);
        set_if_absent(headers, &X_FORWARDED_PROTO, Some(seen.proto));
        set_if_absent(headers, &X_FORWARDED_HOST, seen.host);
        set_if_absent(headers, &X_REAL_IP, Some(&peer.to_string()));
    } else {
        headers.remove(&X_FORWARDED_FOR);
        headers.remove(&header::FORWARDED);
        headers.remove(&X_FORWARDED_PROTO);
        headers.remove(&X_FORWARDED_HOST);
        headers.remove(&X_REAL_IP);
        if let Some(v) = peer_value.clone() {
            headers.insert(X_FORWARDED_FOR.clone(), v);
        }
        if let Some(v) = header_value(&element) {
            headers.insert(header::FORWARDED, v);
        }
        headers.insert(
            X_FORWARDED_PROTO.clone(),
            HeaderValue::from_static(seen.proto),
        );
        if let Some(v) = seen.host.and_then(header_value) {
            headers.insert(X_FORWARDED_HOST.clone(), v);
        }
        if let Some(v) = peer_value {
            headers.insert(X_REAL_IP.clone(), v);
        }
    }
}

/// Joins every value of `name` with `, ` and appends `value`, as one header.
fn append(headers: &mut HeaderMap, name: &HeaderName, value: &str) {
    let mut joined: Vec<u8> = Vec::new();
    for prior in headers.get_all(name) {
        let prior = prior.as_bytes().trim_ascii();
        if prior.is_empty() {
            continue;
        }
        joined.extend_from_slice(prior);
        joined.extend_from_slice(b", ");
    }
    joined.extend_from_slice(value.as_bytes());
    if let Ok(v) = HeaderValue::from_bytes(&joined) {
        headers.insert(name.clone(), v);
    }
}

fn set_if_absent(headers: &mut HeaderMap, name: &HeaderName, value: Option<&str>) {
    if headers.contains_key(name) {
        return;
    }
    if let Some(v) = value.and_then(header_value) {
        headers.insert(name.clone(), v);
    }
}

fn header_value(s: &str) -> Option<HeaderValue> {
    HeaderValue::from_str(s).ok()
}

/// One RFC 7239 element: `for=<peer>;proto=<scheme>;host=<host>`.
pub(crate) fn forwarded_element(peer: IpAddr, proto: &str, host: Option<&str>) -> String {
    let node = match peer {
        IpAddr::V4(v4) => v4.to_string(),
        // An IPv6 node is bracketed, and `[`, `:` make it a quoted string.
        IpAddr::V6(v6) => format!("[{v6}]"),
    };
    let mut element = format!("for={};proto={proto}", quote(&node));
    if let Some(host) = host {
        element.push_str(";host=");
        element.push_str(&quote(host));
    }
    element
}

/// A token as is, anything else as a quoted string (RFC 7230 §3.2.6).
fn quote(value: &str) -> String {
    let mut out = Vec::with_capacity(value.len() + 2);
    quote_into(&mut out, value);
    String::from_utf8(out).unwrap_or_default()
}

/// [`quote`], appended to `out`.
pub(crate) fn quote_into(out: &mut Vec<u8>, value: &str) {
    let is_tchar = |b: u8| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b);
    if !value.is_empty() && value.bytes().all(is_tchar) {
        out.extend_from_slice(value.as_bytes());
        return;
    }
    out.push(b'"');
    for &b in value.as_bytes() {
        if b == b'"' || b == b'\\' {
            out.push(b'\\');
        }
        out.push(b);
    }
    out.push(b'"');
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

    fn seen(peer: &str, proto: &'static str, host: Option<&'static str>) -> Seen<'static> {
        Seen {
            peer: peer.parse().expect("ip"),
            proto,
            host,
        }
    }

    const SPOOFED: &[(&str, &str)] = &[
        ("x-forwarded-for", "1.2.3.4"),
        ("x-forwarded-for", "5.6.7.8"),
        ("x-forwarded-proto", "https"),
        ("x-forwarded-host", "evil.example"),
        ("forwarded", "for=1.2.3.4;proto=https"),
        ("x-real-ip", "1.2.3.4"),
    ];

    #[test]
    fn an_untrusted_peer_gets_all_five_replaced() {
        let mut h = map(SPOOFED);
        apply(
            &mut h,
            &seen("198.51.100.7", "http", Some("shop.example:8080")),
            false,
        );
        assert_eq!(h.get_all("x-forwarded-for").iter().count(), 1);
        assert_eq!(h["x-forwarded-for"], "198.51.100.7");
        assert_eq!(h["x-forwarded-proto"], "http");
        assert_eq!(h["x-forwarded-host"], "shop.example:8080");
        assert_eq!(
            h["forwarded"],
            "for=198.51.100.7;proto=http;host=\"shop.example:8080\""
        );
        assert_eq!(h["x-real-ip"], "198.51.100.7");
    }

    #[test]
    fn a_trusted_peer_is_appended_to_and_believed() {
        let mut h = map(SPOOFED);
        apply(
            &mut h,
            &seen("10.0.0.2", "http", Some("shop.example")),
            true,
        );
        assert_eq!(h["x-forwarded-for"], "1.2.3.4, 5.6.7.8, 10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "evil.example");
        assert_eq!(
            h["forwarded"],
            "for=1.2.3.4;proto=https, for=10.0.0.2;proto=http;host=shop.example"
        );
        assert_eq!(h["x-real-ip"], "1.2.3.4");
        // Nothing sent: the proxy's own view is set.
        let mut h = HeaderMap::new();
        apply(&mut h, &seen("10.0.0.2", "https", Some("a.example")), true);
        assert_eq!(h["x-forwarded-for"], "10.0.0.2");
        assert_eq!(h["x-forwarded-proto"], "https");
        assert_eq!(h["x-forwarded-host"], "a.example");
        assert_eq!(h["x-real-ip"], "10.0.0.2");
    }

    #[test]
    fn ipv6_nodes_are_bracketed_and_quoted() {
        let mut h = HeaderMap::new();
        apply(&mut h, &seen("::1", "https", None), false);
        assert_eq!(h["forwarded"], "for=\"[::1]\";proto=https");
        assert_eq!(h["x-forwarded-for"], "::1");
        // A v4-mapped peer of a dual-stack listener is written as IPv4.
        let mut h = HeaderMap::new();
        apply(&mut h, &seen("::ffff:192.0.2.1", "http", None), false);
        assert_eq!(h["forwarded"], "for=192.0.2.1;proto=http");
        assert_eq!(h["x-real-ip"], "192.0.2.1");
    }

    #[test]
    fn trust_is_by_network() {
        let nets: Vec<IpNet> = vec![
            "10.0.0.0/8".parse().expect("net"),
            "fd00::/8".parse().expect("net"),
        ];
        assert!(is_trusted("10.9.8.7".parse().expect("ip"), &nets));
        assert!(is_trusted("::ffff:10.9.8.7".parse().expect("ip"), &nets));
        assert!(is_trusted("fd12::1".parse().expect("ip"), &nets));
        assert!(!is_trusted("127.0.0.1".parse().expect("ip"), &nets));
        assert!(!is_trusted("127.0.0.1".parse().expect("ip"), &[]));
    }
}
