//! `cutover audit [--since TIME]`, `audit verify` and `audit export`: the
//! tamper-evident audit log (`crate::store::audit`).
//!
//! `audit` lists rows through the API (any role). `verify` and `export`
//! page through the whole log — through the API (any role; the CLI
//! recomputes every hash itself, so it does not take the daemon's word), or
//! with `--store` straight from the state store file named by the config
//! (no daemon needed; SQLite's WAL lets it read while the daemon serves).
//!
//! Also [`record_local`]: how the CLI commands that change a database
//! without the daemon (`migrate up/down/baseline`, `backup restore`) append
//! to the log, as `local:<OS user>`.

use std::io::Write;
use std::path::{Path, PathBuf};

use clap::Subcommand;

use super::output;
use crate::api::client::ApiClient;
use crate::api::wire::AuditRow;
use crate::config::Config;
use crate::exit::{self, CliError};
use crate::identity;
use crate::label::printable;
use crate::store::{AuditEntry, AuditRecord, Store, verify_chain};

/// Rows asked for per page.
const PAGE: u32 = 1000;

/// What `cutover audit` does besides listing.
#[derive(Debug, Subcommand)]
pub enum AuditCommand {
    /// Recompute the hash chain of the whole log; names the first row that
    /// breaks it and exits 11 when one does.
    Verify {
        /// Read the state store file instead of asking the daemon.
        #[arg(long)]
        store: bool,
    },
    /// Write the whole log as JSON lines (one object per row, with its hash
    /// and the previous row's hash), for a SIEM.
    Export {
        /// Write to FILE instead of stdout.
        #[arg(long, short = 'o', value_name = "FILE")]
        output: Option<PathBuf>,
        /// Read the state store file instead of asking the daemon.
        #[arg(long)]
        store: bool,
    },
}

/// `cutover audit [--since TIME] [--limit N]`: the newest rows, oldest first.
pub async fn list(
    path: &Path,
    since: Option<&str>,
    limit: u32,
    json: bool,
) -> Result<(), CliError> {
    let since = since.map(parse_since).transpose()?;
    let config = output::load_config(path)?;
    let rows = output::client(&config)?.audit(since, limit).await?;
    if json {
        return output::print_json(&rows);
    }
    if rows.is_empty() {
        println!(
            "no audit rows{}",
            if since.is_some() { " since then" } else { "" }
        );
    }
    for r in &rows {
        let mut line = format!(
            "{:>5}  {:.0}  {:<22} {:<8} {:<16}",
            r.id,
            r.at,
            printable(&r.who),
            r.role,
            printable(&r.action)
        );
        if let Some(env) = &r.environment {
            line.push_str(&format!(" env={}", printable(env)));
        }
        if let Some(id) = r.deployment_id {
            line.push_str(&format!(" deployment={id}"));
        }
        if let Some(target) = &r.target {
            line.push_str(&format!(" target={}", printable(target)));
        }
        if r.details.as_object().is_some_and(|o| !o.is_empty()) {
            line.push_str(&format!(" {}", printable(&r.details.to_string())));
        }
        println!("{}", line.trim_end());
    }
    Ok(())
}

/// `--since`: an RFC 3339 time, or a duration back from now (`2h`, `7d`).
fn parse_since(text: &str) -> Result<jiff::Timestamp, CliError> {
    if let Ok(at) = text.parse::<jiff::Timestamp>() {
        return Ok(at);
    }
    let bad = || {
        CliError::new(
            exit::USAGE,
            format!(
                "--since {:?}: write a time (2026-12-04T09:00:00Z) or how long ago (90m, 2h, 7d)",
                printable(text)
            ),
        )
    };
    let ago = humantime::parse_duration(text.trim()).map_err(|_| bad())?;
    let ago = jiff::SignedDuration::try_from(ago).map_err(|_| bad())?;
    jiff::Timestamp::now().checked_sub(ago).map_err(|_| bad())
}

/// Where the rows come from.
enum Source {
    Api(ApiClient),
    Store(Store),
}

impl Source {
    async fn open(config: &Config, store: bool) -> Result<Source, CliError> {
        if !store {
            return Ok(Source::Api(output::client(config)?));
        }
        let file = Store::inspect(&config.state.url)
            .map_err(|e| CliError::new(exit::FAILURE, e.to_string()))?;
        if file.is_fresh() {
            return Err(CliError::new(
                exit::FAILURE,
                format!(
                    "no state store at {}: nothing to read; check [state] url in {}",
                    crate::config::redact_url(&config.state.url),
                    config.path.display()
                ),
            ));
        }
        let store = Store::open(&config.state.url)
            .await
            .map_err(|e| CliError::new(exit::FAILURE, format!("{e}: {}", source_chain(&e))))?;
        Ok(Source::Store(store))
    }

    /// The rows after id `after`, oldest first (empty at the end).
    async fn page(&self, after: i64) -> Result<Vec<AuditRecord>, CliError> {
        match self {
            Source::Api(client) => Ok(client
                .audit_after(after, PAGE)
                .await?
                .into_iter()
                .map(AuditRecord::from)
                .collect()),
            Source::Store(store) => store
                .audit(after, None, PAGE)
                .await
                .map_err(|e| CliError::new(exit::FAILURE, e.to_string())),
        }
    }
}

