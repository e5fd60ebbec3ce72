//! `bench-rollback`: how long a canary that turns bad keeps receiving traffic
//! through the real daemon, with cutover's default canary settings. Driven by
//! `bench/rollback`; see `bench/README.md`.
//!
//! In one process, except the daemon: writes a scratch app directory (a
//! `cutover.toml` with one http service `web` rolled out as a canary with the
//! defaults, and `releases/vN/hello` scripts), starts `cutover serve`, deploys a
//! good v1, then for each run puts steady keep-alive load on the proxy,
//! deploys a release v(N+1) that answers 500 to half of its requests from
//! `--errors-after-ms` after it starts (so it passes its health checks and
//! first takes good traffic), expects `cutover deploy` to exit 3 (rolled back),
//! stops the load and measures, from the answers the clients saw:
//!
//! - first bad: when the first 5xx answer of the canary was received;
//! - clean: when the last request that the canary answered was sent (every
//!   request sent after it went to stable);
//! - rollback time = clean − first bad (0 if negative);
//! - bad requests: the canary's 5xx answers;
//! - detection: the deployment's `rollback` event − first bad.
//!
//! Exit status: 0 when the median rollback time is under `--goal-ms`, no
//! request failed that the canary did not answer, and every run was valid;
//! 1 when the runs completed but that is not so; 2 when the benchmark could
//! not run.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{ExitCode, Output};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, bail, ensure};
use clap::Parser;
use cutover_bench::judged_main;
use cutover_bench::report::{Spread, read_machine};
use cutover_bench::scratch::{Scratch, Setup, text, write_file};
use cutover_kit::http;
use cutover_kit::load::Load;
use cutover_kit::wait::Wait;
use nix::unistd::Pid;

/// The stable release every run rolls back to.
const STABLE: &str = "v1";
/// One request of the load may take this long before it counts as failed.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(2);
/// A bad deploy that takes longer than this was not rolled back in time.
const DEPLOY_TIMEOUT: Duration = Duration::from_secs(90);
/// How long the canary's instances may take to go after its rollback.
const GONE_TIMEOUT: Duration = Duration::from_secs(45);

/// Deploy canaries that turn bad under load and measure how fast cutover
/// sends all traffic back to stable.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// The cutover binary [default: `cutover` next to this program].
    #[arg(long)]
    cutover: Option<PathBuf>,
    /// The example app's binary [default: `hello` next to this program].
    #[arg(long)]
    hello: Option<PathBuf>,
    /// Bad canaries to deploy, one after the other.
    #[arg(long, default_value_t = 20)]
    runs: u32,
    /// Total rate of the steady load, requests per second.
    #[arg(long, default_value_t = 2000)]
    rate: u32,
    /// Keep-alive clients sharing that rate (one request in flight each).
    #[arg(long, default_value_t = 8)]
    clients: u32,
    /// Share of the bad canary's requests answered with 500 once it turns bad.
    #[arg(long, default_value_t = 0.5)]
    error_rate: f64,
    /// The bad canary turns bad this many milliseconds after it starts.
    #[arg(long, default_value_t = 1500)]
    errors_after_ms: u64,
    /// Milliseconds of load before each deploy.
    #[arg(long, default_value_t = 500)]
    lead_ms: u64,
    /// Milliseconds of load after each deploy command returns.
    #[arg(long, default_value_t = 500)]
    tail_ms: u64,
    /// The goal for the median rollback time, in milliseconds.
    #[arg(long, default_value_t = 2000)]
    goal_ms: u64,
    /// Scratch directory for the app (created; must be empty) [default: a
    /// temporary directory, removed at the end].
    #[arg(long)]
    dir: Option<PathBuf>,
    /// Write the results as Markdown to this file.
    #[arg(long)]
    out: Option<PathBuf>,
    /// Markdown lines describing the machine, put at the top of `--out`.
    #[arg(long)]
    machine: Option<PathBuf>,
    /// Tokio worker threads of the load generator.
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn main() -> ExitCode {
    let args = Args::parse();
    judged_main("bench-rollback", args.threads, run(&args))
}

