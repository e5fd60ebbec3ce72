//! A scratch project with a `[database.main]` on SQLite (a file in the
//! project) or PostgreSQL (a database of its own, `test_<random>`, dropped at
//! the end), its migrations folder, the CLI, and SQL to look inside.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::str::FromStr;

use sqlx::{Connection, Executor};

pub use crate::common::{stderr, stdout};

/// Which database a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Sqlite,
    Postgres,
}

/// The server the PostgreSQL tests use.
pub fn pg_admin_url() -> String {
    match std::env::var("CUTOVER_TEST_PG_URL") {
        Ok(url) if !url.is_empty() => url,
        _ => panic!(
            "CUTOVER_TEST_PG_URL is not set: the PostgreSQL migration tests need a server. \
             Run scripts/test (it installs and starts one and sets the variable), or set \
             CUTOVER_TEST_PG_URL=postgres://USER:PASSWORD@127.0.0.1:PORT/DB for a role with CREATEDB."
        ),
    }
}

/// `url` with its database replaced by `database`.
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

pub fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("a tokio runtime")
}

pub struct MigrateApp {
    pub kind: Kind,
    pub dir: tempfile::TempDir,
    pub url: String,
    pg_database: Option<String>,
}

impl MigrateApp {
    /// A project whose `[database.main]` waits `lock_wait` for the lock.
    pub fn new(kind: Kind) -> MigrateApp {
        let dir = tempfile::Builder::new()
            .prefix("cutover-migrate-")
            .tempdir()
            .expect("tempdir");
        std::fs::create_dir(dir.path().join("migrations")).expect("migrations folder");
        let (url, pg_database) = match kind {
            Kind::Sqlite => ("sqlite://data/app.db".to_owned(), None),
            Kind::Postgres => {
                let admin = pg_admin_url();
                let name = format!("test_{:016x}", fastrand::u64(..));
                runtime().block_on(async {
                    let mut connection = sqlx::PgConnection::connect(&admin)
                        .await
                        .expect("connect to CUTOVER_TEST_PG_URL");
                    connection
                        .execute(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                        .await
                        .expect("create the test database");
                });
                (with_database(&admin, &name), Some(name))
            }
        };
        let app = MigrateApp {
            kind,
            dir,
            url,
            pg_database,
        };
        app.write_config("cutover.toml", "30s", "500ms", 3);
        app
    }

    /// Writes a config file `name` for the same database and folder.
    pub fn write_config(
        &self,
        name: &str,
        lock_wait: &str,
        lock_timeout: &str,
        retries: u32,
    ) -> PathBuf {
        let config = format!(
            r#"[app]
name = "shop"

[service.web]
command = ["./web", "--port", "{{port}}"]

[environment.production]
listen = "127.0.0.1:0"

[database.main]
url = "{}"
migrations = "migrations"
lock_wait = "{lock_wait}"
lock_timeout = "{lock_timeout}"
retries = {retries}
"#,
            self.url
        );
        let path = self.dir.path().join(name);
        std::fs::write(&path, config).expect("write config");
        path
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// Writes `migrations/NAME`.
    pub fn migration(&self, name: &str, text: &str) {
        std::fs::write(self.path().join("migrations").join(name), text).expect("write migration");
    }

    pub fn remove_migration(&self, name: &str) {
        std::fs::remove_file(self.path().join("migrations").join(name)).expect("remove migration");
    }

    fn command(&self, config: &str, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cutover"));
        command
            .current_dir(self.path())
            .arg("-c")
            .arg(self.path().join(config))
            .args(args)
            .env("NO_COLOR", "1")
            .env_remove("CUTOVER_CONFIG");
        command
    }

    /// Runs `cutover -c cutover.toml ARGS`.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.cli_with("cutover.toml", args)
    }

    pub fn cli_with(&self, config: &str, args: &[&str]) -> Output {
        self.command(config, args).output().expect("run cutover")
    }

    /// Starts `cutover ARGS` with piped output.
    pub fn spawn(&self, args: &[&str]) -> Child {
        self.command("cutover.toml", args)
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start cutover")
    }

    /// Runs the CLI, expects success, and parses its `--json` output.
    pub fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut with_json = args.to_vec();
        with_json.push("--json");
        let out = self.cli(&with_json);
        assert!(
            out.status.success(),
            "cutover {args:?} failed ({:?})\nstdout:\n{}\nstderr:\n{}",
            out.status.code(),
            stdout(&out),
            stderr(&out)
        );
        serde_json::from_slice(&out.stdout).expect("JSON output")
    }

    /// `migrate status --json`; applied and pending versions.
    pub fn versions(&self) -> (Vec<u64>, Vec<u64>) {
        let status = self.json(&["migrate", "status"]);
        let versions = |key: &str| -> Vec<u64> {
            status[key]
                .as_array()
                .expect("an array")
                .iter()
                .map(|m| m["version"].as_u64().expect("a version"))
                .collect()
        };
        (versions("applied"), versions("pending"))
    }

    /// The SQLite file's URL, as the CLI resolves it.
    fn sqlite_url(&self) -> String {
        format!("sqlite://{}/data/app.db", self.path().display())
    }

