//! The invariants of the traffic part: one [`Traffic`] per rollout (the
//! deploy's, and a cold rollback's), fed by the release checker (`check.rs`).
//! [`Traffic::action`] runs after every rollout action is carried out,
//! [`Traffic::end_step`] after every step (one input or command, and the
//! complete drain of its outputs), [`Traffic::finished`] when the release
//! concludes after its rollout finished. Each returns the broken invariant as
//! a message; the simulator adds the seed and the trace.
//!
//! Routes are handed in as the rollout sees them: for a rollback's rollout
//! (whose "new" release is `v1`) the table is [`Route::flip`]ped.
//!
//! # The save gate
//!
//! The release hands out nothing after a `Persist` until it is saved, so the
//! *persisted* state here is the last **saved** one, and a table action must
//! follow a save in the same step. While a save is outstanding (answered
//! later, or failing) the actions the rollout decided wait behind it; the
//! checks that need the decisions carried out (health, liveness, step
//! timing, the live state being saved) apply only to steps that end with
//! nothing outstanding, and "paused means held" only to steps that began so.
//!
//! # Traffic and health: the exact invariants
//!
//! The core only knows what it is told, so the health invariants are stated
//! against what the simulator has told it ([`Traffic::told`]), which is the
//! world as it is: faults are reported at once. After a daemon restart the
//! core's knowledge is what it had persisted, until the simulator re-reports
//! the world.
//!
//! - **New release unhealthy.** Once the core has been told `NewUnhealthy`
//!   for a service (since its new instances were last started), that service
//!   sends no traffic to the new release — canary share 0 and the new release
//!   not on stable — unless its old release is known to have no healthy
//!   instance either (then keeping the new one is the lesser evil).
//! - **Old release unhealthy.** While the core knows a service's old release
//!   has no healthy instance (`StableHealth { healthy: false }`), it never
//!   moves traffic *towards* it: no `Revert` while the old release has less
//!   than 100 %, no `SetCanaryWeight` lowering the canary share. A rollback
//!   then keeps the new release for that service and ends `Failed` naming it
//!   (Flagger #1931). The core does not move the remaining stable share off
//!   the old release by itself: that would promote an unanalysed canary, a
//!   policy no plan expresses; requests the old release cannot serve are the
//!   proxy's business (a track without instances falls back to the other).
//!
//! # The rest
//!
//! - Weights: every table entry has its canary share in 0..=10000 bp and the
//!   stable share is the rest.
//! - Persistence: a table action comes after a saved `Persist` in the same
//!   step (or re-applies the restored state, before any persist); right
//!   after it, the service's table entry is what the last saved state says;
//!   at the end of every step the whole table is, and (nothing outstanding)
//!   the saved state equals the live one (in-flight request flags aside).
//! - Canary weights never walk back down (Argo Rollouts #2939): a rollback is
//!   one `Revert` per changed service, newest first (across steps: the
//!   reverts may wait for a save).
//! - Paused means held: while paused, only an operator's `resume`/`promote`
//!   moves traffic forward.
//! - Operator commands are refused only when they do not apply, and a refused
//!   command changes nothing.
//! - Liveness: the machine is never idle while running with no answer owed to
//!   it and never waits for an answer nobody owes it.
//! - Step timing (Argo Rollouts #1466/#4479: a step without data is extended,
//!   not judged early): a step is analysed only once it has *run* (not
//!   paused) for `step_duration` since it began, was extended for lack of
//!   data, or was paused by the inconclusive policy; and while it runs, the
//!   core's timeout is no later than that moment. Downtime of the daemon
//!   counts as running when the saved state says running (deadlines are
//!   wall-clock); after a crash, the saved step's clock is what the saved
//!   state's deadline (or time left) says, whatever the live state did
//!   since behind a held save — timing that was checked while it was live.
//! - Outcomes: see [`Traffic::finished`].

use cutover_core::{
    Action, Command, Input, Millis, Outcome, Plan, Refused, Stage, State, Status, Strategy,
};

use crate::table::{Release, Route, TOTAL_BP};

