//! An existing `cutover.toml`: the problems `cutover check` finds (through
//! [`crate::Hooks::check_config`]), settings that weaken safety (an http
//! service without a health check, a canary without analysis, a database
//! without verified backups, no rollback window, a public listener without
//! TLS, a daemon API in clear text), and the facts the file establishes
//! (cutover deploys, progressive delivery, approvals, promotion, backups,
//! migrations).
//!
//! The TOML is read here with spans (the `toml` crate's `DeTable`), so every
//! finding points at the key's line; nothing is expanded or resolved.

use serde_spanned::Spanned;
use toml::de::{DeTable, DeValue};

use super::{Context, RuleInfo};
use crate::finding::{Area, Evidence, Severity};
use crate::repo::{Repo, line_of};

/// The file this pass reads, wherever it is in the repository.
pub const FILE_NAME: &str = "cutover.toml";

pub const INVALID: RuleInfo = RuleInfo {
    id: "cutover-config/invalid",
    area: Area::DeploymentAutomation,
    severity: Severity::High,
    title: "cutover.toml does not pass `cutover check`",
    why: "cutover refuses to deploy with a config it cannot load: every deploy from this file fails until it is fixed.",
    fix: "Run `cutover check` and fix each problem it reports at its file:line:column.",
    cutover: None,
};

pub const NO_HEALTH_CHECK: RuleInfo = RuleInfo {
    id: "cutover-config/no-health-check",
    area: Area::DeploymentAutomation,
    severity: Severity::Medium,
    title: "An http service has no health check configured",
    why: "Without a `health` table cutover probes the default `/health`; if the app does not answer it (or answers it before it is ready) a release either never goes live or takes traffic too early.",
    fix: "Add a health table naming the path the app answers once it is ready, with a start timeout that fits its start-up.",
    cutover: Some(
        "[service.web.health]\npath = \"/healthz\"\ninterval = \"1s\"\nhealthy = 2\nstart_timeout = \"60s\"",
    ),
};

pub const CANARY_WITHOUT_ANALYSIS: RuleInfo = RuleInfo {
    id: "cutover-config/canary-without-analysis",
    area: Area::DeploymentAutomation,
    severity: Severity::Medium,
    title: "A canary has no analysis thresholds",
    why: "A canary without `analysis` thresholds moves traffic step by step but never judges the new release: a failing release reaches 100% and is not rolled back automatically.",
    fix: "Add `rollout.analysis` with an error-rate and a latency threshold and `min_requests`.",
    cutover: Some(
        "[service.web.rollout.analysis]\nmax_error_rate = 0.01\nmax_p99 = \"800ms\"\nmin_requests = 200\n# abort_error_rate defaults to 3 × max_error_rate",
    ),
};

pub const DATABASE_WITHOUT_BACKUP: RuleInfo = RuleInfo {
    id: "cutover-config/database-without-backup",
    area: Area::Backups,
    severity: Severity::Medium,
    title: "A database cutover migrates has no backups",
    why: "cutover runs migrations at every deploy; without `backup` there is no copy to restore when one goes wrong.",
    fix: "Add an encrypted, verified backup to the database, taken before every deploy.",
    cutover: Some(
        "[database.main]\nbackup = { before_deploy = true, recipients = [\"age1…\"], verify = true, keep_within = \"30d\" }",
    ),
};

pub const BACKUP_UNVERIFIED: RuleInfo = RuleInfo {
    id: "cutover-config/backup-unverified",
    area: Area::Backups,
    severity: Severity::Medium,
    title: "Backups are not verified",
    why: "An unverified backup is found to be unusable on the day it is needed; `verify = true` restores each new backup into a scratch database and checks it.",
    fix: "Set `verify = true` in the backup table and give the daemon `CUTOVER_BACKUP_IDENTITY`.",
    cutover: Some("backup = { before_deploy = true, recipients = [\"age1…\"], verify = true }"),
};

pub const BACKUP_NOT_BEFORE_DEPLOY: RuleInfo = RuleInfo {
    id: "cutover-config/backup-not-before-deploy",
    area: Area::Backups,
    severity: Severity::Low,
    title: "No backup is taken before a deploy migrates",
    why: "A deploy runs migrations; a backup taken just before is the one to restore if a migration destroys data.",
    fix: "Set `before_deploy = true` in the backup table.",
    cutover: Some("backup = { before_deploy = true, recipients = [\"age1…\"], verify = true }"),
};

