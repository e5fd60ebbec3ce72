//! CI workflow rules (GitHub Actions, GitLab CI with its local includes;
//! CircleCI and Jenkins read for facts only): whether tests run, whether
//! dependencies and images are scanned, whether a job deploys and how
//! production is gated, whether actions are pinned by SHA, and the workflow
//! mistakes that leak secrets or hand a pull request write access.

mod model;
mod tools;

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::{Context, RuleInfo};
use crate::finding::{Area, Evidence, Severity};
use model::{Job, Kind, Pipeline};

pub const NO_CI: RuleInfo = RuleInfo {
    id: "ci/no-ci",
    area: Area::CiCd,
    severity: Severity::Medium,
    title: "No CI pipeline",
    why: "Without CI nothing checks a change before it ships: tests, scans and the build depend on someone remembering to run them.",
    fix: "Add a workflow in .github/workflows/ci.yml (or a .gitlab-ci.yml) that runs on push and pull_request, installs dependencies, runs the tests and the linter.",
    cutover: None,
};

pub const NO_TESTS: RuleInfo = RuleInfo {
    id: "ci/no-tests",
    area: Area::CiCd,
    severity: Severity::High,
    title: "CI does not run the tests",
    why: "A pipeline that builds but never tests ships whatever compiles; the first user finds the regression.",
    fix: "Add a step that runs the test suite (`npm test`, `pytest`, `go test ./...`, `cargo test`) in a job that runs on every push and pull request.",
    cutover: None,
};

pub const NO_DEPENDENCY_SCAN: RuleInfo = RuleInfo {
    id: "ci/no-dependency-scan",
    area: Area::CiCd,
    severity: Severity::Medium,
    title: "Dependencies are not scanned for known vulnerabilities",
    why: "Most vulnerabilities that reach production come in through dependencies; a scanner in CI names them on the pull request that adds them.",
    fix: "Add a dependency scan to CI: `npm audit --audit-level=high`, `pip-audit`, `govulncheck ./...`, `cargo audit`, `osv-scanner -r .`, or actions/dependency-review-action on pull requests (GitLab: include the Security/Dependency-Scanning.gitlab-ci.yml template).",
    cutover: None,
};

pub const UNSCANNED_IMAGE: RuleInfo = RuleInfo {
    id: "ci/unscanned-image",
    area: Area::CiCd,
    severity: Severity::Medium,
    title: "Images are built but never scanned",
    why: "A container image carries an operating system's packages besides the app's; without a scan their CVEs ship unseen.",
    fix: "Scan the image after it is built: `trivy image --exit-code 1 --severity HIGH,CRITICAL IMAGE`, `grype IMAGE`, aquasecurity/trivy-action with `image-ref`, or GitLab's Security/Container-Scanning.gitlab-ci.yml template.",
    cutover: None,
};

pub const UNPINNED_ACTION: RuleInfo = RuleInfo {
    id: "ci/unpinned-action",
    area: Area::CiCd,
    severity: Severity::Low,
    title: "Action pinned by tag or branch, not by commit SHA",
    why: "A tag or branch can be moved to other code (as in the tj-actions/changed-files compromise); a 40-character commit SHA cannot. First-party actions/* are included: their tags move too.",
    fix: "Pin the action to the commit SHA of the release, keeping the tag in a comment (`uses: actions/checkout@<40-hex sha> # v4`); Dependabot or Renovate keep such pins up to date.",
    cutover: None,
};

pub const NO_DEPLOY: RuleInfo = RuleInfo {
    id: "ci/no-deploy",
    area: Area::CiCd,
    severity: Severity::Low,
    title: "No CI job deploys",
    why: "Deploys run by hand from a laptop depend on that laptop's state and leave no record of who shipped what.",
    fix: "Add a deploy job that runs after the tests on the default branch: `cutover deploy ${{ github.sha }} -e production --commit ${{ github.sha }}` (GitLab: `cutover deploy $CI_COMMIT_SHA -e production`), in a job with `environment: production`.",
    cutover: Some(
        "[environment.production]\nlisten = \"0.0.0.0:443\"\napprovals = { required = 1, expires = \"1h\" }",
    ),
};

pub const UNGATED_PRODUCTION: RuleInfo = RuleInfo {
    id: "ci/ungated-production-deploy",
    area: Area::Environments,
    severity: Severity::Medium,
    title: "Production deploys without an approval gate",
    why: "A production deploy that starts on every merge, with no second person's yes and no environment, cannot be stopped between merge and release.",
    fix: "Gate the production deploy: GitHub: `environment: production` on the job with required reviewers in Settings → Environments; GitLab: `when: manual` on the job; or let cutover wait for an approval.",
    cutover: Some("[environment.production]\napprovals = { required = 1, expires = \"1h\" }"),
};

