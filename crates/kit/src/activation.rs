//! systemd-style socket activation for tests and benchmarks, without
//! systemd: [`Sockets`] holds named listening sockets and starts processes
//! that inherit them as descriptors 3, 4, … with `LISTEN_FDS`,
//! `LISTEN_FDNAMES` and `LISTEN_PID` (sd_listen_fds(3)), as systemd's socket
//! units do; because the holder keeps the sockets open, a process started
//! again finds the same sockets, and clients that connect in between wait in
//! the kernel's queue. [`NotifySocket`] plays systemd's `$NOTIFY_SOCKET`:
//! it receives `READY=1`, `MAINPID=`, `STOPPING=1`, ….
//!
//! (Debian's `systemd-socket-activate` does the first part too, but it
//! execs the process, so its sockets close when that process exits.)

#![allow(unsafe_code)]

use std::ffi::OsStr;
use std::net::{SocketAddr, TcpListener};
use std::os::fd::{AsRawFd, BorrowedFd, FromRawFd, IntoRawFd, OwnedFd, RawFd};
use std::os::unix::net::UnixDatagram;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

/// The first descriptor a socket-activated process gets.
pub const LISTEN_FDS_START: RawFd = 3;

/// Held copies of the sockets live at this number or above, so that putting
/// them at 3, 4, … in a child never overwrites one not yet placed.
const HELD_FLOOR: RawFd = 100;

/// At most this many sockets (they go to 3 .. 3 + n, below the floor).
pub const MAX_SOCKETS: usize = 90;

/// Why sockets could not be held or passed.
#[derive(Debug, thiserror::Error)]
pub enum ActivationError {
    /// Binding or copying a socket failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The system's error.
        source: std::io::Error,
    },
    /// More sockets than [`MAX_SOCKETS`], or a name systemd would refuse.
    #[error("{0}")]
    Invalid(String),
}

/// Named listening sockets, held for the processes [`Sockets::command`]
/// starts.
#[derive(Debug, Default)]
pub struct Sockets {
    held: Vec<(String, OwnedFd, SocketAddr)>,
}

impl Sockets {
    /// No sockets yet.
    pub fn new() -> Sockets {
        Sockets::default()
    }

    /// Binds `addr` (port 0: any free port) with std's listen backlog (128)
    /// and holds it as `name`; returns the address it listens on. For
    /// another backlog, bind yourself and [`Sockets::hold`] it.
    pub fn bind(&mut self, name: &str, addr: SocketAddr) -> Result<SocketAddr, ActivationError> {
        let listener = TcpListener::bind(addr).map_err(|source| ActivationError::Io {
            what: format!("cannot listen on {addr} for {name}"),
            source,
        })?;
        self.hold(name, listener)
    }

    /// Holds `listener` as `name`; returns the address it listens on.
    pub fn hold(
        &mut self,
        name: &str,
        listener: TcpListener,
    ) -> Result<SocketAddr, ActivationError> {
        if self.held.len() >= MAX_SOCKETS {
            return Err(ActivationError::Invalid(format!(
                "at most {MAX_SOCKETS} sockets"
            )));
        }
        if name.is_empty()
            || name.len() > 255
            || name.contains(':')
            || name.chars().any(char::is_control)
        {
            return Err(ActivationError::Invalid(format!(
                "{name:?} cannot be a descriptor name: 1 to 255 characters, no ':' or control characters"
            )));
        }
        let addr = listener
            .local_addr()
            .map_err(|source| ActivationError::Io {
                what: format!("the address of {name}"),
                source,
            })?;
        let raw = nix::fcntl::fcntl(&listener, nix::fcntl::FcntlArg::F_DUPFD_CLOEXEC(HELD_FLOOR))
            .map_err(|e| ActivationError::Io {
            what: format!("cannot copy the socket of {name}"),
            source: e.into(),
        })?;
        // SAFETY: F_DUPFD_CLOEXEC just returned this new descriptor, which
        // nothing else owns.
        let held = unsafe { OwnedFd::from_raw_fd(raw) };
        drop(listener);
        self.held.push((name.to_owned(), held, addr));
        Ok(addr)
    }

