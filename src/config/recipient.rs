//! age recipients as `cutover.toml` writes them (`age1…` X25519 keys and SSH
//! public key lines): parsing one, and why one is not a recipient.
//!
//! It lives in config, the lower layer, because validating `[database.NAME]
//! backup.recipients` needs it; the backups (`db/backup/keys.rs`) encrypt to
//! what it returns.

use std::str::FromStr as _;

/// An age recipient, boxed.
pub type Recipient = Box<dyn age::Recipient + Send>;

/// Why a text is not an age recipient. The messages are shown as the label
/// of a config error and after "bad recipient `…`: " in a backup error.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RecipientError {
    /// Starts like an X25519 recipient but is not one.
    #[error("{0}")]
    X25519(String),
    /// Starts like an SSH public key but is not one age can encrypt to.
    #[error("{0}")]
    Ssh(String),
    /// Neither kind.
    #[error("expected age1… or ssh-ed25519 …/ssh-rsa …")]
    Unrecognized,
}

/// Parses a backup signer: `ed25519:` and the base64 of a 32-byte Ed25519
/// public key (what `cutover backup keygen --signing` prints).
pub fn parse_signer(text: &str) -> Result<[u8; 32], String> {
    use base64::Engine as _;
    let Some(key) = text.trim().strip_prefix(SIGNER_PREFIX) else {
        return Err(format!("it does not start with `{SIGNER_PREFIX}`"));
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(key)
        .map_err(|e| format!("not base64 after `{SIGNER_PREFIX}`: {e}"))?;
    <[u8; 32]>::try_from(bytes.as_slice())
        .map_err(|_| format!("an Ed25519 public key is 32 bytes, this is {}", bytes.len()))
}

/// How a backup signer's public key starts.
pub const SIGNER_PREFIX: &str = "ed25519:";

/// Parses one recipient: `age1…` or an SSH public key line (surrounding
/// whitespace ignored).
pub fn parse_recipient(text: &str) -> Result<Recipient, RecipientError> {
    let text = text.trim();
    if text.starts_with("age1") {
        return age::x25519::Recipient::from_str(text)
            .map(|r| Box::new(r) as Recipient)
            .map_err(|e| RecipientError::X25519(e.to_string()));
    }
    if text.starts_with("ssh-") {
        return age::ssh::Recipient::from_str(text)
            .map(|r| Box::new(r) as Recipient)
            .map_err(|e| RecipientError::Ssh(format!("{e:?}")));
    }
    Err(RecipientError::Unrecognized)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn reason(text: &str) -> String {
        match parse_recipient(text) {
            Ok(_) => panic!("{text:?} parsed as a recipient"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn parses_x25519_and_ssh_recipients() {
        let x25519 = age::x25519::Identity::generate().to_public().to_string();
        assert!(parse_recipient(&format!("  {x25519}\n")).is_ok());
        let ssh = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIHsKLqeplhpW+uObz5dvMgjz1OxfM/XXUB+VHtZ6isGN alice@rust";
        assert!(parse_recipient(ssh).is_ok());
    }

    #[test]
    fn says_why_a_text_is_not_a_recipient() {
        assert_eq!(reason("age1nope"), "invalid Bech32 encoding");
        assert_eq!(
            reason("pgp-key"),
            "expected age1… or ssh-ed25519 …/ssh-rsa …"
        );
        assert!(matches!(
            parse_recipient("ssh-ed25519 nope"),
            Err(RecipientError::Ssh(_))
        ));
    }
}
