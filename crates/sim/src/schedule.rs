//! A schedule: everything one simulated release is made of, drawn from one
//! seed — the plan (services, strategies, steps, thresholds, policies; backup,
//! migrations, rollback window), each service's world (instances, traffic,
//! how good the new release is), the faults with their times, and the life
//! around the rollout (store outages, crashes in given phases, operator
//! commands during the window), and, for some seeds, an approval gate with
//! what approvers do (approve, approve their own deployment, reject, let it
//! expire). Same seed, same schedule, same run.

use cutover_core::{
    ApprovalAt, ApprovalPolicy, CanarySpec, Command, ContractTarget, InconclusivePolicy, Millis,
    Phase, Plan, ReleaseKind, ReleasePlan, RestartPolicy, ServicePlan, Strategy, Thresholds,
};
use fastrand::Rng;

use crate::observe::{Profile, Script, Spike, SpikeKind};
use crate::table::Release;

/// Service names, in plan order.
pub const NAMES: [&str; 3] = ["db-api", "web", "worker"];

/// Longest a new release takes to start, ms.
pub const START_DELAY_MS_MAX: u64 = 40_000;

/// One service's world at the start.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceWorld {
    /// Old instances (0: the service's first release, nothing to go back to).
    pub old_count: usize,
    /// New instances to start.
    pub new_count: usize,
    /// Traffic and behaviour.
    pub script: Script,
}

/// Something that happens to the world (or the operator, or the daemon).
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// One running new instance of the service crashes.
    NewCrash(usize),
    /// Old instances of the service fail their health checks: all of them, or one.
    OldDown {
        /// Service index.
        service: usize,
        /// All old instances, or one.
        all: bool,
    },
    /// One old instance of the service is healthy again.
    OldUp(usize),
    /// The next start of the service's new instances fails.
    StartFailure(usize),
    /// An operator command.
    Operator(Command),
    /// An operator's window command at a fixed time (mostly outside any
    /// window: refused).
    Window(WindowOp),
    /// The daemon dies; it comes back after `downtime`.
    DaemonCrash {
        /// Actions of the next step carried out before it dies (`None`: it
        /// dies between steps).
        mid_drain: Option<usize>,
        /// How long it stays down.
        downtime: Millis,
        /// Whether its built-in proxy comes back empty (everything on the old
        /// release until the restored rollout re-applies its actions) or the
        /// table survives.
        table_lost: bool,
    },
}

/// An operator command about a release's rollback window.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WindowOp {
    /// `cutover rollback`: supersede the deploy, run a rollback release.
    Rollback,
    /// A newer deploy wants the environment: end the window now.
    NewerDeploy,
}

/// A release's phase without its data, for targeting faults and naming
/// features.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum PhaseKind {
    /// Not started.
    Pending,
    /// Waiting for approvals.
    AwaitingApproval,
    /// Backing up.
    Backup,
    /// Expand migrations.
    Expand,
    /// A rollback asking whether the previous release is warm.
    ProbeWarm,
    /// The rollout.
    Rolling,
    /// The rollback window.
    Warm,
    /// Retiring a release.
    Retiring,
    /// Contract migrations.
    Contract,
    /// Done.
    Done,
}

impl PhaseKind {
    /// The kind of `phase`.
    pub fn of(phase: &Phase) -> PhaseKind {
        match phase {
            Phase::Pending => PhaseKind::Pending,
            Phase::AwaitingApproval { .. } => PhaseKind::AwaitingApproval,
            Phase::Backup => PhaseKind::Backup,
            Phase::Expand => PhaseKind::Expand,
            Phase::ProbeWarm => PhaseKind::ProbeWarm,
            Phase::Rolling => PhaseKind::Rolling,
            Phase::Warm { .. } => PhaseKind::Warm,
            Phase::Retiring { .. } => PhaseKind::Retiring,
            Phase::Contract => PhaseKind::Contract,
            Phase::Done => PhaseKind::Done,
        }
    }

