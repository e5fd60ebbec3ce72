//! `cutover check` (validate and summarise the config) and `cutover schema`
//! (its JSON Schema).

use std::path::Path;

use super::output;
use crate::exit::CliError;

/// Validates the config; prints a summary (or the resolved config as JSON).
pub fn check(path: &Path, json: bool) -> Result<(), CliError> {
    let config = output::load_config_checked(path)?;
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
