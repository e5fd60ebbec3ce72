//! Releases: immutable versions of the app, recorded the first time they are seen.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::codec;
use super::{Store, StoreError};

/// An immutable version of the app.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct Release {
    /// The app, as named in `cutover.toml`.
    pub app: String,
    /// The version label.
    pub version: String,
    /// The hash of the configuration the release was made with.
    pub config_hash: String,
    /// When the release was first recorded.
    pub created_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct ReleaseRow {
    app: String,
    version: String,
    config_hash: String,
    created_at: i64,
}

impl TryFrom<ReleaseRow> for Release {
    type Error = StoreError;

    fn try_from(row: ReleaseRow) -> Result<Release, StoreError> {
        Ok(Release {
            app: row.app,
            version: row.version,
            config_hash: row.config_hash,
            created_at: codec::timestamp(row.created_at, "releases.created_at")?,
        })
    }
}

impl Store {
    /// Records a release. Recording the same `(app, version)` again changes
    /// nothing: the first `config_hash` and `created_at` are kept.
    pub async fn upsert_release(
        &self,
        app: &str,
        version: &str,
        config_hash: &str,
    ) -> Result<(), StoreError> {
        let (now, _) = codec::now();
        sqlx::query(
            "INSERT INTO releases (app, version, config_hash, created_at)
             VALUES ($1, $2, $3, $4)
             ON CONFLICT (app, version) DO NOTHING",
        )
        .bind(app)
        .bind(version)
        .bind(config_hash)
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The release `version` of `app`, if recorded.
    pub async fn release(&self, app: &str, version: &str) -> Result<Option<Release>, StoreError> {
        sqlx::query_as::<_, ReleaseRow>(
            "SELECT app, version, config_hash, created_at
             FROM releases WHERE app = $1 AND version = $2",
        )
        .bind(app)
        .bind(version)
        .fetch_optional(&self.pool)
        .await?
        .map(Release::try_from)
        .transpose()
    }
}
