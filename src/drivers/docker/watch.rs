//! Noticing that a container exited: one task per container waits on the
//! engine (`POST /containers/{id}/wait`) and records how it ended, so that
//! [`DockerDriver::is_running`] answers without a request, as the process
//! driver's reaper does for processes.

use std::time::Duration;

use bollard::query_parameters::{InspectContainerOptions, WaitContainerOptionsBuilder};
use futures_util::StreamExt;
use tokio::sync::watch;

use super::DockerDriver;
use super::client::status_of;

/// How often a watcher that lost its wait request checks instead.
const POLL: Duration = Duration::from_millis(500);

impl DockerDriver {
    /// Starts watching container `id` (once; watching twice is a no-op).
    pub(super) fn watch(&self, id: &str, instance_id: &str) {
        let (tx, rx) = watch::channel(None);
        {
            let mut exits = self.exits();
            if exits.contains_key(id) {
                return;
            }
            exits.insert(id.to_owned(), rx);
        }
        let (driver, id, instance_id) = (self.clone(), id.to_owned(), instance_id.to_owned());
        tokio::spawn(async move {
            tokio::select! {
                ended = driver.wait_exit(&id) => {
                    tracing::info!(instance = %instance_id, container = %super::run::short(&id), %ended, "container exited");
                    tx.send_replace(Some(ended));
                }
                // Forgotten: nobody will ask any more.
                () = tx.closed() => {}
            }
        });
    }

    /// Waits until container `id` no longer runs; says how it ended.
    async fn wait_exit(&self, id: &str) -> String {
        loop {
            let Ok(docker) = self.client().await else {
                tokio::time::sleep(POLL).await;
                continue;
            };
            let options = WaitContainerOptionsBuilder::default()
                .condition("not-running")
                .build();
            let mut waits = docker.wait_container(id, Some(options));
            match waits.next().await {
                Some(Ok(r)) => return format!("exit status {}", r.status_code),
                Some(Err(bollard::errors::Error::DockerContainerWaitError { code, .. })) => {
                    return format!("exit status {code}");
                }
                Some(Err(e)) if status_of(&e) == Some(404) => return "removed".to_owned(),
                // The request broke (engine restarting?): look, then wait again.
                _ => match docker
                    .inspect_container(id, None::<InspectContainerOptions>)
                    .await
                {
                    Ok(info) => {
                        let state = info.state.unwrap_or_default();
                        if state.running != Some(true) {
                            return format!("exit status {}", state.exit_code.unwrap_or(-1));
                        }
                    }
                    Err(e) if status_of(&e) == Some(404) => return "removed".to_owned(),
                    Err(_) => {}
                },
            }
            tokio::time::sleep(POLL).await;
        }
    }
}
