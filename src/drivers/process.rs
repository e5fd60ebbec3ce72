//! The process driver: runs instances of a service as local processes.
//!
//! Each instance gets a free loopback port, its own process group (so a stop
//! reaches everything it spawned), stdin from `/dev/null`, its stdout and
//! stderr appended to a log file it owns (0640 in 0750 folders; rotated by
//! the daemon, see `rotate.rs`), and an allowlist of the daemon's
//! environment (`environ.rs`), not all of it. Instances are not killed when the daemon
//! exits: a restarted daemon re-adopts them from their persisted
//! [`InstanceHandle`]. A handle carries the process's start time from
//! `/proc/<pid>/stat`, and nothing is ever signalled unless that still matches,
//! so a PID reused by an unrelated process is left alone.
//!
//! Children this driver started are reaped by a small task each, which also
//! records how they exited ([`ProcessDriver::exit_status`]).

use std::collections::HashMap;
use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::signal::{Signal, killpg};
use nix::unistd::Pid;
use tokio::sync::watch;
use tokio::time::Instant;

use super::{
    DriverError, InstanceHandle, InstanceSpec, SpawnProblem, StopOutcome, environ, procfs, rotate,
};
use crate::config::redact_urls_in;

/// How often a stop checks whether a process has exited.
const POLL: Duration = Duration::from_millis(50);
/// How long a stop waits for the kernel to finish off a SIGKILLed group.
const KILL_WAIT: Duration = Duration::from_secs(5);

/// Starts, checks and stops instances as local processes. Cheap to clone; clones
/// share the record of the children they started.
#[derive(Debug, Clone, Default)]
pub struct ProcessDriver {
    children: Arc<Mutex<HashMap<String, OwnChild>>>,
}

/// A process this driver started, reaped by its own task.
#[derive(Debug)]
struct OwnChild {
    pid: i32,
    /// `None` while it runs; then how it exited ("exit status 1").
    exit: watch::Receiver<Option<String>>,
}

impl ProcessDriver {
    /// A driver with no children yet (what a restarted daemon has).
    pub fn new() -> Self {
        Self::default()
    }

