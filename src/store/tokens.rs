//! Named API tokens: name, role, when made and by whom, when they expire,
//! whether revoked, when last used, and the SHA-256 of the token (never the
//! token). A revoked token keeps its row, so its name is never given to
//! another token (the audit log names callers by it).

use jiff::Timestamp;

use super::codec;
use super::{Store, StoreError};

/// A named token, without its secret.
#[derive(Debug, Clone, PartialEq)]
pub struct TokenRecord {
    /// Its name: who the history and the audit log say acted.
    pub name: String,
    /// `viewer`, `deployer`, `approver` or `admin`.
    pub role: String,
    /// When it was made.
    pub created_at: Timestamp,
    /// Who made it.
    pub created_by: String,
    /// When it stops working, if ever.
    pub expires_at: Option<Timestamp>,
    /// When it was revoked, if it was.
    pub revoked_at: Option<Timestamp>,
    /// When it was last presented (kept to the minute).
    pub last_used_at: Option<Timestamp>,
}

/// A token to record ([`Store::add_token`]).
#[derive(Debug, Clone)]
pub struct NewToken<'a> {
    /// Its name (checked by the caller, `identity::check_name`).
    pub name: &'a str,
    /// SHA-256 of the token, hex (`identity::hash_token`).
    pub hash: &'a str,
    /// Its role's string.
    pub role: &'a str,
    /// Who makes it.
    pub created_by: &'a str,
    /// When it expires, if ever.
    pub expires_at: Option<Timestamp>,
}

#[derive(sqlx::FromRow)]
struct TokenRow {
    name: String,
    role: String,
    created_at: i64,
    created_by: String,
    expires_at: Option<i64>,
    revoked_at: Option<i64>,
    last_used_at: Option<i64>,
}

impl TryFrom<TokenRow> for TokenRecord {
    type Error = StoreError;

    fn try_from(row: TokenRow) -> Result<TokenRecord, StoreError> {
        let opt =
            |ms: Option<i64>, column: &str| ms.map(|ms| codec::timestamp(ms, column)).transpose();
        Ok(TokenRecord {
            name: row.name,
            role: row.role,
            created_at: codec::timestamp(row.created_at, "api_tokens.created_at")?,
            created_by: row.created_by,
            expires_at: opt(row.expires_at, "api_tokens.expires_at")?,
            revoked_at: opt(row.revoked_at, "api_tokens.revoked_at")?,
            last_used_at: opt(row.last_used_at, "api_tokens.last_used_at")?,
        })
    }
}

macro_rules! token_columns {
    () => {
        "name, role, created_at, created_by, expires_at, revoked_at, last_used_at"
    };
}

/// How often `last_used_at` is written at most (per token).
const LAST_USED_GRANULARITY_MS: i64 = 60_000;

impl Store {
    /// Records a new token, or fails with [`StoreError::Conflict`] when a
    /// token (even a revoked one) has this name.
    pub async fn add_token(&self, token: NewToken<'_>) -> Result<TokenRecord, StoreError> {
        let (now, _) = codec::now();
        let mut writer = self.writer().await?;
        let result = sqlx::query_as::<_, TokenRow>(concat!(
            "INSERT INTO api_tokens (name, hash, role, created_at, created_by, expires_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (name) DO NOTHING
             RETURNING ",
            token_columns!(),
            ""
        ))
        .bind(token.name)
        .bind(token.hash)
        .bind(token.role)
        .bind(now)
        .bind(token.created_by)
        .bind(token.expires_at.map(codec::millis))
        // Every row: SQLite reports a failed commit only at the end.
        .fetch_all(writer.conn())
        .await;
        match writer.check(result)?.into_iter().next() {
            Some(row) => TokenRecord::try_from(row),
            None => Err(StoreError::Conflict(format!(
                "a token named {:?} exists or existed (names are never reused, so the audit log stays \
                 unambiguous); choose another name",
                token.name
            ))),
        }
    }

    /// Every named token, oldest first.
    pub async fn tokens(&self) -> Result<Vec<TokenRecord>, StoreError> {
        sqlx::query_as::<_, TokenRow>(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens ORDER BY created_at, name"
        ))
        .fetch_all(&self.pool)
        .await?
        .into_iter()
        .map(TokenRecord::try_from)
        .collect()
    }

    /// The token whose hash is `hash`, if any (revoked and expired ones too:
    /// the caller decides, and says which).
    pub async fn token_by_hash(&self, hash: &str) -> Result<Option<TokenRecord>, StoreError> {
        sqlx::query_as::<_, TokenRow>(concat!(
            "SELECT ",
            token_columns!(),
            " FROM api_tokens WHERE hash = $1"
        ))
        .bind(hash)
        .fetch_optional(&self.pool)
        .await?
        .map(TokenRecord::try_from)
        .transpose()
    }

    /// Revokes the token `name`: `Ok(Some(record))` when it was active,
    /// `Ok(None)` when there is none of that name; a token already revoked
    /// is [`StoreError::Conflict`].
    pub async fn revoke_token(&self, name: &str) -> Result<Option<TokenRecord>, StoreError> {
        let (now, _) = codec::now();
        let mut writer = self.writer().await?;
        let result = sqlx::query_as::<_, TokenRow>(concat!(
            "UPDATE api_tokens SET revoked_at = $2 WHERE name = $1 AND revoked_at IS NULL
             RETURNING ",
            token_columns!(),
            ""
        ))
        .bind(name)
        .bind(now)
        .fetch_all(writer.conn())
        .await;
        if let Some(row) = writer.check(result)?.into_iter().next() {
            return TokenRecord::try_from(row).map(Some);
        }
        drop(writer);
        let existing = self.tokens().await?.into_iter().find(|t| t.name == name);
        match existing {
            Some(t) => Err(StoreError::Conflict(format!(
                "token {name:?} was already revoked at {:.0}",
                t.revoked_at.unwrap_or(t.created_at)
            ))),
            None => Ok(None),
        }
    }

    /// Notes that token `name` was used now, unless that was noted less
    /// than a minute ago (so a busy client does not write on every call).
    pub async fn touch_token(&self, name: &str) -> Result<(), StoreError> {
        let (now, _) = codec::now();
        let mut writer = self.writer().await?;
        let result = sqlx::query(
            "UPDATE api_tokens SET last_used_at = $2
             WHERE name = $1 AND (last_used_at IS NULL OR last_used_at <= $3)",
        )
        .bind(name)
        .bind(now)
        .bind(now.saturating_sub(LAST_USED_GRANULARITY_MS))
        .execute(writer.conn())
        .await;
        writer.check(result)?;
        Ok(())
    }
}

/// Whether a token noted used at `last` should be noted again at `now`.
pub fn needs_touch(last: Option<Timestamp>, now: Timestamp) -> bool {
    last.is_none_or(|l| {
        now.as_millisecond().saturating_sub(l.as_millisecond()) >= LAST_USED_GRANULARITY_MS
    })
}
