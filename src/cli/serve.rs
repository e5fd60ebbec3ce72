//! `cutover serve`: the daemon. Takes the state store's lock (one daemon
//! per store), raises its open-file limit, opens the store, takes its
//! listeners from systemd or the daemon it replaces (`src/daemon/fds.rs`) or
//! binds them (the API: HTTPS with `[server] tls`, refused off loopback
//! without it unless `allow_plaintext`; the metrics listener if any; one
//! proxy listener per environment), re-adopts what still runs, and serves.
//!
//! Exit: SIGTERM/SIGINT stop accepting, finish in-flight requests and exit,
//! leaving the instances running for the next daemon to adopt (`cutover down`
//! or `--stop-instances-on-exit` stop them too). SIGUSR2 / `cutover upgrade`
//! and SIGHUP / `cutover reload` hand over to a new daemon
//! (`src/daemon/lifecycle.rs`). A daemon started by such a hand-over says
//! when it is prepared, adopts once told to go, and says when it serves.
//!
//! Before anything binds or starts, the store is checked: a damaged one, or
//! one a newer cutover wrote, is refused (by [`Store::open`]); a missing or
//! empty one is refused while instances of this app still run (found by the
//! drivers' own marks), unless `--adopt-orphans` says to take them back.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::{Arc, Mutex};

use cutover_proxy::{ListenerRole, ListenerSpec};
use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use super::output;
use crate::api::server::{ApiState, app, metrics_app};
use crate::api::{tls, token};
use crate::config::{ApiExposure, Config, LogFormat};
use crate::daemon::fds::{self, Inherited};
use crate::daemon::handover::{Predecessor, Relaunch};
use crate::daemon::lifecycle::{ControlListeners, Lifecycle};
use crate::daemon::lock::{DaemonLock, LockError};
use crate::daemon::signals;
use crate::drivers::{Drivers, FoundInstance};
use crate::edge;
use crate::exit::{self, CliError};
use crate::runtime::{Daemon, Takeover};
use crate::store::{Store, StoreError, StoreFile};

/// Set when the daemon logs as JSON: its own lines go through the log too.
static JSON_LOG: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// One line of the daemon's own on stderr: `cutover: …` as text, or an
/// `info` event of the log when it is JSON (one object per line, all of it).
macro_rules! say {
    ($($arg:tt)*) => {{
        let text = format!($($arg)*);
        if JSON_LOG.load(std::sync::atomic::Ordering::Relaxed) {
            tracing::info!(target: "cutover", "{text}");
        } else {
            eprintln!("cutover: {text}");
        }
    }};
}

/// How often buffered metric samples are folded into the histograms.
const METRICS_UPKEEP_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);
/// How long a daemon of several waits for its first try of the leader lock
/// (and, when it wins, its recovery) before its API answers anyway.
const CLUSTER_READY_LIMIT: std::time::Duration = std::time::Duration::from_secs(60);
/// How long, after the proxies stop, the API may finish its own requests.
const CONTROL_DRAIN: std::time::Duration = std::time::Duration::from_secs(10);

/// How `cutover serve` was asked to run.
#[derive(Debug, Default, Clone, Copy)]
pub struct ServeOptions {
    /// `--adopt-orphans`.
    pub adopt_orphans: bool,
    /// `--stop-instances-on-exit`: SIGTERM/SIGINT stop the instances too.
    pub stop_instances_on_exit: bool,
    /// `--log-format`: overrides `[server] log_format`.
    pub log_format: Option<LogFormat>,
}

/// A daemon started in this process.
pub struct RunningDaemon {
    /// The runtime.
    pub daemon: Arc<Daemon>,
    /// Where the API listens.
    pub api_addr: SocketAddr,
    /// Whether the API speaks HTTPS.
    pub api_tls: bool,
    /// Where `/metrics` is served alone, if configured.
    pub metrics_addr: Option<SocketAddr>,
    /// Where the dashboard is served (`/ui/`), if it is: the API's address
    /// or `[server] dashboard_listen`.
    pub dashboard_addr: Option<SocketAddr>,
    /// Where each environment's proxy listens.
    pub proxies: Vec<(String, SocketAddr)>,
    /// Hand-over and exit requests.
    pub lifecycle: Arc<Lifecycle>,
    control: Arc<Control>,
    stop: CancellationToken,
    tasks: JoinSet<()>,
}

