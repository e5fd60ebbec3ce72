//! Choosing where a request goes: first the track (an honoured
//! `X-Cutover-Track`, sticky cookie, weighted split), then an instance within
//! the track (least outstanding requests between two random choices, avoiding
//! suspects).

use std::sync::Arc;
use std::time::Instant;

use http::HeaderMap;

use crate::headers;
use crate::table::{InstanceId, ServiceEntry, TOTAL_WEIGHT_BP, Track, Upstream};

/// The track chosen for a request, and whether the response should pin the
/// client to it with the sticky cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TrackChoice {
    pub(crate) track: Track,
    pub(crate) pin_cookie: bool,
    /// The track is the one an honoured `X-Cutover-Track` forced: the request
    /// stays out of the observations.
    pub(crate) forced: bool,
}

/// Picks the track for a request to `service`.
///
/// Order: `forced`, the track an honoured `X-Cutover-Track` names (see
/// `track_override.rs`), when that track has instances; the sticky cookie
/// (only while the service is split, so that after a rollout ends everyone
/// follows the weights again); the weights. A track without instances falls
/// back to the other track, so an empty canary never turns into errors.
pub(crate) fn choose_track(
    service: &ServiceEntry,
    forced: Option<Track>,
    request: &HeaderMap,
) -> TrackChoice {
    choose_track_by(service, forced, |name| headers::cookie_track(request, name))
}

/// [`choose_track`] with the sticky cookie read by `cookie` (given the
/// cookie's name), for callers that hold no `HeaderMap` (the HTTP/1 fast path).
pub(crate) fn choose_track_by(
    service: &ServiceEntry,
    forced: Option<Track>,
    cookie: impl FnOnce(&str) -> Option<Track>,
) -> TrackChoice {
    if let Some(forced) = forced
        && !service.track(forced).is_empty()
    {
        return TrackChoice {
            track: forced,
            pin_cookie: false,
            forced: true,
        };
    }
    let sticky = service
        .spec
        .sticky_cookie
        .as_deref()
        .filter(|_| service.weights.is_split());
    if let Some(cookie_name) = sticky
        && let Some(pinned) = cookie(cookie_name)
        && !service.track(pinned).is_empty()
    {
        return TrackChoice {
            track: pinned,
            pin_cookie: false,
            forced: false,
        };
    }
    let roll = fastrand::u16(0..TOTAL_WEIGHT_BP);
    let mut track = if roll < service.weights.canary_bp() {
        Track::Canary
    } else {
        Track::Stable
    };
    if service.track(track).is_empty() {
        track = track.other();
    }
    TrackChoice {
        track,
        pin_cookie: sticky.is_some(),
        forced: false,
    }
}

/// Picks an instance among `upstreams` by the power of two random choices on
/// outstanding requests, skipping `exclude` and suspects (unless every
/// candidate is suspect: a suspect is better than a certain 502).
pub(crate) fn pick<'a>(
    upstreams: &'a [Arc<Upstream>],
    now: Instant,
    exclude: Option<&InstanceId>,
) -> Option<&'a Arc<Upstream>> {
    let usable = |u: &&Arc<Upstream>| Some(&u.instance.id) != exclude;
    let healthy = |u: &&Arc<Upstream>| usable(u) && !u.state.is_suspect(now);
    let all_healthy = exclude.is_none() && upstreams.iter().all(|u| !u.state.is_suspect(now));
    if all_healthy {
        return two_choices(upstreams.iter());
    }
    let candidates: Vec<&Arc<Upstream>> = upstreams.iter().filter(healthy).collect();
    if !candidates.is_empty() {
        return two_choices(candidates.into_iter());
    }
    two_choices(upstreams.iter().filter(usable))
}

fn two_choices<'a, I>(candidates: I) -> Option<&'a Arc<Upstream>>
where
    I: Iterator<Item = &'a Arc<Upstream>> + Clone,
{
    let n = candidates.clone().count();
    match n {
        0 => None,
        1 => candidates.clone().next(),
        _ => {
            let a = fastrand::usize(0..n);
            let mut b = fastrand::usize(0..n - 1);
            if b >= a {
                b += 1;
            }
            let first = candidates.clone().nth(a)?;
            let second = candidates.clone().nth(b)?;
            Some(if second.state.load() < first.state.load() {
                second
            } else {
                first
            })
        }
    }
}
