//! `cutover migrate lint`: dangerous operations in migrations, with file and
//! line.
//!
//! PostgreSQL migrations go through `squawk-linter` (its default rules, with
//! the transaction setting of each file), minus `require-lock-timeout` and
//! `require-statement-timeout`: cutover sets both on every migration
//! connection. cutover adds only what squawk cannot know:
//!
//! - the phase: dropping or renaming a table or column breaks the release
//!   that still serves during an expand migration (`drop-in-expand`,
//!   `rename-in-expand`), and is what a contract migration is for (squawk's
//!   `ban-drop-*` and `renaming-*` findings are dropped there);
//! - the transaction: cutover runs each migration in a transaction unless it
//!   says `-- cutover:no-transaction`, so `CONCURRENTLY` and `VACUUM` need
//!   that directive (`needs-no-transaction`; squawk assumes a one-statement
//!   file runs outside one); and a transactional migration that both changes
//!   the schema and updates rows holds the schema change's lock while every
//!   row is written (`ddl-with-data-update`).
//!
//! SQLite migrations get cutover's rules only (squawk knows PostgreSQL).
//!
//! A file may break a rule with `-- cutover:allow RULE because REASON`;
//! naming a rule that does not exist is itself a finding.
//!
//! Each finding has a level. Rules about locks, table rewrites and data loss
//! `deny` (they block a deploy); squawk's style advice ([`STYLE_RULES`]:
//! prefer-bigint, prefer-identity, prefer-text, …) only `warn`. A database's
//! `lint = { deny, warn, off }` moves rules between levels ([`Levels`]).
//! Statements on a table created earlier in the same migration never trip a
//! rule about locks or rewrites: nobody waits on a table nobody has seen.

use std::path::PathBuf;

use serde::Serialize;
use squawk_linter::{Linter, Rule, Violation};
use squawk_syntax::SourceFile;
use squawk_syntax::ast::{AstNode, Stmt};

use super::files::{Migration, Phase};
pub use crate::config::LintLevels as Levels;

/// How much a finding weighs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Level {
    /// Blocks a deploy; `migrate lint` exits non-zero.
    Deny,
    /// Printed (and recorded in the deploy's history); never blocks.
    Warn,
}

/// squawk's advice about style rather than danger: warnings unless the
/// config denies them.
pub const STYLE_RULES: [Rule; 10] = [
    Rule::PreferBigintOverInt,
    Rule::PreferBigintOverSmallint,
    Rule::PreferIdentity,
    Rule::PreferTextField,
    Rule::PreferTimestampTz,
    Rule::PreferRobustStmts,
    Rule::BanCharField,
    Rule::RequireTableSchema,
    Rule::IdentifierTooLong,
    Rule::UnusedIgnore,
];

impl Levels {
    /// The level of `rule`: what the config says, else style rules warn and
    /// every other rule denies; `None` when the config turns it off.
    pub fn of(&self, rule: &str) -> Option<Level> {
        let listed = |list: &[String]| list.iter().any(|r| r == rule);
        if listed(&self.off) {
            None
        } else if listed(&self.deny) {
            Some(Level::Deny)
        } else if listed(&self.warn) || STYLE_RULES.iter().any(|r| r.to_string() == rule) {
            Some(Level::Warn)
        } else {
            Some(Level::Deny)
        }
    }
}

/// Every rule name a config or a `-- cutover:allow` may use: squawk's and
/// cutover's.
pub fn rule_names() -> Vec<String> {
    enum_iterator::all::<Rule>()
        .map(|rule| rule.to_string())
        .chain(CUTOVER_RULES.iter().map(|(rule, _)| (*rule).to_owned()))
        .collect()
}

/// cutover's own rules, with what each means.
pub const CUTOVER_RULES: [(&str, &str); 4] = [
    (
        "drop-in-expand",
        "drops a table or column in an expand migration",
    ),
    (
        "rename-in-expand",
        "renames a table or column in an expand migration",
    ),
    (
        "ddl-with-data-update",
        "changes the schema and updates rows in one transaction",
    ),
    (
        "needs-no-transaction",
        "a statement that cannot run in a transaction, in a migration that runs in one",
    ),
];

/// The rule of a finding about a `-- cutover:allow` that names no rule.
pub const UNKNOWN_RULE: &str = "unknown-rule";
/// The rule of a finding about SQL that PostgreSQL's grammar rejects.
pub const SYNTAX_ERROR: &str = "syntax-error";

