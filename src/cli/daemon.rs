//! `cutover upgrade`, `cutover reload` and `cutover down`: the daemon's own
//! life, asked over the API. An upgrade or reload waits until the new daemon
//! serves (exit 0) or failed, the old one still serving (exit 1; a reload
//! of an invalid config exits 2 before asking anything). `down` waits until
//! the daemon has stopped its instances and exited.

use std::path::Path;
use std::time::{Duration, Instant};

use super::output;
use crate::api::wire::DaemonAnswer;
use crate::config::Config;
use crate::daemon::lock;
use crate::exit::{self, CliError};
use crate::store::Store;

/// How long the CLI waits for a hand-over's answer (the daemon gives up
/// sooner: see `daemon/handover.rs`).
const HANDOVER_WAIT: Duration = Duration::from_secs(200);
/// How long `down` waits for the daemon to exit.
const DOWN_WAIT: Duration = Duration::from_secs(600);

/// `cutover upgrade`.
pub async fn upgrade(path: &Path, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let answer = ask(&config, "upgrade").await?;
    print(&answer, json, "upgraded")
}

/// `cutover reload`: the config is checked here first, so an invalid one
/// exits 2 with its located error and the daemon is not asked.
pub async fn reload(path: &Path, json: bool) -> Result<(), CliError> {
    let config = output::load_config_checked(path)?;
    let answer = ask(&config, "reload").await?;
    print(&answer, json, "reloaded")
}

/// `cutover down`.
pub async fn down(path: &Path, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let answer = ask(&config, "down").await?;
    if !json {
        eprintln!(
            "cutover: daemon (pid {}) is stopping its instances and exiting…",
            answer.pid
        );
    }
    if matches!(
        Store::inspect(&config.state.url),
        Ok(crate::store::StoreFile::Server(_))
    ) {
        // Until the daemon exits: its API's socket stays open until then.
        // (Not until the store's lock is free: with several daemons on the
        // store, another one takes it at once, docs/cluster.md.)
        let started = Instant::now();
        while tokio::net::TcpStream::connect(config.server.listen)
            .await
            .is_ok()
        {
            if started.elapsed() > DOWN_WAIT {
                return Err(CliError::new(
                    exit::FAILURE,
                    format!(
                        "the daemon (pid {}) is still running after {} s; look at its log",
                        answer.pid,
                        DOWN_WAIT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    if let Some(db) = Store::inspect(&config.state.url)
        .ok()
        .and_then(|f| f.path().map(Path::to_path_buf))
    {
        let started = Instant::now();
        while lock::is_held(&db) {
            if started.elapsed() > DOWN_WAIT {
                return Err(CliError::new(
                    exit::FAILURE,
                    format!(
                        "the daemon (pid {}) is still running after {} s; look at its log",
                        answer.pid,
                        DOWN_WAIT.as_secs()
                    ),
                ));
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    print(&answer, json, "stopped")
}

async fn ask(config: &Config, action: &str) -> Result<DaemonAnswer, CliError> {
    let client = output::client(config)?.with_call_timeout(HANDOVER_WAIT);
    Ok(client.daemon_action(action).await?)
}

fn print(answer: &DaemonAnswer, json: bool, done: &str) -> Result<(), CliError> {
    if json {
        return output::print_json(answer);
    }
    if answer.took_ms > 0 {
        println!(
            "{done}: the daemon with pid {} serves (hand-over took {} ms)",
            answer.pid, answer.took_ms
        );
    } else {
        println!("{done}: daemon pid {}", answer.pid);
    }
    for p in &answer.pending {
        println!("  pending until the next deploy: {p}");
    }
    Ok(())
}
