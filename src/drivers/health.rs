//! HTTP health checks of instances: one probe ([`probe`]), waiting for a fresh
//! instance to become healthy ([`wait_healthy`]), and a background [`Monitor`]
//! that notices when a serving instance stops being healthy.
//!
//! Probes are plain HTTP/1.1 `GET`s through one shared client. They do not keep
//! connections alive: each probe opens a new connection, so a passing probe also
//! proves that the instance still accepts connections, which is what the proxy
//! needs from it.

use std::borrow::Cow;
use std::error::Error as _;
use std::net::SocketAddr;
use std::sync::OnceLock;
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Empty;
use hyper::header::USER_AGENT;
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;
use tokio::time::{Instant, MissedTickBehavior};

/// How often [`wait_healthy`] asks whether the process still runs while it
/// waits.
const EXIT_POLL: Duration = Duration::from_millis(50);
/// Shortest probe interval (tokio's intervals cannot be zero).
const MIN_INTERVAL: Duration = Duration::from_millis(10);

/// How an HTTP service's health is checked (`health = { … }` in the config).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthCheck {
    /// Path to `GET`, such as `/health`.
    pub path: String,
    /// Time between probes.
    pub interval: Duration,
    /// How long one probe may take.
    pub timeout: Duration,
    /// Consecutive passing probes that make an instance healthy.
    pub healthy: u32,
    /// Consecutive failing probes that make an instance unhealthy.
    pub unhealthy: u32,
    /// How long a new instance has to become healthy.
    pub start_timeout: Duration,
}

impl Default for HealthCheck {
    fn default() -> Self {
        Self {
            path: "/health".to_owned(),
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(2),
            healthy: 2,
            unhealthy: 3,
            start_timeout: Duration::from_secs(60),
        }
    }
}

/// Why one probe failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ProbeError {
    /// The instance answered, but not with 2xx.
    #[error("answered {0}")]
    Status(StatusCode),
    /// Nothing listens on the port (yet, or any more).
    #[error("connection refused")]
    Refused,
    /// Connecting failed for another reason.
    #[error("cannot connect: {0}")]
    Connect(String),
    /// No response headers within the probe's timeout.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The connection broke or the answer was not HTTP.
    #[error("request failed: {0}")]
    Request(String),
    /// The configured path cannot be requested.
    #[error("invalid health check path {path:?}: {reason}")]
    InvalidPath {
        /// The path as configured.
        path: String,
        /// What is wrong with it.
        reason: String,
    },
}

/// Why an instance did not become healthy.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum HealthFailure {
    /// The start timeout passed without enough consecutive passing probes.
    #[error("not healthy within the start timeout{}", last_probe(last_error))]
    Timeout {
        /// The last failed probe, if any probe failed.
        last_error: Option<ProbeError>,
    },
    /// The process exited before it became healthy.
    #[error("the instance exited before it became healthy")]
    Exited,
}

fn last_probe(last_error: &Option<ProbeError>) -> String {
    match last_error {
        Some(e) => format!(" (last probe: {e})"),
        None => String::new(),
    }
}

type ProbeClient = Client<HttpConnector, Empty<Bytes>>;

/// The one client all probes share.
fn client() -> &'static ProbeClient {
    static CLIENT: OnceLock<ProbeClient> = OnceLock::new();
    CLIENT.get_or_init(|| {
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(0)
            .build(connector)
    })
}

/// One health probe: `GET http://<addr><path>`. Passes on a 2xx answer within
/// `timeout`.
pub async fn probe(addr: SocketAddr, path: &str, timeout: Duration) -> Result<(), ProbeError> {
    let full_path = if path.starts_with('/') {
        Cow::Borrowed(path)
    } else {
        Cow::Owned(format!("/{path}"))
    };
    let invalid = |reason: String| ProbeError::InvalidPath {
        path: path.to_owned(),
        reason,
    };
    let uri: Uri = format!("http://{addr}{full_path}")
        .parse()
        .map_err(|e: hyper::http::uri::InvalidUri| invalid(e.to_string()))?;
    let request = Request::get(uri)
        .header(USER_AGENT, "cutover-health")
        .body(Empty::new())
        .map_err(|e| invalid(e.to_string()))?;
    match tokio::time::timeout(timeout, client().request(request)).await {
        Err(_) => Err(ProbeError::Timeout(timeout)),
        Ok(Err(e)) => Err(classify(&e)),
        Ok(Ok(response)) if response.status().is_success() => Ok(()),
        Ok(Ok(response)) => Err(ProbeError::Status(response.status())),
    }
}

fn classify(error: &hyper_util::client::legacy::Error) -> ProbeError {
    let mut cause = error.source();
    while let Some(e) = cause {
        if let Some(io) = e.downcast_ref::<std::io::Error>()
            && io.kind() == std::io::ErrorKind::ConnectionRefused
        {
            return ProbeError::Refused;
        }
        cause = e.source();
    }
    let mut message = error.to_string();
    let mut cause = error.source();
    while let Some(e) = cause {
        message.push_str(": ");
        message.push_str(&e.to_string());
        cause = e.source();
    }
    if error.is_connect() {
        ProbeError::Connect(message)
    } else {
        ProbeError::Request(message)
    }
}

