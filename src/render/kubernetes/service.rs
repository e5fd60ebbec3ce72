//! The two Services of an HTTP service, one per track: `NAME-stable` and
//! `NAME-canary`, each selecting one release's pods by their
//! `cutover.release` label. Rendered at rest, both select the release
//! rendered; the driver re-points `NAME-canary` at the new release when a
//! rollout starts, and `NAME-stable` when it ends (docs/kubernetes.md).

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Service, ServicePort, ServiceSpec};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

use super::{Context, names};

/// The port every track Service listens on; it forwards to the container's
/// port named `http`.
pub const PORT: i32 = 80;

/// The tracks, in the order they are rendered.
pub const TRACKS: [&str; 2] = ["stable", "canary"];

/// The Service of `track` for `service` (its DNS name `base`), selecting
/// `selector`.
pub fn track_service(
    cx: &Context<'_>,
    base: &str,
    track: &str,
    selector: &BTreeMap<String, String>,
) -> Service {
    let mut metadata = cx.meta(&format!("{base}-{track}"), true);
    let labels = metadata.labels.get_or_insert_with(BTreeMap::new);
    labels.extend(
        selector
            .iter()
            .filter(|(key, _)| key.as_str() != crate::drivers::docker::labels::RELEASE)
            .map(|(key, value)| (key.clone(), value.clone())),
    );
    labels.insert(names::TRACK.to_owned(), track.to_owned());
    Service {
        metadata,
        spec: Some(ServiceSpec {
            type_: Some("ClusterIP".to_owned()),
            selector: Some(selector.clone()),
            ports: Some(vec![ServicePort {
                name: Some("http".to_owned()),
                port: PORT,
                target_port: Some(IntOrString::String("http".to_owned())),
                protocol: Some("TCP".to_owned()),
                app_protocol: None,
                node_port: None,
            }]),
            ..ServiceSpec::default()
        }),
        status: None,
    }
}
