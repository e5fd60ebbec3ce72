//! Migration files: the folder's `NNNN_name.sql` files in version order, each
//! split into its up part and optional down part, with its directives and
//! its checksum.
//!
//! ```sql
//! -- cutover:phase expand              (or contract; default expand)
//! -- cutover:no-transaction            (for CREATE INDEX CONCURRENTLY and the like)
//! -- cutover:allow RULE because REASON (a lint rule this file may break, and why)
//! CREATE TABLE users (id bigint PRIMARY KEY);
//! -- cutover:down
//! DROP TABLE users;
//! ```
//!
//! The checksum is the SHA-256 of the file with CRLF line endings read as LF,
//! so a checkout on another OS does not look like a changed migration.
//! Directives may stand anywhere in the file and apply to all of it; an
//! unknown `-- cutover:` directive is an error, so a typo never silently
//! changes how a migration runs.

use std::fmt;
use std::path::{Path, PathBuf};

use serde::Serialize;
use sha2::{Digest, Sha256};

/// The expand/contract phase of a migration.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Adds what the new release needs while the old one still serves:
    /// runs before the rollout. Must not break the old release.
    #[default]
    Expand,
    /// Removes what only the old release needed: runs after the new
    /// release serves everything.
    Contract,
}

impl Phase {
    /// The name used in files and on the command line.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Expand => "expand",
            Self::Contract => "contract",
        }
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.pad(self.as_str())
    }
}

/// One part (up or down) of a migration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Part {
    /// The SQL of the part, LF line endings.
    pub sql: String,
    /// The 1-based line of the file the part starts on.
    pub first_line: usize,
}

/// `-- cutover:allow RULE because REASON`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Allow {
    /// The lint rule the file may break.
    pub rule: String,
    /// Why, as written after `because`.
    pub reason: String,
    /// The 1-based line of the directive.
    pub line: usize,
}

/// One migration file, parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Migration {
    /// The number the file name starts with; at least 1.
    pub version: u64,
    /// The rest of the file name, without `_` and `.sql`.
    pub name: String,
    /// The file.
    pub path: PathBuf,
    /// SHA-256 of the file with CRLF read as LF, lower-case hex.
    pub checksum: String,
    /// What `up` runs.
    pub up: Part,
    /// What `down` runs, if the file has a `-- cutover:down` part.
    pub down: Option<Part>,
    /// Expand (default) or contract.
    pub phase: Phase,
    /// False with `-- cutover:no-transaction`.
    pub transaction: bool,
    /// Lint rules the file may break, with the reasons.
    pub allows: Vec<Allow>,
}

impl Migration {
    /// The file name, e.g. `0001_create_users.sql`.
    pub fn file_name(&self) -> String {
        self.path
            .file_name()
            .map(|name| name.to_string_lossy().into_owned())
            .unwrap_or_default()
    }
}

/// Why the migrations folder or one of its files cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FilesError {
    /// The folder is missing or cannot be listed.
    #[error("cannot read the migrations folder {}", path.display())]
    Folder {
        /// The folder.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A file cannot be read.
    #[error("cannot read {}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A `.sql` file whose name is not `NNNN_name.sql`.
    #[error(
        "{}: a migration's name is its version and a name, e.g. 0001_create_users.sql (the version a whole number of at least 1)",
        path.display()
    )]
    BadName {
        /// The file.
        path: PathBuf,
    },
    /// Two files with the same version.
    #[error("{} and {} have the same version {version}", first.display(), second.display())]
    DuplicateVersion {
        /// The version.
        version: u64,
        /// One file.
        first: PathBuf,
        /// The other.
        second: PathBuf,
    },
    /// A `-- cutover:` directive that is wrong.
    #[error("{}:{line}: {message}", path.display())]
    Directive {
        /// The file.
        path: PathBuf,
        /// The 1-based line.
        line: usize,
        /// What is wrong and what was expected.
        message: String,
    },
}

/// Reads every `*.sql` file of `folder`, in version order. Other files are
/// ignored.
pub fn load(folder: &Path) -> Result<Vec<Migration>, FilesError> {
    let folder_error = |source| FilesError::Folder {
        path: folder.to_owned(),
        source,
    };
    let mut paths = Vec::new();
    for entry in std::fs::read_dir(folder).map_err(folder_error)? {
        let path = entry.map_err(folder_error)?.path();
        let is_sql = path.extension().is_some_and(|ext| ext == "sql");
        let hidden = path
            .file_name()
            .is_some_and(|name| name.to_string_lossy().starts_with('.'));
        if is_sql && !hidden && path.is_file() {
            paths.push(path);
        }
    }
    let mut migrations = Vec::with_capacity(paths.len());
    for path in paths {
        let bytes = std::fs::read(&path).map_err(|source| FilesError::Read {
            path: path.clone(),
            source,
        })?;
        let text = String::from_utf8(bytes).map_err(|_| FilesError::Read {
            path: path.clone(),
            source: std::io::Error::new(std::io::ErrorKind::InvalidData, "not valid UTF-8"),
        })?;
        migrations.push(parse(&path, &text)?);
    }
    migrations.sort_by(|a, b| a.version.cmp(&b.version).then(a.path.cmp(&b.path)));
    for pair in migrations.windows(2) {
        if let [first, second] = pair
            && first.version == second.version
        {
            return Err(FilesError::DuplicateVersion {
                version: first.version,
                first: first.path.clone(),
                second: second.path.clone(),
            });
        }
    }
    Ok(migrations)
}

