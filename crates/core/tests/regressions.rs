//! Bugs the simulation (`crates/sim`) found in the rollout and release
//! machines, one test each, named after the seed that found it. Replay the
//! original with
//! `CUTOVER_SIM_SEED=N cargo test -p cutover-sim --test sim random_schedules -- --nocapture`
//! (with the fix reverted: a seed means something only with the
//! `schedule.rs` of its time; the seeds of the release tests are today's).

mod common;

use common::*;
use cutover_core::{
    Action, Command, Input, Millis, Outcome, Phase, ReleaseAction, ReleaseInput, RestartPolicy,
    Stage, State, Status,
};

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
    assert_eq!(after.table_actions(), ["promote web"]);
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

// ---- the whole life (`Release`) ------------------------------------------------

fn retire(keep: &str, services: &[&str]) -> ReleaseAction {
    ReleaseAction::Retire {
        keep: Some(keep.into()),
        services: services.iter().map(|s| s.to_string()).collect(),
    }
}

fn start(service: &str) -> ReleaseAction {
    ReleaseAction::Rollout(Action::StartInstances {
        service: service.into(),
    })
}

/// Seed 453: a rollback restored while it probed the previous release had no
/// rollout: when the probe said "not warm", it went to `Rolling` and fed its
/// start to nothing — stuck for ever, its lock never released.
#[test]
fn sim_seed_453_a_rollback_restored_while_probing_can_still_go_cold() {
    let mut run = ReleaseRun::new(rollback(&["api", "web"]));
    run.input(ReleaseInput::Start);
    assert_eq!(
        run.store.as_ref().map(|s| &s.phase),
        Some(&Phase::ProbeWarm)
    );

    let mut after = run.restart(&[], Millis(1_000));
    assert!(
        after.actions.contains(&ReleaseAction::ProbeWarm {
            version: "v1".into()
        }),
        "the probe is asked again: {:?}",
        after.actions
    );
    let acts = after.input(ReleaseInput::WarmProbed { ready: false });
    assert!(acts.contains(&start("api")), "{acts:?}");
    assert_eq!(
        after.store.as_ref().map(|s| &s.phase),
        Some(&Phase::Rolling)
    );
}

/// Seed 119: the old release lost its health during the backup; the release
/// dropped the news (only a rolling release passed rollout inputs on), so
/// its rollout began believing the old release healthy and a rollback
/// reverted onto it — no healthy instance left serving (Flagger #1931).
#[test]
fn sim_seed_119_old_release_health_before_the_rollout_reaches_it() {
    let mut run = ReleaseRun::new(deploy(
        vec![blue_green("api"), blue_green("web")],
        true,
        false,
    ));
    run.input(ReleaseInput::Start);
    run.rollout(Input::StableHealth {
        service: "api".into(),
        healthy: false,
    });
    let acts = run.input(ReleaseInput::BackupDone(Ok(())));
    assert!(acts.contains(&start("api")), "{acts:?}");
    let saved = run.store.as_ref().and_then(|s| s.rollout.as_ref());
    assert_eq!(
        saved.map(|r| r.services[0].stable_healthy),
        Some(false),
        "the rollout starts knowing"
    );

    run.rollout(Input::Started {
        service: "api".into(),
    });
    let acts = run.rollout(Input::StartFailed {
        service: "web".into(),
        reason: "exit 1".into(),
    });
    assert!(
        !acts.contains(&ReleaseAction::Rollout(Action::Revert {
            service: "api".into()
        })),
        "api must keep the new release: {acts:?}"
    );
    assert!(
        matches!(
            run.store.as_ref().and_then(|s| s.outcome.clone()),
            Some(Outcome::Failed { reason, .. }) if reason.contains("kept api")
        ),
        "{:?}",
        run.store
    );
}

/// Seed 1114: a restore that rolls back (here: api's new instances were gone)
/// first re-applied the forward table — `Promote api` onto instances that
/// were gone — and only reverted after the rollback's persist, which the
/// save gate may hold for as long as the store is down.
#[test]
fn sim_seed_1114_a_restore_that_rolls_back_does_not_reapply_forward_first() {
    let mut run = Run::new(plan(vec![blue_green("api"), canary("web", &[5, 25, 100])]));
    run.start();
    run.started("api");
    run.started("web");
    let after = run.restart(RestartPolicy::Resume, &["api"], Millis(5_000));
    let first_persist = after
        .actions
        .iter()
        .position(|a| matches!(a, Action::Persist(_)))
        .expect("the rollback persists");
    assert!(
        table_actions(&after.actions[..first_persist]).is_empty(),
        "{:?}",
        after.actions
    );
    assert_eq!(after.table_actions(), ["revert web", "revert api"]);
}

/// Seed 2166: the daemon died between saving a release as done and carrying
/// out its `Conclude`; restored, a done release re-issued nothing: the
/// deployment's outcome was never recorded and its lock never released.
#[test]
fn sim_seed_2166_a_release_restored_done_concludes_again() {
    let mut run = ReleaseRun::new(deploy(vec![blue_green("api")], true, false));
    run.input(ReleaseInput::Start);
    run.input(ReleaseInput::BackupDone(Err(
        "pg_dump: connection refused".into()
    )));
    assert_eq!(run.store.as_ref().map(|s| &s.phase), Some(&Phase::Done));

    let after = run.restart(&[], Millis(1_000));
    assert!(
        matches!(
            after.actions.as_slice(),
            [ReleaseAction::Conclude(Outcome::NotStarted { .. })]
        ),
        "{:?}",
        after.actions
    );
    assert!(after.release.is_done());
}

/// Seed 620: a cold rollback that failed retired `v1` only where it had
/// reverted; the services it never reached kept the warm `v1` of the deploy
/// it superseded, which nothing else retires (a leak).
#[test]
fn sim_seed_620_a_failed_rollback_retires_the_warm_release_everywhere() {
    let mut run = ReleaseRun::new(rollback(&["api", "web", "worker"]));
    run.input(ReleaseInput::Start);
    run.input(ReleaseInput::WarmProbed { ready: false });
    run.rollout(Input::Started {
        service: "api".into(),
    });
    let acts = run.rollout(Input::StartFailed {
        service: "web".into(),
        reason: "exit 1".into(),
    });
    assert!(
        acts.contains(&retire("v2", &["api", "web", "worker"])),
        "{acts:?}"
    );
    assert_eq!(run.serving, None, "v2 still serves");
}

/// Seed 9: a rollback aborted before it rolled ended "not started" and
/// retired nothing: the warm `v1` the superseded deploy left to it ran for
/// ever (a leak).
#[test]
fn sim_seed_9_an_aborted_rollback_retires_the_warm_release() {
    let mut run = ReleaseRun::new(rollback(&["api", "web"]));
    run.input(ReleaseInput::Start);
    let acts = run
        .command(Command::Abort {
            reason: "changed my mind".into(),
        })
        .expect("abort applies before the rollout");
    assert!(acts.contains(&retire("v2", &["api", "web"])), "{acts:?}");
    assert!(matches!(
        run.store.as_ref().and_then(|s| s.outcome.clone()),
        Some(Outcome::NotStarted { .. })
    ));
    run.input(ReleaseInput::Retired);
    assert!(run.release.is_done());
}
