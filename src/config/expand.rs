//! `${VAR}` expansion in config values: `${NAME}` is replaced by the
//! environment variable `NAME`, `$${` is a literal `${`, and every other `$`
//! (and `{port}`-style placeholders) is left alone.

use std::env::VarError;
use std::ops::Range;

/// Reads an environment variable; `std::env::var` in production.
pub(crate) type Lookup<'a> = &'a dyn Fn(&str) -> Result<String, VarError>;

/// Why a value could not be expanded. Ranges are byte offsets into the value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum ExpandError {
    /// `${NAME}` names a variable that is not set.
    Unset { name: String, at: Range<usize> },
    /// `${NAME}` names a variable whose value is not UTF-8.
    NotUnicode { name: String, at: Range<usize> },
    /// `${` without a closing `}`.
    Unclosed { at: Range<usize> },
    /// `${…}` whose content is not a variable name.
    BadName { name: String, at: Range<usize> },
}

/// Expands `value`. Variables are looked up once each, left to right; the
/// first problem stops the expansion.
pub(crate) fn expand(value: &str, lookup: Lookup<'_>) -> Result<String, ExpandError> {
    let mut out = String::with_capacity(value.len());
    let mut rest = value;
    while let Some(dollar) = rest.find('$') {
        out.push_str(&rest[..dollar]);
        let offset = value.len() - rest.len() + dollar;
        let after = &rest[dollar..];
        if let Some(tail) = after.strip_prefix("$${") {
            out.push_str("${");
            rest = tail;
        } else if let Some(tail) = after.strip_prefix("${") {
            let Some(close) = tail.find('}') else {
                return Err(ExpandError::Unclosed {
                    at: offset..value.len(),
                });
            };
            let name = &tail[..close];
            let at = offset..offset + close + 3;
            if !is_variable_name(name) {
                return Err(ExpandError::BadName {
                    name: name.to_owned(),
                    at,
                });
            }
            match lookup(name) {
                Ok(found) => out.push_str(&found),
                Err(VarError::NotPresent) => {
                    return Err(ExpandError::Unset {
                        name: name.to_owned(),
                        at,
                    });
                }
                Err(VarError::NotUnicode(_)) => {
                    return Err(ExpandError::NotUnicode {
                        name: name.to_owned(),
                        at,
                    });
                }
            }
            rest = &tail[close + 1..];
        } else {
            out.push('$');
            rest = &after[1..];
        }
    }
    out.push_str(rest);
    Ok(out)
}

/// `[A-Za-z_][A-Za-z0-9_]*`.
pub(crate) fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|first| first.is_ascii_alphabetic() || first == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(name: &str) -> Result<String, VarError> {
        match name {
            "HOST" => Ok("db.local".to_owned()),
            "EMPTY" => Ok(String::new()),
            _ => Err(VarError::NotPresent),
        }
    }

    #[test]
    fn expands_variables_and_escapes() {
        let cases = [
            ("plain", "plain"),
            ("${HOST}", "db.local"),
            (
                "postgres://${HOST}:5432/${EMPTY}x",
                "postgres://db.local:5432/x",
            ),
            ("$${HOST}", "${HOST}"),
            ("$$${HOST}", "$${HOST}"),
            ("cost $5 and $", "cost $5 and $"),
            ("--port={port} {version}", "--port={port} {version}"),
            ("$$", "$$"),
        ];
        for (input, expected) in cases {
            assert_eq!(expand(input, &env).as_deref(), Ok(expected), "{input}");
        }
    }

    #[test]
    fn reports_problems_with_their_place() {
        assert_eq!(
            expand("a ${NOPE} b", &env),
            Err(ExpandError::Unset {
                name: "NOPE".to_owned(),
                at: 2..9
            })
        );
        assert_eq!(
            expand("x ${HOST", &env),
            Err(ExpandError::Unclosed { at: 2..8 })
        );
        assert_eq!(
            expand("${1A}", &env),
            Err(ExpandError::BadName {
                name: "1A".to_owned(),
                at: 0..5
            })
        );
        assert!(matches!(
            expand("${}", &env),
            Err(ExpandError::BadName { .. })
        ));
    }
}