impl RunningDaemon {
    /// Stops accepting, lets in-flight requests finish, then drains and stops
    /// every instance (`cutover demo`, tests; `cutover down`).
    pub async fn shutdown(self) {
        self.finish(true).await;
    }

    /// Stops accepting and lets in-flight requests (and upgraded
    /// connections, up to the drain timeout) finish; with `stop_instances`,
    /// then drains and stops every instance, else leaves them running for
    /// the next daemon to adopt.
    pub async fn finish(mut self, stop_instances: bool) {
        self.daemon.quiesce();
        self.daemon.stop_supervision().await;
        if let Some(cluster) = self.daemon.cluster() {
            // Quiesced: another daemon may lead from now on.
            cluster.stop();
        }
        self.control.stop();
        self.stop.cancel();
        while self.tasks.join_next().await.is_some() {}
        self.control.wait(CONTROL_DRAIN).await;
        if stop_instances {
            self.daemon.stop_all_instances().await;
        }
    }
}

/// Runs the daemon until it is asked to exit (SIGINT, SIGTERM, `cutover
/// down`) or has handed over to a new one.
pub async fn run(path: &Path, options: ServeOptions) -> Result<(), CliError> {
    // The log format may come from the config: read it first (a config
    // that does not load is reported by `start_daemon`'s caller anyway).
    let loaded = output::load_config_checked(path);
    let format = options
        .log_format
        .or_else(|| loaded.as_ref().ok().map(|c| c.server.log_format))
        .unwrap_or_default();
    init_tracing(format);
    // Before anything else: the binary's path (it may be replaced later) and
    // the descriptors this process inherited.
    let relaunch = Relaunch::this_process();
    let mut inherited = Inherited::from_env().map_err(|e| {
        CliError::new(
            exit::USAGE,
            format!("cannot use the inherited sockets: {e}"),
        )
    })?;
    let mut predecessor = Predecessor::from_inherited(&mut inherited);
    let started = match loaded {
        Ok(config) => {
            let start = Start {
                adopt_orphans: options.adopt_orphans,
                inherited,
                predecessor: predecessor.as_mut(),
                relaunch,
            };
            start_daemon(config, start).await
        }
        Err(e) => Err(e),
    };
    let running = match started {
        Ok(running) => running,
        Err(e) => {
            if let Some(p) = predecessor {
                p.failed(&e.message).await;
            }
            return Err(e);
        }
    };
    signals::handle(running.lifecycle.clone(), options.stop_instances_on_exit);
    if let Some(p) = predecessor {
        p.ready().await;
    }
    crate::daemon::notify::ready(&format!("serving {}", running.daemon.config().app.name));
    say!(
        "serving {} — API on {}://{} (pid {})",
        running.daemon.config().app.name,
        if running.api_tls { "https" } else { "http" },
        running.api_addr,
        std::process::id()
    );
    if let Some(addr) = running.metrics_addr {
        say!("metrics on http://{addr}/metrics");
    }
    if let Some(addr) = running.dashboard_addr {
        let scheme = if running.api_tls { "https" } else { "http" };
        say!("dashboard on {scheme}://{addr}/ui/");
    }
    for (env, addr) in &running.proxies {
        let https = running
            .daemon
            .environments()
            .any(|e| e.name() == env && e.config().tls.is_some());
        let scheme = if https { "https" } else { "http" };
        say!("environment {env} on {scheme}://{addr}");
    }
    running.lifecycle.exit_requested().cancelled().await;
    let stop_instances = running.lifecycle.stops_instances();
    if stop_instances {
        say!("stopping — finishing in-flight requests, then stopping instances");
    } else {
        say!("stopping — finishing in-flight requests; instances keep running for the next daemon");
    }
    running.finish(stop_instances).await;
    Ok(())
}

/// Starts the daemon for `config` in this process and returns once it serves.
pub async fn start(config: Config) -> Result<RunningDaemon, CliError> {
    start_with(config, false).await
}

/// [`start`], taking back running instances no record names when
/// `adopt_orphans` (`cutover serve --adopt-orphans`).
pub async fn start_with(config: Config, adopt_orphans: bool) -> Result<RunningDaemon, CliError> {
    let start = Start {
        adopt_orphans,
        inherited: Inherited::none(),
        predecessor: None,
        relaunch: None,
    };
    start_daemon(config, start).await
}

