//! The whole life of a release in one environment: the machine the runtime
//! drives for every deploy, rollback and restart.
//!
//! A [`Release`] owns a [`Rollout`] (the traffic part: starting the new
//! instances, canary steps, the switch, rolling back) and every stage around
//! it:
//!
//! ```text
//! deploy:   [awaiting approval →] backup → expand → rollout → warm window → retire old → contract → done
//! rollback: probe the previous release → one switch (warm)     → warm window → retire → done
//!                                      → blue-green start (cold) ↗
//! failed:   rollout rolled back → retire what the new release started → done
//!           (a rollback also retires the warm release it did not reach; one
//!           aborted before it rolls retires all of it)
//! ```
//!
//! Driving it is the same as driving a rollout: after every input or command,
//! drain [`Release::poll_output`] until [`ReleaseOutput::Timeout`] or
//! [`ReleaseOutput::Idle`], carry out each action in order, feed the answers
//! back. Two rules make it safe:
//!
//! - **Persist before acting, and wait for the save.** Every stage is a
//!   [`ReleaseAction::Persist`] before the actions it covers, and nothing
//!   after a `Persist` is handed out until the runtime answers
//!   [`ReleaseInput::Saved`]. When it answers [`ReleaseInput::SaveFailed`]
//!   the release *holds*: the same `Persist` is asked again with backoff,
//!   nothing that depends on it runs (no retire, no stop, no contract
//!   migration, no lock release), and [`Release::held`] says why. It goes on
//!   by itself once a save succeeds.
//! - **The persisted state alone says what to do after a crash.**
//!   [`Release::restore`] re-issues the idempotent actions of the persisted
//!   stage (tables, retire, contract, and the `Conclude` of a release saved
//!   with its outcome) and decides what an interrupted rollout does; it never
//!   needs the history or a message.
//!
//! A deploy whose plan has `approval` at the start first waits in
//! [`Phase::AwaitingApproval`] (persisted, with its deadline and the
//! approvals given): [`Release::approve`] by enough distinct approvers other
//! than the deployer lets it go on; [`Release::reject`], the deadline or an
//! abort ends it with nothing started.
//!
//! The old release is only retired after the new one was saved as serving
//! (the `Persist` that carries `serving`), and contract migrations only run
//! after that retire, for a deploy that succeeded.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::approval::{ApprovalAt, ApprovalPolicy, Approvals, Progress};
use crate::event::EventKind;
use crate::plan::{Plan, RestartPolicy};
use crate::rollout::{self, Action, Command, Event, Input, Mismatch, Outcome, Output, Refused};
use crate::rollout::{Rollout, Stage};
use crate::time::Millis;

/// First wait before asking again for a save that failed.
const SAVE_RETRY_FIRST: Millis = Millis(250);
/// Longest wait between two attempts.
const SAVE_RETRY_MAX: Millis = Millis(10_000);

/// Why a release runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReleaseKind {
    /// A new version: backup, expand, rollout, warm window, retire, contract.
    Deploy,
    /// Back to the previous version: one switch while it is warm, otherwise
    /// a blue-green start of it. No migrations.
    Rollback,
    /// The serving version started again because a restarted daemon found
    /// none of its instances. No migrations, nothing to retire.
    Restart,
}

/// What a release is asked to do; persisted with its state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleasePlan {
    /// Deploy, rollback or restart.
    pub kind: ReleaseKind,
    /// The traffic part: version, previous version, services, restart policy.
    pub rollout: Plan,
    /// Back up the databases before the expand migrations.
    pub backup: bool,
    /// Run expand migrations before, contract migrations after.
    pub migrate: bool,
    /// How long the replaced release stays warm (rollback is one switch).
    pub rollback_window: Millis,
    /// The contract migrations this release runs once the old release is
    /// gone: per database, up to which version (fixed when the deploy began).
    #[serde(default)]
    pub contract: Vec<ContractTarget>,
    /// Approvals the deployment needs (`[environment.NAME] approvals`).
    #[serde(default)]
    pub approval: Option<ApprovalPolicy>,
}

/// Contract migrations of one database, up to a version.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ContractTarget {
    /// The `[database.NAME]`.
    pub database: String,
    /// The highest migration version to apply.
    pub upto: u64,
}

impl ReleasePlan {
    /// The version this release brings.
    pub fn version(&self) -> &str {
        &self.rollout.version
    }

    /// The version serving before it, if any.
    pub fn previous(&self) -> Option<&str> {
        self.rollout.previous_version.as_deref()
    }

    fn services(&self) -> Vec<String> {
        self.rollout
            .services
            .iter()
            .map(|s| s.name.clone())
            .collect()
    }
}

