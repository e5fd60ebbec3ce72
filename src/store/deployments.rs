//! Deployments: moving one environment from one release to another, persisted
//! as a state and an append-only history of events.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::codec::{self, text_enum};
use super::{Store, StoreError};

text_enum! {
    /// Why a deployment was started.
    pub enum DeploymentKind in "deployments.kind" {
        /// Moving forward to a new version.
        Deploy = "deploy",
        /// Going back to an earlier version.
        Rollback = "rollback",
    }
}

text_enum! {
    /// Where a deployment stands. Every state but `Running` is final.
    pub enum DeploymentState in "deployments.state" {
        /// In progress.
        Running = "running",
        /// The new version serves all traffic.
        Succeeded = "succeeded",
        /// Stopped by an error; nothing was rolled back.
        Failed = "failed",
        /// Stopped, and traffic went back to the previous version.
        RolledBack = "rolled_back",
        /// The daemon stopped (or crashed) while it was running.
        Interrupted = "interrupted",
    }
}

/// What [`Store::create_deployment`] needs to start a deployment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct NewDeployment {
    /// The environment being deployed to.
    pub environment: String,
    /// The version being deployed.
    pub version: String,
    /// The version serving when the deployment started, if any.
    pub previous_version: Option<String>,
    /// `blue-green`, `canary`, `rolling`.
    pub strategy: String,
    /// Deploy or rollback.
    pub kind: DeploymentKind,
    /// Who asked for it, e.g. `alice@host`.
    pub requested_by: String,
    /// The commit it releases (hex), when the client said.
    #[serde(default)]
    pub commit_sha: Option<String>,
    /// When that commit was made, when known (the lead time starts there).
    #[serde(default)]
    pub commit_time: Option<Timestamp>,
}

/// A deployment as recorded.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Deployment {
    /// Its number, increasing with every deployment.
    pub id: i64,
    /// The environment deployed to.
    pub environment: String,
    /// The version deployed.
    pub version: String,
    /// The version serving when the deployment started, if any.
    pub previous_version: Option<String>,
    /// `blue-green`, `canary`, `rolling`.
    pub strategy: String,
    /// Deploy or rollback.
    pub kind: DeploymentKind,
    /// Where it stands.
    pub state: DeploymentState,
    /// Why it ended as it did, if said.
    pub reason: Option<String>,
    /// Who asked for it.
    pub requested_by: String,
    /// When it was created.
    pub started_at: Timestamp,
    /// When it reached a final state; `None` while running.
    pub finished_at: Option<Timestamp>,
    /// Running, and its release waits for approvals (its saved phase).
    #[serde(default)]
    pub awaiting_approval: bool,
    /// The commit it releases (hex), when the client said.
    #[serde(default)]
    pub commit_sha: Option<String>,
    /// When that commit was made, when known.
    #[serde(default)]
    pub commit_time: Option<Timestamp>,
}

/// One entry of a deployment's history.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Event {
    /// Its number, increasing with every event of every deployment.
    pub id: i64,
    /// The deployment it belongs to.
    pub deployment_id: i64,
    /// When it was recorded.
    pub at: Timestamp,
    /// What happened, as a short machine-readable word, e.g. `switched`.
    pub kind: String,
    /// What happened, for people.
    pub message: String,
    /// Details, free-form.
    pub data: serde_json::Value,
}

/// One canary analysis of the history, for the metrics.
#[derive(Debug, Clone, PartialEq, sqlx::FromRow)]
pub struct AnalysisVerdict {
    /// The event's id (increasing).
    pub event_id: i64,
    /// The deployment's environment.
    pub environment: String,
    /// The service analysed.
    pub service: Option<String>,
    /// `pass`, `fail` or `inconclusive`.
    pub verdict: Option<String>,
}

