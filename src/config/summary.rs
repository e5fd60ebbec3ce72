//! [`Config::summary`]: the human-readable overview `cutover check` prints.

use std::fmt::Write;

use super::defaults::{duration_text, size_text};
use super::limits::MAX_NAME_LEN;
use super::model::{
    ApiExposure, Config, EnvironmentConfig, LimitsConfig, LogsConfig, ServiceConfig, ServiceKind,
    Strategy,
};
use super::redact::{redact_url, redact_urls_in};

impl Config {
    /// What the config describes, for people: the app, each service (kind,
    /// driver, replicas, route, rollout, command) and each environment
    /// (listener) and each database (URL without password, migrations folder).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_summary(&mut out);
        out
    }

    fn write_summary(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "app {} ({})", self.app.name, self.path.display())?;
        let api = match (&self.server.tls, self.server.exposure()) {
            (Some(tls), _) => format!(
                "https://{} (cert {})",
                self.server.listen,
                tls.cert.display()
            ),
            (None, ApiExposure::PlaintextAllowed) => format!(
                "{} (plain HTTP off loopback: allow_plaintext)",
                self.server.listen
            ),
            (None, _) => self.server.listen.to_string(),
        };
        writeln!(out, "  daemon API   {api}")?;
        if let Some(metrics) = self.server.metrics_listen {
            writeln!(out, "  metrics      {metrics} (/metrics, no token)")?;
        }
        match (self.server.dashboard, self.server.dashboard_listen) {
            (false, _) => writeln!(out, "  dashboard    off")?,
            (true, Some(addr)) => writeln!(out, "  dashboard    {addr}/ui/")?,
            (true, None) => writeln!(out, "  dashboard    {}/ui/", self.server.listen)?,
        }
        writeln!(out, "  state        {}", redact_url(&self.state.url))?;

        writeln!(out, "services ({})", self.services.len())?;
        let width = column_width(self.services.keys());
        for (name, service) in &self.services {
            let replicas = match service.replicas {
                1 => "1 replica".to_owned(),
                n => format!("{n} replicas"),
            };
            let mut line = format!(
                "  {name:width$}  {:6}  {:10}  {replicas:11}",
                service.kind, service.driver
            );
            if service.kind == ServiceKind::Http {
                let host = service.host.as_deref().unwrap_or("*");
                line = format!("{line}  {host}{}", service.path_prefix);
            }
            writeln!(out, "{}", line.trim_end())?;
            writeln!(out, "  {:width$}  {}", "", rollout(service))?;
            if let Some(docker) = &service.docker {
                let port = docker
                    .port
                    .map(|p| format!(", port {p}"))
                    .unwrap_or_default();
                writeln!(out, "  {:width$}  image {}{port}", "", docker.image)?;
            }
            if !service.command.is_empty() {
                writeln!(out, "  {:width$}  $ {}", "", shell_words(&service.command))?;
            }
            if !service.env.is_empty() || service.inherit_env {
                // Names only: the values may be secrets.
                let names: Vec<&str> = service.env.keys().map(String::as_str).collect();
                let inherit = if service.inherit_env {
                    " (and the daemon's environment: inherit_env)"
                } else {
                    ""
                };
                writeln!(out, "  {:width$}  env {}{inherit}", "", names.join(", "))?;
            }
            if service.logs != LogsConfig::default() {
                writeln!(
                    out,
                    "  {:width$}  logs rotated at {}, {} kept",
                    "",
                    size_text(service.logs.max_size),
                    service.logs.max_files
                )?;
            }
        }

        writeln!(out, "environments ({})", self.environments.len())?;
        let width = column_width(self.environments.keys());
        for (name, environment) in &self.environments {
            writeln!(
                out,
                "  {name:width$}  listen {}  rollback window {}",
                environment.listen,
                humantime::format_duration(environment.rollback_window)
            )?;
            for line in edge_lines(environment)
                .into_iter()
                .chain(gate_lines(environment))
            {
                writeln!(out, "  {:width$}  {line}", "")?;
            }
            for line in self.environment_lines(environment) {
                writeln!(out, "  {:width$}  {line}", "")?;
            }
            if let Some(a) = &environment.approvals {
                writeln!(
                    out,
                    "  {:width$}  approvals {} within {}, at the {}",
                    "",
                    a.required,
                    humantime::format_duration(a.expires),
                    a.at.as_str()
                )?;
            }
        }

        if !self.databases.is_empty() {
            writeln!(out, "databases ({})", self.databases.len())?;
            let width = column_width(self.databases.keys());
            for (name, database) in &self.databases {
                writeln!(
                    out,
                    "  {name:width$}  {}  migrations {}",
                    database.display_url(),
                    database.migrations.display()
                )?;
            }
        }
        Ok(())
    }
}