/// Where a release stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "phase")]
pub enum Phase {
    /// Not started.
    Pending,
    /// Waiting for approvals (see [`ReleaseState::approvals`]); nothing has
    /// changed. Ends at `until` when not approved by then.
    AwaitingApproval {
        /// The deadline.
        until: Millis,
    },
    /// Backing up the databases; the old release serves.
    Backup,
    /// Running expand migrations; the old release serves.
    Expand,
    /// (Rollback) asking whether the previous release is still warm.
    ProbeWarm,
    /// The rollout runs (see the rollout state).
    Rolling,
    /// The new release serves; the replaced one stays warm until `until`.
    Warm {
        /// End of the rollback window.
        until: Millis,
    },
    /// Draining and stopping every instance of `services` that does not run
    /// `keep` (and that the proxy does not route to).
    Retiring {
        /// The version that stays (`None`: nothing stays).
        keep: Option<String>,
        /// The services concerned.
        services: Vec<String>,
    },
    /// Running contract migrations (the old release is gone).
    Contract,
    /// Nothing left to do.
    Done,
}

/// Everything about a release that must survive a crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ReleaseState {
    /// The stage.
    pub phase: Phase,
    /// The rollout's own state, once it began.
    #[serde(default)]
    pub rollout: Option<rollout::State>,
    /// How the deployment ended, once it did (the deployment is concluded
    /// then: outcome recorded, lock released).
    #[serde(default)]
    pub outcome: Option<Outcome>,
    /// A newer release took over during the warm window.
    #[serde(default)]
    pub superseded: bool,
    /// The approvals given, while (and after) the release waited for them.
    #[serde(default)]
    pub approvals: Option<Approvals>,
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum ReleaseAction {
    /// Save `state` (and, when `serving` is set, record that version as the
    /// environment's serving release in the same write); answer
    /// [`ReleaseInput::Saved`] or [`ReleaseInput::SaveFailed`].
    Persist {
        /// The state.
        state: ReleaseState,
        /// The version that now serves, when this save switches it.
        serving: Option<String>,
    },
    /// A traffic action of the rollout (never `Persist` or `Finish`); its
    /// answers go back as [`ReleaseInput::Rollout`].
    Rollout(Action),
    /// Back up the databases; answer [`ReleaseInput::BackupDone`].
    Backup,
    /// Run the pending expand migrations; answer [`ReleaseInput::ExpandDone`].
    Expand,
    /// Is every service of `version` still running and healthy? Answer
    /// [`ReleaseInput::WarmProbed`] (stop the ones that are not, first).
    ProbeWarm {
        /// The version to go back to.
        version: String,
    },
    /// One table swap: every service's stable track = `version`'s instances.
    SwitchTo {
        /// The version.
        version: String,
    },
    /// Record how the deployment ended and release its lock (idempotent:
    /// may come again after a restart).
    Conclude(Outcome),
    /// Drain and stop every instance of `services` that does not run `keep`
    /// and that the proxy does not route to; answer [`ReleaseInput::Retired`].
    Retire {
        /// The version that stays.
        keep: Option<String>,
        /// The services.
        services: Vec<String>,
    },
    /// Run the plan's contract migrations ([`ReleasePlan::contract`]);
    /// answer [`ReleaseInput::ContractDone`].
    Contract,
}

/// The world's answers and the passing of time.
#[derive(Debug, Clone, PartialEq)]
pub enum ReleaseInput {
    /// Begin.
    Start,
    /// Time passed.
    Tick,
    /// The last `Persist` was written.
    Saved,
    /// The last `Persist` could not be written.
    SaveFailed {
        /// The store's error.
        error: String,
    },
    /// Answer to [`ReleaseAction::Backup`].
    BackupDone(Result<(), String>),
    /// Answer to [`ReleaseAction::Expand`].
    ExpandDone(Result<(), String>),
    /// Answer to [`ReleaseAction::ProbeWarm`].
    WarmProbed {
        /// Every service has a healthy instance of the version.
        ready: bool,
    },
    /// Answer to [`ReleaseAction::Retire`].
    Retired,
    /// Answer to [`ReleaseAction::Contract`]: `Err` says what failed.
    ContractDone(Result<(), String>),
    /// For the rollout.
    Rollout(Input),
}

/// What [`Release::poll_output`] gives.
#[derive(Debug, Clone, PartialEq)]
pub enum ReleaseOutput {
    /// Do this.
    Action(ReleaseAction),
    /// Record this.
    Event(Event),
    /// Nothing more until this time (send [`ReleaseInput::Tick`]) or an input.
    Timeout(Millis),
    /// Nothing more until an input (or ever, once done).
    Idle,
}

/// Why a release holds.
#[derive(Debug, Clone, PartialEq)]
struct Held {
    error: String,
    attempts: u32,
    since: Millis,
    /// When to ask again; `None` while the asked save is under way.
    retry_at: Option<Millis>,
}

/// One release.
#[derive(Debug, Clone)]
pub struct Release {
    plan: ReleasePlan,
    state: ReleaseState,
    rollout: Option<Rollout>,
    rollout_wake: Option<Millis>,
    out: VecDeque<ReleaseOutput>,
    /// Outputs handed out even while a save is awaited (the held event, the
    /// save asked again).
    urgent: VecDeque<ReleaseOutput>,
    /// The `Persist` handed out and not confirmed yet.
    saving: Option<ReleaseAction>,
    held: Option<Held>,
}

