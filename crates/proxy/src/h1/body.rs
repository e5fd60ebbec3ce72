//! Response bodies on the fast path: found by their framing (length, chunked
//! or until close) and passed from the upstream connection's buffer to the
//! client as they arrive — the head and the first bytes of the body in one
//! vectored write, then each read as one write. Chunked bodies pass as they
//! came (chunk sizes, extensions and trailers included); [`Chunked`] only
//! finds where they end.

use std::io::IoSlice;

use bytes::Buf;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::parse::Framing;
use super::upstream::{READ_CHUNK, UpstreamConn};
use crate::body::Finish;

/// Finds the end of a chunked body fed to it piece by piece.
#[derive(Debug, Clone, Default)]
pub(crate) struct Chunked {
    state: State,
    size: u64,
    digits: usize,
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
enum State {
    #[default]
    Size,
    Extension,
    SizeLf,
    Data,
    DataCr,
    DataLf,
    /// At the start of a trailer line (or of the final empty line).
    TrailerStart,
    TrailerLine,
    EndLf,
    Done,
}

/// The chunked framing is broken.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct BadChunk;

impl Chunked {
    /// Scans `bytes`: `Some(n)` when the body ends after the first `n`
    /// bytes, `None` when all of them belong to it and more are to come.
    pub(crate) fn scan(&mut self, bytes: &[u8]) -> Result<Option<usize>, BadChunk> {
        let mut i = 0;
        while i < bytes.len() {
            let b = bytes[i];
            match self.state {
                State::Size => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        let digit = u64::from(match b {
                            b'0'..=b'9' => b - b'0',
                            b'a'..=b'f' => b - b'a' + 10,
                            _ => b - b'A' + 10,
                        });
                        self.size = self
                            .size
                            .checked_mul(16)
                            .and_then(|s| s.checked_add(digit))
                            .ok_or(BadChunk)?;
                        self.digits += 1;
                    }
                    b';' | b' ' | b'\t' if self.digits > 0 => self.state = State::Extension,
                    b'\r' if self.digits > 0 => self.state = State::SizeLf,
                    _ => return Err(BadChunk),
                },
                State::Extension => {
                    if b == b'\r' {
                        self.state = State::SizeLf;
                    } else if b == b'\n' {
                        return Err(BadChunk);
                    }
                }
                State::SizeLf => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.state = if self.size == 0 {
                        State::TrailerStart
                    } else {
                        State::Data
                    };
                }
                State::Data => {
                    let room = u64::try_from(bytes.len() - i).unwrap_or(u64::MAX);
                    let take = self.size.min(room);
                    self.size -= take;
                    i += usize::try_from(take).unwrap_or(usize::MAX);
                    if self.size == 0 {
                        self.state = State::DataCr;
                    }
                    continue;
                }
                State::DataCr => {
                    if b != b'\r' {
                        return Err(BadChunk);
                    }
                    self.state = State::DataLf;
                }
                State::DataLf => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.state = State::Size;
                    self.size = 0;
                    self.digits = 0;
                }
                State::TrailerStart => {
                    self.state = if b == b'\r' {
                        State::EndLf
                    } else {
                        State::TrailerLine
                    };
                }
                State::TrailerLine => {
                    if b == b'\n' {
                        self.state = State::TrailerStart;
                    }
                }
                State::EndLf => {
                    if b != b'\n' {
                        return Err(BadChunk);
                    }
                    self.state = State::Done;
                    return Ok(Some(i + 1));
                }
                State::Done => return Ok(Some(i)),
            }
            i += 1;
        }
        Ok((self.state == State::Done).then_some(i))
    }
}

/// How passing a response on ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Relayed {
    /// The whole body reached the client; the upstream connection is clean
    /// (nothing after the body) unless the body ran until close.
    Complete { clean: bool },
    /// The upstream broke off (or broke the framing) mid-body.
    UpstreamBroke,
    /// The client went away.
    ClientGone,
}

/// Where the body ends within what has been read so far.
struct Progress {
    framing: Framing,
    left: u64,
    chunked: Chunked,
}

