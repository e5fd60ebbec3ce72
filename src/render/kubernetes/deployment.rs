//! The Deployments: one per release of an HTTP service
//! (`NAME-VERSION`, selecting its release by label, so two releases run side
//! by side during a rollout), and one per worker (`NAME`, updated in place
//! by Kubernetes' own rolling update with `maxUnavailable: 0`). Readiness is
//! the service's `health` as a readinessProbe; the image is the docker
//! settings' `image` for the version.

use std::collections::BTreeMap;
use std::time::Duration;

use k8s_openapi::api::apps::v1::{
    Deployment, DeploymentSpec, DeploymentStrategy, RollingUpdateDeployment,
};
use k8s_openapi::api::core::v1::{
    Container, ContainerPort, ExecAction, HTTPGetAction, PodSpec, PodTemplateSpec, Probe,
    ResourceRequirements,
};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::env::{self, SecretKeys};
use super::{Context, RenderError, names};
use crate::config::{DockerConfig, ServiceConfig, ServiceKind};

/// Whole seconds for a Kubernetes field, rounded up, at least 1 (Kubernetes
/// has no finer unit; a `500ms` interval becomes 1 s).
fn seconds(duration: Duration) -> i32 {
    let whole = duration.as_secs() + u64::from(duration.subsec_nanos() > 0);
    i32::try_from(whole.max(1)).unwrap_or(i32::MAX)
}

/// The readinessProbe of `service`: its `health.path` over HTTP for an
/// HTTP service; its `health.command` for a worker that has one (`None`
/// without: a worker is ready while it runs, as with the other drivers).
fn readiness(service: &ServiceConfig) -> Option<Probe> {
    let health = &service.health;
    let probe = Probe {
        period_seconds: Some(seconds(health.interval)),
        timeout_seconds: Some(seconds(health.timeout)),
        success_threshold: Some(i32::try_from(health.healthy).unwrap_or(i32::MAX)),
        failure_threshold: Some(i32::try_from(health.unhealthy).unwrap_or(i32::MAX)),
        ..Probe::default()
    };
    match service.kind {
        ServiceKind::Http => Some(Probe {
            http_get: Some(HTTPGetAction {
                path: Some(health.path.clone()),
                port: IntOrString::String("http".to_owned()),
                scheme: Some("HTTP".to_owned()),
                ..HTTPGetAction::default()
            }),
            ..probe
        }),
        ServiceKind::Worker if !health.command.is_empty() => Some(Probe {
            exec: Some(ExecAction {
                command: Some(health.command.clone()),
            }),
            ..probe
        }),
        ServiceKind::Worker => None,
    }
}

/// The container of `service` at `version`.
fn container(
    cx: &Context<'_>,
    name: &str,
    service: &ServiceConfig,
    docker: &DockerConfig,
    env: &BTreeMap<String, String>,
    keys: &mut SecretKeys,
) -> Result<Container, RenderError> {
    let image = cx.image(docker);
    let mut extra = Vec::new();
    let ports = match docker.port {
        Some(port) => {
            // The docker driver gives the container its port as PORT too.
            extra.push(("PORT", port.to_string()));
            Some(vec![ContainerPort {
                name: Some("http".to_owned()),
                container_port: i32::from(port),
                protocol: Some("TCP".to_owned()),
                ..ContainerPort::default()
            }])
        }
        None => None,
    };
    let env = env::container_env(name, env, &extra, &cx.secret, keys)?;
    let mut limits = BTreeMap::new();
    if let Some(bytes) = docker.memory_bytes {
        limits.insert("memory".to_owned(), Quantity(bytes.to_string()));
    }
    if let Some(nano) = docker.nano_cpus {
        limits.insert(
            "cpu".to_owned(),
            Quantity(format!("{}m", (nano / 1_000_000).max(1))),
        );
    }
    Ok(Container {
        name: names::dns_label(name, "the service's name")?,
        image: Some(image),
        image_pull_policy: Some(
            if docker.pull {
                "Always"
            } else {
                "IfNotPresent"
            }
            .to_owned(),
        ),
        ports,
        env: (!env.is_empty()).then_some(env),
        readiness_probe: readiness(service),
        resources: (!limits.is_empty()).then(|| ResourceRequirements {
            limits: Some(limits),
            ..ResourceRequirements::default()
        }),
        ..Container::default()
    })
}