macro_rules! ensure {
    ($self:ident, $cond:expr, $($fmt:tt)+) => {{
        $self.checks += 1;
        if !$cond {
            return Err(format!($($fmt)+));
        }
    }};
}

/// What one step was, for [`Traffic::end_step`].
#[derive(Debug)]
pub enum StepKind<'a> {
    /// An input for the rollout (answers, facts).
    Input(&'a Input),
    /// An operator command and what the core said.
    Command(&'a Command, &'a Result<(), Refused>),
    /// A rollout restored after a daemon restart.
    Restore,
    /// Anything else: a tick, a save answered, a release-level answer.
    Other,
}

/// How a step ended, for [`Traffic::end_step`].
#[derive(Debug)]
pub struct StepEnd<'a> {
    /// What the step was.
    pub kind: StepKind<'a>,
    /// The rollout's state before it.
    pub before: &'a State,
    /// No save was outstanding when the step began.
    pub clean_before: bool,
    /// No save is outstanding now (every decided action was carried out).
    pub clean_after: bool,
    /// The table follows this rollout's release (not one that superseded it).
    pub owns_table: bool,
    /// The last output was `Idle` (else a timeout).
    pub idle: bool,
    /// The timeout the drain ended with.
    pub timeout: Option<Millis>,
    /// Whether the world owes the core an answer (start, analysis, check,
    /// a save, …).
    pub answers_pending: bool,
    /// Per service, what the world owes the core.
    pub owed: &'a [Owed],
}

/// What the world owes the core for one service: answers to actions it has
/// carried out and not yet answered.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Owed {
    /// `Started` / `StartFailed`.
    pub start: bool,
    /// `Analysis`.
    pub analysis: bool,
    /// `Check`.
    pub check: bool,
}

/// Per-step bookkeeping.
#[derive(Debug, Default)]
struct Drain {
    /// A `Persist` was saved in this step.
    persisted: bool,
    /// Re-applying a restored state (before its first persist).
    prologue: bool,
    /// Traffic moved towards the new release (not as part of a rollback).
    advanced: bool,
    /// Actions carried out.
    actions: usize,
}

/// The traffic invariants' memory of one rollout.
#[derive(Debug)]
pub struct Traffic {
    /// Invariants evaluated so far.
    pub checks: u64,
    plan: Plan,
    /// What the core knows of each old release.
    known_stable_healthy: Vec<bool>,
    /// The core was told a new instance is unhealthy.
    told_new_unhealthy: Vec<bool>,
    /// The last saved state (the store), or the restored one.
    reference: Option<State>,
    drain: Drain,
    /// Services reverted (or kept) by the rollback, in order.
    rolled: Vec<usize>,
    /// A restore decided to roll back and that is not saved yet: the table
    /// is not re-applied forward, so it is what the crash left (the old
    /// release where it was lost) until the rollback's reverts.
    rollback_unsaved: bool,
    /// The first outcome, which a restored finished rollout must repeat.
    outcome: Option<Outcome>,
    /// Running time of the current canary step.
    clock: Option<StepClock>,
}

/// How long the current canary step has run since it began or was extended.
#[derive(Debug, Clone, PartialEq)]
struct StepClock {
    /// Service, step, when it began, extensions so far.
    key: (usize, usize, Millis, u32),
    /// Running (not paused) time since the key last changed.
    active: Millis,
    /// When `active` was last brought up to date.
    last: Millis,
    /// Whether the step is running (time counts).
    running: bool,
}

/// The current canary step of `state`, as a [`StepClock`] key, with its
/// duration.
fn step_key(plan: &Plan, state: &State) -> Option<((usize, usize, Millis, u32), Millis)> {
    let i = state.current;
    let Stage::Stepping {
        step,
        started_at,
        extensions,
        ..
    } = state.services.get(i)?.stage
    else {
        return None;
    };
    let Strategy::Canary(spec) = &plan.services.get(i)?.strategy else {
        return None;
    };
    Some(((i, step, started_at, extensions), spec.step_duration))
}