/// What a start takes besides the config.
struct Start<'a> {
    adopt_orphans: bool,
    inherited: Inherited,
    /// The daemon this one replaces, when it is a hand-over.
    predecessor: Option<&'a mut Predecessor>,
    /// How to start a successor (`None`: this daemon cannot hand over).
    relaunch: Option<Relaunch>,
}

async fn start_daemon(config: Config, start: Start<'_>) -> Result<RunningDaemon, CliError> {
    let Start {
        adopt_orphans,
        mut inherited,
        predecessor,
        relaunch,
    } = start;
    let takeover = if predecessor.is_some() {
        Takeover::Handover
    } else {
        Takeover::Restart
    };
    let exposure = api_exposure(&config)?;
    let file = Store::inspect(&config.state.url).map_err(store_error)?;
    // One daemon per store, before anything else changes.
    let lock = match (file.path(), inherited.take(fds::LOCK_NAME)) {
        (Some(db), Some(fd)) => Some(DaemonLock::inherit(fd, db).map_err(lock_error)?),
        (Some(db), None) => Some(DaemonLock::acquire(db).map_err(lock_error)?),
        (None, _) => None,
    };
    // A database on a server is new when it holds no migration yet. Who
    // drives it is decided by the election of `src/cluster` (its lock is the
    // one-daemon lock of `daemon/server_lock.rs`), once the listeners are up.
    let fresh = if matches!(file, StoreFile::Server(_)) {
        Store::is_new(&config.state.url)
            .await
            .map_err(store_error)?
    } else {
        file.is_fresh()
    };
    let orphans = if (fresh || adopt_orphans) && takeover == Takeover::Restart {
        find_running(&config, adopt_orphans).await?
    } else {
        Vec::new()
    };
    if fresh && !orphans.is_empty() && !adopt_orphans {
        return Err(refuse_empty_store(&file, &orphans));
    }
    if file.is_fresh()
        && let Some(path) = file.path()
    {
        // The -wal of a lost store must not be replayed into the new one.
        let moved = Store::set_aside_journal(path).map_err(|e| {
            CliError::new(
                exit::FAILURE,
                format!(
                    "cannot move aside the write-ahead log of the lost state store {}: {e}; move {0}-wal and {0}-shm away by hand",
                    path.display()
                ),
            )
        })?;
        for m in moved {
            tracing::warn!(path = %m.display(), "moved aside the journal of a lost state store");
        }
    }
    raise_open_file_limit();
    let metrics = install_metrics();
    if let Some(handle) = &metrics {
        spawn_metrics_upkeep(handle.clone());
    }
    let store = Store::open(&config.state.url).await.map_err(store_error)?;
    let token = token::load_or_create(&token::token_path(&config.base_dir))?;
    let api_listen = config.server.listen;
    let metrics_listen = config.server.metrics_listen;
    let dashboard = config.server.dashboard;
    let dashboard_listen = config.server.dashboard_listen.filter(|_| dashboard);
    let dashboard_session = config.server.dashboard_session;
    if config.server.dashboard_plaintext_refused() {
        return Err(CliError::new(
            exit::USAGE,
            format!(
                "refusing to serve the dashboard on {} as plain HTTP off loopback: add [server] tls = {{ cert = \"api.pem\", key = \"api.key\" }}, or set [server] allow_plaintext = true if a network you trust protects it",
                dashboard_listen.map_or_else(String::new, |a| a.to_string())
            ),
        ));
    }
    let api_tls = match &config.server.tls {
        Some(files) => Some(tls::server_config(files).map_err(|e| {
            CliError::new(
                exit::FAILURE,
                format!(
                    "cannot serve the API over HTTPS ([server] tls): {e}; fix the files or the paths in the config"
                ),
            )
        })?),
        None => None,
    };
    let daemon =
        Daemon::new(config, store).map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;

    // Listen before adopting, so a port clash fails fast and changes nothing.
    let mut sockets = Sockets::default();
    let api_listener =
        sockets.listen(&mut inherited, "api", api_listen, "the API (server.listen)")?;
    let api_addr = api_listener
        .local_addr()
        .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
    let metrics_listener = match metrics_listen {
        Some(addr) => Some(sockets.listen(
            &mut inherited,
            "metrics",
            addr,
            "/metrics ([server] metrics_listen)",
        )?),
        None => None,
    };
    let dashboard_listener = match dashboard_listen {
        Some(addr) => Some(sockets.listen(
            &mut inherited,
            crate::cli::systemd::DASHBOARD,
            addr,
            "the dashboard ([server] dashboard_listen)",
        )?),
        None => None,
    };
    let dashboard_addr = match &dashboard_listener {
        Some(listener) => Some(
            listener
                .local_addr()
                .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?,
        ),
        None if dashboard => Some(api_addr),
        None => None,
    };
    let metrics_addr = match &metrics_listener {
        Some(listener) => Some(
            listener
                .local_addr()
                .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?,
        ),
        None => None,
    };
    let mut proxy_listeners = Vec::new();
    for env in daemon.environments() {
        let what = format!("environment {} (listen)", env.name());
        let name = format!("env-{}", env.name());
        let listener = sockets.listen(&mut inherited, &name, env.config().listen, &what)?;
        let redirect = match env.config().redirect_listen {
            Some(addr) => {
                let what = format!("environment {} (redirect_listen)", env.name());
                let name = format!("redirect-{}", env.name());
                Some(sockets.listen(&mut inherited, &name, addr, &what)?)
            }
            None => None,
        };
        let preview = match env.config().preview_listen {
            Some(addr) => {
                let what = format!("environment {} (preview_listen)", env.name());
                let name = format!("preview-{}", env.name());
                Some(sockets.listen(&mut inherited, &name, addr, &what)?)
            }
            None => None,
        };
        proxy_listeners.push((env.clone(), listener, redirect, preview));
    }
    let cluster = if crate::cluster::is_postgres(&daemon.config().state.url) {
        let host = super::output::selected_host()
            .map(str::to_owned)
            .unwrap_or_else(crate::cluster::machine_host_name);
        let scheme = if api_tls.is_some() { "https" } else { "http" };
        let me = crate::cluster::Member::new(&host, &format!("{scheme}://{api_addr}"));
        Some(
            crate::cluster::Cluster::connect(
                &daemon.config().state.url,
                &daemon.config().app.name,
                me,
            )
            .await
            .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?,
        )
    } else {
        None
    };
    for unused in inherited.unused() {
        tracing::warn!(name = %unused, "an inherited socket matches no listener of the config; it is closed");
    }
    drop(inherited);
    // Certificates before adopting too: a broken file stops the start here.
    let stop = CancellationToken::new();
    let mut edges = Vec::new();
    for env in daemon.environments() {
        if let Some(tls) = &env.config().tls {
            let started = edge::start_environment_tls(
                env.name(),
                tls,
                &edge::acme_dir(&daemon.config().base_dir, env.name()),
                env.proxy(),
                Arc::new(daemon.store().clone()),
                stop.clone(),
            )
            .await
            .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
            edges.push((env.name().to_owned(), Arc::new(started)));
        }
    }
    // Always: SIGHUP must never stop the daemon (its default action), even
    // with no certificate files to read again.
    let reload = edges.iter().map(|(_, e)| e.clone()).collect();
    edge::spawn_reload_on_sighup(reload, stop.clone());

    if let Some(predecessor) = predecessor {
        // Everything that can fail without touching the world is done: the
        // old daemon pauses its releases and tells this one to take over.
        predecessor
            .prepared()
            .await
            .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
    }
    // Several daemons on one PostgreSQL store: this one follows (quiesced,
    // its proxies applying the leader's tables) until it wins the election,
    // which then runs the recovery below (`src/cluster`).
    if let Some(cluster) = &cluster {
        if adopt_orphans {
            return Err(CliError::new(
                exit::USAGE,
                "--adopt-orphans takes back instances for one daemon: with a PostgreSQL store, stop the other daemons, start this one alone with --adopt-orphans, then start the others",
            ));
        }
        daemon.quiesce();
        daemon.join_cluster(cluster.clone());
        if takeover == Takeover::Handover {
            cluster.handed_over();
        }
        cluster.catch_up(&daemon).await;
        cluster.start(daemon.clone());
        // As a lone daemon: leading and recovered, or following, before the
        // API answers.
        cluster.wait_ready(CLUSTER_READY_LIMIT).await;
        say!(
            "daemon {} (host {}) joined the daemons sharing this store; it follows until it wins the leader lock",
            cluster.me().daemon_id,
            cluster.me().host
        );
    }
    if cluster.is_none() && adopt_orphans {
        let report = daemon.adopt_orphans(orphans).await.map_err(|e| {
            CliError::new(
                exit::FAILURE,
                format!("cannot record the running instances (--adopt-orphans): {e}"),
            )
        })?;
        let lines = report.describe();
        if lines.is_empty() {
            say!("--adopt-orphans: every running instance has a record; nothing to adopt");
        }
        for line in lines {
            say!("--adopt-orphans: {line}");
        }
    }
    if cluster.is_none() {
        let report = daemon
            .recover_from(takeover)
            .await
            .map_err(|e| CliError::new(exit::FAILURE, format!("recovering state: {e}")))?;
        daemon.supervise();
        if !report.adopted.is_empty()
            || !report.stopped.is_empty()
            || !report.interrupted.is_empty()
        {
            tracing::info!(
                adopted = report.adopted.len(),
                stopped = report.stopped.len(),
                interrupted = report.interrupted.len(),
                ?takeover,
                "took over the running instances"
            );
        }
    }

    let mut tasks = JoinSet::new();
    tasks.spawn(daemon.clone().keep_logs(stop.clone()));
    // Notifications ([notify]): only this daemon, which holds the store's
    // lock (in a cluster: it waits while quiesced, so only the leader sends).
    // The cursors start at the end of the history as it is now, before the
    // API answers: a deploy asked for at once is notified, not skipped.
    if let Err(e) = daemon.store().notify_cursors().await {
        tracing::warn!(error = %e, "notifications: cannot read the cursors; trying again");
    }
    tasks.spawn(crate::webhook::run(daemon.clone(), stop.clone()));
    // DORA's four keys as gauges (crate::dora::exporter), while a recorder
    // is installed to read them.
    if metrics.is_some() {
        tasks.spawn(crate::dora::exporter::run(daemon.clone(), stop.clone()));
    }
    let mut proxies = Vec::new();
    for (env, listener, redirect, preview) in proxy_listeners {
        let addr = listener
            .local_addr()
            .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
        proxies.push((env.name().to_owned(), addr));
        let tls = edges
            .iter()
            .find(|(name, _)| name == env.name())
            .map(|(_, e)| e.server_config());
        let mut specs = vec![(
            listener,
            ListenerSpec {
                tls,
                role: ListenerRole::Proxy,
            },
        )];
        if let Some(redirect) = redirect {
            let role = ListenerRole::RedirectToHttps {
                https_port: addr.port(),
            };
            specs.push((redirect, ListenerSpec { tls: None, role }));
        }
        // The preview: its own proxy (own table, own observations), plain HTTP.
        if let (Some(listener), Some(proxy)) = (preview, env.preview().cloned()) {
            let stop = stop.clone();
            let spec = ListenerSpec {
                tls: None,
                role: ListenerRole::Proxy,
            };
            tasks.spawn(async move {
                if let Err(e) = proxy
                    .serve_with(listener, spec, stop.cancelled_owned())
                    .await
                {
                    tracing::error!(error = %e, "preview listener failed");
                }
            });
        }
        for (listener, spec) in specs {
            let proxy = env.proxy().clone();
            let stop = stop.clone();
            tasks.spawn(async move {
                if let Err(e) = proxy
                    .serve_with(listener, spec, stop.cancelled_owned())
                    .await
                {
                    tracing::error!(error = %e, "proxy listener failed");
                }
            });
        }
    }
    let lifecycle_slot = crate::api::daemon::LifecycleSlot::default();
    let metrics = metrics.map(|handle| crate::telemetry::Telemetry::new(handle, daemon.clone()));
    let state = ApiState {
        daemon: daemon.clone(),
        token: Arc::from(token.as_str()),
        metrics: metrics.clone(),
        metrics_need_token: exposure != ApiExposure::Loopback,
        lifecycle: lifecycle_slot.clone(),
        stop: stop.clone(),
    };
    let has_tls = api_tls.is_some();
    if let (Some((store, _)), Some(files)) = (&api_tls, daemon.config().server.tls.clone()) {
        tasks.spawn(tls::keep_fresh(store.clone(), files, stop.clone()));
    }
    let into_std = |l: TcpListener| {
        l.into_std()
            .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))
    };
    let metrics = match metrics_listener {
        Some(l) => Some((into_std(l)?, metrics_app(metrics))),
        None => None,
    };
    let settings = crate::dashboard::Settings {
        tls: has_tls,
        session_ttl: dashboard_session,
    };
    let (api_router, dashboard) = match dashboard_listener {
        Some(l) => (
            app(state.clone()),
            Some((into_std(l)?, crate::dashboard::router(state, settings))),
        ),
        None if dashboard => (
            app(state.clone()).merge(crate::dashboard::router(state, settings)),
            None,
        ),
        None => (app(state), None),
    };
    let control = Arc::new(Control {
        api: into_std(api_listener)?,
        api_router,
        api_tls: api_tls.map(|(_, config)| config),
        dashboard,
        metrics,
        stop: Mutex::new(CancellationToken::new()),
        tasks: TaskTracker::new(),
    });
    control.start();
    let lifecycle = Arc::new(Lifecycle::new(
        daemon.clone(),
        sockets.kept,
        lock,
        relaunch,
        Box::new(control.clone()),
    ));
    let _ = lifecycle_slot.set(lifecycle.clone());
    Ok(RunningDaemon {
        daemon,
        api_addr,
        api_tls: has_tls,
        metrics_addr,
        dashboard_addr,
        proxies,
        lifecycle,
        control,
        stop,
        tasks,
    })
}

