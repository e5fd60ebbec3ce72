//! What clients may send: version labels and free text.
//!
//! A **version label** (`cutover deploy VERSION`, `POST /v1/deployments`,
//! `cutover logs --release`) is 1 to [`MAX_VERSION_LEN`] bytes of ASCII
//! letters, digits, `.`, `_`, `-` and `+`, and does not start with `-` (so it
//! can never reach an app's command line as an option such as `-rf` or
//! `--help`). [`check_version`] enforces it wherever a label enters.
//!
//! **Free text** from a client (`requested_by`, an abort's reason) is printed
//! later by `cutover history` and `status` and written to the daemon's log, so
//! [`clean_text`] replaces control characters (and whole ANSI escape
//! sequences) with `?`, keeps every printable character, and caps it at
//! [`MAX_TEXT_CHARS`] characters, before it is stored. Rows written by older
//! versions are cleaned again when printed ([`printable`]).

/// Longest version label, in bytes.
pub const MAX_VERSION_LEN: usize = 128;

/// Most characters of client free text (`requested_by`, reasons) kept; the
/// rest is cut and `…` marks the cut.
pub const MAX_TEXT_CHARS: usize = 200;

/// A version label that breaks the pattern, and why.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid version {shown}: {why}; a version is 1 to {MAX_VERSION_LEN} letters, digits, '.', '_', '+' or '-', not starting with '-'"
)]
pub struct VersionError {
    /// The label as given, quoted and escaped (and cut when long).
    shown: String,
    /// What rule it breaks.
    why: &'static str,
}

/// Checks a version label against the documented pattern.
pub fn check_version(version: &str) -> Result<(), VersionError> {
    let why = if version.is_empty() {
        Some("it is empty")
    } else if version.len() > MAX_VERSION_LEN {
        Some("it is too long")
    } else if version.starts_with('-') {
        Some("it starts with '-' (it would read as an option)")
    } else if !version
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"._+-".contains(&b))
    {
        Some("it has a character outside the pattern")
    } else {
        None
    };
    match why {
        None => Ok(()),
        Some(why) => Err(VersionError {
            shown: format!("{:?}", cut(version, 64)),
            why,
        }),
    }
}

/// Client free text made safe to store and print: controls and ANSI escape
/// sequences become `?`, and at most [`MAX_TEXT_CHARS`] characters are kept.
pub fn clean_text(text: &str) -> String {
    let clean = printable(text);
    if clean.chars().count() <= MAX_TEXT_CHARS {
        clean
    } else {
        let mut cut: String = clean.chars().take(MAX_TEXT_CHARS - 1).collect();
        cut.push('…');
        cut
    }
}

/// `text` with every control character replaced by `?` (an ANSI escape
/// sequence — ESC, `[`, parameters and final byte — becomes one `?`). Keeps
/// every printable character, whatever its script. For printing values that
/// may predate [`clean_text`].
pub fn printable(text: &str) -> String {
    replace_controls(text, "?")
}

/// A message rendered for a terminal made plain: ANSI escape sequences
/// removed (colours have no place in JSON), other controls `?`, lines kept.
pub fn without_escapes(text: &str) -> String {
    text.lines()
        .map(|line| replace_controls(line, ""))
        .collect::<Vec<_>>()
        .join("\n")
}

/// `text` with each escape sequence replaced by `escape` and every other
/// control by `?`.
fn replace_controls(text: &str, escape: &str) -> String {
    if !text.chars().any(is_unsafe) {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // CSI: ESC [ params... final (0x40..=0x7e); other escapes: ESC + one char.
            match chars.peek() {
                Some('[') => {
                    chars.next();
                    while let Some(&p) = chars.peek() {
                        chars.next();
                        if ('\u{40}'..='\u{7e}').contains(&p) {
                            break;
                        }
                    }
                }
                Some(&n) if !is_unsafe(n) => {
                    chars.next();
                }
                _ => {}
            }
            out.push_str(escape);
        } else if is_unsafe(c) {
            out.push('?');
        } else {
            out.push(c);
        }
    }
    out
}

/// [`printable`] line by line: a multi-line text (an event with an app's
/// output) keeps its lines, joined with `separator` (a newline and the
/// indentation of the caller's layout).
pub fn printable_lines(text: &str, separator: &str) -> String {
    text.lines()
        .map(printable)
        .collect::<Vec<_>>()
        .join(separator)
}

/// Controls (C0, DEL, C1) and the Unicode line/paragraph separators and
/// bidirectional overrides, which can also rewrite what a terminal shows.
fn is_unsafe(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}'
        )
}

fn cut(text: &str, max_chars: usize) -> String {
    if text.chars().count() <= max_chars {
        text.to_owned()
    } else {
        let mut s: String = text.chars().take(max_chars).collect();
        s.push('…');
        s
    }
}

