//! The command line: clap definitions and dispatch, one file per verb
//! (kamal-proxy style). Commands other than `serve`, `check`, `schema`,
//! `migrate` and `demo` talk to the daemon over its API.

mod approve;
mod assess;
mod audit;
mod backup;
mod check;
mod commit;
mod daemon;
mod demo;
mod deploy;
mod dora;
mod events;
mod init;
mod lock;
mod logs;
mod migrate;
mod output;
mod preflight;
mod render;
mod restore_guard;
pub mod serve;
mod status;
pub mod systemd;
mod token;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::exit::CliError;

/// cutover takes an application from "new version built" to "new version
/// serving all traffic" with no failed requests, and back again in under a
/// second when the new version misbehaves.
///
/// Start the daemon with `cutover serve`, then `cutover deploy VERSION`.
/// Try it all at once with `cutover demo`.
#[derive(Debug, Parser)]
#[command(name = "cutover", version, about, long_about, propagate_version = true)]
pub struct Cli {
    /// The config file.
    #[arg(
        short,
        long,
        global = true,
        env = "CUTOVER_CONFIG",
        default_value = "cutover.toml"
    )]
    pub config: PathBuf,
    /// Print machine-readable JSON instead of text.
    #[arg(long, global = true)]
    pub json: bool,
    /// Use the addresses of `[host.NAME]` (several daemons sharing one file
    /// and one PostgreSQL store, docs/cluster.md): `serve` listens there and
    /// the other commands ask that daemon.
    #[arg(long, global = true, env = "CUTOVER_HOST", value_name = "NAME")]
    pub host: Option<String>,
    /// What to do.
    #[command(subcommand)]
    pub command: Command,
}

