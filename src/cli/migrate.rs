//! `cutover migrate status|plan|up|down|lint|baseline`: the schema
//! migrations of a `[database.NAME]`, in the version of environment `-e`
//! (its own `url`). Text for people, `--json` for scripts;
//! exit codes in `crate::exit` (drift has its own).

use std::path::Path;

use clap::{Subcommand, ValueEnum};
use serde::Serialize;

use super::output;
use crate::db::migrate::{
    self, Actor, Direction, Done, Event, MigrateError, Migrator, Phase, Status,
};
use crate::exit::{self, CliError};

/// What `cutover migrate` does.
#[derive(Debug, Subcommand)]
pub enum MigrateCommand {
    /// Applied and pending migrations, and drift (an applied migration whose
    /// file changed or disappeared: exit code 6).
    Status,
    /// What `up` would run, in order, with phases. Changes nothing.
    Plan {
        /// Only migrations up to this version.
        #[arg(long, value_name = "VERSION")]
        to: Option<u64>,
        /// Only migrations of this phase, stopping at the first of the other.
        #[arg(long, value_enum)]
        phase: Option<PhaseArg>,
    },
    /// Apply pending migrations, in order, each in its own transaction.
    Up {
        /// Only migrations up to this version.
        #[arg(long, value_name = "VERSION")]
        to: Option<u64>,
        /// Only migrations of this phase, stopping at the first of the other.
        #[arg(long, value_enum)]
        phase: Option<PhaseArg>,
        /// The release this is for, recorded with each migration.
        #[arg(long, value_name = "VERSION")]
        release: Option<String>,
    },
    /// Revert applied migrations above VERSION, newest first (0: all).
    /// Refuses, changing nothing, when one has no down part.
    Down {
        /// Keep migrations up to this version.
        #[arg(long, value_name = "VERSION")]
        to: u64,
    },
    /// Dangerous PostgreSQL operations in the migrations, with file and line.
    /// Exits 1 when it finds any.
    Lint,
    /// Re-record the checksum of applied migrations whose file you edited
    /// on purpose (a comment, formatting), so that drift stops blocking;
    /// like Flyway's `repair`. Recorded in the audit log. Refuses when a
    /// drifted migration's file is gone.
    Repair {
        /// Only this migration's version (default: every drifted one).
        #[arg(value_name = "VERSION")]
        only: Option<u64>,
    },
    /// Record every migration up to VERSION as applied without running it:
    /// adopt a database that was migrated by hand.
    Baseline {
        /// The last migration the database already has.
        #[arg(value_name = "VERSION")]
        up_to: u64,
    },
}

/// `--phase`.
#[derive(Debug, Clone, Copy, ValueEnum)]
pub enum PhaseArg {
    /// Migrations that only add: before the new release takes traffic.
    Expand,
    /// Migrations that remove what only the old release used: after.
    Contract,
}

impl From<PhaseArg> for Phase {
    fn from(phase: PhaseArg) -> Phase {
        match phase {
            PhaseArg::Expand => Phase::Expand,
            PhaseArg::Contract => Phase::Contract,
        }
    }
}

/// Runs one `cutover migrate` command on database `db` of environment
/// `environment` (see `Config::database_for`) of the config at `path`.
pub async fn run(
    path: &Path,
    environment: Option<&str>,
    db: Option<&str>,
    command: MigrateCommand,
    json: bool,
) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let (_, name, database) = config
        .database_for(environment, db)
        .map_err(|e| CliError::new(exit::USAGE, output::render_config_error(e)))?;
    let migrator = Migrator::new(name, database).map_err(cli_error)?;
    let audited = Audited {
        config: &config,
        database: name,
    };
    let actor = Actor {
        applied_by: output::requested_by(),
        release: None,
    };
    match command {
        MigrateCommand::Status => status(&migrator, json).await,
        MigrateCommand::Plan { to, phase } => {
            plan(&migrator, to, phase.map(Phase::from), json).await
        }
        MigrateCommand::Up { to, phase, release } => {
            let actor = Actor { release, ..actor };
            up(
                &migrator,
                to,
                phase.map(Phase::from),
                &actor,
                &audited,
                json,
            )
            .await
        }
        MigrateCommand::Down { to } => down(&migrator, to, &actor, &audited, json).await,
        MigrateCommand::Lint => lint(&migrator, database.is_postgres(), json),
        MigrateCommand::Baseline { up_to } => {
            baseline(&migrator, up_to, &actor, &audited, json).await
        }
        MigrateCommand::Repair { only } => repair(&migrator, only, &actor, &audited, json).await,
    }
}

