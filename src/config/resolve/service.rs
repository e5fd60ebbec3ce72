//! Resolving `[service.NAME]` tables: kind, driver, command, env, replicas,
//! health, timeouts, route and `after` (the rollout itself is in `rollout`).

use std::collections::BTreeMap;

use serde_spanned::Spanned;

use super::Resolver;
use crate::config::model::{DriverKind, HealthConfig, LogsConfig, ServiceConfig, ServiceKind};
use crate::config::problem::Finding;
use crate::config::raw::{Name, RawHealth, RawLogs, RawService};
use crate::config::{defaults, limits};

impl Resolver<'_> {
    pub(super) fn services(
        &mut self,
        services: &BTreeMap<Name, Spanned<RawService>>,
        logs: LogsConfig,
    ) -> BTreeMap<String, ServiceConfig> {
        if services.is_empty() {
            self.report(
                Finding::new(0..0, "no services", "expected a [service.NAME] table").help(
                    "add the program to deploy, e.g.\n\n    [service.web]\n    command = [\"./bin/web\", \"--port\", \"{port}\"]",
                ),
            );
        }
        let spans = services.keys().map(Spanned::span).collect();
        self.at_most(spans, "service", limits::MAX_SERVICES);
        services
            .iter()
            .map(|(name, service)| {
                self.name(name, "service name");
                let resolved = self.service(name.get_ref(), service, logs);
                (name.get_ref().clone(), resolved)
            })
            .collect()
    }

    pub(super) fn service(
        &mut self,
        name: &str,
        service: &Spanned<RawService>,
        logs: LogsConfig,
    ) -> ServiceConfig {
        let raw = service.get_ref();
        let kind = match &raw.kind {
            Some(kind) => kind.get_ref().parse().unwrap_or_else(|help| {
                self.report(
                    Finding::new(
                        kind.span(),
                        format!("unknown service kind `{}`", kind.get_ref().0),
                        "unknown kind",
                    )
                    .help(help),
                );
                ServiceKind::Http
            }),
            None => ServiceKind::Http,
        };
        let driver = match &raw.driver {
            Some(driver) => match driver.get_ref().parse() {
                Ok(supported @ (DriverKind::Process | DriverKind::Docker | DriverKind::Swarm)) => {
                    supported
                }
                Ok(other) => {
                    self.report(
                        Finding::new(
                            driver.span(),
                            format!("driver `{other}` is not supported yet"),
                            "not supported yet",
                        )
                        .help(r#"use driver = "process" (the default), "docker" or "swarm""#),
                    );
                    other
                }
                Err(help) => {
                    self.report(
                        Finding::new(
                            driver.span(),
                            format!("unknown driver `{}`", driver.get_ref().0),
                            "unknown driver",
                        )
                        .help(help),
                    );
                    DriverKind::Process
                }
            },
            None => DriverKind::Process,
        };
        let command = self.command(name, service, driver);
        let env = self.env(&raw.env);
        let inherit_env = match &raw.inherit_env {
            Some(inherit) if driver != DriverKind::Process => {
                self.report(
                    Finding::new(
                        inherit.span(),
                        "`inherit_env` applies only to the process driver",
                        format!("`{name}` uses the {driver} driver"),
                    )
                    .help("remove it: a container gets only its `env` and cutover's variables"),
                );
                false
            }
            Some(inherit) => *inherit.get_ref(),
            None => false,
        };
        let logs = self.logs(raw.logs.as_ref(), logs);
        let replicas = self.count(
            raw.replicas.as_ref(),
            "replicas",
            defaults::REPLICAS,
            1..=defaults::MAX_REPLICAS,
        );
        let health = self.health(raw.health.as_ref(), kind);
        let docker = self.docker(name, service, driver, kind);
        let drain_timeout = self.duration(
            raw.drain_timeout.as_ref(),
            "drain_timeout",
            defaults::DRAIN_TIMEOUT,
            false,
        );
        let stop_timeout = self.duration(
            raw.stop_timeout.as_ref(),
            "stop_timeout",
            defaults::STOP_TIMEOUT,
            false,
        );

        if kind == ServiceKind::Worker {
            let http_only = [
                ("host", raw.host.as_ref().map(Spanned::span)),
                ("path_prefix", raw.path_prefix.as_ref().map(Spanned::span)),
                (
                    "max_request_body",
                    raw.max_request_body.as_ref().map(Spanned::span),
                ),
                (
                    "allowed_upgrades",
                    raw.allowed_upgrades.as_ref().map(Spanned::span),
                ),
            ];
            for (key, span) in http_only {
                if let Some(span) = span {
                    self.report(
                        Finding::new(
                            span,
                            format!("`{key}` applies only to http services"),
                            format!("`{name}` is a worker"),
                        )
                        .help(
                            r#"remove it, or make the service receive traffic with kind = "http""#,
                        ),
                    );
                }
            }
        }
        let host = raw.host.as_ref().and_then(|host| self.host(host));
        let path_prefix = match &raw.path_prefix {
            Some(prefix) if !prefix.get_ref().starts_with('/') => {
                self.report(
                    Finding::new(
                        prefix.span(),
                        "`path_prefix` must start with `/`",
                        "does not start with `/`",
                    )
                    .help(r#"expected a path such as "/" or "/api""#),
                );
                defaults::PATH_PREFIX.to_owned()
            }
            Some(prefix) => prefix.get_ref().clone(),
            None => defaults::PATH_PREFIX.to_owned(),
        };
        let after = match &raw.after {
            Some(after) => {
                let items = after.get_ref();
                self.places.after.insert(
                    name.to_owned(),
                    items
                        .iter()
                        .map(|item| (item.get_ref().clone(), item.span()))
                        .collect(),
                );
                items.iter().map(|item| item.get_ref().clone()).collect()
            }
            None => Vec::new(),
        };
        let (max_request_body, allowed_upgrades) = if kind == ServiceKind::Http {
            (
                raw.max_request_body
                    .as_ref()
                    .and_then(|size| self.size(size, "max_request_body", limits::MAX_REQUEST_BODY)),
                match &raw.allowed_upgrades {
                    Some(list) => self.upgrades(list),
                    None => defaults::ALLOWED_UPGRADES.map(str::to_owned).to_vec(),
                },
            )
        } else {
            (None, Vec::new())
        };
        let kind_span = raw.kind.as_ref().map(Spanned::span);
        let rollout = self.rollout(name, raw.rollout.as_ref(), kind, kind_span);

        if kind == ServiceKind::Http {
            let place = raw
                .path_prefix
                .as_ref()
                .or(raw.host.as_ref())
                .map_or(service.span(), Spanned::span);
            self.places.routes.insert(name.to_owned(), place);
        }

        let artifacts = self.artifacts(raw.artifacts.as_ref());

        ServiceConfig {
            kind,
            driver,
            command,
            env,
            inherit_env,
            logs,
            replicas,
            health,
            drain_timeout,
            stop_timeout,
            host,
            path_prefix,
            after,
            rollout,
            docker,
            max_request_body,
            allowed_upgrades,
            artifacts,
        }
    }

    /// `artifacts = [...]`: non-empty paths, at most
    /// [`limits::MAX_ARTIFACTS`] of them, `${VAR}` expanded.
    fn artifacts(&mut self, list: Option<&Spanned<Vec<Spanned<String>>>>) -> Vec<String> {
        let Some(list) = list else {
            return Vec::new();
        };
        let spans = list.get_ref().iter().map(Spanned::span).collect();
        self.at_most(spans, "artifact", limits::MAX_ARTIFACTS);
        let mut artifacts = Vec::new();
        for item in list.get_ref() {
            if item.get_ref().trim().is_empty() {
                self.report(
                    Finding::new(item.span(), "an artifact path is empty", "empty")
                        .help(r#"write the file's path relative to the config file, e.g. "dist/app-{version}.tar.gz""#),
                );
                continue;
            }
            if let Some(path) = self.expand(item) {
                artifacts.push(path);
            }
        }
        artifacts
    }

    pub(super) fn command(
        &mut self,
        name: &str,
        service: &Spanned<RawService>,
        driver: DriverKind,
    ) -> Vec<String> {
        let example = "expected the program to run and its arguments, e.g.\n\n    command = [\"./bin/web\", \"--port\", \"{port}\"]";
        if matches!(driver, DriverKind::Docker | DriverKind::Swarm)
            && let Some(command) = &service.get_ref().command
        {
            self.report(
                Finding::new(
                    command.span(),
                    format!("`command` does not apply to the {driver} driver"),
                    format!("{driver} runs the image's entrypoint"),
                )
                .help("remove it: the container runs the image's ENTRYPOINT and CMD; pass settings with `env`"),
            );
            return Vec::new();
        }
        let Some(command) = &service.get_ref().command else {
            if driver == DriverKind::Process {
                self.report(
                    Finding::new(
                        service.span(),
                        format!("service `{name}` has no `command`"),
                        "this service",
                    )
                    .help(format!("the process driver needs a command: {example}")),
                );
            }
            return Vec::new();
        };
        let items = command.get_ref();
        match items.first() {
            None => self
                .report(Finding::new(command.span(), "`command` is empty", "empty").help(example)),
            Some(program) if program.get_ref().trim().is_empty() => {
                self.report(
                    Finding::new(program.span(), "the program in `command` is empty", "empty")
                        .help(example),
                );
            }
            Some(_) => {}
        }
        items.iter().filter_map(|item| self.expand(item)).collect()
    }

    /// `[logs]` or a service's `logs = { … }`: each key left out is taken
    /// from `inherited` (the defaults, or `[logs]` for a service).
    pub(super) fn logs(
        &mut self,
        logs: Option<&Spanned<RawLogs>>,
        inherited: LogsConfig,
    ) -> LogsConfig {
        let Some(logs) = logs else {
            return inherited;
        };
        let raw = logs.get_ref();
        let max_size = match &raw.max_size {
            Some(size) => match self.size(size, "logs.max_size", limits::MAX_LOG_SIZE) {
                Some(bytes) if bytes < limits::MIN_LOG_SIZE => {
                    self.report(
                        Finding::new(
                            size.span(),
                            format!(
                                "`logs.max_size` must be at least {}",
                                defaults::size_text(limits::MIN_LOG_SIZE)
                            ),
                            "too small",
                        )
                        .help(r#"expected a size such as "10MiB" (the default) or "100k""#),
                    );
                    inherited.max_size
                }
                Some(bytes) => bytes,
                None => inherited.max_size,
            },
            None => inherited.max_size,
        };
        let max_files = self.count(
            raw.max_files.as_ref(),
            "logs.max_files",
            inherited.max_files,
            0..=limits::MAX_LOG_FILES,
        );
        LogsConfig {
            max_size,
            max_files,
        }
    }

    pub(super) fn env(
        &mut self,
        env: &BTreeMap<Name, Spanned<String>>,
    ) -> BTreeMap<String, String> {
        let mut out = BTreeMap::new();
        for (key, value) in env {
            let name = key.get_ref();
            if name.is_empty() || name.contains(['=', '\0']) {
                self.report(
                    Finding::new(
                        key.span(),
                        format!("invalid environment variable name `{name}`"),
                        "invalid name",
                    )
                    .help("a name may not be empty or contain `=`"),
                );
            }
            if let Some(expanded) = self.expand(value) {
                out.insert(name.clone(), expanded);
            }
        }
        out
    }

    pub(super) fn health(
        &mut self,
        health: Option<&Spanned<RawHealth>>,
        kind: ServiceKind,
    ) -> HealthConfig {
        let Some(health) = health else {
            return HealthConfig::default();
        };
        let raw = health.get_ref();
        let command = match &raw.command {
            Some(command) if kind == ServiceKind::Http => {
                self.report(
                    Finding::new(
                        command.span(),
                        "`health.command` applies only to workers",
                        "an http service",
                    )
                    .help("http services are checked over HTTP at `health.path`"),
                );
                Vec::new()
            }
            Some(command) if command.get_ref().is_empty() => {
                self.report(
                    Finding::new(command.span(), "`health.command` is empty", "empty").help(
                        "expected a program and its arguments, e.g. command = [\"./bin/check\"]",
                    ),
                );
                Vec::new()
            }
            Some(command) => command
                .get_ref()
                .iter()
                .filter_map(|item| self.expand(item))
                .collect(),
            None => Vec::new(),
        };
        let path = match &raw.path {
            Some(path) if !path.get_ref().starts_with('/') => {
                self.report(
                    Finding::new(
                        path.span(),
                        "`health.path` must start with `/`",
                        "does not start with `/`",
                    )
                    .help(r#"expected an HTTP path such as "/health""#),
                );
                defaults::HEALTH_PATH.to_owned()
            }
            Some(path) => path.get_ref().clone(),
            None => defaults::HEALTH_PATH.to_owned(),
        };
        HealthConfig {
            path,
            interval: self.duration(
                raw.interval.as_ref(),
                "health.interval",
                defaults::HEALTH_INTERVAL,
                true,
            ),
            timeout: self.duration(
                raw.timeout.as_ref(),
                "health.timeout",
                defaults::HEALTH_TIMEOUT,
                true,
            ),
            healthy: self.count(
                raw.healthy.as_ref(),
                "health.healthy",
                defaults::HEALTH_HEALTHY,
                1..=limits::MAX_HEALTH_CHECKS,
            ),
            unhealthy: self.count(
                raw.unhealthy.as_ref(),
                "health.unhealthy",
                defaults::HEALTH_UNHEALTHY,
                1..=limits::MAX_HEALTH_CHECKS,
            ),
            start_timeout: self.duration(
                raw.start_timeout.as_ref(),
                "health.start_timeout",
                defaults::HEALTH_START_TIMEOUT,
                true,
            ),
            command,
        }
    }
}
