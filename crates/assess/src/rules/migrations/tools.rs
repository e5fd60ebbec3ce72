//! Which migration tool each file belongs to, decided by its name first and
//! its text only when the name cannot tell (a `.sql` file, a `.py` file in a
//! `versions/` folder).

use std::sync::LazyLock;

use regex::Regex;

use crate::repo::{Repo, RepoFile};

/// A migration tool, or a folder of plain SQL files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Tool {
    Alembic,
    Flyway,
    Liquibase,
    Prisma,
    Knex,
    Django,
    Goose,
    Sqlx,
    Rails,
    GolangMigrate,
    Cutover,
    TypeOrm,
    Sequelize,
    RawSql,
}

impl Tool {
    /// The name facts carry (`db.migrations` detail), which `cutover init` reads.
    pub fn name(self) -> &'static str {
        match self {
            Tool::Alembic => "Alembic",
            Tool::Flyway => "Flyway",
            Tool::Liquibase => "Liquibase",
            Tool::Prisma => "Prisma",
            Tool::Knex => "Knex",
            Tool::Django => "Django",
            Tool::Goose => "goose",
            Tool::Sqlx => "sqlx",
            Tool::Rails => "Rails",
            Tool::GolangMigrate => "golang-migrate",
            Tool::Cutover => "cutover",
            Tool::TypeOrm => "TypeORM",
            Tool::Sequelize => "Sequelize",
            Tool::RawSql => "SQL files",
        }
    }

    /// Whether the tool's migrations are SQL files cutover's linter can read.
    pub fn is_sql(self) -> bool {
        matches!(
            self,
            Tool::Flyway
                | Tool::Prisma
                | Tool::Goose
                | Tool::Sqlx
                | Tool::GolangMigrate
                | Tool::Cutover
                | Tool::RawSql
        )
    }
}

/// What a file is to its tool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    /// The tool's configuration (alembic.ini, flyway.conf, knexfile.js, schema.prisma).
    Config,
    /// A migration (or its up half).
    Up,
    /// A separate down migration (`.down.sql`, Flyway's `U<n>__`).
    Down,
}

/// One classified file.
#[derive(Debug)]
pub struct Classified<'a> {
    pub tool: Tool,
    pub role: Role,
    pub file: &'a RepoFile,
}

static FLYWAY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(?:[VU]\d+(?:[._]\d+)*|R)__.+\.sql$").expect("regex"));
static UP_DOWN: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^(\d+)_.+\.(up|down)\.sql$").expect("regex"));
static TIMESTAMPED: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d{14}_.+\.sql$").expect("regex"));
static DJANGO_NAME: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r"^\d{4}_\w+\.py$").expect("regex"));

/// What decides between tools that share a file shape.
#[derive(Debug, Default)]
pub struct Hints {
    /// A Cargo.toml depends on sqlx.
    pub sqlx: bool,
    /// A cutover.toml declares a `[database.…]`.
    pub cutover_db: bool,
}

impl Hints {
    pub fn of(repo: &Repo) -> Hints {
        let mut hints = Hints::default();
        for file in repo.named(|n| n == "Cargo.toml" || n == "cutover.toml") {
            let Some(text) = repo.text(file) else {
                continue;
            };
            if file.name == "Cargo.toml" {
                hints.sqlx |= text.lines().any(|l| l.trim_start().starts_with("sqlx"));
            } else {
                hints.cutover_db |= text
                    .lines()
                    .any(|l| l.trim_start().starts_with("[database.") || l.contains(".database."));
            }
        }
        hints
    }
}

/// Whether `text` has a `-- cutover:` directive at the start of a line.
pub fn has_cutover_directive(text: &str) -> bool {
    text.lines()
        .any(|l| l.trim_start().starts_with("-- cutover:"))
}

/// Whether `text` is a goose migration.
pub fn is_goose(text: &str) -> bool {
    text.lines().any(|l| {
        l.trim_start()
            .to_ascii_lowercase()
            .starts_with("-- +goose up")
    })
}

