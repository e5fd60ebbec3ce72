//! The gate before the switch (`switch = "manual"`): a service's new
//! instances start and become healthy, then the rollout holds with no
//! traffic moved until `Command::Switch`; `Abort` from the hold goes back
//! without any traffic ever reaching the new release; a restart holds again,
//! whatever `on_daemon_restart` says.

mod common;

use common::*;
use cutover_core::{
    Action, Command, EventKind, Input, Millis, Outcome, RestartPolicy, ServicePlan, Stage, Status,
};

fn manual(mut s: ServicePlan) -> ServicePlan {
    s.manual_switch = true;
    s
}

fn start(service: &str) -> Action {
    Action::StartInstances {
        service: service.into(),
    }
}

/// A held blue-green service: started, healthy, no table action.
fn held_blue_green() -> Run {
    let mut run = Run::new(plan(vec![manual(blue_green("web"))]));
    run.start();
    let acts = run.started("web");
    assert!(
        acts.iter().all(|a| matches!(a, Action::Persist(_))),
        "only a persist when the hold begins: {acts:?}"
    );
    assert_eq!(run.rollout.awaiting_switch(), Some("web"));
    assert_eq!(
        run.store.as_ref().map(|s| s.services[0].stage.clone()),
        Some(Stage::AwaitingSwitch),
        "the hold is saved"
    );
    run
}

#[test]
fn blue_green_holds_with_no_traffic_moved_until_switch_then_switches_at_once() {
    let mut run = held_blue_green();
    assert!(
        run.events
            .iter()
            .any(|e| e.kind == EventKind::AwaitingSwitch && e.message.contains("cutover switch")),
        "an event says it holds and what to run: {:?}",
        run.events
    );
    // Time passes: no timeout, nothing moves by itself.
    assert_eq!(run.timeout, None, "no timeout by default");
    run.now = run.now.after(Millis(24 * 3_600_000));
    let acts = run.input(Input::Tick);
    assert!(acts.is_empty(), "{acts:?}");
    assert!(run.table_actions().is_empty());
    assert_eq!(run.route("web"), Route::Old);
    // Other commands do not move it either.
    assert!(run.command(Command::Promote { full: true }).is_err());
    assert!(run.command(Command::Pause).is_err());
    assert_eq!(run.route("web"), Route::Old);

    run.command(Command::Switch).expect("switch accepted");
    assert_eq!(run.table_actions(), ["promote web"]);
    assert_eq!(run.outcome(), Some(Outcome::Succeeded));
    assert_eq!(run.rollout.awaiting_switch(), None);
}

#[test]
fn a_canary_holds_before_its_first_step_and_switch_continues_with_its_steps() {
    let mut run = Run::new(plan(vec![manual(canary("web", &[10, 100]))]));
    run.start();
    run.started("web");
    assert_eq!(run.rollout.awaiting_switch(), Some("web"));
    assert!(
        run.table_actions().is_empty(),
        "no weight before the switch"
    );
    assert_eq!(run.timeout, None, "no analysis or check while held");
    run.command(Command::Switch).expect("switch accepted");
    assert_eq!(run.table_actions(), ["web 10%"]);
    run.step("web", healthy(), healthy());
    run.step("web", healthy(), healthy());
    assert_eq!(run.table_actions(), ["web 10%", "web 100%", "promote web"]);
    assert_eq!(run.outcome(), Some(Outcome::Succeeded));
}

#[test]
fn switch_is_refused_with_the_state_when_nothing_awaits_it() {
    // Still starting.
    let mut run = Run::new(plan(vec![manual(blue_green("web"))]));
    run.start();
    let refused = run.command(Command::Switch).expect_err("still starting");
    assert!(refused.0.contains("still starting"), "{refused}");
    // Automatic: at a canary step.
    let mut run = Run::new(plan(vec![canary("web", &[10, 100])]));
    run.start();
    run.started("web");
    let refused = run.command(Command::Switch).expect_err("not held");
    assert!(
        refused.0.contains("nothing awaits the switch") && refused.0.contains("step 1 (10%"),
        "{refused}"
    );
    // Over.
    let mut run = held_blue_green();
    run.command(Command::Switch).expect("switch");
    let refused = run.command(Command::Switch).expect_err("over");
    assert!(refused.0.contains("already over"), "{refused}");
}

