//! The invariants of a release's whole life. [`Checker::action`] runs after
//! every action is carried out, [`Checker::end_step`] after every step (one
//! input, command or window operation, and the complete drain of its
//! outputs). Each returns the broken invariant as a message; the simulator
//! adds the seed and the trace. The traffic part (weights, health, steps,
//! rollbacks, outcomes of the rollout) is checked by one
//! [`Traffic`](crate::traffic::Traffic) per rollout, fed from here; see
//! `traffic.rs` for those.
//!
//! A run has a deploy (`v1` → `v2`) and, when an operator rolls back during
//! its window, a rollback release (`v2` → `v1`). "The version" of a release
//! is the one it brings, "the previous" the one it replaces.
//!
//! # The invariants of the whole life
//!
//! - **Never zero healthy routed** (a). A step of the core never leaves a
//!   service with no healthy instance routed to when it had one before the
//!   step (faults of the world and a crashed daemon's lost table happen
//!   between steps; see the known limits for the two waivers).
//! - **Contract** (b). Contract migrations run only for a deploy that
//!   migrates, succeeded, was not superseded by a rollback; after the old
//!   release was retired (a `Retired` answered a `Retire` keeping the new
//!   version, for every service) and its instances are all stopped; with the
//!   new version saved as serving.
//! - **Retire** (c). A `Retire` keeps exactly the version the store records as
//!   serving (so the old release is retired only once the new one was *saved*
//!   as serving, and a rolled-back release only keeps the previous one), and
//!   names no service whose table routes to a version it would stop.
//! - **The save gate** (d). After a `Persist` is handed out, the only action
//!   handed out until it is saved is the same `Persist` asked again, and only
//!   after its save failed, with a backoff of 250 ms to 10 s. While a save
//!   that failed is outstanding, `held()` says why; otherwise it says
//!   nothing.
//! - **No leaks** (e). When a release is done (and concluded): succeeded
//!   (and not superseded) ⇒ every service is routed to its version alone and
//!   nothing of the previous version runs; rolled back or not started ⇒ every service is
//!   routed to the previous version and nothing of its version runs (a deploy
//!   that did not start never started anything); failed ⇒ each service is
//!   wholly on one version, and nothing of its version runs where the
//!   previous one serves. The store's serving record says the same.
//! - **A warm rollback is one switch** (f). A rollback that went back to the
//!   warm release changed the table at most once (a crash may lose the table
//!   and the restarted proxy come back on the switched version), with one
//!   `SwitchTo` that put every service on the previous release at once, and
//!   handed out no rollout action at all; a rollout (a cold start) only
//!   after the probe said the previous release is not warm.
//!
//! # The rest
//!
//! - Order: a backup only in the backup phase of a deploy that backs up; the
//!   expand migrations after it succeeded; the rollout's first start after
//!   both; `ProbeWarm` and `SwitchTo` only for a rollback, of its version.
//! - Persistence: the saved phase never goes back; a release's outcome never
//!   changes once set; `serving` is only ever saved as the release's own
//!   version, with the outcome `Succeeded`; `Conclude` repeats the saved
//!   outcome; with nothing outstanding at the end of a step, the saved state
//!   is the live one (in-flight request flags aside), and the whole table is
//!   always what the owner's saved state says (see below).
//! - Commands: an operator command goes to the rollout while it runs (see
//!   `traffic.rs`); before it, only `abort` applies (the release ends not
//!   started; a rollback still retires the warm release it was to go back
//!   to); after it, everything is refused. A rollback or a newer deploy
//!   applies only in the rollback window. A refused command changes nothing
//!   and acts on nothing.
//! - Liveness: a release that is not done is never idle with nothing owed
//!   to it, and a tick at a due timeout does something; a done release has
//!   concluded (its outcome recorded, its lock released).
//! - The table follows the *owner*: the deploy, or the rollback from the
//!   moment it is recorded. While a rollback decided by a restore is not
//!   saved yet, the table is what the crash left (a restore that rolls back
//!   does not re-apply the forward table first); the reverts are checked
//!   once carried out.
//!
//! # Known limits (waived, counted, and shown as `limit:*` features)
//!
//! Both come from deciding on knowledge that the world has moved away from;
//! the core has no input that would let it decide better:
//!
//! - `limit:decided-before-hold`: actions decided before a save that then
//!   fails wait behind it (the save gate) and are carried out as decided
//!   once it succeeds. When the world changed meanwhile — a rollback decided,
//!   the store down, the old release dying during the outage — the revert
//!   goes onto an old release without a healthy instance (the finished
//!   rollout ignores the news). (a) is waived for a service whose health the
//!   release was told about while a save was outstanding, until nothing is.
//! - `limit:restore-before-report`: `Release::restore` decides (resume or
//!   roll back) from the saved state alone; health that changed while the
//!   daemon was down, or that was told and lost with an unsaved state, is
//!   re-reported only afterwards. (a) is waived from such a restart until
//!   the re-reports are fed and nothing is outstanding.

use cutover_core::{
    Action, Command, Input, Millis, Outcome, Phase, Refused, Release as Machine, ReleaseAction,
    ReleaseInput, ReleaseKind, ReleasePlan, ReleaseState, State, Status,
};

use crate::schedule::{PhaseKind, WindowOp};
use crate::table::{Release, Route};
use crate::traffic::{self, Owed, Traffic};
use crate::world::World;

macro_rules! ensure {
    ($self:ident, $cond:expr, $($fmt:tt)+) => {{
        $self.checks += 1;
        if !$cond {
            return Err(format!($($fmt)+));
        }
    }};
}

