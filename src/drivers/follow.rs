//! Streaming an instance's log file for `cutover logs`: its last lines (or
//! all of it), then, when following, whatever is appended, until the instance
//! has stopped and nothing more arrives. The file is read in chunks of
//! [`CHUNK`] from where its last lines begin (`logs::tail_start`), never
//! whole, so a large log costs the API no more memory than a small one.
//!
//! A follower notices a rotation (`rotate.rs`: the live file copied to a
//! new `.1`, then truncated) by `.1` being a new file that is longer than
//! the live one: it reads what it had not yet read from `.1`, then goes on
//! at the start of the live file. (With `max_files = 0` there is no copy:
//! it notices the live file becoming shorter than what it has read.) Two
//! rotations between two polls ([`POLL`]) lose the lines of the first one
//! to the follower (not to the files).

use std::io::{self, SeekFrom};
use std::path::PathBuf;
use std::time::Duration;

use bytes::Bytes;
use futures_util::Stream;
use tokio::io::{AsyncReadExt, AsyncSeekExt};

use super::{logs, rotate};

/// How often a followed file is checked for more.
const POLL: Duration = Duration::from_millis(200);
/// Largest chunk read at once.
const CHUNK: usize = 64 * 1024;

/// Where the stream is.
enum Phase {
    /// Nothing read yet.
    Start,
    /// Reading the live file at `pos`, up to `end` (`None`: following);
    /// `copy` is the rotated copy `.1` the follower knows of.
    Live {
        file: tokio::fs::File,
        pos: u64,
        end: Option<u64>,
        copy: Option<FileId>,
    },
    /// Reading what was missed from the rotated copy, then the live file
    /// from its start.
    Missed {
        rotated: tokio::fs::File,
        live: tokio::fs::File,
        copy: Option<FileId>,
    },
    Done,
}

/// The file at `path`: the last `tail` lines (all with `None`), then with
/// `follow` the bytes appended to it while `running()` holds (and what was
/// written just before it stopped).
pub fn stream(
    path: PathBuf,
    tail: Option<usize>,
    follow: bool,
    running: impl Fn() -> bool + Send + Sync + 'static,
) -> impl Stream<Item = io::Result<Bytes>> + Send + 'static {
    let running = std::sync::Arc::new(running);
    futures_util::stream::unfold(Phase::Start, move |phase| {
        let path = path.clone();
        let running = running.clone();
        async move {
            let mut phase = phase;
            loop {
                match step(phase, &path, tail, follow, running.as_ref()).await {
                    Step::Yield(result, next) => return Some((result, next)),
                    Step::Continue(next) => phase = next,
                    Step::End => return None,
                }
            }
        }
    })
}

enum Step {
    Yield(io::Result<Bytes>, Phase),
    Continue(Phase),
    End,
}

