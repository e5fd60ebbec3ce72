//! The text rendering: reads like a hand-written readiness assessment — the
//! overall level, an area table (level, the step that set it, what the next
//! needs), findings by severity with evidence and fix, and next steps.
//! Plain text only: no colour, so `NO_COLOR` has nothing to switch off.

use std::fmt::Write;

use super::Report;
use crate::finding::Severity;

/// The report as text.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, report);
    out
}

fn write_report(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(
        out,
        "Deployment readiness of {} ({} files)",
        r.root, r.files_scanned
    )?;
    writeln!(out)?;
    writeln!(
        out,
        "Overall: {} (the median of {} areas)",
        r.overall_label,
        r.areas.len()
    )?;
    writeln!(out)?;
    let width = r
        .areas
        .iter()
        .map(|a| a.area.title().len())
        .max()
        .unwrap_or(10);
    writeln!(out, "{:width$}  {:<24}  set by", "area", "level")?;
    for a in &r.areas {
        writeln!(
            out,
            "{:width$}  {:<24}  {}",
            a.area.title(),
            a.label,
            a.set_by
        )?;
        for f in &a.evidence {
            writeln!(
                out,
                "{:width$}  {:<24}    {} ({})",
                "",
                "",
                f.detail_or_id(),
                f.evidence.location()
            )?;
        }
        if let Some(next) = &a.next {
            writeln!(
                out,
                "{:width$}  {:<24}  next, Level {}: {}",
                "",
                "",
                next.level,
                next.missing.join("; ")
            )?;
        }
    }
    writeln!(out)?;
    writeln!(
        out,
        "Findings: {} high, {} medium, {} low",
        r.count(Severity::High),
        r.count(Severity::Medium),
        r.count(Severity::Low)
    )?;
    for f in &r.findings {
        writeln!(out)?;
        let at = f.evidence.first().map(|e| e.location()).unwrap_or_default();
        writeln!(
            out,
            "{:<6} {}  {}  [{}]",
            f.severity.as_str().to_uppercase(),
            at,
            f.message,
            f.rule
        )?;
        for e in f.evidence.iter().skip(1) {
            writeln!(out, "       also {}", e.location())?;
        }
        if let Some(snippet) = f
            .evidence
            .first()
            .map(|e| &e.snippet)
            .filter(|s| !s.is_empty())
        {
            writeln!(out, "       | {snippet}")?;
        }
        writeln!(out, "       fix: {}", f.fix)?;
        if let Some(toml) = &f.cutover {
            writeln!(out, "       in cutover.toml:")?;
            for line in toml.lines() {
                writeln!(out, "         {line}")?;
            }
        }
    }
    if !r.next_steps.is_empty() {
        writeln!(out)?;
        writeln!(out, "Next steps")?;
        for (i, step) in r.next_steps.iter().enumerate() {
            writeln!(out, "{:>3}. {step}", i + 1)?;
        }
    }
    Ok(())
}

trait DetailOrId {
    fn detail_or_id(&self) -> &str;
}

impl DetailOrId for crate::finding::Fact {
    fn detail_or_id(&self) -> &str {
        if self.detail.is_empty() {
            self.id
        } else {
            &self.detail
        }
    }
}
