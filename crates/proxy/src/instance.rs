//! Live state of one upstream instance, shared by every route table that lists it:
//! requests in flight, open upgraded (WebSocket) connections, the passive
//! "suspect" mark set when it refuses connections, and its observations.
//!
//! The state lives in the [`Registry`], keyed by [`InstanceId`], so that swapping
//! in a new table never resets a counter, and so that an instance removed from the
//! table can still be drained and its last observations read.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::observe::{Observation, Outcome, Window};
use crate::table::InstanceId;

/// Requests and upgraded connections an instance has open right now.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct InFlight {
    /// HTTP requests whose response has not finished streaming.
    pub requests: usize,
    /// Upgraded connections (WebSocket and other `Upgrade`) still open.
    pub upgraded: usize,
}

impl InFlight {
    /// True when nothing is open.
    pub fn is_idle(self) -> bool {
        self.requests == 0 && self.upgraded == 0
    }
}

/// How a drain ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DrainOutcome {
    /// Every request and upgraded connection finished.
    Drained {
        /// How long it took.
        waited: Duration,
    },
    /// The timeout passed first. Upgraded connections still open were closed;
    /// `left` says what was still open when the timeout passed.
    TimedOut {
        /// What was still open.
        left: InFlight,
    },
}

/// Shared live state of one instance.
#[derive(Debug)]
pub(crate) struct InstanceState {
    requests: AtomicUsize,
    upgraded: AtomicUsize,
    /// Milliseconds since `epoch` until which the instance is suspect; 0 = never.
    suspect_until_ms: AtomicU64,
    epoch: Instant,
    idle: Notify,
    /// Cancelled when a drain times out, to close upgraded connections.
    cut_upgrades: Mutex<CancellationToken>,
    window: Mutex<Window>,
    /// When the instance left the last table, for pruning.
    removed_at: Mutex<Option<Instant>>,
}

impl InstanceState {
    pub(crate) fn new(window: Window) -> InstanceState {
        InstanceState {
            requests: AtomicUsize::new(0),
            upgraded: AtomicUsize::new(0),
            suspect_until_ms: AtomicU64::new(0),
            epoch: Instant::now(),
            idle: Notify::new(),
            cut_upgrades: Mutex::new(CancellationToken::new()),
            window: Mutex::new(window),
            removed_at: Mutex::new(None),
        }
    }

    pub(crate) fn in_flight(&self) -> InFlight {
        InFlight {
            requests: self.requests.load(Ordering::Acquire),
            upgraded: self.upgraded.load(Ordering::Acquire),
        }
    }

    /// Requests outstanding, for least-outstanding balancing.
    pub(crate) fn load(&self) -> usize {
        self.requests.load(Ordering::Relaxed) + self.upgraded.load(Ordering::Relaxed)
    }

    /// Counts a request as started; the guard counts it as finished when dropped.
    pub(crate) fn begin_request(self: &Arc<Self>) -> ActiveGuard {
        self.requests.fetch_add(1, Ordering::AcqRel);
        ActiveGuard {
            state: self.clone(),
            kind: ActiveKind::Request,
        }
    }

    /// Counts an upgraded connection as open until the guard is dropped.
    pub(crate) fn begin_upgrade(self: &Arc<Self>) -> (ActiveGuard, CancellationToken) {
        self.upgraded.fetch_add(1, Ordering::AcqRel);
        let token = lock(&self.cut_upgrades).clone();
        (
            ActiveGuard {
                state: self.clone(),
                kind: ActiveKind::Upgrade,
            },
            token,
        )
    }

    pub(crate) fn mark_suspect(&self, now: Instant, for_how_long: Duration) {
        let until = now
            .saturating_duration_since(self.epoch)
            .saturating_add(for_how_long);
        let until_ms = u64::try_from(until.as_millis()).unwrap_or(u64::MAX).max(1);
        self.suspect_until_ms.store(until_ms, Ordering::Relaxed);
    }

    pub(crate) fn clear_suspect(&self) {
        if self.suspect_until_ms.load(Ordering::Relaxed) != 0 {
            self.suspect_until_ms.store(0, Ordering::Relaxed);
        }
    }

    pub(crate) fn is_suspect(&self, now: Instant) -> bool {
        let until = self.suspect_until_ms.load(Ordering::Relaxed);
        if until == 0 {
            return false;
        }
        let now_ms = u64::try_from(now.saturating_duration_since(self.epoch).as_millis())
            .unwrap_or(u64::MAX);
        now_ms < until
    }

    pub(crate) fn record(&self, now: Instant, outcome: Outcome) {
        lock(&self.window).record(now, outcome);
    }

