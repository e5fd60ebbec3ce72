//! Keeping secrets out of what cutover prints: passwords in URLs
//! ([`redact_url`]: `user:password@` and query parameters such as
//! `?password=`, `?sslpassword=`, `?token=`), URLs inside command-line words
//! ([`redact_urls_in`]), and the values of a service's `env`
//! ([`REDACTED`]). Used by `cutover check` (text and `--json`), the process
//! driver's header line at the top of each instance log, and every message
//! that names a database.
//!
//! URLs are taken apart with the `url` crate, never by hand; a word that is
//! not a URL is left as it is.

use url::Url;

/// What a secret is shown as.
pub const REDACTED: &str = "***";

/// Query parameters whose value is a secret: any whose name (ASCII case
/// ignored) contains one of these.
const SECRET_PARAMS: [&str; 6] = ["password", "passwd", "pwd", "token", "secret", "key"];

/// Whether a query parameter (or variable) called `name` holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    SECRET_PARAMS.iter().any(|s| name.contains(s))
}

/// `url` with its password and the values of secret query parameters
/// replaced by `***`: `postgres://u:p@h/db?sslpassword=x&sslmode=require` →
/// `postgres://u:***@h/db?sslpassword=***&sslmode=require`. Text that is not
/// a URL, or a URL with nothing secret, comes back unchanged.
pub fn redact_url(url: &str) -> String {
    let Ok(mut parsed) = Url::parse(url) else {
        return url.to_owned();
    };
    let mut changed = false;
    if parsed.password().is_some() {
        // Fails only for URLs that cannot have credentials (no host).
        if parsed.set_password(Some(REDACTED)).is_ok() {
            changed = true;
        }
    }
    if parsed.query_pairs().any(|(k, _)| is_secret_name(&k)) {
        let pairs: Vec<(String, String)> = parsed
            .query_pairs()
            .map(|(k, v)| {
                let v = if is_secret_name(&k) {
                    REDACTED.to_owned()
                } else {
                    v.into_owned()
                };
                (k.into_owned(), v)
            })
            .collect();
        parsed.query_pairs_mut().clear().extend_pairs(pairs);
        changed = true;
    }
    if changed {
        // `*` is kept as it is in userinfo and query by the URL standard;
        // undo only the encoding of our own marker, in case.
        parsed.to_string().replace("%2A%2A%2A", REDACTED)
    } else {
        url.to_owned()
    }
}

/// `text` with every URL in it (`scheme://…` up to the next whitespace)
/// passed through [`redact_url`]: for a command-line word such as
/// `--db=postgres://u:p@h/db`.
pub fn redact_urls_in(text: &str) -> String {
    if !text.contains("://") {
        return text.to_owned();
    }
    let mut out = String::with_capacity(text.len());
    let mut rest = text;
    while let Some(sep) = rest.find("://") {
        // The scheme: letters, digits, `+`, `-`, `.` before `://`, starting
        // with a letter.
        let before = &rest[..sep];
        let scheme_len = before
            .chars()
            .rev()
            .take_while(|c| c.is_ascii_alphanumeric() || "+-.".contains(*c))
            .map(char::len_utf8)
            .sum::<usize>();
        let mut start = sep - scheme_len;
        while start < sep && !before[start..].starts_with(|c: char| c.is_ascii_alphabetic()) {
            start += before[start..].chars().next().map_or(1, char::len_utf8);
        }
        let end = rest[sep..]
            .find(|c: char| c.is_whitespace() || c == '"' || c == '\'')
            .map_or(rest.len(), |i| sep + i);
        out.push_str(&rest[..start]);
        if start == sep {
            // No scheme: not a URL.
            out.push_str(&rest[start..end]);
        } else {
            out.push_str(&redact_url(&rest[start..end]));
        }
        rest = &rest[end..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn passwords_in_urls_are_hidden() {
        let cases = [
            (
                "postgres://u:p@h:5432/db?sslmode=require",
                "postgres://u:***@h:5432/db?sslmode=require",
            ),
            ("postgres://u@h/db", "postgres://u@h/db"),
            ("postgres://h/db", "postgres://h/db"),
            ("sqlite:///srv/a.db", "sqlite:///srv/a.db"),
            ("postgres://u:p@ss@h/db", "postgres://u:***@h/db"),
            (
                "postgres://h/db?user=u&password=hunter2&sslmode=require",
                "postgres://h/db?user=u&password=***&sslmode=require",
            ),
            (
                "postgres://h/db?sslpassword=x&SSLKEY=/k.pem",
                "postgres://h/db?sslpassword=***&SSLKEY=***",
            ),
            (
                "https://api.example/v1?access_token=abc&client_secret=s&q=1",
                "https://api.example/v1?access_token=***&client_secret=***&q=1",
            ),
            (
                "redis://:onlypass@cache:6379/0",
                "redis://:***@cache:6379/0",
            ),
            ("not a url", "not a url"),
            ("", ""),
        ];
        for (url, expected) in cases {
            assert_eq!(redact_url(url), expected, "{url}");
        }
    }

    #[test]
    fn a_redacted_url_never_contains_the_secret() {
        for secret in ["hunter2", "p%40ss", "s3cr3t!", "ünï"] {
            let url = format!("postgres://user:{secret}@db.internal/app?token={secret}");
            let shown = redact_url(&url);
            assert!(!shown.contains(secret), "{shown}");
            assert!(shown.contains("user:***@db.internal"), "{shown}");
        }
    }

    #[test]
    fn urls_inside_words_are_found() {
        assert_eq!(
            redact_urls_in("--db=postgres://app:pw@db/app"),
            "--db=postgres://app:***@db/app"
        );
        assert_eq!(
            redact_urls_in("a http://u:p@h/x b https://h/?token=t c"),
            "a http://u:***@h/x b https://h/?token=*** c"
        );
        assert_eq!(redact_urls_in("--port=8080"), "--port=8080");
        assert_eq!(redact_urls_in("://nothing"), "://nothing");
        assert_eq!(redact_urls_in("x-1://u:p@h"), "x-1://u:***@h");
        assert_eq!(redact_urls_in("é://u:p@h"), "é://u:p@h");
    }

    #[test]
    fn secret_names() {
        for name in [
            "password",
            "PGPASSWORD",
            "sslpassword",
            "api_key",
            "Token",
            "SECRET_X",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in ["sslmode", "user", "host", "port"] {
            assert!(!is_secret_name(name), "{name}");
        }
    }
}
