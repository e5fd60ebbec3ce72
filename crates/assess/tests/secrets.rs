//! The secrets pass on the fixture repositories: exact rule ids and
//! `path:line`, redaction in the JSON report, the environment facts, and
//! nothing on `clean`.

mod common;

use common::{assess, facts, findings};

/// The secret values written in the sqlite-cp fixture (its .env and key).
const SQLITE_CP_SECRETS: [&str; 3] = [
    "9f4c2e7b1a8d3f6e0c5b2a9d8e7f6a5b",
    "Tr0ub4dor&3",
    "b3BlbnNzaC1rZXktdjEA",
];

#[test]
fn sqlite_cp_committed_env_and_key() {
    let report = assess("sqlite-cp");
    assert_eq!(
        findings(&report, "secrets/"),
        [
            "high secrets/env-file .env:3",
            "high secrets/private-key deploy/id_ed25519:1",
        ]
    );
    let env = report
        .findings
        .iter()
        .find(|f| f.rule == "secrets/env-file")
        .expect("env finding");
    let lines: Vec<String> = env.evidence.iter().map(|e| e.location()).collect();
    assert_eq!(lines, [".env:3", ".env:4"]);
    assert_eq!(env.evidence[0].snippet, "SECRET_KEY=9f4c***");
    assert_eq!(env.evidence[1].snippet, "ADMIN_PASSWORD=Tr0u***");
    assert!(env.message.contains("SECRET_KEY, ADMIN_PASSWORD"));
    assert!(facts(&report, "sec.env-ignored").is_empty());
    let security = report
        .areas
        .iter()
        .find(|a| a.area.id() == "security")
        .expect("security");
    assert_eq!(
        security.level, 1,
        "committed secrets keep Security at Level 1"
    );
}

#[test]
fn the_json_report_never_holds_a_secret_value() {
    let report = assess("sqlite-cp");
    let json = cutover_assess::report::json::render(&report);
    assert!(
        json.contains("secrets/env-file"),
        "the report has the finding"
    );
    for secret in SQLITE_CP_SECRETS {
        assert!(!json.contains(secret), "{secret} is in the JSON report");
    }
}

#[test]
fn environment_facts_on_fixtures() {
    let report = assess("fastapi-celery");
    assert_eq!(findings(&report, "secrets/"), Vec::<String>::new());
    let f = facts(&report, "");
    for expected in [
        "env.config-template .env.example .env.example lists the settings the app reads",
        "env.multiple .env.production.example env files: staging (.env.staging.example) and production (.env.production.example)",
        "sec.env-ignored .gitignore:3 .gitignore ignores .env",
    ] {
        assert!(
            f.contains(&expected.to_string()),
            "{expected} not in {f:#?}"
        );
    }
}

#[test]
fn clean_has_no_secrets_findings() {
    for fixture in ["clean", "node-compose", "go-k8s"] {
        let report = assess(fixture);
        assert_eq!(
            findings(&report, "secrets/"),
            Vec::<String>::new(),
            "{fixture}"
        );
        assert_eq!(facts(&report, "sec.env-ignored").len(), 1, "{fixture}");
    }
}