impl Release {
    /// A release of `plan`, not started. `has_previous[i]` tells whether
    /// service `i` of the plan has a warm previous release (see
    /// [`Rollout::new`]).
    pub fn new(plan: ReleasePlan, has_previous: &[bool]) -> Release {
        let rollout = Rollout::new(plan.rollout.clone(), has_previous);
        Release {
            plan,
            state: ReleaseState {
                phase: Phase::Pending,
                rollout: None,
                outcome: None,
                superseded: false,
                approvals: None,
            },
            rollout: Some(rollout),
            rollout_wake: None,
            out: VecDeque::new(),
            urgent: VecDeque::new(),
            saving: None,
            held: None,
        }
    }

    /// A release restored from its plan and last saved state after a
    /// restart; `gone` names services whose new instances did not survive.
    /// Re-issues what the saved stage covers; see the module doc. Fails,
    /// naming what differs, when the state does not fit the plan.
    pub fn restore(
        plan: ReleasePlan,
        state: ReleaseState,
        now: Millis,
        gone: &[String],
    ) -> Result<Release, Mismatch> {
        if let Some(rs) = &state.rollout {
            Rollout::check_fits(&plan.rollout, rs)?;
        }
        let mut r = Release {
            rollout: None,
            plan,
            state,
            rollout_wake: None,
            out: VecDeque::new(),
            urgent: VecDeque::new(),
            saving: None,
            held: None,
        };
        let policy = r.plan.rollout.on_restart;
        match r.state.phase.clone() {
            Phase::Pending => r.rollout = Some(r.unstarted_rollout()),
            Phase::AwaitingApproval { .. } => {
                // Waits on, with the saved deadline (a `Tick` past it ends it).
                r.rollout = Some(r.unstarted_rollout());
                if r.state.approvals.is_none() {
                    return Err(Mismatch(
                        "the saved state awaits approval but holds no approvals".into(),
                    ));
                }
            }
            Phase::Backup | Phase::Expand => {
                let what = if r.state.phase == Phase::Backup {
                    "the backup"
                } else {
                    "the expand migrations"
                };
                r.not_started(format!(
                    "the daemon restarted during {what}; nothing was started and the serving release is unchanged"
                ));
            }
            Phase::ProbeWarm => {
                // The probe may say "cold": the rollout must be there to run.
                r.rollout = Some(r.unstarted_rollout());
                let version = r.plan.version().to_owned();
                r.action(ReleaseAction::ProbeWarm { version });
            }
            Phase::Rolling => match r.state.rollout.clone() {
                Some(rs) => {
                    let inner = Rollout::restore(r.plan.rollout.clone(), rs, now, policy, gone);
                    r.rollout = Some(inner);
                    r.pump(now);
                }
                None => r.not_started(
                    "the daemon restarted before the rollout began; nothing was started".into(),
                ),
            },
            Phase::Warm { .. } | Phase::Retiring { .. } | Phase::Contract => {
                r.reapply_table(now);
                if let Some(outcome) = r.state.outcome.clone() {
                    r.action(ReleaseAction::Conclude(outcome));
                }
                match r.state.phase.clone() {
                    Phase::Retiring { keep, services } => {
                        r.action(ReleaseAction::Retire { keep, services })
                    }
                    Phase::Contract => r.action(ReleaseAction::Contract),
                    _ => {}
                }
            }
            Phase::Done => {
                // Saved done, perhaps not concluded yet (the daemon died
                // between the two): the outcome and the lock need it.
                if let Some(outcome) = r.state.outcome.clone() {
                    r.action(ReleaseAction::Conclude(outcome));
                }
            }
        }
        Ok(r)
    }

    /// The plan.
    pub fn plan(&self) -> &ReleasePlan {
        &self.plan
    }

    /// The state (what `Persist` carries).
    pub fn state(&self) -> &ReleaseState {
        &self.state
    }

    /// The rollout, while it exists.
    pub fn rollout(&self) -> Option<&Rollout> {
        self.rollout.as_ref()
    }

    /// True when nothing is left to do.
    pub fn is_done(&self) -> bool {
        self.state.phase == Phase::Done && self.saving.is_none() && self.out.is_empty()
    }

    /// True once the deployment concluded (outcome recorded, lock released).
    pub fn is_concluded(&self) -> bool {
        self.state.outcome.is_some()
    }

    /// Why the release holds, while it cannot save its state:
    /// `held: cannot write the state store: <error>`.
    pub fn held(&self) -> Option<String> {
        self.held.as_ref().map(|h| held_message(&h.error))
    }

    /// Next output; see the module doc.
    pub fn poll_output(&mut self) -> ReleaseOutput {
        if let Some(o) = self.urgent.pop_front() {
            return o;
        }
        if self.saving.is_some() {
            return match self.held.as_ref().and_then(|h| h.retry_at) {
                Some(t) => ReleaseOutput::Timeout(t),
                None => ReleaseOutput::Idle,
            };
        }
        if let Some(o) = self.out.pop_front() {
            if let ReleaseOutput::Action(a @ ReleaseAction::Persist { .. }) = &o {
                self.saving = Some(a.clone());
            }
            return o;
        }
        match self.next_wakeup() {
            Some(t) => ReleaseOutput::Timeout(t),
            None => ReleaseOutput::Idle,
        }
    }

