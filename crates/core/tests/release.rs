//! The release machine's whole life, step by step: what it asks for, in which
//! order, what it does when a save fails, and what a restored machine does
//! in each phase.

use cutover_core::{
    Action, Command, ContractTarget, Input, Millis, Outcome, Phase, Plan, Release, ReleaseAction,
    ReleaseInput, ReleaseKind, ReleaseOutput, ReleasePlan, ReleaseState, RestartPolicy,
    ServicePlan, Strategy,
};

fn plan(kind: ReleaseKind, window: u64, migrate: bool) -> ReleasePlan {
    ReleasePlan {
        kind,
        rollout: Plan {
            version: "v2".into(),
            previous_version: Some("v1".into()),
            services: vec![ServicePlan {
                name: "web".into(),
                strategy: Strategy::BlueGreen,
                manual_switch: false,
            }],
            on_restart: RestartPolicy::Rollback,
        },
        backup: migrate,
        migrate,
        rollback_window: Millis(window),
        contract: if migrate {
            vec![ContractTarget {
                database: "main".into(),
                upto: 3,
            }]
        } else {
            Vec::new()
        },
        approval: None,
    }
}

/// Drains the machine; every `Persist` is answered `Saved` (or with
/// `save` when given). Returns the actions, events as `event:KIND`.
fn drain(r: &mut Release, now: u64, mut save: impl FnMut() -> ReleaseInput) -> Vec<String> {
    let mut seen = Vec::new();
    for _ in 0..200 {
        match r.poll_output() {
            ReleaseOutput::Action(a) => {
                seen.push(name(&a));
                if matches!(a, ReleaseAction::Persist { .. }) {
                    r.handle_input(Millis(now), save());
                }
            }
            ReleaseOutput::Event(e) => seen.push(format!("event:{}", e.kind)),
            ReleaseOutput::Timeout(_) | ReleaseOutput::Idle => return seen,
        }
    }
    panic!("the machine never stopped talking: {seen:?}");
}

fn saved() -> ReleaseInput {
    ReleaseInput::Saved
}

fn name(a: &ReleaseAction) -> String {
    match a {
        ReleaseAction::Persist { state, serving } => match serving {
            Some(v) => format!("persist:{}+serving={v}", phase(&state.phase)),
            None => format!("persist:{}", phase(&state.phase)),
        },
        ReleaseAction::Rollout(Action::StartInstances { service }) => format!("start:{service}"),
        ReleaseAction::Rollout(Action::Promote { service }) => format!("promote:{service}"),
        ReleaseAction::Rollout(Action::Revert { service }) => format!("revert:{service}"),
        ReleaseAction::Rollout(other) => format!("rollout:{other:?}"),
        ReleaseAction::Backup => "backup".into(),
        ReleaseAction::Expand => "expand".into(),
        ReleaseAction::ProbeWarm { version } => format!("probe:{version}"),
        ReleaseAction::SwitchTo { version } => format!("switch:{version}"),
        ReleaseAction::Conclude(o) => format!("conclude:{}", outcome(o)),
        ReleaseAction::Retire { keep, services } => {
            format!(
                "retire:keep={}:{}",
                keep.as_deref().unwrap_or("-"),
                services.join(",")
            )
        }
        ReleaseAction::Contract => "contract".into(),
    }
}

fn phase(p: &Phase) -> &'static str {
    match p {
        Phase::Pending => "pending",
        Phase::AwaitingApproval { .. } => "awaiting_approval",
        Phase::Backup => "backup",
        Phase::Expand => "expand",
        Phase::ProbeWarm => "probe",
        Phase::Rolling => "rolling",
        Phase::Warm { .. } => "warm",
        Phase::Retiring { .. } => "retiring",
        Phase::Contract => "contract",
        Phase::Done => "done",
    }
}

fn outcome(o: &Outcome) -> &'static str {
    match o {
        Outcome::Succeeded => "succeeded",
        Outcome::RolledBack { .. } => "rolled_back",
        Outcome::Failed { .. } => "failed",
        Outcome::NotStarted { .. } => "not_started",
    }
}

fn started() -> ReleaseInput {
    ReleaseInput::Rollout(Input::Started {
        service: "web".into(),
    })
}