    /// Whether the table exists in the database.
    pub fn has_table(&self, table: &str) -> bool {
        if self.kind == Kind::Sqlite && !self.path().join("data/app.db").exists() {
            return false;
        }
        let count: i64 = runtime().block_on(async {
            match self.kind {
                Kind::Sqlite => {
                    let mut connection = sqlx::SqliteConnection::connect(&self.sqlite_url())
                        .await
                        .expect("open the SQLite file");
                    sqlx::query_scalar("SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = $1")
                        .bind(table)
                        .fetch_one(&mut connection)
                        .await
                        .expect("query")
                }
                Kind::Postgres => {
                    let mut connection = sqlx::PgConnection::connect(&self.url).await.expect("connect");
                    sqlx::query_scalar("SELECT COUNT(*) FROM pg_tables WHERE schemaname = 'public' AND tablename = $1")
                        .bind(table)
                        .fetch_one(&mut connection)
                        .await
                        .expect("query")
                }
            }
        });
        count > 0
    }

    /// Runs statements on the database, outside cutover.
    pub fn sql(&self, sql: &str) {
        let sql = sql.to_owned();
        runtime().block_on(async {
            match self.kind {
                Kind::Sqlite => {
                    let options = sqlx::sqlite::SqliteConnectOptions::from_str(&self.sqlite_url())
                        .expect("url")
                        .create_if_missing(true);
                    std::fs::create_dir_all(self.path().join("data")).expect("data folder");
                    let mut connection = sqlx::SqliteConnection::connect_with(&options)
                        .await
                        .expect("open");
                    connection
                        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
                        .await
                        .expect("run SQL");
                }
                Kind::Postgres => {
                    let mut connection = sqlx::PgConnection::connect(&self.url)
                        .await
                        .expect("connect");
                    connection
                        .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(sql)))
                        .await
                        .expect("run SQL");
                }
            }
        });
    }

    /// A statement that takes about `seconds` and writes nothing.
    pub fn slow_sql(&self, seconds: u32) -> String {
        match self.kind {
            Kind::Postgres => format!("SELECT pg_sleep({seconds});"),
            Kind::Sqlite => format!(
                "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {}) SELECT COUNT(*) FROM c;",
                u64::from(seconds) * sqlite_steps_per_second()
            ),
        }
    }
}

/// How many steps of the counting query SQLite takes a second here (the
/// tests link the same SQLite build as the binary), measured once.
fn sqlite_steps_per_second() -> u64 {
    static RATE: std::sync::OnceLock<u64> = std::sync::OnceLock::new();
    *RATE.get_or_init(|| {
        const STEPS: u64 = 1_000_000;
        runtime().block_on(async {
            let mut connection = sqlx::SqliteConnection::connect("sqlite::memory:")
                .await
                .expect("an in-memory database");
            let started = std::time::Instant::now();
            connection
                .execute(sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                    "WITH RECURSIVE c(x) AS (SELECT 1 UNION ALL SELECT x + 1 FROM c WHERE x < {STEPS}) SELECT COUNT(*) FROM c;"
                ))))
                .await
                .expect("count");
            let seconds = started.elapsed().as_secs_f64().max(0.001);
            (STEPS as f64 / seconds) as u64
        })
    })
}

impl Drop for MigrateApp {
    fn drop(&mut self) {
        if let Some(name) = &self.pg_database {
            let admin = pg_admin_url();
            let name = name.clone();
            runtime().block_on(async move {
                if let Ok(mut connection) = sqlx::PgConnection::connect(&admin).await {
                    let _ = connection
                        .execute(sqlx::AssertSqlSafe(format!(
                            "DROP DATABASE IF EXISTS {name} WITH (FORCE)"
                        )))
                        .await;
                }
            });
        }
    }
}

/// Asserts the exit code, printing the output otherwise.
pub fn expect_code(out: &Output, code: i32) {
    assert_eq!(
        out.status.code(),
        Some(code),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
}

/// Reads a child's stdout and stderr lines in the background.
pub struct Watched {
    pub child: Child,
    lines: std::sync::mpsc::Receiver<String>,
    pub seen: Vec<String>,
}

impl Watched {
    pub fn new(mut child: Child) -> Watched {
        let (sender, lines) = std::sync::mpsc::channel();
        let out = child.stdout.take().expect("piped stdout");
        let err = child.stderr.take().expect("piped stderr");
        for stream in [
            Box::new(out) as Box<dyn std::io::Read + Send>,
            Box::new(err),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                use std::io::BufRead;
                for line in std::io::BufReader::new(stream)
                    .lines()
                    .map_while(Result::ok)
                {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Watched {
            child,
            lines,
            seen: Vec::new(),
        }
    }

    /// Waits (at most 20 s) for a line containing `text`.
    pub fn wait_for(&mut self, text: &str) {
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
        while std::time::Instant::now() < deadline {
            if let Ok(line) = self
                .lines
                .recv_timeout(std::time::Duration::from_millis(100))
            {
                let found = line.contains(text);
                self.seen.push(line);
                if found {
                    return;
                }
            }
        }
        panic!("no line with {text:?} in 20 s; saw {:?}", self.seen);
    }

    /// Waits for the child to end; its exit code and every line it printed.
    pub fn finish(mut self) -> (Option<i32>, String) {
        let status = self.child.wait().expect("wait for cutover");
        // The readers stop at the end of both streams, and then the channel
        // closes: every line is in. (A deadline in case something else holds
        // the pipes open.)
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.lines.recv_timeout(left) {
                Ok(line) => self.seen.push(line),
                Err(_) => break,
            }
        }
        (status.code(), self.seen.join("\n"))
    }
}
