//! `[notify]`: the stable set of event types notifications carry
//! ([`EventType`], documented in docs/observability.md), and the resolved
//! `[[notify.webhook]]` and `[[notify.slack]]` endpoints. How history events
//! become these types, and the delivery, are `crate::webhook`'s business.

use std::fmt;

use serde::{Serialize, Serializer};

use super::model::Secret;
use super::redact::redact_url;

macro_rules! event_types {
    ($( $(#[$doc:meta])* $variant:ident = $text:literal, )*) => {
        /// The type of a notification: a stable name, part of the payload
        /// (`type`) and of the config (`events`).
        #[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
        pub enum EventType {
            $( $(#[$doc])* $variant, )*
        }

        impl EventType {
            /// Every type, in the documented order.
            pub const ALL: &'static [EventType] = &[$(EventType::$variant),*];

            /// The name, e.g. `deployment.started`.
            pub fn as_str(self) -> &'static str {
                match self {
                    $( EventType::$variant => $text, )*
                }
            }
        }
    };
}

event_types! {
    /// A deploy or a rollback began.
    DeploymentStarted = "deployment.started",
    /// A canary step began (its weight in the message).
    DeploymentStep = "deployment.step",
    /// New instances are healthy and wait for `cutover switch`.
    DeploymentAwaitingSwitch = "deployment.awaiting_switch",
    /// The release holds: the state store cannot be written.
    DeploymentHeld = "deployment.held",
    /// The rollout began rolling back (the figures behind it in `data`).
    DeploymentRollingBack = "deployment.rolling_back",
    /// A restarted daemon cannot restore the deployment: an operator must end it.
    DeploymentNeedsOperator = "deployment.needs_operator",
    /// A deploy ended with the new version serving all traffic.
    DeploymentSucceeded = "deployment.succeeded",
    /// A deployment failed.
    DeploymentFailed = "deployment.failed",
    /// A deploy was rolled back, or an operator's rollback ended.
    DeploymentRolledBack = "deployment.rolled_back",
    /// A deployment waits for approvals.
    ApprovalRequested = "approval.requested",
    /// Someone approved or rejected, or the approval deadline passed.
    ApprovalDecided = "approval.decided",
    /// A backup before a deploy failed.
    BackupFailed = "backup.failed",
    /// A serving instance failed and a replacement was started.
    InstanceRestarted = "instance.restarted",
    /// A replacement instance did not become healthy.
    InstanceRestartFailed = "instance.restart_failed",
    /// A certificate could not be reloaded, ordered or renewed.
    CertificateFailed = "certificate.failed",
}

impl EventType {
    /// The type called `name`.
    pub fn parse(name: &str) -> Option<EventType> {
        EventType::ALL.iter().copied().find(|t| t.as_str() == name)
    }

    /// What `[[notify.slack]]` sends when it names no `events`: what a
    /// channel of people wants to read (no canary step by step).
    pub const SLACK_DEFAULT: &'static [EventType] = &[
        EventType::DeploymentStarted,
        EventType::DeploymentAwaitingSwitch,
        EventType::DeploymentHeld,
        EventType::DeploymentNeedsOperator,
        EventType::DeploymentSucceeded,
        EventType::DeploymentFailed,
        EventType::DeploymentRolledBack,
        EventType::ApprovalRequested,
        EventType::ApprovalDecided,
        EventType::BackupFailed,
        EventType::InstanceRestartFailed,
        EventType::CertificateFailed,
    ];
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

impl Serialize for EventType {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.as_str())
    }
}

/// `[notify]`, resolved. Empty when the file has none.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Default)]
pub struct NotifyConfig {
    /// `[[notify.webhook]]`, in the order written.
    pub webhooks: Vec<WebhookConfig>,
    /// `[[notify.slack]]`, in the order written.
    pub slack: Vec<SlackConfig>,
}

impl NotifyConfig {
    /// Whether nothing is configured.
    pub fn is_empty(&self) -> bool {
        self.webhooks.is_empty() && self.slack.is_empty()
    }
}

/// One `[[notify.webhook]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct WebhookConfig {
    /// Where to POST (`http` or `https`). Shown with any password redacted.
    #[serde(serialize_with = "serialize_url")]
    pub url: String,
    /// `whsec_…`: the signing key, base64 after the prefix (checked).
    pub secret: Secret,
    /// The types sent, without duplicates, in [`EventType::ALL`] order.
    pub events: Vec<EventType>,
    /// Only these environments; all when empty.
    pub environments: Vec<String>,
}

/// One `[[notify.slack]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SlackConfig {
    /// The incoming webhook's URL: a credential, never shown.
    pub url: Secret,
    /// The types sent, without duplicates, in [`EventType::ALL`] order.
    pub events: Vec<EventType>,
    /// Only these environments; all when empty.
    pub environments: Vec<String>,
}

fn serialize_url<S: Serializer>(url: &str, serializer: S) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&redact_url(url))
}

/// The prefix of a Standard Webhooks secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// The signing key of a `whsec_…` secret, or why it is not one. Standard
/// Webhooks keys are 24 to 64 bytes.
pub fn webhook_key(secret: &str) -> Result<Vec<u8>, String> {
    use base64::Engine as _;
    let Some(encoded) = secret.strip_prefix(SECRET_PREFIX) else {
        return Err("it does not start with `whsec_`".to_owned());
    };
    let key = base64::engine::general_purpose::STANDARD
        .decode(encoded)
        .map_err(|_| "the part after `whsec_` is not base64".to_owned())?;
    if !(24..=64).contains(&key.len()) {
        return Err(format!(
            "its key is {} bytes; Standard Webhooks keys are 24 to 64 bytes",
            key.len()
        ));
    }
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_type_parses_back_from_its_name() {
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(*t));
        }
        assert_eq!(EventType::parse("deployment.nope"), None);
    }

    #[test]
    fn webhook_keys_are_checked() {
        // The specification's example secret.
        let key = webhook_key("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").expect("valid");
        assert_eq!(key.len(), 24);
        assert!(webhook_key("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw").is_err());
        assert!(webhook_key("whsec_not base64!").is_err());
        assert!(webhook_key("whsec_c2hvcnQ=").is_err());
    }
}
