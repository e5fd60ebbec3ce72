//! `cutover events [-e ENV] [--limit N] [--follow]`: the events of every
//! deployment and of the environments (certificates, supervision), oldest
//! first; with `--follow`, then what comes next, as it happens, from the
//! API's server-sent event stream (`GET /v1/events/stream`). A dropped
//! stream (the daemon restarts, stops or hands over) is picked up again
//! from the last event's id, so nothing is missed or printed twice; Ctrl-C
//! ends it (exit 0). `--json`: one JSON object per line.
//!
//! [`follow`] is also what `cutover status --watch` redraws on.

use std::io::Write;
use std::path::Path;
use std::time::Duration;

use super::output;
use crate::api::client::{ApiClient, ClientError};
use crate::api::wire::{ErrorCode, FeedEvent};
use crate::exit::CliError;
use crate::label::{printable, printable_lines};

/// First wait before reconnecting; doubled up to [`MAX_RETRY`].
const FIRST_RETRY: Duration = Duration::from_millis(250);
const MAX_RETRY: Duration = Duration::from_secs(2);

/// `cutover events`.
pub async fn events(
    path: &Path,
    environment: Option<&str>,
    limit: u32,
    follow_on: bool,
    json: bool,
) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let client = output::client(&config)?;
    let feed = client.event_feed(environment, limit).await?;
    let gone = std::cell::Cell::new(false);
    let print = |event: &FeedEvent| {
        let line = if json {
            serde_json::to_string(event).map_err(std::io::Error::other)?
        } else {
            render(event)
        };
        let mut out = std::io::stdout().lock();
        let written = writeln!(out, "{line}").and_then(|()| out.flush());
        // The reader went away (`| head`): stop quietly.
        if written.is_err() {
            gone.set(true);
        }
        written
    };
    for event in &feed.events {
        if print(event).is_err() {
            return Ok(());
        }
    }
    if !follow_on {
        if feed.events.is_empty() && !json {
            eprintln!("no events yet");
        }
        return Ok(());
    }
    let followed = follow(&client, environment, feed.cursor, true, |e| print(&e));
    tokio::select! {
        result = followed => {
            match result {
                Err(_) if gone.get() => Ok(()),
                other => other,
            }
        }
        _ = tokio::signal::ctrl_c() => Ok(()),
    }
}

/// Follows the event stream from `cursor` for ever: `on_event` gets each
/// event once, in order. A dropped stream is resumed from the last event's
/// cursor after a short wait (`say`: and a line on stderr saying so). Ends
/// only with an error the daemon answers (bad request, token refused) or
/// one `on_event` returns.
pub async fn follow(
    client: &ApiClient,
    environment: Option<&str>,
    mut cursor: String,
    say: bool,
    mut on_event: impl FnMut(FeedEvent) -> std::io::Result<()>,
) -> Result<(), CliError> {
    let mut wait = FIRST_RETRY;
    let mut said = false;
    loop {
        let mut last = None;
        let mut failed_write = None;
        let result = client
            .event_stream(environment, &cursor, |event| {
                last = Some(event.cursor.clone());
                on_event(event).inspect_err(|e| failed_write = Some(e.to_string()))
            })
            .await;
        if let Some(e) = failed_write {
            return Err(CliError::new(
                crate::exit::FAILURE,
                format!("writing the events: {e}"),
            ));
        }
        if let Some(last) = last {
            cursor = last;
            wait = FIRST_RETRY;
            said = false;
        }
        let why = match result {
            Ok(()) => "the daemon ended the event stream (it stopped or handed over)".to_owned(),
            Err(e) if matches!(&e, ClientError::Api { code, .. } if fatal(*code)) => {
                return Err(CliError::from(e));
            }
            Err(e) => e.to_string(),
        };
        if say && !said {
            eprintln!("cutover: {why}; reconnecting from event {cursor}");
            said = true;
        }
        tokio::time::sleep(wait).await;
        wait = wait.saturating_mul(2).min(MAX_RETRY);
    }
}

/// Answers that another try would get again.
fn fatal(code: ErrorCode) -> bool {
    matches!(
        code,
        ErrorCode::BadRequest
            | ErrorCode::Unauthorized
            | ErrorCode::Forbidden
            | ErrorCode::NotFound
    )
}

/// One event as a line for people: time, environment, the deployment and
/// its version (for a deployment's event), kind, message.
pub fn render(e: &FeedEvent) -> String {
    let whose = match (e.deployment_id, &e.version) {
        (Some(id), Some(v)) => format!("#{id} {}", printable(v)),
        (Some(id), None) => format!("#{id}"),
        _ => "-".to_owned(),
    };
    format!(
        "{} {} {} {:<17} {}",
        e.at,
        printable(&e.environment),
        whose,
        printable(&e.kind),
        printable_lines(&e.message, "\n    ")
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(deployment: Option<i64>) -> FeedEvent {
        FeedEvent {
            cursor: "3-1".into(),
            source: if deployment.is_some() {
                "deployment"
            } else {
                "environment"
            }
            .into(),
            environment: "production".into(),
            deployment_id: deployment,
            version: deployment.map(|_| "v2".into()),
            id: 3,
            at: "2024-05-01T12:00:00Z".parse().expect("time"),
            kind: "step".into(),
            message: "canary at 20%\nsecond \u{1b}[31mline".into(),
            data: serde_json::json!({}),
        }
    }

    #[test]
    fn an_event_is_one_line_per_message_line_without_escapes() {
        assert_eq!(
            render(&event(Some(7))),
            "2024-05-01T12:00:00Z production #7 v2 step              canary at 20%\n    second ?line"
        );
        assert!(render(&event(None)).starts_with("2024-05-01T12:00:00Z production - step"));
    }

    #[test]
    fn only_answers_that_would_repeat_end_the_follow() {
        assert!(fatal(ErrorCode::Unauthorized));
        assert!(fatal(ErrorCode::BadRequest));
        assert!(!fatal(ErrorCode::Internal));
        assert!(!fatal(ErrorCode::Store));
    }
}
