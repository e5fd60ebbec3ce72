//! The daemon's API off loopback (issue 11): plain HTTP on every address is
//! refused at start unless `allow_plaintext` (then a warning at every start);
//! with `[server] tls` the API speaks HTTPS to curl (HTTP/1.1 and HTTP/2) and
//! to the CLI; `/metrics` needs the token off loopback, and `metrics_listen`
//! serves it alone without one. Also the open-file limit: the daemon raises
//! its soft limit to the hard one, and `cutover preflight` reports both.

use std::os::unix::fs::PermissionsExt;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use cutover_kit::ports;
use cutover_kit::wait::Wait;

use crate::common::{TestApp, stderr, stdout};

/// Replaces the `[server]` table of the app's config with `server` (TOML
/// lines after `[server]`).
fn set_server(app: &TestApp, server: &str) {
    let path = app.config();
    let text = std::fs::read_to_string(&path).expect("read config");
    let old = format!("[server]\nlisten = \"127.0.0.1:{}\"\n", app.api_port);
    assert!(text.contains(&old), "unexpected config:\n{text}");
    let text = text.replace(&old, &format!("[server]\n{server}\n"));
    std::fs::write(&path, text).expect("write config");
}

/// A self-signed certificate for `localhost` and 127.0.0.1, made by openssl,
/// as `api.pem` / `api.key` in the app's directory.
pub(crate) fn self_signed(app: &TestApp) {
    self_signed_as(app, "api");
}

/// [`self_signed`] as `NAME.pem` / `NAME.key`.
fn self_signed_as(app: &TestApp, name: &str) {
    let (key, cert) = (format!("{name}.key"), format!("{name}.pem"));
    let out = Command::new("openssl")
        .args([
            "req",
            "-x509",
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=localhost",
            "-addext",
            "subjectAltName=DNS:localhost,IP:127.0.0.1",
            "-keyout",
            &key,
            "-out",
            &cert,
        ])
        .current_dir(app.path())
        .output()
        .expect("run openssl");
    assert!(out.status.success(), "openssl: {}", stderr(&out));
    std::fs::set_permissions(
        app.path().join(&key),
        std::fs::Permissions::from_mode(0o600),
    )
    .expect("chmod key");
}

pub(crate) fn curl(args: &[&str]) -> Output {
    Command::new("curl")
        .args(["-sS", "--max-time", "10"])
        .args(args)
        .output()
        .expect("run curl")
}

fn token(app: &TestApp) -> String {
    std::fs::read_to_string(app.path().join(".cutover").join("api.token")).expect("token")
}

/// `cutover serve` must exit by itself within 20 s, serving nothing.
fn serve_refused(app: &TestApp) -> Output {
    let mut child = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("-c")
        .arg(app.config())
        .arg("serve")
        .env("NO_COLOR", "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start daemon");
    let deadline = Instant::now() + Duration::from_secs(20);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the daemon started");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().expect("output")
}

#[test]
fn an_api_on_every_address_without_tls_is_refused_at_start() {
    let app = TestApp::new("10m");
    set_server(&app, &format!("listen = \"0.0.0.0:{}\"", app.api_port));
    let out = serve_refused(&app);
    let err = stderr(&out);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("as plain HTTP, off loopback")
            && err.contains("[server] tls")
            && err.contains("allow_plaintext = true")
            && err.contains("cutover.toml:5:10"),
        "{err}"
    );
    assert!(
        std::net::TcpStream::connect(("127.0.0.1", app.api_port)).is_err(),
        "the API answered"
    );
    // `cutover check` says the same, before anything is started.
    let check = app.cli(&["check"]);
    assert_eq!(check.status.code(), Some(2));
    assert!(
        stderr(&check).contains("allow_plaintext"),
        "{}",
        stderr(&check)
    );
}

#[test]
fn allow_plaintext_serves_off_loopback_and_warns_at_every_start() {
    let app = TestApp::new("10m");
    set_server(
        &app,
        &format!(
            "listen = \"0.0.0.0:{}\"\nallow_plaintext = true",
            app.api_port
        ),
    );
    let warning = "allow_plaintext = true";
    app.serve();
    assert_eq!(
        app.daemon_log().matches(warning).count(),
        1,
        "{}",
        app.daemon_log()
    );
    let status = app.cli(&["status"]);
    assert!(status.status.success(), "{}", stderr(&status));

    // Off loopback, /metrics needs the token.
    let url = format!("http://127.0.0.1:{}/metrics", app.api_port);
    let code = |args: &[&str]| {
        let out = curl(&[&["-o", "/dev/null", "-w", "%{http_code}"][..], args].concat());
        stdout(&out)
    };
    assert_eq!(code(&[&url]), "401");
    let bearer = format!("Authorization: Bearer {}", token(&app));
    assert_eq!(code(&["-H", &bearer, &url]), "200");

    app.stop_daemon();
    app.serve();
    assert_eq!(
        app.daemon_log().matches(warning).count(),
        2,
        "{}",
        app.daemon_log()
    );
}