/// The columns of a [`Deployment`], from `deployments d` joined with its
/// release's saved state (`rollouts r`): whether a running deployment awaits
/// approval is what its release last saved (the release machine's phase).
macro_rules! deployment_select {
    () => {
        "SELECT d.id, d.environment, d.version, d.previous_version, d.strategy, d.kind,
                d.state, d.reason, d.requested_by, d.started_at, d.finished_at,
                CASE WHEN d.state = 'running'
                 AND (json_extract(r.state, '$.phase.phase') = 'awaiting_approval'
                      OR (json_extract(r.state, '$.phase.phase') = 'rolling'
                          AND CAST(json_extract(r.state, '$.approvals.required') AS INTEGER)
                              > json_array_length(r.state, '$.approvals.given')))
                 THEN 1 ELSE 0 END AS awaiting_approval,
                d.commit_sha, d.commit_time
         FROM deployments d LEFT JOIN rollouts r ON r.deployment_id = d.id"
    };
}

#[derive(sqlx::FromRow)]
struct DeploymentRow {
    id: i64,
    environment: String,
    version: String,
    previous_version: Option<String>,
    strategy: String,
    kind: String,
    state: String,
    reason: Option<String>,
    requested_by: String,
    started_at: i64,
    finished_at: Option<i64>,
    awaiting_approval: i64,
    commit_sha: Option<String>,
    commit_time: Option<i64>,
}

impl TryFrom<DeploymentRow> for Deployment {
    type Error = StoreError;

    fn try_from(row: DeploymentRow) -> Result<Deployment, StoreError> {
        Ok(Deployment {
            id: row.id,
            environment: row.environment,
            version: row.version,
            previous_version: row.previous_version,
            strategy: row.strategy,
            kind: DeploymentKind::decode(&row.kind)?,
            state: DeploymentState::decode(&row.state)?,
            reason: row.reason,
            requested_by: row.requested_by,
            started_at: codec::timestamp(row.started_at, "deployments.started_at")?,
            finished_at: row
                .finished_at
                .map(|ms| codec::timestamp(ms, "deployments.finished_at"))
                .transpose()?,
            awaiting_approval: row.awaiting_approval != 0,
            commit_sha: row.commit_sha,
            commit_time: row
                .commit_time
                .map(|ms| codec::timestamp(ms, "deployments.commit_time"))
                .transpose()?,
        })
    }
}

#[derive(sqlx::FromRow)]
struct EventRow {
    id: i64,
    deployment_id: i64,
    at: i64,
    kind: String,
    message: String,
    data: String,
}

impl TryFrom<EventRow> for Event {
    type Error = StoreError;

    fn try_from(row: EventRow) -> Result<Event, StoreError> {
        Ok(Event {
            id: row.id,
            deployment_id: row.deployment_id,
            at: codec::timestamp(row.at, "events.at")?,
            kind: row.kind,
            message: row.message,
            data: codec::json(&row.data, "events.data")?,
        })
    }
}

/// Ends deployment `$1` in state `$2` with reason `$4`, stamping `$3` (kept
/// when it already ended in that state).
const FINISH_DEPLOYMENT: &str = "UPDATE deployments
     SET finished_at = CASE
             WHEN state = $2 AND finished_at IS NOT NULL THEN finished_at
             ELSE $3
         END,
         state = $2,
         reason = $4
     WHERE id = $1";

/// The one row an `INSERT … RETURNING` gives.
fn first_row<T>(rows: Vec<T>) -> Result<T, StoreError> {
    rows.into_iter()
        .next()
        .ok_or_else(|| StoreError::Corrupt("an insert returned no row".into()))
}

fn deployments_from(rows: Vec<DeploymentRow>) -> Result<Vec<Deployment>, StoreError> {
    rows.into_iter().map(Deployment::try_from).collect()
}