    /// Feeds an input at time `now`.
    pub fn handle_input(&mut self, now: Millis, input: ReleaseInput) {
        match input {
            ReleaseInput::Saved => {
                self.saving = None;
                if let Some(h) = self.held.take() {
                    self.out.push_front(event(
                        EventKind::StoreWritable,
                        None,
                        format!(
                            "the state store is writable again after {} ({} attempts); going on",
                            now.since(h.since),
                            h.attempts + 1
                        ),
                    ));
                }
                return;
            }
            ReleaseInput::SaveFailed { error } => {
                if self.saving.is_none() {
                    return;
                }
                let held = self.held.get_or_insert(Held {
                    error: error.clone(),
                    attempts: 0,
                    since: now,
                    retry_at: None,
                });
                held.attempts += 1;
                held.error = error.clone();
                let wait = SAVE_RETRY_FIRST
                    .0
                    .saturating_mul(1 << (held.attempts - 1).min(16))
                    .min(SAVE_RETRY_MAX.0);
                held.retry_at = Some(now.after(Millis(wait)));
                if held.attempts == 1 {
                    self.urgent
                        .push_back(event(EventKind::Held, None, held_message(&error)));
                }
                return;
            }
            ReleaseInput::Tick if self.saving.is_some() => {
                if let Some(h) = &mut self.held
                    && h.retry_at.is_some_and(|t| now >= t)
                {
                    h.retry_at = None;
                    if let Some(a) = self.saving.clone() {
                        self.urgent.push_back(ReleaseOutput::Action(a));
                    }
                }
                return;
            }
            _ => {}
        }
        match (self.state.phase.clone(), input) {
            (Phase::Pending, ReleaseInput::Start) => self.begin(now),
            (Phase::AwaitingApproval { until }, ReleaseInput::Tick) if now >= until => {
                self.expire()
            }
            (Phase::Backup, ReleaseInput::BackupDone(result)) => match result {
                Ok(()) => self.after_backup(now),
                Err(reason) => self.not_started(format!(
                    "backup before deploy failed, nothing was started: {reason}"
                )),
            },
            (Phase::Expand, ReleaseInput::ExpandDone(result)) => match result {
                Ok(()) => self.roll(now),
                Err(reason) => self.not_started(format!(
                    "expand migrations failed, nothing was started: {reason}"
                )),
            },
            (Phase::ProbeWarm, ReleaseInput::WarmProbed { ready }) => {
                if ready {
                    self.switch_back(now);
                } else {
                    self.roll(now);
                }
            }
            (Phase::Rolling, ReleaseInput::Tick)
                if self.switch_gate_open()
                    && self
                        .state
                        .approvals
                        .as_ref()
                        .is_some_and(|a| a.is_expired(now)) =>
            {
                self.expire_at_switch(now)
            }
            (Phase::Rolling, ReleaseInput::Tick) => self.feed(now, Input::Tick),
            (Phase::Rolling, ReleaseInput::Rollout(input)) => self.feed(now, input),
            // The old release's health before the rollout begins: its
            // rollout must start knowing it (a rollback must not go back to
            // an old release without a healthy instance).
            (
                Phase::Pending
                | Phase::AwaitingApproval { .. }
                | Phase::Backup
                | Phase::Expand
                | Phase::ProbeWarm,
                ReleaseInput::Rollout(input @ Input::StableHealth { .. }),
            ) => self.feed(now, input),
            (Phase::Warm { until }, ReleaseInput::Tick) if now >= until => {
                self.event(
                    EventKind::WindowOver,
                    None,
                    format!(
                        "rollback window over: retiring {}",
                        self.plan.previous().unwrap_or("the previous release")
                    ),
                );
                self.retire_replaced();
            }
            (Phase::Retiring { .. }, ReleaseInput::Retired) => self.after_retire(),
            (Phase::Contract, ReleaseInput::ContractDone(result)) => {
                match result {
                    Ok(()) => self.event(
                        EventKind::ContractDone,
                        None,
                        "contract migrations done".into(),
                    ),
                    Err(reason) => self.event(
                        EventKind::MigrationFailed,
                        None,
                        format!("contract migrations failed: {reason}"),
                    ),
                }
                self.done();
            }
            // Late answers (a monitor after the rollout ended), or answers
            // to actions of a phase the release has left.
            _ => {}
        }
    }

