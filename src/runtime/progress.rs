//! Where a running release stands, for `cutover status`: a plain snapshot
//! read from the release machine after every drain of its outputs (the
//! executor publishes it in its [`super::control::ReleaseHandle`]), so the
//! API reads the machine's own view — its phase, each service's stage,
//! canary step and weight and when the step ends, paused, awaiting
//! approval, the rollback window — without asking the executor anything.
//! What the journal knows (held) and what awaits the switch are read beside
//! it from the handle.

use cutover_core::{Millis, Phase, Release, ReleaseKind, Stage, Status, Strategy};

/// A release's progress, as of its last drain.
#[derive(Debug, Clone, PartialEq)]
pub struct Progress {
    /// The deployment.
    pub deployment: i64,
    /// `deploy`, `rollback` or `restart`.
    pub kind: &'static str,
    /// The version it brings.
    pub version: String,
    /// The version it replaces.
    pub previous: Option<String>,
    /// Where the release stands (`awaiting_approval`, `backup`, `expand`,
    /// `probe_warm`, `rolling`, `warm`, `retiring`, `contract`, `done`).
    pub phase: &'static str,
    /// The rollout is paused (an operator's `cutover pause`, or the
    /// inconclusive policy).
    pub paused: bool,
    /// Approvals given and needed, and until when, while it waits for them.
    pub approval: Option<ApprovalWait>,
    /// The end of the rollback window (the replaced release stays warm).
    pub window_until: Option<Millis>,
    /// Each service of the rollout, in plan order.
    pub services: Vec<ServiceProgress>,
}

/// A wait for approvals.
#[derive(Debug, Clone, PartialEq)]
pub struct ApprovalWait {
    /// Distinct approvals given.
    pub have: u32,
    /// Needed.
    pub required: u32,
    /// When the wait ends without them.
    pub until: Millis,
}

/// One service's part of a rollout.
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceProgress {
    /// The service.
    pub service: String,
    /// `canary` or `blue-green`.
    pub strategy: &'static str,
    /// `pending`, `starting`, `awaiting_switch`, `stepping`, `promoted`,
    /// `reverted` or `kept_new`.
    pub stage: &'static str,
    /// The canary step (1-based) while stepping.
    pub step: Option<usize>,
    /// How many steps the canary has (0 for blue-green).
    pub steps: usize,
    /// Percent of requests on the new release now.
    pub canary_percent: f64,
    /// When the step began.
    pub step_started: Option<Millis>,
    /// When the step's analysis is due (`None` while paused).
    pub step_ends: Option<Millis>,
    /// Time left in the step, while paused.
    pub paused_left: Option<Millis>,
    /// Extensions of the step for lack of data so far.
    pub extensions: u32,
}

/// The progress of `release` (deployment `deployment`).
pub fn of(deployment: i64, release: &Release) -> Progress {
    let plan = release.plan();
    let state = release.state();
    let (phase, window_until) = match &state.phase {
        Phase::Pending => ("pending", None),
        Phase::AwaitingApproval { .. } => ("awaiting_approval", None),
        Phase::Backup => ("backup", None),
        Phase::Expand => ("expand", None),
        Phase::ProbeWarm => ("probe_warm", None),
        Phase::Rolling => ("rolling", None),
        Phase::Warm { until } => ("warm", Some(*until)),
        Phase::Retiring { .. } => ("retiring", None),
        Phase::Contract => ("contract", None),
        Phase::Done => ("done", None),
    };
    let approval = release.awaiting_approval().map(|a| ApprovalWait {
        have: a.have(),
        required: a.required,
        until: a.until,
    });
    let rollout = release.rollout();
    let paused = rollout.is_some_and(|r| r.state().status == Status::Paused);
    let services = rollout
        .map(|r| {
            r.plan()
                .services
                .iter()
                .zip(&r.state().services)
                .map(|(sp, ss)| {
                    let steps = match &sp.strategy {
                        Strategy::Canary(spec) => spec.steps.len(),
                        Strategy::BlueGreen => 0,
                    };
                    let mut out = ServiceProgress {
                        service: sp.name.clone(),
                        strategy: match sp.strategy {
                            Strategy::Canary(_) => "canary",
                            Strategy::BlueGreen => "blue-green",
                        },
                        stage: stage_name(&ss.stage),
                        step: None,
                        steps,
                        canary_percent: f64::from(ss.canary_bp) / 100.0,
                        step_started: None,
                        step_ends: None,
                        paused_left: None,
                        extensions: 0,
                    };
                    if let Stage::Stepping {
                        step,
                        started_at,
                        deadline,
                        extensions,
                        paused_left,
                        ..
                    } = &ss.stage
                    {
                        out.step = Some(step.saturating_add(1));
                        out.step_started = Some(*started_at);
                        out.step_ends = (!paused).then_some(*deadline);
                        out.paused_left = paused.then_some(*paused_left).flatten();
                        out.extensions = *extensions;
                    }
                    out
                })
                .collect()
        })
        .unwrap_or_default();
    Progress {
        deployment,
        kind: match plan.kind {
            ReleaseKind::Deploy => "deploy",
            ReleaseKind::Rollback => "rollback",
            ReleaseKind::Restart => "restart",
        },
        version: plan.version().to_owned(),
        previous: plan.previous().map(str::to_owned),
        phase,
        paused,
        approval,
        window_until,
        services,
    }
}

/// The stage's name, as `status --json` shows it.
pub fn stage_name(stage: &Stage) -> &'static str {
    match stage {
        Stage::Pending => "pending",
        Stage::Starting => "starting",
        Stage::AwaitingSwitch => "awaiting_switch",
        Stage::Stepping { .. } => "stepping",
        Stage::Promoted => "promoted",
        Stage::Reverted => "reverted",
        Stage::KeptNew => "kept_new",
    }
}