/// First wait before a failed save is asked again.
const SAVE_RETRY_FIRST: Millis = Millis(250);
/// Longest wait between two attempts.
const SAVE_RETRY_MAX: Millis = Millis(10_000);

/// Which of a run's releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Which {
    /// The deploy, `v1` → `v2`.
    Deploy,
    /// The rollback an operator asked for during its window, `v2` → `v1`.
    Rollback,
}

impl Which {
    /// 0 or 1.
    pub fn index(self) -> usize {
        match self {
            Which::Deploy => 0,
            Which::Rollback => 1,
        }
    }

    /// For messages.
    pub fn name(self) -> &'static str {
        match self {
            Which::Deploy => "deploy",
            Which::Rollback => "rollback",
        }
    }
}

/// What one step was, for [`Checker::end_step`].
#[derive(Debug)]
pub enum StepKind<'a> {
    /// An input.
    Input(&'a ReleaseInput),
    /// An operator command and what the core said.
    Command(&'a Command, &'a Result<(), Refused>),
    /// A window operation the core was asked and what it said.
    Window(WindowOp, bool),
    /// A release restored after a daemon restart.
    Restore,
    /// Anything else (a window operation the runtime refused itself).
    Other,
}

/// How a step ended, for [`Checker::end_step`].
#[derive(Debug)]
pub struct StepEnd<'a> {
    /// What the step was.
    pub kind: StepKind<'a>,
    /// The release's state before it.
    pub before: &'a ReleaseState,
    /// Its rollout's state before it.
    pub before_rollout: Option<&'a State>,
    /// The last output was `Idle` (else a timeout).
    pub idle: bool,
    /// The timeout the drain ended with.
    pub timeout: Option<Millis>,
    /// Whether the world owes this release anything (an answer, a save).
    pub owed_any: bool,
    /// Per service, what the world owes its rollout.
    pub owed: &'a [Owed],
    /// The release whose saved state the table follows (the rollback from
    /// the moment it is recorded); `None` while it is not restored yet.
    pub owner: Option<Which>,
    /// What the store records as serving.
    pub serving: &'a str,
}

/// The memory of one release.
#[derive(Debug)]
struct RelCheck {
    plan: ReleasePlan,
    version: Release,
    previous: Release,
    /// A rollback's rollout sees the table the other way round.
    flip: bool,
    traffic: Traffic,
    /// The `Persist` handed out and not saved yet.
    unsaved: Option<(ReleaseState, Option<String>)>,
    /// Its last attempt failed at this time (and was not asked again yet).
    failed_at: Option<Millis>,
    /// It failed at least once.
    failed_once: bool,
    /// The last saved state.
    saved: Option<ReleaseState>,
    /// The first outcome concluded.
    outcome: Option<Outcome>,
    backup_ok: bool,
    expand_ok: bool,
    /// The last `Retire` handed out.
    retire_asked: Option<(Option<String>, Vec<String>)>,
    /// The previous version was retired for every service (answered).
    retired_old: bool,
    /// A `Retire` keeping the version was handed out.
    retired_replaced: bool,
    /// `StartInstances` handed out.
    starts: u32,
    /// Rollout actions handed out (outside re-applying a restored state).
    rollout_actions: u32,
    /// Actions that changed the table, by kind.
    table_changes: Vec<&'static str>,
    /// The last answer to `ProbeWarm` the release heard.
    probe_ready: Option<bool>,
    /// `Contract` handed out.
    contracted: bool,
    /// Per step.
    drain: RelDrain,
    /// The done invariants were checked since the last (re)start.
    done_checked: bool,
    /// A restore decided to roll back and that is not saved yet (the table
    /// is what the crash left until then; see `traffic.rs`).
    rollback_unsaved: bool,
    /// Per service, its health changed while a save was outstanding: the
    /// decisions waiting behind the save were taken before (a known limit,
    /// see the module doc); cleared once nothing is outstanding.
    stale_decision: Vec<bool>,
}

#[derive(Debug, Default)]
struct RelDrain {
    /// A `Persist` was saved in this step.
    saved: bool,
    /// Re-applying a restored state (before its first persist).
    prologue: bool,
    /// Actions carried out.
    actions: usize,
    /// Per service, a healthy instance was routed to when the step began.
    healthy_before: Vec<bool>,
    /// No save was outstanding when the step began.
    clean_before: bool,
}

/// The invariants' memory of a run.
#[derive(Debug)]
pub struct Checker {
    checks: u64,
    /// Times invariant (a) was waived for a decision taken before a held
    /// save and carried out after the world changed (see the module doc).
    pub waived_held: u64,
    /// Times invariant (a) was waived for a decision a restore took before
    /// the health that changed was re-reported (see the module doc).
    pub waived_restore: u64,
    rels: [Option<RelCheck>; 2],
    /// Health changed while the daemon was down: what a restore decided
    /// without knowing it is not held against invariant (a) until it is
    /// re-reported and those decisions are carried out.
    pub stale_health: bool,
    /// Re-reports after a restart are still to come.
    pub reports_pending: bool,
}

/// The state without the flags of requests in flight: what must survive a
/// crash.
pub fn durable(state: &ReleaseState) -> ReleaseState {
    let mut s = state.clone();
    s.rollout = s.rollout.as_ref().map(traffic::durable);
    s
}

/// The table the saved `state` of a release of `plan` says (`None`: not
/// started).
pub fn expected_routes(plan: &ReleasePlan, state: Option<&ReleaseState>, n: usize) -> Vec<Route> {
    let version = Release::of_version(plan.version()).unwrap_or(Release::New);
    let previous = version.other();
    let flip = plan.kind == ReleaseKind::Rollback;
    match state {
        Some(ReleaseState {
            rollout: Some(rs), ..
        }) => rs
            .services
            .iter()
            .map(|s| {
                let r = Route::of(s);
                if flip { r.flip() } else { r }
            })
            .collect(),
        Some(s) if flip && s.outcome == Some(Outcome::Succeeded) => vec![Route::all(version); n],
        _ => vec![Route::all(previous); n],
    }
}