    /// Starts an instance: picks a free loopback port, fills in the command's
    /// `{port}` and `{version}` placeholders, and runs it in its own process group
    /// with the allowlist of the daemon's environment (`environ.rs`; all of it
    /// but cutover's own with `inherit_env`), the spec's variables, and
    /// `PORT`, `CUTOVER_VERSION`, `CUTOVER_INSTANCE`, `CUTOVER_SERVICE`,
    /// `CUTOVER_ENVIRONMENT`, `CUTOVER_APP` set. Its output goes to its log
    /// file (0640), after a header line whose URLs have no password.
    ///
    /// Returns as soon as the process is running; whether it serves is for
    /// [`super::health::wait_healthy`] to find out.
    pub async fn start(&self, spec: &InstanceSpec) -> Result<InstanceHandle, DriverError> {
        validate(spec)?;
        let workdir = usable_workdir(&spec.workdir)?;
        let port = free_port()?;
        let argv: Vec<String> = spec
            .command
            .iter()
            .map(|item| substitute(item, port, &spec.version))
            .collect();
        let Some((written, args)) = argv.split_first() else {
            return Err(invalid(spec, "the command is empty"));
        };
        let program = resolve_program(written, &workdir);

        let log_path = log_path(spec);
        let log = open_log(&log_path)?;
        let mut header = &log;
        // The header only helps a reader of the log; failing to write it is not
        // a reason to refuse the start. Passwords in URLs are not written.
        let shown: Vec<String> = argv.iter().map(|word| redact_urls_in(word)).collect();
        let _ = writeln!(
            header,
            "--- cutover {}: starting {} ({} {} in {}) on port {port}: {shown:?}",
            jiff::Timestamp::now(),
            spec.instance_id,
            spec.service,
            spec.version,
            spec.environment,
        );
        let stderr = log.try_clone().map_err(|error| DriverError::Log {
            path: log_path.clone(),
            error,
        })?;

        let mut cmd = tokio::process::Command::new(&program);
        cmd.args(args)
            .current_dir(&workdir)
            .env_clear()
            .envs(environ::from_daemon(std::env::vars_os(), spec.inherit_env))
            .envs(
                environ::from_service(&spec.env)
                    .map(|(k, v)| (k, substitute(v, port, &spec.version))),
            )
            .env("PORT", port.to_string())
            .env("CUTOVER_VERSION", &spec.version)
            .env("CUTOVER_INSTANCE", &spec.instance_id)
            .env("CUTOVER_SERVICE", &spec.service)
            .env("CUTOVER_ENVIRONMENT", &spec.environment)
            .env("CUTOVER_APP", &spec.app)
            .stdin(Stdio::null())
            .stdout(log)
            .stderr(stderr)
            .process_group(0)
            .kill_on_drop(false);
        let mut child = cmd
            .spawn()
            .map_err(|error| spawn_error(written, &program, &workdir, error))?;

        let pid = child
            .id()
            .and_then(|id| i32::try_from(id).ok())
            .ok_or_else(|| DriverError::Proc {
                pid: 0,
                error: io::Error::other("the started process has no id"),
            })?;
        // Not yet reaped, so even a process that already exited still has its
        // stat entry here.
        let stat = match procfs::stat(pid) {
            Ok(stat) => stat,
            Err(error) => {
                let _ = child.start_kill();
                return Err(DriverError::Proc { pid, error });
            }
        };

        let (tx, rx) = watch::channel(None);
        let instance_id = spec.instance_id.clone();
        tokio::spawn(async move {
            match child.wait().await {
                Ok(status) => {
                    let status = describe_exit(status);
                    tracing::info!(instance = %instance_id, pid, %status, "instance process exited");
                    tx.send_replace(Some(status));
                }
                Err(e) => {
                    tracing::warn!(instance = %instance_id, pid, "cannot wait for instance process: {e}");
                }
            }
        });
        self.lock().insert(
            spec.instance_id.clone(),
            OwnChild {
                pid,
                exit: rx.clone(),
            },
        );

        let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
        tracing::info!(instance = %spec.instance_id, pid, %addr, program = %program.display(), "instance started");
        Ok(InstanceHandle {
            instance_id: spec.instance_id.clone(),
            pid,
            pgid: pid,
            port,
            addr,
            start_time_ticks: stat.start_time_ticks,
            log_path,
        })
    }

    /// Stops an instance: SIGTERM to its process group, up to `grace` for the
    /// process (and anything else in its group) to exit, then SIGKILL to the
    /// group. Stopping an instance that is no longer running is fine
    /// ([`StopOutcome::NotRunning`]); a PID that now belongs to another process
    /// is never signalled.
    pub async fn stop(
        &self,
        handle: &InstanceHandle,
        grace: Duration,
    ) -> Result<StopOutcome, DriverError> {
        if !procfs::group_is_ours(handle.pgid, handle.start_time_ticks) {
            return Ok(StopOutcome::NotRunning);
        }
        let leader_running = self.is_running(handle);
        if !leader_running && procfs::group_members(handle.pgid).is_empty() {
            return Ok(StopOutcome::NotRunning);
        }
        if !signal_group(handle, Signal::SIGTERM)? {
            return Ok(StopOutcome::NotRunning);
        }
        let deadline = super::deadline(Instant::now(), grace);
        if self.wait_exited(handle, deadline).await && wait_group_empty(handle.pgid, deadline).await
        {
            tracing::info!(instance = %handle.instance_id, pid = handle.pid, "instance stopped on SIGTERM");
            return Ok(StopOutcome::Exited);
        }

        tracing::warn!(instance = %handle.instance_id, pid = handle.pid, ?grace, "instance still running after grace; sending SIGKILL");
        if procfs::group_is_ours(handle.pgid, handle.start_time_ticks) {
            signal_group(handle, Signal::SIGKILL)?;
        }
        let deadline = super::deadline(Instant::now(), KILL_WAIT);
        if self.wait_exited(handle, deadline).await && wait_group_empty(handle.pgid, deadline).await
        {
            Ok(StopOutcome::Killed)
        } else {
            Err(DriverError::StopFailed {
                instance_id: handle.instance_id.clone(),
                pid: handle.pid,
                reason: format!("still running {KILL_WAIT:?} after SIGKILL"),
            })
        }
    }

