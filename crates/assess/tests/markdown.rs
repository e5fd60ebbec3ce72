//! The Markdown rendering (a pull-request comment): heading, area table with
//! escaped cells, findings by severity with fixes and `cutover.toml` blocks,
//! folding of long medium/low groups, next steps.

use std::path::Path;

use cutover_assess::report::markdown;
use cutover_assess::rules::{RuleInfo, cutover_config};
use cutover_assess::{Evidence, Finding, Report};

fn finding(rule: &'static RuleInfo, path: &str, line: usize, message: &str) -> Finding {
    let text = "x\n".repeat(line.max(1));
    let evidence = if line == 0 {
        Evidence::file(path)
    } else {
        Evidence::at(path, &text, line)
    };
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

fn report(lows: usize) -> Report {
    let mut findings = vec![
        finding(
            &cutover_config::PLAINTEXT_API,
            "cutover.toml",
            4,
            "`allow_plaintext = true` on 10.0.0.5:7070",
        ),
        finding(
            &cutover_config::CANARY_WITHOUT_ANALYSIS,
            "cutover.toml",
            12,
            "service `web` is a canary without analysis",
        ),
    ];
    for i in 0..lows {
        findings.push(finding(
            &cutover_config::BACKUP_NOT_BEFORE_DEPLOY,
            &format!("svc{i}/cutover.toml"),
            0,
            "database `main` is not backed up before deploys",
        ));
    }
    Report::new(Path::new("/srv/repo"), 17, findings, Vec::new())
}

#[test]
fn a_comment_with_table_findings_and_next_steps() {
    let mut report = report(1);
    report.areas[0].set_by = "a | b with `code`".to_string();
    let md = markdown::render(&report);

    let first = md.lines().next().unwrap_or_default();
    assert_eq!(
        first,
        format!("## Deployment readiness: {}", report.overall_label)
    );
    assert!(
        md.contains("Findings: **1 high**, 1 medium, 1 low."),
        "{md}"
    );

    // The table: a header, a rule, one row per area, each with four cells.
    let rows: Vec<&str> = md.lines().filter(|l| l.starts_with("| ")).collect();
    assert_eq!(rows.len(), 2 + report.areas.len(), "{md}");
    assert_eq!(rows[0], "| Area | Level | Set by | Next |");
    assert!(md.contains("| --- | --- | --- | --- |"));
    let escaped = rows
        .iter()
        .find(|r| r.contains("a \\| b with \\`code\\`"))
        .expect("the escaped cell");
    // Unescaped pipes delimit exactly five columns' borders.
    let borders = escaped.matches(" | ").count() + 2;
    assert_eq!(borders, 5, "{escaped}");

    // Findings by severity, high first, each with place, rule, fix and toml.
    let high = md.find("### High findings (1)").expect("high heading");
    let medium = md.find("### Medium findings (1)").expect("medium heading");
    let low = md.find("### Low findings (1)").expect("low heading");
    assert!(high < medium && medium < low);
    assert!(md.contains(
        "- `cutover.toml:4` `allow_plaintext = true` on 10.0.0.5:7070 (`cutover-config/plaintext-api`)"
    ));
    assert!(md.contains("- `svc0/cutover.toml` database `main`"), "{md}");
    assert!(md.contains(&format!(
        "  - **Fix:** {}",
        cutover_config::PLAINTEXT_API.fix
    )));
    assert!(md.contains("    ```toml\n    [server]\n"), "{md}");
    assert!(!md.contains("<details>"), "a short group is not folded");

    // Next steps as a numbered list; the high finding's fix comes first.
    let steps = md.find("### Next steps").expect("next steps");
    assert!(md[steps..].contains(&format!("1. {}", cutover_config::PLAINTEXT_API.fix)));
}

#[test]
fn long_medium_and_low_groups_fold() {
    let lows = markdown::FOLD_OVER + 2;
    let md = markdown::render(&report(lows));
    assert!(md.contains(&format!(
        "<details>\n<summary><strong>Low findings ({lows})</strong></summary>"
    )));
    assert_eq!(md.matches("<details>").count(), 1, "{md}");
    assert_eq!(md.matches("</details>").count(), 1);
    // Every finding is still there.
    assert_eq!(
        md.matches("(`cutover-config/backup-not-before-deploy`)")
            .count(),
        lows
    );
}

#[test]
fn an_empty_report_has_a_heading_and_a_table() {
    let report = Report::new(Path::new("."), 0, Vec::new(), Vec::new());
    let md = markdown::render(&report);
    assert!(md.starts_with("## Deployment readiness: Level 1 — Ad-hoc\n"));
    assert!(md.contains("Findings: **0 high**, 0 medium, 0 low."));
    assert!(!md.contains("findings ("));
}
