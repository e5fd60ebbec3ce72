//! The migrations pass on the fixture repositories: tools, down migrations,
//! dangerous DDL (with a linter hook standing in for cutover's), and the
//! pipeline facts.

use std::path::{Path, PathBuf};

use cutover_assess::{Hooks, NoHooks, Report, SqlProblem, assess};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(name: &str, hooks: &dyn Hooks) -> Report {
    assess(&fixture(name), hooks).expect("assess")
}

/// `rule path:line` of this pass's findings, sorted.
fn findings(report: &Report) -> Vec<String> {
    let mut v: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.rule.starts_with("migrations/"))
        .map(|f| format!("{} {}", f.rule, f.evidence[0].location()))
        .collect();
    v.sort();
    v
}

fn fact<'a>(report: &'a Report, id: &str) -> Option<&'a cutover_assess::Fact> {
    report.facts.iter().find(|f| f.id == id)
}

/// A stand-in for cutover's linter: `CREATE INDEX` without CONCURRENTLY is
/// denied, `integer` columns get style advice. It records the paths and
/// dialects it was asked about.
#[derive(Default)]
struct FakeLinter {
    asked: std::sync::Mutex<Vec<(String, bool)>>,
}

impl Hooks for FakeLinter {
    fn lint_sql(&self, path: &str, sql: &str, postgres: bool) -> Vec<SqlProblem> {
        self.asked
            .lock()
            .expect("lock")
            .push((path.to_string(), postgres));
        let mut out = Vec::new();
        for (i, line) in sql.lines().enumerate() {
            let upper = line.to_ascii_uppercase();
            if let Some(col) = upper.find("CREATE INDEX")
                && !upper.contains("CONCURRENTLY")
            {
                out.push(SqlProblem {
                    line: i + 1,
                    column: col + 1,
                    rule: "require-concurrent-index-creation".into(),
                    message: "CREATE INDEX blocks writes".into(),
                    help: Some("Use CREATE INDEX CONCURRENTLY".into()),
                    deny: true,
                });
            }
            if let Some(col) = upper.find(" INTEGER ") {
                out.push(SqlProblem {
                    line: i + 1,
                    column: col + 2,
                    rule: "prefer-bigint-over-int".into(),
                    message: "integer can overflow".into(),
                    help: None,
                    deny: false,
                });
            }
        }
        out
    }
}

#[test]
fn golang_migrate_sql_goes_through_the_linter_hook() {
    let linter = FakeLinter::default();
    let report = run("go-k8s", &linter);
    assert_eq!(
        findings(&report),
        [
            "migrations/dangerous-ddl migrations/000002_index_items_sku.up.sql:2",
            "migrations/ddl-style migrations/000001_init.up.sql:4",
        ]
    );
    let deny = report
        .findings
        .iter()
        .find(|f| f.rule == "migrations/dangerous-ddl")
        .expect("deny finding");
    assert_eq!(deny.severity, cutover_assess::Severity::High);
    assert_eq!(deny.evidence[0].column, 1);
    assert!(deny.message.contains("require-concurrent-index-creation"));
    assert!(deny.fix.starts_with("Use CREATE INDEX CONCURRENTLY"));
    // Only up migrations are linted, as PostgreSQL (pgx in go.mod).
    let mut asked = linter.asked.lock().expect("lock").clone();
    asked.sort();
    assert_eq!(
        asked,
        [
            ("migrations/000001_init.up.sql".to_string(), true),
            ("migrations/000002_index_items_sku.up.sql".to_string(), true),
        ]
    );
    let tool = fact(&report, "db.migrations").expect("db.migrations");
    assert_eq!(tool.detail, "golang-migrate");
    assert_eq!(tool.evidence.path, "migrations/000001_init.up.sql");
    assert!(fact(&report, "db.down-migrations").is_some());
}

#[test]
fn without_a_linter_go_k8s_has_no_migration_findings() {
    assert!(findings(&run("go-k8s", &NoHooks)).is_empty());
}

#[test]
fn alembic_not_null_without_default_and_an_empty_downgrade() {
    let report = run("fastapi-celery", &NoHooks);
    assert_eq!(
        findings(&report),
        [
            "migrations/missing-down alembic/versions/0002_add_plan.py:17",
            "migrations/not-null-without-default alembic/versions/0002_add_plan.py:14",
        ]
    );
    let tool = fact(&report, "db.migrations").expect("db.migrations");
    assert_eq!(tool.detail, "Alembic");
    assert_eq!(tool.evidence.path, "alembic/versions/0001_create_users.py");
    assert_eq!(
        fact(&report, "db.down-migrations").map(|f| f.detail.as_str()),
        Some("Alembic: 1 of 2 migrations have a down part")
    );
}

