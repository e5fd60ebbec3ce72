//! The tamper-evident audit log: one row per change (a deploy, a rollback,
//! an operator command, a token made or revoked, a daemon upgrade, a
//! migration run from the CLI, a restore, …), each with a SHA-256 hash that
//! covers its content and the hash of the row before it, so that editing,
//! removing or reordering a row breaks the chain from there on
//! ([`verify_chain`] names the first row that does not fit).
//!
//! **The hash.** `hash = sha256_hex(canonical)`, where `canonical` is the
//! compact JSON array
//! `[id, at_ms, who, role, action, environment, deployment_id, target, details, prev_hash]`
//! (`environment`, `deployment_id` and `target` are `null` when absent;
//! `details` is the JSON *text* of the details object with its keys sorted
//! at every level and no spaces, [`canonical_json`]; `at_ms` is Unix
//! milliseconds). The first row's `prev_hash` is [`GENESIS`] (64 zeros).
//! Anyone holding an export can recompute it.
//!
//! **Appending.** [`Store::append_audit`] reads the last row and inserts the
//! next one in one `BEGIN IMMEDIATE` transaction (on PostgreSQL: a
//! transaction that first takes `LOCK TABLE audit_log IN EXCLUSIVE MODE`), so
//! concurrent writers — the daemon and a CLI command in another process, or
//! several daemons on one database — take turns and never fork the chain.
//!
//! What the chain cannot show on its own is that the newest rows were cut
//! off; keep the last hash elsewhere (`cutover audit export` to a SIEM).

use jiff::Timestamp;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use super::codec;
use super::{Backend, Store, StoreError};

/// The `prev_hash` of the first row.
pub const GENESIS: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// A change to record ([`Store::append_audit`]). Build it with
/// [`AuditEntry::new`] and the setters:
///
/// ```ignore
/// store.append_audit(
///     AuditEntry::new(&caller.name, caller.role.as_str(), "approve")
///         .environment("production")
///         .deployment(12)
///         .details(serde_json::json!({ "comment": "looks good" })),
/// ).await?;
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// Who: a token's name, `admin` for the token file, `local:<user>` for a
    /// CLI command without the daemon. Never a value a client sent.
    pub who: String,
    /// Their role (`viewer`, `deployer`, `approver`, `admin`, or `local`).
    pub role: String,
    /// What was done, one lower-case word: `deploy`, `rollback`, `pause`,
    /// `resume`, `promote`, `abort`, `token_create`, `token_revoke`,
    /// `daemon_upgrade`, `daemon_reload`, `daemon_down`, `migrate_up`,
    /// `migrate_down`, `migrate_baseline`, `backup_restore`, … (and, from the
    /// other parts of issue 15: `approve`, `reject`, `lock`, `unlock`,
    /// `switch`, `override`).
    pub action: String,
    /// The environment it concerns, if one.
    pub environment: Option<String>,
    /// The deployment it concerns, if one.
    pub deployment_id: Option<i64>,
    /// What else it concerns: a token's name, a database, a backup id, a
    /// version.
    pub target: Option<String>,
    /// Anything more, as a JSON object (never a secret).
    pub details: serde_json::Value,
}

impl AuditEntry {
    /// `who` (with `role`) did `action`; nothing else said yet.
    pub fn new(who: &str, role: &str, action: &str) -> AuditEntry {
        AuditEntry {
            who: who.to_owned(),
            role: role.to_owned(),
            action: action.to_owned(),
            environment: None,
            deployment_id: None,
            target: None,
            details: serde_json::json!({}),
        }
    }

    /// In `environment`.
    pub fn environment(mut self, environment: &str) -> AuditEntry {
        self.environment = Some(environment.to_owned());
        self
    }

    /// On deployment `id`.
    pub fn deployment(mut self, id: i64) -> AuditEntry {
        self.deployment_id = Some(id);
        self
    }

    /// On `target` (a token's name, a database, a backup id, a version).
    pub fn target(mut self, target: &str) -> AuditEntry {
        self.target = Some(target.to_owned());
        self
    }

    /// With `details` (a JSON object).
    pub fn details(mut self, details: serde_json::Value) -> AuditEntry {
        self.details = details;
        self
    }
}

/// A row of the audit log, as stored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AuditRecord {
    /// Its number: 1, 2, 3, … with no gaps.
    pub id: i64,
    /// When it was written.
    pub at: Timestamp,
    /// Who.
    pub who: String,
    /// Their role.
    pub role: String,
    /// What.
    pub action: String,
    /// Where.
    pub environment: Option<String>,
    /// Which deployment.
    pub deployment_id: Option<i64>,
    /// On what else.
    pub target: Option<String>,
    /// Details.
    pub details: serde_json::Value,
    /// The hash of the row before (or [`GENESIS`]).
    pub prev_hash: String,
    /// This row's hash.
    pub hash: String,
}

