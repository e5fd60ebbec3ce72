//! The scratch app that `bench-rollback` and `bench-rollback-warm` drive
//! through the real daemon: a directory (given, or a temporary one) with a
//! `cutover.toml` and `releases/<version>/hello` wrapper scripts around the
//! example app, the `cutover serve` process started in it, and the CLI run
//! against it. Dropping a [`Scratch`] stops the daemon and kills whatever
//! still runs in the directory.

use std::io::Write as _;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Output, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, anyhow, bail, ensure};
use cutover_kit::ports;
use cutover_kit::wait::Wait;
use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

/// How long `cutover serve` may take to listen on its API port.
const SERVE_TIMEOUT: Duration = Duration::from_secs(20);
/// How long the daemon may take to stop after SIGTERM before it is killed.
const STOP_TIMEOUT: Duration = Duration::from_secs(20);

/// What [`Scratch::new`] needs from the benchmark's command line.
pub struct Setup<'a> {
    /// The benchmark's name (`bench-rollback`): in messages and in the
    /// temporary directory's name.
    pub name: &'static str,
    /// `--cutover` [default: `cutover` next to this program].
    pub cutover: Option<&'a Path>,
    /// `--hello` [default: `hello` next to this program].
    pub hello: Option<&'a Path>,
    /// `--dir` (created; must be empty) [default: a temporary directory,
    /// removed on drop].
    pub dir: Option<&'a Path>,
}

/// The scratch app and its daemon.
pub struct Scratch {
    name: &'static str,
    /// The app's directory (absolute).
    pub dir: PathBuf,
    /// `cutover.toml` in it.
    pub config: PathBuf,
    /// What `cutover.toml` says.
    pub config_text: String,
    /// The cutover binary (absolute).
    pub cutover: PathBuf,
    /// The example app's binary (absolute).
    pub hello: PathBuf,
    /// The daemon's API port on 127.0.0.1.
    pub api_port: u16,
    /// The production environment's proxy port on 127.0.0.1.
    pub proxy_port: u16,
    daemon: Option<std::process::Child>,
    // Last, so that it is removed after `drop` has stopped everything.
    _scratch: Option<tempfile::TempDir>,
}

impl Scratch {
    /// Finds the binaries, makes the directory, picks two free ports and
    /// writes `cutover.toml` as `config_toml(api_port, proxy_port)` says.
    pub fn new(setup: &Setup<'_>, config_toml: impl FnOnce(u16, u16) -> String) -> Result<Scratch> {
        let exe_dir = std::env::current_exe()
            .context("cannot find this program's path")?
            .parent()
            .map(Path::to_path_buf)
            .context("this program's path has no directory")?;
        let resolve = |given: Option<&Path>, name: &str| -> Result<PathBuf> {
            let p = given.map_or_else(|| exe_dir.join(name), Path::to_path_buf);
            ensure!(
                p.is_file(),
                "no {name} binary at {} (build it with `cargo build --release -p cutover -p hello`)",
                p.display()
            );
            // Absolute: both run with the app's directory as their working directory.
            p.canonicalize()
                .with_context(|| format!("cannot resolve {}", p.display()))
        };
        let cutover = resolve(setup.cutover, "cutover")?;
        let hello = resolve(setup.hello, "hello")?;
        let (dir, scratch) = match setup.dir {
            Some(d) => {
                std::fs::create_dir_all(d)
                    .with_context(|| format!("cannot create {}", d.display()))?;
                let empty = std::fs::read_dir(d)
                    .with_context(|| format!("cannot read {}", d.display()))?
                    .next()
                    .is_none();
                ensure!(empty, "--dir {} is not empty", d.display());
                (d.to_path_buf(), None)
            }
            None => {
                let t = tempfile::Builder::new()
                    .prefix(&format!("cutover-{}-", setup.name))
                    .tempdir()
                    .context("cannot create a temporary directory")?;
                (t.path().to_path_buf(), Some(t))
            }
        };
        let dir = dir
            .canonicalize()
            .with_context(|| format!("cannot resolve {}", dir.display()))?;
        let free = ports::free_ports(2)?;
        let [api_port, proxy_port] = free[..] else {
            bail!("asked for 2 free ports, got {free:?}");
        };
        let config_text = config_toml(api_port, proxy_port);
        let config = dir.join("cutover.toml");
        write_file(&config, &config_text)?;
        Ok(Scratch {
            name: setup.name,
            dir,
            config,
            config_text,
            cutover,
            hello,
            api_port,
            proxy_port,
            daemon: None,
            _scratch: scratch,
        })
    }

    /// `releases/<version>/hello`: a script running the example app with
    /// `flags` (empty, or ending in a space) before the daemon's arguments.
    pub fn release(&self, version: &str, flags: &str) -> Result<()> {
        let hello = self.hello.display().to_string();
        ensure!(
            !hello.contains('\''),
            "the hello path {hello} contains a single quote"
        );
        let dir = self.dir.join("releases").join(version);
        std::fs::create_dir_all(&dir)
            .with_context(|| format!("cannot create {}", dir.display()))?;
        let path = dir.join("hello");
        write_file(&path, &format!("#!/bin/sh\nexec '{hello}' {flags}\"$@\"\n"))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
            .with_context(|| format!("cannot make {} executable", path.display()))
    }