    /// For feature names: `warm`, `retiring`, …
    pub fn name(self) -> &'static str {
        match self {
            PhaseKind::Pending => "pending",
            PhaseKind::AwaitingApproval => "awaiting-approval",
            PhaseKind::Backup => "backup",
            PhaseKind::Expand => "expand",
            PhaseKind::ProbeWarm => "probe-warm",
            PhaseKind::Rolling => "rolling",
            PhaseKind::Warm => "warm",
            PhaseKind::Retiring => "retiring",
            PhaseKind::Contract => "contract",
            PhaseKind::Done => "done",
        }
    }

    /// Order in a release's life (a release never goes back).
    pub fn rank(self) -> u8 {
        self as u8
    }
}

/// A phase of one of the run's releases.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseTag {
    /// Of the rollback release (else of the deploy).
    pub rollback: bool,
    /// The phase.
    pub phase: PhaseKind,
}

/// A daemon crash once a release reaches a phase.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PhaseCrash {
    /// When the release is first seen in this phase…
    pub at: PhaseTag,
    /// …the daemon dies this much later (between steps), or…
    pub delay: Millis,
    /// …in the middle of the next drain, after this many actions.
    pub mid_drain: Option<usize>,
    /// How long it stays down.
    pub downtime: Millis,
    /// Whether the proxy's table is lost.
    pub table_lost: bool,
}

/// The state store cannot be written for a while.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outage {
    /// From `from` until `until`.
    Absolute {
        /// Start.
        from: Millis,
        /// End (exclusive).
        until: Millis,
    },
    /// From the first save of a state in this phase, for `duration`.
    AtPersist {
        /// The phase of the state saved.
        at: PhaseTag,
        /// How long.
        duration: Millis,
    },
}

/// Everything around the rollout: the release plan's own settings, how the
/// world answers its actions, and the faults of its whole life.
#[derive(Debug, Clone)]
pub struct Life {
    /// Back up before the expand migrations.
    pub backup: bool,
    /// Expand before, contract after.
    pub migrate: bool,
    /// The deploy's rollback window (0: retire at once).
    pub rollback_window: Millis,
    /// A rollback release's own window.
    pub rollback_plan_window: Millis,
    /// The backup fails.
    pub backup_fails: bool,
    /// The expand migrations fail.
    pub expand_fails: bool,
    /// The contract migrations fail.
    pub contract_fails: bool,
    /// Operator commands, this long after the deploy's window opened.
    pub window_ops: Vec<(Millis, WindowOp)>,
    /// Faults this long after the deploy's window opened (the warm release
    /// losing health, a start of it that will fail).
    pub window_faults: Vec<(Millis, Fault)>,
    /// A newer deploy this long after a rollback release's window opened.
    pub rollback_window_end: Option<Millis>,
    /// The operator aborts the rollback this long after it began (changed
    /// their mind).
    pub abort_rollback: Option<Millis>,
    /// The daemon dies in the drain that supersedes the deploy, after this
    /// many actions (the rollback is recorded, the superseding maybe not).
    pub crash_superseding: Option<usize>,
    /// Crashes in given phases.
    pub phase_crashes: Vec<PhaseCrash>,
    /// Store-write failures.
    pub outages: Vec<Outage>,
    /// Probability that a save is answered in a later step (else at once).
    pub slow_saves: f64,
    /// The deploy's approval gate, if it has one.
    pub approval: Option<ApprovalPolicy>,
    /// What approvers do, this long after the deploy began.
    pub approval_ops: Vec<(Millis, ApprovalOp)>,
}

/// What an approver does to a deployment awaiting approval.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApprovalOp {
    /// `cutover approve` by this person.
    Approve(String),
    /// `cutover reject` by this person.
    Reject(String),
}

/// Who asks for the deploy in the simulation.
pub const DEPLOYER: &str = "dana@ci";

/// Everything one run is made of.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The seed it was drawn from.
    pub seed: u64,
    /// What to roll.
    pub plan: Plan,
    /// The life around the rollout.
    pub life: Life,
    /// Per service, in plan order.
    pub services: Vec<ServiceWorld>,
    /// Faults, in time order.
    pub faults: Vec<(Millis, Fault)>,
    /// How long the operator leaves a paused rollout alone.
    pub operator_patience: Millis,
    /// What the operator does with a rollout that awaits the switch.
    pub gate: SwitchGate,
}