impl AuditRecord {
    /// The hash this row's content and `prev_hash` give (see the module doc).
    pub fn computed_hash(&self) -> String {
        row_hash(
            self.id,
            self.at.as_millisecond(),
            &self.who,
            &self.role,
            &self.action,
            self.environment.as_deref(),
            self.deployment_id,
            self.target.as_deref(),
            &canonical_json(&self.details),
            &self.prev_hash,
        )
    }
}

/// The hash of one row (see the module doc for the exact bytes).
#[allow(clippy::too_many_arguments)]
pub fn row_hash(
    id: i64,
    at_ms: i64,
    who: &str,
    role: &str,
    action: &str,
    environment: Option<&str>,
    deployment_id: Option<i64>,
    target: Option<&str>,
    details: &str,
    prev_hash: &str,
) -> String {
    let canonical = serde_json::json!([
        id,
        at_ms,
        who,
        role,
        action,
        environment,
        deployment_id,
        target,
        details,
        prev_hash
    ])
    .to_string();
    Sha256::digest(canonical.as_bytes())
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect()
}

/// `value` as compact JSON text with every object's keys sorted.
pub fn canonical_json(value: &serde_json::Value) -> String {
    use serde_json::Value;
    fn write(value: &Value, out: &mut String) {
        match value {
            Value::Object(map) => {
                let mut keys: Vec<&String> = map.keys().collect();
                keys.sort();
                out.push('{');
                for (i, key) in keys.into_iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    out.push_str(&Value::String(key.clone()).to_string());
                    out.push(':');
                    if let Some(v) = map.get(key) {
                        write(v, out);
                    }
                }
                out.push('}');
            }
            Value::Array(items) => {
                out.push('[');
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        out.push(',');
                    }
                    write(item, out);
                }
                out.push(']');
            }
            scalar => out.push_str(&scalar.to_string()),
        }
    }
    let mut out = String::new();
    write(value, &mut out);
    out
}

/// Where a chain breaks.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ChainBreak {
    /// A row's content no longer gives its hash: it was edited.
    #[error(
        "audit row {id} ({action} by {who} at {at}) does not match its hash: it was changed after it was \
         written"
    )]
    Altered {
        /// The row.
        id: i64,
        /// Its action, as stored now.
        action: String,
        /// Its who, as stored now.
        who: String,
        /// Its time, as stored now.
        at: String,
    },
    /// A row does not follow the one before it: a row between was removed
    /// or changed (with its hash recomputed).
    #[error(
        "audit row {id} does not follow row {previous}: {why}; the rows before row {id} are intact"
    )]
    Unlinked {
        /// The row.
        id: i64,
        /// The row before it as stored (0: none).
        previous: i64,
        /// What does not fit.
        why: String,
    },
}

impl ChainBreak {
    /// The first row that breaks the chain.
    pub fn row(&self) -> i64 {
        match self {
            ChainBreak::Altered { id, .. } | ChainBreak::Unlinked { id, .. } => *id,
        }
    }
}

/// Checks `rows` (in id order, from the first row of the log when `from`
/// is `None`, else continuing after a row whose id and hash are `from`):
/// each row's hash is its content's, its `prev_hash` is the hash of the row
/// before it, and the ids run without gaps. `Err` names the first row that
/// breaks the chain.
pub fn verify_chain<'a>(
    rows: impl IntoIterator<Item = &'a AuditRecord>,
    from: Option<(i64, &str)>,
) -> Result<(), ChainBreak> {
    let (mut last_id, mut last_hash) = match from {
        Some((id, hash)) => (id, hash.to_owned()),
        None => (0, GENESIS.to_owned()),
    };
    for row in rows {
        let expected = last_id.saturating_add(1);
        if row.id != expected {
            let why = if row.id > expected.saturating_add(1) {
                format!(
                    "rows {expected} to {} are missing",
                    row.id.saturating_sub(1)
                )
            } else if row.id > expected {
                format!("row {expected} is missing")
            } else {
                "the ids are out of order".to_owned()
            };
            return Err(ChainBreak::Unlinked {
                id: row.id,
                previous: last_id,
                why,
            });
        }
        if row.prev_hash != last_hash {
            return Err(ChainBreak::Unlinked {
                id: row.id,
                previous: last_id,
                why: "its prev_hash is not that row's hash".into(),
            });
        }
        if row.computed_hash() != row.hash {
            return Err(ChainBreak::Altered {
                id: row.id,
                action: row.action.clone(),
                who: row.who.clone(),
                at: format!("{:.0}", row.at),
            });
        }
        last_id = row.id;
        last_hash = row.hash.clone();
    }
    Ok(())
}

