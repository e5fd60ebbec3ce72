//! Reading and validating `cutover.toml`: the public entry points [`load`],
//! [`load_checked`], [`parse`], [`json_schema`] and [`render`], and the
//! resolved types.
//!
//! ```text
//! text ─► toml + serde ─► raw.rs (as written, with spans; the JSON Schema)
//!           │ syntax / type / unknown-key errors ─► toml_error.rs
//!           ▼
//!         resolve/: defaults, ${VAR} (expand.rs), values (scalars.rs),
//!                   state URL (state_url.rs), one value at a time
//!           ▼
//!         checks.rs: values compared with each other (listeners, routes,
//!                    `after` and its cycles, via order.rs); with
//!                    load_checked only, the files the config names exist
//!           ▼
//!         model.rs: Config and friends — or every Finding as a Problem
//!                   (problem.rs) in a ConfigError (error.rs), drawn by render.rs
//! ```
//!
//! Errors point at `file:line:column` and say what was expected; one run
//! reports every problem found after the file has parsed.

mod checks;
mod container;
pub mod defaults;
mod error;
mod expand;
pub mod limits;
mod model;
pub mod notify;
mod order;
mod problem;
mod raw;
mod recipient;
mod redact;
mod render;
mod resolve;
mod scalars;
mod schema;
mod state_url;
mod suggest;
mod summary;
mod toml_error;
pub mod window;

#[cfg(test)]
mod environment_tests;
#[cfg(test)]
mod error_tests;
#[cfg(test)]
mod limit_tests;
#[cfg(test)]
mod logs_env_tests;
#[cfg(test)]
mod notify_tests;
#[cfg(test)]
mod tests;

use std::path::{Path, PathBuf};

pub use self::container::{DockerConfig, SwarmConfig, UpdateFailureAction};
pub use self::error::ConfigError;
pub use self::model::{
    AcmeChallenge, AcmeConfig, AnalysisConfig, ApiExposure, AppConfig, ApprovalAt, ApprovalsConfig,
    BackupConfig, Config, DatabaseConfig, DriverKind, EnvTlsConfig, EnvironmentConfig,
    HealthConfig, HostConfig, HostEnvironmentConfig, InconclusivePolicy, LimitsConfig, LintLevels,
    LogFormat, LogsConfig, RestartPolicy, RolloutConfig, Secret, ServerConfig, ServiceConfig,
    ServiceKind, StateConfig, Strategy, SwitchMode, TlsFilesConfig, TrackOverrideConfig,
};
pub use self::notify::{EventType, NotifyConfig, SlackConfig, WebhookConfig};
pub use self::problem::Problem;
pub use self::recipient::{
    Recipient, RecipientError, SIGNER_PREFIX, parse_recipient, parse_signer,
};
pub use self::redact::{REDACTED, is_secret_name, redact_url, redact_urls_in};
pub use self::render::render;
pub use self::schema::json_schema;

use self::expand::Lookup;
use self::raw::RawConfig;
use self::resolve::{Context, Sections};

/// Reads, parses, validates and resolves the config file at `path`.
pub fn load(path: &Path) -> Result<Config, ConfigError> {
    let source = read(path)?;
    parse(&source, path)
}

