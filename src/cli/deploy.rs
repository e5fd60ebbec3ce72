//! `cutover deploy` and `cutover rollback`: ask the daemon, then follow the
//! deployment's events until it ends, showing progress; the exit code says
//! how it ended.

use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use indicatif::{ProgressBar, ProgressStyle};

use super::output;
use crate::api::client::ApiClient;
use crate::api::wire::{
    DeployRequest, DeploymentDetail, DeploymentState, RollbackRequest, RolloutCommandRequest,
};
use crate::exit::{self, CliError};

/// How long one request for news may wait at the daemon (a long-poll: it
/// answers as soon as there is an event or the deployment ends).
const NEWS_WAIT: Duration = Duration::from_secs(10);

/// The least time between two requests that brought nothing new: only a
/// daemon that does not wait (an older version) answers that fast.
const MIN_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// How long a follower keeps asking a daemon that does not answer (one
/// handing over to a new daemon, or restarted by systemd) before giving up;
/// the deployment itself goes on either way.
const RECONNECT_WAIT: Duration = Duration::from_secs(30);

/// What `cutover deploy` was told besides the version.
#[derive(Debug, Default)]
pub struct DeployOptions<'a> {
    /// `--env`.
    pub environment: Option<&'a str>,
    /// `--service`.
    pub service: Option<&'a str>,
    /// `--skip-promotion-check`.
    pub skip_promotion_check: bool,
    /// `--reason`.
    pub reason: Option<String>,
    /// `--no-wait`.
    pub no_wait: bool,
    /// `--commit`.
    pub commit: Option<&'a str>,
}

/// `cutover deploy VERSION [--env E]`.
pub async fn deploy(
    path: &Path,
    version: &str,
    options: DeployOptions<'_>,
    json: bool,
) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let commit = super::commit::resolve(&config.base_dir, version, options.commit, json).await?;
    let client = output::client(&config)?;
    let accepted = client
        .deploy(&DeployRequest {
            environment: options.environment.map(str::to_owned),
            version: version.to_owned(),
            requested_by: None,
            service: options.service.map(str::to_owned),
            skip_promotion_check: options.skip_promotion_check,
            reason: options.reason,
            commit: commit.sha,
            commit_time: commit.time,
        })
        .await?;
    if !json {
        eprintln!(
            "Deploying {version} to {} (deployment {})",
            accepted.environment, accepted.deployment_id
        );
    }
    if options.no_wait {
        let gated = config
            .environments
            .get(&accepted.environment)
            .is_some_and(|e| e.approvals.is_some());
        return started(&client, accepted.deployment_id, gated, json).await;
    }
    let detail = follow(&client, accepted.deployment_id, json).await?;
    if detail.deployment.state == DeploymentState::Running {
        // Only a hold ends the following early: the rollout awaits the switch.
        let env = &detail.deployment.environment;
        if json {
            return output::print_json(&detail);
        }
        let preview = config
            .environments
            .get(env)
            .and_then(|e| e.preview_listen)
            .map(|a| format!("; it answers on the preview at http://{a}"))
            .unwrap_or_default();
        println!(
            "{} is healthy in {env} and awaits the switch (deployment {}){preview}: \
             `cutover switch -e {env}` moves traffic to it, `cutover abort -e {env}` stops it",
            detail.deployment.version, detail.deployment.id
        );
        return Ok(());
    }
    conclude(detail, json)
}

/// How long `deploy --no-wait` waits for a gated deployment to be saved
/// as awaiting approval (the release before it may end its window first).
const GATE_WAIT: Duration = Duration::from_secs(30);

/// `deploy --no-wait`: the id, and the status once it is known (for an
/// environment with approvals, once the deployment awaits them).
async fn started(client: &ApiClient, id: i64, gated: bool, json: bool) -> Result<(), CliError> {
    let since = Instant::now();
    let mut seen = 0;
    let mut detail = client.deployment(id).await?;
    while gated
        && detail.deployment.state == DeploymentState::Running
        && since.elapsed() < GATE_WAIT
    {
        seen = detail.events.len().max(seen);
        detail = client.deployment_news(id, seen, NEWS_WAIT).await?;
    }
    let status = detail.deployment.state;
    if json {
        return output::print_json(&serde_json::json!({ "id": id, "status": status }));
    }
    match status {
        DeploymentState::AwaitingApproval => println!(
            "deployment {id} awaits approval: another approver runs `cutover approve {id}` (or `cutover reject {id} --reason \"…\"`)"
        ),
        other => println!(
            "deployment {id}: {}; follow it with `cutover history --events`",
            other.as_str()
        ),
    }
    Ok(())
}

/// `cutover rollback [--env E]`.
pub async fn rollback(path: &Path, environment: Option<&str>, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let client = output::client(&config)?;
    let accepted = client
        .rollback(&RollbackRequest {
            environment: environment.map(str::to_owned),
            requested_by: None,
        })
        .await?;
    if !json {
        eprintln!(
            "Rolling back {} (deployment {})",
            accepted.environment, accepted.deployment_id
        );
    }
    let detail = follow(&client, accepted.deployment_id, json).await?;
    conclude(detail, json)
}

