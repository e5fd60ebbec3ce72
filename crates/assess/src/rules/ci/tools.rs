//! What a CI line or action does: tests, linters, scanners, image builds,
//! deploys. Each entry names the fact it proves; a shell line is matched by
//! a regular expression, an action by its name (without `@ref`).

use std::sync::LazyLock;

use regex::Regex;

/// A kind of step and what proves it.
pub struct Tool {
    /// The fact it records (`ci.tests`, `sec.sast`, …).
    pub fact: &'static str,
    /// Regular expressions over one shell line.
    pub commands: &'static [&'static str],
    /// Action names (`owner/repo` or `owner/repo/path`), lowercase; a
    /// trailing `*` matches any action under that prefix.
    pub actions: &'static [&'static str],
    /// GitLab `include: template:` names containing one of these.
    pub templates: &'static [&'static str],
}

pub const TOOLS: &[Tool] = &[
    Tool {
        fact: "ci.tests",
        commands: &[
            r"\b(npm|yarn|pnpm|bun)\s+(run\s+)?test\b",
            r"\bnpm\s+run\s+test:",
            r"\b(pytest|py\.test|nosetests|rspec|phpunit|vitest|jest|tox|nox)\b",
            r"\bpython3?\s+-m\s+(pytest|unittest)\b",
            r"\bmanage\.py\s+test\b",
            r"\bgo\s+test\b",
            r"\bcargo\s+(test|nextest)\b",
            r"\b(mvn|mvnw|gradle|gradlew)\b.*\b(test|verify|check)\b",
            r"\bmake\s+(test|check)\b",
            r"\bbundle\s+exec\s+(rake|rspec)\b",
            r"\b(dotnet|mix|deno)\s+test\b",
            r"\bctest\b",
        ],
        actions: &[],
        templates: &[],
    },
    Tool {
        fact: "ci.lint",
        commands: &[
            r"\b(eslint|ruff|flake8|pylint|mypy|pyright|golangci-lint|staticcheck|rubocop|hadolint|shellcheck|yamllint|stylelint|ktlint|phpstan)\b",
            r"\b(npm|yarn|pnpm)\s+(run\s+)?(lint|typecheck|type-check)\b",
            r"\bgo\s+vet\b",
            r"\bcargo\s+(clippy|fmt\b.*--check)",
            r"\b(black|prettier|isort)\b.*--check",
            r"\btsc\b.*--noEmit",
            r"\bmake\s+lint\b",
        ],
        actions: &[
            "golangci/golangci-lint-action",
            "hadolint/hadolint-action",
            "github/super-linter",
            "super-linter/super-linter*",
            "astral-sh/ruff-action",
            "chartboost/ruff-action",
            "reviewdog/*",
        ],
        templates: &["Code-Quality"],
    },
    Tool {
        fact: "ci.dependency-scan",
        commands: &[
            r"\b(npm|yarn|pnpm)\s+audit\b",
            r"\bpip-audit\b",
            r"\bsafety\s+(check|scan)\b",
            r"\bgovulncheck\b",
            r"\bcargo\s+(audit|deny)\b",
            r"\bsnyk\s+test\b",
            r"\bosv-scanner\b",
            r"\btrivy\s+(fs|filesystem|repo|repository)\b",
            r"\bbundle(r)?[- ]audit\b",
            r"\bdependency-check\b",
        ],
        actions: &[
            "actions/dependency-review-action",
            "snyk/actions*",
            "google/osv-scanner-action*",
            "golang/govulncheck-action",
            "pypa/gh-action-pip-audit",
            "rustsec/audit-check",
            "embarkstudios/cargo-deny-action",
        ],
        templates: &["Dependency-Scanning"],
    },
    Tool {
        fact: "ci.image-scan",
        commands: &[
            r"\btrivy\s+(image|i)\b",
            r"\bgrype\b",
            r"\bdocker\s+scout\s+(cves|quickview|recommendations)\b",
            r"\bsnyk\s+container\b",
        ],
        actions: &["anchore/scan-action", "docker/scout-action"],
        templates: &["Container-Scanning"],
    },
    Tool {
        fact: "ci.image-build",
        commands: &[
            r"\b(docker|podman)\s+(buildx\s+)?build\b",
            r"\bdocker\s+compose\s+build\b",
            r"\bbuildah\s+(bud|build)\b",
            r"/kaniko/executor\b",
            r"\bko\s+build\b",
        ],
        actions: &["docker/build-push-action", "redhat-actions/buildah-build"],
        templates: &[],
    },
    Tool {
        fact: "ci.deploy",
        commands: &[
            r"\bkubectl\s+(apply|set\s+image|rollout\s+restart)\b",
            r"\bhelm\s+(upgrade|install)\b",
            r"\bcutover\s+deploy\b",
            r"\bkamal\s+deploy\b",
            r"\b(fly|flyctl)\s+deploy\b",
            r"\bssh\b.*\bdocker\b",
            r"\bdocker\s+stack\s+deploy\b",
            r"\bterraform\s+apply\b",
            r"\b(serverless|sls|eb|gcloud\s+run|gcloud\s+app)\s+deploy\b",
            r"\baws\s+ecs\s+update-service\b",
            r"\bvercel\b.*--prod\b",
            r"\bgit\s+push\s+(heroku|dokku)\b",
            r"(^|[\s/])deploy\.sh\b",
            r"\bansible-playbook\b",
        ],
        actions: &[
            "appleboy/ssh-action",
            "superfly/flyctl-actions*",
            "azure/webapps-deploy",
            "azure/k8s-deploy",
            "google-github-actions/deploy-cloudrun",
            "aws-actions/amazon-ecs-deploy-task-definition",
            "akhileshns/heroku-deploy",
        ],
        templates: &["Auto-DevOps", "Jobs/Deploy"],
    },
    Tool {
        fact: "sec.secret-scan",
        commands: &[r"\b(gitleaks|trufflehog|detect-secrets|ggshield)\b"],
        actions: &[
            "gitleaks/gitleaks-action",
            "trufflesecurity/trufflehog",
            "gitguardian/ggshield-action",
        ],
        templates: &["Secret-Detection"],
    },
    Tool {
        fact: "sec.sast",
        commands: &[r"\b(semgrep|bandit|gosec|brakeman|njsscan|codeql|flawfinder|spotbugs)\b"],
        actions: &[
            "github/codeql-action*",
            "returntocorp/semgrep-action",
            "semgrep/semgrep-action",
            "securego/gosec",
            "pycqa/bandit-action",
        ],
        templates: &["SAST"],
    },
];