    /// Whether the instance's process still runs: it exists, is not a zombie,
    /// and started when the handle says (so it is not a reused PID).
    pub fn is_running(&self, handle: &InstanceHandle) -> bool {
        if let Some(exit) = self.own_exit(handle)
            && exit.borrow().is_some()
        {
            return false;
        }
        procfs::is_alive(handle.pid, handle.start_time_ticks)
    }

    /// After a daemon restart: whether the process a persisted handle describes
    /// still runs (same start time, still leading its process group), so the
    /// daemon can keep using it. Adopted processes are not our children: they
    /// are checked and stopped through `/proc` and signals only.
    pub fn adopt(&self, handle: &InstanceHandle) -> bool {
        match procfs::stat(handle.pid) {
            Ok(s) => {
                !s.is_exited()
                    && s.start_time_ticks == handle.start_time_ticks
                    && s.pgrp == handle.pgid
            }
            Err(_) => false,
        }
    }

    /// How a child this driver started exited (`"exit status 1"`,
    /// `"killed by signal 9 (SIGKILL)"`), or `None` while it runs, and for
    /// instances this driver did not start.
    pub fn exit_status(&self, instance_id: &str) -> Option<String> {
        self.lock()
            .get(instance_id)
            .and_then(|c| c.exit.borrow().clone())
    }