/// One problem at one place.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The migration file.
    pub file: PathBuf,
    /// 1-based line.
    pub line: usize,
    /// 1-based column (in characters).
    pub column: usize,
    /// The rule's name (squawk's, or one of [`CUTOVER_RULES`]).
    pub rule: String,
    /// Whether it blocks a deploy.
    pub level: Level,
    /// What is wrong.
    pub message: String,
    /// What to do instead.
    pub help: Option<String>,
}

/// A finding a file allowed with `-- cutover:allow`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allowed {
    /// The migration file.
    pub file: PathBuf,
    /// The line of the finding.
    pub line: usize,
    /// The rule.
    pub rule: String,
    /// The reason the file gives.
    pub reason: String,
}

/// What linting one file found.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct Report {
    /// Problems, by line: both levels.
    pub findings: Vec<Finding>,
    /// Problems the file allows, by line.
    pub allowed: Vec<Allowed>,
}

impl Report {
    /// The findings that block a deploy.
    pub fn denied(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Deny)
    }

    /// The findings that are only printed.
    pub fn warnings(&self) -> impl Iterator<Item = &Finding> {
        self.findings.iter().filter(|f| f.level == Level::Warn)
    }
}

/// Lints the up part of `migration`, for PostgreSQL when `postgres`, else
/// for SQLite, with the rules at `levels`.
pub fn lint(migration: &Migration, postgres: bool, levels: &Levels) -> Report {
    let sql = migration.up.sql.as_str();
    let parse = SourceFile::parse(sql);
    let at = |offset: usize| position(sql, offset);
    let finding = |offset: usize, rule: &str, message: String, help: Option<String>| {
        let (line, column) = at(offset);
        Finding {
            file: migration.path.clone(),
            line,
            column,
            rule: rule.to_owned(),
            level: Level::Deny,
            message,
            help,
        }
    };
    let new_tables = NewTables::of(&parse.tree());
    let mut findings = Vec::new();

    if postgres {
        // The first one: later ones mostly follow from it.
        if let Some(error) = parse.errors().first() {
            findings.push(finding(
                offset(error.range().start()),
                SYNTAX_ERROR,
                format!("PostgreSQL cannot parse this: {}", error.message()),
                None,
            ));
        }
    }

    let mut linter = if postgres {
        Linter::with_rules(
            &[],
            &[Rule::RequireLockTimeout, Rule::RequireStatementTimeout],
        )
    } else {
        Linter::from(PHASE_RULES)
    };
    linter.settings.assume_in_transaction = migration.transaction;
    for violation in linter.lint(&parse, sql) {
        if new_tables.covers(offset(violation.text_range.start())) {
            continue;
        }
        if let Some(found) = phase_finding(&violation, migration.phase) {
            let (rule, message, help) = found;
            findings.push(finding(
                offset(violation.text_range.start()),
                rule,
                message,
                Some(help),
            ));
        } else if !PHASE_RULES.contains(&violation.code)
            && violation.code != Rule::BanConcurrentIndexCreationInTransaction
        {
            findings.push(finding(
                offset(violation.text_range.start()),
                &violation.code.to_string(),
                violation.message.clone(),
                violation.help.clone(),
            ));
        }
    }

    if migration.transaction {
        for offset in needs_no_transaction(&parse.tree()) {
            findings.push(finding(
                offset,
                "needs-no-transaction",
                "this statement cannot run inside a transaction, and this migration runs in one"
                    .to_owned(),
                Some(
                    "put it in a migration of its own that says `-- cutover:no-transaction`"
                        .to_owned(),
                ),
            ));
        }
        findings.extend(ddl_with_data_update(&parse.tree()).map(|(offset, ddl_line)| {
            finding(
                offset,
                "ddl-with-data-update",
                format!(
                    "rows are updated in the same transaction as the schema change on line {ddl_line}: its lock is held until every row is written"
                ),
                Some(
                    "put the data change in a migration of its own (with `-- cutover:no-transaction` to update in batches)"
                        .to_owned(),
                ),
            )
        }));
    }

    let mut report = Report::default();
    for allow in &migration.allows {
        if !is_rule(&allow.rule) {
            findings.push(Finding {
                file: migration.path.clone(),
                line: allow.line,
                column: 1,
                rule: UNKNOWN_RULE.to_owned(),
                level: Level::Deny,
                message: format!("`-- cutover:allow {}` names no lint rule", allow.rule),
                help: Some(
                    "use a rule name from `cutover migrate lint` output: a squawk rule, or drop-in-expand, rename-in-expand, ddl-with-data-update, needs-no-transaction"
                        .to_owned(),
                ),
            });
        }
    }
    findings.sort_by_key(|found| (found.line, found.column));
    for mut found in findings {
        let Some(level) = levels.of(&found.rule) else {
            continue;
        };
        found.level = level;
        match migration
            .allows
            .iter()
            .find(|allow| allow.rule == found.rule)
        {
            Some(allow) => report.allowed.push(Allowed {
                file: found.file,
                line: found.line,
                rule: found.rule,
                reason: allow.reason.clone(),
            }),
            None => report.findings.push(found),
        }
    }
    report
}

