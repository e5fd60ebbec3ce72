//! The ci pass on the fixture repositories: exact rule ids and `path:line`,
//! the facts behind the CI/CD and environments levels, and nothing on `clean`.

mod common;

use common::{assess, facts, findings};

#[test]
fn node_compose() {
    let report = assess("node-compose");
    assert_eq!(
        findings(&report, "ci/"),
        [
            "medium ci/no-dependency-scan .github/workflows/ci.yml",
            "medium ci/unscanned-image .github/workflows/ci.yml:30",
            "low ci/no-deploy .github/workflows/ci.yml",
            "low ci/unpinned-action .github/workflows/ci.yml:19",
            "low ci/unpinned-action .github/workflows/ci.yml:20",
            "low ci/no-permissions .github/workflows/ci.yml",
        ]
    );
    let f = facts(&report, "ci.");
    assert!(
        f.contains(&"ci.tests .github/workflows/ci.yml:26 `npm test` in job test".to_string()),
        "{f:#?}"
    );
    assert!(
        f.contains(&"ci.lint .github/workflows/ci.yml:25 `npm run lint` in job test".to_string()),
        "{f:#?}"
    );
    assert!(f.contains(&"ci.image-build .github/workflows/ci.yml:30 `docker build -t shop-api:${{ github.sha }} .` in job test".to_string()), "{f:#?}");
}

#[test]
fn fastapi_celery() {
    let report = assess("fastapi-celery");
    assert_eq!(
        findings(&report, "ci/"),
        [
            "medium ci/no-dependency-scan .gitlab-ci.yml",
            "medium ci/unscanned-image .gitlab-ci.yml:28",
            "medium ci/curl-pipe-shell .gitlab-ci.yml:26",
        ]
    );
    let f = facts(&report, "");
    for expected in [
        "ci.tests .gitlab-ci.yml:18 `pytest -q` in job test",
        "ci.lint .gitlab-ci.yml:17 `ruff check app` in job test",
        "ci.deploy .gitlab-ci.yml:40 `ssh deploy@api.example.com \"docker compose pull && docker compose up -d\"` in job deploy_production",
        "env.ci-environments .gitlab-ci.yml:34 job deploy_production deploys to environment production",
        "env.approvals .gitlab-ci.yml:36 job deploy_production waits for `when: manual`",
    ] {
        assert!(
            f.contains(&expected.to_string()),
            "{expected} not in {f:#?}"
        );
    }
}

#[test]
fn go_k8s() {
    let report = assess("go-k8s");
    assert_eq!(
        findings(&report, "ci/"),
        [
            "medium ci/unscanned-image .github/workflows/ci.yml:38",
            "low ci/production-reviewers-unseen .github/workflows/ci.yml:46",
        ]
    );
    let f = facts(&report, "");
    for expected in [
        "ci.dependency-scan .github/workflows/ci.yml:22 `govulncheck ./...` in job test",
        "ci.tests .github/workflows/ci.yml:20 `go test -race ./...` in job test",
        "ci.deploy .github/workflows/ci.yml:49 `kubectl set image deployment/greeter greeter=ghcr.io/example/greeter:${{ github.sha }}` in job deploy",
        "ci.pinned-actions .github/workflows/ci.yml all 6 actions pinned by commit SHA",
        "sec.dependency-updates .github/dependabot.yml Dependabot (.github/dependabot.yml)",
    ] {
        assert!(
            f.contains(&expected.to_string()),
            "{expected} not in {f:#?}"
        );
    }
}

#[test]
fn sqlite_cp_has_no_ci() {
    let report = assess("sqlite-cp");
    assert_eq!(
        findings(&report, "ci/"),
        ["medium ci/no-ci .github/workflows/"]
    );
}

#[test]
fn clean_has_no_ci_findings_and_top_levels() {
    let report = assess("clean");
    assert_eq!(findings(&report, "ci/"), Vec::<String>::new());
    let level = |id: &str| {
        report
            .areas
            .iter()
            .find(|a| a.area.id() == id)
            .map(|a| a.level)
    };
    assert_eq!(level("ci-cd"), Some(5), "{:#?}", report.areas);
    assert_eq!(level("environments"), Some(5), "{:#?}", report.areas);
    assert_eq!(level("security"), Some(5), "{:#?}", report.areas);
    let f = facts(&report, "env.");
    for expected in [
        "env.approvals .github/workflows/ci.yml:66 job deploy-production waits for trstringer/manual-approval@662b3ddbc7685f897992051e87e1b4b58c07dc03",
        "env.multiple .github/workflows/ci.yml:55 CI deploys to staging and production",
        "env.promotion .github/workflows/ci.yml:72 job deploy-production deploys after job deploy-staging succeeded",
    ] {
        assert!(
            f.contains(&expected.to_string()),
            "{expected} not in {f:#?}"
        );
    }
}
