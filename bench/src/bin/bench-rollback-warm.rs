//! `bench-rollback-warm`: how long `cutover rollback` takes while the previous
//! release is warm, end to end from the CLI. Driven by `bench/rollback-warm`;
//! see `bench/README.md`.
//!
//! In one process, except the daemon and the CLI: writes a scratch app
//! directory (a `cutover.toml` with one http service `web`, 2 replicas,
//! blue-green, a 1-hour rollback window, and `releases/v1/hello` and
//! `releases/v2/hello` running the example app), starts `cutover serve`,
//! deploys v1 then v2 (v1 stays warm), and then runs `cutover rollback`
//! `--runs` times: each one goes back to the warm release and leaves the other
//! one warm, so the runs alternate v1, v2, v1, …. All along, one keep-alive
//! client asks the proxy for `/` every `--poll-us` microseconds and notes
//! which version answered. Per run:
//!
//! - CLI: from just before `cutover rollback` is started to its exit;
//! - switch seen: from the same instant to the first answer (received) from
//!   the release rolled back to;
//! - from the deployment's events (whole milliseconds of the daemon's clock):
//!   invocation → `started` (CLI start, config, the API request), and
//!   `started` → `switched` (the daemon's part: probe, saves, table swap).
//!
//! A run is invalid if the CLI did not exit 0 with "VERSION now serves all
//! traffic", if a process was started (a warm rollback starts none), if the
//! release rolled away from answered a request sent after the CLI exited, or
//! if a request through the proxy failed.
//!
//! Exit status: 0 when every run was valid and the median CLI time is under
//! `--goal-ms`; 1 when the runs completed but that is not so; 2 when the
//! benchmark could not run.

use std::fmt::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Output, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Parser;
use cutover_bench::{runtime, shutdown_signal};
use cutover_kit::wait::Wait;
use cutover_kit::{http, ports};
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// The two releases the runs roll between.
const VERSIONS: [&str; 2] = ["v1", "v2"];
/// One request of the polling client may take this long before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(1);
/// A deploy (of the two set up first) or a rollback taking longer is broken.
const CLI_TIMEOUT: Duration = Duration::from_secs(60);
/// The heading of this benchmark's section in the results file.
const SECTION: &str = "## Warm rollback";

/// Roll back and forth between two warm releases and time each `cutover rollback`.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// The cutover binary [default: `cutover` next to this program].
    #[arg(long)]
    cutover: Option<PathBuf>,
    /// The example app's binary [default: `hello` next to this program].
    #[arg(long)]
    hello: Option<PathBuf>,
    /// Rollbacks to time, one after the other.
    #[arg(long, default_value_t = 20)]
    runs: u32,
    /// The polling client's interval, in microseconds.
    #[arg(long, default_value_t = 1000)]
    poll_us: u64,
    /// Milliseconds between the end of one rollback and the next.
    #[arg(long, default_value_t = 300)]
    gap_ms: u64,
    /// The goal for the median CLI time, in milliseconds.
    #[arg(long, default_value_t = 50)]
    goal_ms: u64,
    /// Scratch directory for the app (created; must be empty) [default: a
    /// temporary directory, removed at the end].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write the results as the "Warm rollback" section of this Markdown
    /// file: the section is replaced if the file has one, appended if not,
    /// and the file created (with the section alone) if missing.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Markdown lines describing the machine, put at the top of the section.
    #[arg(long)]
    machine: Option<PathBuf>,
    /// Tokio worker threads of this program (the polling client).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    let outcome = runtime(args.threads).and_then(|rt| {
        rt.block_on(async {
            let signal = shutdown_signal()?;
            tokio::select! {
                done = run(&args) => done,
                () = signal => Err(anyhow!("interrupted")),
            }
        })
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("bench-rollback-warm: {e:#}");
            ExitCode::from(2)
        }
    }
}

