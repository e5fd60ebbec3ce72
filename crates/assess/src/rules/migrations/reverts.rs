//! Whether each migration can be reverted, the way its tool writes a down
//! part: a separate `.down.sql` / `U<n>__` file, a `downgrade` / `down`
//! function that does something, a `-- +goose Down` or `-- cutover:down`
//! section, Django operations that are reversible unless RunPython/RunSQL
//! lack their reverse. Tools with no down migrations of their own (Prisma,
//! Liquibase's automatic rollback, plain SQL) are not judged.

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::tools::{Classified, Role, Tool, flyway_version, pair_key};
use super::{IRREVERSIBLE, MISSING_DOWN, ops, pyargs};
use crate::finding::Evidence;
use crate::rules::Context;

static JS_DOWN: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"exports\.down\b|\bdown\s*[:=(]|function\s+down\b|async\s+down\b").expect("regex")
});

/// Most files a finding lists.
const MAX_LISTED: usize = 10;

/// Records `db.down-migrations` and the irreversible findings for one tool.
pub fn check(cx: &mut Context<'_>, tool: Tool, files: &[Classified<'_>]) {
    let downs: HashSet<(String, String)> = files
        .iter()
        .filter(|c| c.role == Role::Down)
        .filter_map(|c| {
            let key = match tool {
                Tool::Flyway => flyway_version(&c.file.name),
                _ => pair_key(&c.file.name),
            }?;
            Some((c.file.dir().to_string(), key))
        })
        .collect();
    let mut revertible = Vec::new();
    let mut missing = Vec::new();
    for c in files.iter().filter(|c| c.role == Role::Up) {
        let Some(verdict) = judge(cx, tool, c, &downs) else {
            continue;
        };
        match verdict {
            None => revertible.push(Evidence::file(&c.file.path)),
            Some(evidence) => missing.push(evidence),
        }
    }
    let total = revertible.len() + missing.len();
    if let Some(first) = revertible.first() {
        cx.fact(
            "db.down-migrations",
            format!(
                "{}: {} of {total} migrations have a down part",
                tool.name(),
                revertible.len()
            ),
            first.clone(),
        );
    }
    if missing.is_empty() {
        return;
    }
    let listed = missing
        .iter()
        .take(MAX_LISTED)
        .map(|e| e.path.rsplit('/').next().unwrap_or(&e.path).to_string())
        .collect::<Vec<_>>()
        .join(", ");
    let more = missing.len().saturating_sub(MAX_LISTED);
    let more = if more > 0 {
        format!(" and {more} more")
    } else {
        String::new()
    };
    let evidence: Vec<Evidence> = missing.into_iter().take(MAX_LISTED).collect();
    if revertible.is_empty() {
        cx.find_with(
            &IRREVERSIBLE,
            evidence,
            format!(
                "None of the {total} {} migrations can be reverted: {listed}{more}",
                tool.name()
            ),
            IRREVERSIBLE.fix.to_string(),
        );
    } else {
        cx.find_with(
            &MISSING_DOWN,
            evidence,
            format!(
                "{} {} migrations cannot be reverted: {listed}{more}",
                total - revertible.len(),
                tool.name()
            ),
            MISSING_DOWN.fix.to_string(),
        );
    }
}

/// `None` when the tool is not judged; `Some(None)` when the migration has a
/// down part; `Some(Some(evidence))` when it has none.
fn judge(
    cx: &Context<'_>,
    tool: Tool,
    c: &Classified<'_>,
    downs: &HashSet<(String, String)>,
) -> Option<Option<Evidence>> {
    let path = c.file.path.as_str();
    let paired =
        |key: Option<String>| key.is_some_and(|k| downs.contains(&(c.file.dir().to_string(), k)));
    let ok = match tool {
        Tool::GolangMigrate | Tool::Sqlx => paired(pair_key(&c.file.name)),
        Tool::Flyway => {
            if c.file.name.starts_with("R__") {
                return None;
            }
            paired(flyway_version(&c.file.name))
        }
        Tool::Alembic => {
            let text = cx.repo.text(c.file)?;
            match pyargs::python_body(text, "downgrade") {
                Some(body) if pyargs::python_body_acts(&body) => true,
                Some(_) => {
                    let line = text
                        .lines()
                        .position(|l| l.trim_start().starts_with("def downgrade("))
                        .map_or(0, |i| i + 1);
                    return Some(Some(Evidence::at(path, text, line)));
                }
                None => false,
            }
        }
        Tool::Knex | Tool::TypeOrm | Tool::Sequelize => JS_DOWN.is_match(cx.repo.text(c.file)?),
        Tool::Rails => {
            let text = cx.repo.text(c.file)?;
            text.contains("def down") || text.contains("def change")
        }
        Tool::Goose => {
            let text = cx.repo.text(c.file)?;
            goose_has_down(text)
        }
        Tool::Django => {
            let text = cx.repo.text(c.file)?;
            match ops::django_irreversible(text) {
                None => true,
                Some(line) => return Some(Some(Evidence::at(path, text, line))),
            }
        }
        Tool::Cutover => {
            let text = cx.repo.text(c.file)?;
            text.lines()
                .any(|l| l.trim_start().starts_with("-- cutover:down"))
        }
        Tool::Prisma | Tool::Liquibase | Tool::RawSql => return None,
    };
    Some(if ok { None } else { Some(Evidence::file(path)) })
}

/// Whether a goose file's `-- +goose Down` section holds a statement.
fn goose_has_down(text: &str) -> bool {
    let mut in_down = false;
    for line in text.lines() {
        let t = line.trim();
        if t.to_ascii_lowercase().starts_with("-- +goose down") {
            in_down = true;
            continue;
        }
        if in_down && !t.is_empty() && !t.starts_with("--") {
            return true;
        }
    }
    false
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn goose_down_needs_a_statement() {
        assert!(goose_has_down(
            "-- +goose Up\nCREATE TABLE a (id int);\n-- +goose Down\nDROP TABLE a;\n"
        ));
        assert!(!goose_has_down(
            "-- +goose Up\nCREATE TABLE a (id int);\n-- +goose Down\n-- nothing\n"
        ));
        assert!(!goose_has_down("-- +goose Up\nSELECT 1;\n"));
    }

    #[test]
    fn knex_and_typeorm_downs_are_seen() {
        assert!(JS_DOWN.is_match("exports.down = function (knex) {"));
        assert!(JS_DOWN.is_match("export async function down(knex) {"));
        assert!(JS_DOWN.is_match("public async down(queryRunner: QueryRunner)"));
        assert!(JS_DOWN.is_match("  down: async (queryInterface) => {"));
        assert!(!JS_DOWN.is_match("exports.up = function (knex) { return knex.schema; }"));
    }
}
