//! What a line of a deployment's history is about: the kinds of events, one
//! enum for the core and the runtime. Each kind is stored and sent as the
//! snake_case string it always was, so histories written before this enum
//! existed read the same.

use serde::{Deserialize, Serialize};

macro_rules! event_kinds {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, )*) => {
        /// The kind of a history event.
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum EventKind {
            $( $(#[$doc])* #[serde(rename = $text)] $variant, )*
        }

        impl EventKind {
            /// Every kind.
            pub const ALL: &'static [EventKind] = &[$(EventKind::$variant),*];

            /// The string stored in the history.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( EventKind::$variant => $text, )*
                }
            }
        }
    };
}

event_kinds! {
    /// A deploy or rollback began.
    Started = "started",
    /// The deployment waits for approvals; nothing has changed.
    AwaitingApproval = "awaiting_approval",
    /// Someone approved the deployment.
    Approved = "approved",
    /// Someone rejected the deployment: it ends with nothing started.
    Rejected = "rejected",
    /// Not enough approvals before the deadline: it ends with nothing started.
    ApprovalExpired = "approval_expired",
    /// What the checks before the deploy found.
    Preflight = "preflight",
    /// Something worth knowing that does not stop the deploy.
    Warning = "warning",
    /// A database was backed up before the deploy.
    Backup = "backup",
    /// A database could not be backed up before the deploy: it ends the deploy.
    BackupFailed = "backup_failed",
    /// A migration ran.
    Migration = "migration",
    /// Migrations failed.
    MigrationFailed = "migration_failed",
    /// The contract migrations ran after the old release was gone.
    ContractDone = "contract_done",
    /// A service begins to roll.
    Service = "service",
    /// An instance started.
    InstanceStarted = "instance_started",
    /// An instance passed its health check.
    InstanceHealthy = "instance_healthy",
    /// An instance did not become healthy.
    InstanceFailed = "instance_failed",
    /// A worker replaced one of the previous release.
    InstanceReplaced = "instance_replaced",
    /// Old workers keep running after a new one failed.
    WorkersKept = "workers_kept",
    /// A service switched, blue-green.
    Switch = "switch",
    /// An environment switched to a release in one swap.
    Switched = "switched",
    /// The new instances are healthy and take no traffic: the rollout waits
    /// for `cutover switch` (or `abort`).
    AwaitingSwitch = "awaiting_switch",
    /// A canary step began.
    Step = "step",
    /// A canary step was analysed.
    Analysis = "analysis",
    /// The fast check failed.
    Check = "check",
    /// The rollout was paused.
    Paused = "paused",
    /// The rollout (or a restarted daemon's rollout) goes on.
    Resumed = "resumed",
    /// An operator promoted the canary.
    Promoted = "promoted",
    /// The rollout rolls back.
    Rollback = "rollback",
    /// A service keeps the new release (its old one has no healthy instance).
    Kept = "kept",
    /// The new release serves all traffic.
    Finished = "finished",
    /// The deployment succeeded (a switch back).
    Succeeded = "succeeded",
    /// The deployment ended before anything started.
    Failed = "failed",
    /// The replaced release stays warm; or, in a rollback, it still is.
    Warm = "warm",
    /// A rollback must start the previous release again.
    Cold = "cold",
    /// The rollback window ended.
    WindowOver = "window_over",
    /// A rollback took over during the window.
    Superseded = "superseded",
    /// The release holds: the state store cannot be written.
    Held = "held",
    /// The state store is writable again.
    StoreWritable = "store_writable",
    /// The daemon stopped while this deployment ran.
    Interrupted = "interrupted",
    /// The daemon restarted during the rollout.
    Restarted = "restarted",
    /// A saved state cannot be restored; an operator must end it.
    NeedsOperator = "needs_operator",
    /// An operator ended a deployment that could not be restored.
    EndedByOperator = "ended_by_operator",
    /// What the release is: its digest and the services' digests.
    Digest = "digest",
    /// A check was overridden (promotion, deploy window): who and why.
    Override = "override",
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl PartialEq<&str> for EventKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

#[cfg(test)]
mod tests {
    use super::EventKind;

    #[test]
    fn every_kind_serialises_to_its_history_string_and_back() {
        for kind in EventKind::ALL {
            let json = serde_json::to_string(kind).expect("serialise");
            assert_eq!(json, format!("\"{}\"", kind.as_str()));
            let back: EventKind = serde_json::from_str(&json).expect("deserialise");
            assert_eq!(back, *kind);
        }
    }
}
