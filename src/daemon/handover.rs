//! The hand-over between a daemon and the one that replaces it (`cutover
//! upgrade`, `cutover reload`, SIGUSR2, SIGHUP): how the old daemon starts
//! the new one with its sockets and lock, and the few messages they trade
//! over a socket pair passed the same way (`cutover-handover`).
//!
//! ```text
//! old daemon                              new daemon
//!   spawn (binary at its path now) ──────►  config, lock, store, listeners
//!                                  ◄──────  prepared {pid}   (or failed {error})
//!   pause releases, stop API accept
//!   go ──────────────────────────────────►  adopt instances, restore releases,
//!                                           accept on every listener
//!                                  ◄──────  ready {pid}      (or failed {error})
//!   stop accepting, drain, exit
//! ```
//!
//! Until `ready`, the old daemon can take everything back: the new one
//! failing, or dying, before `prepared` changes nothing; after `go` the old
//! one resumes its releases. Messages are JSON lines.

use std::ffi::OsString;
use std::os::fd::{AsRawFd, OwnedFd};
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::UnixStream;
use tokio::net::unix::{OwnedReadHalf, OwnedWriteHalf};

use super::fds::{self, Inherited};

/// The name of the hand-over's socket among the passed descriptors.
pub const CHANNEL_NAME: &str = "cutover-handover";
/// How long the new daemon may take to load its config and open the store.
const PREPARE_TIMEOUT: Duration = Duration::from_secs(60);
/// How long it may take to adopt the instances and start serving.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// How long the new daemon waits for `go`.
const GO_TIMEOUT: Duration = Duration::from_secs(300);
/// The longest message read.
const MAX_MESSAGE: u64 = 64 * 1024;

/// What the two daemons say to each other.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Message {
    Prepared { pid: u32 },
    Go,
    Ready { pid: u32 },
    Failed { error: String },
}

/// Why a hand-over did not happen.
#[derive(Debug, thiserror::Error)]
pub enum HandoverError {
    /// The new daemon could not be started at all.
    #[error("cannot start the new daemon {exe}: {source}")]
    Spawn {
        exe: String,
        #[source]
        source: std::io::Error,
    },
    /// It said why it failed.
    #[error("the new daemon failed: {0}")]
    Failed(String),
    /// It exited without saying why.
    #[error(
        "the new daemon exited before it was ready ({0}); its log (this daemon's stderr) says why"
    )]
    Exited(String),
    /// It took too long.
    #[error("the new daemon was not {what} within {timeout:?}; it was stopped")]
    Timeout {
        what: &'static str,
        timeout: Duration,
    },
    /// The channel broke.
    #[error("the hand-over channel failed: {0}")]
    Channel(String),
    /// This daemon cannot hand over.
    #[error("{0}")]
    Unsupported(String),
}

/// How to start this daemon again: the binary at the path it was started
/// from (so a binary replaced since is an upgrade) with the same arguments.
#[derive(Debug, Clone)]
pub struct Relaunch {
    exe: PathBuf,
    args: Vec<OsString>,
}

impl Relaunch {
    /// The binary and arguments of this process, read at start (before the
    /// binary can be replaced).
    pub fn this_process() -> Option<Relaunch> {
        let exe = std::env::current_exe().ok()?;
        let args = std::env::args_os().skip(1).collect();
        Some(Relaunch { exe, args })
    }
}

/// The old daemon's side: the new daemon it started.
pub struct Successor {
    child: tokio::process::Child,
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Successor {
    /// Starts the new daemon with `passed` (name, descriptor) and the
    /// hand-over channel.
    pub fn spawn(
        relaunch: &Relaunch,
        passed: &[(String, std::os::fd::RawFd)],
    ) -> Result<Successor, HandoverError> {
        let spawn_error = |source| HandoverError::Spawn {
            exe: relaunch.exe.display().to_string(),
            source,
        };
        let (mine, theirs) = std::os::unix::net::UnixStream::pair().map_err(spawn_error)?;
        mine.set_nonblocking(true).map_err(spawn_error)?;
        let mine = UnixStream::from_std(mine).map_err(spawn_error)?;
        let theirs: OwnedFd = theirs.into();
        let mut all: Vec<(&str, std::os::fd::RawFd)> =
            passed.iter().map(|(n, fd)| (n.as_str(), *fd)).collect();
        all.push((CHANNEL_NAME, theirs.as_raw_fd()));
        let mut command = tokio::process::Command::new(&relaunch.exe);
        command
            .args(&relaunch.args)
            .env_remove("LISTEN_FDS")
            .env_remove("LISTEN_FDNAMES")
            .env_remove("LISTEN_PID")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(false);
        fds::pass_to(command.as_std_mut(), &all);
        let child = command.spawn().map_err(spawn_error)?;
        drop(theirs);
        let (read, writer) = mine.into_split();
        Ok(Successor {
            child,
            reader: BufReader::new(read),
            writer,
        })
    }

    /// The new daemon's pid.
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }

    /// Waits until the new daemon has its config, lock, store and listeners.
    pub async fn prepared(&mut self) -> Result<u32, HandoverError> {
        match self.next("prepared", PREPARE_TIMEOUT).await? {
            Message::Prepared { pid } => Ok(pid),
            other => Err(unexpected(&other)),
        }
    }

    /// Tells it to take over.
    pub async fn go(&mut self) -> Result<(), HandoverError> {
        send(&mut self.writer, &Message::Go).await
    }