impl Traffic {
    /// A checker for a rollout of `plan` whose old releases have a healthy
    /// instance where `has_previous` says so.
    pub fn new(plan: &Plan, has_previous: &[bool]) -> Traffic {
        Traffic {
            checks: 0,
            plan: plan.clone(),
            known_stable_healthy: has_previous.to_vec(),
            told_new_unhealthy: vec![false; plan.services.len()],
            reference: None,
            drain: Drain::default(),
            rolled: Vec::new(),
            rollback_unsaved: false,
            outcome: None,
            clock: None,
        }
    }

    /// Brings the step clock up to `now`.
    fn advance_clock(&mut self, now: Millis) {
        if let Some(c) = &mut self.clock {
            if c.running {
                c.active = c.active.after(now.since(c.last));
            }
            c.last = now;
        }
    }

    /// Follows the step clock to `state` at `now`: a new step or extension
    /// starts it over; `restart` also starts it over (an inconclusive pause).
    fn follow_clock(&mut self, state: &State, now: Millis, restart: bool) {
        self.advance_clock(now);
        let Some((key, _)) = step_key(&self.plan, state) else {
            self.clock = None;
            return;
        };
        let running = state.status == Status::Running;
        match &mut self.clock {
            Some(c) if c.key == key && !restart => c.running = running,
            _ => {
                self.clock = Some(StepClock {
                    key,
                    active: Millis(0),
                    last: now,
                    running,
                })
            }
        }
    }

    /// The daemon died at `now`; until it is back, the step runs or not as
    /// the store says (the restored core's deadlines are wall-clock).
    ///
    /// The live state may have moved on from the saved one while its
    /// persists were held (paused, resumed, a later step, an inconclusive
    /// pause): none of that survives. The saved step's clock is what the
    /// saved state says — running until its `deadline`, or paused with
    /// `paused_left` to go — timing that was checked against this clock
    /// while it was live (never analysed early, never a timeout too late).
    pub fn crashed(&mut self, store: Option<&State>, now: Millis) {
        self.advance_clock(now);
        self.clock = store
            .filter(|s| s.status != Status::Finished)
            .and_then(|state| {
                let (key, duration) = step_key(&self.plan, state)?;
                let Stage::Stepping {
                    deadline,
                    paused_left,
                    ..
                } = &state.services.get(state.current)?.stage
                else {
                    return None;
                };
                let running = state.status == Status::Running;
                let left = match (running, paused_left) {
                    (false, Some(left)) => *left,
                    _ => deadline.since(now),
                };
                // Overdue: it has run past its duration by that much.
                let overdue = if running {
                    now.since(*deadline)
                } else {
                    Millis(0)
                };
                Some(StepClock {
                    key,
                    active: duration.since(left).after(overdue),
                    last: now,
                    running,
                })
            });
    }

    fn index(&self, service: &str) -> Result<usize, String> {
        self.plan
            .services
            .iter()
            .position(|s| s.name == service)
            .ok_or_else(|| format!("action names an unknown service {service:?}"))
    }

    fn name(&self, i: usize) -> &str {
        self.plan.services.get(i).map_or("?", |s| s.name.as_str())
    }

    /// The core is about to handle `input` (it ignores inputs once finished).
    pub fn told(&mut self, input: &Input, finished: bool) {
        if finished {
            return;
        }
        let index = |s: &str| self.plan.services.iter().position(|p| p.name == s);
        match input {
            Input::StableHealth { service, healthy } => {
                if let Some(i) = index(service) {
                    self.known_stable_healthy[i] = *healthy;
                }
            }
            Input::NewUnhealthy { service, .. } => {
                if let Some(i) = index(service) {
                    self.told_new_unhealthy[i] = true;
                }
            }
            _ => {}
        }
    }

    /// The last saved state, if any.
    pub fn reference(&self) -> Option<&State> {
        self.reference.as_ref()
    }

    /// The rollout was rebuilt from the store: its knowledge is what it had
    /// persisted, its first actions re-apply that state.
    pub fn restored(&mut self, state: &State) {
        self.known_stable_healthy = state.services.iter().map(|s| s.stable_healthy).collect();
        self.told_new_unhealthy = vec![false; self.plan.services.len()];
        self.reference = Some(state.clone());
        self.drain = Drain {
            prologue: true,
            ..Drain::default()
        };
    }

