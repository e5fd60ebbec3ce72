//! Helpers the pass tests share: assess a fixture, list findings and facts
//! as `severity rule path:line` and `id path:line detail`.

#![allow(dead_code)]

use std::path::PathBuf;

use cutover_assess::{NoHooks, Report};

/// The folder of fixture `name`.
pub fn fixture(name: &str) -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

/// Assesses fixture `name`.
pub fn assess(name: &str) -> Report {
    cutover_assess::assess(&fixture(name), &NoHooks).expect("assess")
}

/// Findings whose rule starts with `prefix`, as `severity rule path:line`, in report order.
pub fn findings(report: &Report, prefix: &str) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.rule.starts_with(prefix))
        .map(|f| format!("{} {} {}", f.severity, f.rule, f.evidence[0].location()))
        .collect()
}

/// Facts whose id starts with `prefix`, as `id path:line detail`.
pub fn facts(report: &Report, prefix: &str) -> Vec<String> {
    report
        .facts
        .iter()
        .filter(|f| f.id.starts_with(prefix))
        .map(|f| format!("{} {} {}", f.id, f.evidence.location(), f.detail))
        .collect()
}
