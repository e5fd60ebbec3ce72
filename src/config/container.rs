//! The resolved settings of a service run by the docker or swarm driver
//! ([`DockerConfig`]): image, container port, volumes, stop signal, resource
//! limits, whether to pull, and for swarm its own settings ([`SwarmConfig`]).
//! Part of [`super::ServiceConfig`].

use serde::Serialize;

/// How a `driver = "docker"` service's containers are made.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DockerConfig {
    /// The image reference, `{version}` left in place for the driver to fill
    /// (`hello:{version}`, `registry.example/shop@sha256:…`).
    pub image: String,
    /// The port the container listens on; `None` only for workers.
    pub port: Option<u16>,
    /// Volumes in Docker's bind syntax (`data:/data`, `/abs/dir:/data:ro`);
    /// relative host paths are already made absolute.
    pub volumes: Vec<String>,
    /// The signal that asks a container to stop, such as `SIGTERM`.
    pub stop_signal: String,
    /// Memory limit in bytes.
    pub memory_bytes: Option<i64>,
    /// CPU limit in billionths of a core (`0.5` cores is 500 000 000).
    pub nano_cpus: Option<i64>,
    /// Pull the image before each deploy instead of requiring it locally.
    pub pull: bool,
    /// `Some` exactly when the service runs on Docker Swarm (`driver = "swarm"`).
    pub swarm: Option<SwarmConfig>,
}

/// `[service.NAME.swarm]`: what a `driver = "swarm"` service adds to the
/// container settings.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SwarmConfig {
    /// Placement constraints, as Swarm writes them (`node.role == manager`).
    pub constraints: Vec<String>,
    /// Swarm's own health check: a command run in each task; empty for none.
    pub health_command: Vec<String>,
    /// Workers: how many tasks Swarm's rolling update replaces at once.
    pub update_parallelism: u32,
    /// Workers: the pause between two batches of the rolling update.
    #[serde(serialize_with = "serialize_duration")]
    pub update_delay: std::time::Duration,
    /// Workers: how long Swarm watches each updated task for a failure.
    #[serde(serialize_with = "serialize_duration")]
    pub update_monitor: std::time::Duration,
    /// Workers: what Swarm does when the update fails.
    pub update_failure_action: UpdateFailureAction,
}

impl Default for SwarmConfig {
    fn default() -> Self {
        Self {
            constraints: Vec::new(),
            health_command: Vec::new(),
            update_parallelism: 1,
            update_delay: std::time::Duration::ZERO,
            update_monitor: std::time::Duration::from_secs(5),
            update_failure_action: UpdateFailureAction::Rollback,
        }
    }
}

/// Durations serialize as the config file writes them: "5s".
fn serialize_duration<S: serde::Serializer>(
    duration: &std::time::Duration,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.collect_str(&super::defaults::duration_text(*duration))
}

/// `swarm.update_failure_action`: what Swarm does when a worker's rolling
/// update fails. Either way cutover fails the deployment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum UpdateFailureAction {
    /// Swarm puts the previous spec back (the previous release keeps running).
    Rollback,
    /// Swarm stops the update where it is (tasks of both releases run).
    Pause,
}

impl UpdateFailureAction {
    /// As written in the config and sent to Swarm.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Rollback => "rollback",
            Self::Pause => "pause",
        }
    }
}

impl DockerConfig {
    /// The image of one release: `{version}` replaced by `version`.
    pub fn image_for(&self, version: &str) -> String {
        self.image.replace("{version}", version)
    }
}

/// `"256m"`, `"1g"`, `"512k"`, `"1048576"` (bytes; also `kb`, `mib`, …) as
/// bytes, or why not.
pub(crate) fn parse_memory(text: &str) -> Result<i64, String> {
    let text = text.trim().to_ascii_lowercase();
    let digits_end = text
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(text.len());
    let (number, unit) = text.split_at(digits_end);
    let number: f64 = number
        .parse()
        .map_err(|_| "expected a number and a unit".to_owned())?;
    let factor: f64 = match unit.trim() {
        "" | "b" => 1.0,
        "k" | "kb" | "kib" => 1024.0,
        "m" | "mb" | "mib" => 1024.0 * 1024.0,
        "g" | "gb" | "gib" => 1024.0 * 1024.0 * 1024.0,
        other => return Err(format!("unknown unit `{other}`")),
    };
    let bytes = (number * factor).round();
    if !(1.0..=9.0e18).contains(&bytes) {
        return Err("out of range".to_owned());
    }
    // In range, so the conversion is exact enough and cannot overflow.
    Ok(bytes as i64)
}

/// A signal name as Docker takes it (`SIGTERM`), from `SIGTERM`, `TERM` or
/// `sigterm`; `None` for an unknown signal.
pub(crate) fn normalize_signal(text: &str) -> Option<String> {
    let upper = text.trim().to_ascii_uppercase();
    let name = if upper.starts_with("SIG") {
        upper
    } else {
        format!("SIG{upper}")
    };
    name.parse::<nix::sys::signal::Signal>()
        .ok()
        .map(|s| s.as_str().to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_sizes() {
        assert_eq!(parse_memory("256m"), Ok(256 * 1024 * 1024));
        assert_eq!(parse_memory("1G"), Ok(1024 * 1024 * 1024));
        assert_eq!(parse_memory("512kb"), Ok(512 * 1024));
        assert_eq!(parse_memory("1.5g"), Ok(1536 * 1024 * 1024));
        assert_eq!(parse_memory("4096"), Ok(4096));
        assert!(parse_memory("12x").is_err());
        assert!(parse_memory("m").is_err());
        assert!(parse_memory("0").is_err());
    }

    #[test]
    fn signals() {
        assert_eq!(normalize_signal("SIGTERM").as_deref(), Some("SIGTERM"));
        assert_eq!(normalize_signal("quit").as_deref(), Some("SIGQUIT"));
        assert_eq!(normalize_signal("SIGNOPE"), None);
    }

    #[test]
    fn image_per_release() {
        let c = DockerConfig {
            image: "hello:{version}".into(),
            port: Some(8080),
            volumes: vec![],
            stop_signal: "SIGTERM".into(),
            memory_bytes: None,
            nano_cpus: None,
            pull: false,
            swarm: None,
        };
        assert_eq!(c.image_for("v2"), "hello:v2");
    }
}
