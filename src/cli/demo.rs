//! `cutover demo`: the whole product in one command. Builds the example app if
//! needed, writes a config and three releases into a scratch directory, starts
//! a daemon in this process, deploys v1 (blue-green), then v2 as a canary under
//! load (0 failed requests), then a v3 that answers 30 % of requests with 500,
//! which the canary's fast check rolls back by itself.

use std::path::{Path, PathBuf};
use std::time::Duration;

use cutover_kit::load::{Load, Tally};
use cutover_kit::ports;

use super::{deploy, output, serve};
use crate::api::client::ApiClient;
use crate::api::token;
use crate::api::wire::{DeployRequest, DeploymentState};
use crate::exit::{self, CliError};

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
    let free = ports::free_ports(2).map_err(|e| fail(e.to_string()))?;
    let [api_port, proxy_port] = free[..] else {
        return Err(fail(format!("asked for 2 free ports, got {free:?}")));
    };
    write_releases(&dir, &hello)?;
    std::fs::write(&config_path, demo_config(api_port, proxy_port))
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

    deploy_version(&client, "v1", DeploymentState::Succeeded).await?;

    println!("v2 is good; it goes out as a canary (10% → 50% → 100%) under load.\n");
    let load = start_load(proxy_addr)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    deploy_version(&client, "v2", DeploymentState::Succeeded).await?;
    let good = stop_load(load).await?;
    println!(
        "during the v2 canary: {} requests, {} failed; {} answered by v1, {} by v2\n",
        good.total(),
        good.failed(),
        good.ok("v1"),
        good.ok("v2")
    );

    println!("v3 answers 30% of its requests with 500; the canary should catch it.\n");
    let load = start_load(proxy_addr)?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    deploy_version(&client, "v3", DeploymentState::RolledBack).await?;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let bad = stop_load(load).await?;
    println!(
        "during the v3 canary: {} requests; {} errors, all from v3 while it had its 10%; \
         {} failed elsewhere; v2 answers again",
        bad.total(),
        bad.errors("v3"),
        bad.failed() - bad.errors("v3")
    );
    let failed = good.failed() + (bad.failed() - bad.errors("v3"));

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

async fn deploy_version(
    client: &ApiClient,
    version: &str,
    expect: DeploymentState,
) -> Result<(), CliError> {
    println!("$ cutover deploy {version}");
    let accepted = client
        .deploy(&DeployRequest {
            environment: None,
            version: version.to_owned(),
            requested_by: None,
            service: None,
            skip_promotion_check: false,
            reason: None,
            commit: None,
            commit_time: None,
        })
        .await?;
    let detail = deploy::follow(client, accepted.deployment_id, false).await?;
    if detail.deployment.state != expect {
        return Err(CliError::new(
            exit::DEPLOY_FAILED,
            format!(
                "demo deploy of {version} ended {:?}, not {expect:?}: {}",
                detail.deployment.state,
                detail.deployment.reason.unwrap_or_default()
            ),
        ));
    }
    match expect {
        DeploymentState::Succeeded => println!("{version} serves all traffic\n"),
        _ => println!(
            "{version} was rolled back automatically: {}\n",
            detail.deployment.reason.unwrap_or_default()
        ),
    }
    Ok(())
}

/// Keep-alive clients looping on the proxy; their answers are counted by the
/// version that gave them (the app's `x-version` header).
fn start_load(proxy: std::net::SocketAddr) -> Result<Load, CliError> {
    Load::start(&format!("http://{proxy}/"), LOAD_CLIENTS)
        .map_err(|e| fail(format!("cannot put load on the proxy: {e}")))
}

async fn stop_load(load: Load) -> Result<Tally, CliError> {
    load.stop()
        .await
        .map(|report| report.tally())
        .map_err(|e| fail(format!("the demo's load failed: {e}")))
}

fn release_script(hello: &Path, extra: &str) -> String {
    format!("#!/bin/sh\nexec {} {extra} \"$@\"\n", hello.display())
}

/// Writes `releases/<version>/hello` for the demo's three versions.
fn write_releases(dir: &Path, hello: &Path) -> Result<(), CliError> {
    use std::os::unix::fs::PermissionsExt;
    for (version, extra) in [("v1", ""), ("v2", ""), ("v3", "--error-rate 0.3")] {
        let folder = dir.join("releases").join(version);
        let path = folder.join("hello");
        std::fs::create_dir_all(&folder)
            .and_then(|()| std::fs::write(&path, release_script(hello, extra)))
            .and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)))
            .map_err(|e| fail(format!("cannot write {}: {e}", path.display())))?;
    }
    Ok(())
}

fn demo_config(api_port: u16, proxy_port: u16) -> String {
    format!(
        r#"# Written by `cutover demo`.
[app]
name = "hello"

[server]
listen = "127.0.0.1:{api_port}"

[service.web]
kind = "http"
driver = "process"
command = ["./releases/{{version}}/hello", "--port", "{{port}}", "--version", "{{version}}"]
replicas = 2
health = {{ path = "/health", interval = "200ms", timeout = "1s", healthy = 2, start_timeout = "30s" }}
drain_timeout = "10s"

[service.web.rollout]
strategy = "canary"
steps = [10, 50, 100]
step_duration = "2s"
check_interval = "500ms"
analysis = {{ max_error_rate = 0.02, max_p95 = "250ms", min_requests = 20 }}

[environment.demo]
listen = "127.0.0.1:{proxy_port}"
rollback_window = "10m"
"#
    )
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
