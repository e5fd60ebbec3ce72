//! Environment variables that look like secrets, for the `dockerfile` and
//! `compose` passes: a secret-looking name (`DB_PASSWORD`, `API_KEY`,
//! `STRIPE_SECRET`, `NPM_TOKEN`…) with a literal value, and evidence whose
//! snippet hides that value (a report never repeats a secret).

use crate::finding::Evidence;

/// Words in a variable's name that say it holds a secret.
const SECRET_WORDS: [&str; 11] = [
    "PASSWORD",
    "PASSWD",
    "SECRET",
    "TOKEN",
    "API_KEY",
    "APIKEY",
    "PRIVATE_KEY",
    "ACCESS_KEY",
    "CREDENTIALS",
    "AUTH_KEY",
    "SIGNING_KEY",
];

/// Suffixes that name something about a secret rather than the secret
/// (`POSTGRES_PASSWORD_FILE` is a path, the practice we recommend).
const NOT_SECRET_SUFFIXES: [&str; 9] = [
    "_FILE", "_PATH", "_DIR", "_URL", "_NAME", "_HEADER", "_TTL", "_TIMEOUT", "_LENGTH",
];

/// Whether a variable's name says it holds a secret.
pub fn is_secret_name(name: &str) -> bool {
    let upper = name.to_ascii_uppercase();
    SECRET_WORDS.iter().any(|w| upper.contains(w))
        && !NOT_SECRET_SUFFIXES.iter().any(|s| upper.ends_with(s))
}

/// Whether `value` is a literal a secret could be: not empty, not a
/// variable reference (`${DB_PASSWORD}`, `$X`), not a number or boolean.
pub fn is_literal_secret(value: &str) -> bool {
    let v = value.trim();
    !v.is_empty()
        && !v.contains('$')
        && !v.bytes().all(|b| b.is_ascii_digit())
        && !matches!(
            v.to_ascii_lowercase().as_str(),
            "true" | "false" | "yes" | "no"
        )
}

/// A URL with a literal password in it (`postgres://app:s3cret@db/app`),
/// returning the password.
pub fn url_password(value: &str) -> Option<&str> {
    let (_, rest) = value.split_once("://")?;
    let authority = rest.split(['/', '?', '#']).next()?;
    let (userinfo, _) = authority.rsplit_once('@')?;
    let (_, password) = userinfo.split_once(':')?;
    (!password.is_empty() && !password.contains('$')).then_some(password)
}

/// `evidence` with `secret` masked in its snippet.
pub fn redacted(mut evidence: Evidence, secret: &str) -> Evidence {
    if !secret.is_empty() {
        evidence.snippet = evidence.snippet.replace(secret, "****");
    }
    evidence
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_names() {
        for name in [
            "DB_PASSWORD",
            "api_key",
            "NPM_TOKEN",
            "SECRET_KEY_BASE",
            "AWS_SECRET_ACCESS_KEY",
        ] {
            assert!(is_secret_name(name), "{name}");
        }
        for name in [
            "POSTGRES_PASSWORD_FILE",
            "NODE_ENV",
            "TOKEN_TTL",
            "PORT",
            "PASSWORD_RESET_URL",
        ] {
            assert!(!is_secret_name(name), "{name}");
        }
    }

    #[test]
    fn literal_values_and_urls() {
        assert!(is_literal_secret("hunter2"));
        assert!(!is_literal_secret("${DB_PASSWORD}"));
        assert!(!is_literal_secret("${DB_PASSWORD:-dev}"));
        assert!(!is_literal_secret(""));
        assert!(!is_literal_secret("3600"));
        assert_eq!(
            url_password("postgres://app:s3cret@db:5432/app"),
            Some("s3cret")
        );
        assert_eq!(url_password("postgres://app:${PW}@db/app"), None);
        assert_eq!(url_password("redis://redis:6379/0"), None);
        assert_eq!(url_password("https://example.com/a@b"), None);
        let e = Evidence::at("f", "ENV DB_PASSWORD=hunter2\n", 1);
        assert_eq!(redacted(e, "hunter2").snippet, "ENV DB_PASSWORD=****");
    }
}
