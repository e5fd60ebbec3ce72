//! [`ConfigError`]: everything that can go wrong loading `cutover.toml` or
//! picking an environment from it, as a `miette::Diagnostic`.

use std::path::PathBuf;

use miette::Diagnostic;
use thiserror::Error;

use super::problem::Problem;
use super::suggest;

/// Why a config could not be loaded, or an environment not chosen.
#[derive(Debug, Error, Diagnostic)]
pub enum ConfigError {
    /// The file does not exist.
    #[error("config file `{}` not found", path.display())]
    #[diagnostic(help("create one with `cutover init`, or point to another file with `-c FILE`"))]
    NotFound {
        /// The path as given.
        path: PathBuf,
    },

    /// The file exists but could not be read.
    #[error("cannot read config file `{}`", path.display())]
    Read {
        /// The path as given.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },

    /// The file is larger than cutover reads.
    #[error("config file `{}` is {size} bytes, more than the {max} bytes (1 MiB) cutover reads", path.display())]
    #[diagnostic(help("a config is a few kilobytes: check that `-c` names the right file"))]
    TooLarge {
        /// The path as given.
        path: PathBuf,
        /// Its size in bytes.
        size: u64,
        /// The largest size read.
        max: u64,
    },

    /// The file is not UTF-8 text.
    #[error("config file `{}` is not UTF-8: invalid byte at {}:{line}:{column} (byte offset {offset})", path.display(), path.display())]
    #[diagnostic(help("save the file as UTF-8 text; TOML files must be UTF-8"))]
    NotUtf8 {
        /// The path as given.
        path: PathBuf,
        /// Byte offset of the first invalid byte.
        offset: usize,
        /// Its 1-based line.
        line: usize,
        /// Its 1-based column, in characters.
        column: usize,
    },

    /// One problem in the file (syntax, type or validation), with its place.
    #[error(transparent)]
    #[diagnostic(transparent)]
    Invalid(Box<Problem>),

    /// Several problems in the file, each with its place, top to bottom.
    #[error("{file} has {} problems", problems.len())]
    Problems {
        /// The file name as given.
        file: String,
        /// The problems, in the order they appear in the file.
        #[related]
        problems: Vec<Problem>,
    },

    /// `--env NAME` names no environment of the file.
    #[error("no environment named `{name}`")]
    #[diagnostic(help("{hint}"))]
    UnknownEnvironment {
        /// The name asked for.
        name: String,
        /// The environments there are.
        known: Vec<String>,
        /// Lists them, with a suggestion if one is close.
        hint: String,
    },

    /// No environment was named and the file does not define exactly one.
    #[error("choose an environment with `--env NAME`: this config defines {}", count(known.len()))]
    #[diagnostic(help("{hint}"))]
    EnvironmentRequired {
        /// The environments there are.
        known: Vec<String>,
        /// Lists them.
        hint: String,
    },

    /// `--db NAME` names no database of the file.
    #[error("no database named `{name}`")]
    #[diagnostic(help("{hint}"))]
    UnknownDatabase {
        /// The name asked for.
        name: String,
        /// The databases there are.
        known: Vec<String>,
        /// Lists them, with a suggestion if one is close.
        hint: String,
    },

    /// No database was named and the file does not define exactly one.
    #[error("choose a database with `--db NAME`: this config defines {}", count_databases(known.len()))]
    #[diagnostic(help("{hint}"))]
    DatabaseRequired {
        /// The databases there are.
        known: Vec<String>,
        /// Lists them.
        hint: String,
    },

    /// No environment was named and the environments use different versions
    /// of the database.
    #[error(
        "choose an environment with `--env NAME`: database `{name}` differs between {}",
        list(environments)
    )]
    #[diagnostic(help("{hint}"))]
    DatabaseEnvironmentRequired {
        /// The database.
        name: String,
        /// The environments that have it.
        environments: Vec<String>,
        /// Says how to choose.
        hint: String,
    },
}

impl ConfigError {
    /// The located problems in the file; empty for the other kinds of error.
    pub fn problems(&self) -> &[Problem] {
        match self {
            Self::Invalid(problem) => std::slice::from_ref(problem),
            Self::Problems { problems, .. } => problems,
            _ => &[],
        }
    }

    /// One error from all the problems found in a file (at least one).
    pub(crate) fn from_problems(file: String, mut problems: Vec<Problem>) -> Self {
        if problems.len() == 1
            && let Some(problem) = problems.pop()
        {
            return Self::Invalid(Box::new(problem));
        }
        Self::Problems { file, problems }
    }

    pub(crate) fn unknown_environment(name: &str, known: Vec<String>) -> Self {
        let mut help = format!("environments in this config: {}", list(&known));
        if let Some(close) = suggest::closest(name, known.iter().map(String::as_str)) {
            help = format!("did you mean `{close}`? {help}");
        }
        Self::UnknownEnvironment {
            name: name.to_owned(),
            known,
            hint: help,
        }
    }

    pub(crate) fn environment_required(known: Vec<String>) -> Self {
        let help = if known.is_empty() {
            "add an [environment.NAME] table with a `listen` address".to_owned()
        } else {
            format!("pass one of: {}", list(&known))
        };
        Self::EnvironmentRequired { known, hint: help }
    }

    pub(crate) fn unknown_database(name: &str, known: Vec<String>) -> Self {
        let mut help = format!("databases in this config: {}", list(&known));
        if let Some(close) = suggest::closest(name, known.iter().map(String::as_str)) {
            help = format!("did you mean `{close}`? {help}");
        }
        Self::UnknownDatabase {
            name: name.to_owned(),
            known,
            hint: help,
        }
    }

    pub(crate) fn database_required(known: Vec<String>) -> Self {
        let help = if known.is_empty() {
            "add a [database.NAME] table with its `url`, e.g.\n\n    [database.main]\n    url = \"${DATABASE_URL}\"".to_owned()
        } else {
            format!("pass one of: {}", list(&known))
        };
        Self::DatabaseRequired { known, hint: help }
    }
}

impl ConfigError {
    pub(crate) fn database_environment_required(name: &str, environments: Vec<String>) -> Self {
        let hint = format!(
            "each environment has its own `{name}` (its own url or backup folder): pass -e with one of {}",
            list(&environments)
        );
        Self::DatabaseEnvironmentRequired {
            name: name.to_owned(),
            environments,
            hint,
        }
    }
}

fn count_databases(n: usize) -> String {
    match n {
        0 => "no databases".to_owned(),
        1 => "one database".to_owned(),
        n => format!("{n} databases"),
    }
}

fn count(n: usize) -> String {
    match n {
        0 => "no environments".to_owned(),
        1 => "one environment".to_owned(),
        n => format!("{n} environments"),
    }
}

fn list(names: &[String]) -> String {
    if names.is_empty() {
        return "none".to_owned();
    }
    names
        .iter()
        .map(|name| format!("`{name}`"))
        .collect::<Vec<_>>()
        .join(", ")
}
