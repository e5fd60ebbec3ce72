//! What a secret looks like: private-key blocks, known token formats, the
//! Shannon entropy of a value, placeholders that are not secrets, and the
//! redaction every snippet goes through (at most the first four characters
//! of a value, then `***`).

use std::sync::LazyLock;

use regex::Regex;

/// A known token format.
pub struct TokenKind {
    pub name: &'static str,
    pub pattern: &'static str,
}

/// Token formats found anywhere in text files.
pub const TOKENS: &[TokenKind] = &[
    TokenKind {
        name: "an AWS access key id",
        pattern: r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b",
    },
    TokenKind {
        name: "a GitHub token",
        pattern: r"\bgh[pousr]_[A-Za-z0-9]{36,255}\b",
    },
    TokenKind {
        name: "a GitHub fine-grained token",
        pattern: r"\bgithub_pat_[A-Za-z0-9_]{60,255}\b",
    },
    TokenKind {
        name: "a Slack token",
        pattern: r"\bxox[baprs]-[A-Za-z0-9-]{10,250}",
    },
    TokenKind {
        name: "a Stripe live key",
        pattern: r"\b[sr]k_live_[A-Za-z0-9]{20,250}\b",
    },
    TokenKind {
        name: "a Google API key",
        pattern: r"\bAIza[0-9A-Za-z_\-]{35}",
    },
    TokenKind {
        name: "a JSON Web Token",
        pattern: r"\beyJ[A-Za-z0-9_-]{10,}\.eyJ[A-Za-z0-9_-]{10,}\.[A-Za-z0-9_-]{10,}",
    },
];

static TOKEN_RES: LazyLock<Vec<Regex>> = LazyLock::new(|| {
    TOKENS
        .iter()
        .map(|t| Regex::new(t.pattern).expect("TOKENS are valid regexes"))
        .collect()
});

static ANY_TOKEN: LazyLock<Regex> = LazyLock::new(|| {
    let all: Vec<String> = TOKENS
        .iter()
        .map(|t| format!("(?:{})", t.pattern))
        .collect();
    Regex::new(&all.join("|")).expect("TOKENS are valid regexes")
});

/// A token found: its kind, byte range in the text.
pub struct TokenHit {
    pub kind: &'static str,
    pub start: usize,
    pub end: usize,
}

/// Every known token in `text`.
pub fn tokens(text: &str) -> Vec<TokenHit> {
    ANY_TOKEN
        .find_iter(text)
        .map(|m| {
            let kind = TOKENS
                .iter()
                .zip(TOKEN_RES.iter())
                .find(|(_, re)| re.is_match(m.as_str()))
                .map(|(t, _)| t.name)
                .unwrap_or("a token");
            TokenHit {
                kind,
                start: m.start(),
                end: m.end(),
            }
        })
        .collect()
}

static KEY_HEADER: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"-----BEGIN ((?:[A-Z0-9]+ )*)PRIVATE KEY( BLOCK)?-----")
        .expect("KEY_HEADER is a valid regex")
});

/// The byte offsets of private-key blocks in `text`: a `BEGIN … PRIVATE KEY`
/// header followed by a body (a code line that only names the header, as
/// PEM-writing code does, is not a key).
pub fn private_keys(text: &str) -> Vec<usize> {
    if !text.contains("PRIVATE KEY") {
        return Vec::new();
    }
    KEY_HEADER
        .find_iter(text)
        .filter(|m| has_key_body(&text[m.end()..]))
        .map(|m| m.start())
        .collect()
}

fn has_key_body(after: &str) -> bool {
    let window: String = after.chars().take(400).collect();
    let window = window.replace("\\n", "\n").replace("\\r", "\n");
    let mut run = 0;
    for c in window.chars() {
        if c.is_ascii_alphanumeric() || c == '+' || c == '/' || c == '=' {
            run += 1;
            if run >= 40 {
                return true;
            }
        } else {
            run = 0;
        }
    }
    false
}

/// Shannon entropy of `s` in bits per character.
pub fn entropy(s: &str) -> f64 {
    let mut counts = [0u32; 256];
    let mut n = 0u32;
    for b in s.bytes() {
        counts[usize::from(b)] += 1;
        n += 1;
    }
    if n == 0 {
        return 0.0;
    }
    let n = f64::from(n);
    counts
        .iter()
        .filter(|c| **c > 0)
        .map(|c| {
            let p = f64::from(*c) / n;
            -p * p.log2()
        })
        .sum()
}

static SECRET_KEY_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)(secret|passw(or)?d|pwd|token|api[_-]?key|apikey|access[_-]?key|private[_-]?key|credential|auth[_-]?key|signing[_-]?key|encryption[_-]?key|master[_-]?key|salt|dsn)",
    )
    .expect("SECRET_KEY_NAME is a valid regex")
});

static NOT_SECRET_KEY_NAME: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"(?i)([_.-](file|path|env|name|names|id|url|header|length|len|ttl|expiry|expires|expiration|timeout|type|field|prefix|min|max|hash|ref|version|policy|rotation|count|enabled|required)$|^(token|password|secret)s?[_-]?(url|endpoint|uri|type)|^key[_-]?(file|path)|(_|^)is[_-])",
    )
    .expect("NOT_SECRET_KEY_NAME is a valid regex")
});

/// Whether a key name says its value is a secret (`SECRET_KEY`,
/// `db_password`, `apiKey`), and not a file, name or setting about one.
pub fn secret_key_name(key: &str) -> bool {
    SECRET_KEY_NAME.is_match(key) && !NOT_SECRET_KEY_NAME.is_match(key)
}

