//! The route table: which Host and path prefix go to which service, and for each
//! service its two tracks (`stable`, `canary`), their instances and the weights
//! between them.
//!
//! A [`RouteTable`] is immutable. Every change builds a new one from the previous
//! one and the proxy swaps it in with one atomic pointer store (see `lib.rs`), so a
//! request sees either the whole old table or the whole new one, never half of an
//! update. The types a caller hands in ([`Route`], [`ServiceSpec`], [`Instance`],
//! [`Weights`]) are plain data; the compiled forms keep shared per-instance state
//! (`InstanceState`) that outlives any one table.

use std::collections::HashMap;
use std::fmt;
use std::net::SocketAddr;
use std::sync::Arc;

use http::uri::Authority;

use crate::instance::InstanceState;
use crate::metrics::ServiceMetrics;

/// Total of the two tracks' weights, in basis points: 10000 = 100 %.
pub const TOTAL_WEIGHT_BP: u16 = 10_000;

/// One of the two tracks of a service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Track {
    /// The release that serves by default.
    Stable,
    /// The release being rolled out.
    Canary,
}

impl Track {
    /// The lower-case name used in headers, cookies and metric labels.
    pub fn as_str(self) -> &'static str {
        match self {
            Track::Stable => "stable",
            Track::Canary => "canary",
        }
    }

    /// Parses `stable` or `canary` (ASCII case-insensitive).
    pub fn parse(s: &str) -> Option<Track> {
        if s.eq_ignore_ascii_case("stable") {
            Some(Track::Stable)
        } else if s.eq_ignore_ascii_case("canary") {
            Some(Track::Canary)
        } else {
            None
        }
    }

    /// The other track.
    pub fn other(self) -> Track {
        match self {
            Track::Stable => Track::Canary,
            Track::Canary => Track::Stable,
        }
    }
}

impl fmt::Display for Track {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The split between the two tracks of a service, in basis points.
///
/// The two weights always sum to [`TOTAL_WEIGHT_BP`]: the type stores only the
/// canary share, so no value of it can break that invariant.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Weights {
    canary_bp: u16,
}

impl Weights {
    /// Everything on the stable track.
    pub const ALL_STABLE: Weights = Weights { canary_bp: 0 };
    /// Everything on the canary track.
    pub const ALL_CANARY: Weights = Weights {
        canary_bp: TOTAL_WEIGHT_BP,
    };

    /// `canary_bp` basis points on canary, the rest on stable.
    pub fn canary(canary_bp: u16) -> Result<Weights, TableError> {
        if canary_bp > TOTAL_WEIGHT_BP {
            return Err(TableError::WeightOutOfRange(canary_bp));
        }
        Ok(Weights { canary_bp })
    }

    /// Builds weights from both shares; they must sum to 10000.
    pub fn from_parts(stable_bp: u16, canary_bp: u16) -> Result<Weights, TableError> {
        if u32::from(stable_bp) + u32::from(canary_bp) != u32::from(TOTAL_WEIGHT_BP) {
            return Err(TableError::WeightsDoNotSum {
                stable_bp,
                canary_bp,
            });
        }
        Ok(Weights { canary_bp })
    }

    /// Basis points on the canary track.
    pub fn canary_bp(self) -> u16 {
        self.canary_bp
    }

    /// Basis points on the stable track.
    pub fn stable_bp(self) -> u16 {
        TOTAL_WEIGHT_BP - self.canary_bp
    }

    /// Basis points on `track`.
    pub fn of(self, track: Track) -> u16 {
        match track {
            Track::Stable => self.stable_bp(),
            Track::Canary => self.canary_bp(),
        }
    }

    /// True when both tracks get some traffic.
    pub fn is_split(self) -> bool {
        self.canary_bp > 0 && self.canary_bp < TOTAL_WEIGHT_BP
    }
}