fn actions(seen: &[String]) -> Vec<&str> {
    seen.iter()
        .map(String::as_str)
        .filter(|s| !s.starts_with("event:"))
        .collect()
}

#[test]
fn a_deploy_goes_through_every_stage_in_order() {
    let mut r = Release::new(plan(ReleaseKind::Deploy, 1_000, true), &[true]);
    r.handle_input(Millis(0), ReleaseInput::Start);
    assert_eq!(
        actions(&drain(&mut r, 0, saved)),
        ["persist:backup", "backup"]
    );
    r.handle_input(Millis(10), ReleaseInput::BackupDone(Ok(())));
    assert_eq!(
        actions(&drain(&mut r, 10, saved)),
        ["persist:expand", "expand"]
    );
    r.handle_input(Millis(20), ReleaseInput::ExpandDone(Ok(())));
    assert_eq!(
        actions(&drain(&mut r, 20, saved)),
        ["persist:rolling", "start:web"]
    );
    r.handle_input(Millis(30), started());
    let seen = drain(&mut r, 30, saved);
    assert_eq!(
        actions(&seen),
        [
            "persist:rolling",
            "promote:web",
            "persist:rolling",
            "persist:warm+serving=v2",
            "conclude:succeeded"
        ]
    );
    assert!(seen.contains(&"event:warm".to_owned()), "{seen:?}");
    assert!(r.is_concluded() && !r.is_done());
    // Nothing until the window ends.
    r.handle_input(Millis(500), ReleaseInput::Tick);
    assert!(drain(&mut r, 500, saved).is_empty());
    r.handle_input(Millis(1_030), ReleaseInput::Tick);
    assert_eq!(
        actions(&drain(&mut r, 1_030, saved)),
        ["persist:retiring", "retire:keep=v2:web"]
    );
    r.handle_input(Millis(1_100), ReleaseInput::Retired);
    assert_eq!(
        actions(&drain(&mut r, 1_100, saved)),
        ["persist:contract", "contract"]
    );
    r.handle_input(Millis(1_200), ReleaseInput::ContractDone(Ok(())));
    assert_eq!(actions(&drain(&mut r, 1_200, saved)), ["persist:done"]);
    assert!(r.is_done());
}

#[test]
fn a_failed_start_retires_what_it_started_and_runs_no_contract() {
    let mut r = Release::new(plan(ReleaseKind::Deploy, 1_000, true), &[true]);
    r.handle_input(Millis(0), ReleaseInput::Start);
    drain(&mut r, 0, saved);
    r.handle_input(Millis(1), ReleaseInput::BackupDone(Ok(())));
    drain(&mut r, 1, saved);
    r.handle_input(Millis(2), ReleaseInput::ExpandDone(Ok(())));
    drain(&mut r, 2, saved);
    r.handle_input(
        Millis(3),
        ReleaseInput::Rollout(Input::StartFailed {
            service: "web".into(),
            reason: "health".into(),
        }),
    );
    let seen = actions(&drain(&mut r, 3, saved)).join(" ");
    assert!(seen.contains("revert:web"), "{seen}");
    assert!(
        seen.ends_with("persist:retiring conclude:rolled_back retire:keep=v1:web"),
        "{seen}"
    );
    r.handle_input(Millis(4), ReleaseInput::Retired);
    assert_eq!(actions(&drain(&mut r, 4, saved)), ["persist:done"]);
    assert!(r.is_done());
}

#[test]
fn a_failed_backup_or_expand_ends_with_nothing_started() {
    for fail_backup in [true, false] {
        let mut r = Release::new(plan(ReleaseKind::Deploy, 1_000, true), &[true]);
        r.handle_input(Millis(0), ReleaseInput::Start);
        drain(&mut r, 0, saved);
        if fail_backup {
            r.handle_input(Millis(1), ReleaseInput::BackupDone(Err("disk".into())));
        } else {
            r.handle_input(Millis(1), ReleaseInput::BackupDone(Ok(())));
            drain(&mut r, 1, saved);
            r.handle_input(Millis(2), ReleaseInput::ExpandDone(Err("syntax".into())));
        }
        assert_eq!(
            actions(&drain(&mut r, 2, saved)),
            ["persist:done", "conclude:not_started"]
        );
        assert!(r.is_done());
    }
}

