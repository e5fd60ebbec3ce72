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

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    use futures_util::StreamExt;

    use super::*;

    fn text(chunks: &[io::Result<Bytes>]) -> String {
        chunks
            .iter()
            .map(|c| String::from_utf8_lossy(c.as_ref().expect("chunk")).into_owned())
            .collect()
    }

    #[tokio::test]
    async fn the_last_lines_or_all_of_a_file() {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(b"one\ntwo\nthree\n").expect("write");
        let path = f.path().to_path_buf();
        let tail: Vec<_> = stream(path.clone(), Some(2), false, || false)
            .collect()
            .await;
        assert_eq!(text(&tail), "two\nthree\n");
        let all: Vec<_> = stream(path, None, false, || false).collect().await;
        assert_eq!(text(&all), "one\ntwo\nthree\n");
    }

    #[tokio::test]
    async fn following_reads_appended_output_until_the_instance_stops() {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(b"before\n").expect("write");
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let reader = tokio::spawn(
            stream(f.path().to_path_buf(), Some(1), true, move || {
                flag.load(Ordering::SeqCst)
            })
            .collect::<Vec<_>>(),
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.write_all(b"during\n").expect("write");
        tokio::time::sleep(Duration::from_millis(300)).await;
        f.write_all(b"last words\n").expect("write");
        running.store(false, Ordering::SeqCst);
        let chunks = tokio::time::timeout(Duration::from_secs(5), reader)
            .await
            .expect("the stream ends once the instance stopped")
            .expect("join");
        assert_eq!(text(&chunks), "before\nduring\nlast words\n");
    }
}
