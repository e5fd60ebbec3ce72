//! The Markdown rendering, for a pull-request comment. (Being written.)

use super::Report;

/// The report as Markdown.
pub fn render(report: &Report) -> String {
    super::text::render(report)
}
