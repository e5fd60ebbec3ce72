//! The daemon's dealings with the system around it. `notify`: systemd's
//! readiness protocol (`READY=1`, `RELOADING=1`, `STOPPING=1`).

pub mod notify;
