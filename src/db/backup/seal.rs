//! The backup file format and its atomic writing: plaintext → zstd → age
//! (to every recipient) → `NAME.age.partial` → fsync → rename to
//! `NAME.age` → fsync of the folder. The plaintext exists only in memory
//! and in pipes; a crash or a full disk leaves at most a `.partial` file,
//! which never looks complete and which `list` ignores.
//!
//! By hand: `age -d -i KEY NAME.age | zstd -d > restored`.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Write};
use std::path::{Path, PathBuf};

use sha2::{Digest as _, Sha256};

use super::BackupError;
use super::keys::{Identity, Recipient};

/// zstd level: fast, still a good ratio for databases (`bench/backup`
/// measures it against `sqlite3 .backup`).
const ZSTD_LEVEL: i32 = 3;

/// zstd worker threads: compression runs beside the producer and the
/// encryption, on every core but one (at least one worker).
fn zstd_workers() -> u32 {
    std::thread::available_parallelism()
        .map(|n| u32::try_from(n.get()).unwrap_or(1))
        .unwrap_or(1)
        .saturating_sub(1)
        .max(1)
}

/// A writer that hashes and counts what goes through it.
struct Hashing<W> {
    inner: W,
    hash: Sha256,
    size: u64,
}

impl<W: Write> Write for Hashing<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        let written = buf.get(..n).unwrap_or_default();
        self.hash.update(written);
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// What was written.
#[derive(Debug, Clone)]
pub struct Sealed {
    /// The final path.
    pub path: PathBuf,
    /// Bytes of the encrypted file.
    pub size: u64,
    /// Bytes of plaintext that went in.
    pub plain_size: u64,
    /// sha256 of the encrypted file, hex.
    pub sha256: String,
}

/// Compresses and encrypts everything `produce` writes into `path`,
/// atomically. `produce` gets a writer; an error from it removes the partial file.
pub fn seal(
    path: &Path,
    recipients: &[Recipient],
    produce: impl FnOnce(&mut dyn Write) -> Result<(), BackupError>,
) -> Result<Sealed, BackupError> {
    let partial = path.with_extension("age.partial");
    let result = seal_into(&partial, recipients, produce);
    match result {
        Ok((size, plain_size, sha256)) => {
            std::fs::rename(&partial, path).map_err(|e| io_error("rename", path, e))?;
            if let Some(dir) = path.parent() {
                File::open(dir)
                    .and_then(|d| d.sync_all())
                    .map_err(|e| io_error("fsync", dir, e))?;
            }
            Ok(Sealed {
                path: path.to_owned(),
                size,
                plain_size,
                sha256,
            })
        }
        Err(error) => {
            let _ = std::fs::remove_file(&partial);
            Err(error)
        }
    }
}

fn seal_into(
    partial: &Path,
    recipients: &[Recipient],
    produce: impl FnOnce(&mut dyn Write) -> Result<(), BackupError>,
) -> Result<(u64, u64, String), BackupError> {
    let file = File::create(partial).map_err(|e| io_error("create", partial, e))?;
    let hashing = Hashing {
        inner: BufWriter::new(file),
        hash: Sha256::new(),
        size: 0,
    };
    let encryptor = age::Encryptor::with_recipients(recipients.iter().map(|r| r.as_ref() as _))
        .map_err(|e| BackupError::Keys(format!("cannot encrypt: {e}")))?;
    let encrypted = encryptor
        .wrap_output(hashing)
        .map_err(|e| io_error("write", partial, e))?;
    let mut encoder = zstd::stream::write::Encoder::new(encrypted, ZSTD_LEVEL)
        .map_err(|e| io_error("compress", partial, e))?;
    encoder
        .multithread(zstd_workers())
        .map_err(|e| io_error("compress", partial, e))?;
    let mut counting = Counting {
        inner: encoder,
        size: 0,
    };
    produce(&mut counting)?;
    let plain_size = counting.size;
    let hashing = counting
        .inner
        .finish()
        .and_then(|encrypted| encrypted.finish())
        .map_err(|e| io_error("write", partial, e))?;
    let Hashing {
        inner, hash, size, ..
    } = hashing;
    let file = inner
        .into_inner()
        .map_err(|e| io_error("write", partial, e.into_error()))?;
    file.sync_all().map_err(|e| io_error("fsync", partial, e))?;
    Ok((size, plain_size, hex(&hash.finalize())))
}

/// A writer that counts.
struct Counting<W> {
    inner: W,
    size: u64,
}

impl<W: Write> Write for Counting<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let n = self.inner.write(buf)?;
        self.size += n as u64;
        Ok(n)
    }
    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// sha256 of a file, hex.
pub fn file_sha256(path: &Path) -> Result<String, BackupError> {
    let mut file = File::open(path).map_err(|e| io_error("open", path, e))?;
    let mut hash = Sha256::new();
    io::copy(&mut file, &mut hash).map_err(|e| io_error("read", path, e))?;
    Ok(hex(&hash.finalize()))
}

/// A reader of the plaintext of the backup at `path`.
pub fn open(path: &Path, identities: &[Identity]) -> Result<Box<dyn Read + Send>, BackupError> {
    let file = File::open(path).map_err(|e| io_error("open", path, e))?;
    let decryptor = age::Decryptor::new_buffered(BufReader::new(file))
        .map_err(|e| BackupError::Decrypt(e.to_string()))?;
    let reader = decryptor
        .decrypt(identities.iter().map(|i| i.as_ref() as _))
        .map_err(|e| BackupError::Decrypt(e.to_string()))?;
    let decoder = zstd::stream::read::Decoder::new(reader)
        .map_err(|e| BackupError::Decrypt(e.to_string()))?;
    Ok(Box::new(decoder))
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// An I/O error on `path`.
pub fn io_error(what: &str, path: &Path, error: io::Error) -> BackupError {
    BackupError::Io(format!("{what} {}: {error}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn io(e: io::Error) -> BackupError {
        BackupError::Io(e.to_string())
    }

    #[test]
    fn a_failed_producer_leaves_nothing_and_a_good_one_round_trips() {
        let dir = tempfile::tempdir().expect("dir");
        let identity = age::x25519::Identity::generate();
        let recipients: Vec<Recipient> = vec![Box::new(identity.to_public())];
        let path = dir.path().join("x.age");
        let failed = seal(&path, &recipients, |w| {
            w.write_all(b"half").map_err(io)?;
            Err(BackupError::Io("disk full".into()))
        });
        assert!(failed.is_err());
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);

        let sealed = seal(&path, &recipients, |w| w.write_all(b"hello").map_err(io)).expect("seal");
        assert_eq!(sealed.plain_size, 5);
        assert_eq!(file_sha256(&path).expect("sha256"), sealed.sha256);
        let identities: Vec<Identity> = vec![Box::new(identity)];
        let mut text = String::new();
        open(&path, &identities)
            .expect("open")
            .read_to_string(&mut text)
            .expect("read");
        assert_eq!(text, "hello");

        let other: Vec<Identity> = vec![Box::new(age::x25519::Identity::generate())];
        assert!(matches!(open(&path, &other), Err(BackupError::Decrypt(_))));
    }
}
