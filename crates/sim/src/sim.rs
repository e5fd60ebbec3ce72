//! The driver, in the style of quinn-proto's test `Pair`: a [`World`] with a
//! logical clock that jumps to the earliest thing due — the core's timeout, a
//! world answer, a fault — and the [`Rollout`] under test.
//!
//! A *step* is one input (or command) followed by a complete drain of
//! `poll_output`, carrying out every action in order as the runtime would:
//! `Persist` goes to the fake store, table actions to the fake proxy table,
//! `StartInstances` / `Analyze` / `Check` are answered after a random delay.
//! The checker runs after every action and every step.
//!
//! A daemon crash drops the `Rollout`, the answers it was owed and perhaps the
//! proxy table, and kills the new instances of some services; after the
//! downtime the simulator round-trips the last persisted state through
//! `serde_json`, calls `Rollout::restore` with the plan's restart policy and
//! the services whose new instances are gone, and re-reports the world's
//! health as a restarted runtime would.

use std::collections::{BTreeSet, VecDeque};
use std::fmt;

use cutover_core::{
    Action, Command, Input, Millis, Outcome, Output, Plan, RestartPolicy, Rollout, State, Status,
    Verdict,
};
use fastrand::Rng;

use crate::check::{Checker, Owed, StepEnd, StepKind};
use crate::schedule::{Fault, Schedule};
use crate::table::Route;
use crate::world::{NewInstances, World};

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

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OutcomeKind {
    /// Every service on the new release.
    Succeeded,
    /// Everything back on the old release.
    RolledBack,
    /// Rolled back except where the old release had no healthy instance.
    Failed,
}

impl From<&Outcome> for OutcomeKind {
    fn from(o: &Outcome) -> OutcomeKind {
        match o {
            Outcome::Succeeded => OutcomeKind::Succeeded,
            Outcome::RolledBack { .. } | Outcome::NotStarted { .. } => OutcomeKind::RolledBack,
            Outcome::Failed { .. } => OutcomeKind::Failed,
        }
    }
}

/// What a finished run reports.
#[derive(Debug, Clone)]
pub struct Report {
    /// The seed.
    pub seed: u64,
    /// The outcome.
    pub outcome: Outcome,
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
    /// Simulated time at the end.
    pub ended_at: Millis,
    /// What the run went through (`crash:mid-drain`, `paused:inconclusive`, …),
    /// to show the schedules reach what they should.
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

/// Something due at a time.
#[derive(Debug, Clone)]
enum Due {
    /// An answer or a fact for the core; lost if the daemon dies first.
    Input(Input),
    /// A start of new instances completes (or fails); lost with the daemon.
    StartDone { service: usize },
    /// A scripted fault.
    Fault(Fault),
    /// The operator, tired of waiting, acts on a paused rollout.
    Unpause { episode: u32 },
    /// The daemon is back.
    Restart,
}

#[derive(Debug, Clone)]
struct Queued {
    at: Millis,
    seq: u64,
    due: Due,
}

/// What a step feeds the core.
#[derive(Debug, Clone)]
enum Feed {
    Input(Input),
    Command(Command),
    Restored,
}

/// One simulated rollout.
#[derive(Debug)]
pub struct Sim {
    schedule: Schedule,
    /// The world.
    pub world: World,
    rollout: Option<Rollout>,
    checker: Checker,
    rng: Rng,
    queue: Vec<Queued>,
    seq: u64,
    timeout: Option<Millis>,
    /// The store: the last persisted state.
    store: Option<State>,
    steps: u64,
    crash_armed: Option<usize>,
    gone: Vec<String>,
    outcome: Option<Outcome>,
    post_finish_restart: bool,
    pause_episode: u32,
    unpause_pending: bool,
    unpauses: u32,
    restarts: u64,
    commands_accepted: u64,
    commands_refused: u64,
    trace: VecDeque<String>,
    verbose: bool,
    /// The step being drained answers an analysis.
    in_analysis: bool,
    features: BTreeSet<&'static str>,
}

impl Sim {
    /// A run of the schedule of `seed`.
    pub fn new(seed: u64) -> Sim {
        Sim::with_schedule(Schedule::random(seed))
    }

