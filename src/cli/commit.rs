//! What `cutover deploy` says about the commit it releases, for the DORA
//! lead time: `--commit SHA`, the commit time from `CUTOVER_COMMIT_TIME`
//! (RFC 3339 or unix seconds) or else, when the config's folder is in a git
//! repository and `--commit` (or else the version) names a commit there,
//! from `git log -1 --format=%H %ct REF` run here, on the client. What git
//! does not know is left out, never an error; what the user wrote wrong is.

use std::path::Path;
use std::time::Duration;

use jiff::Timestamp;

use crate::dora::commit::{self, Commit};
use crate::exit::{self, CliError};

/// The variable with the commit time.
pub const COMMIT_TIME_VAR: &str = "CUTOVER_COMMIT_TIME";

/// How long `git log` may take.
const GIT_TIMEOUT: Duration = Duration::from_secs(10);

/// The commit of a deploy of `version` from the config in `dir`, with
/// `--commit` `sha` if given. Says on stderr (unless `quiet`) when a commit
/// id has no time.
pub async fn resolve(
    dir: &Path,
    version: &str,
    sha: Option<&str>,
    quiet: bool,
) -> Result<Commit, CliError> {
    let usage = |message: String| CliError::new(exit::USAGE, message);
    let now = Timestamp::now();
    let sha = sha
        .map(commit::check_sha)
        .transpose()
        .map_err(|e| usage(format!("--commit: {e}")))?;
    let time = match std::env::var(COMMIT_TIME_VAR) {
        Ok(text) if !text.trim().is_empty() => Some(
            commit::parse_time(&text)
                .and_then(|t| commit::check_time(t, now))
                .map_err(|e| usage(format!("{COMMIT_TIME_VAR}: {e}")))?,
        ),
        _ => None,
    };
    if time.is_some() {
        return Ok(Commit { sha, time });
    }
    let reference = sha.as_deref().unwrap_or(version);
    match git_commit(dir, reference).await {
        Some((full, time)) => Ok(Commit {
            // The id the user gave stays; git's full one otherwise.
            sha: sha.or(Some(full)),
            time: commit::check_time(time, now).ok(),
        }),
        None => {
            if let Some(sha) = &sha
                && !quiet
            {
                eprintln!(
                    "note: no time known for commit {sha}: set {COMMIT_TIME_VAR} (RFC 3339 or unix seconds), \
                     or deploy from the repository's folder; the DORA lead time leaves this deploy out"
                );
            }
            Ok(Commit { sha, time: None })
        }
    }
}

/// The full id and commit time of `reference` in the git repository `dir`
/// is in, if git runs and knows it.
async fn git_commit(dir: &Path, reference: &str) -> Option<(String, Timestamp)> {
    // A reference that looks like an option is never passed (a version
    // label cannot start with `-` anyway).
    if reference.starts_with('-') {
        return None;
    }
    let mut command = tokio::process::Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(["log", "-1", "--no-show-signature", "--format=%H %ct"])
        .arg(reference)
        .arg("--")
        .stdin(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(GIT_TIMEOUT, command.output())
        .await
        .ok()?
        .ok()?;
    if !output.status.success() {
        return None;
    }
    parse_log(&String::from_utf8_lossy(&output.stdout))
}

/// `HASH SECONDS` as `git log --format=%H %ct` prints it.
fn parse_log(text: &str) -> Option<(String, Timestamp)> {
    let (hash, seconds) = text.trim().split_once(' ')?;
    let hash = commit::check_sha(hash).ok()?;
    let time = Timestamp::from_second(seconds.trim().parse().ok()?).ok()?;
    Some((hash, time))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn git_log_output_is_read() {
        let sha = "a".repeat(40);
        let (hash, time) = parse_log(&format!("{sha} 1796374800\n")).expect("parsed");
        assert_eq!(hash, sha);
        assert_eq!(time.as_second(), 1_796_374_800);
        assert_eq!(parse_log(""), None);
        assert_eq!(parse_log("nothash 1796374800"), None);
        assert_eq!(parse_log(&format!("{sha} soon")), None);
    }
}
