//! The manifest beside each backup (`ID.json`, never encrypted): what the
//! backup is, where it came from, its checksum, and its verification.
//!
//! Anyone who can write to the backup folder can plant a manifest, so none
//! is believed about where its data is: an id (from the command line or a
//! manifest) is a plain name (`[A-Za-z0-9._-]`, no leading dot), and a
//! manifest's `id` must be its own file's name and its `file` exactly
//! `ID.age` beside it. Anything else is [`BackupError::Untrusted`], before a
//! byte of the data file is read or any file is deleted.

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
    /// The deploy host's signature of what the backup is (see `sign`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signature: Option<super::sign::Signature>,
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

/// Whether `name` is a plain file name cutover could have written: 1 to 200
/// of `[A-Za-z0-9._-]`, not starting with a dot.
pub fn is_plain_name(name: &str) -> bool {
    (1..=200).contains(&name.len())
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'_' | b'-'))
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

    /// Reads backup `id`'s manifest, refusing one that is not what cutover
    /// writes (see the module doc).
    pub fn load(dir: &Path, id: &str) -> Result<Manifest, BackupError> {
        if !is_plain_name(id) {
            return Err(BackupError::Untrusted {
                path: format!("{id:?}"),
                why: "a backup id is a plain name of letters, digits, '.', '_' and '-' (see `cutover backup list`)".into(),
            });
        }
        let path = Manifest::path(dir, id);
        if !path.is_file() {
            return Err(BackupError::NotFound(id.to_owned()));
        }
        let text = std::fs::read(&path).map_err(|e| io_error("read", &path, e))?;
        let manifest: Manifest = serde_json::from_slice(&text)
            .map_err(|e| BackupError::Io(format!("bad manifest {}: {e}", path.display())))?;
        let untrusted = |why: String| BackupError::Untrusted {
            path: path.display().to_string(),
            why,
        };
        if manifest.id != id {
            return Err(untrusted(format!(
                "it says its id is {:?}, but its file is named for {id:?}",
                manifest.id
            )));
        }
        if manifest.file != format!("{id}.age") {
            return Err(untrusted(format!(
                "its data file is {:?}, not {:?} beside it",
                manifest.file,
                format!("{id}.age")
            )));
        }
        Ok(manifest)
    }

    /// Every manifest in `dir` of `database`, oldest first. An untrusted
    /// manifest fails the whole list (so that `prune` deletes nothing while
    /// one is there); one that is not JSON is skipped.
    pub fn list(dir: &Path, database: &str) -> Result<Vec<Manifest>, BackupError> {
        let entries = match std::fs::read_dir(dir) {
            Ok(entries) => entries,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io_error("read", dir, e)),
        };
        let mut all = Vec::new();
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let Some(id) = name.strip_suffix(".json") else {
                continue;
            };
            match Manifest::load(dir, id) {
                Ok(manifest) if manifest.database == database => all.push(manifest),
                Ok(_) | Err(BackupError::Io(_)) => {}
                Err(e) => return Err(e),
            }
        }
        all.sort_by(|a, b| a.created_at.cmp(&b.created_at).then(a.id.cmp(&b.id)));
        Ok(all)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_plain_names_are_ids() {
        for good in ["20261204T120000000Z-main-a1b2", "x", "a.b_c-d"] {
            assert!(is_plain_name(good), "{good}");
        }
        for bad in [
            "",
            "..",
            ".hidden",
            "../x",
            "a/b",
            "a\\b",
            "a b",
            "é",
            &"x".repeat(201),
        ] {
            assert!(!is_plain_name(bad), "{bad:?}");
        }
    }

    #[test]
    fn a_manifest_must_name_itself_and_its_sibling() {
        let dir = tempfile::tempdir().expect("tempdir");
        let manifest = |id: &str, file: &str| Manifest {
            id: id.into(),
            database: "main".into(),
            engine: "sqlite".into(),
            source: "sqlite:///x".into(),
            file: file.into(),
            trigger: "manual".into(),
            release: None,
            deployment: None,
            size: 1,
            plain_size: 1,
            sha256: "00".into(),
            cutover_version: "0".into(),
            created_at: "2026-12-04T12:00:00Z".into(),
            verified_at: None,
            verification: None,
            signature: None,
        };
        manifest("good", "good.age").save(dir.path()).expect("save");
        assert!(Manifest::load(dir.path(), "good").is_ok());
        let write = |name: &str, m: Manifest| {
            std::fs::write(
                dir.path().join(format!("{name}.json")),
                serde_json::to_vec(&m).expect("json"),
            )
            .expect("write")
        };
        write("away", manifest("away", "../../victim"));
        write("liar", manifest("good", "good.age"));
        for (id, says) in [("away", "not \"away.age\""), ("liar", "says its id is")] {
            let err = Manifest::load(dir.path(), id).expect_err("untrusted");
            assert!(matches!(err, BackupError::Untrusted { .. }), "{err}");
            assert!(err.to_string().contains(says), "{err}");
        }
        assert!(matches!(
            Manifest::load(dir.path(), "../good"),
            Err(BackupError::Untrusted { .. })
        ));
        assert!(matches!(
            Manifest::list(dir.path(), "main"),
            Err(BackupError::Untrusted { .. })
        ));
    }
}