    /// An operator command for the rollout (pause, resume, promote, abort);
    /// refused when the rollout is over.
    pub fn command(&mut self, now: Millis, command: Command) -> Result<(), Refused> {
        if command == Command::Switch && self.switch_gate_open() {
            let (have, need) = self.approval_count();
            return Err(Refused(format!(
                "{} awaits approval before the switch ({have} of {need} given): another approver's `cutover approve` moves the traffic (`cutover status` shows the deployment's id)",
                self.plan.version()
            )));
        }
        match (&self.state.phase, self.rollout.as_mut()) {
            (Phase::Rolling, Some(r)) if !r.is_finished() => {
                r.command(now, command)?;
                self.pump(now);
                Ok(())
            }
            (
                Phase::Pending
                | Phase::AwaitingApproval { .. }
                | Phase::Backup
                | Phase::Expand
                | Phase::ProbeWarm,
                _,
            ) => match command {
                Command::Abort { reason } => {
                    self.not_started(format!("aborted: {reason}"));
                    Ok(())
                }
                _ => Err(Refused(format!(
                    "the rollout has not begun yet ({}); nothing to {}",
                    self.phase_name(),
                    command_name(&command)
                ))),
            },
            _ => Err(Refused("the rollout is already over".into())),
        }
    }

    /// The approvals, while the release waits for them.
    pub fn awaiting_approval(&self) -> Option<&Approvals> {
        match self.state.phase {
            Phase::AwaitingApproval { .. } => self.state.approvals.as_ref(),
            _ if self.switch_gate_open() => self.state.approvals.as_ref(),
            _ => None,
        }
    }

    /// The gate of `approvals = { at = "switch" }`, if the plan has one:
    /// only a deploy waits for it.
    fn switch_gate(&self) -> Option<&ApprovalPolicy> {
        self.plan
            .approval
            .as_ref()
            .filter(|p| p.at == ApprovalAt::Switch && self.plan.kind == ReleaseKind::Deploy)
    }

    /// True while the rollout holds at the switch for approvals not yet
    /// given (the gate opened when the new release was healthy).
    fn switch_gate_open(&self) -> bool {
        self.state.phase == Phase::Rolling
            && self.switch_gate().is_some()
            && self.state.approvals.as_ref().is_some_and(|a| !a.is_met())
            && self
                .rollout
                .as_ref()
                .is_some_and(|r| r.awaiting_switch().is_some())
    }

    /// The rollout reached the switch (`event` says so): with a gate at the
    /// switch, the approvals' wait begins now (once: a restored release
    /// keeps its deadline) and the event says what it waits for.
    fn reach_switch_gate(&mut self, now: Millis, event: &mut Event) {
        let Some(policy) = self.switch_gate().cloned() else {
            return;
        };
        let service = event.service.clone().unwrap_or_default();
        event.message = format!(
            "{service}: {} is healthy and takes no traffic yet; it awaits approval before the switch, `cutover abort` stops it",
            self.plan.version()
        );
        if self.state.approvals.is_some() {
            return;
        }
        let approvals = Approvals::new(&policy, now);
        self.state.approvals = Some(approvals);
        // Saved before anyone reads the event: the deployment shows as
        // awaiting approval from its first sight of the switch.
        self.persist(None);
        self.out.push_back(ReleaseOutput::Event(event.clone()));
        event.kind = EventKind::AwaitingApproval;
        event.message = format!(
            "awaiting approval before the switch: {} approval(s) by someone other than {} within {}; until then no traffic moves",
            policy.required.max(1),
            policy.requested_by,
            fmt_window(policy.expires)
        );
    }

    /// The gate at the switch passed its deadline: the rollout is aborted
    /// (the new release stops; no user ever saw it).
    fn expire_at_switch(&mut self, now: Millis) {
        let (have, need) = self.approval_count();
        self.expired_event(have, need);
        if let Some(r) = self.rollout.as_mut() {
            let _ = r.command(
                now,
                Command::Abort {
                    reason: format!(
                        "approval expired ({have} of {need} approval(s) given): no traffic moved; deploy again to ask anew"
                    ),
                },
            );
        }
        self.pump(now);
    }

    /// `by` approves (four eyes: never the deployer). With enough distinct
    /// approvers the release goes on (backup, expand, rollout); the approval
    /// is saved either way. Refused when the release does not await
    /// approval, after the deadline, for the deployer, and for a second
    /// approval by the same person. The caller records the decision.
    pub fn approve(
        &mut self,
        now: Millis,
        by: &str,
        comment: Option<&str>,
    ) -> Result<Progress, Refused> {
        let at_switch = self.switch_gate_open();
        if !at_switch && !matches!(self.state.phase, Phase::AwaitingApproval { .. }) {
            return Err(self.not_awaiting());
        }
        let Some(approvals) = self.state.approvals.as_mut() else {
            return Err(self.not_awaiting());
        };
        let progress = approvals.approve(now, by, comment)?;
        match progress {
            Progress::Approved if at_switch => {
                // The approvals are saved with the switch's own save.
                if let Some(r) = self.rollout.as_mut() {
                    r.command(now, Command::Switch)?;
                }
                self.pump(now);
            }
            Progress::Approved => self.after_approval(now),
            Progress::Waiting { .. } => self.persist(None),
        }
        Ok(progress)
    }

