//! Tests of the docker driver against the real Docker Engine of this machine,
//! with the example app's test images (built by `scripts/test-images`, which
//! `scripts/test` runs; a test fails, saying so, when one is missing). Each
//! test labels its containers with its own app name and removes every one of
//! them when it ends, pass or fail.

use std::collections::BTreeMap;
use std::future::Future;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use super::*;
use crate::config::DockerConfig;
use crate::drivers::{
    DriverError, Drivers, Handle, InstanceSpec, PreflightFindings, ServiceToCheck, StopOutcome,
};

/// Upper bound for any one test.
const BOUND: Duration = Duration::from_secs(60);

async fn bounded<F: Future>(body: F) -> F::Output {
    tokio::time::timeout(BOUND, body)
        .await
        .expect("the test finished within its time limit")
}

/// Fails when a test image is missing: never skip silently.
fn require_image(image: &str) {
    let found = std::process::Command::new("docker")
        .args(["image", "inspect", "-f", "{{.Id}}", image])
        .output()
        .map(|o| o.status.success());
    assert!(
        matches!(found, Ok(true)),
        "test image {image} is missing (or docker is not available): run scripts/test, \
         which builds the test images (scripts/test-images)"
    );
}

/// A unique app name, and the removal of its containers when dropped.
struct Scope {
    app: String,
}

impl Scope {
    fn new() -> Scope {
        static N: AtomicU32 = AtomicU32::new(0);
        Scope {
            app: format!(
                "unit{}x{}",
                std::process::id(),
                N.fetch_add(1, Ordering::Relaxed)
            ),
        }
    }

    fn spec(&self, instance: &str, version: &str) -> InstanceSpec {
        InstanceSpec {
            app: self.app.clone(),
            environment: "staging".into(),
            service: "web".into(),
            version: version.into(),
            instance_id: instance.into(),
            command: Vec::new(),
            env: BTreeMap::from([("GREETING".to_owned(), "on {port} at {version}".to_owned())]),
            inherit_env: false,
            logs: Default::default(),
            workdir: std::env::temp_dir(),
            log_dir: std::env::temp_dir(),

            replica: 0,
            health: Default::default(),
            stop_timeout: Duration::from_secs(10),
            kind: crate::config::ServiceKind::Http,
        }
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        let out = std::process::Command::new("docker")
            .args(["ps", "-aq", "--filter"])
            .arg(format!("label={}={}", labels::APP, self.app))
            .output();
        if let Ok(out) = out {
            let ids: Vec<String> = String::from_utf8_lossy(&out.stdout)
                .lines()
                .map(str::to_owned)
                .collect();
            if !ids.is_empty() {
                let _ = std::process::Command::new("docker")
                    .args(["rm", "-f"])
                    .args(&ids)
                    .output();
            }
        }
    }
}

fn settings() -> DockerConfig {
    DockerConfig {
        image: "hello:{version}".into(),
        port: Some(8080),
        volumes: Vec::new(),
        stop_signal: "SIGTERM".into(),
        memory_bytes: Some(64 * 1024 * 1024),
        nano_cpus: Some(500_000_000),
        pull: false,
        swarm: None,
    }
}

/// Waits until `addr` answers `/health`.
async fn serving(addr: std::net::SocketAddr) {
    let check = crate::drivers::HealthCheck {
        interval: Duration::from_millis(50),
        healthy: 1,
        start_timeout: Duration::from_secs(20),
        ..Default::default()
    };
    crate::drivers::health::wait_healthy(addr, &check, || true)
        .await
        .expect("the container serves");
}

async fn get(addr: std::net::SocketAddr, path: &str) -> String {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    stream
        .write_all(
            format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n").as_bytes(),
        )
        .await
        .expect("write");
    let mut text = String::new();
    stream.read_to_string(&mut text).await.expect("read");
    text
}

