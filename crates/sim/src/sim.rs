//! The driver, in the style of quinn-proto's test `Pair`: a [`World`] with a
//! logical clock that jumps to the earliest thing due — a release's timeout,
//! a world answer, a save answered, a fault — and the releases under test
//! (`cutover_core::Release`): the deploy, and the rollback an operator may
//! ask for during its window.
//!
//! A *step* is one input (or command, or window operation) followed by a
//! complete drain of `poll_output`, carrying out every action in order as
//! the runtime would: `Persist` goes to the fake store (which may be failing:
//! then it is answered `SaveFailed`, and asked again later), answered at once
//! or in a later step; table actions and `SwitchTo` go to the fake proxy
//! table; `StartInstances`, `Analyze`, `Check`, `Backup`, `Expand`,
//! `ProbeWarm`, `Retire` and `Contract` are answered after a random delay.
//! The checker runs after every action and every step.
//!
//! A daemon crash drops the releases, the answers they were owed, an
//! unanswered save and perhaps the proxy table (the restarted proxy is set up
//! for the version the store records as serving); the new instances of an
//! unfinished rollout may die with it, the old release survives. After the
//! downtime the simulator round-trips the last *saved* state of each release
//! (and its plan) through `serde_json`, calls `Release::restore`, and
//! re-reports the world's health as a restarted runtime would.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;

use cutover_core::{
    Action, Command, Input, Millis, Mismatch, Outcome, Phase, Release as Machine, ReleaseAction,
    ReleaseInput, ReleaseOutput, ReleasePlan, ReleaseState, Status, Verdict,
};
use fastrand::Rng;

use crate::check::{Checker, StepEnd, StepKind, Which};
use crate::schedule::{
    ApprovalOp, DEPLOYER, Fault, Outage, PhaseKind, PhaseTag, Schedule, WindowOp,
};
use crate::table::{Release, Route};
use crate::traffic::Owed;
use crate::world::{Instances, World};

/// Steps a run may take before it counts as not terminating.
pub const STEPS_MAX: u64 = 50_000;

/// Simulated time a run may take before it counts as not terminating.
pub const SIM_TIME_MS_MAX: u64 = 30 * 24 * 3_600_000;

/// Restarts after which the daemon no longer dies during recovery (so that
/// a run ends).
const RESTARTS_MAX: u64 = 4;

/// Outputs one drain may produce before it counts as endless.
const DRAIN_OUTPUTS_MAX: usize = 1_000;

/// Trace lines kept for a failure report (all of them when verbose).
const TRACE_LINES_MAX: usize = 80;

/// How a release ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// Every service on the new release.
    Succeeded,
    /// Everything back on the old release.
    RolledBack,
    /// Rolled back except where the old release had no healthy instance.
    Failed,
    /// Ended before anything started.
    NotStarted,
}

impl From<&Outcome> for OutcomeKind {
    fn from(o: &Outcome) -> OutcomeKind {
        match o {
            Outcome::Succeeded => OutcomeKind::Succeeded,
            Outcome::RolledBack { .. } => OutcomeKind::RolledBack,
            Outcome::NotStarted { .. } => OutcomeKind::NotStarted,
            Outcome::Failed { .. } => OutcomeKind::Failed,
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The deploy's outcome.
    pub outcome: Outcome,
    /// The rollback's outcome, when an operator rolled back.
    pub rollback: Option<Outcome>,
    /// Steps taken.
    pub steps: u64,
    /// Invariants evaluated.
    pub checks: u64,
    /// Daemon restarts.
    pub restarts: u64,
    /// Operator commands accepted.
    pub commands_accepted: u64,
    /// Operator commands refused.
    pub commands_refused: u64,
    /// Saves answered `SaveFailed`.
    pub saves_failed: u64,
    /// Times invariant (a) was waived for a known limit (a decision carried
    /// out after a held save, the world having changed meanwhile).
    pub known_limits: u64,
    /// Simulated time at the end.
    pub ended_at: Millis,
    /// What the run went through (`crash:warm`, `store-held`, …), to show the
    /// schedules reach what they should.
    pub features: BTreeSet<&'static str>,
}

/// A broken invariant, with what is needed to replay it.
#[derive(Debug, Clone)]
pub struct Failure {
    /// The seed.
    pub seed: u64,
    /// The step it broke at.
    pub step: u64,
    /// Simulated time.
    pub now: Millis,
    /// What broke.
    pub message: String,
    /// The last inputs, actions and events.
    pub trace: Vec<String>,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "seed {}: invariant broken at step {}, t={}: {}",
            self.seed, self.step, self.now, self.message
        )?;
        writeln!(
            f,
            "replay: CUTOVER_SIM_SEED={} cargo test -p cutover-sim --test sim random_schedules -- --nocapture",
            self.seed
        )?;
        writeln!(f, "last steps (oldest first):")?;
        for line in &self.trace {
            writeln!(f, "  {line}")?;
        }
        Ok(())
    }
}

/// The fake state store: what was *saved* (answered `Saved`), nothing else.
#[derive(Debug, Clone, PartialEq)]
pub struct Store {
    /// The environment's serving version.
    pub serving: String,
    /// The deploy's last saved state.
    pub deploy: Option<ReleaseState>,
    /// The rollback an operator asked for: its plan, recorded with the
    /// command, and its last saved state.
    pub rollback: Option<(ReleasePlan, Option<ReleaseState>)>,
}

impl Store {
    fn state(&self, which: Which) -> Option<&ReleaseState> {
        match which {
            Which::Deploy => self.deploy.as_ref(),
            Which::Rollback => self.rollback.as_ref().and_then(|(_, s)| s.as_ref()),
        }
    }
}

/// Something due at a time.
#[derive(Debug, Clone)]
enum Due {
    /// An answer or a fact for a release; lost if the daemon dies first.
    Input(Which, ReleaseInput),
    /// What a restarted runtime tells a release once it has looked around;
    /// lost if the daemon dies first.
    Report(Which, ReleaseInput),
    /// A start of instances completes (or fails); lost with the daemon.
    StartDone {
        which: Which,
        service: usize,
        release: Release,
    },
    /// The outstanding save is answered; lost with the daemon.
    Save,
    /// A probe of the warm release completes (it answers with what it
    /// finds then); lost with the daemon.
    ProbeDone { which: Which, release: Release },
    /// The rollback release begins (once the deploy is done).
    BeginRollback,
    /// A scripted fault.
    Fault(Fault),
    /// An operator's window command.
    WindowOp(WindowOp),
    /// An approver approves or rejects the deploy.
    Approval(ApprovalOp),
    /// A crash scheduled when a phase was reached.
    PhaseCrash(usize),
    /// The operator, tired of waiting, acts on a paused rollout.
    Unpause { episode: u32 },
    /// The operator, done smoke-testing, switches (or aborts) a rollout
    /// that awaits the switch; lost with the daemon (asked again after).
    Gate { episode: u32 },
    /// The daemon is back.
    Restart,
}

#[derive(Debug, Clone)]
struct Queued {
    at: Millis,
    seq: u64,
    due: Due,
}

/// What a step feeds a release.
#[derive(Debug, Clone)]
enum Feed {
    Input(ReleaseInput),
    /// The outstanding save is answered (as the store finds itself now).
    SaveAnswer,
    Command(Command),
    Window(WindowOp),
    Approval(ApprovalOp),
    Restored,
}

/// A `Persist` handed out and not answered yet.
#[derive(Debug, Clone)]
struct PendingSave {
    which: Which,
    state: ReleaseState,
    serving: Option<String>,
}

