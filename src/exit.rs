//! Exit codes, in one place (ripgrep style): every error the CLI can end with
//! maps to exactly one code, documented in the README.

use std::process::ExitCode;

use crate::api::wire::ErrorCode;

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
/// Another daemon serves the same state store (`cutover serve` refused to
/// start; the message names its pid and start time).
pub const ALREADY_RUNNING: u8 = 8;
/// The environment promotes from another one, and the release has not run
/// there as it must (`promote_from`, `soak`); nothing was changed.
pub const NOT_PROMOTED: u8 = 9;
/// The daemon refused the API token: none, wrong, revoked or expired (401
/// `unauthorized`), or its role may not do this (403 `forbidden`).
pub const DENIED: u8 = 10;
/// `cutover audit verify`: the audit log's hash chain is broken (the
/// message names the first row that does not fit).
pub const AUDIT_BROKEN: u8 = 11;
/// `cutover assess --fail-under LEVEL`: the repository's overall maturity
/// level is below LEVEL (the report is printed all the same).
pub const BELOW_LEVEL: u8 = 12;
/// The daemon asked follows another daemon of its PostgreSQL store and
/// changes nothing (`not_leader`): the message names the leader; ask it
/// (`--host NAME` / `CUTOVER_HOST`, docs/cluster.md).
pub const NOT_LEADER: u8 = 13;

/// The exit code for an error the daemon answered with.
pub fn for_error_code(code: ErrorCode) -> u8 {
    match code {
        ErrorCode::BadRequest
        | ErrorCode::Refused
        | ErrorCode::PayloadTooLarge
        | ErrorCode::UnsupportedMediaType => USAGE,
        ErrorCode::PreflightFailed => DEPLOY_FAILED,
        ErrorCode::Locked | ErrorCode::OutsideWindow => LOCKED,
        ErrorCode::PromotionRequired => NOT_PROMOTED,
        ErrorCode::NotLeader => NOT_LEADER,
        ErrorCode::Unauthorized | ErrorCode::Forbidden => DENIED,
        ErrorCode::NotFound
        | ErrorCode::MethodNotAllowed
        | ErrorCode::Store
        | ErrorCode::Internal
        | ErrorCode::Unknown => FAILURE,
    }
}

/// An error that ends the CLI, with its exit code.
#[derive(Debug)]
pub struct CliError {
    /// Exit code (one of the constants above).
    pub code: u8,
    /// What to print on stderr (already rendered).
    pub message: String,
    /// The daemon's error code, when the daemon answered with the error.
    pub api_code: Option<ErrorCode>,
}

impl CliError {
    /// An error with a code and a message.
    pub fn new(code: u8, message: impl Into<String>) -> CliError {
        CliError {
            code,
            message: message.into(),
            api_code: None,
        }
    }

    /// The `error` of the JSON a `--json` command prints on stdout when it
    /// fails: the daemon's [`ErrorCode`] when it answered with the error,
    /// else the name of the exit code (`usage`, `deploy_failed`, `locked`,
    /// `unreachable`, `drift`, `backup_invalid`, `already_running`,
    /// `not_promoted`, `denied`, `audit_broken`, `failure`).
    pub fn error_name(&self) -> &'static str {
        if let Some(code) = self.api_code {
            return code.as_str();
        }
        match self.code {
            USAGE => "usage",
            DEPLOY_FAILED => "deploy_failed",
            LOCKED => "locked",
            UNREACHABLE => "unreachable",
            DRIFT => "drift",
            BACKUP_INVALID => "backup_invalid",
            ALREADY_RUNNING => "already_running",
            NOT_PROMOTED => "not_promoted",
            DENIED => "denied",
            AUDIT_BROKEN => "audit_broken",
            NOT_LEADER => "not_leader",
            _ => "failure",
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
        let (code, api_code) = match &e {
            ClientError::Unreachable { .. } => (UNREACHABLE, None),
            ClientError::Api { code, .. } => (for_error_code(*code), Some(*code)),
            ClientError::Protocol(_) => (FAILURE, None),
        };
        CliError {
            api_code,
            ..CliError::new(code, e.to_string())
        }
    }
}

