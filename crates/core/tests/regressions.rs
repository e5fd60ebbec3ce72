//! Bugs the simulation (`crates/sim`) found in the rollout machine, one test
//! each, named after the seed that found it. Replay the original with
//! `CUTOVER_SIM_SEED=N cargo test -p cutover-sim --test sim random_schedules -- --nocapture`.

mod common;

use common::*;
use cutover_core::{Action, Command, Input, Millis, Outcome, RestartPolicy, Stage, State, Status};

fn stable_health(run: &mut Run, service: &str, healthy: bool) -> Vec<Action> {
    run.input(Input::StableHealth {
        service: service.into(),
        healthy,
    })
}

/// Seed 11: `StableHealth` changed the state without persisting it. A daemon
/// restarted with `on_restart = "rollback"` then believed the old release
/// healthy and reverted onto it — no healthy instance left serving
/// (Flagger #1931, through a restart).
#[test]
fn sim_seed_11_old_release_health_is_persisted() {
    let mut run = Run::new(plan(vec![canary("web", &[10, 50, 100])]));
    run.start();
    run.started("web");

    let acts = stable_health(&mut run, "web", false);
    match &acts[..] {
        [Action::Persist(state)] => assert!(!state.services[0].stable_healthy),
        other => panic!("expected one Persist, got {other:?}"),
    }
    assert!(
        stable_health(&mut run, "web", false).is_empty(),
        "no news, nothing to persist"
    );

    // The daemon dies now and comes back rolling back.
    let after = run.restart(RestartPolicy::Rollback, &[], Millis(1_000));
    assert_eq!(after.table_actions(), ["web 10%", "promote web"]);
    assert_eq!(after.route("web"), Route::New);
    match after.outcome() {
        Some(Outcome::Failed { service, reason }) => {
            assert_eq!(service, "web");
            assert!(reason.contains("kept web"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// The state persisted between promoting the current service and beginning
/// the next one (or finishing): `current` points at a promoted service.
fn persisted_just_after_promoting(run: &Run, service: usize) -> State {
    run.actions
        .iter()
        .find_map(|a| match a {
            Action::Persist(s)
                if s.current == service && s.services[service].stage == Stage::Promoted =>
            {
                Some(s.clone())
            }
            _ => None,
        })
        .expect("a persist right after the promote")
}

/// Seed 8: the daemon died between promoting a service and beginning the
/// next one (or finishing). Restored with `resume`, the machine sat on a
/// promoted current service: no timeout, nothing asked, never finished.
#[test]
fn sim_seed_8_resume_after_promote_goes_on_to_the_next_service_or_finishes() {
    // Not the last service: the next one begins.
    let mut run = Run::new(plan(vec![blue_green("api"), blue_green("web")]));
    run.start();
    run.started("api");
    let mut crashed = run;
    crashed.store = Some(persisted_just_after_promoting(&crashed, 0));
    let mut after = crashed.restart(RestartPolicy::Resume, &[], Millis(1_000));
    assert!(
        after.actions.contains(&Action::StartInstances {
            service: "web".into()
        }),
        "{:?}",
        after.actions
    );
    after.started("web");
    assert_eq!(after.outcome(), Some(Outcome::Succeeded));

    // The last service: the rollout finishes.
    let mut run = Run::new(plan(vec![blue_green("api")]));
    run.start();
    run.started("api");
    let mut crashed = run;
    crashed.store = Some(persisted_just_after_promoting(&crashed, 0));
    let after = crashed.restart(RestartPolicy::Resume, &[], Millis(1_000));
    assert_eq!(after.outcome(), Some(Outcome::Succeeded));
    assert!(after.rollout.is_finished());
}

/// Seed 257: a persisted state can say "check asked, not answered" (or
/// "analysis asked") — here a `StableHealth` persist while a fast check was
/// in flight. The answer dies with the daemon; restored, the machine never
/// asked again: the fast check stopped for the rest of the step.
#[test]
fn sim_seed_257_a_restore_asks_again_what_the_dead_daemon_was_waiting_for() {
    let mut run = Run::new(plan(vec![canary("web", &[10, 50, 100])]));
    run.start();
    run.started("web");
    let acts = run.tick();
    assert!(acts.iter().any(|a| matches!(a, Action::Check { .. })));
    stable_health(&mut run, "web", false); // persisted while the check is in flight
    stable_health(&mut run, "web", true);
    assert!(run.store.as_ref().is_some_and(|s| s.services[0].checking));

    let mut after = run.restart(RestartPolicy::Resume, &[], Millis(1_000));
    assert!(after.timeout.is_some(), "restored, it must wake up again");
    let acts = after.tick();
    assert!(
        acts.iter().any(|a| matches!(a, Action::Check { .. })),
        "{acts:?}"
    );

    // The same with the step's analysis in flight.
    let mut run = Run::new(plan(vec![canary("web", &[10, 50, 100])]));
    run.start();
    run.started("web");
    assert!(run.until_analysis("web", healthy()).is_none());
    stable_health(&mut run, "web", false);
    assert!(run.store.as_ref().is_some_and(|s| matches!(
        s.services[0].stage,
        Stage::Stepping {
            analyzing: true,
            ..
        }
    )));
    let mut after = run.restart(RestartPolicy::Resume, &[], Millis(1_000));
    let acts = after.tick();
    assert!(
        acts.iter().any(|a| matches!(a, Action::Analyze { .. })),
        "{acts:?}"
    );
}

/// Seed 543: an operator paused a step while its analysis was in flight; the
/// answer then moved the paused rollout on (to the next step, or into the
/// inconclusive policy's own pause with a fresh step's wait). Pausing now
/// drops the analysis in flight; the step is analysed again on resume.
#[test]
fn sim_seed_543_pause_holds_against_an_analysis_in_flight() {
    let mut run = Run::new(plan(vec![canary("web", &[10, 50, 100])]));
    run.start();
    run.started("web");
    assert!(run.until_analysis("web", healthy()).is_none());
    run.command(Command::Pause).expect("at a step");

    let acts = run.input(Input::Analysis {
        service: "web".into(),
        canary: healthy(),
        stable: healthy(),
    });
    assert!(
        acts.is_empty(),
        "the answer must not move a paused step: {acts:?}"
    );
    assert_eq!(run.rollout.state().status, Status::Paused);
    assert_eq!(run.route("web"), Route::Split(1_000));

    run.command(Command::Resume).expect("paused");
    let resumed_at = run.now;
    run.step("web", healthy(), healthy());
    assert_eq!(
        run.now, resumed_at,
        "analysed again at once: its time was up"
    );
    assert_eq!(run.route("web"), Route::Split(5_000));
}