fn source_chain(e: &dyn std::error::Error) -> String {
    let mut out = Vec::new();
    let mut source = e.source();
    while let Some(s) = source {
        out.push(s.to_string());
        source = s.source();
    }
    out.join(": ")
}

/// `cutover audit verify [--store]`.
pub async fn verify(path: &Path, store: bool, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let source = Source::open(&config, store).await?;
    let mut last: Option<(i64, String)> = None;
    let mut count: u64 = 0;
    loop {
        let after = last.as_ref().map_or(0, |(id, _)| *id);
        let rows = source.page(after).await?;
        let Some(newest) = rows.last() else { break };
        let newest = (newest.id, newest.hash.clone());
        let from = last.as_ref().map(|(id, hash)| (*id, hash.as_str()));
        if let Err(broken) = verify_chain(&rows, from) {
            let message = format!(
                "{broken}. Rows from {} on cannot be trusted: compare them with an export kept \
                 elsewhere (`cutover audit export`)",
                broken.row()
            );
            if json {
                output::print_json(&serde_json::json!({
                    "intact": false,
                    "broken_at": broken.row(),
                    "message": message,
                }))?;
            }
            return Err(CliError::new(exit::AUDIT_BROKEN, message));
        }
        count = count.saturating_add(rows.len() as u64);
        last = Some(newest);
    }
    if json {
        return output::print_json(&serde_json::json!({
            "intact": true,
            "rows": count,
            "last_id": last.as_ref().map(|(id, _)| id),
            "last_hash": last.as_ref().map(|(_, hash)| hash),
        }));
    }
    match &last {
        Some((id, hash)) => println!(
            "audit log intact: {count} rows, the newest is row {id} with hash {hash} (keep it \
             elsewhere: it shows later whether rows were cut off the end)"
        ),
        None => println!("audit log is empty"),
    }
    Ok(())
}

/// `cutover audit export [--output FILE] [--store]`.
pub async fn export(path: &Path, to: Option<&Path>, store: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let source = Source::open(&config, store).await?;
    let io = |e: std::io::Error| {
        CliError::new(
            exit::FAILURE,
            format!(
                "cannot write the export{}: {e}",
                to.map(|p| format!(" to {}", p.display()))
                    .unwrap_or_default()
            ),
        )
    };
    let mut out: Box<dyn Write> = match to {
        Some(file) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(file).map_err(io)?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let mut after = 0;
    let mut count: u64 = 0;
    loop {
        let rows = source.page(after).await?;
        let Some(newest) = rows.last() else { break };
        after = newest.id;
        for row in rows {
            let line = serde_json::to_string(&AuditRow::from(row))
                .map_err(|e| CliError::new(exit::FAILURE, format!("cannot encode JSON: {e}")))?;
            writeln!(out, "{line}").map_err(io)?;
            count = count.saturating_add(1);
        }
    }
    out.flush().map_err(io)?;
    drop(out);
    if let Some(file) = to {
        eprintln!("wrote {count} audit rows to {}", file.display());
    }
    Ok(())
}

/// Appends `entry` (made with [`local_entry`]) to the audit log in the
/// state store of `config`, from the CLI (the daemon may be serving: the
/// append is one immediate transaction). A store that does not exist yet is
/// not created for this; a failure is a warning on stderr, since the change
/// it records was made already.
pub async fn record_local(config: &Config, entry: AuditEntry) {
    let warn = |why: String| {
        eprintln!(
            "warning: this change is not in the audit log ({why}); the change itself was made"
        );
    };
    match Store::inspect(&config.state.url) {
        Ok(file) if file.is_fresh() => {
            return warn(format!(
                "there is no state store at {} yet: start `cutover serve` once",
                crate::config::redact_url(&config.state.url)
            ));
        }
        Ok(_) => {}
        Err(e) => return warn(e.to_string()),
    }
    match Store::open(&config.state.url).await {
        Ok(store) => {
            if let Err(e) = store.append_audit(entry).await {
                warn(format!("{e}"));
            }
            store.close().await;
        }
        Err(e) => warn(format!("{e}: {}", source_chain(&e))),
    }
}

/// An entry for a local CLI command: who is `local:<OS user>`, role `local`.
pub fn local_entry(action: &str) -> AuditEntry {
    AuditEntry::new(&identity::local_name(), identity::LOCAL_ROLE, action)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_is_a_time_or_how_long_ago() {
        let at = parse_since("2026-12-04T09:00:00Z").expect("a time");
        assert_eq!(at.to_string(), "2026-12-04T09:00:00Z");
        let ago = parse_since("2h").expect("a duration");
        let expected = jiff::Timestamp::now().as_second() - 7200;
        assert!((ago.as_second() - expected).abs() <= 5, "{ago}");
        let err = parse_since("yesterday").expect_err("neither");
        assert_eq!(err.code, exit::USAGE);
        assert!(err.message.contains("90m, 2h, 7d"), "{}", err.message);
    }
}
