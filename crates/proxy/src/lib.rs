//! cutover's data plane: an HTTP reverse proxy whose route table can be changed
//! while it serves, without a failed request.
//!
//! A [`Proxy`] holds one immutable [`RouteTable`] behind an atomic pointer. Every
//! change — [`Proxy::set_weights`], [`Proxy::set_instances`],
//! [`Proxy::set_routes`], or several at once with [`Proxy::update`] — builds a
//! new table and stores it in one step, so the next request sees all of the
//! change and no request ever sees half of it. A request keeps the instance it
//! started on until its response has finished streaming.
//!
//! ```text
//! client ─► server.rs (accept, cap, TLS, timers, HTTP/1.1 + HTTP/2, redirect, shutdown)
//!             ├► certs.rs   certificates by SNI, TLS-ALPN-01 answers
//!             ├► h1/        HTTP/1.1 fast path: heads parsed in place, upstream
//!             │             connections driven by the client's task; hands
//!             │             what it does not handle to hyper (forward.rs)
//!             └► forward.rs (route, choose, clean headers, send, retry,
//!                            400/404/408/413/502/503/504)
//!                  ├► acme_http01.rs    pending ACME HTTP-01 answers, before routing
//!                  ├► host.rs           one host: missing / repeated / mismatched → 400
//!                  ├► table.rs          routes, services, tracks, weights (immutable)
//!                  ├► track_override.rs who may force a track (closed by default)
//!                  ├► balance.rs        track by override / cookie / weight; instance by P2C
//!                  ├► headers.rs        hop-by-hop, allowed Upgrade, X-Request-Id
//!                  ├► forwarded.rs      X-Forwarded-*, Forwarded, X-Real-IP (trusted proxies)
//!                  ├► upgrade.rs        WebSocket and other allowed Upgrade tunnels
//!                  └► body.rs           request body (limit, client faults); streamed
//!                       │               response; bookkeeping when it ends
//!                       ├► instance.rs  in-flight counts, drain, suspect marks
//!                       ├► observe.rs   sliding-window counts and HDR latency
//!                       └► metrics.rs   Prometheus counters and histograms
//! ```
//!
//! The proxy knows nothing about releases, deployments or health checks: the
//! caller decides which instances are in which track and when to drain them.

mod acme_http01;
mod balance;
mod body;
pub mod certs;
mod config;
mod forward;
mod forwarded;
mod h1;
mod headers;
mod host;
mod instance;
mod limits;
pub mod metrics;
mod observe;
mod server;
mod table;
mod track_override;
mod upgrade;

use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use arc_swap::ArcSwap;
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioTimer};
use tokio::net::TcpListener;

pub use acme_http01::{HTTP01_PATH_PREFIX, Http01Challenges};
pub use body::{BoxError, ResponseBody};
pub use certs::{Certificates, TlsError};
pub use config::*;
pub use headers::REQUEST_ID_HEADER;
pub use instance::{DrainOutcome, InFlight};
pub use limits::raise_nofile_limit;
pub use observe::{Observation, SLOT_WIDTH, StatusClasses};
pub use rustls;
pub use server::{
    LISTEN_BACKLOG, ListenerRole, ListenerSpec, bind_listener, bind_listener_reuse_port,
};
pub use table::{
    Instance, InstanceId, Route, RouteTable, ServiceSpec, ServiceView, TOTAL_WEIGHT_BP, TableError,
    Track, Weights,
};
pub use track_override::{TRACK_HEADER, TRACK_SECRET_HEADER, TrackOverride};

use forward::UpstreamClient;
use instance::{InstanceState, Registry, lock};
use observe::Window;

/// State shared by the proxy handle, its listeners and their connections.
pub(crate) struct Shared {
    pub(crate) config: ProxyConfig,
    pub(crate) table: ArcSwap<RouteTable>,
    /// Serialises writers so that read-modify-store of the table is atomic.
    writer: Mutex<()>,
    registry: Registry,
    pub(crate) client: UpstreamClient,
    /// Slots of [`ProxyConfig::max_connections`], shared by every listener.
    pub(crate) connections: Arc<tokio::sync::Semaphore>,
    /// Pending ACME HTTP-01 challenges, answered before routing.
    pub(crate) http01: Http01Challenges,
    /// This proxy's series that belong to no service, and its constant labels.
    pub(crate) metrics: Arc<metrics::ProxyMetrics>,
    /// Idle upstream connections of the HTTP/1 fast path.
    pub(crate) h1_pool: h1::upstream::Pool,
}

/// A handle to the proxy; clones share the same table and state.
#[derive(Clone)]
pub struct Proxy {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Proxy {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Proxy")
            .field("generation", &self.table().generation())
            .finish_non_exhaustive()
    }
}