async fn run(args: &Args) -> Result<bool> {
    ensure!(args.runs >= 1, "--runs must be at least 1");
    ensure!(
        args.rate >= 1 && args.clients >= 1,
        "--rate and --clients must be at least 1"
    );
    ensure!(
        args.error_rate > 0.0 && args.error_rate <= 1.0,
        "--error-rate must be in (0, 1]"
    );
    let started = Instant::now();
    let mut app = App::new(args)?;
    app.release(STABLE, None)?;
    app.scratch.serve().await?;
    let (out, _) = app.deploy(STABLE).await?;
    if out.status.code() != Some(0) {
        bail!(
            "deploying {STABLE} failed ({:?}):\n{}{}\n{}",
            out.status.code(),
            text(&out.stdout),
            text(&app.scratch.daemon_log_tail()),
            text(&out.stderr)
        );
    }
    app.expect_stable().await?;
    println!(
        "bench-rollback: daemon on 127.0.0.1:{}, proxy on 127.0.0.1:{}, {STABLE} serving; {} runs, {} requests/s from {} keep-alive clients",
        app.scratch.api_port, app.scratch.proxy_port, args.runs, args.rate, args.clients
    );

    let mut runs = Vec::new();
    for n in 1..=args.runs {
        let run = one_run(&app, args, n).await?;
        println!("{}", run.line());
        runs.push(run);
    }
    let summary = Summary::new(&runs, args.goal_ms);
    print!("{}", summary.text(args));
    if let Some(out) = &args.out {
        let machine = read_machine(args.machine.as_deref())?;
        let md = markdown(args, &app, &runs, &summary, &machine, started.elapsed());
        write_file(out, &md)?;
    }
    Ok(summary.pass)
}

/// One bad canary, deployed under load.
async fn one_run(app: &App, args: &Args, n: u32) -> Result<Run> {
    let version = format!("v{}", n + 1);
    app.release(&version, Some(args))?;
    let load = Load::builder(&app.scratch.proxy_url())
        .clients(args.clients as usize)
        .rate(args.rate)
        .timeout(REQUEST_TIMEOUT)
        .start()
        .context("cannot start the load")?;
    tokio::time::sleep(Duration::from_millis(args.lead_ms)).await;
    let deploy_start = app.anchor.elapsed();
    let (out, took) = app.deploy(&version).await?;
    let deploy_end = app.anchor.elapsed();
    tokio::time::sleep(Duration::from_millis(args.tail_ms)).await;
    let report = load.stop().await.context("the load failed")?;
    let answers: Vec<Answer> = report
        .answers()
        .map(|a| Answer::of(a, app.anchor, &version))
        .collect();

    if out.status.code() != Some(3) {
        bail!(
            "run {n}: `cutover deploy {version}` exited {:?}, expected 3 (rolled back)\nstdout:\n{}stderr:\n{}daemon log (end):\n{}",
            out.status.code(),
            text(&out.stdout),
            text(&out.stderr),
            text(&app.scratch.daemon_log_tail())
        );
    }
    let deployment = app.last_deployment().await?;
    app.wait_gone(&version).await?;
    app.expect_stable().await?;

    let mut run = Run::measure(n, &version, &answers, deploy_start, deploy_end);
    run.deploy_secs = took.as_secs_f64();
    run.events(app, &deployment);
    Ok(run)
}

/// The scratch app and its daemon, and the moment the load's times are
/// measured from.
struct App {
    scratch: Scratch,
    /// Times of the load are measured from here; `anchor_wall` is the same
    /// moment on the wall clock (the daemon's events carry wall-clock times).
    anchor: Instant,
    anchor_wall_ms: f64,
}

