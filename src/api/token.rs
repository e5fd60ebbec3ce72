//! The API's bearer token: made by the daemon on first start, stored beside the
//! state (`.cutover/api.token`, mode 0600), read by the CLI from the same place
//! or from `CUTOVER_TOKEN`. Every API route but `/healthz` and `/metrics`
//! requires it; comparison is constant-time. (Roles come with the operations
//! issue; today the one token is the admin token.)

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

/// Environment variable that overrides the token file for the CLI.
pub const TOKEN_ENV: &str = "CUTOVER_TOKEN";
/// Bytes of randomness in a new token.
const TOKEN_BYTES: usize = 32;

/// Why the token could not be read or made.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// No token file and no `CUTOVER_TOKEN`.
    #[error(
        "no API token at {path} and CUTOVER_TOKEN is not set; start the daemon (`cutover serve`) once to create it"
    )]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// The file exists but could not be read or written.
    #[error("API token file {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// The OS random source failed.
    #[error("cannot make a random token: {0}")]
    Random(String),
}

/// Where the token lives for a config whose directory is `base_dir`.
pub fn token_path(base_dir: &Path) -> PathBuf {
    base_dir.join(".cutover").join("api.token")
}

/// Reads the token, or makes a new one (owner-only file) if there is none.
pub fn load_or_create(path: &Path) -> Result<String, TokenError> {
    match read(path) {
        Ok(t) => return Ok(t),
        Err(TokenError::Missing { .. }) => {}
        Err(e) => return Err(e),
    }
    let mut raw = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut raw).map_err(|e| TokenError::Random(e.to_string()))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let io = |source| TokenError::Io {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io)?;
    }
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .map_err(io)?;
    file.write_all(token.as_bytes()).map_err(io)?;
    file.sync_all().map_err(io)?;
    Ok(token)
}

/// Reads the token for the CLI: `CUTOVER_TOKEN`, else the file.
pub fn for_client(path: &Path) -> Result<String, TokenError> {
    if let Ok(t) = std::env::var(TOKEN_ENV)
        && !t.trim().is_empty()
    {
        return Ok(t.trim().to_owned());
    }
    read(path)
}

fn read(path: &Path) -> Result<String, TokenError> {
    match std::fs::read_to_string(path) {
        Ok(t) => {
            // Tighten a token file someone loosened.
            if let Ok(meta) = std::fs::metadata(path)
                && meta.permissions().mode() & 0o077 != 0
            {
                let _ = std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600));
            }
            Ok(t.trim().to_owned())
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(TokenError::Missing {
            path: path.to_owned(),
        }),
        Err(source) => Err(TokenError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

/// Constant-time comparison of a presented token with the expected one.
pub fn matches(presented: &str, expected: &str) -> bool {
    presented.as_bytes().ct_eq(expected.as_bytes()).into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_is_created_once_private_and_then_reused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = token_path(dir.path());
        let first = load_or_create(&path).expect("create");
        assert_eq!(first.len(), 64);
        let mode = std::fs::metadata(&path).expect("meta").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(load_or_create(&path).expect("reuse"), first);
        assert!(matches(&first, &first));
        assert!(!matches("wrong", &first));
    }

    #[test]
    fn missing_token_says_how_to_get_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read(&token_path(dir.path())).expect_err("missing");
        assert!(err.to_string().contains("cutover serve"), "{err}");
    }
}
