//! What may stop a deploy that is otherwise fine, before anything changes:
//! an operator's lock of the environment (`cutover lock`), the
//! environment's deploy windows, and (with the release's identity)
//! promotion (`promotion.rs`). Also the one place that decides whether a
//! caller may override a check ([`override_allowed`]) and the one place
//! that records an override ([`record_override`]).
//!
//! Rollback and abort pass locks and windows: they are what an operator
//! reaches for in an emergency, and only ever go back to a release that
//! already served.

use jiff::Timestamp;
use serde_json::json;

use super::deploy::event;
use super::{Daemon, DeployError, EnvRuntime};
use crate::config::window;

/// What the caller asked to override, with `cutover deploy
/// --skip-promotion-check --reason "…"` (or `--reason` alone, for a
/// deploy window).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Overrides {
    /// Skip the promotion check.
    pub skip_promotion_check: bool,
    /// Why; needed by every override (cleaned client text).
    pub reason: Option<String>,
    /// Whether the caller's role may override a check (admin).
    pub caller_is_admin: bool,
}

/// One check a deploy overrode, to record once the deployment exists.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Overridden {
    /// `promotion check` or `deploy window`.
    pub check: &'static str,
    /// What the check would have said.
    pub refusal: String,
    /// The caller's reason.
    pub reason: String,
}

/// Whether the caller may override a check (skip the promotion check, deploy
/// outside a window): admins only. Every override goes through here.
pub(crate) fn override_allowed(caller: &str, overrides: &Overrides) -> Result<(), DeployError> {
    if overrides.caller_is_admin {
        return Ok(());
    }
    Err(DeployError::Forbidden(format!(
        "{caller} may not override a deploy's checks: only an admin token may \
         (cutover token create NAME --role admin); nothing was changed"
    )))
}

/// Records that deployment `deployment_id` overrode a check: who, which
/// check, what it would have said and why. Every override is recorded here
/// (as an `override` event of the deployment).
pub(crate) async fn record_override(
    daemon: &Daemon,
    deployment_id: i64,
    caller: &str,
    overridden: &Overridden,
) {
    let entry = crate::store::AuditEntry::new(caller, "admin", "override")
        .deployment(deployment_id)
        .details(json!({
            "check": overridden.check,
            "refusal": overridden.refusal,
            "reason": overridden.reason,
        }));
    if let Err(e) = daemon.store().append_audit(entry).await {
        tracing::error!(
            deployment = deployment_id,
            "the override could not be written to the audit log: {e}"
        );
    }
    event(
        daemon,
        deployment_id,
        cutover_core::EventKind::Override,
        &format!(
            "{caller} overrode the {}: {} (reason: {})",
            overridden.check, overridden.refusal, overridden.reason
        ),
        json!({
            "by": caller,
            "check": overridden.check,
            "refusal": overridden.refusal,
            "reason": overridden.reason,
        }),
    )
    .await;
}

/// The reason an override needs, or why there is none.
pub(crate) fn reason_for(overrides: &Overrides, what: &str) -> Result<String, String> {
    overrides
        .reason
        .as_deref()
        .map(str::trim)
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .ok_or_else(|| format!("{what} needs a reason: add --reason \"…\" (it is recorded)"))
}

/// Refuses a deploy to `env` while an operator's lock holds.
pub(crate) async fn check_lock(daemon: &Daemon, env: &EnvRuntime) -> Result<(), DeployError> {
    let Some(lock) = daemon.store.operator_lock_of(&env.name).await? else {
        return Ok(());
    };
    let until = match lock.until {
        Some(until) => format!(" until {until:.0}"),
        None => String::new(),
    };
    Err(DeployError::EnvironmentLocked(format!(
        "{} is locked by {} since {:.0}{until}: {}; nothing was changed. Ask them, or `cutover unlock -e {}` when it may be deployed again",
        env.name, lock.locked_by, lock.since, lock.reason, env.name
    )))
}

/// Outside every deploy window of `env` at `now`: refused, unless the
/// caller may override and gave a reason (then what to record).
pub(crate) fn check_window(
    env: &EnvRuntime,
    now: Timestamp,
    overrides: &Overrides,
    caller: &str,
) -> Result<Option<Overridden>, DeployError> {
    let windows = &env.config().deploy_windows;
    if window::open_now(windows, now) {
        return Ok(None);
    }
    let listed: Vec<String> = windows.iter().map(ToString::to_string).collect();
    let next = match window::next_opening(windows, now) {
        Some(opens) => {
            let wait = opens.timestamp().duration_since(now);
            let wait = std::time::Duration::try_from(wait).unwrap_or_default();
            format!(
                "the next window opens {} ({} from now)",
                opens.strftime("%a %Y-%m-%d %H:%M %Q"),
                super::promotion::human(wait)
            )
        }
        None => "no window opens in the next week".to_owned(),
    };
    let refusal = format!(
        "{} is outside its deploy windows ({}); {next}",
        env.name,
        listed.join(", ")
    );
    let Ok(reason) = reason_for(overrides, "deploying outside a window") else {
        return Err(DeployError::OutsideWindow(format!(
            "{refusal}; nothing was changed. Deploy then, or (admin) deploy now with --reason \"…\""
        )));
    };
    override_allowed(caller, overrides)?;
    Ok(Some(Overridden {
        check: "deploy window",
        refusal,
        reason,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_override_needs_a_reason_that_is_not_blank() {
        let none = Overrides::default();
        assert!(reason_for(&none, "x").is_err());
        let blank = Overrides {
            skip_promotion_check: true,
            reason: Some("  ".into()),
            caller_is_admin: true,
        };
        assert_eq!(
            reason_for(&blank, "skipping the promotion check"),
            Err(
                "skipping the promotion check needs a reason: add --reason \"…\" (it is recorded)"
                    .into()
            )
        );
        let given = Overrides {
            skip_promotion_check: true,
            reason: Some(" hotfix ".into()),
            caller_is_admin: true,
        };
        assert_eq!(reason_for(&given, "x"), Ok("hotfix".into()));
        assert!(override_allowed("alice", &given).is_ok());
        let not_admin = Overrides {
            caller_is_admin: false,
            ..given
        };
        assert!(matches!(
            override_allowed("ci", &not_admin),
            Err(DeployError::Forbidden(m)) if m.contains("only an admin")
        ));
    }
}