/// Where a change to the database is audited: the config's state store,
/// as `local:<OS user>` (`cli::audit::record_local`).
struct Audited<'a> {
    config: &'a crate::config::Config,
    database: &'a str,
}

impl Audited<'_> {
    /// Records `action` with the versions it applied or reverted (nothing
    /// when there are none: nothing changed) and the error it ended with.
    async fn record(&self, action: &str, versions: Vec<u64>, error: Option<String>) {
        if versions.is_empty() {
            return;
        }
        let entry = super::audit::local_entry(action)
            .target(self.database)
            .details(serde_json::json!({ "versions": versions, "error": error }));
        super::audit::record_local(self.config, entry).await;
    }
}

fn cli_error(error: MigrateError) -> CliError {
    let code = match &error {
        MigrateError::Drift(_) => exit::DRIFT,
        MigrateError::Locked { .. } => exit::LOCKED,
        MigrateError::Files(_)
        | MigrateError::NoDown { .. }
        | MigrateError::Baseline(_)
        | MigrateError::Repair(_) => exit::USAGE,
        _ => exit::FAILURE,
    };
    CliError::new(code, error.to_string())
}

async fn status(migrator: &Migrator, json: bool) -> Result<(), CliError> {
    let status = migrator.status().await.map_err(cli_error)?;
    if json {
        output::print_json(&status)?;
    } else {
        print_status(&status);
    }
    match status.drift.len() {
        0 => Ok(()),
        n => Err(CliError::new(
            exit::DRIFT,
            format!(
                "drift: {n} applied migration{} changed or disappeared",
                if n == 1 { "" } else { "s" }
            ),
        )),
    }
}

fn print_status(status: &Status) {
    println!(
        "database {} at {} (migrations in {})",
        status.database,
        status.url,
        status.folder.display()
    );
    println!("applied ({})", status.applied.len());
    for applied in &status.applied {
        let mut line = format!(
            "  {:04}  {}  {}  by {}",
            applied.version, applied.name, applied.applied_at, applied.applied_by
        );
        if applied.kind == "baseline" {
            line.push_str("  (baseline: recorded, not run)");
        } else {
            line.push_str(&format!("  {} ms", applied.duration_ms));
        }
        if let Some(release) = &applied.release {
            line.push_str(&format!("  release {release}"));
        }
        println!("{line}");
    }
    println!("pending ({})", status.pending.len());
    for pending in &status.pending {
        let mut line = format!(
            "  {:04}  {}  {}",
            pending.version, pending.name, pending.phase
        );
        if !pending.transaction {
            line.push_str("  no-transaction");
        }
        if pending.out_of_order {
            line.push_str("  (older than an applied migration: runs next, in order)");
        }
        println!("{line}");
    }
    if !status.drift.is_empty() {
        println!(
            "drift ({}): never re-run; restore these files as they were applied",
            status.drift.len()
        );
        for drift in &status.drift {
            println!("  {drift}");
        }
    }
}

async fn plan(
    migrator: &Migrator,
    to: Option<u64>,
    phase: Option<Phase>,
    json: bool,
) -> Result<(), CliError> {
    let plan = migrator.plan(to, phase).await.map_err(cli_error)?;
    if json {
        return output::print_json(&plan);
    }
    if plan.steps.is_empty() {
        println!("database {}: nothing to apply", plan.database);
    } else {
        println!("database {}: `up` would apply, in order:", plan.database);
    }
    for step in &plan.steps {
        let mut line = format!(
            "  {:04}  {}  {}  {} statement{}",
            step.version,
            step.name,
            step.phase,
            step.statements,
            if step.statements == 1 { "" } else { "s" }
        );
        if !step.transaction {
            line.push_str("  no-transaction");
        }
        println!("{line}");
    }
    if let Some(stop) = &plan.stopped {
        println!(
            "then stops before {:04} {} ({}): {}",
            stop.version, stop.name, stop.phase, stop.reason
        );
    }
    Ok(())
}

