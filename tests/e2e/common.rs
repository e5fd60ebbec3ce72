//! Helpers: a scratch app directory with releases of the example app, a daemon
//! process, the CLI, waiting for what the daemon records, and load through the
//! proxy. Ports, load and waiting come from the shared kit (`cutover-kit`).

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::{Mutex, OnceLock};
use std::time::Duration;

use cutover_kit::load::Load;
use cutover_kit::wait::Wait;
use cutover_kit::{http, ports};

/// The example app, built once per test run.
pub fn hello_bin() -> &'static Path {
    static HELLO: OnceLock<PathBuf> = OnceLock::new();
    HELLO.get_or_init(|| {
        let root = Path::new(env!("CARGO_MANIFEST_DIR"));
        let target = std::env::var_os("CARGO_TARGET_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| root.join("target"));
        let status = Command::new(env!("CARGO"))
            .args(["build", "-q", "-p", "hello", "--manifest-path"])
            .arg(root.join("Cargo.toml"))
            .status()
            .expect("run cargo build -p hello");
        assert!(status.success(), "building the example app failed");
        let bin = target.join("debug").join("hello");
        assert!(bin.is_file(), "no hello at {}", bin.display());
        bin
    })
}

/// How a release behaves.
pub enum Release {
    Good,
    FailsHealth,
    /// Sleeps this long before starting (a slow deploy).
    SlowStart(Duration),
    /// Answers this fraction of requests with 500.
    Errors(f64),
    /// Adds this many milliseconds to every request.
    Slow(u64),
}

/// A scratch directory with a cutover.toml whose command is
/// `./releases/{version}/hello`, so each version is its own artifact.
pub struct TestApp {
    pub dir: tempfile::TempDir,
    pub api_port: u16,
    pub proxy_port: u16,
    daemon: Mutex<Option<Child>>,
    /// Environment variables for the daemon and the CLI (e.g. the `${VAR}`s
    /// the config reads), set with [`TestApp::set_env`].
    env: Mutex<Vec<(String, String)>>,
    /// The PostgreSQL database holding the state store
    /// ([`TestApp::with_pg_state`]); dropped after the daemon stops.
    pg: Option<PgDatabase>,
}

/// A database made for one test on the server `CUTOVER_TEST_PG_URL` names
/// (its role must be allowed to create databases); dropped with this, with
/// any session still on it.
pub struct PgDatabase {
    server: String,
    name: String,
    /// Its URL (with the password).
    pub url: String,
}

impl PgDatabase {
    /// Creates a new, empty database; panics saying what to set when
    /// `CUTOVER_TEST_PG_URL` is not set.
    pub fn create() -> PgDatabase {
        let server = std::env::var("CUTOVER_TEST_PG_URL").expect(
            "CUTOVER_TEST_PG_URL is not set: the pg_state tests need a PostgreSQL server; set it to a role \
             that may create databases, e.g. postgres://cutover_test:cutover_test@127.0.0.1:5432/cutover_test \
             (scripts/test sets it)",
        );
        static NEXT: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let name = format!(
            "cutover_e2e_{}_{}",
            std::process::id(),
            NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        );
        pg_run(&server, &format!("CREATE DATABASE \"{name}\""));
        let mut url = url::Url::parse(&server).expect("CUTOVER_TEST_PG_URL is not a URL");
        url.set_path(&format!("/{name}"));
        PgDatabase {
            server,
            name,
            url: url.to_string(),
        }
    }

    /// Runs `sql` in this database.
    pub fn execute(&self, sql: &str) {
        pg_run(&self.url, sql);
    }
}

impl Drop for PgDatabase {
    fn drop(&mut self) {
        pg_run(
            &self.server,
            &format!("DROP DATABASE IF EXISTS \"{}\" WITH (FORCE)", self.name),
        );
    }
}

