//! One of the two places with `unsafe` in cutover (the other is `daemon/fds.rs`): SQLite's online backup API
//! (`sqlite3_backup_init/step/finish`) and `sqlite3_serialize`, called on the
//! `libsqlite3-sys` that sqlx links, through sqlx's raw connection handle.
//!
//! [`snapshot`] copies a live database, page by page under one read
//! transaction, into a private in-memory database and serializes that into a
//! `Vec<u8>`: a consistent copy that never touches the disk, while writers go
//! on writing (in WAL mode they are not even blocked). [`load`] turns such
//! bytes back into an in-memory database (`sqlite3_deserialize`), and
//! [`copy`] copies one open database over another (a restore into a live
//! SQLite file), so a restore never writes a plaintext temporary file.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int};
use std::ptr::{self, NonNull};

use libsqlite3_sys as ffi;
use sqlx::sqlite::SqliteConnection;

/// A failure of the SQLite C API, with SQLite's message.
#[derive(Debug, thiserror::Error)]
#[error("SQLite online backup failed: {0}")]
pub struct CopyError(pub String);

impl From<sqlx::Error> for CopyError {
    fn from(error: sqlx::Error) -> Self {
        CopyError(error.to_string())
    }
}

/// A consistent image of the `main` database of `source`, as the bytes of a
/// SQLite file, made in memory.
pub async fn snapshot(source: &mut SqliteConnection) -> Result<Vec<u8>, CopyError> {
    let mut locked = source.lock_handle().await?;
    let source = locked.as_raw_handle();
    // SAFETY: `source` is a valid open connection that the lock keeps to
    // ourselves until it drops at the end of this function. `memory` is
    // opened, used and closed here on this thread only; every pointer
    // SQLite returns is checked for null before use, and the serialized
    // buffer is copied out and freed with `sqlite3_free` exactly once.
    unsafe {
        let mut memory: *mut ffi::sqlite3 = ptr::null_mut();
        let rc = ffi::sqlite3_open_v2(
            c":memory:".as_ptr(),
            &mut memory,
            ffi::SQLITE_OPEN_READWRITE | ffi::SQLITE_OPEN_CREATE,
            ptr::null(),
        );
        let Some(memory) = NonNull::new(memory) else {
            return Err(CopyError(format!(
                "cannot open an in-memory database (code {rc})"
            )));
        };
        let result = if rc == ffi::SQLITE_OK {
            backup(source, memory).and_then(|()| serialize(memory))
        } else {
            Err(error_of(memory, rc))
        };
        ffi::sqlite3_close(memory.as_ptr());
        result
    }
}

/// Copies the `main` database of `source` over that of `target`.
pub async fn copy(
    source: &mut SqliteConnection,
    target: &mut SqliteConnection,
) -> Result<(), CopyError> {
    let mut source = source.lock_handle().await?;
    let mut target = target.lock_handle().await?;
    // SAFETY: both handles are valid open connections held exclusively by
    // their locks for the duration of the call.
    unsafe { backup(source.as_raw_handle(), target.as_raw_handle()) }
}

