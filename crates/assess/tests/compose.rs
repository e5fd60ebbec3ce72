//! The `compose` pass on the fixture repositories: exact rule ids and
//! `path:line` of its findings and facts, and nothing on `clean`.

mod common;

use cutover_assess::{Area, Report};

fn fixture(name: &str) -> Report {
    common::assess(name)
}

use common::{level, sorted_facts as facts, sorted_findings as findings};

#[test]
fn node_compose_published_database_and_plaintext_passwords() {
    let r = fixture("node-compose");
    assert_eq!(
        findings(&r, "compose/"),
        [
            "compose/no-healthcheck docker-compose.yml:2",
            "compose/no-healthcheck docker-compose.yml:34",
            "compose/no-resource-limits docker-compose.yml:17",
            "compose/no-resource-limits docker-compose.yml:2",
            "compose/no-resource-limits docker-compose.yml:34",
            "compose/plaintext-secret docker-compose.yml:11",
            "compose/plaintext-secret docker-compose.yml:21",
            "compose/plaintext-secret docker-compose.yml:9",
            "compose/published-database-port docker-compose.yml:24",
            "compose/unpinned-image docker-compose.yml:35",
        ]
    );
    // Secrets are masked in every snippet, the URL's password too.
    let json = serde_json::to_string(&r.findings).expect("json");
    for secret in ["shop-secret", "change-me-in-prod"] {
        assert!(!json.contains(secret), "{secret} leaked");
    }
    let url = r
        .findings
        .iter()
        .find(|f| f.rule == "compose/plaintext-secret" && f.evidence[0].line == 9)
        .expect("url finding");
    assert_eq!(
        url.evidence[0].snippet,
        "DATABASE_URL: postgres://shop:****@db:5432/shop"
    );
    // `depends_on` without conditions: nothing waits for health.
    assert_eq!(facts(&r, "deploy."), Vec::<String>::new());
}

#[test]
fn fastapi_celery_health_gated_stack() {
    let r = fixture("fastapi-celery");
    assert_eq!(
        findings(&r, "compose/"),
        ["compose/no-resource-limits docker-compose.yml:21"]
    );
    assert_eq!(
        facts(&r, "deploy.health-gated"),
        [
            "deploy.health-gated docker-compose.yml:11",
            "deploy.health-gated docker-compose.yml:13",
            "deploy.health-gated docker-compose.yml:34",
        ]
    );
}

#[test]
fn clean_compose_has_no_findings() {
    let r = fixture("clean");
    assert_eq!(findings(&r, "compose/"), Vec::<String>::new());
    assert_eq!(
        facts(&r, "deploy.health-gated"),
        [
            "deploy.health-gated compose.yaml:11",
            "deploy.health-gated cutover.toml:10"
        ]
    );
    // Its health checks count toward Level 4 of Containerization.
    assert!(
        facts(&r, "container.healthcheck")
            .contains(&"container.healthcheck compose.yaml:29".to_string())
    );
    assert!(level(&r, Area::Containerization) >= 4);
}