impl App {
    fn new(args: &Args) -> Result<App> {
        let scratch = Scratch::new(
            &Setup {
                name: "bench-rollback",
                cutover: args.cutover.as_deref(),
                hello: args.hello.as_deref(),
                dir: args.dir.as_deref(),
            },
            config_toml,
        )?;
        let wall = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .context("the clock is before 1970")?;
        Ok(App {
            scratch,
            anchor: Instant::now(),
            anchor_wall_ms: wall.as_secs_f64() * 1000.0,
        })
    }

    /// `releases/<version>/hello`: the example app, good (`bad` = None) or
    /// turning bad `--errors-after-ms` after it starts.
    fn release(&self, version: &str, bad: Option<&Args>) -> Result<()> {
        let flags = match bad {
            None => String::new(),
            Some(a) => format!(
                "--error-rate {} --errors-after-ms {} ",
                a.error_rate, a.errors_after_ms
            ),
        };
        self.scratch.release(version, &flags)
    }

    /// `cutover deploy VERSION`: its output and how long it took.
    async fn deploy(&self, version: &str) -> Result<(Output, Duration)> {
        let t = Instant::now();
        let out = self
            .scratch
            .cli(&["deploy", version], Some(DEPLOY_TIMEOUT))
            .await?;
        Ok((out, t.elapsed()))
    }

    /// The newest deployment with its events (`history --json --events`).
    async fn last_deployment(&self) -> Result<serde_json::Value> {
        let list = self.scratch.history(None).await?;
        list.get(0)
            .cloned()
            .context("`cutover history` lists no deployment")
    }

    /// A few requests through the proxy, all answered 200 by the stable release.
    async fn expect_stable(&self) -> Result<()> {
        let client = http::client();
        let uri = http::uri(&self.scratch.proxy_url())?;
        for _ in 0..5 {
            let reply = http::get(&client, uri.clone()).await?;
            ensure!(
                reply.status == 200 && reply.version.as_deref() == Some(STABLE),
                "the proxy answered {} from {:?}, expected 200 from {STABLE}",
                reply.status,
                reply.version
            );
        }
        Ok(())
    }

    /// Waits until no instance of `version` runs any more.
    async fn wait_gone(&self, version: &str) -> Result<()> {
        let gone = Wait::up_to(GONE_TIMEOUT)
            .every(Duration::from_millis(100))
            .until_async(|| async move { self.pids(version).is_empty() })
            .await;
        if gone.is_err() {
            let left = self.pids(version);
            bail!(
                "{} instance(s) of {version} still run {} s after its rollback (pids {left:?})",
                left.len(),
                GONE_TIMEOUT.as_secs()
            );
        }
        Ok(())
    }

    /// The `hello` instances of `version` in the app's directory.
    fn pids(&self, version: &str) -> Vec<Pid> {
        let mut found = self.scratch.pids();
        found.retain(|pid| {
            let raw = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            let argv: Vec<&[u8]> = raw.split(|b| *b == 0).collect();
            let is_hello = argv.first().is_some_and(|a0| {
                Path::new(&*String::from_utf8_lossy(a0))
                    .file_name()
                    .is_some_and(|n| n == "hello")
            });
            let of_version = argv
                .windows(2)
                .any(|w| w[0] == b"--version" && w[1] == version.as_bytes());
            is_hello && of_version
        });
        found
    }

    /// A time of the load (since the anchor) as milliseconds since the epoch.
    fn wall_ms(&self, since_anchor: Duration) -> f64 {
        self.anchor_wall_ms + since_anchor.as_secs_f64() * 1000.0
    }
}

