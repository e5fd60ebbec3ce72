//! Approvals with four eyes: the bookkeeping of one deployment's gate,
//! independent of where the gate sits (before the start today; before the
//! switch for `at = "switch"`). It counts distinct approvers, refuses the
//! person who asked for the deployment, and knows its deadline. Sans-IO: the
//! caller hands in `now` and the identities; nothing here reads a clock.
//!
//! Who is "the same person" is decided in one place, [`same_person`], so
//! that the identity's source (today the cleaned `requested_by`, later the
//! API token's name) changes without touching the rule.

use serde::{Deserialize, Serialize};

use crate::rollout::Refused;
use crate::time::Millis;

/// Where the gate holds the release.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum ApprovalAt {
    /// Before anything changes (before the backup): nothing starts until approved.
    #[default]
    Start,
    /// After the new release is started and healthy, before traffic moves.
    Switch,
}

impl ApprovalAt {
    /// `start` or `switch`.
    pub fn as_str(self) -> &'static str {
        match self {
            ApprovalAt::Start => "start",
            ApprovalAt::Switch => "switch",
        }
    }
}

/// What a release plan asks for: `approvals = { required, expires, at }`,
/// and who asked for the deployment (who may not approve it).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApprovalPolicy {
    /// Distinct approvers needed (at least 1).
    pub required: u32,
    /// How long the deployment waits for them before it ends.
    pub expires: Millis,
    /// Where the gate holds.
    #[serde(default)]
    pub at: ApprovalAt,
    /// Who asked for the deployment.
    pub requested_by: String,
}

/// One approval given.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approval {
    /// Who approved.
    pub by: String,
    /// What they said, if anything.
    #[serde(default)]
    pub comment: Option<String>,
}

/// Where the approvals of a deployment stand after one more.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Progress {
    /// More approvals are needed.
    Waiting {
        /// Approvals given.
        have: u32,
        /// Approvals needed in all.
        need: u32,
    },
    /// Enough approvals: the gate opens.
    Approved,
}

/// The approvals gathered so far; persisted with the release's state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Approvals {
    /// Who asked for the deployment (may not approve it).
    pub requested_by: String,
    /// Distinct approvers needed.
    pub required: u32,
    /// When the wait ends without enough approvals.
    pub until: Millis,
    /// The approvals given, in order.
    #[serde(default)]
    pub given: Vec<Approval>,
}

/// Whether two identities are the same person: the one place four eyes is
/// decided.
pub fn same_person(a: &str, b: &str) -> bool {
    a.trim() == b.trim()
}

impl Approvals {
    /// A gate opened at `now` for `policy`: it waits until `now + expires`.
    pub fn new(policy: &ApprovalPolicy, now: Millis) -> Approvals {
        Approvals {
            requested_by: policy.requested_by.clone(),
            required: policy.required.max(1),
            until: now.after(policy.expires),
            given: Vec::new(),
        }
    }

    /// Approvals given so far.
    pub fn have(&self) -> u32 {
        u32::try_from(self.given.len()).unwrap_or(u32::MAX)
    }

    /// True once enough distinct approvers approved.
    pub fn is_met(&self) -> bool {
        self.have() >= self.required
    }

    /// True once the deadline passed.
    pub fn is_expired(&self, now: Millis) -> bool {
        now >= self.until
    }

    /// `by` approves. Refused for the person who asked for the deployment
    /// (four eyes), for someone who approved already, and after the deadline.
    pub fn approve(
        &mut self,
        now: Millis,
        by: &str,
        comment: Option<&str>,
    ) -> Result<Progress, Refused> {
        if self.is_expired(now) {
            return Err(Refused(
                "the approval expired; nothing was started: deploy again to ask anew".into(),
            ));
        }
        if same_person(by, &self.requested_by) {
            return Err(Refused(format!(
                "{by} asked for this deployment and cannot approve it (four eyes): another approver must approve"
            )));
        }
        if self.given.iter().any(|a| same_person(&a.by, by)) {
            return Err(Refused(format!(
                "{by} approved this deployment already; {} more approval(s) from another approver needed",
                self.required.saturating_sub(self.have())
            )));
        }
        self.given.push(Approval {
            by: by.to_owned(),
            comment: comment.map(str::to_owned),
        });
        Ok(if self.is_met() {
            Progress::Approved
        } else {
            Progress::Waiting {
                have: self.have(),
                need: self.required,
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn gate(required: u32) -> Approvals {
        Approvals::new(
            &ApprovalPolicy {
                required,
                expires: Millis(1000),
                at: ApprovalAt::Start,
                requested_by: "alice@a".into(),
            },
            Millis(500),
        )
    }

    #[test]
    fn the_deployer_cannot_approve_their_own_deployment() {
        let mut g = gate(1);
        let refused = g
            .approve(Millis(600), "alice@a", None)
            .expect_err("refused");
        assert!(
            refused.0.contains("another approver must approve"),
            "{refused}"
        );
        assert!(!g.is_met());
        assert_eq!(
            g.approve(Millis(600), "bob@b", Some("ok")),
            Ok(Progress::Approved)
        );
        assert!(g.is_met());
    }

    #[test]
    fn approvers_are_counted_once_each() {
        let mut g = gate(2);
        assert_eq!(
            g.approve(Millis(600), "bob@b", None),
            Ok(Progress::Waiting { have: 1, need: 2 })
        );
        assert!(g.approve(Millis(601), "bob@b", None).is_err());
        assert_eq!(
            g.approve(Millis(602), "carol@c", None),
            Ok(Progress::Approved)
        );
    }

    #[test]
    fn nothing_is_approved_after_the_deadline() {
        let mut g = gate(1);
        assert_eq!(g.until, Millis(1500));
        assert!(!g.is_expired(Millis(1499)));
        assert!(g.is_expired(Millis(1500)));
        assert!(g.approve(Millis(1500), "bob@b", None).is_err());
        assert!(g.given.is_empty());
    }
}
