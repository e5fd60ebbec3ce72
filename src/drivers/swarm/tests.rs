//! The swarm driver's pure parts: service names and the service spec. The
//! driver against a real swarm is tested end to end (`tests/e2e/swarm.rs`).

use std::collections::BTreeMap;
use std::time::Duration;

use bollard::models::{
    EndpointPortConfigPublishModeEnum, TaskSpecRestartPolicyConditionEnum, TaskStatus,
};

use super::spec::{service_name, service_spec};
use super::tasks::describe_task;
use crate::config::{DockerConfig, SwarmConfig};
use crate::drivers::InstanceSpec;

fn instance() -> InstanceSpec {
    InstanceSpec {
        app: "shop".into(),
        environment: "production".into(),
        service: "web".into(),
        version: "v2".into(),
        instance_id: "production-web-v2-1-abcd".into(),
        replica: 1,
        command: Vec::new(),
        env: BTreeMap::from([("GREETING".to_owned(), "on {port} at {version}".to_owned())]),
        inherit_env: false,
        logs: Default::default(),
        workdir: std::env::temp_dir(),
        log_dir: std::env::temp_dir(),
        health: Default::default(),
        stop_timeout: Duration::from_secs(7),
        kind: crate::config::ServiceKind::Http,
    }
}

fn settings(swarm: SwarmConfig) -> DockerConfig {
    DockerConfig {
        image: "shop:{version}".into(),
        port: Some(8080),
        volumes: Vec::new(),
        stop_signal: "SIGINT".into(),
        memory_bytes: Some(64 * 1024 * 1024),
        nano_cpus: Some(500_000_000),
        pull: false,
        swarm: Some(swarm),
    }
}

#[test]
fn names_are_what_swarm_allows() {
    assert_eq!(
        service_name("shop", "production", "web", "v1.2.3"),
        "shop-production-web-v1-2-3"
    );
    let long = service_name("shop", "production", "web", &"x".repeat(100));
    assert_eq!(long.len(), 63, "{long}");
    assert!(long.starts_with("shop-production-web-xxx"), "{long}");
    // Two long versions differing at the end get two names.
    let other = service_name("shop", "production", "web", &format!("{}y", "x".repeat(99)));
    assert_ne!(long, other);
}

#[test]
fn the_spec_publishes_in_host_mode_runs_the_image_by_id_and_carries_the_labels() {
    let swarm = SwarmConfig {
        constraints: vec!["node.role == manager".into()],
        health_command: vec!["/hello".into(), "--probe".into()],
        ..Default::default()
    };
    let spec = service_spec(&instance(), &settings(swarm), "shop:v2", "sha256:0123", 2);
    assert_eq!(spec.name.as_deref(), Some("shop-production-web-v2"));
    let labels = spec.labels.clone().unwrap_or_default();
    assert_eq!(labels["cutover.app"], "shop");
    assert_eq!(labels["cutover.environment"], "production");
    assert_eq!(labels["cutover.service"], "web");
    assert_eq!(labels["cutover.release"], "v2");
    assert_eq!(labels["cutover.image"], "shop:v2");
    let task = spec.task_template.clone().unwrap_or_default();
    let container = task.container_spec.clone().unwrap_or_default();
    assert_eq!(container.image.as_deref(), Some("sha256:0123"));
    assert_eq!(container.stop_signal.as_deref(), Some("SIGINT"));
    assert_eq!(container.stop_grace_period, Some(7_000_000_000));
    // No cutover label on the containers: the docker driver would take
    // them for its own strays.
    assert!(container.labels.is_none());
    let env = container.env.clone().unwrap_or_default();
    assert!(
        env.contains(&"GREETING=on 8080 at v2".to_owned()),
        "{env:?}"
    );
    assert!(env.contains(&"PORT=8080".to_owned()));
    assert!(env.contains(&"CUTOVER_VERSION=v2".to_owned()));
    assert!(env.contains(&"CUTOVER_INSTANCE={{.Service.Name}}.{{.Task.Slot}}".to_owned()));
    let health = container.health_check.clone().unwrap_or_default();
    assert_eq!(
        health.test,
        Some(vec!["CMD".into(), "/hello".into(), "--probe".into()])
    );
    assert_eq!(
        task.placement.and_then(|p| p.constraints),
        Some(vec!["node.role == manager".to_owned()])
    );
    assert_eq!(
        task.restart_policy.and_then(|r| r.condition),
        Some(TaskSpecRestartPolicyConditionEnum::ANY)
    );
    let limits = task.resources.and_then(|r| r.limits).unwrap_or_default();
    assert_eq!(limits.memory_bytes, Some(64 * 1024 * 1024));
    assert_eq!(limits.nano_cpus, Some(500_000_000));
    assert_eq!(
        spec.mode
            .and_then(|m| m.replicated)
            .and_then(|r| r.replicas),
        Some(2)
    );
    let ports = spec.endpoint_spec.and_then(|e| e.ports).unwrap_or_default();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].target_port, Some(8080));
    assert_eq!(ports[0].published_port, None, "each node picks a port");
    assert_eq!(
        ports[0].publish_mode,
        Some(EndpointPortConfigPublishModeEnum::HOST)
    );
}