impl Progress {
    /// How many of `bytes` belong to the body, and whether it ended there.
    fn take(&mut self, bytes: &[u8]) -> Result<(usize, bool), BadChunk> {
        match self.framing {
            Framing::Empty => Ok((0, true)),
            Framing::Close => Ok((bytes.len(), false)),
            Framing::Length(_) => {
                let n = usize::try_from(self.left)
                    .unwrap_or(usize::MAX)
                    .min(bytes.len());
                self.left -= n as u64;
                Ok((n, self.left == 0))
            }
            Framing::Chunked => match self.chunked.scan(bytes)? {
                Some(n) => Ok((n, true)),
                None => Ok((bytes.len(), false)),
            },
        }
    }
}

/// Writes `head` and the response body from `upstream` to `client`. The
/// upstream's buffer holds what was read after its head.
///
/// `finish` (the request's bookkeeping) is dropped as soon as the body's end
/// has been read and before its last bytes are written, as hyper's path does:
/// a client that has the whole response finds the request already recorded.
pub(crate) async fn relay<C>(
    client: &mut C,
    head: &[u8],
    upstream: &mut UpstreamConn,
    framing: Framing,
    finish: &mut Option<Finish>,
) -> Relayed
where
    C: AsyncWrite + Unpin,
{
    let mut progress = Progress {
        framing,
        left: match framing {
            Framing::Length(n) => n,
            _ => 0,
        },
        chunked: Chunked::default(),
    };
    let Ok((n, mut done)) = progress.take(&upstream.buf) else {
        return Relayed::UpstreamBroke;
    };
    if done {
        drop(finish.take());
    }
    if write_two(client, head, &upstream.buf[..n]).await.is_err() {
        return Relayed::ClientGone;
    }
    upstream.buf.advance(n);
    while !done {
        if !upstream.buf.is_empty() {
            // Bytes past the body's end: only possible when it ended.
            break;
        }
        upstream.buf.clear();
        upstream.buf.reserve(READ_CHUNK);
        match upstream.stream.read_buf(&mut upstream.buf).await {
            Ok(0) if framing == Framing::Close => {
                drop(finish.take());
                break;
            }
            Ok(0) | Err(_) => return Relayed::UpstreamBroke,
            Ok(_) => {}
        }
        let Ok((n, ended)) = progress.take(&upstream.buf) else {
            return Relayed::UpstreamBroke;
        };
        if ended {
            drop(finish.take());
        }
        if client.write_all(&upstream.buf[..n]).await.is_err() {
            return Relayed::ClientGone;
        }
        upstream.buf.advance(n);
        done = ended;
    }
    if client.flush().await.is_err() {
        return Relayed::ClientGone;
    }
    Relayed::Complete {
        clean: upstream.buf.is_empty() && framing != Framing::Close,
    }
}

/// Writes `a` then `b` with as few writes as the stream allows.
pub(crate) async fn write_two<C>(client: &mut C, a: &[u8], b: &[u8]) -> std::io::Result<()>
where
    C: AsyncWrite + Unpin,
{
    let mut slices = [IoSlice::new(a), IoSlice::new(b)];
    let mut bufs = &mut slices[..];
    IoSlice::advance_slices(&mut bufs, 0);
    while !bufs.is_empty() {
        let n = client.write_vectored(bufs).await?;
        if n == 0 {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut bufs, n);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunked_ends_are_found_across_pieces() {
        let body = b"5;ext=1\r\nhello\r\n0\r\nTrailer: x\r\n\r\nNEXT";
        let end = body.len() - 4;
        for split in 0..end {
            let mut c = Chunked::default();
            let first = c.scan(&body[..split]).expect("valid");
            assert_eq!(first, None, "split at {split}");
            let second = c.scan(&body[split..]).expect("valid");
            assert_eq!(second, Some(end - split), "split at {split}");
        }
        let mut c = Chunked::default();
        assert_eq!(c.scan(b"0\r\n\r\n"), Ok(Some(5)));
    }

    #[test]
    fn broken_chunked_framing_is_refused() {
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloXX",
            b"\r\n",
            b"ffffffffffffffffff\r\n",
        ] {
            assert_eq!(Chunked::default().scan(bad), Err(BadChunk), "{bad:?}");
        }
    }
}
