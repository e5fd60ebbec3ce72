//! Small drivers for the rollout machine and the whole-life release machine,
//! for readable tests: they keep the clock, drain every output after each
//! input (as the module docs say) and keep a fake proxy table (rollout) or a
//! fake store (release) that only the machine's actions change.

#![allow(dead_code)]

use std::collections::BTreeMap;

use cutover_core::{
    Action, CanarySpec, Command, Event, InconclusivePolicy, Input, Millis, Outcome, Output, Plan,
    Refused, Release, ReleaseAction, ReleaseInput, ReleaseKind, ReleaseOutput, ReleasePlan,
    ReleaseState, RestartPolicy, Rollout, ServicePlan, State, Stats, Strategy, Thresholds,
};

/// A step lasts a minute; the fast check runs every 10 s.
pub const STEP: Millis = Millis(60_000);
pub const CHECK: Millis = Millis(10_000);

/// Where a service's traffic goes, as the fake proxy table has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Route {
    Old,
    Split(u16),
    New,
}

pub fn thresholds() -> Thresholds {
    Thresholds {
        max_error_rate: Some(0.01),
        max_p95_ms: Some(500.0),
        min_requests: 50,
        abort_error_rate: Some(0.1),
        ..Thresholds::default()
    }
}

pub fn canary(name: &str, steps: &[u8]) -> ServicePlan {
    ServicePlan {
        name: name.into(),
        strategy: Strategy::Canary(CanarySpec {
            steps: steps.to_vec(),
            step_duration: STEP,
            check_interval: CHECK,
            max_inconclusive: 2,
            on_inconclusive: InconclusivePolicy::Fail,
            thresholds: thresholds(),
        }),
        manual_switch: false,
    }
}

pub fn blue_green(name: &str) -> ServicePlan {
    ServicePlan {
        name: name.into(),
        strategy: Strategy::BlueGreen,
        manual_switch: false,
    }
}

pub fn plan(services: Vec<ServicePlan>) -> Plan {
    Plan {
        version: "v2".into(),
        previous_version: Some("v1".into()),
        services,
        on_restart: RestartPolicy::Resume,
    }
}

/// `requests` with `errors`, p95 100 ms.
pub fn stats(requests: u64, errors: u64) -> Stats {
    Stats {
        requests,
        errors,
        p50_ms: Some(20.0),
        p95_ms: Some(100.0),
        p99_ms: Some(200.0),
    }
}

pub fn healthy() -> Stats {
    stats(1_000, 1)
}

pub struct Run {
    pub rollout: Rollout,
    pub now: Millis,
    pub timeout: Option<Millis>,
    /// Every action so far, in order.
    pub actions: Vec<Action>,
    pub events: Vec<Event>,
    /// The fake proxy table.
    pub table: BTreeMap<String, Route>,
    /// The last persisted state.
    pub store: Option<State>,
}

impl Run {
    pub fn new(plan: Plan) -> Run {
        let n = plan.services.len();
        Run::with_previous(plan, &vec![true; n])
    }

    pub fn with_previous(plan: Plan, has_previous: &[bool]) -> Run {
        Run::wrap(Rollout::new(plan, has_previous), Millis(0))
    }

    /// Wraps a rollout (a restored one, say) and drains what it has queued.
    pub fn wrap(rollout: Rollout, now: Millis) -> Run {
        let table = rollout
            .plan()
            .services
            .iter()
            .map(|s| (s.name.clone(), Route::Old))
            .collect();
        let mut run = Run {
            rollout,
            now,
            timeout: None,
            actions: Vec::new(),
            events: Vec::new(),
            table,
            store: None,
        };
        run.drain();
        run
    }

    /// Drains the outputs, applying table actions; returns this drain's actions.
    pub fn drain(&mut self) -> Vec<Action> {
        let mut out = Vec::new();
        loop {
            match self.rollout.poll_output() {
                Output::Action(a) => {
                    match &a {
                        Action::Persist(s) => self.store = Some(s.clone()),
                        Action::SetCanaryWeight { service, canary_bp } => {
                            self.table.insert(service.clone(), Route::Split(*canary_bp));
                        }
                        Action::Promote { service } => {
                            self.table.insert(service.clone(), Route::New);
                        }
                        Action::Revert { service } => {
                            self.table.insert(service.clone(), Route::Old);
                        }
                        _ => {}
                    }
                    out.push(a);
                }
                Output::Event(e) => self.events.push(e),
                Output::Timeout(t) => {
                    self.timeout = Some(t);
                    break;
                }
                Output::Idle => {
                    self.timeout = None;
                    break;
                }
            }
        }
        self.actions.extend(out.iter().cloned());
        out
    }

