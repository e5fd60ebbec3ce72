//! Process-wide limits the proxy depends on: the open-file limit, which every
//! client connection, upstream connection, log file and database handle of
//! the process counts against.

use nix::sys::resource::{Resource, getrlimit, setrlimit};

/// Where Linux caps `RLIMIT_NOFILE` when the hard limit is "unlimited".
const NR_OPEN: &str = "/proc/sys/fs/nr_open";

/// Raises the soft `RLIMIT_NOFILE` of this process to its hard limit (to the
/// kernel's `fs.nr_open` when the hard limit is unlimited). Returns the soft
/// limit before and the one now in force; call once at start.
pub fn raise_nofile_limit() -> std::io::Result<(u64, u64)> {
    let (soft, hard) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    let mut target = hard;
    if target == nix::sys::resource::RLIM_INFINITY {
        target = std::fs::read_to_string(NR_OPEN)
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    if target <= soft {
        return Ok((soft, soft));
    }
    setrlimit(Resource::RLIMIT_NOFILE, target, hard).map_err(std::io::Error::from)?;
    let (now, _) = getrlimit(Resource::RLIMIT_NOFILE).map_err(std::io::Error::from)?;
    Ok((soft, now))
}
