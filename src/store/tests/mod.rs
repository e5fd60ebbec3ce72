//! Tests of the state store, against real SQLite files in temporary directories.

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
mod releases;
mod tokens;

use std::path::Path;

use tempfile::TempDir;

use super::Store;

/// Tests return errors instead of unwrapping them.
type TestResult<T = ()> = Result<T, Box<dyn std::error::Error>>;

/// The URL of the database file at `path`.
fn url_of(path: &Path) -> String {
    format!("sqlite://{}", path.display())
}

/// A store in a fresh temporary directory, which must outlive it.
async fn temp_store() -> TestResult<(TempDir, Store)> {
    let dir = tempfile::tempdir()?;
    let store = Store::open(&url_of(&dir.path().join("state.db"))).await?;
    Ok((dir, store))
}
