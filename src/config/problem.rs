//! One thing wrong at one place in `cutover.toml`: a message, the span it is
//! about (with a caret when rendered), a label, optional further labelled
//! spans, and a help line saying what was expected.
//!
//! Checks produce [`Finding`]s, which know nothing of the file; the loader
//! turns them into [`Problem`]s by attaching the named source once all
//! checks have run.
//!
//! A line too long to print (minified or hostile input) is shown as a window
//! of about [`WINDOW`] characters either side of the place, with `…` where
//! it was cut, and messages, labels and help are capped in length: an error
//! never echoes a megabyte, and miette never gets a label wider than a
//! format width allows.

use std::ops::Range;
use std::sync::Arc;

use miette::{
    Diagnostic, LabeledSpan, MietteError, MietteSpanContents, SourceCode, SourceSpan, SpanContents,
};
use thiserror::Error;

/// Lines longer than this many bytes are shown as a window.
const LONG_LINE: usize = 200;
/// About how many bytes of a long line are shown either side of the place.
const WINDOW: usize = 60;
/// The longest message, label and help, in characters.
const MAX_MESSAGE: usize = 300;
const MAX_LABEL: usize = 80;
const MAX_HELP: usize = 2000;

/// A problem at a place in the config file. Rendered by miette as
/// `cutover.toml:12:3` with the offending text underlined.
#[derive(Debug, Clone, Error, Diagnostic)]
#[error("{message}")]
pub struct Problem {
    message: String,
    #[source_code]
    source_code: ProblemSource,
    /// What miette underlines: [`Problem::span`], cut to the window on a long line.
    #[label(primary, "{label}")]
    shown: SourceSpan,
    label: String,
    #[label(collection)]
    secondary: Vec<LabeledSpan>,
    #[help]
    help: Option<String>,
    span: Range<usize>,
}

impl Problem {
    /// What is wrong, in one line.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The byte range in the file the problem is about.
    pub fn span(&self) -> Range<usize> {
        self.span.clone()
    }

    /// The text under the caret.
    pub fn label(&self) -> &str {
        &self.label
    }

    /// What was expected, if there is more to say than the message.
    pub fn help_text(&self) -> Option<&str> {
        self.help.as_deref()
    }

