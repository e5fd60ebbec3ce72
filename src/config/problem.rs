//! One thing wrong at one place in `cutover.toml`: a message, the span it is
//! about (with a caret when rendered), a label, optional further labelled
//! spans, and a help line saying what was expected.
//!
//! Checks produce [`Finding`]s, which know nothing of the file; the loader
//! turns them into [`Problem`]s by attaching the named source once all
//! checks have run.

use std::ops::Range;

use miette::{Diagnostic, LabeledSpan, NamedSource, SourceSpan};
use thiserror::Error;

/// A problem at a place in the config file. Rendered by miette as
/// `cutover.toml:12:3` with the offending text underlined.
#[derive(Debug, Clone, Error, Diagnostic)]
#[error("{message}")]
pub struct Problem {
    message: String,
    #[source_code]
    source_code: NamedSource<String>,
    #[label(primary, "{label}")]
    span: SourceSpan,
    label: String,
    #[label(collection)]
    secondary: Vec<LabeledSpan>,
    #[help]
    help: Option<String>,
}

impl Problem {
    /// What is wrong, in one line.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// The byte range in the file the problem is about.
    pub fn span(&self) -> Range<usize> {
        self.span.offset()..self.span.offset() + self.span.len()
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
        let text = self.source_code.inner();
        let start = self.span.offset().min(text.len());
        let before = &text[..floor_char_boundary(text, start)];
        let line = before.matches('\n').count() + 1;
        let column = before.rsplit('\n').next().map_or(0, |l| l.chars().count()) + 1;
        (line, column)
    }
}

fn floor_char_boundary(text: &str, mut index: usize) -> usize {
    while !text.is_char_boundary(index) {
        index -= 1;
    }
    index
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

    /// Attaches the file.
    pub fn into_problem(self, source_code: NamedSource<String>) -> Problem {
        let len = source_code.inner().len();
        let clamp = |span: Range<usize>| -> SourceSpan {
            let start = span.start.min(len);
            let end = span.end.clamp(start, len);
            (start..end).into()
        };
        Problem {
            message: self.message,
            span: clamp(self.span),
            label: self.label,
            secondary: self
                .secondary
                .into_iter()
                .map(|(span, label)| LabeledSpan::new_with_span(Some(label), clamp(span)))
                .collect(),
            help: self.help,
            source_code,
        }
    }
}