async fn run(args: &Args) -> Result<bool> {
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(args.poll_us >= 1, "--poll-us must be at least 1");
    let started = Instant::now();
    let mut app = App::new(args)?;
    for v in VERSIONS {
        app.release(v)?;
    }
    app.serve().await?;
    for v in VERSIONS {
        let out = app.cli(&["deploy", v]).await?;
        ensure!(
            out.status.success(),
            "`cutover deploy {v}` failed ({:?}):\n{}{}",
            out.status.code(),
            text(&out.stderr),
            text(&app.daemon_log_tail())
        );
    }
    let poller = Poller::start(&app.proxy_url(), Duration::from_micros(args.poll_us))?;
    let serving = VERSIONS[1];
    poller
        .wait_for(serving)
        .await
        .with_context(|| format!("{serving} does not answer through the proxy"))?;
    println!(
        "bench-rollback-warm: daemon on 127.0.0.1:{}, proxy on 127.0.0.1:{}, {serving} serving, {} warm; {} rollbacks",
        app.api_port, app.proxy_port, VERSIONS[0], args.runs
    );

    let mut runs = Vec::new();
    for n in 1..=args.runs {
        // Odd runs go back to v1, even ones forward to v2.
        let (to, from) = if n % 2 == 1 {
            (VERSIONS[0], VERSIONS[1])
        } else {
            (VERSIONS[1], VERSIONS[0])
        };
        let run = one_run(&app, &poller, n, to, from).await?;
        println!("{}", run.line());
        runs.push(run);
        tokio::time::sleep(Duration::from_millis(args.gap_ms)).await;
    }
    let polls = poller.stop().await;
    let summary = Summary::new(&runs, args.goal_ms);
    print!("{}", summary.text());
    if let Some(out) = &args.out {
        let machine = match &args.machine {
            Some(p) => std::fs::read_to_string(p)
                .with_context(|| format!("cannot read {}", p.display()))?,
            None => String::new(),
        };
        let section = markdown(args, &app, &runs, &summary, &machine, polls, started);
        write_section(out, &section)?;
    }
    Ok(summary.pass)
}

/// One `cutover rollback`, from `from` (serving) to `to` (warm).
async fn one_run(app: &App, poller: &Poller, n: u32, to: &str, from: &str) -> Result<Run> {
    let pids_before = app.hello_pids();
    let failed_before = poller.failed();
    let t0 = Instant::now();
    let t0_wall = wall_ms();
    let out = app.cli(&["rollback"]).await?;
    let cli = t0.elapsed();
    let cli_end = Instant::now();
    let mut problems = Vec::new();
    let seen = match tokio::time::timeout(Duration::from_secs(5), poller.first_from(to, t0)).await {
        Ok(at) => Some(at.saturating_duration_since(t0)),
        Err(_) => {
            problems.push(format!(
                "{to} did not answer within 5 s of `cutover rollback`"
            ));
            None
        }
    };
    // Let the polling client see a few more answers before judging them.
    tokio::time::sleep(Duration::from_millis(20)).await;
    if !out.status.success() {
        problems.push(format!(
            "`cutover rollback` exited {:?}: {}",
            out.status.code(),
            text(&out.stderr).trim()
        ));
    } else if !text(&out.stdout).contains(&format!("{to} now serves all traffic")) {
        problems.push(format!(
            "`cutover rollback` did not say {to} serves: {}",
            text(&out.stdout).trim()
        ));
    }
    if let Some(late) = poller.last_sent_from(from).filter(|t| *t > cli_end) {
        problems.push(format!(
            "{from} answered a request sent {:.1} ms after `cutover rollback` exited",
            ms(late - cli_end)
        ));
    }
    let failed = poller.failed().saturating_sub(failed_before);
    if failed > 0 {
        problems.push(format!("{failed} requests through the proxy failed"));
    }
    if app.hello_pids() != pids_before {
        problems.push("instances were started or stopped: the rollback was not warm".into());
    }
    let (started, switched) = app.event_times().await?;
    Ok(Run {
        n,
        to: to.to_owned(),
        cli,
        seen,
        to_started: started.map(|s| s - t0_wall),
        started_to_switched: started.zip(switched).map(|(s, w)| w - s),
        problems,
    })
}

/// The scratch app and its daemon. Dropping it stops the daemon and kills
/// whatever still runs in the app's directory.
struct App {
    dir: PathBuf,
    config: PathBuf,
    config_text: String,
    cutover: PathBuf,
    hello: PathBuf,
    api_port: u16,
    proxy_port: u16,
    daemon: Option<std::process::Child>,
    // Last, so that it is removed after `drop` has stopped everything.
    _scratch: Option<tempfile::TempDir>,
}