/// One simulated release life.
#[derive(Debug)]
pub struct Sim {
    schedule: Schedule,
    /// The world.
    pub world: World,
    /// The releases, while the daemon is up: the deploy, the rollback.
    machines: [Option<Machine>; 2],
    up: bool,
    /// The release the world is about now.
    active: Which,
    checker: Checker,
    rng: Rng,
    queue: Vec<Queued>,
    seq: u64,
    timeouts: [Option<Millis>; 2],
    /// The store.
    pub store: Store,
    pending_save: Option<PendingSave>,
    /// Store outages, `[from, until)`; grows as phase-triggered ones start.
    outages: Vec<(Millis, Millis)>,
    outages_fired: Vec<bool>,
    phase_crashes_fired: Vec<bool>,
    window_seen: [bool; 2],
    begin_rollback_queued: bool,
    steps: u64,
    crash_armed: Option<usize>,
    /// Services whose new instances died with the daemon (in the last crash).
    gone: Vec<String>,
    outcomes: [Option<Outcome>; 2],
    post_done_restart: bool,
    pause_episode: u32,
    unpause_pending: bool,
    gate_episode: u32,
    gate_pending: bool,
    gate_crash_fired: bool,
    unpauses: u32,
    restarts: u64,
    commands_accepted: u64,
    commands_refused: u64,
    saves_failed: u64,
    trace: VecDeque<String>,
    verbose: bool,
    features: BTreeSet<&'static str>,
}

/// `which`'s machine in `machines` (a free function so that the checker can
/// be borrowed at the same time).
fn machine(machines: &[Option<Machine>; 2], which: Which) -> Option<&Machine> {
    machines[which.index()].as_ref()
}

impl Sim {
    /// A run of the schedule of `seed`.
    pub fn new(seed: u64) -> Sim {
        Sim::with_schedule(Schedule::random(seed))
    }

    /// A run of `schedule`, not started: the first step sends `Start`.
    pub fn with_schedule(schedule: Schedule) -> Sim {
        let world = World::new(&schedule);
        let plan = schedule.deploy_plan();
        let has_previous = schedule.has_previous();
        let checker = Checker::new(&plan, &has_previous);
        let deploy = Machine::new(plan, &has_previous);
        let mut rng = Rng::with_seed(schedule.seed ^ 0x005e_ed0f_c0de);
        let post_done_restart = rng.f64() < 0.2;
        let mut outages = Vec::new();
        for o in &schedule.life.outages {
            if let Outage::Absolute { from, until } = *o {
                outages.push((from, until));
            }
        }
        let mut sim = Sim {
            world,
            machines: [Some(deploy), None],
            up: true,
            active: Which::Deploy,
            checker,
            rng,
            queue: Vec::new(),
            seq: 0,
            timeouts: [None, None],
            store: Store {
                serving: "v1".into(),
                deploy: None,
                rollback: None,
            },
            pending_save: None,
            outages,
            outages_fired: vec![false; schedule.life.outages.len()],
            phase_crashes_fired: vec![false; schedule.life.phase_crashes.len()],
            window_seen: [false, false],
            begin_rollback_queued: false,
            steps: 0,
            crash_armed: None,
            gone: Vec::new(),
            outcomes: [None, None],
            post_done_restart,
            pause_episode: 0,
            unpause_pending: false,
            gate_episode: 0,
            gate_pending: false,
            gate_crash_fired: false,
            unpauses: 0,
            restarts: 0,
            commands_accepted: 0,
            commands_refused: 0,
            saves_failed: 0,
            trace: VecDeque::new(),
            verbose: false,
            features: BTreeSet::new(),
            schedule,
        };
        sim.at(Millis(0), Due::Input(Which::Deploy, ReleaseInput::Start));
        for (t, f) in sim.schedule.faults.clone() {
            sim.at(t, Due::Fault(f));
        }
        for (t, op) in sim.schedule.life.approval_ops.clone() {
            sim.at(t, Due::Approval(op));
        }
        sim
    }

    /// Keep (and print as it goes) the whole trace, not just its tail.
    pub fn verbose(mut self) -> Sim {
        self.verbose = true;
        self
    }

    /// The schedule being run.
    pub fn schedule(&self) -> &Schedule {
        &self.schedule
    }

    /// The deploy, when the daemon is up.
    pub fn deploy(&self) -> Option<&Machine> {
        machine(&self.machines, Which::Deploy)
    }

    /// The rollback, when there is one and the daemon is up.
    pub fn rollback(&self) -> Option<&Machine> {
        machine(&self.machines, Which::Rollback)
    }

    /// Whether the run is over: the last release is done and nothing more
    /// to check.
    pub fn is_done(&self) -> bool {
        self.up && !self.post_done_restart && self.pending_save.is_none() && self.last_done()
    }

    /// The active release is done and no other one is coming.
    fn last_done(&self) -> bool {
        let rollback_coming = self.store.rollback.is_some() && self.active == Which::Deploy;
        !rollback_coming && machine(&self.machines, self.active).is_some_and(Machine::is_done)
    }

    /// Runs until the releases are done, at most [`STEPS_MAX`] steps.
    pub fn drive(&mut self) -> Result<Report, Failure> {
        self.drive_bounded(STEPS_MAX)
    }

    /// Runs until the releases are done; failing if that takes more than
    /// `max_steps` steps or [`SIM_TIME_MS_MAX`] of simulated time.
    pub fn drive_bounded(&mut self, max_steps: u64) -> Result<Report, Failure> {
        while !self.is_done() {
            if self.steps >= max_steps {
                return Err(self.fail(format!(
                    "did not finish within {max_steps} steps (the {} is {:?})",
                    self.active.name(),
                    machine(&self.machines, self.active).map(|m| &m.state().phase)
                )));
            }
            if self.world.now.0 > SIM_TIME_MS_MAX {
                return Err(self.fail(format!(
                    "did not finish within {} of simulated time",
                    Millis(SIM_TIME_MS_MAX)
                )));
            }
            self.step()?;
        }
        let outcome = self.outcomes[0]
            .clone()
            .ok_or_else(|| self.fail("the deploy never concluded".into()))?;
        if matches!(&outcome, Outcome::NotStarted { reason } if reason.starts_with("approval expired"))
        {
            self.features.insert("approval:expired");
        }
        if matches!(&outcome, Outcome::RolledBack { reason, .. } | Outcome::Failed { reason, .. } if reason.contains("approval expired"))
        {
            self.features.insert("approval:expired-at-switch");
        }
        if self.checker.waived_held > 0 {
            self.features.insert("limit:decided-before-hold");
        }
        if self.checker.waived_restore > 0 {
            self.features.insert("limit:restore-before-report");
        }
        Ok(Report {
            seed: self.schedule.seed,
            outcome,
            rollback: self.outcomes[1].clone(),
            steps: self.steps,
            checks: self.checker.checks(),
            restarts: self.restarts,
            commands_accepted: self.commands_accepted,
            commands_refused: self.commands_refused,
            saves_failed: self.saves_failed,
            known_limits: self.checker.waived_held + self.checker.waived_restore,
            ended_at: self.world.now,
            features: self.features.clone(),
        })
    }

    /// One step: advance the clock to the earliest thing due and handle it.
    pub fn step(&mut self) -> Result<(), Failure> {
        let queued = self
            .queue
            .iter()
            .enumerate()
            .min_by_key(|(_, q)| (q.at, q.seq))
            .map(|(i, q)| (i, q.at));
        let timeout = if self.up {
            [Which::Deploy, Which::Rollback]
                .into_iter()
                .filter_map(|w| self.timeouts[w.index()].map(|t| (t, w)))
                .min()
        } else {
            None
        };
        self.steps += 1;
        match (queued, timeout) {
            (Some((i, at)), t) if t.is_none_or(|(t, _)| at <= t) => {
                let q = self.queue.swap_remove(i);
                self.advance(at);
                self.handle(q.due)
            }
            (_, Some((t, which))) => {
                self.advance(t);
                self.feed(which, Feed::Input(ReleaseInput::Tick))
            }
            (_, None) => Err(self.fail(
                "nothing due: no timeout, no answer, no fault, and the releases are not done"
                    .into(),
            )),
        }
    }

    fn advance(&mut self, t: Millis) {
        self.world.now = self.world.now.max(t);
    }

    fn at(&mut self, at: Millis, due: Due) {
        self.seq += 1;
        self.queue.push(Queued {
            at,
            seq: self.seq,
            due,
        });
    }

    fn after(&mut self, delay_ms: std::ops::RangeInclusive<u64>, due: Due) {
        let at = self.world.now.after(Millis(self.rng.u64(delay_ms)));
        self.at(at, due);
    }

