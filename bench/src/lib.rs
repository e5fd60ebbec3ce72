//! Shared set-up for the benchmark binaries: the in-process proxy of
//! `bench-proxy` and `bench-switch` (here), the scratch app run through the
//! real daemon by `bench-rollback` and `bench-rollback-warm` ([`scratch`]),
//! and the Markdown results helpers ([`report`]).
//!
//! These are not tests: the scripts `bench/proxy` and `bench/switch` start
//! the first two, put load on them with wrk and compare against nginx and
//! HAProxy; `bench/rollback` and `bench/rollback-warm` run the others. See
//! `bench/README.md`.

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;

use anyhow::{Context, Result, anyhow, ensure};
use cutover_proxy::{Instance, Proxy, ProxyConfig, Route, ServiceSpec, Track};

pub mod report;
pub mod scratch;

/// The one service every benchmark routes all hosts and paths to.
pub const SERVICE: &str = "app";

/// A multi-threaded tokio runtime with exactly `threads` worker threads (the
/// scripts pin the whole process to one core with `taskset`).
pub fn runtime(threads: usize) -> Result<tokio::runtime::Runtime> {
    ensure!(threads >= 1, "--threads must be at least 1");
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(threads)
        .enable_all()
        .build()
        .context("cannot start the tokio runtime")
}

/// Benchmarks run on loopback only: refuse any other address.
pub fn check_loopback(what: &str, addr: SocketAddr) -> Result<()> {
    ensure!(
        addr.ip().is_loopback(),
        "{what} {addr} is not a loopback address; the benchmarks only use 127.0.0.1"
    );
    Ok(())
}

/// A proxy with service [`SERVICE`] on every host and path, `stable` as its
/// stable track and, if not empty, `canary` as its canary track.
///
/// Installs a Prometheus recorder first, as the daemon does, so the benchmark
/// pays for the metrics the product records on every request.
pub fn proxy(stable: &[SocketAddr], canary: &[SocketAddr]) -> Result<Proxy> {
    proxy_with(ProxyConfig::default(), stable, canary)
}

/// [`proxy`] with the given settings.
pub fn proxy_with(
    config: ProxyConfig,
    stable: &[SocketAddr],
    canary: &[SocketAddr],
) -> Result<Proxy> {
    install_metrics()?;
    let proxy = Proxy::new(config);
    proxy.set_service(SERVICE, ServiceSpec::default())?;
    proxy.set_routes(vec![Route::any(SERVICE)])?;
    proxy.set_instances(SERVICE, Track::Stable, instances("stable", stable))?;
    if !canary.is_empty() {
        proxy.set_instances(SERVICE, Track::Canary, instances("canary", canary))?;
    }
    Ok(proxy)
}

fn install_metrics() -> Result<()> {
    use metrics_exporter_prometheus::{Matcher, PrometheusBuilder};
    let handle = PrometheusBuilder::new()
        .set_buckets_for_metric(
            Matcher::Full(cutover_proxy::metrics::REQUEST_DURATION_SECONDS.to_owned()),
            cutover_proxy::metrics::DURATION_BUCKETS_SECONDS,
        )?
        .install_recorder()?;
    cutover_proxy::metrics::describe();
    std::thread::spawn(move || {
        loop {
            std::thread::sleep(std::time::Duration::from_secs(5));
            handle.run_upkeep();
        }
    });
    Ok(())
}

fn instances(track: &str, addrs: &[SocketAddr]) -> Vec<Instance> {
    addrs
        .iter()
        .enumerate()
        .map(|(i, addr)| Instance::new(format!("{track}-{i}"), *addr))
        .collect()
}

/// Registers SIGINT and SIGTERM handlers now (call inside the runtime) and
/// returns a future that completes when either arrives.
pub fn shutdown_signal() -> Result<impl Future<Output = ()> + Send + 'static> {
    use tokio::signal::unix::{SignalKind, signal};
    let mut int = signal(SignalKind::interrupt()).context("cannot handle SIGINT")?;
    let mut term = signal(SignalKind::terminate()).context("cannot handle SIGTERM")?;
    Ok(async move {
        tokio::select! {
            _ = int.recv() => {}
            _ = term.recv() => {}
        }
    })
}

/// The `main` of a benchmark that judges its own results: runs `bench` on a
/// [`runtime`] of `threads` workers until it ends or SIGINT/SIGTERM arrives.
/// Exit status 0 when it returns `Ok(true)` (pass), 1 on `Ok(false)` (the
/// runs completed but did not pass), 2 when it could not run (the error goes
/// to stderr after `name: `).
pub fn judged_main(
    name: &str,
    threads: usize,
    bench: impl Future<Output = Result<bool>>,
) -> ExitCode {
    let outcome = runtime(threads).and_then(|rt| {
        rt.block_on(async {
            let signal = shutdown_signal()?;
            tokio::select! {
                done = bench => done,
                () = signal => Err(anyhow!("interrupted")),
            }
        })
    });
    match outcome {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("{name}: {e:#}");
            ExitCode::from(2)
        }
    }
}
