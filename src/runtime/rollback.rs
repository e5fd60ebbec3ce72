//! `cutover rollback`, and starting the serving release again after a
//! restart found none of its instances. Both are releases of kind
//! `Rollback` / `Restart` carried out by the same machine as a deploy: a
//! rollback while the previous release is warm is one table swap; otherwise
//! the previous release is started again, blue-green. The release in its
//! rollback window is superseded first (it retires nothing: the rollback
//! retires the release it rolls back from when its own window ends).
//!
//! Also how an operator ends a deployment a restarted daemon could not
//! restore (`cutover abort` / `cutover rollback` on it).

use cutover_core::EventKind;
use std::sync::Arc;

use cutover_core::{Release, ReleaseKind};
use serde_json::json;

use super::deploy::{create, event};
use super::environment::EnvRuntime;
use super::executor::{self, Executor};
use super::plan::{self, Extras};
use super::{Daemon, DeployError, retire};
use crate::store::{DeploymentKind, DeploymentState, NewDeployment};

/// Starts a rollback to the previous release; returns at once like
/// [`super::deploy::begin_deploy`].
pub async fn begin_rollback(
    daemon: &Arc<Daemon>,
    environment: Option<&str>,
    requested_by: &str,
) -> Result<(String, i64), DeployError> {
    let env = daemon.environment(environment)?.clone();
    if env.releases.stuck().is_some() {
        end_stuck(daemon, &env, requested_by, "rolled back").await?;
    }
    let serving = daemon.store.serving(&env.name).await?.ok_or_else(|| {
        DeployError::BadRequest(format!("nothing has been deployed to {} yet", env.name))
    })?;
    let previous = serving.previous.clone().ok_or_else(|| {
        DeployError::BadRequest(format!(
            "{} has no previous release to roll back to (serving {})",
            env.name, serving.current
        ))
    })?;
    let id = create(
        daemon,
        &env.name,
        NewDeployment {
            environment: env.name.clone(),
            version: previous.clone(),
            previous_version: Some(serving.current.clone()),
            strategy: "switch".into(),
            kind: DeploymentKind::Rollback,
            requested_by: requested_by.to_owned(),
            commit_sha: None,
            commit_time: None,
        },
        &format!("rollback to {previous}"),
    )
    .await?;
    event(
        daemon,
        id,
        EventKind::Started,
        &format!("rolling {} back to {previous}", env.name),
        json!({ "version": previous }),
    )
    .await;
    let (d, name, holder) = (daemon.clone(), env.name.clone(), requested_by.to_owned());
    let current = serving.current.clone();
    tokio::spawn(async move {
        // The release in its window gives its instances over to this one.
        env.releases.supersede_and_wait(id).await;
        let (release_plan, has_previous) = plan::release_plan(
            &d,
            &env,
            &previous,
            Some(&current),
            None,
            Extras {
                kind: ReleaseKind::Rollback,
                backup: false,
                migrate: false,
                contract: Vec::new(),
            },
        );
        let release = Release::new(release_plan, &has_previous);
        executor::spawn(Executor::new(d, env, id, holder, release), true).await;
    });
    Ok((name, id))
}

/// Starts the serving release again after a restart found none of its
/// instances (for example after a clean stop of the daemon).
pub(crate) async fn restart_serving(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    version: &str,
) -> Result<(), DeployError> {
    let holder = "cutover daemon (restart)";
    let id = create(
        daemon,
        &env.name,
        NewDeployment {
            environment: env.name.clone(),
            version: version.to_owned(),
            previous_version: Some(version.to_owned()),
            strategy: "restart".into(),
            kind: DeploymentKind::Deploy,
            requested_by: holder.to_owned(),
            commit_sha: None,
            commit_time: None,
        },
        &format!("deploy {version} (restart)"),
    )
    .await?;
    let (release_plan, has_previous) = plan::release_plan(
        daemon,
        env,
        version,
        None,
        None,
        Extras {
            kind: ReleaseKind::Restart,
            backup: false,
            migrate: false,
            contract: Vec::new(),
        },
    );
    let release = Release::new(release_plan, &has_previous);
    let handle = executor::spawn(
        Executor::new(daemon.clone(), env.clone(), id, holder.to_owned(), release),
        true,
    )
    .await;
    handle.wait_done().await;
    Ok(())
}

/// Ends a deployment a restarted daemon could not restore: recorded as
/// failed, its release marked done, the lock freed, and every instance that
/// does not run the serving release and is not routed drained and stopped.
pub(crate) async fn end_stuck(
    daemon: &Arc<Daemon>,
    env: &Arc<EnvRuntime>,
    by: &str,
    how: &str,
) -> Result<i64, DeployError> {
    let Some(stuck) = env.releases.stuck() else {
        return Err(DeployError::BadRequest(format!(
            "no deployment in {} needs an operator",
            env.name
        )));
    };
    let reason = format!("{how} by {by}: {}", stuck.reason);
    event(
        daemon,
        stuck.id,
        EventKind::EndedByOperator,
        &reason,
        json!({ "by": by }),
    )
    .await;
    let running = daemon
        .store
        .deployment(stuck.id)
        .await?
        .is_some_and(|d| d.state == DeploymentState::Running);
    if running {
        daemon
            .store
            .finish_deployment(stuck.id, DeploymentState::Failed, Some(&reason))
            .await?;
    }
    daemon.store.mark_release_done(stuck.id).await?;
    if let Some(lock) = daemon.store.lock(&env.name).await?
        && (lock.purpose.starts_with("deploy ") || lock.purpose.starts_with("rollback "))
    {
        daemon.store.force_unlock(&env.name).await?;
    }
    env.releases.set_stuck(None);
    let serving = daemon.store.serving(&env.name).await?.map(|s| s.current);
    let routed = env.routed_ids();
    let gone = env.take(|i| Some(&i.version) != serving.as_ref() && !routed.contains(&i.id));
    retire::retire_now(daemon, env, gone, "left by a deployment an operator ended").await;
    Ok(stuck.id)
}
