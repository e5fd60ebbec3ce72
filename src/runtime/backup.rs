//! The backup step of a deployment: before expand migrations, every
//! database of the environment (`Config::databases_in`) with `backup.before_deploy = true` is backed up (and
//! verified when `verify = true`). A failed backup ends the deployment
//! before anything changes (a `backup_failed` event says which database and
//! why); each backup's id is an event in the deployment's history.

use serde_json::json;

use super::Daemon;
use super::deploy::event;
use crate::db::backup::{Backups, Trigger};

/// Backs up the databases that ask for it; the ids taken, or why not.
pub(crate) async fn before_deploy(
    daemon: &Daemon,
    env: &str,
    deployment_id: i64,
    version: &str,
) -> Result<Vec<String>, String> {
    let mut taken = Vec::new();
    for (name, database) in daemon.config.databases_in(env) {
        if !database.backup.as_ref().is_some_and(|b| b.before_deploy) {
            continue;
        }
        if !database.is_postgres() && !crate::db::migrate::sqlite_exists(&database.url) {
            let message = format!("database {name} does not exist yet: nothing to back up");
            event(
                daemon,
                deployment_id,
                cutover_core::EventKind::Backup,
                &message,
                json!({ "database": name }),
            )
            .await;
            continue;
        }
        let backups = match Backups::new(name, database) {
            Ok(backups) => backups,
            Err(e) => return Err(failed(daemon, deployment_id, name, e.to_string()).await),
        };
        let trigger = Trigger {
            kind: "before-deploy".into(),
            release: Some(version.to_owned()),
            deployment: Some(deployment_id.to_string()),
        };
        let manifest = match backups.create(trigger).await {
            Ok(manifest) => manifest,
            Err(e) => {
                let why = format!("database {name}: {e}");
                return Err(failed(daemon, deployment_id, name, why).await);
            }
        };
        let message = format!(
            "backed up database {name}: {} ({} bytes{})",
            manifest.id,
            manifest.size,
            if manifest.verified_at.is_some() {
                ", verified"
            } else {
                ""
            }
        );
        let data = json!({ "database": name, "backup_id": manifest.id, "verified": manifest.verified_at.is_some() });
        event(
            daemon,
            deployment_id,
            cutover_core::EventKind::Backup,
            &message,
            data,
        )
        .await;
        taken.push(manifest.id);
    }
    Ok(taken)
}

/// Records that the backup of database `name` failed (a `backup_failed`
/// event, which notifications report as `backup.failed`); returns `why`.
async fn failed(daemon: &Daemon, deployment_id: i64, name: &str, why: String) -> String {
    event(
        daemon,
        deployment_id,
        cutover_core::EventKind::BackupFailed,
        &format!("backup of database {name} failed: {why}"),
        json!({ "database": name, "error": why }),
    )
    .await;
    why
}