/// Waits for a new instance to become healthy: `check.healthy` consecutive
/// passing probes, one per `check.interval` (the first right away). Gives up
/// when `check.start_timeout` has passed ([`HealthFailure::Timeout`]) or as soon
/// as `still_running()` returns false ([`HealthFailure::Exited`]), which is
/// asked every 50 ms while waiting. Returns how long it took.
pub async fn wait_healthy(
    addr: SocketAddr,
    check: &HealthCheck,
    mut still_running: impl FnMut() -> bool,
) -> Result<Duration, HealthFailure> {
    let started = Instant::now();
    let deadline = started + check.start_timeout;
    let needed = check.healthy.max(1);
    let mut passed = 0;
    let mut last_error = None;
    let mut ticks = tokio::time::interval(check.interval.max(MIN_INTERVAL));
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = ticks.tick() => {}
            () = exited(&mut still_running) => return Err(HealthFailure::Exited),
            () = tokio::time::sleep_until(deadline) => {
                return Err(HealthFailure::Timeout { last_error });
            }
        }
        if !still_running() {
            return Err(HealthFailure::Exited);
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(HealthFailure::Timeout { last_error });
        }
        let timeout = check.timeout.min(deadline - now);
        let result = tokio::select! {
            result = probe(addr, &check.path, timeout) => result,
            () = exited(&mut still_running) => return Err(HealthFailure::Exited),
        };
        match result {
            Ok(()) => {
                passed += 1;
                if passed >= needed {
                    return Ok(started.elapsed());
                }
            }
            Err(e) => {
                passed = 0;
                last_error = Some(e);
            }
        }
    }
}

/// Resolves once `still_running()` returns false.
async fn exited(still_running: &mut impl FnMut() -> bool) {
    while still_running() {
        tokio::time::sleep(EXIT_POLL).await;
    }
}

/// What a [`Monitor`] currently thinks of its instance.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum MonitorState {
    /// Passing probes (the initial state: monitored instances have already
    /// passed [`wait_healthy`]).
    Healthy,
    /// `unhealthy` consecutive probes failed; it takes `healthy` consecutive
    /// passing ones to be healthy again.
    Unhealthy {
        /// The probe failure that made the instance unhealthy.
        last_error: ProbeError,
    },
}

/// Probes a serving instance every interval in a background task and reports
/// when it has failed `unhealthy` consecutive probes (and when it recovers).
/// The task stops when the monitor is dropped.
#[derive(Debug)]
pub struct Monitor {
    state: watch::Receiver<MonitorState>,
    task: tokio::task::JoinHandle<()>,
}

impl Monitor {
    /// Starts monitoring the instance at `addr`; the first probe is one
    /// interval from now. Must be called within a tokio runtime.
    pub fn spawn(addr: SocketAddr, check: HealthCheck) -> Self {
        let (tx, rx) = watch::channel(MonitorState::Healthy);
        let task = tokio::spawn(monitor(addr, check, tx));
        Self { state: rx, task }
    }

    /// The current state.
    pub fn state(&self) -> MonitorState {
        self.state.borrow().clone()
    }

    /// A receiver that sees every change of state (for `select!` loops).
    pub fn subscribe(&self) -> watch::Receiver<MonitorState> {
        self.state.clone()
    }

    /// Waits until the instance is unhealthy (returns at once if it already
    /// is) and returns the probe failure that made it so. `None` only if the
    /// monitoring task has died.
    pub async fn wait_unhealthy(&mut self) -> Option<ProbeError> {
        let state = self
            .state
            .wait_for(|s| matches!(s, MonitorState::Unhealthy { .. }))
            .await
            .ok()?;
        match &*state {
            MonitorState::Unhealthy { last_error } => Some(last_error.clone()),
            MonitorState::Healthy => None,
        }
    }
}

impl Drop for Monitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn monitor(addr: SocketAddr, check: HealthCheck, tx: watch::Sender<MonitorState>) {
    let interval = check.interval.max(MIN_INTERVAL);
    let mut ticks = tokio::time::interval_at(Instant::now() + interval, interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let (to_healthy, to_unhealthy) = (check.healthy.max(1), check.unhealthy.max(1));
    let (mut passed, mut failed) = (0u32, 0u32);
    loop {
        ticks.tick().await;
        match probe(addr, &check.path, check.timeout).await {
            Ok(()) => {
                failed = 0;
                passed = passed.saturating_add(1);
                if passed >= to_healthy {
                    tx.send_if_modified(|state| {
                        let changed = *state != MonitorState::Healthy;
                        if changed {
                            tracing::info!(%addr, "instance healthy again");
                            *state = MonitorState::Healthy;
                        }
                        changed
                    });
                }
            }
            Err(e) => {
                passed = 0;
                failed = failed.saturating_add(1);
                if failed >= to_unhealthy {
                    tx.send_if_modified(|state| {
                        let changed = *state == MonitorState::Healthy;
                        if changed {
                            tracing::warn!(%addr, failed, "instance unhealthy: {e}");
                            *state = MonitorState::Unhealthy { last_error: e };
                        }
                        changed
                    });
                }
            }
        }
    }
}
