//! `[state] url`: which database URLs are accepted, and how a relative
//! `sqlite://` path is made absolute against the config file's directory.

use std::path::{Component, Path, PathBuf};

/// What a state URL looks like, for help lines.
pub(crate) const EXPECTED: &str = "expected \"sqlite://PATH\" (a relative PATH is relative to the \
     directory of the config file) or \"postgres://USER@HOST/DB\"";

/// Resolves `url` against `base_dir` (absolute). Returns a short reason when
/// the URL is not one cutover can use.
///
/// - `sqlite://rel/state.db` → `sqlite:///base/dir/rel/state.db` (also `sqlite:rel/…`)
/// - `sqlite:///abs/state.db`, `sqlite::memory:` and `?mode=memory` stay as they are
/// - `postgres://…` and `postgresql://…` stay as they are
pub(crate) fn resolve(url: &str, base_dir: &Path) -> Result<String, String> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        return Ok(url.to_owned());
    }
    let Some(rest) = url.strip_prefix("sqlite:") else {
        return Err(match url.split_once("://") {
            Some((scheme, _)) => format!("unsupported database `{scheme}`"),
            None => "not a database URL".to_owned(),
        });
    };
    let rest = rest.strip_prefix("//").unwrap_or(rest);
    let (file, query) = match rest.split_once('?') {
        Some((file, query)) => (file, Some(query)),
        None => (rest, None),
    };
    let in_memory = file == ":memory:"
        || query.is_some_and(|query| query.split('&').any(|pair| pair == "mode=memory"));
    if in_memory {
        return Ok(url.to_owned());
    }
    if file.is_empty() {
        return Err("no database file".to_owned());
    }
    let path = if Path::new(file).is_absolute() {
        file.to_owned()
    } else {
        let Some(base) = base_dir.to_str() else {
            return Err(format!(
                "the directory {} is not valid UTF-8",
                base_dir.display()
            ));
        };
        // sqlx percent-decodes the path, so the part we add must be encoded.
        let joined = normalize(&Path::new(&encode(base)).join(file));
        joined.to_string_lossy().into_owned()
    };
    Ok(match query {
        Some(query) => format!("sqlite://{path}?{query}"),
        None => format!("sqlite://{path}"),
    })
}

/// Drops `.` components: `/a/./b` → `/a/b`. (`..` is kept: it may cross a symlink.)
fn normalize(path: &Path) -> PathBuf {
    path.components()
        .filter(|component| !matches!(component, Component::CurDir))
        .collect()
}

/// Percent-encodes the characters that mean something in a sqlite URL.
fn encode(path: &str) -> String {
    let mut out = String::with_capacity(path.len());
    for c in path.chars() {
        match c {
            '%' => out.push_str("%25"),
            '?' => out.push_str("%3F"),
            '#' => out.push_str("%23"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_sqlite_paths_become_absolute() {
        let base = Path::new("/srv/shop");
        let cases = [
            (
                "sqlite://.cutover/state.db",
                "sqlite:///srv/shop/.cutover/state.db",
            ),
            ("sqlite://./state.db", "sqlite:///srv/shop/state.db"),
            (
                "sqlite:state.db?mode=rwc",
                "sqlite:///srv/shop/state.db?mode=rwc",
            ),
            (
                "sqlite:///var/lib/cutover.db",
                "sqlite:///var/lib/cutover.db",
            ),
            ("sqlite::memory:", "sqlite::memory:"),
            ("sqlite://?mode=memory", "sqlite://?mode=memory"),
            ("postgres://u@h/db", "postgres://u@h/db"),
        ];
        for (url, expected) in cases {
            assert_eq!(resolve(url, base).as_deref(), Ok(expected), "{url}");
        }
        assert_eq!(
            resolve("sqlite://x.db", Path::new("/a dir/50%?")).as_deref(),
            Ok("sqlite:///a dir/50%25%3F/x.db")
        );
    }

    #[test]
    fn other_urls_are_refused() {
        assert!(resolve("mysql://h/db", Path::new("/")).is_err());
        assert!(resolve("state.db", Path::new("/")).is_err());
        assert!(resolve("sqlite://", Path::new("/")).is_err());
    }
}
