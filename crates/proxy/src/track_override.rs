//! Who may force a track with `X-Cutover-Track`, closed by default.
//!
//! The header is honoured only when the proxy is configured with a
//! [`TrackOverride`] and the request proves it may: it carries the configured
//! secret in `X-Cutover-Track-Secret` (compared in constant time), or it comes
//! from a peer inside `trusted_sources`. Either suffices when both are set.
//! Both headers are removed from every request before it reaches the app,
//! honoured or not.

use std::net::IpAddr;

use http::HeaderMap;
use ipnet::IpNet;
use subtle::ConstantTimeEq;

use crate::table::Track;

/// Request header that forces a track: `canary` or `stable`.
pub const TRACK_HEADER: &str = "x-cutover-track";
/// Request header carrying the secret that lets [`TRACK_HEADER`] be honoured.
pub const TRACK_SECRET_HEADER: &str = "x-cutover-track-secret";

/// Who may force a track (see the module docs). Its `Debug` never prints the
/// secret.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct TrackOverride {
    /// A request whose `X-Cutover-Track-Secret` equals this may force a track.
    /// `None` or an empty string: no secret opens it.
    pub secret: Option<String>,
    /// A request whose TCP peer is inside one of these may force a track
    /// without the secret.
    pub trusted_sources: Vec<IpNet>,
}

impl std::fmt::Debug for TrackOverride {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TrackOverride")
            .field("secret", &self.secret.as_ref().map(|_| "***"))
            .field("trusted_sources", &self.trusted_sources)
            .finish()
    }
}

impl TrackOverride {
    /// True when this request may force a track.
    fn permits(&self, secret_sent: Option<&[u8]>, peer: IpAddr) -> bool {
        let peer = peer.to_canonical();
        if self.trusted_sources.iter().any(|net| net.contains(&peer)) {
            return true;
        }
        let Some(secret) = self.secret.as_deref().filter(|s| !s.is_empty()) else {
            return false;
        };
        secret_sent.is_some_and(|sent| bool::from(sent.ct_eq(secret.as_bytes())))
    }
}

/// The track a request forces, when `X-Cutover-Track` names one and
/// `policy` lets this request force it; `None` otherwise.
pub(crate) fn forced_track(
    policy: Option<&TrackOverride>,
    headers: &HeaderMap,
    peer: IpAddr,
) -> Option<Track> {
    forced_track_raw(
        policy,
        headers.get(TRACK_HEADER).map(|v| v.as_bytes()),
        headers.get(TRACK_SECRET_HEADER).map(|v| v.as_bytes()),
        peer,
    )
}

/// [`forced_track`] from the raw values of the first `X-Cutover-Track` and
/// `X-Cutover-Track-Secret` headers (the HTTP/1 fast path's).
pub(crate) fn forced_track_raw(
    policy: Option<&TrackOverride>,
    track: Option<&[u8]>,
    secret: Option<&[u8]>,
    peer: IpAddr,
) -> Option<Track> {
    let policy = policy?;
    let wanted = track
        .and_then(|v| std::str::from_utf8(v).ok())
        .and_then(|v| Track::parse(v.trim()))?;
    policy.permits(secret, peer).then_some(wanted)
}

/// Removes both override headers (every copy of each).
pub(crate) fn strip(headers: &mut HeaderMap) {
    headers.remove(TRACK_HEADER);
    headers.remove(TRACK_SECRET_HEADER);
}

#[cfg(test)]
mod tests {
    use super::*;
    use http::HeaderValue;

    fn req(track: &str, secret: Option<&str>) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(TRACK_HEADER, HeaderValue::from_str(track).expect("value"));
        if let Some(s) = secret {
            h.insert(
                TRACK_SECRET_HEADER,
                HeaderValue::from_str(s).expect("value"),
            );
        }
        h
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().expect("ip")
    }

    #[test]
    fn closed_without_a_policy() {
        let h = req("canary", Some("s3cret"));
        assert_eq!(forced_track(None, &h, ip("127.0.0.1")), None);
    }

    #[test]
    fn the_secret_opens_it_and_a_wrong_or_empty_one_does_not() {
        let policy = TrackOverride {
            secret: Some("s3cret".into()),
            trusted_sources: vec![],
        };
        let peer = ip("203.0.113.7");
        let open = |h: &HeaderMap| forced_track(Some(&policy), h, peer);
        assert_eq!(open(&req("Canary", Some("s3cret"))), Some(Track::Canary));
        assert_eq!(open(&req("stable", Some("s3cret"))), Some(Track::Stable));
        assert_eq!(open(&req("canary", Some("s3cre"))), None);
        assert_eq!(open(&req("canary", Some("s3cretx"))), None);
        assert_eq!(open(&req("canary", None)), None);
        assert_eq!(open(&req("nonsense", Some("s3cret"))), None);
        let empty = TrackOverride {
            secret: Some(String::new()),
            trusted_sources: vec![],
        };
        assert_eq!(
            forced_track(Some(&empty), &req("canary", Some("")), peer),
            None
        );
    }

    #[test]
    fn trusted_sources_open_it_without_the_secret() {
        let policy = TrackOverride {
            secret: Some("s3cret".into()),
            trusted_sources: vec!["10.0.0.0/8".parse().expect("net")],
        };
        let h = req("canary", None);
        assert_eq!(
            forced_track(Some(&policy), &h, ip("10.1.2.3")),
            Some(Track::Canary)
        );
        // An IPv4-mapped IPv6 peer (a dual-stack listener) counts as IPv4.
        assert_eq!(
            forced_track(Some(&policy), &h, ip("::ffff:10.1.2.3")),
            Some(Track::Canary)
        );
        assert_eq!(forced_track(Some(&policy), &h, ip("11.0.0.1")), None);
    }

    #[test]
    fn debug_hides_the_secret() {
        let policy = TrackOverride {
            secret: Some("s3cret".into()),
            trusted_sources: vec![],
        };
        let text = format!("{policy:?}");
        assert!(!text.contains("s3cret"), "{text}");
    }
}
