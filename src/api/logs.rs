//! `GET /v1/logs`: the output of a service's instances, for `cutover logs`.
//!
//! Query: `service` (required), `environment` (may be left out when there is
//! one), `release` (default: the serving release, or every running instance
//! when none of it runs), `tail` (last lines of each instance; default all),
//! `follow` (keep the answer open and stream new output until the instances
//! stop). The answer is `text/plain`, streamed; with several instances each
//! line starts with the instance's id. Works for every driver: log files for
//! processes, the engine's logs for containers.

use axum::body::Body;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use futures_util::StreamExt;
use serde::Deserialize;

use super::extract::Query;
use super::server::{ApiError, ApiState};
use crate::drivers::LogStream;

/// The query of `GET /v1/logs`.
#[derive(Debug, Deserialize)]
pub struct LogsQuery {
    /// The service.
    pub service: String,
    /// The environment.
    pub environment: Option<String>,
    /// Only this release.
    pub release: Option<String>,
    /// Last lines per instance (all when absent).
    pub tail: Option<usize>,
    /// Stream new output until the instances stop.
    #[serde(default)]
    pub follow: bool,
}

/// The handler.
pub async fn logs(
    State(state): State<ApiState>,
    Query(q): Query<LogsQuery>,
) -> Result<Response, ApiError> {
    let daemon = &state.daemon;
    if let Some(release) = &q.release {
        crate::label::check_version(release).map_err(|e| ApiError::bad_request(e.to_string()))?;
    }
    let env = daemon.environment(q.environment.as_deref())?;
    if !daemon.config().services.contains_key(&q.service) {
        return Err(ApiError::bad_request(format!(
            "no service named {:?}; the config has {}",
            q.service,
            daemon
                .config()
                .services
                .keys()
                .cloned()
                .collect::<Vec<_>>()
                .join(", ")
        )));
    }
    let running: Vec<_> = env
        .instances()
        .into_iter()
        .filter(|i| i.service == q.service)
        .collect();
    let release = match &q.release {
        Some(r) => Some(r.clone()),
        None => daemon
            .store()
            .serving(env.name())
            .await?
            .map(|s| s.current)
            .filter(|v| running.iter().any(|i| &i.version == v)),
    };
    let chosen: Vec<_> = running
        .into_iter()
        .filter(|i| release.as_ref().is_none_or(|r| &i.version == r))
        .collect();
    if chosen.is_empty() {
        return Err(ApiError::not_found(format!(
            "no running instance of {}{} in {}",
            q.service,
            release.map(|r| format!(" at {r}")).unwrap_or_default(),
            env.name()
        )));
    }
    let prefix = chosen.len() > 1;
    let mut streams = Vec::new();
    for inst in &chosen {
        let stream = daemon
            .drivers()
            .logs(&inst.handle, q.tail, q.follow)
            .await
            .map_err(|e| ApiError::internal(e.to_string()))?;
        streams.push(if prefix {
            prefixed(stream, format!("{} | ", inst.id))
        } else {
            stream
        });
    }
    let merged = futures_util::stream::select_all(streams)
        .map(|chunk| chunk.map_err(|e| std::io::Error::other(e.to_string())));
    Ok((
        StatusCode::OK,
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        Body::from_stream(merged),
    )
        .into_response())
}

/// The most bytes of a line [`prefixed`] holds while waiting for its end: a
/// longer line is passed on in pieces of this size, each on a line of its
/// own, so that an instance writing without newlines cannot make the
/// daemon buffer its whole output.
const MAX_PARTIAL: usize = 64 * 1024;

/// Starts every line of `stream` with `prefix` (a partial last line is held
/// until it is complete, the stream ends, or it reaches [`MAX_PARTIAL`]).
fn prefixed(stream: LogStream, prefix: String) -> LogStream {
    let state = (stream, Vec::<u8>::new(), false);
    Box::pin(futures_util::stream::unfold(
        state,
        move |(mut stream, mut partial, done)| {
            let prefix = prefix.clone();
            async move {
                if done {
                    return None;
                }
                loop {
                    match stream.next().await {
                        Some(Ok(chunk)) => {
                            partial.extend_from_slice(&chunk);
                            let Some(last_newline) = partial.iter().rposition(|b| *b == b'\n')
                            else {
                                if partial.len() >= MAX_PARTIAL {
                                    partial.push(b'\n');
                                    let out = with_prefix(&partial, &prefix);
                                    return Some((Ok(out), (stream, Vec::new(), false)));
                                }
                                continue;
                            };
                            let rest = partial.split_off(last_newline + 1);
                            let out = with_prefix(&partial, &prefix);
                            return Some((Ok(out), (stream, rest, false)));
                        }
                        Some(Err(e)) => return Some((Err(e), (stream, partial, true))),
                        None if partial.is_empty() => return None,
                        None => {
                            partial.push(b'\n');
                            let out = with_prefix(&partial, &prefix);
                            return Some((Ok(out), (stream, Vec::new(), true)));
                        }
                    }
                }
            }
        },
    ))
}

fn with_prefix(lines: &[u8], prefix: &str) -> Bytes {
    let mut out = Vec::with_capacity(lines.len() + prefix.len() * 4);
    for line in lines.split_inclusive(|b| *b == b'\n') {
        out.extend_from_slice(prefix.as_bytes());
        out.extend_from_slice(line);
    }
    Bytes::from(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn prefixes_whole_lines_across_chunks() {
        let chunks: Vec<Result<Bytes, crate::drivers::DriverError>> = vec![
            Ok(Bytes::from_static(b"one\ntw")),
            Ok(Bytes::from_static(b"o\n")),
            Ok(Bytes::from_static(b"three")),
        ];
        let stream: LogStream = Box::pin(futures_util::stream::iter(chunks));
        let out: Vec<Bytes> = prefixed(stream, "a | ".into())
            .map(|c| c.expect("chunk"))
            .collect()
            .await;
        let text: String = out
            .iter()
            .map(|b| String::from_utf8_lossy(b).into_owned())
            .collect();
        assert_eq!(text, "a | one\na | two\na | three\n");
    }

    #[tokio::test]
    async fn a_line_without_end_is_passed_on_in_pieces() {
        let chunk = Bytes::from(vec![b'x'; 40 * 1024]);
        let chunks: Vec<Result<Bytes, crate::drivers::DriverError>> =
            (0..10).map(|_| Ok(chunk.clone())).collect();
        let stream: LogStream = Box::pin(futures_util::stream::iter(chunks));
        let out: Vec<Bytes> = prefixed(stream, "a | ".into())
            .map(|c| c.expect("chunk"))
            .collect()
            .await;
        assert!(out.len() >= 5, "{} pieces", out.len());
        assert!(out.iter().all(|b| b.len() <= MAX_PARTIAL + 40 * 1024 + 8));
        let total: usize = out
            .iter()
            .map(|b| b.iter().filter(|c| **c == b'x').count())
            .sum();
        assert_eq!(total, 400 * 1024, "nothing lost");
    }
}