pub const UNSEEN_REVIEWERS: RuleInfo = RuleInfo {
    id: "ci/production-reviewers-unseen",
    area: Area::Environments,
    severity: Severity::Low,
    title: "Production approvals are not visible in the repository",
    why: "A GitHub environment's required reviewers live in the repository's settings, not in its files: the job names the place for a gate, but nothing here shows that one is set.",
    fix: "Check Settings → Environments → production → Required reviewers, or make the gate visible: a cutover approval, or a manual-approval step before the deploy.",
    cutover: Some("[environment.production]\napprovals = { required = 1, expires = \"1h\" }"),
};

pub const PR_TARGET_CHECKOUT: RuleInfo = RuleInfo {
    id: "ci/pull-request-target-checkout",
    area: Area::Security,
    severity: Severity::High,
    title: "pull_request_target checks out the pull request's code",
    why: "pull_request_target runs with the base repository's secrets and a write token; checking out and running the pull request's head lets anyone who opens a pull request run code with them.",
    fix: "Use `on: pull_request` for anything that builds or tests the pull request's code; keep pull_request_target for labelling and commenting, without checking out the head.",
    cutover: None,
};

pub const WRITE_ALL: RuleInfo = RuleInfo {
    id: "ci/write-all-permissions",
    area: Area::Security,
    severity: Severity::Low,
    title: "Workflow token has write-all permissions",
    why: "Every step, and every action it uses, gets a token that can push code and publish releases.",
    fix: "Grant the least: `permissions: contents: read` at the top of the workflow, and widen per job only what that job needs (e.g. `packages: write`).",
    cutover: None,
};

pub const NO_PERMISSIONS: RuleInfo = RuleInfo {
    id: "ci/no-permissions",
    area: Area::Security,
    severity: Severity::Low,
    title: "Workflow does not restrict its token's permissions",
    why: "Without `permissions:`, the token gets the repository's default, which is read-write on older repositories and organisations.",
    fix: "Add `permissions:\\n  contents: read` at the top of the workflow and widen per job only what it needs.",
    cutover: None,
};

pub const SECRET_ECHOED: RuleInfo = RuleInfo {
    id: "ci/secret-echoed",
    area: Area::Security,
    severity: Severity::High,
    title: "A secret is printed to the CI log",
    why: "Log masking misses transformed values (base64, split lines) and logs are readable by everyone with read access to the repository or project.",
    fix: "Do not echo secrets: pass them to the command that needs them as environment variables or on standard input (`echo \"$TOKEN\" | docker login --password-stdin`).",
    cutover: None,
};

pub const CURL_PIPE_SHELL: RuleInfo = RuleInfo {
    id: "ci/curl-pipe-shell",
    area: Area::Security,
    severity: Severity::Medium,
    title: "CI pipes a downloaded script into a shell",
    why: "Whatever the server returns runs with the job's secrets; a compromised or changed script is not noticed.",
    fix: "Download the script or binary at a pinned version, check its sha256 (`echo \"SHA  file\" | sha256sum -c`), then run it; or use a pinned action or package.",
    cutover: None,
};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[
    &NO_CI,
    &NO_TESTS,
    &NO_DEPENDENCY_SCAN,
    &UNSCANNED_IMAGE,
    &UNPINNED_ACTION,
    &NO_DEPLOY,
    &UNGATED_PRODUCTION,
    &UNSEEN_REVIEWERS,
    &PR_TARGET_CHECKOUT,
    &WRITE_ALL,
    &NO_PERMISSIONS,
    &SECRET_ECHOED,
    &CURL_PIPE_SHELL,
];

/// Events that run a pipeline on every change.
const CHANGE_TRIGGERS: [&str; 5] = [
    "push",
    "pull_request",
    "pull_request_target",
    "merge_group",
    "merge_request",
];

/// Actions that hold a job until someone approves it.
const APPROVAL_ACTIONS: [&str; 2] = ["trstringer/manual-approval", "ekeel/approval-action"];

static CURL_PIPE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r#"\b(curl|wget)\b[^|]*\|\s*(sudo\s+)?(-E\s+)?(ba|z|da)?sh\b|\b(ba)?sh\s+(-c\s+)?["']?[$<]\(\s*(curl|wget)\b"#,
    )
    .expect("CURL_PIPE is a valid regex")
});

