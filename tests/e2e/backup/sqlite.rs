//! SQLite: backups of a WAL database while a writer inserts, restores,
//! the `age | zstd` pipeline by hand, wrong keys, tampering, pruning.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use cutover_kit::wait::Wait;
use sqlx::{Connection, Executor};

use super::app::{BackupApp, stderr};
use crate::migrate::app::runtime;

const SCHEMA: &str = "PRAGMA journal_mode = WAL;
    CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, body TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS counter (id INTEGER PRIMARY KEY CHECK (id = 1), n INTEGER NOT NULL);
    INSERT OR IGNORE INTO counter VALUES (1, 0);";

fn db_url(app: &BackupApp, file: &str) -> String {
    format!("sqlite://{}/{file}", app.path().display())
}

/// Runs `sql` on the SQLite file; rows of the first column, as text.
fn query(url: &str, sql: &str) -> Vec<String> {
    runtime().block_on(async {
        let mut connection = sqlx::SqliteConnection::connect(url).await.expect("open");
        let rows: Vec<(String,)> = sqlx::query_as(sqlx::AssertSqlSafe(sql.to_owned()))
            .fetch_all(&mut connection)
            .await
            .expect("query");
        rows.into_iter().map(|(v,)| v).collect()
    })
}

fn setup(extra: &str) -> BackupApp {
    let app = BackupApp::new("sqlite://data/app.db", extra);
    std::fs::create_dir(app.path().join("data")).expect("data folder");
    let url = format!("{}?mode=rwc", db_url(&app, "data/app.db"));
    runtime().block_on(async {
        let mut connection = sqlx::SqliteConnection::connect(&url).await.expect("create");
        connection.execute(SCHEMA).await.expect("schema");
        connection
            .execute("INSERT INTO items (body) VALUES ('PLAINTEXT-MARKER-7f3a')")
            .await
            .expect("marker");
        connection
            .execute("UPDATE counter SET n = 1")
            .await
            .expect("count");
    });
    app
}

/// A writer that keeps inserting a row and bumping the counter in one
/// transaction until stopped, counting in `written`; returns how many it wrote.
fn writer(
    url: String,
    stop: Arc<AtomicBool>,
    written: Arc<AtomicU64>,
) -> std::thread::JoinHandle<u64> {
    std::thread::spawn(move || {
        runtime().block_on(async {
            let mut connection = sqlx::SqliteConnection::connect(&url).await.expect("open");
            connection
                .execute("PRAGMA busy_timeout = 5000")
                .await
                .expect("busy");
            while !stop.load(Ordering::Relaxed) {
                connection
                    .execute(
                        "BEGIN IMMEDIATE;
                         INSERT INTO items (body) VALUES (hex(randomblob(64)));
                         UPDATE counter SET n = n + 1;
                         COMMIT;",
                    )
                    .await
                    .expect("write");
                written.fetch_add(1, Ordering::Relaxed);
            }
            written.load(Ordering::Relaxed)
        })
    })
}

#[test]
fn backups_under_a_continuous_writer_are_consistent_and_restore() {
    let app = setup(", verify = true");
    let source = db_url(&app, "data/app.db");
    let stop = Arc::new(AtomicBool::new(false));
    let written = Arc::new(AtomicU64::new(0));
    let handle = writer(source.clone(), stop.clone(), written.clone());
    // Each backup is taken while the writer writes, after some more rows.
    let more_rows = || {
        let from = written.load(Ordering::Relaxed);
        Wait::up_to(Duration::from_secs(20))
            .every(Duration::from_millis(10))
            .until(|| written.load(Ordering::Relaxed) >= from + 10)
            .expect("the writer writes");
    };
    more_rows();
    let mut ids = Vec::new();
    for _ in 0..3 {
        ids.push(app.create());
        more_rows();
    }
    stop.store(true, Ordering::Relaxed);
    let written = handle.join().expect("writer");
    assert!(written > 10, "the writer wrote only {written} rows");

    let mut previous = 0;
    for (index, id) in ids.iter().enumerate() {
        // verify = true verified it on creation; once more by hand.
        let manifest = app.json(&["backup", "verify", id]);
        assert_eq!(manifest["verification"]["ok"], true, "{manifest}");
        let items = manifest["verification"]["tables"]["items"]
            .as_i64()
            .expect("a row count");
        assert!(items >= previous, "backups go forward in time");
        previous = items;
        // Restored, the copy is consistent: the counter equals the rows.
        let target = db_url(&app, &format!("restored-{index}.db"));
        app.json(&["backup", "restore", id, "--to", &target]);
        let check = query(
            &target,
            "SELECT (SELECT COUNT(*) FROM items) || '/' || (SELECT n FROM counter)",
        );
        assert_eq!(check[0], format!("{items}/{items}"));
    }

    // With the writer stopped, a restore equals the source row for row.
    let id = app.create();
    let target = db_url(&app, "round-trip.db");
    app.json(&["backup", "restore", &id, "--to", &target]);
    let all = "SELECT id || ':' || body FROM items ORDER BY id";
    assert_eq!(query(&source, all), query(&target, all));
}