#[test]
fn knex_migrations_with_up_and_down() {
    let report = run("node-compose", &NoHooks);
    assert!(findings(&report).is_empty());
    assert_eq!(
        fact(&report, "db.migrations").map(|f| (f.detail.as_str(), f.evidence.path.as_str())),
        Some(("Knex", "migrations/20240101120000_create_orders.js"))
    );
    assert!(fact(&report, "db.down-migrations").is_some());
    // `knex migrate:latest` in package.json scripts is run by hand.
    assert!(fact(&report, "db.migrate-in-pipeline").is_none());
}

#[test]
fn a_schema_file_without_migrations() {
    let report = run("sqlite-cp", &NoHooks);
    assert!(findings(&report).is_empty());
    assert!(fact(&report, "db.migrations").is_none());
    assert_eq!(
        fact(&report, "db.schema-file").map(|f| f.evidence.path.as_str()),
        Some("schema.sql")
    );
}

#[test]
fn clean_uses_cutover_migrations_with_downs_lint_and_a_contract_phase() {
    let linter = FakeLinter::default();
    let report = run("clean", &linter);
    assert!(findings(&report).is_empty(), "{:?}", findings(&report));
    assert_eq!(linter.asked.lock().expect("lock").len(), 3);
    // This pass names the tool; the cutover_config pass records the same
    // folder from the cutover.toml.
    assert!(
        report
            .facts
            .iter()
            .any(|f| f.id == "db.migrations" && f.detail == "cutover"),
        "{:?}",
        report.facts
    );
    for id in ["db.down-migrations", "db.migration-lint"] {
        assert!(fact(&report, id).is_some(), "{id}");
    }
    assert_eq!(
        fact(&report, "db.expand-contract").map(|f| f.evidence.location()),
        Some("migrations/0003_drop_legacy_name.sql:1".to_string())
    );
}

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, bytes).expect("write");
}

#[test]
fn other_tools_are_named_and_pipeline_facts_recorded() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "db/migrate/20240101000000_add_plan.rb", b"class AddPlan < ActiveRecord::Migration[7.1]\n  def up\n    add_index :users, :plan\n  end\nend\n");
    write(root, "shop/migrations/0001_initial.py", b"from django.db import migrations\n\nclass Migration(migrations.Migration):\n    operations = [\n        migrations.RunPython(forwards),\n    ]\n");
    write(root, "sql/V1__init.sql", b"CREATE TABLE a (id bigint);\n");
    write(root, "sql/U1__init.sql", b"DROP TABLE a;\n");
    write(
        root,
        "db/goose/001_x.sql",
        b"-- +goose Up\nCREATE TABLE b (id bigint);\n-- +goose Down\nDROP TABLE b;\n",
    );
    write(
        root,
        "prisma/migrations/20240101_init/migration.sql",
        b"CREATE TABLE c (id int);\n",
    );
    write(
        root,
        "Procfile",
        b"web: bin/start\nrelease: bundle exec rails db:migrate\n",
    );
    write(root, ".squawk.toml", b"excluded_rules = []\n");
    write(
        root,
        "docs/migrations.md",
        b"# Migrations\n\nEvery change is split: expand first, contract a release later.\n",
    );
    let report = assess(root, &NoHooks).expect("assess");
    let mut tools: Vec<&str> = report
        .facts
        .iter()
        .filter(|f| f.id == "db.migrations")
        .map(|f| f.detail.as_str())
        .collect();
    tools.sort();
    assert_eq!(tools, ["Django", "Flyway", "Prisma", "Rails", "goose"]);
    assert_eq!(
        findings(&report),
        [
            "migrations/index-not-concurrent db/migrate/20240101000000_add_plan.rb:3",
            "migrations/irreversible db/migrate/20240101000000_add_plan.rb",
            "migrations/irreversible shop/migrations/0001_initial.py:5",
        ]
    );
    assert_eq!(
        fact(&report, "db.migrate-in-pipeline").map(|f| f.evidence.location()),
        Some("Procfile:2".to_string())
    );
    assert_eq!(
        fact(&report, "db.migration-lint").map(|f| f.evidence.path.as_str()),
        Some(".squawk.toml")
    );
    assert_eq!(
        fact(&report, "db.expand-contract").map(|f| f.evidence.location()),
        Some("docs/migrations.md:3".to_string())
    );
}

#[test]
fn garbage_never_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "migrations/0001_x.sql", &[0xff, 0xfe, 0x00, 0x41]);
    write(
        root,
        "alembic/versions/1.py",
        "def upgrade(:\n    op.add_column((((".as_bytes(),
    );
    write(
        root,
        "migrations/0002_y.py",
        "class Migration(migrations.Migration): RunPython(".as_bytes(),
    );
    write(
        root,
        "db/migrate/1_x.rb",
        format!("add_column :a, {}", ",".repeat(10_000)).as_bytes(),
    );
    write(
        root,
        "migrations/000003_z.up.sql",
        "é".repeat(200_000).as_bytes(),
    );
    write(root, "changelog.xml", b"databaseChangeLog <<<");
    let report = assess(root, &FakeLinter::default()).expect("assess");
    assert!(report.facts.iter().any(|f| f.id == "db.migrations"));
}