#[tokio::test(flavor = "multi_thread")]
async fn starts_a_labelled_container_on_loopback_and_stops_and_removes_it() {
    require_image("hello:v1");
    bounded(async {
        let scope = Scope::new();
        let driver = DockerDriver::new();
        let handle = driver
            .start(&scope.spec("staging-web-v1-0-aaaa", "v1"), &settings())
            .await
            .expect("started");
        let addr = handle.addr.expect("published");
        assert!(addr.ip().is_loopback());
        assert_ne!(addr.port(), 8080, "a free host port, not the container's");
        serving(addr).await;
        // PORT is the container's port and CUTOVER_VERSION the release.
        assert!(get(addr, "/").await.ends_with("hello from v1\n"));
        assert!(driver.is_running(&handle));
        assert_eq!(driver.exit_status(&handle), None);
        let inspect = |format: &str| {
            let out = std::process::Command::new("docker")
                .args(["inspect", "-f", format, &handle.container_id])
                .output()
                .expect("docker inspect");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        let env = inspect("{{json .Config.Env}}");
        for var in [
            "GREETING=on 8080 at v1",
            "PORT=8080",
            "CUTOVER_VERSION=v1",
            "CUTOVER_INSTANCE=staging-web-v1-0-aaaa",
        ] {
            assert!(env.contains(var), "{var} not in {env}");
        }
        assert_eq!(
            inspect("{{.HostConfig.Memory}} {{.HostConfig.NanoCpus}}"),
            "67108864 500000000"
        );
        assert_eq!(inspect("{{.Config.StopSignal}}"), "SIGTERM");
        // `[logs]` (the defaults here): the engine rotates at 10 MiB and
        // keeps 5 rotated files beside the live one.
        assert_eq!(
            inspect("{{.HostConfig.LogConfig.Type}} {{index .HostConfig.LogConfig.Config \"max-size\"}} {{index .HostConfig.LogConfig.Config \"max-file\"}}"),
            "json-file 10485760 6"
        );

        let found = driver
            .labelled(&scope.app, "staging")
            .await
            .expect("listed");
        assert_eq!(found.len(), 1);
        assert_eq!(found[0].id, handle.container_id);
        assert_eq!(found[0].instance_id, "staging-web-v1-0-aaaa");
        assert_eq!(
            (found[0].service.as_str(), found[0].release.as_str()),
            ("web", "v1")
        );
        assert!(found[0].running);
        assert!(
            driver
                .labelled(&scope.app, "production")
                .await
                .expect("listed")
                .is_empty()
        );

        let tail = driver.tail(&handle, 5).await;
        assert!(
            tail.iter()
                .any(|l| l.contains("hello v1 listening on 0.0.0.0:8080")),
            "{tail:?}"
        );

        let started = Instant::now();
        let outcome = driver
            .stop(&handle, Duration::from_secs(5))
            .await
            .expect("stopped");
        assert_eq!(outcome, StopOutcome::Exited, "hello exits on SIGTERM");
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            driver
                .labelled(&scope.app, "staging")
                .await
                .expect("listed")
                .is_empty()
        );
        assert_eq!(
            driver
                .stop(&handle, Duration::from_secs(1))
                .await
                .expect("again"),
            StopOutcome::NotRunning
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_container_that_ignores_its_stop_signal_is_killed_after_the_grace() {
    require_image("hello:v1");
    bounded(async {
        let scope = Scope::new();
        let driver = DockerDriver::new();
        // hello is PID 1 in its container: a signal it has no handler for
        // (SIGUSR1) is ignored, so only SIGKILL stops it.
        let mut config = settings();
        config.stop_signal = "SIGUSR1".into();
        let handle = driver
            .start(&scope.spec("staging-web-v1-0-bbbb", "v1"), &config)
            .await
            .expect("started");
        serving(handle.addr.expect("published")).await;
        let started = Instant::now();
        let outcome = driver
            .stop(&handle, Duration::from_secs(1))
            .await
            .expect("stopped");
        assert_eq!(outcome, StopOutcome::Killed);
        assert!(started.elapsed() >= Duration::from_secs(1));
        assert!(
            driver
                .labelled(&scope.app, "staging")
                .await
                .expect("listed")
                .is_empty()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fresh_driver_adopts_a_running_container_and_notices_its_exit() {
    require_image("hello:v1");
    bounded(async {
        let scope = Scope::new();
        let handle = DockerDriver::new()
            .start(&scope.spec("staging-web-v1-0-cccc", "v1"), &settings())
            .await
            .expect("started");
        serving(handle.addr.expect("published")).await;

        // What a restarted daemon has: the persisted handle, nothing else.
        let fresh = DockerDriver::new();
        assert!(fresh.adopt(&handle).await.expect("checked"));
        let mut other = handle.clone();
        other.instance_id = "someone-else".into();
        assert!(
            !fresh.adopt(&other).await.expect("checked"),
            "label mismatch"
        );
        let mut gone = handle.clone();
        gone.container_id =
            "0000000000000000000000000000000000000000000000000000000000000000".into();
        assert!(!fresh.adopt(&gone).await.expect("checked"));

        let killed = std::process::Command::new("docker")
            .args(["kill", &handle.container_id])
            .output()
            .expect("docker kill");
        assert!(killed.status.success());
        let deadline = Instant::now() + Duration::from_secs(10);
        while fresh.is_running(&handle) {
            assert!(Instant::now() < deadline, "exit not noticed");
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            fresh.exit_status(&handle).as_deref(),
            Some("exit status 137")
        );
        assert!(!fresh.adopt(&handle).await.expect("checked"), "not running");
        assert_eq!(
            fresh
                .stop(&handle, Duration::from_secs(1))
                .await
                .expect("removed"),
            StopOutcome::NotRunning
        );
        assert!(
            fresh
                .labelled(&scope.app, "staging")
                .await
                .expect("listed")
                .is_empty()
        );
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn health_commands_run_inside_the_container() {
    require_image("hello:v1");
    bounded(async {
        let scope = Scope::new();
        let driver = DockerDriver::new();
        let handle = driver
            .start(&scope.spec("staging-web-v1-0-dddd", "v1"), &settings())
            .await
            .expect("started");
        serving(handle.addr.expect("published")).await;
        let timeout = Duration::from_secs(5);
        driver
            .exec_check(&handle, &["/hello".into(), "--probe".into()], timeout)
            .await
            .expect("the probe passes inside the container");
        let err = driver
            .exec_check(
                &handle,
                &["/hello".into(), "--no-such-flag".into()],
                timeout,
            )
            .await
            .expect_err("a failing command");
        assert!(err.contains("exited with status 2"), "{err}");
        driver
            .stop(&handle, Duration::from_secs(5))
            .await
            .expect("stopped");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn preflight_finds_missing_images_and_warns_about_root() {
    require_image("hello:v1");
    require_image("hello:root");
    bounded(async {
        let driver = DockerDriver::new();
        let check = |image: &str| ImageToCheck {
            service: "web".into(),
            image: image.into(),
            pull: false,
        };
        let ok = driver
            .preflight(&[check("hello:v1")])
            .await
            .expect("present");
        assert!(ok.warnings.is_empty(), "{:?}", ok.warnings);
        let root = driver
            .preflight(&[check("hello:root")])
            .await
            .expect("present");
        assert_eq!(root.warnings.len(), 1);
        assert!(
            root.warnings[0].contains("runs as root"),
            "{:?}",
            root.warnings
        );
        let err = driver
            .preflight(&[check("hello:v1"), check("hello:no-such-tag")])
            .await
            .expect_err("missing");
        assert!(matches!(err, DockerError::ImageMissing { .. }), "{err}");
        let text = err.to_string();
        assert!(
            text.contains("hello:no-such-tag is not on this machine"),
            "{text}"
        );
        assert!(text.contains("pull = true"), "{text}");
    })
    .await;
}

#[tokio::test(flavor = "multi_thread")]
async fn drivers_remove_strays_check_images_and_stop_with_an_endless_grace() {
    require_image("hello:v1");
    bounded(async {
        let scope = Scope::new();
        let drivers = Drivers::new();
        let web = settings();
        let kept = drivers
            .start(&scope.spec("staging-web-v1-0-dddd", "v1"), Some(&web))
            .await
            .expect("started");
        let Handle::Docker(container) = &kept else {
            panic!("a container: {kept:?}");
        };
        // Started by a daemon that died before it recorded it.
        let stray = DockerDriver::new()
            .start(&scope.spec("staging-web-v1-0-eeee", "v1"), &web)
            .await
            .expect("started");
        serving(container.addr.expect("published")).await;
        serving(stray.addr.expect("published")).await;

        let keep = vec!["staging-web-v1-0-dddd".to_owned()];
        let removed = drivers
            .remove_strays(&scope.app, "staging", &keep, |service| {
                assert_eq!(service, "web");
                Duration::from_secs(5)
            })
            .await
            .expect("listed");
        assert_eq!(removed, vec![stray.name.clone()]);
        let left = drivers
            .docker
            .labelled(&scope.app, "staging")
            .await
            .expect("listed");
        assert_eq!(left.len(), 1, "{left:?}");
        assert_eq!(left[0].id, container.container_id);
        assert!(
            drivers
                .remove_strays(&scope.app, "staging", &keep, |_| Duration::ZERO)
                .await
                .expect("listed")
                .is_empty()
        );

        let found = drivers
            .preflight(&[
                ServiceToCheck {
                    service: "web",
                    version: "v1",
                    docker: Some(&web),
                },
                ServiceToCheck {
                    service: "jobs",
                    version: "v1",
                    docker: None,
                },
            ])
            .await
            .expect("present");
        assert_eq!(
            found,
            PreflightFindings {
                summary: Some(format!(
                    "Docker at {} answers; image hello:v1 present",
                    docker_host()
                )),
                warnings: Vec::new(),
            }
        );
        let missing = drivers
            .preflight(&[ServiceToCheck {
                service: "web",
                version: "no-such-tag",
                docker: Some(&web),
            }])
            .await
            .expect_err("missing");
        assert!(
            matches!(
                missing,
                DriverError::Docker(DockerError::ImageMissing { .. })
            ),
            "{missing}"
        );

        // A `stop_timeout` of "300000000y": hello exits on SIGTERM at once.
        let started = Instant::now();
        let outcome = drivers.stop(&kept, Duration::MAX).await.expect("stopped");
        assert_eq!(outcome, StopOutcome::Exited);
        assert!(started.elapsed() < Duration::from_secs(20));
        assert!(
            drivers
                .docker
                .labelled(&scope.app, "staging")
                .await
                .expect("listed")
                .is_empty()
        );
    })
    .await;
}

#[test]
fn names_and_root_users() {
    assert_eq!(
        run::container_name("shop", "prod-web-1.2+b-0-ab12"),
        "shop-prod-web-1.2-b-0-ab12"
    );
    assert!(preflight::runs_as_root(""));
    assert!(preflight::runs_as_root("root"));
    assert!(preflight::runs_as_root("0:0"));
    assert!(!preflight::runs_as_root("65534"));
    assert!(!preflight::runs_as_root("app:app"));
}

#[test]
fn containers_log_to_json_file_rotated_as_logs_says() {
    let config = super::run::log_config(crate::config::LogsConfig {
        max_size: 64 * 1024,
        max_files: 2,
    });
    assert_eq!(config.typ.as_deref(), Some("json-file"));
    let options = config.config.expect("options");
    // Bytes: Docker reads "64k" as 64 000.
    assert_eq!(options["max-size"], "65536");
    // Docker's max-file counts the live file too.
    assert_eq!(options["max-file"], "3");
}
