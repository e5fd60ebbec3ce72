//! The two migration sets (`migrations/state/` for SQLite,
//! `migrations/state_pg/` for PostgreSQL) end in the same schema: the same
//! tables with the same columns, each as nullable and of the same kind.

use std::collections::BTreeMap;

use super::{TestResult, temp_store};
use crate::store::Backend;

/// table → column → (kind, nullable), kinds folded to `integer` or `text`.
type Schema = BTreeMap<String, BTreeMap<String, (String, bool)>>;

fn kind(declared: &str) -> String {
    let declared = declared.to_ascii_lowercase();
    if declared.contains("int") {
        "integer".to_owned()
    } else if declared.contains("text") || declared.contains("char") {
        "text".to_owned()
    } else {
        declared
    }
}

async fn sqlite_schema() -> TestResult<Schema> {
    let (_place, store) = temp_store(Backend::Sqlite).await?;
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table'
         AND name NOT LIKE 'sqlite_%' AND name <> '_sqlx_migrations' ORDER BY name",
    )
    .fetch_all(&store.pool)
    .await?;
    let mut schema = Schema::new();
    for table in tables {
        let columns: Vec<(String, String, i64, i64)> =
            sqlx::query_as("SELECT name, type, \"notnull\", pk FROM pragma_table_info($1)")
                .bind(&table)
                .fetch_all(&store.pool)
                .await?;
        let columns = columns
            .into_iter()
            // SQLite's PRIMARY KEY columns may hold NULL unless declared
            // NOT NULL (an INTEGER PRIMARY KEY cannot); PostgreSQL's never.
            .map(|(name, ty, not_null, pk)| (name, (kind(&ty), not_null == 0 && pk == 0)))
            .collect();
        schema.insert(table, columns);
    }
    Ok(schema)
}

async fn postgres_schema() -> TestResult<Schema> {
    let (_place, store) = temp_store(Backend::Postgres).await?;
    let rows: Vec<(String, String, String, String)> = sqlx::query_as(
        "SELECT table_name::text, column_name::text, data_type::text, is_nullable::text
         FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name <> '_sqlx_migrations'
         ORDER BY table_name, ordinal_position",
    )
    .fetch_all(&store.pool)
    .await?;
    let mut schema = Schema::new();
    for (table, column, ty, nullable) in rows {
        schema
            .entry(table)
            .or_default()
            .insert(column, (kind(&ty), nullable == "YES"));
    }
    store.close().await;
    Ok(schema)
}

#[tokio::test]
async fn both_migration_sets_end_in_the_same_tables_and_columns() -> TestResult {
    let sqlite = sqlite_schema().await?;
    let postgres = postgres_schema().await?;
    assert_eq!(sqlite.len(), 15, "{:?}", sqlite.keys());
    assert_eq!(sqlite, postgres);
    Ok(())
}

#[test]
fn both_migration_sets_have_the_same_versions() {
    let sqlite: Vec<i64> = crate::store::MIGRATOR.iter().map(|m| m.version).collect();
    let postgres: Vec<i64> = crate::store::MIGRATOR_PG
        .iter()
        .map(|m| m.version)
        .collect();
    assert_eq!(sqlite, postgres);
}
