//! The environment an instance of the process driver starts with.
//!
//! The daemon's environment holds things meant for cutover alone
//! (`CUTOVER_BACKUP_IDENTITY`, `CUTOVER_TOKEN`, `CUTOVER_LOG`, systemd's
//! `LISTEN_FDS` and `NOTIFY_SOCKET`, whatever the unit file or shell set), so
//! an instance does not inherit it. It gets:
//!
//! 1. from the daemon's environment, only [`ALLOWED`] and `LC_*` — or, with
//!    the service's `inherit_env = true`, everything except cutover's own
//!    `CUTOVER_*` variables and [`NEVER`];
//! 2. the service's `env` (except [`NEVER`]);
//! 3. what cutover sets for it: `PORT`, `CUTOVER_VERSION`, `CUTOVER_INSTANCE`,
//!    `CUTOVER_SERVICE`, `CUTOVER_ENVIRONMENT`, `CUTOVER_APP` (these win).
//!
//! A worker's health command (process driver) runs with the environment its
//! instance was started with ([`of_process`]). Containers (the docker
//! driver) never see the daemon's environment: they get the service's `env`
//! and cutover's variables only.

use std::collections::BTreeMap;
use std::ffi::{OsStr, OsString};

/// Variables of the daemon's environment every instance gets.
pub const ALLOWED: [&str; 4] = ["PATH", "HOME", "LANG", "TZ"];

/// Prefixes of the daemon's variables every instance gets (locale settings).
pub const ALLOWED_PREFIXES: [&str; 1] = ["LC_"];

/// Variables that never reach an instance, whatever the config says: they
/// describe the daemon's own sockets (systemd socket activation and
/// readiness), and an instance that read them would take the daemon's.
pub const NEVER: [&str; 4] = [
    "LISTEN_FDS",
    "LISTEN_PID",
    "LISTEN_FDNAMES",
    "NOTIFY_SOCKET",
];

/// The prefix of cutover's own variables. Those in the daemon's environment
/// (`CUTOVER_BACKUP_IDENTITY`, `CUTOVER_TOKEN`, …) are never passed on; an
/// instance gets only those cutover sets for it.
pub const OWN_PREFIX: &str = "CUTOVER_";

/// The variables of the daemon's environment `vars` an instance gets:
/// [`ALLOWED`] and `LC_*`, or with `inherit` everything but `CUTOVER_*` and
/// [`NEVER`].
pub fn from_daemon(
    vars: impl IntoIterator<Item = (OsString, OsString)>,
    inherit: bool,
) -> Vec<(OsString, OsString)> {
    vars.into_iter()
        .filter(|(name, _)| passes(name, inherit))
        .collect()
}

/// The service's `env` without the variables in [`NEVER`].
pub fn from_service(env: &BTreeMap<String, String>) -> impl Iterator<Item = (&String, &String)> {
    env.iter()
        .filter(|(name, _)| !NEVER.contains(&name.as_str()))
}

/// The environment process `pid` was started with (`/proc/<pid>/environ`),
/// without [`NEVER`]; `None` when it cannot be read (the process is gone).
/// A worker's health command runs with its instance's environment.
pub fn of_process(pid: i32) -> Option<Vec<(OsString, OsString)>> {
    use std::os::unix::ffi::OsStrExt;
    let raw = std::fs::read(format!("/proc/{pid}/environ")).ok()?;
    Some(
        raw.split(|b| *b == 0)
            .filter_map(|entry| {
                let at = entry.iter().position(|b| *b == b'=')?;
                let (name, value) = (&entry[..at], &entry[at.saturating_add(1)..]);
                (!name.is_empty()).then(|| {
                    (
                        OsStr::from_bytes(name).to_owned(),
                        OsStr::from_bytes(value).to_owned(),
                    )
                })
            })
            .filter(|(name, _)| name.to_str().is_none_or(|n| !NEVER.contains(&n)))
            .collect(),
    )
}

fn passes(name: &OsStr, inherit: bool) -> bool {
    let Some(name) = name.to_str() else {
        // Not UTF-8: none of the allowed names; with `inherit`, not ours.
        return inherit;
    };
    if NEVER.contains(&name) || name.starts_with(OWN_PREFIX) {
        return false;
    }
    inherit
        || ALLOWED.contains(&name)
        || ALLOWED_PREFIXES
            .iter()
            .any(|prefix| name.starts_with(prefix))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn daemon() -> Vec<(OsString, OsString)> {
        [
            ("PATH", "/usr/bin"),
            ("HOME", "/home/app"),
            ("LANG", "C.UTF-8"),
            ("LC_TIME", "de_DE.UTF-8"),
            ("TZ", "UTC"),
            ("SECRET_FROM_DAEMON", "x"),
            ("CUTOVER_BACKUP_IDENTITY", "/etc/cutover/key.txt"),
            ("CUTOVER_TOKEN", "t0ken"),
            ("CUTOVER_LOG", "debug"),
            ("LISTEN_FDS", "3"),
            ("LISTEN_PID", "1"),
            ("LISTEN_FDNAMES", "api"),
            ("NOTIFY_SOCKET", "/run/systemd/notify"),
        ]
        .into_iter()
        .map(|(k, v)| (k.into(), v.into()))
        .collect()
    }

    fn names(vars: &[(OsString, OsString)]) -> Vec<&str> {
        let mut names: Vec<&str> = vars.iter().filter_map(|(k, _)| k.to_str()).collect();
        names.sort_unstable();
        names
    }

    #[test]
    fn the_allowlist_keeps_only_path_home_locale_and_time_zone() {
        assert_eq!(
            names(&from_daemon(daemon(), false)),
            ["HOME", "LANG", "LC_TIME", "PATH", "TZ"]
        );
    }

    #[test]
    fn inheriting_keeps_everything_but_cutover_s_own_and_systemd_s() {
        assert_eq!(
            names(&from_daemon(daemon(), true)),
            [
                "HOME",
                "LANG",
                "LC_TIME",
                "PATH",
                "SECRET_FROM_DAEMON",
                "TZ"
            ]
        );
    }

    #[test]
    fn a_process_environment_is_read_from_proc() {
        let me = i32::try_from(std::process::id()).expect("pid");
        let vars = of_process(me).expect("our own environ");
        let ours: Vec<(OsString, OsString)> = std::env::vars_os()
            .filter(|(k, _)| k.to_str().is_none_or(|n| !NEVER.contains(&n)))
            .collect();
        // The tests may not change their environment: what we started with.
        for var in &ours {
            assert!(vars.contains(var), "{var:?}");
        }
        assert!(of_process(i32::MAX).is_none());
    }

    #[test]
    fn the_service_env_cannot_pass_systemd_s_variables() {
        let env = BTreeMap::from([
            ("LISTEN_FDS".to_owned(), "3".to_owned()),
            ("NOTIFY_SOCKET".to_owned(), "/x".to_owned()),
            ("DATABASE_URL".to_owned(), "postgres://h/db".to_owned()),
        ]);
        let kept: Vec<&String> = from_service(&env).map(|(k, _)| k).collect();
        assert_eq!(kept, ["DATABASE_URL"]);
    }
}
