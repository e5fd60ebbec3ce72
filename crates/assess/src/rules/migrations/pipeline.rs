//! How migrations are run and checked: from CI, an entrypoint or a release
//! phase (`db.migrate-in-pipeline`), linted for locking DDL
//! (`db.migration-lint`), and split into expand and contract phases
//! (`db.expand-contract`).

use std::sync::LazyLock;

use regex::Regex;

use crate::finding::Evidence;
use crate::repo::RepoFile;
use crate::rules::Context;

static MIGRATE: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(concat!(
        r"(?im)\balembic\b[^\n]*\bupgrade\b|\bknex\b[^\n]*\bmigrate:latest\b|\bmigrate\s+-(?:path|source|database)\b",
        r"|\bflyway\b[^\n]*\bmigrate\b|\bprisma\s+migrate\s+deploy\b|\bmanage\.py\s+migrate\b",
        r"|\b(?:rails|rake)\s+db:migrate\b|\bcutover\s+migrate\b(?:\s+(?:up|apply|--|-e)|\s*$)|\bgoose\b[^\n]*\bup\b",
        r"|\bsqlx\s+migrate\s+run\b|\bliquibase\b[^\n]*\bupdate\b|\bsequelize(?:-cli)?\s+db:migrate\b",
        r"|\btypeorm\b[^\n]*migration:run\b|\b(?:npm\s+run|yarn|pnpm)\s+(?:db:)?migrate\b",
    ))
    .expect("regex")
});

static LINT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)\bsquawk\b|\bcutover\s+migrate\s+lint\b|\batlas\s+migrate\s+lint\b|django-migration-linter|\blintmigrations\b|\bstrong_migrations\b",
    )
    .expect("regex")
});

static EXPAND_CONTRACT: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"(?i)\bexpand\b[^\n]{0,80}\bcontract\b").expect("regex"));

/// CI configuration (where a run is automatic).
pub fn is_ci(file: &RepoFile) -> bool {
    let p = file.path.as_str();
    (p.starts_with(".github/workflows/") && matches!(file.ext().as_str(), "yml" | "yaml"))
        || p == ".gitlab-ci.yml"
        || p.starts_with(".circleci/")
        || p.starts_with(".buildkite/")
        || matches!(
            file.name.as_str(),
            "Jenkinsfile" | "bitbucket-pipelines.yml" | "azure-pipelines.yml" | ".drone.yml"
        )
}

/// Files that run migrations without a person: CI, entrypoints, release
/// phases, Dockerfiles, Kubernetes and compose files.
fn runs_unattended(file: &RepoFile) -> bool {
    let name = file.name.to_ascii_lowercase();
    let ext = file.ext();
    is_ci(file)
        || name == "procfile"
        || name.starts_with("dockerfile")
        || matches!(
            name.as_str(),
            "fly.toml" | "app.json" | "render.yaml" | "heroku.yml"
        )
        || (matches!(ext.as_str(), "sh" | "bash")
            && ["entrypoint", "deploy", "release", "start", "boot"]
                .iter()
                .any(|w| name.contains(w)))
        || (matches!(ext.as_str(), "yml" | "yaml")
            && !file.in_dir("migrations")
            && file.size < 256 * 1024)
}

/// Files where a migration linter is configured or run.
fn may_lint(file: &RepoFile) -> bool {
    let name = file.name.as_str();
    is_ci(file)
        || matches!(
            name,
            "package.json"
                | "Makefile"
                | "justfile"
                | "Gemfile"
                | "pyproject.toml"
                | ".squawk.toml"
                | ".pre-commit-config.yaml"
                | "lefthook.yml"
        )
        || name.starts_with("requirements")
        || matches!(file.ext().as_str(), "sh" | "bash")
}

/// Records the pipeline facts. `cutover_migrations`: the repository's SQL
/// migrations use cutover's directives (cutover lints them on every deploy).
pub fn run(cx: &mut Context<'_>, cutover_migrations: bool) {
    let repo = cx.repo;
    let mut migrate = None;
    let mut lint = None;
    let mut contract = None;
    let mut documented = None;
    for file in repo.files() {
        let unattended = migrate.is_none() && runs_unattended(file);
        let lints = lint.is_none() && (may_lint(file) || file.name == ".squawk.toml");
        let sql = contract.is_none() && file.ext() == "sql";
        let doc = documented.is_none() && file.ext() == "md";
        if !(unattended || lints || sql || doc) {
            continue;
        }
        let Some(text) = repo.text(file) else {
            continue;
        };
        if unattended && let Some(m) = MIGRATE.find(text) {
            let line = crate::repo::line_of(text, m.start());
            migrate = Some((
                format!("`{}` in {}", m.as_str().trim(), file.name),
                Evidence::at(&file.path, text, line),
            ));
        }
        if lints {
            if file.name == ".squawk.toml" {
                lint = Some((
                    "squawk configuration".to_string(),
                    Evidence::file(&file.path),
                ));
            } else if let Some(m) = LINT.find(text) {
                let line = crate::repo::line_of(text, m.start());
                lint = Some((
                    format!("{} in {}", m.as_str(), file.name),
                    Evidence::at(&file.path, text, line),
                ));
            }
        }
        if sql
            && let Some(i) = text
                .lines()
                .position(|l| l.trim_start().starts_with("-- cutover:phase contract"))
        {
            contract = Some((
                format!("contract migration {}", file.name),
                Evidence::at(&file.path, text, i + 1),
            ));
        }
        if doc && let Some(m) = EXPAND_CONTRACT.find(text) {
            let line = crate::repo::line_of(text, m.start());
            documented = Some((
                format!("expand/contract documented in {}", file.name),
                Evidence::at(&file.path, text, line),
            ));
        }
    }
    if let Some((detail, evidence)) = migrate {
        cx.fact("db.migrate-in-pipeline", detail, evidence);
    }
    if lint.is_none()
        && cutover_migrations
        && let Some(first) = repo.files().iter().find(|f| {
            f.ext() == "sql"
                && repo
                    .text(f)
                    .is_some_and(super::tools::has_cutover_directive)
        })
    {
        lint = Some((
            "cutover lints its migrations on every deploy (deny rules block it)".to_string(),
            Evidence::file(&first.path),
        ));
    }
    if let Some((detail, evidence)) = lint {
        cx.fact("db.migration-lint", detail, evidence);
    }
    if let Some((detail, evidence)) = contract.or(documented) {
        cx.fact("db.expand-contract", detail, evidence);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrate_commands_are_recognised() {
        for cmd in [
            "alembic upgrade head",
            "alembic -c alembic.ini upgrade head",
            "npx knex migrate:latest",
            "migrate -path migrations -database $DB up",
            "flyway -url=x migrate",
            "npx prisma migrate deploy",
            "python manage.py migrate --noinput",
            "bin/rails db:migrate",
            "cutover migrate",
            "goose -dir migrations postgres $DB up",
            "sqlx migrate run",
        ] {
            assert!(MIGRATE.is_match(cmd), "{cmd}");
        }
        for cmd in [
            "cutover migrate lint",
            "echo migrate",
            "alembic revision -m x",
        ] {
            assert!(!MIGRATE.is_match(cmd), "{cmd}");
        }
    }
}