/// A copy of every listening socket, by name: kept open for the life of the
/// daemon (so a hand-over can pass them on, and connections wait in the
/// kernel's queue while no loop accepts).
#[derive(Default)]
struct Sockets {
    kept: Vec<(String, std::net::TcpListener)>,
}

impl Sockets {
    /// The listener `name` on `addr`: inherited, or bound with the proxy's
    /// long listen backlog (so connections past `limits.max_connections`
    /// wait in the kernel's queue instead of being dropped).
    fn listen(
        &mut self,
        inherited: &mut Inherited,
        name: &str,
        addr: SocketAddr,
        what: &str,
    ) -> Result<TcpListener, CliError> {
        let failed = |e: String| {
            CliError::new(
                exit::FAILURE,
                format!("cannot listen on {addr} for {what}: {e}"),
            )
        };
        let std = match inherited.take_listener(name, addr) {
            Ok(Some(listener)) => {
                tracing::info!(name, %addr, source = ?inherited.source(), "listening on an inherited socket");
                listener
            }
            Ok(None) => cutover_proxy::bind_listener(addr)
                .and_then(TcpListener::into_std)
                .map_err(|e| failed(e.to_string()))?,
            Err(e) => return Err(CliError::new(exit::USAGE, e.to_string())),
        };
        let kept = std.try_clone().map_err(|e| failed(e.to_string()))?;
        self.kept.push((name.to_owned(), kept));
        TcpListener::from_std(std).map_err(|e| failed(e.to_string()))
    }
}