    /// The address of the socket held as `name`.
    pub fn addr(&self, name: &str) -> Option<SocketAddr> {
        self.held
            .iter()
            .find(|(n, _, _)| n == name)
            .map(|(_, _, a)| *a)
    }

    /// The names, in descriptor order (`LISTEN_FDNAMES`).
    pub fn names(&self) -> Vec<&str> {
        self.held.iter().map(|(n, _, _)| n.as_str()).collect()
    }

    /// A command that runs `program` with the held sockets as descriptors
    /// 3, 4, … (in the order they were added), `LISTEN_FDS`,
    /// `LISTEN_FDNAMES`, and `LISTEN_PID` set to its own pid (through
    /// `/bin/sh -c 'LISTEN_PID=$$ … exec'`, since the pid is known only
    /// once it runs), and no signal blocked. Add the program's arguments
    /// with `.arg()`/`.args()`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut command = Command::new("/bin/sh");
        command
            .arg("-c")
            .arg("LISTEN_PID=$$; export LISTEN_PID; exec \"$0\" \"$@\"")
            .arg(program)
            .env("LISTEN_FDS", self.held.len().to_string())
            .env("LISTEN_FDNAMES", self.names().join(":"))
            .env_remove("LISTEN_PID");
        let sources: Vec<RawFd> = self.held.iter().map(|(_, fd, _)| fd.as_raw_fd()).collect();
        // SAFETY: between fork and exec the closure only calls
        // pthread_sigmask(3) and dup2(2), which are async-signal-safe, on numbers computed before the fork,
        // and allocates nothing. The sources are this process's own open
        // descriptors, at HELD_FLOOR or above, so no target (3 .. 3 + n,
        // n < MAX_SOCKETS) is a source not yet placed; each target is taken
        // over by dup2 (whatever it was in the child closes), comes out
        // without close-on-exec, and is released with into_raw_fd so that
        // nothing closes it before exec.
        unsafe {
            command.pre_exec(move || {
                // As systemd does: no signal blocked (a holder that takes
                // signals with sigwait blocks them, and the mask is inherited).
                nix::sys::signal::SigSet::empty()
                    .thread_set_mask()
                    .map_err(std::io::Error::from)?;
                for (i, src) in sources.iter().enumerate() {
                    let target = LISTEN_FDS_START.saturating_add(i as RawFd);
                    let src = BorrowedFd::borrow_raw(*src);
                    let placed =
                        nix::unistd::dup2_raw(src, target).map_err(std::io::Error::from)?;
                    let _ = placed.into_raw_fd();
                }
                Ok(())
            });
        }
        command
    }
}

/// One message a process sent to [`NotifySocket`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// When it arrived.
    pub at: Instant,
    /// Its text: `KEY=VALUE` lines.
    pub text: String,
}

impl Notification {
    /// The value of `key` in it, if present (`READY`, `MAINPID`, …).
    pub fn get(&self, key: &str) -> Option<&str> {
        self.text.lines().find_map(|line| {
            let (k, v) = line.split_once('=')?;
            (k == key).then_some(v)
        })
    }
}

/// A Unix datagram socket standing in for systemd's `$NOTIFY_SOCKET`.
#[derive(Debug)]
pub struct NotifySocket {
    socket: UnixDatagram,
    path: PathBuf,
}

impl NotifySocket {
    /// Binds `dir/notify.sock`.
    pub fn bind(dir: &Path) -> Result<NotifySocket, ActivationError> {
        let path = dir.join("notify.sock");
        let socket = UnixDatagram::bind(&path).map_err(|source| ActivationError::Io {
            what: format!("cannot bind {}", path.display()),
            source,
        })?;
        Ok(NotifySocket { socket, path })
    }

    /// What to set `NOTIFY_SOCKET` to.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The next message, waiting at most `timeout`; `None` when none came.
    pub fn next(&self, timeout: Duration) -> Option<Notification> {
        let timeout = timeout.max(Duration::from_millis(1));
        self.socket.set_read_timeout(Some(timeout)).ok()?;
        let mut buf = vec![0u8; 64 * 1024];
        let n = self.socket.recv(&mut buf).ok()?;
        Some(Notification {
            at: Instant::now(),
            text: String::from_utf8_lossy(&buf[..n]).into_owned(),
        })
    }

