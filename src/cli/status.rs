//! `cutover status` (what serves where) and `cutover history` (past
//! deployments, newest first).

use std::path::Path;

use super::output;
use crate::exit::CliError;
use crate::label::printable;

/// `cutover status`.
pub async fn status(path: &Path, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let status = output::client(&config)?.status().await?;
    if json {
        return output::print_json(&status);
    }
    println!("app {} (cutover {})", status.app, status.cutover_version);
    for env in &status.environments {
        println!();
        println!("environment {} on http://{}", env.name, env.listen);
        if let Some(preview) = &env.preview_listen {
            println!("  preview   http://{preview} (the newest release of each service)");
        }
        match &env.serving {
            Some(v) => println!(
                "  serving   {v}{}",
                env.since.map(|s| format!(" since {s}")).unwrap_or_default()
            ),
            None => println!("  serving   nothing yet (cutover deploy VERSION)"),
        }
        if let Some(p) = &env.previous {
            println!("  previous  {p}");
        }
        if let Some(lock) = &env.lock {
            println!(
                "  locked    by {} ({}) since {}",
                printable(&lock.holder),
                printable(&lock.purpose),
                lock.since
            );
        }
        if let Some(lock) = &env.operator_lock {
            println!(
                "  LOCKED    by {} since {:.0}{}: {} (cutover unlock -e {})",
                printable(&lock.locked_by),
                lock.since,
                lock.until
                    .map(|u| format!(" until {u:.0}"))
                    .unwrap_or_default(),
                printable(&lock.reason),
                env.name
            );
        }
        if let Some(a) = &env.awaiting_approval {
            println!(
                "  awaiting  approval of deployment {id} ({}, asked by {}): `cutover approve {id}` or `cutover reject {id} --reason …`",
                printable(&a.version),
                printable(&a.requested_by),
                id = a.deployment_id
            );
        }
        if let Some(held) = &env.held {
            println!("  {held}");
        }
        let gate_at_switch = |id: i64| {
            env.awaiting_approval
                .as_ref()
                .is_some_and(|g| g.deployment_id == id)
        };
        if let Some(a) = env
            .awaiting_switch
            .as_ref()
            .filter(|a| gate_at_switch(a.deployment_id))
        {
            println!(
                "  awaiting switch: {} of {} is healthy and takes no traffic (deployment {}); \
                 another approver's `cutover approve {}` moves traffic to it, `cutover abort -e {}` stops it",
                a.service, a.version, a.deployment_id, a.deployment_id, env.name
            );
        } else if let Some(a) = &env.awaiting_switch {
            println!(
                "  awaiting switch: {} of {} is healthy and takes no traffic (deployment {}); \
                 `cutover switch -e {}` moves traffic to it, `cutover abort -e {}` stops it",
                a.service, a.version, a.deployment_id, env.name, env.name
            );
        }
        if let Some(why) = &env.needs_operator {
            println!(
                "  needs an operator: {} (cutover abort | cutover rollback)",
                printable(why)
            );
        }
        for t in &env.traffic {
            let mut line = format!(
                "  traffic   {}: {}% on {}",
                t.service,
                t.stable_percent,
                list_or_none(&t.stable_versions)
            );
            if t.canary_percent > 0.0 || !t.canary_versions.is_empty() {
                line.push_str(&format!(
                    ", {}% on {} (canary)",
                    t.canary_percent,
                    list_or_none(&t.canary_versions)
                ));
            }
            println!("{line}");
        }
        for i in &env.instances {
            println!(
                "  {:<8} {:<10} {:<9} {:<22} in-flight {}  {}",
                i.service,
                i.version,
                i.state,
                i.addr.as_deref().unwrap_or("-"),
                i.in_flight,
                i.id
            );
        }
        for ev in &env.edge_events {
            println!(
                "  event     {} {} {}",
                ev.at,
                ev.kind,
                printable(&ev.message)
            );
        }
    }
    Ok(())
}

/// `cutover history`.
pub async fn history(
    path: &Path,
    environment: Option<&str>,
    limit: u32,
    with_events: bool,
    json: bool,
) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let client = output::client(&config)?;
    let list = client.deployments(environment, limit).await?;
    if json && !with_events {
        return output::print_json(&list);
    }
    let mut details = Vec::new();
    for d in &list {
        if with_events {
            details.push(client.deployment(d.id).await?);
        }
    }
    if json {
        return output::print_json(&details);
    }
    if list.is_empty() {
        println!("no deployments yet");
    }
    // Stored values may predate the API's cleaning (`crate::label`): every
    // client-supplied or free-text field is made printable again here.
    for (n, d) in list.iter().enumerate() {
        let (state, kind) = (d.state.as_str(), d.kind.as_str());
        println!(
            "#{:<4} {:<11} {:<9} {:<12} {} -> {}  by {} at {}",
            d.id,
            state,
            kind,
            d.environment,
            printable(d.previous_version.as_deref().unwrap_or("-")),
            printable(&d.version),
            printable(&d.requested_by),
            d.started_at
        );
        if let Some(reason) = d.reason.as_deref().filter(|_| !with_events) {
            println!("      {}", printable(reason.lines().next().unwrap_or("")));
        }
        if let Some(detail) = details.get(n) {
            for ev in &detail.events {
                println!(
                    "      {} {:<17} {}",
                    ev.at,
                    ev.kind,
                    crate::label::printable_lines(&ev.message, "\n        ")
                );
            }
        }
    }
    Ok(())
}

fn list_or_none(versions: &[String]) -> String {
    if versions.is_empty() {
        "no instance".to_owned()
    } else {
        versions.join(", ")
    }
}