    /// `by` rejects: the deployment ends with nothing started. Refused when
    /// the release does not await approval. The caller records the decision.
    pub fn reject(&mut self, now: Millis, by: &str, reason: &str) -> Result<(), Refused> {
        if self.switch_gate_open() {
            if let Some(r) = self.rollout.as_mut() {
                r.command(
                    now,
                    Command::Abort {
                        reason: format!("rejected by {by}: {reason}; no traffic moved"),
                    },
                )?;
            }
            self.pump(now);
            return Ok(());
        }
        let Phase::AwaitingApproval { .. } = self.state.phase else {
            return Err(self.not_awaiting());
        };
        self.not_started(format!(
            "rejected by {by}: {reason}; nothing was started and the serving release is unchanged"
        ));
        Ok(())
    }

    fn not_awaiting(&self) -> Refused {
        Refused(format!(
            "deployment of {} is not awaiting approval ({})",
            self.plan.version(),
            self.phase_name()
        ))
    }

    /// A newer deploy wants the environment: end the rollback window now
    /// (retire the replaced release, then contract). False when the release
    /// is not in its window (it ends by itself).
    pub fn end_window(&mut self, _now: Millis) -> bool {
        if !matches!(self.state.phase, Phase::Warm { .. }) {
            return false;
        }
        self.event(
            EventKind::WindowOver,
            None,
            format!(
                "a newer release is coming: retiring {} now",
                self.plan.previous().unwrap_or("the previous release")
            ),
        );
        self.retire_replaced();
        true
    }

    /// A rollback takes over during the warm window: this release ends here,
    /// retiring nothing and running no contract migration (the rollback
    /// switches back to the warm release and retires this one itself).
    pub fn supersede(&mut self, _now: Millis) -> Result<(), Refused> {
        if !matches!(self.state.phase, Phase::Warm { .. }) {
            return Err(Refused(format!(
                "{} is not in its rollback window ({})",
                self.plan.version(),
                self.phase_name()
            )));
        }
        self.state.superseded = true;
        self.state.phase = Phase::Done;
        self.persist(None);
        self.event(
            EventKind::Superseded,
            None,
            format!(
                "rolled back during the window: {} is not retired and no contract migration runs",
                self.plan.previous().unwrap_or("the previous release")
            ),
        );
        Ok(())
    }

    // ---- stages ---------------------------------------------------------------

    fn begin(&mut self, now: Millis) {
        if let Some(policy) = self.plan.approval.clone()
            && policy.at == ApprovalAt::Start
            && self.plan.kind == ReleaseKind::Deploy
        {
            let approvals = Approvals::new(&policy, now);
            self.state.phase = Phase::AwaitingApproval {
                until: approvals.until,
            };
            self.state.approvals = Some(approvals);
            self.persist(None);
            self.event(
                EventKind::AwaitingApproval,
                None,
                format!(
                    "awaiting approval: {} approval(s) by someone other than {} within {}; nothing starts until then",
                    policy.required.max(1),
                    policy.requested_by,
                    fmt_window(policy.expires)
                ),
            );
            return;
        }
        self.after_approval(now);
    }

    /// Approvals given and needed (0 of 1 before any gate opened).
    fn approval_count(&self) -> (u32, u32) {
        self.state
            .approvals
            .as_ref()
            .map_or((0, 1), |a| (a.have(), a.required))
    }

    fn expired_event(&mut self, have: u32, need: u32) {
        self.event(
            EventKind::ApprovalExpired,
            None,
            format!("approval expired with {have} of {need} approval(s)"),
        );
    }

    /// The deadline passed without enough approvals.
    fn expire(&mut self) {
        let (have, need) = self.approval_count();
        self.expired_event(have, need);
        self.not_started(format!(
            "approval expired ({have} of {need} approval(s) given): nothing was started and the serving release is unchanged; deploy again to ask anew"
        ));
    }

    /// What a deploy does once it may (approved, or no approval needed).
    fn after_approval(&mut self, now: Millis) {
        match self.plan.kind {
            ReleaseKind::Rollback => {
                self.state.phase = Phase::ProbeWarm;
                self.persist(None);
                let version = self.plan.version().to_owned();
                self.action(ReleaseAction::ProbeWarm { version });
            }
            ReleaseKind::Restart => self.roll(now),
            ReleaseKind::Deploy if self.plan.backup => {
                self.state.phase = Phase::Backup;
                self.persist(None);
                self.action(ReleaseAction::Backup);
            }
            ReleaseKind::Deploy => self.after_backup(now),
        }
    }

    fn after_backup(&mut self, now: Millis) {
        if self.plan.kind == ReleaseKind::Deploy && self.plan.migrate {
            self.state.phase = Phase::Expand;
            self.persist(None);
            self.action(ReleaseAction::Expand);
        } else {
            self.roll(now);
        }
    }

    fn roll(&mut self, now: Millis) {
        self.state.phase = Phase::Rolling;
        // The rollout's first persist (its first service starting) saves
        // this phase with the rollout's state.
        self.feed(now, Input::Start);
    }

    /// Rollback while warm: one switch.
    fn switch_back(&mut self, now: Millis) {
        let version = self.plan.version().to_owned();
        self.conclude_serving(now, Outcome::Succeeded);
        // Persist (with serving) comes first: the switch it covers follows.
        let at = self
            .out
            .iter()
            .position(|o| matches!(o, ReleaseOutput::Action(ReleaseAction::Persist { .. })))
            .map_or(self.out.len(), |i| i + 1);
        self.out.insert(
            at,
            ReleaseOutput::Action(ReleaseAction::SwitchTo { version }),
        );
    }

