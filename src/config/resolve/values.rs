//! Resolving single values, shared by every section: names, hosts,
//! addresses, durations, counts and `${VAR}` expansion. Each reports a
//! finding and returns a fallback (or `None`) when the value is bad.

use std::net::SocketAddr;
use std::ops::{Range, RangeInclusive};
use std::time::Duration;

use serde_spanned::Spanned;

use super::Resolver;
use crate::config::defaults::duration_text;
use crate::config::expand::{self, ExpandError};
use crate::config::limits;
use crate::config::problem::Finding;
use crate::config::scalars::{
    ADDRESS_EXPECTED, DURATION_EXPECTED, RawAddress, RawCount, RawDuration,
};

impl Resolver<'_> {
    /// App, service and environment names appear in URLs, paths and commands.
    pub(super) fn name(&mut self, name: &Spanned<String>, what: &str) {
        let text = name.get_ref();
        let mut chars = text.chars();
        let valid = chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
            && chars.all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_');
        let shown = limits::elide(text, limits::MAX_NAME_LEN);
        if !valid {
            self.report(
                Finding::new(
                    name.span(),
                    format!("invalid {what} `{shown}`"),
                    "invalid name",
                )
                .help(format!(
                    "use letters, digits, `-` and `_`, starting with a letter or digit, at most {} characters",
                    limits::MAX_NAME_LEN
                )),
            );
        } else if text.len() > limits::MAX_NAME_LEN {
            // Valid names are ASCII: bytes are characters.
            self.report(
                Finding::new(
                    name.span(),
                    format!(
                        "{what} `{shown}` is {} characters long, more than {}",
                        text.len(),
                        limits::MAX_NAME_LEN
                    ),
                    "too long",
                )
                .help(format!(
                    "use a name of at most {} characters",
                    limits::MAX_NAME_LEN
                )),
            );
        }
    }

    /// At most `max` tables of a kind (`what`: "service"): more is reported
    /// at the first table over the limit, in file order.
    pub(super) fn at_most(&mut self, mut spans: Vec<Range<usize>>, what: &str, max: usize) {
        if spans.len() <= max {
            return;
        }
        spans.sort_by_key(|span| span.start);
        let count = spans.len();
        if let Some(first_over) = spans.get(max) {
            self.report(
                Finding::new(
                    first_over.clone(),
                    format!("{count} {what}s, more than {max}"),
                    format!("{what} number {}", max + 1),
                )
                .help(format!("a config has at most {max} {what}s")),
            );
        }
    }

    pub(super) fn host(&mut self, host: &Spanned<String>) -> Option<String> {
        let text = host.get_ref();
        let bad = text.is_empty()
            || text.contains("://")
            || text.contains(['/', '?', '#'])
            || text.chars().any(char::is_whitespace)
            || (text.contains(':') && !text.starts_with('['));
        if bad {
            self.report(
                Finding::new(
                    host.span(),
                    format!("invalid host `{text}`"),
                    "not a host name",
                )
                .help(
                    r#"expected a host name such as "shop.example", without scheme, port or path"#,
                ),
            );
            return None;
        }
        Some(text.clone())
    }

    pub(super) fn address(
        &mut self,
        address: &Spanned<RawAddress>,
        key: &str,
    ) -> Option<SocketAddr> {
        match address.get_ref().parse() {
            Ok(address) => Some(address),
            Err(reason) => {
                self.report(
                    Finding::new(
                        address.span(),
                        format!(
                            "`{key}` is not a valid address: \"{}\"",
                            limits::elide(&address.get_ref().0, 60)
                        ),
                        reason,
                    )
                    .help(format!("expected {ADDRESS_EXPECTED}")),
                );
                None
            }
        }
    }

    pub(super) fn duration(
        &mut self,
        value: Option<&Spanned<RawDuration>>,
        key: &str,
        default: Duration,
        positive: bool,
    ) -> Duration {
        let Some(value) = value else { return default };
        match value.get_ref().parse() {
            Ok(duration) if positive && duration.is_zero() => {
                self.report(
                    Finding::new(
                        value.span(),
                        format!("`{key}` must be greater than zero"),
                        "zero",
                    )
                    .help(format!("expected {DURATION_EXPECTED}")),
                );
                default
            }
            Ok(duration) if duration > limits::max_duration(key) => {
                let max = limits::max_duration(key);
                self.report(
                    Finding::new(
                        value.span(),
                        format!("`{key}` must be at most {}", duration_text(max)),
                        "too long",
                    )
                    .help(format!(
                        "expected {DURATION_EXPECTED}, at most {}",
                        duration_text(max)
                    )),
                );
                default
            }
            Ok(duration) => duration,
            Err(reason) => {
                self.report(
                    Finding::new(
                        value.span(),
                        format!(
                            "`{key}` is not a valid duration: \"{}\"",
                            limits::elide(&value.get_ref().0, 40)
                        ),
                        reason,
                    )
                    .help(format!("expected {DURATION_EXPECTED}")),
                );
                default
            }
        }
    }

    pub(super) fn count(
        &mut self,
        value: Option<&Spanned<RawCount>>,
        key: &str,
        default: u32,
        range: RangeInclusive<u32>,
    ) -> u32 {
        let Some(value) = value else { return default };
        let RawCount(number) = *value.get_ref();
        match u32::try_from(number) {
            Ok(count) if range.contains(&count) => count,
            _ => {
                let (min, max) = (range.start(), range.end());
                let (message, help) = if *max == u32::MAX {
                    (
                        format!("`{key}` must be at least {min}"),
                        format!("expected a whole number of at least {min}"),
                    )
                } else {
                    (
                        format!("`{key}` must be between {min} and {max}"),
                        format!("expected a whole number from {min} to {max}"),
                    )
                };
                self.report(
                    Finding::new(value.span(), message, format!("got {number}")).help(help),
                );
                default
            }
        }
    }

    /// Expands `${VAR}` in a string value; `None` (and a finding) when it cannot.
    pub(super) fn expand(&mut self, value: &Spanned<String>) -> Option<String> {
        let text = value.get_ref();
        match expand::expand(text, self.cx.lookup) {
            Ok(expanded) => Some(expanded),
            Err(ExpandError::Unset { .. }) if self.cx.unset_is_unknown => None,
            Err(err) => {
                let (at, message, label, help) = match err {
                    ExpandError::Unset { name, at } => (
                        at,
                        format!("environment variable `{name}` is not set"),
                        "not set".to_owned(),
                        format!("set `{name}` in cutover's environment, or write `$${{` for a literal `${{`"),
                    ),
                    ExpandError::NotUnicode { name, at } => (
                        at,
                        format!("environment variable `{name}` is not valid UTF-8"),
                        "not UTF-8".to_owned(),
                        "config values must be text".to_owned(),
                    ),
                    ExpandError::Unclosed { at } => (
                        at,
                        "`${` without a closing `}`".to_owned(),
                        "unclosed".to_owned(),
                        "write `${NAME}` to read an environment variable, or `$${` for a literal `${`".to_owned(),
                    ),
                    ExpandError::BadName { name, at } => (
                        at,
                        format!("`{name}` is not an environment variable name"),
                        "invalid name".to_owned(),
                        "a name is letters, digits and `_`, not starting with a digit; write `$${` for a literal `${`"
                            .to_owned(),
                    ),
                };
                let span = narrow(self.cx.source, value.span(), &text[at]);
                self.report(Finding::new(span, message, label).help(help));
                None
            }
        }
    }
}

/// The place of `needle` inside the string written at `span`, or all of `span`.
fn narrow(source: &str, span: Range<usize>, needle: &str) -> Range<usize> {
    source
        .get(span.clone())
        .and_then(|written| written.find(needle))
        .map_or(span.clone(), |at| {
            span.start + at..span.start + at + needle.len()
        })
}
