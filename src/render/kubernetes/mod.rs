//! `cutover render kubernetes`: the Kubernetes objects one environment of a
//! config would run as, under the design in docs/kubernetes.md. Per HTTP
//! service, a Deployment of the release (`NAME-VERSION`), a Service per
//! track (`NAME-stable`, `NAME-canary`) and a Gateway API HTTPRoute whose
//! weights are the canary's steps (stable 100, canary 0 at rest); per
//! worker, a Deployment updated in place; and the ServiceAccount, Role and
//! RoleBinding the in-cluster driver would run as. Values that may be
//! secret are never written ([`env`]): they are read from a Secret that
//! must be created, and the output says which keys it must hold.
//!
//! Only services that run a container image (`driver = "docker"`) can be
//! rendered; anything the config says that Kubernetes objects cannot express
//! is refused with a [`RenderError`] naming the service and what to change.
//! This module talks to no cluster.

pub mod deployment;
pub mod env;
pub mod httproute;
pub mod names;
pub mod rbac;
pub mod references;
pub mod service;
mod yaml;

#[cfg(test)]
mod tests;

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

use self::env::SecretKeys;
pub use self::references::References;
use crate::config::{Config, DockerConfig, DriverKind, ServiceKind};

/// Why a config cannot be rendered. Each says what to change.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    /// The config names no such environment, or needs `-e`.
    #[error(transparent)]
    Environment(#[from] crate::config::ConfigError),
    /// `--version` breaks cutover's version pattern.
    #[error(transparent)]
    Version(#[from] crate::label::VersionError),
    /// A service runs no container image.
    #[error(
        "service `{service}` uses the {driver} driver, and Kubernetes runs container images: give [service.{service}] `driver = \"docker\"` and `image = \"REGISTRY/NAME:{{version}}\"` (and `port` for an http service) to render it"
    )]
    NoImage {
        /// The service.
        service: String,
        /// Its driver.
        driver: DriverKind,
    },
    /// A service mounts volumes.
    #[error(
        "service `{service}` has `volumes`, which `cutover render kubernetes` cannot express yet (a PersistentVolumeClaim per volume is not designed): remove them from the environment you render, and mount storage with a patch of the rendered Deployment"
    )]
    Volumes {
        /// The service.
        service: String,
    },
    /// An image written with `${VAR}`.
    #[error(
        "the image of service `{service}` is `{image}`: `cutover render` reads no environment variable (what it writes must not depend on the machine it runs on), so write the image reference without ${{…}}"
    )]
    ImageVariable {
        /// The service.
        service: String,
        /// The image as written.
        image: String,
    },
    /// A worker's health command would carry a secret into a probe.
    #[error(
        "the health command of service `{service}` uses ${{VAR}} or a URL with a password, and a probe cannot read a Secret: use a command that reads the secret from the container's environment"
    )]
    SecretInProbe {
        /// The service.
        service: String,
    },
    /// A `host` a Gateway API route cannot match.
    #[error(
        "the host `{host}` of service `{service}` cannot be a Gateway API hostname (letters, digits, '-' and '.', optionally starting with '*.', no IP address): write a DNS name"
    )]
    Host {
        /// The service.
        service: String,
        /// The host as written.
        host: String,
    },
    /// A name Kubernetes does not accept as an object name.
    #[error(
        "{what} `{name}` is not a Kubernetes name (a DNS label: lowercase letters, digits and '-', starting with a letter, 63 characters at most): rename it"
    )]
    Name {
        /// Which name.
        what: String,
        /// The name after mapping (`_`, `.`, `+` to `-`, lowercase).
        name: String,
    },
    /// A value Kubernetes does not accept as a label value.
    #[error(
        "{what} `{value}` is not a Kubernetes label value (63 characters at most of letters, digits, '.', '_' and '-', starting and ending with a letter or digit)"
    )]
    LabelValue {
        /// Which value.
        what: String,
        /// The value.
        value: String,
    },
    /// An env value reads `${VAR}` where `VAR` is also a plain env entry.
    #[error(
        "service `{service}`: env `{name}` reads ${{{var}}} from the Secret, and `{var}` is also an env entry of its own with another value: rename one of them"
    )]
    EnvClash {
        /// The service.
        service: String,
        /// The env entry that reads the reference.
        name: String,
        /// The variable.
        var: String,
    },
    /// An object could not be turned into JSON (a bug).
    #[error("cannot serialize the {kind} {name}: {source}")]
    Serialize {
        /// Its kind.
        kind: &'static str,
        /// Its name.
        name: String,
        /// Why.
        source: serde_json::Error,
    },
}

/// What to render.
#[derive(Debug, Clone)]
pub struct Options {
    /// The environment (may be `None` when the config has only one).
    pub environment: Option<String>,
    /// The release's version: the image tag (`{version}`) and the release label.
    pub version: String,
    /// The namespace of every object; default `APP-ENV`.
    pub namespace: Option<String>,
    /// Also render the Namespace object.
    pub create_namespace: bool,
    /// The Gateway the routes attach to: `NAME` or `NAMESPACE/NAME`.
    pub gateway: String,
    /// The Secret that holds the values not written; default `APP-ENV`.
    pub secret: Option<String>,
}