/// `cutover pause|resume|promote|switch|abort`: steer the running rollout.
pub async fn steer(
    path: &Path,
    command: &str,
    environment: Option<&str>,
    full: bool,
    reason: Option<String>,
    json: bool,
) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let client = output::client(&config)?;
    let accepted = client
        .rollout_command(
            command,
            &RolloutCommandRequest {
                environment: environment.map(str::to_owned),
                full,
                reason,
                requested_by: None,
            },
        )
        .await?;
    if json {
        return output::print_json(&accepted);
    }
    println!(
        "{command}: done for deployment {} in {}",
        accepted.deployment_id, accepted.environment
    );
    Ok(())
}

/// Follows the deployment until it ends — or until its rollout awaits the
/// switch (its latest event says so; the deployment is still running then) —
/// printing each new event: each request waits at the daemon until there is
/// news, so the end is seen as soon as it is saved.
pub async fn follow(
    client: &ApiClient,
    id: i64,
    quiet: bool,
) -> Result<DeploymentDetail, CliError> {
    let started = Instant::now();
    let spinner = (!quiet && std::io::stderr().is_terminal()).then(|| {
        let pb = ProgressBar::new_spinner();
        pb.set_style(
            ProgressStyle::with_template("{spinner} {elapsed} {msg}")
                .unwrap_or_else(|_| ProgressStyle::default_spinner()),
        );
        pb.enable_steady_tick(Duration::from_millis(100));
        pb
    });
    let mut shown = 0;
    let mut told_awaiting = false;
    // Since when the daemon has not answered (it may be handing over to a
    // new one, or restarting): the deployment goes on, so keep asking.
    let mut lost_since: Option<Instant> = None;
    loop {
        let asked = Instant::now();
        let detail = match client.deployment_news(id, shown, NEWS_WAIT).await {
            Ok(detail) => {
                lost_since = None;
                detail
            }
            Err(crate::api::client::ClientError::Unreachable { .. })
                if lost_since.get_or_insert(asked).elapsed() < RECONNECT_WAIT =>
            {
                tokio::time::sleep(MIN_POLL_INTERVAL).await;
                continue;
            }
            Err(e) => return Err(e.into()),
        };
        for ev in detail.events.iter().skip(shown) {
            if !quiet {
                let line = format!(
                    "  [{:>5.1}s] {:<17} {}",
                    started.elapsed().as_secs_f64(),
                    ev.kind,
                    crate::label::printable_lines(&ev.message, "\n           ")
                );
                match &spinner {
                    Some(pb) => {
                        pb.println(line);
                        pb.set_message(crate::label::printable(
                            ev.message.lines().next().unwrap_or(""),
                        ));
                    }
                    None => eprintln!("{line}"),
                }
            }
        }
        let news = detail.events.len() > shown;
        shown = detail.events.len();
        let state = detail.deployment.state;
        if state == DeploymentState::AwaitingApproval && !told_awaiting && !quiet {
            told_awaiting = true;
            let line = format!(
                "Deployment {id} awaits approval: another approver runs `cutover approve {id}` (or `cutover reject {id} --reason \"…\"`). Waiting; Ctrl-C stops waiting, not the deployment."
            );
            match &spinner {
                Some(pb) => pb.println(line),
                None => eprintln!("{line}"),
            }
        }
        let awaits_switch = detail
            .events
            .last()
            .is_some_and(|e| e.kind == cutover_core::EventKind::AwaitingSwitch.as_str());
        // A hold for `cutover switch` ends the following; a hold for
        // approvals (before the start or at the switch) waits on.
        if (state != DeploymentState::Running && state != DeploymentState::AwaitingApproval)
            || (awaits_switch && state == DeploymentState::Running)
        {
            if let Some(pb) = spinner {
                pb.finish_and_clear();
            }
            return Ok(detail);
        }
        if !news {
            tokio::time::sleep(MIN_POLL_INTERVAL.saturating_sub(asked.elapsed())).await;
        }
    }
}

fn conclude(detail: DeploymentDetail, json: bool) -> Result<(), CliError> {
    let d = &detail.deployment;
    let took = d
        .finished_at
        .map(|f| f.duration_since(d.started_at))
        .and_then(|s| Duration::try_from(s).ok())
        .unwrap_or_default();
    if json {
        output::print_json(&detail)?;
    }
    match d.state {
        DeploymentState::Succeeded => {
            if !json {
                println!(
                    "{} now serves all traffic in {} ({:.2}s)",
                    d.version,
                    d.environment,
                    took.as_secs_f64()
                );
            }
            Ok(())
        }
        _ => {
            let reason = d
                .reason
                .clone()
                .unwrap_or_else(|| "no reason recorded".into());
            let serving = d
                .previous_version
                .as_deref()
                .map(|p| format!("; {p} still serves {}", d.environment))
                .unwrap_or_default();
            let what = if d.state == DeploymentState::RolledBack {
                "was rolled back"
            } else if reason.starts_with("rejected by") || reason.starts_with("approval expired") {
                "was not approved"
            } else {
                "failed"
            };
            Err(CliError::new(
                exit::DEPLOY_FAILED,
                format!("deployment {} {what}{serving}\n{reason}", d.id),
            ))
        }
    }
}
