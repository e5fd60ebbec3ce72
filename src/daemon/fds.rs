//! Descriptors a daemon inherits, by name: listening sockets from systemd
//! socket activation (`LISTEN_FDS`, `LISTEN_FDNAMES`, `LISTEN_PID`: numbered
//! from 3), and the sockets and the state store's lock handed over by the
//! daemon this one replaces (`CUTOVER_HANDOVER_FDS`: `NUMBER:NAME,…`).
//!
//! Names: `api`, `metrics`, `env-<environment>` (an environment's `listen`),
//! `redirect-<environment>` (its `redirect_listen`), and `cutover-lock` (the
//! lock, hand-over only). `cutover systemd` writes the same names into the
//! socket unit.
//!
//! Besides `db/backup/sqlite_copy.rs`, this is the only `unsafe` in cutover:
//! taking ownership of a descriptor number handed over by the parent process
//! (which the kernel, not Rust, says is ours), and clearing close-on-exec on
//! the descriptors a hand-over passes to the new daemon, between fork and exec.
//! [`Inherited::from_env`] runs once per process, so no number is owned twice.

#![allow(unsafe_code)]

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::os::fd::{FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::sync::atomic::{AtomicBool, Ordering};

/// The first descriptor systemd passes.
const SD_LISTEN_FDS_START: RawFd = 3;
/// At most this many descriptors are taken from the environment.
const MAX_INHERITED: usize = 256;
/// The hand-over's variable: `NUMBER:NAME` pairs, comma separated.
pub const HANDOVER_FDS_VAR: &str = "CUTOVER_HANDOVER_FDS";
/// The name of the state store's lock in a hand-over.
pub const LOCK_NAME: &str = "cutover-lock";

static TAKEN: AtomicBool = AtomicBool::new(false);

/// Why inherited descriptors cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum FdsError {
    /// The variables do not parse.
    #[error("{var}={value:?} is not valid: {why}")]
    BadVariable {
        var: &'static str,
        value: String,
        why: String,
    },
    /// A descriptor named in the environment is not open.
    #[error("descriptor {fd} ({name}) passed in {var} is not open")]
    NotOpen {
        fd: RawFd,
        name: String,
        var: &'static str,
    },
    /// A named descriptor is not a listening TCP socket.
    #[error(
        "the inherited descriptor {name:?} is not a listening TCP socket ({why}); fix the socket unit (ListenStream=ADDRESS:PORT, FileDescriptorName={name})"
    )]
    NotListener { name: String, why: String },
    /// The socket listens elsewhere than the config says.
    #[error(
        "the inherited socket {name:?} listens on {got}, but the config says {want}; make the socket unit's ListenStream= and the config agree (`cutover systemd` prints a matching unit)"
    )]
    WrongAddress {
        name: String,
        got: SocketAddr,
        want: SocketAddr,
    },
}

/// Where the descriptors came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Source {
    /// Nothing was inherited: the daemon binds its own listeners.
    None,
    /// systemd (or `systemd-socket-activate`) passed them.
    Systemd,
    /// The daemon this one replaces handed them over.
    Handover,
}

/// The descriptors a daemon inherited, by name (each taken at most once).
#[derive(Debug)]
pub struct Inherited {
    source: Source,
    by_name: BTreeMap<String, Vec<OwnedFd>>,
}

/// What the environment says: descriptor numbers and their names.
#[derive(Debug, PartialEq, Eq)]
struct Plan {
    source: Source,
    fds: Vec<(RawFd, String)>,
    var: &'static str,
}

impl Inherited {
    /// Nothing inherited.
    pub fn none() -> Inherited {
        Inherited {
            source: Source::None,
            by_name: BTreeMap::new(),
        }
    }

    /// Takes the descriptors the environment names (once per process: a
    /// second call finds nothing). Every one is made close-on-exec, so no
    /// instance the daemon starts inherits a listener.
    pub fn from_env() -> Result<Inherited, FdsError> {
        if TAKEN.swap(true, Ordering::SeqCst) {
            return Ok(Inherited::none());
        }
        let var = |name: &str| std::env::var(name).ok();
        let plan = parse(
            var(HANDOVER_FDS_VAR).as_deref(),
            var("LISTEN_FDS").as_deref(),
            var("LISTEN_FDNAMES").as_deref(),
            var("LISTEN_PID").as_deref(),
            std::process::id(),
        )?;
        let mut by_name: BTreeMap<String, Vec<OwnedFd>> = BTreeMap::new();
        for (fd, name) in plan.fds {
            let flags = nix::fcntl::fcntl(
                // SAFETY: borrowed only for this call; F_GETFD reads flags.
                unsafe { std::os::fd::BorrowedFd::borrow_raw(fd) },
                nix::fcntl::FcntlArg::F_GETFD,
            );
            if flags.is_err() {
                return Err(FdsError::NotOpen {
                    fd,
                    name,
                    var: plan.var,
                });
            }
            // SAFETY: the number is open (checked above), was handed to this
            // process by its parent for it to own, is named once in the
            // variable (checked by `parse`), and `TAKEN` makes sure this runs
            // once per process.
            let owned = unsafe { OwnedFd::from_raw_fd(fd) };
            let _ = nix::fcntl::fcntl(
                &owned,
                nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
            );
            by_name.entry(name).or_default().push(owned);
        }
        Ok(Inherited {
            source: plan.source,
            by_name,
        })
    }