/// The operator at a gate before the switch (`manual_switch` services).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SwitchGate {
    /// How long the operator smoke-tests before deciding.
    pub patience: Millis,
    /// The operator aborts instead of switching.
    pub abort: bool,
    /// The daemon dies this long after the hold is first seen (before the
    /// operator decides), for `downtime`, perhaps losing the table.
    pub crash: Option<(Millis, Millis, bool)>,
}

fn pick<T: Copy>(rng: &mut Rng, items: &[T]) -> T {
    items[rng.usize(..items.len())]
}

fn range_f64(rng: &mut Rng, lo: f64, hi: f64) -> f64 {
    lo + rng.f64() * (hi - lo)
}

fn maybe(rng: &mut Rng, p: f64) -> bool {
    rng.f64() < p
}

impl Schedule {
    /// The schedule of `seed`.
    pub fn random(seed: u64) -> Schedule {
        let mut rng = Rng::with_seed(seed);
        let n = rng.usize(1..=NAMES.len());
        let mut plan_services = Vec::new();
        let mut services = Vec::new();
        // Roughly how long the rollout takes when all goes well; faults land in it.
        let mut horizon_ms = 0_u64;
        for name in NAMES.iter().take(n) {
            let world = service_world(&mut rng);
            let (strategy, duration) = strategy(&mut rng, &world.script.old);
            horizon_ms += START_DELAY_MS_MAX / 2 + duration.0;
            plan_services.push(ServicePlan {
                name: (*name).to_owned(),
                strategy,
                manual_switch: false,
            });
            services.push(world);
        }
        let horizon = Millis(horizon_ms.max(10_000));
        for s in &mut services {
            spikes_and_quiet(&mut rng, horizon, &mut s.script);
        }
        let on_restart = pick(&mut rng, &[RestartPolicy::Resume, RestartPolicy::Rollback]);
        let mut faults = faults(&mut rng, n, horizon);
        let operator_patience = Millis(rng.u64(5_000..=300_000));
        let mut life = life(&mut rng, n, horizon);
        // From a seed of its own, so that schedules without a gate stay
        // what they were (the constant is one that gives none of the
        // fixed seeds of `tests/sim.rs` a gate).
        let mut approval_rng = Rng::with_seed(seed ^ 0x0a99_1014);
        if maybe(&mut approval_rng, 0.15) {
            approval_gate(&mut approval_rng, &mut life);
        }
        // The gate before the switch draws from its own generator and is in
        // one schedule of 11 (by seed), so every other schedule — the fixed
        // seeds picked before the gate existed among them — is the one it
        // always was.
        let mut gate_rng = Rng::with_seed(seed ^ 0x5157_4954_4348_4741);
        if seed % 11 == 7 {
            for s in &mut plan_services {
                s.manual_switch = maybe(&mut gate_rng, 0.7);
            }
        }
        let patience = Millis(gate_rng.u64(1_000..=600_000));
        let gate = SwitchGate {
            patience,
            abort: maybe(&mut gate_rng, 0.25),
            crash: maybe(&mut gate_rng, 0.4).then(|| {
                (
                    Millis(gate_rng.u64(0..patience.0)),
                    Millis(gate_rng.u64(0..=60_000)),
                    gate_rng.bool(),
                )
            }),
        };
        if plan_services.iter().any(|s| s.manual_switch) && maybe(&mut gate_rng, 0.3) {
            // A `switch` at a random time: mostly when nothing awaits it.
            faults.push((
                Millis(gate_rng.u64(1..horizon.0)),
                Fault::Operator(Command::Switch),
            ));
            faults.sort_by_key(|(t, _)| *t);
        }
        if maybe(&mut rng, 0.1) {
            let op = if rng.bool() {
                WindowOp::Rollback
            } else {
                WindowOp::NewerDeploy
            };
            faults.push((Millis(rng.u64(1..horizon.0)), Fault::Window(op)));
            faults.sort_by_key(|(t, _)| *t);
        }
        let plan = Plan {
            version: "v2".into(),
            previous_version: Some("v1".into()),
            services: plan_services,
            on_restart,
        };
        Schedule {
            seed,
            plan,
            life,
            services,
            faults,
            operator_patience,
            gate,
        }
    }

