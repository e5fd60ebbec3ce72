//! `bench-proxy`: cutover's proxy with one service on all hosts and paths and the
//! given upstream(s) as its stable track, until SIGINT or SIGTERM. With
//! `--tls-listen`, the same proxy also serves HTTPS there with the given
//! certificate (the TLS rows of `bench/proxy`). Driven by `bench/proxy`.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use cutover_bench::{check_loopback, proxy, runtime, shutdown_signal};
use cutover_proxy::{Certificates, ListenerSpec};

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
    /// Also serve HTTPS on this address (loopback only); needs --tls-cert and --tls-key.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for --tls-listen.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-listen.
    #[arg(long)]
    tls_key: Option<PathBuf>,
}

fn main() -> Result<()> {
    let args = Args::parse();
    check_loopback("--listen", args.listen)?;
    if let Some(tls) = args.tls_listen {
        check_loopback("--tls-listen", tls)?;
    }
    for up in &args.upstream {
        check_loopback("--upstream", *up)?;
    }
    runtime(args.threads)?.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let proxy = proxy(&args.upstream, &[])?;
    let shutdown = shutdown_signal()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    let stopped = move || {
        let mut rx = stop_rx.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };

    let mut servers = tokio::task::JoinSet::new();
    let listener = bind(args.listen).await?;
    if let (Some(addr), Some(cert), Some(key)) = (args.tls_listen, &args.tls_cert, &args.tls_key) {
        let certificates = Certificates::new();
        let loaded = cutover_proxy::certs::load_pem_files(cert, key)?;
        certificates.set("bench", Arc::new(loaded))?;
        let tls_listener = bind(addr).await?;
        let spec = ListenerSpec::tls(certificates.server_config());
        let (proxy, stop) = (proxy.clone(), stopped());
        servers.spawn(async move { proxy.serve_with(tls_listener, spec, stop).await });
        eprintln!("bench-proxy: HTTPS on {addr}");
    }
    eprintln!(
        "bench-proxy: listening on {} -> {:?} ({} worker thread(s))",
        args.listen, args.upstream, args.threads
    );
    // Serve on worker threads, not on the thread that called block_on.
    let stop = stopped();
    servers.spawn(async move { proxy.serve(listener, stop).await });
    while let Some(served) = servers.join_next().await {
        served.context("proxy task panicked")??;
    }
    eprintln!("bench-proxy: stopped");
    Ok(())
}

async fn bind(addr: SocketAddr) -> Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr)
        .await
        .with_context(|| format!("cannot listen on {addr}"))
}
