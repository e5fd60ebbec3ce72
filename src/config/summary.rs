//! [`Config::summary`]: the human-readable overview `cutover check` prints.

use std::fmt::Write;

use super::model::{Config, ServiceKind};

impl Config {
    /// What the config describes, for people: the app, each service (kind,
    /// driver, replicas, route, command) and each environment (listener).
    pub fn summary(&self) -> String {
        let mut out = String::new();
        // Writing to a String cannot fail.
        let _ = self.write_summary(&mut out);
        out
    }

    fn write_summary(&self, out: &mut String) -> std::fmt::Result {
        writeln!(out, "app {} ({})", self.app.name, self.path.display())?;
        writeln!(out, "  daemon API   {}", self.server.listen)?;
        writeln!(out, "  state        {}", self.state.url)?;

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
            if !service.command.is_empty() {
                writeln!(out, "  {:width$}  $ {}", "", shell_words(&service.command))?;
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
        }
        Ok(())
    }
}

fn column_width<'a>(names: impl Iterator<Item = &'a String>) -> usize {
    names.map(|name| name.chars().count()).max().unwrap_or(0)
}

/// The command as one would type it: arguments with spaces or quotes are quoted.
fn shell_words(command: &[String]) -> String {
    command
        .iter()
        .map(|word| {
            let plain = !word.is_empty()
                && word
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "-_./:=,@%+{}".contains(c));
            if plain {
                word.clone()
            } else {
                format!("'{}'", word.replace('\'', r"'\''"))
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}