/// Whether `value` is a placeholder or a reference rather than a secret:
/// `${VAR}`, `{{ var }}`, `changeme`, `<your-key>`, `xxx`, `example`, …
pub fn placeholder(value: &str) -> bool {
    let v = value.trim().to_ascii_lowercase();
    if v.is_empty() {
        return true;
    }
    const MARKERS: [&str; 22] = [
        "${",
        "{{",
        "$(",
        "%(",
        "<",
        "changeme",
        "change-me",
        "change_me",
        "change.me",
        "xxx",
        "example",
        "placeholder",
        "your",
        "dummy",
        "redacted",
        "***",
        "replace",
        "todo",
        "fixme",
        "...",
        "…",
        "fake",
    ];
    if MARKERS.iter().any(|m| v.contains(m)) {
        return true;
    }
    const REFS: [&str; 9] = [
        "$",
        "process.env",
        "os.environ",
        "os.getenv",
        "env(",
        "env[",
        "getenv",
        "vault:",
        "secret:",
    ];
    if REFS.iter().any(|r| v.starts_with(r)) {
        return true;
    }
    matches!(
        v.as_str(),
        "true"
            | "false"
            | "null"
            | "none"
            | "nil"
            | "secret"
            | "password"
            | "required"
            | "optional"
    )
}

/// Whether `value` is a high-entropy secret candidate: long enough, varied
/// enough, not a placeholder, a path or a URL.
pub fn high_entropy(value: &str) -> bool {
    let v = value.trim();
    v.chars().count() >= 16
        && !v.contains(' ')
        && !placeholder(v)
        && !v.starts_with('/')
        && !v.starts_with("./")
        && !v.contains("://")
        && entropy(v) >= 3.5
}

/// `line` with `value` replaced by its first four characters and `***`,
/// cut as snippets are.
pub fn redact(line: &str, value: &str) -> String {
    let shown: String = value.chars().take(4).collect();
    let line = if value.is_empty() {
        line.to_string()
    } else {
        line.replace(value, &format!("{shown}***"))
    };
    crate::finding::clip(&line)
}

/// A private key's header line, with anything after the header (a key
/// written on one line, as in JSON) replaced by `***`.
pub fn redact_key_line(line: &str) -> String {
    match KEY_HEADER.find(line) {
        Some(m) if line[m.end()..].trim().len() > 2 => {
            crate::finding::clip(&format!("{}***", &line[..m.end()]))
        }
        _ => crate::finding::clip(line),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entropy_of_known_strings() {
        assert_eq!(entropy(""), 0.0);
        assert_eq!(entropy("aaaa"), 0.0);
        assert!((entropy("abcd") - 2.0).abs() < 1e-9);
        assert!(entropy("q8Zp3LxR7vN2mK9tW4yB6cH1") > 4.0);
        assert!(entropy("passwordpassword") < 3.5);
    }

    #[test]
    fn tokens_by_shape() {
        // Built at run time so this file is not itself a finding.
        let aws = format!("{}{}", "AKIA", "Q3ZV7XK2LM4NP5RT");
        let gh = format!("{}{}", "ghp_", "a".repeat(36));
        let text = format!("key = {aws}\nother\ntoken: {gh}\nnot: AKIA123\n");
        let hits = tokens(&text);
        let kinds: Vec<&str> = hits.iter().map(|h| h.kind).collect();
        assert_eq!(kinds, ["an AWS access key id", "a GitHub token"]);
        assert_eq!(&text[hits[0].start..hits[0].end], aws);
    }

    #[test]
    fn private_keys_need_a_body() {
        let header = format!("-----BEGIN {}PRIVATE KEY-----", "RSA ");
        let body = "MIIEowIBAAKCAQEA7bq9Zx1k3Qw8Hf6tYpL0sN2vR4mC5jU9eA1bD3gK7hX2zT6y";
        let key = format!("x\n{header}\n{body}\n");
        assert_eq!(private_keys(&key).len(), 1);
        let code = format!("out.write(\"{header}\\n\")\nlet x = 1;\n");
        assert!(private_keys(&code).is_empty());
        let json = format!("{{\"private_key\": \"{header}\\n{body}\\n\"}}");
        assert_eq!(private_keys(&json).len(), 1);
        assert_eq!(
            redact_key_line(&json),
            format!("{{\"private_key\": \"{header}***")
        );
    }

    #[test]
    fn placeholders_and_key_names() {
        for v in [
            "${SECRET}",
            "changeme",
            "<your-api-key>",
            "xxxxxxxx",
            "{{ vault_pw }}",
            "$DB_PASSWORD",
            "",
        ] {
            assert!(placeholder(v), "{v}");
        }
        assert!(!placeholder("q8Zp3LxR7vN2mK9tW4yB6cH1"));
        assert!(secret_key_name("SECRET_KEY"));
        assert!(secret_key_name("db_password"));
        assert!(secret_key_name("apiKey"));
        assert!(!secret_key_name("password_file"));
        assert!(!secret_key_name("SECRET_NAME"));
        assert!(!secret_key_name("token_url"));
        assert!(!secret_key_name("name"));
    }

    #[test]
    fn redaction_keeps_four_characters() {
        assert_eq!(
            redact(
                "SECRET_KEY=q8Zp3LxR7vN2mK9tW4yB6cH1",
                "q8Zp3LxR7vN2mK9tW4yB6cH1"
            ),
            "SECRET_KEY=q8Zp***"
        );
    }
}
