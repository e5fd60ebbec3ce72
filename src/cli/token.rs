//! `cutover token create|list|revoke`: named API tokens, through the API
//! (admin only). `create` prints the new token once — on stdout alone, or
//! in its `--json` answer — and never again: the daemon keeps only its hash.

use std::path::Path;

use clap::{Subcommand, ValueEnum};

use super::output;
use crate::api::wire::{TokenCreateRequest, TokenInfo};
use crate::exit::CliError;
use crate::label::printable;

/// What `cutover token` does.
#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Make a token named NAME with a role; prints the token once (the only
    /// place cutover ever shows it: store it now, e.g. in a CI secret).
    Create {
        /// Its name, which the history and the audit log show as "who":
        /// 1 to 64 letters, digits, '.', '_' or '-'; never reused.
        #[arg(value_name = "NAME")]
        name: String,
        /// What it may do.
        #[arg(long, value_enum)]
        role: RoleArg,
        /// How long it works, e.g. 90d, 12h (default: until revoked).
        #[arg(long, value_name = "DURATION")]
        expires: Option<String>,
    },
    /// The named tokens: name, role, state, created, expires, last used
    /// (never the token).
    List,
    /// Revoke the token NAME: it is refused from now on.
    Revoke {
        /// The token's name.
        #[arg(value_name = "NAME")]
        name: String,
    },
}

/// `--role`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum RoleArg {
    /// Read everything.
    Viewer,
    /// Read; deploy, roll back, pause, resume, promote, abort, switch.
    Deployer,
    /// Read; approve and reject.
    Approver,
    /// Everything, plus tokens, locks, the daemon, restores, overrides.
    Admin,
}

impl RoleArg {
    fn as_str(self) -> &'static str {
        match self {
            RoleArg::Viewer => "viewer",
            RoleArg::Deployer => "deployer",
            RoleArg::Approver => "approver",
            RoleArg::Admin => "admin",
        }
    }
}

/// Runs one `cutover token` command.
pub async fn run(path: &Path, command: TokenCommand, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let client = output::client(&config)?;
    match command {
        TokenCommand::Create {
            name,
            role,
            expires,
        } => {
            let created = client
                .token_create(&TokenCreateRequest {
                    name,
                    role: role.as_str().to_owned(),
                    expires_in: expires,
                })
                .await?;
            if json {
                // The one JSON answer of cutover that holds a secret.
                return output::print_json(&created);
            }
            eprintln!(
                "token {:?} (role {}{}) — shown once, store it now:",
                created.info.name,
                created.info.role,
                created
                    .info
                    .expires_at
                    .map(|e| format!(", expires {e:.0}"))
                    .unwrap_or_default()
            );
            println!("{}", created.token);
            Ok(())
        }
        TokenCommand::List => {
            let tokens = client.tokens().await?;
            if json {
                return output::print_json(&tokens);
            }
            print_list(&tokens);
            Ok(())
        }
        TokenCommand::Revoke { name } => {
            let revoked = client.token_revoke(&name).await?;
            if json {
                return output::print_json(&revoked);
            }
            println!("revoked token {:?}", revoked.name);
            Ok(())
        }
    }
}

fn print_list(tokens: &[TokenInfo]) {
    if tokens.is_empty() {
        println!(
            "no named tokens (the token file .cutover/api.token is the admin); make one with \
             `cutover token create NAME --role ROLE`"
        );
        return;
    }
    println!(
        "{:<24} {:<9} {:<8} {:<20} {:<20} last used",
        "NAME", "ROLE", "STATE", "CREATED", "EXPIRES"
    );
    let time = |t: Option<jiff::Timestamp>| t.map_or("-".to_owned(), |t| format!("{t:.0}"));
    for t in tokens {
        println!(
            "{:<24} {:<9} {:<8} {:<20} {:<20} {}",
            printable(&t.name),
            t.role,
            t.state,
            time(Some(t.created_at)),
            time(t.expires_at),
            time(t.last_used_at)
        );
    }
}
