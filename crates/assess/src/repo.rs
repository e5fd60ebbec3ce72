//! The repository being assessed: one walk of its files (honouring
//! `.gitignore` and `.cutoverignore`, skipping `.git` and dependency folders), and their text read
//! on demand, once, and only for files small enough to be configuration,
//! code or documentation. Nothing is executed and nothing leaves the machine.

use std::fs;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;

use crate::Error;
use crate::finding::display_path;

/// A file of gitignore patterns that `cutover assess` also skips.
pub const IGNORE_FILE: &str = ".cutoverignore";

/// Files larger than this are listed but never read (1 MiB).
pub const MAX_TEXT_BYTES: u64 = 1024 * 1024;

/// Folders never entered: dependencies, build output and VCS internals.
pub const SKIPPED_DIRS: [&str; 12] = [
    ".git",
    "node_modules",
    "vendor",
    "target",
    ".venv",
    "venv",
    "__pycache__",
    ".tox",
    "dist",
    "build",
    ".next",
    ".terraform",
];

/// One file of the repository.
#[derive(Debug)]
pub struct RepoFile {
    /// Relative to the root, with `/` separators.
    pub path: String,
    /// The last path component.
    pub name: String,
    pub size: u64,
    text: OnceLock<Option<String>>,
}

impl RepoFile {
    /// The file's extension, lowercased, without the dot ("" when none).
    pub fn ext(&self) -> String {
        Path::new(&self.name)
            .extension()
            .map(|e| e.to_string_lossy().to_ascii_lowercase())
            .unwrap_or_default()
    }

    /// Whether the file's folder path (relative, `/`-separated) contains `dir` as a component.
    pub fn in_dir(&self, dir: &str) -> bool {
        self.path
            .rsplit_once('/')
            .map(|(parent, _)| parent.split('/').any(|c| c == dir))
            .unwrap_or(false)
    }

    /// The parent folder (relative, `/`-separated; "" at the root).
    pub fn dir(&self) -> &str {
        self.path.rsplit_once('/').map(|(d, _)| d).unwrap_or("")
    }
}

/// The repository: its root and its files, sorted by path.
#[derive(Debug)]
pub struct Repo {
    root: PathBuf,
    files: Vec<RepoFile>,
}

impl Repo {
    /// Walks `root` once.
    pub fn open(root: &Path) -> Result<Repo, Error> {
        let meta = fs::metadata(root).map_err(|source| Error::Open {
            path: root.to_path_buf(),
            source,
        })?;
        if !meta.is_dir() {
            return Err(Error::NotADirectory(root.to_path_buf()));
        }
        let mut files = Vec::new();
        let walker = ignore::WalkBuilder::new(root)
            .hidden(false)
            .git_ignore(true)
            .git_global(false)
            .git_exclude(false)
            .require_git(false)
            .parents(false)
            .add_custom_ignore_filename(IGNORE_FILE)
            .follow_links(false)
            .filter_entry(|e| {
                !(e.file_type().is_some_and(|t| t.is_dir())
                    && SKIPPED_DIRS.contains(&e.file_name().to_string_lossy().as_ref()))
            })
            .build();
        for entry in walker {
            // An unreadable entry is skipped: an assessment reads what it can.
            let Ok(entry) = entry else { continue };
            if !entry.file_type().is_some_and(|t| t.is_file()) {
                continue;
            }
            let Ok(rel) = entry.path().strip_prefix(root) else {
                continue;
            };
            let size = entry.metadata().map(|m| m.len()).unwrap_or(0);
            files.push(RepoFile {
                path: display_path(rel),
                name: entry.file_name().to_string_lossy().into_owned(),
                size,
                text: OnceLock::new(),
            });
        }
        files.sort_by(|a, b| a.path.cmp(&b.path));
        Ok(Repo {
            root: root.to_path_buf(),
            files,
        })
    }

