//! The gauges of what stands now, computed at each scrape from the live
//! state (each environment's route table, live instances and releases), the
//! `instances` table and the backup manifests, and written by `text.rs`.

use std::collections::{BTreeMap, BTreeSet};

use super::backups;
use super::text::Family;
use crate::config::ServiceKind;
use crate::runtime::Daemon;
use crate::runtime::EnvRuntime;
use crate::store::InstanceState;

/// `1`, with the running cutover's `version`.
pub const BUILD_INFO: &str = "cutover_build_info";
/// `1` per release a service's track routes to (workers: runs).
pub const RELEASE_INFO: &str = "cutover_release_info";
/// The canary's share of a service's traffic, 0 to 1.
pub const CANARY_WEIGHT_RATIO: &str = "cutover_canary_weight_ratio";
/// The instances the state store records, by state.
pub const INSTANCES: &str = "cutover_instances";
/// `1` while a release of the environment holds (the store cannot be written).
pub const DEPLOYMENT_HELD: &str = "cutover_deployment_held";
/// Since when a deployment waits for people.
pub const DEPLOYMENT_WAITING_SINCE: &str = "cutover_deployment_waiting_since_timestamp_seconds";

/// Every state of [`INSTANCES`].
const STATES: &[InstanceState] = &[
    InstanceState::Starting,
    InstanceState::Ready,
    InstanceState::Serving,
    InstanceState::Idle,
    InstanceState::Draining,
    InstanceState::Stopped,
    InstanceState::Failed,
];

/// Appends the gauges of `daemon` to `out`.
pub(super) async fn render(daemon: &Daemon, out: &mut String) {
    let mut build = Family::gauge(
        BUILD_INFO,
        "Always 1; the version label is the running cutover's version.",
    );
    build.push(vec![("version", env!("CARGO_PKG_VERSION").to_owned())], 1.0);
    let mut release = Family::gauge(
        RELEASE_INFO,
        "1 for each version a service's track routes to now (workers: runs), by environment, service, version and track (stable, canary).",
    );
    let mut weight = Family::gauge(
        CANARY_WEIGHT_RATIO,
        "Share of a service's traffic the proxy sends to its canary track now, 0 to 1.",
    );
    let mut instances = Family::gauge(
        INSTANCES,
        "Instances the state store records, by environment, service and state (starting, ready, serving, idle, draining, stopped, failed).",
    );
    let mut held = Family::gauge(
        DEPLOYMENT_HELD,
        "1 while a release of the environment holds because the state store cannot be written, else 0.",
    );
    let mut waiting = Family::gauge(
        DEPLOYMENT_WAITING_SINCE,
        "Unix time since which a deployment of the environment waits for people, by waiting_for (approval, switch, operator); absent when none waits.",
    );
    for env in daemon.environments() {
        routes(daemon, env, &mut release, &mut weight);
        records(daemon, env, &mut instances).await;
        held.push(
            vec![("environment", env.name().to_owned())],
            if env.releases.held().is_some() {
                1.0
            } else {
                0.0
            },
        );
        waits(daemon, env, &mut waiting).await;
    }
    for family in [&build, &release, &weight, &instances, &held, &waiting] {
        family.write_to(out);
    }
    backups::render(daemon, out).await;
}

/// The releases each track routes to and the canary weights, from the
/// route table and the live set; workers from the live set alone.
fn routes(daemon: &Daemon, env: &EnvRuntime, release: &mut Family, weight: &mut Family) {
    let live = env.instances();
    let version_of = |id: &str| live.iter().find(|l| l.id == id).map(|l| l.version.clone());
    let table = env.proxy().table();
    let name = env.name().to_owned();
    for service in table.service_names() {
        let Some(view) = table.service(&service) else {
            continue;
        };
        for (track, list) in [("stable", &view.stable), ("canary", &view.canary)] {
            let versions: BTreeSet<String> = list
                .iter()
                .filter_map(|i| version_of(i.id.as_str()))
                .collect();
            for version in versions {
                release.push(labels(&name, &service, version, track), 1.0);
            }
        }
        weight.push(
            vec![("environment", name.clone()), ("service", service.clone())],
            f64::from(view.weights.canary_bp()) / 10_000.0,
        );
    }
    for (service, config) in daemon.config().services_in(&name) {
        if config.kind != ServiceKind::Worker {
            continue;
        }
        let versions: BTreeSet<String> = live
            .iter()
            .filter(|l| &l.service == service)
            .map(|l| l.version.clone())
            .collect();
        for version in versions {
            release.push(labels(&name, service, version, "stable"), 1.0);
        }
    }
}

fn labels(
    env: &str,
    service: &str,
    version: String,
    track: &'static str,
) -> Vec<(&'static str, String)> {
    vec![
        ("environment", env.to_owned()),
        ("service", service.to_owned()),
        ("version", version),
        ("track", track.to_owned()),
    ]
}

/// The store's instance records by service and state; every state of every
/// configured service is present (0 when none).
async fn records(daemon: &Daemon, env: &EnvRuntime, family: &mut Family) {
    let records = match daemon.store().instances(Some(env.name())).await {
        Ok(records) => records,
        Err(e) => {
            tracing::warn!(env = env.name(), error = %e, "metrics: cannot read the instances");
            return;
        }
    };
    let mut counts: BTreeMap<(String, &'static str), u32> = BTreeMap::new();
    for service in daemon.config().services_in(env.name()).keys() {
        for state in STATES {
            counts.insert((service.clone(), state.as_str()), 0);
        }
    }
    for r in records {
        *counts.entry((r.service, r.state.as_str())).or_default() += 1;
    }
    for ((service, state), n) in counts {
        family.push(
            vec![
                ("environment", env.name().to_owned()),
                ("service", service),
                ("state", state.to_owned()),
            ],
            f64::from(n),
        );
    }
}

/// Deployments waiting for approvals, for `cutover switch`, or for an
/// operator to end them: since the event that began the wait (else the
/// deployment's start).
async fn waits(daemon: &Daemon, env: &EnvRuntime, family: &mut Family) {
    let releases = &env.releases;
    let mut waiting = Vec::new();
    if let Some(h) = releases.rolling().filter(|h| h.is_awaiting()) {
        waiting.push(("approval", h.id, "awaiting_approval"));
    }
    if let Some(a) = releases.awaiting_switch() {
        waiting.push(("switch", a.deployment, "awaiting_switch"));
    }
    if let Some(s) = releases.stuck() {
        waiting.push(("operator", s.id, "needs_operator"));
    }
    for (what, id, kind) in waiting {
        let since = match daemon.store().events(id).await {
            Ok(events) => events.iter().rev().find(|e| e.kind == kind).map(|e| e.at),
            Err(e) => {
                tracing::warn!(deployment = id, error = %e, "metrics: cannot read the events");
                None
            }
        };
        let since = match since {
            Some(at) => Some(at),
            None => daemon
                .store()
                .deployment(id)
                .await
                .ok()
                .flatten()
                .map(|d| d.started_at),
        };
        if let Some(at) = since {
            #[allow(clippy::cast_precision_loss)] // unix milliseconds: below 2^52
            let seconds = at.as_millisecond() as f64 / 1000.0;
            family.push(
                vec![
                    ("environment", env.name().to_owned()),
                    ("waiting_for", what.to_owned()),
                ],
                seconds,
            );
        }
    }
}
