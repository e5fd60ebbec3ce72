//! Shared CLI plumbing: loading the config with a rendered error, the API
//! client for a config, JSON printing, and who "I" am for locks and history.

use std::io::IsTerminal;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};

use serde::Serialize;

use crate::api::client::ApiClient;
use crate::api::token;
use crate::config::{self, Config};
use crate::exit::{self, CliError};

/// Loads the config, rendering an error as miette does (no colour when
/// `NO_COLOR` is set or stderr is not a terminal).
pub fn load_config(path: &Path) -> Result<Config, CliError> {
    config::load(path)
        .map_err(|e| CliError::new(exit::USAGE, render_config_error(e)))
        .and_then(for_selected_host)
}

/// The host `--host` / `CUTOVER_HOST` selected, if any (set once by
/// [`select_host`]).
static HOST: std::sync::OnceLock<String> = std::sync::OnceLock::new();

/// Makes every config this process loads the one of host `name`
/// (`[host.NAME]`, docs/cluster.md).
pub fn select_host(name: Option<String>) {
    if let Some(name) = name.filter(|n| !n.is_empty()) {
        let _ = HOST.set(name);
    }
}

/// The host `--host` / `CUTOVER_HOST` selected.
pub fn selected_host() -> Option<&'static str> {
    HOST.get().map(String::as_str)
}

fn for_selected_host(config: Config) -> Result<Config, CliError> {
    match selected_host() {
        Some(name) => config
            .for_host(name)
            .map_err(|e| CliError::new(exit::USAGE, e)),
        None => Ok(config),
    }
}

/// [`load_config`], and every file the config names (certificates, keys)
/// must exist: for `cutover check` and `cutover serve`.
pub fn load_config_checked(path: &Path) -> Result<Config, CliError> {
    config::load_checked(path)
        .map_err(|e| CliError::new(exit::USAGE, render_config_error(e)))
        .and_then(for_selected_host)
}

/// Renders a config error like miette does (see [`load_config`]).
pub fn render_config_error(e: config::ConfigError) -> String {
    if use_color() {
        format!("{:?}", miette::Report::new(e))
    } else {
        config::render(&e)
    }
}

/// A config error as the JSON error object `--json` commands print
/// ([`json_error`]'s shape, with each located problem):
/// `{"error": "usage", "message": …, "problems": [{"file", "line", "column",
/// "message", "label", "help"}]}` (no problems for a missing or unreadable
/// file).
pub fn config_error_json(path: &Path, err: &config::ConfigError) -> serde_json::Value {
    let file = path.display().to_string();
    let mut problems: Vec<serde_json::Value> = err
        .problems()
        .iter()
        .map(|problem| {
            let (line, column) = problem.line_column();
            serde_json::json!({
                "file": file,
                "line": line,
                "column": column,
                "message": problem.message(),
                "label": problem.label(),
                "help": problem.help_text(),
            })
        })
        .collect();
    if let config::ConfigError::NotUtf8 {
        line,
        column,
        offset,
        ..
    } = err
    {
        problems.push(serde_json::json!({
            "file": file,
            "line": line,
            "column": column,
            "offset": offset,
            "message": "invalid UTF-8",
            "label": "not UTF-8",
            "help": "save the file as UTF-8 text",
        }));
    }
    serde_json::json!({
        "error": CliError::new(exit::USAGE, "").error_name(),
        "message": err.to_string(),
        "problems": problems,
    })
}

/// True when output may be coloured.
pub fn use_color() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty()) && std::io::stderr().is_terminal()
}

/// A client for the daemon of this config.
pub fn client(config: &Config) -> Result<ApiClient, CliError> {
    let token = token::for_client(&token::token_path(&config.base_dir))?;
    match &config.server.tls {
        Some(tls) => {
            let pinned = crate::api::tls::pinned_client_config(&tls.cert).map_err(|e| {
                CliError::new(
                    exit::FAILURE,
                    format!(
                        "the API speaks HTTPS ([server] tls) and its certificate cannot be read: {e}"
                    ),
                )
            })?;
            Ok(ApiClient::with_tls(config.server.listen, token, pinned))
        }
        None => Ok(ApiClient::new(config.server.listen, token)),
    }
}

/// Set once a command has printed its JSON answer on stdout.
static PRINTED_JSON: AtomicBool = AtomicBool::new(false);

/// Prints a value as pretty JSON on stdout.
pub fn print_json<T: Serialize>(value: &T) -> Result<(), CliError> {
    let text = serde_json::to_string_pretty(value)
        .map_err(|e| CliError::new(exit::FAILURE, format!("cannot encode JSON: {e}")))?;
    println!("{text}");
    PRINTED_JSON.store(true, Ordering::SeqCst);
    Ok(())
}

/// The JSON a `--json` command prints on stdout when it fails before
/// printing its answer: `{"error": CODE, "message": …}`, the shape of the
/// API's errors (`CODE` is [`CliError::error_name`]).
pub fn json_error(e: &CliError) -> serde_json::Value {
    // The message may be rendered for a terminal (a coloured config error):
    // its escape sequences have no place in JSON; its lines stay.
    let message = crate::label::without_escapes(&e.message);
    serde_json::json!({ "error": e.error_name(), "message": message })
}

/// Prints [`json_error`] on stdout, unless the command already printed its
/// JSON answer (a report that carries the error itself, such as a failed
/// deployment's detail or a `migrate up` report).
pub fn print_json_error(e: &CliError) {
    if !PRINTED_JSON.load(Ordering::SeqCst) {
        let _ = print_json(&json_error(e));
    }
}

/// `user@host` of whoever runs the CLI.
pub fn requested_by() -> String {
    let user = std::env::var("USER")
        .or_else(|_| std::env::var("LOGNAME"))
        .unwrap_or_else(|_| "unknown".into());
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .unwrap_or_else(|_| "localhost".into());
    format!("{user}@{host}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_json_error_has_the_api_shape_without_terminal_escapes() {
        let e = CliError::new(
            exit::USAGE,
            "\u{1b}[31m×\u{1b}[0m bad config\n  help: fix it",
        );
        assert_eq!(
            json_error(&e),
            serde_json::json!({ "error": "usage", "message": "× bad config\n  help: fix it" })
        );
    }
}
