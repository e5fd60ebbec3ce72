//! Resolving the docker driver's keys of a `[service.NAME]` table: `image`,
//! `port`, `volumes`, `stop_signal`, `resources` and `pull`. They are required
//! or checked for `driver = "docker"` and `driver = "swarm"` (which also reads
//! `[service.NAME.swarm]`, and has no `volumes`), and errors on any other driver.

use std::path::Path;

use serde_spanned::Spanned;

use super::Resolver;
use crate::config::container::{self, DockerConfig, SwarmConfig, UpdateFailureAction};
use crate::config::defaults::size_text;
use crate::config::limits;
use crate::config::model::{DriverKind, ServiceKind};
use crate::config::problem::Finding;
use crate::config::raw::RawService;
use crate::config::scalars::RawNumber;

/// The keys only the docker driver reads, with their spans when written.
fn docker_keys(raw: &RawService) -> Vec<(&'static str, std::ops::Range<usize>)> {
    let mut keys = Vec::new();
    if let Some(v) = &raw.image {
        keys.push(("image", v.span()));
    }
    if let Some(v) = &raw.port {
        keys.push(("port", v.span()));
    }
    if let Some(v) = &raw.volumes {
        keys.push(("volumes", v.span()));
    }
    if let Some(v) = &raw.stop_signal {
        keys.push(("stop_signal", v.span()));
    }
    if let Some(v) = &raw.resources {
        keys.push(("resources", v.span()));
    }
    if let Some(v) = &raw.pull {
        keys.push(("pull", v.span()));
    }
    keys
}

