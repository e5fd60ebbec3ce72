//! The CI pass on small repositories written to a temporary folder.

use std::fs;

use crate::NoHooks;
use crate::finding::{Fact, Finding};
use crate::repo::Repo;
use crate::rules::Context;

fn run(files: &[(&str, &str)]) -> (Vec<Finding>, Vec<Fact>) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let p = dir.path().join(path);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    }
    let repo = Repo::open(dir.path()).expect("open");
    let mut cx = Context::new(&repo, &NoHooks);
    super::run(&mut cx);
    cx.into_parts()
}

fn rules(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| format!("{} {}", f.rule, f.evidence[0].location()))
        .collect()
}

fn has(facts: &[Fact], id: &str) -> Option<String> {
    facts
        .iter()
        .find(|f| f.id == id)
        .map(|f| format!("{} {}", f.evidence.location(), f.detail))
}

const SHA: &str = "b4ffde65f46336ab88eb53be808477a3936bae11";

#[test]
fn no_ci_at_all() {
    let (findings, facts) = run(&[("README.md", "hi\n")]);
    assert_eq!(rules(&findings), ["ci/no-ci .github/workflows/"]);
    assert!(facts.is_empty());
}

#[test]
fn a_github_workflow_is_read_with_exact_lines() {
    let wf = format!(
        "name: ci
on:
  push:
  pull_request:
permissions:
  contents: read
jobs:
  test:
    runs-on: ubuntu-latest
    steps:
      - uses: actions/checkout@v4
      - uses: actions/setup-node@{SHA}
      - run: npm ci
      - run: |
          npm run lint
          npm test
      - run: docker build -t app .
      - run: curl -sSL https://get.example.sh | sh
      - run: echo ${{{{ secrets.API_TOKEN }}}}
      - run: echo \"${{{{ secrets.REGISTRY_PASSWORD }}}}\" | docker login --password-stdin
"
    );
    let (findings, facts) = run(&[(".github/workflows/ci.yml", &wf)]);
    assert_eq!(
        rules(&findings),
        [
            "ci/unpinned-action .github/workflows/ci.yml:11",
            "ci/curl-pipe-shell .github/workflows/ci.yml:18",
            "ci/secret-echoed .github/workflows/ci.yml:19",
            "ci/no-dependency-scan .github/workflows/ci.yml",
            "ci/unscanned-image .github/workflows/ci.yml:17",
            "ci/no-deploy .github/workflows/ci.yml",
        ]
    );
    assert_eq!(
        has(&facts, "ci.tests").as_deref(),
        Some(".github/workflows/ci.yml:16 `npm test` in job test")
    );
    assert_eq!(
        has(&facts, "ci.lint").as_deref(),
        Some(".github/workflows/ci.yml:15 `npm run lint` in job test")
    );
    assert_eq!(
        has(&facts, "ci.pipeline").as_deref(),
        Some(".github/workflows/ci.yml:2 runs on push, pull_request")
    );
    assert!(has(&facts, "ci.pinned-actions").is_none());
    assert!(has(&facts, "sec.secrets-from-env").is_some());
}

#[test]
fn a_pipeline_without_tests_or_permissions() {
    let wf = "on: [push]\njobs:\n  build:\n    runs-on: ubuntu-latest\n    permissions: write-all\n    steps:\n      - run: make\n";
    let wf2 = "on: workflow_dispatch\njobs:\n  x:\n    steps:\n      - run: make\n";
    let (findings, _) = run(&[
        (".github/workflows/a.yml", wf),
        (".github/workflows/b.yaml", wf2),
    ]);
    let r = rules(&findings);
    assert!(
        r.contains(&"ci/no-tests .github/workflows/a.yml".to_string()),
        "{r:?}"
    );
    assert!(
        r.contains(&"ci/write-all-permissions .github/workflows/a.yml:5".to_string()),
        "{r:?}"
    );
    assert!(
        r.contains(&"ci/no-permissions .github/workflows/b.yaml".to_string()),
        "{r:?}"
    );
    assert!(
        !r.iter()
            .any(|f| f.starts_with("ci/no-permissions .github/workflows/a.yml")),
        "{r:?}"
    );
}

#[test]
fn pull_request_target_with_a_head_checkout() {
    let wf = format!(
        "on: pull_request_target\npermissions: {{}}\njobs:\n  t:\n    steps:\n      - uses: actions/checkout@{SHA}\n        with:\n          ref: ${{{{ github.event.pull_request.head.sha }}}}\n      - run: npm test\n"
    );
    let (findings, _) = run(&[(".github/workflows/pr.yml", &wf)]);
    assert_eq!(
        rules(&findings)[0],
        "ci/pull-request-target-checkout .github/workflows/pr.yml:8"
    );
}

