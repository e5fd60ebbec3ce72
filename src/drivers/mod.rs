//! Drivers start, health-check and stop instances of a service. This module owns
//! the types every driver shares: what to start ([`InstanceSpec`]), what the
//! daemon keeps about a started instance ([`InstanceHandle`], persisted so that a
//! restarted daemon can re-adopt it), how a stop ended ([`StopOutcome`]) and what
//! can go wrong ([`DriverError`]).
//!
//! - [`Drivers`] (`driver.rs`): the one interface the runtime calls, which
//!   hands each call to the driver of the instance's [`Handle`] (`handle.rs`).
//!   Its fields are private: nothing outside this module reaches a driver.
//! - [`process`]: instances as local processes, each in its own process group.
//! - [`docker`]: instances as containers on a Docker Engine.
//! - [`swarm`]: instances as tasks of a Docker Swarm service per release.
//! - [`health`]: HTTP health probes, waiting for an instance to become healthy,
//!   and background monitors for a serving instance ([`Monitor`]) and for a
//!   group of instances ([`GroupMonitor`]: healthy while any one answers).
//! - [`identity`]: what a release of a service is (its program's sha256,
//!   or its image's id), for the release digest ([`Drivers::identify`]).
//! - [`check`]: when a new worker is ready (its health command, or still running).
//! - `orphans.rs`: finding an app's running instances by the drivers' own
//!   marks, when the state store that recorded them is lost.
//! - [`environ`]: the environment an instance gets (an allowlist of the
//!   daemon's, never cutover's own secrets).
//! - [`logs`]: reading the end of an instance's log file; [`follow`]: streaming it;
//!   [`rotate`]: rotating it by size in place (copy, then collapse or truncate) and its permissions.
//!
//! The process driver reads `/proc`, so it works on Linux only.

// Config values (timeouts, intervals, counts) reach this module's arithmetic:
// every `+`, `-` and `*` here is checked or saturating (see
// `drivers::deadline`), so that no value can panic the daemon. Tests may
// use plain arithmetic.
#![cfg_attr(not(test), warn(clippy::arithmetic_side_effects))]

use std::collections::BTreeMap;
use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

pub mod check;
pub mod docker;
mod driver;
pub mod environ;
pub mod follow;
mod handle;
pub mod health;
pub mod identity;
pub mod logs;
mod orphans;
pub mod process;
mod procfs;
pub mod rotate;
pub mod swarm;

#[cfg(test)]
mod tests;

pub use docker::DockerDriver;
pub use driver::{Drivers, LogStream, PreflightFindings, ServiceToCheck};
pub use handle::Handle;
pub use health::{GroupMonitor, HealthCheck, HealthFailure, Monitor, MonitorState, ProbeError};
pub use identity::{IdentityPart, ServiceToIdentify};
pub use orphans::FoundInstance;
pub use process::ProcessDriver;

/// How far off "never" is, about 100 years: a wait too long to add to the
/// clock (a `stop_timeout = "300000000y"`) ends this far away instead, and
/// no probe interval is longer.
pub(crate) const FOREVER: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// `start + after`, saturating: a wait too long to add to the clock ends
/// [`FOREVER`] after `start` instead of panicking.
pub(crate) fn deadline(start: tokio::time::Instant, after: Duration) -> tokio::time::Instant {
    start
        .checked_add(after)
        .or_else(|| start.checked_add(FOREVER))
        .unwrap_or(start)
}

/// Everything needed to start one instance of a service at a release.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InstanceSpec {
    /// The app's name (`[app] name`).
    pub app: String,
    /// The environment the instance belongs to (`staging`, `production`, …).
    pub environment: String,
    /// The service's name (`[service.<name>]`).
    pub service: String,
    /// The release's version label.
    pub version: String,
    /// Unique id of this instance; also names its log file.
    pub instance_id: String,
    /// Which instance of its release this is, from 0 (the swarm driver runs
    /// it in task slot `replica + 1`).
    pub replica: u32,
    /// Program and arguments. Every item may contain the placeholders `{port}`
    /// and `{version}`, replaced before the program starts.
    pub command: Vec<String>,
    /// Extra environment variables (placeholders are replaced in the values too).
    pub env: BTreeMap<String, String>,
    /// process driver: start from the daemon's whole environment (less
    /// cutover's own variables, see `environ.rs`) instead of the allowlist.
    pub inherit_env: bool,
    /// When the instance's log is rotated (process driver) and the
    /// container's json-file log options (docker driver).
    pub logs: crate::config::LogsConfig,
    /// Working directory; a relative program path (`./bin/web`) is resolved
    /// against it.
    pub workdir: PathBuf,
    /// Directory for instance logs: `<base>/.cutover/logs`. The instance logs to
    /// `<log_dir>/<environment>/<service>/<instance_id>.log`.
    pub log_dir: PathBuf,
    /// The service's health settings (the swarm driver gives Swarm's own
    /// health check their interval, timeout and retries).
    pub health: crate::config::HealthConfig,
    /// Grace between the stop signal and SIGKILL (the swarm driver sets it
    /// on the service, where Swarm applies it).
    pub stop_timeout: Duration,
    /// What the instance is: workers take no traffic, and a driver that
    /// hands a worker release over in place (swarm, see
    /// [`Drivers::hands_over_in_place`]) runs all its releases in one
    /// engine-side service.
    pub kind: crate::config::ServiceKind,
}