/// The tables a migration creates, each from the end of its `CREATE TABLE`
/// on: a statement after it on one of them locks nothing anyone waits for.
struct NewTables {
    /// Every statement that alters or indexes a table: its range and table.
    targets: Vec<(std::ops::Range<usize>, String)>,
    /// Each created table and where its `CREATE TABLE` ends.
    created: Vec<(String, usize)>,
}

impl NewTables {
    fn of(file: &SourceFile) -> NewTables {
        let mut targets = Vec::new();
        let mut created = Vec::new();
        for stmt in file.stmts() {
            let range = stmt.syntax().text_range();
            let range = offset(range.start())..offset(range.end());
            let name = match &stmt {
                Stmt::CreateTable(t) => {
                    if let Some(name) = t.table_name().and_then(|n| n.path()) {
                        created.push((table_name(&name.syntax().to_string()), range.end));
                    }
                    continue;
                }
                Stmt::AlterTable(a) => a.table_relation_name().map(|n| n.syntax().to_string()),
                Stmt::CreateIndex(c) => c.table_relation_name().map(|n| n.syntax().to_string()),
                _ => None,
            };
            if let Some(name) = name {
                targets.push((range, table_name(&name)));
            }
        }
        NewTables { targets, created }
    }

    /// Whether the statement at `at` works on a table this migration created
    /// before it.
    fn covers(&self, at: usize) -> bool {
        self.targets
            .iter()
            .find(|(range, _)| range.contains(&at))
            .is_some_and(|(range, table)| {
                self.created
                    .iter()
                    .any(|(name, end)| name == table && *end <= range.start)
            })
    }
}

/// A table's name as written, compared without quotes, case, `ONLY` or schema.
fn table_name(written: &str) -> String {
    let name = written.trim().to_lowercase().replace('"', "");
    let name = name.strip_prefix("only ").unwrap_or(&name).trim();
    name.rsplit('.').next().unwrap_or(name).trim().to_owned()
}

/// squawk's rules about dropping and renaming, which the phase decides.
const PHASE_RULES: [Rule; 4] = [
    Rule::BanDropColumn,
    Rule::BanDropTable,
    Rule::RenamingColumn,
    Rule::RenamingTable,
];

/// In an expand migration, a drop or rename is cutover's finding; in a
/// contract migration it is allowed. `None` for other rules.
fn phase_finding(violation: &Violation, phase: Phase) -> Option<(&'static str, String, String)> {
    let (rule, what) = match violation.code {
        Rule::BanDropColumn => ("drop-in-expand", "drops a column"),
        Rule::BanDropTable => ("drop-in-expand", "drops a table"),
        Rule::RenamingColumn => ("rename-in-expand", "renames a column"),
        Rule::RenamingTable => ("rename-in-expand", "renames a table"),
        _ => return None,
    };
    if phase == Phase::Contract {
        return None;
    }
    Some((
        rule,
        format!("this expand migration {what} that the release still serving may use"),
        "expand migrations run before the new release takes traffic: only add here; drop or rename in a `-- cutover:phase contract` migration once nothing uses the old name (for a rename: add the new one, copy, switch the code, then drop the old one)"
            .to_owned(),
    ))
}

