//! What a deploy of a swarm service checks before it changes anything:
//! this engine is part of an active swarm and is a manager (it creates and
//! removes services). The images are checked by the docker driver's
//! preflight (present on this node, or pulled with `pull = true`).

use bollard::models::LocalNodeState;

use super::{SwarmDriver, SwarmError};

impl SwarmDriver {
    /// Checks the swarm; the first problem is the error. Returns how many
    /// nodes the swarm has.
    pub async fn preflight(&self) -> Result<i64, SwarmError> {
        let docker = self.docker.client().await?;
        let info = docker.info().await.map_err(|e| {
            self.docker
                .api_error("asking the engine for its swarm state", &e)
        })?;
        let swarm = info.swarm.unwrap_or_default();
        let state = swarm.local_node_state.unwrap_or(LocalNodeState::INACTIVE);
        if state != LocalNodeState::ACTIVE {
            return Err(SwarmError::NotActive {
                state: match state {
                    LocalNodeState::EMPTY => "unknown".to_owned(),
                    other => other.to_string(),
                },
            });
        }
        if swarm.control_available != Some(true) {
            return Err(SwarmError::NotManager {
                node: swarm.node_id.unwrap_or_default(),
            });
        }
        Ok(swarm.nodes.unwrap_or(1))
    }
}
