//! What the DORA figures read (`crate::dora`): an environment's deployments
//! that ended since a time (and those still running), each with when its
//! release first took traffic, read from its events.

use std::collections::BTreeMap;

use jiff::Timestamp;

use super::codec;
use super::deployments::Deployment;
use super::{Store, StoreError};

/// The event kinds that mean traffic reached a deployment's release (the
/// query's `IN` list says the same; a test keeps them equal): a
/// blue-green switch (`switch`), a warm rollback's swap (`switched`), a
/// canary step (`step`), an operator's promotion (`promoted`), a service
/// kept on the new release (`kept`), the end of a rollout (`finished`).
pub const SERVED_KINDS: &[&str] = &["switch", "switched", "step", "promoted", "kept", "finished"];

/// When each deployment of environment `$1` that ended at or after `$2` (or
/// runs) first took traffic.
const FIRST_SERVED: &str = "SELECT e.deployment_id, MIN(e.at)
     FROM events e JOIN deployments d ON d.id = e.deployment_id
     WHERE d.environment = $1 AND (d.finished_at >= $2 OR d.state = 'running')
       AND e.kind IN ('switch', 'switched', 'step', 'promoted', 'kept', 'finished')
     GROUP BY e.deployment_id";

/// One deployment as the DORA figures see it.
#[derive(Debug, Clone, PartialEq)]
pub struct DoraRow {
    /// The deployment.
    pub deployment: Deployment,
    /// When its release first took traffic (the first event of a kind in
    /// [`SERVED_KINDS`]); `None` if it never did.
    pub served_at: Option<Timestamp>,
}

impl Store {
    /// The deployments of `environment` that ended at or after `since`, and
    /// those still running, oldest first, each with when it first served.
    pub async fn dora_history(
        &self,
        environment: &str,
        since: Timestamp,
    ) -> Result<Vec<DoraRow>, StoreError> {
        let since = codec::millis(since);
        let deployments = self.deployments_since(environment, since).await?;
        let served: Vec<(i64, i64)> = sqlx::query_as(FIRST_SERVED)
            .bind(environment)
            .bind(since)
            .fetch_all(&self.pool)
            .await?;
        let mut served: BTreeMap<i64, Timestamp> = served
            .into_iter()
            .map(|(id, at)| Ok((id, codec::timestamp(at, "events.at")?)))
            .collect::<Result<_, StoreError>>()?;
        Ok(deployments
            .into_iter()
            .map(|deployment| DoraRow {
                served_at: served.remove(&deployment.id),
                deployment,
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use cutover_core::EventKind;

    #[test]
    fn served_kinds_are_event_kinds_and_the_querys_list() {
        for kind in super::SERVED_KINDS {
            assert!(
                EventKind::ALL.iter().any(|k| k.as_str() == *kind),
                "{kind} is no event kind"
            );
            assert!(super::FIRST_SERVED.contains(&format!("'{kind}'")), "{kind}");
        }
        let listed = super::FIRST_SERVED.matches('\'').count() / 2;
        // 'running' is quoted too.
        assert_eq!(listed, super::SERVED_KINDS.len() + 1);
    }
}