/// The checksum of a file's text: SHA-256 of it with CRLF read as LF.
pub fn checksum(text: &str) -> String {
    let digest = Sha256::digest(normalize(text).as_bytes());
    digest.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// `text` with CRLF line endings made LF.
pub fn normalize(text: &str) -> String {
    text.replace("\r\n", "\n")
}

/// The version and name in a file name such as `0001_create_users.sql`.
fn version_and_name(path: &Path) -> Option<(u64, String)> {
    let stem = path.file_stem()?.to_str()?;
    let (digits, name) = stem.split_once('_')?;
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) || name.is_empty() {
        return None;
    }
    let version: u64 = digits.parse().ok()?;
    (version >= 1).then(|| (version, name.to_owned()))
}

/// Parses one migration file whose content is `text`.
pub fn parse(path: &Path, text: &str) -> Result<Migration, FilesError> {
    let (version, name) = version_and_name(path).ok_or_else(|| FilesError::BadName {
        path: path.to_owned(),
    })?;
    let text = normalize(text);
    let directive_error = |line: usize, message: String| FilesError::Directive {
        path: path.to_owned(),
        line,
        message,
    };

    let mut phase: Option<(Phase, usize)> = None;
    let mut transaction = true;
    let mut allows = Vec::new();
    let mut down_at: Option<(usize, usize)> = None; // (line, byte offset after the line)
    let mut offset = 0;
    for (index, line) in text.split_inclusive('\n').enumerate() {
        let number = index + 1;
        offset += line.len();
        let Some(directive) = directive(line) else {
            continue;
        };
        let (word, rest) = directive
            .split_once(char::is_whitespace)
            .map_or((directive, ""), |(word, rest)| (word, rest.trim()));
        match word {
            "down" if rest.is_empty() => {
                if let Some((first, _)) = down_at {
                    return Err(directive_error(
                        number,
                        format!("a second `-- cutover:down` (the first is on line {first})"),
                    ));
                }
                down_at = Some((number, offset));
            }
            "phase" => {
                let value = match rest {
                    "expand" => Phase::Expand,
                    "contract" => Phase::Contract,
                    other => {
                        return Err(directive_error(
                            number,
                            format!(
                                "unknown phase `{other}`: expected `-- cutover:phase expand` or `-- cutover:phase contract`"
                            ),
                        ));
                    }
                };
                if let Some((earlier, line)) = phase
                    && earlier != value
                {
                    return Err(directive_error(
                        number,
                        format!("phase {value} here but {earlier} on line {line}"),
                    ));
                }
                phase = Some((value, number));
            }
            "no-transaction" if rest.is_empty() => transaction = false,
            "allow" => {
                allows
                    .push(allow(rest, number).map_err(|message| directive_error(number, message))?);
            }
            _ => {
                return Err(directive_error(
                    number,
                    format!(
                        "unknown directive `-- cutover:{directive}`: expected `-- cutover:down`, `-- cutover:phase expand|contract`, `-- cutover:no-transaction` or `-- cutover:allow RULE because REASON`"
                    ),
                ));
            }
        }
    }

    let (up, down) = match down_at {
        Some((line, end)) => (
            Part {
                sql: text[..end].to_owned(),
                first_line: 1,
            },
            Some(Part {
                sql: text[end..].to_owned(),
                first_line: line + 1,
            }),
        ),
        None => (
            Part {
                sql: text.clone(),
                first_line: 1,
            },
            None,
        ),
    };
    Ok(Migration {
        version,
        name,
        path: path.to_owned(),
        checksum: checksum(&text),
        up,
        down,
        phase: phase.map(|(phase, _)| phase).unwrap_or_default(),
        transaction,
        allows,
    })
}

/// The text after `-- cutover:` on a line that is only such a comment.
fn directive(line: &str) -> Option<&str> {
    let comment = line.trim().strip_prefix("--")?;
    let directive = comment.trim_start().strip_prefix("cutover:")?;
    Some(directive.trim())
}

