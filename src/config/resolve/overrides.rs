//! What an environment changes: `[environment.ENV.service.NAME]` (replicas
//! replaced, `env` and `health` merged over the service's) and
//! `[environment.ENV.database.DB]` (keys merged over a top-level
//! `[database.DB]`, or a database of the environment alone), resolved into
//! each environment's effective `services` and `databases`.
//!
//! Merging happens on the raw tables, with their spans, so a bad merged value
//! is reported where it was written. Where a database's backups go: a
//! `backup.dir` written in the environment's table is used as written;
//! otherwise, when the config has several environments and the database is
//! not `shared`, each environment backs up into its own sub-folder `DIR/ENV`,
//! so two environments' backups never mix.

use std::collections::BTreeMap;

use serde_spanned::Spanned;

use super::{DatabasePlace, Resolver};
use crate::config::model::{DatabaseConfig, ServiceConfig};
use crate::config::problem::Finding;
use crate::config::raw::{
    Name, RawBackup, RawDatabase, RawEnvironment, RawHealth, RawService, RawServiceOverride,
};
use crate::config::suggest;
use crate::config::{defaults, limits};

/// The top-level services and databases, as written and resolved.
pub(super) struct Base<'r> {
    pub raw_services: &'r BTreeMap<Name, Spanned<RawService>>,
    pub services: &'r BTreeMap<String, ServiceConfig>,
    pub raw_databases: &'r BTreeMap<Name, Spanned<RawDatabase>>,
    pub databases: &'r BTreeMap<String, DatabaseConfig>,
    /// How many environments the config has.
    pub environments: usize,
}

impl Resolver<'_> {
    /// Every service's settings in environment `env`.
    pub(super) fn environment_services(
        &mut self,
        env: &str,
        raw: &RawEnvironment,
        base: &Base<'_>,
    ) -> BTreeMap<String, ServiceConfig> {
        let mut services = base.services.clone();
        for (name, table) in raw.service.iter().flatten() {
            let Some(service) = services.get_mut(name.get_ref()) else {
                self.unknown_service(env, name, base);
                continue;
            };
            let written = base
                .raw_services
                .iter()
                .find(|(key, _)| key.get_ref() == name.get_ref())
                .map(|(_, raw)| raw.get_ref());
            self.apply_service_override(service, table.get_ref(), written);
        }
        services
    }

    fn apply_service_override(
        &mut self,
        service: &mut ServiceConfig,
        table: &RawServiceOverride,
        written: Option<&RawService>,
    ) {
        if let Some(replicas) = &table.replicas {
            service.replicas = self.count(
                Some(replicas),
                "replicas",
                service.replicas,
                1..=defaults::MAX_REPLICAS,
            );
        }
        let env = self.env(&table.env);
        service.env.extend(env);
        if let Some(health) = &table.health {
            let merged = match written.and_then(|raw| raw.health.as_ref()) {
                Some(base) => merge_health(base.get_ref(), health.get_ref()),
                None => health.get_ref().clone(),
            };
            let merged = Spanned::new(health.span(), merged);
            service.health = self.health(Some(&merged), service.kind);
        }
    }

    fn unknown_service(&mut self, env: &str, name: &Name, base: &Base<'_>) {
        let known: Vec<&str> = base.services.keys().map(String::as_str).collect();
        let list = known
            .iter()
            .map(|known| format!("`{known}`"))
            .collect::<Vec<_>>()
            .join(", ");
        let help = match suggest::closest(name.get_ref(), known.iter().copied()) {
            Some(close) => format!(
                "did you mean `{close}`? [environment.{env}.service.NAME] changes a service of [service.NAME]; services: {list}"
            ),
            None => format!(
                "[environment.{env}.service.NAME] changes a service of [service.NAME]: name one of {list}, or add [service.{}] first",
                name.get_ref()
            ),
        };
        self.report(
            Finding::new(
                name.span(),
                format!(
                    "environment `{env}` changes service `{}`, which is not in the config",
                    name.get_ref()
                ),
                "no such service",
            )
            .help(help),
        );
    }

    /// The databases of environment `env`: each top-level one with the
    /// environment's table merged over it, then the environment's own.
    pub(super) fn environment_databases(
        &mut self,
        env: &str,
        raw: &RawEnvironment,
        base: &Base<'_>,
    ) -> BTreeMap<String, DatabaseConfig> {
        let own = raw.database.as_ref();
        if let Some(own) = own {
            let spans = own.keys().map(Spanned::span).collect();
            self.at_most(spans, "database", limits::MAX_DATABASES);
        }
        let mut databases = BTreeMap::new();
        for (name, top) in base.raw_databases {
            let name = name.get_ref();
            let Some(resolved) = base.databases.get(name) else {
                continue;
            };
            let table = own.and_then(|own| own.iter().find(|(key, _)| key.get_ref() == name));
            let (database, dir_written) = match table {
                Some((_, table)) => {
                    let merged = merge_database(top.get_ref(), table.get_ref());
                    let dir_written = table
                        .get_ref()
                        .backup
                        .as_ref()
                        .is_some_and(|b| b.get_ref().dir.is_some());
                    let merged = Spanned::new(table.span(), merged);
                    (self.database(name, &merged), dir_written)
                }
                None => (resolved.clone(), false),
            };
            let url_span = table
                .and_then(|(_, table)| table.get_ref().url.as_ref())
                .or(top.get_ref().url.as_ref())
                .map_or_else(|| top.span(), Spanned::span);
            let dir_span = table
                .and_then(|(_, table)| table.get_ref().backup.as_ref())
                .and_then(|b| b.get_ref().dir.as_ref().map(Spanned::span));
            let database =
                self.place_database(env, name, database, dir_written, base, url_span, dir_span);
            databases.insert(name.clone(), database);
        }
        for (name, table) in own.into_iter().flatten() {
            if databases.contains_key(name.get_ref()) {
                continue;
            }
            self.name(name, "database name");
            let database = self.database(name.get_ref(), table);
            let raw = table.get_ref();
            let url_span = raw.url.as_ref().map_or_else(|| table.span(), Spanned::span);
            let dir_span = raw
                .backup
                .as_ref()
                .and_then(|b| b.get_ref().dir.as_ref().map(Spanned::span));
            let dir_written = dir_span.is_some();
            let database = self.place_database(
                env,
                name.get_ref(),
                database,
                dir_written,
                base,
                url_span,
                dir_span,
            );
            databases.insert(name.get_ref().clone(), database);
        }
        databases
    }

    /// Gives `database`'s backups their folder in `env` (see the module doc)
    /// and records where its URL and folder were written, for `checks`.
    #[allow(clippy::too_many_arguments)]
    fn place_database(
        &mut self,
        env: &str,
        name: &str,
        mut database: DatabaseConfig,
        dir_written: bool,
        base: &Base<'_>,
        url_span: std::ops::Range<usize>,
        dir_span: Option<std::ops::Range<usize>>,
    ) -> DatabaseConfig {
        if let Some(backup) = &mut database.backup
            && !dir_written
            && !database.shared
            && base.environments > 1
        {
            backup.dir = backup.dir.join(env);
        }
        self.places.databases.push(DatabasePlace {
            environment: env.to_owned(),
            database: name.to_owned(),
            url: url_span,
            backup_dir: dir_span,
        });
        database
    }
}

