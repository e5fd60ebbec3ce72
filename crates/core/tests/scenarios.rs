//! Scenarios of the rollout machine, driven by hand as the runtime would:
//! drain after every input, carry out the actions in order, answer what is
//! asked, tick at the timeout. `common` keeps the clock and a fake table.

mod common;

use common::*;
use cutover_core::{
    Action, Command, InconclusivePolicy, Input, Millis, Outcome, RestartPolicy, Stats, Status,
    Strategy, Verdict,
};

fn set_inconclusive(plan: &mut cutover_core::Plan, policy: InconclusivePolicy) {
    for s in &mut plan.services {
        if let Strategy::Canary(spec) = &mut s.strategy {
            spec.on_inconclusive = policy;
        }
    }
}

/// The canary window of every analysis asked for, in order.
fn canary_windows(run: &Run) -> Vec<Millis> {
    run.actions
        .iter()
        .filter_map(|a| match a {
            Action::Analyze { canary_window, .. } => Some(*canary_window),
            _ => None,
        })
        .collect()
}

#[test]
fn good_canary_walks_every_step_and_succeeds() {
    let mut run = Run::new(plan(vec![
        blue_green("api"),
        canary("web", &[5, 25, 50, 100]),
    ]));
    let acts = run.start();
    assert!(
        matches!(acts[0], Action::Persist(_)),
        "persist first: {acts:?}"
    );
    assert_eq!(acts[1..], [start("api")]);
    run.started("api");
    run.started("web");
    for _ in 0..4 {
        run.step("web", healthy(), healthy());
    }
    assert_eq!(
        run.table_actions(),
        [
            "promote api",
            "web 5%",
            "web 25%",
            "web 50%",
            "web 100%",
            "promote web"
        ]
    );
    assert_eq!(run.outcome(), Some(Outcome::Succeeded));
    assert_eq!(
        (run.route("api"), run.route("web")),
        (Route::New, Route::New)
    );
    // Each step was analysed after a full step of data, never earlier.
    assert!(
        canary_windows(&run).iter().all(|w| *w >= STEP),
        "{:?}",
        canary_windows(&run)
    );
}

fn start(service: &str) -> Action {
    Action::StartInstances {
        service: service.into(),
    }
}

