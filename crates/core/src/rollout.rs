//! The rollout state machine: one deployment of one environment, every service
//! of the release in order, blue-green or canary.
//!
//! Driving it (str0m style): after every [`Rollout::handle_input`] or
//! [`Rollout::command`], drain [`Rollout::poll_output`] until it returns
//! [`Output::Timeout`] or [`Output::Idle`]; carry out each action in order
//! (a [`Action::Persist`] comes before the actions it covers, so persist first);
//! feed the world's answers back as inputs; when the timeout passes, send
//! [`Input::Tick`].
//!
//! The proxy table of every service is a function of the persisted state
//! (see [`Rollout::restore`]), so a crash between persisting and acting loses
//! nothing: the restored machine re-issues the idempotent actions.

use std::collections::VecDeque;

use serde::{Deserialize, Serialize};

use crate::analysis::{self, Figures, Stats, Verdict};
use crate::event::EventKind;
use crate::plan::{InconclusivePolicy, Plan, RestartPolicy, Strategy};
use crate::time::Millis;

/// The world's answers and the passing of time.
#[derive(Debug, Clone, PartialEq)]
pub enum Input {
    /// Begin the rollout.
    Start,
    /// Time passed; sent when the last [`Output::Timeout`] is reached.
    Tick,
    /// All new instances of a service are up and healthy.
    Started {
        /// The service.
        service: String,
    },
    /// The new instances of a service could not start or never became healthy
    /// (the runtime has stopped them).
    StartFailed {
        /// The service.
        service: String,
        /// Why.
        reason: String,
    },
    /// Answer to [`Action::Analyze`].
    Analysis {
        /// The service.
        service: String,
        /// Canary observations over the step.
        canary: Stats,
        /// Stable observations over the rollout so far.
        stable: Stats,
    },
    /// Answer to [`Action::Check`].
    Check {
        /// The service.
        service: String,
        /// Canary observations over the check window.
        canary: Stats,
    },
    /// A new instance of a service failed its health check or exited.
    NewUnhealthy {
        /// The service.
        service: String,
        /// Why.
        reason: String,
    },
    /// Whether the previous release of a service still has a healthy instance.
    StableHealth {
        /// The service.
        service: String,
        /// True when at least one old instance is healthy.
        healthy: bool,
    },
}

/// Operator commands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase", tag = "command")]
pub enum Command {
    /// Hold the current step (fast checks go on; an analysis in flight is
    /// dropped and asked again after `Resume`).
    Pause,
    /// Continue a paused step.
    Resume,
    /// Skip to the next step now; with `full`, straight to 100 %.
    Promote {
        /// All the way.
        full: bool,
    },
    /// Roll back now.
    Abort {
        /// Why, for the history.
        reason: String,
    },
    /// Release a service that awaits the switch ([`Stage::AwaitingSwitch`]):
    /// traffic moves as its strategy says (blue-green: all at once; canary:
    /// its first step, then on). Refused when nothing awaits it.
    Switch,
}

/// What the runtime must do.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Store this state before carrying out the actions that follow.
    Persist(State),
    /// Start the service's new instances and wait until they are healthy;
    /// answer [`Input::Started`] or [`Input::StartFailed`]. Idempotent: after a
    /// restart, start them again if they are gone.
    StartInstances {
        /// The service.
        service: String,
    },
    /// Canary track = the new instances, stable track = the old ones, this
    /// share on the canary (one table swap).
    SetCanaryWeight {
        /// The service.
        service: String,
        /// Basis points on canary.
        canary_bp: u16,
    },
    /// The new instances become the stable track with 100 % (one swap). The
    /// old ones stay warm for rollback.
    Promote {
        /// The service.
        service: String,
    },
    /// The old instances take 100 % again (one swap); then drain and stop the
    /// new ones.
    Revert {
        /// The service.
        service: String,
    },
    /// Measure the canary and the stable track; answer [`Input::Analysis`].
    Analyze {
        /// The service.
        service: String,
        /// Canary window: the step so far.
        canary_window: Millis,
        /// Stable window: the rollout of this service so far.
        stable_window: Millis,
    },
    /// Measure the canary over a short window; answer [`Input::Check`].
    Check {
        /// The service.
        service: String,
        /// The window.
        window: Millis,
    },
    /// The rollout is over.
    Finish(Outcome),
}

