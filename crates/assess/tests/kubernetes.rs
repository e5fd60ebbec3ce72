//! The `kubernetes` pass on the fixture repositories: exact rule ids and
//! `path:line` of its findings and facts, and the Deployment automation level.

mod common;

use cutover_assess::{Area, NoHooks, Report, assess};

fn fixture(name: &str) -> Report {
    common::assess(name)
}

use common::{level, sorted_facts as facts, sorted_findings as findings};

#[test]
fn go_k8s_liveness_without_readiness() {
    let r = fixture("go-k8s");
    assert_eq!(
        findings(&r, "kubernetes/"),
        [
            "kubernetes/no-pdb k8s/deployment.yaml:2",
            "kubernetes/no-readiness-probe k8s/deployment.yaml:25",
            "kubernetes/no-resources k8s/deployment.yaml:25",
            "kubernetes/rollout-capacity k8s/deployment.yaml:15",
        ]
    );
    let readiness = r
        .findings
        .iter()
        .find(|f| f.rule == "kubernetes/no-readiness-probe")
        .expect("readiness finding");
    assert_eq!(readiness.evidence[0].snippet, "- name: orders");
    assert_eq!(
        facts(&r, "deploy."),
        [
            "deploy.graceful-shutdown main.go:31",
            "deploy.manifests k8s/deployment.yaml:2"
        ]
    );
    assert!(facts(&r, "obs.readiness").is_empty());
    // Manifests describe the deployment, but nothing waits for readiness.
    let deploy = level(&r, Area::DeploymentAutomation);
    assert_eq!(deploy, 2);
}

#[test]
fn fixtures_without_manifests_have_no_kubernetes_findings() {
    for name in ["node-compose", "fastapi-celery", "clean"] {
        let r = fixture(name);
        assert_eq!(findings(&r, "kubernetes/"), Vec::<String>::new(), "{name}");
        assert!(facts(&r, "deploy.manifests").is_empty(), "{name}");
    }
}

#[test]
fn a_missing_readiness_probe_caps_deployment_automation_at_two() {
    let dir = tempfile::tempdir().expect("tempdir");
    let manifest = |name: &str, readiness: &str| {
        format!(
            "apiVersion: apps/v1\nkind: Deployment\nmetadata: {{name: {name}}}\nspec:\n  replicas: 2\n  strategy: {{rollingUpdate: {{maxUnavailable: 0}}}}\n  template:\n    metadata: {{labels: {{app: {name}}}}}\n    spec:\n      containers:\n        - name: {name}\n          image: acme/{name}:1.0.0\n          ports: [{{containerPort: 80}}]\n{readiness}"
        )
    };
    let probe = "          readinessProbe: {httpGet: {path: /readyz, port: 80}}\n";
    std::fs::write(dir.path().join("a.yaml"), manifest("a", probe)).expect("write");
    let r = assess(dir.path(), &NoHooks).expect("assess");
    assert_eq!(level(&r, Area::DeploymentAutomation), 3);
    std::fs::write(dir.path().join("b.yaml"), manifest("b", "")).expect("write");
    let r = assess(dir.path(), &NoHooks).expect("assess");
    assert_eq!(
        findings(&r, "kubernetes/no-readiness-probe"),
        ["kubernetes/no-readiness-probe b.yaml:11"]
    );
    assert_eq!(level(&r, Area::DeploymentAutomation), 2);
}