#[test]
fn a_failed_save_holds_everything_after_it_and_goes_on_when_it_succeeds() {
    let mut r = Release::new(plan(ReleaseKind::Deploy, 1_000, false), &[true]);
    r.handle_input(Millis(0), ReleaseInput::Start);
    drain(&mut r, 0, saved);
    r.handle_input(Millis(10), started());
    // The promote's persist fails.
    let mut fails = 1;
    let seen = drain(&mut r, 10, || {
        if fails > 0 {
            fails -= 1;
            ReleaseInput::SaveFailed {
                error: "disk full".into(),
            }
        } else {
            ReleaseInput::Saved
        }
    });
    assert_eq!(
        seen,
        ["event:switch", "persist:rolling", "event:held"],
        "nothing after the failed save"
    );
    assert_eq!(
        r.held().as_deref(),
        Some("held: cannot write the state store: disk full")
    );
    let ReleaseOutput::Timeout(retry) = r.poll_output() else {
        panic!("no retry timeout");
    };
    assert!(retry > Millis(10));
    // An early tick does nothing; the retry re-asks the same save.
    r.handle_input(Millis(11), ReleaseInput::Tick);
    assert!(drain(&mut r, 11, saved).is_empty());
    r.handle_input(retry, ReleaseInput::Tick);
    let seen = drain(&mut r, retry.0, saved);
    assert_eq!(seen.first().map(String::as_str), Some("persist:rolling"));
    assert!(
        seen.contains(&"event:store_writable".to_owned()),
        "{seen:?}"
    );
    assert!(seen.contains(&"promote:web".to_owned()), "{seen:?}");
    assert!(r.held().is_none());
}

#[test]
fn a_save_that_keeps_failing_never_retires_and_never_concludes() {
    let mut r = Release::new(plan(ReleaseKind::Deploy, 0, false), &[true]);
    r.handle_input(Millis(0), ReleaseInput::Start);
    drain(&mut r, 0, saved);
    r.handle_input(Millis(1), started());
    let mut now = 1;
    let mut all = Vec::new();
    // The first save (the promote) works; every save after it fails.
    let mut first = true;
    for _ in 0..20 {
        all.extend(drain(&mut r, now, || {
            if std::mem::take(&mut first) {
                ReleaseInput::Saved
            } else {
                ReleaseInput::SaveFailed {
                    error: "disk full".into(),
                }
            }
        }));
        match r.poll_output() {
            ReleaseOutput::Timeout(t) => now = t.0,
            other => panic!("not holding: {other:?}"),
        }
        r.handle_input(Millis(now), ReleaseInput::Tick);
    }
    assert!(
        !all.iter()
            .any(|a| a.starts_with("retire") || a.starts_with("conclude")),
        "{all:?}"
    );
    assert!(r.held().is_some());
}

#[test]
fn a_rollback_while_warm_is_one_switch() {
    let mut p = plan(ReleaseKind::Rollback, 1_000, false);
    p.rollout.version = "v1".into();
    p.rollout.previous_version = Some("v2".into());
    let mut r = Release::new(p, &[true]);
    r.handle_input(Millis(0), ReleaseInput::Start);
    assert_eq!(
        actions(&drain(&mut r, 0, saved)),
        ["persist:probe", "probe:v1"]
    );
    r.handle_input(Millis(1), ReleaseInput::WarmProbed { ready: true });
    assert_eq!(
        actions(&drain(&mut r, 1, saved)),
        ["persist:warm+serving=v1", "switch:v1", "conclude:succeeded"]
    );
}

#[test]
fn a_cold_rollback_starts_the_previous_release_blue_green() {
    let mut p = plan(ReleaseKind::Rollback, 1_000, false);
    p.rollout.version = "v1".into();
    p.rollout.previous_version = Some("v2".into());
    let mut r = Release::new(p, &[true]);
    r.handle_input(Millis(0), ReleaseInput::Start);
    drain(&mut r, 0, saved);
    r.handle_input(Millis(1), ReleaseInput::WarmProbed { ready: false });
    assert_eq!(
        actions(&drain(&mut r, 1, saved)),
        ["persist:rolling", "start:web"]
    );
}

