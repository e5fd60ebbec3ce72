//! Secrets committed to the repository: real `.env` files with values,
//! private keys, known token formats (AWS, GitHub, Slack, Stripe, Google,
//! JWTs) in any text file, and high-entropy values under secret-like keys in
//! configuration files. Every snippet is redacted: a value shows at most its
//! first four characters, then `***`. Also the environment facts that come
//! from env files (templates, several environments, `.gitignore`).
//!
//! Keys and tokens in test-data folders (`test/`, `tests/`, `testdata/`,
//! `fixtures/`, `spec/`, `examples/`) or marked as examples (AWS's
//! documented `…EXAMPLE` keys, a line saying fake/dummy/example) are
//! reported once, as low: they are probably not real, but a scanner in CI
//! will flag them too and someone should confirm it.

mod envs;
mod scan;

use std::collections::HashSet;
use std::sync::LazyLock;

use regex::Regex;

use super::{Context, RuleInfo};
use crate::finding::{Area, Evidence, Severity};
use crate::repo::{RepoFile, line_of};

pub const ENV_FILE: RuleInfo = RuleInfo {
    id: "secrets/env-file",
    area: Area::Security,
    severity: Severity::High,
    title: "Committed .env file with secret values",
    why: "A value in git is in every clone, fork and CI cache forever; removing the file later does not remove it from history.",
    fix: "Keep real values in the deploy environment or a secret store (`${VAR}` in cutover.toml reads them from the environment).",
    cutover: Some(
        "[service.web]\nenv = { SECRET_KEY = \"${SECRET_KEY}\" }   # read from the deploy environment, never written here",
    ),
};

pub const PRIVATE_KEY: RuleInfo = RuleInfo {
    id: "secrets/private-key",
    area: Area::Security,
    severity: Severity::High,
    title: "Private key committed",
    why: "Whoever reads the repository can impersonate the server, sign as the owner or log in where the key is authorised.",
    fix: "Remove the key from git (and from history with git filter-repo), revoke it and issue a new one, and give it to the deploy through a secret store or the environment.",
    cutover: None,
};

pub const TOKEN: RuleInfo = RuleInfo {
    id: "secrets/token",
    area: Area::Security,
    severity: Severity::High,
    title: "Access token committed",
    why: "Tokens of known formats are found by bots within minutes of a push to a public repository; a private one leaks with every clone.",
    fix: "Revoke the token at its provider now, remove it from the file (and history), and read it from the environment or the CI secret store instead.",
    cutover: None,
};

pub const HIGH_ENTROPY: RuleInfo = RuleInfo {
    id: "secrets/high-entropy",
    area: Area::Security,
    severity: Severity::Medium,
    title: "Secret-like value in a configuration file",
    why: "A long random value under a key named like a secret (password, token, secret_key) is most likely a real credential.",
    fix: "Replace the value with a reference to the environment (`${SECRET_KEY}`, `os.environ[\"SECRET_KEY\"]`), rotate it, and keep the real value in the deploy environment or a secret store.",
    cutover: None,
};

pub const SAMPLE: RuleInfo = RuleInfo {
    id: "secrets/sample-secret",
    area: Area::Security,
    severity: Severity::Low,
    title: "Test or example key or token in the repository",
    why: "It is in a test-data folder or marked as an example, so probably not real; confirm it, or a secret scanner in CI will keep flagging it.",
    fix: "Confirm the value is not a real credential; generate test keys at test time, or list the file in the secret scanner's allow-list (.gitleaks.toml) so real leaks stand out.",
    cutover: None,
};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[&ENV_FILE, &PRIVATE_KEY, &TOKEN, &HIGH_ENTROPY, &SAMPLE];

/// Folders that hold test data.
const TEST_DIRS: [&str; 11] = [
    "test",
    "tests",
    "__tests__",
    "testdata",
    "test-data",
    "test_data",
    "fixtures",
    "__fixtures__",
    "spec",
    "examples",
    "example",
];

/// Extensions never read: binaries, media, archives, minified bundles.
const SKIP_EXT: [&str; 30] = [
    "png", "jpg", "jpeg", "gif", "ico", "webp", "svg", "pdf", "zip", "gz", "tgz", "bz2", "xz",
    "zst", "jar", "war", "class", "so", "dll", "dylib", "exe", "o", "a", "woff", "woff2", "ttf",
    "eot", "mp4", "mp3", "map",
];

/// Lock files: full of hashes, never secrets.
const LOCK_FILES: [&str; 12] = [
    "package-lock.json",
    "npm-shrinkwrap.json",
    "yarn.lock",
    "pnpm-lock.yaml",
    "go.sum",
    "Cargo.lock",
    "poetry.lock",
    "Pipfile.lock",
    "composer.lock",
    "Gemfile.lock",
    "uv.lock",
    "bun.lock",
];

