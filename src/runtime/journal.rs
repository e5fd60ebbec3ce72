//! What the executor writes to the state store for one release, and what it
//! does when a write fails:
//!
//! - a save (the release's state, and the serving release when it switches,
//!   in one write) is answered `Saved` or `SaveFailed`: the release machine
//!   holds on a failure and asks again, so this never retries by itself;
//! - events that cannot be written are kept, in order, and written before
//!   anything newer once the store takes writes again;
//! - the deployment's conclusion (its outcome, then the lock) is retried
//!   with backoff until it is written: a lock is never released on an
//!   outcome that was not saved.
//!
//! While a write fails, [`Journal::held`] says why (`cutover status` shows it).
//! The store is behind [`ReleaseStore`], so this policy has unit tests with a
//! store that fails on demand.

use std::collections::VecDeque;
use std::future::Future;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover_core::{Event, EventKind, Outcome, ReleaseInput, ReleasePlan, ReleaseState};
use serde_json::json;

use crate::store::{DeploymentState, Store, StoreError};

/// The writes of one release, as the journal needs them.
pub(crate) trait ReleaseStore: Send + Sync {
    /// Saves plan and state (`done` when nothing is left to do), and the
    /// serving release `(environment, version)`, in one write.
    fn save_release(
        &self,
        id: i64,
        plan: &serde_json::Value,
        state: &serde_json::Value,
        done: bool,
        serving: Option<(&str, &str)>,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Appends an event to deployment `id`'s history.
    fn add_event(
        &self,
        id: i64,
        kind: EventKind,
        message: &str,
        data: serde_json::Value,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;

    /// Whether deployment `id` is still running (not concluded).
    fn is_running(&self, id: i64) -> impl Future<Output = Result<bool, StoreError>> + Send;

    /// Records how deployment `id` ended and releases `holder`'s lock of
    /// `environment`, both or neither.
    fn conclude(
        &self,
        id: i64,
        state: DeploymentState,
        reason: Option<&str>,
        environment: &str,
        holder: &str,
    ) -> impl Future<Output = Result<(), StoreError>> + Send;
}

impl ReleaseStore for Store {
    async fn save_release(
        &self,
        id: i64,
        plan: &serde_json::Value,
        state: &serde_json::Value,
        done: bool,
        serving: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        Store::save_release(self, id, plan, state, done, serving).await
    }

    async fn add_event(
        &self,
        id: i64,
        kind: EventKind,
        message: &str,
        data: serde_json::Value,
    ) -> Result<(), StoreError> {
        Store::add_event(self, id, kind, message, data)
            .await
            .map(drop)
    }

    async fn is_running(&self, id: i64) -> Result<bool, StoreError> {
        Ok(self
            .deployment(id)
            .await?
            .is_none_or(|d| d.state == DeploymentState::Running))
    }

    async fn conclude(
        &self,
        id: i64,
        state: DeploymentState,
        reason: Option<&str>,
        environment: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        self.conclude_deployment(id, state, reason, environment, holder)
            .await
    }
}

/// How long to wait between attempts to write a conclusion.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Backoff {
    pub(crate) first: Duration,
    pub(crate) max: Duration,
}

impl Backoff {
    /// 250 ms, doubling, at most 10 s.
    pub(crate) const STORE: Backoff = Backoff {
        first: Duration::from_millis(250),
        max: Duration::from_secs(10),
    };
}

/// The store writes of one release; see the module doc.
pub(crate) struct Journal<S> {
    store: S,
    id: i64,
    environment: String,
    holder: String,
    unwritten: VecDeque<(Event, serde_json::Value)>,
    held: Arc<Mutex<Option<String>>>,
    backoff: Backoff,
}

impl<S: ReleaseStore> Journal<S> {
    pub(crate) fn new(store: S, id: i64, environment: &str, holder: &str) -> Journal<S> {
        Journal {
            store,
            id,
            environment: environment.to_owned(),
            holder: holder.to_owned(),
            unwritten: VecDeque::new(),
            held: Arc::new(Mutex::new(None)),
            backoff: Backoff::STORE,
        }
    }

    #[cfg(test)]
    fn with_backoff(mut self, backoff: Backoff) -> Journal<S> {
        self.backoff = backoff;
        self
    }

    /// Why the release holds, shared with the release's handle.
    pub(crate) fn held_cell(&self) -> Arc<Mutex<Option<String>>> {
        self.held.clone()
    }