#[test]
fn the_file_is_age_and_zstd_for_the_debian_tools_and_holds_no_plaintext() {
    let app = setup("");
    let id = app.create();
    let file = app.file(&id);
    let bytes = std::fs::read(&file).expect("read backup");
    assert!(bytes.starts_with(b"age-encryption.org/v1\n"));
    let marker = b"PLAINTEXT-MARKER-7f3a";
    assert!(!bytes.windows(marker.len()).any(|w| w == marker));
    assert!(!bytes.windows(15).any(|w| w == b"SQLite format 3"));
    // Exactly the README's disaster-recovery command.
    let out = app.sh(&format!(
        "age -d -i key.txt {} | zstd -d > restored.db && sqlite3 restored.db 'PRAGMA integrity_check; SELECT body FROM items'",
        file.display()
    ));
    assert_eq!(out, "ok\nPLAINTEXT-MARKER-7f3a\n");
    // No plaintext was left next to the backups either.
    for entry in std::fs::read_dir(app.backups()).expect("backups") {
        let name = entry.expect("entry").file_name();
        let name = name.to_string_lossy();
        assert!(name.ends_with(".age") || name.ends_with(".json"), "{name}");
    }
}

#[test]
fn a_wrong_identity_fails_clearly() {
    let app = setup("");
    let id = app.create();
    let out = app.cli(&["backup", "keygen", "-o", "other.txt"]);
    assert!(out.status.success());
    let out = app.cli(&["backup", "verify", &id, "--identity", "other.txt"]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot decrypt"), "{}", stderr(&out));
    let manifest = app.json(&["backup", "list"]);
    assert_eq!(manifest[0]["verification"]["ok"], false);
    assert!(manifest[0]["verified_at"].is_null());
}

#[test]
fn a_tampered_backup_fails_verify_with_a_checksum_error() {
    let app = setup("");
    let id = app.create();
    app.json(&["backup", "verify", &id]);
    let file = app.file(&id);
    let mut bytes = std::fs::read(&file).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0x01;
    std::fs::write(&file, bytes).expect("write");
    let out = app.cli(&["backup", "verify", &id]);
    assert_eq!(out.status.code(), Some(7), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("checksum mismatch"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn restore_refuses_a_live_database_without_force_and_keeps_a_safety_backup() {
    let app = setup("");
    let source = db_url(&app, "data/app.db");
    let id = app.create();
    query(
        &source,
        "INSERT INTO items (body) VALUES ('after') RETURNING body",
    );
    let out = app.cli(&["backup", "restore", &id]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(stderr(&out).contains("--force"), "{}", stderr(&out));
    assert_eq!(query(&source, "SELECT COUNT(*) || '' FROM items"), ["2"]);

    let restored = app.json(&["backup", "restore", &id, "--force"]);
    assert_eq!(query(&source, "SELECT COUNT(*) || '' FROM items"), ["1"]);
    let safety = restored["safety_backup"].as_str().expect("a safety backup");
    let target = db_url(&app, "safety.db");
    app.json(&["backup", "restore", safety, "--to", &target]);
    assert_eq!(query(&target, "SELECT COUNT(*) || '' FROM items"), ["2"]);
}

#[test]
fn prune_keeps_the_newest_and_the_newest_verified() {
    let app = setup(", keep_last = 2");
    let ids: Vec<String> = (0..5).map(|_| app.create()).collect();
    app.json(&["backup", "verify", &ids[1]]);
    let dry = app.json(&["backup", "prune", "--dry-run"]);
    assert_eq!(dry["deleted"], serde_json::json!([ids[0], ids[2]]));
    assert_eq!(
        app.json(&["backup", "list"]).as_array().map(Vec::len),
        Some(5)
    );
    app.json(&["backup", "prune"]);
    let left: Vec<String> = app
        .json(&["backup", "list"])
        .as_array()
        .expect("a list")
        .iter()
        .map(|m| m["id"].as_str().expect("id").to_owned())
        .collect();
    assert_eq!(left, [ids[1].clone(), ids[3].clone(), ids[4].clone()]);
    assert!(!app.file(&ids[0]).exists());
    assert!(app.file(&ids[1]).exists());
}

#[test]
fn keygen_writes_a_private_identity() {
    use std::os::unix::fs::PermissionsExt;
    let app = setup("");
    let mode = std::fs::metadata(app.key())
        .expect("key")
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let out = app.cli(&["backup", "keygen", "-o", "key.txt"]);
    assert!(!out.status.success(), "keygen never overwrites");
}

#[test]
fn an_ssh_ed25519_key_is_a_recipient_and_an_identity() {
    let app = setup("");
    app.sh("ssh-keygen -q -t ed25519 -N '' -C backup -f id_backup");
    app.write_config(", recipients_file = \"id_backup.pub\"");
    let id = app.create();
    let key = app.path().join("id_backup");
    let key = key.to_str().expect("a UTF-8 path");
    let manifest = app.json(&["backup", "verify", &id, "--identity", key]);
    assert_eq!(manifest["verification"]["ok"], true, "{manifest}");
    let out = app.sh(&format!(
        "age -d -i id_backup {} | zstd -d | wc -c",
        app.file(&id).display()
    ));
    assert_ne!(out.trim(), "0");
}

/// The README's disaster-recovery drill, its SQLite half as written there
/// (only the key's path changed): the newest verified backup, restored by
/// hand with `age` and `zstd`.
#[test]
fn the_readme_disaster_recovery_drill_restores_the_newest_verified_backup() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/README.md"))
        .expect("README.md");
    let drill = readme
        .split("### Disaster recovery drill")
        .nth(1)
        .and_then(|section| section.split("```sh\n").nth(1))
        .and_then(|block| block.split("# PostgreSQL").next())
        .expect("the drill's SQLite commands in the README");
    let app = setup("");
    let source = db_url(&app, "data/app.db");
    let verified = app.create();
    app.json(&["backup", "verify", &verified]);
    query(
        &source,
        "INSERT INTO items (body) VALUES ('later') RETURNING body",
    );
    let newer = app.create();
    assert!(newer > verified);
    let key = app.key();
    let script = drill.replace("backup.key", key.to_str().expect("a UTF-8 path"));
    let out = app.sh(&script);
    assert_eq!(out, "ok\n", "{script}");
    let restored = db_url(&app, ".cutover/backups/restored.db");
    // The verified backup (one row), not the newer unverified one (two).
    assert_eq!(query(&restored, "SELECT COUNT(*) || '' FROM items"), ["1"]);
}

/// Backups stream: creating, verifying and restoring a 192 MiB database
/// keeps the CLI's peak memory far below the database's size (before, it
/// held the database in memory two or three times over).
#[test]
fn create_verify_and_restore_stream_in_bounded_memory() {
    const MIB: u64 = 192;
    let app = setup("");
    let rows = MIB * 1024 / 4; // about 4 KiB of pages a row
    app.sh(&format!(
        // `.timeout`: wait for a lock another connection holds for a moment
        // (the sqlite3 shell does not wait by default).
        "sqlite3 -cmd '.timeout 30000' data/app.db \"PRAGMA journal_mode = WAL; \
         WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < {rows}) \
         INSERT INTO items (body) SELECT hex(randomblob(1024)) || printf('%01024d', i) FROM n;\" >/dev/null"
    ));
    let size = std::fs::metadata(app.path().join("data/app.db"))
        .expect("db")
        .len();
    assert!(
        size > (MIB - 16) * 1024 * 1024,
        "the database is {size} bytes"
    );
    // Well below one copy of the database: the binary, a runtime, zstd's
    // workers and a bounded queue of pages.
    let ceiling_kib = 96 * 1024;
    let (out, create_kib) = app.peak_rss(&["backup", "create", "--json"]);
    assert!(out.status.success(), "{}", stderr(&out));
    let id = serde_json::from_slice::<serde_json::Value>(&out.stdout).expect("json")["id"]
        .as_str()
        .expect("id")
        .to_owned();
    let (out, verify_kib) = app.peak_rss(&["backup", "verify", &id]);
    assert!(out.status.success(), "{}", stderr(&out));
    let target = db_url(&app, "restored.db");
    let (out, restore_kib) = app.peak_rss(&["backup", "restore", &id, "--to", &target]);
    assert!(out.status.success(), "{}", stderr(&out));
    eprintln!(
        "{MIB} MiB database: peak RSS create {create_kib} KiB, verify {verify_kib} KiB, restore {restore_kib} KiB"
    );
    for (what, kib) in [
        ("create", create_kib),
        ("verify", verify_kib),
        ("restore", restore_kib),
    ] {
        assert!(kib > 0, "{what}: no reading of its memory");
        assert!(
            kib < ceiling_kib,
            "{what} peaked at {kib} KiB for a {size}-byte database"
        );
    }
    let count = "SELECT COUNT(*) || '' FROM items";
    assert_eq!(
        query(&db_url(&app, "data/app.db"), count),
        query(&target, count)
    );
    // No scratch copy is left behind.
    let left: Vec<_> = std::fs::read_dir(app.backups())
        .expect("backups")
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with(".scratch"))
        .collect();
    assert!(left.is_empty(), "{left:?}");
}