pub const NO_ROLLBACK_WINDOW: RuleInfo = RuleInfo {
    id: "cutover-config/no-rollback-window",
    area: Area::DeploymentAutomation,
    severity: Severity::Medium,
    title: "The rollback window is zero",
    why: "With `rollback_window = \"0s\"` the previous release is stopped as soon as the new one serves: a rollback has to start it cold instead of switching back in under a second.",
    fix: "Keep the previous release warm for a while after each deploy (the default is 10 minutes).",
    cutover: Some("[environment.production]\nrollback_window = \"10m\""),
};

pub const PLAINTEXT_LISTENER: RuleInfo = RuleInfo {
    id: "cutover-config/plaintext-listener",
    area: Area::Security,
    severity: Severity::Medium,
    title: "A public listener serves plain HTTP",
    why: "An environment that listens on every address without `tls` sends its users' traffic, cookies and tokens in clear text (unless a TLS proxy in front terminates it).",
    fix: "Terminate TLS on the listener (ACME or a certificate), with a redirect from port 80; or listen on loopback behind a TLS proxy.",
    cutover: Some(
        "[environment.production]\nlisten = \"0.0.0.0:443\"\nredirect_listen = \"0.0.0.0:80\"\ntls = { acme = { email = \"ops@example.com\", domains = [\"shop.example\"] } }",
    ),
};

pub const PLAINTEXT_API: RuleInfo = RuleInfo {
    id: "cutover-config/plaintext-api",
    area: Area::Security,
    severity: Severity::High,
    title: "The daemon's API is off loopback in clear text",
    why: "`allow_plaintext = true` lets the API token and every deploy request cross the network unencrypted: anyone on the path can take over deployments.",
    fix: "Give `[server]` a certificate (`tls = { cert, key }`) and remove `allow_plaintext`, or keep `listen` on loopback.",
    cutover: Some(
        "[server]\nlisten = \"10.0.0.5:7070\"\ntls = { cert = \"certs/api.pem\", key = \"certs/api.key\" }",
    ),
};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[
    &INVALID,
    &NO_HEALTH_CHECK,
    &CANARY_WITHOUT_ANALYSIS,
    &DATABASE_WITHOUT_BACKUP,
    &BACKUP_UNVERIFIED,
    &BACKUP_NOT_BEFORE_DEPLOY,
    &NO_ROLLBACK_WINDOW,
    &PLAINTEXT_LISTENER,
    &PLAINTEXT_API,
];

/// The analysis keys that judge a canary step (`min_requests` alone judges nothing).
const ANALYSIS_THRESHOLDS: [&str; 6] = [
    "max_error_rate",
    "max_p95",
    "max_p99",
    "max_error_rate_increase",
    "max_latency_ratio",
    "abort_error_rate",
];

/// Runs the pass.
pub fn run(cx: &mut Context<'_>) {
    let repo = cx.repo;
    let hooks = cx.hooks;
    for file in repo.named(|n| n == FILE_NAME) {
        let path = file.path.as_str();
        let Some(text) = repo.text(file) else {
            cx.find(
                &INVALID,
                Evidence::file(path),
                format!("{path} is not UTF-8 text of at most 1 MiB, so cutover cannot read it"),
            );
            continue;
        };
        cx.fact(
            "deploy.cutover",
            format!("cutover deploys from {path}"),
            Evidence::file(path),
        );
        for problem in hooks.check_config(path, text) {
            let evidence = if problem.line == 0 {
                Evidence::file(path)
            } else {
                Evidence::at(path, text, problem.line).column(problem.column)
            };
            cx.find(
                &INVALID,
                evidence,
                format!("`cutover check`: {}", problem.message),
            );
        }
        // A file that does not parse is reported by the hook above; its
        // settings cannot be read.
        let Ok(doc) = DeTable::parse(text) else {
            continue;
        };
        let mut file = ConfigFile {
            repo,
            path,
            text,
            doc: doc.get_ref(),
        };
        file.services(cx);
        file.environments(cx);
        file.server(cx);
        file.databases(cx);
    }
}

