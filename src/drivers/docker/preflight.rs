//! What a deploy checks before it changes anything: the engine answers, every
//! image of the release is on this machine (or is pulled, with `pull = true`),
//! and which images would run as root (a warning, not an error).

use bollard::query_parameters::CreateImageOptionsBuilder;
use futures_util::StreamExt;

use super::client::status_of;
use super::{DockerDriver, DockerError};

/// One image a deploy needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImageToCheck {
    /// The service that runs it.
    pub service: String,
    /// The image reference of the release (`hello:v2`).
    pub image: String,
    /// Pull it first (`pull = true`).
    pub pull: bool,
}

/// What the checks found, when nothing stops the deploy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Preflight {
    /// Things worth telling but not worth stopping for.
    pub warnings: Vec<String>,
}

impl DockerDriver {
    /// Checks the engine and `images`; the first problem is the error.
    pub async fn preflight(&self, images: &[ImageToCheck]) -> Result<Preflight, DockerError> {
        self.ping().await?;
        let docker = self.client().await?;
        let mut found = Preflight::default();
        for check in images {
            if check.pull {
                self.pull(&check.image).await?;
            }
            let inspected = docker.inspect_image(&check.image).await.map_err(|e| {
                if status_of(&e) == Some(404) {
                    DockerError::ImageMissing {
                        image: check.image.clone(),
                        service: check.service.clone(),
                    }
                } else {
                    self.api_error(format!("inspecting image {}", check.image), &e)
                }
            })?;
            let user = inspected.config.and_then(|c| c.user).unwrap_or_default();
            if runs_as_root(&user) {
                found.warnings.push(format!(
                    "image {} of service {} runs as root (USER {}): a process that escapes the container is root on the host; set a non-root USER in its Dockerfile",
                    check.image,
                    check.service,
                    if user.is_empty() { "not set" } else { user.as_str() }
                ));
            }
        }
        Ok(found)
    }

    async fn pull(&self, image: &str) -> Result<(), DockerError> {
        let docker = self.client().await?;
        let options = CreateImageOptionsBuilder::default()
            .from_image(image)
            .build();
        let mut progress = docker.create_image(Some(options), None, None);
        while let Some(step) = progress.next().await {
            if let Err(e) = step {
                return Err(DockerError::Pull {
                    image: image.to_owned(),
                    reason: super::client::describe(&e),
                });
            }
        }
        Ok(())
    }
}

/// Whether an image's `USER` means root: unset, `root`, or uid 0.
pub(super) fn runs_as_root(user: &str) -> bool {
    let who = user.split(':').next().unwrap_or_default().trim();
    who.is_empty() || who == "root" || who == "0"
}

impl DockerDriver {
    /// The engine's id of `image` (`sha256:…`, the digest of the image's
    /// configuration, which names its layers): what a release of a container
    /// service is, whatever tag it was built or pulled under.
    pub async fn image_id(&self, image: &str) -> Result<String, DockerError> {
        let docker = self.client().await?;
        let inspected = docker
            .inspect_image(image)
            .await
            .map_err(|e| self.api_error(format!("inspecting image {image}"), &e))?;
        inspected.id.ok_or_else(|| DockerError::Api {
            what: format!("inspecting image {image}"),
            reason: "the engine gave no image id".into(),
        })
    }
}