/// `over`'s keys over `base`'s.
fn merge_health(base: &RawHealth, over: &RawHealth) -> RawHealth {
    let over = over.clone();
    let base = base.clone();
    RawHealth {
        command: over.command.or(base.command),
        path: over.path.or(base.path),
        interval: over.interval.or(base.interval),
        timeout: over.timeout.or(base.timeout),
        healthy: over.healthy.or(base.healthy),
        unhealthy: over.unhealthy.or(base.unhealthy),
        start_timeout: over.start_timeout.or(base.start_timeout),
    }
}

/// `over`'s keys over `base`'s; `backup` merged key by key.
fn merge_database(base: &RawDatabase, over: &RawDatabase) -> RawDatabase {
    let over = over.clone();
    let base = base.clone();
    let backup = match (base.backup, over.backup) {
        (Some(base), Some(over)) => {
            let span = over.span();
            Some(Spanned::new(
                span,
                merge_backup(base.into_inner(), over.into_inner()),
            ))
        }
        (base, over) => over.or(base),
    };
    RawDatabase {
        url: over.url.or(base.url),
        migrations: over.migrations.or(base.migrations),
        lock_timeout: over.lock_timeout.or(base.lock_timeout),
        statement_timeout: over.statement_timeout.or(base.statement_timeout),
        lock_wait: over.lock_wait.or(base.lock_wait),
        retries: over.retries.or(base.retries),
        backup,
        shared: over.shared.or(base.shared),
        lint: over.lint.or(base.lint),
    }
}

fn merge_backup(base: RawBackup, over: RawBackup) -> RawBackup {
    RawBackup {
        before_deploy: over.before_deploy.or(base.before_deploy),
        dir: over.dir.or(base.dir),
        recipients: over.recipients.or(base.recipients),
        recipients_file: over.recipients_file.or(base.recipients_file),
        keep_last: over.keep_last.or(base.keep_last),
        keep_within: over.keep_within.or(base.keep_within),
        verify: over.verify.or(base.verify),
        compress: over.compress.or(base.compress),
        signers: over.signers.or(base.signers),
    }
}