#[derive(sqlx::FromRow)]
struct AuditRow {
    id: i64,
    at: i64,
    who: String,
    role: String,
    action: String,
    environment: Option<String>,
    deployment_id: Option<i64>,
    target: Option<String>,
    details: String,
    prev_hash: String,
    hash: String,
}

impl AuditRow {
    /// The record; details that are not JSON are kept as a JSON string (so
    /// the row still reads, and fails verification, rather than hiding).
    fn into_record(self) -> Result<AuditRecord, StoreError> {
        let details =
            serde_json::from_str(&self.details).unwrap_or(serde_json::Value::String(self.details));
        Ok(AuditRecord {
            id: self.id,
            at: codec::timestamp(self.at, "audit_log.at")?,
            who: self.who,
            role: self.role,
            action: self.action,
            environment: self.environment,
            deployment_id: self.deployment_id,
            target: self.target,
            details,
            prev_hash: self.prev_hash,
            hash: self.hash,
        })
    }
}

macro_rules! audit_columns {
    () => {
        "id, at, who, role, action, environment, deployment_id, target, details, prev_hash, hash"
    };
}

impl Store {
    /// Appends `entry` to the audit log, stamped now, chained to the last
    /// row; returns the row written. Safe to call from any number of tasks
    /// and processes at once (one immediate transaction each).
    pub async fn append_audit(&self, entry: AuditEntry) -> Result<AuditRecord, StoreError> {
        let (now, _) = codec::now();
        let details = canonical_json(&entry.details);
        let mut writer = self.writer().await?;
        let written = async {
            let mut tx = self.begin_write(writer.conn()).await?;
            if self.backend == Backend::Postgres {
                // Readers go on; the next appender waits here until this
                // transaction ends, then reads the row it wrote.
                sqlx::query("LOCK TABLE audit_log IN EXCLUSIVE MODE")
                    .execute(&mut *tx)
                    .await?;
            }
            let last: Option<(i64, String)> =
                sqlx::query_as("SELECT id, hash FROM audit_log ORDER BY id DESC LIMIT 1")
                    .fetch_optional(&mut *tx)
                    .await?;
            let (id, prev_hash) = match last {
                Some((id, hash)) => (id.saturating_add(1), hash),
                None => (1, GENESIS.to_owned()),
            };
            let hash = row_hash(
                id,
                now,
                &entry.who,
                &entry.role,
                &entry.action,
                entry.environment.as_deref(),
                entry.deployment_id,
                entry.target.as_deref(),
                &details,
                &prev_hash,
            );
            let row = sqlx::query_as::<_, AuditRow>(concat!(
                "INSERT INTO audit_log (",
                audit_columns!(),
                ")
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)
                 RETURNING ",
                audit_columns!(),
                ""
            ))
            .bind(id)
            .bind(now)
            .bind(&entry.who)
            .bind(&entry.role)
            .bind(&entry.action)
            .bind(&entry.environment)
            .bind(entry.deployment_id)
            .bind(&entry.target)
            .bind(&details)
            .bind(&prev_hash)
            .bind(&hash)
            .fetch_all(&mut *tx)
            .await?;
            tx.commit().await?;
            Ok::<_, sqlx::Error>(row)
        }
        .await;
        writer
            .check(written)?
            .into_iter()
            .next()
            .ok_or_else(|| StoreError::Corrupt("an insert returned no row".into()))?
            .into_record()
    }

    /// Rows of the audit log with an id above `after` (0: from the first)
    /// and written at `since` or later, oldest first, at most `limit`.
    pub async fn audit(
        &self,
        after: i64,
        since: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        sqlx::query_as::<_, AuditRow>(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE id > $1 AND at >= $2 ORDER BY id LIMIT $3"
        ))
        .bind(after)
        .bind(since.map_or(i64::MIN, codec::millis))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(AuditRow::into_record)
        .collect()
    }

    /// The newest `limit` rows written at `since` or later, oldest first.
    pub async fn audit_latest(
        &self,
        since: Option<Timestamp>,
        limit: u32,
    ) -> Result<Vec<AuditRecord>, StoreError> {
        let mut rows = sqlx::query_as::<_, AuditRow>(concat!(
            "SELECT ",
            audit_columns!(),
            " FROM audit_log WHERE at >= $1 ORDER BY id DESC LIMIT $2"
        ))
        .bind(since.map_or(i64::MIN, codec::millis))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(AuditRow::into_record)
        .collect::<Result<Vec<_>, _>>()?;
        rows.reverse();
        Ok(rows)
    }
}
