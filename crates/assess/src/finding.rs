//! What an assessment is made of: areas, severities, evidence (a file and a
//! line), findings (problems with a fix) and facts (what the repository has,
//! good or neutral, which the maturity ladders in [`crate::areas`] read).

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;

/// The eight areas a report scores, in the order reports list them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Area {
    Containerization,
    CiCd,
    DeploymentAutomation,
    Environments,
    Observability,
    DatabaseOperations,
    Backups,
    Security,
}

impl Area {
    /// Every area, in report order.
    pub const ALL: [Area; 8] = [
        Area::Containerization,
        Area::CiCd,
        Area::DeploymentAutomation,
        Area::Environments,
        Area::Observability,
        Area::DatabaseOperations,
        Area::Backups,
        Area::Security,
    ];

    /// The name reports print.
    pub fn title(self) -> &'static str {
        match self {
            Area::Containerization => "Containerization",
            Area::CiCd => "CI/CD",
            Area::DeploymentAutomation => "Deployment automation",
            Area::Environments => "Environments and promotion",
            Area::Observability => "Monitoring and observability",
            Area::DatabaseOperations => "Database operations",
            Area::Backups => "Backups and disaster recovery",
            Area::Security => "Security and secrets",
        }
    }

    /// The kebab-case id used in JSON and SARIF.
    pub fn id(self) -> &'static str {
        match self {
            Area::Containerization => "containerization",
            Area::CiCd => "ci-cd",
            Area::DeploymentAutomation => "deployment-automation",
            Area::Environments => "environments",
            Area::Observability => "observability",
            Area::DatabaseOperations => "database-operations",
            Area::Backups => "backups",
            Area::Security => "security",
        }
    }
}

impl fmt::Display for Area {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.title())
    }
}

/// How much a finding matters; reports sort high first.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    High,
    Medium,
    Low,
}

impl Severity {
    pub fn as_str(self) -> &'static str {
        match self {
            Severity::High => "high",
            Severity::Medium => "medium",
            Severity::Low => "low",
        }
    }
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A place in the repository: a path relative to its root (always with `/`),
/// a 1-based line (0 when the finding is about the file as a whole, or about
/// something missing from the repository, where `path` is the file that
/// should hold it) and a 1-based column (0 when unknown).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize)]
pub struct Evidence {
    pub path: String,
    pub line: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub column: usize,
    /// The line's text, trimmed and cut to 120 characters; empty when `line` is 0.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub snippet: String,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

impl Evidence {
    /// Evidence at `line` of `path` (1-based), with that line as the snippet.
    pub fn at(path: &str, text: &str, line: usize) -> Self {
        let snippet = text
            .lines()
            .nth(line.saturating_sub(1))
            .map(clip)
            .unwrap_or_default();
        Evidence {
            path: path.to_string(),
            line,
            column: 0,
            snippet,
        }
    }

    /// Evidence about a whole file (or a file that should exist).
    pub fn file(path: &str) -> Self {
        Evidence {
            path: path.to_string(),
            line: 0,
            column: 0,
            snippet: String::new(),
        }
    }

    /// The same evidence with a column.
    pub fn column(mut self, column: usize) -> Self {
        self.column = column;
        self
    }

    /// `path:line` (or `path` alone), as reports print it.
    pub fn location(&self) -> String {
        if self.line == 0 {
            self.path.clone()
        } else {
            format!("{}:{}", self.path, self.line)
        }
    }
}

/// The line's text as a snippet: trimmed, at most 120 characters.
pub fn clip(line: &str) -> String {
    let line = line.trim();
    match line.char_indices().nth(120) {
        Some((i, _)) => format!("{}…", &line[..i]),
        None => line.to_string(),
    }
}

/// A problem the report lists: which rule found it, where, and what to do.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Finding {
    /// The rule's id, e.g. `dockerfile/root-user` (see [`crate::rules::catalogue`]).
    pub rule: &'static str,
    pub area: Area,
    pub severity: Severity,
    /// One sentence saying what is wrong here, naming the thing found.
    pub message: String,
    /// Where; the first is the primary location.
    pub evidence: Vec<Evidence>,
    /// A concrete fix.
    pub fix: String,
    /// Where cutover does it: the `cutover.toml` lines that would, if any.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cutover: Option<String>,
}

/// Something the repository has (a fact), which maturity ladders read: for
/// example `ci.tests` at `.github/workflows/ci.yml:14`. Facts are listed in
/// the report too, as the evidence behind each level.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Fact {
    /// The fact's id, e.g. `ci.tests` (see [`crate::areas::facts`]).
    pub id: &'static str,
    /// What exactly was found, e.g. "pytest in job test" or a health path.
    pub detail: String,
    pub evidence: Evidence,
}

/// A path as the report prints it: relative, with `/`.
pub fn display_path(path: &Path) -> String {
    let mut out = String::new();
    for (i, part) in path.components().enumerate() {
        if i > 0 {
            out.push('/');
        }
        out.push_str(&part.as_os_str().to_string_lossy());
    }
    out
}

/// A finding's evidence as a path, for callers that want a [`PathBuf`].
pub fn evidence_path(root: &Path, evidence: &Evidence) -> PathBuf {
    root.join(&evidence.path)
}
