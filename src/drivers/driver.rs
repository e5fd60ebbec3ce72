//! [`Drivers`]: the one interface the runtime uses to start, check, stop,
//! adopt and read the output of instances, whichever driver runs them, to
//! check what a deploy needs before it starts anything, and to remove what a
//! dead daemon left behind. Each call goes to the driver the [`Handle`] (or
//! the service's config) names; nothing outside `src/drivers` sees the
//! drivers themselves.

use std::path::Path;
use std::pin::Pin;
use std::time::Duration;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};

use super::docker::{DockerDriver, ImageToCheck, docker_host};
use super::swarm::SwarmDriver;
use super::{DriverError, Handle, InstanceSpec, ProcessDriver, StopOutcome, follow, logs, rotate};
use crate::config::{DockerConfig, LogsConfig, ServiceKind};

/// The most lines of an instance's output [`Drivers::tail`] quotes.
pub const QUOTED_LINES: usize = 20;
/// The most bytes of an instance's output [`Drivers::tail`] quotes.
pub const QUOTED_BYTES: usize = 4 * 1024;

/// A stream of an instance's output.
pub type LogStream = Pin<Box<dyn Stream<Item = Result<Bytes, DriverError>> + Send>>;

/// One service a deploy is about to start, for [`Drivers::preflight`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ServiceToCheck<'a> {
    /// The service's name.
    pub service: &'a str,
    /// The release the deploy starts.
    pub version: &'a str,
    /// Its container settings; `None` when it runs as a local process.
    pub docker: Option<&'a DockerConfig>,
}

/// What [`Drivers::preflight`] found, when nothing stops the deploy.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PreflightFindings {
    /// One line saying what was checked (`Docker at … answers; image …
    /// present`); `None` when nothing needed checking.
    pub summary: Option<String>,
    /// Things worth telling but not worth stopping for (an image that runs
    /// as root).
    pub warnings: Vec<String>,
}

/// Every driver the daemon can use. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Drivers {
    /// Local processes.
    pub(super) process: ProcessDriver,
    /// Containers.
    pub(super) docker: DockerDriver,
    /// Tasks of Swarm services (on the docker driver's engine connection).
    pub(super) swarm: SwarmDriver,
}

impl Default for Drivers {
    fn default() -> Self {
        let docker = DockerDriver::new();
        Self {
            process: ProcessDriver::default(),
            swarm: SwarmDriver::new(docker.clone()),
            docker,
        }
    }
}

