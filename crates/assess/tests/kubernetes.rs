//! The `kubernetes` pass on the fixture repositories: exact rule ids and
//! `path:line` of its findings and facts, and the Deployment automation level.

use std::path::PathBuf;

use cutover_assess::{Area, NoHooks, Report, assess};

fn fixture(name: &str) -> Report {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name);
    assess(&path, &NoHooks).expect("assess fixture")
}

/// `rule path:line` of the findings whose rule starts with `prefix`, sorted.
fn findings(report: &Report, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.rule.starts_with(prefix))
        .map(|f| format!("{} {}", f.rule, f.evidence[0].location()))
        .collect();
    v.sort();
    v
}

/// `id path:line` of the facts whose id starts with `prefix`, sorted.
fn facts(report: &Report, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = report
        .facts
        .iter()
        .filter(|f| f.id.starts_with(prefix))
        .map(|f| format!("{} {}", f.id, f.evidence.location()))
        .collect();
    v.sort();
    v.dedup();
    v
}

fn level(report: &Report, area: Area) -> u8 {
    report
        .areas
        .iter()
        .find(|a| a.area == area)
        .map(|a| a.level)
        .unwrap_or(0)
}

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
        ["deploy.manifests k8s/deployment.yaml:2"]
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
