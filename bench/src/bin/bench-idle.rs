//! `bench-idle`: many idle keep-alive client connections, for the "Idle
//! connections" section of `bench/proxy`. It opens `--connections` TCP
//! connections to `--target`, sends `GET /` on each and reads the whole
//! answer (status line, headers, a `Content-Length` body), so every
//! connection has been through the proxy and the upstream once; then it keeps
//! them all open and silent while the script reads the proxy's memory.
//!
//! Output lines (stdout), for the script:
//! - `ready N ms=T`: all N connections are established and answered (T ms
//!   after the start);
//! - `done open=N closed=K`: on SIGTERM/SIGINT or after `--hold-secs`: how
//!   many connections were still open, and how many the peer had closed
//!   meanwhile (or sent unexpected bytes on).
//!
//! Any connection that cannot be opened or answered 200 within
//! `--timeout-secs` is an error: it exits 1 with what went wrong.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use clap::Parser;
use cutover_bench::{check_loopback, shutdown_signal};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::Semaphore;

/// Hold many idle keep-alive connections to a proxy, each used for one request.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Address to connect to (loopback only).
    #[arg(long)]
    target: SocketAddr,
    /// Connections to open and hold.
    #[arg(long, default_value_t = 10_000)]
    connections: usize,
    /// Hold them this long after `ready`, unless SIGTERM/SIGINT comes first.
    #[arg(long, default_value_t = 60)]
    hold_secs: u64,
    /// Connections being opened (connect + request + answer) at once.
    #[arg(long, default_value_t = 256)]
    concurrency: usize,
    /// Deadline for each connection's connect, request and whole answer.
    #[arg(long, default_value_t = 30)]
    timeout_secs: u64,
}

/// The request every connection sends once.
const REQUEST: &[u8] = b"GET / HTTP/1.1\r\nHost: localhost\r\n\r\n";
/// The most a response head may take.
const MAX_HEAD: usize = 64 * 1024;

fn main() -> Result<()> {
    let args = Args::parse();
    check_loopback("--target", args.target)?;
    ensure!(args.connections >= 1, "--connections must be at least 1");
    ensure!(args.concurrency >= 1, "--concurrency must be at least 1");
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?
        .block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let shutdown = shutdown_signal()?;
    let started = Instant::now();
    let timeout = Duration::from_secs(args.timeout_secs);
    let gate = Arc::new(Semaphore::new(args.concurrency));
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..args.connections {
        let permit = Arc::clone(&gate)
            .acquire_owned()
            .await
            .context("the connection gate closed")?;
        let target = args.target;
        tasks.spawn(async move {
            let opened = tokio::time::timeout(timeout, open(target)).await;
            drop(permit);
            let stream = opened
                .map_err(|_| anyhow!("no complete answer within {timeout:?}"))
                .and_then(|r| r)
                .with_context(|| format!("connection {i} to {target}"))?;
            Ok::<_, anyhow::Error>((i, stream))
        });
    }
    let mut streams = Vec::with_capacity(args.connections);
    while let Some(done) = tasks.join_next().await {
        let (_, stream) = done.context("a connection task panicked")??;
        streams.push(stream);
    }
    println!(
        "ready {} ms={}",
        streams.len(),
        started.elapsed().as_millis()
    );

    tokio::select! {
        () = shutdown => {}
        () = tokio::time::sleep(Duration::from_secs(args.hold_secs)) => {}
    }

    let mut closed = 0usize;
    let mut byte = [0u8; 1];
    for stream in &streams {
        match stream.try_read(&mut byte) {
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            // Ok(0): the peer closed it; Ok(_): bytes nobody asked for; Err: reset.
            _ => closed += 1,
        }
    }
    println!("done open={} closed={closed}", streams.len() - closed);
    Ok(())
}

/// Connects, sends [`REQUEST`] and reads the whole answer, which must be a
/// 200 with a `Content-Length` body; returns the connection, still open.
async fn open(target: SocketAddr) -> Result<TcpStream> {
    let mut stream = TcpStream::connect(target).await.context("cannot connect")?;
    stream
        .write_all(REQUEST)
        .await
        .context("cannot send the request")?;
    let mut buf = Vec::with_capacity(1024);
    let head_end = loop {
        if let Some(at) = find(&buf, b"\r\n\r\n") {
            break at + 4;
        }
        ensure!(
            buf.len() <= MAX_HEAD,
            "response head longer than {MAX_HEAD} bytes"
        );
        let mut chunk = [0u8; 4096];
        let n = stream
            .read(&mut chunk)
            .await
            .context("cannot read the response")?;
        if n == 0 {
            bail!(
                "closed before a whole response head ({} bytes read)",
                buf.len()
            );
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = std::str::from_utf8(&buf[..head_end]).context("response head is not UTF-8")?;
    let status = head.split(' ').nth(1).unwrap_or("");
    ensure!(
        status == "200",
        "answered {:?}, not 200",
        head.lines().next().unwrap_or("")
    );
    let length = content_length(head)?;
    let mut have = buf.len() - head_end;
    ensure!(
        have <= length,
        "{have} body bytes, more than Content-Length {length}"
    );
    let mut chunk = [0u8; 4096];
    while have < length {
        let n = stream
            .read(&mut chunk)
            .await
            .context("cannot read the response body")?;
        if n == 0 {
            bail!("closed after {have} of {length} body bytes");
        }
        have += n;
    }
    ensure!(
        have == length,
        "{have} body bytes, more than Content-Length {length}"
    );
    Ok(stream)
}

fn content_length(head: &str) -> Result<usize> {
    for line in head.split("\r\n").skip(1) {
        if let Some((name, value)) = line.split_once(':')
            && name.trim().eq_ignore_ascii_case("content-length")
        {
            return value
                .trim()
                .parse()
                .with_context(|| format!("bad Content-Length {:?}", value.trim()));
        }
    }
    bail!("the response has no Content-Length (chunked answers are not supported)")
}

fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}