    /// Whether each service has an old release (for `Release::new`).
    pub fn has_previous(&self) -> Vec<bool> {
        self.services.iter().map(|s| s.old_count > 0).collect()
    }

    /// The deploy: `v1` → `v2`.
    pub fn deploy_plan(&self) -> ReleasePlan {
        ReleasePlan {
            kind: ReleaseKind::Deploy,
            rollout: self.plan.clone(),
            backup: self.life.backup,
            migrate: self.life.migrate,
            rollback_window: self.life.rollback_window,
            // A release with migrations has contract migrations to run.
            contract: if self.life.migrate {
                vec![ContractTarget {
                    database: "main".into(),
                    upto: 2,
                }]
            } else {
                Vec::new()
            },
            approval: self.life.approval.clone(),
        }
    }

    /// The rollback an operator asks for during the deploy's window: back to
    /// `v1`, blue-green when it is not warm any more.
    pub fn rollback_plan(&self) -> ReleasePlan {
        ReleasePlan {
            kind: ReleaseKind::Rollback,
            rollout: Plan {
                version: "v1".into(),
                previous_version: Some("v2".into()),
                services: self
                    .plan
                    .services
                    .iter()
                    .map(|s| ServicePlan {
                        name: s.name.clone(),
                        strategy: Strategy::BlueGreen,
                        manual_switch: false,
                    })
                    .collect(),
                on_restart: self.plan.on_restart,
            },
            backup: false,
            migrate: false,
            rollback_window: self.life.rollback_plan_window,
            contract: Vec::new(),
            approval: None,
        }
    }

    /// The schedule of `seed` with an approval gate on its deploy, always.
    pub fn with_approval(seed: u64) -> Schedule {
        let mut s = Schedule::random(seed);
        if s.life.approval.is_none() {
            let mut gate_rng = Rng::with_seed(seed ^ 0x0a99_0fe6);
            approval_gate(&mut gate_rng, &mut s.life);
        }
        s
    }

    /// [`Schedule::with_approval`] with the gate at the switch
    /// (`approvals = { at = "switch" }`): the deploy starts at once and its
    /// first service holds, healthy and without traffic, for the approvals
    /// (the runtime plans it with `manual_switch`).
    pub fn with_approval_at_switch(seed: u64) -> Schedule {
        let mut s = Schedule::with_approval(seed);
        if let Some(a) = s.life.approval.as_mut() {
            a.at = ApprovalAt::Switch;
        }
        if let Some(first) = s.plan.services.first_mut() {
            first.manual_switch = true;
        }
        s
    }
}

/// An approval gate at the start, and what approvers do: approve (perhaps
/// the deployer first, which must be refused; perhaps two needed), reject,
/// or nothing (it expires); sometimes the daemon dies while it waits.
fn approval_gate(rng: &mut Rng, life: &mut Life) {
    let required = pick(rng, &[1, 1, 1, 2]);
    let expires = Millis(pick(rng, &[3_000, 30_000, 600_000, 3_600_000]));
    life.approval = Some(ApprovalPolicy {
        required,
        expires,
        at: ApprovalAt::Start,
        requested_by: DEPLOYER.into(),
    });
    let within = |rng: &mut Rng| Millis(rng.u64(0..=expires.0 * 12 / 10));
    let mut ops = Vec::new();
    match rng.u8(0..10) {
        // Approved (sometimes too late), perhaps after the deployer tried.
        0..=5 => {
            if maybe(rng, 0.4) {
                ops.push((within(rng), ApprovalOp::Approve(DEPLOYER.into())));
            }
            for i in 0..required {
                ops.push((within(rng), ApprovalOp::Approve(format!("approver{i}@ops"))));
                if maybe(rng, 0.2) {
                    // The same person twice: counted once.
                    ops.push((within(rng), ApprovalOp::Approve(format!("approver{i}@ops"))));
                }
            }
        }
        6..=7 => ops.push((within(rng), ApprovalOp::Reject("approver9@ops".into()))),
        _ => {} // nobody: it expires
    }
    ops.sort_by_key(|(t, _)| *t);
    life.approval_ops = ops;
    if maybe(rng, 0.4) {
        life.phase_crashes.push(PhaseCrash {
            at: PhaseTag {
                rollback: false,
                phase: PhaseKind::AwaitingApproval,
            },
            delay: Millis(rng.u64(0..=expires.0)),
            mid_drain: None,
            downtime: Millis(rng.u64(0..=60_000)),
            table_lost: rng.bool(),
        });
    }
}

