//! What the daemon does on each signal: SIGTERM and SIGINT stop it (its
//! instances keep running unless `--stop-instances-on-exit`), SIGUSR2
//! upgrades it (`cutover upgrade`), SIGHUP reloads it (`cutover reload`);
//! every other signal whose default would stop or stall the daemon is
//! logged and ignored, so that no stray signal takes the proxy down.
//! SIGCHLD (the runtime reaps children) and SIGPIPE (Rust ignores it) are
//! left alone; SIGKILL and SIGSTOP cannot be caught.

use std::sync::Arc;

use tokio::signal::unix::{Signal, SignalKind, signal};

use super::lifecycle::Lifecycle;

/// Signals logged and ignored, with their names.
const IGNORED: &[(i32, &str)] = &[
    (nix::libc::SIGUSR1, "SIGUSR1"),
    (nix::libc::SIGQUIT, "SIGQUIT"),
    (nix::libc::SIGALRM, "SIGALRM"),
    (nix::libc::SIGVTALRM, "SIGVTALRM"),
    (nix::libc::SIGPROF, "SIGPROF"),
    (nix::libc::SIGTSTP, "SIGTSTP"),
    (nix::libc::SIGTTIN, "SIGTTIN"),
    (nix::libc::SIGTTOU, "SIGTTOU"),
    (nix::libc::SIGXCPU, "SIGXCPU"),
    (nix::libc::SIGXFSZ, "SIGXFSZ"),
    (nix::libc::SIGIO, "SIGIO"),
    (nix::libc::SIGPWR, "SIGPWR"),
    (nix::libc::SIGURG, "SIGURG"),
    (nix::libc::SIGWINCH, "SIGWINCH"),
    (nix::libc::SIGSTKFLT, "SIGSTKFLT"),
];

/// Installs every handler now (so a signal that arrives at once is not
/// fatal) and serves them on a task for the life of the daemon.
pub fn handle(lifecycle: Arc<Lifecycle>, stop_instances_on_exit: bool) {
    let install = |kind: SignalKind, name: &str| match signal(kind) {
        Ok(s) => Some(s),
        Err(e) => {
            tracing::warn!("cannot handle {name}: {e}; it keeps its default action");
            None
        }
    };
    let mut term = install(SignalKind::terminate(), "SIGTERM");
    let mut int = install(SignalKind::interrupt(), "SIGINT");
    let mut usr2 = install(SignalKind::user_defined2(), "SIGUSR2");
    let mut hup = install(SignalKind::hangup(), "SIGHUP");
    for (number, name) in IGNORED {
        if let Some(mut s) = install(SignalKind::from_raw(*number), name) {
            tokio::spawn(async move {
                while s.recv().await.is_some() {
                    tracing::warn!(
                        "{name} received and ignored (SIGTERM or SIGINT stops the daemon, SIGUSR2 upgrades it, SIGHUP reloads it)"
                    );
                }
            });
        }
    }
    tokio::spawn(async move {
        loop {
            tokio::select! {
                Some(()) = recv(&mut term) => {
                    tracing::info!("SIGTERM: stopping the daemon");
                    lifecycle.request_exit(stop_instances_on_exit);
                }
                Some(()) = recv(&mut int) => {
                    tracing::info!("SIGINT: stopping the daemon");
                    lifecycle.request_exit(stop_instances_on_exit);
                }
                Some(()) = recv(&mut usr2) => {
                    tracing::info!("SIGUSR2: upgrading (handing over to the binary at this daemon's path)");
                    let lifecycle = lifecycle.clone();
                    tokio::spawn(async move {
                        match lifecycle.upgrade().await {
                            Ok(r) => tracing::info!(pid = r.pid, took_ms = r.took.as_millis() as u64, "upgraded"),
                            Err(e) => tracing::error!("the upgrade failed: {e}; this daemon keeps serving"),
                        }
                    });
                }
                Some(()) = recv(&mut hup) => {
                    tracing::info!("SIGHUP: reloading the config (handing over to a daemon that reads it)");
                    let lifecycle = lifecycle.clone();
                    tokio::spawn(async move {
                        match lifecycle.reload().await {
                            Ok(r) => {
                                tracing::info!(pid = r.pid, took_ms = r.took.as_millis() as u64, "reloaded");
                                for p in r.pending {
                                    tracing::warn!("pending until the next deploy: {p}");
                                }
                            }
                            Err(e) => tracing::error!("the reload failed: {e}; this daemon keeps serving with the config it has"),
                        }
                    });
                }
                else => return,
            }
        }
    });
}

async fn recv(signal: &mut Option<Signal>) -> Option<()> {
    match signal {
        Some(s) => s.recv().await,
        None => std::future::pending().await,
    }
}