fn config_toml(api_port: u16, proxy_port: u16) -> String {
    format!(
        r#"# Written by bench-rollback. Canary settings: the defaults, plus the two
# analysis keys a canary needs (max_error_rate and min_requests), so
# steps = [5, 25, 50, 100], step_duration = "30s", check_interval = "1s",
# abort_error_rate = 0.03 (3 x max_error_rate).
[app]
name = "bench-rollback"

[server]
listen = "127.0.0.1:{api_port}"

[service.web]
kind = "http"
driver = "process"
command = ["./releases/{{version}}/hello", "--port", "{{port}}", "--version", "{{version}}"]
replicas = 2
health = {{ path = "/health", interval = "200ms" }}

[service.web.rollout]
strategy = "canary"
analysis = {{ max_error_rate = 0.01, min_requests = 50 }}

[environment.production]
listen = "127.0.0.1:{proxy_port}"
"#
    )
}

/// Who answered a request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    Stable,
    Canary,
    /// Another version, or no answer at all.
    Other,
}

/// One request of the load. Times are since [`App::anchor`].
#[derive(Debug, Clone, Copy)]
struct Answer {
    sent: Duration,
    received: Duration,
    /// 0 when there was no answer (connection error or timeout).
    status: u16,
    from: Source,
}

impl Answer {
    /// One request of the load, its times since `anchor`, `canary` being the
    /// version deployed during it.
    fn of(a: &cutover_kit::load::Answer, anchor: Instant, canary: &str) -> Answer {
        let from = match a.version() {
            Some(v) if v == STABLE => Source::Stable,
            Some(v) if v == canary => Source::Canary,
            _ => Source::Other,
        };
        Answer {
            sent: a.sent.saturating_duration_since(anchor),
            received: a.received.saturating_duration_since(anchor),
            status: a.status().unwrap_or(0),
            from,
        }
    }

    fn ok(&self) -> bool {
        (200..300).contains(&self.status)
    }
}

/// What one run measured. Durations in seconds.
struct Run {
    n: u32,
    version: String,
    deploy_secs: f64,
    requests: usize,
    canary_answers: usize,
    /// The canary's 5xx answers.
    bad: usize,
    /// Failed requests the canary did not answer (must be 0).
    other_failures: usize,
    /// When the first bad answer arrived, since [`App::anchor`].
    first_bad_at: Option<Duration>,
    /// When the first bad answer arrived, after the deploy started.
    first_bad: Option<f64>,
    /// Last request the canary answered (sent) − first bad answer (received).
    rollback: Option<f64>,
    /// The deployment's `rollback` event − first bad answer.
    detected: Option<f64>,
    /// Why cutover rolled back (the `check` or failed `analysis` event).
    reason: String,
    /// Why this run does not count (empty: it does).
    problems: Vec<String>,
}

impl Run {
    fn measure(
        n: u32,
        version: &str,
        answers: &[Answer],
        deploy_start: Duration,
        deploy_end: Duration,
    ) -> Run {
        let canary: Vec<&Answer> = answers
            .iter()
            .filter(|a| a.from == Source::Canary)
            .collect();
        let first_bad_at = canary
            .iter()
            .filter(|a| a.status >= 500)
            .map(|a| a.received)
            .min();
        let last_sent = canary.iter().map(|a| a.sent).max();
        let mut problems = Vec::new();
        let rollback = match (first_bad_at, last_sent) {
            (Some(bad), Some(last)) => Some(last.saturating_sub(bad).as_secs_f64()),
            _ => {
                problems.push(format!("{version} answered no 5xx under load"));
                None
            }
        };
        if let Some(last) = last_sent.filter(|t| *t > deploy_end) {
            problems.push(format!(
                "{version} answered a request sent {:.0} ms after `cutover deploy` returned",
                (last - deploy_end).as_secs_f64() * 1000.0
            ));
        }
        Run {
            n,
            version: version.to_owned(),
            deploy_secs: 0.0,
            requests: answers.len(),
            canary_answers: canary.len(),
            bad: canary.iter().filter(|a| a.status >= 500).count(),
            other_failures: answers
                .iter()
                .filter(|a| a.from != Source::Canary && !a.ok())
                .count(),
            first_bad_at,
            first_bad: first_bad_at.map(|t| t.saturating_sub(deploy_start).as_secs_f64()),
            rollback,
            detected: None,
            reason: String::new(),
            problems,
        }
    }

