//! Preflight checks of the application's databases and their backups, run
//! by `cutover preflight` and at the start of every deploy that takes
//! backups: each database reachable; for backups, the folder writable, free
//! disk at least twice the database's size, the recipients readable, and
//! (PostgreSQL) `pg_dump` / `pg_restore` present; and a high enough
//! open-file limit. Each failing check says what to do.

use std::path::Path;
use std::str::FromStr as _;

use serde::Serialize;
use sqlx::Connection as _;

use std::collections::BTreeMap;

use crate::config::DatabaseConfig;
use crate::db::backup::keys;

/// The open-file limit below which the proxy may run out of sockets.
pub const MIN_OPEN_FILES: u64 = 1024;
/// The open-file limit below which `preflight` warns: the daemon raises its
/// soft limit to the hard one at start, and this is what an edge proxy with
/// `max_connections` = 10 000 (each with an upstream connection) wants.
pub const WANTED_OPEN_FILES: u64 = 65536;

/// One check's result.
#[derive(Debug, Clone, Serialize)]
pub struct Check {
    /// What was checked.
    pub name: String,
    /// Whether it passed.
    pub ok: bool,
    /// Passed, but with something to fix before it matters (`fix` says what).
    pub warning: bool,
    /// What was found.
    pub detail: String,
    /// What to do when it failed.
    pub fix: Option<String>,
}

impl Check {
    fn pass(name: impl Into<String>, detail: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            warning: false,
            detail: detail.into(),
            fix: None,
        }
    }

    fn warn(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: true,
            warning: true,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }

    fn fail(name: impl Into<String>, detail: impl Into<String>, fix: impl Into<String>) -> Check {
        Check {
            name: name.into(),
            ok: false,
            warning: false,
            detail: detail.into(),
            fix: Some(fix.into()),
        }
    }
}

/// The checks of every database (`backups_only`: only those with a
/// `backup` table), and the open-file limit.
pub async fn run(databases: &BTreeMap<String, DatabaseConfig>, backups_only: bool) -> Vec<Check> {
    let mut checks = vec![open_files()];
    for (name, database) in databases {
        if backups_only && database.backup.is_none() {
            continue;
        }
        checks.extend(database_checks(name, database).await);
    }
    checks
}

/// The open-file limit: soft and hard as this process has them, and what the
/// daemon will run with (it raises its soft limit to the hard one at start;
/// this process does the same to find out). Fails below [`MIN_OPEN_FILES`],
/// warns below [`WANTED_OPEN_FILES`].
fn open_files() -> Check {
    const NAME: &str = "open files limit";
    use nix::sys::resource::{RLIM_INFINITY, Resource, getrlimit};
    let (soft, hard) = match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok(limits) => limits,
        Err(e) => return Check::fail(NAME, e.to_string(), "check getrlimit(RLIMIT_NOFILE)"),
    };
    let raised = match cutover_proxy::raise_nofile_limit() {
        Ok((_, now)) => now,
        Err(_) => soft,
    };
    let hard_text = if hard == RLIM_INFINITY {
        "unlimited".to_owned()
    } else {
        hard.to_string()
    };
    let detail = format!(
        "soft {soft}, hard {hard_text}; the daemon raises its soft limit to {raised} at start"
    );
    let fix = format!(
        "raise the hard limit to at least {WANTED_OPEN_FILES}: LimitNOFILE={WANTED_OPEN_FILES} in cutover's systemd unit, or `ulimit -Hn {WANTED_OPEN_FILES}` (as root) in the shell that starts it; every client and upstream connection, log file and database handle takes one"
    );
    if raised < MIN_OPEN_FILES {
        Check::fail(NAME, format!("{detail}, below {MIN_OPEN_FILES}"), fix)
    } else if raised < WANTED_OPEN_FILES {
        Check::warn(NAME, format!("{detail}, below {WANTED_OPEN_FILES}"), fix)
    } else {
        Check::pass(NAME, detail)
    }
}