    /// Waits at most `timeout` for a message that says `key=value`,
    /// dropping the others; returns it and every message before it.
    pub fn wait_for(
        &self,
        key: &str,
        value: &str,
        timeout: Duration,
    ) -> Result<(Notification, Vec<Notification>), Vec<Notification>> {
        let deadline = Instant::now() + timeout;
        let mut before = Vec::new();
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Err(before);
            }
            match self.next(left) {
                Some(n) if n.get(key) == Some(value) => return Ok((n, before)),
                Some(n) => before.push(n),
                None => return Err(before),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::io::Read;
    use std::net::TcpStream;

    use super::*;

    #[test]
    fn a_child_gets_the_sockets_at_3_with_their_names_and_its_own_pid() {
        let mut sockets = Sockets::new();
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        let a = sockets.bind("api", loopback).expect("bind api");
        let b = sockets.bind("env-production", loopback).expect("bind env");
        // The child reports what it got (its signal mask last, by exec:
        // the shell blocks signals while it waits for a command it forked),
        // then accepts one connection on fd 4
        // and answers on it, so the socket at 4 is b's.
        let script = r#"echo "$LISTEN_FDS $LISTEN_FDNAMES $LISTEN_PID $$"; ls -l /proc/$$/fd/3 /proc/$$/fd/4 | grep -c socket; exec grep SigBlk /proc/self/status"#;
        // A holder that blocks a signal (to sigwait for it) starts children
        // with nothing blocked.
        let mut usr1 = nix::sys::signal::SigSet::empty();
        usr1.add(nix::sys::signal::Signal::SIGUSR1);
        usr1.thread_block().expect("block SIGUSR1 in this thread");
        let out = sockets.command("/bin/sh").arg("-c").arg(script).output();
        usr1.thread_unblock().expect("unblock");
        let out = out.expect("run the child");
        let text = String::from_utf8_lossy(&out.stdout);
        let mut lines = text.lines();
        let first: Vec<&str> = lines.next().expect("a line").split(' ').collect();
        assert_eq!(first[0], "2", "{text}");
        assert_eq!(first[1], "api:env-production", "{text}");
        assert_eq!(first[2], first[3], "LISTEN_PID is the child's pid: {text}");
        assert_eq!(lines.next(), Some("2"), "fds 3 and 4 are sockets: {text}");
        assert_eq!(lines.next(), Some("SigBlk:\t0000000000000000"), "{text}");
        // The holder still listens after the child exited: a connection queues.
        let mut queued = TcpStream::connect(b).expect("connect while no child runs");
        assert_ne!(a, b);
        // A child started now accepts the queued connection on fd 4.
        let child = sockets
            .command("python3")
            .arg("-c")
            .arg("import socket; s = socket.socket(fileno=4); c, _ = s.accept(); c.sendall(b'from fd 4')")
            .spawn();
        let Ok(mut child) = child else {
            return; // no python3: the first half is the test
        };
        queued
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let mut got = String::new();
        queued.read_to_string(&mut got).expect("read");
        assert_eq!(got, "from fd 4");
        assert!(child.wait().expect("wait").success());
    }

    #[test]
    fn names_systemd_would_refuse_are_refused() {
        let mut sockets = Sockets::new();
        let loopback: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        for bad in ["", "a:b", "a\nb"] {
            assert!(matches!(
                sockets.bind(bad, loopback),
                Err(ActivationError::Invalid(_))
            ));
        }
    }

    #[test]
    fn notifications_arrive_with_their_keys() {
        let dir =
            std::env::temp_dir().join(format!("kit-notify-{}-{}", std::process::id(), line!()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        let notify = NotifySocket::bind(&dir).expect("bind");
        let sender = UnixDatagram::unbound().expect("socket");
        sender
            .send_to(b"STATUS=starting", notify.path())
            .expect("send");
        sender
            .send_to(b"READY=1\nMAINPID=42", notify.path())
            .expect("send");
        let (ready, before) = notify
            .wait_for("READY", "1", Duration::from_secs(5))
            .expect("ready");
        assert_eq!(ready.get("MAINPID"), Some("42"));
        assert_eq!(before.len(), 1);
        assert_eq!(before[0].get("STATUS"), Some("starting"));
        assert!(notify.next(Duration::from_millis(20)).is_none());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
