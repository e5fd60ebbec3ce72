//! Migration rules: which tool is in use (Alembic, Flyway, Liquibase, Prisma,
//! Knex, Django, goose, sqlx, Rails, golang-migrate, cutover's own, TypeORM,
//! Sequelize, plain SQL folders), whether migrations can be reverted,
//! dangerous DDL (SQL files through cutover's own linter, [`crate::Hooks::lint_sql`];
//! Alembic, Django and Rails code by pattern), and whether migrations run
//! from the pipeline, are linted and split into expand and contract phases.
//!
//! - [`tools`] says which tool a file belongs to;
//! - [`ops`] finds locking operations in migration code;
//! - [`reverts`] says whether each migration has a down part;
//! - [`pipeline`] records how migrations are run, linted and phased.

mod ops;
mod pipeline;
mod pyargs;
mod reverts;
mod tools;

use std::collections::BTreeMap;

use super::{Context, RuleInfo};
use crate::finding::{Area, Evidence, Severity};
use crate::repo::Repo;

pub use tools::Tool;

const DB_LINES: &str = "[database.main]\nurl = \"${DATABASE_URL}\"\nmigrations = \"migrations\"   # linted on every deploy: `deny` rules block it\nlint = { warn = [\"prefer-bigint-over-int\"] }";

pub const DANGEROUS_DDL: RuleInfo = RuleInfo {
    id: "migrations/dangerous-ddl",
    area: Area::DatabaseOperations,
    severity: Severity::High,
    title: "Migration takes a lock or breaks the running release",
    why: "Statements such as CREATE INDEX without CONCURRENTLY, a NOT NULL column without a default or a column type change lock a busy table (every query queues behind them) or break the release still serving during a rollout. cutover's migration linter refuses them before a deploy.",
    fix: "Rewrite the statement the safe way the linter names (CREATE INDEX CONCURRENTLY in its own non-transactional migration, add the column nullable then backfill and add the constraint NOT VALID, add a new column instead of changing a type), or allow it with a reason when the table is small.",
    cutover: Some(DB_LINES),
};

pub const DDL_STYLE: RuleInfo = RuleInfo {
    id: "migrations/ddl-style",
    area: Area::DatabaseOperations,
    severity: Severity::Low,
    title: "Migration style advice",
    why: "The linter's style rules (bigint over int, identity columns, text over varchar) avoid costly migrations later; they warn rather than block.",
    fix: "Follow the linter's advice in the next migration that touches the column, or turn the rule off for this database if the team disagrees.",
    cutover: Some(DB_LINES),
};

pub const NOT_NULL_WITHOUT_DEFAULT: RuleInfo = RuleInfo {
    id: "migrations/not-null-without-default",
    area: Area::DatabaseOperations,
    severity: Severity::High,
    title: "NOT NULL column added without a default",
    why: "Adding a NOT NULL column without a default fails on a table with rows, and the old release, which does not write the column, fails every insert once it exists.",
    fix: "Add the column nullable (or with a server-side default: `server_default=` in Alembic, `default=` in Django, `default:` in Rails), backfill it, then make it NOT NULL in a later migration once every release writes it.",
    cutover: Some(DB_LINES),
};

pub const INDEX_NOT_CONCURRENT: RuleInfo = RuleInfo {
    id: "migrations/index-not-concurrent",
    area: Area::DatabaseOperations,
    severity: Severity::High,
    title: "Index built without CONCURRENTLY",
    why: "On PostgreSQL, CREATE INDEX blocks every write to the table until the index is built, which on a large table is minutes of failed requests.",
    fix: "Build it concurrently: `op.create_index(..., postgresql_concurrently=True)` inside `with op.get_context().autocommit_block():` (Alembic), `AddIndexConcurrently` with `atomic = False` (Django), `add_index ..., algorithm: :concurrently` with `disable_ddl_transaction!` (Rails).",
    cutover: Some(DB_LINES),
};

pub const COLUMN_TYPE_CHANGE: RuleInfo = RuleInfo {
    id: "migrations/column-type-change",
    area: Area::DatabaseOperations,
    severity: Severity::High,
    title: "Column type changed in place",
    why: "Changing a column's type rewrites the table under an exclusive lock, and the release still running reads the old type.",
    fix: "Add a new column of the new type, write both from the application, backfill, switch reads, then drop the old column in a contract migration.",
    cutover: Some(DB_LINES),
};

