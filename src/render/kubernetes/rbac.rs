//! The Namespace (with `--create-namespace`) and the identity cutover's
//! in-cluster driver would run as: a ServiceAccount, a Role with what the
//! driver reads and changes in the namespace (docs/kubernetes.md, "RBAC"),
//! and the RoleBinding between them.

use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};

use super::Context;

/// The name of the ServiceAccount, Role and RoleBinding.
pub const NAME: &str = "cutover";

/// The Namespace itself.
pub fn namespace(cx: &Context<'_>) -> Namespace {
    Namespace {
        metadata: cx.meta(&cx.namespace, false),
        ..Namespace::default()
    }
}

/// The ServiceAccount `cutover serve` runs as in the cluster.
pub fn service_account(cx: &Context<'_>) -> ServiceAccount {
    ServiceAccount {
        metadata: cx.meta(NAME, true),
        ..ServiceAccount::default()
    }
}

fn rule(group: &str, resources: &[&str], verbs: &[&str]) -> PolicyRule {
    PolicyRule {
        api_groups: Some(vec![group.to_owned()]),
        resources: Some(resources.iter().map(|r| (*r).to_owned()).collect()),
        verbs: verbs.iter().map(|v| (*v).to_owned()).collect(),
        ..PolicyRule::default()
    }
}

/// What the driver needs in its namespace, and nothing else: Deployments to
/// create, scale and delete (and their ReplicaSets and Pods to watch
/// readiness), Services to point at a release, HTTPRoutes to move weights,
/// Events to explain a stuck rollout. No Secrets: the kubelet reads those
/// for the pods.
pub fn role(cx: &Context<'_>) -> Role {
    let write = [
        "get", "list", "watch", "create", "update", "patch", "delete",
    ];
    let read = ["get", "list", "watch"];
    Role {
        metadata: cx.meta(NAME, true),
        rules: Some(vec![
            rule("apps", &["deployments"], &write),
            rule("apps", &["replicasets"], &read),
            rule("", &["pods"], &read),
            rule("", &["services"], &write),
            rule("", &["events"], &read),
            rule("gateway.networking.k8s.io", &["httproutes"], &write),
        ]),
    }
}

/// Binds [`role`] to [`service_account`].
pub fn role_binding(cx: &Context<'_>) -> RoleBinding {
    RoleBinding {
        metadata: cx.meta(NAME, true),
        role_ref: RoleRef {
            api_group: "rbac.authorization.k8s.io".to_owned(),
            kind: "Role".to_owned(),
            name: NAME.to_owned(),
        },
        subjects: Some(vec![Subject {
            kind: "ServiceAccount".to_owned(),
            name: NAME.to_owned(),
            namespace: Some(cx.namespace.clone()),
            api_group: None,
        }]),
    }
}
