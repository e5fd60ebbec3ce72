//! `cutover check` (validate and summarise the config) and `cutover schema`
//! (its JSON Schema).

use std::path::Path;

use super::output;
use crate::exit::{self, CliError};

/// Validates the config; prints a summary (or the resolved config as JSON).
/// With `json`, an invalid config is also printed as a JSON error on stdout
/// ([`output::config_error_json`]); the rendered error still goes to stderr.
pub fn check(path: &Path, json: bool) -> Result<(), CliError> {
    let config = if json {
        match crate::config::load_checked(path) {
            Ok(config) => config,
            Err(err) => {
                output::print_json(&output::config_error_json(path, &err))?;
                return Err(CliError::new(exit::USAGE, output::render_config_error(err)));
            }
        }
    } else {
        output::load_config_checked(path)?
    };
    if json {
        output::print_json(&config)
    } else {
        println!("{} is valid.\n", config.path.display());
        println!("{}", config.summary());
        Ok(())
    }
}

/// Prints the JSON Schema of the config file.
pub fn schema() -> Result<(), CliError> {
    output::print_json(&crate::config::json_schema())
}