/// The tool and role of `file`, if it is a migration or a tool's config.
pub fn classify<'a>(repo: &Repo, file: &'a RepoFile, hints: &Hints) -> Option<Classified<'a>> {
    let name = file.name.as_str();
    let lower = name.to_ascii_lowercase();
    let ext = file.ext();
    let hit = |tool, role| Some(Classified { tool, role, file });
    if name == "alembic.ini" {
        return hit(Tool::Alembic, Role::Config);
    }
    if lower.starts_with("flyway") && matches!(ext.as_str(), "conf" | "toml") {
        return hit(Tool::Flyway, Role::Config);
    }
    if lower.starts_with("knexfile.") {
        return hit(Tool::Knex, Role::Config);
    }
    if name == "schema.prisma" {
        return hit(Tool::Prisma, Role::Config);
    }
    match ext.as_str() {
        "sql" => classify_sql(repo, file, hints),
        "py" => {
            if file.in_dir("versions") {
                let text = repo.text(file)?;
                if text.contains("def upgrade(") {
                    return hit(Tool::Alembic, Role::Up);
                }
            }
            if file.in_dir("migrations") && DJANGO_NAME.is_match(name) {
                let text = repo.text(file)?;
                if text.contains("migrations.Migration") {
                    return hit(Tool::Django, Role::Up);
                }
            }
            None
        }
        "js" | "ts" | "mjs" | "cjs" if file.in_dir("migrations") || file.in_dir("migration") => {
            let text = repo.text(file)?;
            if text.contains("MigrationInterface") {
                hit(Tool::TypeOrm, Role::Up)
            } else if text.contains("queryInterface") {
                hit(Tool::Sequelize, Role::Up)
            } else if text.contains("exports.up")
                || text.contains("function up(")
                || text.contains("function up (")
                || text.contains("knex")
            {
                hit(Tool::Knex, Role::Up)
            } else {
                None
            }
        }
        "rb" if file.path.contains("db/migrate/") => hit(Tool::Rails, Role::Up),
        "xml" | "yaml" | "yml" | "json" if lower.contains("changelog") => {
            let text = repo.text(file)?;
            text.contains("databaseChangeLog").then_some(Classified {
                tool: Tool::Liquibase,
                role: Role::Up,
                file,
            })
        }
        _ => None,
    }
}

fn classify_sql<'a>(repo: &Repo, file: &'a RepoFile, hints: &Hints) -> Option<Classified<'a>> {
    let name = file.name.as_str();
    let hit = |tool, role| Some(Classified { tool, role, file });
    if name == "migration.sql" && file.in_dir("prisma") {
        return hit(Tool::Prisma, Role::Up);
    }
    if FLYWAY.is_match(name) {
        let role = if name.starts_with('U') {
            Role::Down
        } else {
            Role::Up
        };
        return hit(Tool::Flyway, role);
    }
    if let Some(c) = UP_DOWN.captures(name) {
        let role = if &c[2] == "down" {
            Role::Down
        } else {
            Role::Up
        };
        let tool = if hints.sqlx {
            Tool::Sqlx
        } else {
            Tool::GolangMigrate
        };
        return hit(tool, role);
    }
    let in_migrations = file.in_dir("migrations") || file.in_dir("migrate");
    let text = repo.text(file)?;
    if is_goose(text) {
        return hit(Tool::Goose, Role::Up);
    }
    if has_cutover_directive(text) {
        return hit(Tool::Cutover, Role::Up);
    }
    if !in_migrations {
        return None;
    }
    if hints.sqlx && TIMESTAMPED.is_match(name) {
        hit(Tool::Sqlx, Role::Up)
    } else if hints.cutover_db {
        hit(Tool::Cutover, Role::Up)
    } else {
        hit(Tool::RawSql, Role::Up)
    }
}

/// Whether `file` is a schema kept in the repository (not a migration).
pub fn is_schema_file(file: &RepoFile) -> bool {
    let name = file.name.as_str();
    matches!(name, "schema.sql" | "structure.sql" | "schema.prisma")
        || (name == "schema.rb" && file.in_dir("db"))
        || (file.ext() == "sql"
            && (file.in_dir("db") || file.in_dir("sql") || file.in_dir("schema"))
            && !file.in_dir("migrations")
            && !file.in_dir("migrate"))
}

/// The version of an up/down pair (`000001` of `000001_init.up.sql`).
pub fn pair_key(name: &str) -> Option<String> {
    UP_DOWN.captures(name).map(|c| c[1].to_string())
}

/// The version of a Flyway file (`1.2` of `V1_2__x.sql` and `U1_2__x.sql`).
pub fn flyway_version(name: &str) -> Option<String> {
    let rest = name.strip_prefix('V').or_else(|| name.strip_prefix('U'))?;
    let (version, _) = rest.split_once("__")?;
    Some(version.replace('_', "."))
}
