//! Instance log files of the process driver: creating them private (files
//! 0640 in folders 0750, [`open_log`]; [`tighten`] fixes what an older
//! cutover left 0644/0755), and rotating them by size ([`rotate_if_larger`]).
//!
//! An instance writes its stdout and stderr straight to its log file, on a
//! descriptor it owns (opened `O_APPEND`), so it keeps logging whether the
//! daemon runs, restarts or is replaced; nothing is piped through the
//! daemon. Rotation therefore works on the file in place: the daemon shifts
//! `INSTANCE.log.1` … `.N-1` up by one (dropping `.N`) and copies the start
//! of the live file into a new `INSTANCE.log.1`; then
//!
//! - where the file system can remove a range from the start of a file
//!   (`fallocate(FALLOC_FL_COLLAPSE_RANGE)`: ext4, XFS), it copies the
//!   file's whole blocks and removes exactly those: nothing is lost, and
//!   what the instance writes meanwhile stays in the live file (whose first
//!   line may then be the end of the copy's last one);
//! - elsewhere (tmpfs, btrfs, NFS, or a file smaller than a block) it copies
//!   all of it, copies again what was appended meanwhile, and truncates it
//!   to zero (logrotate's `copytruncate`). What the instance writes between
//!   the last copy pass and the truncation — a window of one system call —
//!   is lost; nothing else is.
//!
//! Either way the instance's next write (`O_APPEND`) lands at the live
//! file's new end.

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use nix::errno::Errno;
use nix::fcntl::{FallocateFlags, fallocate};

use crate::config::LogsConfig;

/// The mode of a log file: the owner writes, the group reads.
pub const FILE_MODE: u32 = 0o640;
/// The mode of a log folder.
pub const DIR_MODE: u32 = 0o750;

/// How many times a rotation copies what was appended during the previous
/// copy before it truncates anyway (an instance writing faster than the
/// copy goes must not hold the rotation forever).
const CATCH_UP_PASSES: usize = 8;

/// The `n`th rotated file of the log at `path`: `INSTANCE.log.n`.
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

/// Opens (creating it 0640, and its folders 0750) the log file at `path`
/// for appending.
pub fn open_log(path: &Path) -> io::Result<File> {
    if let Some(dir) = path.parent() {
        fs::DirBuilder::new()
            .recursive(true)
            .mode(DIR_MODE)
            .create(dir)?;
        restrict(dir, DIR_MODE)?;
    }
    let file = OpenOptions::new()
        .create(true)
        .append(true)
        .mode(FILE_MODE)
        .open(path)?;
    restrict_open(&file, FILE_MODE)?;
    Ok(file)
}

/// Takes away every permission beyond `DIR_MODE` from the folders and
/// beyond `FILE_MODE` from the files under `root` (and `root` itself), for
/// logs an older cutover created 0644 in 0755 folders. Symbolic links are
/// not followed. A missing `root` is fine. Returns how many were changed.
pub fn tighten(root: &Path) -> io::Result<usize> {
    let mut changed = 0usize;
    let mut stack = vec![root.to_path_buf()];
    while let Some(path) = stack.pop() {
        let meta = match fs::symlink_metadata(&path) {
            Ok(meta) => meta,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        let allowed = if meta.is_dir() {
            for entry in fs::read_dir(&path)? {
                stack.push(entry?.path());
            }
            DIR_MODE
        } else if meta.is_file() {
            FILE_MODE
        } else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & !allowed != 0 {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode & allowed))?;
            changed = changed.saturating_add(1);
        }
    }
    Ok(changed)
}

/// Rotates the log at `path` when it is larger than `limits.max_size`,
/// keeping `limits.max_files` rotated files. Returns whether it rotated. A
/// missing file is not rotated (and not an error).
pub fn rotate_if_larger(path: &Path, limits: LogsConfig) -> io::Result<bool> {
    let len = match fs::metadata(path) {
        Ok(meta) => meta.len(),
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(false),
        Err(e) => return Err(e),
    };
    if len <= limits.max_size {
        return Ok(false);
    }
    rotate(path, limits.max_files)?;
    Ok(true)
}

/// How a rotation emptied the live file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Rotated {
    /// Its first `n` bytes (whole blocks) were removed: nothing was lost.
    Collapsed(u64),
    /// It was truncated to zero after its copy.
    Truncated,
}

/// Rotates the log at `path` now: `.N` is dropped, `.1` … `.N-1` become
/// `.2` … `.N`, the start of the live file is copied to `.1` and removed
/// from it (see the module's comment). With `keep` 0, nothing is copied.
pub fn rotate(path: &Path, keep: u32) -> io::Result<Rotated> {
    rotate_with(path, keep, true)
}