fn window_length(rng: &mut Rng) -> Millis {
    Millis(pick(rng, &[0, 2_000, 30_000, 120_000, 600_000, 3_600_000]))
}

fn phase_tag(rng: &mut Rng) -> PhaseTag {
    let (rollback, phase) = pick(
        rng,
        &[
            (false, PhaseKind::Backup),
            (false, PhaseKind::Expand),
            (false, PhaseKind::Rolling),
            (false, PhaseKind::Warm),
            (false, PhaseKind::Warm),
            (false, PhaseKind::Retiring),
            (false, PhaseKind::Retiring),
            (false, PhaseKind::Contract),
            (false, PhaseKind::Contract),
            (false, PhaseKind::Done),
            (true, PhaseKind::ProbeWarm),
            (true, PhaseKind::Rolling),
            (true, PhaseKind::Warm),
            (true, PhaseKind::Retiring),
        ],
    );
    PhaseTag { rollback, phase }
}

fn life(rng: &mut Rng, n: usize, horizon: Millis) -> Life {
    let backup = maybe(rng, 0.5);
    let migrate = maybe(rng, 0.5);
    let rollback_window = window_length(rng);
    let rollback_plan_window = window_length(rng);
    let backup_fails = backup && maybe(rng, 0.1);
    let expand_fails = migrate && maybe(rng, 0.1);
    let contract_fails = migrate && maybe(rng, 0.1);
    // Operator commands during the window; some land after it (refused).
    let late = Millis((rollback_window.0 * 13 / 10).max(5_000));
    let mut window_ops = Vec::new();
    let mut window_faults = Vec::new();
    if maybe(rng, 0.8) {
        let op = if maybe(rng, 0.8) {
            WindowOp::Rollback
        } else {
            WindowOp::NewerDeploy
        };
        let at = Millis(rng.u64(0..=late.0));
        window_ops.push((at, op));
        if op == WindowOp::Rollback && maybe(rng, 0.35) {
            // The warm release dies first: the rollback goes cold.
            let service = rng.usize(..n);
            let before = Millis(rng.u64(0..=at.0));
            window_faults.push((before, Fault::OldDown { service, all: true }));
            if maybe(rng, 0.25) {
                window_faults.push((before, Fault::StartFailure(service)));
            }
        }
        if maybe(rng, 0.15) {
            // A second command: usually refused by then.
            let op = if rng.bool() {
                WindowOp::Rollback
            } else {
                WindowOp::NewerDeploy
            };
            window_ops.push((at.after(Millis(rng.u64(0..=60_000))), op));
        }
    }
    let rollback_window_end =
        maybe(rng, 0.3).then(|| Millis(rng.u64(0..=(rollback_plan_window.0 * 13 / 10).max(5_000))));
    let abort_rollback = maybe(rng, 0.1).then(|| Millis(rng.u64(0..=1_000)));
    let crash_superseding = maybe(rng, 0.1).then(|| rng.usize(0..=1));
    let mut phase_crashes = Vec::new();
    let crashes = match rng.u8(0..20) {
        0..=10 => 0,
        11..=17 => 1,
        _ => 2,
    };
    for _ in 0..crashes {
        let at = phase_tag(rng);
        let delay = match at.phase {
            PhaseKind::Warm => Millis(rng.u64(0..=rollback_window.0.max(1))),
            PhaseKind::ProbeWarm => Millis(rng.u64(0..=300)),
            _ => Millis(rng.u64(0..=3_000)),
        };
        phase_crashes.push(PhaseCrash {
            at,
            delay,
            mid_drain: maybe(rng, 0.4).then(|| rng.usize(0..=3)),
            downtime: Millis(rng.u64(0..=60_000)),
            table_lost: rng.bool(),
        });
    }
    if maybe(rng, 0.3) {
        // One more in the rollback's life, should there be one.
        let phase = pick(
            rng,
            &[
                PhaseKind::ProbeWarm,
                PhaseKind::Rolling,
                PhaseKind::Warm,
                PhaseKind::Retiring,
            ],
        );
        phase_crashes.push(PhaseCrash {
            at: PhaseTag {
                rollback: true,
                phase,
            },
            delay: Millis(rng.u64(0..=300)),
            mid_drain: maybe(rng, 0.5).then(|| rng.usize(0..=2)),
            downtime: Millis(rng.u64(0..=60_000)),
            table_lost: rng.bool(),
        });
    }
    let mut outages = Vec::new();
    let duration = |rng: &mut Rng| {
        Millis(match rng.u8(0..10) {
            0..=4 => rng.u64(50..=2_000),
            5..=8 => rng.u64(2_000..=30_000),
            _ => rng.u64(30_000..=300_000),
        })
    };
    let span = horizon.0 + rollback_window.0.min(600_000) + 60_000;
    for _ in 0..pick(rng, &[0, 0, 1, 1, 2]) {
        let from = Millis(rng.u64(0..span));
        let until = from.after(duration(rng));
        outages.push(Outage::Absolute { from, until });
    }
    if maybe(rng, 0.3) {
        let at = phase_tag(rng);
        outages.push(Outage::AtPersist {
            at,
            duration: duration(rng),
        });
    }
    Life {
        backup,
        migrate,
        rollback_window,
        rollback_plan_window,
        backup_fails,
        expand_fails,
        contract_fails,
        window_ops,
        window_faults,
        rollback_window_end,
        abort_rollback,
        crash_superseding,
        phase_crashes,
        outages,
        slow_saves: pick(rng, &[0.0, 0.0, 0.1, 0.5]),
        approval: None,
        approval_ops: Vec::new(),
    }
}