    fn log(&mut self, line: String) {
        let line = format!("{:>9} {line}", self.world.now.to_string());
        if self.verbose {
            eprintln!("{line}");
        }
        self.trace.push_back(line);
        if self.trace.len() > TRACE_LINES_MAX {
            self.trace.pop_front();
        }
    }

    fn fail(&self, message: String) -> Failure {
        Failure {
            seed: self.schedule.seed,
            step: self.steps,
            now: self.world.now,
            message,
            trace: self.trace.iter().cloned().collect(),
        }
    }

    fn store_down(&self) -> bool {
        let now = self.world.now;
        self.outages.iter().any(|&(a, b)| a <= now && now < b)
    }

    /// The release's version and the one it replaces, as the world knows them.
    fn versions(which: Which) -> (Release, Release) {
        match which {
            Which::Deploy => (Release::New, Release::Old),
            Which::Rollback => (Release::Old, Release::New),
        }
    }

    fn handle(&mut self, due: Due) -> Result<(), Failure> {
        match due {
            Due::Input(which, input) => self.feed(which, Feed::Input(input)),
            Due::Report(which, input) => {
                self.feed(which, Feed::Input(input))?;
                self.reports_done();
                Ok(())
            }
            Due::StartDone {
                which,
                service,
                release,
            } => {
                let s = &mut self.world.services[service];
                if *s.of(release) != Instances::Starting {
                    // Stopped meanwhile (retired); nobody waits for it.
                    return Ok(());
                }
                let name = s.name.clone();
                let input = if s.start_failures > 0 {
                    s.start_failures -= 1;
                    self.features.insert("start-failed");
                    *s.of_mut(release) = Instances::Stopped;
                    Input::StartFailed {
                        service: name,
                        reason: "exited with status 1 before becoming healthy".into(),
                    }
                } else {
                    let count = s.count[release.index()];
                    *s.of_mut(release) = Instances::Up(vec![true; count]);
                    Input::Started { service: name }
                };
                self.feed(which, Feed::Input(ReleaseInput::Rollout(input)))
            }
            Due::Save => match self.pending_save.as_ref().map(|p| p.which) {
                Some(which) => self.feed(which, Feed::SaveAnswer),
                None => Ok(()),
            },
            Due::ProbeDone { which, release } => {
                // Stop the ones that are not healthy first.
                for s in &mut self.world.services {
                    if let Instances::Up(up) = s.of_mut(release) {
                        up.retain(|&h| h);
                        if up.is_empty() {
                            *s.of_mut(release) = Instances::Stopped;
                        }
                    }
                }
                let ready = self.world.services.iter().all(|s| s.of(release).healthy());
                self.features
                    .insert(if ready { "probe:warm" } else { "probe:cold" });
                self.feed(which, Feed::Input(ReleaseInput::WarmProbed { ready }))
            }
            Due::BeginRollback => self.begin_rollback(),
            Due::Fault(fault) => self.fault(fault),
            Due::WindowOp(op) => {
                if !self.up {
                    self.log(format!("operator: {op:?} (daemon down, not delivered)"));
                    self.commands_refused += 1;
                    return Ok(());
                }
                self.feed(self.active, Feed::Window(op))
            }
            Due::Approval(op) => {
                if !self.up {
                    self.log(format!("approver: {op:?} (daemon down, not delivered)"));
                    self.commands_refused += 1;
                    return Ok(());
                }
                self.feed(Which::Deploy, Feed::Approval(op))
            }
            Due::PhaseCrash(i) => {
                let Some(pc) = self.schedule.life.phase_crashes.get(i).copied() else {
                    return Ok(());
                };
                if self.up && !self.last_done() {
                    self.crash(pc.downtime, pc.table_lost);
                }
                Ok(())
            }
            Due::Unpause { episode } => {
                let paused = machine(&self.machines, self.active)
                    .and_then(Machine::rollout)
                    .is_some_and(|r| r.state().status == Status::Paused);
                if !paused || episode != self.pause_episode {
                    return Ok(());
                }
                self.unpause_pending = false;
                self.unpauses += 1;
                self.features.insert("operator-unpause");
                let command = match (self.unpauses, self.rng.u8(0..10)) {
                    (1..=2, 0..=6) => Command::Resume,
                    (1..=2, _) => Command::Promote { full: false },
                    (_, 0..=6) => Command::Promote { full: true },
                    _ => Command::Abort {
                        reason: "the operator gave up waiting".into(),
                    },
                };
                self.feed(self.active, Feed::Command(command))
            }
            Due::Gate { episode } => {
                let awaiting = machine(&self.machines, self.active)
                    .and_then(Machine::rollout)
                    .is_some_and(|r| r.awaiting_switch().is_some());
                if !awaiting || episode != self.gate_episode {
                    return Ok(());
                }
                self.gate_pending = false;
                let command = if self.schedule.gate.abort {
                    self.features.insert("switch:aborted");
                    Command::Abort {
                        reason: "the smoke test on the preview failed".into(),
                    }
                } else {
                    self.features.insert("switch:released");
                    Command::Switch
                };
                self.feed(self.active, Feed::Command(command))
            }
            Due::Restart => self.restart(),
        }
    }

    /// Once the last re-report after a restart is fed, the core knows the
    /// world (the checker lifts its waiver once the restore's decisions are
    /// carried out).
    fn reports_done(&mut self) {
        if !self.queue.iter().any(|q| matches!(q.due, Due::Report(..))) {
            self.checker.reports_pending = false;
        }
    }

    /// The deploy's rollout is still under way (new instances may crash).
    fn deploy_rolling(&self) -> bool {
        if self.active != Which::Deploy {
            return false;
        }
        let state = match machine(&self.machines, Which::Deploy) {
            Some(m) => Some(m.state()),
            None => self.store.deploy.as_ref(),
        };
        state.is_none_or(|s| {
            PhaseKind::of(&s.phase).rank() <= PhaseKind::Rolling.rank()
                && s.rollout
                    .as_ref()
                    .is_none_or(|r| r.status != Status::Finished)
        })
    }

    fn fault(&mut self, fault: Fault) -> Result<(), Failure> {
        if self.last_done() {
            return Ok(());
        }
        if !self.up
            && matches!(
                fault,
                Fault::NewCrash(_) | Fault::OldDown { .. } | Fault::OldUp(_)
            )
        {
            self.checker.stale_health = true;
        }
        match fault {
            Fault::NewCrash(i) => {
                if !self.deploy_rolling() {
                    return Ok(());
                }
                let s = &mut self.world.services[i];
                let Instances::Up(up) = s.of_mut(Release::New) else {
                    return Ok(());
                };
                let Some(victim) = up.iter().position(|&h| h) else {
                    return Ok(());
                };
                up[victim] = false;
                self.features.insert("new-unhealthy");
                let name = s.name.clone();
                let input = Input::NewUnhealthy {
                    service: name.clone(),
                    reason: format!("instance {victim} exited (signal 9)"),
                };
                self.log(format!("world: new instance {victim} of {name} crashed"));
                self.send(Which::Deploy, ReleaseInput::Rollout(input))
            }
            Fault::OldDown { service, all } => {
                let s = &mut self.world.services[service];
                let was = s.old_healthy();
                let k = match s.of(Release::Old) {
                    Instances::Up(v) if all => v.len(),
                    _ => 1,
                };
                if let Instances::Up(v) = s.of_mut(Release::Old) {
                    for h in v.iter_mut().filter(|h| **h).take(k) {
                        *h = false;
                    }
                }
                let (name, now) = (s.name.clone(), s.old_healthy());
                self.log(format!(
                    "world: {k} {} instance(s) of {name} unhealthy",
                    "v1"
                ));
                match self.active {
                    Which::Deploy if was && !now => {
                        self.features.insert("old-unhealthy");
                        self.send(
                            Which::Deploy,
                            ReleaseInput::Rollout(Input::StableHealth {
                                service: name,
                                healthy: false,
                            }),
                        )
                    }
                    // v1 is what a rollback brings.
                    Which::Rollback if was => self.send(
                        Which::Rollback,
                        ReleaseInput::Rollout(Input::NewUnhealthy {
                            service: name,
                            reason: "v1 instance failed its health check".into(),
                        }),
                    ),
                    _ => Ok(()),
                }
            }
            Fault::OldUp(service) => {
                let s = &mut self.world.services[service];
                let was = s.old_healthy();
                if let Instances::Up(v) = s.of_mut(Release::Old)
                    && let Some(h) = v.iter_mut().find(|h| !**h)
                {
                    *h = true;
                }
                let (name, now) = (s.name.clone(), s.old_healthy());
                self.log(format!("world: a v1 instance of {name} healthy again"));
                if !was && now && self.active == Which::Deploy {
                    self.send(
                        Which::Deploy,
                        ReleaseInput::Rollout(Input::StableHealth {
                            service: name,
                            healthy: true,
                        }),
                    )
                } else {
                    Ok(())
                }
            }
            Fault::StartFailure(i) => {
                self.world.services[i].start_failures += 1;
                Ok(())
            }
            Fault::Operator(command) => {
                if !self.up {
                    self.log(format!(
                        "operator: {command:?} (daemon down, not delivered)"
                    ));
                    self.commands_refused += 1;
                    return Ok(());
                }
                self.feed(self.active, Feed::Command(command))
            }
            Fault::Window(op) => self.handle(Due::WindowOp(op)),
            Fault::DaemonCrash {
                mid_drain,
                downtime,
                table_lost,
            } => {
                if !self.up {
                    return Ok(());
                }
                match mid_drain {
                    Some(k) => {
                        self.features.insert("crash:mid-drain");
                        self.crash_armed = Some(k)
                    }
                    None => self.crash(downtime, table_lost),
                }
                Ok(())
            }
        }
    }

