//! Reading `/proc/<pid>/stat`: a process's state, process group and start time,
//! which is how the process driver tells a live instance from a zombie or from
//! an unrelated process that reused its PID, and finds every member of an
//! instance's process group.

use std::io;

/// The fields of `/proc/<pid>/stat` the drivers need.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct ProcStat {
    /// Field 1.
    pub pid: i32,
    /// Field 3: `R`, `S`, `D`, `Z` (zombie), `X` (dead), …
    pub state: char,
    /// Field 5: process group id.
    pub pgrp: i32,
    /// Field 22: start time in clock ticks since boot.
    pub start_time_ticks: u64,
}

impl ProcStat {
    /// A zombie or dead process: exited, only waiting to be reaped.
    pub fn is_exited(&self) -> bool {
        matches!(self.state, 'Z' | 'X' | 'x')
    }
}

/// Reads `/proc/<pid>/stat`. `NotFound` means there is no such process.
pub(crate) fn stat(pid: i32) -> io::Result<ProcStat> {
    if pid <= 0 {
        return Err(io::Error::new(io::ErrorKind::NotFound, "not a process id"));
    }
    let text = std::fs::read_to_string(format!("/proc/{pid}/stat"))?;
    parse_stat(&text).ok_or_else(|| {
        io::Error::new(
            io::ErrorKind::InvalidData,
            format!("unexpected format of /proc/{pid}/stat"),
        )
    })
}

/// Parses the text of `/proc/<pid>/stat`. The command name (field 2) is in
/// parentheses and may itself contain spaces and parentheses, so the fields
/// after it are counted from the last `)`.
pub(crate) fn parse_stat(text: &str) -> Option<ProcStat> {
    let open = text.find('(')?;
    let close = text.rfind(')')?;
    let pid = text.get(..open)?.trim().parse().ok()?;
    let rest: Vec<&str> = text.get(close..)?.get(1..)?.split_whitespace().collect();
    // rest[0] is field 3 (state), so field N is rest[N - 3].
    let state = rest.first()?.chars().next()?;
    let pgrp = rest.get(2)?.parse().ok()?;
    let start_time_ticks = rest.get(19)?.parse().ok()?;
    Some(ProcStat {
        pid,
        state,
        pgrp,
        start_time_ticks,
    })
}

/// Whether `pid` is a live (not zombie) process that started at `start_time_ticks`.
pub(crate) fn is_alive(pid: i32, start_time_ticks: u64) -> bool {
    match stat(pid) {
        Ok(s) => !s.is_exited() && s.start_time_ticks == start_time_ticks,
        Err(_) => false,
    }
}

/// The live (not zombie) processes in process group `pgid`.
pub(crate) fn group_members(pgid: i32) -> Vec<ProcStat> {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    dir.filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<i32>().ok())
        .filter_map(|pid| stat(pid).ok())
        .filter(|s| s.pgrp == pgid && !s.is_exited())
        .collect()
}

/// Whether process group `pgid` can still be ours, given that its leader was
/// started at `start_time_ticks`: either the leader is still that process (alive
/// or a zombie), or no process with that PID leads a group of that id any more,
/// so whatever is left in the group is what our leader left behind. If the PID
/// now belongs to an unrelated process that leads its own group of the same id,
/// the group is not ours and must not be signalled.
pub(crate) fn group_is_ours(pgid: i32, start_time_ticks: u64) -> bool {
    match stat(pgid) {
        Ok(s) => s.start_time_ticks == start_time_ticks || s.pgrp != pgid,
        Err(_) => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_a_stat_line_with_a_tricky_command_name() {
        let line = "4242 (we) ird (name)) S 1 4242 4242 0 -1 4194560 100 0 0 0 \
                    1 2 0 0 20 0 1 0 987654 1000000 100 18446744073709551615\n";
        let s = parse_stat(line).expect("the line parses");
        assert_eq!(
            s,
            ProcStat {
                pid: 4242,
                state: 'S',
                pgrp: 4242,
                start_time_ticks: 987654,
            }
        );
        assert!(!s.is_exited());
    }

    #[test]
    fn rejects_truncated_lines() {
        assert_eq!(parse_stat("12 (x) S 1 12"), None);
        assert_eq!(parse_stat(""), None);
    }

    #[test]
    fn reads_our_own_process() {
        let me = i32::try_from(std::process::id()).expect("pid fits in i32");
        let s = stat(me).expect("our own stat is readable");
        assert_eq!(s.pid, me);
        assert!(is_alive(me, s.start_time_ticks));
        assert!(!is_alive(me, s.start_time_ticks + 1));
        assert!(group_members(s.pgrp).iter().any(|m| m.pid == me));
    }

    #[test]
    fn missing_process_is_not_found() {
        // PID 0 is never a user process; negative ids are rejected.
        assert_eq!(
            stat(0).expect_err("no pid 0").kind(),
            io::ErrorKind::NotFound
        );
        assert!(!is_alive(-5, 0));
    }
}