    pub fn input(&mut self, input: Input) -> Vec<Action> {
        self.rollout.handle_input(self.now, input);
        self.drain()
    }

    pub fn command(&mut self, command: Command) -> Result<Vec<Action>, Refused> {
        self.rollout.command(self.now, command)?;
        Ok(self.drain())
    }

    pub fn start(&mut self) -> Vec<Action> {
        self.input(Input::Start)
    }

    pub fn started(&mut self, service: &str) -> Vec<Action> {
        self.input(Input::Started {
            service: service.into(),
        })
    }

    /// Advances the clock to the timeout and ticks.
    pub fn tick(&mut self) -> Vec<Action> {
        let t = self.timeout.expect("a timeout to wait for");
        self.now = self.now.max(t);
        self.input(Input::Tick)
    }

    /// Ticks until the step's analysis is asked for, answering every fast
    /// check with `check`; returns the actions of the check answer that ended
    /// the rollout, if one did.
    pub fn until_analysis(&mut self, service: &str, check: Stats) -> Option<Vec<Action>> {
        for _ in 0..1_000 {
            let acts = self.tick();
            if acts.iter().any(|a| matches!(a, Action::Check { .. })) {
                let after = self.input(Input::Check {
                    service: service.into(),
                    canary: check,
                });
                if self.rollout.is_finished() {
                    return Some(after);
                }
            }
            if acts.iter().any(|a| matches!(a, Action::Analyze { .. })) {
                return None;
            }
        }
        panic!("no analysis of {service} within 1000 ticks");
    }

    /// Runs one step of `service` to its analysis and answers it.
    pub fn step(&mut self, service: &str, canary: Stats, stable: Stats) -> Vec<Action> {
        if let Some(ended) = self.until_analysis(service, canary) {
            return ended;
        }
        self.input(Input::Analysis {
            service: service.into(),
            canary,
            stable,
        })
    }

    pub fn outcome(&self) -> Option<Outcome> {
        self.actions.iter().find_map(|a| match a {
            Action::Finish(o) => Some(o.clone()),
            _ => None,
        })
    }

    pub fn route(&self, service: &str) -> Route {
        self.table[service]
    }

    /// The table actions so far, in a compact form.
    pub fn table_actions(&self) -> Vec<String> {
        table_actions(&self.actions)
    }

    /// The machine restarted from the store with `policy`, `gone` services.
    pub fn restart(&self, policy: RestartPolicy, gone: &[&str], later: Millis) -> Run {
        let state = self.store.clone().expect("a persisted state");
        let json = serde_json::to_string(&state).expect("state to JSON");
        let state: State = serde_json::from_str(&json).expect("state from JSON");
        let gone: Vec<String> = gone.iter().map(|s| s.to_string()).collect();
        let now = self.now.after(later);
        let rollout = Rollout::restore(self.rollout.plan().clone(), state, now, policy, &gone);
        let mut run = Run::wrap_keeping_table(rollout, now, self.table.clone());
        run.store = self.store.clone();
        run.drain();
        run
    }

    fn wrap_keeping_table(rollout: Rollout, now: Millis, table: BTreeMap<String, Route>) -> Run {
        Run {
            rollout,
            now,
            timeout: None,
            actions: Vec::new(),
            events: Vec::new(),
            table,
            store: None,
        }
    }
}

pub fn table_actions(actions: &[Action]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            Action::SetCanaryWeight { service, canary_bp } => {
                Some(format!("{service} {}%", canary_bp / 100))
            }
            Action::Promote { service } => Some(format!("promote {service}")),
            Action::Revert { service } => Some(format!("revert {service}")),
            _ => None,
        })
        .collect()
}