#[test]
fn twenty_percent_errors_trip_the_fast_check_and_roll_everything_back_at_once() {
    let mut run = Run::new(plan(vec![
        blue_green("api"),
        canary("web", &[5, 25, 50, 100]),
    ]));
    run.start();
    run.started("api");
    run.started("web");
    run.step("web", healthy(), healthy()); // 5 % passes: 25 %
    assert_eq!(run.route("web"), Route::Split(2_500));

    let ended = run
        .until_analysis("web", stats(200, 40))
        .expect("the first check at 20 % errors ends the rollout");

    // One Revert per changed service, newest first; no weight walks back down
    // step by step (Argo Rollouts #2939).
    assert_eq!(table_actions(&ended), ["revert web", "revert api"]);
    let weights: Vec<u16> = run
        .actions
        .iter()
        .filter_map(|a| match a {
            Action::SetCanaryWeight { canary_bp, .. } => Some(*canary_bp),
            _ => None,
        })
        .collect();
    assert_eq!(weights, [500, 2_500]);
    match run.outcome() {
        Some(Outcome::RolledBack { service, reason }) => {
            assert_eq!(service, "web");
            assert!(reason.contains("abort_error_rate"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(
        (run.route("api"), run.route("web")),
        (Route::Old, Route::Old)
    );
}

#[test]
fn no_data_extends_the_step_then_fails_by_policy() {
    // Argo Rollouts #1466 / #4479: no data is neither a pass nor a failure.
    let mut run = Run::new(plan(vec![canary("web", &[10, 100])]));
    run.start();
    run.started("web");
    let nothing = Stats::default();
    run.step("web", nothing, healthy());
    run.step("web", nothing, healthy());
    assert!(
        !run.rollout.is_finished(),
        "two extensions (max_inconclusive = 2)"
    );
    assert_eq!(run.route("web"), Route::Split(1_000));
    run.step("web", nothing, healthy());

    let verdicts: Vec<&Verdict> = run
        .events
        .iter()
        .filter_map(|e| e.verdict.as_ref())
        .collect();
    assert_eq!(verdicts.len(), 3);
    assert!(
        verdicts
            .iter()
            .all(|v| matches!(v, Verdict::Inconclusive { .. }))
    );
    // Each extension is a whole step more of waiting for data.
    assert_eq!(
        canary_windows(&run),
        [STEP, Millis(2 * STEP.0), Millis(3 * STEP.0)]
    );
    match run.outcome() {
        Some(Outcome::RolledBack { service, reason }) => {
            assert_eq!(service, "web");
            assert!(
                reason.contains("inconclusive after 2 extensions"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(run.route("web"), Route::Old);
}

#[test]
fn no_data_extends_the_step_then_pauses_by_policy_until_an_operator_resumes() {
    let mut p = plan(vec![canary("web", &[10, 100])]);
    set_inconclusive(&mut p, InconclusivePolicy::Pause);
    let mut run = Run::new(p);
    run.start();
    run.started("web");
    for _ in 0..3 {
        run.step("web", Stats::default(), healthy());
    }
    assert_eq!(run.rollout.state().status, Status::Paused);
    assert_eq!(run.outcome(), None);
    assert_eq!(run.route("web"), Route::Split(1_000));

    // Paused: the fast check goes on, the step is not analysed.
    let acts: Vec<Action> = (0..20)
        .flat_map(|_| {
            let acts = run.tick();
            run.input(Input::Check {
                service: "web".into(),
                canary: Stats::default(),
            });
            acts
        })
        .collect();
    assert!(
        acts.iter().all(|a| matches!(a, Action::Check { .. })),
        "{acts:?}"
    );

    run.command(Command::Resume).expect("paused");
    run.step("web", healthy(), healthy());
    assert_eq!(run.route("web"), Route::Split(10_000));
    run.step("web", healthy(), healthy());
    assert_eq!(run.outcome(), Some(Outcome::Succeeded));
}

#[test]
fn rollback_keeps_the_new_release_where_the_old_one_has_no_healthy_instance() {
    // Flagger #1931: never stop the only healthy copy.
    let mut run = Run::new(plan(vec![canary("web", &[10, 50, 100])]));
    run.start();
    run.started("web");
    run.step("web", healthy(), healthy());
    run.input(Input::StableHealth {
        service: "web".into(),
        healthy: false,
    });
    let ended = run.step("web", stats(1_000, 50), healthy()); // 5 % > max 1 %

    assert_eq!(table_actions(&ended), ["promote web"]);
    assert_eq!(run.route("web"), Route::New);
    match run.outcome() {
        Some(Outcome::Failed { service, reason }) => {
            assert_eq!(service, "web");
            assert!(reason.contains("kept web on v2"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_failed_rollback_names_the_kept_service_and_reverts_the_others() {
    let mut run = Run::new(plan(vec![blue_green("api"), canary("web", &[10, 100])]));
    run.start();
    run.started("api");
    run.input(Input::StableHealth {
        service: "api".into(),
        healthy: false,
    });
    run.started("web");
    let ended = run.step("web", stats(1_000, 50), healthy());

    assert_eq!(table_actions(&ended), ["revert web", "promote api"]);
    assert_eq!(
        (run.route("api"), run.route("web")),
        (Route::New, Route::Old)
    );
    match run.outcome() {
        Some(Outcome::Failed { service, reason }) => {
            assert_eq!(service, "web");
            assert!(reason.contains("kept api"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn pause_holds_the_step_and_resume_gives_back_the_time_left() {
    let mut run = Run::new(plan(vec![canary("web", &[10, 50, 100])]));
    run.start();
    assert!(
        run.command(Command::Pause).is_err(),
        "nothing to pause while starting"
    );
    run.started("web");
    run.tick(); // 10 s into the step
    run.input(Input::Check {
        service: "web".into(),
        canary: healthy(),
    });
    run.command(Command::Pause).expect("at a step");
    assert!(run.command(Command::Pause).is_err(), "already paused");
    for _ in 0..30 {
        let acts = run.tick();
        assert!(
            !acts.iter().any(|a| matches!(a, Action::Analyze { .. })),
            "{acts:?}"
        );
        run.input(Input::Check {
            service: "web".into(),
            canary: healthy(),
        });
    }
    let resumed_at = run.now;
    run.command(Command::Resume).expect("paused");
    assert!(run.command(Command::Resume).is_err(), "not paused any more");
    run.until_analysis("web", healthy());
    // 50 s were left in the step when it was paused.
    assert_eq!(run.now, resumed_at.after(Millis(50_000)));
}

#[test]
fn promote_moves_one_step_and_promote_full_goes_to_one_hundred_percent() {
    let mut run = Run::new(plan(vec![
        canary("web", &[10, 50, 100]),
        blue_green("worker"),
    ]));
    run.start();
    assert!(run.command(Command::Promote { full: false }).is_err());
    run.started("web");
    let acts = run
        .command(Command::Promote { full: false })
        .expect("at a step");
    assert_eq!(table_actions(&acts), ["web 50%"]);
    let acts = run
        .command(Command::Promote { full: true })
        .expect("at a step");
    assert_eq!(table_actions(&acts), ["promote web"]);
    assert!(
        acts.contains(&start("worker")),
        "the next service begins: {acts:?}"
    );
    run.started("worker");
    assert_eq!(run.outcome(), Some(Outcome::Succeeded));
    assert!(
        run.command(Command::Abort {
            reason: "late".into()
        })
        .is_err()
    );
}

#[test]
fn abort_rolls_back_now() {
    let mut run = Run::new(plan(vec![blue_green("api"), canary("web", &[10, 50, 100])]));
    run.start();
    run.started("api");
    run.started("web");
    let acts = run
        .command(Command::Abort {
            reason: "the graphs look wrong".into(),
        })
        .expect("abort applies");
    assert_eq!(table_actions(&acts), ["revert web", "revert api"]);
    match run.outcome() {
        Some(Outcome::RolledBack { service, reason }) => {
            assert_eq!(service, "web");
            assert_eq!(reason, "aborted: the graphs look wrong");
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn when_the_second_service_fails_the_first_is_reverted_too() {
    let mut run = Run::new(plan(vec![
        canary("api", &[50, 100]),
        canary("web", &[10, 100]),
    ]));
    run.start();
    run.started("api");
    run.step("api", healthy(), healthy());
    run.step("api", healthy(), healthy());
    assert_eq!(run.route("api"), Route::New);
    run.started("web");
    let ended = run.step("web", stats(1_000, 50), healthy()); // 5 % errors: analysis fails

    assert_eq!(table_actions(&ended), ["revert web", "revert api"]);
    assert_eq!(
        (run.route("api"), run.route("web")),
        (Route::Old, Route::Old)
    );
    match run.outcome() {
        Some(Outcome::RolledBack { service, reason }) => {
            assert_eq!(service, "web");
            assert!(reason.contains("max_error_rate"), "{reason}");
        }
        other => panic!("{other:?}"),
    }
}

/// api promoted, web at 25 %: where the daemon dies in the restore tests.
fn half_way() -> Run {
    let mut run = Run::new(plan(vec![blue_green("api"), canary("web", &[5, 25, 100])]));
    run.start();
    run.started("api");
    run.started("web");
    run.step("web", healthy(), healthy());
    assert_eq!(run.route("web"), Route::Split(2_500));
    run
}

#[test]
fn restore_with_resume_reapplies_the_table_and_continues() {
    let before = half_way();
    let mut run = before.restart(RestartPolicy::Resume, &[], Millis(5_000));
    assert_eq!(run.table_actions(), ["promote api", "web 25%"]);
    assert!(run.events.iter().any(|e| e.kind == "resumed"));
    run.step("web", healthy(), healthy());
    run.step("web", healthy(), healthy());
    assert_eq!(run.outcome(), Some(Outcome::Succeeded));
}

#[test]
fn restore_with_rollback_reverts_everything() {
    let run = half_way().restart(RestartPolicy::Rollback, &[], Millis(5_000));
    // Straight back: the forward table is not re-applied first.
    assert_eq!(run.table_actions(), ["revert web", "revert api"]);
    assert_eq!(
        (run.route("api"), run.route("web")),
        (Route::Old, Route::Old)
    );
    match run.outcome() {
        Some(Outcome::RolledBack { reason, .. }) => {
            assert!(reason.contains("daemon restarted"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn restore_with_a_gone_service_reverts_even_when_resuming() {
    let run = half_way().restart(RestartPolicy::Resume, &["web"], Millis(5_000));
    assert_eq!(run.table_actions(), ["revert web", "revert api"]);
    match run.outcome() {
        Some(Outcome::RolledBack { service, reason }) => {
            assert_eq!(service, "web");
            assert!(
                reason.contains("new instances of web were gone"),
                "{reason}"
            );
        }
        other => panic!("{other:?}"),
    }
}
