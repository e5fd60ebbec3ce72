//! `cutover assess`: a deployment-readiness report for a repository, every
//! finding pointing at a file and a line, and the detection `cutover init`
//! builds a starting `cutover.toml` from.
//!
//! The shape, in the order data flows:
//! - [`repo`] walks the repository once and reads files on demand (nothing
//!   is executed, nothing leaves the machine);
//! - [`rules`] holds the passes: each reads one kind of file and records
//!   [`Fact`]s (what the repository has) and [`Finding`]s (problems, with
//!   evidence and a fix);
//! - [`areas`] turns facts and findings into a maturity level per area, from
//!   a ladder of steps per area;
//! - [`report`] writes the result as text, JSON, Markdown or SARIF.
//!
//! What cutover knows that this crate does not (its migration linter, its
//! config checker) comes in through [`Hooks`], so the crate stays free of
//! the daemon.

pub mod areas;
pub mod finding;
pub mod init;
pub mod repo;
pub mod report;
pub mod rules;
pub mod yaml;

use std::path::{Path, PathBuf};

use serde::Serialize;

pub use areas::AreaLevel;
pub use finding::{Area, Evidence, Fact, Finding, Severity};
pub use report::Report;

/// Why an assessment could not run.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot read {}: {source}; pass the path of a repository's folder", path.display())]
    Open {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{} is not a folder; pass the path of a repository's folder", .0.display())]
    NotADirectory(PathBuf),
}

/// A problem cutover's migration linter found in a SQL file.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct SqlProblem {
    /// 1-based.
    pub line: usize,
    /// 1-based; 0 when unknown.
    pub column: usize,
    /// The linter's rule, e.g. `adding-not-nullable-field`.
    pub rule: String,
    pub message: String,
    pub help: Option<String>,
    /// Whether cutover would refuse to deploy it (`deny`) rather than warn.
    pub deny: bool,
}

/// A problem `cutover check` found in a `cutover.toml`, or a setting that
/// weakens safety.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ConfigProblem {
    /// 1-based; 0 when the problem is about the file as a whole.
    pub line: usize,
    pub column: usize,
    pub message: String,
}

/// What cutover lends the assessment. Every method has a default that finds
/// nothing, so tests and other callers can pass [`NoHooks`].
pub trait Hooks: Sync {
    /// Lints one SQL migration (`path` relative to the repository, `postgres`
    /// when the repository's database is PostgreSQL, else SQLite rules).
    fn lint_sql(&self, _path: &str, _sql: &str, _postgres: bool) -> Vec<SqlProblem> {
        Vec::new()
    }

    /// Checks a `cutover.toml` (its text; `path` relative to the repository)
    /// the way `cutover check` does. Environment variables it names are not
    /// expected to be set.
    fn check_config(&self, _path: &str, _text: &str) -> Vec<ConfigProblem> {
        Vec::new()
    }
}

/// Hooks that find nothing.
pub struct NoHooks;

impl Hooks for NoHooks {}

/// Assesses the repository at `root`.
pub fn assess(root: &Path, hooks: &dyn Hooks) -> Result<Report, Error> {
    let repo = repo::Repo::open(root)?;
    let mut cx = rules::Context::new(&repo, hooks);
    for pass in rules::PASSES {
        (pass.run)(&mut cx);
    }
    let (findings, facts) = cx.into_parts();
    Ok(Report::new(root, repo.files().len(), findings, facts))
}