    fn feed(&mut self, now: Millis, input: Input) {
        if let Some(r) = self.rollout.as_mut() {
            r.handle_input(now, input);
        }
        self.pump(now);
    }

    /// Moves the rollout's outputs into this release's queue.
    fn pump(&mut self, now: Millis) {
        loop {
            let Some(r) = self.rollout.as_mut() else {
                return;
            };
            match r.poll_output() {
                Output::Action(Action::Persist(s)) => {
                    if self.state.phase == Phase::Rolling {
                        self.state.rollout = Some(s);
                        self.persist(None);
                    }
                }
                Output::Action(Action::Finish(outcome)) => {
                    if self.state.phase == Phase::Rolling {
                        self.rolled(now, outcome);
                    }
                }
                Output::Action(a) => self.action(ReleaseAction::Rollout(a)),
                Output::Event(mut e) => {
                    if self.state.phase == Phase::Rolling {
                        if e.kind == EventKind::AwaitingSwitch {
                            self.reach_switch_gate(now, &mut e);
                        }
                        self.out.push_back(ReleaseOutput::Event(e));
                    }
                }
                Output::Timeout(t) => {
                    self.rollout_wake = Some(t);
                    return;
                }
                Output::Idle => {
                    self.rollout_wake = None;
                    return;
                }
            }
        }
    }

