//! Reading the end of an instance's log file without reading the whole
//! file: [`tail_start`] finds where the last N lines begin by reading
//! backwards in blocks (one block in memory at a time), so its cost depends
//! on the lines asked for, not on the file's size; [`tail`] returns those
//! lines (at most [`MAX_TAIL_BYTES`] of them), for the message when an
//! instance fails to start or dies. `follow.rs` streams from
//! [`tail_start`] on for `cutover logs`.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Block size for reading backwards.
const BLOCK: usize = 8 * 1024;

/// The most bytes [`tail`] returns: the end of a longer last line is kept,
/// its start replaced by `…`.
pub const MAX_TAIL_BYTES: u64 = 64 * 1024;

/// The offset in `file` (of length `len`) where its last `lines` lines
/// begin: `len` for 0 lines, 0 when it has no more than `lines`. A final
/// line without a terminator counts as a line. Reads backwards from `len` in
/// blocks, holding one block in memory, and stops as soon as it has found
/// enough line ends.
pub fn tail_start<R: Read + Seek>(file: &mut R, len: u64, lines: usize) -> io::Result<u64> {
    tail_start_with_block(file, len, lines, BLOCK)
}

fn tail_start_with_block<R: Read + Seek>(
    file: &mut R,
    len: u64,
    lines: usize,
    block: usize,
) -> io::Result<u64> {
    if lines == 0 || len == 0 {
        return Ok(len);
    }
    let block = block.max(1);
    let mut buf = vec![0u8; block];
    let mut pos = len;
    let mut found = 0usize;
    // The file's final newline ends the last line; it separates nothing.
    let last = len.saturating_sub(1);
    while pos > 0 {
        let size = u64::try_from(block).unwrap_or(u64::MAX).min(pos);
        pos = pos.saturating_sub(size);
        let size = usize::try_from(size).map_err(io::Error::other)?;
        let chunk = &mut buf[..size];
        file.seek(SeekFrom::Start(pos))?;
        file.read_exact(chunk)?;
        for (i, byte) in chunk.iter().enumerate().rev() {
            if *byte != b'\n' {
                continue;
            }
            let at = pos.saturating_add(u64::try_from(i).unwrap_or(u64::MAX));
            if at == last {
                continue;
            }
            found = found.saturating_add(1);
            if found == lines {
                return Ok(at.saturating_add(1));
            }
        }
    }
    Ok(0)
}

/// The last `lines` lines of the file at `path`, oldest first, without line
/// terminators (`\n` or `\r\n`); at most [`MAX_TAIL_BYTES`] of them (a
/// longer first line starts with `…`). Invalid UTF-8 is replaced.
pub fn tail(path: &Path, lines: usize) -> io::Result<Vec<String>> {
    tail_capped(path, lines, MAX_TAIL_BYTES)
}

/// [`tail`] with at most `max_bytes` read.
pub fn tail_capped(path: &Path, lines: usize, max_bytes: u64) -> io::Result<Vec<String>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = tail_start(&mut file, len, lines)?;
    let from = start.max(len.saturating_sub(max_bytes));
    file.seek(SeekFrom::Start(from))?;
    let mut text = Vec::new();
    file.take(len.saturating_sub(from)).read_to_end(&mut text)?;
    Ok(split_lines(&text, from > start))
}

/// `text` as lines without terminators; with `cut`, the first is marked as
/// the end of a longer line.
pub(crate) fn split_lines(text: &[u8], cut: bool) -> Vec<String> {
    if text.is_empty() {
        return Vec::new();
    }
    let text = text.strip_suffix(b"\n").unwrap_or(text);
    text.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            let line = String::from_utf8_lossy(line);
            if i == 0 && cut {
                format!("…{line}")
            } else {
                line.into_owned()
            }
        })
        .collect()
}

