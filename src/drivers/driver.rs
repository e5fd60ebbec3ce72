//! [`Drivers`]: the one interface the runtime uses to start, check, stop,
//! adopt and read the output of instances, whichever driver runs them. Each
//! call goes to the driver the [`Handle`] (or the service's config) names.

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::docker::DockerDriver;
use super::{DriverError, Handle, InstanceSpec, ProcessDriver, StopOutcome, follow, logs};
use crate::config::DockerConfig;

/// A stream of an instance's output.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<Bytes, DriverError>> + Send>>;

/// Every driver the daemon can use. Cheap to clone.
#[derive(Debug, Clone, Default)]
pub struct Drivers {
    /// Local processes.
    pub process: ProcessDriver,
    /// Containers.
    pub docker: DockerDriver,
}

impl Drivers {
    /// Both drivers; nothing is started or connected yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts an instance: as a container when `docker` settings are given,
    /// as a local process otherwise.
    pub async fn start(
        &self,
        spec: &InstanceSpec,
        docker: Option<&DockerConfig>,
    ) -> Result<Handle, DriverError> {
        match docker {
            Some(settings) => Ok(Handle::Docker(self.docker.start(spec, settings).await?)),
            None => Ok(Handle::Process(self.process.start(spec).await?)),
        }
    }

    /// Stops an instance, giving it `grace` after the stop signal.
    pub async fn stop(&self, handle: &Handle, grace: Duration) -> Result<StopOutcome, DriverError> {
        match handle {
            Handle::Process(h) => self.process.stop(h, grace).await,
            Handle::Docker(h) => Ok(self.docker.stop(h, grace).await?),
        }
    }

    /// Whether the instance still runs, as far as is known without waiting.
    pub fn is_running(&self, handle: &Handle) -> bool {
        match handle {
            Handle::Process(h) => self.process.is_running(h),
            Handle::Docker(h) => self.docker.is_running(h),
        }
    }

    /// After a daemon restart: whether the instance still runs and can be
    /// used again. An error means it could not be told (the Docker daemon
    /// does not answer), not that the instance is gone.
    pub async fn adopt(&self, handle: &Handle) -> Result<bool, DriverError> {
        match handle {
            Handle::Process(h) => Ok(self.process.adopt(h)),
            Handle::Docker(h) => Ok(self.docker.adopt(h).await?),
        }
    }

    /// How the instance ended, if it did and this daemon saw it.
    pub fn exit_status(&self, handle: &Handle) -> Option<String> {
        match handle {
            Handle::Process(h) => self.process.exit_status(&h.instance_id),
            Handle::Docker(h) => self.docker.exit_status(h),
        }
    }

    /// Forgets what the driver remembers of a stopped instance.
    pub fn forget(&self, handle: &Handle) {
        match handle {
            Handle::Process(h) => self.process.forget(&h.instance_id),
            Handle::Docker(h) => self.docker.forget(h),
        }
    }

    /// The last `lines` lines of the instance's output; empty when unreadable.
    pub async fn tail(&self, handle: &Handle, lines: usize) -> Vec<String> {
        match handle {
            Handle::Process(h) => logs::tail(&h.log_path, lines).unwrap_or_default(),
            Handle::Docker(h) => self.docker.tail(h, lines).await,
        }
    }

    /// The instance's output: the last `tail` lines (or all), then with
    /// `follow` what it writes next, until it stops.
    pub async fn logs(
        &self,
        handle: &Handle,
        tail: Option<usize>,
        follow: bool,
    ) -> Result<LogStream, DriverError> {
        match handle {
            Handle::Process(h) => {
                let running = {
                    let (driver, h) = (self.process.clone(), h.clone());
                    move || driver.is_running(&h)
                };
                let path = h.log_path.clone();
                Ok(Box::pin(
                    follow::stream(path.clone(), tail, follow, running).map(move |r| {
                        r.map_err(|error| DriverError::Log {
                            path: path.clone(),
                            error,
                        })
                    }),
                ))
            }
            Handle::Docker(h) => Ok(Box::pin(
                self.docker
                    .logs(h, tail, follow)
                    .await?
                    .map(|r| r.map_err(DriverError::from)),
            )),
        }
    }

    /// Runs a worker's health command for the instance: a local process
    /// (working directory `workdir`, with `CUTOVER_INSTANCE` and `PORT` of the
    /// instance) or an exec in the container. `Ok` on exit status 0.
    pub async fn run_check(
        &self,
        handle: &Handle,
        command: &[String],
        workdir: &Path,
        timeout: Duration,
    ) -> Result<(), String> {
        match handle {
            Handle::Process(h) => {
                super::check::run_local(command, workdir, &h.instance_id, h.addr, timeout).await
            }
            Handle::Docker(h) => self.docker.exec_check(h, command, timeout).await,
        }
    }
}