/// The API's and metrics' accept loops, which a hand-over stops (and starts
/// again if it fails) on the same sockets.
struct Control {
    api: std::net::TcpListener,
    api_router: axum::Router,
    api_tls: Option<Arc<cutover_proxy::rustls::ServerConfig>>,
    /// The dashboard on its own listener (`[server] dashboard_listen`),
    /// with the API's TLS.
    dashboard: Option<(std::net::TcpListener, axum::Router)>,
    metrics: Option<(std::net::TcpListener, axum::Router)>,
    stop: Mutex<CancellationToken>,
    tasks: TaskTracker,
}

impl Control {
    /// Waits up to `limit` for the accept loops and their requests to end.
    async fn wait(&self, limit: std::time::Duration) {
        self.tasks.close();
        if tokio::time::timeout(limit, self.tasks.wait())
            .await
            .is_err()
        {
            tracing::warn!(?limit, "API requests still running at exit were cut");
        }
    }

    fn token(&self) -> std::sync::MutexGuard<'_, CancellationToken> {
        self.stop.lock().unwrap_or_else(|p| p.into_inner())
    }
}

/// A second accept loop on the socket `listener` accepts on.
fn same_socket(listener: &std::net::TcpListener) -> std::io::Result<TcpListener> {
    TcpListener::from_std(listener.try_clone()?)
}