    /// 1-based line and column of the start of [`Problem::span`].
    pub fn line_column(&self) -> (usize, usize) {
        let text = &*self.source_code.text;
        let start = self.span.start.min(text.len());
        let before = &text[..floor_char_boundary(text, start)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
}

fn ceil_char_boundary(text: &str, mut index: usize) -> usize {
    index = index.min(text.len());
    while !text.is_char_boundary(index) {
        index += 1;
    }
    index
}

/// The config text as miette reads it: the file, except that a place on a
/// long line reads as a [`Window`] of that line.
#[derive(Debug, Clone)]
struct ProblemSource {
    name: String,
    text: Arc<str>,
    windows: Vec<Window>,
    /// Every span miette is given, as (offset, length).
    labels: Vec<(usize, usize)>,
}

/// A cut of one long line around a label starting at `from`: `data` is
/// `…` + the text from `offset + 3` + `…`, so that byte offsets in the file
/// still point at the same characters in `data`.
#[derive(Debug, Clone)]
struct Window {
    from: usize,
    data: String,
    offset: usize,
    line: usize,
    column: usize,
}

impl ProblemSource {
    /// The span miette should underline for `span`, making a window when the
    /// lines around it are long.
    fn place(&mut self, span: Range<usize>) -> SourceSpan {
        let text = &*self.text;
        let start = floor_char_boundary(text, span.start);
        let end = ceil_char_boundary(text, span.end.max(start));
        // The lines miette shows: one before and one after (its default context).
        let line_start = text[..start].rfind('\n').map_or(0, |i| i + 1);
        let line_end = text[start..].find('\n').map_or(text.len(), |i| start + i);
        let context_start = text[..line_start.saturating_sub(1)]
            .rfind('\n')
            .map_or(0, |i| i + 1)
            .min(line_start);
        let after_end = text[end..].find('\n').map_or(text.len(), |i| end + i);
        let context_end = text
            .get(after_end + 1..)
            .and_then(|rest| rest.find('\n'))
            .map_or(text.len(), |i| after_end + 1 + i);
        let long = text[context_start..context_end]
            .split('\n')
            .any(|line| line.len() > LONG_LINE);
        if !long {
            self.labels.push((start, end - start));
            return (start..end).into();
        }

        // Show the start of the place on its own line, cut to a window.
        let shown_end = ceil_char_boundary(text, end.min(start + WINDOW)).min(line_end);
        let mut from = floor_char_boundary(text, start.saturating_sub(WINDOW));
        if from < line_start + 4 {
            from = line_start;
        }
        let to = ceil_char_boundary(text, shown_end + WINDOW).min(line_end);
        let prefix = if from > line_start { "…" } else { "" };
        let suffix = if to < line_end { "…" } else { "" };
        self.windows.push(Window {
            from: start,
            data: format!("{prefix}{}{suffix}", &text[from..to]),
            offset: from - prefix.len(),
            line: text[..line_start].matches('\n').count(),
            column: start - line_start,
        });
        let shown_end = shown_end.max(start);
        self.labels.push((start, shown_end - start));
        (start..shown_end).into()
    }
}

impl SourceCode for ProblemSource {
    fn read_span<'a>(
        &'a self,
        span: &SourceSpan,
        context_lines_before: usize,
        context_lines_after: usize,
    ) -> Result<Box<dyn SpanContents<'a> + 'a>, MietteError> {
        let window = self.windows.iter().find(|w| w.from == span.offset());
        let exact = self.labels.contains(&(span.offset(), span.len()));
        if !exact {
            // miette asks for a span joining two labels, to show them in one
            // snippet: refused (so each is shown on its own) when either is
            // in a window, which shows one line only.
            let end = span.offset().saturating_add(span.len());
            if window.is_some()
                || self
                    .windows
                    .iter()
                    .any(|w| (span.offset()..=end).contains(&w.from))
            {
                return Err(MietteError::OutOfBounds);
            }
        }
        if let Some(w) = window {
            return Ok(Box::new(MietteSpanContents::new_named(
                self.name.clone(),
                w.data.as_bytes(),
                (w.offset, w.data.len()).into(),
                w.line,
                w.column,
                1,
            )));
        }
        let inner = self
            .text
            .read_span(span, context_lines_before, context_lines_after)?;
        Ok(Box::new(MietteSpanContents::new_named(
            self.name.clone(),
            inner.data(),
            *inner.span(),
            inner.line(),
            inner.column(),
            inner.line_count(),
        )))
    }
}

/// A [`Problem`] before it knows which file it is in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub span: Range<usize>,
    pub message: String,
    pub label: String,
    pub help: Option<String>,
    pub secondary: Vec<(Range<usize>, String)>,
}

impl Finding {
    /// A finding about `span`, with the text `label` under the caret.
    pub fn new(span: Range<usize>, message: impl Into<String>, label: impl Into<String>) -> Self {
        Self {
            span,
            message: message.into(),
            label: label.into(),
            help: None,
            secondary: Vec::new(),
        }
    }

    /// Says what was expected.
    pub fn help(mut self, help: impl Into<String>) -> Self {
        self.help = Some(help.into());
        self
    }

    /// Points at a second place, e.g. the first of two clashing values.
    pub fn also(mut self, span: Range<usize>, label: impl Into<String>) -> Self {
        self.secondary.push((span, label.into()));
        self
    }

