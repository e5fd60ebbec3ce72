//! The simulation's tests: random schedules from a base seed, one seed
//! replayed from `CUTOVER_SIM_SEED`, and a fixed list of seeds that always run.

use cutover_sim::{RunConfig, Sim, Totals, run_many, run_seed};

/// Seeds that always run in CI. The first four found bugs in the core (see
/// `crates/core/tests/regressions.rs`); the others were picked for what they
/// go through (crashes mid-drain and during recovery, gone instances, lost
/// tables, inconclusive pauses, kept releases, every outcome). A seed means
/// something only with today's `schedule.rs`: re-pick them when it changes.
const FIXED_SEEDS: [u64; 20] = [
    8,    // daemon dies between promoting the last service and finishing
    11,   // old release unhealthy, not persisted, lost in a restart
    257,  // restored while a fast check was in flight: the check stopped
    543,  // paused while an analysis was in flight: the answer moved it on
    80,   // old release down; a restart rolls back and keeps the new one (Failed)
    405,  // two restarts, operator pause and promotes, inconclusive pauses
    487,  // new instances gone at a restart: rolled back; restored twice after
    698,  // inconclusive pauses resumed and promoted, then too little data
    743,  // operator and inconclusive pauses, promoted through; restored after
    1211, // operator pause and promotes, analysis fails, dies twice in recovery
    1268, // a start fails; an earlier first release (nothing old) is kept
    1293, // too little data on a later service; three restarts
    1325, // analysis fails while an earlier service's old release is down
    1343, // succeeds; restored after the end, once with gone instances
    1582, // a new instance crashes with nothing old to go back to (Failed)
    1727, // four restarts, operator and inconclusive pauses, succeeds
    1959, // fast check fails
    1980, // a new instance crashes: rolled back
    1988, // fast check fails on 4 requests (a low min_requests)
    1995, // the first service's new instances do not start
];

#[test]
fn random_schedules() {
    let config = RunConfig::from_env().expect("CUTOVER_SIM_* variables");
    if let Some(seed) = config.seed {
        let mut sim = Sim::new(seed).verbose();
        eprintln!("seed {seed}: {:#?}", sim.schedule());
        match sim.drive() {
            Ok(report) => eprintln!(
                "seed {seed}: {:?} after {} steps",
                report.outcome, report.steps
            ),
            Err(failure) => panic!("{failure}"),
        }
        return;
    }
    match run_many(config.base, config.schedules) {
        Ok(totals) => {
            eprintln!(
                "cutover-sim: seeds {}..{}: {totals}",
                config.base,
                config.base + config.schedules
            );
            eprintln!("cutover-sim: {}", totals.coverage());
            assert_eq!(totals.schedules, config.schedules);
            if config.schedules >= 500 {
                not_vacuous(&totals);
            }
        }
        Err(failure) => panic!("{failure}"),
    }
}

/// Schedules that never roll back, never restart or never hear from an
/// operator test nothing: they must reach every kind of ending and every
/// kind of trouble.
fn not_vacuous(t: &Totals) {
    assert!(t.succeeded > 0, "{t}");
    assert!(t.rolled_back > 0, "{t}");
    assert!(t.failed > 0, "{t}");
    assert!(t.commands_accepted > 0 && t.commands_refused > 0, "{t}");
    for feature in [
        "analysis-failed",
        "crash:after-finish",
        "crash:during-recovery",
        "crash:mid-drain",
        "extended",
        "fast-check-failed",
        "gone",
        "kept-new",
        "new-unhealthy",
        "old-unhealthy",
        "operator-unpause",
        "paused:inconclusive",
        "paused:operator",
        "restore:resume",
        "restore:rollback",
        "start-failed",
        "table-lost",
    ] {
        assert!(
            t.features.get(feature).is_some_and(|&n| n > 0),
            "no schedule reached {feature}: {}",
            t.coverage()
        );
    }
}

#[test]
fn fixed_seeds() {
    for seed in FIXED_SEEDS {
        if let Err(failure) = run_seed(seed) {
            panic!("{failure}");
        }
    }
}

#[test]
fn a_seed_replays_exactly() {
    for seed in [3, 11] {
        let a = run_seed(seed).map_err(|f| f.to_string());
        let b = run_seed(seed).map_err(|f| f.to_string());
        let key = |r: &Result<cutover_sim::Report, String>| {
            r.as_ref()
                .map(|r| (format!("{:?}", r.outcome), r.steps, r.checks, r.ended_at))
                .map_err(Clone::clone)
        };
        assert_eq!(key(&a), key(&b), "seed {seed}");
    }
}