/// What the daemon keeps about a started instance. Persisted, so that a
/// restarted daemon can find, check and stop the instance again.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct InstanceHandle {
    /// The id from [`InstanceSpec::instance_id`].
    pub instance_id: String,
    /// Process id of the started program.
    pub pid: i32,
    /// Its process group (equal to `pid`: every instance leads its own group).
    pub pgid: i32,
    /// The loopback port the instance was told to listen on.
    pub port: u16,
    /// Where the instance listens: `127.0.0.1:<port>`.
    pub addr: SocketAddr,
    /// Start time of the process in clock ticks since boot (field 22 of
    /// `/proc/<pid>/stat`). A reused PID has a different start time, so this
    /// tells our process apart from whatever later got the same PID.
    pub start_time_ticks: u64,
    /// The file the instance's stdout and stderr are appended to.
    pub log_path: PathBuf,
}

/// How [`ProcessDriver::stop`] ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum StopOutcome {
    /// The instance exited by itself after SIGTERM, within the grace period.
    Exited,
    /// The instance was still running after the grace period and was killed
    /// with SIGKILL.
    Killed,
    /// Nothing of the instance was running any more; nothing was signalled.
    NotRunning,
}

/// Why a spawn failed, as far as it can be told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SpawnProblem {
    /// The program file does not exist (or is not on `PATH`).
    Missing,
    /// The file exists but is not an executable regular file, or may not be run.
    NotExecutable,
    /// The file exists but its interpreter (the `#!` line) or dynamic loader
    /// does not.
    MissingInterpreter,
    /// Anything else the operating system refused.
    Other,
}

impl std::fmt::Display for SpawnProblem {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            SpawnProblem::Missing => "the program does not exist",
            SpawnProblem::NotExecutable => "the program is not executable",
            SpawnProblem::MissingInterpreter => {
                "the program exists, but its interpreter (#! line) or loader does not"
            }
            SpawnProblem::Other => "the operating system refused to start it",
        })
    }
}

/// What can go wrong when starting or stopping an instance.
///
/// The underlying OS error is part of each message (and not repeated as an
/// error source), so printing the error alone tells the whole story.
#[derive(Debug, thiserror::Error)]
pub enum DriverError {
    /// A handover in place was asked of a driver that starts instances one
    /// by one (a runtime bug: it asks [`Drivers::hands_over_in_place`] first).
    #[error(
        "service {service}: its driver does not hand releases over in place; start its instances one by one"
    )]
    NotInPlace {
        /// The service.
        service: String,
    },
    /// The spec cannot be started as given (empty command, unusable name).
    #[error("instance {instance_id}: {reason}")]
    InvalidSpec {
        /// The instance concerned.
        instance_id: String,
        /// What is wrong with the spec.
        reason: String,
    },
    /// The working directory does not exist or is not a directory.
    #[error("working directory {}: {error}", path.display())]
    Workdir {
        /// The directory as given.
        path: PathBuf,
        /// Why it cannot be used.
        error: io::Error,
    },
    /// No free loopback port could be found.
    #[error("no free port on 127.0.0.1: {0}")]
    NoFreePort(io::Error),
    /// The log file or its directory could not be created.
    #[error("cannot open log file {}: {error}", path.display())]
    Log {
        /// The log file.
        path: PathBuf,
        /// The OS error.
        error: io::Error,
    },
    /// The program could not be started.
    #[error("cannot start {program}: {problem}: {error}")]
    Spawn {
        /// The program as written in the command, and where it was looked for.
        program: String,
        /// Missing, not executable, or something else.
        problem: SpawnProblem,
        /// The OS error.
        error: io::Error,
    },
    /// `/proc/<pid>/stat` of a just-started process could not be read.
    #[error("cannot read /proc/{pid}/stat: {error}")]
    Proc {
        /// The process.
        pid: i32,
        /// The OS error.
        error: io::Error,
    },
    /// The docker driver failed (the message says what to do).
    #[error(transparent)]
    Docker(#[from] docker::DockerError),
    /// The swarm driver failed (the message says what to do).
    #[error(transparent)]
    Swarm(#[from] swarm::SwarmError),
    /// Signalling the instance failed, or it survived SIGKILL.
    #[error("cannot stop instance {instance_id} (pid {pid}): {reason}")]
    StopFailed {
        /// The instance concerned.
        instance_id: String,
        /// Its process id.
        pid: i32,
        /// What went wrong.
        reason: String,
    },
}
