//! What a deploy checks before it takes the lock or changes anything: for the
//! services it rolls in containers, that the Docker daemon answers and that
//! each image of the release is on this machine (or can be pulled, with
//! `pull = true`). A failure refuses the deploy with what to do about it; a
//! finding that should not stop it (an image that runs as root) comes back as
//! a warning, recorded as an event of the deployment.

use super::{Daemon, DeployError};
use crate::drivers::docker::{ImageToCheck, docker_host};

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
    let images: Vec<ImageToCheck> = services
        .iter()
        .filter_map(|name| {
            let docker = daemon.config.services.get(name)?.docker.as_ref()?;
            Some(ImageToCheck {
                service: name.clone(),
                image: docker.image_for(version),
                pull: docker.pull,
            })
        })
        .collect();
    if images.is_empty() {
        return Ok(Checked::default());
    }
    let found = daemon
        .driver
        .docker
        .preflight(&images)
        .await
        .map_err(|e| DeployError::Preflight(e.to_string()))?;
    let list: Vec<&str> = images.iter().map(|i| i.image.as_str()).collect();
    Ok(Checked {
        summary: Some(format!(
            "Docker at {} answers; image {} present",
            docker_host(),
            list.join(", ")
        )),
        warnings: found.warnings,
    })
}
