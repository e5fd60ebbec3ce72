//! The manifest beside each backup (`ID.json`, never encrypted): what the
//! backup is, where it came from, its checksum, and its verification.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::BackupError;
use super::seal::io_error;

/// One backup's manifest.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Manifest {
    /// Unique, sortable by time: `YYYYMMDDTHHMMSSmmmZ-DB-RAND`.
    pub id: String,
    /// The `[database.NAME]`.
    pub database: String,
    /// `sqlite` or `postgres`.
    pub engine: String,
    /// The source URL, password redacted.
    pub source: String,
    /// The encrypted file's name, beside the manifest.
    pub file: String,
    /// Why it was taken: `manual`, `before-deploy`, `before-restore`.
    pub trigger: String,
    /// The release being deployed, when a deploy took it.
    pub release: Option<String>,
    /// The deployment that took it.
    pub deployment: Option<String>,
    /// Bytes of the encrypted file.
    pub size: u64,
    /// Bytes of the plaintext (database file or pg_dump archive).
    pub plain_size: u64,
    /// sha256 of the encrypted file, hex.
    pub sha256: String,
    /// cutover's version.
    pub cutover_version: String,
    /// RFC 3339.
    pub created_at: String,
    /// When a verification last passed.
    pub verified_at: Option<String>,
    /// The last verification's result.
    pub verification: Option<Verification>,
}

/// What a verification found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Verification {
    /// Whether it passed.
    pub ok: bool,
    /// When.
    pub at: String,
    /// Rows per table of the restored copy.
    pub tables: BTreeMap<String, i64>,
    /// Why it failed.
    pub error: Option<String>,
}

impl Manifest {
    /// Path of the manifest of backup `id` in `dir`.
    pub fn path(dir: &Path, id: &str) -> PathBuf {
        dir.join(format!("{id}.json"))
    }

    /// Writes the manifest atomically (temp name, fsync, rename).
    pub fn save(&self, dir: &Path) -> Result<(), BackupError> {
        let path = Manifest::path(dir, &self.id);
        let partial = path.with_extension("json.partial");
        let text = serde_json::to_vec_pretty(self)
            .map_err(|e| BackupError::Io(format!("cannot encode manifest: {e}")))?;
        std::fs::write(&partial, text)
            .and_then(|()| std::fs::File::open(&partial)?.sync_all())
            .map_err(|e| io_error("write", &partial, e))?;
        std::fs::rename(&partial, &path).map_err(|e| io_error("rename", &path, e))
    }

    /// Reads backup `id`'s manifest.
    pub fn load(dir: &Path, id: &str) -> Result<Manifest, BackupError> {
        let path = Manifest::path(dir, id);
        if !path.is_file() {
            return Err(BackupError::NotFound(id.to_owned()));
        }
        let text = std::fs::read(&path).map_err(|e| io_error("read", &path, e))?;
        serde_json::from_slice(&text)
            .map_err(|e| BackupError::Io(format!("bad manifest {}: {e}", path.display())))
    }

    /// Every manifest in `dir` of `database`, oldest first.
    pub fn list(dir: &Path, database: &str) -> Result<Vec<Manifest>, BackupError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("read", dir, e)),
        };
        let mut all = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if let Some(id) = name.strip_suffix(".json")
                && let Ok(manifest) = Manifest::load(dir, id)
                && manifest.database == database
            {
                all.push(manifest);
            }
        }
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(all)
    }
}
