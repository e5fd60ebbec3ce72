//! A deterministic simulation of cutover's release engine (`cutover-core`),
//! TigerBeetle style: every source of time, randomness and IO is fake and
//! drawn from one seed, so any failure replays exactly. It drives the whole
//! life of a release (`cutover_core::Release`): backup, expand, the rollout,
//! the warm window, retiring the old release, contract — and the rollback an
//! operator may ask for during the window.
//!
//! - `schedule.rs`: from a seed, a plan (1–3 services, blue-green or canary
//!   with random steps, thresholds and policies; backup, migrations, a
//!   rollback window), a world (instances, traffic, how good the new release
//!   is) and faults at random times (crashing new instances, an old release
//!   losing health, error and latency spikes, failed starts, failed backups
//!   and migrations, store-write outages, operator commands and window
//!   operations, daemon crashes, also in given phases).
//! - `world.rs`: the fake world — clock, both versions' instances, the proxy
//!   table.
//! - `table.rs`: the fake proxy table, changed only by the core's actions.
//! - `observe.rs`: what the proxy "saw", integrated over the asked window in
//!   proportion to each track's share.
//! - `sim.rs`: the driver (`Sim::drive`, quinn-proto `Pair` style), the fake
//!   store, daemon crashes and `Release::restore`.
//! - `check.rs`: the invariants of the whole life, checked after every action
//!   and every step; `traffic.rs`: those of the rollout (the traffic part).
//!
//! Run it with `cargo test -p cutover-sim`; `README.md` says how to replay a
//! seed and explore more.

pub mod check;
pub mod observe;
pub mod schedule;
pub mod sim;
pub mod table;
pub mod traffic;
pub mod world;

use std::collections::BTreeMap;
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

pub use schedule::Schedule;
pub use sim::{Failure, OutcomeKind, Report, Sim};

/// Schedules a plain `cargo test` explores.
pub const SCHEDULES_DEFAULT: u64 = 10_000;

/// How a run is configured from the environment.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunConfig {
    /// `CUTOVER_SIM_SEED`: replay this one seed, verbosely.
    pub seed: Option<u64>,
    /// `CUTOVER_SIM_SCHEDULES`: how many seeds to explore.
    pub schedules: u64,
    /// `CUTOVER_SIM_BASE`: the first seed explored.
    pub base: u64,
}

impl RunConfig {
    /// Reads `CUTOVER_SIM_SEED`, `CUTOVER_SIM_SCHEDULES`, `CUTOVER_SIM_BASE`.
    pub fn from_env() -> Result<RunConfig, String> {
        let var = |name: &str| -> Result<Option<u64>, String> {
            match std::env::var(name) {
                Ok(v) => v
                    .trim()
                    .parse()
                    .map(Some)
                    .map_err(|e| format!("{name}={v:?}: {e}")),
                Err(_) => Ok(None),
            }
        };
        Ok(RunConfig {
            seed: var("CUTOVER_SIM_SEED")?,
            schedules: var("CUTOVER_SIM_SCHEDULES")?.unwrap_or(SCHEDULES_DEFAULT),
            base: var("CUTOVER_SIM_BASE")?.unwrap_or(0),
        })
    }
}

/// Runs the schedule of one seed to the end.
pub fn run_seed(seed: u64) -> Result<Report, Failure> {
    Sim::new(seed).drive()
}

/// What many runs added up to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Totals {
    /// Schedules run to the end.
    pub schedules: u64,
    /// Steps, over all of them.
    pub steps: u64,
    /// Invariants evaluated.
    pub checks: u64,
    /// Outcomes: succeeded.
    pub succeeded: u64,
    /// Outcomes: rolled back.
    pub rolled_back: u64,
    /// Outcomes: failed (kept the new release somewhere).
    pub failed: u64,
    /// Outcomes: ended before anything started.
    pub not_started: u64,
    /// Rollbacks an operator asked for during the window.
    pub rollbacks: u64,
    /// Saves answered `SaveFailed`.
    pub saves_failed: u64,
    /// Schedules where invariant (a) was waived for the known limit (a
    /// decision carried out after a held save, the world having changed).
    pub known_limits: u64,
    /// Daemon restarts.
    pub restarts: u64,
    /// Operator commands accepted.
    pub commands_accepted: u64,
    /// Operator commands refused.
    pub commands_refused: u64,
    /// Schedules that went through each feature (see [`Report::features`]).
    pub features: BTreeMap<&'static str, u64>,
}

