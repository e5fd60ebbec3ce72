//! What the benchmarks that write Markdown results share: [`Spread`] (min,
//! median, max of some figures), reading the `--machine` lines, and putting a
//! benchmark's section into a results file that other benchmarks write too.

use std::path::Path;

use anyhow::{Context, Result};

/// Min, median and max of some figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Spread {
    /// The smallest.
    pub min: f64,
    /// The middle one (the mean of the two middle ones for an even count).
    pub median: f64,
    /// The largest.
    pub max: f64,
}

impl Spread {
    /// The spread of `xs`; `None` if there are none.
    pub fn of(mut xs: Vec<f64>) -> Option<Spread> {
        if xs.is_empty() {
            return None;
        }
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        let median = if n % 2 == 1 {
            xs[n / 2]
        } else {
            (xs[n / 2 - 1] + xs[n / 2]) / 2.0
        };
        Some(Spread {
            min: xs[0],
            median,
            max: xs[n - 1],
        })
    }
}

/// The Markdown lines of `--machine` (empty without one).
pub fn read_machine(path: Option<&Path>) -> Result<String> {
    match path {
        Some(p) => {
            std::fs::read_to_string(p).with_context(|| format!("cannot read {}", p.display()))
        }
        None => Ok(String::new()),
    }
}

/// Puts `section` (starting with the line `heading`, such as `## Warm
/// rollback`) into the Markdown file `out`: in place of the section of that
/// name if there is one (up to the next heading of level 1 or 2), at the end
/// if not; a missing file is created.
pub fn write_section(out: &Path, heading: &str, section: &str) -> Result<()> {
    let old = match std::fs::read_to_string(out) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", out.display())),
    };
    let text = splice_section(&old, heading, section);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))
}

fn splice_section(old: &str, heading: &str, section: &str) -> String {
    let section = format!("{}\n", section.trim_end());
    let lines: Vec<&str> = old.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == heading) else {
        let old = old.trim_end();
        if old.is_empty() {
            return section;
        }
        return format!("{old}\n\n{section}");
    };
    // The next heading of level 1 or 2, outside code blocks (a TOML comment
    // in one starts with `# ` too).
    let mut fenced = false;
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
            }
            !fenced && (l.starts_with("## ") || l.starts_with("# "))
        })
        .map_or(lines.len(), |i| start + 1 + i);
    let mut text = lines[..start].join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&section);
    if end < lines.len() {
        text.push('\n');
        text.push_str(&lines[end..].join("\n"));
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEADING: &str = "## Warm rollback";

    #[test]
    fn a_file_without_the_section_gets_it_at_the_end() {
        let got = splice_section(
            "# Upgrade\n\n## bench/upgrade\n\nfigures\n",
            HEADING,
            "## Warm rollback\n\nnew\n",
        );
        assert_eq!(
            got,
            "# Upgrade\n\n## bench/upgrade\n\nfigures\n\n## Warm rollback\n\nnew\n"
        );
    }

    #[test]
    fn the_section_is_replaced_and_what_follows_it_kept() {
        let old = "# Upgrade\n\n## Warm rollback\n\nold\nold\n\n## After\n\nkept\n";
        let got = splice_section(old, HEADING, "## Warm rollback\n\nnew\n");
        assert_eq!(
            got,
            "# Upgrade\n\n## Warm rollback\n\nnew\n\n## After\n\nkept\n"
        );
    }

    #[test]
    fn a_comment_in_a_code_block_does_not_end_the_section() {
        let old = "# U\n\n## Warm rollback\n\n```toml\n# comment\n```\n\n## After\n";
        let got = splice_section(old, HEADING, "## Warm rollback\n\nnew\n");
        assert_eq!(got, "# U\n\n## Warm rollback\n\nnew\n\n## After\n");
    }

    #[test]
    fn a_missing_file_gets_the_section_alone() {
        let got = splice_section("", HEADING, "## Warm rollback\n\nnew\n");
        assert_eq!(got, "## Warm rollback\n\nnew\n");
    }

    #[test]
    fn spread_of_odd_and_even_counts() {
        let triple = |xs: Vec<f64>| Spread::of(xs).map(|s| (s.min, s.median, s.max));
        assert_eq!(triple(Vec::new()), None);
        assert_eq!(triple(vec![3.0, 1.0, 2.0]), Some((1.0, 2.0, 3.0)));
        assert_eq!(triple(vec![4.0, 1.0, 2.0, 3.0]), Some((1.0, 2.5, 4.0)));
    }
}
