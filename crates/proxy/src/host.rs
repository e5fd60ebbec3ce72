//! One host, one meaning: the host a request is routed on is exactly the host
//! the app receives in `Host`.
//!
//! A request is refused (400) when it has no host where the protocol requires
//! one (HTTP/1.1 without `Host`; HTTP/2 without `:authority` or `host`), more
//! than one `Host` header, a `Host` that is not `host[:port]`, or a request
//! target authority (HTTP/1.1 absolute-form, HTTP/2 `:authority`) that differs
//! from `Host`. Authorities that differ only in letter case, or by the
//! scheme's default port, agree. HTTP/1.0 may omit `Host`: it then matches only
//! routes without a host.

use http::header::{self, HeaderMap};
use http::uri::Authority;
use http::{Uri, Version};

/// Why a request's host was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub(crate) enum HostError {
    /// HTTP/1.1 without `Host`, or HTTP/2 without `:authority` and `host`.
    #[error("the request has no Host header; send one")]
    Missing,
    /// More than one `Host` header.
    #[error("the request has more than one Host header; send exactly one")]
    Repeated,
    /// A `Host` or authority that is not `host[:port]`.
    #[error("the Host header is not a valid host[:port]")]
    Invalid,
    /// The request target's authority and `Host` name different hosts.
    #[error("the request target's host differs from the Host header; make them agree")]
    Mismatch,
}

/// The request's host (`host[:port]`, as the app will receive it in `Host`),
/// or `None` for an HTTP/1.0 request that names none.
pub(crate) fn request_host(
    version: Version,
    uri: &Uri,
    headers: &HeaderMap,
) -> Result<Option<String>, HostError> {
    let mut values = headers.get_all(header::HOST).iter();
    let first = values.next();
    if values.next().is_some() {
        return Err(HostError::Repeated);
    }
    let from_header = first.map(|v| valid_authority(v.as_bytes())).transpose()?;
    let from_target = uri
        .authority()
        .map(|a| valid_authority(a.as_str().as_bytes()))
        .transpose()?;
    match (from_target, from_header) {
        (Some(target), Some(host)) => {
            if same_authority(&target, &host, uri.scheme_str()) {
                Ok(Some(host))
            } else {
                Err(HostError::Mismatch)
            }
        }
        // HTTP/1.1 requires Host even with an absolute-form target (RFC 9112 §3.2).
        (Some(_), None) if version == Version::HTTP_11 => Err(HostError::Missing),
        (Some(target), None) => Ok(Some(target)),
        (None, Some(host)) => Ok(Some(host)),
        (None, None) if version <= Version::HTTP_10 => Ok(None),
        (None, None) => Err(HostError::Missing),
    }
}

/// `host[:port]` without user info, as text.
pub(crate) fn valid_authority(bytes: &[u8]) -> Result<String, HostError> {
    let text = std::str::from_utf8(bytes).map_err(|_| HostError::Invalid)?;
    if text.is_empty() || text.contains('@') {
        return Err(HostError::Invalid);
    }
    let authority: Authority = text.parse().map_err(|_| HostError::Invalid)?;
    let host = authority.host();
    let port = text.get(host.len()..).ok_or(HostError::Invalid)?;
    let port_ok = port.is_empty()
        || port.strip_prefix(':').is_some_and(|p| {
            !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) && p.parse::<u16>().is_ok()
        });
    if host.is_empty() || !text.starts_with(host) || !port_ok {
        return Err(HostError::Invalid);
    }
    Ok(text.to_owned())
}

/// Equal ignoring ASCII case and the scheme's default port.
fn same_authority(a: &str, b: &str, scheme: Option<&str>) -> bool {
    let default_port = match scheme {
        Some(s) if s.eq_ignore_ascii_case("https") => ":443",
        _ => ":80",
    };
    let strip = |s: &'_ str| -> String {
        let lower = s.to_ascii_lowercase();
        match lower.strip_suffix(default_port) {
            Some(rest) => rest.to_owned(),
            None => lower,
        }
    };
    strip(a) == strip(b)
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn hosts(values: &[&str]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for v in values {
            h.append(header::HOST, HeaderValue::from_str(v).expect("value"));
        }
        h
    }

    fn uri(s: &str) -> Uri {
        s.parse().expect("uri")
    }

    #[test]
    fn one_host_header_is_the_host() {
        let got = request_host(Version::HTTP_11, &uri("/x"), &hosts(&["Shop.example:8080"]));
        assert_eq!(got, Ok(Some("Shop.example:8080".to_owned())));
        let got = request_host(Version::HTTP_11, &uri("/x"), &hosts(&["[::1]:80"]));
        assert_eq!(got, Ok(Some("[::1]:80".to_owned())));
    }

    #[test]
    fn missing_repeated_and_invalid_hosts_are_refused() {
        let origin = uri("/x");
        assert_eq!(
            request_host(Version::HTTP_11, &origin, &hosts(&[])),
            Err(HostError::Missing)
        );
        assert_eq!(
            request_host(
                Version::HTTP_11,
                &origin,
                &hosts(&["a.example", "b.example"])
            ),
            Err(HostError::Repeated)
        );
        assert_eq!(
            request_host(
                Version::HTTP_11,
                &origin,
                &hosts(&["a.example", "a.example"])
            ),
            Err(HostError::Repeated)
        );
        for bad in [
            "",
            "user@a.example",
            "a b",
            "a.example:port",
            ":80",
            "a.example:",
            "a.example:99999",
        ] {
            assert_eq!(
                request_host(Version::HTTP_11, &origin, &hosts(&[bad])),
                Err(HostError::Invalid),
                "{bad:?}"
            );
        }
        assert_eq!(
            request_host(Version::HTTP_10, &origin, &hosts(&[])),
            Ok(None)
        );
        assert_eq!(
            request_host(Version::HTTP_2, &origin, &hosts(&[])),
            Err(HostError::Missing)
        );
    }

    #[test]
    fn a_target_authority_must_agree_with_host() {
        let abs = uri("http://a.example/x");
        assert_eq!(
            request_host(Version::HTTP_11, &abs, &hosts(&["b.example"])),
            Err(HostError::Mismatch)
        );
        assert_eq!(
            request_host(Version::HTTP_11, &abs, &hosts(&["A.example:80"])),
            Ok(Some("A.example:80".to_owned()))
        );
        assert_eq!(
            request_host(Version::HTTP_11, &abs, &hosts(&[])),
            Err(HostError::Missing)
        );
        assert_eq!(
            request_host(
                Version::HTTP_11,
                &uri("http://a.example:81/"),
                &hosts(&["a.example"])
            ),
            Err(HostError::Mismatch)
        );
        // HTTP/2: :authority alone, or with an agreeing host header.
        let h2 = uri("https://a.example/x");
        assert_eq!(
            request_host(Version::HTTP_2, &h2, &hosts(&[])),
            Ok(Some("a.example".to_owned()))
        );
        assert_eq!(
            request_host(Version::HTTP_2, &h2, &hosts(&["a.example:443"])),
            Ok(Some("a.example:443".to_owned()))
        );
        assert_eq!(
            request_host(Version::HTTP_2, &h2, &hosts(&["b.example"])),
            Err(HostError::Mismatch)
        );
        assert_eq!(
            request_host(Version::HTTP_10, &abs, &hosts(&[])),
            Ok(Some("a.example".to_owned()))
        );
    }
}
