//! The Markdown rendering, for a pull-request comment: a heading with the
//! overall level, the area table (Area | Level | Set by | Next), findings
//! grouped by severity (medium and low folded in `<details>` when there are
//! many), each with `path:line`, the message, the fix and the `cutover.toml`
//! lines in a `toml` block, then the next steps as a list.

use std::fmt::Write;

use super::Report;
use crate::finding::{Finding, Severity};

/// More findings than this in a medium or low group fold it in `<details>`.
pub const FOLD_OVER: usize = 5;

/// The report as Markdown.
pub fn render(report: &Report) -> String {
    let mut out = String::new();
    // Writing to a String cannot fail.
    let _ = write_report(&mut out, report);
    out
}

fn write_report(out: &mut String, r: &Report) -> std::fmt::Result {
    writeln!(out, "## Deployment readiness: {}", r.overall_label)?;
    writeln!(out)?;
    writeln!(
        out,
        "`cutover assess` read {} files. Findings: **{} high**, {} medium, {} low.",
        r.files_scanned,
        r.count(Severity::High),
        r.count(Severity::Medium),
        r.count(Severity::Low)
    )?;
    writeln!(out)?;
    writeln!(out, "| Area | Level | Set by | Next |")?;
    writeln!(out, "| --- | --- | --- | --- |")?;
    for a in &r.areas {
        let next = match &a.next {
            Some(n) => format!("Level {}: {}", n.level, n.missing.join("; ")),
            None => "—".to_string(),
        };
        writeln!(
            out,
            "| {} | {} | {} | {} |",
            cell(a.area.title()),
            cell(&a.label),
            cell(&a.set_by),
            cell(&next)
        )?;
    }
    for severity in [Severity::High, Severity::Medium, Severity::Low] {
        let group: Vec<&Finding> = r
            .findings
            .iter()
            .filter(|f| f.severity == severity)
            .collect();
        if group.is_empty() {
            continue;
        }
        writeln!(out)?;
        let title = format!("{} findings ({})", heading(severity), group.len());
        let fold = severity != Severity::High && group.len() > FOLD_OVER;
        if fold {
            writeln!(out, "<details>")?;
            writeln!(out, "<summary><strong>{title}</strong></summary>")?;
        } else {
            writeln!(out, "### {title}")?;
        }
        for f in group {
            writeln!(out)?;
            write_finding(out, f)?;
        }
        if fold {
            writeln!(out)?;
            writeln!(out, "</details>")?;
        }
    }
    if !r.next_steps.is_empty() {
        writeln!(out)?;
        writeln!(out, "### Next steps")?;
        writeln!(out)?;
        for step in &r.next_steps {
            writeln!(out, "1. {}", inline(step))?;
        }
    }
    Ok(())
}

fn heading(s: Severity) -> &'static str {
    match s {
        Severity::High => "High",
        Severity::Medium => "Medium",
        Severity::Low => "Low",
    }
}

fn write_finding(out: &mut String, f: &Finding) -> std::fmt::Result {
    let at = f.evidence.first().map(|e| e.location()).unwrap_or_default();
    writeln!(
        out,
        "- {} {} ({})",
        code(&at),
        inline(&f.message),
        code(f.rule)
    )?;
    for e in f.evidence.iter().skip(1) {
        writeln!(out, "  - also {}", code(&e.location()))?;
    }
    writeln!(out, "  - **Fix:** {}", inline(&f.fix))?;
    if let Some(toml) = &f.cutover {
        writeln!(out, "  - In `cutover.toml`:")?;
        writeln!(out)?;
        let fence = fence_for(toml);
        writeln!(out, "    {fence}toml")?;
        for line in toml.lines() {
            writeln!(out, "    {line}")?;
        }
        writeln!(out, "    {fence}")?;
    }
    Ok(())
}

/// A fence longer than any run of backticks in `text`.
fn fence_for(text: &str) -> String {
    "`".repeat((longest_backtick_run(text) + 1).max(3))
}

fn longest_backtick_run(text: &str) -> usize {
    let (mut longest, mut run) = (0, 0);
    for c in text.chars() {
        if c == '`' {
            run += 1;
            longest = longest.max(run);
        } else {
            run = 0;
        }
    }
    longest
}

/// Text as inline code, whatever backticks it holds.
fn code(text: &str) -> String {
    let longest = longest_backtick_run(text);
    let ticks = "`".repeat(longest + 1);
    if longest == 0 {
        format!("{ticks}{text}{ticks}")
    } else {
        format!("{ticks} {text} {ticks}")
    }
}

/// Running text: HTML is not interpreted (a `<` from a finding's message
/// must not open a tag in the comment); newlines become spaces.
fn inline(text: &str) -> String {
    text.replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace(['\n', '\r'], " ")
}

/// A table cell: `|` and backticks escaped, HTML neutralised, on one line.
fn cell(text: &str) -> String {
    inline(text).replace('|', "\\|").replace('`', "\\`")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cells_escape_pipes_backticks_and_html() {
        assert_eq!(cell("a | b `c`"), "a \\| b \\`c\\`");
        assert_eq!(cell("<script>\nx"), "&lt;script&gt; x");
        assert_eq!(code("a`b"), "`` a`b ``");
        assert_eq!(code("x.toml:3"), "`x.toml:3`");
        assert_eq!(fence_for("a ``` b"), "````");
        assert_eq!(fence_for("plain"), "```");
    }
}
