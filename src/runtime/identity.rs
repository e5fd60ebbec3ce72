//! What a release is: per service, the driver's part (the sha256 of the
//! program a process runs, or a container image's id, from
//! `Drivers::identify`) and the sha256 of each file the service lists in
//! `artifacts` (relative to the config file, `{version}` filled in); the
//! services combined into one release digest.
//!
//! How digests are made (stable: stored digests are compared with new ones):
//! - a part is `KIND NAME SHA256` (`executable ./releases/v2/hello 9f…`,
//!   `artifact dist/app-v2.tar.gz 4c…`, `image hello:v2 1a…`; `-` for a
//!   program that cannot be read);
//! - a service's digest is the hex sha256 of its parts, one a line each
//!   ending in `\n`, the driver's part first, then the artifacts as listed;
//! - the release digest is the hex sha256 of `SERVICE SERVICE_DIGEST\n`
//!   for each service of the release, by name.
//!
//! A missing artifact refuses the deploy before anything changes.

use std::collections::BTreeMap;

use serde_json::{Value, json};
use sha2::{Digest, Sha256};

use super::{Daemon, DeployError};
use crate::drivers::identity::{hex, sha256_file};
use crate::drivers::{IdentityPart, ServiceToIdentify};

/// One service's digest and what it covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ServiceDigest {
    /// Hex sha256 over `parts`.
    pub digest: String,
    /// The program or image, then the artifacts.
    pub parts: Vec<IdentityPart>,
}

/// A release's identity: the digest of each service and of them all.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct ReleaseIdentity {
    /// Hex sha256 over the services' digests.
    pub digest: String,
    /// By service name.
    pub services: BTreeMap<String, ServiceDigest>,
}

impl ReleaseIdentity {
    /// The services' digests and parts as stored (`release_digests.services`).
    pub fn services_json(&self) -> Value {
        let map: serde_json::Map<String, Value> = self
            .services
            .iter()
            .map(|(name, s)| {
                let parts: Vec<Value> = s
                    .parts
                    .iter()
                    .map(|p| json!({ "kind": p.kind, "name": p.name, "sha256": p.sha256 }))
                    .collect();
                (name.clone(), json!({ "digest": s.digest, "parts": parts }))
            })
            .collect();
        Value::Object(map)
    }
}

/// The line a part contributes to its service's digest.
fn part_line(part: &IdentityPart) -> String {
    format!(
        "{} {} {}\n",
        part.kind,
        part.name,
        part.sha256.as_deref().unwrap_or("-")
    )
}

/// A service's digest over its parts, in order.
pub(crate) fn service_digest(parts: &[IdentityPart]) -> String {
    let mut hasher = Sha256::new();
    for part in parts {
        hasher.update(part_line(part).as_bytes());
    }
    hex(&hasher.finalize())
}

/// The release digest over the services' digests, by service name.
pub(crate) fn combine<'a>(services: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    let mut sorted: Vec<(&str, &str)> = services.into_iter().collect();
    sorted.sort();
    let mut hasher = Sha256::new();
    for (name, digest) in sorted {
        hasher.update(format!("{name} {digest}\n").as_bytes());
    }
    hex(&hasher.finalize())
}

/// The identity of `version` of `services`; see the module doc.
pub(crate) async fn identify(
    daemon: &Daemon,
    version: &str,
    services: &[String],
) -> Result<ReleaseIdentity, DeployError> {
    let config = &daemon.config;
    let mut digests = BTreeMap::new();
    for name in services {
        let Some(sc) = config.services.get(name) else {
            continue;
        };
        let driver_part = daemon
            .driver
            .identify(&ServiceToIdentify {
                service: name,
                version,
                command: &sc.command,
                docker: sc.docker.as_ref(),
                workdir: &config.base_dir,
            })
            .await
            .map_err(|e| DeployError::Preflight(e.to_string()))?;
        let mut parts = vec![driver_part];
        for written in &sc.artifacts {
            let shown = written.replace("{version}", version);
            let path = config.base_dir.join(&shown);
            let hashed = {
                let path = path.clone();
                tokio::task::spawn_blocking(move || sha256_file(&path))
                    .await
                    .map_err(|e| DeployError::Internal(format!("hashing {shown}: {e}")))?
            };
            let sha256 = hashed.map_err(|e| {
                DeployError::Preflight(format!(
                    "artifact {shown} of service {name} cannot be read ({}: {e}); nothing was changed: build it first, or fix `artifacts` in [service.{name}]",
                    path.display()
                ))
            })?;
            parts.push(IdentityPart {
                kind: "artifact",
                name: shown,
                sha256: Some(sha256),
            });
        }
        let digest = service_digest(&parts);
        digests.insert(name.clone(), ServiceDigest { digest, parts });
    }
    let digest = combine(
        digests
            .iter()
            .map(|(name, s)| (name.as_str(), s.digest.as_str())),
    );
    Ok(ReleaseIdentity {
        digest,
        services: digests,
    })
}

/// The first 12 characters of a hex digest, for messages.
pub(crate) fn short(digest: &str) -> String {
    let cut: String = digest.chars().take(12).collect();
    format!("{cut}…")
}

#[cfg(test)]
mod tests {
    use super::*;

    fn part(kind: &'static str, name: &str, sha: Option<&str>) -> IdentityPart {
        IdentityPart {
            kind,
            name: name.to_owned(),
            sha256: sha.map(str::to_owned),
        }
    }

    fn sha(text: &str) -> String {
        hex(&Sha256::digest(text.as_bytes()))
    }

    #[test]
    fn a_service_digest_is_the_sha256_of_its_part_lines() {
        let parts = [
            part("executable", "./releases/v2/hello", Some("aa")),
            part("artifact", "dist/app-v2.tar.gz", Some("bb")),
        ];
        assert_eq!(
            service_digest(&parts),
            sha("executable ./releases/v2/hello aa\nartifact dist/app-v2.tar.gz bb\n")
        );
        // A program that cannot be read counts as `-`.
        assert_eq!(
            service_digest(&[part("executable", "web", None)]),
            sha("executable web -\n")
        );
        // Order matters: the parts are a list.
        let swapped = [parts[1].clone(), parts[0].clone()];
        assert_ne!(service_digest(&swapped), service_digest(&parts));
    }

    #[test]
    fn the_release_digest_combines_services_by_name_whatever_the_order() {
        let one = combine([("web", "11"), ("api", "22")]);
        let other = combine([("api", "22"), ("web", "11")]);
        assert_eq!(one, other);
        assert_eq!(one, sha("api 22\nweb 11\n"));
        assert_ne!(one, combine([("api", "22"), ("web", "12")]));
        assert_ne!(one, combine([("api", "11"), ("web", "22")]));
        assert_eq!(short(&one).chars().count(), 13);
    }
}
