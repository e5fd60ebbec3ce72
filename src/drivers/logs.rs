//! Reading the end of an instance's log file ([`tail`]): the daemon shows it
//! when an instance fails to start or dies. Reads backwards from the end in
//! blocks, so the cost depends on the lines asked for, not the file's size.

use std::fs::File;
use std::io::{self, Read, Seek, SeekFrom};
use std::path::Path;

/// Block size for reading backwards.
const BLOCK: u64 = 8 * 1024;

/// The last `lines` lines of the file at `path`, oldest first, without line
/// terminators (`\n` or `\r\n`). A final line without a terminator counts as a
/// line; invalid UTF-8 is replaced.
pub fn tail(path: &Path, lines: usize) -> io::Result<Vec<String>> {
    tail_with_block(path, lines, BLOCK)
}

fn tail_with_block(path: &Path, lines: usize, block: u64) -> io::Result<Vec<String>> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    if lines == 0 || len == 0 {
        return Ok(Vec::new());
    }
    // Blocks read so far, last block first.
    let mut blocks: Vec<Vec<u8>> = Vec::new();
    let mut pos = len;
    let mut separators = 0usize;
    while pos > 0 && separators < lines {
        let size = block.min(pos);
        pos = pos.saturating_sub(size);
        file.seek(SeekFrom::Start(pos))?;
        let mut buf = vec![0u8; usize::try_from(size).map_err(io::Error::other)?];
        file.read_exact(&mut buf)?;
        // The file's final newline ends the last line; it separates nothing.
        let counted = if pos.saturating_add(size) == len {
            buf.strip_suffix(b"\n").unwrap_or(&buf)
        } else {
            &buf[..]
        };
        separators = separators.saturating_add(counted.iter().filter(|&&b| b == b'\n').count());
        blocks.push(buf);
    }
    let mut text: Vec<u8> = Vec::with_capacity(blocks.iter().map(Vec::len).sum());
    for b in blocks.iter().rev() {
        text.extend_from_slice(b);
    }
    let text = text.strip_suffix(b"\n").unwrap_or(&text);
    let all: Vec<&[u8]> = text.split(|&b| b == b'\n').collect();
    let skip = all.len().saturating_sub(lines);
    Ok(all[skip..]
        .iter()
        .map(|line| {
            let line = line.strip_suffix(b"\r").unwrap_or(line);
            String::from_utf8_lossy(line).into_owned()
        })
        .collect())
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
        for block in [1, 2, 7, 64, 1000, BLOCK, 1 << 20] {
            for n in [1, 2, 10, 123, 4999, 5000, 6000] {
                let got = tail_with_block(f.path(), n, block).expect("tail");
                let want = &naive[naive.len().saturating_sub(n)..];
                assert_eq!(got, want, "block {block}, lines {n}");
            }
        }
    }

    #[test]
    fn missing_file_is_an_error() {
        let dir = tempfile::tempdir().expect("temp dir");
        let err = tail(&dir.path().join("nope.log"), 5).expect_err("no such file");
        assert_eq!(err.kind(), io::ErrorKind::NotFound);
    }
}
