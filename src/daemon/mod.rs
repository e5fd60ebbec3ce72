//! The daemon as a process: what `cutover serve` does around the runtime so
//! that restarting, upgrading and reloading cutover never fails a request.
//!
//! - `lock.rs`: one daemon per state store (a lock file beside it, naming
//!   its holder); `server_lock.rs`: the same for a PostgreSQL store (a
//!   session-level advisory lock).
//! - `fds.rs`: listening sockets inherited from systemd (socket activation)
//!   or from the daemon being replaced, by name.
//! - `handover.rs`: starting the replacing daemon with the sockets and the
//!   lock, and the messages the two trade until the new one serves.
//! - `lifecycle.rs`: `upgrade`, `reload` and exit requests of a serving
//!   daemon (what to pause, what to take back when a hand-over fails).
//! - `pending.rs`: the settings a reload leaves for the next deploy.
//! - `signals.rs`: what each signal does.
//! - `notify.rs`: systemd's readiness protocol (`READY=1` with `MAINPID=`,
//!   `RELOADING=1`, `STOPPING=1` over `$NOTIFY_SOCKET`).
//!
//! `src/cli/serve.rs` puts these together; the runtime knows none of them
//! (it is only quiesced and asked to recover).

pub mod fds;
pub mod handover;
pub mod lifecycle;
pub mod lock;
pub mod notify;
pub mod pending;
pub mod server_lock;
pub mod signals;
