//! Finding the running instances of an app whatever the store says, for
//! when the state store was lost: `cutover serve` refuses to start with an
//! empty store while any run, and `--adopt-orphans` takes them back.
//!
//! A local process is one of ours when it leads its own process group (the
//! process driver starts every instance so), its environment names the app
//! and one of its environments (`CUTOVER_APP`, `CUTOVER_ENVIRONMENT`, set by
//! [`super::ProcessDriver::start`]) and its standard output is a log file
//! under this config's log directory (`.cutover/logs`), so the same app run
//! from another directory is not taken. Its handle is rebuilt from the same
//! variables (`CUTOVER_INSTANCE`, `CUTOVER_SERVICE`, `CUTOVER_VERSION`,
//! `PORT`) and its start time in `/proc/<pid>/stat`. A container is one of
//! ours by its labels (app, environment, service, release, instance).

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;

use super::docker::ContainerHandle;
use super::{DriverError, Drivers, Handle, InstanceHandle, procfs};

/// A running instance found by its driver's own marks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundInstance {
    /// Its environment.
    pub environment: String,
    /// Its service.
    pub service: String,
    /// The release it runs.
    pub version: String,
    /// What the driver needs to adopt or stop it.
    pub handle: Handle,
    /// When it started, in milliseconds since the epoch (0 when unknown),
    /// to tell which of two releases started last.
    pub started: u64,
}

impl Drivers {
    /// Every running local process of `app` in `environments` whose output
    /// goes under `log_dir`.
    pub fn find_running_processes(
        &self,
        app: &str,
        log_dir: &Path,
        environments: &[String],
    ) -> Vec<FoundInstance> {
        running_processes(app, log_dir, environments)
    }

    /// Every running container labelled with `app` and one of
    /// `environments`. An error when the containers cannot be listed (the
    /// Docker Engine does not answer).
    pub async fn find_running_containers(
        &self,
        app: &str,
        environments: &[String],
    ) -> Result<Vec<FoundInstance>, DriverError> {
        let mut found = Vec::new();
        for env in environments {
            for c in self.docker.labelled(app, env).await? {
                if !c.running {
                    continue;
                }
                found.push(FoundInstance {
                    environment: env.clone(),
                    service: c.service,
                    version: c.release,
                    handle: Handle::Docker(ContainerHandle {
                        instance_id: c.instance_id,
                        container_id: c.id,
                        name: c.name,
                        image: c.image,
                        addr: c.addr,
                    }),
                    started: u64::try_from(c.created)
                        .unwrap_or_default()
                        .saturating_mul(1000),
                });
            }
        }
        Ok(found)
    }
}

/// The instances of `app` the process driver started, found in `/proc`.
fn running_processes(app: &str, log_dir: &Path, environments: &[String]) -> Vec<FoundInstance> {
    // No log directory: no instance of this config ever ran here.
    let Ok(log_dir) = log_dir.canonicalize() else {
        return Vec::new();
    };
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let boot = boot_millis();
    let mut found = Vec::new();
    for pid in dir.filter_map(|e| e.ok()?.file_name().to_str()?.parse::<i32>().ok()) {
        let Ok(stat) = procfs::stat(pid) else {
            continue;
        };
        // Instances lead their own process group; their children share it.
        if stat.is_exited() || stat.pgrp != pid {
            continue;
        }
        // Another user's process, or one that just exited: not ours to see.
        let Ok(environ) = std::fs::read(format!("/proc/{pid}/environ")) else {
            continue;
        };
        let vars = parse_environ(&environ);
        let var = |k: &str| vars.get(k).cloned();
        if var("CUTOVER_APP").as_deref() != Some(app) {
            continue;
        }
        let (Some(environment), Some(instance_id), Some(service), Some(version), Some(port)) = (
            var("CUTOVER_ENVIRONMENT"),
            var("CUTOVER_INSTANCE"),
            var("CUTOVER_SERVICE"),
            var("CUTOVER_VERSION"),
            var("PORT").and_then(|p| p.parse::<u16>().ok()),
        ) else {
            continue;
        };
        if !environments.contains(&environment) {
            continue;
        }
        let Ok(log_path) = std::fs::read_link(format!("/proc/{pid}/fd/1")) else {
            continue;
        };
        if !log_path.starts_with(&log_dir) {
            continue;
        }
        found.push(FoundInstance {
            environment,
            service,
            version,
            handle: Handle::Process(InstanceHandle {
                instance_id,
                pid,
                pgid: pid,
                port,
                addr: SocketAddr::from((Ipv4Addr::LOCALHOST, port)),
                start_time_ticks: stat.start_time_ticks,
                log_path,
            }),
            started: boot.map_or(0, |(boot, per_tick)| {
                boot.saturating_add(stat.start_time_ticks.saturating_mul(per_tick))
            }),
        });
    }
    found
}

/// When the machine booted (milliseconds since the epoch, `btime` in
/// `/proc/stat`) and how many milliseconds a clock tick is.
fn boot_millis() -> Option<(u64, u64)> {
    let stat = std::fs::read_to_string("/proc/stat").ok()?;
    let btime: u64 = stat
        .lines()
        .find_map(|l| l.strip_prefix("btime "))?
        .trim()
        .parse()
        .ok()?;
    // `/proc/<pid>/stat` counts in USER_HZ, which Linux fixes at 100 for
    // user space on every architecture cutover runs on.
    Some((btime.saturating_mul(1000), 10))
}

/// The `KEY=value` entries of `/proc/<pid>/environ` (NUL-separated); entries
/// that are not UTF-8 are skipped.
fn parse_environ(raw: &[u8]) -> HashMap<String, String> {
    raw.split(|b| *b == 0)
        .filter_map(|entry| std::str::from_utf8(entry).ok())
        .filter_map(|entry| entry.split_once('='))
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn environ_entries_are_split_on_nul_and_the_first_equals_sign() {
        let vars = parse_environ(b"A=1\0B=x=y\0\xff=bad\0NOEQUALS\0\0");
        assert_eq!(vars.get("A").map(String::as_str), Some("1"));
        assert_eq!(vars.get("B").map(String::as_str), Some("x=y"));
        assert_eq!(vars.len(), 2);
    }

    #[test]
    fn a_missing_log_directory_finds_nothing() {
        let found = running_processes(
            "hello",
            Path::new("/nonexistent/cutover/logs"),
            &["production".to_owned()],
        );
        assert!(found.is_empty());
    }
}