impl Store {
    /// Records a new deployment, `running` from now, and returns its id.
    pub async fn create_deployment(&self, d: &NewDeployment) -> Result<i64, StoreError> {
        let (now, _) = codec::now();
        let id = sqlx::query_scalar::<_, i64>(
            "INSERT INTO deployments
                 (environment, version, previous_version, strategy, kind, state,
                  requested_by, started_at, commit_sha, commit_time)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)
             RETURNING id",
        )
        .bind(&d.environment)
        .bind(&d.version)
        .bind(&d.previous_version)
        .bind(&d.strategy)
        .bind(d.kind.as_str())
        .bind(DeploymentState::Running.as_str())
        .bind(&d.requested_by)
        .bind(now)
        .bind(&d.commit_sha)
        .bind(d.commit_time.map(codec::millis))
        // Every row, not the first: SQLite commits when the statement runs
        // to its end, and only then reports a failed commit (a full disk).
        .fetch_all(&self.pool)
        .await?;
        let id = first_row(id)?;
        self.deployments_changed();
        Ok(id)
    }

    /// Appends an event, stamped now, to the history of a deployment.
    ///
    /// Fails with [`StoreError::NotFound`] if there is no such deployment.
    pub async fn add_event(
        &self,
        deployment_id: i64,
        kind: cutover_core::EventKind,
        message: &str,
        data: serde_json::Value,
    ) -> Result<Event, StoreError> {
        let (now, at) = codec::now();
        let mut writer = self.writer().await?;
        let result = sqlx::query_scalar::<_, i64>(
            "INSERT INTO events (deployment_id, at, kind, message, data)
             VALUES ($1, $2, $3, $4, $5)
             RETURNING id",
        )
        .bind(deployment_id)
        .bind(now)
        .bind(kind.as_str())
        .bind(message)
        .bind(data.to_string())
        // Every row, not the first: see `create_deployment`.
        .fetch_all(writer.conn())
        .await;
        let result = writer.check(result);
        let id = match result {
            Ok(ids) => first_row(ids)?,
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                return Err(StoreError::not_found("deployment", deployment_id));
            }
            Err(e) => return Err(e.into()),
        };
        self.deployments_changed();
        Ok(Event {
            id,
            deployment_id,
            at,
            kind: kind.as_str().to_owned(),
            message: message.to_owned(),
            data,
        })
    }

    /// Puts a deployment in `state`, with `reason`, and stamps `finished_at`
    /// (cleared again if `state` is `Running`).
    ///
    /// Finishing twice in the same state keeps the first `finished_at`, so the
    /// call is safe to repeat. Fails with [`StoreError::NotFound`] if there is
    /// no such deployment.
    pub async fn finish_deployment(
        &self,
        id: i64,
        state: DeploymentState,
        reason: Option<&str>,
    ) -> Result<(), StoreError> {
        let (now, _) = codec::now();
        let finished_at = (state != DeploymentState::Running).then_some(now);
        let mut writer = self.writer().await?;
        let done = sqlx::query(FINISH_DEPLOYMENT)
            .bind(id)
            .bind(state.as_str())
            .bind(finished_at)
            .bind(reason)
            .execute(writer.conn())
            .await;
        let done = writer.check(done)?;
        if done.rows_affected() == 0 {
            return Err(StoreError::not_found("deployment", id));
        }
        self.deployments_changed();
        Ok(())
    }

    /// [`Store::finish_deployment`] and then releases `holder`'s lock of
    /// `environment` (if it holds it), in one transaction: whoever sees the
    /// deployment ended also finds the lock free (a `cutover deploy` right
    /// after `cutover rollback` returns is not refused), and the lock is
    /// never released without the outcome.
    pub async fn conclude_deployment(
        &self,
        id: i64,
        state: DeploymentState,
        reason: Option<&str>,
        environment: &str,
        holder: &str,
    ) -> Result<(), StoreError> {
        let (now, _) = codec::now();
        let finished_at = (state != DeploymentState::Running).then_some(now);
        let mut writer = self.writer().await?;
        let written = async {
            let mut tx = sqlx::Connection::begin(writer.conn()).await?;
            let done = sqlx::query(FINISH_DEPLOYMENT)
                .bind(id)
                .bind(state.as_str())
                .bind(finished_at)
                .bind(reason)
                .execute(&mut *tx)
                .await?;
            if done.rows_affected() == 0 {
                return Ok(false);
            }
            sqlx::query("DELETE FROM locks WHERE environment = $1 AND holder = $2")
                .bind(environment)
                .bind(holder)
                .execute(&mut *tx)
                .await?;
            tx.commit().await.map(|()| true)
        }
        .await;
        if !writer.check(written)? {
            return Err(StoreError::not_found("deployment", id));
        }
        self.deployments_changed();
        Ok(())
    }

    /// The deployment `id`, if it exists.
    pub async fn deployment(&self, id: i64) -> Result<Option<Deployment>, StoreError> {
        sqlx::query_as::<_, DeploymentRow>(concat!(deployment_select!(), " WHERE d.id = $1"))
            .bind(id)
            .fetch_optional(&self.pool)
            .await?
            .map(Deployment::try_from)
            .transpose()
    }

    /// The latest `limit` deployments, of one environment or of all, newest first.
    pub async fn deployments(
        &self,
        environment: Option<&str>,
        limit: u32,
    ) -> Result<Vec<Deployment>, StoreError> {
        let limit = i64::from(limit);
        let rows = match environment {
            Some(environment) => {
                sqlx::query_as::<_, DeploymentRow>(concat!(
                    deployment_select!(),
                    " WHERE d.environment = $1 ORDER BY d.id DESC LIMIT $2"
                ))
                .bind(environment)
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as::<_, DeploymentRow>(concat!(
                    deployment_select!(),
                    " ORDER BY d.id DESC LIMIT $1"
                ))
                .bind(limit)
                .fetch_all(&self.pool)
                .await?
            }
        };
        deployments_from(rows)
    }

    /// The deployments of `environment` that ended at or after `since` (unix
    /// milliseconds), and those still running, oldest first.
    pub(crate) async fn deployments_since(
        &self,
        environment: &str,
        since: i64,
    ) -> Result<Vec<Deployment>, StoreError> {
        let rows = sqlx::query_as::<_, DeploymentRow>(concat!(
            deployment_select!(),
            " WHERE d.environment = $1 AND (d.finished_at >= $2 OR d.state = 'running')
              ORDER BY d.id"
        ))
        .bind(environment)
        .bind(since)
        .fetch_all(&self.pool)
        .await?;
        deployments_from(rows)
    }

    /// The history of a deployment, oldest first. Empty for an unknown id.
    pub async fn events(&self, deployment_id: i64) -> Result<Vec<Event>, StoreError> {
        sqlx::query_as::<_, EventRow>(
            "SELECT id, deployment_id, at, kind, message, data
             FROM events WHERE deployment_id = $1
             ORDER BY id",
        )
        .bind(deployment_id)
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(Event::try_from)
        .collect()
    }

    /// Every deployment whose id is `first` or more, oldest first: what the
    /// metrics' tally (`src/telemetry`) has not seen end yet.
    pub async fn deployments_from(&self, first: i64) -> Result<Vec<Deployment>, StoreError> {
        let rows = sqlx::query_as::<_, DeploymentRow>(concat!(
            deployment_select!(),
            " WHERE d.id >= $1 ORDER BY d.id"
        ))
        .bind(first)
        .fetch_all(&self.pool)
        .await?;
        deployments_from(rows)
    }

    /// The canary analyses recorded after event `after` (at most `limit`),
    /// oldest first: each one's event id, environment, service and verdict
    /// (`pass`, `fail`, `inconclusive`; `None` when the event has none).
    pub async fn analysis_verdicts_after(
        &self,
        after: i64,
        limit: u32,
    ) -> Result<Vec<AnalysisVerdict>, StoreError> {
        let rows = sqlx::query_as::<_, AnalysisVerdict>(
            "SELECT e.id AS event_id, d.environment AS environment,
                    json_extract(e.data, '$.service') AS service,
                    json_extract(e.data, '$.verdict.verdict') AS verdict
             FROM events e JOIN deployments d ON d.id = e.deployment_id
             WHERE e.kind = 'analysis' AND e.id > $1
             ORDER BY e.id LIMIT $2",
        )
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(rows)
    }

    /// Every deployment still `running`, oldest first: after a restart, the
    /// ones the previous daemon left unfinished.
    pub async fn running_deployments(&self) -> Result<Vec<Deployment>, StoreError> {
        let rows = sqlx::query_as::<_, DeploymentRow>(concat!(
            deployment_select!(),
            " WHERE d.state = 'running' ORDER BY d.id"
        ))
        .fetch_all(&self.pool)
        .await?;
        deployments_from(rows)
    }
}