    /// Drops what the driver remembers about a child (its exit status), once
    /// the daemon has no more use for it. The process itself is not touched.
    pub fn forget(&self, instance_id: &str) {
        self.lock().remove(instance_id);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<String, OwnChild>> {
        self.children.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The exit watch of our own child described by `handle`, if it is one.
    fn own_exit(&self, handle: &InstanceHandle) -> Option<watch::Receiver<Option<String>>> {
        self.lock()
            .get(&handle.instance_id)
            .filter(|c| c.pid == handle.pid)
            .map(|c| c.exit.clone())
    }

    /// Waits until the instance's process no longer runs, or `deadline`.
    /// Returns whether it exited.
    async fn wait_exited(&self, handle: &InstanceHandle, deadline: Instant) -> bool {
        let mut exit = self.own_exit(handle);
        loop {
            if !self.is_running(handle) {
                return true;
            }
            let now = Instant::now();
            if now >= deadline {
                return false;
            }
            let nap = POLL.min(deadline.saturating_duration_since(now));
            match exit.as_mut() {
                // Our own child: woken the moment the reaper records its exit.
                Some(rx) => tokio::select! {
                    changed = rx.changed() => if changed.is_err() { exit = None },
                    () = tokio::time::sleep(nap) => {}
                },
                None => tokio::time::sleep(nap).await,
            }
        }
    }
}

/// Waits until no live process is left in group `pgid`, or `deadline`.
async fn wait_group_empty(pgid: i32, deadline: Instant) -> bool {
    loop {
        if procfs::group_members(pgid).is_empty() {
            return true;
        }
        let now = Instant::now();
        if now >= deadline {
            return false;
        }
        tokio::time::sleep(POLL.min(deadline.saturating_duration_since(now))).await;
    }
}

/// Sends `signal` to the instance's process group. `Ok(false)` if the group no
/// longer exists.
fn signal_group(handle: &InstanceHandle, signal: Signal) -> Result<bool, DriverError> {
    match killpg(Pid::from_raw(handle.pgid), signal) {
        Ok(()) => Ok(true),
        Err(Errno::ESRCH) => Ok(false),
        Err(errno) => Err(DriverError::StopFailed {
            instance_id: handle.instance_id.clone(),
            pid: handle.pid,
            reason: format!("{signal} to process group {}: {errno}", handle.pgid),
        }),
    }
}

/// `"exit status 1"`, `"killed by signal 9 (SIGKILL)"`.
fn describe_exit(status: ExitStatus) -> String {
    if let Some(code) = status.code() {
        return format!("exit status {code}");
    }
    if let Some(sig) = status.signal() {
        let name = Signal::try_from(sig).map_or("unknown signal", Signal::as_str);
        let core = if status.core_dumped() {
            ", core dumped"
        } else {
            ""
        };
        return format!("killed by signal {sig} ({name}){core}");
    }
    status.to_string()
}

fn invalid(spec: &InstanceSpec, reason: impl Into<String>) -> DriverError {
    DriverError::InvalidSpec {
        instance_id: spec.instance_id.clone(),
        reason: reason.into(),
    }
}

/// The environment, service and instance id become path components of the log
/// file, so they must be plain names.
fn validate(spec: &InstanceSpec) -> Result<(), DriverError> {
    for (what, value) in [
        ("environment", &spec.environment),
        ("service", &spec.service),
        ("instance id", &spec.instance_id),
    ] {
        if value.is_empty() || value == "." || value == ".." || value.contains(['/', '\0']) {
            return Err(invalid(
                spec,
                format!("{what} {value:?} cannot be used as a file name"),
            ));
        }
    }
    if spec.command.first().is_none_or(String::is_empty) {
        return Err(invalid(spec, "the command is empty"));
    }
    Ok(())
}

/// The working directory as an absolute path, checked to be a directory.
fn usable_workdir(workdir: &Path) -> Result<PathBuf, DriverError> {
    let err = |error| DriverError::Workdir {
        path: workdir.to_path_buf(),
        error,
    };
    let abs = std::path::absolute(workdir).map_err(err)?;
    let meta = std::fs::metadata(&abs).map_err(err)?;
    if !meta.is_dir() {
        return Err(err(io::Error::new(
            io::ErrorKind::NotADirectory,
            "not a directory",
        )));
    }
    Ok(abs)
}

/// How long a port handed to an instance is not handed out again: the time
/// an instance may take to bind it.
const PORT_QUARANTINE: std::time::Duration = std::time::Duration::from_secs(120);
/// Tries at a port not handed out in the last [`PORT_QUARANTINE`].
const PORT_TRIES: usize = 64;

/// A loopback port that was free a moment ago: bind port 0, read, close.
///
/// The kernel may give the same port to the next `bind(0)` once this one is
/// closed, before the instance it was picked for has bound it; two instances
/// started together would then clash ("Address already in use"). So ports
/// handed out recently by this process are skipped.
fn free_port() -> Result<u16, DriverError> {
    static RECENT: std::sync::Mutex<Vec<(u16, std::time::Instant)>> =
        std::sync::Mutex::new(Vec::new());
    let mut recent = RECENT
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let now = std::time::Instant::now();
    recent.retain(|(_, at)| now.saturating_duration_since(*at) < PORT_QUARANTINE);
    let mut port = 0;
    for _ in 0..PORT_TRIES {
        let listener =
            TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).map_err(DriverError::NoFreePort)?;
        port = listener
            .local_addr()
            .map_err(DriverError::NoFreePort)?
            .port();
        if !recent.iter().any(|(p, _)| *p == port) {
            break;
        }
    }
    recent.push((port, now));
    Ok(port)
}

/// Replaces `{port}` and `{version}` in one pass (so a version that contains
/// `{port}` stays as it is). Other braces are kept.
fn substitute(item: &str, port: u16, version: &str) -> String {
    let mut out = String::with_capacity(item.len());
    let mut rest = item;
    while let Some(i) = rest.find('{') {
        let (before, from_brace) = rest.split_at(i);
        out.push_str(before);
        if let Some(after) = from_brace.strip_prefix("{port}") {
            out.push_str(&port.to_string());
            rest = after;
        } else if let Some(after) = from_brace.strip_prefix("{version}") {
            out.push_str(version);
            rest = after;
        } else {
            out.push('{');
            rest = &from_brace[1..];
        }
    }
    out.push_str(rest);
    out
}

/// A program path with a `/` is a file: relative ones are taken from the
/// working directory. A bare name is looked up on `PATH`.
pub(super) fn resolve_program(written: &str, workdir: &Path) -> PathBuf {
    let path = Path::new(written);
    if written.contains('/') && path.is_relative() {
        workdir.join(path)
    } else {
        path.to_path_buf()
    }
}

fn log_path(spec: &InstanceSpec) -> PathBuf {
    spec.log_dir
        .join(&spec.environment)
        .join(&spec.service)
        .join(format!("{}.log", spec.instance_id))
}

fn open_log(path: &Path) -> Result<std::fs::File, DriverError> {
    rotate::open_log(path).map_err(|error| DriverError::Log {
        path: path.to_path_buf(),
        error,
    })
}

/// Turns a spawn failure into an error that says which file was tried and why
/// it could not run.
fn spawn_error(written: &str, program: &Path, workdir: &Path, error: io::Error) -> DriverError {
    let is_path = written.contains('/');
    let problem = match error.kind() {
        io::ErrorKind::NotFound if is_path && program.exists() => SpawnProblem::MissingInterpreter,
        io::ErrorKind::NotFound => SpawnProblem::Missing,
        io::ErrorKind::PermissionDenied => SpawnProblem::NotExecutable,
        _ if error.raw_os_error() == Some(Errno::ENOEXEC as i32) => SpawnProblem::NotExecutable,
        _ => SpawnProblem::Other,
    };
    let program = if is_path {
        if Path::new(written) == program {
            format!("`{written}`")
        } else {
            format!("`{written}` ({})", program.display())
        }
    } else if workdir.join(written).exists() {
        format!(
            "`{written}` (looked up on PATH; write `./{written}` for the file in the working directory)"
        )
    } else {
        format!("`{written}` (looked up on PATH)")
    };
    DriverError::Spawn {
        program,
        problem,
        error,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn substitutes_placeholders_in_one_pass() {
        assert_eq!(substitute("--port={port}", 8080, "v1"), "--port=8080");
        assert_eq!(
            substitute("{version}-{port}-{version}", 1, "2.0"),
            "2.0-1-2.0"
        );
        assert_eq!(substitute("{port}", 9, "{port}"), "9");
        assert_eq!(substitute("{version}", 9, "{port}"), "{port}");
        assert_eq!(substitute("{{port}} {x} {", 7, "v"), "{7} {x} {");
        assert_eq!(substitute("plain", 7, "v"), "plain");
        assert_eq!(substitute("ü{port}ü", 7, "v"), "ü7ü");
    }

    #[test]
    fn resolves_relative_programs_against_the_workdir() {
        let wd = Path::new("/srv/app");
        assert_eq!(
            resolve_program("./bin/web", wd),
            Path::new("/srv/app/./bin/web")
        );
        assert_eq!(
            resolve_program("bin/web", wd),
            Path::new("/srv/app/bin/web")
        );
        assert_eq!(
            resolve_program("/usr/bin/env", wd),
            Path::new("/usr/bin/env")
        );
        assert_eq!(resolve_program("web", wd), Path::new("web"));
    }

    #[test]
    fn describes_exit_statuses() {
        assert_eq!(describe_exit(ExitStatus::from_raw(0)), "exit status 0");
        assert_eq!(describe_exit(ExitStatus::from_raw(1 << 8)), "exit status 1");
        assert_eq!(
            describe_exit(ExitStatus::from_raw(9)),
            "killed by signal 9 (SIGKILL)"
        );
    }
}
