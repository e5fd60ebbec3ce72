//! The SARIF 2.1.0 rendering for GitHub code scanning, written through the
//! `serde-sarif` crate (whose types are generated from the official schema).
//!
//! One run: `tool.driver` lists every rule of the catalogue (so a result's
//! `ruleIndex` points into it), each finding is one result with its level
//! (high → `error`, medium → `warning`, low → `note`), its message and fix,
//! and a physical location relative to `%SRCROOT%` with a region. A finding
//! about a whole file, or about a file that should exist, gets line 1:
//! code scanning requires a region. The areas' levels are the run's
//! `properties`.

use std::collections::BTreeMap;

use serde_json::json;
use serde_sarif::sarif;

use super::Report;
use crate::finding::{Evidence, Finding, Severity};
use crate::rules::{self, RuleInfo};

/// The tool's name in SARIF.
pub const TOOL_NAME: &str = "cutover assess";

/// The base every artifact URI is relative to: the repository's root.
pub const SRCROOT: &str = "%SRCROOT%";

/// The official schema's address (OASIS, SARIF 2.1.0 errata 01).
pub const SCHEMA_URI: &str =
    "https://docs.oasis-open.org/sarif/sarif/v2.1.0/errata01/os/schemas/sarif-schema-2.1.0.json";

/// The key of each result's `partialFingerprints`.
pub const FINGERPRINT_KEY: &str = "cutoverFinding/v1";

/// The report as SARIF JSON.
pub fn render(report: &Report) -> String {
    let log = log(report);
    // The SARIF types hold only strings, numbers, maps and lists.
    serde_json::to_string_pretty(&log).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}

/// The report as a SARIF log.
pub fn log(report: &Report) -> sarif::Sarif {
    let catalogue: Vec<&'static RuleInfo> = rules::catalogue().collect();
    let descriptors: Vec<sarif::ReportingDescriptor> =
        catalogue.iter().map(|r| descriptor(r)).collect();
    let driver = sarif::ToolComponent::builder()
        .name(TOOL_NAME)
        .version(env!("CARGO_PKG_VERSION"))
        .semantic_version(env!("CARGO_PKG_VERSION"))
        .rules(descriptors)
        .build();
    let results: Vec<sarif::Result> = report
        .findings
        .iter()
        .map(|f| result(f, catalogue.iter().position(|r| r.id == f.rule)))
        .collect();
    let run = sarif::Run::builder()
        .tool(driver)
        .results(results)
        .column_kind(json!("unicodeCodePoints"))
        .properties(run_properties(report))
        .build();
    sarif::Sarif::builder()
        .schema(SCHEMA_URI)
        .version(json!(sarif::Version::V2_1_0.to_string()))
        .runs(vec![run])
        .build()
}

/// SARIF's level for a severity.
pub fn level(severity: Severity) -> sarif::ResultLevel {
    match severity {
        Severity::High => sarif::ResultLevel::Error,
        Severity::Medium => sarif::ResultLevel::Warning,
        Severity::Low => sarif::ResultLevel::Note,
    }
}

fn descriptor(rule: &RuleInfo) -> sarif::ReportingDescriptor {
    let mut help_text = format!("Fix: {}", rule.fix);
    let mut help_md = format!("**Fix:** {}", rule.fix);
    if let Some(toml) = rule.cutover {
        help_text.push_str("\n\nIn cutover.toml:\n");
        help_text.push_str(toml);
        help_md.push_str("\n\nIn `cutover.toml`:\n\n```toml\n");
        help_md.push_str(toml);
        help_md.push_str("\n```");
    }
    let mut props = BTreeMap::new();
    props.insert("area".to_string(), json!(rule.area.id()));
    props.insert("severity".to_string(), json!(rule.severity.as_str()));
    sarif::ReportingDescriptor::builder()
        .id(rule.id)
        .name(pascal_name(rule.id))
        .short_description(text(rule.title))
        .full_description(text(rule.why))
        .help(
            sarif::MultiformatMessageString::builder()
                .text(help_text)
                .markdown(help_md)
                .build(),
        )
        .default_configuration(
            sarif::ReportingConfiguration::builder()
                .level(json!(level(rule.severity).to_string()))
                .build(),
        )
        .properties(
            sarif::PropertyBag::builder()
                .tags(vec![rule.area.id().to_string()])
                .additional_properties(props)
                .build(),
        )
        .build()
}

fn text(s: &str) -> sarif::MultiformatMessageString {
    sarif::MultiformatMessageString::builder()
        .text(s.to_string())
        .build()
}

