//! The Swarm service spec of one release of a service: its name and labels,
//! the image (by the engine's id, so no node tries to pull it), the
//! environment (`PORT`, `CUTOVER_*`, the service's `env`), the container port
//! published in host mode on a port each node picks, Swarm's health check
//! (`swarm.health_command`), restart policy, placement constraints, resource
//! limits, stop signal and grace, and json-file logs. A worker's service is
//! its environment's long-lived one ([`worker_service_name`]), with Swarm's
//! `update_config` and `rollback_config` from `[service.NAME.swarm]`.

use std::collections::HashMap;
use std::time::Duration;

use bollard::models::{
    EndpointPortConfig, EndpointPortConfigProtocolEnum, EndpointPortConfigPublishModeEnum,
    EndpointSpec, HealthConfig, Limit, ServiceSpec, ServiceSpecMode, ServiceSpecModeReplicated,
    ServiceSpecRollbackConfig, ServiceSpecRollbackConfigFailureActionEnum,
    ServiceSpecRollbackConfigOrderEnum, ServiceSpecUpdateConfig,
    ServiceSpecUpdateConfigFailureActionEnum, ServiceSpecUpdateConfigOrderEnum, TaskSpec,
    TaskSpecContainerSpec, TaskSpecLogDriver, TaskSpecPlacement, TaskSpecResources,
    TaskSpecRestartPolicy, TaskSpecRestartPolicyConditionEnum,
};
use sha2::{Digest, Sha256};

use crate::config::{DockerConfig, ServiceKind, UpdateFailureAction};
use crate::drivers::InstanceSpec;
use crate::drivers::docker::labels;

/// The longest Swarm service name (Swarm refuses longer).
const MAX_NAME: usize = 63;
/// What a name too long keeps of its start: room for `-` and 12 hex digits.
const KEPT: usize = MAX_NAME - 13;

/// How long Swarm waits before restarting a task that exited.
const RESTART_DELAY: Duration = Duration::from_secs(1);

/// The Swarm service of a release: `APP-ENV-SERVICE-VERSION`, anything
/// Swarm does not allow made `-`; a name too long keeps its start and ends
/// in a hash of the whole.
pub fn service_name(app: &str, environment: &str, service: &str, version: &str) -> String {
    clean_name(&format!("{app}-{environment}-{service}-{version}"))
}

/// `full` with anything Swarm does not allow made `-`; too long, its start
/// and a hash of the whole.
fn clean_name(full: &str) -> String {
    let clean: String = full
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let clean = clean.trim_start_matches('-').to_owned();
    if clean.len() <= MAX_NAME && !clean.is_empty() {
        return clean;
    }
    let hash = Sha256::digest(full.as_bytes());
    let hex: String = hash.iter().take(6).map(|b| format!("{b:02x}")).collect();
    let head: String = clean.chars().take(KEPT).collect();
    format!("{head}-{hex}")
}

/// The Swarm service an instance runs in: its release's
/// (`APP-ENV-SERVICE-VERSION`) for an http service; for a worker, the one
/// long-lived service of its environment (`APP-ENV-SERVICE`) that every
/// release is rolled into in place.
pub fn name_for(spec: &InstanceSpec) -> String {
    match spec.kind {
        ServiceKind::Worker => worker_service_name(&spec.app, &spec.environment, &spec.service),
        ServiceKind::Http => {
            service_name(&spec.app, &spec.environment, &spec.service, &spec.version)
        }
    }
}

/// The long-lived Swarm service of a worker: `APP-ENV-SERVICE`, made like
/// [`service_name`].
pub fn worker_service_name(app: &str, environment: &str, service: &str) -> String {
    clean_name(&format!("{app}-{environment}-{service}"))
}

/// The labels of a release's Swarm service.
pub(super) fn service_labels(spec: &InstanceSpec, image: &str) -> HashMap<String, String> {
    HashMap::from([
        (labels::APP.to_owned(), spec.app.clone()),
        (labels::ENVIRONMENT.to_owned(), spec.environment.clone()),
        (labels::SERVICE.to_owned(), spec.service.clone()),
        (labels::RELEASE.to_owned(), spec.version.clone()),
        (IMAGE_LABEL.to_owned(), image.to_owned()),
    ])
    .into_iter()
    .chain(
        (spec.kind == ServiceKind::Worker).then(|| (IN_PLACE_LABEL.to_owned(), "true".to_owned())),
    )
    .collect()
}

/// Marks a worker's long-lived Swarm service, whose release a deploy
/// changes in place with Swarm's rolling update.
pub(super) const IN_PLACE_LABEL: &str = "cutover.in-place";

/// The image as written (the spec carries the engine's id).
pub(super) const IMAGE_LABEL: &str = "cutover.image";

