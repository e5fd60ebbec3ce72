//! `cutover backup create|list|verify|restore|prune|keygen`: encrypted
//! backups of a `[database.NAME]`, or with `--state` of the state store
//! itself (`[state] backup`, same format, same keys machinery; a restore
//! refuses while the daemon runs and moves a damaged store aside first).
//! Text for people, `--json` for scripts.
//! Identities come from `--identity FILE` or `CUTOVER_BACKUP_IDENTITY` and
//! are never printed, logged or stored.

use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::output;
use crate::config::{Config, DatabaseConfig, defaults};
use crate::db::backup::{BackupError, Backups, Manifest, Trigger, keys, sign};
use crate::exit::{self, CliError};
use crate::store::{Store, StoreError, StoreFile};

/// What `cutover backup` works on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Target {
    /// `--db NAME` (or the only database) of `-e ENV` (see
    /// `Config::database_for`).
    Database {
        /// `-e ENV`.
        environment: Option<String>,
        /// `--db NAME`.
        name: Option<String>,
    },
    /// `--state`: the state store.
    State,
}

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
        /// Verify it even if no key of `backup.signers` signed it.
        #[arg(long)]
        allow_unsigned: bool,
    },
    /// Restore a backup into the database (or `--to URL`). Refuses to
    /// replace a database with tables unless `--force`, and then takes a
    /// safety backup of it first.
    Restore {
        /// The backup (see `list`).
        id: String,
        /// Restore here instead of the configured database. Never put a
        /// password in it: set CUTOVER_RESTORE_PASSWORD instead.
        #[arg(long, value_name = "URL")]
        to: Option<String>,
        /// Replace a live database.
        #[arg(long)]
        force: bool,
        /// Restore it even if no key of `backup.signers` signed it (a backup
        /// you did not make could hold anything: for PostgreSQL, SQL that
        /// `pg_restore` runs).
        #[arg(long)]
        allow_unsigned: bool,
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
    /// Write a new age identity (mode 0600) and print its recipient; with
    /// `--signing`, a backup signing key (Ed25519) and its public key.
    Keygen {
        /// Where to write the key (never overwritten).
        #[arg(long, short = 'o', value_name = "FILE")]
        output: PathBuf,
        /// A signing key for backups instead: keep it on the deploy host,
        /// point CUTOVER_BACKUP_SIGNING_KEY at it, and list the printed
        /// public key in `backup.signers`.
        #[arg(long)]
        signing: bool,
    },
}