impl Totals {
    /// Adds one run.
    pub fn add(&mut self, r: &Report) {
        self.schedules += 1;
        self.steps += r.steps;
        self.checks += r.checks;
        match OutcomeKind::from(&r.outcome) {
            OutcomeKind::Succeeded => self.succeeded += 1,
            OutcomeKind::RolledBack => self.rolled_back += 1,
            OutcomeKind::Failed => self.failed += 1,
            OutcomeKind::NotStarted => self.not_started += 1,
        }
        self.rollbacks += u64::from(r.rollback.is_some());
        self.saves_failed += r.saves_failed;
        self.known_limits += u64::from(r.known_limits > 0);
        self.restarts += r.restarts;
        self.commands_accepted += r.commands_accepted;
        self.commands_refused += r.commands_refused;
        for f in &r.features {
            *self.features.entry(f).or_default() += 1;
        }
    }

    /// How many schedules went through each feature, one line.
    pub fn coverage(&self) -> String {
        let parts: Vec<String> = self
            .features
            .iter()
            .map(|(f, n)| format!("{f} {n}"))
            .collect();
        format!("coverage (schedules): {}", parts.join(", "))
    }

    fn merge(&mut self, o: &Totals) {
        self.schedules += o.schedules;
        self.steps += o.steps;
        self.checks += o.checks;
        self.succeeded += o.succeeded;
        self.rolled_back += o.rolled_back;
        self.failed += o.failed;
        self.not_started += o.not_started;
        self.rollbacks += o.rollbacks;
        self.saves_failed += o.saves_failed;
        self.known_limits += o.known_limits;
        self.restarts += o.restarts;
        self.commands_accepted += o.commands_accepted;
        self.commands_refused += o.commands_refused;
        for (f, n) in &o.features {
            *self.features.entry(f).or_default() += n;
        }
    }
}

impl fmt::Display for Totals {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} schedules explored, {} steps, {} invariant checks; deploys: {} succeeded, {} rolled_back, {} failed, {} not_started; {} rollbacks; {} daemon restarts; {} failed saves; operator commands: {} accepted, {} refused; known limit met in {} schedules",
            self.schedules,
            self.steps,
            self.checks,
            self.succeeded,
            self.rolled_back,
            self.failed,
            self.not_started,
            self.rollbacks,
            self.restarts,
            self.saves_failed,
            self.commands_accepted,
            self.commands_refused,
            self.known_limits
        )
    }
}

/// Runs seeds `base..base + count` on every core; on failure, the failure of
/// the lowest failing seed (deterministic whatever the thread timing).
pub fn run_many(base: u64, count: u64) -> Result<Totals, Box<Failure>> {
    let threads = std::thread::available_parallelism()
        .map(|n| n.get() as u64)
        .unwrap_or(1)
        .clamp(1, count.max(1));
    let lowest_failing = AtomicU64::new(u64::MAX);
    let failures: Mutex<Vec<Failure>> = Mutex::new(Vec::new());
    let totals: Mutex<Totals> = Mutex::new(Totals::default());
    std::thread::scope(|scope| {
        for t in 0..threads {
            let (lowest_failing, failures, totals) = (&lowest_failing, &failures, &totals);
            scope.spawn(move || {
                let mut mine = Totals::default();
                let mut seed = base + t;
                while seed < base + count && seed < lowest_failing.load(Ordering::Relaxed) {
                    match run_seed(seed) {
                        Ok(report) => mine.add(&report),
                        Err(failure) => {
                            lowest_failing.fetch_min(seed, Ordering::Relaxed);
                            if let Ok(mut f) = failures.lock() {
                                f.push(failure);
                            }
                            break;
                        }
                    }
                    seed += threads;
                }
                if let Ok(mut all) = totals.lock() {
                    all.merge(&mine);
                }
            });
        }
    });
    let failures = failures.into_inner().unwrap_or_default();
    match failures.into_iter().min_by_key(|f| f.seed) {
        Some(f) => Err(Box::new(f)),
        None => Ok(totals.into_inner().unwrap_or_default()),
    }
}