impl Config {
    /// What `environment` runs differently from the services and databases
    /// as written: its overrides and its own databases (URLs without
    /// passwords, `env` names without values), one line each.
    fn environment_lines(&self, environment: &EnvironmentConfig) -> Vec<String> {
        let mut lines = Vec::new();
        for (name, service) in &environment.services {
            let Some(base) = self.services.get(name) else {
                continue;
            };
            let mut changes = Vec::new();
            if service.replicas != base.replicas {
                changes.push(match service.replicas {
                    1 => "1 replica".to_owned(),
                    n => format!("{n} replicas"),
                });
            }
            if service.env != base.env {
                let names: Vec<&str> = service
                    .env
                    .iter()
                    .filter(|(k, v)| base.env.get(*k) != Some(*v))
                    .map(|(k, _)| k.as_str())
                    .collect();
                changes.push(format!("env {}", names.join(", ")));
            }
            if service.health != base.health {
                changes.push("health".to_owned());
            }
            if !changes.is_empty() {
                lines.push(format!("service {name}: {}", changes.join(", ")));
            }
        }
        for (name, database) in &environment.databases {
            if self.databases.get(name) != Some(database) {
                let backups = database
                    .backup
                    .as_ref()
                    .map(|b| format!("  backups {}", b.dir.display()))
                    .unwrap_or_default();
                lines.push(format!(
                    "database {name}: {}{}{backups}",
                    database.display_url(),
                    if database.shared { " (shared)" } else { "" }
                ));
            }
        }
        lines
    }
}

/// What gates a deploy to the environment, when anything does: promotion
/// and deploy windows.
fn gate_lines(environment: &EnvironmentConfig) -> Vec<String> {
    let mut lines = Vec::new();
    if let Some(from) = &environment.promote_from {
        lines.push(format!(
            "promotes from {from} after a soak of {}",
            humantime::format_duration(environment.soak)
        ));
    }
    if !environment.deploy_windows.is_empty() {
        let list: Vec<String> = environment
            .deploy_windows
            .iter()
            .map(ToString::to_string)
            .collect();
        lines.push(format!("deploy windows {}", list.join(", ")));
    }
    lines
}

/// The edge settings of an environment that differ from the defaults, one
/// line each. The track secret is never shown, only that there is one.
fn edge_lines(environment: &EnvironmentConfig) -> Vec<String> {
    let mut lines = Vec::new();
    let list = |nets: &[ipnet::IpNet]| {
        nets.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    if let Some(tls) = &environment.tls {
        let mut parts = Vec::new();
        for files in &tls.files {
            parts.push(format!("cert {}", files.cert.display()));
        }
        if let Some(acme) = &tls.acme {
            parts.push(format!(
                "acme {} ({}, {})",
                acme.domains.join(", "),
                acme.challenge,
                acme.directory
            ));
        }
        lines.push(format!("tls {}", parts.join("; ")));
    }
    if let Some(redirect) = environment.redirect_listen {
        lines.push(format!("redirect {redirect} → https"));
    }
    if let Some(hsts) = environment.hsts {
        lines.push(format!("hsts max-age {}", duration_text(hsts)));
    }
    if !environment.trusted_proxies.is_empty() {
        lines.push(format!(
            "trusted proxies {}",
            list(&environment.trusted_proxies)
        ));
    }
    if let Some(track) = &environment.track_override {
        let mut who = Vec::new();
        if track.secret.is_some() {
            who.push("with the secret".to_owned());
        }
        if !track.trusted_sources.is_empty() {
            who.push(format!("from {}", list(&track.trusted_sources)));
        }
        lines.push(format!("track override {}", who.join(" or ")));
    }
    let limits = &environment.limits;
    if limits != &LimitsConfig::default() {
        lines.push(format!(
            "limits: first request {}, {} connections, {} h2 streams, h2 idle {}, upgrade idle {}, idle {}, body {}",
            duration_text(limits.first_request_timeout),
            limits.max_connections,
            limits.h2_max_concurrent_streams,
            duration_text(limits.h2_idle_timeout),
            duration_text(limits.upgrade_idle_timeout),
            duration_text(limits.idle_timeout),
            size_text(limits.max_request_body)
        ));
    }
    lines
}

/// "rollout blue-green", "rollout canary 5% → 25% → 50% → 100%, 30s a step",
/// then ", after api, db" when the service waits for others.
fn rollout(service: &ServiceConfig) -> String {
    let rollout = &service.rollout;
    let mut text = format!("rollout {}", rollout.strategy);
    if rollout.strategy == Strategy::Canary {
        let steps: Vec<String> = rollout
            .steps
            .iter()
            .map(|percent| format!("{percent}%"))
            .collect();
        text = format!(
            "{text} {}, {} a step",
            steps.join(" → "),
            humantime::format_duration(rollout.step_duration)
        );
    }
    if !service.after.is_empty() {
        text = format!("{text}, after {}", service.after.join(", "));
    }
    text
}

/// The width of the name column: the longest name, but never more than
/// [`MAX_NAME_LEN`] (`check` refuses longer names; a longer one here would
/// only overflow its column, and a format width must stay small).
fn column_width<'a>(names: impl Iterator<Item = &'a String>) -> usize {
    names
        .map(|name| name.chars().count())
        .max()
        .unwrap_or(0)
        .min(MAX_NAME_LEN)
}

/// The command as one would type it: arguments with spaces or quotes are
/// quoted, passwords in URLs are `***`.
fn shell_words(command: &[String]) -> String {
    command
        .iter()
        .map(|word| redact_urls_in(word))
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+{}".contains(c));
            if plain {
                word
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