#[test]
fn the_api_over_tls_answers_curl_and_the_cli() {
    let app = TestApp::new("10m");
    self_signed(&app);
    set_server(
        &app,
        &format!(
            "listen = \"0.0.0.0:{}\"\ntls = {{ cert = \"api.pem\", key = \"api.key\" }}",
            app.api_port
        ),
    );
    app.serve();
    Wait::up_to(Duration::from_secs(10))
        .until(|| {
            app.daemon_log()
                .contains(&format!("API on https://0.0.0.0:{}", app.api_port))
        })
        .unwrap_or_else(|e| panic!("{e}:\n{}", app.daemon_log()));
    let cacert = app.path().join("api.pem").display().to_string();
    let base = format!("https://127.0.0.1:{}", app.api_port);

    // HTTP/1.1 and HTTP/2 (ALPN), verified against the certificate.
    for (flag, version) in [("--http1.1", "1.1"), ("--http2", "2")] {
        let out = curl(&[
            flag,
            "--cacert",
            &cacert,
            "-w",
            " %{http_version}",
            &format!("{base}/healthz"),
        ]);
        assert!(out.status.success(), "{}", stderr(&out));
        assert_eq!(stdout(&out), format!("ok\n {version}"));
    }
    // Without the CA, curl refuses the self-signed certificate; plain HTTP gets no answer.
    assert!(!curl(&[&format!("{base}/healthz")]).status.success());
    let plain = curl(&[&format!("http://127.0.0.1:{}/healthz", app.api_port)]);
    assert!(!stdout(&plain).contains("ok"), "{}", stdout(&plain));

    // The token guards /v1 and, off loopback, /metrics.
    let bearer = format!("Authorization: Bearer {}", token(&app));
    let code = |args: &[&str]| {
        let out = curl(
            &[
                &[
                    "--cacert",
                    cacert.as_str(),
                    "-o",
                    "/dev/null",
                    "-w",
                    "%{http_code}",
                ][..],
                args,
            ]
            .concat(),
        );
        stdout(&out)
    };
    assert_eq!(code(&[&format!("{base}/v1/status")]), "401");
    assert_eq!(code(&["-H", &bearer, &format!("{base}/v1/status")]), "200");
    assert_eq!(code(&[&format!("{base}/metrics")]), "401");
    assert_eq!(code(&["-H", &bearer, &format!("{base}/metrics")]), "200");
    // Any valid token will do for /metrics: a scraper's viewer token.
    let scraper = format!(
        "Authorization: Bearer {}",
        app.token("prometheus", "viewer")
    );
    assert_eq!(code(&["-H", &scraper, &format!("{base}/metrics")]), "200");
    assert_eq!(code(&["-H", &scraper, &format!("{base}/v1/tokens")]), "403");

    // The CLI reads the config and trusts exactly that certificate.
    let status = app.cli(&["status", "--json"]);
    assert!(status.status.success(), "{}", stderr(&status));
    let json: serde_json::Value = serde_json::from_slice(&status.stdout).expect("status json");
    assert!(json["environments"].is_array(), "{json}");
}

#[test]
fn a_missing_api_certificate_is_named_by_check_and_serve() {
    let app = TestApp::new("10m");
    set_server(
        &app,
        &format!(
            "listen = \"127.0.0.1:{}\"\ntls = {{ cert = \"api.pem\", key = \"api.key\" }}",
            app.api_port
        ),
    );
    for out in [app.cli(&["check"]), serve_refused(&app)] {
        let err = stderr(&out);
        assert_eq!(out.status.code(), Some(2), "{err}");
        assert!(
            err.contains(&format!(
                "the certificate file {} does not exist",
                app.path().join("api.pem").display()
            )) && err.contains("cutover.toml:6:16"),
            "{err}"
        );
    }
}

