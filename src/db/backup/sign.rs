//! Backup signatures: an Ed25519 key of the deploy host signs each backup's
//! manifest (what it is, and the sha256 of its encrypted file), so that a
//! backup planted in the folder — encrypted to the public recipient, which
//! anyone may know — is not restored as if it were ours.
//!
//! The key file (`cutover backup keygen --signing`, mode 0600) holds the
//! PKCS#8 document in base64 under `#` comment lines; its path comes from
//! `CUTOVER_BACKUP_SIGNING_KEY` where backups are made, and is never logged.
//! The config lists the public keys it trusts (`backup.signers`, `ed25519:…`).

use std::path::{Path, PathBuf};

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ring::signature::{ED25519, Ed25519KeyPair, KeyPair as _, UnparsedPublicKey};
use serde::{Deserialize, Serialize};

use super::BackupError;
use super::manifest::Manifest;
use crate::config::{SIGNER_PREFIX, parse_signer};

/// The environment variable naming the signing key file.
pub const SIGNING_KEY_ENV: &str = "CUTOVER_BACKUP_SIGNING_KEY";

/// A manifest's signature.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Signature {
    /// The signer's public key, `ed25519:…`.
    pub key: String,
    /// The signature, base64.
    pub value: String,
}

/// A signing key, loaded.
pub struct SigningKey(Ed25519KeyPair);

impl std::fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SigningKey({})", self.public())
    }
}

impl SigningKey {
    /// The public key, `ed25519:…`.
    pub fn public(&self) -> String {
        format!(
            "{SIGNER_PREFIX}{}",
            STANDARD.encode(self.0.public_key().as_ref())
        )
    }
}

/// Writes a new signing key to `path` (mode 0600, never overwriting) and
/// returns its public key.
pub fn keygen(path: &Path) -> Result<String, BackupError> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng)
        .map_err(|_| BackupError::Keys("cannot make an Ed25519 key".into()))?;
    let key = Ed25519KeyPair::from_pkcs8(pkcs8.as_ref())
        .map_err(|_| BackupError::Keys("cannot make an Ed25519 key".into()))?;
    let public = SigningKey(key).public();
    let text = format!(
        "# cutover backup signing key (Ed25519), created: {}\n# public key: {public}\n{}\n",
        jiff::Timestamp::now(),
        STANDARD.encode(pkcs8.as_ref())
    );
    super::keys::write_private(path, &text)?;
    Ok(public)
}

/// The signing key file named by `CUTOVER_BACKUP_SIGNING_KEY`, if set.
pub fn key_path() -> Option<PathBuf> {
    std::env::var_os(SIGNING_KEY_ENV)
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

/// Reads the signing key at `path`.
pub fn load(path: &Path) -> Result<SigningKey, BackupError> {
    let bad = |why: &dyn std::fmt::Display| {
        BackupError::Keys(format!(
            "cannot read the signing key {} ({SIGNING_KEY_ENV}): {why}",
            path.display()
        ))
    };
    let text = std::fs::read_to_string(path).map_err(|e| bad(&e))?;
    let body: String = text
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty() && !l.starts_with('#'))
        .collect();
    let pkcs8 = STANDARD.decode(body).map_err(|e| bad(&e))?;
    Ed25519KeyPair::from_pkcs8(&pkcs8)
        .map(SigningKey)
        .map_err(|_| bad(&"not an Ed25519 key from `cutover backup keygen --signing`"))
}

/// What is signed: every field that says what the backup is (not its
/// verification, which changes), one per line.
fn message(m: &Manifest) -> Vec<u8> {
    let fields = [
        "cutover-backup-signature-v1",
        &m.id,
        &m.database,
        &m.engine,
        &m.file,
        &m.sha256,
        &m.size.to_string(),
        &m.plain_size.to_string(),
        &m.trigger,
        m.release.as_deref().unwrap_or(""),
        m.deployment.as_deref().unwrap_or(""),
        &m.created_at,
    ];
    // serde_json strings: no field can smuggle a newline into another's place.
    fields
        .iter()
        .map(|f| serde_json::Value::String((*f).to_owned()).to_string())
        .collect::<Vec<_>>()
        .join("\n")
        .into_bytes()
}

/// Signs `manifest` with `key`.
pub fn sign(manifest: &mut Manifest, key: &SigningKey) {
    let signature = key.0.sign(&message(manifest));
    manifest.signature = Some(Signature {
        key: key.public(),
        value: STANDARD.encode(signature.as_ref()),
    });
}

/// Whether `manifest` is signed by one of `signers`; why not, otherwise.
pub fn check(manifest: &Manifest, signers: &[String]) -> Result<(), String> {
    let Some(signature) = &manifest.signature else {
        return Err("it is not signed".into());
    };
    if !signers.iter().any(|s| s.trim() == signature.key) {
        return Err(format!(
            "it is signed by {}, which is not in backup.signers",
            signature.key
        ));
    }
    let public = parse_signer(&signature.key)?;
    let value = STANDARD
        .decode(&signature.value)
        .map_err(|_| "its signature is not base64".to_owned())?;
    UnparsedPublicKey::new(&ED25519, public)
        .verify(&message(manifest), &value)
        .map_err(|_| {
            format!(
                "its signature by {} does not match its manifest (the manifest was changed)",
                signature.key
            )
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn manifest() -> Manifest {
        serde_json::from_value(serde_json::json!({
            "id": "20261204T120000000Z-main-0001", "database": "main", "engine": "sqlite",
            "source": "sqlite:///x", "file": "20261204T120000000Z-main-0001.age",
            "trigger": "manual", "release": null, "deployment": null, "size": 10,
            "plain_size": 20, "sha256": "ab", "cutover_version": "0",
            "created_at": "2026-12-04T12:00:00Z", "verified_at": null, "verification": null
        }))
        .expect("manifest")
    }

    #[test]
    fn a_signature_holds_for_its_key_only_and_only_for_an_unchanged_manifest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let ours = keygen(&dir.path().join("ours")).expect("keygen");
        let theirs = keygen(&dir.path().join("theirs")).expect("keygen");
        let key = load(&dir.path().join("ours")).expect("load");
        assert_eq!(key.public(), ours);
        let mut m = manifest();
        assert_eq!(
            check(&m, std::slice::from_ref(&ours)),
            Err("it is not signed".into())
        );
        sign(&mut m, &key);
        assert_eq!(check(&m, std::slice::from_ref(&ours)), Ok(()));
        let foreign = check(&m, std::slice::from_ref(&theirs)).expect_err("foreign");
        assert!(foreign.contains("not in backup.signers"), "{foreign}");
        // The verification may change; what the backup is may not.
        m.verified_at = Some("later".into());
        assert_eq!(check(&m, std::slice::from_ref(&ours)), Ok(()));
        m.sha256 = "cd".into();
        let changed = check(&m, &[ours]).expect_err("changed");
        assert!(changed.contains("does not match"), "{changed}");
        // Never overwrites, and the file is private.
        assert!(keygen(&dir.path().join("ours")).is_err());
        let mode = std::fs::metadata(dir.path().join("ours")).expect("meta");
        assert_eq!(
            std::os::unix::fs::PermissionsExt::mode(&mode.permissions()) & 0o777,
            0o600
        );
    }
}