/// One parsed `cutover.toml`.
struct ConfigFile<'a, 'i> {
    repo: &'a Repo,
    path: &'a str,
    text: &'a str,
    doc: &'a DeTable<'i>,
}

type Value<'i> = Spanned<DeValue<'i>>;

fn get<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t Value<'i>> {
    table.get(key)
}

fn table<'t, 'i>(table: &'t DeTable<'i>, key: &str) -> Option<&'t DeTable<'i>> {
    get(table, key).and_then(|v| v.get_ref().as_table())
}

fn string<'t>(table: &'t DeTable<'_>, key: &str) -> Option<&'t str> {
    get(table, key).and_then(|v| v.get_ref().as_str())
}

fn boolean(table: &DeTable<'_>, key: &str) -> Option<bool> {
    get(table, key).and_then(|v| v.get_ref().as_bool())
}

/// The entries of a table of named tables (`[service.NAME]`), with the
/// byte offset of each name.
fn named<'t, 'i>(doc: &'t DeTable<'i>, key: &str) -> Vec<(&'t str, usize, &'t DeTable<'i>)> {
    table(doc, key)
        .map(|t| {
            t.iter()
                .filter_map(|(k, v)| {
                    v.get_ref()
                        .as_table()
                        .map(|inner| (k.get_ref().as_ref(), k.span().start, inner))
                })
                .collect()
        })
        .unwrap_or_default()
}

impl<'a, 'i> ConfigFile<'a, 'i> {
    fn at(&self, offset: usize) -> Evidence {
        Evidence::at(self.path, self.text, line_of(self.text, offset))
    }

    /// Evidence at `key` of `table`, else at `fallback` (a byte offset).
    fn at_key(&self, table: &DeTable<'_>, key: &str, fallback: usize) -> Evidence {
        let offset = table
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map_or(fallback, |(k, _)| k.span().start);
        self.at(offset)
    }

    /// Whether any `[environment.X.service.NAME]` sets `key`.
    fn env_service_sets(&self, service: &str, key: &str) -> bool {
        named(self.doc, "environment").iter().any(|(_, _, env)| {
            table(env, "service")
                .and_then(|s| table(s, service))
                .is_some_and(|s| get(s, key).is_some())
        })
    }

    fn services(&mut self, cx: &mut Context<'_>) {
        for (name, offset, service) in named(self.doc, "service") {
            let kind = string(service, "kind").unwrap_or("http");
            if kind == "http" {
                if get(service, "health").is_some() || self.env_service_sets(name, "health") {
                    let path = table(service, "health")
                        .and_then(|h| string(h, "path"))
                        .unwrap_or("/health");
                    cx.fact(
                        "deploy.health-gated",
                        format!("cutover health checks of service {name} ({path})"),
                        self.at_key(service, "health", offset),
                    );
                } else {
                    cx.find(
                        &NO_HEALTH_CHECK,
                        self.at(offset),
                        format!(
                            "http service `{name}` has no `health` table: cutover probes the default /health, which the app may not answer"
                        ),
                    );
                }
            }
            let rollout = table(service, "rollout");
            let strategy = rollout
                .and_then(|r| string(r, "strategy"))
                .unwrap_or("blue-green");
            let strategy_at = rollout
                .map(|r| self.at_key(r, "strategy", offset))
                .unwrap_or_else(|| self.at(offset));
            if kind == "http" {
                cx.fact(
                    "deploy.progressive",
                    format!("cutover {strategy} rollout of service {name}"),
                    strategy_at.clone(),
                );
            }
            if strategy == "canary" {
                let analysis = rollout.and_then(|r| table(r, "analysis"));
                let thresholds: Vec<&str> = ANALYSIS_THRESHOLDS
                    .iter()
                    .copied()
                    .filter(|k| analysis.is_some_and(|a| get(a, k).is_some()))
                    .collect();
                if thresholds.is_empty() {
                    cx.find(
                        &CANARY_WITHOUT_ANALYSIS,
                        strategy_at,
                        format!(
                            "service `{name}` is a canary without analysis thresholds: no step is judged and a failing release is never rolled back automatically"
                        ),
                    );
                } else {
                    let evidence = rollout
                        .map(|r| self.at_key(r, "analysis", offset))
                        .unwrap_or_else(|| self.at(offset));
                    cx.fact(
                        "deploy.auto-rollback",
                        format!(
                            "canary analysis of service {name} ({})",
                            thresholds.join(", ")
                        ),
                        evidence,
                    );
                }
            }
        }
    }