    /// The rollout ended.
    fn rolled(&mut self, now: Millis, outcome: Outcome) {
        match outcome {
            Outcome::Succeeded => self.conclude_serving(now, Outcome::Succeeded),
            other => {
                // Stop what the new release started for the services that
                // went back; the services that kept it keep it. A rollback
                // also stops the warm release it went back to on the
                // services it never reached: nothing else will (the release
                // it superseded left that to it).
                let rollback = self.plan.kind == ReleaseKind::Rollback;
                let reverted: Vec<String> = self
                    .rollout
                    .as_ref()
                    .map(|r| {
                        r.plan()
                            .services
                            .iter()
                            .zip(&r.state().services)
                            .filter(|(_, s)| {
                                s.stage == Stage::Reverted
                                    || (rollback && s.stage == Stage::Pending)
                            })
                            .map(|(p, _)| p.name.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                self.state.outcome = Some(other.clone());
                let keep = self.plan.previous().map(str::to_owned);
                self.state.phase = Phase::Retiring {
                    keep: keep.clone(),
                    services: reverted.clone(),
                };
                self.persist(None);
                self.action(ReleaseAction::Conclude(other));
                self.action(ReleaseAction::Retire {
                    keep,
                    services: reverted,
                });
            }
        }
    }

    /// The new version serves: saved as serving, the deployment concluded,
    /// the replaced release warm (or retired at once without a window).
    fn conclude_serving(&mut self, now: Millis, outcome: Outcome) {
        let version = self.plan.version().to_owned();
        self.state.outcome = Some(outcome.clone());
        let window = self.plan.rollback_window;
        let warm = self
            .plan
            .previous()
            .filter(|p| *p != version)
            .map(str::to_owned);
        match (&warm, window.0) {
            (Some(_), w) if w > 0 => {
                self.state.phase = Phase::Warm {
                    until: now.after(window),
                };
                self.persist(Some(version));
                // Before the conclusion: whoever follows the deployment
                // until it ends sees it.
                if let Some(previous) = warm {
                    self.event(
                        EventKind::Warm,
                        None,
                        format!(
                            "{previous} stays warm for {} so that rollback is one switch",
                            fmt_window(window)
                        ),
                    );
                }
                self.action(ReleaseAction::Conclude(outcome));
            }
            _ if self.plan.kind == ReleaseKind::Restart => {
                // The same version again: nothing was replaced.
                self.state.phase = Phase::Done;
                self.persist(Some(version));
                self.action(ReleaseAction::Conclude(outcome));
            }
            _ => {
                self.state.phase = self.retire_phase();
                self.persist(Some(version));
                self.action(ReleaseAction::Conclude(outcome));
                self.after_phase_change();
            }
        }
    }

    /// From the window to retiring the replaced release.
    fn retire_replaced(&mut self) {
        self.state.phase = self.retire_phase();
        self.persist(None);
        self.after_phase_change();
    }

    fn retire_phase(&self) -> Phase {
        Phase::Retiring {
            keep: Some(self.plan.version().to_owned()),
            services: self.plan.services(),
        }
    }

    /// Issues the action of the phase just entered.
    fn after_phase_change(&mut self) {
        if let Phase::Retiring { keep, services } = self.state.phase.clone() {
            self.action(ReleaseAction::Retire { keep, services });
        }
    }

    fn after_retire(&mut self) {
        let succeeded = self.state.outcome == Some(Outcome::Succeeded);
        if succeeded
            && self.plan.kind == ReleaseKind::Deploy
            && self.plan.migrate
            && !self.plan.contract.is_empty()
        {
            self.state.phase = Phase::Contract;
            self.persist(None);
            self.action(ReleaseAction::Contract);
        } else {
            self.done();
        }
    }

    fn done(&mut self) {
        self.state.phase = Phase::Done;
        self.persist(None);
    }

    /// Ends before anything started: the serving release is unchanged.
    /// A rollback that ends so still stops the warm release it was to go
    /// back to (the release it superseded left that to it).
    fn not_started(&mut self, reason: String) {
        let outcome = Outcome::NotStarted { reason };
        self.state.outcome = Some(outcome.clone());
        if self.plan.kind == ReleaseKind::Rollback {
            let keep = self.plan.previous().map(str::to_owned);
            let services = self.plan.services();
            self.state.phase = Phase::Retiring {
                keep: keep.clone(),
                services: services.clone(),
            };
            self.persist(None);
            self.action(ReleaseAction::Conclude(outcome));
            self.action(ReleaseAction::Retire { keep, services });
            return;
        }
        self.state.phase = Phase::Done;
        self.persist(None);
        self.action(ReleaseAction::Conclude(outcome));
    }

    /// After a restart in a phase past the rollout: the tables as the
    /// persisted state says.
    fn reapply_table(&mut self, now: Millis) {
        match self.state.rollout.clone() {
            Some(rs) if rs.status == rollout::Status::Finished => {
                let inner = Rollout::restore(
                    self.plan.rollout.clone(),
                    rs,
                    now,
                    RestartPolicy::Resume,
                    &[],
                );
                self.rollout = Some(inner);
                self.pump(now);
            }
            _ => {
                // A warm switch back (no rollout): the version serves.
                if self.state.outcome == Some(Outcome::Succeeded) {
                    let version = self.plan.version().to_owned();
                    self.action(ReleaseAction::SwitchTo { version });
                }
            }
        }
    }

    // ---- helpers --------------------------------------------------------------

    /// The rollout of a release restored before it began: every service's
    /// previous release taken as there when the plan has one (the restarted
    /// runtime reports what differs, as after any restart).
    fn unstarted_rollout(&self) -> Rollout {
        let has_previous = vec![self.plan.previous().is_some(); self.plan.rollout.services.len()];
        Rollout::new(self.plan.rollout.clone(), &has_previous)
    }

    fn next_wakeup(&self) -> Option<Millis> {
        match &self.state.phase {
            Phase::Rolling if self.switch_gate_open() => {
                let until = self.state.approvals.as_ref().map(|a| a.until);
                match (self.rollout_wake, until) {
                    (Some(a), Some(b)) => Some(a.min(b)),
                    (a, b) => a.or(b),
                }
            }
            Phase::Rolling => self.rollout_wake,
            Phase::Warm { until } | Phase::AwaitingApproval { until } => Some(*until),
            _ => None,
        }
    }

    fn phase_name(&self) -> &'static str {
        match self.state.phase {
            Phase::Pending => "not started",
            Phase::AwaitingApproval { .. } => "awaiting approval",
            Phase::Backup => "backing up",
            Phase::Expand => "running expand migrations",
            Phase::ProbeWarm => "checking the previous release",
            Phase::Rolling => "rolling",
            Phase::Warm { .. } => "in the rollback window",
            Phase::Retiring { .. } => "retiring the old release",
            Phase::Contract => "running contract migrations",
            Phase::Done => "done",
        }
    }

    fn persist(&mut self, serving: Option<String>) {
        self.action(ReleaseAction::Persist {
            state: self.state.clone(),
            serving,
        });
    }

    fn action(&mut self, a: ReleaseAction) {
        self.out.push_back(ReleaseOutput::Action(a));
    }

    fn event(&mut self, kind: EventKind, service: Option<&str>, message: String) {
        self.out.push_back(event(kind, service, message));
    }
}

fn event(kind: EventKind, service: Option<&str>, message: String) -> ReleaseOutput {
    ReleaseOutput::Event(Event {
        kind,
        service: service.map(str::to_owned),
        message,
        figures: None,
        verdict: None,
    })
}

/// What `status` and the events say while a release holds.
pub fn held_message(error: &str) -> String {
    format!("held: cannot write the state store: {error}")
}

fn command_name(c: &Command) -> &'static str {
    match c {
        Command::Pause => "pause",
        Command::Resume => "resume",
        Command::Promote { .. } => "promote",
        Command::Abort { .. } => "abort",
        Command::Switch => "switch",
    }
}

/// `350ms`, `4.5s`, `10m`, `1h 30m`.
pub fn fmt_window(d: Millis) -> String {
    let secs = d.0 / 1000;
    if d.0 < 60_000 {
        return d.to_string();
    }
    let (h, m, s) = (secs / 3600, (secs % 3600) / 60, secs % 60);
    let mut parts = Vec::new();
    if h > 0 {
        parts.push(format!("{h}h"));
    }
    if m > 0 {
        parts.push(format!("{m}m"));
    }
    if s > 0 {
        parts.push(format!("{s}s"));
    }
    parts.join(" ")
}