    /// Attaches the file: `name` as messages show it, and its text.
    pub fn into_problem(self, name: &str, text: Arc<str>) -> Problem {
        let len = text.len();
        let clamp = |span: Range<usize>| -> Range<usize> {
            let start = span.start.min(len);
            let end = span.end.clamp(start, len);
            start..end
        };
        let mut source_code = ProblemSource {
            name: name.to_owned(),
            text,
            windows: Vec::new(),
            labels: Vec::new(),
        };
        let span = clamp(self.span);
        let shown = source_code.place(span.clone());
        let secondary = self
            .secondary
            .into_iter()
            .map(|(span, label)| {
                let shown = source_code.place(clamp(span));
                LabeledSpan::new_with_span(Some(elide(&label, MAX_LABEL)), shown)
            })
            .collect();
        Problem {
            message: elide(&self.message, MAX_MESSAGE),
            shown,
            label: elide(&self.label, MAX_LABEL),
            secondary,
            help: self.help.map(|help| elide(&help, MAX_HELP)),
            source_code,
            span,
        }
    }
}

use super::limits::elide;

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{ConfigError, render};

    fn problem_at(text: &str, span: Range<usize>) -> Problem {
        Finding::new(span, "bad value", "here")
            .help("expected something else")
            .into_problem("cutover.toml", Arc::from(text))
    }

    #[test]
    fn a_place_on_a_long_line_is_shown_as_a_window() {
        let long = format!(
            "[app]\nname = \"{}\" # end\nother = 1\n",
            "x".repeat(70_000)
        );
        let at = 6 + 7 + 35_000;
        let problem = problem_at(&long, at..at + 40_000);
        assert_eq!(problem.line_column(), (2, 35_008));
        let out = render(&ConfigError::Invalid(Box::new(problem)));
        assert!(out.len() < 2_000, "{} bytes:\n{out}", out.len());
        assert!(out.contains("cutover.toml:2:35008"), "{out}");
        assert!(out.contains('…'), "{out}");
        assert!(out.contains("bad value"), "{out}");
    }

    #[test]
    fn a_place_next_to_a_long_line_is_shown_without_it() {
        let long = format!("a = \"{}\"\nb = 2\n", "y".repeat(10_000));
        let at = long.find("b = 2").expect("b");
        let out = render(&ConfigError::Invalid(Box::new(problem_at(
            &long,
            at..at + 1,
        ))));
        assert!(out.len() < 2_000, "{out}");
        assert!(out.contains("cutover.toml:2:1"), "{out}");
    }

    #[test]
    fn two_places_on_long_lines_are_both_shown() {
        let pad = " ".repeat(300);
        let text = format!("a = 1{pad}#\nb = 2{pad}#\n");
        let second = text.find("b = 2").expect("b") + 4;
        let problem = Finding::new(second..second + 1, "clash", "second here")
            .also(4..5, "first here")
            .help("change one")
            .into_problem("cutover.toml", Arc::from(text.as_str()));
        let out = render(&ConfigError::Invalid(Box::new(problem)));
        assert!(out.contains("second here"), "{out}");
        assert!(out.contains("first here"), "{out}");
        assert!(out.contains("cutover.toml:2:5"), "{out}");
        assert!(!out.contains("Failed"), "{out}");
    }

    #[test]
    fn short_lines_render_as_before() {
        let text = "[app]\nname = 1\n";
        let out = render(&ConfigError::Invalid(Box::new(problem_at(text, 13..14))));
        assert!(out.contains("name = 1"), "{out}");
        assert!(!out.contains('…'), "{out}");
    }

    #[test]
    fn long_messages_and_labels_are_capped() {
        let problem = Finding::new(0..1, "m".repeat(10_000), "l".repeat(10_000))
            .help("h".repeat(100_000))
            .into_problem("cutover.toml", Arc::from("x"));
        assert!(problem.message().chars().count() <= MAX_MESSAGE);
        assert!(problem.label().chars().count() <= MAX_LABEL);
        assert!(
            problem
                .help_text()
                .is_some_and(|h| h.chars().count() <= MAX_HELP)
        );
    }
}