static SECRET_REF: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\$\{\{\s*secrets\.\w+|\$\{?[A-Z0-9_]*(TOKEN|SECRET|PASSWORD|PASSWD|API_KEY|PRIVATE_KEY)[A-Z0-9_]*",
    )
    .expect("SECRET_REF is a valid regex")
});

static ECHO: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"\b(echo|printf)\b").expect("ECHO is a valid regex"));

/// Runs the pass.
pub fn run(cx: &mut Context<'_>) {
    dependency_updates(cx);
    let pipelines = model::load(cx.repo);
    if pipelines.is_empty() {
        cx.find(
            &NO_CI,
            Evidence::file(".github/workflows/"),
            "No CI configuration: no .github/workflows/*.yml, .gitlab-ci.yml, CircleCI or Jenkins file, so nothing tests or scans a change before it ships.",
        );
        return;
    }
    let mut seen = Facts::default();
    for p in &pipelines {
        pipeline_facts(cx, p, &mut seen);
    }
    for p in &pipelines {
        if p.kind == Kind::GitHub {
            github_rules(cx, p);
        }
        for job in &p.jobs {
            for cmd in &job.commands {
                shell_rules(cx, p, cmd);
            }
        }
    }
    deploy_rules(cx, &pipelines);
    missing_rules(cx, &pipelines, &seen);
}