    pub(crate) fn observe(&self, now: Instant, span: Duration) -> Observation {
        lock(&self.window).read(now, span)
    }

    pub(crate) fn merge_into(&self, now: Instant, span: Duration, into: &mut Observation) {
        lock(&self.window).merge_into(now, span, into);
    }

    /// Waits until nothing is open or `timeout` passes; on timeout, closes the
    /// upgraded connections that are still open. A timeout too long to add to
    /// the clock waits [`FOREVER`] instead.
    pub(crate) async fn drain(&self, timeout: Duration) -> DrainOutcome {
        let started = tokio::time::Instant::now();
        let deadline = started
            .checked_add(timeout)
            .unwrap_or_else(|| started + FOREVER);
        loop {
            // Register interest before checking, so a decrement between the check
            // and the await still wakes us.
            let notified = self.idle.notified();
            if self.in_flight().is_idle() {
                return DrainOutcome::Drained {
                    waited: started.elapsed(),
                };
            }
            tokio::select! {
                _ = notified => {}
                _ = tokio::time::sleep_until(deadline) => {
                    let left = self.in_flight();
                    if left.is_idle() {
                        return DrainOutcome::Drained { waited: started.elapsed() };
                    }
                    // Close the tunnels; a fresh token lets later upgrades live.
                    let old = std::mem::take(&mut *lock(&self.cut_upgrades));
                    old.cancel();
                    return DrainOutcome::TimedOut { left };
                }
            }
        }
    }

    pub(crate) fn set_removed(&self, removed: Option<Instant>) {
        *lock(&self.removed_at) = removed;
    }

    fn removed_before(&self, cutoff: Instant) -> bool {
        matches!(*lock(&self.removed_at), Some(t) if t < cutoff)
    }
}

#[derive(Debug, Clone, Copy)]
enum ActiveKind {
    Request,
    Upgrade,
}

/// Decrements the matching counter when dropped and wakes drainers at zero.
#[derive(Debug)]
pub(crate) struct ActiveGuard {
    state: Arc<InstanceState>,
    kind: ActiveKind,
}

impl ActiveGuard {
    pub(crate) fn state(&self) -> &Arc<InstanceState> {
        &self.state
    }
}

impl Drop for ActiveGuard {
    fn drop(&mut self) {
        let counter = match self.kind {
            ActiveKind::Request => &self.state.requests,
            ActiveKind::Upgrade => &self.state.upgraded,
        };
        counter.fetch_sub(1, Ordering::AcqRel);
        if self.state.in_flight().is_idle() {
            self.state.idle.notify_waiters();
        }
    }
}

/// All instance states the proxy knows, in and out of the current table.
#[derive(Debug, Default)]
pub(crate) struct Registry {
    states: Mutex<HashMap<InstanceId, Arc<InstanceState>>>,
}

impl Registry {
    pub(crate) fn get(&self, id: &InstanceId) -> Option<Arc<InstanceState>> {
        lock(&self.states).get(id).cloned()
    }

    pub(crate) fn get_or_insert(
        &self,
        id: &InstanceId,
        make: impl FnOnce() -> InstanceState,
    ) -> Arc<InstanceState> {
        lock(&self.states)
            .entry(id.clone())
            .or_insert_with(|| Arc::new(make()))
            .clone()
    }

    /// Marks which states are in the table now, and forgets states that left it
    /// more than `keep` ago and have nothing open.
    pub(crate) fn sweep<'a>(
        &self,
        in_table: impl Iterator<Item = &'a InstanceId>,
        now: Instant,
        keep: Duration,
    ) {
        let present: std::collections::HashSet<&InstanceId> = in_table.collect();
        let mut states = lock(&self.states);
        for (id, state) in states.iter() {
            if present.contains(id) {
                state.set_removed(None);
            } else if lock(&state.removed_at).is_none() {
                state.set_removed(Some(now));
            }
        }
        if let Some(cutoff) = now.checked_sub(keep) {
            states.retain(|id, s| {
                present.contains(id) || !s.removed_before(cutoff) || !s.in_flight().is_idle()
            });
        }
    }
}

/// How far off "never" is for a drain: about 100 years. A longer timeout
/// (`drain_timeout = "300000000y"`) cannot be added to the clock.
const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Locks a mutex, recovering the data if a panicking thread poisoned it: every
/// value behind these locks stays valid after any partial update.
pub(crate) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_endless_suspect_mark_saturates() {
        let now = Instant::now();
        let state = InstanceState::new(Window::new(now, Duration::from_secs(5)));
        state.mark_suspect(now + Duration::from_secs(1), Duration::MAX);
        assert!(state.is_suspect(now + Duration::from_secs(3600)));
        state.clear_suspect();
        assert!(!state.is_suspect(now));
    }
}