/// Something worth a line in the deployment's history.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// What it is about (stored as `step`, `analysis`, `rollback`, …).
    pub kind: EventKind,
    /// The service, if it concerns one.
    pub service: Option<String>,
    /// For people.
    pub message: String,
    /// The figures behind a decision.
    pub figures: Option<Figures>,
    /// The verdict, for an analysis.
    pub verdict: Option<Verdict>,
}

/// What [`Rollout::poll_output`] gives.
#[derive(Debug, Clone, PartialEq)]
pub enum Output {
    /// Do this.
    Action(Action),
    /// Record this.
    Event(Event),
    /// Nothing more until this time (send [`Input::Tick`] then) or an input.
    Timeout(Millis),
    /// Nothing more until an input (or ever, once finished).
    Idle,
}

/// How a rollout ended.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "outcome")]
pub enum Outcome {
    /// Every service serves the new release.
    Succeeded,
    /// Every service that changed is back on the previous release.
    RolledBack {
        /// The service that failed (or was aborted).
        service: String,
        /// Why.
        reason: String,
    },
    /// Rolled back where possible; some service kept the new release because
    /// its previous release had no healthy instance to go back to.
    Failed {
        /// The service that failed.
        service: String,
        /// Why, including what was kept.
        reason: String,
    },
    /// Ended before any instance started (a backup or an expand migration
    /// failed, or it was aborted first): the serving release is unchanged.
    NotStarted {
        /// Why.
        reason: String,
    },
}

/// Where the rollout stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    /// Moving.
    Running,
    /// Held by an operator or the inconclusive policy.
    Paused,
    /// Over (see the outcome).
    Finished,
}

/// Where one service stands.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "stage")]
pub enum Stage {
    /// Not started; the old release serves.
    Pending,
    /// New instances starting; the old release serves.
    Starting,
    /// New instances up and healthy, taking no traffic (the old release
    /// serves): held until [`Command::Switch`] (`switch = "manual"`). No
    /// timeout; a restart holds again.
    AwaitingSwitch,
    /// Canary at `steps[step]`.
    Stepping {
        /// Index into the steps.
        step: usize,
        /// When the step began.
        started_at: Millis,
        /// When its analysis is due (meaningless while paused).
        deadline: Millis,
        /// Extensions for lack of data so far.
        extensions: u32,
        /// An analysis was asked for and not answered yet.
        analyzing: bool,
        /// Time left in the step when it was paused.
        paused_left: Option<Millis>,
    },
    /// The new release serves 100 %.
    Promoted,
    /// Back on the old release.
    Reverted,
    /// Could not go back (no healthy old instance): the new release serves.
    KeptNew,
}

/// One service's state.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ServiceState {
    /// Its stage.
    pub stage: Stage,
    /// Canary share applied, in basis points.
    pub canary_bp: u16,
    /// Whether the old release has a healthy instance.
    pub stable_healthy: bool,
    /// When this service's canary began.
    pub canary_since: Option<Millis>,
    /// When the next fast check is due.
    pub next_check: Option<Millis>,
    /// A check was asked for and not answered yet.
    pub checking: bool,
}

/// Everything that must survive a crash.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct State {
    /// Running, paused or finished.
    pub status: Status,
    /// Set when finished.
    pub outcome: Option<Outcome>,
    /// Index of the service being rolled.
    pub current: usize,
    /// Per service, in plan order.
    pub services: Vec<ServiceState>,
    /// Whether [`Input::Start`] was received.
    pub started: bool,
}

/// Why an operator command was refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused(pub String);

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A persisted state that does not fit the plan or config it is restored
/// with; says what differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Mismatch(pub String);

impl std::fmt::Display for Mismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// One rollout.
#[derive(Debug, Clone)]
pub struct Rollout {
    plan: Plan,
    state: State,
    out: VecDeque<Output>,
}

/// Share of traffic, percent → basis points.
fn bp(percent: u8) -> u16 {
    u16::from(percent.min(100)) * 100
}

impl Rollout {
    /// A rollout of `plan`, not started. `has_previous[i]` tells whether
    /// service `i` has an old release to fall back to.
    pub fn new(plan: Plan, has_previous: &[bool]) -> Rollout {
        let services = (0..plan.services.len())
            .map(|i| ServiceState {
                stage: Stage::Pending,
                canary_bp: 0,
                stable_healthy: has_previous.get(i).copied().unwrap_or(false),
                canary_since: None,
                next_check: None,
                checking: false,
            })
            .collect();
        Rollout {
            plan,
            state: State {
                status: Status::Running,
                outcome: None,
                current: 0,
                services,
                started: false,
            },
            out: VecDeque::new(),
        }
    }

