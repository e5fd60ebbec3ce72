//! The life of one daemon process after it serves: handing over to a new
//! daemon (`upgrade`, `reload`), and being asked to exit (`down`, SIGTERM).
//! It keeps what a hand-over passes on: a copy of every listening socket
//! (so they stay open, and connections wait in the kernel's queue, whatever
//! the accept loops do) and the state store's lock.

use std::os::fd::AsRawFd;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::handover::{HandoverError, Relaunch, Successor};
use super::lock::DaemonLock;
use super::pending::pending_until_deploy;
use crate::runtime::{Daemon, Takeover};

/// The API's and metrics' accept loops, which stop while a new daemon takes
/// over and start again if it fails (requests wait in the kernel meanwhile).
pub trait ControlListeners: Send + Sync {
    /// Stops accepting (in-flight requests finish).
    fn stop(&self);
    /// Accepts again, on the same sockets.
    fn start(&self);
}

/// What a hand-over did.
#[derive(Debug, Clone)]
pub struct HandoverReport {
    /// The new daemon's pid.
    pub pid: u32,
    /// From the request to the new daemon serving.
    pub took: Duration,
    /// Settings that wait for the next deploy (a reload's).
    pub pending: Vec<String>,
}

/// Why a reload was refused before anything changed.
#[derive(Debug, thiserror::Error)]
pub enum ReloadError {
    /// The config does not load; nothing was changed.
    #[error("{0}")]
    Config(String),
    /// The hand-over failed; the running daemon keeps serving.
    #[error(transparent)]
    Handover(#[from] HandoverError),
}

/// One daemon process's hand-over and exit.
pub struct Lifecycle {
    daemon: Arc<Daemon>,
    sockets: Vec<(String, std::net::TcpListener)>,
    lock: Option<DaemonLock>,
    relaunch: Option<Relaunch>,
    control: Box<dyn ControlListeners>,
    exit: CancellationToken,
    stop_instances: AtomicBool,
    busy: tokio::sync::Mutex<()>,
}

impl Lifecycle {
    /// `sockets`: a copy of each listener by its name (`fds.rs`); `relaunch`:
    /// how to start a successor (`None` inside another program, which cannot
    /// hand over).
    pub fn new(
        daemon: Arc<Daemon>,
        sockets: Vec<(String, std::net::TcpListener)>,
        lock: Option<DaemonLock>,
        relaunch: Option<Relaunch>,
        control: Box<dyn ControlListeners>,
    ) -> Lifecycle {
        Lifecycle {
            daemon,
            sockets,
            lock,
            relaunch,
            control,
            exit: CancellationToken::new(),
            stop_instances: AtomicBool::new(false),
            busy: tokio::sync::Mutex::new(()),
        }
    }

    /// Cancelled when the daemon should exit.
    pub fn exit_requested(&self) -> CancellationToken {
        self.exit.clone()
    }

    /// Whether the exit asked for also stops the instances (`down`).
    pub fn stops_instances(&self) -> bool {
        self.stop_instances.load(Ordering::SeqCst)
    }

    /// Asks the daemon to exit; with `stop_instances`, its instances too.
    pub fn request_exit(&self, stop_instances: bool) {
        super::notify::stopping();
        if stop_instances {
            self.stop_instances.store(true, Ordering::SeqCst);
        }
        self.exit.cancel();
    }

    /// Hands over to a new daemon started from the binary at this one's path.
    pub async fn upgrade(&self) -> Result<HandoverReport, HandoverError> {
        self.hand_over(Vec::new()).await
    }

    /// Checks the config file again, then hands over to a new daemon that
    /// reads it. An invalid config changes nothing.
    pub async fn reload(&self) -> Result<HandoverReport, ReloadError> {
        let path = self.daemon.config().path.clone();
        let next = crate::config::load_checked(&path)
            .map_err(|e| ReloadError::Config(crate::config::render(&e)))?;
        let pending = pending_until_deploy(self.daemon.config(), &next);
        let report = self.hand_over(pending).await?;
        if !report.pending.is_empty() {
            self.record_pending(&report.pending).await;
        }
        Ok(report)
    }