async fn step(
    phase: Phase,
    path: &std::path::Path,
    tail: Option<usize>,
    follow: bool,
    running: &(dyn Fn() -> bool + Send + Sync),
) -> Step {
    match phase {
        Phase::Start => match open_at_tail(path.to_path_buf(), tail).await {
            Ok((file, pos, len)) => Step::Continue(Phase::Live {
                file,
                pos,
                end: (!follow).then_some(len),
                copy: file_id(&rotate::numbered(path, 1)).await,
            }),
            Err(e) => Step::Yield(Err(e), Phase::Done),
        },
        Phase::Live {
            mut file,
            mut pos,
            end,
            mut copy,
        } => loop {
            // Asked before reading, so the last words of an instance that
            // just stopped are still read.
            let alive = running();
            let want = match end {
                Some(end) => usize::try_from(end.saturating_sub(pos))
                    .unwrap_or(CHUNK)
                    .min(CHUNK),
                None => CHUNK,
            };
            if want == 0 {
                return Step::End;
            }
            if end.is_none() {
                // Before each read: a rotated file is read on from its copy.
                match rotated_since(&mut file, path, pos, copy).await {
                    Ok(Rotation::No) => {}
                    Ok(Rotation::Yes {
                        missed: Some(rotated),
                        copy: now,
                        ..
                    }) => {
                        return Step::Continue(Phase::Missed {
                            rotated,
                            live: file,
                            copy: now,
                        });
                    }
                    Ok(Rotation::Yes {
                        missed: None,
                        live_pos,
                        copy: now,
                    }) => {
                        pos = live_pos;
                        copy = now;
                    }
                    Err(e) => return Step::Yield(Err(e), Phase::Done),
                }
            }
            let mut buf = vec![0u8; want];
            match file.read(&mut buf).await {
                Ok(0) if end.is_some() || !alive => return Step::End,
                Ok(0) => tokio::time::sleep(POLL).await,
                Ok(n) => {
                    buf.truncate(n);
                    let pos = pos.saturating_add(u64::try_from(n).unwrap_or(u64::MAX));
                    let next = Phase::Live {
                        file,
                        pos,
                        end,
                        copy,
                    };
                    return Step::Yield(Ok(Bytes::from(buf)), next);
                }
                Err(e) => return Step::Yield(Err(e), Phase::Done),
            }
        },
        Phase::Missed {
            mut rotated,
            live,
            copy,
        } => {
            let mut buf = vec![0u8; CHUNK];
            match rotated.read(&mut buf).await {
                Ok(0) => Step::Continue(Phase::Live {
                    file: live,
                    pos: 0,
                    end: None,
                    copy,
                }),
                Ok(n) => {
                    buf.truncate(n);
                    let next = Phase::Missed {
                        rotated,
                        live,
                        copy,
                    };
                    Step::Yield(Ok(Bytes::from(buf)), next)
                }
                Err(e) => Step::Yield(Err(e), Phase::Done),
            }
        }
        Phase::Done => Step::End,
    }
}

/// The file at `path` opened at the start of its last `tail` lines (at 0
/// with `None`), that position, and the file's length then.
async fn open_at_tail(
    path: PathBuf,
    tail: Option<usize>,
) -> io::Result<(tokio::fs::File, u64, u64)> {
    let (file, pos, len) = tokio::task::spawn_blocking(move || {
        let mut file = std::fs::File::open(&path)?;
        let len = file.metadata()?.len();
        let pos = match tail {
            Some(n) => logs::tail_start(&mut file, len, n)?,
            None => 0,
        };
        io::Result::Ok((file, pos, len))
    })
    .await
    .map_err(io::Error::other)??;
    let mut file = tokio::fs::File::from_std(file);
    file.seek(SeekFrom::Start(pos)).await?;
    Ok((file, pos, len))
}

/// A file's device, inode and change time: which file a name points at
/// (the change time tells a new file apart from a removed one whose inode
/// number it got).
type FileId = (u64, u64, i64, i64);

/// The [`FileId`] of the file at `path`, `None` when there is none.
async fn file_id(path: &std::path::Path) -> Option<FileId> {
    use std::os::unix::fs::MetadataExt;
    let meta = tokio::fs::metadata(path).await.ok()?;
    Some((meta.dev(), meta.ino(), meta.ctime(), meta.ctime_nsec()))
}

/// Whether a followed file was rotated.
enum Rotation {
    No,
    Yes {
        /// The rotated copy opened where the follower had got to, when it
        /// holds what was not read yet; the live file is then read from 0.
        missed: Option<tokio::fs::File>,
        /// Otherwise, where to go on in the live file (where it now is).
        live_pos: u64,
        /// The copy `.1` the follower now knows of.
        copy: Option<FileId>,
    },
}