impl App {
    fn new(args: &Args) -> Result<App> {
        let exe_dir = std::env::current_exe()
            .context("cannot find this program's path")?
            .parent()
            .map(Path::to_path_buf)
            .context("this program's path has no directory")?;
        let resolve = |given: &Option<PathBuf>, name: &str| -> Result<PathBuf> {
            let p = given.clone().unwrap_or_else(|| exe_dir.join(name));
            ensure!(
                p.is_file(),
                "no {name} binary at {} (build it with `cargo build --release -p cutover -p hello`)",
                p.display()
            );
            // Absolute: both run with the app's directory as their working directory.
            p.canonicalize()
                .with_context(|| format!("cannot resolve {}", p.display()))
        };
        let cutover = resolve(&args.cutover, "cutover")?;
        let hello = resolve(&args.hello, "hello")?;
        let (dir, scratch) = match &args.dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .with_context(|| format!("cannot create {}", d.display()))?;
                let empty = std::fs::read_dir(d)
                    .with_context(|| format!("cannot read {}", d.display()))?
                    .next()
                    .is_none();
                ensure!(empty, "--dir {} is not empty", d.display());
                (d.clone(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix("cutover-bench-rollback-warm-")
                    .tempdir()
                    .context("cannot create a temporary directory")?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let dir = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let free = ports::free_ports(2)?;
        let [api_port, proxy_port] = free[..] else {
            bail!("asked for 2 free ports, got {free:?}");
        };
        let config_text = config_toml(api_port, proxy_port);
        let config = dir.join("cutover.toml");
        std::fs::write(&config, &config_text)
            .with_context(|| format!("cannot write {}", config.display()))?;
        Ok(App {
            dir,
            config,
            config_text,
            cutover,
            hello,
            api_port,
            proxy_port,
            daemon: None,
            _scratch: scratch,
        })
    }

    /// `releases/<version>/hello`: the example app.
    fn release(&self, version: &str) -> Result<()> {
        let hello = self.hello.display().to_string();
        ensure!(
            !hello.contains('\''),
            "the hello path {hello} contains a single quote"
        );
        let dir = self.dir.join("releases").join(version);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("hello");
        std::fs::write(&path, format!("#!/bin/sh\nexec '{hello}' \"$@\"\n"))
            .with_context(|| format!("cannot write {}", path.display()))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))
    }

    /// Starts `cutover serve` and waits until its API accepts connections.
    async fn serve(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("daemon.log"))
            .context("cannot create daemon.log")?;
        let child = std::process::Command::new(&self.cutover)
            .arg("-c")
            .arg(&self.config)
            .arg("serve")
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env_remove("CUTOVER_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot share daemon.log")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} serve", self.cutover.display()))?;
        let daemon = self.daemon.insert(child);
        let api_port = self.api_port;
        // Some(Ok): listening; Some(Err): the daemon exited first.
        let up = Wait::up_to(Duration::from_secs(20))
            .until_some_async(|| {
                let exited = daemon.try_wait();
                async move {
                    if tokio::net::TcpStream::connect(("127.0.0.1", api_port))
                        .await
                        .is_ok()
                    {
                        return Some(Ok(()));
                    }
                    match exited {
                        Ok(None) => None,
                        Ok(Some(status)) => Some(Err(anyhow!("the daemon exited ({status})"))),
                        Err(e) => Some(Err(anyhow!("cannot wait for the daemon: {e}"))),
                    }
                }
            })
            .await;
        match up {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.context(format!(
                "before listening:\n{}",
                text(&self.daemon_log_tail())
            ))),
            Err(_) => bail!(
                "the daemon did not listen on 127.0.0.1:{} within 20 s:\n{}",
                self.api_port,
                text(&self.daemon_log_tail())
            ),
        }
    }

    /// Runs the CLI against this app (within [`CLI_TIMEOUT`]).
    async fn cli(&self, args: &[&str]) -> Result<Output> {
        let run = tokio::process::Command::new(&self.cutover)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env_remove("CUTOVER_TOKEN")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        tokio::time::timeout(CLI_TIMEOUT, run)
            .await
            .map_err(|_| {
                anyhow!(
                    "`cutover {}` did not finish within {} s",
                    args.join(" "),
                    CLI_TIMEOUT.as_secs()
                )
            })?
            .with_context(|| format!("cannot run cutover {}", args.join(" ")))
    }

    /// The newest deployment's `started` and `switched` events, in
    /// milliseconds since the epoch.
    async fn event_times(&self) -> Result<(Option<f64>, Option<f64>)> {
        let out = self
            .cli(&["history", "--json", "--limit", "1", "--events"])
            .await?;
        ensure!(
            out.status.success(),
            "`cutover history` failed: {}",
            text(&out.stderr)
        );
        let list: serde_json::Value =
            serde_json::from_slice(&out.stdout).context("`cutover history --json` is not JSON")?;
        let events = list[0]["events"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let at = |kind: &str| {
            events
                .iter()
                .find(|e| e["kind"].as_str() == Some(kind))
                .and_then(|e| e["at"].as_str())
                .and_then(|at| at.parse::<jiff::Timestamp>().ok())
                .map(|t| t.as_millisecond() as f64)
        };
        Ok((at("started"), at("switched")))
    }

    fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.proxy_port)
    }

    /// The pids of the processes whose working directory is the app's
    /// directory, other than the daemon: its instances (and their shells).
    fn hello_pids(&self) -> Vec<i32> {
        let daemon = self.daemon.as_ref().map(std::process::Child::id);
        let mut found: Vec<i32> = app_pids(&self.dir)
            .into_iter()
            .filter(|p| u32::try_from(*p).ok() != daemon)
            .collect();
        found.sort_unstable();
        found
    }

    fn daemon_log_tail(&self) -> Vec<u8> {
        let log = std::fs::read(self.dir.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&[u8]> = log.split(|b| *b == b'\n').collect();
        lines[lines.len().saturating_sub(30)..].join(&b'\n')
    }
}