/// The verbs.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the daemon: the API, one proxy per environment, the state store.
    ///
    /// One daemon per state store (a second one exits 8, naming the first).
    /// SIGTERM/SIGINT stop the daemon, not the application: it stops
    /// accepting, finishes in-flight requests and exits, and the instances
    /// keep running for the next `cutover serve` to adopt. `cutover down`
    /// stops the instances too. SIGUSR2 upgrades (`cutover upgrade`), SIGHUP
    /// reloads (`cutover reload`); other signals are logged and ignored.
    /// Listeners come from systemd socket activation when it passes them
    /// (`cutover systemd`). A damaged store, or a missing or empty one while
    /// instances of the app run, is refused (docs/operations.md says how to recover).
    Serve {
        /// Take back running instances no record names (after the state store
        /// was lost): record them as their environment's serving release, or
        /// stop those that cannot serve, and say which.
        #[arg(long)]
        adopt_orphans: bool,
        /// On SIGTERM/SIGINT, drain and stop every instance before exiting
        /// (as `cutover down` does) instead of leaving them running.
        #[arg(long)]
        stop_instances_on_exit: bool,
        /// How the daemon logs on stderr: `text` for people, `json` for log
        /// shippers (one JSON object per line). Default: `[server]
        /// log_format`, else text.
        #[arg(long, value_name = "FORMAT", value_parser = parse_log_format)]
        log_format: Option<crate::config::LogFormat>,
    },
    /// Replace the running daemon with the binary at its path now, without
    /// failing a request: the new daemon takes over the listening sockets and
    /// the instances, and continues any rollout in progress; the old one
    /// finishes its requests and exits. If the new one fails to start, the
    /// old one keeps serving and this exits 1 with the new one's error.
    Upgrade,
    /// Apply a changed config: check it (an invalid one exits 2 and changes
    /// nothing), then hand over to a daemon that reads it, as `upgrade` does.
    /// Settings only a deploy can apply (a service's command, image, env,
    /// replicas) are listed as pending until the next deploy.
    Reload,
    /// Stop everything: the daemon drains and stops every instance, then
    /// exits. (SIGTERM stops only the daemon.)
    Down,
    /// Deploy VERSION blue-green: start it, wait for health, switch all
    /// traffic in one step, keep the old release warm for rollback.
    ///
    /// Exits 0 only when VERSION serves all traffic; 3 when it failed and the
    /// previous release still serves; 4 when another deployment holds the
    /// lock, an operator locked the environment, or it is outside its deploy
    /// windows; 9 when the environment promotes from another one and VERSION
    /// has not run there as it must.
    Deploy {
        /// Version label, substituted for {version} in the service's command:
        /// 1 to 128 letters, digits, '.', '_', '+' or '-', not starting with '-'.
        #[arg(value_name = "VERSION")]
        release: String,
        /// Environment (may be omitted when the config has only one).
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
        /// Roll only this service (default: every service, in `after` order).
        #[arg(long)]
        service: Option<String>,
        /// Deploy although the release has not run where the environment
        /// promotes from as it must (admin only; needs --reason; recorded).
        #[arg(long, requires = "reason")]
        skip_promotion_check: bool,
        /// Why a check is overridden: with --skip-promotion-check, or to
        /// deploy outside the environment's deploy windows (admin only;
        /// recorded in the deployment's history).
        #[arg(long, value_name = "TEXT")]
        reason: Option<String>,
        /// Return at once with the deployment's id (and, with --json, its
        /// status) instead of following it to its end.
        #[arg(long)]
        no_wait: bool,
        /// The commit VERSION was built from (7 to 64 hex digits), recorded
        /// for the DORA lead time. Its time comes from CUTOVER_COMMIT_TIME
        /// (RFC 3339 or unix seconds) or else from `git log` when the
        /// config's folder is in a git repository that has it (without
        /// --commit, VERSION itself is looked up there, e.g. a tag).
        #[arg(long, value_name = "SHA")]
        commit: Option<String>,
    },
    /// Lock an environment against deploys, with a reason (rollback and
    /// abort stay allowed). Replaces a lock that holds.
    Lock {
        /// Environment (may be omitted when the config has only one).
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
        /// Why: shown to whoever tries to deploy.
        #[arg(long, value_name = "TEXT")]
        reason: String,
        /// Until when: RFC 3339 (2026-12-04T18:00:00Z) or a duration from
        /// now (2h, 30m). Without it, until `cutover unlock`.
        #[arg(long, value_name = "TIME")]
        until: Option<String>,
    },
    /// Remove an environment's lock.
    Unlock {
        /// Environment (may be omitted when the config has only one).
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
    },
    /// Releases deployed, newest first: their digests and where each has
    /// run (environment, when it served, outcome, rolled back or not).
    Releases {
        /// Only this environment.
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
    },
    /// Approve a deployment that awaits approval (never your own: four eyes).
    Approve {
        /// The deployment's id (`cutover history` lists them).
        #[arg(value_name = "ID")]
        id: i64,
        /// What you checked, for the history.
        #[arg(long)]
        comment: Option<String>,
    },
    /// Reject a deployment that awaits approval: it ends, nothing is started.
    Reject {
        /// The deployment's id (`cutover history` lists them).
        #[arg(value_name = "ID")]
        id: i64,
        /// Why, for the history.
        #[arg(long, required = true)]
        reason: String,
    },
    /// Hold the running canary at its current step (fast failure checks go on).
    Pause {
        /// Environment (may be omitted when the config has only one).
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
    },
    /// Continue a paused canary.
    Resume {
        /// Environment (may be omitted when the config has only one).
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
    },
    /// Move the running canary to its next step now, skipping the analysis.
    Promote {
        /// Environment (may be omitted when the config has only one).
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
        /// Straight to 100 %.
        #[arg(long)]
        full: bool,
    },
    /// Move traffic to a release that awaits the switch (`switch = "manual"`):
    /// blue-green switches at once, a canary begins its steps.
    Switch {
        /// Environment (may be omitted when the config has only one).
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
    },
    /// Roll the running deployment back now: traffic to the previous release
    /// in one switch, then the new instances are drained and stopped.
    Abort {
        /// Environment (may be omitted when the config has only one).
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
        /// Why, for the history.
        #[arg(long)]
        reason: Option<String>,
    },
    /// Go back to the previous release: one switch while it is warm, a
    /// blue-green start of it otherwise.
    Rollback {
        /// Environment (may be omitted when the config has only one).
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
    },
    /// What serves where: releases, instances, locks.
    Status {
        /// Keep showing it: redrawn on every event (deploys, steps,
        /// health, certificates) and every 2 s for the live figures, until
        /// Ctrl-C. On a terminal the screen is redrawn; piped, each new
        /// status is printed after a line of dashes (with --json, one JSON
        /// object per line).
        #[arg(long, short = 'w')]
        watch: bool,
    },
    /// The events of every deployment and environment, oldest first; with
    /// --follow, then each new one as it happens (server-sent events from
    /// the API; a dropped connection, e.g. a daemon restart, is resumed
    /// where it stopped, nothing missed or repeated). --json: one JSON
    /// object per line, each with the `cursor` a script can resume from.
    Events {
        /// Only this environment.
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
        /// How many of the latest events to print first (at most 1000).
        #[arg(long, value_name = "N", default_value_t = 20)]
        limit: u32,
        /// Keep printing new events until Ctrl-C.
        #[arg(long, short = 'f')]
        follow: bool,
    },
    /// Past deployments and rollbacks, newest first, with their events.
    History {
        /// Only this environment.
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
        /// How many deployments.
        #[arg(long, default_value_t = 10)]
        limit: u32,
        /// Show each deployment's events too.
        #[arg(long)]
        events: bool,
    },
    /// DORA's four keys from the history: deployment frequency, lead time
    /// for changes, change failure rate and time to restore service, each
    /// with its band (elite, high, medium, low; State of DevOps 2023) and
    /// the deployments it came from. docs/observability.md says exactly
    /// what counts.
    Dora {
        /// Only this environment (default: every environment).
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
        /// The period: how long ago it starts (30d, 12h) or an RFC 3339
        /// time (2026-11-01T00:00:00Z); it ends now.
        #[arg(long, value_name = "TIME", default_value = "30d")]
        since: String,
        /// A succeeded deploy followed by another deploy starting within
        /// this long after it ended counts as a failed change (its fix);
        /// 0 counts none.
        #[arg(long, value_name = "DURATION", default_value = "1h")]
        fix_window: String,
    },
    /// A deployment-readiness report for a repository: per area
    /// (containerization, CI/CD, deployment automation, environments,
    /// observability, database operations, backups, security) a maturity
    /// level 1-5 with the step that set it, and findings ranked high, medium
    /// and low, each with file:line evidence and a fix (and the cutover.toml
    /// lines that would do it). Reads files only: nothing is executed and
    /// nothing leaves the machine. docs/assess.md explains every rule.
    ///
    /// Examples: `cutover assess`, `cutover assess ../shop --format markdown`,
    /// `cutover assess --format sarif > assess.sarif`, `cutover assess
    /// --fail-under 3` (exit 12 when the overall level is below 3).
    Assess {
        /// The repository's folder.
        #[arg(default_value = ".")]
        path: std::path::PathBuf,
        /// text (default), json, markdown or sarif; `--json` is `--format json`.
        #[arg(long, value_enum, default_value = "text")]
        format: assess::Format,
        /// Exit 12 when the overall level is below LEVEL (1-5).
        #[arg(long, value_name = "LEVEL", value_parser = clap::value_parser!(u8).range(1..=5))]
        fail_under: Option<u8>,
    },
    /// Write a starting cutover.toml for a repository, from what it shows:
    /// services from compose files, Dockerfiles or a Procfile, the health
    /// path from the code, the database (its URL as `${VAR}`), staging and
    /// production. Each choice is commented with the file and line it came
    /// from; what could not be found is listed at the top. The same
    /// detection as `cutover assess`; nothing is executed.
    ///
    /// Examples: `cutover init`, `cutover init ../shop --stdout`.
    Init {
        /// The repository's folder; cutover.toml is written there.
        #[arg(default_value = ".")]
        path: std::path::PathBuf,
        /// Print the file instead of writing it.
        #[arg(long)]
        stdout: bool,
        /// Overwrite an existing cutover.toml.
        #[arg(long)]
        force: bool,
    },
    /// Database schema migrations of a `[database.NAME]`: status, plan, up,
    /// down, lint, baseline, repair.
    Migrate {
        /// The database (may be omitted when the config has only one).
        #[arg(long, global = true, value_name = "NAME")]
        db: Option<String>,
        /// The environment whose version of the database to use (may be
        /// omitted when every environment uses the same database).
        #[arg(long = "env", short = 'e', global = true, value_name = "ENV")]
        environment: Option<String>,
        /// What to do.
        #[command(subcommand)]
        command: migrate::MigrateCommand,
    },
    /// Print the output of a service's running instances (log files for
    /// processes, the engine's logs for containers).
    Logs {
        /// The service.
        #[arg(value_name = "SERVICE")]
        service: String,
        /// Only this release (default: the serving release).
        #[arg(long)]
        release: Option<String>,
        /// Keep printing new output until the instances stop (or Ctrl-C).
        #[arg(long, short = 'f')]
        follow: bool,
        /// Only the last N lines of each instance.
        #[arg(long, value_name = "N")]
        tail: Option<usize>,
        /// Environment (may be omitted when the config has only one).
        #[arg(long = "env", short = 'e')]
        environment: Option<String>,
    },
    /// Encrypted backups of a `[database.NAME]`, or with `--state` of the
    /// state store: create, list, verify, restore, prune, keygen.
    Backup {
        /// The database (may be omitted when the config has only one).
        #[arg(long, global = true, value_name = "NAME", conflicts_with = "state")]
        db: Option<String>,
        /// The environment whose version of the database to use (may be
        /// omitted when every environment uses the same database).
        #[arg(
            long = "env",
            short = 'e',
            global = true,
            value_name = "ENV",
            conflicts_with = "state"
        )]
        environment: Option<String>,
        /// cutover's own state store instead of a database (`[state] backup`).
        #[arg(long, global = true)]
        state: bool,
        /// What to do.
        #[command(subcommand)]
        command: backup::BackupCommand,
    },
    /// Named API tokens (admin only): create one with a role (its token is
    /// printed once), list them (never the token), revoke one.
    Token {
        /// What to do.
        #[command(subcommand)]
        command: token::TokenCommand,
    },
    /// The tamper-evident audit log: who changed what, when. Lists the
    /// newest rows (any role); `verify` recomputes the hash chain (exit 11
    /// when broken); `export` writes JSON lines for a SIEM.
    #[command(args_conflicts_with_subcommands = true)]
    Audit {
        /// Only rows since TIME: RFC 3339 (2026-12-04T09:00:00Z) or how long
        /// ago (90m, 2h, 7d).
        #[arg(long, value_name = "TIME")]
        since: Option<String>,
        /// At most N rows (the newest; at most 1000).
        #[arg(long, value_name = "N", default_value_t = 100)]
        limit: u32,
        /// verify or export (default: list).
        #[command(subcommand)]
        command: Option<audit::AuditCommand>,
    },
    /// Is this host ready to deploy? Config, databases, backup folder and
    /// disk space, pg_dump/pg_restore, deployment locks, open-file limit.
    /// Each failing check says what to do; exit 1 when one fails.
    Preflight {
        /// Only this environment's databases and lock (default: every
        /// environment's).
        #[arg(long = "env", short = 'e', value_name = "ENV")]
        environment: Option<String>,
    },
    /// Validate the config file and summarise it.
    Check,
    /// Print what the config would run as on another engine:
    /// `cutover render kubernetes --version V` (docs/kubernetes.md).
    Render {
        /// The engine.
        #[command(subcommand)]
        command: render::RenderCommand,
    },
    /// Print the JSON Schema of the config file.
    Schema,
    /// Print systemd units for this config: NAME.service (Type=notify,
    /// KillMode=process, so a restart leaves the app's instances running) and
    /// one socket unit per listener, for socket activation (docs/systemd.md).
    Systemd {
        /// Write the unit files into DIR (e.g. /etc/systemd/system) instead
        /// of printing them.
        #[arg(long, value_name = "DIR")]
        out: Option<PathBuf>,
        /// The units' name: NAME.service and NAME-LISTENER.socket.
        #[arg(long, value_name = "NAME", default_value = "cutover")]
        name: String,
        /// The cutover binary ExecStart= runs (default: this one).
        #[arg(long = "bin", value_name = "PATH")]
        binary: Option<PathBuf>,
        /// Run the daemon as this user (User=).
        #[arg(long)]
        user: Option<String>,
    },
    /// Build the example app, start a daemon in a scratch directory, deploy
    /// v1 and then v2 under load, and show what happened.
    Demo {
        /// Directory for the demo's config, state and logs (default: a new temp dir).
        #[arg(long)]
        dir: Option<PathBuf>,
        /// Exit when the demo is done instead of serving until Ctrl-C.
        #[arg(long)]
        no_wait: bool,
    },
}

