//! `cutover demo`: the whole product in one command. Builds the example app if
//! needed, writes a config into a scratch directory, starts a daemon in this
//! process, deploys v1, then deploys v2 while a client hammers the proxy, and
//! reports how many requests failed during the switch (the answer should be 0).

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

use super::{deploy, output, serve};
use crate::api::client::ApiClient;
use crate::api::{DeployRequest, token};
use crate::exit::{self, CliError};
use crate::store::DeploymentState;

/// Concurrent keep-alive clients of the demo's load.
const LOAD_CLIENTS: usize = 8;

/// `cutover demo`.
pub async fn run(dir: Option<PathBuf>, no_wait: bool) -> Result<(), CliError> {
    let hello = find_or_build_hello()?;
    let dir = match dir {
        Some(d) => {
            std::fs::create_dir_all(&d)
                .map_err(|e| fail(format!("cannot create {}: {e}", d.display())))?;
            d
        }
        None => tempfile::Builder::new()
            .prefix("cutover-demo-")
            .tempdir()
            .map_err(|e| fail(format!("cannot make a scratch directory: {e}")))?
            .keep(),
    };
    let dir = dir.canonicalize().map_err(|e| fail(e.to_string()))?;
    let config_path = dir.join("cutover.toml");
    let (api_port, proxy_port) = (free_port()?, free_port()?);
    std::fs::write(&config_path, demo_config(&hello, api_port, proxy_port))
        .map_err(|e| fail(format!("cannot write {}: {e}", config_path.display())))?;
    println!("demo directory: {}", dir.display());
    println!("config:         {}", config_path.display());

    let config = output::load_config(&config_path)?;
    let running = serve::start(config).await?;
    let proxy_addr = running
        .proxies
        .first()
        .map(|(_, a)| *a)
        .ok_or_else(|| fail("the demo config has no environment".into()))?;
    let token = token::for_client(&token::token_path(&dir))?;
    let client = ApiClient::new(running.api_addr, token);
    println!("daemon API:     http://{}", running.api_addr);
    println!("proxy:          http://{proxy_addr}\n");

    deploy_version(&client, "v1").await?;

    let load = Load::start(format!("http://{proxy_addr}/"));
    tokio::time::sleep(Duration::from_millis(500)).await;
    deploy_version(&client, "v2").await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (ok, failed, v1, v2) = load.stop().await;
    println!(
        "\nunder load during the switch: {} requests, {failed} failed; {v1} answered by v1, {v2} by v2",
        ok + failed
    );

    println!("\nlook around (another terminal):");
    println!("  curl http://{proxy_addr}/");
    println!("  cutover -c {} status", config_path.display());
    println!("  cutover -c {} history --events", config_path.display());
    println!("  cutover -c {} rollback", config_path.display());
    println!("  logs in {}", dir.join(".cutover/logs").display());
    if !no_wait {
        println!("\nserving until Ctrl-C");
        let _ = tokio::signal::ctrl_c().await;
    }
    running.shutdown().await;
    if failed > 0 {
        return Err(CliError::new(
            exit::FAILURE,
            format!("{failed} requests failed during the demo"),
        ));
    }
    Ok(())
}

async fn deploy_version(client: &ApiClient, version: &str) -> Result<(), CliError> {
    println!("$ cutover deploy {version}");
    let accepted = client
        .deploy(&DeployRequest {
            environment: None,
            version: version.to_owned(),
            requested_by: output::requested_by(),
            service: None,
        })
        .await?;
    let detail = deploy::follow(client, accepted.deployment_id, false).await?;
    if detail.deployment.state != DeploymentState::Succeeded {
        return Err(CliError::new(
            exit::DEPLOY_FAILED,
            format!(
                "demo deploy of {version} failed: {}",
                detail.deployment.reason.unwrap_or_default()
            ),
        ));
    }
    println!("{version} serves all traffic\n");
    Ok(())
}