    /// The daemon started over with nothing persisted.
    pub fn fresh(&mut self, has_previous: &[bool]) {
        self.known_stable_healthy = has_previous.to_vec();
        self.told_new_unhealthy = vec![false; self.plan.services.len()];
        self.reference = None;
        self.drain = Drain::default();
        self.rolled.clear();
        self.clock = None;
    }

    /// A step begins at `now`.
    pub fn begin_step(&mut self, now: Millis) {
        self.advance_clock(now);
        let prologue = self.drain.prologue;
        self.drain = Drain {
            prologue,
            ..Drain::default()
        };
    }

    /// A release `Persist` was handed out (carrying `st`, or no rollout
    /// state): the restored state is no longer being re-applied.
    pub fn handed(&mut self, st: Option<&State>) -> Result<(), String> {
        self.drain.prologue = false;
        if let Some(st) = st {
            ensure!(
                self,
                st.services.len() == self.plan.services.len(),
                "persisted state has {} services, the plan {}",
                st.services.len(),
                self.plan.services.len()
            );
            ensure!(
                self,
                (st.status == Status::Finished) == st.outcome.is_some(),
                "persisted status {:?} with outcome {:?}",
                st.status,
                st.outcome
            );
        }
        Ok(())
    }

    /// A release `Persist` was saved (carrying `st`, or no rollout state).
    pub fn saved(&mut self, st: Option<&State>) {
        if let Some(st) = st {
            self.reference = Some(st.clone());
        }
        self.drain.persisted = true;
        self.rollback_unsaved = false;
    }

    /// After carrying out a rollout `action`. `before` is the service's
    /// table entry before a table action, `routes` the whole table after it
    /// (as the rollout sees them); `state` is the rollout's live state.
    pub fn action(
        &mut self,
        action: &Action,
        before: Option<Route>,
        routes: &[Route],
        state: &State,
    ) -> Result<(), String> {
        self.drain.actions += 1;
        match action {
            Action::Persist(_) | Action::Finish(_) => {
                ensure!(
                    self,
                    false,
                    "the release handed out the rollout's own {action:?}"
                );
            }
            Action::StartInstances { service } => {
                let i = self.index(service)?;
                let stage = self.reference.as_ref().map(|r| &r.services[i].stage);
                ensure!(
                    self,
                    matches!(stage, Some(Stage::Starting | Stage::AwaitingSwitch)),
                    "StartInstances {service} while the persisted stage is {stage:?}"
                );
                self.told_new_unhealthy[i] = false;
            }
            Action::SetCanaryWeight { service, canary_bp } => {
                let i = self.index(service)?;
                let before = before.unwrap_or(Route::OLD);
                ensure!(
                    self,
                    *canary_bp <= TOTAL_BP,
                    "SetCanaryWeight {service} {canary_bp}bp: more than 100 %"
                );
                ensure!(
                    self,
                    before.stable == Release::Old,
                    "SetCanaryWeight {service} {canary_bp}bp after the new release was promoted ({before}): walking back"
                );
                ensure!(
                    self,
                    *canary_bp >= before.canary_bp,
                    "SetCanaryWeight {service} {canary_bp}bp lowers the canary from {}bp: weights must never walk back down (Argo Rollouts #2939); a rollback is one Revert",
                    before.canary_bp
                );
                if !self.drain.prologue {
                    self.drain.advanced = true;
                }
                self.table_action(i, action, routes)?;
            }
            Action::Promote { service } => {
                let i = self.index(service)?;
                // A promote persisted as finished keeps the new release in a
                // rollback; otherwise it moves the rollout on.
                let rolling_back = self.reference.as_ref().is_some_and(|r| {
                    r.status == Status::Finished && r.outcome != Some(Outcome::Succeeded)
                });
                if !self.drain.prologue {
                    if rolling_back {
                        self.rolled_back(i)?;
                    } else {
                        self.drain.advanced = true;
                    }
                }
                self.table_action(i, action, routes)?;
            }
            Action::Revert { service } => {
                let i = self.index(service)?;
                let before = before.unwrap_or(Route::OLD);
                ensure!(
                    self,
                    self.known_stable_healthy[i] || before.old_bp() == TOTAL_BP,
                    "Revert {service} moves traffic ({before}) back to an old release the core knows has no healthy instance (Flagger #1931)"
                );
                if !self.drain.prologue {
                    self.rolled_back(i)?;
                }
                self.table_action(i, action, routes)?;
            }
            Action::Analyze {
                service,
                canary_window,
                stable_window,
            } => {
                let i = self.index(service)?;
                ensure!(
                    self,
                    matches!(state.services[i].stage, Stage::Stepping { .. })
                        && state.status == Status::Running,
                    "Analyze {service} while {:?} / {:?}",
                    state.status,
                    state.services[i].stage
                );
                let (key, duration) = step_key(&self.plan, state).unzip();
                let active = self
                    .clock
                    .as_ref()
                    .filter(|c| Some(c.key) == key)
                    .map(|c| c.active);
                ensure!(
                    self,
                    active.is_some_and(|a| Some(a) >= duration),
                    "Analyze {service} after {} of running time in the step (or since its last extension); it lasts {}",
                    active.map_or("?".into(), |a| a.to_string()),
                    duration.map_or("?".into(), |d| d.to_string())
                );
                ensure!(
                    self,
                    canary_window <= stable_window,
                    "Analyze {service}: canary window {canary_window} longer than the stable window {stable_window}"
                );
            }
            Action::Check { service, window } => {
                let i = self.index(service)?;
                ensure!(
                    self,
                    matches!(state.services[i].stage, Stage::Stepping { .. }),
                    "Check {service} while {:?}",
                    state.services[i].stage
                );
                ensure!(self, window.0 > 0, "Check {service} over an empty window");
            }
        }
        Ok(())
    }

