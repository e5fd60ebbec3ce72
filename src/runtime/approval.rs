//! Approvals of a deployment that waits for them (four eyes): `cutover
//! approve` and `cutover reject` reach the deployment's release here (the
//! release machine decides: `cutover_core::Release::approve` / `reject`,
//! which refuse the deployer's own approval), and every decision taken is
//! recorded through [`record_decision`], the one place that writes it.

use std::sync::Arc;

use cutover_core::{EventKind, Progress};
use tokio::sync::oneshot;

use super::control::Control;
use super::journal::Journal;
use super::{Daemon, DeployError};
use crate::store::{Deployment, Store};

/// What an approver decides.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Approve, with an optional comment.
    Approve {
        /// Who approves (the caller's identity).
        by: String,
        /// What they said.
        comment: Option<String>,
    },
    /// Reject, with a reason.
    Reject {
        /// Who rejects (the caller's identity).
        by: String,
        /// Why.
        reason: String,
    },
}

/// What a decision taken did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decided {
    /// Enough approvals: the deployment goes on.
    Approved { have: u32, need: u32 },
    /// More approvals are needed.
    Waiting { have: u32, need: u32 },
    /// The deployment ends, nothing started.
    Rejected,
}

impl Daemon {
    /// Hands `decision` to the release of `deployment`; refused (with its
    /// state) when it does not await approval, and for the deployer's own
    /// approval.
    pub async fn decide(
        self: &Arc<Self>,
        deployment: &Deployment,
        decision: Decision,
    ) -> Result<Decided, DeployError> {
        let id = deployment.id;
        let not_awaiting = || {
            let state = deployment.state.as_str();
            let reason = deployment
                .reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default();
            DeployError::Refused(format!(
                "deployment {id} is not awaiting approval (it is {state}{reason}); approve or reject only a deployment that `cutover history` shows as awaiting_approval"
            ))
        };
        let handle = self
            .environments
            .get(&deployment.environment)
            .and_then(|env| env.releases.all().into_iter().find(|h| h.id == id))
            .ok_or_else(not_awaiting)?;
        let (reply, answer) = oneshot::channel();
        handle
            .tx
            .send(Control::Decide { decision, reply })
            .await
            .map_err(|_| not_awaiting())?;
        match answer.await {
            Ok(Ok(decided)) => Ok(decided),
            Ok(Err(refused)) => Err(DeployError::Refused(format!("deployment {id}: {refused}"))),
            Err(_) => Err(not_awaiting()),
        }
    }
}

/// Records a decision the release took, in the deployment's history (and,
/// once there is one, the audit log): the one function every approval and
/// rejection goes through.
pub(crate) async fn record_decision(
    journal: &mut Journal<Store>,
    deployment: i64,
    decision: &Decision,
    decided: Decided,
) {
    let (kind, message) = match (decision, decided) {
        (Decision::Reject { by, reason }, _) => {
            (EventKind::Rejected, format!("rejected by {by}: {reason}"))
        }
        (Decision::Approve { by, comment }, decided) => {
            let said = comment
                .as_deref()
                .map(|c| format!(" ({c})"))
                .unwrap_or_default();
            let count = match decided {
                Decided::Approved { have, need } => {
                    format!("{have} of {need} approval(s): going on")
                }
                Decided::Waiting { have, need } => format!(
                    "{have} of {need} approval(s): {} more needed",
                    need.saturating_sub(have)
                ),
                Decided::Rejected => String::new(),
            };
            (
                EventKind::Approved,
                format!("approved by {by}{said}; {count}"),
            )
        }
    };
    tracing::info!(deployment, kind = kind.as_str(), "{message}");
    journal.note(kind, message).await;
}

/// A decision as the release machine takes it.
pub(crate) fn take(
    release: &mut cutover_core::Release,
    now: cutover_core::Millis,
    decision: &Decision,
) -> Result<Decided, String> {
    match decision {
        Decision::Approve { by, comment } => {
            let need = release.awaiting_approval().map_or(1, |a| a.required);
            match release.approve(now, by, comment.as_deref()) {
                Ok(Progress::Approved) => Ok(Decided::Approved { have: need, need }),
                Ok(Progress::Waiting { have, need }) => Ok(Decided::Waiting { have, need }),
                Err(refused) => Err(refused.0),
            }
        }
        Decision::Reject { by, reason } => release
            .reject(now, by, reason)
            .map(|()| Decided::Rejected)
            .map_err(|r| r.0),
    }
}
