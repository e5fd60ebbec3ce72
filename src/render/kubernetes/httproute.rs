//! The Gateway API `HTTPRoute` (`gateway.networking.k8s.io/v1`) of an HTTP
//! service: its host and path prefix from the config, and two weighted
//! backends, `NAME-stable` (100) and `NAME-canary` (0). A canary step is a
//! patch of the two weights; a blue-green switch re-points `NAME-stable`.
//!
//! k8s-openapi has no Gateway API types, and the `gateway-api` crate pulls
//! kube into the binary, so these are our own serde structs of the fields
//! we write, named as the API names them. The tests check them against the
//! `gateway-api` crate's types (see `tests.rs`).

use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use serde::Serialize;

/// `gateway.networking.k8s.io/v1` `HTTPRoute`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRoute {
    /// Always `gateway.networking.k8s.io/v1`.
    pub api_version: &'static str,
    /// Always `HTTPRoute`.
    pub kind: &'static str,
    /// Name, namespace, labels.
    pub metadata: ObjectMeta,
    /// What it matches and where it sends it.
    pub spec: HttpRouteSpec,
}

/// `HTTPRouteSpec`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteSpec {
    /// The Gateway the route attaches to.
    pub parent_refs: Vec<ParentReference>,
    /// `Host` values matched; absent matches every host.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub hostnames: Vec<String>,
    /// One rule: the path prefix, to the two tracks.
    pub rules: Vec<HttpRouteRule>,
}

/// `ParentReference`: a Gateway.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ParentReference {
    /// `gateway.networking.k8s.io`.
    pub group: &'static str,
    /// `Gateway`.
    pub kind: &'static str,
    /// The Gateway's name.
    pub name: String,
    /// The Gateway's namespace when it is not the route's.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// `HTTPRouteRule`.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct HttpRouteRule {
    /// What requests the rule takes.
    pub matches: Vec<HttpRouteMatch>,
    /// Where they go, by weight.
    pub backend_refs: Vec<HttpBackendRef>,
}

/// `HTTPRouteMatch`: a path only.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpRouteMatch {
    /// The path prefix.
    pub path: HttpPathMatch,
}

/// `HTTPPathMatch`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpPathMatch {
    /// `PathPrefix`.
    #[serde(rename = "type")]
    pub type_: &'static str,
    /// The prefix, starting with `/`.
    pub value: String,
}

/// `HTTPBackendRef`: a Service, a port and a weight.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HttpBackendRef {
    /// `""` (the core group).
    pub group: &'static str,
    /// `Service`.
    pub kind: &'static str,
    /// The Service's name.
    pub name: String,
    /// The Service's port.
    pub port: i32,
    /// The share of requests, relative to the other backends' weights.
    pub weight: i32,
}

/// A backend Service of the route.
pub fn backend(name: String, port: i32, weight: i32) -> HttpBackendRef {
    HttpBackendRef {
        group: "",
        kind: "Service",
        name,
        port,
        weight,
    }
}

/// A route attached to Gateway `gateway` (`NAME` or `NAMESPACE/NAME`).
pub fn route(
    metadata: ObjectMeta,
    gateway: &str,
    hostnames: Vec<String>,
    path_prefix: &str,
    backends: Vec<HttpBackendRef>,
) -> HttpRoute {
    let (namespace, name) = match gateway.split_once('/') {
        Some((namespace, name)) => (Some(namespace.to_owned()), name.to_owned()),
        None => (None, gateway.to_owned()),
    };
    HttpRoute {
        api_version: "gateway.networking.k8s.io/v1",
        kind: "HTTPRoute",
        metadata,
        spec: HttpRouteSpec {
            parent_refs: vec![ParentReference {
                group: "gateway.networking.k8s.io",
                kind: "Gateway",
                name,
                namespace,
            }],
            hostnames,
            rules: vec![HttpRouteRule {
                matches: vec![HttpRouteMatch {
                    path: HttpPathMatch {
                        type_: "PathPrefix",
                        value: path_prefix.to_owned(),
                    },
                }],
                backend_refs: backends,
            }],
        },
    }
}