    /// Service `i` was reverted (or kept) by the rollback: newest first,
    /// each service once.
    fn rolled_back(&mut self, i: usize) -> Result<(), String> {
        let last = self.rolled.last().copied();
        self.rolled.push(i);
        let names: Vec<String> = self
            .rolled
            .iter()
            .map(|&i| self.name(i).to_owned())
            .collect();
        ensure!(
            self,
            last.is_none_or(|l| l > i),
            "rollback order {names:?}: must be newest first, each service once"
        );
        Ok(())
    }

    /// A table action for service `i` was carried out: it must come after a
    /// saved persist (or re-apply the restored state) and produce what it
    /// says.
    fn table_action(&mut self, i: usize, action: &Action, routes: &[Route]) -> Result<(), String> {
        ensure!(
            self,
            self.drain.persisted || self.drain.prologue,
            "{action:?} without a saved Persist before it in the same step"
        );
        let want = self.reference.as_ref().map(|r| Route::of(&r.services[i]));
        let got = routes[i];
        ensure!(
            self,
            want == Some(got),
            "after {action:?} the table of {} is {got}, but the persisted state says {}",
            self.name(i),
            want.map_or("nothing".to_owned(), |r| r.to_string())
        );
        Ok(())
    }

    /// Outcome invariants, when the release concludes with the outcome of
    /// its finished rollout (first, and again after every restore).
    ///
    /// - Succeeded: every service fully on the new release.
    /// - RolledBack: every service fully on the old release; names a service
    ///   of the plan and a reason.
    /// - Failed: every service fully on one release; at least one kept the new
    ///   one, each such service is named in the reason and its old release was
    ///   known to have no healthy instance.
    /// - The persisted state says the same outcome; a restored finished
    ///   rollout repeats the first outcome.
    pub fn finished(
        &mut self,
        outcome: &Outcome,
        routes: &[Route],
        state: &State,
    ) -> Result<(), String> {
        ensure!(
            self,
            state.status == Status::Finished && state.outcome.as_ref() == Some(outcome),
            "Finish({outcome:?}) but the state says {:?} / {:?}",
            state.status,
            state.outcome
        );
        let persisted = self.reference.as_ref().and_then(|r| r.outcome.as_ref());
        ensure!(
            self,
            persisted == Some(outcome),
            "Finish({outcome:?}) but the persisted outcome is {persisted:?}"
        );
        if let Some(first) = &self.outcome {
            ensure!(
                self,
                first == outcome,
                "a restored finished rollout says {outcome:?}, it first said {first:?}"
            );
        }
        self.outcome = Some(outcome.clone());
        let names: Vec<&str> = self.plan.services.iter().map(|s| s.name.as_str()).collect();
        match outcome {
            Outcome::Succeeded => {
                for (i, r) in routes.iter().enumerate() {
                    ensure!(
                        self,
                        *r == Route::NEW,
                        "Succeeded but {} is at {r}",
                        names[i]
                    );
                }
            }
            Outcome::RolledBack { service, reason } => {
                ensure!(
                    self,
                    names.contains(&service.as_str()) && !reason.is_empty(),
                    "RolledBack names {service:?} / {reason:?}"
                );
                for (i, r) in routes.iter().enumerate() {
                    ensure!(
                        self,
                        *r == Route::OLD,
                        "RolledBack but {} is at {r}",
                        names[i]
                    );
                }
            }
            Outcome::NotStarted { reason } => {
                ensure!(self, false, "a rollout never ends NotStarted ({reason})");
            }
            Outcome::Failed { service, reason } => {
                ensure!(
                    self,
                    names.contains(&service.as_str()) && !reason.is_empty(),
                    "Failed names {service:?} / {reason:?}"
                );
                let mut kept = 0;
                for (i, r) in routes.iter().enumerate() {
                    ensure!(self, r.is_whole(), "Failed but {} is split: {r}", names[i]);
                    if *r == Route::NEW {
                        kept += 1;
                        ensure!(
                            self,
                            reason.contains(names[i]),
                            "Failed keeps {} on the new release but the reason does not name it: {reason}",
                            names[i]
                        );
                        ensure!(
                            self,
                            !self.known_stable_healthy[i],
                            "Failed keeps {} on the new release though its old release is known healthy",
                            names[i]
                        );
                    }
                }
                ensure!(
                    self,
                    kept > 0,
                    "Failed but nothing kept the new release: {reason}"
                );
            }
        }
        Ok(())
    }