impl ControlListeners for Arc<Control> {
    fn stop(&self) {
        self.token().cancel();
    }

    fn start(&self) {
        let stop = {
            let mut token = self.token();
            if token.is_cancelled() {
                *token = CancellationToken::new();
            }
            token.clone()
        };
        let mut https = vec![(&self.api, &self.api_router, "API")];
        if let Some((listener, router)) = &self.dashboard {
            https.push((listener, router, "dashboard"));
        }
        for (socket, router, what) in https {
            match same_socket(socket) {
                Ok(listener) => {
                    let (router, tls, stop) = (router.clone(), self.api_tls.clone(), stop.clone());
                    self.tasks.spawn(async move {
                        match tls {
                            Some(config) => tls::serve(listener, config, router, stop).await,
                            None => {
                                let served = axum::serve(listener, router)
                                    .with_graceful_shutdown(stop.cancelled_owned())
                                    .await;
                                if let Err(e) = served {
                                    tracing::error!(error = %e, "{what} listener failed");
                                }
                            }
                        }
                    });
                }
                Err(e) => tracing::error!(error = %e, "cannot accept on the {what}'s socket"),
            }
        }
        if let Some((metrics, router)) = &self.metrics {
            match same_socket(metrics) {
                Ok(listener) => {
                    let router = router.clone();
                    self.tasks.spawn(async move {
                        let served = axum::serve(listener, router)
                            .with_graceful_shutdown(stop.cancelled_owned())
                            .await;
                        if let Err(e) = served {
                            tracing::error!(error = %e, "metrics listener failed");
                        }
                    });
                }
                Err(e) => tracing::error!(error = %e, "cannot accept on the metrics socket"),
            }
        }
    }
}