    /// Waits until it serves.
    pub async fn ready(&mut self) -> Result<u32, HandoverError> {
        match self.next("ready", READY_TIMEOUT).await? {
            Message::Ready { pid } => Ok(pid),
            other => Err(unexpected(&other)),
        }
    }

    /// Stops a new daemon that failed or was too slow (it holds nothing
    /// the old one needs: its copies of the sockets close with it).
    pub async fn abandon(mut self) {
        let _ = self.child.start_kill();
        let _ = tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await;
    }

    async fn next(
        &mut self,
        what: &'static str,
        timeout: Duration,
    ) -> Result<Message, HandoverError> {
        let read = tokio::time::timeout(timeout, receive(&mut self.reader)).await;
        match read {
            Err(_) => Err(HandoverError::Timeout { what, timeout }),
            Ok(Ok(Some(Message::Failed { error }))) => Err(HandoverError::Failed(error)),
            Ok(Ok(Some(message))) => Ok(message),
            Ok(Ok(None)) | Ok(Err(_)) => {
                let status =
                    match tokio::time::timeout(Duration::from_secs(5), self.child.wait()).await {
                        Ok(Ok(status)) => status.to_string(),
                        _ => "it closed the hand-over channel".to_owned(),
                    };
                Err(HandoverError::Exited(status))
            }
        }
    }
}

/// The new daemon's side: the daemon it replaces.
pub struct Predecessor {
    reader: BufReader<OwnedReadHalf>,
    writer: OwnedWriteHalf,
}

impl Predecessor {
    /// The channel to the daemon that started this one, if it did.
    pub fn from_inherited(inherited: &mut Inherited) -> Option<Predecessor> {
        let fd = inherited.take(CHANNEL_NAME)?;
        let std = std::os::unix::net::UnixStream::from(fd);
        std.set_nonblocking(true).ok()?;
        let stream = UnixStream::from_std(std).ok()?;
        let (read, writer) = stream.into_split();
        Some(Predecessor {
            reader: BufReader::new(read),
            writer,
        })
    }

    /// Says this daemon is prepared and waits to be told to go.
    pub async fn prepared(&mut self) -> Result<(), HandoverError> {
        send(
            &mut self.writer,
            &Message::Prepared {
                pid: std::process::id(),
            },
        )
        .await?;
        match tokio::time::timeout(GO_TIMEOUT, receive(&mut self.reader)).await {
            Ok(Ok(Some(Message::Go))) => Ok(()),
            Ok(Ok(Some(other))) => Err(unexpected(&other)),
            Ok(Ok(None)) | Ok(Err(_)) => Err(HandoverError::Channel(
                "the old daemon went away before saying go; it keeps serving".into(),
            )),
            Err(_) => Err(HandoverError::Timeout {
                what: "told to go",
                timeout: GO_TIMEOUT,
            }),
        }
    }

    /// Says this daemon serves.
    pub async fn ready(mut self) {
        let _ = send(
            &mut self.writer,
            &Message::Ready {
                pid: std::process::id(),
            },
        )
        .await;
    }

    /// Says why this daemon gives up (it then exits).
    pub async fn failed(mut self, error: &str) {
        let _ = send(
            &mut self.writer,
            &Message::Failed {
                error: error.to_owned(),
            },
        )
        .await;
    }
}

fn unexpected(message: &Message) -> HandoverError {
    HandoverError::Channel(format!("unexpected message {message:?}"))
}

async fn send(writer: &mut OwnedWriteHalf, message: &Message) -> Result<(), HandoverError> {
    let mut line =
        serde_json::to_vec(message).map_err(|e| HandoverError::Channel(e.to_string()))?;
    line.push(b'\n');
    writer
        .write_all(&line)
        .await
        .map_err(|e| HandoverError::Channel(e.to_string()))
}

async fn receive(reader: &mut BufReader<OwnedReadHalf>) -> Result<Option<Message>, HandoverError> {
    use tokio::io::AsyncReadExt;
    let mut line = String::new();
    let n = reader
        .take(MAX_MESSAGE)
        .read_line(&mut line)
        .await
        .map_err(|e| HandoverError::Channel(e.to_string()))?;
    if n == 0 {
        return Ok(None);
    }
    serde_json::from_str(line.trim_end())
        .map(Some)
        .map_err(|e| HandoverError::Channel(format!("unreadable message: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_json_lines() {
        let text = serde_json::to_string(&Message::Prepared { pid: 7 }).expect("must succeed");
        assert_eq!(text, r#"{"prepared":{"pid":7}}"#);
        assert_eq!(
            serde_json::to_string(&Message::Go).expect("must succeed"),
            r#""go""#
        );
    }

    #[tokio::test]
    async fn a_conversation_over_a_socket_pair() {
        let (a, b) = UnixStream::pair().expect("must succeed");
        let (ar, aw) = a.into_split();
        let (br, bw) = b.into_split();
        let mut old = (BufReader::new(ar), aw);
        let mut new = Predecessor {
            reader: BufReader::new(br),
            writer: bw,
        };
        let child = tokio::spawn(async move {
            new.prepared().await.expect("must succeed");
            new.ready().await;
        });
        assert!(matches!(
            receive(&mut old.0).await.expect("must succeed"),
            Some(Message::Prepared { .. })
        ));
        send(&mut old.1, &Message::Go).await.expect("must succeed");
        assert!(matches!(
            receive(&mut old.0).await.expect("must succeed"),
            Some(Message::Ready { .. })
        ));
        child.await.expect("must succeed");
        assert!(receive(&mut old.0).await.expect("must succeed").is_none());
    }
}