impl Drivers {
    /// Every driver; nothing is started or connected yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The name of the driver [`Drivers::start`] picks for these settings
    /// (what an instance record says before the instance has a handle).
    pub fn name_for(docker: Option<&DockerConfig>) -> &'static str {
        match docker {
            Some(d) if d.swarm.is_some() => "swarm",
            Some(_) => "docker",
            None => "process",
        }
    }

    /// Starts an instance: as a task of its release's Swarm service when the
    /// container settings have a `swarm` part, as a container when `docker`
    /// settings are given, as a local process otherwise.
    pub async fn start(
        &self,
        spec: &InstanceSpec,
        docker: Option<&DockerConfig>,
    ) -> Result<Handle, DriverError> {
        match docker {
            Some(settings) if settings.swarm.is_some() => {
                Ok(Handle::Swarm(self.swarm.start(spec, settings).await?))
            }
            Some(settings) => Ok(Handle::Docker(self.docker.start(spec, settings).await?)),
            None => Ok(Handle::Process(self.process.start(spec).await?)),
        }
    }

    /// Whether a worker's releases are handed over in place: the engine runs
    /// every release of the worker in one long-lived service and rolls it
    /// from one release to the next itself (Swarm's rolling update), so the
    /// runtime calls [`Drivers::hand_over`] instead of starting the new
    /// release's instances one by one. Stopping the old release's
    /// instances afterwards leaves what the new release runs in alone.
    pub fn hands_over_in_place(docker: Option<&DockerConfig>, kind: ServiceKind) -> bool {
        kind == ServiceKind::Worker && docker.is_some_and(|d| d.swarm.is_some())
    }

    /// Hands a worker over to `spec.version` in place (see
    /// [`Drivers::hands_over_in_place`]): one instance per id in `ids`
    /// (`ids[n]` is replica `n`); returns their handles once the engine says
    /// the release runs. On failure the engine has put the previous release
    /// back (or paused, as configured), and the error says what it said.
    pub async fn hand_over(
        &self,
        spec: &InstanceSpec,
        docker: Option<&DockerConfig>,
        ids: &[String],
    ) -> Result<Vec<Handle>, DriverError> {
        match docker {
            Some(settings) if settings.swarm.is_some() => Ok(self
                .swarm
                .hand_over(spec, settings, ids)
                .await?
                .into_iter()
                .map(Handle::Swarm)
                .collect()),
            _ => Err(DriverError::NotInPlace {
                service: spec.service.clone(),
            }),
        }
    }

    /// Stops an instance, giving it `grace` after the stop signal.
    pub async fn stop(&self, handle: &Handle, grace: Duration) -> Result<StopOutcome, DriverError> {
        match handle {
            Handle::Process(h) => self.process.stop(h, grace).await,
            Handle::Docker(h) => Ok(self.docker.stop(h, grace).await?),
            Handle::Swarm(h) => Ok(self.swarm.stop(h, grace).await?),
        }
    }

    /// Whether the instance still runs, as far as is known without waiting.
    pub fn is_running(&self, handle: &Handle) -> bool {
        match handle {
            Handle::Process(h) => self.process.is_running(h),
            Handle::Docker(h) => self.docker.is_running(h),
            Handle::Swarm(h) => self.swarm.is_running(h),
        }
    }

    /// After a daemon restart: whether the instance still runs and can be
    /// used again. An error means it could not be told (the Docker daemon
    /// does not answer), not that the instance is gone.
    pub async fn adopt(&self, handle: &Handle) -> Result<bool, DriverError> {
        match handle {
            Handle::Process(h) => Ok(self.process.adopt(h)),
            Handle::Docker(h) => Ok(self.docker.adopt(h).await?),
            Handle::Swarm(h) => Ok(self.swarm.adopt(h).await?),
        }
    }

    /// How the instance ended, if it did and this daemon saw it.
    pub fn exit_status(&self, handle: &Handle) -> Option<String> {
        match handle {
            Handle::Process(h) => self.process.exit_status(&h.instance_id),
            Handle::Docker(h) => self.docker.exit_status(h),
            Handle::Swarm(h) => self.swarm.exit_status(h),
        }
    }

    /// Forgets what the driver remembers of a stopped instance.
    pub fn forget(&self, handle: &Handle) {
        match handle {
            Handle::Process(h) => self.process.forget(&h.instance_id),
            Handle::Docker(h) => self.docker.forget(h),
            Handle::Swarm(h) => self.swarm.forget(h),
        }
    }

    /// The last `lines` lines of the instance's output, to quote in an
    /// event or a message: at most [`QUOTED_LINES`] lines and
    /// [`QUOTED_BYTES`] bytes (a longer line keeps its end); empty when
    /// unreadable.
    pub async fn tail(&self, handle: &Handle, lines: usize) -> Vec<String> {
        let lines = lines.min(QUOTED_LINES);
        let all = match handle {
            Handle::Process(h) => {
                let max = u64::try_from(QUOTED_BYTES).unwrap_or(u64::MAX);
                logs::tail_capped(&h.log_path, lines, max).unwrap_or_default()
            }
            Handle::Docker(h) => self.docker.tail(h, lines).await,
            Handle::Swarm(h) => self.swarm.tail(h, lines).await,
        };
        logs::cap_lines(all, lines, QUOTED_BYTES)
    }

    /// Rotates the instance's log file when it is larger than
    /// `limits.max_size` (process driver; see `rotate.rs`). Containers' logs
    /// are rotated by the engine (json-file `max-size` / `max-file`, set when
    /// the container is created), so nothing is done for them. Returns
    /// whether a file was rotated. Blocking file I/O: call it off the async
    /// threads.
    pub fn rotate_log(&self, handle: &Handle, limits: LogsConfig) -> Result<bool, DriverError> {
        match handle {
            Handle::Process(h) => {
                rotate::rotate_if_larger(&h.log_path, limits).map_err(|error| DriverError::Log {
                    path: h.log_path.clone(),
                    error,
                })
            }
            Handle::Docker(_) | Handle::Swarm(_) => Ok(false),
        }
    }

    /// Takes every permission beyond 0750 (folders) and 0640 (files) away
    /// under the log directory `log_dir` (logs an older cutover created
    /// wider). Returns how many were changed.
    pub fn tighten_logs(&self, log_dir: &Path) -> Result<usize, DriverError> {
        rotate::tighten(log_dir).map_err(|error| DriverError::Log {
            path: log_dir.to_path_buf(),
            error,
        })
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
            Handle::Swarm(h) => Ok(Box::pin(
                self.swarm
                    .logs(h, tail, follow)
                    .await?
                    .map(|r| r.map_err(DriverError::from)),
            )),
        }
    }

    /// Checks, before a deploy changes anything, what starting `services`
    /// needs: for those run in containers, that the Docker Engine answers and
    /// that each image of the release is on this machine (pulled first with
    /// `pull = true`). Local processes need nothing checked (yet). The first
    /// problem is the error, and its message says what to do about it.
    pub async fn preflight(
        &self,
        services: &[ServiceToCheck<'_>],
    ) -> Result<PreflightFindings, DriverError> {
        let images: Vec<ImageToCheck> = services
            .iter()
            .filter_map(|s| {
                let docker = s.docker?;
                Some(ImageToCheck {
                    service: s.service.to_owned(),
                    image: docker.image_for(s.version),
                    pull: docker.pull,
                })
            })
            .collect();
        if images.is_empty() {
            return Ok(PreflightFindings::default());
        }
        let found = self.docker.preflight(&images).await?;
        let list: Vec<&str> = images.iter().map(|i| i.image.as_str()).collect();
        let mut summary = format!(
            "Docker at {} answers; image {} present",
            docker_host(),
            list.join(", ")
        );
        let mut warnings = found.warnings;
        if services
            .iter()
            .any(|s| s.docker.is_some_and(|d| d.swarm.is_some()))
        {
            let nodes = self.swarm.preflight().await?;
            summary.push_str("; Docker Swarm active, this node a manager");
            if nodes > 1 {
                warnings.push(format!(
                    "the swarm has {nodes} nodes: each image must be on every node that may run its tasks (docker load, or a registry reference with @sha256:…), and cutover must reach every node's published ports"
                ));
            }
        }
        Ok(PreflightFindings {
            summary: Some(summary),
            warnings,
        })
    }

    /// After a daemon restart: stops and removes every instance of `app` in
    /// `environment` that a driver finds running (or left over) but whose
    /// id is not in `keep` (the instances adopted), giving each
    /// `grace_of(service)` after its stop signal. Returns what was removed
    /// (container names); one that cannot be removed is logged and skipped.
    ///
    /// Containers and Swarm services are looked for: they carry labels
    /// naming their app and environment (a Swarm service is kept while an
    /// adopted instance runs one of its tasks). Local processes are tracked
    /// by the store alone, so the process driver has nothing to add here.
    /// Call it only when the environment uses (or used) containers: it
    /// needs the Docker Engine, and fails when the containers cannot be
    /// listed (an engine outside a swarm has no Swarm services to remove).
    pub async fn remove_strays(
        &self,
        app: &str,
        environment: &str,
        keep: &[String],
        grace_of: impl Fn(&str) -> Duration,
    ) -> Result<Vec<String>, DriverError> {
        let mut removed = self
            .docker
            .remove_strays(app, environment, keep, &grace_of)
            .await?;
        removed.extend(
            self.swarm
                .remove_strays(app, environment, &grace_of)
                .await?,
        );
        Ok(removed)
    }

    /// Runs a worker's health command for the instance: a local process
    /// (working directory `workdir`, with the instance's environment and its
    /// `CUTOVER_INSTANCE` and `PORT`) or an exec in the container. `Ok` on exit status 0.
    pub async fn run_check(
        &self,
        handle: &Handle,
        command: &[String],
        workdir: &Path,
        timeout: Duration,
    ) -> Result<(), String> {
        match handle {
            Handle::Process(h) => {
                let instance = (h.instance_id.as_str(), h.pid);
                super::check::run_local(command, workdir, instance, h.addr, timeout).await
            }
            Handle::Docker(h) => self.docker.exec_check(h, command, timeout).await,
            Handle::Swarm(h) => match &h.container_id {
                Some(id) => {
                    let container = super::docker::ContainerHandle {
                        instance_id: h.instance_id.clone(),
                        container_id: id.clone(),
                        name: h.describe(),
                        image: h.image.clone(),
                        addr: h.addr,
                    };
                    self.docker.exec_check(&container, command, timeout).await
                }
                None => Err(format!(
                    "{} has no container on this node to run the health command in",
                    h.describe()
                )),
            },
        }
    }
}