/// Keep-alive clients looping on the proxy, counting answers.
struct Load {
    stop: Arc<AtomicBool>,
    ok: Arc<AtomicU64>,
    failed: Arc<AtomicU64>,
    v1: Arc<AtomicU64>,
    v2: Arc<AtomicU64>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Load {
    fn start(url: String) -> Load {
        let load = Load {
            stop: Arc::default(),
            ok: Arc::default(),
            failed: Arc::default(),
            v1: Arc::default(),
            v2: Arc::default(),
            tasks: Vec::new(),
        };
        let mut tasks = Vec::new();
        for _ in 0..LOAD_CLIENTS {
            let (stop, ok, failed, v1, v2) = (
                load.stop.clone(),
                load.ok.clone(),
                load.failed.clone(),
                load.v1.clone(),
                load.v2.clone(),
            );
            let url = url.clone();
            tasks.push(tokio::spawn(async move {
                let http: Client<_, Empty<Bytes>> =
                    Client::builder(TokioExecutor::new()).build_http();
                let Ok(uri) = url.parse::<hyper::Uri>() else {
                    return;
                };
                while !stop.load(Ordering::Relaxed) {
                    let answer = match http.get(uri.clone()).await {
                        Ok(resp) if resp.status().is_success() => {
                            resp.into_body().collect().await.ok()
                        }
                        _ => None,
                    };
                    match answer {
                        Some(body) => {
                            ok.fetch_add(1, Ordering::Relaxed);
                            let text = String::from_utf8_lossy(&body.to_bytes()).into_owned();
                            if text.contains("v1") {
                                v1.fetch_add(1, Ordering::Relaxed);
                            } else if text.contains("v2") {
                                v2.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        None => {
                            failed.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                }
            }));
        }
        Load { tasks, ..load }
    }

    async fn stop(self) -> (u64, u64, u64, u64) {
        self.stop.store(true, Ordering::Relaxed);
        for t in self.tasks {
            let _ = t.await;
        }
        (
            self.ok.load(Ordering::Relaxed),
            self.failed.load(Ordering::Relaxed),
            self.v1.load(Ordering::Relaxed),
            self.v2.load(Ordering::Relaxed),
        )
    }
}

fn demo_config(hello: &Path, api_port: u16, proxy_port: u16) -> String {
    format!(
        r#"# Written by `cutover demo`.
[app]
name = "hello"

[server]
listen = "127.0.0.1:{api_port}"

[service.web]
kind = "http"
driver = "process"
command = ["{hello}", "--port", "{{port}}", "--version", "{{version}}"]
replicas = 2
health = {{ path = "/health", interval = "200ms", timeout = "1s", healthy = 2, start_timeout = "30s" }}
drain_timeout = "10s"

[environment.demo]
listen = "127.0.0.1:{proxy_port}"
rollback_window = "10m"
"#,
        hello = hello.display()
    )
}

fn free_port() -> Result<u16, CliError> {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .map_err(|e| fail(format!("no free port: {e}")))
}

/// The example app: next to this binary, or built with cargo from the source tree.
fn find_or_build_hello() -> Result<PathBuf, CliError> {
    let exe = std::env::current_exe().map_err(|e| fail(e.to_string()))?;
    let exe_dir = exe
        .parent()
        .ok_or_else(|| fail("cannot tell where cutover runs from".into()))?
        .to_owned();
    let candidate = exe_dir.join("hello");
    if candidate.is_file() {
        return Ok(candidate);
    }
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("Cargo.toml");
    if !manifest.is_file() {
        return Err(fail(format!(
            "the example app is not next to cutover ({}) and the source tree is not here to build it",
            candidate.display()
        )));
    }
    let release = exe_dir.file_name().is_some_and(|n| n == "release");
    let target_dir = exe_dir.parent().unwrap_or(&exe_dir).to_owned();
    println!("building the example app (cargo build -p hello)…");
    let mut cmd =
        std::process::Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.arg("build")
        .arg("-p")
        .arg("hello")
        .arg("--manifest-path")
        .arg(&manifest)
        .env("CARGO_TARGET_DIR", &target_dir);
    if release {
        cmd.arg("--release");
    }
    let status = cmd
        .status()
        .map_err(|e| fail(format!("cannot run cargo to build the example app: {e}")))?;
    if !status.success() || !candidate.is_file() {
        return Err(fail("building the example app failed".into()));
    }
    Ok(candidate)
}

fn fail(message: String) -> CliError {
    CliError::new(exit::FAILURE, message)
}
