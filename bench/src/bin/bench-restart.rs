//! `bench-restart`: systemd's socket units in miniature, for `bench/upgrade`.
//! It binds the daemon's listeners (`--listen NAME=ADDR`, with cutover's
//! backlog of 4096), runs `cutover -c CONFIG serve` with them as
//! `LISTEN_FDS` / `LISTEN_FDNAMES` (and `NOTIFY_SOCKET` its own, as
//! `Type=notify` would), and on each SIGUSR1 restarts the daemon the way
//! `systemctl restart` does: SIGTERM, wait for it to exit, start a new one
//! with the same sockets. Connections made in between wait in the sockets'
//! queue. SIGTERM or SIGINT stops the daemon and exits.
//!
//! Output lines (stdout), for the script:
//! - `ready pid=PID ms=T`: the first daemon serves (T from its start);
//! - `restart N pid=PID exit_ms=A serving_ms=B ready_ms=C`: restart N done:
//!   the old daemon exited A ms after SIGTERM; the new one answered `GET
//!   /healthz` on the API socket B ms after SIGTERM (and said `READY=1`
//!   C ms after, or `-` if it did not within the wait); `old_exit=` the
//!   old daemon's exit code.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::process::Child;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Parser;
use cutover_bench::check_loopback;
use cutover_kit::activation::{NotifySocket, Sockets};
use nix::sys::signal::{SigSet, Signal, kill};
use nix::unistd::Pid;

/// Hold cutover's sockets and restart its daemon on SIGUSR1.
#[derive(Parser, Debug)]
#[command(about)]
struct Args {
    /// The cutover binary.
    #[arg(long)]
    cutover: PathBuf,
    /// The config (`cutover -c CONFIG serve`).
    #[arg(long)]
    config: PathBuf,
    /// A listener: its descriptor name and loopback address (`api=127.0.0.1:7070`,
    /// `env-production=127.0.0.1:8080`); `api` is required.
    #[arg(long = "listen", value_name = "NAME=ADDR", required = true)]
    listen: Vec<String>,
    /// Folder for the notification socket.
    #[arg(long)]
    dir: PathBuf,
    /// Give up on a daemon that does not serve within this many seconds.
    #[arg(long, default_value_t = 60)]
    timeout_secs: u64,
}

fn main() -> Result<()> {
    let args = Args::parse();
    // Signals are taken with sigwait: block them in this thread before any
    // other starts (std resets the mask in the children it spawns).
    let mut set = SigSet::empty();
    for s in [Signal::SIGUSR1, Signal::SIGTERM, Signal::SIGINT] {
        set.add(s);
    }
    set.thread_block().context("cannot block signals")?;

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("cannot start a tokio runtime")?;
    let mut sockets = Sockets::new();
    let mut api = None;
    for spec in &args.listen {
        let (name, addr) = spec
            .split_once('=')
            .with_context(|| format!("--listen {spec}: expected NAME=ADDR"))?;
        let addr: SocketAddr = addr
            .parse()
            .with_context(|| format!("--listen {spec}: not an address"))?;
        check_loopback("--listen", addr)?;
        // cutover's own bind (backlog 4096), in a runtime because tokio's
        // listen registers the socket; then handed over as a std listener.
        let listener = runtime
            .block_on(async { cutover_proxy::bind_listener(addr)?.into_std() })
            .with_context(|| format!("cannot listen on {addr}"))?;
        sockets.hold(name, listener)?;
        if name == "api" {
            api = Some(addr);
        }
    }
    drop(runtime);
    let Some(api) = api else {
        bail!("--listen api=ADDR is required (readiness is a GET /healthz on it)");
    };
    let notify = NotifySocket::bind(&args.dir)?;
    let timeout = Duration::from_secs(args.timeout_secs);

    let start = |sockets: &Sockets| -> Result<Child> {
        sockets
            .command(&args.cutover)
            .arg("-c")
            .arg(&args.config)
            .arg("serve")
            .env("NOTIFY_SOCKET", notify.path())
            .spawn()
            .with_context(|| format!("cannot start {}", args.cutover.display()))
    };

    let t0 = Instant::now();
    let mut daemon = start(&sockets)?;
    wait_serving(api, timeout).context("the first daemon did not serve")?;
    println!("ready pid={} ms={}", daemon.id(), t0.elapsed().as_millis());
    flush();

    let mut restarts = 0u32;
    loop {
        let signal = set.wait().context("sigwait")?;
        if signal != Signal::SIGUSR1 {
            stop(&mut daemon)?;
            println!("stopped after {restarts} restarts");
            flush();
            return Ok(());
        }
        restarts = restarts.saturating_add(1);
        // Messages of the old daemon are not this restart's.
        while notify.next(Duration::from_millis(1)).is_some() {}
        let t0 = Instant::now();
        let exit = stop(&mut daemon)?;
        let exit_ms = t0.elapsed().as_millis();
        daemon = start(&sockets)?;
        wait_serving(api, timeout)
            .with_context(|| format!("restart {restarts}: the new daemon did not serve"))?;
        let serving_ms = t0.elapsed().as_millis();
        let ready_ms = notify
            .wait_for("READY", "1", Duration::from_millis(500))
            .map(|(n, _)| n.at.duration_since(t0).as_millis().to_string())
            .unwrap_or_else(|_| "-".to_owned());
        println!(
            "restart {restarts} pid={} exit_ms={exit_ms} serving_ms={serving_ms} ready_ms={ready_ms} old_exit={}",
            daemon.id(),
            exit.code()
                .map_or_else(|| format!("{exit}"), |c| c.to_string())
        );
        flush();
    }
}

fn flush() {
    let _ = std::io::stdout().flush();
}

/// SIGTERM, then wait for the exit.
fn stop(daemon: &mut Child) -> Result<std::process::ExitStatus> {
    let pid = i32::try_from(daemon.id()).context("pid")?;
    let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
    daemon.wait().context("waiting for the daemon to exit")
}

/// Waits until `GET /healthz` on `api` answers 200. A connection made while
/// no daemon accepts waits in the socket's queue, so the first answer comes
/// when the daemon serves; a refused or reset one is tried again.
fn wait_serving(api: SocketAddr, timeout: Duration) -> Result<()> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if healthz(api, deadline).unwrap_or(false) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("no 200 from GET http://{api}/healthz within {timeout:?}")
}

fn healthz(api: SocketAddr, deadline: Instant) -> std::io::Result<bool> {
    let mut stream = TcpStream::connect(api)?;
    let left = deadline.saturating_duration_since(Instant::now());
    stream.set_read_timeout(Some(left.max(Duration::from_millis(1))))?;
    stream.write_all(b"GET /healthz HTTP/1.1\r\nHost: cutover\r\nConnection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    Ok(answer.starts_with(b"HTTP/1.1 200"))
}
