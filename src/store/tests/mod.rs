//! Tests of the state store, against real SQLite files in temporary
//! directories and real PostgreSQL databases (one created per test on the
//! server `CUTOVER_TEST_PG_URL` names, dropped after it).
//!
//! A test written once for both backends is an `async fn NAME(backend:
//! Backend)` with `both!(NAME)` beside it, which makes `NAME::sqlite` and
//! `NAME::postgres`. Without `CUTOVER_TEST_PG_URL` the PostgreSQL ones fail,
//! saying to set it (`scripts/test` does).

mod audit;
mod deployments;
mod dora;
mod environment_events;
mod environments;
mod gates;
mod instances;
mod locks;
mod notify;
mod open;
mod postgres;
mod releases;
mod schema;
mod tokens;

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use sqlx::Connection;
use tempfile::TempDir;

use super::{Backend, Store};

/// Tests return errors instead of unwrapping them.
type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// Declares the `sqlite` and `postgres` runs of a test written for both.
macro_rules! both {
    ($name:ident $(, $($arg:tt)*)?) => {
        mod $name {
            use crate::store::Backend;

            #[tokio::test $(($($arg)*))?]
            async fn sqlite() -> super::TestResult {
                super::$name(Backend::Sqlite).await
            }

            #[tokio::test $(($($arg)*))?]
            async fn postgres() -> super::TestResult {
                super::$name(Backend::Postgres).await
            }
        }
    };
}
pub(super) use both;

/// The URL of the database file at `path`.
fn url_of(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// Where a test's store lives: a temporary directory, or a database made on
/// the test server and dropped with this.
pub(super) struct Place {
    /// The store's URL.
    pub(super) url: String,
    _dir: Option<TempDir>,
    _database: Option<TestDatabase>,
}

/// The test server's URL, or an error saying to set it.
pub(super) fn server_url() -> TestResult<String> {
    std::env::var("CUTOVER_TEST_PG_URL").map_err(|_| {
        "CUTOVER_TEST_PG_URL is not set: the PostgreSQL runs of the store tests need a server; set it to a \
         role that may create databases, e.g. postgres://cutover_test:cutover_test@127.0.0.1:5432/cutover_test \
         (scripts/test sets it)"
            .into()
    })
}

/// A database made for one test; dropped (with any session still on it)
/// when this is.
struct TestDatabase {
    server: String,
    name: String,
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        let (server, name) = (self.server.clone(), self.name.clone());
        // Drop runs inside the test's runtime: drop the database from a
        // thread of its own.
        let _ = std::thread::spawn(move || {
            let Ok(runtime) = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
            else {
                return;
            };
            runtime.block_on(async {
                if let Ok(mut conn) = sqlx::PgConnection::connect(&server).await {
                    let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"
                    )))
                    .execute(&mut conn)
                    .await;
                    let _ = conn.close().await;
                }
            });
        })
        .join();
    }
}

/// `server` (a PostgreSQL URL) with its database replaced by `database`.
fn with_database(server: &str, database: &str) -> TestResult<String> {
    let mut url = url::Url::parse(server)?;
    url.set_path(&format!("/{database}"));
    Ok(url.to_string())
}

/// A new, empty database on the test server.
async fn new_database() -> TestResult<(String, TestDatabase)> {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    let server = server_url()?;
    let name = format!(
        "cutover_store_{}_{}_{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed),
        jiff::Timestamp::now().as_millisecond() % 1_000_000
    );
    let mut conn = sqlx::PgConnection::connect(&server)
        .await
        .map_err(|e| format!("cannot reach CUTOVER_TEST_PG_URL's server: {e}"))?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE \"{name}\"")))
        .execute(&mut conn)
        .await?;
    let _ = conn.close().await;
    let url = with_database(&server, &name)?;
    Ok((url, TestDatabase { server, name }))
}

/// An empty place for a store on `backend`.
pub(super) async fn temp_place(backend: Backend) -> TestResult<Place> {
    match backend {
        Backend::Sqlite => {
            let dir = tempfile::tempdir()?;
            Ok(Place {
                url: url_of(&dir.path().join("state.db")),
                _dir: Some(dir),
                _database: None,
            })
        }
        Backend::Postgres => {
            let (url, database) = new_database().await?;
            Ok(Place {
                url,
                _dir: None,
                _database: Some(database),
            })
        }
    }
}

/// A store in a fresh place on `backend`, which must outlive it.
async fn temp_store(backend: Backend) -> TestResult<(Place, Store)> {
    let place = temp_place(backend).await?;
    let store = Store::open(&place.url).await?;
    Ok((place, store))
}