    pub fn root(&self) -> &Path {
        &self.root
    }

    /// Every file, sorted by path.
    pub fn files(&self) -> &[RepoFile] {
        &self.files
    }

    /// The file at `path` (relative, `/`-separated), if the repository has it.
    pub fn file(&self, path: &str) -> Option<&RepoFile> {
        self.files
            .binary_search_by(|f| f.path.as_str().cmp(path))
            .ok()
            .map(|i| &self.files[i])
    }

    /// Files whose name satisfies `pred`.
    pub fn named<'a>(
        &'a self,
        pred: impl Fn(&str) -> bool + 'a,
    ) -> impl Iterator<Item = &'a RepoFile> + 'a {
        self.files.iter().filter(move |f| pred(&f.name))
    }

    /// Files with one of these extensions (lowercase, no dot).
    pub fn with_ext<'a>(&'a self, exts: &'a [&'a str]) -> impl Iterator<Item = &'a RepoFile> + 'a {
        self.files
            .iter()
            .filter(move |f| exts.contains(&f.ext().as_str()))
    }

    /// The text of `file`: `None` when it is too large, not UTF-8 or binary.
    /// Read at most once.
    pub fn text<'a>(&self, file: &'a RepoFile) -> Option<&'a str> {
        file.text
            .get_or_init(|| {
                if file.size > MAX_TEXT_BYTES {
                    return None;
                }
                let bytes = fs::read(self.root.join(&file.path)).ok()?;
                if bytes.iter().take(8192).any(|b| *b == 0) {
                    return None;
                }
                String::from_utf8(bytes).ok()
            })
            .as_deref()
    }

    /// The text of the file at `path`, if it exists and is text.
    pub fn text_of(&self, path: &str) -> Option<&str> {
        self.file(path).and_then(|f| self.text(f))
    }
}

/// The 1-based line number of byte offset `offset` in `text`.
pub fn line_of(text: &str, offset: usize) -> usize {
    let end = offset.min(text.len());
    text.as_bytes()[..end]
        .iter()
        .filter(|b| **b == b'\n')
        .count()
        + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_walk_skips_dependencies_and_ignored_files_but_keeps_dotfiles() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path();
        for (path, text) in [
            (".github/workflows/ci.yml", "on: push\n"),
            (".env", "SECRET=1\n"),
            ("node_modules/x/package.json", "{}"),
            ("ignored.log", "x"),
            (".gitignore", "*.log\n"),
            ("src/main.py", "print(1)\n"),
        ] {
            let p = root.join(path);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, text).expect("write");
        }
        let repo = Repo::open(root).expect("open");
        let paths: Vec<&str> = repo.files().iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                ".env",
                ".github/workflows/ci.yml",
                ".gitignore",
                "src/main.py"
            ]
        );
        assert_eq!(repo.text_of("src/main.py"), Some("print(1)\n"));
        assert!(
            repo.file(".github/workflows/ci.yml")
                .expect("ci")
                .in_dir("workflows")
        );
    }

    #[test]
    fn binary_files_have_no_text() {
        let dir = tempfile::tempdir().expect("tempdir");
        fs::write(dir.path().join("a.bin"), [0u8, 1, 2]).expect("write");
        let repo = Repo::open(dir.path()).expect("open");
        assert_eq!(repo.text_of("a.bin"), None);
    }

    #[test]
    fn a_file_is_not_a_repository() {
        let dir = tempfile::tempdir().expect("tempdir");
        let file = dir.path().join("f");
        fs::write(&file, "x").expect("write");
        assert!(matches!(Repo::open(&file), Err(Error::NotADirectory(_))));
    }

    #[test]
    fn line_numbers_are_one_based() {
        assert_eq!(line_of("a\nb\nc", 0), 1);
        assert_eq!(line_of("a\nb\nc", 2), 2);
        assert_eq!(line_of("a\nb\nc", 4), 3);
    }
}