/// A strategy and how long it takes when all goes well.
fn strategy(rng: &mut Rng, old: &Profile) -> (Strategy, Millis) {
    if maybe(rng, 0.25) {
        return (Strategy::BlueGreen, Millis(0));
    }
    // Strictly increasing steps ending at 100.
    let mut steps: Vec<u8> = Vec::new();
    let inner = rng.usize(0..=4);
    let mut candidates: Vec<u8> = vec![1, 5, 10, 20, 25, 33, 50, 75, 90, 99];
    rng.shuffle(&mut candidates);
    steps.extend(candidates.into_iter().take(inner));
    steps.sort_unstable();
    steps.push(100);
    let step_ms = rng.u64(5_000..=120_000);
    let check_ms = (step_ms / rng.u64(2..=8)).max(1_000);
    let thresholds = Thresholds {
        max_error_rate: maybe(rng, 0.8).then(|| range_f64(rng, 0.005, 0.05)),
        max_p95_ms: maybe(rng, 0.5).then(|| old.p95_ms * range_f64(rng, 1.2, 3.0)),
        max_p99_ms: maybe(rng, 0.3).then(|| old.p99_ms * range_f64(rng, 1.2, 3.0)),
        max_error_rate_increase: maybe(rng, 0.4).then(|| range_f64(rng, 0.005, 0.03)),
        max_latency_ratio: maybe(rng, 0.4).then(|| range_f64(rng, 1.2, 3.0)),
        min_requests: pick(rng, &[0, 1, 10, 20, 50, 100, 200, 500]),
        abort_error_rate: maybe(rng, 0.7).then(|| range_f64(rng, 0.05, 0.3)),
    };
    let duration = Millis(step_ms * steps.len() as u64);
    let spec = CanarySpec {
        steps,
        step_duration: Millis(step_ms),
        check_interval: Millis(check_ms),
        max_inconclusive: rng.u32(0..=4),
        on_inconclusive: pick(rng, &[InconclusivePolicy::Fail, InconclusivePolicy::Pause]),
        thresholds,
    };
    (Strategy::Canary(spec), duration)
}