/// A batch of table changes applied in one swap; see [`Proxy::update`].
#[derive(Debug)]
pub struct Update<'a> {
    table: RouteTable,
    registry: &'a Registry,
    history: Duration,
    /// The proxy's constant metric labels, for a new service's handles.
    labels: &'a [::metrics::Label],
}

impl Update<'_> {
    /// The table as this batch has changed it so far (at first, the current
    /// one): read-modify-write under the writer lock, so a change computed
    /// from it cannot lose a concurrent writer's change.
    pub fn table(&self) -> &RouteTable {
        &self.table
    }

    /// Declares a service or changes its spec (keeps its weights and instances).
    pub fn set_service(&mut self, name: &str, spec: ServiceSpec) -> Result<&mut Self, TableError> {
        self.table = self.table.with_service(name, spec, |n| {
            Arc::new(metrics::ServiceMetrics::new(self.labels, n))
        })?;
        Ok(self)
    }

    /// Removes a service and its routes.
    pub fn remove_service(&mut self, name: &str) -> Result<&mut Self, TableError> {
        self.table = self.table.without_service(name)?;
        Ok(self)
    }

    /// Replaces all routes.
    pub fn set_routes(&mut self, routes: Vec<Route>) -> Result<&mut Self, TableError> {
        self.table = self.table.with_routes(routes)?;
        Ok(self)
    }

    /// Sets a service's split.
    pub fn set_weights(
        &mut self,
        service: &str,
        weights: Weights,
    ) -> Result<&mut Self, TableError> {
        self.table = self.table.with_weights(service, weights)?;
        Ok(self)
    }

    /// Replaces the instances on one track of a service.
    pub fn set_instances(
        &mut self,
        service: &str,
        track: Track,
        instances: Vec<Instance>,
    ) -> Result<&mut Self, TableError> {
        let (registry, history) = (self.registry, self.history);
        // Live state is kept per id across tables: an instance drained and
        // added back keeps its counters.
        let mut state_for = |inst: &Instance| {
            registry.get_or_insert(&inst.id, || {
                InstanceState::new(Window::new(Instant::now(), history))
            })
        };
        self.table = self
            .table
            .with_instances(service, track, instances, &mut state_for)?;
        Ok(self)
    }
}