/// Configuration files whose secret-like keys are checked for high-entropy values.
fn config_file(file: &RepoFile) -> bool {
    const EXT: [&str; 10] = [
        "yml",
        "yaml",
        "json",
        "toml",
        "ini",
        "properties",
        "cfg",
        "conf",
        "env",
        "tfvars",
    ];
    const NAMES: [&str; 8] = [
        "settings.py",
        "local_settings.py",
        "production.py",
        "config.js",
        "config.ts",
        "settings.js",
        "config.rb",
        ".npmrc",
    ];
    let lower = file.name.to_ascii_lowercase();
    let compose = lower.starts_with("docker-compose") || lower.starts_with("compose.");
    !compose && (EXT.contains(&file.ext().as_str()) || NAMES.contains(&lower.as_str()))
}

fn skipped(file: &RepoFile) -> bool {
    LOCK_FILES.contains(&file.name.as_str())
        || file.name.ends_with(".lock")
        || file.name.contains(".min.")
        || SKIP_EXT.contains(&file.ext().as_str())
}

fn in_test_dir(file: &RepoFile) -> bool {
    TEST_DIRS.iter().any(|d| file.in_dir(d))
}

/// Whether a line or value says it is an example.
fn marked_example(line: &str, value: &str) -> bool {
    let l = line.to_ascii_lowercase();
    value.contains("EXAMPLE")
        || ["example", "fake", "dummy", "not a real", "not-real"]
            .iter()
            .any(|w| l.contains(w))
}

/// `key = value`, `key: value`, `"key": "value"`, `KEY=value`.
static ASSIGNMENT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"^\s*(?:export\s+)?["']?([A-Za-z0-9_.\-]+)["']?\s*(?:=|:)\s*[bru]?["']?([^"'\s,;#]+)["']?"#)
        .expect("ASSIGNMENT is a valid regex")
});

/// Runs the pass.
pub fn run(cx: &mut Context<'_>) {
    let covered = envs::run(cx);
    let mut reported: HashSet<(String, usize)> = covered.into_iter().collect();
    let files: Vec<&RepoFile> = cx.repo.files().iter().filter(|f| !skipped(f)).collect();
    for file in files {
        let Some(text) = cx.repo.text(file) else {
            continue;
        };
        let test_data = in_test_dir(file);
        keys(cx, file, text, test_data, &mut reported);
        tokens(cx, file, text, test_data, &mut reported);
        if config_file(file) && envs::env_file(&file.name).is_none() {
            entropy(cx, file, text, &mut reported);
        }
    }
}

fn evidence(path: &str, line: usize, snippet: String) -> Evidence {
    Evidence {
        path: path.to_string(),
        line,
        column: 0,
        snippet,
    }
}

fn keys(
    cx: &mut Context<'_>,
    file: &RepoFile,
    text: &str,
    test_data: bool,
    reported: &mut HashSet<(String, usize)>,
) {
    // One finding per file: the first key.
    let Some(offset) = scan::private_keys(text).into_iter().next() else {
        return;
    };
    let line = line_of(text, offset);
    if !reported.insert((file.path.clone(), line)) {
        return;
    }
    let snippet = scan::redact_key_line(text.lines().nth(line - 1).unwrap_or_default());
    let ev = evidence(&file.path, line, snippet);
    if test_data {
        cx.find(
            &SAMPLE,
            ev,
            format!("{} holds a private key in a test-data folder.", file.path),
        );
    } else {
        cx.find(
            &PRIVATE_KEY,
            ev,
            format!("{} holds a private key.", file.path),
        );
    }
}

fn tokens(
    cx: &mut Context<'_>,
    file: &RepoFile,
    text: &str,
    test_data: bool,
    reported: &mut HashSet<(String, usize)>,
) {
    for hit in scan::tokens(text) {
        let line = line_of(text, hit.start);
        if !reported.insert((file.path.clone(), line)) {
            continue;
        }
        let value = &text[hit.start..hit.end];
        let line_text = text.lines().nth(line - 1).unwrap_or_default();
        let ev = evidence(&file.path, line, scan::redact(line_text, value));
        if test_data || marked_example(line_text, value) {
            cx.find(
                &SAMPLE,
                ev,
                format!(
                    "{} holds {} that looks like test data or an example.",
                    file.path, hit.kind
                ),
            );
        } else {
            cx.find(&TOKEN, ev, format!("{} holds {}.", file.path, hit.kind));
        }
    }
}

fn entropy(
    cx: &mut Context<'_>,
    file: &RepoFile,
    text: &str,
    reported: &mut HashSet<(String, usize)>,
) {
    for (i, line) in text.lines().enumerate() {
        if line.len() > 2000 || line.trim_start().starts_with('#') {
            continue;
        }
        let Some(c) = ASSIGNMENT.captures(line) else {
            continue;
        };
        let (Some(key), Some(value)) = (c.get(1), c.get(2)) else {
            continue;
        };
        let key = key.as_str().rsplit('.').next().unwrap_or_default();
        let value = value.as_str();
        if !scan::secret_key_name(key) || !scan::high_entropy(value) {
            continue;
        }
        if !reported.insert((file.path.clone(), i + 1)) {
            continue;
        }
        cx.find(
            &HIGH_ENTROPY,
            evidence(&file.path, i + 1, scan::redact(line, value)),
            format!(
                "{} sets {key} to a long random value (redacted here): most likely a real secret.",
                file.path
            ),
        );
    }
}

#[cfg(test)]
mod tests;
