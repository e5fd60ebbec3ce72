//! A container's output (stdout and stderr, as the engine logged it): the
//! last lines, for a failure message, or a stream for `cutover logs`.

use bollard::query_parameters::LogsOptionsBuilder;
use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::{ContainerHandle, DockerDriver, DockerError};

impl DockerDriver {
    /// The container's output: the last `tail` lines (all with `None`), then,
    /// with `follow`, whatever it writes until it stops.
    pub async fn logs(
        &self,
        handle: &ContainerHandle,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<impl Stream<Item = Result<Bytes, DockerError>> + Send + 'static, DockerError> {
        let docker = self.client().await?.clone();
        let tail = tail.map_or_else(|| "all".to_owned(), |n| n.to_string());
        let options = LogsOptionsBuilder::default()
            .stdout(true)
            .stderr(true)
            .follow(follow)
            .tail(&tail)
            .build();
        let driver = self.clone();
        let name = handle.name.clone();
        Ok(docker
            .logs(&handle.container_id, Some(options))
            .map(move |item| {
                item.map(bollard::container::LogOutput::into_bytes)
                    .map_err(|e| driver.api_error(format!("reading the logs of {name}"), &e))
            }))
    }

    /// The last `lines` lines of the container's output, oldest first; empty
    /// when they cannot be read.
    pub async fn tail(&self, handle: &ContainerHandle, lines: usize) -> Vec<String> {
        let Ok(stream) = self.logs(handle, Some(lines), false).await else {
            return Vec::new();
        };
        let chunks: Vec<Result<Bytes, DockerError>> = stream.collect().await;
        let mut text = Vec::new();
        for chunk in chunks.into_iter().flatten() {
            text.extend_from_slice(&chunk);
        }
        let text = String::from_utf8_lossy(&text);
        let all: Vec<&str> = text.lines().collect();
        all[all.len().saturating_sub(lines)..]
            .iter()
            .map(|l| (*l).to_owned())
            .collect()
    }
}
