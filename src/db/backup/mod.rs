//! Backups of the application's databases (`[database.NAME] backup`):
//! online, zstd-compressed, age-encrypted, atomically written, with a JSON
//! manifest beside each; verified by restoring into a scratch database;
//! restored (after a safety backup of what they replace); pruned.
//!
//! The file format is standard (see `seal`): `age -d -i KEY ID.age | zstd -d`
//! gives the SQLite file or the `pg_dump --format=custom` archive back.

pub mod keys;
pub mod manifest;
mod postgres;
pub mod prune;
pub mod seal;
pub mod sign;
mod sqlite;
mod sqlite_copy;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use jiff::Timestamp;

use crate::config::{BackupConfig, DatabaseConfig, redact_url};
use keys::Identity;
pub use manifest::{Manifest, Verification};

/// Everything that can go wrong with a backup.
#[derive(Debug, thiserror::Error)]
pub enum BackupError {
    /// The database has no `backup = { … }`.
    #[error("database `{0}` has no `backup = {{ … }}` in its [database.{0}] table")]
    NotConfigured(String),
    /// Keys: recipients or identities.
    #[error("{0}")]
    Keys(String),
    /// A file could not be read or written.
    #[error("{0}")]
    Io(String),
    /// The database could not be read or written.
    #[error("database: {0}")]
    Database(String),
    /// pg_dump / pg_restore failed or is missing.
    #[error("{0}")]
    Tool(String),
    /// No backup with this id.
    #[error("no backup `{0}` (see `cutover backup list`)")]
    NotFound(String),
    /// The encrypted file's sha256 differs from its manifest's.
    #[error(
        "checksum mismatch for backup `{id}`: the manifest says {expected}, the file is {actual} (the file was changed or damaged)"
    )]
    Checksum {
        /// The backup.
        id: String,
        /// From the manifest.
        expected: String,
        /// Of the file.
        actual: String,
    },
    /// Decryption or decompression failed.
    #[error("cannot decrypt the backup: {0} (is this the identity of one of its recipients?)")]
    Decrypt(String),
    /// The restored copy is not sound.
    #[error("verification failed: {0}")]
    Verify(String),
    /// A SQLite backup restored into PostgreSQL, or the other way round.
    #[error("{0}")]
    Mismatch(String),
    /// A manifest whose id or file name could reach outside its folder (or
    /// is not the one cutover writes): refused, nothing read or deleted.
    #[error(
        "untrusted backup manifest {path}: {why}; cutover refuses it and deletes nothing (inspect the file, then remove it if you did not put it there)"
    )]
    Untrusted {
        /// The manifest.
        path: String,
        /// What is wrong.
        why: String,
    },
    /// A backup signed by no key of `backup.signers` (or not at all).
    #[error(
        "backup `{id}` is not trusted: {why}; list its signer's public key in backup.signers, or pass --allow-unsigned if you know where it came from"
    )]
    Unsigned {
        /// The backup.
        id: String,
        /// Why.
        why: String,
    },
    /// Restoring over a live database without `--force`.
    #[error(
        "{0} is a live database with tables; pass --force to replace it (a safety backup of it is taken first)"
    )]
    Refused(String),
}

impl From<sqlite_copy::CopyError> for BackupError {
    fn from(error: sqlite_copy::CopyError) -> Self {
        BackupError::Database(error.0)
    }
}

/// Why a backup is taken, recorded in its manifest.
#[derive(Debug, Clone, Default)]
pub struct Trigger {
    /// `manual`, `before-deploy`, `before-restore`.
    pub kind: String,
    /// The release being deployed.
    pub release: Option<String>,
    /// The deployment.
    pub deployment: Option<String>,
}

impl Trigger {
    /// A backup asked for by hand.
    pub fn manual() -> Trigger {
        Trigger {
            kind: "manual".into(),
            ..Trigger::default()
        }
    }
}

/// The backups of one database.
#[derive(Debug, Clone)]
pub struct Backups {
    name: String,
    database: DatabaseConfig,
    config: BackupConfig,
    /// Verify and restore backups no trusted signer signed.
    allow_unsigned: bool,
}

/// What `restore` did.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Restored {
    /// The backup restored.
    pub id: String,
    /// Where, redacted.
    pub target: String,
    /// The safety backup taken of what was replaced.
    pub safety_backup: Option<String>,
}

