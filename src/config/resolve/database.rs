//! Resolving `[database.NAME]` tables: the URL (with `${VAR}`, a relative
//! SQLite path made absolute), the migrations folder, and the migrator's
//! timeouts and retries.

use std::collections::BTreeMap;
use std::path::Path;

use serde_spanned::Spanned;

use super::Resolver;
use crate::config::defaults;
use crate::config::model::DatabaseConfig;
use crate::config::problem::Finding;
use crate::config::raw::{Name, RawDatabase};
use crate::config::state_url;

impl Resolver<'_> {
    pub(super) fn databases(
        &mut self,
        databases: &BTreeMap<Name, Spanned<RawDatabase>>,
    ) -> BTreeMap<String, DatabaseConfig> {
        databases
            .iter()
            .map(|(name, database)| {
                self.name(name, "database name");
                let resolved = self.database(name.get_ref(), database);
                (name.get_ref().clone(), resolved)
            })
            .collect()
    }

    fn database(&mut self, name: &str, database: &Spanned<RawDatabase>) -> DatabaseConfig {
        let raw = database.get_ref();
        let url = match &raw.url {
            Some(url) => self.database_url(name, url),
            None => {
                self.report(
                    Finding::new(
                        database.span(),
                        format!("database `{name}` has no `url`"),
                        "this database",
                    )
                    .help(r#"add where it is, e.g. url = "${DATABASE_URL}" or url = "sqlite://data/app.db""#),
                );
                String::new()
            }
        };
        let migrations = match &raw.migrations {
            Some(folder) if folder.get_ref().trim().is_empty() => {
                self.report(
                    Finding::new(folder.span(), "`migrations` is empty", "empty")
                        .help(r#"expected a folder, e.g. migrations = "migrations""#),
                );
                self.cx.base_dir.join(defaults::MIGRATIONS_DIR)
            }
            Some(folder) => self.cx.base_dir.join(Path::new(folder.get_ref())),
            None => self.cx.base_dir.join(defaults::MIGRATIONS_DIR),
        };
        DatabaseConfig {
            url,
            migrations,
            lock_timeout: self.duration(
                raw.lock_timeout.as_ref(),
                "lock_timeout",
                defaults::MIGRATE_LOCK_TIMEOUT,
                true,
            ),
            statement_timeout: self.duration(
                raw.statement_timeout.as_ref(),
                "statement_timeout",
                defaults::MIGRATE_STATEMENT_TIMEOUT,
                true,
            ),
            lock_wait: self.duration(
                raw.lock_wait.as_ref(),
                "lock_wait",
                defaults::MIGRATE_LOCK_WAIT,
                false,
            ),
            retries: self.count(
                raw.retries.as_ref(),
                "retries",
                defaults::MIGRATE_RETRIES,
                0..=defaults::MAX_MIGRATE_RETRIES,
            ),
        }
    }

    fn database_url(&mut self, name: &str, url: &Spanned<String>) -> String {
        let Some(expanded) = self.expand(url) else {
            return String::new();
        };
        match state_url::resolve(&expanded, self.cx.base_dir) {
            Ok(url) => url,
            Err(reason) => {
                let shown = crate::config::model::redact_url(&expanded);
                self.report(
                    Finding::new(
                        url.span(),
                        format!("cannot use `{shown}` as database `{name}`"),
                        reason,
                    )
                    .help(state_url::EXPECTED),
                );
                expanded
            }
        }
    }
}
