//! A schedule: everything one simulated rollout is made of, drawn from one
//! seed — the plan (services, strategies, steps, thresholds, policies), each
//! service's world (instances, traffic, how good the new release is) and the
//! faults with their times. Same seed, same schedule, same run.

use cutover_core::{
    CanarySpec, Command, InconclusivePolicy, Millis, Plan, RestartPolicy, ServicePlan, Strategy,
    Thresholds,
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

/// Everything one run is made of.
#[derive(Debug, Clone)]
pub struct Schedule {
    /// The seed it was drawn from.
    pub seed: u64,
    /// What to roll.
    pub plan: Plan,
    /// Per service, in plan order.
    pub services: Vec<ServiceWorld>,
    /// Faults, in time order.
    pub faults: Vec<(Millis, Fault)>,
    /// How long the operator leaves a paused rollout alone.
    pub operator_patience: Millis,
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
            });
            services.push(world);
        }
        let horizon = Millis(horizon_ms.max(10_000));
        for s in &mut services {
            spikes_and_quiet(&mut rng, horizon, &mut s.script);
        }
        let plan = Plan {
            version: "v2".into(),
            previous_version: Some("v1".into()),
            services: plan_services,
            on_restart: pick(&mut rng, &[RestartPolicy::Resume, RestartPolicy::Rollback]),
        };
        let faults = faults(&mut rng, n, horizon);
        Schedule {
            seed,
            plan,
            services,
            faults,
            operator_patience: Millis(rng.u64(5_000..=300_000)),
        }
    }

    /// Whether each service has an old release (for `Rollout::new`).
    pub fn has_previous(&self) -> Vec<bool> {
        self.services.iter().map(|s| s.old_count > 0).collect()
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