fn service_world(rng: &mut Rng) -> ServiceWorld {
    let old_count = if maybe(rng, 0.1) { 0 } else { rng.usize(1..=3) };
    let rate_rps = match rng.u8(0..20) {
        0..=1 => 0.0,
        2..=6 => range_f64(rng, 0.05, 2.0),
        _ => range_f64(rng, 5.0, 300.0),
    };
    let p50 = range_f64(rng, 5.0, 40.0);
    let p95 = p50 * range_f64(rng, 2.0, 4.0);
    let old = Profile {
        error_rate: range_f64(rng, 0.0, 0.005),
        p50_ms: p50,
        p95_ms: p95,
        p99_ms: p95 * range_f64(rng, 1.2, 2.0),
    };
    let new = match rng.u8(0..20) {
        // A bad release: errors.
        0..=3 => Profile {
            error_rate: range_f64(rng, 0.02, 0.3),
            ..old
        },
        // A slow one.
        4..=6 => {
            let f = range_f64(rng, 1.5, 5.0);
            Profile {
                p50_ms: old.p50_ms * f,
                p95_ms: old.p95_ms * f,
                p99_ms: old.p99_ms * f,
                ..old
            }
        }
        // As good as the old one, give or take.
        _ => Profile {
            error_rate: old.error_rate * range_f64(rng, 0.5, 1.5),
            p50_ms: old.p50_ms * range_f64(rng, 0.8, 1.1),
            p95_ms: old.p95_ms * range_f64(rng, 0.8, 1.1),
            p99_ms: old.p99_ms * range_f64(rng, 0.8, 1.1),
        },
    };
    ServiceWorld {
        old_count,
        new_count: rng.usize(1..=3),
        script: Script {
            rate_rps,
            quiet: Vec::new(),
            old,
            new,
            spikes: Vec::new(),
        },
    }
}

fn spikes_and_quiet(rng: &mut Rng, horizon: Millis, script: &mut Script) {
    let window = |rng: &mut Rng| {
        let from = Millis(rng.u64(0..horizon.0));
        (from, from.after(Millis(rng.u64(1_000..=120_000))))
    };
    if maybe(rng, 0.2) {
        let w = window(rng);
        script.quiet.push(w);
    }
    for _ in 0..rng.usize(0..=1) {
        let (from, until) = window(rng);
        let release = if maybe(rng, 0.8) {
            Release::New
        } else {
            Release::Old
        };
        let kind = if rng.bool() {
            SpikeKind::Errors(range_f64(rng, 0.05, 0.6))
        } else {
            SpikeKind::Latency(range_f64(rng, 2.0, 10.0))
        };
        script.spikes.push(Spike {
            release,
            from,
            until,
            kind,
        });
    }
}

fn faults(rng: &mut Rng, n: usize, horizon: Millis) -> Vec<(Millis, Fault)> {
    let mut out = Vec::new();
    let at = |rng: &mut Rng| Millis(rng.u64(1..horizon.0));
    if maybe(rng, 0.3) {
        out.push((at(rng), Fault::NewCrash(rng.usize(..n))));
    }
    if maybe(rng, 0.25) {
        let service = rng.usize(..n);
        let t = at(rng);
        out.push((
            t,
            Fault::OldDown {
                service,
                all: rng.bool(),
            },
        ));
        if maybe(rng, 0.4) {
            out.push((t.after(Millis(rng.u64(1..120_000))), Fault::OldUp(service)));
        }
    }
    for service in 0..n {
        if maybe(rng, 0.06) {
            // Before the start, mostly: `at` may land after it, then it hits a restart.
            out.push((Millis(rng.u64(0..2_000)), Fault::StartFailure(service)));
        }
    }
    for _ in 0..rng.usize(0..=3) {
        let command = match rng.u8(0..12) {
            0..=3 => Command::Pause,
            4..=6 => Command::Resume,
            7..=8 => Command::Promote { full: false },
            9..=10 => Command::Promote { full: true },
            _ => Command::Abort {
                reason: "operator said so".into(),
            },
        };
        out.push((at(rng), Fault::Operator(command)));
    }
    let crashes = match rng.u8(0..20) {
        0..=10 => 0,
        11..=18 => 1,
        _ => 2,
    };
    for _ in 0..crashes {
        let mid_drain = rng.bool().then(|| rng.usize(0..=4));
        out.push((
            at(rng),
            Fault::DaemonCrash {
                mid_drain,
                downtime: Millis(rng.u64(0..=60_000)),
                table_lost: rng.bool(),
            },
        ));
    }
    out.sort_by_key(|(t, _)| *t);
    out
}
