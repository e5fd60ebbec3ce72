//! The JSON rendering: [`super::Report`] as it serializes, documented in
//! docs/assess.md ("JSON"); `schema_version` changes when a field's meaning does.

use super::Report;

/// Pretty-printed JSON of the report.
pub fn render(report: &Report) -> String {
    // A Report holds only strings, numbers and lists: serialization cannot fail.
    serde_json::to_string_pretty(report).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"))
}