impl Drop for App {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            // SIGTERM: the daemon drains and stops its instances.
            if let Ok(pid) = i32::try_from(daemon.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let deadline = Instant::now() + Duration::from_secs(20);
            loop {
                match daemon.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        eprintln!(
                            "bench-rollback-warm: the daemon did not stop within 20 s; killing it"
                        );
                        let _ = daemon.kill();
                        let _ = daemon.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        // Whatever survived: no orphans.
        for pid in app_pids(&self.dir) {
            let _ = kill(Pid::from_raw(pid), Signal::SIGKILL);
        }
    }
}

/// Live processes whose working directory is `dir`.
fn app_pids(dir: &Path) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            (cwd == dir && !stat.contains(") Z ")).then_some(pid)
        })
        .collect()
}

fn config_toml(api_port: u16, proxy_port: u16) -> String {
    format!(
        r#"# Written by bench-rollback-warm: one http service, blue-green, and a
# rollback window long enough that the previous release is always warm.
[app]
name = "bench-rollback-warm"

[server]
listen = "127.0.0.1:{api_port}"

[service.web]
kind = "http"
driver = "process"
command = ["./releases/{{version}}/hello", "--port", "{{port}}", "--version", "{{version}}"]
replicas = 2
health = {{ path = "/health", interval = "200ms" }}

[environment.production]
listen = "127.0.0.1:{proxy_port}"
rollback_window = "1h"
"#
    )
}

/// One answer of the polling client.
#[derive(Debug, Clone)]
struct Poll {
    sent: Instant,
    received: Instant,
    /// `None`: no 2xx answer.
    version: Option<String>,
}

/// What the polling client has seen, shared with its task.
#[derive(Default)]
struct Seen {
    polls: Vec<Poll>,
    failed: usize,
}