    /// Reads the deployment's state and events (`history --json --events`).
    fn events(&mut self, app: &App, deployment: &serde_json::Value) {
        let version = self.version.as_str();
        if deployment["version"] != version {
            self.problems.push(format!(
                "the newest deployment is {}, not {version}",
                deployment["version"]
            ));
            return;
        }
        if deployment["state"] != "rolled_back" {
            self.problems.push(format!(
                "deployment of {version} is {}, not rolled_back",
                deployment["state"]
            ));
        }
        let events = deployment["events"]
            .as_array()
            .map(Vec::as_slice)
            .unwrap_or_default();
        let kind = |e: &serde_json::Value, k: &str| e["kind"].as_str() == Some(k);
        let message = |e: &serde_json::Value| e["message"].as_str().unwrap_or_default().to_owned();
        self.reason = events
            .iter()
            .find(|e| kind(e, "check") || (kind(e, "analysis") && message(e).contains("failed")))
            .or_else(|| events.iter().find(|e| kind(e, "rollback")))
            .map(message)
            .unwrap_or_default();
        let rollback_ms = events
            .iter()
            .find(|e| kind(e, "rollback"))
            .and_then(|e| e["at"].as_str())
            .and_then(|at| at.parse::<jiff::Timestamp>().ok())
            .map(|t| t.as_millisecond());
        match (rollback_ms, self.first_bad_at) {
            (Some(event), Some(bad)) => {
                // The event's time is in whole milliseconds; the first bad
                // answer can land in the same millisecond.
                let event = event as f64;
                self.detected = Some(((event - app.wall_ms(bad)) / 1000.0).max(0.0));
            }
            (None, _) => self
                .problems
                .push(format!("deployment of {version} has no rollback event")),
            (Some(_), None) => {}
        }
    }

    fn line(&self) -> String {
        let mut s = format!(
            "run {:>2} {:<4} rollback {}  detected {}  bad {:>4}  canary answers {:>5}  requests {:>6}  failed not canary {}  deploy {:.2} s",
            self.n,
            self.version,
            secs(self.rollback),
            secs(self.detected),
            self.bad,
            self.canary_answers,
            self.requests,
            self.other_failures,
            self.deploy_secs,
        );
        for p in &self.problems {
            let _ = write!(s, "\n       problem: {p}");
        }
        s
    }
}

fn secs(x: Option<f64>) -> String {
    x.map_or_else(|| "    -  ".to_owned(), |v| format!("{v:.3} s"))
}

struct Summary {
    runs: usize,
    valid: usize,
    rollback: Option<Spread>,
    detected: Option<Spread>,
    bad: Option<Spread>,
    requests: usize,
    canary_answers: usize,
    bad_total: usize,
    other_failures: usize,
    problems: usize,
    pass: bool,
    verdict: String,
}

impl Summary {
    fn new(runs: &[Run], goal_ms: u64) -> Summary {
        let valid: Vec<&Run> = runs.iter().filter(|r| r.problems.is_empty()).collect();
        let rollback = Spread::of(valid.iter().filter_map(|r| r.rollback).collect());
        let detected = Spread::of(valid.iter().filter_map(|r| r.detected).collect());
        let bad = Spread::of(valid.iter().map(|r| r.bad as f64).collect());
        let other_failures = runs.iter().map(|r| r.other_failures).sum();
        let problems = runs.iter().map(|r| r.problems.len()).sum();
        let goal = goal_ms as f64 / 1000.0;
        let mut reasons = Vec::new();
        match rollback {
            Some(r) if r.median < goal => {}
            Some(r) => reasons.push(format!(
                "median rollback time {:.3} s is not under {goal} s",
                r.median
            )),
            None => reasons.push("no valid run".to_owned()),
        }
        if other_failures > 0 {
            reasons.push(format!(
                "{other_failures} failed requests not from the canary"
            ));
        }
        if problems > 0 {
            reasons.push(format!(
                "{} of {} runs invalid",
                runs.len() - valid.len(),
                runs.len()
            ));
        }
        let pass = reasons.is_empty();
        let verdict = if pass {
            "PASS".to_owned()
        } else {
            format!("FAIL: {}", reasons.join("; "))
        };
        Summary {
            runs: runs.len(),
            valid: valid.len(),
            rollback,
            detected,
            bad,
            requests: runs.iter().map(|r| r.requests).sum(),
            canary_answers: runs.iter().map(|r| r.canary_answers).sum(),
            bad_total: runs.iter().map(|r| r.bad).sum(),
            other_failures,
            problems,
            pass,
            verdict,
        }
    }