    /// After a complete drain.
    pub fn end_step(
        &mut self,
        end: &StepEnd<'_>,
        routes: &[Route],
        now: Millis,
        state: &State,
    ) -> Result<(), String> {
        let n = self.plan.services.len();
        // Weights.
        for (i, r) in routes.iter().enumerate() {
            ensure!(
                self,
                r.canary_bp <= TOTAL_BP && r.stable_bp.checked_add(r.canary_bp) == Some(TOTAL_BP),
                "{}: weights {r} do not sum to 100 %",
                self.name(i)
            );
            ensure!(
                self,
                r.stable == Release::Old || r.canary_bp == 0,
                "{}: new release on both tracks: {r}",
                self.name(i)
            );
        }
        // The table is what the store says, and the store says what the core knows.
        if let (StepKind::Restore, Some(reference)) = (&end.kind, &self.reference) {
            self.rollback_unsaved = !end.clean_after
                && reference.status != Status::Finished
                && state.status == Status::Finished;
        }
        if let Some(reference) = &self.reference {
            if end.owns_table && !self.rollback_unsaved {
                for (i, r) in routes.iter().enumerate() {
                    let want = Route::of(&reference.services[i]);
                    ensure!(
                        self,
                        *r == want,
                        "{}: the table is {r} but the saved state says {want}",
                        self.name(i)
                    );
                }
            }
            if end.clean_after {
                let (durable_ref, durable_live) = (durable(reference), durable(state));
                ensure!(
                    self,
                    durable_ref == durable_live,
                    "the saved state differs from the live one after a complete drain with nothing outstanding (a crash now would lose it):\n saved {durable_ref:?}\n live  {durable_live:?}"
                );
            }
        }
        // Health (once the decisions are carried out).
        for (i, &r) in routes.iter().enumerate() {
            if self.told_new_unhealthy[i] && end.clean_after && end.owns_table {
                ensure!(
                    self,
                    r.new_bp() == 0 || !self.known_stable_healthy[i],
                    "{}: told a new instance is unhealthy, yet {} bp still go to the new release while the old one is healthy",
                    self.name(i),
                    r.new_bp()
                );
            }
        }
        // Shape of the state.
        if state.status != Status::Finished {
            let c = state.current;
            ensure!(self, c < n, "current service {c} of {n}");
            for (i, s) in state.services.iter().enumerate() {
                let ok = match i.cmp(&c) {
                    std::cmp::Ordering::Less => s.stage == Stage::Promoted,
                    std::cmp::Ordering::Greater => s.stage == Stage::Pending,
                    std::cmp::Ordering::Equal => {
                        matches!(
                            s.stage,
                            Stage::Starting | Stage::AwaitingSwitch | Stage::Stepping { .. }
                        ) || (!state.started && s.stage == Stage::Pending)
                    }
                };
                ensure!(
                    self,
                    ok,
                    "{} is {:?} while {} is the current service",
                    self.name(i),
                    s.stage,
                    self.name(c)
                );
                if let (Stage::Stepping { step, .. }, Some(Strategy::Canary(spec))) =
                    (&s.stage, self.plan.services.get(i).map(|p| &p.strategy))
                {
                    let want = spec.steps.get(*step).map(|p| u16::from(*p) * 100);
                    ensure!(
                        self,
                        want == Some(s.canary_bp),
                        "{} at step {step} with {}bp, the plan says {want:?}",
                        self.name(i),
                        s.canary_bp
                    );
                }
            }
            if state.status == Status::Paused {
                ensure!(
                    self,
                    matches!(state.services[c].stage, Stage::Stepping { .. }),
                    "paused while {} is {:?}",
                    self.name(c),
                    state.services[c].stage
                );
            }
        }
        // Paused means held.
        let operator_moves = matches!(
            end.kind,
            StepKind::Command(Command::Resume | Command::Promote { .. }, Ok(()))
        );
        if end.before.status == Status::Paused
            && end.clean_before
            && !operator_moves
            && state.status != Status::Finished
        {
            ensure!(
                self,
                !self.drain.advanced && state.status == Status::Paused,
                "paused, then {:?} moved the rollout on (now {:?}) without an operator's resume or promote",
                end.kind,
                state.status
            );
        }
        // Awaiting the switch means held: no traffic on the new release of
        // that service, and nothing but the operator's switch or abort (or a
        // failure of the new release) moves it on.
        for (i, s) in state.services.iter().enumerate() {
            if s.stage == Stage::AwaitingSwitch && end.clean_after && end.owns_table {
                ensure!(
                    self,
                    routes[i].new_bp() == 0,
                    "{} awaits the switch, yet {} bp go to the new release",
                    self.name(i),
                    routes[i].new_bp()
                );
            }
        }
        let before_awaiting = end
            .before
            .services
            .get(end.before.current)
            .is_some_and(|s| s.stage == Stage::AwaitingSwitch);
        let operator_releases = matches!(
            end.kind,
            StepKind::Command(Command::Switch | Command::Abort { .. }, Ok(()))
        );
        let failure = matches!(
            end.kind,
            StepKind::Input(Input::NewUnhealthy { .. } | Input::StartFailed { .. })
        );
        if before_awaiting
            && end.clean_before
            && !operator_releases
            && !failure
            && state.status != Status::Finished
        {
            ensure!(
                self,
                !self.drain.advanced
                    && state.services.get(state.current).map(|s| &s.stage)
                        == Some(&Stage::AwaitingSwitch),
                "awaiting the switch, then {:?} moved the rollout on without an operator's switch",
                end.kind
            );
        }
        // Operator commands.
        if let StepKind::Command(command, result) = &end.kind {
            self.command(command, result, end.before, state)?;
        }
        // Liveness: never waiting for an answer nobody owes (one lost with a
        // crashed daemon, say): that step would never be analysed, or its
        // fast check would stop.
        if state.status != Status::Finished && end.clean_after {
            for (i, s) in state.services.iter().enumerate() {
                let owed = end.owed.get(i).copied().unwrap_or_default();
                let analyzing = matches!(
                    s.stage,
                    Stage::Stepping {
                        analyzing: true,
                        ..
                    }
                );
                ensure!(
                    self,
                    !analyzing || owed.analysis,
                    "{} waits for an analysis nobody owes it",
                    self.name(i)
                );
                ensure!(
                    self,
                    !s.checking || owed.check,
                    "{} waits for a check nobody owes it: its fast check has stopped",
                    self.name(i)
                );
                ensure!(
                    self,
                    s.stage != Stage::Starting || owed.start,
                    "{} waits for a start nobody owes it",
                    self.name(i)
                );
            }
        }
        let awaiting_now = state
            .services
            .get(state.current)
            .is_some_and(|s| s.stage == Stage::AwaitingSwitch);
        if state.status == Status::Running && end.clean_after && !awaiting_now {
            ensure!(
                self,
                !end.idle || end.answers_pending,
                "idle while running, with no answer owed to the core: stalled"
            );
        }
        // Step timing.
        let inconclusive_pause = matches!(end.kind, StepKind::Input(Input::Analysis { .. }))
            && end.before.status == Status::Running
            && state.status == Status::Paused;
        self.follow_clock(state, now, inconclusive_pause);
        if let (Some(c), Some((_, duration))) = (&self.clock, step_key(&self.plan, state)) {
            let analyzing = matches!(
                state.services[state.current].stage,
                Stage::Stepping {
                    analyzing: true,
                    ..
                }
            );
            if c.running && !analyzing && end.clean_after {
                let due = now.after(duration.since(c.active));
                ensure!(
                    self,
                    end.timeout.is_some_and(|t| t <= due),
                    "the step is due for analysis at {due} (it has run {} of {duration}) but the core's timeout is {:?}",
                    c.active,
                    end.timeout
                );
            }
        }
        self.drain.prologue = false;
        Ok(())
    }