/// Runs one statement on `url`, from a thread of its own (callers may be
/// inside a runtime).
fn pg_run(url: &str, sql: &str) {
    use sqlx::Connection;
    let (url, sql) = (url.to_owned(), sql.to_owned());
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("a runtime");
        runtime.block_on(async {
            let mut conn = sqlx::PgConnection::connect(&url)
                .await
                .unwrap_or_else(|e| panic!("cannot reach the test PostgreSQL server: {e}"));
            sqlx::raw_sql(sqlx::AssertSqlSafe(sql.clone()))
                .execute(&mut conn)
                .await
                .unwrap_or_else(|e| panic!("{sql}: {e}"));
            let _ = conn.close().await;
        });
    })
    .join()
    .expect("the PostgreSQL statement's thread");
}

impl TestApp {
    /// [`TestApp::new`] with its state store in a new PostgreSQL database.
    pub fn with_pg_state(rollback_window: &str) -> TestApp {
        let mut app = TestApp::new(rollback_window);
        let db = PgDatabase::create();
        app.append_config(&format!("\n[state]\nurl = \"{}\"\n", db.url));
        app.pg = Some(db);
        app
    }

    /// The PostgreSQL database of [`TestApp::with_pg_state`].
    pub fn pg(&self) -> &PgDatabase {
        self.pg.as_ref().expect("a TestApp::with_pg_state")
    }

    pub fn new(rollback_window: &str) -> TestApp {
        let dir = tempfile::Builder::new()
            .prefix("cutover-e2e-")
            .tempdir()
            .expect("tempdir");
        let free = ports::free_ports(2).expect("free ports");
        let (api_port, proxy_port) = (free[0], free[1]);
        let config = format!(
            r#"[app]
name = "hello"

[server]
listen = "127.0.0.1:{api_port}"

[service.web]
kind = "http"
driver = "process"
command = ["./releases/{{version}}/hello", "--port", "{{port}}", "--version", "{{version}}"]
replicas = 2
health = {{ path = "/health", interval = "100ms", timeout = "1s", healthy = 2, start_timeout = "5s" }}
drain_timeout = "5s"
stop_timeout = "3s"

[environment.production]
listen = "127.0.0.1:{proxy_port}"
rollback_window = "{rollback_window}"
"#
        );
        std::fs::write(dir.path().join("cutover.toml"), config).expect("write config");
        TestApp {
            dir,
            api_port,
            proxy_port,
            daemon: Mutex::new(None),
            env: Mutex::new(Vec::new()),
            pg: None,
        }
    }

    /// An app with a good release of each of `versions`, served, and those
    /// deployed one after the other (the last one serves; with two or more,
    /// the one before it is warm for `rollback_window`).
    pub fn deployed(rollback_window: &str, versions: &[&str]) -> TestApp {
        let app = TestApp::new(rollback_window);
        for v in versions {
            app.release(v, Release::Good);
        }
        app.serve_and_deploy(versions);
        app
    }

    /// Starts the daemon, then deploys `versions` one after the other,
    /// asserting that each succeeds.
    pub fn serve_and_deploy(&self, versions: &[&str]) {
        self.serve();
        for v in versions {
            self.deploy_ok(v);
        }
    }

    /// `cutover deploy VERSION`, which must succeed.
    pub fn deploy_ok(&self, version: &str) {
        ok(self, &self.cli(&["deploy", version]));
    }

    /// Sets an environment variable for every later daemon and CLI run.
    pub fn set_env(&self, name: &str, value: &str) {
        self.env
            .lock()
            .expect("env")
            .push((name.to_owned(), value.to_owned()));
    }

    fn extra_env(&self) -> Vec<(String, String)> {
        self.env.lock().expect("env").clone()
    }