    /// Where they came from.
    pub fn source(&self) -> Source {
        self.source
    }

    /// The listener named `name`, checked to be a listening TCP socket on
    /// `want` (port 0 in `want` matches any port). A hand-over's socket on
    /// another address (the config changed) is closed and `None` returned,
    /// so the caller binds the new one; systemd's is an error.
    pub fn take_listener(
        &mut self,
        name: &str,
        want: SocketAddr,
    ) -> Result<Option<std::net::TcpListener>, FdsError> {
        let Some(fd) = self.take(name) else {
            return Ok(None);
        };
        let not_listener = |why: String| FdsError::NotListener {
            name: name.to_owned(),
            why,
        };
        match nix::sys::socket::getsockopt(&fd, nix::sys::socket::sockopt::AcceptConn) {
            Ok(true) => {}
            Ok(false) => return Err(not_listener("it does not listen".into())),
            Err(e) => return Err(not_listener(e.to_string())),
        }
        let listener = std::net::TcpListener::from(fd);
        let got = listener
            .local_addr()
            .map_err(|e| not_listener(format!("no TCP address: {e}")))?;
        let same = got.ip() == want.ip() && (want.port() == 0 || got.port() == want.port());
        if !same {
            if self.source == Source::Handover {
                return Ok(None);
            }
            return Err(FdsError::WrongAddress {
                name: name.to_owned(),
                got,
                want,
            });
        }
        listener
            .set_nonblocking(true)
            .map_err(|e| not_listener(e.to_string()))?;
        Ok(Some(listener))
    }

    /// The descriptor named `name` (the first, if several have the name).
    pub fn take(&mut self, name: &str) -> Option<OwnedFd> {
        let list = self.by_name.get_mut(name)?;
        let fd = (!list.is_empty()).then(|| list.remove(0));
        if list.is_empty() {
            self.by_name.remove(name);
        }
        fd
    }

    /// Names left untaken (closed when this is dropped).
    pub fn unused(&self) -> Vec<String> {
        self.by_name.keys().cloned().collect()
    }
}

/// What the variables say. The hand-over's variable wins over systemd's
/// (an upgraded daemon under systemd has both, and systemd's are stale).
fn parse(
    handover: Option<&str>,
    listen_fds: Option<&str>,
    listen_fdnames: Option<&str>,
    listen_pid: Option<&str>,
    my_pid: u32,
) -> Result<Plan, FdsError> {
    if let Some(value) = handover.filter(|v| !v.is_empty()) {
        let bad = |why: &str| FdsError::BadVariable {
            var: HANDOVER_FDS_VAR,
            value: value.to_owned(),
            why: why.to_owned(),
        };
        let mut fds = Vec::new();
        for pair in value.split(',') {
            let (fd, name) = pair
                .split_once(':')
                .ok_or_else(|| bad("expected NUMBER:NAME"))?;
            let fd: RawFd = fd.parse().map_err(|_| bad("not a descriptor number"))?;
            if fd < SD_LISTEN_FDS_START || name.is_empty() {
                return Err(bad("descriptors start at 3 and have a name"));
            }
            if fds.iter().any(|(f, _)| *f == fd) {
                return Err(bad("a descriptor is named twice"));
            }
            fds.push((fd, name.to_owned()));
        }
        if fds.len() > MAX_INHERITED {
            return Err(bad("too many descriptors"));
        }
        return Ok(Plan {
            source: Source::Handover,
            fds,
            var: HANDOVER_FDS_VAR,
        });
    }
    let Some(count) = listen_fds else {
        return Ok(Plan {
            source: Source::None,
            fds: Vec::new(),
            var: "LISTEN_FDS",
        });
    };
    // sd_listen_fds(3): only for the process they were meant for.
    match listen_pid.map(str::parse::<u32>) {
        Some(Ok(pid)) if pid == my_pid => {}
        _ => {
            return Ok(Plan {
                source: Source::None,
                fds: Vec::new(),
                var: "LISTEN_FDS",
            });
        }
    }
    let count: usize = count
        .parse()
        .ok()
        .filter(|n| *n <= MAX_INHERITED)
        .ok_or_else(|| FdsError::BadVariable {
            var: "LISTEN_FDS",
            value: count.to_owned(),
            why: format!("expected a count of at most {MAX_INHERITED}"),
        })?;
    let names: Vec<&str> = match listen_fdnames {
        Some(names) if !names.is_empty() => names.split(':').collect(),
        _ => Vec::new(),
    };
    if !names.is_empty() && names.len() != count {
        return Err(FdsError::BadVariable {
            var: "LISTEN_FDNAMES",
            value: listen_fdnames.unwrap_or_default().to_owned(),
            why: format!("{} names for LISTEN_FDS={count} descriptors", names.len()),
        });
    }
    let fds = (0..count)
        .map(|i| {
            let fd = SD_LISTEN_FDS_START.saturating_add(i32::try_from(i).unwrap_or(i32::MAX));
            // systemd's default name, when the unit gives none.
            let name = names.get(i).copied().unwrap_or("unknown").to_owned();
            (fd, name)
        })
        .collect();
    Ok(Plan {
        source: Source::Systemd,
        fds,
        var: "LISTEN_FDS",
    })
}