/// `dockerfile/root-user` → `DockerfileRootUser` (SARIF's `name` is an
/// identifier-like name).
fn pascal_name(id: &str) -> String {
    id.split(['/', '-', '_'])
        .filter(|p| !p.is_empty())
        .map(|p| {
            let mut c = p.chars();
            match c.next() {
                Some(first) => first.to_uppercase().chain(c).collect::<String>(),
                None => String::new(),
            }
        })
        .collect()
}

fn result(f: &Finding, rule_index: Option<usize>) -> sarif::Result {
    let mut message = f.message.clone();
    message.push_str("\nFix: ");
    message.push_str(&f.fix);
    if let Some(toml) = &f.cutover {
        message.push_str("\nIn cutover.toml:\n");
        message.push_str(toml);
    }
    let locations: Vec<sarif::Location> = f.evidence.iter().map(location).collect();
    let mut fingerprints = BTreeMap::new();
    fingerprints.insert(FINGERPRINT_KEY.to_string(), fingerprint(f));
    let mut props = BTreeMap::new();
    props.insert("area".to_string(), json!(f.area.id()));
    props.insert("severity".to_string(), json!(f.severity.as_str()));
    let mut result = sarif::Result::builder()
        .rule_id(f.rule)
        .level(level(f.severity))
        .message(sarif::Message::builder().text(message).build())
        .locations(locations)
        .partial_fingerprints(fingerprints)
        .properties(
            sarif::PropertyBag::builder()
                .additional_properties(props)
                .build(),
        )
        .build();
    if let Some(i) = rule_index.and_then(|i| i64::try_from(i).ok()) {
        result.rule_index = Some(i);
    }
    result
}

fn location(e: &Evidence) -> sarif::Location {
    // Code scanning needs a region: a whole file (line 0) is its first line.
    let line = i64::try_from(e.line.max(1)).unwrap_or(1);
    let mut region = sarif::Region::builder().start_line(line).build();
    if e.column > 0 {
        region.start_column = i64::try_from(e.column).ok();
    }
    if !e.snippet.is_empty() {
        region.snippet = Some(
            sarif::ArtifactContent::builder()
                .text(e.snippet.clone())
                .build(),
        );
    }
    sarif::Location::builder()
        .physical_location(
            sarif::PhysicalLocation::builder()
                .artifact_location(
                    sarif::ArtifactLocation::builder()
                        .uri(uri(&e.path))
                        .uri_base_id(SRCROOT)
                        .build(),
                )
                .region(region)
                .build(),
        )
        .build()
}

/// A relative path as a URI reference: `/`-separated, with the characters
/// a URI cannot hold percent-encoded.
fn uri(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for b in path.bytes() {
        let keep = b.is_ascii_alphanumeric() || b"-._~/!$&'()*+,;=:@".contains(&b);
        if keep {
            out.push(char::from(b));
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Stable across runs and line moves: the rule, the file and what the
/// finding points at (the snippet, else the message), hashed with FNV-1a.
fn fingerprint(f: &Finding) -> String {
    let (path, what) = match f.evidence.first() {
        Some(e) if !e.snippet.is_empty() => (e.path.as_str(), e.snippet.as_str()),
        Some(e) => (e.path.as_str(), f.message.as_str()),
        None => ("", f.message.as_str()),
    };
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for part in [f.rule, path, what] {
        for b in part.bytes().chain([0u8]) {
            hash ^= u64::from(b);
            hash = hash.wrapping_mul(0x0100_0000_01b3);
        }
    }
    format!("{hash:016x}")
}

fn run_properties(report: &Report) -> sarif::PropertyBag {
    let areas: Vec<serde_json::Value> = report
        .areas
        .iter()
        .map(|a| {
            json!({
                "area": a.area.id(),
                "title": a.area.title(),
                "level": a.level,
                "label": a.label,
                "setBy": a.set_by,
            })
        })
        .collect();
    let mut props = BTreeMap::new();
    props.insert("overallLevel".to_string(), json!(report.overall_level));
    props.insert("overallLabel".to_string(), json!(report.overall_label));
    props.insert("filesScanned".to_string(), json!(report.files_scanned));
    props.insert("areas".to_string(), json!(areas));
    sarif::PropertyBag::builder()
        .additional_properties(props)
        .build()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_and_uris() {
        assert_eq!(pascal_name("dockerfile/root-user"), "DockerfileRootUser");
        assert_eq!(
            pascal_name("cutover-config/invalid"),
            "CutoverConfigInvalid"
        );
        assert_eq!(uri("a b/c#d.txt"), "a%20b/c%23d.txt");
        assert_eq!(uri("src/é.rs"), "src/%C3%A9.rs");
        assert_eq!(level(Severity::Medium).to_string(), "warning");
    }
}
