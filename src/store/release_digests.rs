//! What each deployment released: the release digest and the per-service
//! digests it combines (see `runtime::identity` for how they are made), and
//! where each version has run, for promotion and `cutover releases`.

use jiff::Timestamp;
use serde::{Deserialize, Serialize};

use super::codec;
use super::{Store, StoreError};

/// The digest of a deployment's release.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
pub struct ReleaseDigest {
    /// The deployment that released it.
    pub deployment_id: i64,
    /// Its environment.
    pub environment: String,
    /// Its version label.
    pub version: String,
    /// The release digest (hex sha256 over the services' digests).
    pub digest: String,
    /// The per-service digests and what each covers (JSON, see the migration).
    pub services: serde_json::Value,
    /// When it was recorded.
    pub recorded_at: Timestamp,
}

#[derive(sqlx::FromRow)]
struct DigestRow {
    deployment_id: i64,
    environment: String,
    version: String,
    digest: String,
    services: String,
    recorded_at: i64,
}

impl TryFrom<DigestRow> for ReleaseDigest {
    type Error = StoreError;

    fn try_from(row: DigestRow) -> Result<ReleaseDigest, StoreError> {
        Ok(ReleaseDigest {
            deployment_id: row.deployment_id,
            environment: row.environment,
            version: row.version,
            digest: row.digest,
            services: codec::json(&row.services, "release_digests.services")?,
            recorded_at: codec::timestamp(row.recorded_at, "release_digests.recorded_at")?,
        })
    }
}

impl Store {
    /// Records the digest of deployment `deployment_id`'s release (once:
    /// recording again changes nothing).
    pub async fn record_release_digest(
        &self,
        deployment_id: i64,
        environment: &str,
        version: &str,
        digest: &str,
        services: &serde_json::Value,
    ) -> Result<(), StoreError> {
        let (now, _) = codec::now();
        sqlx::query(
            "INSERT INTO release_digests
                 (deployment_id, environment, version, digest, services, recorded_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (deployment_id) DO NOTHING",
        )
        .bind(deployment_id)
        .bind(environment)
        .bind(version)
        .bind(digest)
        .bind(services.to_string())
        .bind(now)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// The digest recorded for deployment `deployment_id`, if any.
    pub async fn release_digest(
        &self,
        deployment_id: i64,
    ) -> Result<Option<ReleaseDigest>, StoreError> {
        sqlx::query_as::<_, DigestRow>(
            "SELECT deployment_id, environment, version, digest, services, recorded_at
             FROM release_digests WHERE deployment_id = $1",
        )
        .bind(deployment_id)
        .fetch_optional(&self.pool)
        .await?
        .map(ReleaseDigest::try_from)
        .transpose()
    }

    /// Every recorded digest, of one environment or all, oldest first.
    pub async fn release_digests(
        &self,
        environment: Option<&str>,
    ) -> Result<Vec<ReleaseDigest>, StoreError> {
        let rows = match environment {
            Some(env) => {
                sqlx::query_as::<_, DigestRow>(
                    "SELECT deployment_id, environment, version, digest, services, recorded_at
                     FROM release_digests WHERE environment = $1
                     ORDER BY deployment_id",
                )
                .bind(env)
                .fetch_all(&self.pool)
                .await?
            }
            None => {
                sqlx::query_as::<_, DigestRow>(
                    "SELECT deployment_id, environment, version, digest, services, recorded_at
                     FROM release_digests ORDER BY deployment_id",
                )
                .fetch_all(&self.pool)
                .await?
            }
        };
        rows.into_iter().map(ReleaseDigest::try_from).collect()
    }
}