/// Prints progress as it happens (people) and keeps what was done (JSON).
struct Progress {
    json: bool,
    done: Vec<Done>,
}

impl Progress {
    fn event(&mut self, event: Event<'_>) {
        match event {
            Event::Waiting { holder } => {
                eprintln!("waiting for the migrator lock, held by {holder}");
            }
            Event::Started {
                migration,
                direction,
            } if !self.json => {
                let verb = match direction {
                    Direction::Up => "applying",
                    Direction::Down => "reverting",
                };
                println!("{verb} {} ({})", migration.file_name(), migration.phase);
            }
            Event::Retrying {
                migration,
                attempt,
                pause,
                error,
            } => {
                eprintln!(
                    "{}: {error}; retry {attempt} in {} ms",
                    migration.file_name(),
                    pause.as_millis()
                );
            }
            Event::Finished(done) => {
                if !self.json {
                    println!("  done in {} ms", done.duration_ms);
                }
                self.done.push(done.clone());
            }
            Event::Started { .. } => {}
        }
    }
}

/// `--json` output of `up` and `down`, also when they fail half-way.
#[derive(Serialize)]
struct RunReport<'a> {
    database: &'a str,
    applied: Vec<Done>,
    reverted: Vec<Done>,
    stopped: Option<migrate::Stop>,
    error: Option<String>,
}

async fn up(
    migrator: &Migrator,
    to: Option<u64>,
    phase: Option<Phase>,
    actor: &Actor,
    audited: &Audited<'_>,
    json: bool,
) -> Result<(), CliError> {
    let mut progress = Progress {
        json,
        done: Vec::new(),
    };
    let result = migrator
        .up(to, phase, actor, &mut |event| progress.event(event))
        .await;
    let (stopped, error) = match result {
        Ok(report) => (report.stopped, None),
        Err(error) => (None, Some(error)),
    };
    audited
        .record(
            "migrate_up",
            progress.done.iter().map(|d| d.version).collect(),
            error.as_ref().map(ToString::to_string),
        )
        .await;
    if json {
        output::print_json(&RunReport {
            database: migrator.name(),
            applied: progress.done.clone(),
            reverted: Vec::new(),
            stopped: stopped.clone(),
            error: error.as_ref().map(ToString::to_string),
        })?;
    } else if error.is_none() {
        match progress.done.len() {
            0 => println!("database {}: up to date, nothing to apply", migrator.name()),
            1 => println!("database {}: applied 1 migration", migrator.name()),
            n => println!("database {}: applied {n} migrations", migrator.name()),
        }
        if let Some(stop) = &stopped {
            println!(
                "stopped before {:04} {} ({}): {}",
                stop.version, stop.name, stop.phase, stop.reason
            );
        }
    }
    error.map_or(Ok(()), |error| Err(cli_error(error)))
}

async fn down(
    migrator: &Migrator,
    to: u64,
    actor: &Actor,
    audited: &Audited<'_>,
    json: bool,
) -> Result<(), CliError> {
    let mut progress = Progress {
        json,
        done: Vec::new(),
    };
    let result = migrator
        .down(to, actor, &mut |event| progress.event(event))
        .await;
    let error = result.err();
    audited
        .record(
            "migrate_down",
            progress.done.iter().map(|d| d.version).collect(),
            error.as_ref().map(ToString::to_string),
        )
        .await;
    if json {
        output::print_json(&RunReport {
            database: migrator.name(),
            applied: Vec::new(),
            reverted: progress.done.clone(),
            stopped: None,
            error: error.as_ref().map(ToString::to_string),
        })?;
    } else if error.is_none() {
        match progress.done.len() {
            0 => println!(
                "database {}: nothing above version {to} to revert",
                migrator.name()
            ),
            n => println!(
                "database {}: reverted {n} migration{}, now at version {to} or below",
                migrator.name(),
                if n == 1 { "" } else { "s" }
            ),
        }
    }
    error.map_or(Ok(()), |error| Err(cli_error(error)))
}

/// `--json` output of `lint`.
#[derive(Serialize)]
struct LintOutput {
    files: usize,
    findings: Vec<migrate::lint::Finding>,
    allowed: Vec<migrate::lint::Allowed>,
}

