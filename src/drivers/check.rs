//! Whether a new worker is ready: with a `health.command`, that many
//! consecutive runs of it exit 0 (a local process for the process driver, an
//! exec in the container for docker); without one, it still runs after
//! `interval` × `healthy`.

use std::net::SocketAddr;
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use tokio::time::Instant;

use super::{Drivers, Handle, HealthCheck};

/// Output of a failing check kept for the message.
const OUTPUT_LIMIT: usize = 300;

/// Waits until the worker `handle` is ready (see the module doc); returns how
/// long it took, or why it is not.
pub async fn wait_worker_ready(
    drivers: &Drivers,
    handle: &Handle,
    check: &HealthCheck,
    command: &[String],
    workdir: &Path,
) -> Result<Duration, String> {
    let started = Instant::now();
    if command.is_empty() {
        let settle = check
            .interval
            .checked_mul(check.healthy.max(1))
            .unwrap_or(Duration::MAX);
        let deadline = super::deadline(started, settle);
        while Instant::now() < deadline {
            if !drivers.is_running(handle) {
                return Err("the worker exited".to_owned());
            }
            tokio::time::sleep(Duration::from_millis(50).min(settle)).await;
        }
        return if drivers.is_running(handle) {
            Ok(started.elapsed())
        } else {
            Err("the worker exited".to_owned())
        };
    }
    let deadline = super::deadline(started, check.start_timeout);
    let mut passed: u32 = 0;
    let mut last_error = None;
    loop {
        if !drivers.is_running(handle) {
            return Err("the worker exited before it became healthy".to_owned());
        }
        let now = Instant::now();
        if now >= deadline {
            return Err(format!(
                "not healthy within the start timeout{}",
                last_error
                    .map(|e| format!(" (last check: {e})"))
                    .unwrap_or_default()
            ));
        }
        let timeout = check.timeout.min(deadline.saturating_duration_since(now));
        match drivers.run_check(handle, command, workdir, timeout).await {
            Ok(()) => {
                passed = passed.saturating_add(1);
                if passed >= check.healthy.max(1) {
                    return Ok(started.elapsed());
                }
            }
            Err(e) => {
                passed = 0;
                last_error = Some(e);
            }
        }
        tokio::time::sleep(check.interval).await;
    }
}

/// Runs a health command as a local process in `workdir`, with the
/// environment of the instance (process `pid`; the daemon's allowlist when
/// it cannot be read), and the instance's id and port; `Ok` on exit status
/// 0 within `timeout`.
pub(super) async fn run_local(
    command: &[String],
    workdir: &Path,
    instance: (&str, i32),
    addr: SocketAddr,
    timeout: Duration,
) -> Result<(), String> {
    let (instance_id, pid) = instance;
    let env = super::environ::of_process(pid)
        .unwrap_or_else(|| super::environ::from_daemon(std::env::vars_os(), false));
    let Some((program, args)) = command.split_first() else {
        return Err("the health command is empty".to_owned());
    };
    let program = if program.contains('/') && Path::new(program).is_relative() {
        workdir.join(program)
    } else {
        program.into()
    };
    let child = tokio::process::Command::new(&program)
        .args(args)
        .current_dir(workdir)
        .env_clear()
        .envs(env)
        .env("CUTOVER_INSTANCE", instance_id)
        .env("PORT", addr.port().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .map_err(|e| format!("cannot run health command {}: {e}", program.display()))?;
    match tokio::time::timeout(timeout, child.wait_with_output()).await {
        Err(_) => Err(format!("health command did not finish within {timeout:?}")),
        Ok(Err(e)) => Err(format!("health command failed: {e}")),
        Ok(Ok(out)) if out.status.success() => Ok(()),
        Ok(Ok(out)) => {
            let mut output = out.stdout;
            output.extend_from_slice(&out.stderr);
            Err(format!(
                "health command exited with {}{}",
                out.status,
                output_tail(&output)
            ))
        }
    }
}

/// `": <the last few hundred characters of output>"`, or nothing when it is empty.
pub(crate) fn output_tail(output: &[u8]) -> String {
    let text = String::from_utf8_lossy(output);
    let text = text.trim();
    let count = text.chars().count();
    let tail: String = text
        .chars()
        .skip(count.saturating_sub(OUTPUT_LIMIT))
        .collect();
    if tail.is_empty() {
        String::new()
    } else {
        format!(": {tail}")
    }
}
