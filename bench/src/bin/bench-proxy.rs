//! `bench-proxy`: cutover's proxy with one service on all hosts and paths and the
//! given upstream(s) as its stable track, until SIGINT or SIGTERM. Driven by
//! `bench/proxy`.

use std::net::SocketAddr;

use anyhow::{Context, Result};
use clap::Parser;
use cutover_bench::{check_loopback, proxy, runtime, shutdown_signal};

/// Run cutover's proxy in front of the given upstream(s) for benchmarking.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long)]
    listen: SocketAddr,
    /// Upstream address for the stable track; repeat for several instances.
    #[arg(long, required = true)]
    upstream: Vec<SocketAddr>,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    check_loopback("--listen", args.listen)?;
    for up in &args.upstream {
        check_loopback("--upstream", *up)?;
    }
    runtime(args.threads)?.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let proxy = proxy(&args.upstream, &[])?;
    let shutdown = shutdown_signal()?;
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    eprintln!(
        "bench-proxy: listening on {} -> {:?} ({} worker thread(s))",
        args.listen, args.upstream, args.threads
    );
    // Serve on a worker thread, not on the thread that called block_on.
    let server = tokio::spawn(async move { proxy.serve(listener, shutdown).await });
    server.await.context("proxy task panicked")??;
    eprintln!("bench-proxy: stopped");
    Ok(())
}