    /// A rollout restored from its plan and last persisted state, after a
    /// restart. `gone` names services whose new instances did not survive.
    ///
    /// Decides what to do with `policy`: resume where it was — queueing the
    /// idempotent actions that put every service's table back as the state
    /// says — or roll back (whose own actions, after its persist, set every
    /// table it changes). A finished rollout re-applies its tables.
    /// Analyses and checks asked for before the restart are asked again when due.
    pub fn restore(
        plan: Plan,
        state: State,
        now: Millis,
        policy: RestartPolicy,
        gone: &[String],
    ) -> Rollout {
        let mut r = Rollout {
            plan,
            state,
            out: VecDeque::new(),
        };
        // Answers owed to the previous process died with it: a persisted
        // "asked, not answered" would wait forever (no analysis, no fast
        // check). Ask again when due.
        for s in &mut r.state.services {
            s.checking = false;
            if let Stage::Stepping { analyzing, .. } = &mut s.stage {
                *analyzing = false;
            }
        }
        if r.state.status == Status::Finished {
            r.reapply(now, true);
            if let Some(outcome) = r.state.outcome.clone() {
                r.action(Action::Finish(outcome));
            }
            return r;
        }
        if !r.state.started {
            return r;
        }
        let current = r.state.current;
        let name = r.name(current).to_owned();
        let lost = r
            .plan
            .services
            .iter()
            .enumerate()
            .find(|(i, s)| gone.contains(&s.name) && r.has_new_traffic_or_starting(*i))
            .map(|(_, s)| s.name.clone());
        // Decide before re-issuing anything: a rollout that is going to roll
        // back must not start the new release's instances again first (they
        // would outlive the rollback), nor put traffic back on them (on
        // instances that may be gone, while the rollback's own persist is
        // awaited): its rollback sets every table it changed, after that
        // persist.
        // A rollout that awaits the switch moved no traffic to the service it
        // holds: whatever the policy, it holds again. Its instances may have
        // died with the daemon: it is starting again (saved so), and awaits
        // the switch once they are healthy — a switch before that is refused,
        // so traffic never moves to instances that are not up. Only an
        // operator's switch or abort moves it on.
        let awaiting =
            r.state.services.get(current).map(|s| &s.stage) == Some(&Stage::AwaitingSwitch);
        if awaiting && lost.is_none() {
            // The tables first, as saved (they need no new save)…
            r.reapply(now, false);
            // …then starting again, saved before the start is re-issued.
            r.state.services[current].stage = Stage::Starting;
            r.persist();
            r.action(Action::StartInstances {
                service: name.clone(),
            });
            r.event(
                EventKind::AwaitingSwitch,
                Some(&name),
                format!(
                    "the daemon restarted; {name} of {} still awaits the switch (no traffic moved; its instances are checked and started again if gone): `cutover switch` moves traffic to it once they are healthy, `cutover abort` stops it",
                    r.plan.version
                ),
            );
            return r;
        }
        let resume = policy == RestartPolicy::Resume && lost.is_none();
        if resume {
            r.reapply(now, true);
        }
        match (policy, lost) {
            (_, Some(service)) => r.rollback(
                now,
                &service,
                format!("the new instances of {service} were gone after the daemon restarted"),
            ),
            (RestartPolicy::Rollback, None) => r.rollback(
                now,
                &name,
                "the daemon restarted during the rollout (on_daemon_restart = \"rollback\")".into(),
            ),
            (RestartPolicy::Resume, None) => {
                r.event(
                    EventKind::Resumed,
                    Some(&name),
                    "the daemon restarted; resuming the rollout".into(),
                );
                // Persisted between promoting the current service and
                // beginning the next one: carry on with the next (or finish).
                if r.state.services.get(current).map(|s| &s.stage) == Some(&Stage::Promoted) {
                    r.begin_service(now, current + 1);
                }
            }
        }
        r
    }