impl RelCheck {
    fn new(plan: &ReleasePlan, has_previous: &[bool]) -> RelCheck {
        let version = Release::of_version(plan.version()).unwrap_or(Release::New);
        RelCheck {
            plan: plan.clone(),
            version,
            previous: version.other(),
            flip: plan.kind == ReleaseKind::Rollback,
            traffic: Traffic::new(&plan.rollout, has_previous),
            unsaved: None,
            failed_at: None,
            failed_once: false,
            saved: None,
            outcome: None,
            backup_ok: false,
            expand_ok: false,
            retire_asked: None,
            retired_old: false,
            retired_replaced: false,
            starts: 0,
            rollout_actions: 0,
            table_changes: Vec::new(),
            probe_ready: None,
            contracted: false,
            drain: RelDrain::default(),
            done_checked: false,
            rollback_unsaved: false,
            stale_decision: vec![false; plan.rollout.services.len()],
        }
    }

    /// The routes as this release's rollout sees them.
    fn relative(&self, routes: &[Route]) -> Vec<Route> {
        if self.flip {
            routes.iter().map(|r| r.flip()).collect()
        } else {
            routes.to_vec()
        }
    }

    fn saved_phase(&self) -> Option<&Phase> {
        self.saved.as_ref().map(|s| &s.phase)
    }

    fn saved_outcome(&self) -> Option<&Outcome> {
        self.saved.as_ref().and_then(|s| s.outcome.as_ref())
    }

    fn names(&self) -> Vec<String> {
        self.plan
            .rollout
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }
}

impl Checker {
    /// A checker for a run whose deploy is `plan`.
    pub fn new(plan: &ReleasePlan, has_previous: &[bool]) -> Checker {
        Checker {
            checks: 0,
            waived_held: 0,
            waived_restore: 0,
            rels: [Some(RelCheck::new(plan, has_previous)), None],
            stale_health: false,
            reports_pending: false,
        }
    }

    /// Invariants evaluated so far.
    pub fn checks(&self) -> u64 {
        self.checks
            + self
                .rels
                .iter()
                .flatten()
                .map(|r| r.traffic.checks)
                .sum::<u64>()
    }

    /// An operator's rollback was recorded: its release will run `plan`.
    pub fn begin_rollback(&mut self, plan: &ReleasePlan, has_previous: &[bool]) {
        if self.rels[1].is_none() {
            self.rels[1] = Some(RelCheck::new(plan, has_previous));
        }
    }

    fn rel(&mut self, which: Which) -> Result<&mut RelCheck, String> {
        self.rels[which.index()]
            .as_mut()
            .ok_or_else(|| format!("the {} release has no checker", which.name()))
    }

    /// The daemon died at `now`: every outstanding save dies with it.
    pub fn crashed(&mut self, now: Millis) {
        for r in self.rels.iter_mut().flatten() {
            r.unsaved = None;
            r.failed_at = None;
            r.failed_once = false;
            let saved = r.saved.as_ref().and_then(|s| s.rollout.as_ref());
            r.traffic.crashed(saved, now);
        }
    }

    /// The release was rebuilt from the store's `state`, which must be the
    /// last one saved.
    pub fn restored(&mut self, which: Which, state: &ReleaseState) -> Result<(), String> {
        let r = self.rel(which)?;
        let same = r.saved.as_ref() == Some(state);
        r.done_checked = false;
        r.drain = RelDrain {
            prologue: true,
            ..RelDrain::default()
        };
        match &state.rollout {
            Some(rs) => r.traffic.restored(rs),
            None => {
                // Restored before its rollout began: the core takes every
                // previous release as there when the plan has one.
                let n = r.plan.rollout.services.len();
                r.traffic.fresh(&vec![r.plan.previous().is_some(); n]);
            }
        }
        ensure!(
            self,
            same,
            "the {} was restored from a state that is not the last one saved",
            which.name()
        );
        Ok(())
    }

    /// The release starts over with nothing saved.
    pub fn fresh(&mut self, which: Which, has_previous: &[bool]) -> Result<(), String> {
        let r = self.rel(which)?;
        r.done_checked = false;
        r.drain = RelDrain::default();
        r.traffic.fresh(has_previous);
        let saved = r.saved.is_some();
        ensure!(
            self,
            !saved,
            "the {} starts over though a state of it was saved",
            which.name()
        );
        Ok(())
    }

    /// A step of `which` begins at `now`.
    pub fn begin_step(&mut self, which: Which, now: Millis, world: &World) -> Result<(), String> {
        let r = self.rel(which)?;
        r.traffic.begin_step(now);
        let prologue = r.drain.prologue;
        r.drain = RelDrain {
            prologue,
            healthy_before: world.healthy_routed(),
            clean_before: r.unsaved.is_none(),
            ..RelDrain::default()
        };
        Ok(())
    }