    /// A run of `schedule`, not started: the first step sends `Input::Start`.
    pub fn with_schedule(schedule: Schedule) -> Sim {
        let world = World::new(&schedule);
        let checker = Checker::new(&schedule.plan, &schedule.has_previous());
        let rollout = Rollout::new(schedule.plan.clone(), &schedule.has_previous());
        let mut rng = Rng::with_seed(schedule.seed ^ 0x005e_ed0f_c0de);
        let post_finish_restart = rng.f64() < 0.2;
        let mut sim = Sim {
            world,
            rollout: Some(rollout),
            checker,
            rng,
            queue: Vec::new(),
            seq: 0,
            timeout: None,
            store: None,
            steps: 0,
            crash_armed: None,
            gone: Vec::new(),
            outcome: None,
            post_finish_restart,
            pause_episode: 0,
            unpause_pending: false,
            unpauses: 0,
            restarts: 0,
            commands_accepted: 0,
            commands_refused: 0,
            trace: VecDeque::new(),
            verbose: false,
            in_analysis: false,
            features: BTreeSet::new(),
            schedule,
        };
        sim.at(Millis(0), Due::Input(Input::Start));
        for (t, f) in sim.schedule.faults.clone() {
            sim.at(t, Due::Fault(f));
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

    /// The rollout, when the daemon is up.
    pub fn rollout(&self) -> Option<&Rollout> {
        self.rollout.as_ref()
    }

    /// Whether the run is over: the rollout finished and nothing more to check.
    pub fn is_done(&self) -> bool {
        self.outcome.is_some()
            && !self.post_finish_restart
            && self.rollout.as_ref().is_some_and(Rollout::is_finished)
    }

    /// Runs until the rollout is over, at most [`STEPS_MAX`] steps.
    pub fn drive(&mut self) -> Result<Report, Failure> {
        self.drive_bounded(STEPS_MAX)
    }

    /// Runs until the rollout is over; failing if that takes more than
    /// `max_steps` steps or [`SIM_TIME_MS_MAX`] of simulated time.
    pub fn drive_bounded(&mut self, max_steps: u64) -> Result<Report, Failure> {
        while !self.is_done() {
            if self.steps >= max_steps {
                return Err(self.fail(format!(
                    "did not finish within {max_steps} steps (status {:?})",
                    self.rollout.as_ref().map(|r| r.state().status)
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
        let outcome = self
            .outcome
            .clone()
            .ok_or_else(|| self.fail("no outcome".into()))?;
        Ok(Report {
            seed: self.schedule.seed,
            outcome,
            steps: self.steps,
            checks: self.checker.checks,
            restarts: self.restarts,
            commands_accepted: self.commands_accepted,
            commands_refused: self.commands_refused,
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
        let timeout = self.rollout.as_ref().and(self.timeout);
        self.steps += 1;
        match (queued, timeout) {
            (Some((i, at)), t) if t.is_none_or(|t| at <= t) => {
                let q = self.queue.swap_remove(i);
                self.advance(at);
                self.handle(q.due)
            }
            (_, Some(t)) => {
                self.advance(t);
                self.feed(Feed::Input(Input::Tick))
            }
            (_, None) => Err(self.fail(
                "nothing due: no timeout, no answer, no fault, and the rollout is not over".into(),
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

    fn handle(&mut self, due: Due) -> Result<(), Failure> {
        match due {
            Due::Input(input) => self.feed(Feed::Input(input)),
            Due::StartDone { service } => {
                let s = &mut self.world.services[service];
                if s.new != NewInstances::Starting {
                    // Stopped meanwhile (a revert); nobody waits for it.
                    return Ok(());
                }
                let name = s.name.clone();
                let input = if s.start_failures > 0 {
                    s.start_failures -= 1;
                    self.features.insert("start-failed");
                    s.new = NewInstances::Stopped;
                    Input::StartFailed {
                        service: name,
                        reason: "exited with status 1 before becoming healthy".into(),
                    }
                } else {
                    s.new = NewInstances::Up(vec![true; s.new_count]);
                    Input::Started { service: name }
                };
                self.feed(Feed::Input(input))
            }
            Due::Fault(fault) => self.fault(fault),
            Due::Unpause { episode } => {
                let paused = self
                    .rollout
                    .as_ref()
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
                self.feed(Feed::Command(command))
            }
            Due::Restart => self.restart(),
        }
    }

    fn fault(&mut self, fault: Fault) -> Result<(), Failure> {
        if self.outcome.is_some() {
            return Ok(());
        }
        match fault {
            Fault::NewCrash(i) => {
                let s = &mut self.world.services[i];
                let NewInstances::Up(up) = &mut s.new else {
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
                self.send(input)
            }
            Fault::OldDown { service, all } => {
                let s = &mut self.world.services[service];
                let was = s.old_healthy();
                let k = if all { s.old.len() } else { 1 };
                for h in s.old.iter_mut().filter(|h| **h).take(k) {
                    *h = false;
                }
                let (name, now) = (s.name.clone(), s.old_healthy());
                self.log(format!("world: {k} old instance(s) of {name} unhealthy"));
                if was && !now {
                    self.features.insert("old-unhealthy");
                    self.send(Input::StableHealth {
                        service: name,
                        healthy: false,
                    })
                } else {
                    Ok(())
                }
            }
            Fault::OldUp(service) => {
                let s = &mut self.world.services[service];
                let was = s.old_healthy();
                if let Some(h) = s.old.iter_mut().find(|h| !**h) {
                    *h = true;
                }
                let (name, now) = (s.name.clone(), s.old_healthy());
                self.log(format!("world: an old instance of {name} healthy again"));
                if !was && now {
                    self.send(Input::StableHealth {
                        service: name,
                        healthy: true,
                    })
                } else {
                    Ok(())
                }
            }
            Fault::StartFailure(i) => {
                self.world.services[i].start_failures += 1;
                Ok(())
            }
            Fault::Operator(command) => {
                if self.rollout.is_none() {
                    self.log(format!(
                        "operator: {command:?} (daemon down, not delivered)"
                    ));
                    self.commands_refused += 1;
                    return Ok(());
                }
                self.feed(Feed::Command(command))
            }
            Fault::DaemonCrash {
                mid_drain,
                downtime,
                table_lost,
            } => {
                if self.rollout.is_none() {
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

    /// A fact for the core right now (a separate step), when the daemon is up.
    fn send(&mut self, input: Input) -> Result<(), Failure> {
        if self.rollout.is_some() {
            self.feed(Feed::Input(input))
        } else {
            Ok(())
        }
    }

    /// One step: feed the core, drain it, check.
    fn feed(&mut self, feed: Feed) -> Result<(), Failure> {
        let now = self.world.now;
        let Some(rollout) = self.rollout.as_mut() else {
            return Ok(());
        };
        let before = rollout.state().clone();
        self.checker.begin_step(now);
        let result = match &feed {
            Feed::Input(input) => {
                self.checker.told(input, rollout.is_finished());
                rollout.handle_input(now, input.clone());
                None
            }
            Feed::Command(command) => Some(rollout.command(now, command.clone())),
            Feed::Restored => None,
        };
        let line = match (&feed, &result) {
            (Feed::Input(Input::Tick), _) => "→ tick".to_owned(),
            (Feed::Input(i), _) => format!("→ {i:?}"),
            (Feed::Command(c), Some(Err(refused))) => {
                format!("→ operator {c:?}: refused ({refused})")
            }
            (Feed::Command(c), _) => format!("→ operator {c:?}"),
            (Feed::Restored, _) => "→ restored".to_owned(),
        };
        self.log(line);
        match &result {
            Some(Ok(())) => self.commands_accepted += 1,
            Some(Err(_)) => self.commands_refused += 1,
            None => {}
        }
        self.in_analysis = matches!(feed, Feed::Input(Input::Analysis { .. }));
        let idle = match self.drain() {
            Ok(Some(idle)) => idle,
            Ok(None) => return Ok(()), // the daemon died mid-drain
            Err(message) => return Err(self.fail(message)),
        };
        let answers_pending = self
            .queue
            .iter()
            .any(|q| matches!(q.due, Due::Input(_) | Due::StartDone { .. }));
        self.in_analysis = false;
        let mut owed = vec![Owed::default(); self.world.services.len()];
        for q in &self.queue {
            let (i, kind) = match &q.due {
                Due::StartDone { service } => (Some(*service), 0),
                Due::Input(Input::Analysis { service, .. }) => (self.world.index(service), 1),
                Due::Input(Input::Check { service, .. }) => (self.world.index(service), 2),
                _ => (None, 3),
            };
            if let Some(o) = i.and_then(|i| owed.get_mut(i)) {
                match kind {
                    0 => o.start = true,
                    1 => o.analysis = true,
                    2 => o.check = true,
                    _ => {}
                }
            }
        }
        let kind = match (&feed, &result) {
            (Feed::Input(i), _) => StepKind::Input(i),
            (Feed::Command(c), Some(r)) => StepKind::Command(c, r),
            _ => StepKind::Restore,
        };
        let end = StepEnd {
            kind,
            before: &before,
            idle,
            timeout: self.timeout,
            answers_pending,
            owed: &owed,
        };
        let state = match self.rollout.as_ref() {
            Some(r) => r.state().clone(),
            None => return Ok(()),
        };
        if let Err(message) = self.checker.end_step(&end, &self.world, &state) {
            return Err(self.fail(message));
        }
        self.after_step(&state);
        Ok(())
    }

    /// Drains the core, carrying out each action. `Some(idle)` when drained,
    /// `None` when the daemon died on the way.
    fn drain(&mut self) -> Result<Option<bool>, String> {
        let mut actions = 0;
        for _ in 0..DRAIN_OUTPUTS_MAX {
            let Some(rollout) = self.rollout.as_mut() else {
                return Ok(None);
            };
            match rollout.poll_output() {
                Output::Action(action) => {
                    if self.crash_armed == Some(actions) {
                        self.log(format!("daemon dies before carrying out {action:?}"));
                        self.crash_with_random_effects();
                        return Ok(None);
                    }
                    self.carry_out(action)?;
                    actions += 1;
                }
                Output::Event(e) => {
                    let feature = match (e.kind.as_str(), &e.verdict) {
                        ("paused", None) if e.message.contains("operator") => {
                            Some("paused:inconclusive")
                        }
                        ("paused", None) => Some("paused:operator"),
                        ("analysis", Some(Verdict::Inconclusive { .. })) => Some("extended"),
                        ("analysis", Some(Verdict::Fail { .. })) => Some("analysis-failed"),
                        ("check", _) => Some("fast-check-failed"),
                        ("kept", _) => Some("kept-new"),
                        _ => None,
                    };
                    self.features.extend(feature);
                    self.log(format!("  event {}: {}", e.kind, e.message))
                }
                Output::Timeout(t) => {
                    self.timeout = Some(t);
                    if self.crash_armed.is_some() {
                        self.crash_with_random_effects();
                        return Ok(None);
                    }
                    return Ok(Some(false));
                }
                Output::Idle => {
                    self.timeout = None;
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

    fn carry_out(&mut self, action: Action) -> Result<(), String> {
        let line = match &action {
            Action::Persist(s) => format!(
                "  ← Persist {:?} current={} {}",
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
            ),
            a => format!("  ← {a:?}"),
        };
        self.log(line);
        let mut before = None;
        if let Some((service, route)) = Route::after(&action) {
            let i = self
                .world
                .index(service)
                .ok_or_else(|| format!("{action:?} names an unknown service"))?;
            before = Some(self.world.services[i].route);
            self.world.set_route(i, route);
            if matches!(action, Action::Revert { .. }) {
                // "then drain and stop the new ones"
                self.world.services[i].new = NewInstances::Stopped;
            }
        }
        match &action {
            Action::Persist(state) => self.store = Some(state.clone()),
            Action::StartInstances { service } => {
                let i = self
                    .world
                    .index(service)
                    .ok_or_else(|| format!("{action:?} names an unknown service"))?;
                let s = &mut self.world.services[i];
                let quick = matches!(&s.new, NewInstances::Up(v) if v.iter().all(|&h| h));
                s.new = NewInstances::Starting;
                let delay = if quick {
                    100..=2_000
                } else {
                    1_000..=crate::schedule::START_DELAY_MS_MAX
                };
                self.after(delay, Due::StartDone { service: i });
            }
            Action::Analyze {
                service,
                canary_window,
                stable_window,
            } => {
                let i = self
                    .world
                    .index(service)
                    .ok_or_else(|| format!("{action:?} names an unknown service"))?;
                let input = Input::Analysis {
                    service: service.clone(),
                    canary: self.world.canary_stats(i, *canary_window),
                    stable: self.world.stable_stats(i, *stable_window),
                };
                self.after(0..=5_000, Due::Input(input));
            }
            Action::Check { service, window } => {
                let i = self
                    .world
                    .index(service)
                    .ok_or_else(|| format!("{action:?} names an unknown service"))?;
                let input = Input::Check {
                    service: service.clone(),
                    canary: self.world.canary_stats(i, *window),
                };
                self.after(0..=2_000, Due::Input(input));
            }
            Action::Finish(outcome) => {
                if self.outcome.is_none() {
                    self.outcome = Some(outcome.clone());
                }
            }
            Action::SetCanaryWeight { .. } | Action::Promote { .. } | Action::Revert { .. } => {}
        }
        let empty = State {
            status: Status::Running,
            outcome: None,
            current: 0,
            services: Vec::new(),
            started: false,
        };
        let state = self.rollout.as_ref().map_or(&empty, Rollout::state);
        self.checker.action(&action, before, &self.world, state)
    }

    /// Bookkeeping after a checked step: the operator's patience, the
    /// optional crash after the end.
    fn after_step(&mut self, state: &State) {
        if state.status == Status::Paused {
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
        if state.status == Status::Finished && self.post_finish_restart {
            // Once more after the end: a restored finished rollout must say
            // the same and leave the table as it was.
            self.post_finish_restart = false;
            let downtime = Millis(self.rng.u64(0..=10_000));
            let table_lost = self.rng.bool();
            self.features.insert("crash:after-finish");
            self.crash(downtime, table_lost);
        }
    }

    fn crash_with_random_effects(&mut self) {
        let downtime = Millis(self.rng.u64(0..=60_000));
        let table_lost = self.rng.bool();
        self.crash(downtime, table_lost);
    }

    /// The daemon dies: the rollout and the answers owed to it are gone, some
    /// new instances die with it, maybe the proxy's table too.
    fn crash(&mut self, downtime: Millis, table_lost: bool) {
        self.checker
            .crashed(self.store.as_ref(), self.world.now, self.in_analysis);
        self.in_analysis = false;
        self.rollout = None;
        self.timeout = None;
        self.crash_armed = None;
        self.unpause_pending = false;
        self.queue
            .retain(|q| matches!(q.due, Due::Fault(_) | Due::Restart));
        self.gone.clear();
        for i in 0..self.world.services.len() {
            if self.world.services[i].new != NewInstances::Stopped && self.rng.f64() < 0.2 {
                self.world.services[i].new = NewInstances::Stopped;
                self.gone.push(self.world.services[i].name.clone());
            }
        }
        if !self.gone.is_empty() {
            self.features.insert("gone");
        }
        if table_lost {
            self.features.insert("table-lost");
            for i in 0..self.world.services.len() {
                self.world.set_route(i, Route::OLD);
            }
        }
        self.log(format!(
            "daemon crashed; new instances gone: {:?}; table {}; back in {downtime}",
            self.gone,
            if table_lost { "lost" } else { "kept" }
        ));
        let at = self.world.now.after(downtime);
        self.at(at, Due::Restart);
    }

    /// The daemon is back: restore from the store, re-report the world.
    fn restart(&mut self) -> Result<(), Failure> {
        self.restarts += 1;
        let plan = round_trip_plan(&self.schedule.plan).map_err(|e| self.fail(e))?;
        let policy = plan.on_restart;
        match self.store.clone() {
            Some(state) => {
                let state = round_trip_state(&state).map_err(|e| self.fail(e))?;
                self.log(format!(
                    "daemon restarts: restore ({policy:?}), gone {:?}",
                    self.gone
                ));
                self.features.insert(match policy {
                    RestartPolicy::Resume => "restore:resume",
                    RestartPolicy::Rollback => "restore:rollback",
                });
                let rollout =
                    Rollout::restore(plan, state.clone(), self.world.now, policy, &self.gone);
                self.rollout = Some(rollout);
                self.checker.restored(&state);
                if self.restarts < RESTARTS_MAX && self.rng.f64() < 0.1 {
                    // It dies again while re-applying the restored state.
                    self.crash_armed = Some(self.rng.usize(0..=3));
                    self.features.insert("crash:during-recovery");
                }
                self.feed(Feed::Restored)?;
            }
            None => {
                self.log("daemon restarts: nothing persisted, starting over".into());
                self.features.insert("restore:nothing-persisted");
                let has_previous = self.schedule.has_previous();
                self.rollout = Some(Rollout::new(plan, &has_previous));
                self.checker.fresh(&has_previous);
                let now = self.world.now;
                self.at(now, Due::Input(Input::Start));
            }
        }
        // What a restarted runtime tells the core once it has looked around.
        let Some(state) = self.rollout.as_ref().map(|r| r.state().clone()) else {
            return Ok(());
        };
        let now = self.world.now;
        for (i, s) in self.world.services.clone().iter().enumerate() {
            if state.services[i].stable_healthy != s.old_healthy() {
                self.at(
                    now,
                    Due::Input(Input::StableHealth {
                        service: s.name.clone(),
                        healthy: s.old_healthy(),
                    }),
                );
            }
            if s.new_has_unhealthy() {
                self.at(
                    now,
                    Due::Input(Input::NewUnhealthy {
                        service: s.name.clone(),
                        reason: "found unhealthy after the daemon restarted".into(),
                    }),
                );
            }
        }
        Ok(())
    }
}

/// The state through JSON and back, as the store keeps it; it must come
/// back exactly equal.
fn round_trip_state(state: &State) -> Result<State, String> {
    let json = serde_json::to_string(state).map_err(|e| e.to_string())?;
    let back: State = serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?;
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
fn round_trip_plan(plan: &Plan) -> Result<Plan, String> {
    let json = serde_json::to_string(plan).map_err(|e| e.to_string())?;
    let back: Plan = serde_json::from_str(&json).map_err(|e| format!("{e}: {json}"))?;
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
