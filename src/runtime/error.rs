//! Why a deploy, rollback or operator command was refused before anything
//! changed: the one error type of the runtime's entry points.

use crate::store::StoreError;

/// Why a deployment could not start.
#[derive(Debug, thiserror::Error)]
pub enum DeployError {
    /// The request itself is wrong (unknown environment, bad version, nothing to roll back to).
    #[error("{0}")]
    BadRequest(String),
    /// Another deployment holds the environment's lock.
    #[error("{0}")]
    Locked(StoreError),
    /// A check before the deploy failed (an image missing, the Docker daemon
    /// unreachable); nothing was changed.
    #[error("{0}")]
    Preflight(String),
    /// An operator command that does not apply now.
    #[error("{0}")]
    Refused(String),
    /// An operator locked the environment (`cutover lock`).
    #[error("{0}")]
    EnvironmentLocked(String),
    /// The environment promotes from another one, and the release has not
    /// run there as it must (the message says what is missing).
    #[error("{0}")]
    PromotionRequired(String),
    /// Outside every deploy window of the environment.
    #[error("{0}")]
    OutsideWindow(String),
    /// The caller's role may not do this (an override by a non-admin).
    #[error("{0}")]
    Forbidden(String),
    /// The store failed.
    #[error("state store: {0}")]
    Store(StoreError),
    /// A bug or an impossible state.
    #[error("{0}")]
    Internal(String),
}

impl From<StoreError> for DeployError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::LockHeld { .. } => DeployError::Locked(e),
            other => DeployError::Store(other),
        }
    }
}