/// The exit code and message of a lock that cannot be taken.
fn lock_error(e: LockError) -> CliError {
    let code = match e {
        LockError::Held { .. } => exit::ALREADY_RUNNING,
        _ => exit::FAILURE,
    };
    CliError::new(code, e.to_string())
}

/// Every running instance of this app, by the drivers' own marks. When the
/// config uses containers and the Docker Engine does not answer, a plain
/// start goes on with a warning (nothing can be adopted or removed then, and
/// a first start with Docker down must work), but `--adopt-orphans`, which
/// was asked to take them back, refuses.
async fn find_running(
    config: &Config,
    adopt_orphans: bool,
) -> Result<Vec<FoundInstance>, CliError> {
    let environments: Vec<String> = config.environments.keys().cloned().collect();
    let drivers = Drivers::new();
    let mut found = drivers.find_running_processes(
        &config.app.name,
        &config.base_dir.join(".cutover").join("logs"),
        &environments,
    );
    if config.services.values().any(|s| s.docker.is_some()) {
        match drivers
            .find_running_containers(&config.app.name, &environments)
            .await
        {
            Ok(containers) => found.extend(containers),
            Err(e) if adopt_orphans => {
                return Err(CliError::new(
                    exit::FAILURE,
                    format!(
                        "cannot look for running containers of {} to adopt (--adopt-orphans): {e}",
                        config.app.name
                    ),
                ));
            }
            Err(e) => tracing::warn!(
                "the state store is new and the Docker Engine does not answer, so containers of this app that may still run cannot be found ({e}); if any do, stop this daemon and run `cutover serve --adopt-orphans` once Docker answers"
            ),
        }
    }
    Ok(found)
}

/// The refusal of a missing or empty store while instances run.
fn refuse_empty_store(file: &StoreFile, orphans: &[FoundInstance]) -> CliError {
    let what = match file {
        StoreFile::Missing(p) => format!("the state store {} is missing", p.display()),
        StoreFile::Empty(p) => format!("the state store {} is empty (0 bytes)", p.display()),
        StoreFile::Present(p) => format!("the state store {} is new", p.display()),
        StoreFile::InMemory => "the state store is empty".to_owned(),
        StoreFile::Server(url) => format!("the state store at {url} holds no store yet"),
    };
    let mut list: Vec<String> = orphans
        .iter()
        .take(5)
        .map(|o| {
            format!(
                "{} {} {} ({})",
                o.environment,
                o.service,
                o.version,
                o.handle.describe()
            )
        })
        .collect();
    if orphans.len() > 5 {
        list.push(format!("and {} more", orphans.len() - 5));
    }
    CliError::new(
        exit::FAILURE,
        format!(
            "refusing to start: {what}, but {} instance(s) of this app still run: {}. Starting with an \
             empty store would orphan them; nothing was started or stopped. Restore the store from its backup \
             (`cutover backup restore --state ID`; `cutover backup list --state` lists them), or run \
             `cutover serve --adopt-orphans` to take them back (or stop those that cannot serve) and record it. \
             See docs/operations.md.",
            orphans.len(),
            list.join(", ")
        ),
    )
}