/// Whether the live file was rotated since the follower read it up to
/// `pos`, knowing the copy `known` (see the module's comment). When it was,
/// the live file is moved to where the follower goes on in it.
async fn rotated_since(
    live: &mut tokio::fs::File,
    path: &std::path::Path,
    pos: u64,
    known: Option<FileId>,
) -> io::Result<Rotation> {
    let live_len = live.metadata().await?.len();
    let first = rotate::numbered(path, 1);
    let copy = file_id(&first).await;
    let copy_len = match copy {
        Some(id) if Some(id) != known => {
            // A new copy; once the live file is shorter than it, its start
            // has been removed (before that, the copy is being made).
            let copy_len = tokio::fs::metadata(&first).await.map_or(0, |m| m.len());
            if live_len >= copy_len {
                return Ok(Rotation::No);
            }
            Some(copy_len)
        }
        Some(_) => return Ok(Rotation::No),
        // No copies kept: a rotation shows as a file shorter than what was
        // read; the follower starts it again (and may see again up to a
        // block of what it had read, after a collapse).
        None if live_len < pos => None,
        None => return Ok(Rotation::No),
    };
    // The copy holds the live file's first `copy_len` bytes as they were:
    // the follower reads on in it, or, when it had read past them (a
    // collapse removes whole blocks only), in the live file where they end.
    let live_pos = match copy_len {
        Some(copy_len) if pos > copy_len => pos.saturating_sub(copy_len),
        _ => 0,
    };
    live.seek(SeekFrom::Start(live_pos)).await?;
    let missed = match copy_len {
        Some(copy_len) if pos < copy_len => {
            let path = path.to_path_buf();
            tokio::task::spawn_blocking(move || rotate::missed_before_rotation(&path, pos))
                .await
                .map_err(io::Error::other)??
                .map(tokio::fs::File::from_std)
        }
        _ => None,
    };
    Ok(Rotation::Yes {
        missed,
        live_pos,
        copy,
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

    #[tokio::test]
    async fn following_goes_on_across_a_rotation_without_losing_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("i.log");
        let mut writer = super::rotate::open_log(&path).expect("open");
        writer.write_all(b"one\n").expect("write");
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let mut followed = Box::pin(stream(path.clone(), Some(10), true, move || {
            flag.load(Ordering::SeqCst)
        }));
        let first = followed.next().await.expect("a chunk").expect("read");
        assert_eq!(&first[..], b"one\n");
        // Written and rotated away while the follower waits, and the live
        // file then longer than what the follower had read.
        writer.write_all(b"two\nthree\n").expect("write");
        super::rotate::rotate(&path, 2).expect("rotate");
        writer.write_all(b"four\nfive\n").expect("write");
        running.store(false, Ordering::SeqCst);
        let rest: Vec<_> = tokio::time::timeout(Duration::from_secs(5), followed.collect())
            .await
            .expect("the stream ends once the instance stopped");
        assert_eq!(text(&rest), "two\nthree\nfour\nfive\n");
    }

    #[tokio::test]
    async fn a_whole_file_is_streamed_in_chunks() {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        let line = "0123456789".repeat(10) + "\n";
        for _ in 0..3000 {
            f.write_all(line.as_bytes()).expect("write");
        }
        let chunks: Vec<_> = stream(f.path().to_path_buf(), None, false, || false)
            .collect()
            .await;
        assert!(chunks.len() > 1, "{} chunks", chunks.len());
        assert!(
            chunks
                .iter()
                .all(|c| c.as_ref().expect("chunk").len() <= CHUNK)
        );
        assert_eq!(text(&chunks), line.repeat(3000));
    }

    #[tokio::test]
    async fn following_goes_on_across_a_collapse_without_losing_or_repeating_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("i.log");
        let mut writer = super::rotate::open_log(&path).expect("open");
        let line = |i: usize| format!("line {i:05} {}\n", "y".repeat(50));
        let mut all = String::new();
        for i in 0..300 {
            writer.write_all(line(i).as_bytes()).expect("write");
            all.push_str(&line(i));
        }
        let running = Arc::new(AtomicBool::new(true));
        let flag = running.clone();
        let mut followed = Box::pin(stream(path.clone(), None, true, move || {
            flag.load(Ordering::SeqCst)
        }));
        let mut got = Vec::new();
        while got.len() < all.len() {
            let chunk = followed.next().await.expect("a chunk").expect("read");
            got.extend_from_slice(&chunk);
        }
        let rotated = super::rotate::rotate(&path, 2).expect("rotate");
        assert!(
            matches!(rotated, super::rotate::Rotated::Collapsed(_)),
            "this test needs a file system that collapses ranges (ext4, XFS): {rotated:?}"
        );
        for i in 300..320 {
            writer.write_all(line(i).as_bytes()).expect("write");
            all.push_str(&line(i));
        }
        running.store(false, Ordering::SeqCst);
        let rest: Vec<_> = tokio::time::timeout(Duration::from_secs(5), followed.collect())
            .await
            .expect("the stream ends once the instance stopped");
        got.extend_from_slice(text(&rest).as_bytes());
        assert_eq!(String::from_utf8_lossy(&got), all);
    }
}
