//! `bench-proxy`: cutover's proxy with one service on all hosts and paths and the
//! given upstream(s) as its stable track, until SIGINT or SIGTERM. With
//! `--tls-listen`, the same proxy also serves HTTPS there with the given
//! certificate (the TLS rows of `bench/proxy`). Driven by `bench/proxy`.
//!
//! `--runtime multi` (the default) serves on one tokio multi-thread runtime
//! with `--threads` workers, as the daemon does; `--runtime per-core` starts
//! `--threads` threads, each with its own current-thread runtime and its own
//! `SO_REUSEPORT` listener(s) on the same address (the kernel spreads new
//! connections over them).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::Parser;
use cutover_bench::{check_loopback, proxy_with, runtime, shutdown_signal};
use cutover_proxy::{Certificates, ListenerSpec, Proxy, ProxyConfig};

/// Run cutover's proxy in front of the given upstream(s) for benchmarking.
#[derive(Parser, Debug, Clone)]
#[command(about)]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long)]
    listen: SocketAddr,
    /// Upstream address for the stable track; repeat for several instances.
    #[arg(long, required = true)]
    upstream: Vec<SocketAddr>,
    /// Tokio worker threads (multi), or threads with a runtime each (per-core).
    #[arg(long, default_value_t = 1)]
    threads: usize,
    /// How the proxy's threads are laid out.
    #[arg(long, value_enum, default_value_t = Layout::Multi)]
    runtime: Layout,
    /// Most client connections open at once (the proxy's `max_connections`).
    #[arg(long)]
    max_connections: Option<usize>,
    /// Also serve HTTPS on this address (loopback only); needs --tls-cert and --tls-key.
    #[arg(long, requires_all = ["tls_cert", "tls_key"])]
    tls_listen: Option<SocketAddr>,
    /// PEM certificate chain for --tls-listen.
    #[arg(long)]
    tls_cert: Option<PathBuf>,
    /// PEM private key for --tls-listen.
    #[arg(long)]
    tls_key: Option<PathBuf>,
    /// Who serves HTTP/1.1: cutover's own fast path, or hyper (for A/B).
    #[arg(long, value_enum, default_value_t = Http1::Fast)]
    http1: Http1,
}

/// Who serves HTTP/1.1 (`ProxyConfig::http1_fast_path`).
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Http1 {
    /// The proxy's own fast path.
    Fast,
    /// hyper, for every connection.
    Hyper,
}

/// Runtime layout of the proxy's threads.
#[derive(clap::ValueEnum, Debug, Clone, Copy, PartialEq, Eq)]
enum Layout {
    /// One tokio multi-thread runtime (work stealing), as in `cutover serve`.
    Multi,
    /// One current-thread runtime per thread, each with its own listeners.
    PerCore,
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
    let mut config = ProxyConfig {
        http1_fast_path: args.http1 == Http1::Fast,
        ..ProxyConfig::default()
    };
    if let Some(max) = args.max_connections {
        config.max_connections = max;
    }
    match args.runtime {
        Layout::Multi => runtime(args.threads)?.block_on(async {
            let proxy = proxy_with(config, &args.upstream, &[])?;
            let stop = stop_on_signal()?;
            // Serve on worker threads, not on the thread that called block_on.
            let served = tokio::spawn(serve(proxy, args, stop));
            served.await.context("proxy task panicked")?
        }),
        Layout::PerCore => per_core(config, args),
    }
}

/// A receiver that turns true at SIGINT or SIGTERM.
fn stop_on_signal() -> Result<tokio::sync::watch::Receiver<bool>> {
    let shutdown = shutdown_signal()?;
    let (stop_tx, stop_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(async move {
        shutdown.await;
        let _ = stop_tx.send(true);
    });
    Ok(stop_rx)
}

/// `--threads` threads, each serving its own listeners on a current-thread runtime.
fn per_core(config: ProxyConfig, args: Args) -> Result<()> {
    anyhow::ensure!(args.threads >= 1, "--threads must be at least 1");
    let main = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")?;
    let (proxy, stop) = main.block_on(async {
        let proxy = proxy_with(config, &args.upstream, &[])?;
        anyhow::Ok((proxy, stop_on_signal()?))
    })?;
    let threads: Vec<_> = (0..args.threads)
        .map(|i| {
            let (proxy, args, stop) = (proxy.clone(), args.clone(), stop.clone());
            std::thread::Builder::new()
                .name(format!("proxy-{i}"))
                .spawn(move || -> Result<()> {
                    tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                        .context("cannot start the tokio runtime")?
                        .block_on(serve(proxy, args, stop))
                })
                .context("cannot start a proxy thread")
        })
        .collect::<Result<_>>()?;
    // The main runtime keeps running the signal handler until every thread ends.
    main.block_on(async {
        let mut stop = stop.clone();
        let _ = stop.wait_for(|s| *s).await;
    });
    for t in threads {
        t.join()
            .map_err(|_| anyhow::anyhow!("a proxy thread panicked"))??;
    }
    Ok(())
}

/// Serves the listeners of `args` until `stop` turns true.
async fn serve(proxy: Proxy, args: Args, stop: tokio::sync::watch::Receiver<bool>) -> Result<()> {
    let stopped = move || {
        let mut rx = stop.clone();
        async move {
            let _ = rx.wait_for(|stop| *stop).await;
        }
    };
    let reuseport = args.runtime == Layout::PerCore;
    let mut servers = tokio::task::JoinSet::new();
    let listener = bind(args.listen, reuseport)?;
    if let (Some(addr), Some(cert), Some(key)) = (args.tls_listen, &args.tls_cert, &args.tls_key) {
        let certificates = Certificates::new();
        let loaded = cutover_proxy::certs::load_pem_files(cert, key)?;
        certificates.set("bench", Arc::new(loaded))?;
        let tls_listener = bind(addr, reuseport)?;
        let spec = ListenerSpec::tls(certificates.server_config());
        let (proxy, stop) = (proxy.clone(), stopped());
        servers.spawn(async move { proxy.serve_with(tls_listener, spec, stop).await });
        eprintln!("bench-proxy: HTTPS on {addr}");
    }
    eprintln!(
        "bench-proxy: listening on {} -> {:?} ({} thread(s), {:?} runtime)",
        args.listen, args.upstream, args.threads, args.runtime
    );
    let stop = stopped();
    servers.spawn(async move { proxy.serve(listener, stop).await });
    while let Some(served) = servers.join_next().await {
        served.context("proxy task panicked")??;
    }
    eprintln!("bench-proxy: stopped");
    Ok(())
}

/// The proxy's own listener (`SO_REUSEADDR`, its backlog), with
/// `SO_REUSEPORT` when several runtimes listen on the same address.
fn bind(addr: SocketAddr, reuseport: bool) -> Result<tokio::net::TcpListener> {
    let bound = if reuseport {
        cutover_proxy::bind_listener_reuse_port(addr)
    } else {
        cutover_proxy::bind_listener(addr)
    };
    bound.with_context(|| format!("cannot listen on {addr}"))
}