impl Resolver<'_> {
    /// The container settings of a docker service; for other drivers, reports
    /// every docker-only key written and returns `None`.
    pub(super) fn docker(
        &mut self,
        name: &str,
        service: &Spanned<RawService>,
        driver: DriverKind,
        kind: ServiceKind,
    ) -> Option<DockerConfig> {
        let raw = service.get_ref();
        if driver != DriverKind::Swarm
            && let Some(swarm) = &raw.swarm
        {
            self.report(
                Finding::new(
                    swarm.span(),
                    "`swarm` applies only to the swarm driver",
                    format!("`{name}` uses the {driver} driver"),
                )
                .help(r#"remove it, or run the service on Docker Swarm with driver = "swarm""#),
            );
        }
        if driver == DriverKind::Swarm
            && let Some(volumes) = &raw.volumes
        {
            self.report(
                Finding::new(
                    volumes.span(),
                    "`volumes` is not supported by the swarm driver yet",
                    "not supported with swarm",
                )
                .help(r#"remove it, or run the service with driver = "docker""#),
            );
        }
        if !matches!(driver, DriverKind::Docker | DriverKind::Swarm) {
            for (key, span) in docker_keys(raw) {
                self.report(
                    Finding::new(
                        span,
                        format!("`{key}` applies only to the docker and swarm drivers"),
                        format!("`{name}` uses the {driver} driver"),
                    )
                    .help(r#"remove it, or run the service in containers with driver = "docker""#),
                );
            }
            return None;
        }
        let image = self.image(name, service);
        let port = match &raw.port {
            Some(port) => {
                let n = self.count(Some(port), "port", 8080, 1..=u32::from(u16::MAX));
                u16::try_from(n).ok()
            }
            None if kind == ServiceKind::Http => {
                self.report(
                    Finding::new(
                        service.span(),
                        format!("service `{name}` has no `port`"),
                        "this service",
                    )
                    .help(format!("the {driver} driver needs the port the container listens on, e.g. port = 8080")),
                );
                None
            }
            None => None,
        };
        let volumes = raw
            .volumes
            .as_ref()
            .map(|list| {
                list.get_ref()
                    .iter()
                    .filter_map(|v| self.volume(v))
                    .collect()
            })
            .unwrap_or_default();
        let stop_signal = match &raw.stop_signal {
            Some(signal) => container::normalize_signal(signal.get_ref()).unwrap_or_else(|| {
                self.report(
                    Finding::new(
                        signal.span(),
                        format!("unknown signal `{}`", signal.get_ref()),
                        "not a signal",
                    )
                    .help(r#"expected a signal name such as "SIGTERM", "SIGINT" or "SIGQUIT""#),
                );
                "SIGTERM".to_owned()
            }),
            None => "SIGTERM".to_owned(),
        };
        let (mut memory_bytes, mut nano_cpus) = (None, None);
        if let Some(resources) = &raw.resources {
            let r = resources.get_ref();
            if let Some(memory) = &r.memory {
                match container::parse_memory(memory.get_ref()) {
                    Ok(bytes) if bytes.unsigned_abs() > limits::MAX_MEMORY => self.report(
                        Finding::new(
                            memory.span(),
                            format!(
                                "`resources.memory` must be at most {}",
                                size_text(limits::MAX_MEMORY)
                            ),
                            "too large",
                        )
                        .help(
                            r#"expected bytes or a number with k, m or g, such as "256m" or "1g""#,
                        ),
                    ),
                    Ok(bytes) => memory_bytes = Some(bytes),
                    Err(reason) => self.report(
                        Finding::new(
                            memory.span(),
                            format!(
                                "`resources.memory` is not a size: \"{}\"",
                                limits::elide(memory.get_ref(), 40)
                            ),
                            reason,
                        )
                        .help(
                            r#"expected bytes or a number with k, m or g, such as "256m" or "1g""#,
                        ),
                    ),
                }
            }
            if let Some(cpus) = &r.cpus {
                let RawNumber(n) = *cpus.get_ref();
                if n > 0.0 && n <= 1024.0 {
                    // At most 1024 cores: fits an i64 in billionths.
                    nano_cpus = Some((n * 1e9).round() as i64);
                } else {
                    self.report(
                        Finding::new(
                            cpus.span(),
                            "`resources.cpus` must be greater than 0",
                            format!("got {n}"),
                        )
                        .help("expected a number of cores such as 0.5 or 2"),
                    );
                }
            }
        }
        Some(DockerConfig {
            image: image.unwrap_or_default(),
            port,
            volumes,
            stop_signal,
            memory_bytes,
            nano_cpus,
            pull: raw.pull.as_ref().is_some_and(|p| *p.get_ref()),
            swarm: (driver == DriverKind::Swarm).then(|| self.swarm(raw)),
        })
    }

    /// `[service.NAME.swarm]` of a swarm service (all keys optional).
    fn swarm(&mut self, raw: &RawService) -> SwarmConfig {
        let Some(swarm) = &raw.swarm else {
            return SwarmConfig::default();
        };
        let swarm = swarm.get_ref();
        let mut list = |items: &Option<Spanned<Vec<Spanned<String>>>>, what: &str| {
            let mut out = Vec::new();
            for item in items.iter().flat_map(|l| l.get_ref()) {
                match self.expand(item) {
                    Some(text) if text.trim().is_empty() => self.report(
                        Finding::new(
                            item.span(),
                            format!("empty item in `swarm.{what}`"),
                            "empty",
                        )
                        .help(r#"remove it; expected e.g. constraints = ["node.role == manager"]"#),
                    ),
                    Some(text) => out.push(text),
                    None => {}
                }
            }
            out
        };
        let constraints = list(&swarm.constraints, "constraints");
        let health_command = list(&swarm.health_command, "health_command");
        if let Some(command) = &swarm.health_command
            && command.get_ref().is_empty()
        {
            self.report(
                Finding::new(command.span(), "`swarm.health_command` is empty", "empty")
                    .help(r#"expected a command run inside the task, e.g. health_command = ["/hello", "--probe"], or remove it"#),
            );
        }
        let defaults = SwarmConfig::default();
        let update_parallelism = self.count(
            swarm.update_parallelism.as_ref(),
            "swarm.update_parallelism",
            defaults.update_parallelism,
            1..=crate::config::defaults::MAX_REPLICAS,
        );
        let update_delay = self.duration(
            swarm.update_delay.as_ref(),
            "swarm.update_delay",
            defaults.update_delay,
            false,
        );
        let update_monitor = self.duration(
            swarm.update_monitor.as_ref(),
            "swarm.update_monitor",
            defaults.update_monitor,
            false,
        );
        let update_failure_action = match &swarm.update_failure_action {
            None => defaults.update_failure_action,
            Some(written) => {
                let text = written.get_ref().as_str();
                let parsed = match text {
                    "rollback" => Ok(UpdateFailureAction::Rollback),
                    "pause" => Ok(UpdateFailureAction::Pause),
                    _ => Err(
                        r#"expected "rollback" (Swarm puts the previous release back) or "pause""#
                            .to_owned(),
                    ),
                };
                self.choice(
                    written.span(),
                    text,
                    "`swarm.update_failure_action`",
                    parsed,
                )
                .unwrap_or(defaults.update_failure_action)
            }
        };
        SwarmConfig {
            constraints,
            health_command,
            update_parallelism,
            update_delay,
            update_monitor,
            update_failure_action,
        }
    }

    fn image(&mut self, name: &str, service: &Spanned<RawService>) -> Option<String> {
        let Some(image) = &service.get_ref().image else {
            self.report(
                Finding::new(
                    service.span(),
                    format!("service `{name}` has no `image`"),
                    "this service",
                )
                .help("the docker driver needs an image, e.g. image = \"hello:{version}\" ({version} becomes the release's version)"),
            );
            return None;
        };
        let expanded = self.expand(image)?;
        if expanded.trim().is_empty() || expanded.chars().any(char::is_whitespace) {
            self.report(
                Finding::new(image.span(), "`image` is not an image reference", "invalid image")
                    .help(r#"expected a reference such as "hello:{version}" or "registry.example/shop@sha256:…""#),
            );
            return None;
        }
        Some(expanded)
    }

    /// `NAME:/path`, `./dir:/path` or `/dir:/path`, optionally `:ro` / `:rw`,
    /// with a relative host directory made absolute.
    fn volume(&mut self, volume: &Spanned<String>) -> Option<String> {
        let text = self.expand(volume)?;
        let parts: Vec<&str> = text.split(':').collect();
        let (source, target, mode) = match parts.as_slice() {
            [s, t] => (*s, *t, None),
            [s, t, m] if *m == "ro" || *m == "rw" => (*s, *t, Some(*m)),
            _ => {
                self.report(
                    Finding::new(volume.span(), format!("invalid volume `{text}`"), "invalid volume")
                        .help(r#"expected "NAME:/path", "./dir:/path" or "/dir:/path", optionally ending in ":ro""#),
                );
                return None;
            }
        };
        let named = source
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
            && source
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "_.-".contains(c));
        let is_path = source.starts_with('/') || source.starts_with('.');
        if !target.starts_with('/') || !(named || is_path) {
            self.report(
                Finding::new(volume.span(), format!("invalid volume `{text}`"), if target.starts_with('/') {
                    "the source is neither a volume name nor a path"
                } else {
                    "the path in the container must be absolute"
                })
                .help(r#"expected "NAME:/path", "./dir:/path" or "/dir:/path", optionally ending in ":ro""#),
            );
            return None;
        }
        let source = if source.starts_with('.') {
            absolute(self.cx.base_dir, source)
        } else {
            source.to_owned()
        };
        Some(match mode {
            Some(mode) => format!("{source}:{target}:{mode}"),
            None => format!("{source}:{target}"),
        })
    }
}

/// `base/rel` without `.` components (Docker wants a clean absolute path).
fn absolute(base: &Path, rel: &str) -> String {
    let mut out = base.to_path_buf();
    for part in Path::new(rel).components() {
        match part {
            std::path::Component::CurDir => {}
            std::path::Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out.display().to_string()
}