/// The identity of one running instance (a process, a container, a pod).
///
/// Counters, observations and drain state are keyed by this id, so an id must be
/// unique across the whole proxy and stable for the instance's life.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InstanceId(Arc<str>);

impl InstanceId {
    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl From<&str> for InstanceId {
    fn from(s: &str) -> Self {
        InstanceId(Arc::from(s))
    }
}

impl From<String> for InstanceId {
    fn from(s: String) -> Self {
        InstanceId(Arc::from(s))
    }
}

impl fmt::Display for InstanceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// An upstream the proxy may send requests to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instance {
    /// Unique id (see [`InstanceId`]).
    pub id: InstanceId,
    /// Where it listens for HTTP/1.1.
    pub addr: SocketAddr,
}

impl Instance {
    /// An instance with the given id and address.
    pub fn new(id: impl Into<InstanceId>, addr: SocketAddr) -> Instance {
        Instance {
            id: id.into(),
            addr,
        }
    }
}

/// Sends requests whose Host and path match to a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Route {
    /// Host to match, without port, compared case-insensitively; `None` matches any.
    pub host: Option<String>,
    /// Path prefix, matched on segment boundaries: `/api` matches `/api` and
    /// `/api/users` but not `/apis`.
    pub path_prefix: String,
    /// Name of the service (see [`crate::Proxy::set_service`]).
    pub service: String,
}

impl Route {
    /// Every host and every path to `service`.
    pub fn any(service: impl Into<String>) -> Route {
        Route {
            host: None,
            path_prefix: "/".to_owned(),
            service: service.into(),
        }
    }

    /// Requests for `host` (any path) to `service`.
    pub fn host(host: impl Into<String>, service: impl Into<String>) -> Route {
        Route {
            host: Some(host.into()),
            path_prefix: "/".to_owned(),
            service: service.into(),
        }
    }

    /// Narrows the route to a path prefix.
    pub fn with_prefix(mut self, prefix: impl Into<String>) -> Route {
        self.path_prefix = prefix.into();
        self
    }

    fn matches(&self, host: Option<&str>, path: &str) -> bool {
        if let Some(want) = &self.host {
            match host {
                Some(h) if h.eq_ignore_ascii_case(want) => {}
                _ => return false,
            }
        }
        prefix_matches(&self.path_prefix, path)
    }
}

/// `/api` matches `/api`, `/api/` and `/api/x`, not `/apis`; `/` matches all.
fn prefix_matches(prefix: &str, path: &str) -> bool {
    if !path.starts_with(prefix) {
        return false;
    }
    prefix.ends_with('/') || path.len() == prefix.len() || path.as_bytes()[prefix.len()] == b'/'
}

/// Per-service settings that are not instances or weights.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ServiceSpec {
    /// When set, the name of a cookie that pins a client to the track it was
    /// first sent to, for as long as both tracks get traffic.
    pub sticky_cookie: Option<String>,
    /// `Upgrade` protocols passed through to the app (compared
    /// case-insensitively, on the name before any `/version`). Empty (the
    /// default) means `websocket` only; a non-empty list replaces that
    /// default, so list `websocket` too if the app needs it. A request asking
    /// for any other protocol (`h2c`, notably) is forwarded as an ordinary
    /// request without its `Upgrade` header.
    pub allowed_upgrades: Vec<String>,
    /// Largest request body this service accepts, in bytes (413 beyond it);
    /// `None` uses [`crate::ProxyConfig::max_request_body`].
    pub max_request_body: Option<u64>,
}

impl ServiceSpec {
    /// A spec with a sticky cookie of the given name.
    pub fn sticky(cookie: impl Into<String>) -> ServiceSpec {
        ServiceSpec {
            sticky_cookie: Some(cookie.into()),
            ..ServiceSpec::default()
        }
    }