/// One rendered object.
#[derive(Debug, Clone, Serialize)]
pub struct Manifest {
    /// Its kind (`Deployment`, `HTTPRoute`, …).
    pub kind: &'static str,
    /// Its name.
    pub name: String,
    /// What a reader must know or do, written as comments above it.
    pub notes: Vec<String>,
    /// The object.
    pub object: serde_json::Value,
}

/// Everything rendered for one environment.
#[derive(Debug, Clone, Serialize)]
pub struct Rendered {
    /// The environment.
    pub environment: String,
    /// The namespace of the objects.
    pub namespace: String,
    /// The objects, in the order to apply them.
    pub manifests: Vec<Manifest>,
    /// The keys each Secret the objects read must hold (the Secrets are not
    /// rendered: their values are not cutover's to write).
    pub secrets: SecretKeys,
}

/// What every builder needs to know.
pub struct Context<'a> {
    /// `[app] name`.
    pub app: &'a str,
    /// The environment's name.
    pub environment: &'a str,
    /// The release's version.
    pub version: &'a str,
    /// The objects' namespace.
    pub namespace: String,
    /// The Secret values are read from.
    pub secret: String,
}

impl Context<'_> {
    /// Metadata with `name`, the namespace when `namespaced`, and the
    /// labels every object carries.
    pub fn meta(&self, name: &str, namespaced: bool) -> ObjectMeta {
        ObjectMeta {
            name: Some(name.to_owned()),
            namespace: namespaced.then(|| self.namespace.clone()),
            labels: Some(self.common_labels()),
            ..ObjectMeta::default()
        }
    }

    /// The labels every object carries.
    pub fn common_labels(&self) -> BTreeMap<String, String> {
        names::common_labels(self.app)
    }

    /// The image of `docker` for this version (`{version}` filled).
    pub fn image(&self, docker: &DockerConfig) -> String {
        docker.image_for(self.version)
    }
}

/// A Gateway API hostname: `host` lowercased, checked against the API's
/// pattern, not an IP address.
fn hostname(service: &str, host: &str) -> Result<String, RenderError> {
    let lower = host.to_ascii_lowercase();
    let bare = lower.strip_prefix("*.").unwrap_or(&lower);
    let label_ok = |label: &str| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    };
    let is_ip = bare.parse::<std::net::IpAddr>().is_ok()
        || bare
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok();
    if !is_ip && lower.len() <= 253 && bare.split('.').all(label_ok) {
        Ok(lower)
    } else {
        Err(RenderError::Host {
            service: service.to_owned(),
            host: host.to_owned(),
        })
    }
}

fn manifest<T: Serialize>(
    kind: &'static str,
    name: &str,
    notes: Vec<String>,
    object: &T,
) -> Result<Manifest, RenderError> {
    let object = serde_json::to_value(object).map_err(|source| RenderError::Serialize {
        kind,
        name: name.to_owned(),
        source,
    })?;
    Ok(Manifest {
        kind,
        name: name.to_owned(),
        notes,
        object,
    })
}

