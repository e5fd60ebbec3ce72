//! Helpers: a scratch app directory with releases of the example app, a daemon
//! process, the CLI, and load through the proxy.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

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

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
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
}

impl TestApp {
    pub fn new(rollback_window: &str) -> TestApp {
        let dir = tempfile::Builder::new()
            .prefix("cutover-e2e-")
            .tempdir()
            .expect("tempdir");
        let api_port = free_port();
        let proxy_port = free_port();
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
        }
    }

    /// Appends TOML to the config (e.g. a `[service.web.rollout]` table).
    pub fn append_config(&self, toml: &str) {
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(self.config())
            .expect("open config");
        f.write_all(toml.as_bytes()).expect("append config");
    }

    /// Runs the CLI in the background.
    pub fn cli_background(&self, args: &[&str]) -> std::thread::JoinHandle<Output> {
        let config = self.config();
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        std::thread::spawn(move || {
            Command::new(env!("CARGO_BIN_EXE_cutover"))
                .arg("-c")
                .arg(config)
                .args(&args)
                .env("NO_COLOR", "1")
                .output()
                .expect("run cutover")
        })
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
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.path().join("daemon.log"))
            .expect("daemon log");
        let child = Command::new(env!("CARGO_BIN_EXE_cutover"))
            .arg("-c")
            .arg(self.config())
            .arg("serve")
            .env("NO_COLOR", "1")
            .envs(vars.iter().copied())
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("log"))
            .stderr(log)
            .spawn()
            .expect("start daemon");
        *self.daemon.lock().expect("daemon") = Some(child);
        let deadline = Instant::now() + Duration::from_secs(20);
        while std::net::TcpStream::connect(("127.0.0.1", self.api_port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "daemon did not start:\n{}",
                self.daemon_log()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
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

    pub fn daemon_log(&self) -> String {
        std::fs::read_to_string(self.path().join("daemon.log")).unwrap_or_default()
    }

    /// Runs the CLI against this app.
    pub fn cli(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .arg("-c")
            .arg(self.config())
            .args(args)
            .env("NO_COLOR", "1")
            .output()
            .expect("run cutover")
    }

    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.proxy_port)
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
}

impl Drop for TestApp {
    fn drop(&mut self) {
        self.stop_daemon();
        // Whatever survived (a test that failed half-way): no orphans.
        for (pid, _) in self.instance_pids() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
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

/// One GET through the proxy: the body, or None on any failure.
pub async fn fetch(url: &str) -> Option<String> {
    let http: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).build_http();
    let resp = http.get(url.parse().ok()?).await.ok()?;
    if !resp.status().is_success() {
        return None;
    }
    let body = resp.into_body().collect().await.ok()?.to_bytes();
    Some(String::from_utf8_lossy(&body).trim().to_owned())
}

/// Keep-alive clients hammering the proxy until stopped.
pub struct Load {
    stop: Arc<AtomicBool>,
    failed: Arc<AtomicU64>,
    /// When each failed request was sent.
    failed_at: Arc<Mutex<Vec<Instant>>>,
    tasks: Vec<tokio::task::JoinHandle<Vec<(u16, String)>>>,
}

impl Load {
    pub fn start(url: String, clients: usize) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let failed = Arc::new(AtomicU64::new(0));
        let failed_at = Arc::new(Mutex::new(Vec::new()));
        let tasks = (0..clients)
            .map(|_| {
                let (stop, failed, url) = (stop.clone(), failed.clone(), url.clone());
                let failed_at = failed_at.clone();
                tokio::spawn(async move {
                    let http: Client<_, Empty<Bytes>> =
                        Client::builder(TokioExecutor::new()).build_http();
                    let uri: hyper::Uri = url.parse().expect("uri");
                    let mut answers = Vec::new();
                    while !stop.load(Ordering::Relaxed) {
                        let sent = Instant::now();
                        let got = match http.get(uri.clone()).await {
                            Ok(r) => {
                                let status = r.status().as_u16();
                                r.into_body()
                                    .collect()
                                    .await
                                    .ok()
                                    .map(|b| (status, b.to_bytes()))
                            }
                            Err(_) => None,
                        };
                        match got {
                            Some((status, b)) => {
                                if !(200..300).contains(&status) {
                                    failed.fetch_add(1, Ordering::Relaxed);
                                    failed_at.lock().expect("failures").push(sent);
                                }
                                answers
                                    .push((status, String::from_utf8_lossy(&b).trim().to_owned()));
                            }
                            None => {
                                failed.fetch_add(1, Ordering::Relaxed);
                                failed_at.lock().expect("failures").push(sent);
                                // A refused connection fails at once: do not spin.
                                tokio::time::sleep(Duration::from_millis(5)).await;
                            }
                        }
                    }
                    answers
                })
            })
            .collect();
        Load {
            stop,
            failed,
            failed_at,
            tasks,
        }
    }

    /// Stops; returns every successful body (per client, in order) and the
    /// failure count (transport errors and non-2xx answers).
    pub async fn stop(self) -> (Vec<Vec<String>>, u64) {
        let (answers, failed) = self.stop_detailed().await;
        let bodies = answers
            .into_iter()
            .map(|c| {
                c.into_iter()
                    .filter(|(s, _)| (200..300).contains(s))
                    .map(|(_, b)| b)
                    .collect()
            })
            .collect();
        (bodies, failed)
    }

    /// When each failed request so far was sent.
    pub fn failure_times(&self) -> Vec<Instant> {
        self.failed_at.lock().expect("failures").clone()
    }

    /// Stops; returns every answer (status, body) per client, in order, and
    /// the failure count.
    pub async fn stop_detailed(self) -> (Vec<Vec<(u16, String)>>, u64) {
        self.stop.store(true, Ordering::Relaxed);
        let mut all = Vec::new();
        for t in self.tasks {
            all.push(t.await.expect("load task"));
        }
        (all, self.failed.load(Ordering::Relaxed))
    }
}
