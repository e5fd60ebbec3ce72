//! Running a worker's `health.command` inside its container (`docker exec`
//! through the API): healthy when it exits 0 within the timeout.

use std::time::Duration;

use bollard::exec::{CreateExecOptions, StartExecResults};
use futures_util::StreamExt;

use super::{ContainerHandle, DockerDriver};

impl DockerDriver {
    /// Runs `command` in the container; `Ok` when it exits 0 within
    /// `timeout`, otherwise why not (exit status and the end of its output).
    pub async fn exec_check(
        &self,
        handle: &ContainerHandle,
        command: &[String],
        timeout: Duration,
    ) -> Result<(), String> {
        let run = async {
            let docker = self.client().await.map_err(|e| e.to_string())?;
            let exec = docker
                .create_exec(
                    &handle.container_id,
                    CreateExecOptions {
                        cmd: Some(command.to_vec()),
                        attach_stdout: Some(true),
                        attach_stderr: Some(true),
                        ..Default::default()
                    },
                )
                .await
                .map_err(|e| super::client::describe(&e))?;
            let mut output = Vec::new();
            if let StartExecResults::Attached {
                output: mut out, ..
            } = docker
                .start_exec(&exec.id, None)
                .await
                .map_err(|e| super::client::describe(&e))?
            {
                while let Some(Ok(chunk)) = out.next().await {
                    output.extend_from_slice(&chunk.into_bytes());
                }
            }
            let inspected = docker
                .inspect_exec(&exec.id)
                .await
                .map_err(|e| super::client::describe(&e))?;
            match inspected.exit_code {
                Some(0) => Ok(()),
                code => Err(format!(
                    "health command exited with status {}{}",
                    code.map_or_else(|| "unknown".to_owned(), |c| c.to_string()),
                    crate::drivers::check::output_tail(&output)
                )),
            }
        };
        match tokio::time::timeout(timeout, run).await {
            Ok(result) => result,
            Err(_) => Err(format!("health command did not finish within {timeout:?}")),
        }
    }
}
