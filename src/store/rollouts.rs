//! The release machine's plan and last persisted state of each deployment, as
//! JSON documents: written before the machine's actions are carried out, read
//! back by a restarted daemon. `done` marks the releases with nothing left to
//! do; a save that switches the serving release writes both in one
//! transaction.

use super::codec;
use super::{Store, StoreError};

impl Store {
    /// Saves the plan and state of deployment `id`'s release; with
    /// `serving`, also records that version as serving `environment` (see
    /// [`Store::set_serving`]), in the same transaction: either both are
    /// written or neither.
    pub async fn save_release(
        &self,
        deployment_id: i64,
        plan: &serde_json::Value,
        state: &serde_json::Value,
        done: bool,
        serving: Option<(&str, &str)>,
    ) -> Result<(), StoreError> {
        let (now, _) = codec::now();
        let mut writer = self.writer().await?;
        let written = async {
            let mut tx = sqlx::Connection::begin(writer.conn()).await?;
            sqlx::query(
                "INSERT INTO rollouts (deployment_id, plan, state, updated_at, done)
                 VALUES ($1, $2, $3, $4, $5)
                 ON CONFLICT (deployment_id) DO UPDATE
                 SET plan = excluded.plan, state = excluded.state,
                     updated_at = excluded.updated_at, done = excluded.done",
            )
            .bind(deployment_id)
            .bind(plan.to_string())
            .bind(state.to_string())
            .bind(now)
            .bind(i64::from(done))
            .execute(&mut *tx)
            .await?;
            if let Some((environment, version)) = serving {
                sqlx::query(super::environments::SET_SERVING)
                    .bind(environment)
                    .bind(version)
                    .bind(now)
                    .execute(&mut *tx)
                    .await?;
            }
            tx.commit().await
        }
        .await;
        writer.check(written)?;
        Ok(())
    }

    /// Marks deployment `id`'s release as having nothing left to do (e.g.
    /// after an operator ended one that could not be restored).
    pub async fn mark_release_done(&self, deployment_id: i64) -> Result<(), StoreError> {
        sqlx::query("UPDATE rollouts SET done = 1 WHERE deployment_id = $1")
            .bind(deployment_id)
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The deployments whose release is not done, oldest first, with their
    /// saved plan and state.
    pub async fn unfinished_releases(
        &self,
    ) -> Result<Vec<(i64, serde_json::Value, serde_json::Value)>, StoreError> {
        let rows = sqlx::query_as::<_, (i64, String, String)>(
            "SELECT deployment_id, plan, state FROM rollouts WHERE done = 0 ORDER BY deployment_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.into_iter()
            .map(|(id, plan, state)| {
                let parse = |text: &str| {
                    serde_json::from_str(text).map_err(|e| {
                        StoreError::Corrupt(format!("release of deployment {id}: {e}"))
                    })
                };
                Ok((id, parse(&plan)?, parse(&state)?))
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use crate::store::{DeploymentKind, NewDeployment, Store};

    #[tokio::test]
    async fn a_release_is_saved_replaced_and_read_back_until_done() {
        let dir = tempfile::tempdir().expect("tempdir");
        let url = format!("sqlite://{}", dir.path().join("s.db").display());
        let store = Store::open(&url).await.expect("open");
        let id = store
            .create_deployment(&NewDeployment {
                environment: "prod".into(),
                version: "v2".into(),
                previous_version: Some("v1".into()),
                strategy: "canary".into(),
                kind: DeploymentKind::Deploy,
                requested_by: "t@h".into(),
                commit_sha: None,
                commit_time: None,
            })
            .await
            .expect("create");
        assert!(store.unfinished_releases().await.expect("read").is_empty());
        let plan = json!({"version": "v2"});
        store
            .save_release(id, &plan, &json!({"step": 1}), false, None)
            .await
            .expect("save");
        store
            .save_release(id, &plan, &json!({"step": 2}), false, Some(("prod", "v2")))
            .await
            .expect("replace");
        let unfinished = store.unfinished_releases().await.expect("read");
        assert_eq!(unfinished.len(), 1);
        assert_eq!(unfinished[0].2["step"], 2);
        let serving = store.serving("prod").await.expect("serving");
        assert_eq!(serving.map(|s| s.current).as_deref(), Some("v2"));
        store
            .save_release(id, &plan, &json!({"step": 3}), true, None)
            .await
            .expect("done");
        assert!(store.unfinished_releases().await.expect("read").is_empty());
    }
}
