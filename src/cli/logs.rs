//! `cutover logs SERVICE [--release R] [--follow] [--tail N] [--env E]`: the
//! output of a service's running instances, from the daemon (log files for
//! processes, the engine's logs for containers), printed as it arrives.

use std::io::Write;
use std::path::Path;

use super::output;
use crate::api::wire::LogsRequest;
use crate::exit::CliError;

/// `cutover logs`.
pub async fn logs(path: &Path, request: LogsRequest) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let client = output::client(&config)?;
    let stdout = std::io::stdout();
    client
        .logs(&request, |chunk| {
            let mut out = stdout.lock();
            out.write_all(chunk)?;
            out.flush()
        })
        .await?;
    Ok(())
}
