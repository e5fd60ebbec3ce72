//! The `${VAR}` references of a config, read from its text: the config
//! [`crate::config::parse_unexpanded`] returns leaves out every value that
//! uses one, and rendering needs them as written (an `env` entry becomes a
//! Secret reference; an `image` or a probe command with one is refused).

use std::collections::BTreeMap;

use super::env::has_reference;

/// What the config's text writes with `${VAR}`, per service.
#[derive(Debug, Clone, Default)]
pub struct References {
    /// `[service.NAME] env` entries with a reference, by service.
    env: BTreeMap<String, BTreeMap<String, String>>,
    /// `[environment.ENV.service.NAME] env` entries, every one (a literal
    /// one there replaces a reference of the service's), by (ENV, NAME).
    env_overrides: BTreeMap<(String, String), BTreeMap<String, String>>,
    /// `image` values with a reference, by service.
    images: BTreeMap<String, String>,
    /// (environment or `None`, service) whose `health.command` has one.
    probes: Vec<(Option<String>, String)>,
}

fn table<'a>(value: Option<&'a toml::Value>, key: &str) -> Option<&'a toml::Table> {
    value?.as_table()?.get(key)?.as_table()
}

fn string_table(table: Option<&toml::Table>) -> BTreeMap<String, String> {
    table
        .into_iter()
        .flatten()
        .filter_map(|(k, v)| Some((k.clone(), v.as_str()?.to_owned())))
        .collect()
}

fn command_has_reference(service: &toml::Table) -> bool {
    service
        .get("health")
        .and_then(toml::Value::as_table)
        .and_then(|health| health.get("command"))
        .and_then(toml::Value::as_array)
        .is_some_and(|words| {
            words
                .iter()
                .filter_map(toml::Value::as_str)
                .any(has_reference)
        })
}

impl References {
    /// The references in config text. Text that is not TOML has none (the
    /// config was parsed before this is called, so it is).
    pub fn parse(source: &str) -> References {
        let mut out = References::default();
        let Ok(root) = toml::from_str::<toml::Table>(source) else {
            return out;
        };
        for (name, service) in root
            .get("service")
            .and_then(toml::Value::as_table)
            .into_iter()
            .flatten()
        {
            let Some(service) = service.as_table() else {
                continue;
            };
            let env: BTreeMap<String, String> =
                string_table(service.get("env").and_then(toml::Value::as_table))
                    .into_iter()
                    .filter(|(_, v)| has_reference(v))
                    .collect();
            out.env.insert(name.clone(), env);
            if let Some(image) = service.get("image").and_then(toml::Value::as_str)
                && has_reference(image)
            {
                out.images.insert(name.clone(), image.to_owned());
            }
            if command_has_reference(service) {
                out.probes.push((None, name.clone()));
            }
        }
        for (environment, body) in root
            .get("environment")
            .and_then(toml::Value::as_table)
            .into_iter()
            .flatten()
        {
            for (name, service) in table(Some(body), "service").into_iter().flatten() {
                let Some(service) = service.as_table() else {
                    continue;
                };
                out.env_overrides.insert(
                    (environment.clone(), name.clone()),
                    string_table(service.get("env").and_then(toml::Value::as_table)),
                );
                if command_has_reference(service) {
                    out.probes.push((Some(environment.clone()), name.clone()));
                }
            }
        }
        out
    }

    /// The env of `service` in `environment`: `resolved` (which lacks the
    /// entries that use a reference) with those entries as written.
    pub fn env(
        &self,
        environment: &str,
        service: &str,
        resolved: &BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut written = self.env.get(service).cloned().unwrap_or_default();
        if let Some(overrides) = self
            .env_overrides
            .get(&(environment.to_owned(), service.to_owned()))
        {
            for (key, value) in overrides {
                if has_reference(value) {
                    written.insert(key.clone(), value.clone());
                } else {
                    written.remove(key);
                }
            }
        }
        let mut env = resolved.clone();
        env.extend(written);
        env
    }

    /// The image of `service` as written, when it uses a reference.
    pub fn image(&self, service: &str) -> Option<&str> {
        self.images.get(service).map(String::as_str)
    }

    /// Whether the health command of `service` in `environment` uses a reference.
    pub fn probe_has_reference(&self, environment: &str, service: &str) -> bool {
        self.probes.iter().any(|(env, name)| {
            name == service && env.as_deref().is_none_or(|env| env == environment)
        })
    }
}