/// Each UPDATE, DELETE or MERGE of a file that also changes the schema,
/// with the line of the first schema change.
fn ddl_with_data_update(file: &SourceFile) -> impl Iterator<Item = (usize, usize)> {
    let statements: Vec<Stmt> = file.stmts().collect();
    let text = file.syntax().to_string();
    let first_ddl = statements.iter().find(|stmt| is_ddl(stmt)).map(|stmt| {
        let start = offset(stmt.syntax().text_range().start());
        position(&text, start).0
    });
    statements
        .into_iter()
        .filter(|stmt| matches!(stmt, Stmt::Update(_) | Stmt::Delete(_) | Stmt::Merge(_)))
        .filter_map(move |stmt| {
            let ddl_line = first_ddl?;
            Some((first_token(&stmt), ddl_line))
        })
}

/// Statements with `CONCURRENTLY`, and `VACUUM`: PostgreSQL refuses them in
/// a transaction block.
fn needs_no_transaction(file: &SourceFile) -> Vec<usize> {
    file.stmts()
        .filter(|stmt| {
            let node = stmt.syntax();
            format!("{:?}", node.kind()) == "VACUUM"
                || node
                    .descendants_with_tokens()
                    .filter_map(|element| element.into_token())
                    .any(|token| format!("{:?}", token.kind()) == "CONCURRENTLY_KW")
        })
        .map(|stmt| first_token(&stmt))
        .collect()
}

/// Where a statement's first token starts (after leading comments).
fn first_token(stmt: &Stmt) -> usize {
    let node = stmt.syntax();
    let start = node
        .children_with_tokens()
        .find(|element| !element.kind().is_trivia())
        .map_or(node.text_range().start(), |element| {
            element.text_range().start()
        });
    offset(start)
}

/// Statements that change the schema: CREATE, ALTER, DROP, TRUNCATE of anything.
fn is_ddl(stmt: &Stmt) -> bool {
    let kind = format!("{:?}", stmt.syntax().kind());
    ["CREATE_", "ALTER_", "DROP_"]
        .iter()
        .any(|prefix| kind.starts_with(prefix))
        || kind == "TRUNCATE"
}

fn is_rule(name: &str) -> bool {
    Rule::try_from(name).is_ok() || CUTOVER_RULES.iter().any(|(rule, _)| *rule == name)
}

fn offset(size: impl Into<u32>) -> usize {
    usize::try_from(size.into()).unwrap_or(usize::MAX)
}