    fn environments(&mut self, cx: &mut Context<'_>) {
        let environments = named(self.doc, "environment");
        if environments.len() >= 2 {
            let names: Vec<&str> = environments.iter().map(|(n, _, _)| *n).collect();
            cx.fact(
                "env.multiple",
                format!("cutover environments {}", names.join(", ")),
                self.at(environments[1].1),
            );
        }
        for (name, offset, env) in &environments {
            if get(env, "approvals").is_some() {
                cx.fact(
                    "env.approvals",
                    format!("deploys to {name} wait for approvals"),
                    self.at_key(env, "approvals", *offset),
                );
            }
            if let Some(from) = string(env, "promote_from") {
                cx.fact(
                    "env.promotion",
                    format!("{name} accepts only releases promoted from {from}"),
                    self.at_key(env, "promote_from", *offset),
                );
            }
            if string(env, "rollback_window").is_some_and(is_zero_duration) {
                cx.find(
                    &NO_ROLLBACK_WINDOW,
                    self.at_key(env, "rollback_window", *offset),
                    format!(
                        "environment `{name}` has a zero rollback window: the previous release is stopped at once and a rollback starts it cold"
                    ),
                );
            }
            if let Some(listen) = string(env, "listen")
                && is_every_address(listen)
                && get(env, "tls").is_none()
            {
                cx.find(
                    &PLAINTEXT_LISTENER,
                    self.at_key(env, "listen", *offset),
                    format!("environment `{name}` listens on {listen} in plain HTTP (no `tls`)"),
                );
            }
        }
    }

    fn server(&mut self, cx: &mut Context<'_>) {
        let Some(server) = table(self.doc, "server") else {
            return;
        };
        let listen = string(server, "listen").unwrap_or("127.0.0.1:7070");
        if boolean(server, "allow_plaintext") == Some(true)
            && get(server, "tls").is_none()
            && !is_loopback(listen)
        {
            cx.find(
                &PLAINTEXT_API,
                self.at_key(server, "allow_plaintext", 0),
                format!(
                    "the daemon's API listens on {listen} with `allow_plaintext = true`: its token crosses the network in clear text"
                ),
            );
        }
    }

