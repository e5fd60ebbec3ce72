//! `bench-switch`: cutover's proxy with stable = [v1] and canary = [v2], flipping
//! the canary weight between 0 and 10 000 basis points `--flips` times, one flip
//! every `--interval-ms`. Driven by `bench/switch`, which keeps wrk running
//! through the proxy meanwhile and counts failed requests.
//!
//! Timeline: listen; wait `--delay-ms` (the script starts wrk meanwhile); flip
//! `--flips` times; keep serving for `--hold-ms` (or until SIGINT/SIGTERM, which
//! the script sends once wrk is done); stop gracefully and exit 0. A signal
//! before the last flip stops early and exits 1.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Parser;
use cutover_bench::{SERVICE, check_loopback, proxy, runtime, shutdown_signal};
use cutover_proxy::Weights;

/// Flip cutover's proxy between two upstreams under load.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// Address to listen on (loopback only).
    #[arg(long)]
    listen: SocketAddr,
    /// Stable upstream (answers "hello from v1").
    #[arg(long)]
    v1: SocketAddr,
    /// Canary upstream (answers "hello from v2").
    #[arg(long)]
    v2: SocketAddr,
    /// Number of weight flips (0 -> 10000 -> 0 ... basis points on canary).
    #[arg(long, default_value_t = 100)]
    flips: u32,
    /// Milliseconds between flips.
    #[arg(long, default_value_t = 100)]
    interval_ms: u64,
    /// Milliseconds to serve before the first flip.
    #[arg(long, default_value_t = 0)]
    delay_ms: u64,
    /// Milliseconds to keep serving after the last flip (a signal ends it sooner).
    #[arg(long, default_value_t = 0)]
    hold_ms: u64,
    /// Tokio worker threads.
    #[arg(long, default_value_t = 1)]
    threads: usize,
}

fn main() -> Result<()> {
    let args = Args::parse();
    check_loopback("--listen", args.listen)?;
    check_loopback("--v1", args.v1)?;
    check_loopback("--v2", args.v2)?;
    runtime(args.threads)?.block_on(run(args))
}

async fn run(args: Args) -> Result<()> {
    let proxy = proxy(&[args.v1], &[args.v2])?;
    proxy.set_weights(SERVICE, Weights::canary(0)?)?;
    let mut signal = Box::pin(shutdown_signal()?);
    let listener = tokio::net::TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("cannot listen on {}", args.listen))?;
    println!(
        "bench-switch: listening on {}; stable {} canary {}",
        args.listen, args.v1, args.v2
    );

    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let server = {
        let proxy = proxy.clone();
        tokio::spawn(async move {
            proxy
                .serve(listener, async move {
                    let _ = stop_rx.await;
                })
                .await
        })
    };

    let flipping = flip(&proxy, &args);
    let outcome = tokio::select! {
        done = flipping => done,
        () = &mut signal => Err(anyhow::anyhow!("interrupted before the last flip")),
    };
    if let Ok(stats) = &outcome {
        // Printed as soon as the last flip is done: bench/switch checks for this
        // line when wrk finishes.
        println!(
            "bench-switch: done: {} flips in {:.3} s; set_weights max {:.1} us, mean {:.1} us",
            stats.flips,
            stats.elapsed.as_secs_f64(),
            stats.max_set.as_secs_f64() * 1e6,
            stats.total_set.as_secs_f64() * 1e6 / f64::from(stats.flips.max(1)),
        );
        tokio::select! {
            () = tokio::time::sleep(Duration::from_millis(args.hold_ms)) => {}
            () = &mut signal => {}
        }
    }
    let _ = stop_tx.send(());
    server.await.context("proxy task panicked")??;
    outcome?;
    println!("bench-switch: stopped");
    Ok(())
}

struct Stats {
    flips: u32,
    elapsed: Duration,
    max_set: Duration,
    total_set: Duration,
}

async fn flip(proxy: &cutover_proxy::Proxy, args: &Args) -> Result<Stats> {
    tokio::time::sleep(Duration::from_millis(args.delay_ms)).await;
    let start = Instant::now();
    let mut ticks = tokio::time::interval(Duration::from_millis(args.interval_ms.max(1)));
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut stats = Stats {
        flips: 0,
        elapsed: Duration::ZERO,
        max_set: Duration::ZERO,
        total_set: Duration::ZERO,
    };
    for n in 1..=args.flips {
        ticks.tick().await;
        // Odd flips move all traffic to v2 (canary), even flips back to v1.
        let bp = if n % 2 == 1 { 10_000 } else { 0 };
        let t = Instant::now();
        proxy.set_weights(SERVICE, Weights::canary(bp)?)?;
        let took = t.elapsed();
        stats.max_set = stats.max_set.max(took);
        stats.total_set += took;
        stats.flips = n;
        println!("flip {n}/{}: canary {bp} bp", args.flips);
    }
    stats.elapsed = start.elapsed();
    Ok(stats)
}