/// One keep-alive client asking the proxy for `/` at a fixed interval.
struct Poller {
    seen: Arc<Mutex<Seen>>,
    stop: tokio::sync::watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Poller {
    fn start(url: &str, every: Duration) -> Result<Poller> {
        let uri = http::uri(url)?;
        let seen = Arc::new(Mutex::new(Seen::default()));
        let (stop, mut stopped) = tokio::sync::watch::channel(false);
        let record = seen.clone();
        let task = tokio::spawn(async move {
            let client = http::client();
            let mut next = tokio::time::Instant::now();
            while !*stopped.borrow() {
                let sent = Instant::now();
                let reply = http::get_within(&client, uri.clone(), REQUEST_TIMEOUT).await;
                let received = Instant::now();
                let version = reply
                    .ok()
                    .filter(http::Reply::is_success)
                    .and_then(|r| r.version);
                {
                    let mut s = record.lock().unwrap_or_else(|p| p.into_inner());
                    if version.is_none() {
                        s.failed += 1;
                    }
                    s.polls.push(Poll {
                        sent,
                        received,
                        version,
                    });
                }
                next += every;
                let now = tokio::time::Instant::now();
                if next < now {
                    next = now;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(next) => {}
                    _ = stopped.changed() => {}
                }
            }
        });
        Ok(Poller { seen, stop, task })
    }

    fn with<T>(&self, f: impl FnOnce(&Seen) -> T) -> T {
        f(&self.seen.lock().unwrap_or_else(|p| p.into_inner()))
    }

    fn failed(&self) -> usize {
        self.with(|s| s.failed)
    }

    /// When the first answer from `version` to a request sent after `after` arrived.
    async fn first_from(&self, version: &str, after: Instant) -> Instant {
        loop {
            let found = self.with(|s| {
                s.polls
                    .iter()
                    .find(|p| p.sent >= after && p.version.as_deref() == Some(version))
                    .map(|p| p.received)
            });
            if let Some(at) = found {
                return at;
            }
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// When the last request answered by `version` was sent.
    fn last_sent_from(&self, version: &str) -> Option<Instant> {
        self.with(|s| {
            s.polls
                .iter()
                .rev()
                .find(|p| p.version.as_deref() == Some(version))
                .map(|p| p.sent)
        })
    }

    /// Waits (up to 10 s) until `version` answers.
    async fn wait_for(&self, version: &str) -> Result<()> {
        let since = Instant::now();
        tokio::time::timeout(Duration::from_secs(10), self.first_from(version, since))
            .await
            .map(drop)
            .map_err(|_| anyhow!("no answer from {version} within 10 s"))
    }

    /// Stops the client; returns how many requests it made.
    async fn stop(self) -> usize {
        let _ = self.stop.send(true);
        let Poller { seen, task, .. } = self;
        let _ = task.await;
        seen.lock().unwrap_or_else(|p| p.into_inner()).polls.len()
    }
}

/// One timed rollback. Durations from the CLI's start.
struct Run {
    n: u32,
    to: String,
    cli: Duration,
    seen: Option<Duration>,
    /// CLI start → the deployment's `started` event (ms, whole-ms clock).
    to_started: Option<f64>,
    /// `started` → `switched` events (ms).
    started_to_switched: Option<f64>,
    problems: Vec<String>,
}

impl Run {
    fn line(&self) -> String {
        let opt = |x: Option<f64>| x.map_or_else(|| "  -  ".to_owned(), |v| format!("{v:5.1}"));
        let mut s = format!(
            "run {:>2} -> {}  cli {:6.1} ms  switch seen {} ms  (cli -> started {} ms, started -> switched {} ms)",
            self.n,
            self.to,
            ms(self.cli),
            opt(self.seen.map(ms)),
            opt(self.to_started),
            opt(self.started_to_switched),
        );
        for p in &self.problems {
            let _ = write!(s, "\n       problem: {p}");
        }
        s
    }
}

fn ms(d: Duration) -> f64 {
    d.as_secs_f64() * 1000.0
}

fn wall_ms() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs_f64() * 1000.0)
        .unwrap_or_default()
}

/// Min, median and max of some figures.
#[derive(Debug, Clone, Copy)]
struct Spread {
    min: f64,
    median: f64,
    max: f64,
}

impl Spread {
    fn of(mut xs: Vec<f64>) -> Option<Spread> {
        if xs.is_empty() {
            return None;
        }
        xs.sort_by(f64::total_cmp);
        let n = xs.len();
        let median = if n % 2 == 1 {
            xs[n / 2]
        } else {
            (xs[n / 2 - 1] + xs[n / 2]) / 2.0
        };
        Some(Spread {
            min: xs[0],
            median,
            max: xs[n - 1],
        })
    }
}

struct Summary {
    runs: usize,
    valid: usize,
    cli: Option<Spread>,
    seen: Option<Spread>,
    to_started: Option<Spread>,
    started_to_switched: Option<Spread>,
    goal_ms: u64,
    pass: bool,
    verdict: String,
}

impl Summary {
    fn new(runs: &[Run], goal_ms: u64) -> Summary {
        let valid: Vec<&Run> = runs.iter().filter(|r| r.problems.is_empty()).collect();
        let cli = Spread::of(valid.iter().map(|r| ms(r.cli)).collect());
        let mut reasons = Vec::new();
        match cli {
            Some(c) if c.median < goal_ms as f64 => {}
            Some(c) => reasons.push(format!(
                "median CLI time {:.1} ms is not under {goal_ms} ms",
                c.median
            )),
            None => reasons.push("no valid run".to_owned()),
        }
        if valid.len() < runs.len() {
            reasons.push(format!(
                "{} of {} runs invalid",
                runs.len() - valid.len(),
                runs.len()
            ));
        }
        let pass = reasons.is_empty();
        Summary {
            runs: runs.len(),
            valid: valid.len(),
            cli,
            seen: Spread::of(valid.iter().filter_map(|r| r.seen.map(ms)).collect()),
            to_started: Spread::of(valid.iter().filter_map(|r| r.to_started).collect()),
            started_to_switched: Spread::of(
                valid.iter().filter_map(|r| r.started_to_switched).collect(),
            ),
            goal_ms,
            pass,
            verdict: if pass {
                "PASS".to_owned()
            } else {
                format!("FAIL: {}", reasons.join("; "))
            },
        }
    }