    /// An operator command the release passed to the rollout (or refused
    /// while the rollout ran): refused only when it does not apply, and then
    /// without changing anything.
    pub fn command(
        &mut self,
        command: &Command,
        result: &Result<(), Refused>,
        before: &State,
        after: &State,
    ) -> Result<(), String> {
        let stepping = |s: &State| {
            s.services
                .get(s.current)
                .is_some_and(|c| matches!(c.stage, Stage::Stepping { .. }))
        };
        let awaiting = |s: &State| {
            s.status != Status::Finished
                && s.services
                    .get(s.current)
                    .is_some_and(|c| c.stage == Stage::AwaitingSwitch)
        };
        let finished = before.status == Status::Finished;
        match result {
            Err(refused) => {
                ensure!(
                    self,
                    after == before && self.drain.actions == 0,
                    "refused {command:?} ({refused}) but changed the state or acted"
                );
                let applies = !finished
                    && match command {
                        Command::Pause => before.status != Status::Paused && stepping(before),
                        Command::Resume => before.status == Status::Paused,
                        Command::Promote { .. } => stepping(before),
                        Command::Abort { .. } => true,
                        Command::Switch => awaiting(before),
                    };
                ensure!(
                    self,
                    !applies,
                    "{command:?} refused ({refused}) though it applies"
                );
            }
            Ok(()) => {
                ensure!(self, !finished, "{command:?} accepted after the end");
                let ok = match command {
                    Command::Pause => after.status == Status::Paused,
                    Command::Resume => after.status == Status::Running,
                    Command::Promote { .. } => after.status != Status::Paused,
                    Command::Switch => {
                        awaiting(before) && !awaiting(after) && after.status != Status::Paused
                    }
                    Command::Abort { .. } => {
                        after.status == Status::Finished
                            && matches!(
                                &after.outcome,
                                Some(Outcome::RolledBack { reason, .. } | Outcome::Failed { reason, .. })
                                    if reason.contains("aborted")
                            )
                    }
                };
                ensure!(
                    self,
                    ok,
                    "{command:?} accepted, then status {:?} / outcome {:?}",
                    after.status,
                    after.outcome
                );
            }
        }
        Ok(())
    }
}

/// The state without the flags of requests in flight (an analysis or check
/// asked for and not answered, the next check time): what must survive a crash.
pub fn durable(state: &State) -> State {
    let mut s = state.clone();
    for svc in &mut s.services {
        svc.next_check = None;
        svc.checking = false;
        if let Stage::Stepping { analyzing, .. } = &mut svc.stage {
            *analyzing = false;
        }
    }
    s
}