    /// True when `protocol` (one entry of an `Upgrade` header, like
    /// `websocket` or `h2c` or `foo/2`) may be passed through to the app.
    pub fn allows_upgrade(&self, protocol: &str) -> bool {
        let name = protocol.split('/').next().unwrap_or("").trim();
        if name.is_empty() {
            return false;
        }
        if self.allowed_upgrades.is_empty() {
            return name.eq_ignore_ascii_case("websocket");
        }
        self.allowed_upgrades
            .iter()
            .any(|allowed| allowed.trim().eq_ignore_ascii_case(name))
    }
}

/// Why a table update was refused. A refused update changes nothing.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TableError {
    /// A weight above 10000 basis points.
    #[error("canary weight {0} is above 10000 basis points")]
    WeightOutOfRange(u16),
    /// Two weights that do not add up to 10000.
    #[error("weights stable={stable_bp} + canary={canary_bp} do not sum to 10000 basis points")]
    WeightsDoNotSum {
        /// Stable share given.
        stable_bp: u16,
        /// Canary share given.
        canary_bp: u16,
    },
    /// The service was never declared.
    #[error("no service named {0:?}; declare it with set_service first")]
    UnknownService(String),
    /// A route names a service that is not declared.
    #[error("route for host {host:?} prefix {prefix:?} names unknown service {service:?}")]
    RouteToUnknownService {
        /// Route host.
        host: Option<String>,
        /// Route prefix.
        prefix: String,
        /// The missing service.
        service: String,
    },
    /// A path prefix that does not start with `/`.
    #[error("path prefix {0:?} must start with '/'")]
    BadPrefix(String),
    /// An instance id given twice in the same service.
    #[error("instance {0} appears twice in service {1:?}")]
    DuplicateInstance(String, String),
    /// An instance id already used by another service.
    #[error("instance {0} already belongs to service {1:?}")]
    InstanceInOtherService(String, String),
    /// An empty service name or a bad cookie name.
    #[error("invalid name {0:?}")]
    InvalidName(String),
}

/// An instance as the router sees it: its address and its shared live state.
#[derive(Debug)]
pub(crate) struct Upstream {
    pub(crate) instance: Instance,
    pub(crate) authority: Authority,
    pub(crate) state: Arc<InstanceState>,
}

/// One service in a compiled table.
#[derive(Debug)]
pub(crate) struct ServiceEntry {
    pub(crate) name: Arc<str>,
    pub(crate) spec: ServiceSpec,
    pub(crate) weights: Weights,
    pub(crate) stable: Vec<Arc<Upstream>>,
    pub(crate) canary: Vec<Arc<Upstream>>,
    pub(crate) metrics: Arc<ServiceMetrics>,
}

impl ServiceEntry {
    pub(crate) fn track(&self, track: Track) -> &[Arc<Upstream>] {
        match track {
            Track::Stable => &self.stable,
            Track::Canary => &self.canary,
        }
    }

    fn track_mut(&mut self, track: Track) -> &mut Vec<Arc<Upstream>> {
        match track {
            Track::Stable => &mut self.stable,
            Track::Canary => &mut self.canary,
        }
    }
}

/// An immutable snapshot of all routing state. Cheap to read; replaced whole.
#[derive(Debug, Default, Clone)]
pub struct RouteTable {
    generation: u64,
    routes: Vec<Route>,
    services: HashMap<Arc<str>, Arc<ServiceEntry>>,
}

/// What a table says about one service, for callers and tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServiceView {
    /// The service's name.
    pub name: String,
    /// Current split.
    pub weights: Weights,
    /// Instances on the stable track.
    pub stable: Vec<Instance>,
    /// Instances on the canary track.
    pub canary: Vec<Instance>,
}

impl RouteTable {
    /// Increases by one with every applied update.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The routes, most specific first.
    pub fn routes(&self) -> &[Route] {
        &self.routes
    }

    /// A view of one service, if declared.
    pub fn service(&self, name: &str) -> Option<ServiceView> {
        self.services.get(name).map(|s| ServiceView {
            name: s.name.to_string(),
            weights: s.weights,
            stable: s.stable.iter().map(|u| u.instance.clone()).collect(),
            canary: s.canary.iter().map(|u| u.instance.clone()).collect(),
        })
    }