/// The last of `lines` that fit in `max_lines` lines and `max_bytes` bytes
/// (a line longer than what is left keeps its end, marked with `…`): what an
/// event may quote of an instance's output.
pub fn cap_lines(lines: Vec<String>, max_lines: usize, max_bytes: usize) -> Vec<String> {
    let mut kept: Vec<String> = Vec::new();
    let mut left = max_bytes;
    for line in lines.into_iter().rev().take(max_lines) {
        if line.len() <= left {
            left = left.saturating_sub(line.len());
            kept.push(line);
            continue;
        }
        if left > 0 {
            let mut cut = line.len().saturating_sub(left);
            while !line.is_char_boundary(cut) {
                cut = cut.saturating_add(1);
            }
            kept.push(format!("…{}", &line[cut..]));
        }
        break;
    }
    kept.reverse();
    kept
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn file_with(content: &[u8]) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().expect("temp file");
        f.write_all(content).expect("write temp file");
        f
    }

    #[test]
    fn last_lines_of_a_small_file() {
        let f = file_with(b"one\ntwo\nthree\n");
        assert_eq!(tail(f.path(), 2).expect("tail"), ["two", "three"]);
        assert_eq!(tail(f.path(), 3).expect("tail"), ["one", "two", "three"]);
        assert_eq!(tail(f.path(), 10).expect("tail"), ["one", "two", "three"]);
        assert!(tail(f.path(), 0).expect("tail").is_empty());
    }

    #[test]
    fn unterminated_last_line_crlf_and_blank_lines() {
        let f = file_with(b"a\r\n\nb\r\nc");
        assert_eq!(tail(f.path(), 3).expect("tail"), ["", "b", "c"]);
        let f = file_with(b"\n\n");
        assert_eq!(tail(f.path(), 5).expect("tail"), ["", ""]);
        let f = file_with(b"");
        assert!(tail(f.path(), 5).expect("tail").is_empty());
        let f = file_with(b"only");
        assert_eq!(tail(f.path(), 1).expect("tail"), ["only"]);
    }

    #[test]
    fn invalid_utf8_is_replaced() {
        let f = file_with(b"ok\nbad \xff byte\n");
        assert_eq!(tail(f.path(), 1).expect("tail"), ["bad \u{fffd} byte"]);
    }

    #[test]
    fn big_file_matches_a_naive_tail_for_every_block_size() {
        let mut content = String::new();
        for i in 0..5000 {
            content.push_str(&format!("line {i} {}\n", "x".repeat(i % 37)));
        }
        let f = file_with(content.as_bytes());
        let naive: Vec<&str> = content.lines().collect();
        let len = content.len() as u64;
        for block in [1, 2, 7, 64, 1000, BLOCK, 1 << 20] {
            for n in [1, 2, 10, 123, 4999, 5000, 6000] {
                let mut file = File::open(f.path()).expect("open");
                let start = tail_start_with_block(&mut file, len, n, block).expect("start");
                let got = split_lines(&content.as_bytes()[start as usize..], false);
                let want = &naive[naive.len().saturating_sub(n)..];
                assert_eq!(got, want, "block {block}, lines {n}");
            }
        }
    }

    /// A reader that counts the bytes it reads.
    struct Counting {
        file: File,
        read: u64,
    }

    impl Read for Counting {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            let n = self.file.read(buf)?;
            self.read += n as u64;
            Ok(n)
        }
    }

    impl Seek for Counting {
        fn seek(&mut self, pos: SeekFrom) -> io::Result<u64> {
            self.file.seek(pos)
        }
    }

    #[test]
    fn a_50_mb_log_is_tailed_reading_only_its_end() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("big.log");
        let mut w = std::io::BufWriter::new(File::create(&path).expect("create"));
        let mut lines = 0u64;
        let mut size = 0u64;
        while size < 50 * 1024 * 1024 {
            let line = format!("{lines:08} request served in {} ms\n", lines % 997);
            w.write_all(line.as_bytes()).expect("write");
            size += line.len() as u64;
            lines += 1;
        }
        w.flush().expect("flush");
        drop(w);

        let mut counting = Counting {
            file: File::open(&path).expect("open"),
            read: 0,
        };
        let start = tail_start(&mut counting, size, 100).expect("start");
        assert!(
            counting.read <= 2 * BLOCK as u64,
            "read {} bytes of {size} to find the last 100 lines",
            counting.read
        );
        let got = tail(&path, 100).expect("tail");
        assert_eq!(got.len(), 100);
        for (i, line) in got.iter().enumerate() {
            let n = lines - 100 + i as u64;
            assert_eq!(line, &format!("{n:08} request served in {} ms", n % 997));
        }
        assert_eq!(
            std::fs::metadata(&path).expect("stat").len() - start,
            got.iter().map(|l| l.len() as u64 + 1).sum::<u64>()
        );
    }

    #[test]
    fn a_huge_last_line_is_cut_to_its_end() {
        let mut content = b"first\n".to_vec();
        content.extend(std::iter::repeat_n(b'a', 200_000));
        content.extend_from_slice(b"END\n");
        let f = file_with(&content);
        let got = tail_capped(f.path(), 2, 1000).expect("tail");
        assert_eq!(got.len(), 1);
        assert!(
            got[0].starts_with('…') && got[0].ends_with("aaaEND"),
            "{}",
            &got[0][..20]
        );
        assert!(got[0].len() <= 1000 + '…'.len_utf8());
    }

    #[test]
    fn quoted_lines_are_capped_in_number_and_bytes() {
        let lines: Vec<String> = (0..100).map(|i| format!("line {i}")).collect();
        let capped = cap_lines(lines.clone(), 20, 4096);
        assert_eq!(capped.len(), 20);
        assert_eq!(capped[19], "line 99");
        let long: Vec<String> = vec!["a".repeat(10_000), "b".repeat(3000), "end".into()];
        let capped = cap_lines(long, 20, 4096);
        assert_eq!(capped.len(), 3);
        assert!(capped[0].starts_with('…'));
        let total: usize = capped.iter().map(|l| l.trim_start_matches('…').len()).sum();
        assert_eq!(total, 4096);
        let capped = cap_lines(vec!["ééé".into()], 5, 3);
        assert_eq!(capped, ["…é"]);
    }

    #[test]
    fn missing_file_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = tail(&dir.path().join("nope.log"), 5).expect_err("no such file");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