    fn text(&self, args: &Args) -> String {
        let spread = |s: Option<Spread>, unit: &str, digits: usize| {
            s.map_or_else(
                || "-".to_owned(),
                |s| {
                    format!(
                        "min {:.digits$}{unit}, median {:.digits$}{unit}, max {:.digits$}{unit}",
                        s.min, s.median, s.max
                    )
                },
            )
        };
        let mut t = String::new();
        let _ = writeln!(
            t,
            "summary over {} valid runs of {}:",
            self.valid, self.runs
        );
        let _ = writeln!(
            t,
            "  rollback time (first bad answer -> last request sent to the canary): {}",
            spread(self.rollback, " s", 3)
        );
        let _ = writeln!(
            t,
            "  detection (first bad answer -> rollback event):                        {}",
            spread(self.detected, " s", 3)
        );
        let _ = writeln!(
            t,
            "  bad requests per run (canary 5xx):                                     {}",
            spread(self.bad, "", 0)
        );
        let _ = writeln!(
            t,
            "  requests: {} in all, {} answered by the canary ({} of them 5xx); failed, not from the canary: {}",
            self.requests, self.canary_answers, self.bad_total, self.other_failures
        );
        let _ = writeln!(
            t,
            "result: {} (goal: median rollback time under {} s with the default canary settings, 0 failed requests not from the canary)",
            self.verdict,
            goal_secs(args)
        );
        t
    }
}

fn goal_secs(args: &Args) -> String {
    format!("{}", Duration::from_millis(args.goal_ms).as_secs_f64())
}