/// Runs one `cutover backup` command.
pub async fn run(
    path: &Path,
    target: Target,
    command: BackupCommand,
    json: bool,
) -> Result<(), CliError> {
    if let BackupCommand::Keygen {
        output: file,
        signing: true,
    } = &command
    {
        let public = sign::keygen(file).map_err(cli_error)?;
        if json {
            output::print_json(&serde_json::json!({
                "signing_key_file": file,
                "public_key": public,
            }))?;
        } else {
            eprintln!(
                "wrote a new backup signing key to {} (mode 0600): keep it on the deploy host, set {}={} where backups are made, and list the public key in backup.signers = [\"…\"]",
                file.display(),
                sign::SIGNING_KEY_ENV,
                file.display()
            );
            println!("{public}");
        }
        return Ok(());
    }
    if let BackupCommand::Keygen { output: file, .. } = &command {
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
    let state_database;
    let (name, database) = match &target {
        Target::Database { environment, name } => {
            let (_, name, database) = config
                .database_for(environment.as_deref(), name.as_deref())
                .map_err(|e| CliError::new(exit::USAGE, output::render_config_error(e)))?;
            (name, database)
        }
        Target::State => {
            state_database = state_as_database(&config)?;
            (defaults::STATE_BACKUP_NAME, &state_database)
        }
    };
    let backups = Backups::new(name, database).map_err(cli_error)?;
    if let (Target::State, BackupCommand::Restore { to: None, .. }) = (&target, &command) {
        prepare_state_restore(&config).await?;
    }
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
        BackupCommand::Verify {
            id,
            identity,
            allow_unsigned,
        } => {
            let identities = identities(identity.as_deref())?;
            let manifest = backups
                .allowing_unsigned(allow_unsigned)
                .verify(&id, &identities)
                .await
                .map_err(cli_error)?;
            warn_unsigned(&manifest, allow_unsigned);
            print_one(&manifest, json)
        }
        BackupCommand::Restore {
            id,
            to,
            force,
            identity,
            allow_unsigned,
        } => {
            let backups = backups.allowing_unsigned(allow_unsigned);
            let identities = identities(identity.as_deref())?;
            // Into the database the config uses: hold its environments'
            // deployment locks and its migrator lock meanwhile.
            let live = matches!(target, Target::Database { .. }) && to.is_none();
            let guard = match live {
                true => Some(super::restore_guard::take(&config, name, database, &id).await?),
                false => None,
            };
            let to = to.map(|url| restore_target(&url)).transpose()?;
            let restored = backups
                .restore(&id, to.as_deref(), force, &identities)
                .await
                .map_err(cli_error);
            if let Some(guard) = guard {
                guard.release().await;
            }
            let restored = restored?;
            let differences = match live {
                true => super::restore_guard::compare_migrations(name, database).await,
                false => Vec::new(),
            };
            for line in &differences {
                eprintln!("note: {line}");
            }
            let entry = super::audit::local_entry("backup_restore")
                .target(&restored.id)
                .details(serde_json::json!({
                    "database": name,
                    "into": restored.target,
                    "safety_backup": restored.safety_backup,
                }));
            super::audit::record_local(&config, entry).await;
            if json {
                output::print_json(&restored)
            } else {
                if let Some(safety) = &restored.safety_backup {
                    println!("safety backup of the replaced database: {safety}");
                }
                println!("restored {} into {}", restored.id, restored.target);
                if target == Target::State {
                    println!("start the daemon again with `cutover serve`");
                }
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

/// The state store, as the database the backup machinery works on.
fn state_as_database(config: &Config) -> Result<DatabaseConfig, CliError> {
    let Some(backup) = config.state.backup.clone() else {
        return Err(CliError::new(
            exit::USAGE,
            format!(
                "the state store has no backups configured: add `[state] backup = {{ recipients = [\"age1…\"] }}` \
                 to {} (make a key with `cutover backup keygen`); see docs/operations.md",
                config.path.display()
            ),
        ));
    };
    Ok(DatabaseConfig {
        url: config.state.url.clone(),
        migrations: PathBuf::new(),
        lock_timeout: std::time::Duration::from_secs(5),
        statement_timeout: std::time::Duration::from_secs(60),
        lock_wait: std::time::Duration::from_secs(5),
        retries: 0,
        backup: Some(backup),
        shared: false,
        lint: Default::default(),
    })
}

/// Before a restore of the state store: refuses while a daemon answers on
/// the API's address, moves a damaged store aside, and the journal of a
/// lost one, so the backup is restored into a clean file.
async fn prepare_state_restore(config: &Config) -> Result<(), CliError> {
    let listen = config.server.listen;
    let connect = tokio::net::TcpStream::connect(listen);
    if let Ok(Ok(_)) = tokio::time::timeout(std::time::Duration::from_secs(1), connect).await {
        return Err(CliError::new(
            exit::USAGE,
            format!(
                "refusing to restore the state store while the daemon runs (its API answers on {listen}): stop \
                 `cutover serve` first, then restore"
            ),
        ));
    }
    let failed = |e: std::io::Error| {
        CliError::new(
            exit::FAILURE,
            format!("cannot move the state store aside before restoring it: {e}"),
        )
    };
    let file = Store::inspect(&config.state.url)
        .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
    match &file {
        // A sound store is replaced only with --force (after a safety
        // backup), one a newer cutover wrote likewise; a damaged one goes.
        StoreFile::Present(path) => {
            if let Err(StoreError::Damaged { detail, .. }) = Store::check(&config.state.url).await {
                for moved in Store::move_aside(path).map_err(failed)? {
                    eprintln!(
                        "the damaged state store ({detail}) was moved aside to {}",
                        moved.display()
                    );
                }
            }
        }
        StoreFile::Missing(path) | StoreFile::Empty(path) => {
            Store::set_aside_journal(path).map_err(failed)?;
        }
        // A database on a server: `pg_restore` replaces it in place.
        StoreFile::InMemory | StoreFile::Server(_) => {}
    }
    Ok(())
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

/// The environment variable with the password of `restore --to`'s URL.
const RESTORE_PASSWORD_ENV: &str = "CUTOVER_RESTORE_PASSWORD";

/// `--to URL`, refused with a password in it (the command line is visible
/// to every user of the host), and given `CUTOVER_RESTORE_PASSWORD` when set.
fn restore_target(to: &str) -> Result<String, CliError> {
    let Ok(mut url) = url::Url::parse(to) else {
        return Ok(to.to_owned());
    };
    if url.password().is_some() {
        return Err(CliError::new(
            exit::USAGE,
            format!(
                "--to has a password in it, which every user of this host can read in the process list: write the URL without it ({}) and set {RESTORE_PASSWORD_ENV}",
                crate::config::redact_url(to)
            ),
        ));
    }
    match std::env::var(RESTORE_PASSWORD_ENV) {
        Ok(password) if !password.is_empty() => {
            url.set_password(Some(&password)).map_err(|()| {
                CliError::new(
                    exit::USAGE,
                    format!("--to {to}: this URL cannot take a password"),
                )
            })?;
            Ok(url.to_string())
        }
        _ => Ok(to.to_owned()),
    }
}

/// Says so when a backup taken with `--allow-unsigned` was not signed by
/// a trusted key.
fn warn_unsigned(manifest: &Manifest, allowed: bool) {
    if allowed && manifest.signature.is_none() {
        eprintln!(
            "warning: backup {} is not signed; it was used because of --allow-unsigned",
            manifest.id
        );
    }
}

/// The exit code of a backup error.
pub fn cli_error(error: BackupError) -> CliError {
    let code = match &error {
        BackupError::NotConfigured(_) | BackupError::Keys(_) | BackupError::NotFound(_) => {
            exit::USAGE
        }
        BackupError::Refused(_) | BackupError::Mismatch(_) => exit::USAGE,
        BackupError::Checksum { .. }
        | BackupError::Verify(_)
        | BackupError::Decrypt(_)
        | BackupError::Untrusted { .. }
        | BackupError::Unsigned { .. } => exit::BACKUP_INVALID,
        _ => exit::FAILURE,
    };
    CliError::new(code, error.to_string())
}