    /// Appends TOML to the config (e.g. a `[service.web.rollout]` table).
    pub fn append_config(&self, toml: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.config())
            .expect("open config");
        f.write_all(toml.as_bytes()).expect("append config");
    }

    /// Runs the CLI off the async runtime (for `tokio::test`s that keep a
    /// load running meanwhile).
    pub async fn cli_async(&self, args: &[&str]) -> Output {
        let mut command = self.command(args);
        tokio::task::spawn_blocking(move || command.output().expect("run cutover"))
            .await
            .expect("join")
    }

    /// Runs the CLI in the background.
    pub fn cli_background(&self, args: &[&str]) -> std::thread::JoinHandle<Output> {
        let mut command = self.command(args);
        std::thread::spawn(move || command.output().expect("run cutover"))
    }

    /// The newest deployment as `history --json` shows it.
    pub fn last_deployment(&self) -> serde_json::Value {
        let out = self.cli(&["history", "--json", "--limit", "1"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history json");
        list[0].clone()
    }

    /// Events of the newest deployment (`history --events --json`).
    pub fn last_events(&self) -> Vec<(String, String)> {
        let out = self.cli(&["history", "--json", "--limit", "1", "--events"]);
        let list: serde_json::Value = serde_json::from_slice(&out.stdout).expect("history json");
        list[0]["events"]
            .as_array()
            .map(|evs| {
                evs.iter()
                    .map(|e| {
                        (
                            e["kind"].as_str().unwrap_or("").to_owned(),
                            e["message"].as_str().unwrap_or("").to_owned(),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn config(&self) -> PathBuf {
        self.path().join("cutover.toml")
    }

    /// Adds release `version` as `releases/<version>/hello`.
    pub fn release(&self, version: &str, how: Release) {
        self.release_named(version, "hello", how);
    }

    /// Adds the artifact `releases/<version>/<name>`: a script that runs the
    /// example app as `how` says.
    pub fn release_named(&self, version: &str, name: &str, how: Release) {
        let dir = self.path().join("releases").join(version);
        std::fs::create_dir_all(&dir).expect("release dir");
        let hello = hello_bin().display().to_string();
        let script = match how {
            Release::Good => format!("#!/bin/sh\nexec {hello} \"$@\"\n"),
            Release::FailsHealth => format!(
                "#!/bin/sh\necho 'starting with a broken health check' >&2\nexec {hello} --fail-health \"$@\"\n"
            ),
            Release::SlowStart(d) => format!(
                "#!/bin/sh\nsleep {}\nexec {hello} \"$@\"\n",
                d.as_secs_f64()
            ),
            Release::Errors(rate) => {
                format!("#!/bin/sh\nexec {hello} --error-rate {rate} \"$@\"\n")
            }
            Release::Slow(ms) => format!("#!/bin/sh\nexec {hello} --latency-ms {ms} \"$@\"\n"),
        };
        let path = dir.join(name);
        let mut f = std::fs::File::create(&path).expect("script");
        f.write_all(script.as_bytes()).expect("write script");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// Starts `cutover serve` and waits until its API answers.
    pub fn serve(&self) {
        self.serve_with_env(&[]);
    }

    /// [`TestApp::serve`] with extra environment variables for the daemon.
    pub fn serve_with_env(&self, vars: &[(&str, &str)]) {
        self.serve_with(&["serve"], vars);
    }

    /// [`TestApp::serve`] with the command line `args` (`["serve", …]`).
    pub fn serve_with(&self, args: &[&str], vars: &[(&str, &str)]) {
        self.serve_binary(Path::new(env!("CARGO_BIN_EXE_cutover")), args, vars);
    }

    /// [`TestApp::serve_with`], running the daemon from the binary at `bin`.
    pub fn serve_binary(&self, bin: &Path, args: &[&str], vars: &[(&str, &str)]) {
        let mut command = Command::new(bin);
        command
            .arg("-c")
            .arg(self.config())
            .args(args)
            .env("NO_COLOR", "1")
            .envs(self.extra_env())
            .envs(vars.iter().copied());
        self.serve_command(command);
    }

    /// Starts the daemon with `command` (`cutover … serve` started some
    /// other way, e.g. with inherited sockets) and waits until its API answers.
    pub fn serve_command(&self, mut command: Command) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("daemon.log"))
            .expect("daemon log");
        let child = command
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start daemon");
        *self.daemon.lock().expect("daemon") = Some(child);
        Wait::up_to(Duration::from_secs(20))
            .until(|| std::net::TcpStream::connect(("127.0.0.1", self.api_port)).is_ok())
            .unwrap_or_else(|e| panic!("daemon did not start ({e}):\n{}", self.daemon_log()));
    }

    /// `kill -9` of the daemon (instances keep running).
    pub fn kill_daemon(&self) {
        if let Some(mut child) = self.daemon.lock().expect("daemon").take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// SIGTERM to the daemon and wait for it to exit.
    pub fn stop_daemon(&self) {
        if let Some(mut child) = self.daemon.lock().expect("daemon").take() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(child.id() as i32),
                nix::sys::signal::Signal::SIGTERM,
            );
            let _ = child.wait();
        }
    }

    /// The pid of the daemon holding the state store's lock (after an
    /// upgrade, not the process this app started).
    pub fn lock_holder(&self) -> Option<i32> {
        let text = std::fs::read_to_string(self.path().join(".cutover/state.db.lock")).ok()?;
        text.lines()
            .find_map(|l| l.strip_prefix("pid "))
            .and_then(|p| p.trim().parse().ok())
    }

    /// Whether process `pid` runs (and is not a zombie).
    pub fn alive(pid: i32) -> bool {
        std::fs::read_to_string(format!("/proc/{pid}/stat"))
            .map(|s| {
                !s.rsplit(')')
                    .next()
                    .unwrap_or("")
                    .trim_start()
                    .starts_with('Z')
            })
            .unwrap_or(false)
    }

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path().join("daemon.log")).unwrap_or_default()
    }

    /// Runs the CLI against this app.
    pub fn cli(&self, args: &[&str]) -> Output {
        self.command(args).output().expect("run cutover")
    }

    /// Runs the CLI as the person `who`: with an admin token named `who`
    /// (made on first use, kept in the app's folder), so that "who" in the
    /// history and in four eyes is `who` — an admin, the role that may do
    /// everything but approve its own deployment.
    pub fn cli_as(&self, who: &str, args: &[&str]) -> Output {
        let kept = self.path().join(format!(".token-{who}"));
        let token = match std::fs::read_to_string(&kept) {
            Ok(token) => token,
            Err(_) => {
                let token = self.token(who, "admin");
                std::fs::write(&kept, &token).expect("keep token");
                token
            }
        };
        self.cli_with_token(&token, args)
    }

    /// Starts the CLI as a child process with its stdout piped (stderr
    /// appended to `NAME.stderr` in the app's folder), for commands that
    /// run until stopped (`events --follow`, `status --watch`).
    pub fn cli_child(&self, name: &str, args: &[&str]) -> Child {
        let err =
            std::fs::File::create(self.path().join(format!("{name}.stderr"))).expect("stderr file");
        self.command(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(err)
            .spawn()
            .expect("start cutover")
    }

    /// `cutover -c CONFIG ARGS…` with colours off.
    fn command(&self, args: &[&str]) -> Command {
        let mut command = Command::new(env!("CARGO_BIN_EXE_cutover"));
        command
            .arg("-c")
            .arg(self.config())
            .args(args)
            .env("NO_COLOR", "1")
            .envs(self.extra_env());
        command
    }

    /// Makes a named token with `role` (`viewer`, `deployer`, `approver`,
    /// `admin`) through `cutover token create`, as the admin (the token
    /// file), and returns the token.
    pub fn token(&self, name: &str, role: &str) -> String {
        self.token_with(name, role, &[])
    }

    /// [`TestApp::token`] with more arguments (e.g. `["--expires", "5s"]`).
    pub fn token_with(&self, name: &str, role: &str, more: &[&str]) -> String {
        let mut args = vec!["token", "create", name, "--role", role];
        args.extend_from_slice(more);
        let out = self.cli(&args);
        ok(self, &out);
        let token = stdout(&out).trim().to_owned();
        assert!(token.starts_with("cutover_"), "no token printed: {out:?}");
        token
    }

    /// Runs the CLI with `CUTOVER_TOKEN=token` (instead of the token file).
    pub fn cli_with_token(&self, token: &str, args: &[&str]) -> Output {
        let mut command = self.command(args);
        command.env("CUTOVER_TOKEN", token);
        command.output().expect("run cutover")
    }

    /// One HTTP request to the API with `token` (none: no `Authorization`)
    /// and a JSON `body`; returns the status and the JSON answer (`null`
    /// when the answer is not JSON). For routes the CLI has no command for.
    pub fn api_call(
        &self,
        token: Option<&str>,
        method: &str,
        path: &str,
        body: Option<&str>,
    ) -> (u16, serde_json::Value) {
        use std::io::Read;
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.api_port)).expect("connect to the API");
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .expect("timeout");
        let body = body.unwrap_or("");
        let auth = token
            .map(|t| format!("Authorization: Bearer {t}\r\n"))
            .unwrap_or_default();
        let request = format!(
            "{method} {path} HTTP/1.1\r\nHost: 127.0.0.1:{}\r\n{auth}Content-Type: application/json\r\n\
             Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.api_port,
            body.len()
        );
        stream.write_all(request.as_bytes()).expect("send");
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let (head, rest) = text
            .split_once("\r\n\r\n")
            .unwrap_or_else(|| panic!("no HTTP answer: {text:?}"));
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        (
            status,
            serde_json::from_str(rest).unwrap_or(serde_json::Value::Null),
        )
    }

    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.proxy_port)
    }

    /// `clients` keep-alive clients hammering the proxy until stopped.
    pub fn load(&self, clients: usize) -> Load {
        Load::start(&self.proxy_url(), clients).expect("start load on the proxy")
    }

    /// Processes whose working directory is this app's directory (its instances).
    pub fn instance_pids(&self) -> Vec<(i32, String)> {
        let me = self.path().canonicalize().expect("canonical");
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
            let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
                continue;
            };
            let Ok(cwd) = std::fs::read_link(entry.path().join("cwd")) else {
                continue;
            };
            if cwd != me {
                continue;
            }
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            if stat.contains(") Z ") {
                continue;
            }
            let raw = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
            let argv: Vec<String> = raw
                .split(|b| *b == 0)
                .filter(|a| !a.is_empty())
                .map(|a| String::from_utf8_lossy(a).into_owned())
                .collect();
            let is_hello = argv
                .first()
                .is_some_and(|a0| Path::new(a0).file_name().is_some_and(|n| n == "hello"));
            if is_hello {
                found.push((pid, argv.join(" ")));
            }
        }
        found
    }

    /// Instances running the given version.
    pub fn running_version(&self, version: &str) -> usize {
        self.instance_pids()
            .iter()
            .filter(|(_, cmd)| {
                cmd.contains(&format!("--version {version} "))
                    || cmd.ends_with(&format!("--version {version}"))
            })
            .count()
    }

    /// Waits until no instance of `version` runs.
    pub fn wait_gone(&self, version: &str) {
        Wait::up_to(Duration::from_secs(10))
            .every(Duration::from_millis(100))
            .until(|| self.running_version(version) == 0)
            .unwrap_or_else(|e| {
                panic!(
                    "{} instance(s) of {version} still run ({e}):\n{}",
                    self.running_version(version),
                    self.daemon_log()
                )
            });
    }

    /// Waits until the newest deployment is of `version` and its events
    /// satisfy `pred`.
    pub fn wait_for(&self, version: &str, pred: impl Fn(&[(String, String)]) -> bool) {
        Wait::up_to(Duration::from_secs(30))
            .until(|| self.last_deployment()["version"] == version && pred(&self.last_events()))
            .unwrap_or_else(|e| {
                panic!(
                    "{e}; events: {:#?}\n{}",
                    self.last_events(),
                    self.daemon_log()
                )
            });
    }

    /// Waits until the newest deployment, of `version`, has an event of `kind`.
    pub fn wait_for_event(&self, version: &str, kind: &str) {
        self.wait_for(version, |ev| count(ev, kind) >= 1);
    }

    /// Waits until the newest deployment is in `state` (`succeeded`, …).
    pub fn wait_for_state(&self, state: &str) {
        Wait::up_to(Duration::from_secs(30))
            .every(Duration::from_millis(100))
            .until(|| self.last_deployment()["state"] == state)
            .unwrap_or_else(|e| {
                panic!(
                    "deployment never reached {state} ({e}): {:#?}\n{}",
                    self.last_events(),
                    self.daemon_log()
                )
            });
    }
}

