//! Connecting to the Docker Engine and what can go wrong talking to it. The
//! connection is made on first use, honouring `DOCKER_HOST`, and the API
//! version is negotiated down to what the engine speaks (so an older engine
//! works). Every error says what to do about it.

use std::time::Duration;

use bollard::Docker;

use super::DockerDriver;

/// How long connecting (and agreeing on an API version) may take.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// What can go wrong with the docker driver.
#[derive(Debug, thiserror::Error)]
pub enum DockerError {
    /// The engine cannot be reached.
    #[error(
        "cannot reach the Docker daemon at {host}: {reason}. Is Docker running? (cutover uses DOCKER_HOST, else unix:///var/run/docker.sock)"
    )]
    Unreachable {
        /// Where it was looked for.
        host: String,
        /// Why the connection failed.
        reason: String,
    },
    /// The image is not on this machine.
    #[error(
        "image {image} is not on this machine, and cutover does not pull it unless `pull = true`: build or load it first (`docker build -t {image} .`, `docker load`, or `docker pull {image}`), or set pull = true for service {service}"
    )]
    ImageMissing {
        /// The image reference.
        image: String,
        /// The service that wants it.
        service: String,
    },
    /// Pulling the image failed.
    #[error("cannot pull image {image}: {reason}")]
    Pull {
        /// The image reference.
        image: String,
        /// The engine's answer.
        reason: String,
    },
    /// The engine refused or failed a request.
    #[error("{what}: {reason}")]
    Api {
        /// What was being done ("creating container x").
        what: String,
        /// The engine's answer.
        reason: String,
    },
}

/// The engine's address as it will be used: `DOCKER_HOST`, else the local socket.
pub fn docker_host() -> String {
    std::env::var("DOCKER_HOST")
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unix:///var/run/docker.sock".to_owned())
}

/// The HTTP status of an engine error, if it answered at all.
pub(in crate::drivers) fn status_of(e: &bollard::errors::Error) -> Option<u16> {
    match e {
        bollard::errors::Error::DockerResponseServerError { status_code, .. } => Some(*status_code),
        _ => None,
    }
}

/// An engine error as text: the engine's message when it answered, the
/// transport's error chain otherwise.
pub(in crate::drivers) fn describe(e: &bollard::errors::Error) -> String {
    match e {
        bollard::errors::Error::DockerResponseServerError { message, .. } => message.clone(),
        other => {
            let mut text = other.to_string();
            let mut source = std::error::Error::source(other);
            while let Some(s) = source {
                text.push_str(": ");
                text.push_str(&s.to_string());
                source = s.source();
            }
            text
        }
    }
}

/// Whether an error means the engine could not be talked to at all.
pub(super) fn is_transport(e: &bollard::errors::Error) -> bool {
    use bollard::errors::Error as E;
    matches!(
        e,
        E::SocketNotFoundError(_)
            | E::HyperResponseError { .. }
            | E::RequestTimeoutError
            | E::IOError { .. }
            | E::UnsupportedURISchemeError { .. }
    )
}

impl DockerDriver {
    /// The connected client (connecting now if needed).
    pub(in crate::drivers) async fn client(&self) -> Result<&Docker, DockerError> {
        self.inner
            .client
            .get_or_try_init(|| async {
                let host = docker_host();
                let unreachable = |reason: String| DockerError::Unreachable {
                    host: host.clone(),
                    reason,
                };
                let docker =
                    Docker::connect_with_defaults().map_err(|e| unreachable(describe(&e)))?;
                match tokio::time::timeout(CONNECT_TIMEOUT, docker.negotiate_version()).await {
                    Ok(Ok(docker)) => Ok(docker),
                    Ok(Err(e)) => Err(unreachable(describe(&e))),
                    Err(_) => Err(unreachable(format!("no answer within {CONNECT_TIMEOUT:?}"))),
                }
            })
            .await
    }

    /// An error from a request: [`DockerError::Unreachable`] when the engine
    /// could not be talked to, else [`DockerError::Api`].
    pub(in crate::drivers) fn api_error(
        &self,
        what: impl Into<String>,
        e: &bollard::errors::Error,
    ) -> DockerError {
        if is_transport(e) {
            DockerError::Unreachable {
                host: docker_host(),
                reason: describe(e),
            }
        } else {
            DockerError::Api {
                what: what.into(),
                reason: describe(e),
            }
        }
    }

    /// Checks that the engine answers (`GET /_ping`).
    pub async fn ping(&self) -> Result<(), DockerError> {
        let docker = self.client().await?;
        docker
            .ping()
            .await
            .map(drop)
            .map_err(|e| DockerError::Unreachable {
                host: docker_host(),
                reason: describe(&e),
            })
    }
}