    /// Names of all declared services.
    pub fn service_names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.services.keys().map(|k| k.to_string()).collect();
        names.sort();
        names
    }

    /// True when `id` is on some track of some service.
    pub fn contains_instance(&self, id: &InstanceId) -> bool {
        self.services.values().any(|s| {
            s.stable
                .iter()
                .chain(&s.canary)
                .any(|u| &u.instance.id == id)
        })
    }

    /// The service and track that `id` is on, if any.
    pub fn locate_instance(&self, id: &InstanceId) -> Option<(String, Track)> {
        self.services.values().find_map(|s| {
            [Track::Stable, Track::Canary].into_iter().find_map(|t| {
                s.track(t)
                    .iter()
                    .any(|u| &u.instance.id == id)
                    .then(|| (s.name.to_string(), t))
            })
        })
    }

    /// The service a request for `host` and `path` goes to.
    pub(crate) fn route(&self, host: Option<&str>, path: &str) -> Option<&Arc<ServiceEntry>> {
        self.routes
            .iter()
            .find(|r| r.matches(host, path))
            .and_then(|r| self.services.get(r.service.as_str()))
    }

    pub(crate) fn entry(&self, name: &str) -> Option<&Arc<ServiceEntry>> {
        self.services.get(name)
    }

    pub(crate) fn upstreams(&self) -> impl Iterator<Item = &Arc<Upstream>> {
        self.services
            .values()
            .flat_map(|s| s.stable.iter().chain(s.canary.iter()))
    }

    // ---- builders: each returns a new table, or an error and no change ----

    pub(crate) fn with_service(
        &self,
        name: &str,
        spec: ServiceSpec,
        metrics: impl FnOnce(&str) -> Arc<ServiceMetrics>,
    ) -> Result<RouteTable, TableError> {
        if name.is_empty() {
            return Err(TableError::InvalidName(name.to_owned()));
        }
        if let Some(cookie) = &spec.sticky_cookie
            && (cookie.is_empty()
                || !cookie
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-'))
        {
            return Err(TableError::InvalidName(cookie.clone()));
        }
        let mut next = self.clone();
        let entry = match self.services.get(name) {
            Some(existing) => ServiceEntry {
                name: existing.name.clone(),
                spec,
                weights: existing.weights,
                stable: existing.stable.clone(),
                canary: existing.canary.clone(),
                metrics: existing.metrics.clone(),
            },
            None => ServiceEntry {
                name: Arc::from(name),
                spec,
                weights: Weights::ALL_STABLE,
                stable: Vec::new(),
                canary: Vec::new(),
                metrics: metrics(name),
            },
        };
        next.services.insert(entry.name.clone(), Arc::new(entry));
        next.generation += 1;
        Ok(next)
    }

    pub(crate) fn without_service(&self, name: &str) -> Result<RouteTable, TableError> {
        if !self.services.contains_key(name) {
            return Err(TableError::UnknownService(name.to_owned()));
        }
        let mut next = self.clone();
        next.services.remove(name);
        next.routes.retain(|r| r.service != name);
        next.generation += 1;
        Ok(next)
    }

    pub(crate) fn with_routes(&self, mut routes: Vec<Route>) -> Result<RouteTable, TableError> {
        for r in &routes {
            if !r.path_prefix.starts_with('/') {
                return Err(TableError::BadPrefix(r.path_prefix.clone()));
            }
            if !self.services.contains_key(r.service.as_str()) {
                return Err(TableError::RouteToUnknownService {
                    host: r.host.clone(),
                    prefix: r.path_prefix.clone(),
                    service: r.service.clone(),
                });
            }
        }
        // Most specific first: a route with a host before one without, then the
        // longer prefix. The sort is stable, so equal routes keep the caller's order.
        routes.sort_by(|a, b| {
            b.host
                .is_some()
                .cmp(&a.host.is_some())
                .then(b.path_prefix.len().cmp(&a.path_prefix.len()))
        });
        let mut next = self.clone();
        next.routes = routes;
        next.generation += 1;
        Ok(next)
    }

    pub(crate) fn with_weights(
        &self,
        service: &str,
        weights: Weights,
    ) -> Result<RouteTable, TableError> {
        self.with_entry(service, |e| {
            e.weights = weights;
            Ok(())
        })
    }

    pub(crate) fn with_instances(
        &self,
        service: &str,
        track: Track,
        instances: Vec<Instance>,
        state_for: &mut dyn FnMut(&Instance) -> Arc<InstanceState>,
    ) -> Result<RouteTable, TableError> {
        // The same id may not be on two services, nor twice on one service.
        for (i, inst) in instances.iter().enumerate() {
            if instances[..i].iter().any(|o| o.id == inst.id) {
                return Err(TableError::DuplicateInstance(
                    inst.id.to_string(),
                    service.to_owned(),
                ));
            }
            if let Some((owner, owner_track)) = self.locate_instance(&inst.id) {
                if owner != service {
                    return Err(TableError::InstanceInOtherService(
                        inst.id.to_string(),
                        owner,
                    ));
                }
                if owner_track != track {
                    return Err(TableError::DuplicateInstance(
                        inst.id.to_string(),
                        service.to_owned(),
                    ));
                }
            }
        }
        let upstreams = instances
            .into_iter()
            .map(|instance| {
                let authority = Authority::try_from(instance.addr.to_string().as_str())
                    .expect("a socket address is a valid URI authority");
                let state = state_for(&instance);
                Arc::new(Upstream {
                    instance,
                    authority,
                    state,
                })
            })
            .collect::<Vec<_>>();
        self.with_entry(service, move |e| {
            *e.track_mut(track) = upstreams;
            Ok(())
        })
    }

    fn with_entry(
        &self,
        service: &str,
        change: impl FnOnce(&mut ServiceEntry) -> Result<(), TableError>,
    ) -> Result<RouteTable, TableError> {
        let existing = self
            .services
            .get(service)
            .ok_or_else(|| TableError::UnknownService(service.to_owned()))?;
        let mut entry = ServiceEntry {
            name: existing.name.clone(),
            spec: existing.spec.clone(),
            weights: existing.weights,
            stable: existing.stable.clone(),
            canary: existing.canary.clone(),
            metrics: existing.metrics.clone(),
        };
        change(&mut entry)?;
        let mut next = self.clone();
        next.services.insert(entry.name.clone(), Arc::new(entry));
        next.generation += 1;
        Ok(next)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prefix_matches_on_segment_boundaries() {
        assert!(prefix_matches("/", "/anything"));
        assert!(prefix_matches("/api", "/api"));
        assert!(prefix_matches("/api", "/api/users"));
        assert!(!prefix_matches("/api", "/apis"));
        assert!(prefix_matches("/api/", "/api/x"));
        assert!(!prefix_matches("/api/", "/api"));
    }

    #[test]
    fn weights_always_sum_to_total() {
        for bp in [0, 1, 500, 9_999, 10_000] {
            let w = Weights::canary(bp).expect("in range");
            assert_eq!(w.stable_bp() + w.canary_bp(), TOTAL_WEIGHT_BP);
        }
        assert_eq!(
            Weights::canary(10_001),
            Err(TableError::WeightOutOfRange(10_001))
        );
        assert!(Weights::from_parts(5_000, 5_001).is_err());
        assert_eq!(
            Weights::from_parts(9_000, 1_000).map(Weights::canary_bp),
            Ok(1_000)
        );
    }

    #[test]
    fn track_parses_case_insensitively() {
        assert_eq!(Track::parse("Canary"), Some(Track::Canary));
        assert_eq!(Track::parse("STABLE"), Some(Track::Stable));
        assert_eq!(Track::parse("blue"), None);
    }
}