/// [`rotate`], trying to collapse the copied range only with `collapse`
/// (tests use `false` for the copy-then-truncate path on any file system).
pub(crate) fn rotate_with(path: &Path, keep: u32, collapse: bool) -> io::Result<Rotated> {
    use std::os::unix::fs::MetadataExt;
    // Opened first, so that the truncation is one call after the last copy.
    let live = OpenOptions::new().write(true).open(path)?;
    let meta = live.metadata()?;
    // Whole blocks, and never up to the end: a collapse may not reach it.
    let block = meta.blksize().max(1);
    let mut cut = meta
        .len()
        .checked_div(block)
        .unwrap_or(0)
        .saturating_mul(block);
    if cut == meta.len() {
        cut = cut.saturating_sub(block);
    }
    let collapse = collapse && cut > 0;
    let mut copy = None;
    if keep > 0 {
        remove_if_present(&numbered(path, keep))?;
        for n in (1..keep).rev() {
            match fs::rename(numbered(path, n), numbered(path, n.saturating_add(1))) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(e) => return Err(e),
            }
        }
        let first = numbered(path, 1);
        let mut file = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(FILE_MODE)
            .open(&first)?;
        restrict_open(&file, FILE_MODE)?;
        let mut source = File::open(path)?;
        if collapse {
            io::copy(&mut (&mut source).take(cut), &mut file)?;
        }
        copy = Some((source, file));
    }
    if collapse {
        match collapse_start(&live, cut) {
            Ok(()) => return Ok(Rotated::Collapsed(cut)),
            // Not supported here: copy the rest, then truncate.
            Err(Errno::EOPNOTSUPP | Errno::EINVAL | Errno::ENOSYS) => {}
            Err(errno) => return Err(io::Error::from(errno)),
        }
    }
    if let Some((mut source, mut file)) = copy {
        copy_caught_up(&mut source, &mut file)?;
    }
    live.set_len(0)?;
    Ok(Rotated::Truncated)
}

/// Removes the first `len` bytes of `file` (a multiple of its block size).
fn collapse_start(file: &File, len: u64) -> Result<(), Errno> {
    let len = i64::try_from(len).map_err(|_| Errno::EINVAL)?;
    fallocate(file, FallocateFlags::FALLOC_FL_COLLAPSE_RANGE, 0, len)
}

/// Copies `source` from its position to its end, then what was appended to
/// it meanwhile, until a pass finds nothing new (or [`CATCH_UP_PASSES`]).
/// Never holds more than one buffer of it in memory.
fn copy_caught_up(source: &mut File, copy: &mut File) -> io::Result<()> {
    for _ in 0..CATCH_UP_PASSES {
        if io::copy(source, copy)? == 0 {
            break;
        }
    }
    copy.flush()
}

fn remove_if_present(path: &Path) -> io::Result<()> {
    match fs::remove_file(path) {
        Ok(()) => Ok(()),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(e),
    }
}

/// Takes away every permission beyond `allowed` from `path`.
fn restrict(path: &Path, allowed: u32) -> io::Result<()> {
    let mode = fs::metadata(path)?.permissions().mode() & 0o7777;
    if mode & !allowed != 0 {
        fs::set_permissions(path, fs::Permissions::from_mode(mode & allowed))?;
    }
    Ok(())
}

/// [`restrict`] for an open file (one that existed before it was opened
/// keeps the mode it had, which may be wider).
fn restrict_open(file: &File, allowed: u32) -> io::Result<()> {
    let mode = file.metadata()?.permissions().mode() & 0o7777;
    if mode & !allowed != 0 {
        file.set_permissions(fs::Permissions::from_mode(mode & allowed))?;
    }
    Ok(())
}

