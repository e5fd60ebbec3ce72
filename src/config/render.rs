//! [`render`]: a [`ConfigError`] as plain text, the way miette draws it but
//! without color — for tests, logs, and terminals that are not a TTY or set
//! `NO_COLOR`.

use miette::{GraphicalReportHandler, GraphicalTheme};

use super::error::ConfigError;

/// Renders `err` with miette's graphical handler, Unicode without color,
/// 100 columns wide: message, `file:line:column`, the source with a caret,
/// labels and help.
pub fn render(err: &ConfigError) -> String {
    let handler = GraphicalReportHandler::new_themed(GraphicalTheme::unicode_nocolor())
        .with_width(100)
        .with_links(false)
        .without_syntax_highlighting()
        .with_show_related_as_nested(true);
    let mut out = String::new();
    match handler.render_report(&mut out, err) {
        Ok(()) => out,
        Err(_) => err.to_string(),
    }
}
