//! One of the two places with `unsafe` in cutover (the other is `daemon/fds.rs`): SQLite's online backup API
//! (`sqlite3_backup_init/step/finish`), called on the `libsqlite3-sys` that
//! sqlx links, through sqlx's raw connection handle.
//!
//! [`copy`] copies one open database over another, page by page (a restore
//! into a live SQLite file), so connections open on the target see one
//! consistent database before and after.
#![allow(unsafe_code)]

use std::ffi::{CStr, c_int};
use std::ptr::NonNull;

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

/// SQLite's message for the last error on `db`.
///
/// # Safety
/// `db` must be a valid connection.
unsafe fn error_of(db: NonNull<ffi::sqlite3>, rc: c_int) -> CopyError {
    // SAFETY: `sqlite3_errmsg` returns a NUL-terminated string owned by `db`.
    let message = unsafe { CStr::from_ptr(ffi::sqlite3_errmsg(db.as_ptr())) };
    CopyError(format!("{} (code {rc})", message.to_string_lossy()))
}
