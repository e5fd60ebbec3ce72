//! The `dockerfile` pass on the fixture repositories: exact rule ids and
//! `path:line` of its findings and of the containerization facts, the
//! Containerization level each fixture reaches, and nothing on `clean`.

mod common;

use cutover_assess::{Area, Report};

fn fixture(name: &str) -> Report {
    common::assess(name)
}

use common::{level, sorted_facts as facts, sorted_findings as findings};

#[test]
fn node_compose_single_stage_root_image() {
    let r = fixture("node-compose");
    assert_eq!(
        findings(&r, "dockerfile/"),
        [
            "dockerfile/copy-before-install Dockerfile:5",
            "dockerfile/floating-base-tag Dockerfile:1",
            "dockerfile/no-dockerignore Dockerfile:5",
            "dockerfile/no-healthcheck Dockerfile:1",
            "dockerfile/root-user Dockerfile:1",
            "dockerfile/single-stage-toolchain Dockerfile:1",
        ]
    );
    let copy = r
        .findings
        .iter()
        .find(|f| f.rule == "dockerfile/copy-before-install")
        .expect("copy finding");
    assert_eq!(copy.evidence[1].location(), "Dockerfile:6");
    assert_eq!(copy.evidence[0].snippet, "COPY . .");
    // A Dockerfile, but root and a floating tag: Level 2.
    assert_eq!(level(&r, Area::Containerization), 2);
    assert!(
        !facts(&r, "container.")
            .iter()
            .any(|f| f.starts_with("container.non-root"))
    );
}

#[test]
fn fastapi_celery_secrets_in_the_build() {
    let r = fixture("fastapi-celery");
    assert_eq!(
        findings(&r, "dockerfile/"),
        [
            "dockerfile/floating-base-tag Dockerfile:11",
            "dockerfile/floating-base-tag Dockerfile:2",
            "dockerfile/secret-in-arg Dockerfile:5",
            "dockerfile/secret-in-env Dockerfile:15",
        ]
    );
    // The ENV runs over lines 13-15: the evidence is the line setting the key.
    let env = r
        .findings
        .iter()
        .find(|f| f.rule == "dockerfile/secret-in-env")
        .expect("env finding");
    assert_eq!(env.evidence[0].snippet, "SECRET_KEY=****");
    let json = serde_json::to_string(&r).expect("json");
    assert!(
        !json.contains("dev-7f3a9c1e5b2d4f60"),
        "a secret leaked into JSON"
    );
    assert_eq!(
        facts(&r, "container."),
        [
            "container.compose docker-compose.yml:1",
            "container.dockerfile Dockerfile:2",
            "container.dockerignore .dockerignore",
            "container.healthcheck Dockerfile:23",
            "container.healthcheck docker-compose.yml:27",
            "container.healthcheck docker-compose.yml:47",
            "container.healthcheck docker-compose.yml:57",
            "container.multi-stage Dockerfile:18",
            "container.non-root Dockerfile:21",
        ]
    );
    // Non-root and multi-stage, but `python:3.12-slim` is not an exact version.
    assert_eq!(level(&r, Area::Containerization), 2);
}

#[test]
fn go_k8s_distroless_nonroot_by_digest() {
    let r = fixture("go-k8s");
    // No HEALTHCHECK in the distroless image, but the Deployment probes it.
    assert_eq!(findings(&r, "dockerfile/"), Vec::<String>::new());
    assert_eq!(
        facts(&r, "container."),
        [
            "container.dockerfile Dockerfile:2",
            "container.dockerignore .dockerignore",
            "container.healthcheck k8s/deployment.yaml:36",
            "container.multi-stage Dockerfile:11",
            "container.non-root Dockerfile:10",
            "container.pinned-base Dockerfile:10",
        ]
    );
    // The builder is on an exact tag, not a digest: Level 4, not 5.
    assert_eq!(level(&r, Area::Containerization), 4);
}

#[test]
fn clean_has_no_container_findings_and_the_top_levels() {
    let r = fixture("clean");
    for prefix in ["dockerfile/", "compose/", "kubernetes/"] {
        assert_eq!(findings(&r, prefix), Vec::<String>::new(), "{prefix}");
    }
    assert!(!r.findings.iter().any(|f| f.area == Area::Containerization));
    assert_eq!(
        facts(&r, "container."),
        [
            "container.compose compose.yaml:2",
            "container.digest-pinned Dockerfile:10",
            "container.dockerfile Dockerfile:2",
            "container.dockerignore .dockerignore",
            "container.healthcheck Dockerfile:14",
            "container.healthcheck compose.yaml:29",
            "container.multi-stage Dockerfile:11",
            "container.non-root Dockerfile:12",
            "container.pinned-base Dockerfile:10",
        ]
    );
    // Level 5 also needs images scanned in CI, which the ci pass records.
    let scanned = r.facts.iter().any(|f| f.id == "ci.image-scan");
    assert_eq!(
        level(&r, Area::Containerization),
        if scanned { 5 } else { 4 }
    );
}
