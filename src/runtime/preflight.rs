//! What a deploy checks before it takes the lock or changes anything: for the
//! services it rolls in containers, that the Docker daemon answers and that
//! each image of the release is on this machine (or can be pulled, with
//! `pull = true`). A failure refuses the deploy with what to do about it; a
//! finding that should not stop it (an image that runs as root) comes back as
//! a warning, recorded as an event of the deployment.

use super::{Daemon, DeployError};
use crate::drivers::ServiceToCheck;

/// What passed, for the deployment's events.
#[derive(Debug, Default)]
pub(crate) struct Checked {
    /// One line saying what was checked; `None` when nothing needed checking.
    pub summary: Option<String>,
    /// Warnings to record.
    pub warnings: Vec<String>,
}

/// Checks what deploying `version` of `services` needs; see the module doc.
pub(crate) async fn check(
    daemon: &Daemon,
    version: &str,
    services: &[String],
) -> Result<Checked, DeployError> {
    let wanted: Vec<ServiceToCheck<'_>> = services
        .iter()
        .filter_map(|name| {
            Some(ServiceToCheck {
                service: name,
                version,
                docker: daemon.config.services.get(name)?.docker.as_ref(),
            })
        })
        .collect();
    let found = daemon
        .driver
        .preflight(&wanted)
        .await
        .map_err(|e| DeployError::Preflight(e.to_string()))?;
    Ok(Checked {
        summary: found.summary,
        warnings: found.warnings,
    })
}