/// An instant a client gives (`cutover lock --until`): RFC 3339
/// (`2026-12-04T18:00:00Z`, `2026-12-04T19:00:00+01:00`) or a duration
/// from `now` (`2h`, `30m`, `1d 4h`). It must be after `now`.
pub fn parse_until(text: &str, now: jiff::Timestamp) -> Result<jiff::Timestamp, String> {
    let text = text.trim();
    let at = match text.parse::<jiff::Timestamp>() {
        Ok(at) => at,
        Err(_) => {
            let duration = humantime::parse_duration(text).map_err(|_| {
                format!(
                    "`{}` is neither an RFC 3339 time (2026-12-04T18:00:00Z) nor a duration (2h, 30m)",
                    printable(text)
                )
            })?;
            let span = jiff::SignedDuration::try_from(duration)
                .map_err(|_| format!("`{}` is too long", printable(text)))?;
            now.checked_add(span)
                .map_err(|_| format!("`{}` is too long", printable(text)))?
        }
    };
    if at <= now {
        return Err(format!(
            "{at:.0} is not in the future: give a later time, or a duration such as 2h"
        ));
    }
    Ok(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn until_is_a_future_time_or_a_duration_from_now() {
        let now: jiff::Timestamp = "2026-12-04T10:00:00Z".parse().expect("time");
        assert_eq!(
            parse_until("2h", now).map(|t| t.to_string()),
            Ok("2026-12-04T12:00:00Z".to_owned())
        );
        assert_eq!(
            parse_until("2026-12-04T19:00:00+01:00", now).map(|t| t.to_string()),
            Ok("2026-12-04T18:00:00Z".to_owned())
        );
        assert!(
            parse_until("2026-12-04T09:00:00Z", now)
                .is_err_and(|e| e.contains("not in the future"))
        );
        assert!(
            parse_until("tomorrow", now).is_err_and(|e| e.contains("neither an RFC 3339 time"))
        );
        assert!(parse_until("0s", now).is_err());
    }

    #[test]
    fn version_labels_of_the_pattern_pass() {
        for ok in [
            "v1",
            "1.2.3",
            "1.2.3+build.5",
            "release_2024-01",
            "a",
            "V-",
            "0",
        ] {
            assert_eq!(check_version(ok), Ok(()), "{ok}");
        }
        assert_eq!(check_version(&"a".repeat(MAX_VERSION_LEN)), Ok(()));
    }

    #[test]
    fn version_labels_outside_the_pattern_are_refused_with_why() {
        let cases = [
            ("-rf", "starts with '-'"),
            ("--help", "starts with '-'"),
            ("-", "starts with '-'"),
            ("", "empty"),
            ("v 1", "outside the pattern"),
            ("v1;rm", "outside the pattern"),
            ("v1/../x", "outside the pattern"),
            ("v1\n", "outside the pattern"),
            ("vé", "outside the pattern"),
        ];
        for (label, why) in cases {
            let e = check_version(label).expect_err(label).to_string();
            assert!(e.contains(why), "{label:?}: {e}");
            assert!(e.contains("not starting with '-'"), "{e}");
        }
        let long = "a".repeat(MAX_VERSION_LEN + 1);
        let e = check_version(&long).expect_err("too long").to_string();
        assert!(e.contains("too long") && e.len() < 300, "{e}");
    }

    #[test]
    fn the_message_never_echoes_a_control_character() {
        let e = check_version("v\u{1b}[31m\nforged").expect_err("refused");
        assert!(!e.to_string().chars().any(char::is_control), "{e}");
    }

    #[test]
    fn clean_text_replaces_controls_and_escape_sequences() {
        assert_eq!(clean_text("alice@host"), "alice@host");
        assert_eq!(clean_text("a\nb\r\tc"), "a?b??c");
        assert_eq!(clean_text("\u{1b}[31mred\u{1b}[0m"), "?red?");
        assert_eq!(clean_text("x\u{1b}]0;title\u{7}"), "x?0;title?");
        assert_eq!(clean_text("bell\u{7}del\u{7f}c1\u{9b}"), "bell?del?c1?");
        assert_eq!(clean_text("rtl\u{202e}txt"), "rtl?txt");
        assert_eq!(clean_text("Zoë 東京 🚀"), "Zoë 東京 🚀");
        assert_eq!(clean_text("\u{1b}"), "?");
        assert_eq!(clean_text("\u{1b}["), "?");
    }

    #[test]
    fn without_escapes_drops_colours_and_keeps_lines() {
        assert_eq!(
            without_escapes("\u{1b}[31m×\u{1b}[0m bad\n  help:\tfix"),
            "× bad\n  help:?fix"
        );
    }

    #[test]
    fn printable_lines_keeps_lines_and_cleans_each() {
        assert_eq!(
            printable_lines("one\n\u{1b}[2Jtwo\r\nthree", "\n  "),
            "one\n  ?two\n  three"
        );
    }

    #[test]
    fn clean_text_caps_at_the_documented_length() {
        let long = "é".repeat(MAX_TEXT_CHARS * 3);
        let cut = clean_text(&long);
        assert_eq!(cut.chars().count(), MAX_TEXT_CHARS);
        assert!(cut.ends_with('…'));
        let exact = "x".repeat(MAX_TEXT_CHARS);
        assert_eq!(clean_text(&exact), exact);
    }
}
