//! age keys: the recipients of a backup configuration (parsed by
//! `crate::config::parse_recipient`, X25519 `age1…` and SSH public keys),
//! reading identities from a file (never logged, never stored), and making a
//! new X25519 identity for `cutover backup keygen`.

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use age::secrecy::ExposeSecret as _;

use super::BackupError;
use crate::config::{BackupConfig, parse_recipient};

pub use crate::config::Recipient;
/// An age identity, boxed.
pub type Identity = Box<dyn age::Identity + Send + Sync>;

/// Every recipient of `config`: inline ones, then those of `recipients_file`.
pub fn recipients(config: &BackupConfig) -> Result<Vec<Recipient>, BackupError> {
    let mut texts = config.recipients.clone();
    if let Some(file) = &config.recipients_file {
        let content = std::fs::read_to_string(file).map_err(|e| {
            BackupError::Keys(format!(
                "cannot read recipients_file {}: {e}",
                file.display()
            ))
        })?;
        texts.extend(
            content
                .lines()
                .map(str::trim)
                .filter(|line| !line.is_empty() && !line.starts_with('#'))
                .map(str::to_owned),
        );
    }
    if texts.is_empty() {
        return Err(BackupError::Keys("no backup recipients configured".into()));
    }
    texts
        .iter()
        .map(|text| {
            parse_recipient(text)
                .map_err(|reason| BackupError::Keys(format!("bad recipient `{text}`: {reason}")))
        })
        .collect()
}

/// The identities in the file `path` (age identity file, or an unencrypted
/// OpenSSH private key).
pub fn identities(path: &Path) -> Result<Vec<Identity>, BackupError> {
    let shown = path.display().to_string();
    let bad = |e: &dyn std::fmt::Display| {
        BackupError::Keys(format!("cannot read identity file {shown}: {e}"))
    };
    let content = std::fs::read(path).map_err(|e| bad(&e))?;
    if let Ok(file) = age::IdentityFile::from_buffer(content.as_slice())
        && let Ok(found) = file.into_identities()
        && !found.is_empty()
    {
        return Ok(found);
    }
    match age::ssh::Identity::from_buffer(content.as_slice(), Some(shown.clone())) {
        Ok(identity @ age::ssh::Identity::Unencrypted(_)) => Ok(vec![Box::new(identity)]),
        Ok(_) => Err(bad(&"encrypted or unsupported SSH key")),
        Err(e) => Err(bad(&e)),
    }
}

/// Where the identity comes from: `--identity`, else `CUTOVER_BACKUP_IDENTITY`.
pub fn identity_path(flag: Option<&Path>) -> Result<std::path::PathBuf, BackupError> {
    if let Some(path) = flag {
        return Ok(path.to_owned());
    }
    match std::env::var_os("CUTOVER_BACKUP_IDENTITY") {
        Some(path) if !path.is_empty() => Ok(path.into()),
        _ => Err(BackupError::Keys(
            "no identity: pass --identity FILE or set CUTOVER_BACKUP_IDENTITY to an age identity file".into(),
        )),
    }
}

/// Writes a new X25519 identity to `path` (mode 0600, never overwriting)
/// and returns its recipient.
pub fn keygen(path: &Path) -> Result<String, BackupError> {
    let identity = age::x25519::Identity::generate();
    let recipient = identity.to_public().to_string();
    let created = jiff::Timestamp::now();
    let text = format!(
        "# created: {created}\n# public key: {recipient}\n{}\n",
        identity.to_string().expose_secret()
    );
    write_private(path, &text)?;
    Ok(recipient)
}

/// Writes a new key file at `path`: owner-only (0600), never overwriting
/// one, synced.
pub(super) fn write_private(path: &Path, text: &str) -> Result<(), BackupError> {
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(|e| BackupError::Keys(format!("cannot create {}: {e}", path.display())))?;
    file.write_all(text.as_bytes())
        .and_then(|()| file.sync_all())
        .map_err(|e| BackupError::Keys(format!("cannot write {}: {e}", path.display())))
}