fn lint(migrator: &Migrator, postgres: bool, json: bool) -> Result<(), CliError> {
    let reports = migrator.lint();
    let output = LintOutput {
        files: reports.len(),
        findings: reports.iter().flat_map(|r| r.findings.clone()).collect(),
        allowed: reports.iter().flat_map(|r| r.allowed.clone()).collect(),
    };
    let denied = reports.iter().map(|r| r.denied().count()).sum::<usize>();
    if json {
        output::print_json(&output)?;
    } else {
        if !postgres {
            println!(
                "database {} is SQLite: checking phases and transactions only (the PostgreSQL rules do not apply)",
                migrator.name()
            );
        }
        for found in &output.findings {
            let level = match found.level {
                migrate::lint::Level::Deny => "error",
                migrate::lint::Level::Warn => "warning",
            };
            println!(
                "{}:{}:{}: {level}: {}: {}",
                found.file.display(),
                found.line,
                found.column,
                found.rule,
                found.message
            );
            if let Some(help) = &found.help {
                println!("  help: {help}");
            }
        }
        for allowed in &output.allowed {
            println!(
                "{}:{}: {} allowed because {}",
                allowed.file.display(),
                allowed.line,
                allowed.rule,
                allowed.reason
            );
        }
        let files = match output.files {
            1 => "1 file".to_owned(),
            n => format!("{n} files"),
        };
        let warnings = output.findings.len() - denied;
        let warned = match warnings {
            0 => String::new(),
            1 => " and 1 warning (style: it does not block a deploy)".to_owned(),
            n => format!(" and {n} warnings (style: they do not block a deploy)"),
        };
        match denied {
            0 => println!("no problems{warned} in {files}"),
            1 => println!("1 problem{warned} in {files}"),
            n => println!("{n} problems{warned} in {files}"),
        }
    }
    if denied == 0 {
        Ok(())
    } else {
        Err(CliError::new(
            exit::FAILURE,
            format!("lint found {denied} problem(s) that block a deploy"),
        ))
    }
}

async fn repair(
    migrator: &Migrator,
    version: Option<u64>,
    actor: &Actor,
    audited: &Audited<'_>,
    json: bool,
) -> Result<(), CliError> {
    let repaired = migrator
        .repair(version, actor, &mut |event| {
            if let Event::Waiting { holder } = event {
                eprintln!("waiting for the migrator lock, held by {holder}");
            }
        })
        .await
        .map_err(cli_error)?;
    if !repaired.is_empty() {
        audited
            .record(
                "migrate_repair",
                repaired.iter().map(|d| d.version).collect(),
                None,
            )
            .await;
    }
    if json {
        return output::print_json(&serde_json::json!({
            "database": migrator.name(),
            "repaired": repaired,
        }));
    }
    if repaired.is_empty() {
        println!(
            "database {}: no applied migration differs from its file; nothing to repair",
            migrator.name()
        );
    }
    for d in &repaired {
        println!(
            "database {}: migration {} `{}`: recorded checksum {} replaced by the file's {}",
            migrator.name(),
            d.version,
            d.name,
            short(&d.recorded),
            d.current.as_deref().map_or("-", short)
        );
    }
    Ok(())
}

/// The first 12 characters of a checksum.
fn short(checksum: &str) -> &str {
    checksum.get(..12).unwrap_or(checksum)
}

async fn baseline(
    migrator: &Migrator,
    version: u64,
    actor: &Actor,
    audited: &Audited<'_>,
    json: bool,
) -> Result<(), CliError> {
    let adopted = migrator
        .baseline(version, actor, &mut |event| {
            if let Event::Waiting { holder } = event {
                eprintln!("waiting for the migrator lock, held by {holder}");
            }
        })
        .await
        .map_err(cli_error)?;
    audited
        .record(
            "migrate_baseline",
            adopted
                .iter()
                .filter_map(|a| u64::try_from(a.version).ok())
                .collect(),
            None,
        )
        .await;
    if json {
        return output::print_json(&serde_json::json!({
            "database": migrator.name(),
            "baseline": adopted,
        }));
    }
    println!(
        "database {}: recorded {} migration{} up to version {version} as applied, without running them",
        migrator.name(),
        adopted.len(),
        if adopted.len() == 1 { "" } else { "s" }
    );
    for applied in &adopted {
        println!("  {:04}  {}", applied.version, applied.name);
    }
    Ok(())
}
