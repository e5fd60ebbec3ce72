//! The SARIF rendering: read back with serde-sarif, every result has what
//! GitHub code scanning requires (a rule id, a level, a message, a physical
//! location with a region), and the whole log validates against the official
//! SARIF 2.1.0 JSON schema (tests/sarif-schema-2.1.0.json, see
//! tests/README.md).

use std::path::Path;

use cutover_assess::report::sarif;
use cutover_assess::rules::{self, cutover_config};
use cutover_assess::{Evidence, Finding, NoHooks, Report, Severity};
use serde_sarif::sarif::{ResultLevel, Sarif};

fn finding(rule: &'static rules::RuleInfo, evidence: Evidence, message: &str) -> Finding {
    Finding {
        rule: rule.id,
        area: rule.area,
        severity: rule.severity,
        message: message.to_string(),
        evidence: vec![evidence],
        fix: rule.fix.to_string(),
        cutover: rule.cutover.map(str::to_string),
    }
}

/// A report with a finding of each severity: one at a line and column, one
/// about a whole file (line 0), one in a path that needs escaping.
fn report() -> Report {
    let text = "[app]\nname = \"shop\"\nreplicas = \"two\"\n";
    let findings = vec![
        finding(
            &cutover_config::INVALID,
            Evidence::at("deploy/cutover.toml", text, 3).column(12),
            "wrong type for `replicas`",
        ),
        finding(
            &cutover_config::DATABASE_WITHOUT_BACKUP,
            Evidence::file("cutover.toml"),
            "database `main` has no backup",
        ),
        finding(
            &cutover_config::BACKUP_NOT_BEFORE_DEPLOY,
            Evidence::at("my app/cutover.toml", "a\nb|`c`\n", 2),
            "no backup before deploy",
        ),
    ];
    Report::new(Path::new("/srv/repo"), 42, findings, Vec::new())
}