#[test]
fn without_a_health_command_swarm_checks_nothing_of_its_own() {
    let spec = service_spec(
        &instance(),
        &settings(SwarmConfig::default()),
        "shop:v2",
        "sha256:0123",
        1,
    );
    let container = spec
        .task_template
        .and_then(|t| t.container_spec)
        .unwrap_or_default();
    assert!(container.health_check.is_none());
}

#[test]
fn a_failed_task_is_described_with_swarm_s_words() {
    let task = bollard::models::Task {
        status: Some(TaskStatus {
            state: Some(bollard::models::TaskState::FAILED),
            err: Some("task: non-zero exit (1)".into()),
            container_status: Some(bollard::models::ContainerStatus {
                exit_code: Some(1),
                ..Default::default()
            }),
            ..Default::default()
        }),
        ..Default::default()
    };
    assert_eq!(
        describe_task(&task),
        "task failed: exit status 1 (task: non-zero exit (1))"
    );
}

#[test]
fn a_workers_spec_is_its_environments_long_lived_service_with_swarms_rolling_update() {
    let worker = InstanceSpec {
        kind: crate::config::ServiceKind::Worker,
        ..instance()
    };
    let swarm = SwarmConfig {
        update_parallelism: 2,
        update_delay: Duration::from_secs(3),
        update_monitor: Duration::from_secs(10),
        ..SwarmConfig::default()
    };
    let spec = service_spec(&worker, &settings(swarm), "shop:v2", "sha256:0123", 4);
    assert_eq!(spec.name.as_deref(), Some("shop-production-web"));
    let labels = spec.labels.clone().unwrap_or_default();
    assert_eq!(labels["cutover.in-place"], "true");
    assert_eq!(labels["cutover.release"], "v2");
    let update = spec.update_config.clone().expect("update_config");
    assert_eq!(update.parallelism, Some(2));
    assert_eq!(update.delay, Some(3_000_000_000));
    assert_eq!(update.monitor, Some(10_000_000_000));
    assert_eq!(
        update.failure_action,
        Some(bollard::models::ServiceSpecUpdateConfigFailureActionEnum::ROLLBACK)
    );
    assert_eq!(update.max_failure_ratio, Some(0.0));
    assert!(spec.rollback_config.is_some());
    // An http release's service has neither, nor the in-place label.
    let web = service_spec(
        &instance(),
        &settings(SwarmConfig::default()),
        "shop:v2",
        "sha256:0123",
        2,
    );
    assert!(web.update_config.is_none());
    assert!(
        !web.labels
            .unwrap_or_default()
            .contains_key("cutover.in-place")
    );
}