    /// Why the release holds right now, if it does.
    #[cfg(test)]
    fn held(&self) -> Option<String> {
        self.held.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    fn set_held(&self, why: Option<String>) {
        *self.held.lock().unwrap_or_else(|p| p.into_inner()) = why;
    }

    /// Saves the release's state (and the serving release); the machine's answer.
    pub(crate) async fn save(
        &mut self,
        plan: &ReleasePlan,
        state: &ReleaseState,
        serving: Option<&str>,
    ) -> ReleaseInput {
        let done = state.phase == cutover_core::Phase::Done;
        let plan = serde_json::to_value(plan).unwrap_or_default();
        let state = serde_json::to_value(state).unwrap_or_default();
        let serving = serving.map(|v| (self.environment.as_str(), v));
        match self
            .store
            .save_release(self.id, &plan, &state, done, serving)
            .await
        {
            Ok(()) => {
                self.set_held(None);
                self.write_events().await;
                ReleaseInput::Saved
            }
            Err(e) => {
                let error = e.to_string();
                let message = cutover_core::release::held_message(&error);
                tracing::error!(env = %self.environment, deployment = self.id, "{message}");
                self.set_held(Some(message));
                ReleaseInput::SaveFailed { error }
            }
        }
    }

    /// Records an event in the history (kept until it can be written).
    pub(crate) async fn record(&mut self, event: Event) {
        let data = json!({
            "service": event.service,
            "figures": event.figures,
            "verdict": event.verdict,
        });
        tracing::info!(deployment = self.id, kind = %event.kind, "{}", event.message);
        self.unwritten.push_back((event, data));
        self.write_events().await;
    }

    /// Records an event the runtime makes (not the machine).
    pub(crate) async fn note(&mut self, kind: EventKind, message: String) {
        self.record(Event {
            kind,
            service: None,
            message,
            figures: None,
            verdict: None,
        })
        .await;
    }

    async fn write_events(&mut self) {
        while let Some((event, data)) = self.unwritten.front() {
            match self
                .store
                .add_event(self.id, event.kind, &event.message, data.clone())
                .await
            {
                Ok(()) => {
                    self.unwritten.pop_front();
                }
                Err(e) => {
                    tracing::warn!(deployment = self.id, error = %e, "cannot record an event yet; kept for later");
                    return;
                }
            }
        }
    }

    /// Records how the deployment ended and frees the lock, retrying until
    /// both are written. Nothing is written for a deployment already
    /// concluded (a restarted daemon re-issues the conclusion).
    pub(crate) async fn conclude(&mut self, outcome: &Outcome, switched_back: bool) {
        let (state, reason) = match outcome {
            Outcome::Succeeded => (DeploymentState::Succeeded, None),
            Outcome::RolledBack { reason, .. } => (DeploymentState::RolledBack, Some(reason)),
            Outcome::Failed { reason, .. } | Outcome::NotStarted { reason } => {
                (DeploymentState::Failed, Some(reason))
            }
        };
        if !self.store.is_running(self.id).await.unwrap_or(true) {
            return;
        }
        match outcome {
            Outcome::NotStarted { reason } => {
                self.note(EventKind::Failed, reason.clone()).await;
            }
            Outcome::Succeeded if switched_back => {
                self.note(EventKind::Succeeded, "deployment succeeded".into())
                    .await;
            }
            _ => {}
        }
        let mut wait = self.backoff.first;
        loop {
            let written = self
                .store
                .conclude(
                    self.id,
                    state,
                    reason.map(String::as_str),
                    &self.environment,
                    &self.holder,
                )
                .await;
            match written {
                Ok(()) => {
                    self.set_held(None);
                    self.write_events().await;
                    return;
                }
                Err(e) => {
                    let message = cutover_core::release::held_message(&e.to_string());
                    tracing::error!(env = %self.environment, deployment = self.id, "{message}");
                    self.set_held(Some(message));
                    tokio::time::sleep(wait).await;
                    wait = wait.saturating_mul(2).min(self.backoff.max);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU32, Ordering};

    use cutover_core::{Millis, Phase, Plan, ReleaseKind, RestartPolicy};

    use super::*;

    /// A store that fails the next `failures` writes, and remembers the
    /// ones that worked.
    #[derive(Default)]
    struct FlakyStore {
        failures: AtomicU32,
        running: Mutex<bool>,
        saved: Mutex<Vec<(bool, Option<String>)>>,
        events: Mutex<Vec<String>>,
        concluded: Mutex<Vec<(DeploymentState, String)>>,
    }

    impl FlakyStore {
        fn failing(n: u32) -> FlakyStore {
            let s = FlakyStore::default();
            s.failures.store(n, Ordering::SeqCst);
            *s.running.lock().expect("lock") = true;
            s
        }

        fn write(&self) -> Result<(), StoreError> {
            let left = self.failures.load(Ordering::SeqCst);
            if left > 0 {
                self.failures.store(left - 1, Ordering::SeqCst);
                return Err(StoreError::Corrupt("database or disk is full".into()));
            }
            Ok(())
        }
    }

    impl ReleaseStore for &FlakyStore {
        async fn save_release(
            &self,
            _id: i64,
            _plan: &serde_json::Value,
            _state: &serde_json::Value,
            done: bool,
            serving: Option<(&str, &str)>,
        ) -> Result<(), StoreError> {
            self.write()?;
            let serving = serving.map(|(_, v)| v.to_owned());
            self.saved.lock().expect("lock").push((done, serving));
            Ok(())
        }

        async fn add_event(
            &self,
            _id: i64,
            kind: EventKind,
            message: &str,
            _data: serde_json::Value,
        ) -> Result<(), StoreError> {
            self.write()?;
            self.events
                .lock()
                .expect("lock")
                .push(format!("{kind}: {message}"));
            Ok(())
        }

        async fn is_running(&self, _id: i64) -> Result<bool, StoreError> {
            Ok(*self.running.lock().expect("lock"))
        }

        async fn conclude(
            &self,
            _id: i64,
            state: DeploymentState,
            reason: Option<&str>,
            _environment: &str,
            holder: &str,
        ) -> Result<(), StoreError> {
            self.write()?;
            *self.running.lock().expect("lock") = false;
            self.concluded
                .lock()
                .expect("lock")
                .push((state, format!("{holder}: {}", reason.unwrap_or("-"))));
            Ok(())
        }
    }

    fn plan() -> ReleasePlan {
        ReleasePlan {
            kind: ReleaseKind::Deploy,
            rollout: Plan {
                version: "v2".into(),
                previous_version: Some("v1".into()),
                services: Vec::new(),
                on_restart: RestartPolicy::Rollback,
            },
            backup: false,
            migrate: false,
            rollback_window: Millis(0),
            contract: Vec::new(),
            approval: None,
        }
    }

    fn state(phase: Phase) -> ReleaseState {
        ReleaseState {
            phase,
            rollout: None,
            outcome: None,
            superseded: false,
            approvals: None,
        }
    }

    const FAST: Backoff = Backoff {
        first: Duration::from_millis(1),
        max: Duration::from_millis(4),
    };

    #[tokio::test]
    async fn a_failed_save_holds_and_the_next_good_one_writes_the_kept_events_in_order() {
        let store = FlakyStore::failing(0);
        let mut j = Journal::new(&store, 7, "production", "alice@host");
        store.failures.store(3, Ordering::SeqCst);
        j.note(EventKind::Analysis, "step 1 passed".into()).await; // fails (1)
        let answer = j.save(&plan(), &state(Phase::Rolling), None).await; // fails (2)
        assert!(matches!(answer, ReleaseInput::SaveFailed { .. }));
        assert_eq!(
            j.held().as_deref(),
            Some(
                "held: cannot write the state store: the state store holds a bad value: database or disk is full"
            )
        );
        j.note(EventKind::Held, "held".into()).await; // the kept one fails (3)
        assert!(store.events.lock().expect("lock").is_empty());
        let answer = j.save(&plan(), &state(Phase::Done), Some("v2")).await;
        assert_eq!(answer, ReleaseInput::Saved);
        assert_eq!(j.held(), None);
        assert_eq!(
            *store.saved.lock().expect("lock"),
            [(true, Some("v2".to_owned()))]
        );
        assert_eq!(
            *store.events.lock().expect("lock"),
            ["analysis: step 1 passed", "held: held"],
            "kept events are written in order, none lost"
        );
    }

    #[tokio::test]
    async fn a_conclusion_is_retried_until_written_and_never_twice() {
        let store = FlakyStore::failing(4);
        let mut j = Journal::new(&store, 7, "production", "alice@host").with_backoff(FAST);
        let outcome = Outcome::RolledBack {
            service: "web".into(),
            reason: "5xx".into(),
        };
        j.conclude(&outcome, false).await;
        assert_eq!(
            store.failures.load(Ordering::SeqCst),
            0,
            "every failure retried"
        );
        assert_eq!(
            *store.concluded.lock().expect("lock"),
            [(DeploymentState::RolledBack, "alice@host: 5xx".to_owned())]
        );
        assert_eq!(j.held(), None);
        // Again (a restarted daemon re-issues it): nothing is written.
        j.conclude(&outcome, false).await;
        assert_eq!(store.concluded.lock().expect("lock").len(), 1);
    }

    #[tokio::test]
    async fn a_deploy_that_never_started_says_why_in_its_history() {
        let store = FlakyStore::failing(0);
        let mut j = Journal::new(&store, 7, "production", "alice@host");
        let outcome = Outcome::NotStarted {
            reason: "backup before deploy failed".into(),
        };
        j.conclude(&outcome, false).await;
        assert_eq!(
            *store.events.lock().expect("lock"),
            ["failed: backup before deploy failed"]
        );
        assert_eq!(
            store.concluded.lock().expect("lock")[0].0,
            DeploymentState::Failed
        );
    }
}
