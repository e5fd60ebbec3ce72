//! cutover's rollout engine, sans-IO: a deterministic state machine that
//! contains no networking, no storage and no clock (quinn-proto / str0m style).
//!
//! The runtime feeds it inputs — the time (`now`), the world's answers (instances
//! started, analysis figures, health), operator commands — and drains its
//! outputs: actions to carry out (persist, start instances, set weights,
//! promote, revert, analyse), events for the history, and the next time it
//! wants to be woken. Everything it decides can therefore be tested by a
//! simulation with a fake clock and a scripted world (`crates/sim`).
//!
//! - `approval.rs`: four eyes: the approvals a deployment needs, who gave
//!   them, until when (used by the release's approval gate).
//! - `event.rs`: the kinds of history events.
//! - `plan.rs`: what to roll (services, strategies, thresholds, policies).
//! - `release.rs`: the whole life of a release (backup, expand, rollout,
//!   warm window, retire, contract), the machine the runtime drives.
//! - `rollout.rs`: the traffic part of it: starts, canary steps, switches.
//! - `analysis.rs`: judging canary observations against thresholds.
//! - `time.rs`: milliseconds handed in by the caller.

pub mod analysis;
pub mod approval;
pub mod event;
pub mod plan;
pub mod release;
pub mod rollout;
pub mod time;

pub use analysis::{Figures, Stats, Verdict};
pub use approval::{Approval, ApprovalAt, ApprovalPolicy, Approvals, Progress};
pub use event::EventKind;
pub use plan::{
    CanarySpec, InconclusivePolicy, Plan, RestartPolicy, ServicePlan, Strategy, Thresholds,
};
pub use release::{
    ContractTarget, Phase, Release, ReleaseAction, ReleaseInput, ReleaseKind, ReleaseOutput,
    ReleasePlan, ReleaseState,
};
pub use rollout::{
    Action, Command, Event, Input, Mismatch, Outcome, Output, Refused, Rollout, Stage, State,
    Status,
};
pub use time::Millis;
