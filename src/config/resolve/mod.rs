//! From the file as written ([`RawConfig`]) to the public types: fills in
//! defaults, expands `${VAR}`, parses durations and addresses, resolves the
//! state URL, and checks every value on its own. This file
//! handles the small sections; `service`, `rollout`, `environment`,
//! `database`, `notify` and `values` the rest.
//!
//! It keeps going after a problem (using the default in place of a bad
//! value) so that one run reports every problem in the file. Checks that
//! compare values with each other are in `checks`.

mod database;
mod docker;
mod edge;
mod environment;
mod host;
mod notify;
mod overrides;
mod rollout;
mod service;
mod values;

use std::collections::BTreeMap;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde_spanned::Spanned;

use super::defaults;
use super::expand::Lookup;
use super::model::{
    AppConfig, DatabaseConfig, EnvironmentConfig, HostConfig, LogsConfig, ServerConfig,
    ServiceConfig, StateConfig,
};
use super::notify::NotifyConfig;
use super::problem::Finding;
use super::raw::{RawApp, RawConfig};
use super::state_url;

/// What the resolver needs besides the raw config.
pub(crate) struct Context<'a> {
    /// The file's text, to narrow spans inside string values.
    pub source: &'a str,
    /// The absolute directory of the file.
    pub base_dir: &'a Path,
    /// Reads environment variables for `${VAR}`.
    pub lookup: Lookup<'a>,
    /// An unset `${VAR}` stands for a value that is not known (the value
    /// that names it is left unchecked) instead of being an error: for
    /// `cutover assess`, which reads a repository's config on a machine
    /// where its variables are not set. Never set when loading a config to use it.
    pub unset_is_unknown: bool,
}

/// Every section of the config, resolved, plus where the values that are
/// compared with each other were written.
pub(crate) struct Sections {
    pub app: AppConfig,
    pub server: ServerConfig,
    pub state: StateConfig,
    pub services: BTreeMap<String, ServiceConfig>,
    pub environments: BTreeMap<String, EnvironmentConfig>,
    pub databases: BTreeMap<String, DatabaseConfig>,
    pub notify: NotifyConfig,
    pub hosts: BTreeMap<String, HostConfig>,
    pub places: Places,
}

/// Where values were written, for `checks`. Only values that are valid on
/// their own are recorded.
#[derive(Debug, Default)]
pub(crate) struct Places {
    /// `[server] listen`, if written.
    pub server_listen: Option<Range<usize>>,
    /// `listen` of each environment.
    pub environment_listen: BTreeMap<String, Range<usize>>,
    /// The route of each http service: its `path_prefix`, else its `host`,
    /// else its table.
    pub routes: BTreeMap<String, Range<usize>>,
    /// Each item of each service's `after`, with where it was written.
    pub after: BTreeMap<String, Vec<(String, Range<usize>)>>,
    /// `[server] metrics_listen`, if written.
    pub metrics_listen: Option<Range<usize>>,
    /// `[server] dashboard_listen`, if written.
    pub dashboard_listen: Option<Range<usize>>,
    /// `redirect_listen` of each environment that has one.
    pub redirect_listen: BTreeMap<String, Range<usize>>,
    /// `preview_listen` of each environment that has one.
    pub preview_listen: BTreeMap<String, Range<usize>>,
    /// Every file the config names (certificates, keys, CAs), for `load_checked`.
    pub files: Vec<FilePlace>,
    /// Every database of every environment, with where its URL was written.
    pub databases: Vec<DatabasePlace>,

    /// `promote_from` of each environment that has one: the name and where.
    pub promote_from: BTreeMap<String, (String, Range<usize>)>,
}

/// One database of one environment, and where its settings were written.
#[derive(Debug, Clone)]
pub(crate) struct DatabasePlace {
    pub environment: String,
    pub database: String,
    /// The `url` it uses (the environment's, else the top-level one).
    pub url: Range<usize>,
    /// The environment's `backup.dir`, if it wrote one.
    pub backup_dir: Option<Range<usize>>,
}