/// `RULE because REASON`, written on `line`.
fn allow(text: &str, line: usize) -> Result<Allow, String> {
    let Some((rule, reason)) = text.split_once(" because ") else {
        return Err(format!(
            "`-- cutover:allow {text}` gives no reason: write `-- cutover:allow RULE because REASON`"
        ));
    };
    let (rule, reason) = (rule.trim(), reason.trim());
    if rule.is_empty() || rule.contains(char::is_whitespace) {
        return Err(format!(
            "`-- cutover:allow {text}`: expected one rule name before `because`"
        ));
    }
    if reason.is_empty() {
        return Err(format!(
            "`-- cutover:allow {rule}` gives no reason after `because`"
        ));
    }
    Ok(Allow {
        rule: rule.to_owned(),
        reason: reason.to_owned(),
        line,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse_text(name: &str, text: &str) -> Result<Migration, FilesError> {
        parse(Path::new(name), text)
    }

    #[test]
    fn up_and_down_parts_keep_their_lines() {
        let text = "-- cutover:phase contract\nALTER TABLE users DROP COLUMN name;\n-- cutover:down\nALTER TABLE users ADD COLUMN name text;\n";
        let migration = parse_text("0007_drop_name.sql", text).expect("valid");
        assert_eq!(migration.version, 7);
        assert_eq!(migration.name, "drop_name");
        assert_eq!(migration.file_name(), "0007_drop_name.sql");
        assert_eq!(migration.phase, Phase::Contract);
        assert!(migration.transaction);
        assert_eq!(migration.up.first_line, 1);
        assert!(migration.up.sql.ends_with("-- cutover:down\n"));
        let down = migration.down.expect("a down part");
        assert_eq!(down.first_line, 4);
        assert_eq!(down.sql, "ALTER TABLE users ADD COLUMN name text;\n");
    }

    #[test]
    fn defaults_are_expand_in_a_transaction_without_down() {
        let migration = parse_text("12_x.sql", "CREATE TABLE t (id int);").expect("valid");
        assert_eq!((migration.version, migration.phase), (12, Phase::Expand));
        assert!(migration.transaction);
        assert!(migration.down.is_none());
        assert!(migration.allows.is_empty());
    }

    #[test]
    fn directives_no_transaction_and_allow() {
        let text = "--cutover:no-transaction\n  -- cutover:allow require-concurrent-index-creation because the table is empty\nCREATE INDEX i ON t (a);\n";
        let migration = parse_text("0002_i.sql", text).expect("valid");
        assert!(!migration.transaction);
        assert_eq!(
            migration.allows,
            [Allow {
                rule: "require-concurrent-index-creation".to_owned(),
                reason: "the table is empty".to_owned(),
                line: 2,
            }]
        );
    }

    #[test]
    fn crlf_does_not_change_the_checksum() {
        let lf = "CREATE TABLE t (id int);\n-- cutover:down\nDROP TABLE t;\n";
        let crlf = lf.replace('\n', "\r\n");
        assert_eq!(checksum(lf), checksum(&crlf));
        assert_ne!(checksum(lf), checksum(&lf.replace("int", "bigint")));
        let a = parse_text("1_a.sql", lf).expect("valid");
        let b = parse_text("1_a.sql", &crlf).expect("valid");
        assert_eq!(a, b);
        assert_eq!(a.checksum.len(), 64);
    }

    #[test]
    fn bad_names_are_refused() {
        for name in [
            "create_users.sql",
            "0000_zero.sql",
            "12.sql",
            "1_.sql",
            "x1_a.sql",
            "99999999999999999999999_a.sql",
        ] {
            let err = parse_text(name, "").expect_err(name);
            assert!(matches!(err, FilesError::BadName { .. }), "{name}: {err}");
            assert!(err.to_string().contains(name), "{err}");
        }
    }

    #[test]
    fn wrong_directives_name_the_file_and_line() {
        let cases = [
            (
                "SELECT 1;\n-- cutover:dwon\n",
                2,
                "unknown directive `-- cutover:dwon`",
            ),
            ("-- cutover:phase shrink\n", 1, "unknown phase `shrink`"),
            (
                "-- cutover:down\n\n-- cutover:down\n",
                3,
                "second `-- cutover:down`",
            ),
            ("-- cutover:allow ban-drop-column\n", 1, "gives no reason"),
            (
                "-- cutover:allow ban-drop-column because   \n",
                1,
                "no reason",
            ),
            (
                "-- cutover:phase expand\n-- cutover:phase contract\n",
                2,
                "phase contract here but expand on line 1",
            ),
        ];
        for (text, line, expected) in cases {
            let err = parse_text("0003_x.sql", text).expect_err(text);
            let message = err.to_string();
            assert!(
                message.starts_with(&format!("0003_x.sql:{line}: ")),
                "{message}"
            );
            assert!(message.contains(expected), "{message}");
        }
    }

    #[test]
    fn load_orders_by_number_and_refuses_duplicates() {
        let dir = tempfile::tempdir().expect("tempdir");
        for (name, text) in [
            ("10_c.sql", "SELECT 3;"),
            ("2_b.sql", "SELECT 2;"),
            ("0001_a.sql", "SELECT 1;"),
            ("README.md", "not sql"),
        ] {
            std::fs::write(dir.path().join(name), text).expect("write");
        }
        let versions: Vec<u64> = load(dir.path())
            .expect("valid")
            .iter()
            .map(|m| m.version)
            .collect();
        assert_eq!(versions, [1, 2, 10]);

        std::fs::write(dir.path().join("0002_again.sql"), "SELECT 2;").expect("write");
        let err = load(dir.path()).expect_err("duplicate");
        assert!(
            matches!(err, FilesError::DuplicateVersion { version: 2, .. }),
            "{err}"
        );

        let missing = load(&dir.path().join("nope")).expect_err("missing folder");
        assert!(missing.to_string().contains("nope"), "{missing}");
    }
}