/// Renders the objects of one environment of `config`.
///
/// `config` comes from [`crate::config::parse_unexpanded`] and `references`
/// from the same text: the values written with `${VAR}` are read from there.
pub fn render(
    config: &Config,
    references: &References,
    options: &Options,
) -> Result<Rendered, RenderError> {
    crate::label::check_version(&options.version)?;
    let (environment, _) = config.environment(options.environment.as_deref())?;
    let app = config.app.name.as_str();
    let default_name = || names::dns_label(&format!("{app}-{environment}"), "APP-ENVIRONMENT");
    let namespace = match &options.namespace {
        Some(namespace) => names::dns_label(namespace, "--namespace")?,
        None => default_name()?,
    };
    let secret = match &options.secret {
        Some(secret) => names::dns_label(secret, "--secret")?,
        None => default_name()?,
    };
    let cx = Context {
        app,
        environment,
        version: &options.version,
        namespace,
        secret,
    };
    let services = config.services_in(environment);
    // Every service first, so a config that cannot render says so before
    // anything is printed.
    let mut runnable = Vec::new();
    for (name, service) in services {
        if let Some(image) = references.image(name) {
            return Err(RenderError::ImageVariable {
                service: name.clone(),
                image: image.to_owned(),
            });
        }
        let Some(docker) = service.docker.as_ref() else {
            return Err(RenderError::NoImage {
                service: name.clone(),
                driver: service.driver,
            });
        };
        if !docker.volumes.is_empty() {
            return Err(RenderError::Volumes {
                service: name.clone(),
            });
        }
        if references.probe_has_reference(environment, name)
            || service
                .health
                .command
                .iter()
                .any(|word| crate::config::redact_urls_in(word) != *word)
        {
            return Err(RenderError::SecretInProbe {
                service: name.clone(),
            });
        }
        let env = references.env(environment, name, &service.env);
        runnable.push((name.as_str(), service, docker, env));
    }

    let mut manifests = Vec::new();
    if options.create_namespace {
        manifests.push(manifest(
            "Namespace",
            &cx.namespace,
            Vec::new(),
            &rbac::namespace(&cx),
        )?);
    }
    manifests.push(manifest(
        "ServiceAccount",
        rbac::NAME,
        vec!["The identity `cutover serve` would run as in the cluster (docs/kubernetes.md); the apps' pods do not use it.".to_owned()],
        &rbac::service_account(&cx),
    )?);
    manifests.push(manifest("Role", rbac::NAME, Vec::new(), &rbac::role(&cx))?);
    manifests.push(manifest(
        "RoleBinding",
        rbac::NAME,
        Vec::new(),
        &rbac::role_binding(&cx),
    )?);

    let mut secrets = SecretKeys::new();
    for (name, service, docker, env) in runnable {
        let base = names::dns_label(name, "the service's name")?;
        let mut keys = SecretKeys::new();
        let (object, object_name) = match service.kind {
            ServiceKind::Http => {
                let d = deployment::release(&cx, name, &base, service, docker, &env, &mut keys)?;
                let n = d.metadata.name.clone().unwrap_or_default();
                (d, n)
            }
            ServiceKind::Worker => {
                let d = deployment::worker(&cx, name, &base, service, docker, &env, &mut keys)?;
                (d, base.clone())
            }
        };
        let mut notes = Vec::new();
        for (secret, keys) in &keys {
            let list: Vec<&str> = keys.iter().map(String::as_str).collect();
            notes.push(format!(
                "Reads {} from Secret {secret}, which is not rendered: create it first (kubectl -n {} create secret generic {secret} --from-literal={}=…).",
                list.join(", "),
                cx.namespace,
                list.first().copied().unwrap_or("KEY"),
            ));
        }
        if docker.stop_signal != "SIGTERM" {
            notes.push(format!(
                "stop_signal {} is not written: Kubernetes stops a container with the image's STOPSIGNAL, else SIGTERM.",
                docker.stop_signal
            ));
        }
        for (secret, list) in keys {
            secrets.entry(secret).or_default().extend(list);
        }
        manifests.push(manifest("Deployment", &object_name, notes, &object)?);
        if service.kind == ServiceKind::Worker {
            continue;
        }
        let selector = names::release_labels(app, environment, name, cx.version)?;
        let mut backends = Vec::new();
        for track in service::TRACKS {
            let svc = service::track_service(&cx, &base, track, &selector);
            let svc_name = format!("{base}-{track}");
            names::dns_label(&svc_name, "the Service's name (service and track)")?;
            let note = match track {
                "stable" => "Selects the serving release; a blue-green switch re-points it.",
                _ => "Selects the new release during a canary; at rest, the serving one.",
            };
            manifests.push(manifest("Service", &svc_name, vec![note.to_owned()], &svc)?);
            let weight = if track == "stable" { 100 } else { 0 };
            backends.push(httproute::backend(svc_name, service::PORT, weight));
        }
        let hostnames = match &service.host {
            Some(host) => vec![hostname(name, host)?],
            None => Vec::new(),
        };
        let route = httproute::route(
            cx.meta(&base, true),
            &options.gateway,
            hostnames,
            &service.path_prefix,
            backends,
        );
        manifests.push(manifest(
            "HTTPRoute",
            &base,
            vec![format!(
                "Attaches to Gateway {} (not rendered: the cluster's). Each canary step patches the two weights.",
                options.gateway
            )],
            &route,
        )?);
    }
    Ok(Rendered {
        environment: environment.to_owned(),
        namespace: cx.namespace.clone(),
        manifests,
        secrets,
    })
}

/// One manifest as a YAML document: its notes as comments, then the object.
pub fn document(manifest: &Manifest) -> String {
    let mut out = String::new();
    for note in &manifest.notes {
        out.push_str("# ");
        out.push_str(note);
        out.push('\n');
    }
    out.push_str(&yaml::to_yaml(&manifest.object));
    out
}

/// Every manifest as one multi-document YAML stream.
pub fn to_yaml(rendered: &Rendered) -> String {
    let mut out = format!(
        "# cutover render kubernetes: environment {}, namespace {}.\n",
        rendered.environment, rendered.namespace
    );
    for (secret, keys) in &rendered.secrets {
        let list: Vec<&str> = keys.iter().map(String::as_str).collect();
        out.push_str(&format!(
            "# Secret {secret} is not rendered and must exist first, with keys: {}.\n",
            list.join(", ")
        ));
    }
    for manifest in &rendered.manifests {
        out.push_str("---\n");
        out.push_str(&document(manifest));
    }
    out
}

/// The file a manifest is written to with `--out DIR`: numbered in the order
/// to apply them (`kubectl apply -f DIR` applies files in name order).
pub fn file_name(index: usize, manifest: &Manifest) -> String {
    format!(
        "{:02}-{}-{}.yaml",
        index + 1,
        manifest.kind.to_ascii_lowercase(),
        manifest.name
    )
}
