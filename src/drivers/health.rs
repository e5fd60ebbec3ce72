//! HTTP health checks of instances: one probe ([`probe`]), waiting for a fresh
//! instance to become healthy ([`wait_healthy`]), a background [`Monitor`]
//! that notices when a serving instance stops being healthy, and a
//! [`GroupMonitor`] that notices when none of a group of instances (the old
//! release during a rollout) is healthy any more, or one is again. Both
//! monitors run the same probe loop; only what counts as a passing round
//! differs.
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
use futures_util::StreamExt;
use futures_util::stream::FuturesUnordered;
use http_body_util::Empty;
use hyper::header::USER_AGENT;
use hyper::{Request, StatusCode, Uri};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use tokio::sync::watch;
use tokio::time::{Instant, Interval, MissedTickBehavior};

use super::FOREVER;

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
    let deadline = super::deadline(started, check.start_timeout);
    let needed = check.healthy.max(1);
    let mut passed: u32 = 0;
    let mut last_error = None;
    let mut ticks = tokio::time::interval(probe_interval(check));
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
        let timeout = check.timeout.min(deadline.saturating_duration_since(now));
        let result = tokio::select! {
            result = probe(addr, &check.path, timeout) => result,
            () = exited(&mut still_running) => return Err(HealthFailure::Exited),
        };
        match result {
            Ok(()) => {
                passed = passed.saturating_add(1);
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
    let mut ticks = probe_ticks(&check);
    let mut streak = Streak::new(check.healthy, check.unhealthy);
    loop {
        ticks.tick().await;
        let result = probe(addr, &check.path, check.timeout).await;
        match (streak.record(result.is_ok()), result) {
            (Some(true), _) => {
                tx.send_if_modified(|state| {
                    let changed = *state != MonitorState::Healthy;
                    if changed {
                        tracing::info!(%addr, "instance healthy again");
                        *state = MonitorState::Healthy;
                    }
                    changed
                });
            }
            (Some(false), Err(e)) => {
                tx.send_if_modified(|state| {
                    let changed = *state == MonitorState::Healthy;
                    if changed {
                        tracing::warn!(%addr, failed = streak.failed, "instance unhealthy: {e}");
                        *state = MonitorState::Unhealthy { last_error: e };
                    }
                    changed
                });
            }
            _ => {}
        }
    }
}

/// Watches a group of instances (the old release of a service during a
/// rollout, which a rollback would switch back to) in a background task: the
/// group is healthy while at least one of its instances passes its probe,
/// and unhealthy once `unhealthy` consecutive rounds found none that did. A
/// single round in which one instance passes makes it healthy again.
///
/// Every interval (the first one interval after [`GroupMonitor::spawn`]) all
/// instances are probed at once, and the round passes as soon as one answers.
/// The group starts healthy. The task stops when the monitor is dropped.
#[derive(Debug)]
pub struct GroupMonitor {
    state: watch::Receiver<bool>,
    /// What [`GroupMonitor::next_change`] last returned (initially `true`).
    reported: bool,
    task: tokio::task::JoinHandle<()>,
}

impl GroupMonitor {
    /// Starts watching the instances at `addrs` with `check`'s path,
    /// interval, probe timeout and `unhealthy` count. An empty group never
    /// passes a round, so it turns unhealthy. Must be called within a tokio
    /// runtime.
    pub fn spawn(addrs: Vec<SocketAddr>, check: HealthCheck) -> Self {
        let (tx, rx) = watch::channel(true);
        let task = tokio::spawn(group_monitor(addrs, check, tx));
        Self {
            state: rx,
            reported: true,
            task,
        }
    }

    /// Whether the group has a healthy instance, as of the last round.
    pub fn is_healthy(&self) -> bool {
        *self.state.borrow()
    }

    /// A receiver that sees every change (`true`: healthy), for `select!`
    /// loops.
    pub fn subscribe(&self) -> watch::Receiver<bool> {
        self.state.clone()
    }

    /// Waits until the group's health differs from what this method last
    /// returned (at first: from healthy), and returns it: `false` when no
    /// instance of the group is healthy any more, `true` when one is again.
    /// A change that is undone before this is called again is not reported.
    /// `None` only if the monitoring task has died.
    pub async fn next_change(&mut self) -> Option<bool> {
        let reported = self.reported;
        let now = *self
            .state
            .wait_for(|healthy| *healthy != reported)
            .await
            .ok()?;
        self.reported = now;
        Some(now)
    }
}

impl Drop for GroupMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn group_monitor(addrs: Vec<SocketAddr>, check: HealthCheck, tx: watch::Sender<bool>) {
    let mut ticks = probe_ticks(&check);
    // Healthy again after one passing round, as the old release only has to
    // be there to switch back to.
    let mut streak = Streak::new(1, check.unhealthy);
    loop {
        ticks.tick().await;
        let result = probe_any(&addrs, &check.path, check.timeout).await;
        let Some(healthy) = streak.record(result.is_ok()) else {
            continue;
        };
        tx.send_if_modified(|state| {
            let changed = *state != healthy;
            if changed {
                *state = healthy;
                match &result {
                    Ok(()) => tracing::info!(?addrs, "an instance of the group is healthy again"),
                    Err(Some(e)) => {
                        tracing::warn!(
                            ?addrs,
                            failed = streak.failed,
                            "no instance of the group is healthy (last probe: {e})"
                        );
                    }
                    Err(None) => tracing::warn!("the group has no instance to probe"),
                }
            }
            changed
        });
    }
}

/// Probes every address at once; `Ok` as soon as one passes (the other
/// probes are dropped), else the last failure (`None`: no address).
async fn probe_any(
    addrs: &[SocketAddr],
    path: &str,
    timeout: Duration,
) -> Result<(), Option<ProbeError>> {
    let mut probes: FuturesUnordered<_> = addrs
        .iter()
        .map(|addr| probe(*addr, path, timeout))
        .collect();
    let mut last_error = None;
    while let Some(result) = probes.next().await {
        match result {
            Ok(()) => return Ok(()),
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error)
}

/// The probe interval of `check`: at least 10 ms (tokio's intervals cannot be
/// zero), and at most [`FOREVER`] (a longer one would overflow the clock).
fn probe_interval(check: &HealthCheck) -> Duration {
    check.interval.clamp(MIN_INTERVAL, FOREVER)
}

/// The ticks of a monitor's probe loop: one per interval, the first one
/// interval from now; a round that takes longer delays the next.
fn probe_ticks(check: &HealthCheck) -> Interval {
    let interval = probe_interval(check);
    let mut ticks = tokio::time::interval_at(super::deadline(Instant::now(), interval), interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    ticks
}

/// Consecutive passing and failing rounds of a monitor, and when they flip
/// its state.
#[derive(Debug)]
struct Streak {
    to_healthy: u32,
    to_unhealthy: u32,
    passed: u32,
    failed: u32,
}

impl Streak {
    /// Healthy after `to_healthy` consecutive passing rounds, unhealthy after
    /// `to_unhealthy` failing ones (each at least 1).
    fn new(to_healthy: u32, to_unhealthy: u32) -> Self {
        Self {
            to_healthy: to_healthy.max(1),
            to_unhealthy: to_unhealthy.max(1),
            passed: 0,
            failed: 0,
        }
    }

    /// Counts one round; `Some(healthy)` when the streak is long enough to
    /// say so (again on every further round of the same streak).
    fn record(&mut self, passed: bool) -> Option<bool> {
        if passed {
            self.failed = 0;
            self.passed = self.passed.saturating_add(1);
            (self.passed >= self.to_healthy).then_some(true)
        } else {
            self.passed = 0;
            self.failed = self.failed.saturating_add(1);
            (self.failed >= self.to_unhealthy).then_some(false)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{Duration, HealthCheck, Streak, probe_ticks};

    #[tokio::test]
    async fn endless_intervals_do_not_overflow() {
        let check = HealthCheck {
            interval: Duration::MAX,
            ..HealthCheck::default()
        };
        let mut ticks = probe_ticks(&check);
        let tick = tokio::time::timeout(Duration::from_millis(50), ticks.tick()).await;
        assert!(tick.is_err(), "the first tick is an interval away");
    }

    #[test]
    fn streaks_flip_after_their_counts() {
        let mut s = Streak::new(2, 3);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), None);
        assert_eq!(s.record(false), Some(false));
        assert_eq!(s.record(false), Some(false));
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(false), None, "a pass resets the failures");
        assert_eq!(s.record(true), None);
        assert_eq!(s.record(true), Some(true));
        let mut zero = Streak::new(0, 0);
        assert_eq!(zero.record(true), Some(true));
        assert_eq!(zero.record(false), Some(false));
    }
}