    /// A fact for a release right now (a separate step), when the daemon is up.
    fn send(&mut self, which: Which, input: ReleaseInput) -> Result<(), Failure> {
        if self.up {
            self.feed(which, Feed::Input(input))
        } else {
            Ok(())
        }
    }

    /// One step: feed a release, drain it, check.
    fn feed(&mut self, which: Which, feed: Feed) -> Result<(), Failure> {
        let now = self.world.now;
        let Some(m) = self.machines[which.index()].as_ref() else {
            return Ok(());
        };
        let before = m.state().clone();
        let before_rollout = m.rollout().map(|r| r.state().clone());
        if let Err(e) = self.checker.begin_step(which, now, &self.world) {
            return Err(self.fail(e));
        }
        let mut result = None;
        let mut window = None;
        let mut input_fed = None;
        let line = match feed {
            Feed::Input(input) => {
                let m = machine(&self.machines, which).ok_or_else(|| self.fail("gone".into()))?;
                if let Err(e) = self.checker.told(which, &input, m) {
                    return Err(self.fail(e));
                }
                if let Some(m) = self.machines[which.index()].as_mut() {
                    m.handle_input(now, input.clone());
                }
                let line = match &input {
                    ReleaseInput::Tick => format!("→ {} tick", which.name()),
                    i => format!("→ {} {i:?}", which.name()),
                };
                input_fed = Some(input);
                line
            }
            Feed::SaveAnswer => {
                let input = self.answer_save()?;
                let line = format!("→ {} {input:?}", which.name());
                input_fed = Some(input);
                line
            }
            Feed::Command(command) => {
                let r = self.machines[which.index()]
                    .as_mut()
                    .map(|m| m.command(now, command.clone()));
                let line = match &r {
                    Some(Err(refused)) => {
                        format!("→ operator {command:?}: refused ({refused})")
                    }
                    _ => format!("→ operator {command:?}"),
                };
                match &r {
                    Some(Ok(())) => self.commands_accepted += 1,
                    Some(Err(_)) => {
                        self.commands_refused += 1;
                        if !matches!(before.phase, Phase::Rolling) {
                            self.features.insert("command-refused-outside-rolling");
                        }
                    }
                    None => {}
                }
                result = r.map(|r| (command, r));
                line
            }
            Feed::Window(op) => {
                let (accepted, line) = self.window_op(which, op, &before)?;
                window = Some((op, accepted));
                line
            }
            Feed::Approval(op) => {
                // At the switch, a decision that ends the wait is, for the
                // rollout, the operator's switch (approved) or abort.
                let at_switch = before.phase == Phase::Rolling
                    && self.machines[which.index()]
                        .as_ref()
                        .is_some_and(|m| m.awaiting_approval().is_some());
                let rejecting = matches!(op, ApprovalOp::Reject(_));
                let line = self.approval(which, op, &before)?;
                let ended = self.machines[which.index()]
                    .as_ref()
                    .is_some_and(|m| m.awaiting_approval().is_none());
                if at_switch && ended {
                    let command = if rejecting {
                        Command::Abort {
                            reason: "rejected".into(),
                        }
                    } else {
                        Command::Switch
                    };
                    result = Some((command, Ok(())));
                }
                line
            }
            Feed::Restored => format!("→ {} restored", which.name()),
        };
        self.log(line);
        let idle = match self.drain(which) {
            Ok(Some(idle)) => idle,
            Ok(None) => return Ok(()), // the daemon died mid-drain
            Err(message) => return Err(self.fail(message)),
        };
        let mut owed = vec![Owed::default(); self.world.services.len()];
        let mut owed_any = self.pending_save.as_ref().is_some_and(|p| p.which == which);
        for q in &self.queue {
            match &q.due {
                Due::StartDone {
                    which: w, service, ..
                } if *w == which => {
                    owed_any = true;
                    if let Some(o) = owed.get_mut(*service) {
                        o.start = true;
                    }
                }
                Due::ProbeDone { which: w, .. } if *w == which => owed_any = true,
                Due::Input(w, input) | Due::Report(w, input) if *w == which => {
                    owed_any = true;
                    let (service, kind) = match input {
                        ReleaseInput::Rollout(Input::Analysis { service, .. }) => (service, 1),
                        ReleaseInput::Rollout(Input::Check { service, .. }) => (service, 2),
                        _ => continue,
                    };
                    if let Some(o) = self.world.index(service).and_then(|i| owed.get_mut(i)) {
                        match kind {
                            1 => o.analysis = true,
                            _ => o.check = true,
                        }
                    }
                }
                _ => {}
            }
        }
        let kind = match (&input_fed, &result, &window) {
            (Some(i), _, _) => StepKind::Input(i),
            (_, Some((c, r)), _) => StepKind::Command(c, r),
            (_, _, Some((op, Some(accepted)))) => StepKind::Window(*op, *accepted),
            (_, _, Some((_, None))) => StepKind::Other,
            _ => StepKind::Restore,
        };
        let end = StepEnd {
            kind,
            before: &before,
            before_rollout: before_rollout.as_ref(),
            idle,
            timeout: self.timeouts[which.index()],
            owed_any,
            owed: &owed,
            owner: match &self.store.rollback {
                None => Some(Which::Deploy),
                Some((_, state)) if state.is_none() || self.machines[1].is_some() => {
                    Some(Which::Rollback)
                }
                // Not restored yet: its prologue re-applies its table.
                Some(_) => None,
            },
            serving: &self.store.serving,
        };
        let Some(m) = machine(&self.machines, which) else {
            return Ok(());
        };
        if let Err(message) = self.checker.end_step(which, &end, &self.world, m) {
            return Err(self.fail(message));
        }
        self.after_step();
        Ok(())
    }