impl Proxy {
    /// A proxy with an empty table.
    pub fn new(config: ProxyConfig) -> Proxy {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(config.connect_timeout));
        connector.enforce_http(true);
        let client = Client::builder(TokioExecutor::new())
            .pool_timer(TokioTimer::new())
            .pool_idle_timeout(config.upstream_idle_timeout)
            .pool_max_idle_per_host(config.max_idle_upstream_connections)
            .build(connector);
        let connections = Arc::new(tokio::sync::Semaphore::new(
            config
                .max_connections
                .clamp(1, tokio::sync::Semaphore::MAX_PERMITS),
        ));
        let h1_pool = h1::upstream::Pool::new(
            config.max_idle_upstream_connections,
            config.upstream_idle_timeout,
        );
        let metrics = Arc::new(metrics::ProxyMetrics::new(metrics::constant_labels(
            &config.metric_labels,
        )));
        Proxy {
            shared: Arc::new(Shared {
                config,
                table: ArcSwap::from_pointee(RouteTable::default()),
                writer: Mutex::new(()),
                registry: Registry::default(),
                client,
                connections,
                http01: Http01Challenges::default(),
                metrics,
                h1_pool,
            }),
        }
    }

    /// The configuration the proxy was made with.
    pub fn config(&self) -> &ProxyConfig {
        &self.shared.config
    }

    /// The pending ACME HTTP-01 challenges every listener of this proxy
    /// answers (`GET /.well-known/acme-challenge/<token>`, any Host, before
    /// routing).
    pub fn http01(&self) -> &Http01Challenges {
        &self.shared.http01
    }

    /// The current table (a snapshot; later changes do not alter it).
    pub fn table(&self) -> Arc<RouteTable> {
        self.shared.table.load_full()
    }

    /// Applies several changes in one swap: either all of them or, if `change`
    /// returns an error, none. Returns the new table's generation.
    pub fn update<E>(
        &self,
        change: impl FnOnce(&mut Update<'_>) -> Result<(), E>,
    ) -> Result<u64, E> {
        let _writer = lock(&self.shared.writer);
        let current = self.shared.table.load_full();
        let mut update = Update {
            table: (*current).clone(),
            registry: &self.shared.registry,
            history: self.shared.config.observation_history,
            labels: self.shared.metrics.labels(),
        };
        change(&mut update)?;
        let table = update.table;
        let generation = table.generation();
        let table = Arc::new(table);
        self.shared.table.store(table.clone());
        self.shared.registry.sweep(
            table.upstreams().map(|u| &u.instance.id),
            Instant::now(),
            self.shared.config.observation_history,
        );
        Ok(generation)
    }

    /// Declares a service (or changes its spec).
    pub fn set_service(&self, name: &str, spec: ServiceSpec) -> Result<u64, TableError> {
        self.update(|u| u.set_service(name, spec).map(drop))
    }

    /// Removes a service and the routes to it.
    pub fn remove_service(&self, name: &str) -> Result<u64, TableError> {
        self.update(|u| u.remove_service(name).map(drop))
    }

    /// Replaces all routes; every route must name a declared service.
    pub fn set_routes(&self, routes: Vec<Route>) -> Result<u64, TableError> {
        self.update(|u| u.set_routes(routes).map(drop))
    }

    /// Sets the split of a service, seen by the next request.
    pub fn set_weights(&self, service: &str, weights: Weights) -> Result<u64, TableError> {
        self.update(|u| u.set_weights(service, weights).map(drop))
    }

    /// Replaces the instances of one track of a service.
    ///
    /// Removing an instance stops new requests to it at once; requests already
    /// on it finish there. Use [`Proxy::drain`] to wait for them.
    pub fn set_instances(
        &self,
        service: &str,
        track: Track,
        instances: Vec<Instance>,
    ) -> Result<u64, TableError> {
        self.update(|u| u.set_instances(service, track, instances).map(drop))
    }

    /// Requests and upgraded connections open on an instance right now (zero
    /// for an instance the proxy does not know).
    pub fn in_flight(&self, id: &InstanceId) -> InFlight {
        self.state(id).map(|s| s.in_flight()).unwrap_or_default()
    }

    /// Waits until the instance has no request in flight and no upgraded
    /// connection open, or `timeout` passes (then its upgraded connections are
    /// closed). Remove the instance from the table first, or new requests keep
    /// arriving.
    pub async fn drain(&self, id: &InstanceId, timeout: Duration) -> DrainOutcome {
        match self.state(id) {
            Some(state) => state.drain(timeout).await,
            None => DrainOutcome::Drained {
                waited: Duration::ZERO,
            },
        }
    }

    /// Observations of one instance over the last `span` (`None` for an
    /// instance the proxy does not know).
    pub fn observe(&self, id: &InstanceId, span: Duration) -> Option<Observation> {
        self.state(id).map(|s| s.observe(Instant::now(), span))
    }

    /// Observations of several instances merged, over the last `span`.
    pub fn observe_all<'a>(
        &self,
        ids: impl IntoIterator<Item = &'a InstanceId>,
        span: Duration,
    ) -> Observation {
        let now = Instant::now();
        let mut obs = Observation::empty(span);
        for id in ids {
            if let Some(state) = self.state(id) {
                state.merge_into(now, span, &mut obs);
            }
        }
        obs
    }

    /// Observations of the instances now on one track of a service.
    pub fn observe_track(&self, service: &str, track: Track, span: Duration) -> Observation {
        let table = self.table();
        let now = Instant::now();
        let mut obs = Observation::empty(span);
        if let Some(entry) = table.entry(service) {
            for u in entry.track(track) {
                u.state.merge_into(now, span, &mut obs);
            }
        }
        obs
    }

    /// Serves plain HTTP clients on `listener` until `shutdown` completes, then
    /// stops accepting and gives in-flight work up to
    /// [`ProxyConfig::shutdown_timeout`] to finish. Call once per listener.
    pub async fn serve(
        &self,
        listener: TcpListener,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        self.serve_with(listener, ListenerSpec::plain(), shutdown)
            .await
    }

    /// Serves clients on `listener` as `spec` says (TLS or not, proxy or
    /// redirect to HTTPS) until `shutdown` completes, then shuts down as
    /// [`Proxy::serve`]. The listeners of one proxy share its
    /// [`ProxyConfig::max_connections`].
    pub async fn serve_with(
        &self,
        listener: TcpListener,
        spec: ListenerSpec,
        shutdown: impl Future<Output = ()> + Send,
    ) -> std::io::Result<()> {
        server::serve(self.shared.clone(), listener, spec, shutdown).await
    }

    fn state(&self, id: &InstanceId) -> Option<Arc<InstanceState>> {
        let table = self.shared.table.load();
        table
            .upstreams()
            .find(|u| &u.instance.id == id)
            .map(|u| u.state.clone())
            .or_else(|| self.shared.registry.get(id))
    }
}