    fn databases(&mut self, cx: &mut Context<'_>) {
        let environments = named(self.doc, "environment");
        // Databases written only under an environment count too.
        let mut databases: Vec<(&str, usize, &DeTable<'i>)> = named(self.doc, "database");
        for (_, _, env) in &environments {
            for db in named(env, "database") {
                if !databases.iter().any(|(n, _, _)| *n == db.0) {
                    databases.push(db);
                }
            }
        }
        let dir = self.path.rsplit_once('/').map_or("", |(d, _)| d);
        for (name, offset, db) in databases {
            let folder = string(db, "migrations").unwrap_or("migrations");
            let folder = folder.trim_start_matches("./").trim_end_matches('/');
            let folder = if dir.is_empty() {
                folder.to_string()
            } else {
                format!("{dir}/{folder}")
            };
            cx.fact(
                "db.migrations",
                format!("cutover (database {name}, {folder}/)"),
                self.at(offset),
            );
            cx.fact(
                "db.migration-lint",
                format!("cutover lints database {name}'s migrations before a deploy runs them"),
                self.at(offset),
            );
            cx.fact(
                "db.migrate-in-pipeline",
                format!("cutover deploy migrates database {name}"),
                self.at(offset),
            );
            self.contract_migrations(cx, &folder);

            // The backup table: the database's own, or an environment's.
            let own = get(db, "backup").map(|b| (b, db));
            let backup = own.or_else(|| {
                environments.iter().find_map(|(_, _, env)| {
                    table(env, "database")
                        .and_then(|d| table(d, name))
                        .and_then(|d| get(d, "backup").map(|b| (b, d)))
                })
            });
            let Some((value, holder)) = backup else {
                cx.find(
                    &DATABASE_WITHOUT_BACKUP,
                    self.at(offset),
                    format!("database `{name}` is migrated by cutover but has no `backup`"),
                );
                continue;
            };
            let Some(backup) = value.get_ref().as_table() else {
                continue;
            };
            let at = self.at_key(holder, "backup", value.span().start);
            cx.fact(
                "backup.script",
                format!("cutover backup of database {name}"),
                at.clone(),
            );
            cx.fact(
                "backup.encrypted",
                format!("cutover encrypts database {name}'s backups with age"),
                at.clone(),
            );
            let keep = match (
                get(backup, "keep_last").map(|v| v.get_ref()),
                string(backup, "keep_within"),
            ) {
                (Some(DeValue::Integer(n)), Some(within)) => {
                    format!("keep_last = {}, keep_within = {within}", n.as_str())
                }
                (Some(DeValue::Integer(n)), None) => format!("keep_last = {}", n.as_str()),
                (_, Some(within)) => format!("keep_within = {within}, keep_last = 30"),
                _ => "keep_last = 30 (the default)".to_string(),
            };
            cx.fact(
                "backup.retention",
                format!("cutover backup prune ({keep})"),
                at.clone(),
            );
            if boolean(backup, "before_deploy") == Some(true) {
                cx.fact(
                    "backup.scheduled",
                    format!("database {name} is backed up before every deploy"),
                    at.clone(),
                );
            } else {
                cx.find(
                    &BACKUP_NOT_BEFORE_DEPLOY,
                    at.clone(),
                    format!("database `{name}` is not backed up before a deploy migrates it (`before_deploy` is not true)"),
                );
            }
            if boolean(backup, "verify") == Some(true) {
                cx.fact(
                    "backup.restore-test",
                    format!("every backup of database {name} is restored into a scratch database and checked (verify = true)"),
                    at,
                );
            } else {
                cx.find(
                    &BACKUP_UNVERIFIED,
                    at,
                    format!(
                        "database `{name}`'s backups are never verified (`verify` is not true)"
                    ),
                );
            }
        }
    }

    /// `db.expand-contract` when a migration in `folder` says
    /// `-- cutover:phase contract`.
    fn contract_migrations(&self, cx: &mut Context<'_>, folder: &str) {
        let prefix = format!("{folder}/");
        let found = self
            .repo
            .files()
            .iter()
            .filter(|f| f.path.starts_with(&prefix) && f.ext() == "sql")
            .find_map(|f| {
                let text = self.repo.text(f)?;
                let offset = text.find("cutover:phase contract")?;
                Some((f, text, offset))
            });
        if let Some((f, text, offset)) = found {
            cx.fact(
                "db.expand-contract",
                format!("{} is a contract migration (cutover phases)", f.path),
                Evidence::at(&f.path, text, line_of(text, offset)),
            );
        }
    }
}

/// `"0s"`, `"0"`, `"0ms"`, `"0 m"`: a duration of zero.
fn is_zero_duration(text: &str) -> bool {
    let digits: String = text.chars().filter(char::is_ascii_digit).collect();
    !digits.is_empty()
        && digits.chars().all(|c| c == '0')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c.is_whitespace())
}

/// `0.0.0.0:PORT` or `[::]:PORT`: every address of the machine.
fn is_every_address(listen: &str) -> bool {
    let host = listen.rsplit_once(':').map_or(listen, |(h, _)| h);
    matches!(host, "0.0.0.0" | "[::]" | "::" | "")
}

fn is_loopback(listen: &str) -> bool {
    let host = listen.rsplit_once(':').map_or(listen, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    host.parse::<std::net::IpAddr>()
        .is_ok_and(|ip| ip.is_loopback())
        || host == "localhost"
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn durations_and_addresses() {
        assert!(is_zero_duration("0s"));
        assert!(is_zero_duration("0"));
        assert!(is_zero_duration("00 ms"));
        assert!(!is_zero_duration("10m"));
        assert!(!is_zero_duration("0.5s"));
        assert!(!is_zero_duration("s"));
        assert!(is_every_address("0.0.0.0:443"));
        assert!(is_every_address("[::]:80"));
        assert!(!is_every_address("127.0.0.1:8080"));
        assert!(is_loopback("127.0.0.1:7070"));
        assert!(is_loopback("[::1]:7070"));
        assert!(!is_loopback("10.0.0.5:7070"));
    }
}