    /// An approver's decision on `which`; the log line. The deployer's own
    /// approval must be refused, and an approval must only be taken while
    /// the release awaits approval.
    fn approval(
        &mut self,
        which: Which,
        op: ApprovalOp,
        before: &ReleaseState,
    ) -> Result<String, Failure> {
        let now = self.world.now;
        let Some(m) = self.machines[which.index()].as_mut() else {
            return Ok("approver: no release".into());
        };
        // Before the start (the saved phase) or at the switch (the rollout
        // holds with approvals open), and before the deadline.
        let awaiting = matches!(before.phase, Phase::AwaitingApproval { until } if now < until)
            || m.awaiting_approval().is_some_and(|a| now < a.until);
        let (what, result) = match &op {
            ApprovalOp::Approve(by) => (
                format!("approve by {by}"),
                m.approve(now, by, Some("looks good"))
                    .map(|p| format!("{p:?}")),
            ),
            ApprovalOp::Reject(by) => (
                format!("reject by {by}"),
                m.reject(now, by, "not now").map(|()| "rejected".to_owned()),
            ),
        };
        match (&op, &result) {
            (ApprovalOp::Approve(by), Ok(_)) if by == DEPLOYER => {
                return Err(self.fail("four eyes: the deployer's own approval was taken".into()));
            }
            (ApprovalOp::Approve(by), Err(_)) if by == DEPLOYER => {
                self.features.insert("approval:own-refused");
            }
            (_, Ok(_)) if !awaiting => {
                return Err(self.fail(format!(
                    "{what} taken while the deploy is {:?}",
                    before.phase
                )));
            }
            (ApprovalOp::Approve(_), Ok(p)) => {
                self.features.insert(if p == "Approved" {
                    "approval:approved"
                } else {
                    "approval:partial"
                });
            }
            (ApprovalOp::Reject(_), Ok(_)) => {
                self.features.insert("approval:rejected");
            }
            (_, Err(_)) => {}
        }
        match &result {
            Ok(_) => self.commands_accepted += 1,
            Err(_) => self.commands_refused += 1,
        }
        Ok(match result {
            Ok(r) => format!("→ approver: {what}: {r}"),
            Err(refused) => format!("→ approver: {what}: refused ({refused})"),
        })
    }

    /// An operator's window command for `which`: `Some(accepted)` when the
    /// core was asked, `None` when the runtime refused it itself.
    fn window_op(
        &mut self,
        which: Which,
        op: WindowOp,
        before: &ReleaseState,
    ) -> Result<(Option<bool>, String), Failure> {
        let now = self.world.now;
        match op {
            WindowOp::NewerDeploy => {
                let ended = self.machines[which.index()]
                    .as_mut()
                    .is_some_and(|m| m.end_window(now));
                if ended {
                    self.features.insert("end-window");
                    self.commands_accepted += 1;
                } else {
                    self.features.insert("window-op-refused");
                    self.commands_refused += 1;
                }
                Ok((
                    Some(ended),
                    format!(
                        "→ operator: a newer deploy ends the {}'s window: {}",
                        which.name(),
                        if ended { "ended" } else { "refused" }
                    ),
                ))
            }
            WindowOp::Rollback if which == Which::Rollback => {
                self.commands_refused += 1;
                Ok((
                    None,
                    "→ operator: rollback (refused: one is running)".into(),
                ))
            }
            WindowOp::Rollback => {
                let warm = matches!(before.phase, Phase::Warm { .. });
                let saved_warm = self
                    .store
                    .deploy
                    .as_ref()
                    .is_some_and(|s| matches!(s.phase, Phase::Warm { .. }));
                if warm && !saved_warm {
                    // The runtime rolls back a release saved as serving in
                    // its window only.
                    self.features.insert("rollback-refused:unsaved");
                    self.commands_refused += 1;
                    return Ok((
                        None,
                        "→ operator: rollback (refused: the window is not saved yet)".into(),
                    ));
                }
                if warm && self.store_down() {
                    self.features.insert("rollback-refused:store");
                    self.commands_refused += 1;
                    return Ok((
                        None,
                        "→ operator: rollback (refused: cannot record it, the store is down)"
                            .into(),
                    ));
                }
                if warm {
                    // Recorded before the deploy is superseded, so that a
                    // crash cannot lose it.
                    let plan = self.schedule.rollback_plan();
                    let has_previous: Vec<bool> = self
                        .world
                        .services
                        .iter()
                        .map(|s| s.of(Release::New).healthy())
                        .collect();
                    self.checker.begin_rollback(&plan, &has_previous);
                    self.store.rollback = Some((plan, None));
                }
                let r = self.machines[which.index()]
                    .as_mut()
                    .map(|m| m.supersede(now));
                let accepted = matches!(r, Some(Ok(())));
                if accepted {
                    self.features.insert("superseded");
                    self.commands_accepted += 1;
                    if let Some(k) = self.schedule.life.crash_superseding
                        && self.crash_armed.is_none()
                    {
                        self.features.insert("crash:superseding");
                        self.crash_armed = Some(k);
                    }
                } else {
                    self.features.insert("window-op-refused");
                    self.commands_refused += 1;
                }
                let line = match r {
                    Some(Err(refused)) => format!("→ operator: rollback (refused: {refused})"),
                    _ => "→ operator: rollback: the deploy is superseded".into(),
                };
                Ok((Some(accepted), line))
            }
        }
    }

    /// Answers the outstanding save as the store is now.
    fn answer_save(&mut self) -> Result<ReleaseInput, Failure> {
        let Some(p) = self.pending_save.take() else {
            return Err(self.fail("a save answered, none outstanding".into()));
        };
        self.answer(p)
    }

    /// Writes `p` to the store, or fails to; tells the checker and the
    /// release.
    fn answer(&mut self, p: PendingSave) -> Result<ReleaseInput, Failure> {
        let now = self.world.now;
        let input = if self.store_down() {
            self.saves_failed += 1;
            self.features.insert("store-held");
            if let Err(e) = self.checker.save_failed(p.which, now) {
                return Err(self.fail(e));
            }
            ReleaseInput::SaveFailed {
                error: "database is locked".into(),
            }
        } else {
            if let Err(e) = self.checker.saved(p.which) {
                return Err(self.fail(e));
            }
            if let Some(v) = &p.serving {
                self.store.serving = v.clone();
            }
            match p.which {
                Which::Deploy => self.store.deploy = Some(p.state),
                Which::Rollback => match &mut self.store.rollback {
                    Some((_, s)) => *s = Some(p.state),
                    None => return Err(self.fail("a rollback saved without its record".into())),
                },
            }
            if self.saves_failed > 0 {
                self.features.insert("store-recovered");
            }
            ReleaseInput::Saved
        };
        if let Some(m) = self.machines[p.which.index()].as_mut() {
            m.handle_input(now, input.clone());
        }
        Ok(input)
    }

    /// Drains a release, carrying out each action. `Some(idle)` when
    /// drained, `None` when the daemon died on the way.
    fn drain(&mut self, which: Which) -> Result<Option<bool>, String> {
        let mut actions = 0;
        for _ in 0..DRAIN_OUTPUTS_MAX {
            let Some(m) = self.machines[which.index()].as_mut() else {
                return Ok(None);
            };
            match m.poll_output() {
                ReleaseOutput::Action(action) => {
                    if self.crash_armed == Some(actions) {
                        self.log(format!("daemon dies before carrying out {action:?}"));
                        self.crash_with_random_effects();
                        return Ok(None);
                    }
                    self.carry_out(which, action)?;
                    actions += 1;
                }
                ReleaseOutput::Event(e) => {
                    let feature = match (e.kind.as_str(), &e.verdict) {
                        ("paused", None) if e.message.contains("operator") => {
                            Some("paused:inconclusive")
                        }
                        ("paused", None) => Some("paused:operator"),
                        ("analysis", Some(Verdict::Inconclusive { .. })) => Some("extended"),
                        ("analysis", Some(Verdict::Fail { .. })) => Some("analysis-failed"),
                        ("check", _) => Some("fast-check-failed"),
                        ("kept", _) => Some("kept-new"),
                        ("window_over", _) if e.message.contains("window over") => {
                            Some("window-over")
                        }
                        ("migration_failed", _) => Some("contract-failed"),
                        _ => None,
                    };
                    self.features.extend(feature);
                    self.log(format!("  event {}: {}", e.kind, e.message))
                }
                ReleaseOutput::Timeout(t) => {
                    self.timeouts[which.index()] = Some(t);
                    if self.crash_armed.is_some() {
                        self.crash_with_random_effects();
                        return Ok(None);
                    }
                    return Ok(Some(false));
                }
                ReleaseOutput::Idle => {
                    self.timeouts[which.index()] = None;
                    if self.crash_armed.is_some() {
                        self.crash_with_random_effects();
                        return Ok(None);
                    }
                    return Ok(Some(true));
                }
            }
        }
        Err(format!(
            "a drain produced more than {DRAIN_OUTPUTS_MAX} outputs"
        ))
    }