#[test]
fn supersede_and_end_window_only_apply_in_the_window() {
    let mut r = Release::new(plan(ReleaseKind::Deploy, 1_000, true), &[true]);
    assert!(r.supersede(Millis(0)).is_err());
    assert!(!r.end_window(Millis(0)));
    r.handle_input(Millis(0), ReleaseInput::Start);
    drain(&mut r, 0, saved);
    r.handle_input(Millis(1), ReleaseInput::BackupDone(Ok(())));
    drain(&mut r, 1, saved);
    r.handle_input(Millis(2), ReleaseInput::ExpandDone(Ok(())));
    drain(&mut r, 2, saved);
    r.handle_input(Millis(3), started());
    drain(&mut r, 3, saved);
    let mut superseded = r.clone();
    superseded.supersede(Millis(4)).expect("in the window");
    assert_eq!(actions(&drain(&mut superseded, 4, saved)), ["persist:done"]);
    assert!(superseded.is_done() && superseded.state().superseded);
    // A newer deploy: the window ends now, the old release is retired and
    // the contract migrations run.
    assert!(r.end_window(Millis(4)));
    assert_eq!(
        actions(&drain(&mut r, 4, saved)),
        ["persist:retiring", "retire:keep=v2:web"]
    );
}

#[test]
fn operator_commands_outside_the_rollout_are_refused_but_abort_before_it_ends_it() {
    let mut r = Release::new(plan(ReleaseKind::Deploy, 1_000, true), &[true]);
    r.handle_input(Millis(0), ReleaseInput::Start);
    drain(&mut r, 0, saved);
    assert!(r.command(Millis(1), Command::Pause).is_err());
    r.command(
        Millis(1),
        Command::Abort {
            reason: "no".into(),
        },
    )
    .expect("abort during the backup");
    assert_eq!(
        actions(&drain(&mut r, 1, saved)),
        ["persist:done", "conclude:not_started"]
    );
}

fn restore(state: ReleaseState, migrate: bool) -> Vec<String> {
    let mut r = Release::restore(
        plan(ReleaseKind::Deploy, 1_000, migrate),
        state,
        Millis(5_000),
        &[],
    )
    .expect("fits");
    actions(&drain(&mut r, 5_000, saved))
        .into_iter()
        .map(str::to_owned)
        .collect()
}

fn state(phase: Phase, outcome: Option<Outcome>) -> ReleaseState {
    ReleaseState {
        phase,
        rollout: None,
        outcome,
        superseded: false,
        approvals: None,
    }
}

#[test]
fn a_restored_release_reissues_what_its_phase_covers() {
    // Interrupted before anything started.
    assert_eq!(
        restore(state(Phase::Expand, None), true),
        ["persist:done", "conclude:not_started"]
    );
    // In the window / retiring / contract: the table, the conclusion again
    // (idempotent), and the phase's own action.
    let ok = Some(Outcome::Succeeded);
    assert_eq!(
        restore(
            state(
                Phase::Warm {
                    until: Millis(9_000)
                },
                ok.clone()
            ),
            true
        ),
        ["switch:v2", "conclude:succeeded"]
    );
    assert_eq!(
        restore(
            state(
                Phase::Retiring {
                    keep: Some("v2".into()),
                    services: vec!["web".into()]
                },
                ok.clone()
            ),
            true
        ),
        ["switch:v2", "conclude:succeeded", "retire:keep=v2:web"]
    );
    assert_eq!(
        restore(state(Phase::Contract, ok), true),
        ["switch:v2", "conclude:succeeded", "contract"]
    );
}