    fn rows(&self) -> [(&'static str, Option<Spread>); 4] {
        [
            ("`cutover rollback`, invocation to exit", self.cli),
            (
                "invocation to the switch, seen by the polling client",
                self.seen,
            ),
            (
                "invocation to the `started` event (CLI start, config, API request)",
                self.to_started,
            ),
            (
                "`started` to `switched` events (the daemon: probe, saves, table swap)",
                self.started_to_switched,
            ),
        ]
    }

    fn text(&self) -> String {
        let mut t = format!("summary over {} valid runs of {}:\n", self.valid, self.runs);
        for (name, s) in self.rows() {
            let _ = match s {
                Some(s) => writeln!(
                    t,
                    "  {name}: min {:.1} ms, median {:.1} ms, max {:.1} ms",
                    s.min, s.median, s.max
                ),
                None => writeln!(t, "  {name}: -"),
            };
        }
        let _ = writeln!(
            t,
            "result: {} (goal: median `cutover rollback` under {} ms while the previous release is warm)",
            self.verdict, self.goal_ms
        );
        t
    }
}

fn markdown(
    args: &Args,
    app: &App,
    runs: &[Run],
    s: &Summary,
    machine: &str,
    polls: usize,
    started: Instant,
) -> String {
    let mut md = format!("{SECTION}\n\n");
    let _ = writeln!(
        md,
        "Written by `bench/rollback-warm` (`RUNS={} bench/rollback-warm`; see bench/README.md).\n",
        args.runs
    );
    if !machine.trim().is_empty() {
        let _ = writeln!(md, "{}\n", machine.trim_end());
    }
    let _ = writeln!(
        md,
        "A real `cutover serve` with the `cutover.toml` below (one http service, 2 replicas,\n\
         blue-green, `rollback_window = \"1h\"`); v1 then v2 deployed, so v1 is warm. Then\n\
         `cutover rollback` {} times, one after the other ({} ms apart): each goes back to the\n\
         warm release and leaves the other one warm (v1, v2, v1, …), starting no process.\n\
         All along, one keep-alive client asks the proxy for `/` every {} µs ({polls} requests\n\
         in all) and notes which version answered.\n",
        s.runs, args.gap_ms, args.poll_us
    );
    let _ = writeln!(
        md,
        "- **CLI**: from just before `cutover rollback` is started to its exit (what a user waits).\n\
         - **switch seen**: from the same instant to the first answer (received) from the release\n  \
         rolled back to, by the polling client: at most one poll interval plus one request late.\n\
         - **to `started`** and **`started` → `switched`**: from the deployment's events\n  \
         (`cutover history --events`, whole milliseconds of the daemon's clock, same machine):\n  \
         the CLI's start and API request, then the daemon's part (supersede the release in its\n  \
         window, save, probe each warm instance once, save the new serving release, swap the table).\n"
    );
    let _ = writeln!(
        md,
        "| run | to | CLI (ms) | switch seen (ms) | to `started` (ms) | `started` → `switched` (ms) | problems |\n\
         | ---: | --- | ---: | ---: | ---: | ---: | --- |"
    );
    let opt = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |v| format!("{v:.1}"));
    for r in runs {
        let _ = writeln!(
            md,
            "| {} | {} | {:.1} | {} | {} | {} | {} |",
            r.n,
            r.to,
            ms(r.cli),
            opt(r.seen.map(ms)),
            opt(r.to_started),
            opt(r.started_to_switched),
            r.problems.join("; ").replace('|', "\\|")
        );
    }
    let _ = writeln!(
        md,
        "\nOver {} valid runs of {}:\n\n| | min | median | worst |\n| --- | ---: | ---: | ---: |",
        s.valid, s.runs
    );
    for (name, spread) in s.rows() {
        let _ = match spread {
            Some(x) => writeln!(
                md,
                "| {name} (ms) | {:.1} | {:.1} | {:.1} |",
                x.min, x.median, x.max
            ),
            None => writeln!(md, "| {name} (ms) | - | - | - |"),
        };
    }
    let _ = writeln!(
        md,
        "\nResult: **{}** (goal: median `cutover rollback` under {} ms while the previous release\n\
         is warm). {:.0} s in all.\n",
        s.verdict,
        s.goal_ms,
        started.elapsed().as_secs_f64()
    );
    let _ = writeln!(
        md,
        "<details><summary>cutover.toml</summary>\n\n```toml\n{}```\n\n</details>",
        app.config_text
    );
    md
}

/// Puts `section` (starting with [`SECTION`]) into the Markdown file `out`:
/// in place of the section of that name if there is one (up to the next
/// heading of the same level), at the end if not; a missing file is created.
fn write_section(out: &Path, section: &str) -> Result<()> {
    let old = match std::fs::read_to_string(out) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(e).with_context(|| format!("cannot read {}", out.display())),
    };
    let text = splice_section(&old, section);
    if let Some(parent) = out.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("cannot create {}", parent.display()))?;
    }
    std::fs::write(out, text).with_context(|| format!("cannot write {}", out.display()))
}

