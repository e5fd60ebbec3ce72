//! Exit codes, in one place (ripgrep style): every error the CLI can end with
//! maps to exactly one code, documented in the README.

use std::process::ExitCode;

/// The command did what was asked.
pub const OK: u8 = 0;
/// Something failed that has no more specific code.
pub const FAILURE: u8 = 1;
/// Bad command line or bad config (nothing was changed). Also a migration
/// file that cannot be read, and a `migrate down` or `baseline` refused
/// before changing anything.
pub const USAGE: u8 = 2;
/// The deployment (or rollback) failed; the previous release still serves.
pub const DEPLOY_FAILED: u8 = 3;
/// Another deployment holds the environment's lock, or another migrator
/// the database's migrator lock.
pub const LOCKED: u8 = 4;
/// The daemon could not be reached.
pub const UNREACHABLE: u8 = 5;
/// An applied migration's file changed or disappeared (migration drift).
pub const DRIFT: u8 = 6;
/// A backup failed verification: checksum mismatch, cannot be decrypted
/// with the identity given, or its restored copy is not sound.
pub const BACKUP_INVALID: u8 = 7;

/// An error that ends the CLI, with its exit code.
#[derive(Debug)]
pub struct CliError {
    /// Exit code (one of the constants above).
    pub code: u8,
    /// What to print on stderr (already rendered).
    pub message: String,
}

impl CliError {
    /// An error with a code and a message.
    pub fn new(code: u8, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: message.into(),
        }
    }

    /// The process exit code.
    pub fn exit_code(&self) -> ExitCode {
        ExitCode::from(self.code)
    }
}

impl std::fmt::Display for CliError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl From<crate::api::client::ClientError> for CliError {
    fn from(e: crate::api::client::ClientError) -> Self {
        use crate::api::client::ClientError;
        let code = match &e {
            ClientError::Unreachable { .. } => UNREACHABLE,
            ClientError::Api { code, .. } if code == "locked" => LOCKED,
            ClientError::Api { code, .. } if code == "preflight_failed" => DEPLOY_FAILED,
            ClientError::Api { code, .. } if code == "bad_request" || code == "refused" => USAGE,
            _ => FAILURE,
        };
        CliError::new(code, e.to_string())
    }
}

impl From<crate::api::token::TokenError> for CliError {
    fn from(e: crate::api::token::TokenError) -> Self {
        CliError::new(FAILURE, e.to_string())
    }
}