/// A Deployment named `name` running `replicas` pods labelled `pod_labels`
/// and selected by `selector`.
fn deployment(
    metadata: ObjectMeta,
    service: &ServiceConfig,
    selector: BTreeMap<String, String>,
    pod_labels: BTreeMap<String, String>,
    container: Container,
) -> Deployment {
    Deployment {
        metadata,
        spec: Some(DeploymentSpec {
            replicas: Some(i32::try_from(service.replicas).unwrap_or(i32::MAX)),
            selector: LabelSelector {
                match_labels: Some(selector),
                match_expressions: None,
            },
            // Never fewer ready pods than asked for while pods are replaced.
            strategy: Some(DeploymentStrategy {
                type_: Some("RollingUpdate".to_owned()),
                rolling_update: Some(RollingUpdateDeployment {
                    max_surge: Some(IntOrString::Int(1)),
                    max_unavailable: Some(IntOrString::Int(0)),
                }),
            }),
            // `health.start_timeout`: how long a rollout may take to be
            // Available before Kubernetes reports it as failed.
            progress_deadline_seconds: Some(seconds(service.health.start_timeout)),
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    ..ObjectMeta::default()
                }),
                spec: Some(PodSpec {
                    containers: vec![container],
                    // The app talks to no Kubernetes API.
                    automount_service_account_token: Some(false),
                    termination_grace_period_seconds: Some(i64::from(seconds(
                        service.stop_timeout,
                    ))),
                    ..PodSpec::default()
                }),
            },
            ..DeploymentSpec::default()
        }),
        status: None,
    }
}

/// The Deployment of release `cx.version` of HTTP service `name`.
pub fn release(
    cx: &Context<'_>,
    name: &str,
    base: &str,
    service: &ServiceConfig,
    docker: &DockerConfig,
    env: &BTreeMap<String, String>,
    keys: &mut SecretKeys,
) -> Result<Deployment, RenderError> {
    let selector = names::release_labels(cx.app, cx.environment, name, cx.version)?;
    let deployment_name = names::dns_label(
        &format!("{base}-{}", cx.version),
        "the Deployment's name (service and version)",
    )?;
    let mut metadata = cx.meta(&deployment_name, true);
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(selector.clone());
    let mut pod_labels = cx.common_labels();
    pod_labels.extend(selector.clone());
    let container = container(cx, name, service, docker, env, keys)?;
    Ok(deployment(
        metadata, service, selector, pod_labels, container,
    ))
}

/// The Deployment of worker `name`: selected by app, environment and
/// service (a selector cannot change), its pods labelled with the release.
pub fn worker(
    cx: &Context<'_>,
    name: &str,
    base: &str,
    service: &ServiceConfig,
    docker: &DockerConfig,
    env: &BTreeMap<String, String>,
    keys: &mut SecretKeys,
) -> Result<Deployment, RenderError> {
    let selector = names::service_labels(cx.app, cx.environment, name)?;
    let release = names::release_labels(cx.app, cx.environment, name, cx.version)?;
    let mut metadata = cx.meta(base, true);
    metadata
        .labels
        .get_or_insert_with(BTreeMap::new)
        .extend(release.clone());
    let mut pod_labels = cx.common_labels();
    pod_labels.extend(release);
    let container = container(cx, name, service, docker, env, keys)?;
    Ok(deployment(
        metadata, service, selector, pod_labels, container,
    ))
}