/// Loads `image` (the bytes of a SQLite file) as the `main` database of
/// `connection`, which should be a fresh `sqlite::memory:` connection: the
/// decrypted backup is checked and restored from memory, never from a
/// plaintext file.
pub async fn load(connection: &mut SqliteConnection, image: &[u8]) -> Result<(), CopyError> {
    let mut locked = connection.lock_handle().await?;
    let db = locked.as_raw_handle();
    let size = ffi::sqlite3_int64::try_from(image.len())
        .map_err(|_| CopyError("the database is too large".into()))?;
    let length = u64::try_from(image.len()).map_err(|_| CopyError("too large".into()))?;
    // SAFETY: `db` is a valid open connection held exclusively by the lock.
    // The buffer is allocated by `sqlite3_malloc64` with room for `image`,
    // filled by a non-overlapping copy, and handed to SQLite with
    // FREEONCLOSE, which frees it (also when deserialize fails).
    unsafe {
        let buffer = ffi::sqlite3_malloc64(length.max(1)).cast::<u8>();
        if buffer.is_null() {
            return Err(CopyError("out of memory loading the backup".into()));
        }
        ptr::copy_nonoverlapping(image.as_ptr(), buffer, image.len());
        // A WAL database (file format bytes 18 and 19 = 2) cannot be opened
        // in memory, where there is no WAL file: mark the copy as a
        // rollback-journal database, which it equally is.
        if image.len() > 19 && image.get(18) == Some(&2) && image.get(19) == Some(&2) {
            *buffer.add(18) = 1;
            *buffer.add(19) = 1;
        }
        let rc = ffi::sqlite3_deserialize(
            db.as_ptr(),
            c"main".as_ptr(),
            buffer,
            size,
            size,
            (ffi::SQLITE_DESERIALIZE_FREEONCLOSE | ffi::SQLITE_DESERIALIZE_RESIZEABLE) as _,
        );
        if rc != ffi::SQLITE_OK {
            return Err(error_of(db, rc));
        }
    }
    Ok(())
}

/// Runs a whole online backup from `source` to `target`.
///
/// # Safety
/// Both must be valid open connections used by no one else meanwhile.
unsafe fn backup(
    source: NonNull<ffi::sqlite3>,
    target: NonNull<ffi::sqlite3>,
) -> Result<(), CopyError> {
    // SAFETY: guaranteed by the caller; `handle` is checked for null and
    // finished exactly once.
    unsafe {
        let handle = ffi::sqlite3_backup_init(
            target.as_ptr(),
            c"main".as_ptr(),
            source.as_ptr(),
            c"main".as_ptr(),
        );
        if handle.is_null() {
            return Err(error_of(target, ffi::sqlite3_errcode(target.as_ptr())));
        }
        // All pages in one step: one read transaction on the source, so the
        // copy is consistent and is not restarted by concurrent writers.
        let mut rc = ffi::sqlite3_backup_step(handle, -1);
        let mut tries = 0;
        while (rc == ffi::SQLITE_BUSY || rc == ffi::SQLITE_LOCKED) && tries < 200 {
            ffi::sqlite3_sleep(25);
            tries += 1;
            rc = ffi::sqlite3_backup_step(handle, -1);
        }
        let finish = ffi::sqlite3_backup_finish(handle);
        if rc != ffi::SQLITE_DONE {
            return Err(CopyError(format!(
                "backup step: {}",
                CStr::from_ptr(ffi::sqlite3_errstr(rc)).to_string_lossy()
            )));
        }
        if finish != ffi::SQLITE_OK {
            return Err(error_of(target, finish));
        }
        Ok(())
    }
}

/// The bytes of the `main` database of `db`.
///
/// # Safety
/// `db` must be a valid open connection used by no one else meanwhile.
unsafe fn serialize(db: NonNull<ffi::sqlite3>) -> Result<Vec<u8>, CopyError> {
    // SAFETY: guaranteed by the caller; the returned buffer is `size` bytes
    // long, owned by us, and freed once after copying.
    unsafe {
        let mut size: ffi::sqlite3_int64 = 0;
        let data = ffi::sqlite3_serialize(db.as_ptr(), c"main".as_ptr(), &mut size, 0);
        if data.is_null() {
            return Err(CopyError(
                "cannot serialize the in-memory copy (out of memory?)".into(),
            ));
        }
        let length = usize::try_from(size).unwrap_or(0);
        let bytes = std::slice::from_raw_parts(data, length).to_vec();
        ffi::sqlite3_free(data.cast());
        Ok(bytes)
    }
}

/// SQLite's message for the last error on `db`.
///
/// # Safety
/// `db` must be a valid connection.
unsafe fn error_of(db: NonNull<ffi::sqlite3>, rc: c_int) -> CopyError {
    // SAFETY: `sqlite3_errmsg` returns a NUL-terminated string owned by `db`.
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())) };
    CopyError(format!("{} (code {rc})", message.to_string_lossy()))
}