/// Passes `fds` (by name) to the program `command` starts: their numbers and
/// names go in [`HANDOVER_FDS_VAR`], and close-on-exec is cleared on them in
/// the child only (between fork and exec), so no other child inherits them.
pub fn pass_to(command: &mut std::process::Command, fds: &[(&str, RawFd)]) {
    let value = fds
        .iter()
        .map(|(name, fd)| format!("{fd}:{name}"))
        .collect::<Vec<_>>()
        .join(",");
    command.env(HANDOVER_FDS_VAR, value);
    let numbers: Vec<RawFd> = fds.iter().map(|(_, fd)| *fd).collect();
    // SAFETY: the closure only calls fcntl(2), which is async-signal-safe,
    // on numbers computed before the fork, and allocates nothing.
    unsafe {
        command.pre_exec(move || {
            for fd in &numbers {
                let borrowed = std::os::fd::BorrowedFd::borrow_raw(*fd);
                nix::fcntl::fcntl(
                    borrowed,
                    nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::empty()),
                )
                .map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn systemd_names_follow_the_numbers() {
        let plan = parse(None, Some("2"), Some("api:env-production"), Some("42"), 42)
            .expect("must succeed");
        assert_eq!(plan.source, Source::Systemd);
        assert_eq!(
            plan.fds,
            vec![(3, "api".to_owned()), (4, "env-production".to_owned())]
        );
    }

    #[test]
    fn systemd_variables_for_another_process_are_ignored() {
        let plan = parse(None, Some("2"), Some("a:b"), Some("41"), 42).expect("must succeed");
        assert_eq!(plan.source, Source::None);
        let plan = parse(None, Some("2"), Some("a:b"), None, 42).expect("must succeed");
        assert_eq!(plan.source, Source::None);
    }

    #[test]
    fn mismatched_names_and_counts_are_errors() {
        let e = parse(None, Some("2"), Some("api"), Some("42"), 42).expect_err("must fail");
        assert!(e.to_string().contains("LISTEN_FDNAMES"), "{e}");
        let e = parse(None, Some("lots"), None, Some("42"), 42).expect_err("must fail");
        assert!(e.to_string().contains("LISTEN_FDS"), "{e}");
        let e = parse(None, Some("100000"), None, Some("42"), 42).expect_err("must fail");
        assert!(e.to_string().contains("at most"), "{e}");
    }

    #[test]
    fn unnamed_systemd_sockets_are_unknown() {
        let plan = parse(None, Some("1"), None, Some("7"), 7).expect("must succeed");
        assert_eq!(plan.fds, vec![(3, "unknown".to_owned())]);
    }

    #[test]
    fn the_handover_wins_and_is_checked() {
        let plan = parse(
            Some("9:api,11:cutover-lock"),
            Some("1"),
            Some("x"),
            Some("42"),
            42,
        )
        .expect("must succeed");
        assert_eq!(plan.source, Source::Handover);
        assert_eq!(
            plan.fds,
            vec![(9, "api".to_owned()), (11, "cutover-lock".to_owned())]
        );
        for bad in ["9", "x:api", "2:api", "9:", "9:a,9:b"] {
            assert!(parse(Some(bad), None, None, None, 1).is_err(), "{bad}");
        }
    }
}