fn schema_validator() -> jsonschema::Validator {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/sarif-schema-2.1.0.json");
    let text = std::fs::read_to_string(&path).expect("the vendored SARIF schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::options()
        .build(&schema)
        .expect("the SARIF schema compiles")
}

fn schema_errors(validator: &jsonschema::Validator, json: &str) -> Vec<String> {
    let instance: serde_json::Value = serde_json::from_str(json).expect("SARIF output is JSON");
    validator
        .iter_errors(&instance)
        .map(|e| format!("{} at {}", e, e.instance_path()))
        .collect()
}

#[test]
fn every_result_has_what_code_scanning_requires() {
    let report = report();
    let json = sarif::render(&report);
    let log: Sarif = serde_json::from_str(&json).expect("serde-sarif reads it back");
    assert_eq!(log.version, serde_json::json!("2.1.0"));
    assert_eq!(log.runs.len(), 1);
    let run = &log.runs[0];
    assert_eq!(run.tool.driver.name, sarif::TOOL_NAME);
    let rules = run.tool.driver.rules.as_ref().expect("driver.rules");
    assert_eq!(rules.len(), rules::catalogue().count());
    for (descriptor, info) in rules.iter().zip(rules::catalogue()) {
        assert_eq!(descriptor.id, info.id);
        let short = descriptor
            .short_description
            .as_ref()
            .expect("shortDescription");
        assert_eq!(short.text, info.title);
        let help = descriptor.help.as_ref().expect("help");
        assert!(help.text.contains(info.fix), "{}", info.id);
        if let Some(toml) = info.cutover {
            assert!(help.text.contains(toml), "{}", info.id);
        }
        let level = descriptor
            .default_configuration
            .as_ref()
            .and_then(|c| c.level.clone())
            .expect("defaultConfiguration.level");
        assert_eq!(
            level,
            serde_json::json!(sarif::level(info.severity).to_string())
        );
    }

    let results = run.results.as_ref().expect("results");
    assert_eq!(results.len(), report.findings.len());
    for (result, finding) in results.iter().zip(&report.findings) {
        let rule_id = result.rule_id.as_deref().expect("ruleId");
        assert_eq!(rule_id, finding.rule);
        let index = usize::try_from(result.rule_index.expect("ruleIndex")).expect("index");
        assert_eq!(rules[index].id, rule_id);
        let level = result.level.as_ref().expect("level");
        let expected = match finding.severity {
            Severity::High => "error",
            Severity::Medium => "warning",
            Severity::Low => "note",
        };
        assert_eq!(level.to_string(), expected);
        let text = result.message.text.as_deref().expect("message.text");
        assert!(text.starts_with(&finding.message), "{text}");
        assert!(text.contains(&finding.fix), "{text}");
        let locations = result.locations.as_ref().expect("locations");
        assert_eq!(locations.len(), finding.evidence.len());
        let physical = locations[0]
            .physical_location
            .as_ref()
            .expect("physicalLocation");
        let artifact = physical
            .artifact_location
            .as_ref()
            .expect("artifactLocation");
        assert_eq!(artifact.uri_base_id.as_deref(), Some(sarif::SRCROOT));
        let region = physical.region.as_ref().expect("region");
        let line = region.start_line.expect("startLine");
        assert_eq!(
            line,
            i64::try_from(finding.evidence[0].line.max(1)).expect("line")
        );
        let fingerprints = result.partial_fingerprints.as_ref().expect("fingerprints");
        assert!(fingerprints.contains_key(sarif::FINGERPRINT_KEY));
    }

    // Exact places: the high finding first, with its column; the whole-file
    // finding on line 1; the path with a space percent-encoded.
    let at = |i: usize| {
        let p = results[i].locations.as_ref().expect("locations")[0]
            .physical_location
            .clone()
            .expect("physical");
        let a = p.artifact_location.expect("artifact");
        let r = p.region.expect("region");
        (a.uri.expect("uri"), r.start_line, r.start_column)
    };
    assert_eq!(at(0), ("deploy/cutover.toml".into(), Some(3), Some(12)));
    assert_eq!(at(1), ("cutover.toml".into(), Some(1), None));
    assert_eq!(at(2), ("my%20app/cutover.toml".into(), Some(2), None));
    assert!(matches!(results[0].level, Some(ResultLevel::Error)));

    // The areas' levels are the run's properties.
    let props = run.properties.as_ref().expect("run.properties");
    let areas = props.additional_properties["areas"]
        .as_array()
        .expect("areas");
    assert_eq!(areas.len(), report.areas.len());
    assert_eq!(
        props.additional_properties["overallLevel"],
        serde_json::json!(report.overall_level)
    );
}

#[test]
fn the_log_validates_against_the_official_schema() {
    let validator = schema_validator();
    let json = sarif::render(&report());
    let errors = schema_errors(&validator, &json);
    assert!(errors.is_empty(), "{errors:#?}\n{json}");

    // An empty report (no findings) is valid too.
    let empty = Report::new(Path::new("."), 0, Vec::new(), Vec::new());
    let errors = schema_errors(&validator, &sarif::render(&empty));
    assert!(errors.is_empty(), "{errors:#?}");
}

#[test]
fn the_schema_check_catches_a_broken_log() {
    // The validator is not vacuous: a result without its message, and a
    // level SARIF does not know, are both refused.
    let validator = schema_validator();
    let mut value: serde_json::Value =
        serde_json::from_str(&sarif::render(&report())).expect("JSON");
    let result = &mut value["runs"][0]["results"][0];
    result
        .as_object_mut()
        .expect("result object")
        .remove("message");
    result["level"] = serde_json::json!("fatal");
    let errors = schema_errors(&validator, &value.to_string());
    assert!(errors.len() >= 2, "{errors:#?}");
}

#[test]
fn a_real_assessment_renders_valid_sarif() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("cutover.toml"),
        "[app]\nname = \"shop\"\n\n[service.web]\ncommand = [\"./web\", \"--port\", \"{port}\"]\n\n[environment.production]\nlisten = \"0.0.0.0:8080\"\nrollback_window = \"0s\"\n",
    )
    .expect("write");
    let report = cutover_assess::assess(dir.path(), &NoHooks).expect("assess");
    assert!(!report.findings.is_empty(), "the config above has findings");
    let json = sarif::render(&report);
    let errors = schema_errors(&schema_validator(), &json);
    assert!(errors.is_empty(), "{errors:#?}\n{json}");
    let log: Sarif = serde_json::from_str(&json).expect("read back");
    let results = log.runs[0].results.as_ref().expect("results");
    assert_eq!(results.len(), report.findings.len());
}