#[test]
fn production_gates() {
    // GitHub: a production environment without a visible gate is low; an approval action is a gate.
    let ungated = "on: push\npermissions:\n  contents: read\njobs:\n  deploy:\n    environment: production\n    steps:\n      - run: cutover deploy $GITHUB_SHA -e production\n".to_string();
    let (findings, facts) = run(&[(".github/workflows/d.yml", &ungated)]);
    let r = rules(&findings);
    assert!(
        r.contains(&"ci/production-reviewers-unseen .github/workflows/d.yml:6".to_string()),
        "{r:?}"
    );
    assert_eq!(
        has(&facts, "env.ci-environments").as_deref(),
        Some(".github/workflows/d.yml:6 job deploy deploys to environment production")
    );
    let gated = format!(
        "on: push\npermissions:\n  contents: read\njobs:\n  deploy-staging:\n    environment: staging\n    steps:\n      - run: cutover deploy $GITHUB_SHA -e staging\n  approve:\n    steps:\n      - uses: trstringer/manual-approval@{SHA}\n  deploy-production:\n    needs: [deploy-staging, approve]\n    environment:\n      name: production\n    steps:\n      - run: cutover deploy $GITHUB_SHA -e production\n"
    );
    let (findings, facts) = run(&[(".github/workflows/d.yml", &gated)]);
    let r = rules(&findings);
    assert!(!r.iter().any(|f| f.contains("production")), "{r:?}");
    assert_eq!(
        has(&facts, "env.approvals").as_deref(),
        Some(&*format!(
            ".github/workflows/d.yml:11 job deploy-production waits for trstringer/manual-approval@{SHA}"
        ))
    );
    assert!(has(&facts, "env.promotion").is_some());
    assert_eq!(
        has(&facts, "env.multiple").as_deref(),
        Some(".github/workflows/d.yml:6 CI deploys to staging and production")
    );
    assert!(has(&facts, "ci.pinned-actions").is_some());
    // GitLab: a production job without `when: manual` is medium; with it, a gate.
    let gl = "stages: [test, deploy]\ntest:\n  script:\n    - pytest\ndeploy_production:\n  stage: deploy\n  environment: production\n  script:\n    - ./deploy.sh\n";
    let (findings, _) = run(&[(".gitlab-ci.yml", gl)]);
    assert!(
        rules(&findings).contains(&"ci/ungated-production-deploy .gitlab-ci.yml:5".to_string())
    );
    let gl = gl.replace(
        "  script:\n    - ./deploy.sh",
        "  when: manual\n  script:\n    - ./deploy.sh",
    );
    let (findings, facts) = run(&[(".gitlab-ci.yml", &gl)]);
    assert!(!rules(&findings).iter().any(|f| f.contains("production")));
    assert_eq!(
        has(&facts, "env.approvals").as_deref(),
        Some(".gitlab-ci.yml:8 job deploy_production waits for `when: manual`")
    );
}

#[test]
fn gitlab_includes_and_templates() {
    let main = "include:\n  - local: ci/test.yml\n  - template: Security/SAST.gitlab-ci.yml\n  - template: Jobs/Dependency-Scanning.gitlab-ci.yml\n";
    let test = "unit:\n  script:\n    - go test ./...\n";
    let (findings, facts) = run(&[(".gitlab-ci.yml", main), ("ci/test.yml", test)]);
    assert_eq!(
        has(&facts, "ci.tests").as_deref(),
        Some("ci/test.yml:3 `go test ./...` in job unit")
    );
    assert_eq!(
        has(&facts, "sec.sast").as_deref(),
        Some(".gitlab-ci.yml:3 template Security/SAST.gitlab-ci.yml")
    );
    assert!(has(&facts, "ci.dependency-scan").is_some());
    assert!(
        !rules(&findings)
            .iter()
            .any(|r| r.starts_with("ci/no-tests"))
    );
}

#[test]
fn the_dependency_scan_fix_fits_the_package_manager() {
    let wf = "on: push\npermissions: {}\njobs:\n  t:\n    steps:\n      - run: go test ./...\n";
    let (findings, _) = run(&[(".github/workflows/ci.yml", wf), ("go.mod", "module x\n")]);
    let f = findings
        .iter()
        .find(|f| f.rule == "ci/no-dependency-scan")
        .expect("finding");
    assert!(
        f.fix.starts_with("Add `govulncheck ./...` as a CI step"),
        "{}",
        f.fix
    );
}

#[test]
fn dependency_updates() {
    let (_, facts) = run(&[(".github/dependabot.yml", "version: 2\n")]);
    assert_eq!(
        has(&facts, "sec.dependency-updates").as_deref(),
        Some(".github/dependabot.yml Dependabot (.github/dependabot.yml)")
    );
}

#[test]
fn pins() {
    assert!(super::is_pinned(&format!("actions/checkout@{SHA}")));
    assert!(super::is_pinned("./.github/actions/x"));
    assert!(super::is_pinned("docker://alpine@sha256:abc"));
    assert!(!super::is_pinned("docker://alpine:3"));
    assert!(!super::is_pinned("actions/checkout@v4"));
    assert!(!super::is_pinned("actions/checkout@main"));
    assert!(!super::is_pinned("actions/checkout"));
}

#[test]
fn garbage_never_panics() {
    let garbage = "on: [push\njobs: {{{\n\u{0}\u{1}: - - :\n";
    let bin = "\u{feff}jobs:\n  x: [1, 2, {a: b}]\n  y: !!binary AAAA\n  z:\n    steps: 3\n    environment: [1]\n";
    let (findings, _) = run(&[
        (".github/workflows/a.yml", garbage),
        (".github/workflows/b.yml", bin),
        (
            ".gitlab-ci.yml",
            "include: 3\nx: y\njob:\n  script: 5\n  rules: 7\n",
        ),
        ("Jenkinsfile", &"x".repeat(100_000)),
    ]);
    assert!(!findings.is_empty());
}