#[test]
fn metrics_listen_serves_metrics_alone_without_a_token() {
    let app = TestApp::new("10m");
    let metrics_port = ports::free_ports(1).expect("free port")[0];
    set_server(
        &app,
        &format!(
            "listen = \"127.0.0.1:{}\"\nmetrics_listen = \"127.0.0.1:{metrics_port}\"",
            app.api_port
        ),
    );
    app.serve();
    Wait::up_to(Duration::from_secs(10))
        .until(|| std::net::TcpStream::connect(("127.0.0.1", metrics_port)).is_ok())
        .expect("the metrics listener is up");
    let base = format!("http://127.0.0.1:{metrics_port}");
    let out = curl(&["-D", "-", &format!("{base}/metrics")]);
    let answer = stdout(&out);
    assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
    assert!(answer.contains("content-type: text/plain"), "{answer}");
    // Nothing else is served there.
    for path in ["/v1/status", "/healthz"] {
        let out = curl(&[
            "-o",
            "/dev/null",
            "-w",
            "%{http_code}",
            &format!("{base}{path}"),
        ]);
        assert_eq!(stdout(&out), "404", "{path}");
    }
    // On a loopback API, /metrics stays open as before.
    let out = curl(&[
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &format!("http://127.0.0.1:{}/metrics", app.api_port),
    ]);
    assert_eq!(stdout(&out), "200");
}

/// Runs `cutover ARGS` under `sh` with the open-file limits set first.
fn with_limits(app: &TestApp, soft: u64, hard: u64, args: &[&str]) -> Command {
    let mut command = Command::new("sh");
    command
        .arg("-c")
        .arg(format!(
            "ulimit -Sn {soft} && ulimit -Hn {hard} && exec \"$0\" -c \"$@\""
        ))
        .arg(env!("CARGO_BIN_EXE_cutover"))
        .arg(app.config())
        .args(args)
        .env("NO_COLOR", "1");
    command
}

#[test]
fn the_daemon_raises_its_open_file_limit_and_preflight_reports_it() {
    let app = TestApp::new("10m");

    let out = with_limits(&app, 1024, 4096, &["preflight"])
        .output()
        .expect("preflight");
    let text = stdout(&out);
    assert!(out.status.success(), "{text}{}", stderr(&out));
    assert!(
        text.contains(
            "warn open files limit: soft 1024, hard 4096; the daemon raises its soft limit to 4096 at start, below 65536"
        ) && text.contains("LimitNOFILE=65536"),
        "{text}"
    );

    let out = with_limits(&app, 256, 512, &["preflight", "--json"])
        .output()
        .expect("preflight");
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let checks: serde_json::Value = serde_json::from_slice(&out.stdout).expect("json");
    let line = checks
        .as_array()
        .and_then(|all| all.iter().find(|c| c["name"] == "open files limit"))
        .expect("an open files line")
        .clone();
    assert_eq!(line["ok"], false, "{line}");
    assert!(
        line["detail"]
            .as_str()
            .is_some_and(|d| d.starts_with("soft 256, hard 512")),
        "{line}"
    );

    // The daemon started with a soft limit of 1024 runs with its hard limit.
    let log = std::fs::File::create(app.path().join("daemon.log")).expect("log");
    let mut daemon = with_limits(&app, 1024, 8192, &["serve"])
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .expect("start daemon");
    let up = Wait::up_to(Duration::from_secs(20))
        .until(|| std::net::TcpStream::connect(("127.0.0.1", app.api_port)).is_ok());
    let limits =
        std::fs::read_to_string(format!("/proc/{}/limits", daemon.id())).unwrap_or_default();
    let _ = nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon.id() as i32),
        nix::sys::signal::Signal::SIGTERM,
    );
    let _ = daemon.wait();
    up.unwrap_or_else(|e| panic!("daemon did not start ({e}):\n{}", app.daemon_log()));
    let open_files = limits
        .lines()
        .find(|l| l.starts_with("Max open files"))
        .expect("Max open files in /proc/PID/limits");
    let numbers: Vec<&str> = open_files.split_whitespace().skip(3).take(2).collect();
    assert_eq!(numbers, ["8192", "8192"], "{open_files}");
    assert!(
        app.daemon_log().contains("raised the open-file limit"),
        "{}",
        app.daemon_log()
    );
}

#[test]
fn the_track_secret_stays_out_of_check_json_and_the_daemon_log() {
    let app = TestApp::new("10m");
    let secret = "e2e-track-secret-0123456789abcdef";
    app.append_config(
        "track_override = { secret = \"${E2E_TRACK_SECRET}\", trusted_sources = [\"10.0.0.0/8\"] }\n",
    );
    let with_secret = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_cutover"))
            .arg("-c")
            .arg(app.config())
            .args(args)
            .env("NO_COLOR", "1")
            .env("E2E_TRACK_SECRET", secret)
            .output()
            .expect("run cutover")
    };
    let json = with_secret(&["check", "--json"]);
    assert!(json.status.success(), "{}", stderr(&json));
    let text = stdout(&json);
    assert!(!text.contains(secret), "{text}");
    let value: serde_json::Value = serde_json::from_str(&text).expect("check --json");
    let track = &value["environments"]["production"]["track_override"];
    assert_eq!(track["secret"], "***", "{track}");
    assert_eq!(track["trusted_sources"], serde_json::json!(["10.0.0.0/8"]));

    let summary = with_secret(&["check"]);
    assert!(summary.status.success(), "{}", stderr(&summary));
    assert!(
        stdout(&summary).contains("track override with the secret or from 10.0.0.0/8")
            && !stdout(&summary).contains(secret),
        "{}",
        stdout(&summary)
    );

    app.serve_with_env(&[("E2E_TRACK_SECRET", secret), ("CUTOVER_LOG", "debug")]);
    let status = with_secret(&["status"]);
    assert!(status.status.success(), "{}", stderr(&status));
    app.stop_daemon();
    assert!(!app.daemon_log().contains(secret), "{}", app.daemon_log());
}