/// How many of `events` are of `kind`.
/// Polls `cond` every 50 ms until it holds; fails naming `what` after `limit`.
pub fn wait_until(limit: Duration, what: &str, cond: impl FnMut() -> bool) {
    Wait::up_to(limit)
        .every(Duration::from_millis(50))
        .until(cond)
        .unwrap_or_else(|e| panic!("waiting until {what}: {e}"));
}

pub fn count(events: &[(String, String)], kind: &str) -> usize {
    events.iter().filter(|(k, _)| k == kind).count()
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop_daemon();
        // A daemon that took over by an upgrade is not our child.
        if let Some(pid) = self.lock_holder()
            && TestApp::alive(pid)
            && pid != std::process::id() as i32
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        // Whatever survived (a test that failed half-way, or a daemon that
        // exited leaving its instances): no orphans. Each instance's whole
        // process group goes (a start script's children too), and the scan
        // is repeated, since an instance whose start was under way when its
        // daemon exited may only now have come up.
        let ours = nix::unistd::getpgrp();
        let _ = Wait::up_to(Duration::from_secs(5))
            .every(Duration::from_millis(100))
            .until(|| {
                let left = self.instance_pids();
                for (pid, _) in &left {
                    let pid = nix::unistd::Pid::from_raw(*pid);
                    if let Ok(group) = nix::unistd::getpgid(Some(pid))
                        && group != ours
                    {
                        let _ = nix::sys::signal::killpg(group, nix::sys::signal::Signal::SIGKILL);
                    }
                    let _ = nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGKILL);
                }
                left.is_empty()
            });
    }
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts success, printing the CLI's and the daemon's output otherwise.
pub fn ok(app: &TestApp, o: &Output) {
    assert!(
        o.status.success(),
        "cutover failed ({:?})\nstdout:\n{}\nstderr:\n{}\ndaemon:\n{}",
        o.status.code(),
        stdout(o),
        stderr(o),
        app.daemon_log()
    );
}