/// A small driver for the whole-life machine ([`Release`]): drains every
/// output after each input, answers each `Persist` at once (saved, or failed
/// while `store_down`), keeps the last *saved* state and serving version.
pub struct ReleaseRun {
    pub release: Release,
    pub now: Millis,
    pub timeout: Option<Millis>,
    /// Every action so far, in order.
    pub actions: Vec<ReleaseAction>,
    /// The last saved state.
    pub store: Option<ReleaseState>,
    /// The version the store records as serving.
    pub serving: Option<String>,
    /// Saves fail while set.
    pub store_down: bool,
}

/// A deploy of `services` (v1 → v2).
pub fn deploy(services: Vec<ServicePlan>, backup: bool, migrate: bool) -> ReleasePlan {
    ReleasePlan {
        kind: ReleaseKind::Deploy,
        rollout: plan(services),
        backup,
        migrate,
        rollback_window: Millis(60_000),
        contract: if migrate {
            vec![cutover_core::ContractTarget {
                database: "main".into(),
                upto: 2,
            }]
        } else {
            Vec::new()
        },
        approval: None,
    }
}

/// The rollback of a deploy of `services` (v2 → v1, blue-green).
pub fn rollback(names: &[&str]) -> ReleasePlan {
    let mut p = plan(names.iter().map(|n| blue_green(n)).collect());
    p.version = "v1".into();
    p.previous_version = Some("v2".into());
    ReleasePlan {
        kind: ReleaseKind::Rollback,
        rollout: p,
        backup: false,
        migrate: false,
        rollback_window: Millis(60_000),
        contract: Vec::new(),
        approval: None,
    }
}

impl ReleaseRun {
    pub fn new(plan: ReleasePlan) -> ReleaseRun {
        let n = plan.rollout.services.len();
        ReleaseRun::wrap(Release::new(plan, &vec![true; n]), Millis(0), None, None)
    }

    fn wrap(
        release: Release,
        now: Millis,
        store: Option<ReleaseState>,
        serving: Option<String>,
    ) -> ReleaseRun {
        let mut run = ReleaseRun {
            release,
            now,
            timeout: None,
            actions: Vec::new(),
            store,
            serving,
            store_down: false,
        };
        run.drain();
        run
    }

    /// Drains the outputs, answering saves; returns this drain's actions.
    pub fn drain(&mut self) -> Vec<ReleaseAction> {
        let mut out = Vec::new();
        for _ in 0..1_000 {
            match self.release.poll_output() {
                ReleaseOutput::Action(a) => {
                    if let ReleaseAction::Persist { state, serving } = &a {
                        if self.store_down {
                            self.release.handle_input(
                                self.now,
                                ReleaseInput::SaveFailed {
                                    error: "disk full".into(),
                                },
                            );
                        } else {
                            self.store = Some(state.clone());
                            if serving.is_some() {
                                self.serving = serving.clone();
                            }
                            self.release.handle_input(self.now, ReleaseInput::Saved);
                        }
                    }
                    out.push(a);
                }
                ReleaseOutput::Event(_) => {}
                ReleaseOutput::Timeout(t) => {
                    self.timeout = Some(t);
                    break;
                }
                ReleaseOutput::Idle => {
                    self.timeout = None;
                    break;
                }
            }
        }
        self.actions.extend(out.iter().cloned());
        out
    }

    pub fn input(&mut self, input: ReleaseInput) -> Vec<ReleaseAction> {
        self.release.handle_input(self.now, input);
        self.drain()
    }

    pub fn rollout(&mut self, input: Input) -> Vec<ReleaseAction> {
        self.input(ReleaseInput::Rollout(input))
    }

    pub fn command(&mut self, command: Command) -> Result<Vec<ReleaseAction>, Refused> {
        self.release.command(self.now, command)?;
        Ok(self.drain())
    }

    /// The daemon died; restored from the last saved state (through JSON)
    /// `later`, with `gone` services.
    pub fn restart(&self, gone: &[&str], later: Millis) -> ReleaseRun {
        let state = self.store.clone().expect("a saved state");
        let json = serde_json::to_string(&state).expect("state to JSON");
        let state: ReleaseState = serde_json::from_str(&json).expect("state from JSON");
        let gone: Vec<String> = gone.iter().map(|s| s.to_string()).collect();
        let now = self.now.after(later);
        let release = Release::restore(self.release.plan().clone(), state, now, &gone)
            .expect("the saved state fits its plan");
        ReleaseRun::wrap(release, now, self.store.clone(), self.serving.clone())
    }
}