    /// Starts `cutover serve` and waits until its API accepts connections.
    pub async fn serve(&mut self) -> Result<()> {
        let log = std::fs::File::create(self.dir.join("daemon.log"))
            .context("cannot create daemon.log")?;
        let child = std::process::Command::new(&self.cutover)
            .arg("-c")
            .arg(&self.config)
            .arg("serve")
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env_remove("CUTOVER_TOKEN")
            .stdin(Stdio::null())
            .stdout(log.try_clone().context("cannot share daemon.log")?)
            .stderr(log)
            .spawn()
            .with_context(|| format!("cannot start {} serve", self.cutover.display()))?;
        let daemon = self.daemon.insert(child);
        let api_port = self.api_port;
        // Some(Ok): listening; Some(Err): the daemon exited first.
        let up = Wait::up_to(SERVE_TIMEOUT)
            .until_some_async(|| {
                let exited = daemon.try_wait();
                async move {
                    if tokio::net::TcpStream::connect(("127.0.0.1", api_port))
                        .await
                        .is_ok()
                    {
                        return Some(Ok(()));
                    }
                    match exited {
                        Ok(None) => None,
                        Ok(Some(status)) => Some(Err(anyhow!("the daemon exited ({status})"))),
                        Err(e) => Some(Err(anyhow!("cannot wait for the daemon: {e}"))),
                    }
                }
            })
            .await;
        match up {
            Ok(Ok(())) => Ok(()),
            Ok(Err(e)) => Err(e.context(format!(
                "before listening:\n{}",
                text(&self.daemon_log_tail())
            ))),
            Err(_) => bail!(
                "the daemon did not listen on 127.0.0.1:{} within {} s:\n{}",
                self.api_port,
                SERVE_TIMEOUT.as_secs(),
                text(&self.daemon_log_tail())
            ),
        }
    }

    /// Runs the CLI against this app; with `within`, gives up after that long.
    pub async fn cli(&self, args: &[&str], within: Option<Duration>) -> Result<Output> {
        let run = tokio::process::Command::new(&self.cutover)
            .arg("-c")
            .arg(&self.config)
            .args(args)
            .current_dir(&self.dir)
            .env("NO_COLOR", "1")
            .env_remove("CUTOVER_TOKEN")
            .stdin(Stdio::null())
            .kill_on_drop(true)
            .output();
        let out = match within {
            None => run.await,
            Some(limit) => tokio::time::timeout(limit, run).await.map_err(|_| {
                anyhow!(
                    "`cutover {}` did not finish within {} s",
                    args.join(" "),
                    limit.as_secs()
                )
            })?,
        };
        out.with_context(|| format!("cannot run cutover {}", args.join(" ")))
    }

    /// `cutover history --json --limit 1 --events`: the list (the newest
    /// deployment with its events, if any).
    pub async fn history(&self, within: Option<Duration>) -> Result<serde_json::Value> {
        let out = self
            .cli(&["history", "--json", "--limit", "1", "--events"], within)
            .await?;
        ensure!(
            out.status.success(),
            "`cutover history` failed: {}",
            text(&out.stderr)
        );
        serde_json::from_slice(&out.stdout).context("`cutover history --json` is not JSON")
    }

    /// `http://127.0.0.1:PROXY_PORT/`.
    pub fn proxy_url(&self) -> String {
        format!("http://127.0.0.1:{}/", self.proxy_port)
    }

    /// The daemon's process id, once [`Scratch::serve`] has started it.
    pub fn daemon_id(&self) -> Option<u32> {
        self.daemon.as_ref().map(std::process::Child::id)
    }

    /// Live processes whose working directory is the app's directory: the
    /// daemon and every instance.
    pub fn pids(&self) -> Vec<Pid> {
        app_pids(&self.dir)
    }

    /// The last 30 lines of `daemon.log`.
    pub fn daemon_log_tail(&self) -> Vec<u8> {
        let log = std::fs::read(self.dir.join("daemon.log")).unwrap_or_default();
        let lines: Vec<&[u8]> = log.split(|b| *b == b'\n').collect();
        lines[lines.len().saturating_sub(30)..].join(&b'\n')
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        if let Some(mut daemon) = self.daemon.take() {
            // SIGTERM: the daemon drains and stops its instances.
            if let Ok(pid) = i32::try_from(daemon.id()) {
                let _ = kill(Pid::from_raw(pid), Signal::SIGTERM);
            }
            let deadline = Instant::now() + STOP_TIMEOUT;
            loop {
                match daemon.try_wait() {
                    Ok(Some(_)) | Err(_) => break,
                    Ok(None) if Instant::now() >= deadline => {
                        eprintln!(
                            "{}: the daemon did not stop within {} s; killing it",
                            self.name,
                            STOP_TIMEOUT.as_secs()
                        );
                        let _ = daemon.kill();
                        let _ = daemon.wait();
                        break;
                    }
                    Ok(None) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        }
        // Whatever survived: no orphans.
        for pid in self.pids() {
            let _ = kill(pid, Signal::SIGKILL);
        }
    }
}

/// Live (not zombie) processes whose working directory is `dir`.
fn app_pids(dir: &Path) -> Vec<Pid> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|entry| {
            let pid = entry.file_name().to_string_lossy().parse::<i32>().ok()?;
            let cwd = std::fs::read_link(entry.path().join("cwd")).ok()?;
            let stat = std::fs::read_to_string(entry.path().join("stat")).unwrap_or_default();
            (cwd == dir && !stat.contains(") Z ")).then_some(Pid::from_raw(pid))
        })
        .collect()
}

/// Creates or truncates `path` and writes `contents` to it.
pub fn write_file(path: &Path, contents: &str) -> Result<()> {
    let mut f =
        std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
    f.write_all(contents.as_bytes())
        .with_context(|| format!("cannot write {}", path.display()))
}

/// A process's output as text (invalid UTF-8 replaced).
pub fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}