    fn service_index(&self, name: &str, action: &dyn fmt::Debug) -> Result<usize, String> {
        self.world
            .index(name)
            .ok_or_else(|| format!("{action:?} names an unknown service"))
    }

    fn carry_out(&mut self, which: Which, action: ReleaseAction) -> Result<(), String> {
        let line = match &action {
            ReleaseAction::Persist { state, serving } => format!(
                "  ← {} Persist {:?}{}{}{}",
                which.name(),
                state.phase,
                state
                    .outcome
                    .as_ref()
                    .map_or(String::new(), |o| format!(" outcome={o:?}")),
                serving
                    .as_ref()
                    .map_or(String::new(), |v| format!(" serving={v}")),
                state.rollout.as_ref().map_or(String::new(), |s| format!(
                    " rollout: {:?} current={} {}",
                    s.status,
                    s.current,
                    s.services
                        .iter()
                        .map(|s| format!(
                            "{:?}/{}bp/healthy={}",
                            s.stage, s.canary_bp, s.stable_healthy
                        ))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            ),
            a => format!("  ← {} {a:?}", which.name()),
        };
        self.log(line);
        let before = self.world.routes();
        let (version, _) = Sim::versions(which);
        let mut answer_now = None;
        match &action {
            ReleaseAction::Persist { state, serving } => {
                let tag = PhaseTag {
                    rollback: which == Which::Rollback,
                    phase: PhaseKind::of(&state.phase),
                };
                for (i, o) in self.schedule.life.outages.iter().enumerate() {
                    if let Outage::AtPersist { at, duration } = *o
                        && at == tag
                        && !self.outages_fired[i]
                    {
                        self.outages_fired[i] = true;
                        let now = self.world.now;
                        self.outages.push((now, now.after(duration)));
                    }
                }
                let p = PendingSave {
                    which,
                    state: state.clone(),
                    serving: serving.clone(),
                };
                if self.rng.f64() < self.schedule.life.slow_saves {
                    self.features.insert("save-slow");
                    self.pending_save = Some(p);
                    self.after(1..=500, Due::Save);
                } else {
                    answer_now = Some(p);
                }
            }
            ReleaseAction::Rollout(a) => {
                let flip = which == Which::Rollback;
                if let Some((service, route)) = Route::after(a) {
                    let i = self.service_index(service, a)?;
                    let route = if flip { route.flip() } else { route };
                    self.world.set_route(i, route);
                }
                match a {
                    Action::StartInstances { service } => {
                        let i = self.service_index(service, a)?;
                        let s = &mut self.world.services[i];
                        let quick =
                            matches!(s.of(version), Instances::Up(v) if v.iter().all(|&h| h));
                        *s.of_mut(version) = Instances::Starting;
                        s.starts[version.index()] += 1;
                        let delay = if quick {
                            100..=2_000
                        } else {
                            1_000..=crate::schedule::START_DELAY_MS_MAX
                        };
                        self.after(
                            delay,
                            Due::StartDone {
                                which,
                                service: i,
                                release: version,
                            },
                        );
                    }
                    Action::Analyze {
                        service,
                        canary_window,
                        stable_window,
                    } => {
                        let i = self.service_index(service, a)?;
                        let input = Input::Analysis {
                            service: service.clone(),
                            canary: self.world.canary_stats(i, *canary_window),
                            stable: self.world.stable_stats(i, *stable_window),
                        };
                        self.after(0..=5_000, Due::Input(which, ReleaseInput::Rollout(input)));
                    }
                    Action::Check { service, window } => {
                        let i = self.service_index(service, a)?;
                        let input = Input::Check {
                            service: service.clone(),
                            canary: self.world.canary_stats(i, *window),
                        };
                        self.after(0..=2_000, Due::Input(which, ReleaseInput::Rollout(input)));
                    }
                    _ => {}
                }
            }
            ReleaseAction::Backup => {
                let result = if self.schedule.life.backup_fails {
                    self.features.insert("backup-failed");
                    Err("pg_dump: connection refused".into())
                } else {
                    Ok(())
                };
                self.after(
                    1_000..=60_000,
                    Due::Input(which, ReleaseInput::BackupDone(result)),
                );
            }
            ReleaseAction::Expand => {
                let result = if self.schedule.life.expand_fails {
                    self.features.insert("expand-failed");
                    Err("0007_add_column.sql: lock timeout".into())
                } else {
                    Ok(())
                };
                self.after(
                    1_000..=20_000,
                    Due::Input(which, ReleaseInput::ExpandDone(result)),
                );
            }
            ReleaseAction::ProbeWarm { version: v } => {
                let release =
                    Release::of_version(v).ok_or(format!("{action:?}: unknown version"))?;
                self.after(10..=500, Due::ProbeDone { which, release });
            }
            ReleaseAction::SwitchTo { version: v } => {
                let release =
                    Release::of_version(v).ok_or(format!("{action:?}: unknown version"))?;
                for i in 0..self.world.services.len() {
                    self.world.set_route(i, Route::all(release));
                }
            }
            ReleaseAction::Conclude(o) => {
                if self.outcomes[which.index()].is_none() {
                    self.outcomes[which.index()] = Some(o.clone());
                    let rolled =
                        machine(&self.machines, which).is_some_and(|m| m.state().rollout.is_some());
                    let f = match (which, o) {
                        (Which::Deploy, Outcome::NotStarted { .. }) => Some("not-started"),
                        (Which::Rollback, Outcome::Succeeded) if rolled => Some("cold-rollback"),
                        (Which::Rollback, Outcome::Succeeded) => Some("warm-rollback"),
                        (Which::Rollback, _) => Some("rollback-failed"),
                        _ => None,
                    };
                    self.features.extend(f);
                }
            }
            ReleaseAction::Retire { keep, services } => {
                let keep = keep.as_deref().and_then(Release::of_version);
                for name in services {
                    let i = self.service_index(name, &action)?;
                    for r in Release::BOTH {
                        if Some(r) != keep {
                            *self.world.services[i].of_mut(r) = Instances::Stopped;
                        }
                    }
                }
                self.after(100..=10_000, Due::Input(which, ReleaseInput::Retired));
            }
            ReleaseAction::Contract => {
                self.features.insert("contract");
                let result = if self.schedule.life.contract_fails {
                    Err("0007_drop_column.sql: lock timeout".into())
                } else {
                    Ok(())
                };
                self.after(
                    1_000..=20_000,
                    Due::Input(which, ReleaseInput::ContractDone(result)),
                );
            }
        }
        let m = machine(&self.machines, which).ok_or("the release is gone")?;
        self.checker
            .action(which, &action, &before, &self.world, m, &self.store.serving)?;
        if let Some(p) = answer_now {
            let input = self.answer(p).map_err(|f| f.message)?;
            self.log(format!("  → {} {input:?}", which.name()));
        }
        Ok(())
    }

    /// Bookkeeping after a checked step: the operator's patience, window
    /// operations and crashes due in the phase reached, the rollback
    /// beginning, the optional crash after the end.
    fn after_step(&mut self) {
        let which = self.active;
        let Some(m) = machine(&self.machines, which) else {
            return;
        };
        let phase = m.state().phase.clone();
        let paused = m
            .rollout()
            .is_some_and(|r| r.state().status == Status::Paused);
        let awaiting = m.rollout().is_some_and(|r| r.awaiting_switch().is_some());
        if paused {
            if !self.unpause_pending {
                self.unpause_pending = true;
                self.pause_episode += 1;
                let episode = self.pause_episode;
                let at = self.world.now.after(self.schedule.operator_patience);
                self.at(at, Due::Unpause { episode });
            }
        } else {
            self.unpause_pending = false;
        }
        if awaiting {
            self.features.insert("switch:held");
            if self.restarts > 0 {
                self.features.insert("switch:held-after-restart");
            }
            if !self.gate_pending {
                self.gate_pending = true;
                self.gate_episode += 1;
                let episode = self.gate_episode;
                let at = self.world.now.after(self.schedule.gate.patience);
                self.at(at, Due::Gate { episode });
                if let Some((delay, downtime, table_lost)) = self.schedule.gate.crash
                    && !self.gate_crash_fired
                {
                    self.gate_crash_fired = true;
                    let crash = Fault::DaemonCrash {
                        mid_drain: None,
                        downtime,
                        table_lost,
                    };
                    self.at(self.world.now.after(delay), Due::Fault(crash));
                }
            }
        } else {
            self.gate_pending = false;
        }
        let now = self.world.now;
        if matches!(phase, Phase::Warm { .. }) && !self.window_seen[which.index()] {
            self.window_seen[which.index()] = true;
            match which {
                Which::Deploy => {
                    for (d, op) in self.schedule.life.window_ops.clone() {
                        self.at(now.after(d), Due::WindowOp(op));
                    }
                    for (d, f) in self.schedule.life.window_faults.clone() {
                        self.at(now.after(d), Due::Fault(f));
                    }
                }
                Which::Rollback => {
                    if let Some(d) = self.schedule.life.rollback_window_end {
                        self.at(now.after(d), Due::WindowOp(WindowOp::NewerDeploy));
                    }
                }
            }
        }
        let tag = PhaseTag {
            rollback: which == Which::Rollback,
            phase: PhaseKind::of(&phase),
        };
        for (i, pc) in self.schedule.life.phase_crashes.clone().iter().enumerate() {
            if pc.at == tag && !self.phase_crashes_fired[i] {
                self.phase_crashes_fired[i] = true;
                match pc.mid_drain {
                    Some(k) if self.crash_armed.is_none() => {
                        self.features.insert("crash:mid-drain");
                        self.crash_armed = Some(k);
                    }
                    _ => self.at(now.after(pc.delay), Due::PhaseCrash(i)),
                }
            }
        }
        let deploy_done = machine(&self.machines, Which::Deploy).is_some_and(Machine::is_done);
        if self.store.rollback.is_some()
            && self.machines[1].is_none()
            && deploy_done
            && !self.begin_rollback_queued
        {
            self.begin_rollback_queued = true;
            self.at(now, Due::BeginRollback);
        }
        if self.last_done() && self.pending_save.is_none() && self.post_done_restart {
            // Once more after the end: a restored done release must stay
            // done and leave the table as it was.
            self.post_done_restart = false;
            let downtime = Millis(self.rng.u64(0..=10_000));
            let table_lost = self.rng.bool();
            self.features.insert("crash:after-finish");
            self.crash(downtime, table_lost);
        }
    }

    /// The rollback release begins (or is restored), once the deploy is done.
    fn begin_rollback(&mut self) -> Result<(), Failure> {
        self.begin_rollback_queued = false;
        if !self.up || self.machines[1].is_some() {
            return Ok(());
        }
        let Some((plan, state)) = self.store.rollback.clone() else {
            return Ok(());
        };
        let plan = round_trip(&plan).map_err(|e| self.fail(e))?;
        self.active = Which::Rollback;
        match state {
            Some(state) => {
                let state = round_trip_state(&state).map_err(|e| self.fail(e))?;
                let gone = self.gone_for(Which::Rollback);
                self.log(format!("the rollback restores, gone {gone:?}"));
                if self.stale_knowledge(Which::Rollback, &state) {
                    self.checker.stale_health = true;
                }
                let m = Machine::restore(plan, state.clone(), self.world.now, &gone)
                    .map_err(|Mismatch(e)| self.fail(format!("Release::restore refused: {e}")))?;
                self.machines[1] = Some(m);
                if let Err(e) = self.checker.restored(Which::Rollback, &state) {
                    return Err(self.fail(e));
                }
                self.feed(Which::Rollback, Feed::Restored)?;
                if self.up {
                    self.report_health(Which::Rollback);
                    self.reports_done();
                }
            }
            None => {
                self.log("the rollback begins".into());
                let has_previous: Vec<bool> = self
                    .world
                    .services
                    .iter()
                    .map(|s| s.of(Release::New).healthy())
                    .collect();
                self.machines[1] = Some(Machine::new(plan, &has_previous));
                if let Err(e) = self.checker.fresh(Which::Rollback, &has_previous) {
                    return Err(self.fail(e));
                }
                let now = self.world.now;
                self.at(now, Due::Input(Which::Rollback, ReleaseInput::Start));
                self.reports_done();
                if let Some(d) = self.schedule.life.abort_rollback {
                    self.features.insert("rollback-aborted");
                    self.at(
                        now.after(d),
                        Due::Fault(Fault::Operator(Command::Abort {
                            reason: "the operator changed their mind".into(),
                        })),
                    );
                }
            }
        }
        Ok(())
    }

    fn crash_with_random_effects(&mut self) {
        let downtime = Millis(self.rng.u64(0..=60_000));
        let table_lost = self.rng.bool();
        self.crash(downtime, table_lost);
    }

    /// The daemon dies: the releases, the answers owed to them and an
    /// unanswered save are gone; an unfinished rollout's new instances may
    /// die with it; maybe the proxy's table too.
    fn crash(&mut self, downtime: Millis, table_lost: bool) {
        let which = self.active;
        if let Some(m) = machine(&self.machines, which) {
            // Named after the phase the store holds: what the restore sees.
            let phase = self
                .store
                .state(which)
                .map_or(PhaseKind::Pending, |s| PhaseKind::of(&s.phase));
            self.features.insert(match phase {
                PhaseKind::Pending => "crash:pending",
                PhaseKind::AwaitingApproval => "crash:awaiting-approval",
                PhaseKind::Backup => "crash:backup",
                PhaseKind::Expand => "crash:expand",
                PhaseKind::ProbeWarm => "crash:probe-warm",
                PhaseKind::Rolling => "crash:rolling",
                PhaseKind::Warm => "crash:warm",
                PhaseKind::Retiring => "crash:retiring",
                PhaseKind::Contract => "crash:contract",
                PhaseKind::Done => "crash:done",
            });
            if m.held().is_some() {
                self.features.insert("crash:held");
            }
            if m.rollout().is_some_and(|r| r.awaiting_switch().is_some()) {
                self.features.insert("crash:awaiting-switch");
            }
        }
        if which == Which::Rollback {
            self.features.insert("crash:rollback");
        }
        self.checker.crashed(self.world.now);
        self.machines = [None, None];
        self.up = false;
        self.timeouts = [None, None];
        self.crash_armed = None;
        self.unpause_pending = false;
        self.gate_pending = false;
        self.pending_save = None;
        self.begin_rollback_queued = false;
        self.queue.retain(|q| {
            matches!(
                q.due,
                Due::Fault(_) | Due::WindowOp(_) | Due::PhaseCrash(_) | Due::Restart
            )
        });
        // The new instances of an unfinished rollout may die with the daemon.
        self.gone.clear();
        let in_flight = self.store.state(which).is_some_and(|s| {
            s.phase == Phase::Rolling
                && s.rollout
                    .as_ref()
                    .is_some_and(|r| r.status != Status::Finished)
        });
        if in_flight {
            let (version, _) = Sim::versions(which);
            for i in 0..self.world.services.len() {
                if self.world.services[i].of(version).running() && self.rng.f64() < 0.2 {
                    *self.world.services[i].of_mut(version) = Instances::Stopped;
                    self.gone.push(self.world.services[i].name.clone());
                }
            }
        }
        if !self.gone.is_empty() {
            self.features.insert("gone");
        }
        if table_lost {
            // The restarted proxy is set up for the serving version, and the
            // restored release re-applies its tables; a done release does
            // not, so for one the runtime sets the table up as its saved
            // state says (a failed deploy keeps some services on its version).
            self.features.insert("table-lost");
            let n = self.world.services.len();
            let last = match &self.store.rollback {
                Some((plan, state)) => (plan.clone(), state.as_ref()),
                None => (self.schedule.deploy_plan(), self.store.deploy.as_ref()),
            };
            let routes = match last {
                (plan, Some(state)) if state.phase == Phase::Done => {
                    crate::check::expected_routes(&plan, Some(state), n)
                }
                _ => {
                    let serving = Release::of_version(&self.store.serving).unwrap_or(Release::Old);
                    vec![Route::all(serving); n]
                }
            };
            for (i, route) in routes.into_iter().enumerate() {
                self.world.set_route(i, route);
            }
        }
        self.log(format!(
            "daemon crashed; new instances gone: {:?}; table {}; back in {downtime}",
            self.gone,
            if table_lost {
                "lost (back on the serving version)"
            } else {
                "kept"
            }
        ));
        let at = self.world.now.after(downtime);
        self.at(at, Due::Restart);
    }

    /// The daemon is back: restore from the store, re-report the world.
    fn restart(&mut self) -> Result<(), Failure> {
        self.restarts += 1;
        self.up = true;
        self.checker.reports_pending = true;
        self.active = Which::Deploy;
        let plan = round_trip(&self.schedule.deploy_plan()).map_err(|e| self.fail(e))?;
        let now = self.world.now;
        let gone = self.gone_for(Which::Deploy);
        match self.store.deploy.clone() {
            Some(state) => {
                let state = round_trip_state(&state).map_err(|e| self.fail(e))?;
                self.log(format!(
                    "daemon restarts: restore the deploy ({:?}) from {:?}, gone {gone:?}",
                    plan.rollout.on_restart, state.phase
                ));
                self.features.insert(match plan.rollout.on_restart {
                    cutover_core::RestartPolicy::Resume => "restore:resume",
                    cutover_core::RestartPolicy::Rollback => "restore:rollback",
                });
                if self.stale_knowledge(Which::Deploy, &state) {
                    self.checker.stale_health = true;
                }
                let m = Machine::restore(plan, state.clone(), now, &gone)
                    .map_err(|Mismatch(e)| self.fail(format!("Release::restore refused: {e}")))?;
                // A restored machine still awaits, with the same deadline
                // and the approvals given.
                if let Phase::AwaitingApproval { until } = state.phase {
                    self.features.insert("restore:awaiting-approval");
                    let same = m.state().phase == Phase::AwaitingApproval { until }
                        && m.awaiting_approval() == state.approvals.as_ref();
                    if !same {
                        return Err(self.fail(format!(
                            "restored from awaiting approval until {until}, the deploy is {:?} with {:?}",
                            m.state().phase,
                            m.awaiting_approval()
                        )));
                    }
                }
                self.machines[0] = Some(m);
                if let Err(e) = self.checker.restored(Which::Deploy, &state) {
                    return Err(self.fail(e));
                }
            }
            None => {
                self.log("daemon restarts: nothing saved, starting over".into());
                self.features.insert("restore:nothing-saved");
                // What a restarted runtime finds of the old release.
                let has_previous: Vec<bool> = self
                    .world
                    .services
                    .iter()
                    .map(|s| s.old_healthy())
                    .collect();
                self.machines[0] = Some(Machine::new(plan, &has_previous));
                if let Err(e) = self.checker.fresh(Which::Deploy, &has_previous) {
                    return Err(self.fail(e));
                }
                self.at(now, Due::Input(Which::Deploy, ReleaseInput::Start));
            }
        }
        if self.store.rollback.is_some()
            && let Some(m) = self.machines[0].as_mut()
            && matches!(m.state().phase, Phase::Warm { .. })
        {
            // The rollback was recorded, the deploy's superseding was not
            // saved: supersede it again.
            self.features.insert("restore:re-supersede");
            if let Err(refused) = m.supersede(now) {
                return Err(self.fail(format!(
                    "a recorded rollback cannot supersede the restored deploy: {refused}"
                )));
            }
        }
        if self.restarts < RESTARTS_MAX && self.rng.f64() < 0.1 {
            // It dies again while re-applying the restored state.
            self.crash_armed = Some(self.rng.usize(0..=3));
            self.features.insert("crash:during-recovery");
        }
        if self.store.deploy.is_some() {
            self.feed(Which::Deploy, Feed::Restored)?;
        }
        if self.up {
            self.report_health(Which::Deploy);
            if self.store.rollback.is_none() {
                // (Else once the rollback is restored and told.)
                self.reports_done();
            }
        }
        Ok(())
    }

    /// Whether a release restored from `state` starts with health knowledge
    /// the world has moved away from (the old release's health as saved,
    /// new instances that failed): a restore decides before it is told (and
    /// a finished rollout's tables, re-applied, rest on the same knowledge).
    fn stale_knowledge(&self, which: Which, state: &ReleaseState) -> bool {
        let Some(rs) = state.rollout.as_ref() else {
            return false;
        };
        let (version, previous) = Sim::versions(which);
        self.world
            .services
            .iter()
            .zip(&rs.services)
            .any(|(s, saved)| {
                saved.stable_healthy != s.of(previous).healthy() || s.of(version).has_unhealthy()
            })
    }

    /// What a restarted runtime finds gone: the services with no instance
    /// of `which`'s version (its rollout decides which of them matter).
    fn gone_for(&self, which: Which) -> Vec<String> {
        let (version, _) = Sim::versions(which);
        self.world
            .services
            .iter()
            .filter(|s| !s.of(version).running())
            .map(|s| s.name.clone())
            .collect()
    }

    /// What a restarted runtime tells a release whose rollout is not over
    /// once it has looked around: old-release health that differs from what
    /// it knows, new instances that failed.
    fn report_health(&mut self, which: Which) {
        let Some(state) = machine(&self.machines, which)
            .and_then(|m| m.rollout())
            .filter(|r| !r.is_finished())
            .map(|r| r.state().clone())
        else {
            return;
        };
        let (version, previous) = Sim::versions(which);
        let now = self.world.now;
        for (i, s) in self.world.services.clone().iter().enumerate() {
            let healthy = s.of(previous).healthy();
            if state.services[i].stable_healthy != healthy {
                self.at(
                    now,
                    Due::Report(
                        which,
                        ReleaseInput::Rollout(Input::StableHealth {
                            service: s.name.clone(),
                            healthy,
                        }),
                    ),
                );
            }
            if state.started && s.of(version).has_unhealthy() {
                self.at(
                    now,
                    Due::Report(
                        which,
                        ReleaseInput::Rollout(Input::NewUnhealthy {
                            service: s.name.clone(),
                            reason: "found unhealthy after the daemon restarted".into(),
                        }),
                    ),
                );
            }
        }
    }
}

/// The state through JSON and back, as the store keeps it; it must come
/// back exactly equal.
fn round_trip_state(state: &ReleaseState) -> Result<ReleaseState, String> {
    let json = serde_json::to_string(state).map_err(|e| e.to_string())?;
    let back: ReleaseState = serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?;
    if &back == state {
        Ok(back)
    } else {
        Err(format!(
            "the state does not round-trip through JSON:\n before {state:?}\n after  {back:?}\n json   {json}"
        ))
    }
}

/// The plan through JSON and back. Its thresholds are `f64`s, which
/// `serde_json` without its `float_roundtrip` feature may read back one ulp
/// off; anything more than that is a failure.
fn round_trip(plan: &ReleasePlan) -> Result<ReleasePlan, String> {
    let json = serde_json::to_string(plan).map_err(|e| e.to_string())?;
    let back: ReleasePlan = serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?;
    let (a, b) = (
        serde_json::to_value(plan).map_err(|e| e.to_string())?,
        serde_json::to_value(&back).map_err(|e| e.to_string())?,
    );
    if same_json(&a, &b) {
        Ok(back)
    } else {
        Err(format!(
            "the plan does not round-trip through JSON:\n before {plan:?}\n after  {back:?}\n json   {json}"
        ))
    }
}

fn same_json(a: &serde_json::Value, b: &serde_json::Value) -> bool {
    use serde_json::Value;
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_f64(), y.as_f64()) {
            (Some(x), Some(y)) => {
                x == y || (x - y).abs() <= 4.0 * f64::EPSILON * x.abs().max(y.abs())
            }
            _ => x == y,
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same_json(x, y))
        }
        (Value::Object(x), Value::Object(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.get(k).is_some_and(|w| same_json(v, w)))
        }
        _ => a == b,
    }
}
