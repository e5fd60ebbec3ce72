//! Streaming an instance's log file for `cutover logs`: its last lines (or
//! all of it), then, when following, whatever is appended, until the instance
//! has stopped and nothing more arrives.

use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::logs;

/// How often a followed file is checked for more.
const POLL: Duration = Duration::from_millis(200);
/// Largest chunk read at once.
const CHUNK: usize = 64 * 1024;

/// The file at `path`: the last `tail` lines (all with `None`), then with
/// `follow` the bytes appended to it while `running()` holds (and what was
/// written just before it stopped).
pub fn stream(
    path: PathBuf,
    tail: Option<usize>,
    follow: bool,
    running: impl Fn() -> bool + Send + Sync + 'static,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    enum Phase {
        Start,
        Follow(tokio::fs::File),
        Done,
    }
    let running = std::sync::Arc::new(running);
    futures_util::stream::unfold(Phase::Start, move |phase| {
        let path = path.clone();
        let running = running.clone();
        async move {
            match phase {
                Phase::Start => {
                    let first = match tail {
                        Some(n) => logs::tail(&path, n).map(|lines| {
                            let mut text = lines.join("\n");
                            if !text.is_empty() {
                                text.push('\n');
                            }
                            Bytes::from(text)
                        }),
                        None => tokio::fs::read(&path).await.map(Bytes::from),
                    };
                    let first = match first {
                        Ok(b) => b,
                        Err(e) => return Some((Err(e), Phase::Done)),
                    };
                    if !follow {
                        return Some((Ok(first), Phase::Done));
                    }
                    let mut file = match tokio::fs::File::open(&path).await {
                        Ok(f) => f,
                        Err(e) => return Some((Err(e), Phase::Done)),
                    };
                    if let Err(e) = file.seek(SeekFrom::End(0)).await {
                        return Some((Err(e), Phase::Done));
                    }
                    Some((Ok(first), Phase::Follow(file)))
                }
                Phase::Follow(mut file) => loop {
                    // Asked before reading, so the last words of an instance
                    // that just stopped are still read.
                    let alive = running();
                    let mut buf = vec![0u8; CHUNK];
                    match file.read(&mut buf).await {
                        Ok(0) if alive => tokio::time::sleep(POLL).await,
                        Ok(0) => return None,
                        Ok(n) => {
                            buf.truncate(n);
                            return Some((Ok(Bytes::from(buf)), Phase::Follow(file)));
                        }
                        Err(e) => return Some((Err(e), Phase::Done)),
                    }
                },
                Phase::Done => None,
            }
        }
    })
}
