//! The claims pass on the fixture repositories: sqlite-cp's README claims
//! zero downtime, instant rollback and encrypted backups with nothing that
//! implements them; node-compose claims blue-green; fastapi-celery's docs
//! deny claims (not findings); clean claims nothing it lacks.

mod common;

use common::{assess, findings};

#[test]
fn sqlite_cp_claims_are_unbacked() {
    let report = assess("sqlite-cp");
    assert_eq!(
        findings(&report, "claims/"),
        [
            "high claims/zero-downtime README.md:7",
            "high claims/instant-rollback README.md:8",
            "high claims/encrypted-backups README.md:9",
        ]
    );
    let zero = report
        .findings
        .iter()
        .find(|f| f.rule == "claims/zero-downtime")
        .expect("finding");
    assert!(
        zero.message
            .starts_with("README.md:7 claims \"Zero downtime\""),
        "{}",
        zero.message
    );
    assert!(
        zero.cutover
            .as_deref()
            .is_some_and(|c| c.contains("strategy = \"blue-green\""))
    );
}

#[test]
fn node_compose_claims_blue_green() {
    let report = assess("node-compose");
    assert_eq!(
        findings(&report, "claims/"),
        ["medium claims/blue-green README.md:12"]
    );
}

#[test]
fn denied_claims_and_clean() {
    for fixture in ["fastapi-celery", "clean", "go-k8s"] {
        let report = assess(fixture);
        assert_eq!(
            findings(&report, "claims/"),
            Vec::<String>::new(),
            "{fixture}"
        );
    }
}
