//! `cutover assess [PATH]`: the deployment-readiness report of a repository
//! (the `cutover-assess` crate), with cutover's own migration linter and
//! config checker lent to it through [`CutoverHooks`].

use std::path::Path;

use cutover_assess::{ConfigProblem, Hooks, SqlProblem};

use crate::exit::{self, CliError};

/// How the report is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Text,
    Json,
    Markdown,
    Sarif,
}

/// Runs the assessment and prints it; with `fail_under`, exits
/// [`exit::BELOW_LEVEL`] when the overall level is below it.
pub fn assess(path: &Path, format: Format, fail_under: Option<u8>) -> Result<(), CliError> {
    let report = cutover_assess::assess(path, &CutoverHooks)
        .map_err(|e| CliError::new(exit::USAGE, e.to_string()))?;
    let out = match format {
        Format::Text => cutover_assess::report::text::render(&report),
        Format::Json => cutover_assess::report::json::render(&report),
        Format::Markdown => cutover_assess::report::markdown::render(&report),
        Format::Sarif => cutover_assess::report::sarif::render(&report),
    };
    print!("{out}");
    if !out.ends_with('\n') {
        println!();
    }
    match fail_under {
        Some(level) if report.overall_level < level => Err(CliError::new(
            exit::BELOW_LEVEL,
            format!(
                "the overall level is {}, below --fail-under {level}; the report's next steps say what raises it",
                report.overall_label
            ),
        )),
        _ => Ok(()),
    }
}

/// cutover's migration linter and config checker, for the assessment.
pub struct CutoverHooks;

impl Hooks for CutoverHooks {
    fn lint_sql(&self, path: &str, sql: &str, postgres: bool) -> Vec<SqlProblem> {
        use crate::db::migrate::{files, lint};
        // The linter wants cutover's file naming; the name plays no part in the rules.
        let Ok(migration) = files::parse(Path::new("1_assessed.sql"), sql) else {
            return Vec::new();
        };
        let _ = path;
        lint::lint(&migration, postgres, &lint::Levels::default())
            .findings
            .into_iter()
            .map(|f| SqlProblem {
                line: f.line,
                column: f.column,
                deny: f.level == lint::Level::Deny,
                rule: f.rule,
                message: f.message,
                help: f.help,
            })
            .collect()
    }

    /// `cutover check`'s problems, with the file's `${VAR}`s taken as set
    /// to values not known here ([`crate::config::check_text`]).
    fn check_config(&self, path: &str, text: &str) -> Vec<ConfigProblem> {
        let Err(err) = crate::config::check_text(text, Path::new(path)) else {
            return Vec::new();
        };
        let problems = err.problems();
        if problems.is_empty() {
            return vec![ConfigProblem {
                line: 0,
                column: 0,
                message: err.to_string(),
            }];
        }
        problems
            .iter()
            .map(|p| {
                let (line, column) = p.line_column();
                let message = match p.help_text() {
                    Some(help) => format!("{}; {help}", p.message()),
                    None => p.message().to_string(),
                };
                ConfigProblem {
                    line,
                    column,
                    message,
                }
            })
            .collect()
    }
}