    /// The release is about to handle `input` (its live state is `m`'s).
    pub fn told(&mut self, which: Which, input: &ReleaseInput, m: &Machine) -> Result<(), String> {
        let r = self.rel(which)?;
        let phase = &m.state().phase;
        if r.unsaved.is_some()
            && let ReleaseInput::Rollout(
                Input::StableHealth { service, .. } | Input::NewUnhealthy { service, .. },
            ) = input
            && let Some(i) = r
                .plan
                .rollout
                .services
                .iter()
                .position(|s| s.name == *service)
        {
            r.stale_decision[i] = true;
        }
        match input {
            ReleaseInput::BackupDone(Ok(())) if *phase == Phase::Backup => r.backup_ok = true,
            ReleaseInput::ExpandDone(Ok(())) if *phase == Phase::Expand => r.expand_ok = true,
            ReleaseInput::WarmProbed { ready } if *phase == Phase::ProbeWarm => {
                r.probe_ready = Some(*ready)
            }
            ReleaseInput::Retired if matches!(phase, Phase::Retiring { .. }) => {
                let all = r.names();
                let version = r.plan.version().to_owned();
                if let Some((Some(keep), services)) = &r.retire_asked
                    && *keep == version
                    && *services == all
                {
                    r.retired_old = true;
                }
            }
            ReleaseInput::Rollout(i)
                if *phase == Phase::Rolling
                    || (matches!(i, Input::StableHealth { .. })
                        && matches!(
                            phase,
                            Phase::Pending
                                | Phase::AwaitingApproval { .. }
                                | Phase::Backup
                                | Phase::Expand
                                | Phase::ProbeWarm
                        )) =>
            {
                let finished = m.rollout().is_none_or(|o| o.is_finished());
                r.traffic.told(i, finished);
            }
            _ => {}
        }
        Ok(())
    }

    /// The outstanding save of `which` succeeded: `state` (and `serving`)
    /// are in the store.
    pub fn saved(&mut self, which: Which) -> Result<(), String> {
        let r = self.rel(which)?;
        let Some((state, _)) = r.unsaved.take() else {
            return Err(format!(
                "a save of the {} answered, none asked",
                which.name()
            ));
        };
        r.failed_at = None;
        r.failed_once = false;
        r.traffic.saved(state.rollout.as_ref());
        r.drain.saved = true;
        r.rollback_unsaved = false;
        r.saved = Some(state);
        Ok(())
    }

    /// The outstanding save of `which` failed at `now`.
    pub fn save_failed(&mut self, which: Which, now: Millis) -> Result<(), String> {
        let r = self.rel(which)?;
        if r.unsaved.is_none() {
            return Err(format!("a save of the {} failed, none asked", which.name()));
        }
        r.failed_at = Some(now);
        r.failed_once = true;
        Ok(())
    }