impl From<crate::api::token::TokenError> for CliError {
    fn from(e: crate::api::token::TokenError) -> Self {
        CliError::new(FAILURE, e.to_string())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::client::ClientError;

    #[test]
    fn each_error_code_has_one_exit_code() {
        let table: Vec<(ErrorCode, u8)> = ErrorCode::ALL
            .iter()
            .map(|&c| (c, for_error_code(c)))
            .collect();
        assert_eq!(
            table,
            [
                (ErrorCode::BadRequest, USAGE),
                (ErrorCode::Unauthorized, DENIED),
                (ErrorCode::Forbidden, DENIED),
                (ErrorCode::NotFound, FAILURE),
                (ErrorCode::MethodNotAllowed, FAILURE),
                (ErrorCode::Locked, LOCKED),
                (ErrorCode::Refused, USAGE),
                (ErrorCode::PreflightFailed, DEPLOY_FAILED),
                (ErrorCode::PayloadTooLarge, USAGE),
                (ErrorCode::UnsupportedMediaType, USAGE),
                (ErrorCode::PromotionRequired, NOT_PROMOTED),
                (ErrorCode::OutsideWindow, LOCKED),
                (ErrorCode::NotLeader, NOT_LEADER),
                (ErrorCode::Store, FAILURE),
                (ErrorCode::Internal, FAILURE),
                (ErrorCode::Unknown, FAILURE),
            ]
        );
    }

    #[test]
    fn exit_codes_are_the_documented_numbers() {
        assert_eq!(
            [
                OK,
                FAILURE,
                USAGE,
                DEPLOY_FAILED,
                LOCKED,
                UNREACHABLE,
                DRIFT,
                BACKUP_INVALID,
                ALREADY_RUNNING,
                NOT_PROMOTED,
                DENIED,
                AUDIT_BROKEN,
                BELOW_LEVEL,
                NOT_LEADER
            ],
            [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13]
        );
    }

    #[test]
    fn a_client_error_ends_with_its_code_and_message() {
        let api = CliError::from(ClientError::Api {
            status: 409,
            code: ErrorCode::Locked,
            message: "environment \"production\" is locked".into(),
        });
        assert_eq!(api.code, LOCKED);
        assert_eq!(api.message, "environment \"production\" is locked");
        let unreachable = CliError::from(ClientError::Unreachable {
            addr: ([127, 0, 0, 1], 7070).into(),
            reason: "connection refused".into(),
        });
        assert_eq!(unreachable.code, UNREACHABLE);
        let protocol = CliError::from(ClientError::Protocol("not JSON".into()));
        assert_eq!(protocol.code, FAILURE);
        assert_eq!(
            (
                api.error_name(),
                unreachable.error_name(),
                protocol.error_name()
            ),
            ("locked", "unreachable", "failure")
        );
    }

    #[test]
    fn a_cli_side_error_is_named_after_its_exit_code() {
        let names: Vec<&str> = [
            USAGE,
            DEPLOY_FAILED,
            LOCKED,
            UNREACHABLE,
            DRIFT,
            BACKUP_INVALID,
            DENIED,
            AUDIT_BROKEN,
            FAILURE,
        ]
        .into_iter()
        .map(|code| CliError::new(code, "x").error_name())
        .collect();
        assert_eq!(
            names,
            [
                "usage",
                "deploy_failed",
                "locked",
                "unreachable",
                "drift",
                "backup_invalid",
                "denied",
                "audit_broken",
                "failure"
            ]
        );
        let refused = CliError::from(ClientError::Api {
            status: 400,
            code: ErrorCode::BadRequest,
            message: "invalid version".into(),
        });
        assert_eq!((refused.code, refused.error_name()), (USAGE, "bad_request"));
    }
}
