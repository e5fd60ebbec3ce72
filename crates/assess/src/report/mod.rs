//! The assessment's result and its four renderings: [`text`] (reads like a
//! hand-written readiness assessment), [`json`] (documented schema, for
//! scripts), [`markdown`] (a pull-request comment) and [`sarif`] (SARIF 2.1.0
//! for GitHub code scanning).

use std::path::Path;

use serde::Serialize;

use crate::areas::{self, AreaLevel};
use crate::finding::{Fact, Finding, Severity};

pub mod json;
pub mod markdown;
pub mod sarif;
pub mod text;

/// The version of the JSON shape (docs/assess.md, "JSON").
pub const SCHEMA_VERSION: u32 = 1;

/// Everything an assessment found.
#[derive(Debug, Clone, Serialize)]
pub struct Report {
    pub schema_version: u32,
    /// The folder assessed, as given.
    pub root: String,
    pub files_scanned: usize,
    /// The lower median of the areas' levels.
    pub overall_level: u8,
    pub overall_label: String,
    pub areas: Vec<AreaLevel>,
    /// Sorted: severity, then area, then path and line.
    pub findings: Vec<Finding>,
    /// Everything the passes recorded, sorted by id then path.
    pub facts: Vec<Fact>,
    /// What to do first, most important first.
    pub next_steps: Vec<String>,
}

/// How many next steps a report lists.
const NEXT_STEPS: usize = 8;

impl Report {
    pub fn new(
        root: &Path,
        files_scanned: usize,
        mut findings: Vec<Finding>,
        mut facts: Vec<Fact>,
    ) -> Report {
        findings.sort_by(|a, b| {
            (a.severity, a.area, &a.evidence, a.rule).cmp(&(
                b.severity,
                b.area,
                &b.evidence,
                b.rule,
            ))
        });
        facts.sort_by(|a, b| (a.id, &a.evidence).cmp(&(b.id, &b.evidence)));
        let levels = areas::score(&facts, &findings);
        let overall_level = areas::overall(&levels);
        let next_steps = next_steps(&levels, &findings);
        Report {
            schema_version: SCHEMA_VERSION,
            root: root.display().to_string(),
            files_scanned,
            overall_level,
            overall_label: areas::level_label(overall_level),
            areas: levels,
            findings,
            facts,
            next_steps,
        }
    }

    /// How many findings have this severity.
    pub fn count(&self, severity: Severity) -> usize {
        self.findings
            .iter()
            .filter(|f| f.severity == severity)
            .count()
    }
}

/// High findings' fixes first (one per rule), then the lowest areas' next steps.
fn next_steps(levels: &[AreaLevel], findings: &[Finding]) -> Vec<String> {
    let mut out: Vec<String> = Vec::new();
    let mut rules_seen = Vec::new();
    for f in findings.iter().filter(|f| f.severity == Severity::High) {
        if !rules_seen.contains(&f.rule) {
            rules_seen.push(f.rule);
            out.push(format!("{} ({})", f.fix, f.rule));
        }
    }
    let mut by_level: Vec<&AreaLevel> = levels.iter().collect();
    by_level.sort_by_key(|l| l.level);
    for l in by_level {
        if let Some(next) = &l.next {
            out.push(format!(
                "{}: reach Level {} — {} (missing: {})",
                l.area.title(),
                next.level,
                next.summary,
                next.missing.join("; ")
            ));
        }
    }
    out.truncate(NEXT_STEPS);
    out
}