    /// After carrying out `action` of `which` at `now`. `before` is the
    /// table before it; `m` the release (its live state).
    pub fn action(
        &mut self,
        which: Which,
        action: &ReleaseAction,
        before: &[Route],
        world: &World,
        m: &Machine,
        serving: &str,
    ) -> Result<(), String> {
        let now = world.now;
        let routes = world.routes();
        let checks = &mut self.checks;
        let r = self.rels[which.index()]
            .as_mut()
            .ok_or_else(|| format!("the {} release has no checker", which.name()))?;
        r.drain.actions += 1;
        // A small local `ensure` on the shared counter.
        macro_rules! must {
            ($cond:expr, $($fmt:tt)+) => {{
                *checks += 1;
                if !$cond {
                    return Err(format!($($fmt)+));
                }
            }};
        }
        // (d) The save gate.
        if let Some((st, sv)) = &r.unsaved {
            let again = matches!(action, ReleaseAction::Persist { state, serving } if state == st && serving == sv);
            must!(
                again,
                "the save gate: {action:?} handed out while the save of {:?} is {}",
                st.phase,
                if r.failed_at.is_some() {
                    "failing"
                } else {
                    "unanswered"
                }
            );
            let failed = r.failed_at.take();
            must!(
                failed.is_some(),
                "the same Persist ({:?}) asked again though its last attempt did not fail",
                st.phase
            );
            let waited = failed.map_or(Millis(0), |f| now.since(f));
            must!(
                waited >= SAVE_RETRY_FIRST && waited <= SAVE_RETRY_MAX,
                "a failed save asked again after {waited}: the backoff is {SAVE_RETRY_FIRST} to {SAVE_RETRY_MAX}"
            );
            r.traffic.handed(st.rollout.as_ref())?;
            r.drain.prologue = false;
            return Ok(());
        }
        let saved_phase = r.saved_phase().map(PhaseKind::of);
        // (g) Nothing starts before the required approvals: every action
        // that changes the world comes after a save with the gate met.
        let changes_world = matches!(
            action,
            ReleaseAction::Backup
                | ReleaseAction::Expand
                | ReleaseAction::SwitchTo { .. }
                | ReleaseAction::Contract
                | ReleaseAction::Rollout(Action::StartInstances { .. })
        );
        let gate_at = |at: cutover_core::ApprovalAt| {
            r.plan.kind == ReleaseKind::Deploy
                && r.plan.approval.as_ref().is_some_and(|a| a.at == at)
        };
        let saved_approvals = r.saved.as_ref().and_then(|s| s.approvals.as_ref());
        let met = saved_approvals.is_some_and(cutover_core::Approvals::is_met);
        if changes_world && gate_at(cutover_core::ApprovalAt::Start) {
            must!(
                met,
                "(g) {action:?} before the deploy was saved with its approvals ({saved_approvals:?})"
            );
        }
        // (g') With the gate at the switch, no traffic moves to the first
        // service's new instances before a save with the approvals met.
        if let ReleaseAction::Rollout(
            Action::SetCanaryWeight { service, .. } | Action::Promote { service },
        ) = action
            && gate_at(cutover_core::ApprovalAt::Switch)
            && r.plan
                .rollout
                .services
                .first()
                .is_some_and(|s| &s.name == service)
        {
            must!(
                met,
                "(g') traffic to {service} before the deploy was saved with its approvals at the switch ({saved_approvals:?})"
            );
        }
        match action {
            ReleaseAction::Persist { state, serving } => {
                r.unsaved = Some((state.clone(), serving.clone()));
                r.failed_at = None;
                r.failed_once = false;
                r.drain.prologue = false;
                let kind = PhaseKind::of(&state.phase);
                if let Some(prev) = saved_phase {
                    must!(
                        kind.rank() >= prev.rank(),
                        "the {} went back from the saved {prev:?} to {kind:?}",
                        which.name()
                    );
                }
                if let Some(v) = serving {
                    must!(
                        v == r.plan.version()
                            && state.outcome == Some(Outcome::Succeeded)
                            && !state.superseded,
                        "the {} saves {v} as serving with outcome {:?} (superseded {})",
                        which.name(),
                        state.outcome,
                        state.superseded
                    );
                }
                must!(
                    !state.superseded
                        || (state.phase == Phase::Done && r.plan.kind == ReleaseKind::Deploy),
                    "superseded in {:?} ({:?})",
                    state.phase,
                    r.plan.kind
                );
                let first = r.outcome.as_ref().or(r.saved_outcome());
                if let Some(first) = first {
                    must!(
                        state.outcome.as_ref() == Some(first),
                        "the {}'s outcome changed from {first:?} to {:?}",
                        which.name(),
                        state.outcome
                    );
                }
                r.traffic.handed(state.rollout.as_ref())?;
            }
            ReleaseAction::Rollout(a) => {
                let relative_before = r.relative(before);
                let relative = r.relative(&routes);
                if matches!(
                    a,
                    Action::StartInstances { .. } | Action::Analyze { .. } | Action::Check { .. }
                ) {
                    must!(
                        saved_phase == Some(PhaseKind::Rolling),
                        "{a:?} while the {} is saved as {saved_phase:?}",
                        which.name()
                    );
                }
                if let Action::StartInstances { .. } = a {
                    r.starts += 1;
                    match r.plan.kind {
                        ReleaseKind::Deploy => must!(
                            (!r.plan.backup || r.backup_ok) && (!r.plan.migrate || r.expand_ok),
                            "{a:?} before the backup ({}) and the expand migrations ({}) succeeded",
                            r.backup_ok,
                            r.expand_ok
                        ),
                        ReleaseKind::Rollback => must!(
                            r.probe_ready == Some(false),
                            "(f) a rollback starts instances ({a:?}) though the probe said {:?}",
                            r.probe_ready
                        ),
                        ReleaseKind::Restart => {}
                    }
                }
                if r.flip {
                    must!(
                        !matches!(a, Action::SetCanaryWeight { .. }),
                        "a rollback's rollout is blue-green, yet {a:?}"
                    );
                }
                if !r.drain.prologue {
                    r.rollout_actions += 1;
                }
                let Some(rollout) = m.rollout() else {
                    return Err(format!("{a:?} from a release without a rollout"));
                };
                let service_before = match a {
                    Action::SetCanaryWeight { service, .. }
                    | Action::Promote { service }
                    | Action::Revert { service } => world
                        .index(service)
                        .and_then(|i| relative_before.get(i).copied()),
                    _ => None,
                };
                r.traffic
                    .action(a, service_before, &relative, rollout.state())?;
            }
            ReleaseAction::Backup => must!(
                r.plan.kind == ReleaseKind::Deploy
                    && r.plan.backup
                    && saved_phase == Some(PhaseKind::Backup),
                "Backup for a {:?} (backup {}) saved as {saved_phase:?}",
                r.plan.kind,
                r.plan.backup
            ),
            ReleaseAction::Expand => must!(
                r.plan.kind == ReleaseKind::Deploy
                    && r.plan.migrate
                    && (!r.plan.backup || r.backup_ok)
                    && saved_phase == Some(PhaseKind::Expand),
                "Expand for a {:?} (migrate {}, backup {} done {}) saved as {saved_phase:?}",
                r.plan.kind,
                r.plan.migrate,
                r.plan.backup,
                r.backup_ok
            ),
            ReleaseAction::ProbeWarm { version } => must!(
                r.plan.kind == ReleaseKind::Rollback
                    && version == r.plan.version()
                    && saved_phase == Some(PhaseKind::ProbeWarm),
                "ProbeWarm {version} for a {:?} of {} saved as {saved_phase:?}",
                r.plan.kind,
                r.plan.version()
            ),
            ReleaseAction::SwitchTo { version } => {
                must!(
                    r.plan.kind == ReleaseKind::Rollback && version == r.plan.version(),
                    "SwitchTo {version} from a {:?} of {}",
                    r.plan.kind,
                    r.plan.version()
                );
                must!(
                    r.drain.saved || r.drain.prologue,
                    "SwitchTo {version} without a saved Persist before it in the same step"
                );
                must!(
                    r.saved_outcome() == Some(&Outcome::Succeeded) && serving == version,
                    "SwitchTo {version} while the saved outcome is {:?} and {serving} serves",
                    r.saved_outcome()
                );
                let all = Route::all(r.version);
                must!(
                    routes.iter().all(|x| *x == all),
                    "(f) after SwitchTo {version} the table is {routes:?}: not one switch of every service"
                );
            }
            ReleaseAction::Conclude(o) => {
                must!(
                    r.saved_outcome() == Some(o),
                    "Conclude({o:?}) but the saved outcome is {:?}",
                    r.saved_outcome()
                );
                if let Some(first) = &r.outcome {
                    must!(
                        first == o,
                        "the {} concludes {o:?}, it first concluded {first:?}",
                        which.name()
                    );
                }
                r.outcome = Some(o.clone());
                let superseded = r.saved.as_ref().is_some_and(|s| s.superseded);
                match o {
                    Outcome::Succeeded if superseded => {}
                    Outcome::Succeeded => must!(
                        serving == r.plan.version(),
                        "Conclude(Succeeded) of {} while the store says {serving} serves",
                        r.plan.version()
                    ),
                    Outcome::NotStarted { reason } => {
                        must!(
                            r.starts == 0,
                            "NotStarted ({reason}) after {} starts",
                            r.starts
                        );
                        let all = Route::all(r.previous);
                        must!(
                            routes.iter().all(|x| *x == all),
                            "NotStarted ({reason}) but the table is {routes:?}"
                        );
                    }
                    _ => {}
                }
                let finished_rollout = r
                    .saved
                    .as_ref()
                    .and_then(|s| s.rollout.as_ref())
                    .is_some_and(|rs| rs.status == Status::Finished);
                if finished_rollout && let Some(rollout) = m.rollout() {
                    let relative = r.relative(&routes);
                    r.traffic.finished(o, &relative, rollout.state())?;
                }
            }
            ReleaseAction::Retire { keep, services } => {
                // (c)
                must!(
                    keep.as_deref() == Some(serving),
                    "(c) Retire keeping {keep:?} while the store says {serving} serves"
                );
                let keep_release = keep.as_deref().and_then(Release::of_version);
                if keep_release == Some(r.version) {
                    must!(
                        r.saved_outcome() == Some(&Outcome::Succeeded)
                            && r.saved.as_ref().is_some_and(|s| !s.superseded)
                            && *services == r.names(),
                        "(c) Retire of {} (keeping {}) with saved outcome {:?}, services {services:?}",
                        r.previous.version(),
                        r.plan.version(),
                        r.saved_outcome()
                    );
                    r.retired_replaced = true;
                } else {
                    must!(
                        keep_release == Some(r.previous)
                            && r.saved_outcome().is_some_and(|o| *o != Outcome::Succeeded),
                        "Retire keeping {keep:?} by a release of {} with saved outcome {:?}",
                        r.plan.version(),
                        r.saved_outcome()
                    );
                }
                for s in services {
                    let i = world
                        .index(s)
                        .ok_or_else(|| format!("Retire names an unknown service {s:?}"))?;
                    for rel in Release::BOTH {
                        if Some(rel) != keep_release {
                            must!(
                                before[i].share(rel) == 0,
                                "Retire stops {} of {s} though the table routes to it ({})",
                                rel.version(),
                                before[i]
                            );
                        }
                    }
                }
                r.retire_asked = Some((keep.clone(), services.clone()));
            }
            ReleaseAction::Contract => {
                // (b)
                let superseded =
                    m.state().superseded || r.saved.as_ref().is_some_and(|s| s.superseded);
                must!(
                    r.plan.kind == ReleaseKind::Deploy
                        && r.plan.migrate
                        && saved_phase == Some(PhaseKind::Contract),
                    "(b) Contract for a {:?} (migrate {}) saved as {saved_phase:?}",
                    r.plan.kind,
                    r.plan.migrate
                );
                must!(
                    r.saved_outcome() == Some(&Outcome::Succeeded) && !superseded,
                    "(b) Contract after the outcome {:?} (superseded {superseded}): never after a rollback",
                    r.saved_outcome()
                );
                must!(
                    r.retired_old,
                    "(b) Contract before the old release was retired (no Retired answer to a Retire keeping {})",
                    r.plan.version()
                );
                must!(
                    serving == r.plan.version(),
                    "(b) Contract while {serving} serves"
                );
                for s in &world.services {
                    must!(
                        !s.of(r.previous).running(),
                        "(b) Contract while {} of {} still runs",
                        r.previous.version(),
                        s.name
                    );
                }
                r.contracted = true;
            }
        }
        if before != routes.as_slice() {
            let kind = match action {
                ReleaseAction::SwitchTo { .. } => "SwitchTo",
                ReleaseAction::Rollout(Action::SetCanaryWeight { .. }) => "SetCanaryWeight",
                ReleaseAction::Rollout(Action::Promote { .. }) => "Promote",
                ReleaseAction::Rollout(Action::Revert { .. }) => "Revert",
                _ => "other",
            };
            must!(
                kind != "other",
                "{action:?} changed the table: {before:?} → {routes:?}"
            );
            r.table_changes.push(kind);
        }
        Ok(())
    }