#[test]
fn a_restored_start_that_will_roll_back_starts_nothing() {
    let mut r = Release::new(plan(ReleaseKind::Deploy, 1_000, false), &[true]);
    r.handle_input(Millis(0), ReleaseInput::Start);
    drain(&mut r, 0, saved);
    // Crash while starting; the policy is to roll back.
    let saved_state = r.state().clone();
    let mut back = Release::restore(
        plan(ReleaseKind::Deploy, 1_000, false),
        saved_state,
        Millis(10),
        &[],
    )
    .expect("fits");
    let seen = actions(&drain(&mut back, 10, saved)).join(" ");
    assert!(!seen.contains("start:"), "{seen}");
    assert!(seen.contains("revert:web"), "{seen}");
    assert!(seen.ends_with("retire:keep=v1:web"), "{seen}");
}

#[test]
fn a_saved_state_that_does_not_fit_the_plan_is_an_error_naming_it() {
    let mut r = Release::new(plan(ReleaseKind::Deploy, 1_000, false), &[true]);
    r.handle_input(Millis(0), ReleaseInput::Start);
    drain(&mut r, 0, saved);
    let mut p = plan(ReleaseKind::Deploy, 1_000, false);
    p.rollout.services.push(ServicePlan {
        name: "api".into(),
        strategy: Strategy::BlueGreen,
        manual_switch: false,
    });
    let err = Release::restore(p, r.state().clone(), Millis(1), &[])
        .expect_err("two services in the plan, one in the state");
    assert!(
        err.0.contains("1 services") && err.0.contains("web, api"),
        "{err}"
    );
}

// ---- the approval gate ------------------------------------------------------

fn gated(required: u32) -> ReleasePlan {
    let mut p = plan(ReleaseKind::Deploy, 60_000, true);
    p.approval = Some(cutover_core::ApprovalPolicy {
        required,
        expires: Millis(3_600_000),
        at: cutover_core::ApprovalAt::Start,
        requested_by: "alice@laptop".into(),
    });
    p
}

fn awaiting(required: u32) -> Release {
    let mut r = Release::new(gated(required), &[true]);
    r.handle_input(Millis(1_000), ReleaseInput::Start);
    assert_eq!(
        drain(&mut r, 1_000, saved),
        ["persist:awaiting_approval", "event:awaiting_approval"]
    );
    assert_eq!(
        r.state().phase,
        Phase::AwaitingApproval {
            until: Millis(3_601_000)
        }
    );
    r
}

#[test]
fn nothing_starts_until_someone_other_than_the_deployer_approves() {
    let mut r = awaiting(1);
    // Time passes, nothing happens before the deadline.
    r.handle_input(Millis(2_000_000), ReleaseInput::Tick);
    assert!(drain(&mut r, 2_000_000, saved).is_empty());
    let own = r
        .approve(Millis(2_000_000), "alice@laptop", None)
        .expect_err("refused");
    assert!(own.0.contains("another approver must approve"), "{own}");
    assert!(drain(&mut r, 2_000_000, saved).is_empty());
    assert_eq!(
        r.approve(Millis(2_000_001), "bob@desk", Some("checked staging")),
        Ok(cutover_core::Progress::Approved)
    );
    assert_eq!(
        drain(&mut r, 2_000_001, saved),
        ["persist:backup", "backup"]
    );
    let given = &r.state().approvals.as_ref().expect("approvals").given;
    assert_eq!(given[0].by, "bob@desk");
    assert_eq!(given[0].comment.as_deref(), Some("checked staging"));
    // Once approved, approving again is refused with the state.
    let late = r
        .approve(Millis(2_000_002), "carol@x", None)
        .expect_err("refused");
    assert!(
        late.0.contains("not awaiting approval (backing up)"),
        "{late}"
    );
}

#[test]
fn two_approvals_need_two_distinct_approvers_and_the_first_is_saved() {
    let mut r = awaiting(2);
    assert_eq!(
        r.approve(Millis(2_000), "bob@desk", None),
        Ok(cutover_core::Progress::Waiting { have: 1, need: 2 })
    );
    assert_eq!(drain(&mut r, 2_000, saved), ["persist:awaiting_approval"]);
    assert!(r.approve(Millis(3_000), "bob@desk", None).is_err());
    assert_eq!(
        r.approve(Millis(4_000), "carol@desk", None),
        Ok(cutover_core::Progress::Approved)
    );
    assert_eq!(drain(&mut r, 4_000, saved), ["persist:backup", "backup"]);
}