/// The file's text: at most [`limits::MAX_CONFIG_BYTES`] bytes (more is
/// never read), and UTF-8 (else the place of the first bad byte).
fn read(path: &Path) -> Result<String, ConfigError> {
    use std::io::Read as _;
    let io_error = |source: std::io::Error| {
        if source.kind() == std::io::ErrorKind::NotFound {
            ConfigError::NotFound {
                path: path.to_owned(),
            }
        } else {
            ConfigError::Read {
                path: path.to_owned(),
                source,
            }
        }
    };
    let file = std::fs::File::open(path).map_err(io_error)?;
    let mut bytes = Vec::new();
    file.take(limits::MAX_CONFIG_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(io_error)?;
    if bytes.len() as u64 > limits::MAX_CONFIG_BYTES {
        let size = std::fs::metadata(path).map_or(bytes.len() as u64, |m| m.len());
        return Err(ConfigError::TooLarge {
            path: path.to_owned(),
            size,
            max: limits::MAX_CONFIG_BYTES,
        });
    }
    String::from_utf8(bytes).map_err(|err| {
        let offset = err.utf8_error().valid_up_to();
        let (line, column) = line_column(err.as_bytes(), offset);
        ConfigError::NotUtf8 {
            path: path.to_owned(),
            offset,
            line,
            column,
        }
    })
}

/// 1-based line and column (in characters) of byte `offset` of `bytes`,
/// which are valid UTF-8 up to `offset`.
fn line_column(bytes: &[u8], offset: usize) -> (usize, usize) {
    let before = &bytes[..offset.min(bytes.len())];
    let line_start = before
        .iter()
        .rposition(|&b| b == b'\n')
        .map_or(0, |i| i + 1);
    let line = before.iter().filter(|&&b| b == b'\n').count() + 1;
    let column = std::str::from_utf8(&before[line_start..])
        .map_or(offset - line_start, |text| text.chars().count())
        + 1;
    (line, column)
}

/// [`load`], then the checks that read the disk: every file the config names
/// (certificates, keys, CA files) exists and can be opened. For `cutover
/// check` and `cutover serve`; other commands need none of those files.
pub fn load_checked(path: &Path) -> Result<Config, ConfigError> {
    let source = read(path)?;
    parse_inner(&source, path, &|name| std::env::var(name), true, false)
}

/// The config as `cutover render` reads it: [`parse`], except that no
/// `${VAR}` is read from the environment (what is rendered must not depend
/// on the secrets of the machine it is rendered on). Each `${VAR}` is taken
/// as set to a value that is not known, as by [`check_text`]: a value that
/// uses one is not checked and is left out of the result (an `env` entry, a
/// word of a command, an `image`), so the caller reads those from the text
/// itself. The files the config names are not opened.
pub fn parse_unexpanded(source: &str, path: &Path) -> Result<Config, ConfigError> {
    let unknown = |_: &str| Err(std::env::VarError::NotPresent);
    parse_inner(source, path, &unknown, false, true)
}

/// The text of the config file at `path`, read as [`load`] reads it.
pub fn read_source(path: &Path) -> Result<String, ConfigError> {
    read(path)
}

/// The problems `cutover check` would report in config text, for `cutover
/// assess`, which reads a repository's `cutover.toml` without its
/// environment: every `${VAR}` is taken as set to a value that is not known,
/// whatever the process environment holds, so a value that names one is
/// not checked (everything else is, as by [`load`]). The files the config
/// names (certificates, keys) are not opened: they live on the deploy
/// machine. The text is never too large here: the caller reads at most
/// 1 MiB. Not a way to load a config: it returns no [`Config`]; the
/// located problems are [`ConfigError::problems`].
pub fn check_text(source: &str, path: &Path) -> Result<(), ConfigError> {
    let unknown = |_: &str| Err(std::env::VarError::NotPresent);
    parse_inner(source, path, &unknown, false, true).map(|_| ())
}

/// Parses, validates and resolves config text. `path` is where the text came
/// from: it names the file in messages, and its directory is the base for
/// relative paths. `${VAR}` reads the process environment.
pub fn parse(source: &str, path: &Path) -> Result<Config, ConfigError> {
    parse_with_env(source, path, &|name| std::env::var(name))
}

/// [`parse`] with `${VAR}` read through `lookup`.
pub(crate) fn parse_with_env(
    source: &str,
    path: &Path,
    lookup: Lookup<'_>,
) -> Result<Config, ConfigError> {
    parse_inner(source, path, lookup, false, false)
}

/// [`parse_with_env`], and with `check_files` the checks of [`load_checked`];
/// with `unset_is_unknown`, what [`check_text`] does with unset variables.
pub(crate) fn parse_inner(
    source: &str,
    path: &Path,
    lookup: Lookup<'_>,
    check_files: bool,
    unset_is_unknown: bool,
) -> Result<Config, ConfigError> {
    let file = path.display().to_string();
    let text: std::sync::Arc<str> = std::sync::Arc::from(source);
    let fail = |findings: Vec<problem::Finding>| {
        let mut findings = findings;
        // A value shared by several environments is resolved once for each:
        // its problem is reported once.
        let mut seen = std::collections::HashSet::new();
        findings.retain(|f| seen.insert((f.span.start, f.span.end, f.message.clone())));
        findings.sort_by_key(|finding| (finding.span.start, finding.span.end));
        if findings.len() > limits::MAX_PROBLEMS {
            let more = findings.len() - limits::MAX_PROBLEMS;
            findings.truncate(limits::MAX_PROBLEMS + 1);
            if let Some(next) = findings.pop() {
                findings.push(
                    problem::Finding::new(
                        next.span,
                        format!("… and {more} more problems, not shown"),
                        "the next one",
                    )
                    .help("fix the problems above and run `cutover check` again"),
                );
            }
        }
        let problems = findings
            .into_iter()
            .map(|finding| finding.into_problem(&file, text.clone()))
            .collect();
        ConfigError::from_problems(file.clone(), problems)
    };

    let raw: RawConfig =
        toml::from_str(source).map_err(|err| fail(vec![toml_error::finding(&err, source)]))?;

    let base_dir = base_dir(path);
    let context = Context {
        source,
        base_dir: &base_dir,
        lookup,
        unset_is_unknown,
    };
    let (sections, mut findings) = resolve::resolve(raw, context);
    findings.extend(checks::check(&sections));
    if check_files {
        findings.extend(checks::files(&sections));
    }
    if !findings.is_empty() {
        return Err(fail(findings));
    }

    let Sections {
        app,
        server,
        state,
        services,
        environments,
        databases,
        notify,
        hosts,
        places: _,
    } = sections;
    Ok(Config {
        path: path.to_owned(),
        base_dir,
        app,
        server,
        state,
        services,
        environments,
        databases,
        notify,
        hosts,
    })
}

/// The absolute directory of `path`, without touching the file system
/// (beyond reading the current directory for a relative path).
fn base_dir(path: &Path) -> PathBuf {
    let parent = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let absolute = std::path::absolute(parent).unwrap_or_else(|_| parent.to_owned());
    absolute
        .components()
        .filter(|component| !matches!(component, std::path::Component::CurDir))
        .collect()
}