/// The bytes of the log at `path` from `offset` to its end as it is now,
/// read from the rotated copy `.1` when the live file has been truncated
/// below `offset` since it was read up to there (what a follower missed).
/// `None` when `.1` is not the copy of what was read (it is shorter).
pub(crate) fn missed_before_rotation(path: &Path, offset: u64) -> io::Result<Option<File>> {
    let first = numbered(path, 1);
    let mut file = match File::open(&first) {
        Ok(f) => f,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if file.metadata()?.len() < offset {
        return Ok(None);
    }
    file.seek(SeekFrom::Start(offset))?;
    Ok(Some(file))
}

/// Reads all of `file` from its position into a `Vec` of at most `max`
/// bytes (the rest is left). For tests and small reads only.
#[cfg(test)]
fn read_all(file: &mut File, max: u64) -> io::Result<Vec<u8>> {
    let mut out = Vec::new();
    file.take(max).read_to_end(&mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(path: &Path) -> u32 {
        fs::metadata(path).expect("stat").permissions().mode() & 0o7777
    }

    #[test]
    fn new_logs_are_0640_in_0750_folders() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("logs/production/web/i-1.log");
        let mut f = open_log(&path).expect("open");
        f.write_all(b"hello\n").expect("write");
        assert_eq!(mode(&path), 0o640);
        assert_eq!(mode(&dir.path().join("logs/production/web")), 0o750);
        assert_eq!(mode(&dir.path().join("logs/production")), 0o750);
        assert_eq!(mode(&dir.path().join("logs")), 0o750);
    }

    #[test]
    fn older_logs_are_tightened_and_never_loosened() {
        let dir = tempfile::tempdir().expect("tempdir");
        let root = dir.path().join("logs");
        let web = root.join("production/web");
        fs::create_dir_all(&web).expect("mkdir");
        for d in [&root, &root.join("production"), &web] {
            fs::set_permissions(d, fs::Permissions::from_mode(0o755)).expect("chmod");
        }
        let old = web.join("old.log");
        fs::write(&old, b"x").expect("write");
        fs::set_permissions(&old, fs::Permissions::from_mode(0o666)).expect("chmod");
        let private = web.join("private.log");
        fs::write(&private, b"x").expect("write");
        fs::set_permissions(&private, fs::Permissions::from_mode(0o600)).expect("chmod");
        std::os::unix::fs::symlink("/etc/passwd", web.join("link.log")).expect("symlink");

        assert_eq!(tighten(&root).expect("tighten"), 4);
        assert_eq!(mode(&root), 0o750);
        assert_eq!(mode(&root.join("production")), 0o750);
        assert_eq!(mode(&web), 0o750);
        assert_eq!(mode(&old), 0o640);
        assert_eq!(mode(&private), 0o600, "never loosened");
        assert_eq!(tighten(&root).expect("again"), 0);
        assert_eq!(tighten(&dir.path().join("missing")).expect("missing"), 0);
    }

    /// Writes 200 lines through an `O_APPEND` descriptor kept open, rotating
    /// (`collapse` or not) whenever the log outgrows 1 KiB, keeping 3 files;
    /// returns everything written and the files' contents, oldest first.
    fn write_and_rotate(dir: &Path, collapse: bool) -> (String, String, Vec<Rotated>, PathBuf) {
        let path = dir.join("i.log");
        let mut writer = open_log(&path).expect("open");
        let mut written = String::new();
        let mut rotations = Vec::new();
        for i in 0..2000 {
            let line = format!("line {i:04} {}\n", "x".repeat(40));
            writer.write_all(line.as_bytes()).expect("write");
            written.push_str(&line);
            if fs::metadata(&path).expect("stat").len() > 8 * 1024 {
                rotations.push(rotate_with(&path, 3, collapse).expect("rotate"));
            }
        }
        assert!(numbered(&path, 3).exists());
        assert!(!numbered(&path, 4).exists(), "only 3 rotated files kept");
        for n in 1..=3 {
            assert_eq!(mode(&numbered(&path, n)), 0o640);
        }
        let mut kept = String::new();
        for n in (1..=3).rev() {
            kept.push_str(&fs::read_to_string(numbered(&path, n)).expect("read"));
        }
        kept.push_str(&fs::read_to_string(&path).expect("read"));
        // The writer goes on at the live file's end, no hole.
        writer.write_all(b"after\n").expect("write");
        let live = fs::read(&path).expect("read");
        assert!(!live.contains(&0), "no sparse hole of zeros");
        (written, kept, rotations, path)
    }

    #[test]
    fn copy_then_truncate_keeps_n_files_of_the_newest_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (written, kept, rotations, _) = write_and_rotate(dir.path(), false);
        assert!(rotations.len() > 5, "{} rotations", rotations.len());
        assert!(rotations.iter().all(|r| *r == Rotated::Truncated));
        assert!(
            written.ends_with(&kept),
            "the kept files are the end of what was written"
        );
        assert!(kept.len() > 3 * 8 * 1024, "{} bytes kept", kept.len());
    }

    #[test]
    fn collapsing_keeps_n_files_and_every_byte_since_the_oldest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let (written, kept, rotations, path) = write_and_rotate(dir.path(), true);
        assert!(rotations.len() > 5, "{} rotations", rotations.len());
        assert!(
            rotations
                .iter()
                .all(|r| matches!(r, Rotated::Collapsed(n) if n % 4096 == 0)),
            "this test needs a file system that collapses ranges (ext4, XFS): {rotations:?}"
        );
        assert!(written.ends_with(&kept));
        // Nothing lost: the files hold every byte from the oldest kept on,
        // and the live file only what is left after whole blocks.
        let live = fs::metadata(&path).expect("stat").len();
        assert!(live < 8 * 1024 + 4096, "{live}");
    }

    #[test]
    fn keeping_no_files_keeps_only_the_live_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("i.log");
        fs::write(&path, vec![b'a'; 5000]).expect("write");
        let limits = LogsConfig {
            max_size: 1024,
            max_files: 0,
        };
        assert!(rotate_if_larger(&path, limits).expect("rotate"));
        // Collapsed to what is left after whole blocks (or truncated).
        assert!(fs::metadata(&path).expect("stat").len() < 4096);
        assert!(!numbered(&path, 1).exists());
        assert!(!rotate_if_larger(&path, limits).expect("small"));
        assert!(!rotate_if_larger(&dir.path().join("gone.log"), limits).expect("missing"));
    }

    #[test]
    fn a_follower_finds_what_it_missed_in_the_first_rotated_file() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("i.log");
        fs::write(&path, b"read already\nmissed\n").expect("write");
        rotate(&path, 2).expect("rotate");
        let mut rest = missed_before_rotation(&path, 13)
            .expect("open")
            .expect("the copy is long enough");
        assert_eq!(read_all(&mut rest, 1024).expect("read"), b"missed\n");
        assert!(missed_before_rotation(&path, 1000).expect("open").is_none());
    }
}
