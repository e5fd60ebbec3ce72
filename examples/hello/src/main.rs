//! `hello`: the example app that cutover deploys in its demo, its end-to-end tests
//! and its benchmarks.
//!
//! It answers its version on `/`, has a `/health` endpoint, and can be told to
//! misbehave so that rollouts have something to detect: fail its health check
//! (from the start, or while a given file exists), answer 5xx at a given rate,
//! or add latency. `/sleep?ms=N` holds a request open
//! for N milliseconds (draining tests); `/headers` echoes the request headers it
//! received (what the proxy passed on); `/env` answers its environment, one
//! `NAME=value` a line (what cutover passed on); `/log?lines=N&bytes=B`
//! writes N lines of about B bytes each to stdout (log rotation tests). On SIGTERM or SIGINT it stops accepting,
//! finishes the requests it has, and exits 0.
//!
//! Every knob is a flag and an environment variable, so a deploy can set it per
//! release (`HELLO_ERROR_RATE=0.2`, for example). `PORT` and `CUTOVER_VERSION`,
//! which cutover's drivers set, are honoured.
//!
//! `hello --probe` is its own health check: it asks `/health` of the instance
//! on `127.0.0.1:$PORT` and exits 0 when it answers 200 (a `FROM scratch`
//! image has no curl to do that).

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use clap::Parser;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::net::TcpListener;
use tokio::signal::unix::{SignalKind, signal};

/// How long in-flight requests get to finish after SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(30);

/// The example HTTP app used by cutover's demo, tests and benchmarks.
#[derive(Parser, Debug)]
#[command(about, disable_version_flag = true)]
struct Args {
    /// Port to listen on.
    #[arg(long, env = "PORT", default_value_t = 8000)]
    port: u16,
    /// Address to bind.
    #[arg(long, env = "HELLO_HOST", default_value = "127.0.0.1")]
    host: std::net::IpAddr,
    /// Version this instance reports on `/`.
    #[arg(long, env = "CUTOVER_VERSION", default_value = "dev")]
    version: String,
    /// Answer 503 on /health.
    #[arg(long, env = "HELLO_FAIL_HEALTH")]
    fail_health: bool,
    /// Answer 503 on /health while this file exists (an instance that turns
    /// unhealthy while it serves, and recovers when the file is removed).
    #[arg(long, env = "HELLO_FAIL_HEALTH_WHEN")]
    fail_health_when: Option<std::path::PathBuf>,
    /// Fraction (0.0 to 1.0) of requests to `/` answered with 500.
    #[arg(long, env = "HELLO_ERROR_RATE", default_value_t = 0.0)]
    error_rate: f64,
    /// Apply --error-rate only from this many milliseconds after start (a
    /// release that turns bad while it already takes traffic).
    #[arg(long, env = "HELLO_ERRORS_AFTER_MS", default_value_t = 0)]
    errors_after_ms: u64,
    /// Milliseconds of latency added to every request to `/`.
    #[arg(long, env = "HELLO_LATENCY_MS", default_value_t = 0)]
    latency_ms: u64,
    /// Exit with status 1 right after start, before listening.
    #[arg(long, env = "HELLO_CRASH_ON_START")]
    crash_on_start: bool,
    /// Worker threads (0 = one per core).
    #[arg(long, env = "HELLO_THREADS", default_value_t = 0)]
    threads: usize,
    /// Do not serve: check the instance on 127.0.0.1:PORT (`GET /health`),
    /// exit 0 if it answers 200 within 2 s, 1 otherwise.
    #[arg(long)]
    probe: bool,
}