/// The message of a store that cannot be opened: the store's own error
/// says where and what to do; its cause, if any, is added once.
fn store_error(e: StoreError) -> CliError {
    let message = match &e {
        StoreError::Open { source, url } if url.starts_with("postgres") => format!(
            "{e}: {source}; check [state] url: that the server answers, the database exists and the role \
             may connect and create tables in it"
        ),
        StoreError::Open { source, .. } => {
            format!("{e}: {source}; check the path and permissions of [state] url")
        }
        StoreError::Migrate(source) => format!("{e}: {source}"),
        _ => e.to_string(),
    };
    CliError::new(exit::FAILURE, message)
}

/// How far the API is exposed; refuses plain HTTP off loopback unless the
/// config allows it, and warns (at every start) when it does. The config
/// loader refuses the same already; this also covers configs built in code.
fn api_exposure(config: &Config) -> Result<ApiExposure, CliError> {
    let server = &config.server;
    let exposure = server.exposure();
    match exposure {
        ApiExposure::PlaintextRefused => Err(CliError::new(
            exit::USAGE,
            format!(
                "refusing to serve the API on {} as plain HTTP off loopback: add [server] tls = {{ cert = \"api.pem\", key = \"api.key\" }}, or set [server] allow_plaintext = true if a network you trust protects it",
                server.listen
            ),
        )),
        ApiExposure::PlaintextAllowed => {
            tracing::warn!(
                listen = %server.listen,
                "the API listens off loopback as plain HTTP (allow_plaintext = true): its token and every request can be read and replayed on the network; give it [server] tls"
            );
            Ok(exposure)
        }
        ApiExposure::Loopback | ApiExposure::Tls => Ok(exposure),
    }
}

/// Raises the soft open-file limit to the hard limit: every client
/// connection, upstream connection, log file and database handle counts
/// against it.
fn raise_open_file_limit() {
    match cutover_proxy::raise_nofile_limit() {
        Ok((before, now)) if now > before => {
            tracing::info!(before, now, "raised the open-file limit (RLIMIT_NOFILE)");
        }
        Ok((_, now)) => tracing::info!(limit = now, "open-file limit (RLIMIT_NOFILE)"),
        Err(e) => tracing::warn!(
            error = %e,
            "could not raise the open-file limit; raise it with `ulimit -n` or LimitNOFILE= in the systemd unit"
        ),
    }
}

/// Installs the Prometheus recorder once per process (before any proxy serves).
fn install_metrics() -> Option<PrometheusHandle> {
    static HANDLE: std::sync::OnceLock<Option<PrometheusHandle>> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(
                    Matcher::Full(cutover_proxy::metrics::REQUEST_DURATION_SECONDS.to_owned()),
                    cutover_proxy::metrics::DURATION_BUCKETS_SECONDS,
                )
                .ok()?
                .set_buckets_for_metric(
                    Matcher::Full(crate::telemetry::DEPLOYMENT_DURATION_SECONDS.to_owned()),
                    crate::telemetry::DURATION_BUCKETS_SECONDS,
                )
                .ok()?;
            let handle = builder.install_recorder().ok()?;
            cutover_proxy::metrics::describe();
            crate::telemetry::describe();
            Some(handle)
        })
        .clone()
}

/// Histograms are buffered until the recorder's upkeep drains them; without a
/// periodic upkeep a daemon nobody scrapes would grow without bound.
fn spawn_metrics_upkeep(handle: PrometheusHandle) {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(METRICS_UPKEEP_INTERVAL);
            loop {
                tick.tick().await;
                handle.run_upkeep();
            }
        });
    });
}

/// The daemon's log on stderr: `CUTOVER_LOG` filters it (default `info`);
/// as text for people (coloured on a terminal unless `NO_COLOR`), or with
/// `json` one object per line (`timestamp`, `level`, `target`, `fields`
/// with `message`, and the current spans) for log shippers. What is logged
/// never holds a secret (tokens, passwords and keys are never fields of a
/// log event), in either format.
fn init_tracing(format: LogFormat) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_env("CUTOVER_LOG").unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder.with_ansi(output::use_color()).try_init(),
        LogFormat::Json => {
            JSON_LOG.store(true, std::sync::atomic::Ordering::Relaxed);
            builder
                .json()
                .with_current_span(true)
                .with_span_list(false)
                .try_init()
        }
    };
}