async fn database_checks(name: &str, database: &DatabaseConfig) -> Vec<Check> {
    let mut checks = Vec::new();
    let size = match size(database).await {
        Ok(size) => {
            checks.push(Check::pass(
                format!("database {name} reachable"),
                format!("{} ({size} bytes)", database.display_url()),
            ));
            size
        }
        Err(e) => {
            checks.push(Check::fail(
                format!("database {name} reachable"),
                format!("{}: {e}", database.display_url()),
                "check the url, that the server runs and the credentials",
            ));
            0
        }
    };
    let Some(backup) = &database.backup else {
        return checks;
    };
    checks.push(match writable(&backup.dir) {
        Ok(()) => Check::pass(
            format!("database {name} backup dir writable"),
            backup.dir.display().to_string(),
        ),
        Err(e) => Check::fail(
            format!("database {name} backup dir writable"),
            format!("{}: {e}", backup.dir.display()),
            "make the folder (backup.dir) writable by cutover, or point backup.dir elsewhere",
        ),
    });
    checks.push(match free_bytes(&backup.dir) {
        Ok(free) if free >= size.saturating_mul(2) => Check::pass(
            format!("database {name} backup disk space"),
            format!("{free} bytes free, database {size} bytes"),
        ),
        Ok(free) => Check::fail(
            format!("database {name} backup disk space"),
            format!("{free} bytes free, less than twice the database's {size} bytes"),
            "free disk space where backups go (`cutover backup prune`), or move backup.dir",
        ),
        Err(e) => Check::fail(
            format!("database {name} backup disk space"),
            e,
            "make backup.dir exist on a mounted filesystem",
        ),
    });
    checks.push(match keys::recipients(backup) {
        Ok(recipients) => Check::pass(
            format!("database {name} backup recipients"),
            format!("{} recipient(s)", recipients.len()),
        ),
        Err(e) => Check::fail(
            format!("database {name} backup recipients"),
            e.to_string(),
            "fix backup.recipients / backup.recipients_file (`cutover backup keygen` makes a key)",
        ),
    });
    if database.is_postgres() {
        for tool in ["pg_dump", "pg_restore"] {
            checks.push(match on_path(tool) {
                Some(path) => Check::pass(format!("{tool} present"), path),
                None => Check::fail(
                    format!("{tool} present"),
                    format!("{tool} is not on the PATH"),
                    "install PostgreSQL's client tools (Debian: apt-get install postgresql-client)",
                ),
            });
        }
    }
    checks
}

/// The database's size in bytes (SQLite: file plus WAL; 0 when missing).
async fn size(database: &DatabaseConfig) -> Result<u64, String> {
    if database.is_postgres() {
        let mut connection = sqlx::postgres::PgConnection::connect(&database.url)
            .await
            .map_err(|e| crate::db::migrate::describe_error(&e))?;
        let (size,): (i64,) = sqlx::query_as("SELECT pg_database_size(current_database())")
            .fetch_one(&mut connection)
            .await
            .map_err(|e| e.to_string())?;
        let _ = connection.close().await;
        return Ok(u64::try_from(size).unwrap_or(0));
    }
    let options =
        sqlx::sqlite::SqliteConnectOptions::from_str(&database.url).map_err(|e| e.to_string())?;
    let file = options.get_filename();
    if !file.exists() {
        return match file.parent() {
            Some(dir) if dir.as_os_str().is_empty() || dir.is_dir() => Ok(0),
            _ => Err(format!("neither {} nor its folder exists", file.display())),
        };
    }
    let wal = file.with_extension(format!(
        "{}-wal",
        file.extension().and_then(|e| e.to_str()).unwrap_or("")
    ));
    let len = |p: &Path| std::fs::metadata(p).map(|m| m.len()).unwrap_or(0);
    Ok(len(file) + len(&wal))
}

fn writable(dir: &Path) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| e.to_string())?;
    tempfile::Builder::new()
        .prefix(".cutover-preflight-")
        .tempfile_in(dir)
        .map(drop)
        .map_err(|e| e.to_string())
}

fn free_bytes(dir: &Path) -> Result<u64, String> {
    let mut at = dir;
    while !at.exists() {
        at = at
            .parent()
            .ok_or_else(|| format!("{} does not exist", dir.display()))?;
    }
    let stat = nix::sys::statvfs::statvfs(at).map_err(|e| format!("{}: {e}", at.display()))?;
    Ok(stat.blocks_available().saturating_mul(stat.fragment_size()))
}

fn on_path(name: &str) -> Option<String> {
    let paths = std::env::var_os("PATH")?;
    std::env::split_paths(&paths)
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
        .map(|path| path.display().to_string())
}