/// Runs one command. With `--json`, a command that fails prints
/// `{"error": CODE, "message": …}` on stdout too (`check`, `schema`, `serve`
/// and `demo` answer for themselves).
pub async fn run(cli: Cli) -> Result<(), CliError> {
    let json_errors = cli.json
        && !matches!(
            cli.command,
            Command::Check | Command::Schema | Command::Serve { .. } | Command::Demo { .. }
        );
    output::select_host(cli.host.clone());
    let result = dispatch(cli).await;
    if json_errors && let Err(e) = &result {
        output::print_json_error(e);
    }
    result
}

async fn dispatch(cli: Cli) -> Result<(), CliError> {
    let json = cli.json;
    match cli.command {
        Command::Serve {
            adopt_orphans,
            stop_instances_on_exit,
            log_format,
        } => {
            let options = serve::ServeOptions {
                adopt_orphans,
                stop_instances_on_exit,
                log_format,
            };
            serve::run(&cli.config, options).await
        }
        Command::Upgrade => daemon::upgrade(&cli.config, json).await,
        Command::Reload => daemon::reload(&cli.config, json).await,
        Command::Down => daemon::down(&cli.config, json).await,
        Command::Deploy {
            release,
            environment,
            service,
            skip_promotion_check,
            reason,
            no_wait,
            commit,
        } => {
            check_label(&release)?;
            deploy::deploy(
                &cli.config,
                &release,
                deploy::DeployOptions {
                    environment: environment.as_deref(),
                    service: service.as_deref(),
                    skip_promotion_check,
                    reason,
                    no_wait,
                    commit: commit.as_deref(),
                },
                json,
            )
            .await
        }
        Command::Lock {
            environment,
            reason,
            until,
        } => lock::lock(&cli.config, environment.as_deref(), reason, until, json).await,
        Command::Unlock { environment } => {
            lock::unlock(&cli.config, environment.as_deref(), json).await
        }
        Command::Releases { environment } => {
            lock::releases(&cli.config, environment.as_deref(), json).await
        }
        Command::Approve { id, comment } => approve::approve(&cli.config, id, comment, json).await,
        Command::Reject { id, reason } => approve::reject(&cli.config, id, reason, json).await,
        Command::Pause { environment } => {
            deploy::steer(
                &cli.config,
                "pause",
                environment.as_deref(),
                false,
                None,
                json,
            )
            .await
        }
        Command::Resume { environment } => {
            deploy::steer(
                &cli.config,
                "resume",
                environment.as_deref(),
                false,
                None,
                json,
            )
            .await
        }
        Command::Promote { environment, full } => {
            deploy::steer(
                &cli.config,
                "promote",
                environment.as_deref(),
                full,
                None,
                json,
            )
            .await
        }
        Command::Switch { environment } => {
            deploy::steer(
                &cli.config,
                "switch",
                environment.as_deref(),
                false,
                None,
                json,
            )
            .await
        }
        Command::Abort {
            environment,
            reason,
        } => {
            deploy::steer(
                &cli.config,
                "abort",
                environment.as_deref(),
                false,
                reason,
                json,
            )
            .await
        }
        Command::Rollback { environment } => {
            deploy::rollback(&cli.config, environment.as_deref(), json).await
        }
        Command::Status { watch: false } => status::status(&cli.config, json).await,
        Command::Status { watch: true } => status::watch(&cli.config, json).await,
        Command::Events {
            environment,
            limit,
            follow,
        } => events::events(&cli.config, environment.as_deref(), limit, follow, json).await,
        Command::History {
            environment,
            limit,
            events,
        } => status::history(&cli.config, environment.as_deref(), limit, events, json).await,
        Command::Dora {
            environment,
            since,
            fix_window,
        } => {
            dora::dora(
                &cli.config,
                environment.as_deref(),
                &since,
                &fix_window,
                json,
            )
            .await
        }
        Command::Assess {
            path,
            format,
            fail_under,
        } => assess::assess(
            &path,
            if json { assess::Format::Json } else { format },
            fail_under,
        ),
        Command::Init {
            path,
            stdout,
            force,
        } => init::init(&path, stdout, force, json),
        Command::Migrate {
            db,
            environment,
            command,
        } => {
            migrate::run(
                &cli.config,
                environment.as_deref(),
                db.as_deref(),
                command,
                json,
            )
            .await
        }
        Command::Logs {
            service,
            release,
            follow,
            tail,
            environment,
        } => {
            if let Some(release) = &release {
                check_label(release)?;
            }
            let request = crate::api::wire::LogsRequest {
                service,
                environment,
                release,
                tail,
                follow,
            };
            logs::logs(&cli.config, request).await
        }
        Command::Backup {
            db,
            environment,
            state,
            command,
        } => {
            let target = match state {
                true => backup::Target::State,
                false => backup::Target::Database {
                    environment,
                    name: db,
                },
            };
            backup::run(&cli.config, target, command, json).await
        }
        Command::Token { command } => token::run(&cli.config, command, json).await,
        Command::Audit {
            since,
            limit,
            command,
        } => match command {
            None => audit::list(&cli.config, since.as_deref(), limit, json).await,
            Some(audit::AuditCommand::Verify { store }) => {
                audit::verify(&cli.config, store, json).await
            }
            Some(audit::AuditCommand::Export { output, store }) => {
                audit::export(&cli.config, output.as_deref(), store).await
            }
        },
        Command::Preflight { environment } => {
            preflight::run(&cli.config, environment.as_deref(), json).await
        }
        Command::Check => check::check(&cli.config, json),
        Command::Render { command } => render::run(&cli.config, command, json),
        Command::Schema => check::schema(),
        Command::Systemd {
            out,
            name,
            binary,
            user,
        } => systemd::run(&cli.config, out.as_deref(), &name, binary, user, json),
        Command::Demo { dir, no_wait } => demo::run(dir, no_wait).await,
    }
}

/// A version label from the command line, checked before anything is
/// loaded or asked (exit 2).
fn check_label(version: &str) -> Result<(), CliError> {
    crate::label::check_version(version)
        .map_err(|e| CliError::new(crate::exit::USAGE, e.to_string()))
}

/// `--log-format text|json`.
fn parse_log_format(text: &str) -> Result<crate::config::LogFormat, String> {
    use crate::config::LogFormat;
    [LogFormat::Text, LogFormat::Json]
        .into_iter()
        .find(|f| f.as_str() == text)
        .ok_or_else(|| format!("{text:?} is not a log format: use `text` or `json`"))
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    #[test]
    fn command_line_definition_is_consistent() {
        super::Cli::command().debug_assert();
    }
}
