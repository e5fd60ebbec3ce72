//! The API's bearer token: made by the daemon on first start, stored beside the
//! state (`.cutover/api.token`, mode 0600), read by the CLI from the same place
//! or from `CUTOVER_TOKEN`. It is the bootstrap admin credential: the caller
//! named `admin` with the admin role (`crate::identity`); named tokens with
//! other roles are made with `cutover token create` (`tokens.rs`, checked by
//! `auth.rs`). Comparison with this token is constant-time.
//!
//! The daemon refuses to start on a token file it cannot trust: empty or
//! shorter than 32 bytes (an empty token would let an empty `Bearer` in), a
//! symbolic link, or readable by anyone but its owner. A new token is written
//! to a temporary file (0600) and renamed into place, so no reader ever sees
//! a half-written one.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use subtle::ConstantTimeEq;

/// Environment variable that overrides the token file for the CLI.
pub const TOKEN_ENV: &str = "CUTOVER_TOKEN";
/// Bytes of randomness in a new token.
const TOKEN_BYTES: usize = 32;
/// Shortest token the daemon accepts.
const TOKEN_MIN_LEN: usize = 32;

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
    /// The file is there but cannot be trusted; says how to fix it.
    #[error("API token file {path}: {why}")]
    Untrusted {
        /// The file.
        path: PathBuf,
        /// What is wrong and what to do.
        why: String,
    },
}

/// Where the token lives for a config whose directory is `base_dir`.
pub fn token_path(base_dir: &Path) -> PathBuf {
    base_dir.join(".cutover").join("api.token")
}

/// Reads the token, or makes a new one (owner-only file) if there is none;
/// for the daemon, which refuses a file it cannot trust (see the module doc).
pub fn load_or_create(path: &Path) -> Result<String, TokenError> {
    match std::fs::symlink_metadata(path) {
        Ok(meta) => {
            check_trusted(path, &meta)?;
            let token = read(path)?;
            if token.len() < TOKEN_MIN_LEN {
                return Err(untrusted(
                    path,
                    format!(
                        "the token is {} bytes, shorter than {TOKEN_MIN_LEN}; remove the file and \
                         start the daemon again to make a new one",
                        token.len()
                    ),
                ));
            }
            Ok(token)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => create(path),
        Err(source) => Err(TokenError::Io {
            path: path.to_owned(),
            source,
        }),
    }
}

fn untrusted(path: &Path, why: String) -> TokenError {
    TokenError::Untrusted {
        path: path.to_owned(),
        why,
    }
}

/// A regular file, not a link, that only its owner may read or write.
fn check_trusted(path: &Path, meta: &std::fs::Metadata) -> Result<(), TokenError> {
    if meta.file_type().is_symlink() {
        return Err(untrusted(
            path,
            "is a symbolic link; replace it with the token file itself (mode 0600)".into(),
        ));
    }
    if !meta.is_file() {
        return Err(untrusted(path, "is not a regular file".into()));
    }
    let mode = meta.permissions().mode() & 0o777;
    if mode & 0o077 != 0 {
        return Err(untrusted(
            path,
            format!(
                "has mode {mode:04o}, readable by others; run `chmod 600 {}`",
                path.display()
            ),
        ));
    }
    Ok(())
}

/// Writes a new random token: a temporary owner-only file, synced, renamed.
fn create(path: &Path) -> Result<String, TokenError> {
    let mut raw = [0u8; TOKEN_BYTES];
    getrandom::fill(&mut raw).map_err(|e| TokenError::Random(e.to_string()))?;
    let token: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    let io = |source| TokenError::Io {
        path: path.to_owned(),
        source,
    };
    let dir = path.parent().unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir).map_err(io)?;
    let temporary = dir.join(format!(".api.token.{}.tmp", std::process::id()));
    let _ = std::fs::remove_file(&temporary);
    let written = (|| {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&temporary)?;
        file.write_all(token.as_bytes())?;
        file.sync_all()?;
        std::fs::rename(&temporary, path)
    })();
    if let Err(e) = written {
        let _ = std::fs::remove_file(&temporary);
        return Err(io(e));
    }
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
        Ok(t) => Ok(t.trim().to_owned()),
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

    fn refused(path: &Path) -> String {
        load_or_create(path)
            .expect_err("the daemon must refuse this token file")
            .to_string()
    }

    #[test]
    fn an_empty_short_loose_or_linked_token_file_is_refused() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = token_path(dir.path());
        std::fs::create_dir_all(path.parent().expect("dir")).expect("dir");
        let write = |text: &str, mode: u32| {
            std::fs::write(&path, text).expect("write");
            std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode)).expect("chmod");
        };
        write("", 0o600);
        assert!(refused(&path).contains("0 bytes"));
        write("short", 0o600);
        assert!(refused(&path).contains("5 bytes"));
        write(&"a".repeat(64), 0o644);
        assert!(refused(&path).contains("chmod 600"));
        write(&"a".repeat(64), 0o600);
        assert_eq!(load_or_create(&path).expect("a good file"), "a".repeat(64));
        let target = dir.path().join("elsewhere");
        std::fs::rename(&path, &target).expect("move");
        std::os::unix::fs::symlink(&target, &path).expect("link");
        assert!(refused(&path).contains("symbolic link"));
    }

    #[test]
    fn a_new_token_leaves_no_temporary_file_behind() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = token_path(dir.path());
        load_or_create(&path).expect("create");
        let names: Vec<String> = std::fs::read_dir(path.parent().expect("dir"))
            .expect("list")
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["api.token"]);
    }

    #[test]
    fn missing_token_says_how_to_get_one() {
        let dir = tempfile::tempdir().expect("tempdir");
        let err = read(&token_path(dir.path())).expect_err("missing");
        assert!(err.to_string().contains("cutover serve"), "{err}");
    }
}
