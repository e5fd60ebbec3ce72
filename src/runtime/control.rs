//! The releases being carried out in one environment and how to reach them:
//! each running executor registers a [`ReleaseHandle`] (its control channel,
//! whether its deployment has concluded, whether it holds, which service
//! awaits the switch, and a signal when it is done). Operator commands, a new deploy (which ends the previous
//! release's rollback window and waits for it) and a rollback (which
//! supersedes the release in its window) go through here.
//!
//! Also the deployments a restarted daemon could not restore (their saved
//! state no longer fits the config): they wait here for an operator.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use cutover_core::Command;
use tokio::sync::{mpsc, oneshot, watch};

/// A message to a running release.
pub(crate) enum Control {
    /// Pause, resume, promote, abort: for the rollout.
    Rollout {
        command: Command,
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// A newer deploy is coming: end the rollback window now.
    EndWindow,
    /// A rollback takes over during the window.
    Supersede {
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// An approver's decision, for a release awaiting approval.
    Decide {
        decision: super::approval::Decision,
        reply: oneshot::Sender<Result<super::approval::Decided, String>>,
    },
}

/// A running release, as the rest of the daemon sees it.
#[derive(Clone)]
pub(crate) struct ReleaseHandle {
    pub(crate) id: i64,
    pub(crate) tx: mpsc::Sender<Control>,
    /// True once its deployment concluded (outcome recorded, lock freed).
    pub(crate) concluded: Arc<AtomicBool>,
    /// True while it waits for approvals (nothing of it runs yet).
    pub(crate) awaiting: Arc<AtomicBool>,
    /// Why it holds, while it cannot write the state store.
    pub(crate) held: Arc<Mutex<Option<String>>>,
    /// The service of its rollout that awaits `cutover switch`, if one does.
    pub(crate) awaiting_switch: Arc<Mutex<Option<AwaitingSwitch>>>,
    /// Where it stands, as of its last drain (`cutover status`).
    pub(crate) progress: Arc<Mutex<Option<super::progress::Progress>>>,
    /// Becomes true when the executor has ended.
    pub(crate) done: watch::Receiver<bool>,
}

impl ReleaseHandle {
    /// Waits until the executor has ended.
    pub(crate) async fn wait_done(&self) {
        let mut done = self.done.clone();
        // An error means the sender is gone: the executor ended too.
        let _ = done.wait_for(|d| *d).await;
    }

    pub(crate) fn is_concluded(&self) -> bool {
        self.concluded.load(Ordering::SeqCst)
    }

    pub(crate) fn is_awaiting(&self) -> bool {
        self.awaiting.load(Ordering::SeqCst)
    }

    pub(crate) fn held(&self) -> Option<String> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn awaiting_switch(&self) -> Option<AwaitingSwitch> {
        self.awaiting_switch
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    pub(crate) fn progress(&self) -> Option<super::progress::Progress> {
        self.progress
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// A running release as `cutover status` shows it: its progress, why it
/// holds (the journal cannot write the store) and which service awaits the
/// switch.
#[derive(Debug, Clone)]
pub struct ReleaseReport {
    /// Where it stands.
    pub progress: super::progress::Progress,
    /// Why it holds, if it does.
    pub held: Option<String>,
    /// The service that awaits `cutover switch`, if one does.
    pub awaiting_switch: Option<String>,
}

/// A release whose rollout holds before moving traffic to a service.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AwaitingSwitch {
    pub(crate) deployment: i64,
    pub(crate) version: String,
    pub(crate) service: String,
}

/// A deployment whose saved state could not be restored.
#[derive(Debug, Clone)]
pub(crate) struct Stuck {
    pub(crate) id: i64,
    pub(crate) reason: String,
}

/// The registry of one environment.
#[derive(Default)]
pub(crate) struct Releases {
    running: Mutex<BTreeMap<i64, ReleaseHandle>>,
    stuck: Mutex<Option<Stuck>>,
}

impl Releases {
    fn running(&self) -> MutexGuard<'_, BTreeMap<i64, ReleaseHandle>> {
        self.running.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn register(&self, handle: ReleaseHandle) {
        self.running().insert(handle.id, handle);
    }

    pub(crate) fn unregister(&self, id: i64) {
        self.running().remove(&id);
    }

    /// Every running release, oldest first.
    pub(crate) fn all(&self) -> Vec<ReleaseHandle> {
        self.running().values().cloned().collect()
    }

    /// The release whose rollout is under way (not concluded), if any.
    pub(crate) fn rolling(&self) -> Option<ReleaseHandle> {
        self.running()
            .values()
            .rev()
            .find(|h| !h.is_concluded())
            .cloned()
    }

    /// The release that changes the environment now: [`Releases::rolling`]
    /// unless it still waits for approvals (then nothing of it runs, and
    /// the serving release is supervised as usual).
    pub(crate) fn changing(&self) -> Option<ReleaseHandle> {
        self.rolling().filter(|h| !h.is_awaiting())
    }

    /// The release of this environment that awaits the switch, if one does.
    pub(crate) fn awaiting_switch(&self) -> Option<AwaitingSwitch> {
        self.running()
            .values()
            .find_map(ReleaseHandle::awaiting_switch)
    }

    /// Why a release of this environment holds, if one does.
    pub(crate) fn held(&self) -> Option<String> {
        self.running().values().find_map(ReleaseHandle::held)
    }

    /// Every running release that has published its progress, newest first.
    pub fn reports(&self) -> Vec<ReleaseReport> {
        self.running()
            .values()
            .rev()
            .filter_map(|h| {
                Some(ReleaseReport {
                    progress: h.progress()?,
                    held: h.held(),
                    awaiting_switch: h.awaiting_switch().map(|a| a.service),
                })
            })
            .collect()
    }

    pub(crate) fn stuck(&self) -> Option<Stuck> {
        self.stuck.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub(crate) fn set_stuck(&self, stuck: Option<Stuck>) {
        *self.stuck.lock().unwrap_or_else(|p| p.into_inner()) = stuck;
    }

    /// Before a new deploy: every concluded release ends its window now and
    /// the deploy waits until they are done (old release retired, contract
    /// migrations run), so releases of one environment never overlap.
    pub(crate) async fn end_windows_and_wait(&self, except: i64) {
        for handle in self.all().into_iter().filter(|h| h.id != except) {
            let _ = handle.tx.send(Control::EndWindow).await;
            handle.wait_done().await;
        }
    }

    /// Before a rollback: the release in its window is superseded (it
    /// retires nothing); any other release still running is waited for.
    pub(crate) async fn supersede_and_wait(&self, except: i64) {
        for handle in self.all().into_iter().filter(|h| h.id != except) {
            let (reply, answer) = oneshot::channel();
            if handle.tx.send(Control::Supersede { reply }).await.is_ok()
                && let Ok(Err(why)) = answer.await
            {
                tracing::info!(
                    deployment = handle.id,
                    "not superseded: {why}; waiting for it"
                );
            }
            handle.wait_done().await;
        }
    }
}