pub const DROP_NEEDS_CONTRACT: RuleInfo = RuleInfo {
    id: "migrations/drop-needs-contract",
    area: Area::DatabaseOperations,
    severity: Severity::Medium,
    title: "Column or table dropped while the old release may use it",
    why: "During a rollout the old release still runs; if it reads a column the migration drops, its requests fail until it is gone, and a rollback cannot bring the data back.",
    fix: "Split the change: first deploy code that no longer uses the column (expand), then drop it in a later migration (contract) that runs after every instance is on the new release.",
    cutover: Some(
        "-- in the SQL migration that drops it (cutover runs it after the new release serves everything):\n-- cutover:phase contract",
    ),
};

pub const IRREVERSIBLE: RuleInfo = RuleInfo {
    id: "migrations/irreversible",
    area: Area::DatabaseOperations,
    severity: Severity::Medium,
    title: "Migrations cannot be reverted",
    why: "With no down migrations, a release whose migration went wrong can only be fixed forward, under pressure; a rollback of the code leaves a schema it may not understand.",
    fix: "Write the down part of each migration (Alembic `def downgrade`, Knex `exports.down`, golang-migrate `.down.sql`, Flyway `U<n>__`, Rails `def down` or a reversible `change`, goose `-- +goose Down`, Django `reverse_code`/`reverse_sql`), or use expand/contract migrations that never need one.",
    cutover: Some(
        "-- at the end of each SQL migration:\n-- cutover:down\nDROP INDEX CONCURRENTLY IF EXISTS …;",
    ),
};

pub const MISSING_DOWN: RuleInfo = RuleInfo {
    id: "migrations/missing-down",
    area: Area::DatabaseOperations,
    severity: Severity::Low,
    title: "Some migrations cannot be reverted",
    why: "The other migrations have a down part; these do not, so reverting stops at them.",
    fix: "Write the down part of the migrations listed, or say in the file why it cannot exist (data that is gone).",
    cutover: Some("-- at the end of the SQL migration:\n-- cutover:down\n…"),
};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[
    &DANGEROUS_DDL,
    &DDL_STYLE,
    &NOT_NULL_WITHOUT_DEFAULT,
    &INDEX_NOT_CONCURRENT,
    &COLUMN_TYPE_CHANGE,
    &DROP_NEEDS_CONTRACT,
    &IRREVERSIBLE,
    &MISSING_DOWN,
];

/// Runs the pass.
pub fn run(cx: &mut Context<'_>) {
    let repo = cx.repo;
    let hints = tools::Hints::of(repo);
    let postgres = uses_postgres(repo);
    let mut by_tool: BTreeMap<Tool, Vec<tools::Classified<'_>>> = BTreeMap::new();
    for file in repo.files() {
        if let Some(c) = tools::classify(repo, file, &hints) {
            by_tool.entry(c.tool).or_default().push(c);
        }
    }
    if let Some(schema) = repo.files().iter().find(|f| tools::is_schema_file(f)) {
        cx.fact(
            "db.schema-file",
            schema.name.clone(),
            Evidence::file(&schema.path),
        );
    }
    for (tool, files) in &by_tool {
        let first = files
            .iter()
            .find(|c| c.role == tools::Role::Up)
            .or_else(|| files.first());
        if let Some(first) = first {
            cx.fact(
                "db.migrations",
                tool.name(),
                Evidence::file(&first.file.path),
            );
        }
        let ups: Vec<&tools::Classified<'_>> =
            files.iter().filter(|c| c.role == tools::Role::Up).collect();
        if tool.is_sql() {
            lint_sql(cx, *tool, &ups, postgres);
        } else {
            scan_code(cx, *tool, &ups, postgres);
        }
        reverts::check(cx, *tool, files);
    }
    pipeline::run(cx, by_tool.contains_key(&Tool::Cutover));
}

