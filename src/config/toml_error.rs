//! Turns an error from the TOML parser or from deserializing the raw structs
//! into a [`Finding`] that says, in cutover's words, what was wrong and what
//! was expected.
//!
//! toml reports serde's messages ("unknown field `nme`, expected `name`");
//! they are reworded here ("unknown key `nme`", help: "did you mean `name`?").

use super::problem::Finding;
use super::suggest;

/// The finding for a toml error in `source`, at the span toml reports (or
/// the start of the file).
pub(crate) fn finding(err: &toml::de::Error, source: &str) -> Finding {
    let span = err.span().unwrap_or(0..0);
    let message = err.message().trim();
    let for_key = match key_before(source, span.start) {
        Some(key) => format!(" for `{key}`"),
        None => String::new(),
    };

    if let Some(rest) = message.strip_prefix("unknown field `") {
        let (key, tail) = rest.split_once('`').unwrap_or((rest, ""));
        let known = backticked(tail);
        let help = match suggest::closest(key, known.iter().copied()) {
            Some(close) => format!("did you mean `{close}`? {}", valid_keys(&known)),
            None => valid_keys(&known),
        };
        return Finding::new(span, format!("unknown key `{key}`"), "unknown key").help(help);
    }
    if let Some(rest) = message.strip_prefix("invalid type: ") {
        let (found, expected) = split_expected(rest);
        return Finding::new(
            span,
            format!("wrong type{for_key}"),
            format!("found {}", reword(found)),
        )
        .help(format!("expected {}", reword(expected)));
    }
    if let Some(rest) = message
        .strip_prefix("invalid value: ")
        .or_else(|| message.strip_prefix("invalid length "))
    {
        let (found, expected) = split_expected(rest);
        return Finding::new(
            span,
            format!("invalid value{for_key}"),
            format!("found {}", reword(found)),
        )
        .help(format!("expected {}", reword(expected)));
    }
    if let Some(rest) = message.strip_prefix("missing field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        return Finding::new(span, format!("missing key `{key}`"), "in this table")
            .help(format!("add `{key} = …`"));
    }
    if let Some(rest) = message.strip_prefix("duplicate field `") {
        let key = rest.split('`').next().unwrap_or(rest);
        return Finding::new(span, format!("duplicate key `{key}`"), "written again here")
            .help("each key may appear only once in a table");
    }

    // Everything else is TOML syntax.
    let (what, expected) = split_expected(message);
    let label = if what == "duplicate key" {
        "written again here"
    } else {
        "here"
    };
    let help = match what {
        "string values must be quoted" => r#"write text in quotes, e.g. name = "hello""#.to_owned(),
        "duplicate key" => "each key may appear only once in a table".to_owned(),
        _ if !expected.is_empty() => format!("expected {expected}"),
        _ => "see https://toml.io for the syntax".to_owned(),
    };
    Finding::new(span, format!("invalid TOML: {what}"), label).help(help)
}

/// The key a value at `offset` is written for: `replicas` in `replicas = "two"`
/// (also inside an inline table). `None` inside arrays and elsewhere.
fn key_before(source: &str, offset: usize) -> Option<&str> {
    let line_start = source.get(..offset)?.rfind('\n').map_or(0, |i| i + 1);
    let before = source[line_start..offset]
        .trim_end()
        .strip_suffix('=')?
        .trim_end();
    // After the last character that cannot be in a bare key, which may be
    // more than one byte long (`é`).
    let start = before
        .char_indices()
        .rev()
        .find(|&(_, c)| !(c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'))
        .map_or(0, |(i, c)| i + c.len_utf8());
    let key = &before[start..];
    (!key.is_empty()).then_some(key)
}

/// `"string \"x\", expected u32"` → (`string "x"`, `u32`).
fn split_expected(text: &str) -> (&str, &str) {
    text.split_once(", expected ").unwrap_or((text, ""))
}

/// The words in backticks in `text`.
fn backticked(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

fn valid_keys(known: &[&str]) -> String {
    if known.is_empty() {
        return "this table takes no keys".to_owned();
    }
    let list: Vec<String> = known.iter().map(|key| format!("`{key}`")).collect();
    format!("valid keys here: {}", list.join(", "))
}

/// serde's names for TOML's types.
fn reword(text: &str) -> String {
    if text.starts_with("struct ") {
        return "a table".to_owned();
    }
    match text {
        "a map" | "map" => "a table".to_owned(),
        "a sequence" | "sequence" => "an array".to_owned(),
        "a borrowed string" => "a string".to_owned(),
        other => other.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// Found by `scripts/fuzz` (target `config`): a non-ASCII character
    /// right before the key of a bad value made `key_before` slice inside
    /// it and panic.
    #[test]
    fn a_multibyte_character_before_a_key_is_an_error_not_a_panic() {
        for source in [
            "[service.web]\naé= = [\"api\"]\n",
            "[service.web]\nkind = \"web\"\nrépliques\u{fffd}x = \"two\"\n",
            "é = = 1\n",
        ] {
            let err = crate::config::parse(source, Path::new("cutover.toml"))
                .expect_err("the config is invalid");
            let shown = crate::config::render(&err);
            assert!(shown.contains("cutover.toml:"), "no place in: {shown}");
        }
    }

    #[test]
    fn the_key_before_a_value_ends_at_a_multibyte_character() {
        assert_eq!(super::key_before("aé= =", 5), None);
        assert_eq!(super::key_before("é replicas =", 13), Some("replicas"));
        assert_eq!(super::key_before("ébc =", 6), Some("bc"));
    }
}