/// A line that installs a tool proves nothing about running it.
static INSTALL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"\b(pip3?|pipx|npm|yarn|pnpm|apt-get|apt|apk|brew|gem|go|cargo|uv)\s+(install|add|i|get|binstall)\b")
        .expect("INSTALL is a valid regex")
});

static COMPILED: LazyLock<Vec<(&'static str, Vec<Regex>)>> = LazyLock::new(|| {
    TOOLS
        .iter()
        .map(|t| {
            let res = t
                .commands
                .iter()
                .filter_map(|r| Regex::new(r).ok())
                .collect();
            (t.fact, res)
        })
        .collect()
});

/// The facts a shell line proves (a comment line proves nothing).
pub fn command_facts(line: &str) -> Vec<&'static str> {
    let line = line.trim();
    if line.starts_with('#') || line.starts_with("//") || INSTALL.is_match(line) {
        return Vec::new();
    }
    COMPILED
        .iter()
        .filter(|(_, res)| res.iter().any(|r| r.is_match(line)))
        .map(|(fact, _)| *fact)
        .collect()
}

/// The facts an action proves: `name` without `@ref`, lowercase. Trivy's
/// action counts as an image scan with `image-ref` and as a dependency
/// scan otherwise (its `scan-type: fs`).
pub fn action_facts(name: &str, image_ref: bool) -> Vec<&'static str> {
    if name == "aquasecurity/trivy-action" {
        return vec![if image_ref {
            "ci.image-scan"
        } else {
            "ci.dependency-scan"
        }];
    }
    TOOLS
        .iter()
        .filter(|t| {
            t.actions.iter().any(|a| match a.strip_suffix('*') {
                Some(prefix) => name.starts_with(prefix),
                None => name == *a,
            })
        })
        .map(|t| t.fact)
        .collect()
}

/// The facts a GitLab `include: template:` proves.
pub fn template_facts(template: &str) -> Vec<&'static str> {
    let base = template.rsplit('/').next().unwrap_or(template);
    TOOLS
        .iter()
        .filter(|t| {
            t.templates.iter().any(|name| {
                base.starts_with(&format!("{name}.")) || template.contains(&format!("{name}."))
            })
        })
        .map(|t| t.fact)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shell_lines_are_classified() {
        assert_eq!(command_facts("npm test"), ["ci.tests"]);
        assert_eq!(command_facts("python -m pytest -q"), ["ci.tests"]);
        assert_eq!(command_facts("go test ./..."), ["ci.tests"]);
        assert_eq!(command_facts("cargo clippy -- -D warnings"), ["ci.lint"]);
        assert_eq!(command_facts("govulncheck ./..."), ["ci.dependency-scan"]);
        assert_eq!(command_facts("trivy image app:1"), ["ci.image-scan"]);
        assert_eq!(command_facts("trivy fs ."), ["ci.dependency-scan"]);
        assert_eq!(command_facts("docker build -t app ."), ["ci.image-build"]);
        assert_eq!(
            command_facts("cutover deploy --env production"),
            ["ci.deploy"]
        );
        assert_eq!(command_facts("gitleaks detect"), ["sec.secret-scan"]);
        assert_eq!(command_facts("bandit -r app"), ["sec.sast"]);
        assert!(command_facts("# npm test").is_empty());
        assert!(command_facts("npm ci").is_empty());
        assert!(command_facts("echo testing").is_empty());
        assert!(command_facts("pip install pytest bandit").is_empty());
        assert_eq!(command_facts("helm install app ./chart"), ["ci.deploy"]);
    }

    #[test]
    fn actions_and_templates_are_classified() {
        assert_eq!(
            action_facts("github/codeql-action/analyze", false),
            ["sec.sast"]
        );
        assert_eq!(
            action_facts("aquasecurity/trivy-action", true),
            ["ci.image-scan"]
        );
        assert_eq!(
            action_facts("actions/dependency-review-action", false),
            ["ci.dependency-scan"]
        );
        assert!(action_facts("actions/checkout", false).is_empty());
        assert_eq!(
            template_facts("Security/Dependency-Scanning.gitlab-ci.yml"),
            ["ci.dependency-scan"]
        );
        assert_eq!(template_facts("Jobs/SAST.gitlab-ci.yml"), ["sec.sast"]);
        assert_eq!(
            template_facts("Security/Secret-Detection.gitlab-ci.yml"),
            ["sec.secret-scan"]
        );
        assert_eq!(
            template_facts("Jobs/Container-Scanning.gitlab-ci.yml"),
            ["ci.image-scan"]
        );
    }
}
