//! The SARIF 2.1.0 rendering for GitHub code scanning. (Being written.)

use super::Report;

/// The report as SARIF JSON.
pub fn render(report: &Report) -> String {
    super::json::render(report)
}