#[test]
fn a_rejection_ends_the_deployment_with_nothing_started() {
    let mut r = awaiting(1);
    r.reject(Millis(5_000), "bob@desk", "not during the sale")
        .expect("reject");
    assert_eq!(
        drain(&mut r, 5_000, saved),
        ["persist:done", "conclude:not_started"]
    );
    match &r.state().outcome {
        Some(Outcome::NotStarted { reason }) => {
            assert!(
                reason.contains("rejected by bob@desk: not during the sale"),
                "{reason}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert!(r.is_done());
}

#[test]
fn an_approval_that_expires_ends_the_deployment() {
    let mut r = awaiting(1);
    assert_eq!(r.poll_output(), ReleaseOutput::Timeout(Millis(3_601_000)));
    r.handle_input(Millis(3_601_000), ReleaseInput::Tick);
    assert_eq!(
        drain(&mut r, 3_601_000, saved),
        [
            "event:approval_expired",
            "persist:done",
            "conclude:not_started"
        ]
    );
    match &r.state().outcome {
        Some(Outcome::NotStarted { reason }) => {
            assert!(reason.starts_with("approval expired"), "{reason}")
        }
        other => panic!("{other:?}"),
    }
    assert!(r.approve(Millis(3_601_001), "bob@desk", None).is_err());
}

#[test]
fn a_restored_release_still_awaits_approval_with_the_same_deadline() {
    let mut r = awaiting(2);
    r.approve(Millis(2_000), "bob@desk", None).expect("first");
    drain(&mut r, 2_000, saved);
    let json = serde_json::to_string(r.state()).expect("json");
    let state: ReleaseState = serde_json::from_str(&json).expect("back");
    let mut back = Release::restore(gated(2), state, Millis(900_000), &[]).expect("restore");
    assert!(drain(&mut back, 900_000, saved).is_empty());
    assert_eq!(
        back.state().phase,
        Phase::AwaitingApproval {
            until: Millis(3_601_000)
        }
    );
    assert_eq!(back.awaiting_approval().map(|a| a.have()), Some(1));
    assert_eq!(
        back.poll_output(),
        ReleaseOutput::Timeout(Millis(3_601_000))
    );
    assert!(back.approve(Millis(900_001), "bob@desk", None).is_err());
    assert_eq!(
        back.approve(Millis(900_002), "carol@desk", None),
        Ok(cutover_core::Progress::Approved)
    );
    assert_eq!(
        drain(&mut back, 900_002, saved),
        ["persist:backup", "backup"]
    );
}

#[test]
fn an_abort_while_awaiting_approval_ends_it_and_other_commands_are_refused() {
    let mut r = awaiting(1);
    let refused = r
        .command(Millis(2_000), Command::Pause)
        .expect_err("refused");
    assert!(refused.0.contains("awaiting approval"), "{refused}");
    r.command(
        Millis(2_000),
        Command::Abort {
            reason: "wrong version".into(),
        },
    )
    .expect("abort");
    assert_eq!(
        drain(&mut r, 2_000, saved),
        ["persist:done", "conclude:not_started"]
    );
}

#[test]
fn a_gate_at_the_switch_does_not_hold_the_start() {
    let mut p = gated(1);
    if let Some(a) = p.approval.as_mut() {
        a.at = cutover_core::ApprovalAt::Switch;
    }
    let mut r = Release::new(p, &[true]);
    r.handle_input(Millis(1_000), ReleaseInput::Start);
    assert_eq!(drain(&mut r, 1_000, saved), ["persist:backup", "backup"]);
}

// ---- the approval gate at the switch ----------------------------------------

fn gated_at_switch() -> ReleasePlan {
    let mut p = plan(ReleaseKind::Deploy, 60_000, false);
    p.approval = Some(cutover_core::ApprovalPolicy {
        required: 1,
        expires: Millis(600_000),
        at: cutover_core::ApprovalAt::Switch,
        requested_by: "alice".into(),
    });
    // The runtime plans the first service to stop at the switch.
    p.rollout.services[0].manual_switch = true;
    p
}

/// A release whose new instances are healthy, held at the switch gate at 2_000.
fn at_the_switch() -> Release {
    let mut r = Release::new(gated_at_switch(), &[true]);
    r.handle_input(Millis(1_000), ReleaseInput::Start);
    let seen = drain(&mut r, 1_000, saved);
    assert!(seen.contains(&"start:web".to_owned()), "{seen:?}");
    assert!(r.awaiting_approval().is_none(), "nothing to approve yet");
    r.handle_input(Millis(2_000), started());
    let seen = drain(&mut r, 2_000, saved);
    assert_eq!(
        seen,
        [
            "persist:rolling",
            "persist:rolling",
            "event:awaiting_switch",
            "event:awaiting_approval"
        ]
    );
    assert_eq!(
        r.awaiting_approval().map(|a| a.until),
        Some(Millis(602_000))
    );
    r
}

#[test]
fn a_gate_at_the_switch_holds_healthy_instances_until_another_person_approves() {
    let mut r = at_the_switch();
    // No traffic moves by itself, nor by a bare switch, nor by the deployer.
    assert_eq!(r.poll_output(), ReleaseOutput::Timeout(Millis(602_000)));
    r.handle_input(Millis(300_000), ReleaseInput::Tick);
    assert!(drain(&mut r, 300_000, saved).is_empty());
    let bare = r
        .command(Millis(300_000), Command::Switch)
        .expect_err("refused");
    assert!(
        bare.0.contains("awaits approval before the switch"),
        "{bare}"
    );
    let own = r
        .approve(Millis(300_000), "alice", None)
        .expect_err("refused");
    assert!(own.0.contains("another approver must approve"), "{own}");
    assert!(drain(&mut r, 300_000, saved).is_empty());
    // Another person's approval moves the traffic.
    assert_eq!(
        r.approve(Millis(300_001), "bob", Some("smoke-tested the preview")),
        Ok(cutover_core::Progress::Approved)
    );
    let seen = drain(&mut r, 300_001, saved);
    assert!(seen.contains(&"promote:web".to_owned()), "{seen:?}");
    assert!(r.awaiting_approval().is_none());
    let given = &r.state().approvals.as_ref().expect("approvals").given;
    assert_eq!(given[0].by, "bob");
}

#[test]
fn a_gate_at_the_switch_that_expires_or_is_rejected_aborts_with_no_traffic_moved() {
    for reject in [false, true] {
        let mut r = at_the_switch();
        let now = if reject {
            r.reject(Millis(10_000), "bob", "wrong build")
                .expect("reject");
            10_000
        } else {
            r.handle_input(Millis(602_000), ReleaseInput::Tick);
            602_000
        };
        let seen = drain(&mut r, now, saved);
        assert!(!seen.contains(&"promote:web".to_owned()), "{seen:?}");
        assert!(seen.contains(&"revert:web".to_owned()), "{seen:?}");
        assert_eq!(
            seen.contains(&"event:approval_expired".to_owned()),
            !reject,
            "{seen:?}"
        );
        assert!(r.awaiting_approval().is_none());
        assert!(r.approve(Millis(now + 1), "carol", None).is_err());
    }
}

#[test]
fn a_restored_release_at_the_switch_gate_still_awaits_with_the_same_deadline() {
    let r = at_the_switch();
    let json = serde_json::to_string(r.state()).expect("json");
    let state: ReleaseState = serde_json::from_str(&json).expect("back");
    let mut back =
        Release::restore(gated_at_switch(), state, Millis(50_000), &[]).expect("restore");
    // Its instances are started again; healthy, it holds at the gate again.
    let seen = drain(&mut back, 50_000, saved);
    assert!(seen.contains(&"start:web".to_owned()), "{seen:?}");
    back.handle_input(Millis(51_000), started());
    let seen = drain(&mut back, 51_000, saved);
    assert!(!seen.contains(&"promote:web".to_owned()), "{seen:?}");
    assert_eq!(
        back.awaiting_approval().map(|a| a.until),
        Some(Millis(602_000))
    );
    assert_eq!(
        back.approve(Millis(52_000), "bob", None),
        Ok(cutover_core::Progress::Approved)
    );
    let seen = drain(&mut back, 52_000, saved);
    assert!(seen.contains(&"promote:web".to_owned()), "{seen:?}");
}