fn markdown(
    args: &Args,
    app: &App,
    runs: &[Run],
    s: &Summary,
    machine: &str,
    elapsed: Duration,
) -> String {
    let canary_rate = f64::from(args.rate) * 0.05;
    let mut md = String::new();
    let _ = writeln!(
        md,
        "# Rollback benchmark: a canary that turns bad under load\n"
    );
    if !machine.trim().is_empty() {
        let _ = writeln!(md, "{}\n", machine.trim_end());
    }
    let _ = writeln!(
        md,
        "Settings: a real `cutover serve` with the `cutover.toml` below: one http service, 2 replicas,\n\
         health checks every 200 ms, and a canary rollout with the default `steps` ([5, 25, 50, 100]),\n\
         `step_duration` (30 s), `check_interval` (1 s) and `abort_error_rate` (3 × `max_error_rate` = 3 %);\n\
         only `max_error_rate = 0.01` and `min_requests = 50`, which a canary needs, are set. Each run\n\
         deploys a new release whose instances answer 500 to {:.0} % of requests from {} ms after they\n\
         start, so they pass their health checks and take good traffic first. Steady load all along:\n\
         {} requests/s through the proxy from {} keep-alive clients (hyper, one request in flight each,\n\
         {} s timeout), from {} ms before `cutover deploy` until {} ms after it returns (expected: exit 3,\n\
         rolled back). Between runs the canary's instances must be gone and v1 must answer.\n\
         {} runs, {:.0} s in all.\n",
        args.error_rate * 100.0,
        args.errors_after_ms,
        args.rate,
        args.clients,
        REQUEST_TIMEOUT.as_secs(),
        args.lead_ms,
        args.tail_ms,
        s.runs,
        elapsed.as_secs_f64()
    );
    let _ = writeln!(
        md,
        "- **rollback time**: from the first 5xx answer of the canary (when it was received) to the last\n  \
         request the canary answered (when it was sent): every request sent after it went to stable.\n  \
         At its 5 % step the canary takes about {canary_rate:.0} requests/s, so this is accurate to about\n  \
         {:.0} ms.\n\
         - **detection**: the deployment's `rollback` event (`cutover history --events`, whole\n  \
         milliseconds of the daemon's clock) minus the first bad answer.\n\
         - **bad requests**: 5xx answers from the canary.\n\
         - **failed, not from the canary**: non-2xx answers from any other version, and requests with\n  \
         no answer at all. Must be 0.\n",
        1000.0 / canary_rate.max(1.0)
    );
    let _ = writeln!(
        md,
        "| run | version | rollback time (s) | detection (s) | bad requests | canary answers | requests | failed, not from the canary | first bad answer, after deploy start (s) | `cutover deploy` took (s) | why cutover rolled back |"
    );
    let _ = writeln!(
        md,
        "| ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | --- |"
    );
    let opt = |x: Option<f64>| x.map_or_else(|| "-".to_owned(), |v| format!("{v:.3}"));
    for r in runs {
        let mut why = r.reason.replace('|', "\\|");
        for p in &r.problems {
            let _ = write!(why, " **invalid: {}**", p.replace('|', "\\|"));
        }
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {} |",
            r.n,
            r.version,
            opt(r.rollback),
            opt(r.detected),
            r.bad,
            r.canary_answers,
            r.requests,
            r.other_failures,
            opt(r.first_bad),
            r.deploy_secs,
            why.trim()
        );
    }
    let _ = writeln!(md, "\n## Summary\n");
    let _ = writeln!(
        md,
        "Over {} valid runs of {}:\n\n| | min | median | max |\n| --- | ---: | ---: | ---: |",
        s.valid, s.runs
    );
    for (name, spread, digits) in [
        ("rollback time (s)", s.rollback, 3),
        ("detection (s)", s.detected, 3),
        ("bad requests", s.bad, 0),
    ] {
        match spread {
            Some(x) => {
                let _ = writeln!(
                    md,
                    "| {name} | {:.digits$} | {:.digits$} | {:.digits$} |",
                    x.min, x.median, x.max
                );
            }
            None => {
                let _ = writeln!(md, "| {name} | - | - | - |");
            }
        }
    }
    let _ = writeln!(
        md,
        "\nRequests: {} in all, {} answered by the canary ({} of them 5xx); failed, not from the canary: **{}**.",
        s.requests, s.canary_answers, s.bad_total, s.other_failures
    );
    if s.problems > 0 {
        let _ = writeln!(
            md,
            "\n{} run(s) invalid (see the table); they are left out of the figures above.",
            s.runs - s.valid
        );
    }
    let _ = writeln!(
        md,
        "\nPeers: Argo Rollouts and Flagger judge a canary from metrics they query once per analysis\n\
         interval, so a bad canary keeps its share of traffic for at least one interval: **≥ 1 minute**\n\
         with a 1-minute interval (DESIGN.md §7). They need Kubernetes and a metrics server and are not\n\
         run here: that figure is quoted, not measured.\n"
    );
    let _ = writeln!(
        md,
        "Result: **{}** (goal: median rollback time under {} s with the default canary settings; 0 failed\n\
         requests not from the canary)\n",
        s.verdict,
        goal_secs(args)
    );
    let _ = writeln!(
        md,
        "<details><summary>cutover.toml</summary>\n\n```toml\n{}```\n\n</details>",
        app.scratch.config_text
    );
    md
}