/// A file named in the config, and where.
#[derive(Debug, Clone)]
pub(crate) struct FilePlace {
    /// Absolute.
    pub path: PathBuf,
    /// The string that names it.
    pub span: Range<usize>,
    /// "certificate", "private key", "CA certificate".
    pub what: &'static str,
}

/// Resolves `raw`; the findings are empty when every value is valid.
pub(crate) fn resolve(raw: RawConfig, cx: Context<'_>) -> (Sections, Vec<Finding>) {
    let mut resolver = Resolver {
        cx,
        findings: Vec::new(),
        places: Places::default(),
    };
    let app = resolver.app(raw.app.as_ref());
    let server = resolver.server(raw.server.as_ref());
    let mut state = resolver.state(raw.state.as_ref().and_then(|s| s.get_ref().url.as_ref()));
    state.backup = raw
        .state
        .as_ref()
        .and_then(|s| s.get_ref().backup.as_ref())
        .map(|b| resolver.backup(defaults::STATE_BACKUP_NAME, b));
    let logs = resolver.logs(raw.logs.as_ref(), LogsConfig::default());
    let raw_services = raw.service.unwrap_or_default();
    let services = resolver.services(&raw_services, logs);
    let raw_databases = raw.database.unwrap_or_default();
    let databases = resolver.databases(&raw_databases);
    let raw_environments = raw.environment.unwrap_or_default();
    let base = overrides::Base {
        raw_services: &raw_services,
        services: &services,
        raw_databases: &raw_databases,
        databases: &databases,
        environments: raw_environments.len(),
    };
    let environments = resolver.environments(&raw_environments, &base);
    let notify = resolver.notify(raw.notify.as_ref(), &environments);
    let hosts = resolver.hosts(raw.host.as_ref(), &environments);
    let Resolver {
        findings, places, ..
    } = resolver;
    let sections = Sections {
        app,
        server,
        state,
        services,
        environments,
        databases,
        notify,
        hosts,
        places,
    };
    (sections, findings)
}

struct Resolver<'a> {
    cx: Context<'a>,
    findings: Vec<Finding>,
    places: Places,
}

impl Resolver<'_> {
    fn report(&mut self, finding: Finding) {
        self.findings.push(finding);
    }

    fn app(&mut self, app: Option<&Spanned<RawApp>>) -> AppConfig {
        let Some(app) = app else {
            self.report(
                Finding::new(
                    0..0,
                    "missing [app] table",
                    "expected at the top of the file",
                )
                .help("start the file with\n\n    [app]\n    name = \"hello\""),
            );
            return AppConfig {
                name: String::new(),
            };
        };
        let Some(name) = &app.get_ref().name else {
            self.report(
                Finding::new(app.span(), "[app] has no `name`", "this table")
                    .help(r#"add the application's name, e.g. name = "hello""#),
            );
            return AppConfig {
                name: String::new(),
            };
        };
        self.name(name, "app name");
        AppConfig {
            name: name.get_ref().clone(),
        }
    }

    fn state(&mut self, url: Option<&Spanned<String>>) -> StateConfig {
        let Some(url) = url else {
            let url = state_url::resolve(defaults::STATE_URL, self.cx.base_dir)
                .unwrap_or_else(|_| defaults::STATE_URL.to_owned());
            return StateConfig { url, backup: None };
        };
        let Some(expanded) = self.expand(url) else {
            return StateConfig {
                url: String::new(),
                backup: None,
            };
        };
        match state_url::resolve(&expanded, self.cx.base_dir) {
            Ok(url) => StateConfig { url, backup: None },
            Err(reason) => {
                self.report(
                    Finding::new(
                        url.span(),
                        format!("cannot use `{expanded}` as the state database"),
                        reason,
                    )
                    .help(state_url::EXPECTED),
                );
                StateConfig {
                    url: expanded,
                    backup: None,
                }
            }
        }
    }
}
