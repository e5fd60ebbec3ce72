//! `cutover backup create|list|verify|restore|prune|keygen`: encrypted
//! backups of a `[database.NAME]`. Text for people, `--json` for scripts.
//! Identities come from `--identity FILE` or `CUTOVER_BACKUP_IDENTITY` and
//! are never printed, logged or stored.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::output;
use crate::db::backup::{BackupError, Backups, Manifest, Trigger, keys};
use crate::exit::{self, CliError};

/// What `cutover backup` does.
#[derive(Debug, Subcommand)]
pub enum BackupCommand {
    /// Take a backup now (and verify it when `verify = true`).
    Create,
    /// The backups of the database, oldest first.
    List,
    /// Decrypt a backup, check its sha256, restore it into a scratch
    /// database and check it; the result goes into its manifest.
    Verify {
        /// The backup (see `list`).
        id: String,
        /// An age identity file (default: $CUTOVER_BACKUP_IDENTITY).
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
    },
    /// Restore a backup into the database (or `--to URL`). Refuses to
    /// replace a database with tables unless `--force`, and then takes a
    /// safety backup of it first.
    Restore {
        /// The backup (see `list`).
        id: String,
        /// Restore here instead of the configured database.
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// Replace a live database.
        #[arg(long)]
        force: bool,
        /// An age identity file (default: $CUTOVER_BACKUP_IDENTITY).
        #[arg(long, value_name = "FILE")]
        identity: Option<PathBuf>,
    },
    /// Delete backups that `keep_last` and `keep_within` do not keep; the
    /// newest verified backup is always kept.
    Prune {
        /// Only say what would be deleted.
        #[arg(long)]
        dry_run: bool,
    },
    /// Write a new age identity (mode 0600) and print its recipient.
    Keygen {
        /// Where to write the identity (never overwritten).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: PathBuf,
    },
}

/// Runs one `cutover backup` command.
pub async fn run(
    path: &Path,
    db: Option<&str>,
    command: BackupCommand,
    json: bool,
) -> Result<(), CliError> {
    if let BackupCommand::Keygen { output: file } = &command {
        let recipient = keys::keygen(file).map_err(cli_error)?;
        if json {
            output::print_json(&serde_json::json!({
                "identity_file": file,
                "recipient": recipient,
            }))?;
        } else {
            eprintln!(
                "wrote a new identity to {} (mode 0600): keep it off the deploy host",
                file.display()
            );
            println!("{recipient}");
        }
        return Ok(());
    }
    let config = output::load_config(path)?;
    let (name, database) = config
        .database(db)
        .map_err(|e| CliError::new(exit::USAGE, output::render_config_error(e)))?;
    let backups = Backups::new(name, database).map_err(cli_error)?;
    match command {
        BackupCommand::Create => {
            let manifest = backups.create(Trigger::manual()).await.map_err(cli_error)?;
            print_one(&manifest, json)
        }
        BackupCommand::List => {
            let all = backups.list().map_err(cli_error)?;
            if json {
                output::print_json(&all)
            } else {
                for manifest in &all {
                    println!(
                        "{}  {:>12} bytes  {:<14}  {}",
                        manifest.id,
                        manifest.size,
                        manifest.trigger,
                        status(manifest)
                    );
                }
                if all.is_empty() {
                    println!("no backups of `{name}` in {}", backups.dir().display());
                }
                Ok(())
            }
        }
        BackupCommand::Verify { id, identity } => {
            let identities = identities(identity.as_deref())?;
            let manifest = backups.verify(&id, &identities).await.map_err(cli_error)?;
            print_one(&manifest, json)
        }
        BackupCommand::Restore {
            id,
            to,
            force,
            identity,
        } => {
            let identities = identities(identity.as_deref())?;
            let restored = backups
                .restore(&id, to.as_deref(), force, &identities)
                .await
                .map_err(cli_error)?;
            if json {
                output::print_json(&restored)
            } else {
                if let Some(safety) = &restored.safety_backup {
                    println!("safety backup of the replaced database: {safety}");
                }
                println!("restored {} into {}", restored.id, restored.target);
                Ok(())
            }
        }
        BackupCommand::Prune { dry_run } => {
            let deleted = backups.prune(dry_run).map_err(cli_error)?;
            if json {
                output::print_json(&serde_json::json!({ "deleted": deleted, "dry_run": dry_run }))
            } else {
                let verb = if dry_run { "would delete" } else { "deleted" };
                for id in &deleted {
                    println!("{verb} {id}");
                }
                println!("{verb} {} backup(s)", deleted.len());
                Ok(())
            }
        }
        BackupCommand::Keygen { .. } => Ok(()),
    }
}

fn identities(flag: Option<&Path>) -> Result<Vec<keys::Identity>, CliError> {
    keys::identity_path(flag)
        .and_then(|path| keys::identities(&path))
        .map_err(cli_error)
}

fn status(manifest: &Manifest) -> String {
    match (&manifest.verified_at, &manifest.verification) {
        (_, Some(v)) if !v.ok => "verify FAILED".into(),
        (Some(at), _) => format!("verified {at}"),
        _ => "not verified".into(),
    }
}

fn print_one(manifest: &Manifest, json: bool) -> Result<(), CliError> {
    if json {
        output::print_json(manifest)
    } else {
        println!(
            "{}  {} bytes  sha256 {}  {}",
            manifest.id,
            manifest.size,
            manifest.sha256,
            status(manifest)
        );
        Ok(())
    }
}

/// The exit code of a backup error.
pub fn cli_error(error: BackupError) -> CliError {
    let code = match &error {
        BackupError::NotConfigured(_) | BackupError::Keys(_) | BackupError::NotFound(_) => {
            exit::USAGE
        }
        BackupError::Refused(_) | BackupError::Mismatch(_) => exit::USAGE,
        BackupError::Checksum { .. } | BackupError::Verify(_) | BackupError::Decrypt(_) => {
            exit::BACKUP_INVALID
        }
        _ => exit::FAILURE,
    };
    CliError::new(code, error.to_string())
}