struct App {
    version: String,
    body: Bytes,
    fail_health: bool,
    fail_health_when: Option<std::path::PathBuf>,
    error_rate: f64,
    errors_from: std::time::Instant,
    latency: Duration,
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    if args.probe {
        return probe(args.port);
    }
    if args.crash_on_start {
        eprintln!("hello {}: crashing on start as asked", args.version);
        return std::process::ExitCode::FAILURE;
    }
    if !(0.0..=1.0).contains(&args.error_rate) {
        eprintln!("hello: --error-rate must be between 0.0 and 1.0");
        return std::process::ExitCode::from(2);
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if args.threads > 0 {
        runtime.worker_threads(args.threads);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("hello: cannot start runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(args)) {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("hello: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

async fn run(args: Args) -> std::io::Result<()> {
    let addr = SocketAddr::new(args.host, args.port);
    let listener = TcpListener::bind(addr).await?;
    let app = Arc::new(App {
        body: Bytes::from(format!("hello from {}\n", args.version)),
        version: args.version,
        fail_health: args.fail_health,
        fail_health_when: args.fail_health_when,
        error_rate: args.error_rate,
        errors_from: std::time::Instant::now() + Duration::from_millis(args.errors_after_ms),
        latency: Duration::from_millis(args.latency_ms),
    });
    eprintln!(
        "hello {} listening on {}",
        app.version,
        listener.local_addr()?
    );

    let mut sigterm = signal(SignalKind::terminate())?;
    let mut sigint = signal(SignalKind::interrupt())?;
    let graceful = hyper_util::server::graceful::GracefulShutdown::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let (stream, _) = match accepted {
                    Ok(conn) => conn,
                    Err(e) => {
                        eprintln!("hello: accept failed: {e}");
                        continue;
                    }
                };
                let _ = stream.set_nodelay(true);
                let app = app.clone();
                let conn = http1::Builder::new()
                    .timer(TokioTimer::new())
                    .serve_connection(
                        TokioIo::new(stream),
                        service_fn(move |req| handle(app.clone(), req)),
                    );
                let conn = graceful.watch(conn);
                tokio::spawn(async move {
                    let _ = conn.await;
                });
            }
            _ = sigterm.recv() => break,
            _ = sigint.recv() => break,
        }
    }
    drop(listener);
    eprintln!("hello {}: shutting down", app.version);
    if tokio::time::timeout(SHUTDOWN_GRACE, graceful.shutdown())
        .await
        .is_err()
    {
        eprintln!(
            "hello {}: gave up waiting for in-flight requests",
            app.version
        );
    }
    Ok(())
}

async fn handle(
    app: Arc<App>,
    req: Request<Incoming>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    let response = match req.uri().path() {
        "/health"
            if app.fail_health || app.fail_health_when.as_deref().is_some_and(|p| p.exists()) =>
        {
            text(StatusCode::SERVICE_UNAVAILABLE, "unhealthy\n")
        }
        "/health" => text(StatusCode::OK, "ok\n"),
        // The request's headers as the app received them, one `name: value` a
        // line (what cutover's proxy passes on; see docs/proxy.md).
        "/headers" => {
            let mut lines = String::new();
            for (name, value) in req.headers() {
                lines.push_str(name.as_str());
                lines.push_str(": ");
                lines.push_str(&String::from_utf8_lossy(value.as_bytes()));
                lines.push('\n');
            }
            text(StatusCode::OK, lines)
        }
        // The environment the instance got, sorted, one `NAME=value` a line.
        "/env" => {
            let mut vars: Vec<String> = std::env::vars_os()
                .map(|(k, v)| format!("{}={}", k.to_string_lossy(), v.to_string_lossy()))
                .collect();
            vars.sort();
            let mut body = vars.join("\n");
            body.push('\n');
            text(StatusCode::OK, body)
        }
        // Output for the log file: `lines` lines of about `bytes` bytes.
        "/log" => {
            use std::io::Write;
            let lines = query_u64(req.uri().query(), "lines")
                .unwrap_or(1)
                .min(1_000_000);
            let bytes = query_u64(req.uri().query(), "bytes")
                .unwrap_or(80)
                .clamp(20, 65_536);
            let filler = "x".repeat(usize::try_from(bytes).unwrap_or(80).saturating_sub(20));
            let mut out = std::io::stdout().lock();
            let mut failed = false;
            for i in 0..lines {
                failed |= writeln!(out, "log line {i:08} {filler}").is_err();
            }
            failed |= out.flush().is_err();
            if failed {
                text(
                    StatusCode::INTERNAL_SERVER_ERROR,
                    "cannot write to stdout\n",
                )
            } else {
                text(StatusCode::OK, format!("wrote {lines} lines\n"))
            }
        }
        "/sleep" => {
            let ms = query_u64(req.uri().query(), "ms").unwrap_or(1000);
            tokio::time::sleep(Duration::from_millis(ms)).await;
            text(
                StatusCode::OK,
                format!("slept {ms} ms in {}\n", app.version),
            )
        }
        _ => {
            if !app.latency.is_zero() {
                tokio::time::sleep(app.latency).await;
            }
            let failing = app.error_rate > 0.0 && std::time::Instant::now() >= app.errors_from;
            if failing && fastrand::f64() < app.error_rate {
                text(StatusCode::INTERNAL_SERVER_ERROR, "injected failure\n")
            } else {
                let mut resp = Response::new(Full::new(app.body.clone()));
                resp.headers_mut()
                    .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
                resp
            }
        }
    };
    let mut response = response;
    if let Ok(v) = HeaderValue::from_str(&app.version) {
        response.headers_mut().insert("x-version", v);
    }
    Ok(response)
}

fn text(status: StatusCode, body: impl Into<Bytes>) -> Response<Full<Bytes>> {
    let mut resp = Response::new(Full::new(body.into()));
    *resp.status_mut() = status;
    resp.headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    resp
}

/// `GET /health` on 127.0.0.1:`port` with plain blocking I/O.
fn probe(port: u16) -> std::process::ExitCode {
    use std::io::{Read, Write};
    let answer = (|| -> std::io::Result<String> {
        let addr = SocketAddr::from(([127, 0, 0, 1], port));
        let mut stream = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
        stream.set_read_timeout(Some(Duration::from_secs(2)))?;
        stream
            .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n")?;
        let mut text = String::new();
        stream.read_to_string(&mut text)?;
        Ok(text)
    })();
    match answer {
        Ok(text) if text.starts_with("HTTP/1.1 200") => std::process::ExitCode::SUCCESS,
        Ok(text) => {
            eprintln!(
                "hello --probe: {}",
                text.lines().next().unwrap_or("no answer")
            );
            std::process::ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("hello --probe: 127.0.0.1:{port}: {e}");
            std::process::ExitCode::FAILURE
        }
    }
}

fn query_u64(query: Option<&str>, key: &str) -> Option<u64> {
    query?
        .split('&')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .and_then(|(_, v)| v.parse().ok())
}
