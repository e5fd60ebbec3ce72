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
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, ensure};
use clap::Parser;
use cutover_bench::judged_main;
use cutover_bench::report::{Spread, read_machine, write_section};
use cutover_bench::scratch::{Scratch, Setup, text};
use cutover_kit::http;
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
    judged_main("bench-rollback-warm", args.threads, run(&args))
}

async fn run(args: &Args) -> Result<bool> {
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(args.poll_us >= 1, "--poll-us must be at least 1");
    let started = Instant::now();
    let mut app = Scratch::new(&setup(args), config_toml)?;
    for v in VERSIONS {
        app.release(v, "")?;
    }
    app.serve().await?;
    for v in VERSIONS {
        let out = app.cli(&["deploy", v], Some(CLI_TIMEOUT)).await?;
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
        let machine = read_machine(args.machine.as_deref())?;
        let section = markdown(args, &app, &runs, &summary, &machine, polls, started);
        write_section(out, SECTION, &section)?;
    }
    Ok(summary.pass)
}

/// One `cutover rollback`, from `from` (serving) to `to` (warm).
async fn one_run(app: &Scratch, poller: &Poller, n: u32, to: &str, from: &str) -> Result<Run> {
    let pids_before = hello_pids(app);
    let failed_before = poller.failed();
    let t0 = Instant::now();
    let t0_wall = wall_ms();
    let out = app.cli(&["rollback"], Some(CLI_TIMEOUT)).await?;
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
    if hello_pids(app) != pids_before {
        problems.push("instances were started or stopped: the rollback was not warm".into());
    }
    let (started, switched) = event_times(app).await?;
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

/// Setting up the scratch app for `args`.
fn setup(args: &Args) -> Setup<'_> {
    Setup {
        name: "bench-rollback-warm",
        cutover: args.cutover.as_deref(),
        hello: args.hello.as_deref(),
        dir: args.dir.as_deref(),
    }
}

/// The newest deployment's `started` and `switched` events, in
/// milliseconds since the epoch.
async fn event_times(app: &Scratch) -> Result<(Option<f64>, Option<f64>)> {
    let list = app.history(Some(CLI_TIMEOUT)).await?;
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

/// The pids of the processes whose working directory is the app's
/// directory, other than the daemon: its instances (and their shells).
fn hello_pids(app: &Scratch) -> Vec<i32> {
    let daemon = app.daemon_id();
    let mut found: Vec<i32> = app
        .pids()
        .into_iter()
        .map(Pid::as_raw)
        .filter(|p| u32::try_from(*p).ok() != daemon)
        .collect();
    found.sort_unstable();
    found
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
    app: &Scratch,
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