/// One GET through the proxy: the body of a 2xx answer, or None on any failure.
pub async fn fetch(url: &str) -> Option<String> {
    http::fetch(url)
        .await
        .ok()
        .filter(http::Reply::is_success)
        .map(|r| r.body)
}

/// Waits until every client of `load` has finished `n` more requests than
/// now (a request in flight now is the first of them: at least `n - 1` were
/// sent after this call).
pub async fn more_requests(load: &Load, n: u64) {
    let from = load.completed();
    let from = &from;
    Wait::up_to(Duration::from_secs(20))
        .every(Duration::from_millis(10))
        .until_async(|| async move {
            load.completed()
                .iter()
                .zip(from)
                .all(|(now, then)| *now >= then + n)
        })
        .await
        .unwrap_or_else(|e| panic!("the load made no progress: {e}"));
}

/// A tmpfs of `size` mounted at `at`, for a disk that fills up; unmounted
/// (that mount point only) on drop. Mounting needs root, as `scripts/test`
/// runs.
pub struct Tmpfs(pub PathBuf);

impl Tmpfs {
    pub fn mount(at: PathBuf, size: &str) -> Tmpfs {
        std::fs::create_dir_all(&at).expect("mount point");
        let out = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(&at)
            .output()
            .expect("run mount");
        assert!(
            out.status.success(),
            "cannot mount a tmpfs (the disk-full tests need root, as scripts/test runs): {}",
            stderr(&out)
        );
        Tmpfs(at)
    }

    /// Writes a file until the tmpfs is full; returns it (remove it to free
    /// the space).
    pub fn fill(&self) -> PathBuf {
        use std::io::Write;
        let path = self.0.join("filler");
        let mut f = std::fs::File::create(&path).expect("filler");
        let block = vec![0u8; 64 * 1024];
        while f.write_all(&block).is_ok() {}
        // The last partial block, byte by byte.
        while f.write_all(&[0]).is_ok() {}
        let _ = f.sync_all();
        path
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        // Lazily: a daemon that still holds a file there must not keep it mounted.
        let _ = Command::new("umount").arg("--lazy").arg(&self.0).status();
    }
}
