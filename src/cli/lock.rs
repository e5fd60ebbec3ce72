//! `cutover lock` / `cutover unlock` (an operator's lock of an environment)
//! and `cutover releases` (versions, their digests, and where each has run).

use std::path::Path;

use super::output;
use crate::api::wire::LockRequest;
use crate::exit::{self, CliError};
use crate::label::printable;

/// `cutover lock [-e ENV] --reason TEXT [--until TIME]`.
pub async fn lock(
    path: &Path,
    environment: Option<&str>,
    reason: String,
    until: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    if let Some(until) = &until {
        crate::label::parse_until(until, jiff::Timestamp::now())
            .map_err(|e| CliError::new(exit::USAGE, format!("--until: {e}")))?;
    }
    if reason.trim().is_empty() {
        return Err(CliError::new(
            exit::USAGE,
            "--reason is empty: say why the environment is locked",
        ));
    }
    let config = output::load_config(path)?;
    let client = output::client(&config)?;
    let lock = client
        .lock(&LockRequest {
            environment: environment.map(str::to_owned),
            reason,
            until,
            requested_by: None,
        })
        .await?;
    if json {
        return output::print_json(&lock);
    }
    let until = lock
        .until
        .map(|u| format!(" until {u:.0}"))
        .unwrap_or_else(|| " until `cutover unlock`".to_owned());
    println!(
        "{} is locked{until}: {} (deploys are refused; rollback and abort still work)",
        lock.environment,
        printable(&lock.reason)
    );
    Ok(())
}

/// `cutover unlock [-e ENV]`.
pub async fn unlock(path: &Path, environment: Option<&str>, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let (name, _) = config
        .environment(environment)
        .map_err(|e| CliError::new(exit::USAGE, e.to_string()))?;
    let name = name.to_owned();
    let client = output::client(&config)?;
    let answer = client.unlock(&name).await?;
    if json {
        return output::print_json(&answer);
    }
    match &answer.removed {
        Some(lock) => println!(
            "{} is unlocked (was locked by {}: {})",
            answer.environment,
            printable(&lock.locked_by),
            printable(&lock.reason)
        ),
        None => println!("{} was not locked", answer.environment),
    }
    Ok(())
}

/// `cutover releases [-e ENV]`.
pub async fn releases(path: &Path, environment: Option<&str>, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let list = output::client(&config)?.releases(environment).await?;
    if json {
        return output::print_json(&list);
    }
    if list.is_empty() {
        println!("no releases yet (cutover deploy VERSION)");
        return Ok(());
    }
    for release in &list {
        let digests = if release.digests.is_empty() {
            "no digest recorded".to_owned()
        } else {
            release
                .digests
                .iter()
                .map(|d| format!("sha256 {d}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        println!("{}  {digests}", release.version);
        for run in &release.runs {
            let served = match (run.from, run.to) {
                (Some(from), Some(to)) => format!("served {from:.0} → {to:.0}"),
                (Some(from), None) if run.serving => format!("serving since {from:.0}"),
                (Some(from), None) => format!("served from {from:.0}"),
                (None, _) => "never served".to_owned(),
            };
            let digest = run
                .digest
                .as_deref()
                .map(|d| format!(" sha256 {}…", d.chars().take(12).collect::<String>()))
                .unwrap_or_default();
            println!(
                "  {:<12} deployment {:<5} {:<12} {served}{}{digest}",
                run.environment,
                run.deployment_id,
                run.outcome.as_str(),
                if run.rolled_back { ", rolled back" } else { "" }
            );
        }
    }
    Ok(())
}