/// The pid of this app's `cutover serve`.
fn daemon_pid(app: &TestApp) -> i32 {
    let config = app.config().display().to_string();
    for entry in std::fs::read_dir("/proc").expect("proc").flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let raw = std::fs::read(entry.path().join("cmdline")).unwrap_or_default();
        let argv: Vec<String> = raw
            .split(|b| *b == 0)
            .map(|a| String::from_utf8_lossy(a).into_owned())
            .collect();
        if argv.iter().any(|a| a == &config) && argv.iter().any(|a| a == "serve") {
            return pid;
        }
    }
    panic!("no daemon for {config}");
}

#[test]
fn the_api_certificate_is_read_again_on_change_and_on_sighup() {
    let app = TestApp::new("10m");
    self_signed(&app);
    set_server(
        &app,
        &format!(
            "listen = \"127.0.0.1:{}\"\ntls = {{ cert = \"api.pem\", key = \"api.key\" }}",
            app.api_port
        ),
    );
    app.serve();
    let url = format!("https://127.0.0.1:{}/healthz", app.api_port);
    let trusts = |ca: &str| {
        curl(&["--cacert", &app.path().join(ca).display().to_string(), &url])
            .status
            .success()
    };
    let ok_within = |what: &str, ca: &str| {
        Wait::up_to(Duration::from_secs(20))
            .until(|| trusts(ca))
            .unwrap_or_else(|e| panic!("{what} ({e}):\n{}", app.daemon_log()));
    };
    assert!(trusts("api.pem"));
    // Keep copies to trust the certificates by after they are renamed away.
    std::fs::copy(app.path().join("api.pem"), app.path().join("first.ca")).expect("copy");

    // A changed file is picked up without a signal.
    self_signed_as(&app, "second");
    std::fs::copy(app.path().join("second.pem"), app.path().join("second.ca")).expect("copy");
    std::fs::rename(app.path().join("second.key"), app.path().join("api.key")).expect("key");
    std::fs::rename(app.path().join("second.pem"), app.path().join("api.pem")).expect("cert");
    ok_within("the changed certificate was not served", "second.ca");
    assert!(!trusts("first.ca"));
    // The CLI pins whatever the config's file now holds.
    let status = app.cli(&["status"]);
    assert!(status.status.success(), "{}", stderr(&status));

    // A broken file keeps the certificate being served, and says so.
    std::fs::write(app.path().join("api.pem"), "not a certificate\n").expect("break");
    Wait::up_to(Duration::from_secs(20))
        .until(|| {
            app.daemon_log()
                .contains("kept the API's previous certificate")
        })
        .unwrap_or_else(|e| panic!("{e}:\n{}", app.daemon_log()));
    assert!(trusts("second.ca"));

    // SIGHUP reads the files again at once.
    self_signed_as(&app, "third");
    std::fs::copy(app.path().join("third.pem"), app.path().join("third.ca")).expect("copy");
    std::fs::rename(app.path().join("third.key"), app.path().join("api.key")).expect("key");
    std::fs::rename(app.path().join("third.pem"), app.path().join("api.pem")).expect("cert");
    let old_daemon = daemon_pid(&app);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(old_daemon),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("SIGHUP");
    ok_within("the certificate was not read again on SIGHUP", "third.ca");
    Wait::up_to(Duration::from_secs(10))
        .until(|| {
            app.daemon_log()
                .contains("reloaded the API's certificate (SIGHUP)")
        })
        .unwrap_or_else(|e| panic!("{e}:\n{}", app.daemon_log()));
    // SIGHUP also hands the daemon over to one that reads the config again;
    // once that one holds the store, it serves the API with the new file.
    Wait::up_to(Duration::from_secs(30))
        .until(|| app.lock_holder().is_some_and(|p| p != old_daemon) && !TestApp::alive(old_daemon))
        .unwrap_or_else(|e| panic!("no new daemon took over ({e}):\n{}", app.daemon_log()));
    let status = app.cli(&["status"]);
    assert!(
        status.status.success(),
        "{}\n{}",
        stderr(&status),
        app.daemon_log()
    );
}
