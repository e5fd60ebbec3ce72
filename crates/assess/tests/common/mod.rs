//! Helpers the pass tests share: assess a fixture, list its findings and
//! facts in the shapes the tests compare, and read an area's level.

#![allow(dead_code)]

use std::path::PathBuf;

use cutover_assess::{Area, NoHooks, Report};

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

/// `rule path:line` of the findings whose rule starts with `prefix`, sorted.
pub fn sorted_findings(report: &Report, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.rule.starts_with(prefix))
        .map(|f| format!("{} {}", f.rule, f.evidence[0].location()))
        .collect();
    v.sort();
    v
}

/// `id path:line` of the facts whose id starts with `prefix`, sorted, once each.
pub fn sorted_facts(report: &Report, prefix: &str) -> Vec<String> {
    let mut v: Vec<String> = report
        .facts
        .iter()
        .filter(|f| f.id.starts_with(prefix))
        .map(|f| format!("{} {}", f.id, f.evidence.location()))
        .collect();
    v.sort();
    v.dedup();
    v
}

/// The level `area` reached (0 when the report has no such area).
pub fn level(report: &Report, area: Area) -> u8 {
    report
        .areas
        .iter()
        .find(|a| a.area == area)
        .map(|a| a.level)
        .unwrap_or(0)
}
