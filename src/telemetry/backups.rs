//! The backup gauges: per environment and database with `backup`, when
//! the newest good backup was taken and its size, from the manifests in
//! the backup folder (`src/db/backup/manifest.rs`) — whoever took it (a
//! deploy, `cutover backup`, a timer).

use jiff::Timestamp;

use super::text::Family;
use crate::db::backup::manifest::Manifest;
use crate::runtime::Daemon;

/// When the newest good backup of a database was taken.
pub const LAST_SUCCESS: &str = "cutover_backup_last_success_timestamp_seconds";
/// The encrypted size of that backup.
pub const SIZE_BYTES: &str = "cutover_backup_size_bytes";

/// Appends the backup gauges of every environment's databases to `out`.
pub(super) async fn render(daemon: &Daemon, out: &mut String) {
    let mut wanted = Vec::new();
    for env in daemon.environments() {
        for (name, db) in daemon.config().databases_in(env.name()) {
            if let Some(backup) = &db.backup {
                wanted.push((env.name().to_owned(), name.clone(), backup.dir.clone()));
            }
        }
    }
    if wanted.is_empty() {
        return;
    }
    let found = tokio::task::spawn_blocking(move || {
        wanted
            .into_iter()
            .filter_map(|(env, name, dir)| match Manifest::list(&dir, &name) {
                Ok(list) => newest_good(&list).map(|m| (env, name, m)),
                Err(e) => {
                    tracing::warn!(database = %name, dir = %dir.display(), error = %e, "metrics: cannot list the backups");
                    None
                }
            })
            .collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut last = Family::gauge(
        LAST_SUCCESS,
        "Unix time of the newest backup of a database whose verification did not fail, by environment and database.",
    );
    let mut size = Family::gauge(
        SIZE_BYTES,
        "Size of that backup's encrypted file, by environment and database.",
    );
    for (env, name, (at, bytes)) in found {
        let labels = vec![("environment", env), ("database", name)];
        last.push(labels.clone(), at);
        #[allow(clippy::cast_precision_loss)] // a file's size: exact below 2^53 bytes
        size.push(labels, bytes as f64);
    }
    last.write_to(out);
    size.write_to(out);
}

/// The time (unix seconds) and size of the newest backup in `list` (oldest
/// first) that was taken and not found bad by a verification.
fn newest_good(list: &[Manifest]) -> Option<(f64, u64)> {
    list.iter().rev().find_map(|m| {
        if m.verification.as_ref().is_some_and(|v| !v.ok) {
            return None;
        }
        let at: Timestamp = m.created_at.parse().ok()?;
        #[allow(clippy::cast_precision_loss)] // unix milliseconds: below 2^52
        let seconds = at.as_millisecond() as f64 / 1000.0;
        Some((seconds, m.size))
    })
}