/// Sends each SQL migration (its up part) through cutover's linter.
fn lint_sql(cx: &mut Context<'_>, tool: Tool, ups: &[&tools::Classified<'_>], postgres: bool) {
    for c in ups {
        let Some(text) = cx.repo.text(c.file) else {
            continue;
        };
        let sql = match tool {
            Tool::Goose => goose_up(text),
            _ => text,
        };
        let problems = cx.hooks.lint_sql(&c.file.path, sql, postgres);
        // Style advice is one finding per file and linter rule, with every line.
        let mut style: Vec<(String, Vec<Evidence>, String, String)> = Vec::new();
        for p in problems.iter().filter(|p| !p.deny) {
            let at = Evidence::at(&c.file.path, text, p.line).column(p.column);
            match style.iter_mut().find(|(rule, ..)| *rule == p.rule) {
                Some((_, lines, ..)) => lines.push(at),
                None => style.push((
                    p.rule.clone(),
                    vec![at],
                    p.message.clone(),
                    p.help.clone().unwrap_or_default(),
                )),
            }
        }
        for (lint_rule, evidence, message, help) in style {
            let n = evidence.len();
            let fix = if help.is_empty() {
                DDL_STYLE.fix.to_string()
            } else {
                format!("{}. {}", help.trim_end_matches('.'), DDL_STYLE.fix)
            };
            let times = if n > 1 {
                format!(" ({n} places)")
            } else {
                String::new()
            };
            cx.find_with(
                &DDL_STYLE,
                evidence,
                format!(
                    "{} migration {}: {message} ({lint_rule}){times}",
                    tool.name(),
                    c.file.name
                ),
                fix,
            );
        }
        for p in problems.into_iter().filter(|p| p.deny) {
            let rule = &DANGEROUS_DDL;
            let mut fix = rule.fix.to_string();
            if let Some(help) = &p.help {
                fix = format!("{}. {fix}", help.trim_end_matches('.'));
            }
            cx.find_with(
                rule,
                vec![Evidence::at(&c.file.path, text, p.line).column(p.column)],
                format!(
                    "{} migration {}: {} ({})",
                    tool.name(),
                    c.file.name,
                    p.message,
                    p.rule
                ),
                fix,
            );
        }
    }
}

/// The up part of a goose file: everything before `-- +goose Down`.
fn goose_up(text: &str) -> &str {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        if line
            .trim_start()
            .to_ascii_lowercase()
            .starts_with("-- +goose down")
        {
            return &text[..offset];
        }
        offset += line.len();
    }
    text
}

/// Finds locking operations in Alembic, Django and Rails migrations.
fn scan_code(cx: &mut Context<'_>, tool: Tool, ups: &[&tools::Classified<'_>], postgres: bool) {
    for c in ups {
        let Some(text) = cx.repo.text(c.file) else {
            continue;
        };
        for op in ops::scan(tool, text, postgres) {
            let (rule, what) = match op.kind {
                ops::OpKind::NotNullNoDefault => (
                    &NOT_NULL_WITHOUT_DEFAULT,
                    "adds a NOT NULL column without a default",
                ),
                ops::OpKind::IndexNotConcurrent => (
                    &INDEX_NOT_CONCURRENT,
                    "builds an index without CONCURRENTLY, blocking writes",
                ),
                ops::OpKind::TypeChange => (
                    &COLUMN_TYPE_CHANGE,
                    "changes a column's type in place (a table rewrite)",
                ),
                ops::OpKind::Drop => (
                    &DROP_NEEDS_CONTRACT,
                    "drops a column or table the running release may still use",
                ),
            };
            cx.find(
                rule,
                Evidence::at(&c.file.path, text, op.line),
                format!(
                    "{} migration {}: {} {what}",
                    tool.name(),
                    c.file.name,
                    op.call
                ),
            );
        }
    }
}

/// Whether the repository's database is PostgreSQL (the default) rather
/// than SQLite only, from its dependencies and configuration.
pub fn uses_postgres(repo: &Repo) -> bool {
    let mut pg = false;
    let mut sqlite = false;
    let wanted = |f: &crate::repo::RepoFile| {
        let n = f.name.as_str();
        matches!(
            n,
            "package.json"
                | "pyproject.toml"
                | "Pipfile"
                | "go.mod"
                | "Cargo.toml"
                | "Gemfile"
                | "schema.prisma"
                | "alembic.ini"
                | "cutover.toml"
                | "settings.py"
                | "config.py"
                | "database.yml"
                | ".env.example"
        ) || n.starts_with("requirements")
            || n.starts_with("knexfile.")
            || n.contains("compose")
    };
    for file in repo.files().iter().filter(|f| wanted(f)) {
        let Some(text) = repo.text(file) else {
            continue;
        };
        let lower = text.to_ascii_lowercase();
        pg |= [
            "postgres",
            "psycopg",
            "asyncpg",
            "\"pg\"",
            "lib/pq",
            "jackc/pgx",
        ]
        .iter()
        .any(|s| lower.contains(s));
        sqlite |= lower.contains("sqlite");
    }
    pg || !sqlite
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goose_up_stops_at_down() {
        let text = "-- +goose Up\nCREATE TABLE a (id int);\n-- +goose Down\nDROP TABLE a;\n";
        assert_eq!(goose_up(text), "-- +goose Up\nCREATE TABLE a (id int);\n");
        assert_eq!(goose_up("SELECT 1;"), "SELECT 1;");
    }
}