impl Backups {
    /// The backups of database `name`; an error when it has no `backup`.
    pub fn new(name: &str, database: &DatabaseConfig) -> Result<Backups, BackupError> {
        let config = database
            .backup
            .clone()
            .ok_or_else(|| BackupError::NotConfigured(name.to_owned()))?;
        Ok(Backups {
            name: name.to_owned(),
            database: database.clone(),
            config,
            allow_unsigned: false,
        })
    }

    /// The same, verifying and restoring backups that no key of
    /// `backup.signers` signed (`--allow-unsigned`).
    pub fn allowing_unsigned(mut self, allow: bool) -> Backups {
        self.allow_unsigned = allow;
        self
    }

    /// The settings.
    pub fn config(&self) -> &BackupConfig {
        &self.config
    }

    /// Where the backups go.
    pub fn dir(&self) -> &Path {
        &self.config.dir
    }

    /// Takes a backup of the database; verifies it when `verify = true`
    /// (with the identity of `CUTOVER_BACKUP_IDENTITY`).
    pub async fn create(&self, trigger: Trigger) -> Result<Manifest, BackupError> {
        let identities = if self.config.verify {
            Some(keys::identities(&keys::identity_path(None).map_err(|_| {
                BackupError::Keys(
                    "backup.verify = true needs an identity to verify with: set CUTOVER_BACKUP_IDENTITY to an age identity file".into(),
                )
            })?)?)
        } else {
            None
        };
        let manifest = self
            .create_from(&self.database.url.clone(), trigger)
            .await?;
        match identities {
            // Just made and signed here: its integrity is what is checked.
            Some(identities) => {
                self.clone()
                    .allowing_unsigned(true)
                    .verify(&manifest.id, &identities)
                    .await
            }
            None => Ok(manifest),
        }
    }

    async fn create_from(&self, url: &str, trigger: Trigger) -> Result<Manifest, BackupError> {
        let recipients = keys::recipients(&self.config)?;
        let signing_key = self.signing_key()?;
        std::fs::create_dir_all(&self.config.dir)
            .map_err(|e| seal::io_error("create", &self.config.dir, e))?;
        let now = Timestamp::now();
        let id = format!(
            "{}-{}-{:04x}",
            now.strftime("%Y%m%dT%H%M%S%3fZ"),
            self.name,
            fastrand::u16(..)
        );
        let path = self.config.dir.join(format!("{id}.age"));
        let postgres = is_postgres(url);
        let sealed = if postgres {
            postgres::dump(url, &path, recipients).await?
        } else {
            sqlite::dump(url, &path, recipients).await?
        };
        let mut manifest = Manifest {
            id: id.clone(),
            database: self.name.clone(),
            engine: if postgres { "postgres" } else { "sqlite" }.into(),
            source: redact_url(url),
            file: format!("{id}.age"),
            trigger: trigger.kind,
            release: trigger.release,
            deployment: trigger.deployment,
            size: sealed.size,
            plain_size: sealed.plain_size,
            sha256: sealed.sha256,
            cutover_version: env!("CARGO_PKG_VERSION").into(),
            created_at: now.to_string(),
            verified_at: None,
            verification: None,
            signature: None,
        };
        if let Some(key) = &signing_key {
            sign::sign(&mut manifest, key);
        }
        manifest.save(&self.config.dir)?;
        tracing::info!(id = %manifest.id, database = %self.name, size = manifest.size, "backup taken");
        Ok(manifest)
    }

    /// Every backup of this database, oldest first.
    pub fn list(&self) -> Result<Vec<Manifest>, BackupError> {
        Manifest::list(&self.config.dir, &self.name)
    }

    /// The key that signs new backups (`CUTOVER_BACKUP_SIGNING_KEY`):
    /// required, and required to be listed, when `backup.signers` is set.
    fn signing_key(&self) -> Result<Option<sign::SigningKey>, BackupError> {
        let key = sign::key_path().map(|path| sign::load(&path)).transpose()?;
        let signers = &self.config.signers;
        match &key {
            None if !signers.is_empty() => Err(BackupError::Keys(format!(
                "backups of `{}` are signed (backup.signers is set): set {} to the key file `cutover backup keygen --signing` made",
                self.name,
                sign::SIGNING_KEY_ENV
            ))),
            Some(key) if !signers.is_empty() && !signers.contains(&key.public()) => {
                Err(BackupError::Keys(format!(
                    "the signing key in {} is {}, which backup.signers of `{}` does not list: add it there, or use a key it lists",
                    sign::SIGNING_KEY_ENV,
                    key.public(),
                    self.name
                )))
            }
            _ => Ok(key),
        }
    }