    /// Checks that a persisted `state` fits `plan` (the same services, steps
    /// that exist, a stage the strategy can have) before it is restored; the
    /// error names what differs. [`Rollout::restore`] assumes this holds.
    pub fn check_fits(plan: &Plan, state: &State) -> Result<(), Mismatch> {
        if state.services.len() != plan.services.len() {
            return Err(Mismatch(format!(
                "the saved rollout has {} services, its plan {} ({})",
                state.services.len(),
                plan.services.len(),
                plan.services
                    .iter()
                    .map(|s| s.name.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        }
        if state.current >= plan.services.len().max(1) {
            return Err(Mismatch(format!(
                "the saved rollout is at service #{} of {}",
                state.current + 1,
                plan.services.len()
            )));
        }
        for (s, sp) in state.services.iter().zip(&plan.services) {
            if let Stage::Stepping { step, .. } = s.stage {
                match &sp.strategy {
                    Strategy::Canary(spec) if step < spec.steps.len() => {}
                    Strategy::Canary(spec) => {
                        return Err(Mismatch(format!(
                            "{} was at canary step {} but the plan has {} steps",
                            sp.name,
                            step + 1,
                            spec.steps.len()
                        )));
                    }
                    Strategy::BlueGreen => {
                        return Err(Mismatch(format!(
                            "{} was at a canary step but its plan is blue-green",
                            sp.name
                        )));
                    }
                }
            }
        }
        Ok(())
    }

    /// The plan.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// The state (what [`Action::Persist`] carries).
    pub fn state(&self) -> &State {
        &self.state
    }

    /// True once finished.
    pub fn is_finished(&self) -> bool {
        self.state.status == Status::Finished
    }

    /// Next output; see the module doc.
    pub fn poll_output(&mut self) -> Output {
        if let Some(o) = self.out.pop_front() {
            return o;
        }
        if self.state.status == Status::Finished {
            return Output::Idle;
        }
        match self.next_wakeup() {
            Some(t) => Output::Timeout(t),
            None => Output::Idle,
        }
    }

    /// Feeds an input at time `now`.
    pub fn handle_input(&mut self, now: Millis, input: Input) {
        if self.state.status == Status::Finished {
            return;
        }
        match input {
            Input::Start => {
                if !self.state.started {
                    self.state.started = true;
                    self.begin_service(now, 0);
                }
            }
            Input::Tick => self.tick(now),
            Input::Started { service } => self.on_started(now, &service),
            Input::StartFailed { service, reason } => {
                if let Some(i) = self.index(&service)
                    && i == self.state.current
                    && matches!(
                        self.state.services[i].stage,
                        Stage::Starting | Stage::AwaitingSwitch
                    )
                {
                    self.rollback(now, &service, format!("{service} did not start: {reason}"));
                }
            }
            Input::Analysis {
                service,
                canary,
                stable,
            } => self.on_analysis(now, &service, canary, stable),
            Input::Check { service, canary } => self.on_check(now, &service, canary),
            Input::NewUnhealthy { service, reason } => {
                if let Some(i) = self.index(&service)
                    && self.has_new_traffic(i)
                {
                    self.rollback(
                        now,
                        &service,
                        format!("a new instance of {service} is unhealthy: {reason}"),
                    );
                } else if let Some(i) = self.index(&service)
                    && i == self.state.current
                    && self.state.services[i].stage == Stage::AwaitingSwitch
                {
                    // It would never be switched to: end it now, before
                    // anyone runs `switch`.
                    self.rollback(
                        now,
                        &service,
                        format!(
                            "a new instance of {service} became unhealthy while awaiting the switch: {reason}"
                        ),
                    );
                }
            }
            Input::StableHealth { service, healthy } => {
                if let Some(i) = self.index(&service)
                    && self.state.services[i].stable_healthy != healthy
                {
                    self.state.services[i].stable_healthy = healthy;
                    // Persisted: a restarted daemon rolling back must know the
                    // old release has no healthy instance (Flagger #1931).
                    self.persist();
                }
            }
        }
    }

    /// An operator command at `now`; refused with a reason when it does not
    /// apply (nothing is changed then).
    pub fn command(&mut self, now: Millis, command: Command) -> Result<(), Refused> {
        if self.state.status == Status::Finished {
            return Err(Refused("the rollout is already over".into()));
        }
        let i = self.state.current;
        let name = self.name(i).to_owned();
        match command {
            Command::Abort { reason } => {
                self.rollback(now, &name, format!("aborted: {reason}"));
                Ok(())
            }
            Command::Pause => {
                if self.state.status == Status::Paused {
                    return Err(Refused("already paused".into()));
                }
                let Stage::Stepping {
                    deadline,
                    paused_left,
                    analyzing,
                    ..
                } = &mut self.state.services[i].stage
                else {
                    return Err(Refused(format!(
                        "{name} is not at a canary step; nothing to pause"
                    )));
                };
                *paused_left = Some(deadline.since(now));
                // An analysis in flight must not move a paused step on: its
                // answer is ignored and the step is analysed again on resume.
                *analyzing = false;
                self.state.status = Status::Paused;
                self.persist();
                self.event(
                    EventKind::Paused,
                    Some(&name),
                    format!(
                        "{name} paused at {}%",
                        self.state.services[i].canary_bp / 100
                    ),
                );
                Ok(())
            }
            Command::Resume => {
                if self.state.status != Status::Paused {
                    return Err(Refused("not paused".into()));
                }
                self.resume(now, i);
                self.event(EventKind::Resumed, Some(&name), format!("{name} resumed"));
                Ok(())
            }
            Command::Switch => {
                if self.state.services[i].stage != Stage::AwaitingSwitch {
                    return Err(Refused(format!(
                        "nothing awaits the switch: {}",
                        self.describe(i)
                    )));
                }
                self.event(
                    EventKind::Switch,
                    Some(&name),
                    format!("{name}: switch released by an operator"),
                );
                self.move_traffic(now, i);
                Ok(())
            }
            Command::Promote { full } => {
                if self.state.services[i].stage == Stage::AwaitingSwitch {
                    return Err(Refused(format!(
                        "{name} awaits the switch and takes no traffic yet: run `cutover switch` to move traffic to it"
                    )));
                }
                let Stage::Stepping { step, .. } = self.state.services[i].stage else {
                    return Err(Refused(format!(
                        "{name} is not at a canary step; nothing to promote"
                    )));
                };
                self.state.status = Status::Running;
                let last = self.steps(i).len().saturating_sub(1);
                if full || step >= last {
                    self.event(
                        EventKind::Promoted,
                        Some(&name),
                        format!("{name} promoted to 100% by an operator"),
                    );
                    self.promote(now, i);
                } else {
                    self.event(
                        EventKind::Promoted,
                        Some(&name),
                        format!("{name} moved to the next step by an operator"),
                    );
                    self.enter_step(now, i, step + 1);
                }
                Ok(())
            }
        }
    }

    // ---- transitions -------------------------------------------------------

    fn begin_service(&mut self, now: Millis, i: usize) {
        if i >= self.plan.services.len() {
            self.finish(Outcome::Succeeded);
            return;
        }
        self.state.current = i;
        self.state.services[i].stage = Stage::Starting;
        self.persist();
        let name = self.name(i).to_owned();
        self.event(
            EventKind::Service,
            Some(&name),
            format!("rolling {name} to {}", self.plan.version),
        );
        self.action(Action::StartInstances { service: name });
        let _ = now;
    }

    fn on_started(&mut self, now: Millis, service: &str) {
        let Some(i) = self.index(service) else { return };
        if i != self.state.current || self.state.services[i].stage != Stage::Starting {
            return;
        }
        if self.plan.services[i].manual_switch {
            self.state.services[i].stage = Stage::AwaitingSwitch;
            self.persist();
            self.event(
                EventKind::AwaitingSwitch,
                Some(service),
                format!(
                    "{service}: {} is healthy and takes no traffic yet; `cutover switch` moves traffic to it, `cutover abort` stops it",
                    self.plan.version
                ),
            );
            return;
        }
        self.move_traffic(now, i);
    }

    /// The new instances of service `i` are healthy and may take traffic:
    /// a canary's first step, or the blue-green switch.
    fn move_traffic(&mut self, now: Millis, i: usize) {
        let service = self.name(i).to_owned();
        let service = service.as_str();
        let canary = matches!(self.plan.services[i].strategy, Strategy::Canary(_))
            && self.state.services[i].stable_healthy;
        if canary {
            self.enter_step(now, i, 0);
        } else {
            self.event(
                EventKind::Switch,
                Some(service),
                format!(
                    "{service}: 100% of traffic on {} (blue-green)",
                    self.plan.version
                ),
            );
            self.promote(now, i);
        }
    }

    fn enter_step(&mut self, now: Millis, i: usize, step: usize) {
        let Strategy::Canary(spec) = &self.plan.services[i].strategy else {
            return;
        };
        let (duration, interval) = (spec.step_duration, spec.check_interval);
        let Some(&percent) = spec.steps.get(step) else {
            self.promote(now, i);
            return;
        };
        let total = spec.steps.len();
        let s = &mut self.state.services[i];
        s.stage = Stage::Stepping {
            step,
            started_at: now,
            deadline: now.after(duration),
            extensions: 0,
            analyzing: false,
            paused_left: None,
        };
        s.canary_bp = bp(percent);
        s.canary_since.get_or_insert(now);
        s.next_check = Some(now.after(interval));
        s.checking = false;
        self.state.status = Status::Running;
        self.persist();
        let name = self.name(i).to_owned();
        self.action(Action::SetCanaryWeight {
            service: name.clone(),
            canary_bp: bp(percent),
        });
        self.event(
            EventKind::Step,
            Some(&name),
            format!(
                "{name} step {}/{total}: {percent}% of traffic on {}",
                step + 1,
                self.plan.version
            ),
        );
    }

    fn promote(&mut self, now: Millis, i: usize) {
        let s = &mut self.state.services[i];
        s.stage = Stage::Promoted;
        s.canary_bp = 0;
        s.next_check = None;
        self.state.status = Status::Running;
        self.persist();
        let name = self.name(i).to_owned();
        self.action(Action::Promote { service: name });
        self.begin_service(now, i + 1);
    }

    fn resume(&mut self, now: Millis, i: usize) {
        if let Stage::Stepping {
            deadline,
            paused_left,
            ..
        } = &mut self.state.services[i].stage
            && let Some(left) = paused_left.take()
        {
            *deadline = now.after(left);
        }
        self.state.status = Status::Running;
        self.persist();
    }

    fn tick(&mut self, now: Millis) {
        let i = self.state.current;
        let Some(spec) = self.canary_spec(i) else {
            return;
        };
        let (interval, paused) = (spec.check_interval, self.state.status == Status::Paused);
        let name = self.name(i).to_owned();
        let s = &mut self.state.services[i];
        let Stage::Stepping {
            started_at,
            deadline,
            analyzing,
            ..
        } = &mut s.stage
        else {
            return;
        };
        let mut actions = Vec::new();
        if !paused && !*analyzing && now >= *deadline {
            *analyzing = true;
            actions.push(Action::Analyze {
                service: name.clone(),
                canary_window: now.since(*started_at),
                stable_window: now.since(s.canary_since.unwrap_or(*started_at)),
            });
        }
        if !s.checking && s.next_check.is_some_and(|t| now >= t) {
            s.checking = true;
            s.next_check = Some(now.after(interval));
            actions.push(Action::Check {
                service: name,
                // Three intervals: enough requests to judge, recent enough to act fast.
                window: Millis(interval.0.saturating_mul(3)),
            });
        }
        for a in actions {
            self.action(a);
        }
    }

    fn on_check(&mut self, now: Millis, service: &str, canary: Stats) {
        let Some(i) = self.index(service) else { return };
        self.state.services[i].checking = false;
        if !matches!(self.state.services[i].stage, Stage::Stepping { .. }) {
            return;
        }
        let Some(spec) = self.canary_spec(i) else {
            return;
        };
        if let Some(reason) = analysis::breaches_abort(&spec.thresholds, &canary) {
            self.event_with(
                EventKind::Check,
                Some(service),
                format!("{service}: fast check failed: {reason}"),
                Some(Figures {
                    canary,
                    stable: Stats::default(),
                }),
                None,
            );
            self.rollback(now, service, reason);
        }
    }

    fn on_analysis(&mut self, now: Millis, service: &str, canary: Stats, stable: Stats) {
        let Some(i) = self.index(service) else { return };
        let Some(spec) = self.canary_spec(i).cloned() else {
            return;
        };
        let Stage::Stepping {
            step,
            extensions,
            analyzing,
            ..
        } = &mut self.state.services[i].stage
        else {
            return;
        };
        if !*analyzing {
            return;
        }
        *analyzing = false;
        let (step, ext) = (*step, *extensions);
        let verdict = analysis::judge(&spec.thresholds, &canary, &stable);
        let figures = Some(Figures { canary, stable });
        match verdict.clone() {
            Verdict::Pass => {
                self.event_with(
                    EventKind::Analysis,
                    Some(service),
                    format!("{service} step {} passed its analysis", step + 1),
                    figures,
                    Some(verdict),
                );
                if step + 1 >= spec.steps.len() {
                    self.promote(now, i);
                } else {
                    self.enter_step(now, i, step + 1);
                }
            }
            Verdict::Fail { reasons } => {
                let reason = format!(
                    "analysis of step {} failed: {}",
                    step + 1,
                    reasons.join("; ")
                );
                self.event_with(
                    EventKind::Analysis,
                    Some(service),
                    format!("{service}: {reason}"),
                    figures,
                    Some(verdict),
                );
                self.rollback(now, service, reason);
            }
            Verdict::Inconclusive { reason } => {
                if ext < spec.max_inconclusive {
                    if let Stage::Stepping {
                        extensions,
                        deadline: d,
                        ..
                    } = &mut self.state.services[i].stage
                    {
                        *extensions = ext + 1;
                        *d = now.after(spec.step_duration);
                    }
                    self.persist();
                    self.event_with(
                        EventKind::Analysis,
                        Some(service),
                        format!(
                            "{service} step {} inconclusive ({reason}); extended {}/{}",
                            step + 1,
                            ext + 1,
                            spec.max_inconclusive
                        ),
                        figures,
                        Some(verdict),
                    );
                } else {
                    let why = format!(
                        "step {} stayed inconclusive after {ext} extensions: {reason}",
                        step + 1
                    );
                    self.event_with(
                        EventKind::Analysis,
                        Some(service),
                        format!("{service}: {why}"),
                        figures,
                        Some(verdict),
                    );
                    match spec.on_inconclusive {
                        InconclusivePolicy::Fail => self.rollback(now, service, why),
                        InconclusivePolicy::Pause => {
                            if let Stage::Stepping { paused_left, .. } =
                                &mut self.state.services[i].stage
                            {
                                *paused_left = Some(spec.step_duration);
                            }
                            self.state.status = Status::Paused;
                            self.persist();
                            self.event(
                                EventKind::Paused,
                                Some(service),
                                format!("{service} paused: waiting for an operator"),
                            );
                        }
                    }
                }
            }
        }
    }

    /// Rolls back `failed` and every service changed before it, newest first,
    /// each in one table swap; keeps the new release where the old one has no
    /// healthy instance (never stop the only healthy copy: Flagger #1931).
    fn rollback(&mut self, _now: Millis, failed: &str, reason: String) {
        let upto = self.state.current;
        let mut order: Vec<usize> = (0..=upto.min(self.plan.services.len().saturating_sub(1)))
            .rev()
            .collect();
        order.retain(|&i| {
            matches!(
                self.state.services[i].stage,
                Stage::Starting | Stage::AwaitingSwitch | Stage::Stepping { .. } | Stage::Promoted
            )
        });
        let mut kept = Vec::new();
        for &i in &order {
            let s = &mut self.state.services[i];
            s.next_check = None;
            s.checking = false;
            if s.stable_healthy || matches!(s.stage, Stage::Starting | Stage::AwaitingSwitch) {
                s.stage = Stage::Reverted;
            } else {
                s.stage = Stage::KeptNew;
                kept.push(i);
            }
            s.canary_bp = 0;
        }
        let outcome = if kept.is_empty() {
            Outcome::RolledBack {
                service: failed.to_owned(),
                reason: reason.clone(),
            }
        } else {
            let names: Vec<&str> = kept.iter().map(|&i| self.name(i)).collect();
            Outcome::Failed {
                service: failed.to_owned(),
                reason: format!(
                    "{reason}; kept {} on {} because the previous release has no healthy instance",
                    names.join(", "),
                    self.plan.version
                ),
            }
        };
        self.state.status = Status::Finished;
        self.state.outcome = Some(outcome.clone());
        self.persist();
        self.event(
            EventKind::Rollback,
            Some(failed),
            format!("rolling back: {reason}"),
        );
        for i in order {
            let name = self.name(i).to_owned();
            match self.state.services[i].stage {
                Stage::KeptNew => {
                    self.event(
                        EventKind::Kept,
                        Some(&name),
                        format!(
                            "{name}: the previous release has no healthy instance; keeping {}",
                            self.plan.version
                        ),
                    );
                    self.action(Action::Promote { service: name });
                }
                _ => {
                    self.action(Action::Revert { service: name });
                }
            }
        }
        self.action(Action::Finish(outcome));
    }

    fn finish(&mut self, outcome: Outcome) {
        self.state.status = Status::Finished;
        self.state.outcome = Some(outcome.clone());
        self.persist();
        self.event(
            EventKind::Finished,
            None,
            format!("{} serves all traffic", self.plan.version),
        );
        self.action(Action::Finish(outcome));
    }

    /// Queues the idempotent actions that make the tables match the state.
    /// `start`: also re-issue the starts of services that were starting
    /// (only when the rollout goes on; a rollback stops them instead).
    fn reapply(&mut self, _now: Millis, start: bool) {
        for i in 0..self.plan.services.len() {
            let name = self.name(i).to_owned();
            let action = match self.state.services[i].stage {
                Stage::Pending => None,
                // Awaiting the switch: its instances again if they are gone,
                // and no traffic.
                Stage::Starting | Stage::AwaitingSwitch => (start
                    && self.state.status != Status::Finished)
                    .then_some(Action::StartInstances { service: name }),
                Stage::Stepping { .. } => Some(Action::SetCanaryWeight {
                    service: name,
                    canary_bp: self.state.services[i].canary_bp,
                }),
                Stage::Promoted | Stage::KeptNew => Some(Action::Promote { service: name }),
                Stage::Reverted => Some(Action::Revert { service: name }),
            };
            if let Some(a) = action {
                self.action(a);
            }
        }
    }

    // ---- helpers -------------------------------------------------------------

    fn next_wakeup(&self) -> Option<Millis> {
        let i = self.state.current;
        let s = self.state.services.get(i)?;
        let Stage::Stepping {
            deadline,
            analyzing,
            ..
        } = &s.stage
        else {
            return None;
        };
        let step_due = (self.state.status == Status::Running && !analyzing).then_some(*deadline);
        let check_due = (!s.checking).then_some(s.next_check).flatten();
        match (step_due, check_due) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn has_new_traffic(&self, i: usize) -> bool {
        matches!(
            self.state.services[i].stage,
            Stage::Stepping { .. } | Stage::Promoted
        )
    }

    /// Where service `i` stands, for a refusal.
    fn describe(&self, i: usize) -> String {
        let name = self.name(i);
        let version = &self.plan.version;
        match &self.state.services[i].stage {
            Stage::Pending => format!("{name} has not begun to roll to {version}"),
            Stage::Starting => format!(
                "{name}'s instances of {version} are still starting (the switch can be released once they are healthy)"
            ),
            Stage::AwaitingSwitch => format!("{name} of {version} awaits the switch"),
            Stage::Stepping { step, .. } => format!(
                "{name} is at canary step {} ({}% on {version}); traffic is already moving",
                step + 1,
                self.state.services[i].canary_bp / 100
            ),
            Stage::Promoted => format!("{name} serves {version} already"),
            Stage::Reverted => format!("{name} went back to the previous release"),
            Stage::KeptNew => format!("{name} kept {version}"),
        }
    }

    /// The service that awaits the switch, if one does.
    pub fn awaiting_switch(&self) -> Option<&str> {
        let i = self.state.current;
        (self.state.status != Status::Finished
            && self.state.services.get(i)?.stage == Stage::AwaitingSwitch)
            .then(|| self.name(i))
    }

    fn has_new_traffic_or_starting(&self, i: usize) -> bool {
        self.has_new_traffic(i) || self.state.services[i].stage == Stage::Starting
    }

    fn canary_spec(&self, i: usize) -> Option<&crate::plan::CanarySpec> {
        match &self.plan.services.get(i)?.strategy {
            Strategy::Canary(spec) => Some(spec),
            Strategy::BlueGreen => None,
        }
    }

    fn steps(&self, i: usize) -> &[u8] {
        self.canary_spec(i)
            .map(|s| s.steps.as_slice())
            .unwrap_or(&[])
    }

    fn index(&self, service: &str) -> Option<usize> {
        self.plan.services.iter().position(|s| s.name == service)
    }

    fn name(&self, i: usize) -> &str {
        self.plan
            .services
            .get(i)
            .map(|s| s.name.as_str())
            .unwrap_or("")
    }

    fn persist(&mut self) {
        self.out
            .push_back(Output::Action(Action::Persist(self.state.clone())));
    }

    fn action(&mut self, a: Action) {
        self.out.push_back(Output::Action(a));
    }

    fn event(&mut self, kind: EventKind, service: Option<&str>, message: String) {
        self.event_with(kind, service, message, None, None);
    }

    fn event_with(
        &mut self,
        kind: EventKind,
        service: Option<&str>,
        message: String,
        figures: Option<Figures>,
        verdict: Option<Verdict>,
    ) {
        self.out.push_back(Output::Event(Event {
            kind,
            service: service.map(str::to_owned),
            message,
            figures,
            verdict,
        }));
    }
}