#[test]
fn abort_while_held_reverts_without_any_traffic_on_the_new_release() {
    let mut run = held_blue_green();
    run.command(Command::Abort {
        reason: "smoke test failed".into(),
    })
    .expect("abort accepted");
    // Only a revert: the new instances were never on a track.
    assert_eq!(run.table_actions(), ["revert web"]);
    assert_eq!(run.route("web"), Route::Old);
    assert!(matches!(
        run.outcome(),
        Some(Outcome::RolledBack { reason, .. }) if reason.contains("smoke test failed")
    ));
    // Even with no healthy old release, a held service never "keeps" the new one.
    let mut run = Run::with_previous(plan(vec![manual(blue_green("web"))]), &[false]);
    run.start();
    run.started("web");
    run.command(Command::Abort {
        reason: "no".into(),
    })
    .expect("abort accepted");
    assert_eq!(run.table_actions(), ["revert web"]);
}

#[test]
fn a_new_instance_that_fails_while_held_ends_the_rollout_before_any_switch() {
    let mut run = held_blue_green();
    run.input(Input::NewUnhealthy {
        service: "web".into(),
        reason: "health check failed".into(),
    });
    assert_eq!(run.table_actions(), ["revert web"]);
    assert!(matches!(run.outcome(), Some(Outcome::RolledBack { .. })));
}

#[test]
fn restore_while_held_re_issues_the_starts_and_holds_again_whatever_the_policy() {
    for policy in [RestartPolicy::Rollback, RestartPolicy::Resume] {
        for gone in [&[][..], &["web"][..]] {
            let run = held_blue_green();
            let mut restored = run.restart(policy, gone, Millis(5_000));
            assert!(
                matches!(&restored.actions[..], [Action::Persist(s), a] if s.services[0].stage == Stage::Starting && *a == start("web")),
                "{policy:?}, gone {gone:?}: saved as starting again, then the start; no table action: {:?}",
                restored.actions
            );
            // Until the instances are known healthy again, no switch.
            assert_eq!(restored.rollout.awaiting_switch(), None);
            let refused = restored
                .command(Command::Switch)
                .expect_err("not healthy yet");
            assert!(refused.0.contains("still starting"), "{refused}");
            assert!(
                restored
                    .events
                    .iter()
                    .any(|e| e.kind == EventKind::AwaitingSwitch),
                "{:?}",
                restored.events
            );
            // The start answers: held again, nothing moves.
            let acts = restored.started("web");
            assert!(
                acts.iter().all(|a| matches!(a, Action::Persist(_))),
                "{acts:?}"
            );
            assert_eq!(restored.rollout.awaiting_switch(), Some("web"));
            assert_eq!(restored.route("web"), Route::Old);
            assert_eq!(restored.rollout.state().status, Status::Running);
            // A start that fails after the restart ends it (no traffic moved).
            let mut failed = run.restart(policy, gone, Millis(5_000));
            failed.input(Input::StartFailed {
                service: "web".into(),
                reason: "port taken".into(),
            });
            assert_eq!(failed.table_actions(), ["revert web"]);
            // Switch still works after the restart.
            restored.command(Command::Switch).expect("switch");
            assert_eq!(restored.table_actions(), ["promote web"]);
            assert_eq!(restored.outcome(), Some(Outcome::Succeeded));
        }
    }
}

#[test]
fn an_earlier_service_switches_by_itself_and_the_manual_one_holds() {
    let mut run = Run::new(plan(vec![
        blue_green("api"),
        manual(canary("web", &[50, 100])),
    ]));
    run.start();
    run.started("api");
    assert_eq!(run.table_actions(), ["promote api"]);
    assert_eq!(run.actions.last(), Some(&start("web")));
    run.started("web");
    assert_eq!(run.rollout.awaiting_switch(), Some("web"));
    // Abort from the hold: both go back, newest first.
    run.command(Command::Abort { reason: "x".into() })
        .expect("abort");
    assert_eq!(
        run.table_actions(),
        ["promote api", "revert web", "revert api"]
    );
}

#[test]
fn a_plan_saved_before_the_gate_existed_switches_by_itself() {
    let json = r#"{"name":"web","strategy":{"kind":"blue-green"}}"#;
    let sp: ServicePlan = serde_json::from_str(json).expect("an old saved plan reads");
    assert!(!sp.manual_switch);
}