/// Which facts were recorded, and where the image builds are.
#[derive(Default)]
struct Facts {
    ids: HashSet<&'static str>,
    /// (fact, pipeline, job) already recorded.
    recorded: HashSet<(&'static str, String, String)>,
    builds: Vec<Evidence>,
}

fn record(
    cx: &mut Context<'_>,
    seen: &mut Facts,
    fact: &'static str,
    p: &Pipeline,
    job: &str,
    detail: String,
    evidence: Evidence,
) {
    seen.ids.insert(fact);
    if seen
        .recorded
        .insert((fact, p.path.clone(), job.to_string()))
    {
        cx.fact(fact, detail, evidence);
    }
}

fn at(cx: &Context<'_>, path: &str, line: usize) -> Evidence {
    match cx.repo.text_of(path) {
        Some(text) if line > 0 => Evidence::at(path, text, line),
        _ => Evidence::file(path),
    }
}

fn pipeline_facts(cx: &mut Context<'_>, p: &Pipeline, seen: &mut Facts) {
    let on_change: Vec<&str> = p
        .triggers
        .iter()
        .map(String::as_str)
        .filter(|t| CHANGE_TRIGGERS.contains(t))
        .collect();
    if !on_change.is_empty() && !p.jobs.is_empty() {
        let ev = at(cx, &p.path, p.trigger_line);
        record(
            cx,
            seen,
            "ci.pipeline",
            p,
            "",
            format!("runs on {}", on_change.join(", ")),
            ev,
        );
    }
    for (template, line) in &p.templates {
        for fact in tools::template_facts(template) {
            let ev = at(cx, &p.path, *line);
            record(
                cx,
                seen,
                fact,
                p,
                template,
                format!("template {template}"),
                ev,
            );
        }
    }
    for job in &p.jobs {
        for cmd in &job.commands {
            for fact in tools::command_facts(&cmd.text) {
                let ev = at(cx, &p.path, cmd.line);
                let detail = format!("`{}` in job {}", clip(&cmd.text), job.name);
                if fact == "ci.image-build" {
                    seen.builds.push(ev.clone());
                }
                record(cx, seen, fact, p, &job.name, detail, ev);
            }
            if p.kind != Kind::Other && cmd.text.contains("secrets.") {
                let ev = at(cx, &p.path, cmd.line);
                record(
                    cx,
                    seen,
                    "sec.secrets-from-env",
                    p,
                    "",
                    "CI reads secrets from the CI secret store".into(),
                    ev,
                );
            }
        }
        for u in &job.uses {
            let name = u.name();
            let image_ref = u.input("image-ref").is_some();
            for fact in tools::action_facts(&name, image_ref) {
                let ev = at(cx, &p.path, u.line);
                if fact == "ci.image-build" {
                    seen.builds.push(ev.clone());
                }
                record(
                    cx,
                    seen,
                    fact,
                    p,
                    &job.name,
                    format!("{} in job {}", u.action, job.name),
                    ev,
                );
            }
            for (_, value, line) in &u.with {
                if value.contains("secrets.") {
                    let ev = at(cx, &p.path, *line);
                    record(
                        cx,
                        seen,
                        "sec.secrets-from-env",
                        p,
                        "",
                        "CI reads secrets from the CI secret store".into(),
                        ev,
                    );
                }
            }
        }
        if let Some((env, line)) = &job.environment {
            let ev = at(cx, &p.path, *line);
            record(
                cx,
                seen,
                "env.ci-environments",
                p,
                &job.name,
                format!("job {} deploys to environment {env}", job.name),
                ev,
            );
        }
        if is_deploy_job(job)
            && !seen
                .recorded
                .contains(&("ci.deploy", p.path.clone(), job.name.clone()))
        {
            let ev = at(cx, &p.path, job.line);
            record(
                cx,
                seen,
                "ci.deploy",
                p,
                &job.name,
                format!("job {}", job.name),
                ev,
            );
        }
    }
}

/// Whether a job deploys: its name says so, or a line or action of it does.
fn is_deploy_job(job: &Job) -> bool {
    let name = job.name.to_ascii_lowercase();
    name.starts_with("deploy")
        || name.starts_with("release")
        || name.starts_with("production")
        || job
            .commands
            .iter()
            .any(|c| tools::command_facts(&c.text).contains(&"ci.deploy"))
        || job
            .uses
            .iter()
            .any(|u| tools::action_facts(&u.name(), false).contains(&"ci.deploy"))
}

fn is_production(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    n.contains("prod") || n == "live"
}

fn is_preproduction(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    [
        "stag", "dev", "test", "preview", "review", "qa", "uat", "sandbox",
    ]
    .iter()
    .any(|w| n.contains(w))
}

/// A snippet of a command for a fact's detail.
fn clip(text: &str) -> String {
    crate::finding::clip(text)
}

fn github_rules(cx: &mut Context<'_>, p: &Pipeline) {
    let pr_target = p.triggers.iter().any(|t| t == "pull_request_target");
    for job in &p.jobs {
        for u in &job.uses {
            unpinned(cx, p, u);
            if pr_target
                && u.name() == "actions/checkout"
                && let Some((reference, line)) = u.input("ref")
                && (reference.contains("pull_request.head")
                    || reference.contains("head_ref")
                    || reference.contains("refs/pull/"))
            {
                cx.find(
                            &PR_TARGET_CHECKOUT,
                            at(cx, &p.path, line),
                            format!(
                                "Workflow {} runs on pull_request_target and job {} checks out the pull request's head ({reference}), running untrusted code with the repository's secrets.",
                                p.path, job.name
                            ),
                        );
            }
        }
        if let Some((perms, line)) = &job.permissions
            && perms.trim() == "write-all"
        {
            cx.find(
                &WRITE_ALL,
                at(cx, &p.path, *line),
                format!("Job {} gives its token write-all permissions.", job.name),
            );
        }
    }
    match &p.permissions {
        Some((perms, line)) if perms.trim() == "write-all" => cx.find(
            &WRITE_ALL,
            at(cx, &p.path, *line),
            format!("Workflow {} gives its token write-all permissions.", p.path),
        ),
        Some(_) => {}
        None => {
            if p.jobs.iter().any(|j| j.permissions.is_none()) {
                cx.find(
                    &NO_PERMISSIONS,
                    Evidence::file(&p.path),
                    format!(
                        "Workflow {} sets no `permissions:`, so its token has the repository's default permissions.",
                        p.path
                    ),
                );
            }
        }
    }
}

/// Whether an action reference is pinned: a 40-hex SHA, or a docker image by digest.
fn is_pinned(action: &str) -> bool {
    if action.starts_with("./") || action.starts_with('.') {
        return true;
    }
    if let Some(image) = action.strip_prefix("docker://") {
        return image.contains("@sha256:");
    }
    match action.rsplit_once('@') {
        Some((_, r)) => r.len() == 40 && r.bytes().all(|b| b.is_ascii_hexdigit()),
        None => false,
    }
}

fn unpinned(cx: &mut Context<'_>, p: &Pipeline, u: &model::Uses) {
    if u.action.starts_with('.') {
        return;
    }
    if is_pinned(&u.action) {
        return;
    }
    let (name, reference) = match u.action.rsplit_once('@') {
        Some((n, r)) => (n, r),
        None => (u.action.as_str(), ""),
    };
    let how = if reference.is_empty() {
        "without a version".to_string()
    } else {
        format!("by the tag or branch `{reference}`")
    };
    let fix = if name.starts_with("docker://") {
        format!("Pin the image by digest: `uses: {name}@sha256:<digest>`.")
    } else {
        format!(
            "Pin it to a commit SHA, keeping the tag as a comment: `uses: {name}@<40-hex sha> # {}`; Dependabot (package-ecosystem: github-actions) keeps such pins current.",
            if reference.is_empty() {
                "vX"
            } else {
                reference
            }
        )
    };
    cx.find_with(
        &UNPINNED_ACTION,
        vec![at(cx, &p.path, u.line)],
        format!(
            "`{}` is pinned {how}, which can be moved to other code.",
            u.action
        ),
        fix,
    );
}

fn shell_rules(cx: &mut Context<'_>, p: &Pipeline, cmd: &model::Cmd) {
    let text = cmd.text.trim();
    if text.starts_with('#') {
        return;
    }
    if CURL_PIPE.is_match(text) {
        cx.find(
            &CURL_PIPE_SHELL,
            at(cx, &p.path, cmd.line),
            "CI pipes a downloaded script straight into a shell.",
        );
    }
    if let Some(m) = ECHO.find(text) {
        let rest = &text[m.end()..];
        if let Some(secret) = SECRET_REF.find(rest) {
            let piped = rest.contains('|') || rest.contains('>');
            if !piped {
                cx.find(
                    &SECRET_ECHOED,
                    at(cx, &p.path, cmd.line),
                    format!("`{}` prints {} to the CI log.", m.as_str(), secret.as_str()),
                );
            }
        }
    }
}

fn deploy_rules(cx: &mut Context<'_>, pipelines: &[Pipeline]) {
    let cutover_approvals = cx
        .repo
        .files()
        .iter()
        .filter(|f| f.name == "cutover.toml")
        .filter_map(|f| cx.repo.text(f).map(|t| (f.path.clone(), t)))
        .find(|(_, t)| t.lines().any(|l| l.trim_start().starts_with("approvals")))
        .map(|(path, _)| path);
    let mut deploy_envs: Vec<(String, Evidence)> = Vec::new();
    for p in pipelines.iter().filter(|p| p.kind != Kind::Other) {
        for job in p.jobs.iter().filter(|j| is_deploy_job(j)) {
            let env_name = job.environment.as_ref().map(|(e, _)| e.clone());
            if let Some((env, line)) = &job.environment
                && !deploy_envs.iter().any(|(e, _)| e == env)
            {
                deploy_envs.push((env.clone(), at(cx, &p.path, *line)));
            }
            let target = env_name.clone().unwrap_or_else(|| job.name.clone());
            let production =
                is_production(&target) || (env_name.is_none() && !is_preproduction(&job.name));
            if !production {
                continue;
            }
            // The gate: a manual job, an approval action in the job or a job it needs, or cutover approvals.
            let mut gate: Option<(String, Evidence)> = job
                .manual
                .map(|l| ("`when: manual`".to_string(), at(cx, &p.path, l)));
            if gate.is_none() {
                gate = p
                    .jobs
                    .iter()
                    .filter(|j| j.name == job.name || job.needs.contains(&j.name))
                    .flat_map(|j| j.uses.iter())
                    .find(|u| APPROVAL_ACTIONS.contains(&u.name().as_str()))
                    .map(|u| (u.action.clone(), at(cx, &p.path, u.line)));
            }
            match (&gate, &cutover_approvals) {
                (Some((what, ev)), _) => cx.fact(
                    "env.approvals",
                    format!("job {} waits for {what}", job.name),
                    ev.clone(),
                ),
                (None, Some(_)) => {}
                (None, None) => match (&job.environment, p.kind) {
                    (Some((env, line)), Kind::GitHub) => cx.find(
                        &UNSEEN_REVIEWERS,
                        at(cx, &p.path, *line),
                        format!(
                            "Job {} deploys to environment {env}; whether it needs a reviewer is set outside the repository, and nothing here shows a gate.",
                            job.name
                        ),
                    ),
                    _ => cx.find(
                        &UNGATED_PRODUCTION,
                        at(cx, &p.path, job.line),
                        format!(
                            "Job {} deploys to {target} with no approval gate: nothing stands between a merge and production.",
                            job.name
                        ),
                    ),
                },
            }
            // Promotion: production needs a pre-production deploy job.
            let promoted_from = p.jobs.iter().find(|j| {
                job.needs.contains(&j.name)
                    && is_deploy_job(j)
                    && is_preproduction(
                        &j.environment
                            .as_ref()
                            .map(|(e, _)| e.clone())
                            .unwrap_or_else(|| j.name.clone()),
                    )
            });
            if let Some(from) = promoted_from {
                let ev = at(cx, &p.path, job.line);
                cx.fact(
                    "env.promotion",
                    format!("job {} deploys after job {} succeeded", job.name, from.name),
                    ev,
                );
            }
        }
    }
    if deploy_envs.len() >= 2 {
        let names: Vec<&str> = deploy_envs.iter().map(|(e, _)| e.as_str()).collect();
        cx.fact(
            "env.multiple",
            format!("CI deploys to {}", names.join(" and ")),
            deploy_envs[0].1.clone(),
        );
    }
}

fn missing_rules(cx: &mut Context<'_>, pipelines: &[Pipeline], seen: &Facts) {
    let files: Vec<Evidence> = pipelines.iter().map(|p| Evidence::file(&p.path)).collect();
    let names = pipelines
        .iter()
        .map(|p| p.path.as_str())
        .collect::<Vec<_>>()
        .join(", ");
    if !seen.ids.contains("ci.tests") {
        cx.find_with(
            &NO_TESTS,
            files.clone(),
            format!("CI ({names}) has no step that runs tests."),
            NO_TESTS.fix.to_string(),
        );
    }
    if !seen.ids.contains("ci.dependency-scan") {
        let fix = match dependency_scanner(cx) {
            Some(tool) => format!(
                "Add `{tool}` as a CI step (it fails the job on a known vulnerability). {}",
                NO_DEPENDENCY_SCAN.fix
            ),
            None => NO_DEPENDENCY_SCAN.fix.to_string(),
        };
        cx.find_with(
            &NO_DEPENDENCY_SCAN,
            files.clone(),
            format!("CI ({names}) does not scan dependencies for known vulnerabilities."),
            fix,
        );
    }
    if !seen.ids.contains("ci.image-scan")
        && let Some(build) = seen.builds.first()
    {
        cx.find(
            &UNSCANNED_IMAGE,
            build.clone(),
            "CI builds a container image here but no step scans it.",
        );
    }
    if !seen.ids.contains("ci.deploy") {
        cx.find_with(
            &NO_DEPLOY,
            files,
            format!("No job in CI ({names}) deploys: releases are made by hand."),
            NO_DEPLOY.fix.to_string(),
        );
    }
    let uses: Vec<&str> = pipelines
        .iter()
        .flat_map(|p| p.jobs.iter())
        .flat_map(|j| j.uses.iter())
        .map(|u| u.action.as_str())
        .filter(|a| !a.starts_with('.'))
        .collect();
    if uses.iter().all(|a| is_pinned(a)) {
        let detail = if uses.is_empty() {
            "no third-party actions used".to_string()
        } else {
            format!("all {} actions pinned by commit SHA", uses.len())
        };
        cx.fact(
            "ci.pinned-actions",
            detail,
            Evidence::file(&pipelines[0].path),
        );
    }
}

/// Dependabot or Renovate configuration: `sec.dependency-updates`.
fn dependency_updates(cx: &mut Context<'_>) {
    const FILES: [&str; 9] = [
        ".github/dependabot.yml",
        ".github/dependabot.yaml",
        "renovate.json",
        "renovate.json5",
        ".renovaterc",
        ".renovaterc.json",
        ".github/renovate.json",
        ".github/renovate.json5",
        ".gitlab/renovate.json",
    ];
    for path in FILES {
        if cx.repo.file(path).is_some() {
            let tool = if path.contains("dependabot") {
                "Dependabot"
            } else {
                "Renovate"
            };
            cx.fact(
                "sec.dependency-updates",
                format!("{tool} ({path})"),
                Evidence::file(path),
            );
            return;
        }
    }
}

/// The scanner that fits the repository's package manager.
fn dependency_scanner(cx: &Context<'_>) -> Option<&'static str> {
    let has = |p: &str| cx.repo.file(p).is_some();
    if has("package.json") {
        Some("npm audit --audit-level=high")
    } else if has("go.mod") {
        Some("govulncheck ./...")
    } else if has("requirements.txt") || has("pyproject.toml") || has("Pipfile") {
        Some("pip-audit")
    } else if has("Cargo.toml") {
        Some("cargo audit")
    } else if has("Gemfile") {
        Some("bundle exec bundle-audit check --update")
    } else {
        None
    }
}

#[cfg(test)]
mod tests;
