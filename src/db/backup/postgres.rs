//! PostgreSQL backups with the real tools: `pg_dump --format=custom`
//! streamed into the sealed file (no plaintext on disk); verification with
//! `pg_restore` into a temporary database that is dropped afterwards;
//! restores with `pg_restore --clean --if-exists`. The password goes to the
//! tools in `PGPASSWORD`, never on their command line.

use std::collections::BTreeMap;
use std::io::Read as _;
use std::path::Path;
use std::process::{Command, Stdio};

use sqlx::Connection as _;
use sqlx::postgres::PgConnection;

use super::BackupError;
use super::keys::{Identity, Recipient};
use super::seal::{self, Sealed};

fn db_error(error: sqlx::Error) -> BackupError {
    BackupError::Database(crate::db::migrate::describe_error(&error))
}

/// `url` without its password, and the password (percent-decoded).
fn split_password(url: &str) -> (String, Option<String>) {
    let Some((scheme, rest)) = url.split_once("://") else {
        return (url.to_owned(), None);
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    match authority.rsplit_once('@') {
        Some((credentials, host)) => match credentials.split_once(':') {
            Some((user, password)) => (
                format!("{scheme}://{user}@{host}{tail}"),
                Some(percent_decode(password)),
            ),
            None => (url.to_owned(), None),
        },
        None => (url.to_owned(), None),
    }
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while let Some(&b) = bytes.get(i) {
        if b == b'%'
            && let Some(hex) = text.get(i + 1..i + 3)
            && let Ok(value) = u8::from_str_radix(hex, 16)
        {
            out.push(value);
            i += 3;
        } else {
            out.push(b);
            i += 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `url` with its database name replaced by `database`.
fn with_database(url: &str, database: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let end = rest.find(['/', '?']).unwrap_or(rest.len());
    let (authority, tail) = rest.split_at(end);
    let query = tail.find('?').and_then(|i| tail.get(i..)).unwrap_or("");
    format!("{scheme}://{authority}/{database}{query}")
}

/// A command for `tool` against `url`.
fn tool(name: &str, url: &str) -> Command {
    let (url, password) = split_password(url);
    let mut command = Command::new(name);
    command.arg(format!("--dbname={url}"));
    if let Some(password) = password {
        command.env("PGPASSWORD", password);
    }
    command
}

fn missing(name: &str, error: std::io::Error) -> BackupError {
    BackupError::Tool(format!(
        "cannot run {name}: {error} (install PostgreSQL's client tools, e.g. apt-get install postgresql-client)"
    ))
}

/// Streams `pg_dump --format=custom` of `url` into the sealed `path`.
pub(super) async fn dump(
    url: &str,
    path: &Path,
    recipients: Vec<Recipient>,
) -> Result<Sealed, BackupError> {
    let mut command = tool("pg_dump", url);
    command
        .args(["--format=custom", "--compress=0", "--no-password"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let path = path.to_owned();
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().map_err(|e| missing("pg_dump", e))?;
        let mut stdout = child
            .stdout
            .take()
            .ok_or_else(|| BackupError::Tool("pg_dump has no stdout".into()))?;
        let mut stderr = child.stderr.take();
        let sealed = seal::seal(&path, &recipients, |w| {
            std::io::copy(&mut stdout, w)
                .map_err(|e| BackupError::Io(format!("pg_dump → backup: {e}")))?;
            let status = child
                .wait()
                .map_err(|e| BackupError::Tool(format!("pg_dump: {e}")))?;
            if status.success() {
                Ok(())
            } else {
                let mut text = String::new();
                if let Some(stderr) = stderr.as_mut() {
                    let _ = stderr.read_to_string(&mut text);
                }
                Err(BackupError::Tool(format!(
                    "pg_dump failed ({status}): {}",
                    text.trim()
                )))
            }
        });
        if sealed.is_err() {
            let _ = child.kill();
            let _ = child.wait();
        }
        sealed
    })
    .await
    .map_err(|e| BackupError::Io(e.to_string()))?
}

/// Runs `pg_restore ARGS --dbname=url` fed with the plaintext of `path`.
async fn pg_restore(
    path: &Path,
    identities: &[Identity],
    url: &str,
    args: &[&str],
) -> Result<(), BackupError> {
    let mut reader = seal::open(path, identities)?;
    let mut command = tool("pg_restore", url);
    command
        .args(args)
        .args(["--no-owner", "--no-privileges", "--no-password"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped());
    tokio::task::spawn_blocking(move || {
        let mut child = command.spawn().map_err(|e| missing("pg_restore", e))?;
        let mut stdin = child
            .stdin
            .take()
            .ok_or_else(|| BackupError::Tool("pg_restore has no stdin".into()))?;
        let fed = std::io::copy(&mut reader, &mut stdin);
        drop(stdin);
        let output = child
            .wait_with_output()
            .map_err(|e| BackupError::Tool(format!("pg_restore: {e}")))?;
        if !output.status.success() {
            return Err(BackupError::Tool(format!(
                "pg_restore failed ({}): {}",
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            )));
        }
        fed.map(|_| ())
            .map_err(|e| BackupError::Decrypt(e.to_string()))
    })
    .await
    .map_err(|e| BackupError::Io(e.to_string()))?
}

async fn connect(url: &str) -> Result<PgConnection, BackupError> {
    crate::db::migrate::connect_postgres(url, "cutover backup")
        .await
        .map_err(db_error)
}

/// Row counts of every user table of `connection`.
async fn row_counts(connection: &mut PgConnection) -> Result<BTreeMap<String, i64>, BackupError> {
    let tables: Vec<(String, String)> = sqlx::query_as(
        "SELECT schemaname::text, tablename::text FROM pg_tables
         WHERE schemaname NOT IN ('pg_catalog', 'information_schema') ORDER BY 1, 2",
    )
    .fetch_all(&mut *connection)
    .await
    .map_err(db_error)?;
    let mut counts = BTreeMap::new();
    for (schema, table) in tables {
        let quote = |s: &str| format!("\"{}\"", s.replace('"', "\"\""));
        let sql = format!("SELECT COUNT(*) FROM {}.{}", quote(&schema), quote(&table));
        let (count,): (i64,) = sqlx::query_as(sqlx::AssertSqlSafe(sql))
            .fetch_one(&mut *connection)
            .await
            .map_err(db_error)?;
        counts.insert(format!("{schema}.{table}"), count);
    }
    Ok(counts)
}

/// Restores into a temporary database on `url`'s server, counts rows, drops it.
pub(super) async fn verify(
    url: &str,
    path: &Path,
    identities: &[Identity],
) -> Result<BTreeMap<String, i64>, BackupError> {
    let scratch = format!("cutover_verify_{:08x}", fastrand::u32(..));
    let mut admin = connect(url).await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {scratch}")))
        .execute(&mut admin)
        .await
        .map_err(db_error)?;
    let scratch_url = with_database(url, &scratch);
    let result = async {
        pg_restore(path, identities, &scratch_url, &["--exit-on-error"]).await?;
        let mut connection = connect(&scratch_url).await?;
        let counts = row_counts(&mut connection).await;
        let _ = connection.close().await;
        counts
    }
    .await;
    let dropped = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
        "DROP DATABASE IF EXISTS {scratch} WITH (FORCE)"
    )))
    .execute(&mut admin)
    .await;
    let _ = admin.close().await;
    if let Err(error) = dropped {
        tracing::warn!(database = %scratch, error = %error, "cannot drop the scratch database");
    }
    result
}

/// Whether the database at `url` has user tables.
pub(super) async fn has_tables(url: &str) -> Result<bool, BackupError> {
    let mut connection = connect(url).await?;
    let counts = row_counts(&mut connection).await;
    let _ = connection.close().await;
    Ok(!counts?.is_empty())
}

/// Restores the backup at `path` over the database at `url`.
pub(super) async fn restore(
    path: &Path,
    url: &str,
    identities: &[Identity],
) -> Result<(), BackupError> {
    pg_restore(
        path,
        identities,
        url,
        &[
            "--clean",
            "--if-exists",
            "--single-transaction",
            "--exit-on-error",
        ],
    )
    .await
}