/// 1-based line and column of byte `offset` of `text`.
fn position(text: &str, offset: usize) -> (usize, usize) {
    let mut end = offset.min(text.len());
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let before = &text[..end];
    let line = before.matches('\n').count() + 1;
    let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;
    use crate::db::migrate::files;

    /// The rules `sql` breaks, as `line:rule`, for PostgreSQL.
    fn rules(sql: &str) -> Vec<String> {
        rules_for(sql, true)
    }

    fn rules_for(sql: &str, postgres: bool) -> Vec<String> {
        let migration = files::parse(Path::new("0002_test.sql"), sql).expect("valid file");
        lint(&migration, postgres, &Levels::default())
            .findings
            .iter()
            .map(|found| format!("{}:{}", found.line, found.rule))
            .collect()
    }

    #[test]
    fn each_dangerous_operation_is_caught_and_its_safe_equivalent_passes() {
        let cases: [(&str, &str, &str); 9] = [
            (
                "ALTER TABLE users ADD COLUMN email text NOT NULL;",
                "adding-required-field",
                "ALTER TABLE users ADD COLUMN email text NOT NULL DEFAULT '';",
            ),
            (
                "CREATE INDEX users_email ON users (email);",
                "require-concurrent-index-creation",
                "-- cutover:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);",
            ),
            (
                "CREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);",
                "needs-no-transaction",
                "-- cutover:no-transaction\nCREATE INDEX CONCURRENTLY IF NOT EXISTS users_email ON users (email);",
            ),
            (
                "ALTER TABLE users DROP COLUMN name;",
                "drop-in-expand",
                "-- cutover:phase contract\nALTER TABLE users DROP COLUMN name;",
            ),
            (
                "DROP TABLE old_sessions;",
                "drop-in-expand",
                "-- cutover:phase contract\nDROP TABLE old_sessions;",
            ),
            (
                "ALTER TABLE users RENAME COLUMN name TO full_name;",
                "rename-in-expand",
                "-- cutover:phase contract\nALTER TABLE users RENAME COLUMN name TO full_name;",
            ),
            (
                "ALTER TABLE users ALTER COLUMN id TYPE bigint;",
                "changing-column-type",
                "ALTER TABLE users ADD COLUMN id_new bigint;",
            ),
            (
                "ALTER TABLE orders ADD CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id);",
                "adding-foreign-key-constraint",
                "ALTER TABLE orders ADD CONSTRAINT orders_user FOREIGN KEY (user_id) REFERENCES users (id) NOT VALID;",
            ),
            (
                "ALTER TABLE orders ADD CONSTRAINT positive CHECK (total >= 0);",
                "constraint-missing-not-valid",
                "ALTER TABLE orders ADD CONSTRAINT positive CHECK (total >= 0) NOT VALID;",
            ),
        ];
        for (dangerous, rule, safe) in cases {
            let found = rules(dangerous);
            assert!(
                found.iter().any(|f| f == &format!("1:{rule}")),
                "{dangerous}: expected {rule}, got {found:?}"
            );
            assert_eq!(rules(safe), Vec::<String>::new(), "{safe}");
        }
    }

    #[test]
    fn set_not_null_on_an_existing_column_is_caught() {
        assert_eq!(
            rules("ALTER TABLE users ALTER COLUMN email SET NOT NULL;"),
            ["1:adding-not-nullable-field"]
        );
    }

    #[test]
    fn ddl_and_data_updates_in_one_transaction_are_caught() {
        let sql = "ALTER TABLE users ADD COLUMN plan text;\n\nUPDATE users SET plan = 'free';\nDELETE FROM sessions;\n";
        let migration = files::parse(Path::new("0003_plan.sql"), sql).expect("valid");
        let report = lint(&migration, true, &Levels::default());
        let found: Vec<(usize, &str)> = report
            .findings
            .iter()
            .map(|f| (f.line, f.rule.as_str()))
            .collect();
        assert_eq!(
            found,
            [(3, "ddl-with-data-update"), (4, "ddl-with-data-update")]
        );
        assert!(
            report.findings[0].message.contains("line 1"),
            "{:?}",
            report.findings[0]
        );
        // Data alone, or in batches outside a transaction, is fine.
        assert!(rules("UPDATE users SET plan = 'free' WHERE plan IS NULL;").is_empty());
        assert!(
            rules("-- cutover:no-transaction\nUPDATE users SET plan = 'free' WHERE id < 1000;")
                .is_empty()
        );
    }

    #[test]
    fn findings_carry_file_line_and_column() {
        let sql = "-- cutover:phase expand\nCREATE TABLE t (id bigint PRIMARY KEY);\n\n  CREATE INDEX t_id ON t (id);\nCREATE INDEX u_email ON users (email);\n-- cutover:down\nDROP TABLE t;\n";
        let migration = files::parse(Path::new("migrations/0004_t.sql"), sql).expect("valid");
        let report = lint(&migration, true, &Levels::default());
        assert_eq!(report.findings.len(), 1, "{report:?}");
        let found = &report.findings[0];
        assert_eq!(found.file, Path::new("migrations/0004_t.sql"));
        assert_eq!((found.line, found.column), (5, 1));
        assert_eq!(found.rule, "require-concurrent-index-creation");
        assert!(found.help.is_some());
    }

    #[test]
    fn allow_with_a_reason_moves_a_finding_aside() {
        let sql = "-- cutover:allow require-concurrent-index-creation because flags has 12 rows\nCREATE INDEX flags_name ON flags (name);\n";
        let migration = files::parse(Path::new("0005_flags.sql"), sql).expect("valid");
        let report = lint(&migration, true, &Levels::default());
        assert!(report.findings.is_empty(), "{report:?}");
        assert_eq!(report.allowed.len(), 1);
        assert_eq!(report.allowed[0].reason, "flags has 12 rows");
        assert_eq!(report.allowed[0].line, 2);

        let unknown = "-- cutover:allow require-concurent-index-creation because typo\nCREATE INDEX flags_name ON flags (name);\n";
        assert_eq!(
            rules(unknown),
            ["1:unknown-rule", "2:require-concurrent-index-creation"]
        );
    }

    #[test]
    fn sqlite_gets_the_phase_and_transaction_rules_only() {
        assert!(rules_for("CREATE INDEX i ON users (email);", false).is_empty());
        assert_eq!(
            rules_for("ALTER TABLE users DROP COLUMN name;", false),
            ["1:drop-in-expand"]
        );
        assert_eq!(
            rules_for(
                "ALTER TABLE users ADD COLUMN n integer;\nUPDATE users SET n = 0;",
                false
            ),
            ["2:ddl-with-data-update"]
        );
    }

    /// `(line:rule, level)` of each finding with `levels`.
    fn leveled(sql: &str, levels: &Levels) -> Vec<(String, Level)> {
        let migration = files::parse(Path::new("0001_test.sql"), sql).expect("valid file");
        lint(&migration, true, levels)
            .findings
            .iter()
            .map(|f| (format!("{}:{}", f.line, f.rule), f.level))
            .collect()
    }

    #[test]
    fn style_advice_warns_and_never_denies() {
        let found = leveled(
            "CREATE TABLE jobs (id SERIAL PRIMARY KEY, name varchar(50), at timestamp);\n",
            &Levels::default(),
        );
        assert!(!found.is_empty());
        assert!(
            found.iter().all(|(_, level)| *level == Level::Warn),
            "{found:?}"
        );
        for rule in [
            "prefer-identity",
            "prefer-text-field",
            "prefer-timestamp-tz",
        ] {
            assert!(
                found.iter().any(|(f, _)| f == &format!("1:{rule}")),
                "{rule}: {found:?}"
            );
        }
        // Danger keeps its level.
        assert_eq!(
            leveled("CREATE INDEX i ON users (email);", &Levels::default()),
            [(
                "1:require-concurrent-index-creation".to_owned(),
                Level::Deny
            )]
        );
    }

    #[test]
    fn statements_on_a_table_created_earlier_in_the_migration_trip_no_lock_rule() {
        let sql = "CREATE TABLE jobs (id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY, name text);\n\
                   CREATE INDEX jobs_name ON jobs (name);\n\
                   ALTER TABLE jobs ADD COLUMN state text NOT NULL;\n\
                   ALTER TABLE \"public\".\"JOBS\" ADD CONSTRAINT positive CHECK (id > 0);\n\
                   ALTER TABLE jobs ALTER COLUMN name TYPE varchar(100);\n";
        assert_eq!(rules(sql), Vec::<String>::new());
        // The same statements on a table that exists already are caught;
        // so is one before the table's CREATE.
        let before = "ALTER TABLE jobs ADD COLUMN state text NOT NULL;\n\
                      CREATE TABLE jobs (id bigint PRIMARY KEY);\n";
        assert_eq!(rules(before), ["1:adding-required-field"]);
        assert_eq!(
            rules("ALTER TABLE users ADD COLUMN state text NOT NULL;"),
            ["1:adding-required-field"]
        );
    }

    #[test]
    fn the_config_moves_rules_between_levels() {
        let levels = Levels {
            deny: vec!["prefer-identity".into()],
            warn: vec!["require-concurrent-index-creation".into()],
            off: vec!["prefer-text-field".into()],
        };
        let found = leveled(
            "CREATE TABLE jobs (id SERIAL PRIMARY KEY, name varchar(50));\nCREATE INDEX i ON users (email);\n",
            &levels,
        );
        assert!(
            found.contains(&("1:prefer-identity".to_owned(), Level::Deny)),
            "{found:?}"
        );
        assert!(
            found.contains(&(
                "2:require-concurrent-index-creation".to_owned(),
                Level::Warn
            )),
            "{found:?}"
        );
        assert!(
            !found.iter().any(|(f, _)| f.ends_with("prefer-text-field")),
            "{found:?}"
        );
    }

    #[test]
    fn every_style_rule_and_cutover_rule_is_a_known_name() {
        let names = rule_names();
        for rule in STYLE_RULES {
            assert!(names.contains(&rule.to_string()), "{rule}");
        }
        for (rule, _) in CUTOVER_RULES {
            assert!(names.iter().any(|n| n == rule), "{rule}");
        }
        assert!(
            names
                .iter()
                .any(|n| n == "require-concurrent-index-creation")
        );
    }

    #[test]
    fn syntax_errors_are_findings_for_postgres() {
        assert_eq!(rules("CREATE TABLE (;"), ["1:syntax-error"]);
    }
}
