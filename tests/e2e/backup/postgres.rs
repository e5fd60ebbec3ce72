//! PostgreSQL: pg_dump backups, verification in a scratch database,
//! restores compared by table checksums, and `pg_restore --list` on the
//! hand-decrypted archive.

use sqlx::{Connection, Executor};

use super::app::{BackupApp, stderr};
use crate::migrate::app::{pg_admin_url, runtime};

fn with_database(url: &str, database: &str) -> String {
    let (base, query) = url
        .split_once('?')
        .map_or((url, None), |(b, q)| (b, Some(q)));
    let (server, _) = base.rsplit_once('/').expect("a database URL has a path");
    match query {
        Some(query) => format!("{server}/{database}?{query}"),
        None => format!("{server}/{database}"),
    }
}

/// A scratch database, dropped at the end of the test.
struct Scratch(String);

impl Drop for Scratch {
    fn drop(&mut self) {
        let name = self.0.rsplit('/').next().unwrap_or_default().to_owned();
        runtime().block_on(async {
            if let Ok(mut connection) = sqlx::PgConnection::connect(&pg_admin_url()).await {
                let _ = connection
                    .execute(sqlx::AssertSqlSafe(format!(
                        "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                    )))
                    .await;
            }
        });
    }
}

/// A new empty database; its URL.
fn create_database() -> String {
    let admin = pg_admin_url();
    let name = format!("test_{:016x}", fastrand::u64(..));
    runtime().block_on(async {
        let mut connection = sqlx::PgConnection::connect(&admin).await.expect("connect");
        connection
            .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
            .await
            .expect("create database");
    });
    with_database(&admin, &name)
}

fn execute(url: &str, sql: &str) {
    runtime().block_on(async {
        let mut connection = sqlx::PgConnection::connect(url).await.expect("connect");
        connection
            .execute(sqlx::AssertSqlSafe(sql.to_owned()))
            .await
            .expect("execute");
    });
}

/// md5 of every row of `orders`, in order.
fn checksum(url: &str) -> String {
    runtime().block_on(async {
        let mut connection = sqlx::PgConnection::connect(url).await.expect("connect");
        sqlx::query_scalar("SELECT md5(string_agg(o::text, ',' ORDER BY id)) FROM orders o")
            .fetch_one(&mut connection)
            .await
            .expect("checksum")
    })
}

fn scratch_databases() -> i64 {
    runtime().block_on(async {
        let mut connection = sqlx::PgConnection::connect(&pg_admin_url())
            .await
            .expect("connect");
        sqlx::query_scalar("SELECT COUNT(*) FROM pg_database WHERE datname LIKE 'cutover_verify_%'")
            .fetch_one(&mut connection)
            .await
            .expect("count")
    })
}

#[test]
fn pg_dump_backup_verifies_restores_and_reads_with_the_debian_tools() {
    let source = create_database();
    let _drop_source = Scratch(source.clone());
    execute(
        &source,
        "CREATE TABLE orders (id bigint PRIMARY KEY, customer text NOT NULL, total numeric NOT NULL);
         INSERT INTO orders SELECT g, 'PLAINTEXT-MARKER-' || g, g * 1.5 FROM generate_series(1, 5000) g;",
    );
    let app = BackupApp::new(&source, ", verify = true");
    let checks = app.json(&["preflight"]);
    let names: Vec<&str> = checks
        .as_array()
        .expect("checks")
        .iter()
        .map(|c| c["name"].as_str().expect("name"))
        .collect();
    assert!(names.contains(&"pg_dump present"), "{checks}");
    assert!(names.contains(&"database main reachable"), "{checks}");
    let manifest = app.json(&["backup", "create"]);
    let id = manifest["id"].as_str().expect("id").to_owned();
    assert_eq!(manifest["engine"], "postgres");
    assert_eq!(manifest["verification"]["ok"], true, "{manifest}");
    assert_eq!(manifest["verification"]["tables"]["public.orders"], 5000);
    assert!(
        !manifest["source"]
            .as_str()
            .expect("source")
            .contains(":cutover_test@")
    );
    assert_eq!(scratch_databases(), 0, "the scratch database is dropped");

    let bytes = std::fs::read(app.file(&id)).expect("read");
    assert!(!bytes.windows(17).any(|w| w == b"PLAINTEXT-MARKER-"));
    let list = app.sh(&format!(
        "age -d -i key.txt {} | zstd -d > dump.pgc && pg_restore --list dump.pgc",
        app.file(&id).display()
    ));
    assert!(list.contains("TABLE public orders"), "{list}");

    // Into a new database: equal, checksum for checksum.
    let target = create_database();
    let _drop_target = Scratch(target.clone());
    // Never a password on the command line: refused, saying where it goes.
    let out = app.cli(&["backup", "restore", &id, "--to", &target]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("CUTOVER_RESTORE_PASSWORD"),
        "{}",
        stderr(&out)
    );
    assert!(!stderr(&out).contains(":cutover_test@"), "{}", stderr(&out));
    let mut without = url::Url::parse(&target).expect("url");
    let password = without.password().expect("a password").to_owned();
    without.set_password(None).expect("no password");
    let out = app
        .command(
            &["backup", "restore", &id, "--to", without.as_str()],
            Some(&app.path().join("signing.key")),
        )
        .env("CUTOVER_RESTORE_PASSWORD", &password)
        .output()
        .expect("run cutover");
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(checksum(&source), checksum(&target));

    // Over the live source: refused, then forced with a safety backup.
    execute(&source, "DELETE FROM orders WHERE id > 10");
    let out = app.cli(&["backup", "restore", &id]);
    assert_eq!(out.status.code(), Some(2));
    let restored = app.json(&["backup", "restore", &id, "--force"]);
    assert!(restored["safety_backup"].is_string());
    assert_eq!(checksum(&source), checksum(&target));
}
