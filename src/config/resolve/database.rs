//! Resolving `[database.NAME]` tables: the URL (with `${VAR}`, a relative
//! SQLite path made absolute), the migrations folder, and the migrator's
//! timeouts and retries, and its lint levels.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Duration;

use serde_spanned::Spanned;

use super::Resolver;
use crate::config::model::{BackupConfig, DatabaseConfig, LintLevels};
use crate::config::problem::Finding;
use crate::config::raw::{Name, RawBackup, RawDatabase, RawLint};
use crate::config::recipient;
use crate::config::state_url;
use crate::config::{defaults, limits, suggest};

impl Resolver<'_> {
    pub(super) fn databases(
        &mut self,
        databases: &BTreeMap<Name, Spanned<RawDatabase>>,
    ) -> BTreeMap<String, DatabaseConfig> {
        let spans = databases.keys().map(Spanned::span).collect();
        self.at_most(spans, "database", limits::MAX_DATABASES);
        databases
            .iter()
            .map(|(name, database)| {
                self.name(name, "database name");
                let resolved = self.database(name.get_ref(), database);
                (name.get_ref().clone(), resolved)
            })
            .collect()
    }

    pub(super) fn database(
        &mut self,
        name: &str,
        database: &Spanned<RawDatabase>,
    ) -> DatabaseConfig {
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
            backup: raw.backup.as_ref().map(|backup| self.backup(name, backup)),
            shared: raw.shared.as_ref().is_some_and(|shared| *shared.get_ref()),
            lint: raw
                .lint
                .as_ref()
                .map(|lint| self.lint_levels(lint.get_ref()))
                .unwrap_or_default(),
        }
    }

    /// `lint = { deny, warn, off }`: every name a known rule, each in one list.
    fn lint_levels(&mut self, raw: &RawLint) -> LintLevels {
        let known = crate::db::migrate::lint::rule_names();
        let mut seen: Vec<(String, &'static str)> = Vec::new();
        let mut level = |this: &mut Self,
                         list: &Option<Vec<Spanned<String>>>,
                         key: &'static str| {
            let mut rules = Vec::new();
            for rule in list.iter().flatten() {
                let name = rule.get_ref();
                if !known.iter().any(|k| k == name) {
                    let close = suggest::closest(name, known.iter().map(String::as_str))
                        .map(|c| format!("did you mean `{c}`? "))
                        .unwrap_or_default();
                    this.report(
                        Finding::new(
                            rule.span(),
                            format!("`lint.{key}` names no lint rule: `{name}`"),
                            "not a rule",
                        )
                        .help(format!(
                            "{close}`cutover migrate lint` prints each finding's rule; docs/migrations.md lists them"
                        )),
                    );
                    continue;
                }
                if let Some((_, other)) = seen.iter().find(|(n, _)| n == name) {
                    this.report(
                        Finding::new(
                            rule.span(),
                            format!("`{name}` is in both `lint.{other}` and `lint.{key}`"),
                            "listed twice",
                        )
                        .help("keep it in one list: deny, warn or off"),
                    );
                    continue;
                }
                seen.push((name.clone(), key));
                rules.push(name.clone());
            }
            rules
        };
        LintLevels {
            deny: level(self, &raw.deny, "deny"),
            warn: level(self, &raw.warn, "warn"),
            off: level(self, &raw.off, "off"),
        }
    }

    pub(super) fn backup(&mut self, name: &str, backup: &Spanned<RawBackup>) -> BackupConfig {
        let raw = backup.get_ref();
        if let Some(compress) = &raw.compress
            && compress.get_ref() != "zstd"
        {
            self.report(
                Finding::new(
                    compress.span(),
                    format!("unknown `compress` \"{}\"", compress.get_ref()),
                    "not supported",
                )
                .help(r#"expected compress = "zstd""#),
            );
        }
        let mut recipients = Vec::new();
        for recipient in raw.recipients.iter().flatten() {
            if let Some(text) = self.expand(recipient) {
                if let Err(reason) = recipient::parse_recipient(&text) {
                    self.report(
                        Finding::new(recipient.span(), "not an age recipient", reason.to_string())
                            .help("expected an age X25519 recipient (age1…) or an SSH public key (ssh-ed25519 … / ssh-rsa …)"),
                    );
                }
                recipients.push(text);
            }
        }
        let recipients_file = raw
            .recipients_file
            .as_ref()
            .map(|file| self.cx.base_dir.join(Path::new(file.get_ref())));
        if recipients.is_empty() && recipients_file.is_none() {
            self.report(
                Finding::new(
                    backup.span(),
                    format!("the backups of database `{name}` have no recipient"),
                    "this backup table",
                )
                .help(r#"add recipients = ["age1…"] or recipients_file = "keys/backup.pub" (make a key with `cutover backup keygen`)"#),
            );
        }
        let dir = match &raw.dir {
            Some(dir) if !dir.get_ref().trim().is_empty() => {
                self.cx.base_dir.join(Path::new(dir.get_ref()))
            }
            _ => self.cx.base_dir.join(defaults::BACKUP_DIR),
        };
        BackupConfig {
            before_deploy: raw.before_deploy.unwrap_or(false),
            dir,
            recipients,
            recipients_file,
            keep_last: self.count(
                raw.keep_last.as_ref(),
                "keep_last",
                defaults::BACKUP_KEEP_LAST,
                1..=limits::MAX_KEEP_LAST,
            ),
            keep_within: raw
                .keep_within
                .as_ref()
                .map(|within| self.duration(Some(within), "keep_within", Duration::ZERO, true)),
            verify: raw.verify.unwrap_or(false),
            signers: raw
                .signers
                .iter()
                .flatten()
                .filter_map(|signer| match recipient::parse_signer(signer.get_ref()) {
                    Ok(_) => Some(signer.get_ref().trim().to_owned()),
                    Err(reason) => {
                        self.report(
                            Finding::new(signer.span(), "not a backup signing key", reason)
                                .help("expected the public key `cutover backup keygen --signing` printed: ed25519:… (44 characters of base64)"),
                        );
                        None
                    }
                })
                .collect(),
        }
    }

    fn database_url(&mut self, name: &str, url: &Spanned<String>) -> String {
        let Some(expanded) = self.expand(url) else {
            return String::new();
        };
        match state_url::resolve(&expanded, self.cx.base_dir) {
            Ok(url) => url,
            Err(reason) => {
                let shown = crate::config::redact_url(&expanded);
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