    async fn hand_over(&self, pending: Vec<String>) -> Result<HandoverReport, HandoverError> {
        let Ok(_one) = self.busy.try_lock() else {
            return Err(HandoverError::Unsupported(
                "a hand-over is already in progress; wait for it to end".into(),
            ));
        };
        let relaunch = self.relaunch.as_ref().ok_or_else(|| {
            HandoverError::Unsupported(
                "this daemon runs inside another program (`cutover demo` or a test); only `cutover serve` can hand over"
                    .into(),
            )
        })?;
        if self.exit.is_cancelled() {
            return Err(HandoverError::Unsupported("the daemon is stopping".into()));
        }
        let started = Instant::now();
        let mut passed: Vec<(String, std::os::fd::RawFd)> = self
            .sockets
            .iter()
            .map(|(name, socket)| (name.clone(), socket.as_raw_fd()))
            .collect();
        if let Some(lock) = &self.lock {
            passed.push((super::fds::LOCK_NAME.to_owned(), lock.file().as_raw_fd()));
        }
        // systemd (Type=notify): reloading until the new daemon says READY=1
        // with its MAINPID=, or this one says READY=1 again.
        super::notify::reloading();
        let mut successor = match Successor::spawn(relaunch, &passed) {
            Ok(successor) => successor,
            Err(e) => {
                super::notify::ready("serving; the hand-over failed");
                return Err(e);
            }
        };
        tracing::info!(pid = ?successor.pid(), "handing over to a new daemon");
        if let Err(e) = successor.prepared().await {
            successor.abandon().await;
            super::notify::ready("serving; the hand-over failed");
            tracing::error!(
                "the hand-over failed before the new daemon was prepared: {e}; this daemon keeps serving"
            );
            return Err(e);
        }
        // From here the new daemon adopts: nothing here may change the world.
        self.daemon.quiesce();
        self.daemon.pause_supervision().await;
        self.control.stop();
        let outcome = match successor.go().await {
            Ok(()) => successor.ready().await,
            Err(e) => Err(e),
        };
        match outcome {
            Ok(pid) => {
                let took = started.elapsed();
                tracing::info!(
                    pid,
                    ?took,
                    "the new daemon serves; this one stops accepting, drains and exits"
                );
                self.exit.cancel();
                Ok(HandoverReport { pid, took, pending })
            }
            Err(e) => {
                successor.abandon().await;
                tracing::error!(
                    "the hand-over failed: {e}; this daemon takes back its releases and keeps serving"
                );
                self.take_back().await;
                super::notify::ready("serving; the hand-over failed");
                Err(e)
            }
        }
    }

    /// After a failed hand-over: accept again and pick up the releases.
    async fn take_back(&self) {
        if let Some(cluster) = self.daemon.cluster()
            && !cluster.is_leader()
        {
            // A follower of several daemons changes nothing (docs/cluster.md).
            self.control.start();
            return;
        }
        self.daemon.unquiesce();
        self.control.start();
        if let Err(e) = self.daemon.recover_from(Takeover::Handover).await {
            tracing::error!(
                "cannot pick up the releases again after a failed hand-over: {e}; restart the daemon"
            );
        }
    }

    async fn record_pending(&self, pending: &[String]) {
        let message = format!(
            "config reloaded; {} setting(s) apply at the next deploy",
            pending.len()
        );
        for env in self.daemon.environments() {
            if let Err(e) = self
                .daemon
                .store()
                .add_environment_event(
                    env.name(),
                    "config_pending",
                    &message,
                    json!({ "pending": pending }),
                )
                .await
            {
                tracing::warn!("cannot record the settings pending after a reload: {e}");
            }
        }
    }
}