    /// The backup `id`'s manifest, after checking its file's sha256 and,
    /// unless unsigned backups are allowed, its signature.
    fn checked(&self, id: &str) -> Result<(Manifest, PathBuf), BackupError> {
        let manifest = Manifest::load(&self.config.dir, id)?;
        let path = self.config.dir.join(&manifest.file);
        let actual = seal::file_sha256(&path)?;
        if actual != manifest.sha256 {
            return Err(BackupError::Checksum {
                id: id.to_owned(),
                expected: manifest.sha256,
                actual,
            });
        }
        if !self.allow_unsigned {
            sign::check(&manifest, &self.config.signers).map_err(|why| BackupError::Unsigned {
                id: id.to_owned(),
                why,
            })?;
        }
        Ok((manifest, path))
    }

    /// Decrypts backup `id`, restores it into a scratch database, checks
    /// it, and records the result in its manifest.
    pub async fn verify(&self, id: &str, identities: &[Identity]) -> Result<Manifest, BackupError> {
        let mut manifest = Manifest::load(&self.config.dir, id)?;
        let at = Timestamp::now().to_string();
        let result = match self.checked(id) {
            Ok((_, path)) if manifest.engine == "postgres" => {
                postgres::verify(&self.database.url, &path, identities).await
            }
            Ok((_, path)) => sqlite::verify(&path, identities).await,
            Err(error) => Err(error),
        };
        let (verification, outcome) = match result {
            Ok(tables) => (
                Verification {
                    ok: true,
                    at: at.clone(),
                    tables,
                    error: None,
                },
                Ok(()),
            ),
            Err(error) => (
                Verification {
                    ok: false,
                    at: at.clone(),
                    tables: BTreeMap::new(),
                    error: Some(error.to_string()),
                },
                Err(error),
            ),
        };
        // A backup that fails now is no longer verified, whatever it was.
        manifest.verified_at = verification.ok.then_some(at);
        manifest.verification = Some(verification);
        manifest.save(&self.config.dir)?;
        outcome.map(|()| manifest)
    }

    /// Restores backup `id` into `to` (default: the database itself).
    /// A target with tables is refused unless `force`; then a safety
    /// backup of it is taken first.
    pub async fn restore(
        &self,
        id: &str,
        to: Option<&str>,
        force: bool,
        identities: &[Identity],
    ) -> Result<Restored, BackupError> {
        let (manifest, path) = self.checked(id)?;
        let target = to.unwrap_or(&self.database.url).to_owned();
        let postgres = is_postgres(&target);
        if postgres != (manifest.engine == "postgres") {
            return Err(BackupError::Mismatch(format!(
                "{} is not a {} database like backup `{id}`",
                redact_url(&target),
                manifest.engine
            )));
        }
        let live = if postgres {
            postgres::has_tables(&target).await?
        } else {
            sqlite::has_tables(&target).await?
        };
        let mut safety_backup = None;
        if live {
            if !force {
                return Err(BackupError::Refused(redact_url(&target)));
            }
            let trigger = Trigger {
                kind: "before-restore".into(),
                ..Trigger::default()
            };
            safety_backup = Some(self.create_from(&target, trigger).await?.id);
        }
        if postgres {
            postgres::restore(&path, &target, identities).await?;
        } else {
            sqlite::restore(&path, &target, identities).await?;
        }
        Ok(Restored {
            id: id.to_owned(),
            target: redact_url(&target),
            safety_backup,
        })
    }

    /// Deletes what `keep_last` and `keep_within` do not keep (never the
    /// newest verified backup); returns the deleted ids.
    pub fn prune(&self, dry_run: bool) -> Result<Vec<String>, BackupError> {
        let all = self.list()?;
        let doomed = prune::select(
            &all,
            self.config.keep_last,
            self.config.keep_within,
            Timestamp::now(),
        );
        if !dry_run {
            for id in &doomed {
                if let Some(manifest) = all.iter().find(|m| &m.id == id) {
                    let file = self.config.dir.join(&manifest.file);
                    std::fs::remove_file(&file)
                        .or_else(|e| match e.kind() {
                            std::io::ErrorKind::NotFound => Ok(()),
                            _ => Err(e),
                        })
                        .map_err(|e| seal::io_error("remove", &file, e))?;
                    let json = Manifest::path(&self.config.dir, id);
                    std::fs::remove_file(&json).map_err(|e| seal::io_error("remove", &json, e))?;
                }
            }
        }
        Ok(doomed)
    }
}

fn is_postgres(url: &str) -> bool {
    url.starts_with("postgres://") || url.starts_with("postgresql://")
}