    /// After a complete drain of `which`.
    pub fn end_step(
        &mut self,
        which: Which,
        end: &StepEnd<'_>,
        world: &World,
        m: &Machine,
    ) -> Result<(), String> {
        let stale = self.stale_health;
        let routes = world.routes();
        let n = routes.len();
        {
            let r = self.rel(which)?;
            if let StepKind::Restore = end.kind {
                let finished = |s: Option<&State>| s.is_some_and(|s| s.status == Status::Finished);
                let saved_rollout = r.saved.as_ref().and_then(|s| s.rollout.as_ref());
                r.rollback_unsaved = r.unsaved.is_some()
                    && saved_rollout.is_some()
                    && !finished(saved_rollout)
                    && finished(m.rollout().map(|o| o.state()));
            }
        }
        // The table is what the owner's saved state says.
        if let Some((owner, o)) = end
            .owner
            .and_then(|w| self.rels[w.index()].as_ref().map(|o| (w, o)))
        {
            let want = expected_routes(&o.plan, o.saved.as_ref(), n);
            // A restore's rollback not saved yet: the table is what the
            // crash left until its reverts (checked then).
            let ok = o.rollback_unsaved || routes == want;
            ensure!(
                self,
                ok,
                "the table is {routes:?} but the {}'s saved state says {want:?}",
                owner.name()
            );
        }
        let checks = &mut self.checks;
        let r = self.rels[which.index()]
            .as_mut()
            .ok_or_else(|| format!("the {} release has no checker", which.name()))?;
        macro_rules! must {
            ($cond:expr, $($fmt:tt)+) => {{
                *checks += 1;
                if !$cond {
                    return Err(format!($($fmt)+));
                }
            }};
        }
        let live = m.state();
        // (d) held says why, exactly while a save that failed is outstanding.
        let held = m.held();
        if r.unsaved.is_some() && r.failed_once {
            must!(
                held.as_deref()
                    .is_some_and(|h| h.starts_with("held: cannot write the state store: ")),
                "a save failed and is outstanding, yet held() says {held:?}"
            );
        } else if r.unsaved.is_none() {
            must!(
                held.is_none(),
                "nothing outstanding, yet held() says {held:?}"
            );
        }
        let clean_after = r.unsaved.is_none();
        let clear_stale = clean_after && !self.reports_pending;
        // The saved state is the live one once nothing is outstanding.
        if clean_after {
            match &r.saved {
                Some(saved) => {
                    let (a, b) = (durable(saved), durable(live));
                    must!(
                        a == b,
                        "the {}'s saved state differs from the live one with nothing outstanding (a crash now would lose it):\n saved {a:?}\n live  {b:?}",
                        which.name()
                    );
                }
                None => must!(
                    live.phase == Phase::Pending,
                    "the {} is {:?} with nothing saved and nothing outstanding",
                    which.name(),
                    live.phase
                ),
            }
        }
        // (a) Never zero healthy routed.
        {
            for (i, s) in world.services.iter().enumerate() {
                let before = r.drain.healthy_before.get(i).copied().unwrap_or(false);
                if before && !s.healthy_routed() {
                    if stale {
                        self.waived_restore += 1;
                        continue;
                    }
                    if r.stale_decision.get(i) == Some(&true) {
                        self.waived_held += 1;
                        continue;
                    }
                }
                must!(
                    !before || s.healthy_routed(),
                    "(a) {} had a healthy instance routed to before this step and has none after it (table {}, {}: {:?}, {}: {:?})",
                    s.name,
                    s.route,
                    Release::Old.version(),
                    s.of(Release::Old),
                    Release::New.version(),
                    s.of(Release::New)
                );
            }
        }
        // The traffic part, once the rollout began.
        let clean_before = r.drain.clean_before;
        if let Some(rollout) = m.rollout()
            && rollout.state().started
        {
            // A switch refused by the release for its approval gate at the
            // switch never reached the rollout.
            let gate_at_switch = r
                .plan
                .approval
                .as_ref()
                .is_some_and(|a| a.at == cutover_core::ApprovalAt::Switch)
                && end.before.approvals.as_ref().is_some_and(|a| !a.is_met());
            let kind = match &end.kind {
                StepKind::Command(Command::Switch, Err(_)) if gate_at_switch => {
                    traffic::StepKind::Other
                }
                StepKind::Input(ReleaseInput::Rollout(i)) => traffic::StepKind::Input(i),
                StepKind::Command(c, res) if end.before.phase == Phase::Rolling => {
                    traffic::StepKind::Command(c, res)
                }
                StepKind::Restore => traffic::StepKind::Restore,
                _ => traffic::StepKind::Other,
            };
            let fallback = rollout.state().clone();
            let tend = traffic::StepEnd {
                kind,
                before: end.before_rollout.unwrap_or(&fallback),
                clean_before,
                clean_after,
                owns_table: end.owner == Some(which),
                idle: end.idle,
                timeout: end.timeout,
                answers_pending: end.owed_any,
                owed: end.owed,
            };
            let relative = r.relative(&routes);
            r.traffic
                .end_step(&tend, &relative, world.now, rollout.state())?;
        }
        // Commands outside the rollout.
        let rolling = end.before.phase == Phase::Rolling
            && end
                .before_rollout
                .is_some_and(|s| s.started && s.status != Status::Finished);
        if let StepKind::Command(command, result) = &end.kind
            && !rolling
        {
            let early = matches!(
                end.before.phase,
                Phase::Pending
                    | Phase::AwaitingApproval { .. }
                    | Phase::Backup
                    | Phase::Expand
                    | Phase::ProbeWarm
            );
            match (command, result) {
                (Command::Abort { .. }, Ok(())) => must!(
                    early
                        && match r.plan.kind {
                            // It still retires the warm release it was to go back to.
                            ReleaseKind::Rollback => {
                                live.phase
                                    == Phase::Retiring {
                                        keep: Some(r.previous.version().to_owned()),
                                        services: r.names(),
                                    }
                            }
                            _ => live.phase == Phase::Done,
                        }
                        && matches!(&live.outcome, Some(Outcome::NotStarted { reason }) if reason.contains("aborted")),
                    "abort accepted in {:?}, then {:?} / {:?}",
                    end.before.phase,
                    live.phase,
                    live.outcome
                ),
                (Command::Abort { .. }, Err(refused)) => must!(
                    !early,
                    "abort refused in {:?} ({refused}) though nothing started yet",
                    end.before.phase
                ),
                (c, Ok(())) => must!(
                    false,
                    "{c:?} accepted in {:?}, outside the rollout",
                    end.before.phase
                ),
                (_, Err(_)) => {}
            }
            if result.is_err() {
                must!(
                    live == end.before && r.drain.actions == 0,
                    "refused {command:?} but changed the state or acted"
                );
            }
        }
        // Window operations.
        if let StepKind::Window(op, accepted) = end.kind {
            let warm = matches!(end.before.phase, Phase::Warm { .. });
            must!(
                accepted == warm,
                "{op:?} {} in {:?}: it applies in the rollback window only",
                if accepted { "accepted" } else { "refused" },
                end.before.phase
            );
            if accepted {
                match op {
                    WindowOp::Rollback => must!(
                        live.phase == Phase::Done
                            && live.superseded
                            && live.outcome == end.before.outcome,
                        "superseded, then {:?} (superseded {}, outcome {:?})",
                        live.phase,
                        live.superseded,
                        live.outcome
                    ),
                    WindowOp::NewerDeploy => {
                        let want = Phase::Retiring {
                            keep: Some(r.plan.version().to_owned()),
                            services: r.names(),
                        };
                        must!(
                            live.phase == want,
                            "the window ended for a newer deploy, then {:?}",
                            live.phase
                        )
                    }
                }
            } else {
                must!(
                    live == end.before && r.drain.actions == 0,
                    "refused {op:?} but changed the state or acted"
                );
            }
        }
        // Liveness.
        // A rollout that awaits the switch waits for the operator (the
        // simulator always sends one, `Due::Gate`), not for the world.
        let awaits_operator = m.rollout().is_some_and(|r| r.awaiting_switch().is_some());
        if !m.is_done() {
            must!(
                !end.idle || end.owed_any || awaits_operator,
                "the {} is idle in {:?} with nothing owed to it: stalled",
                which.name(),
                live.phase
            );
        }
        if let StepKind::Input(ReleaseInput::Tick) = end.kind
            && !m.is_done()
        {
            must!(
                r.drain.actions > 0 || end.timeout.is_none_or(|t| t > world.now),
                "a tick at {} did nothing and the next timeout is {:?}: livelock",
                world.now,
                end.timeout
            );
        }
        r.drain.prologue = false;
        if clean_after {
            r.stale_decision.iter_mut().for_each(|s| *s = false);
        }
        if clear_stale {
            self.stale_health = false;
        }
        // (e), (f): once done.
        if m.is_done() && !r.done_checked {
            r.done_checked = true;
            let saved = r.saved.clone().ok_or("done with nothing saved")?;
            must!(
                r.outcome.is_some(),
                "the {} is done but never concluded: its outcome is not recorded, its lock never released",
                which.name()
            );
            let outcome = saved.outcome.clone();
            let (version, previous) = (r.version, r.previous);
            let (v, p) = (version.version(), previous.version());
            match &outcome {
                None => must!(false, "the {} is done without an outcome", which.name()),
                Some(Outcome::Succeeded) if saved.superseded => must!(
                    !r.retired_replaced && !r.contracted,
                    "superseded, yet the {} retired {p} ({}) or contracted ({})",
                    which.name(),
                    r.retired_replaced,
                    r.contracted
                ),
                Some(Outcome::Succeeded) => {
                    for s in &world.services {
                        must!(
                            s.route == Route::all(version),
                            "(e) {v} succeeded but {} is at {}",
                            s.name,
                            s.route
                        );
                        must!(
                            !s.of(previous).running(),
                            "(e) leak: {v} succeeded and is done, yet {p} of {} still runs ({:?})",
                            s.name,
                            s.of(previous)
                        );
                    }
                    must!(
                        end.serving == v,
                        "(e) {v} succeeded but the store says {} serves",
                        end.serving
                    );
                    if r.plan.kind == ReleaseKind::Deploy && r.plan.migrate {
                        must!(
                            r.contracted,
                            "a deploy that migrates ended without a contract"
                        );
                    }
                    if r.plan.kind == ReleaseKind::Rollback && saved.rollout.is_none() {
                        // (f) warm: one switch.
                        must!(
                            r.table_changes.len() <= 1
                                && r.table_changes.iter().all(|k| *k == "SwitchTo")
                                && r.rollout_actions == 0,
                            "(f) a warm rollback changed the table by {:?} and handed out {} rollout actions: not one switch",
                            r.table_changes,
                            r.rollout_actions
                        );
                    }
                }
                Some(Outcome::RolledBack { .. } | Outcome::NotStarted { .. }) => {
                    for s in &world.services {
                        must!(
                            s.route == Route::all(previous),
                            "(e) {v} ended {} but {} is at {}",
                            outcome_name(outcome.as_ref()),
                            s.name,
                            s.route
                        );
                        must!(
                            !s.of(version).running(),
                            "(e) leak: {v} ended {} and is done, yet {v} of {} still runs ({:?})",
                            outcome_name(outcome.as_ref()),
                            s.name,
                            s.of(version)
                        );
                    }
                    must!(
                        end.serving == p,
                        "(e) {v} did not succeed but the store says {} serves",
                        end.serving
                    );
                }
                Some(Outcome::Failed { .. }) => {
                    for s in &world.services {
                        must!(
                            s.route.is_whole(),
                            "(e) failed, and {} is split: {}",
                            s.name,
                            s.route
                        );
                        if s.route == Route::all(previous) {
                            must!(
                                !s.of(version).running(),
                                "(e) leak: {v} failed and is done, yet {v} of {} (back on {p}) still runs ({:?})",
                                s.name,
                                s.of(version)
                            );
                        }
                    }
                }
            }
            if saved.outcome.is_some() && !saved.superseded {
                must!(saved.phase == Phase::Done, "done in {:?}", saved.phase);
            }
        }
        Ok(())
    }
}

fn outcome_name(o: Option<&Outcome>) -> &'static str {
    match o {
        Some(Outcome::Succeeded) => "succeeded",
        Some(Outcome::RolledBack { .. }) => "rolled back",
        Some(Outcome::Failed { .. }) => "failed",
        Some(Outcome::NotStarted { .. }) => "not started",
        None => "without an outcome",
    }
}
