//! systemd's readiness protocol (`sd_notify`): the daemon tells its service
//! manager when it is ready, reloading or stopping, by one datagram to the
//! Unix socket named by `$NOTIFY_SOCKET` (a path, or an abstract name
//! written with a leading `@`). Without `$NOTIFY_SOCKET` (not started by
//! systemd with `Type=notify`) every call is a no-op.
//!
//! This module owns only the wire: what to say and when is the daemon's
//! business. `ready()` also says `MAINPID=`, so a daemon started by another
//! one (`cutover upgrade`, `cutover reload`) becomes the service's main
//! process; systemd accepts that from a child only with `NotifyAccess=all`,
//! which the unit `cutover systemd` prints has. `$NOTIFY_SOCKET` is left in
//! the environment on purpose: that new daemon needs it.

use std::ffi::{OsStr, OsString};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::net::{SocketAddr, UnixDatagram};

/// The variable systemd sets for `Type=notify` services.
pub const NOTIFY_SOCKET: &str = "NOTIFY_SOCKET";

/// Why a notification could not be sent.
#[derive(Debug, thiserror::Error)]
pub enum NotifyError {
    /// `$NOTIFY_SOCKET` names something other than a Unix socket.
    #[error(
        "NOTIFY_SOCKET={socket:?} is not a Unix socket path or an abstract name starting with '@'; \
         run cutover under systemd with Type=notify, or unset NOTIFY_SOCKET"
    )]
    Unsupported {
        /// The variable's value.
        socket: OsString,
    },
    /// The socket could not be reached or did not take the datagram.
    #[error(
        "cannot notify systemd through NOTIFY_SOCKET={socket:?}: {source}; \
         check that the unit says Type=notify and NotifyAccess=all (`cutover systemd` prints one)"
    )]
    Send {
        /// The variable's value.
        socket: OsString,
        /// What the socket said.
        source: std::io::Error,
    },
}

/// Whether a notification went out.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Notified {
    /// Sent to `$NOTIFY_SOCKET`.
    Sent,
    /// `$NOTIFY_SOCKET` is not set: nobody to tell.
    NoSocket,
}

/// The daemon serves: `READY=1`, with `MAINPID=` this process (so that a
/// daemon started by an upgrade takes over as the service's main process)
/// and a `STATUS=` line. Never fails: a failure is logged as a warning
/// (systemd then times the start out and says so).
pub fn ready(status: &str) {
    let state = format!(
        "READY=1\nMAINPID={}\nSTATUS={}",
        std::process::id(),
        one_line(status)
    );
    log_failure("ready", send(&state));
}

/// The daemon is handing over to a new one (reload or upgrade):
/// `RELOADING=1`. The new daemon's [`ready`] ends the reload.
pub fn reloading() {
    log_failure("reloading", send("RELOADING=1"));
}

/// The daemon is stopping (draining, then exiting): `STOPPING=1`.
pub fn stopping() {
    log_failure("stopping", send("STOPPING=1"));
}

/// Sends `state` (newline-separated `KEY=VALUE` assignments) to
/// `$NOTIFY_SOCKET`, or does nothing without it.
pub fn send(state: &str) -> Result<Notified, NotifyError> {
    match std::env::var_os(NOTIFY_SOCKET) {
        Some(socket) if !socket.is_empty() => send_to(&socket, state).map(|()| Notified::Sent),
        _ => Ok(Notified::NoSocket),
    }
}

/// Sends `state` to the socket named `socket`, as `$NOTIFY_SOCKET` names
/// it: an absolute or relative path, or `@name` for Linux's abstract
/// namespace.
pub fn send_to(socket: &OsStr, state: &str) -> Result<(), NotifyError> {
    let addr = address(socket)?;
    let fail = |source| NotifyError::Send {
        socket: socket.to_owned(),
        source,
    };
    let sock = UnixDatagram::unbound().map_err(fail)?;
    let sent = sock.send_to_addr(state.as_bytes(), &addr).map_err(fail)?;
    if sent != state.len() {
        return Err(fail(std::io::Error::other(format!(
            "sent {sent} of {} bytes",
            state.len()
        ))));
    }
    Ok(())
}

fn address(socket: &OsStr) -> Result<SocketAddr, NotifyError> {
    let bytes = socket.as_bytes();
    let unsupported = || NotifyError::Unsupported {
        socket: socket.to_owned(),
    };
    match bytes.first() {
        Some(b'@') => abstract_address(&bytes[1..]).ok_or_else(unsupported),
        Some(b'/') | Some(b'.') => SocketAddr::from_pathname(socket).map_err(|_| unsupported()),
        // `vsock:…` and anything else systemd may add later.
        _ => Err(unsupported()),
    }
}

#[cfg(any(target_os = "linux", target_os = "android"))]
fn abstract_address(name: &[u8]) -> Option<SocketAddr> {
    #[cfg(target_os = "android")]
    use std::os::android::net::SocketAddrExt;
    #[cfg(target_os = "linux")]
    use std::os::linux::net::SocketAddrExt;
    SocketAddr::from_abstract_name(name).ok()
}

#[cfg(not(any(target_os = "linux", target_os = "android")))]
fn abstract_address(_name: &[u8]) -> Option<SocketAddr> {
    None
}

/// A `STATUS=` value is one line: a newline would start another assignment.
fn one_line(status: &str) -> String {
    status.replace(['\n', '\r'], " ")
}

fn log_failure(what: &str, result: Result<Notified, NotifyError>) {
    if let Err(e) = result {
        tracing::warn!(notification = what, "{e}");
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    fn receive(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("set a read timeout");
        let mut buf = [0u8; 4096];
        let n = sock.recv(&mut buf).expect("a notification arrives");
        String::from_utf8(buf[..n].to_vec()).expect("UTF-8")
    }

    #[test]
    fn sends_to_a_socket_path() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("notify.sock");
        let listener = UnixDatagram::bind(&path).expect("bind");
        send_to(path.as_os_str(), "READY=1\nMAINPID=42").expect("sent");
        assert_eq!(receive(&listener), "READY=1\nMAINPID=42");
        send_to(path.as_os_str(), "STOPPING=1").expect("sent");
        assert_eq!(receive(&listener), "STOPPING=1");
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!(
            "cutover-notify-test-{}-{}",
            std::process::id(),
            fastrand::u64(..)
        );
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).expect("address");
        let listener = UnixDatagram::bind_addr(&addr).expect("bind an abstract socket");
        send_to(OsStr::new(&format!("@{name}")), "RELOADING=1").expect("sent");
        assert_eq!(receive(&listener), "RELOADING=1");
    }

    #[test]
    fn a_missing_socket_is_an_error_that_says_what_to_do() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("nobody-listens.sock");
        let err = send_to(path.as_os_str(), "READY=1").expect_err("nobody listens");
        assert!(matches!(err, NotifyError::Send { .. }), "{err:?}");
        assert!(err.to_string().contains("Type=notify"), "{err}");
    }

    #[test]
    fn other_kinds_of_socket_are_refused() {
        for value in ["vsock:2:1234", "notify.sock", ""] {
            let err = send_to(OsStr::new(value), "READY=1").expect_err(value);
            assert!(
                matches!(err, NotifyError::Unsupported { .. }),
                "{value}: {err:?}"
            );
        }
    }

    #[test]
    fn status_is_one_line() {
        assert_eq!(one_line("a\nb\r\nc"), "a b  c");
    }
}