fn splice_section(old: &str, section: &str) -> String {
    let section = format!("{}\n", section.trim_end());
    let lines: Vec<&str> = old.lines().collect();
    let Some(start) = lines.iter().position(|l| l.trim_end() == SECTION) else {
        let old = old.trim_end();
        if old.is_empty() {
            return section;
        }
        return format!("{old}\n\n{section}");
    };
    // The next heading of level 1 or 2, outside code blocks (a TOML comment
    // in one starts with `# ` too).
    let mut fenced = false;
    let end = lines[start + 1..]
        .iter()
        .position(|l| {
            if l.trim_start().starts_with("```") {
                fenced = !fenced;
            }
            !fenced && (l.starts_with("## ") || l.starts_with("# "))
        })
        .map_or(lines.len(), |i| start + 1 + i);
    let mut text = lines[..start].join("\n");
    if !text.is_empty() {
        text.push('\n');
    }
    text.push_str(&section);
    if end < lines.len() {
        text.push('\n');
        text.push_str(&lines[end..].join("\n"));
        text.push('\n');
    }
    text
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_without_the_section_gets_it_at_the_end() {
        let got = splice_section(
            "# Upgrade\n\n## bench/upgrade\n\nfigures\n",
            "## Warm rollback\n\nnew\n",
        );
        assert_eq!(
            got,
            "# Upgrade\n\n## bench/upgrade\n\nfigures\n\n## Warm rollback\n\nnew\n"
        );
    }

    #[test]
    fn the_section_is_replaced_and_what_follows_it_kept() {
        let old = "# Upgrade\n\n## Warm rollback\n\nold\nold\n\n## After\n\nkept\n";
        let got = splice_section(old, "## Warm rollback\n\nnew\n");
        assert_eq!(
            got,
            "# Upgrade\n\n## Warm rollback\n\nnew\n\n## After\n\nkept\n"
        );
    }

    #[test]
    fn a_comment_in_a_code_block_does_not_end_the_section() {
        let old = "# U\n\n## Warm rollback\n\n```toml\n# comment\n```\n\n## After\n";
        let got = splice_section(old, "## Warm rollback\n\nnew\n");
        assert_eq!(got, "# U\n\n## Warm rollback\n\nnew\n\n## After\n");
    }

    #[test]
    fn a_missing_file_gets_the_section_alone() {
        let got = splice_section("", "## Warm rollback\n\nnew\n");
        assert_eq!(got, "## Warm rollback\n\nnew\n");
    }
}