/// Nanoseconds, as Swarm takes durations, saturating.
fn nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// The spec of the release's Swarm service with `replicas` tasks.
/// `image_ref` is what the tasks run (the image's id, or a reference with a
/// digest); `image` the reference as written, kept as a label.
pub(super) fn service_spec(
    spec: &InstanceSpec,
    settings: &DockerConfig,
    image: &str,
    image_ref: &str,
    replicas: u64,
) -> ServiceSpec {
    let swarm = settings.swarm.clone().unwrap_or_default();
    let port_text = settings.port.map(|p| p.to_string()).unwrap_or_default();
    let fill = |v: &str| {
        v.replace("{port}", &port_text)
            .replace("{version}", &spec.version)
    };
    let mut env: Vec<String> = spec
        .env
        .iter()
        .map(|(k, v)| format!("{k}={}", fill(v)))
        .collect();
    if let Some(port) = settings.port {
        env.push(format!("PORT={port}"));
    }
    env.extend([
        format!("CUTOVER_VERSION={}", spec.version),
        // Swarm fills the template per task: SERVICE.SLOT.
        "CUTOVER_INSTANCE={{.Service.Name}}.{{.Task.Slot}}".to_owned(),
        format!("CUTOVER_SERVICE={}", spec.service),
        format!("CUTOVER_ENVIRONMENT={}", spec.environment),
        format!("CUTOVER_APP={}", spec.app),
    ]);
    let h = &spec.health;
    let health_check = match swarm.health_command.is_empty() {
        false => Some(HealthConfig {
            test: Some(
                std::iter::once("CMD".to_owned())
                    .chain(swarm.health_command.iter().cloned())
                    .collect(),
            ),
            interval: Some(nanos(h.interval)),
            timeout: Some(nanos(h.timeout)),
            retries: Some(i64::from(h.unhealthy)),
            start_period: Some(nanos(h.start_timeout)),
            start_interval: None,
        }),
        true => None,
    };
    let ports = settings.port.map(|port| {
        vec![EndpointPortConfig {
            protocol: Some(EndpointPortConfigProtocolEnum::TCP),
            target_port: Some(i64::from(port)),
            // None: each task's node picks a free port (host mode).
            published_port: None,
            publish_mode: Some(EndpointPortConfigPublishModeEnum::HOST),
            name: None,
        }]
    });
    let log = crate::drivers::docker::log_config(spec.logs);
    ServiceSpec {
        name: Some(name_for(spec)),
        labels: Some(service_labels(spec, image)),
        task_template: Some(TaskSpec {
            container_spec: Some(TaskSpecContainerSpec {
                image: Some(image_ref.to_owned()),
                env: Some(env),
                stop_signal: Some(settings.stop_signal.clone()),
                stop_grace_period: Some(nanos(spec.stop_timeout)),
                health_check,
                ..Default::default()
            }),
            resources: Some(TaskSpecResources {
                limits: Some(Limit {
                    nano_cpus: settings.nano_cpus,
                    memory_bytes: settings.memory_bytes,
                    pids: None,
                }),
                ..Default::default()
            }),
            restart_policy: Some(TaskSpecRestartPolicy {
                condition: Some(TaskSpecRestartPolicyConditionEnum::ANY),
                delay: Some(nanos(RESTART_DELAY)),
                max_attempts: None,
                window: None,
            }),
            placement: (!swarm.constraints.is_empty()).then(|| TaskSpecPlacement {
                constraints: Some(swarm.constraints.clone()),
                ..Default::default()
            }),
            log_driver: Some(TaskSpecLogDriver {
                name: log.typ,
                options: log.config,
            }),
            ..Default::default()
        }),
        mode: Some(ServiceSpecMode {
            replicated: Some(ServiceSpecModeReplicated {
                replicas: Some(i64::try_from(replicas).unwrap_or(i64::MAX)),
            }),
            ..Default::default()
        }),
        update_config: (spec.kind == ServiceKind::Worker).then(|| ServiceSpecUpdateConfig {
            parallelism: Some(i64::from(swarm.update_parallelism)),
            delay: Some(nanos(swarm.update_delay)),
            failure_action: Some(match swarm.update_failure_action {
                UpdateFailureAction::Rollback => ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK,
                UpdateFailureAction::Pause => ServiceSpecUpdateConfigFailureActionEnum::PAUSE,
            }),
            monitor: Some(nanos(swarm.update_monitor)),
            max_failure_ratio: Some(0.0),
            order: Some(ServiceSpecUpdateConfigOrderEnum::START_FIRST),
        }),
        rollback_config: (spec.kind == ServiceKind::Worker).then(|| ServiceSpecRollbackConfig {
            parallelism: Some(0),
            delay: Some(0),
            failure_action: Some(ServiceSpecRollbackConfigFailureActionEnum::PAUSE),
            monitor: Some(nanos(swarm.update_monitor)),
            max_failure_ratio: Some(0.0),
            order: Some(ServiceSpecRollbackConfigOrderEnum::START_FIRST),
        }),
        endpoint_spec: ports.map(|ports| EndpointSpec {
            mode: None,
            ports: Some(ports),
        }),
        ..Default::default()
    }
}
