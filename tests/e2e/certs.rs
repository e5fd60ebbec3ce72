//! Certificate files on a real TLS listener of the proxy: rotated under `wrk`
//! load with no failed request, a broken new file kept out with an event,
//! SIGHUP's reload, and a broken file at start refused with its name.
//!
//! The edge runs in this process (`cutover::edge::start_environment_tls`)
//! with a real `Proxy`, a real upstream on loopback, a real state store for
//! its events and real clients (wrk; a rustls client that reads the served
//! certificate). `Edge` is shared with `acme.rs`.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::Duration;

use cutover::edge::{self, EdgeTls, EnvTlsConfig, TlsFilesConfig};
use cutover::store::{EnvironmentEvent, Store};
use cutover_kit::wait::Wait;
use cutover_proxy::rustls::pki_types::{CertificateDer, ServerName};
use cutover_proxy::rustls::{self, RootCertStore};
use cutover_proxy::{ListenerRole, ListenerSpec, Proxy, ProxyConfig, Route, ServiceSpec, Track};
use tempfile::TempDir;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio_util::sync::CancellationToken;

/// The environment name the tests use.
pub const ENV: &str = "production";

/// A proxy with a TLS listener and a plain one redirecting to it, in front
/// of one upstream, and the edge keeping its certificates.
pub struct Edge {
    pub store: Store,
    pub proxy: Proxy,
    pub https: SocketAddr,
    pub tls: EdgeTls,
    pub stop: CancellationToken,
}

/// The two listeners, bound before the edge starts (pebble must know them).
pub struct Listeners {
    http: TcpListener,
    https: TcpListener,
}

impl Listeners {
    pub async fn bind() -> Listeners {
        Listeners {
            http: TcpListener::bind("127.0.0.1:0").await.expect("bind http"),
            https: TcpListener::bind("127.0.0.1:0").await.expect("bind https"),
        }
    }

    pub fn http_port(&self) -> u16 {
        self.http.local_addr().expect("addr").port()
    }

    pub fn https_port(&self) -> u16 {
        self.https.local_addr().expect("addr").port()
    }
}

impl Edge {
    /// Starts everything; the edge's own start error, if any.
    pub async fn start(
        dir: &Path,
        settings: &EnvTlsConfig,
        listeners: Listeners,
    ) -> Result<Edge, edge::EdgeError> {
        let store = Store::open(&format!("sqlite://{}", dir.join("state.db").display()))
            .await
            .expect("open the store");
        let upstream = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind upstream");
        let upstream_addr = upstream.local_addr().expect("addr");
        let stop = CancellationToken::new();
        let app = axum::Router::new().fallback(|| async { "hello over tls\n" });
        let upstream_stop = stop.clone();
        tokio::spawn(async move {
            let _ = axum::serve(upstream, app)
                .with_graceful_shutdown(upstream_stop.cancelled_owned())
                .await;
        });
        let proxy = Proxy::new(ProxyConfig::default());
        proxy
            .set_service("web", ServiceSpec::default())
            .expect("service");
        proxy.set_routes(vec![Route::any("web")]).expect("routes");
        proxy
            .set_instances(
                "web",
                Track::Stable,
                vec![cutover_proxy::Instance::new("web-1", upstream_addr)],
            )
            .expect("instances");

        let https = listeners.https.local_addr().expect("addr");
        // Plain HTTP as `redirect_listen` serves it: a 308 to HTTPS, but
        // ACME HTTP-01 challenges answered.
        let plain = proxy.clone();
        let plain_stop = stop.clone();
        let redirect = ListenerSpec {
            tls: None,
            role: ListenerRole::RedirectToHttps {
                https_port: https.port(),
            },
        };
        tokio::spawn(async move {
            let _ = plain
                .serve_with(listeners.http, redirect, plain_stop.cancelled_owned())
                .await;
        });
        let tls = edge::start_environment_tls(
            ENV,
            settings,
            &edge::acme_dir(dir, ENV),
            &proxy,
            Arc::new(store.clone()),
            stop.clone(),
        )
        .await?;
        let spec = ListenerSpec {
            tls: Some(tls.server_config()),
            role: ListenerRole::Proxy,
        };
        let secure = proxy.clone();
        let secure_stop = stop.clone();
        tokio::spawn(async move {
            let _ = secure
                .serve_with(listeners.https, spec, secure_stop.cancelled_owned())
                .await;
        });
        Ok(Edge {
            store,
            proxy,
            https,
            tls,
            stop,
        })
    }

    /// The environment's events, newest first.
    pub async fn events(&self) -> Vec<EnvironmentEvent> {
        self.store
            .environment_events(ENV, 100)
            .await
            .expect("read events")
    }

    /// Waits for `n` events of `kind`; the newest.
    pub async fn wait_for_events(
        &self,
        kind: &str,
        n: usize,
        within: Duration,
    ) -> EnvironmentEvent {
        let found = Wait::up_to(within)
            .every(Duration::from_millis(100))
            .until_async(|| async {
                self.events()
                    .await
                    .iter()
                    .filter(|e| e.kind == kind)
                    .count()
                    >= n
            })
            .await;
        let events = self.events().await;
        assert!(
            found.is_ok(),
            "no {n} {kind} events within {within:?}; events: {events:#?}"
        );
        events
            .into_iter()
            .find(|e| e.kind == kind)
            .expect("the event just seen")
    }
}

impl Drop for Edge {
    fn drop(&mut self) {
        self.stop.cancel();
    }
}

/// A TLS handshake with `addr` for `name` trusting `root`, then one GET: the
/// certificate served (leaf) and the answer's status line.
pub async fn fetch_over_tls(
    addr: SocketAddr,
    name: &str,
    root: &CertificateDer<'static>,
) -> Result<(CertificateDer<'static>, String), String> {
    let mut roots = RootCertStore::empty();
    roots.add(root.clone()).map_err(|e| e.to_string())?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(Arc::new(config));
    let tcp = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    let server_name = ServerName::try_from(name.to_owned()).map_err(|e| e.to_string())?;
    let mut tls = connector
        .connect(server_name, tcp)
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    let leaf = tls
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first())
        .cloned()
        .ok_or("no certificate")?;
    tls.write_all(
        format!("GET / HTTP/1.1\r\nHost: {name}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .await
    .map_err(|e| e.to_string())?;
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let text = String::from_utf8_lossy(&answer);
    let status = text.lines().next().unwrap_or_default().to_owned();
    Ok((leaf, status))
}

/// A test CA and the leaf certificates it signs.
pub struct TestCa {
    issuer: rcgen::Issuer<'static, rcgen::KeyPair>,
    pub root: CertificateDer<'static>,
    pub root_pem: String,
}

/// A leaf certificate and its key, in PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
    pub der: CertificateDer<'static>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let mut params = rcgen::CertificateParams::new(Vec::<String>::new()).expect("params");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "cutover test CA");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.self_signed(&key).expect("CA certificate");
        TestCa {
            root: cert.der().clone(),
            root_pem: cert.pem(),
            issuer: rcgen::Issuer::new(params, key),
        }
    }

    /// A leaf for `names`.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let names: Vec<String> = names.iter().map(|n| (*n).to_owned()).collect();
        let params = rcgen::CertificateParams::new(names).expect("params");
        let key = rcgen::KeyPair::generate().expect("key");
        let cert = params.signed_by(&key, &self.issuer).expect("leaf");
        Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// Writes `content` to `path` as a rotation tool does: a temporary file
/// renamed over the old one.
fn replace(path: &Path, content: &str) {
    let tmp = path.with_extension("tmp");
    std::fs::write(&tmp, content).expect("write the new file");
    std::fs::rename(&tmp, path).expect("rename it into place");
}

fn files_in(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("cert.pem"), dir.join("key.pem"))
}

fn install(dir: &Path, leaf: &Leaf) -> TlsFilesConfig {
    let (cert, key) = files_in(dir);
    replace(&key, &leaf.key_pem);
    replace(&cert, &leaf.cert_pem);
    TlsFilesConfig { cert, key }
}

/// The certificate `edge` serves for `localhost`.
async fn served(edge: &Edge, ca: &TestCa) -> CertificateDer<'static> {
    let (leaf, status) = fetch_over_tls(edge.https, "localhost", &ca.root)
        .await
        .expect("a TLS request through the proxy");
    assert!(status.contains(" 200 "), "answer: {status}");
    leaf
}

async fn wait_served(edge: &Edge, ca: &TestCa, want: &CertificateDer<'static>, within: Duration) {
    let found = Wait::up_to(within)
        .every(Duration::from_millis(50))
        .until_async(|| async {
            fetch_over_tls(edge.https, "localhost", &ca.root)
                .await
                .is_ok_and(|(leaf, _)| &leaf == want)
        })
        .await;
    assert!(
        found.is_ok(),
        "the expected certificate is not served within {within:?}"
    );
}

/// wrk's report: requests done, and every kind of failure it counts.
struct WrkReport {
    requests: u64,
    failures: Vec<String>,
    text: String,
}

fn parse_wrk(text: &str) -> WrkReport {
    let requests = text
        .lines()
        .find(|l| l.contains(" requests in "))
        .and_then(|l| l.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    let failures = text
        .lines()
        .filter(|l| l.contains("Socket errors") || l.contains("Non-2xx"))
        .map(|l| l.trim().to_owned())
        .collect();
    WrkReport {
        requests,
        failures,
        text: text.to_owned(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_certificate_rotated_under_wrk_load_fails_no_request_and_the_new_one_serves() {
    let dir = TempDir::new().expect("temp dir");
    let ca = TestCa::new();
    let old = ca.leaf(&["localhost"]);
    let new = ca.leaf(&["localhost"]);
    let files = install(dir.path(), &old);
    let settings = EnvTlsConfig {
        files: vec![files.clone()],
        acme: None,
    };
    let edge = Edge::start(dir.path(), &settings, Listeners::bind().await)
        .await
        .expect("the edge starts");
    assert_eq!(served(&edge, &ca).await, old.der);

    // Two wrk runs at once: keep-alive connections (requests over handshakes
    // made before and after), and a new TLS connection for every request
    // (handshakes during the rotation).
    let url = format!("https://127.0.0.1:{}/", edge.https.port());
    let wrk = |close: bool| {
        let mut cmd = Command::new("wrk");
        cmd.args(["-t1", "-c8", "-d4s", "--timeout", "2s"]);
        if close {
            cmd.args(["-H", "Connection: close"]);
        }
        cmd.arg(&url);
        std::thread::spawn(move || cmd.output().expect("run wrk (Debian package wrk)"))
    };
    let keep_alive = wrk(false);
    let per_request = wrk(true);
    tokio::time::sleep(Duration::from_millis(1500)).await; // wrk is mid-run
    replace(&files.key, &new.key_pem);
    replace(&files.cert, &new.cert_pem);
    wait_served(&edge, &ca, &new.der, Duration::from_secs(5)).await;

    for (what, run) in [
        ("keep-alive", keep_alive),
        ("connection: close", per_request),
    ] {
        let out = run.join().expect("wrk thread");
        assert!(out.status.success(), "wrk failed: {out:?}");
        let report = parse_wrk(&String::from_utf8_lossy(&out.stdout));
        assert!(
            report.requests > 100,
            "wrk ({what}) made too few requests:\n{}",
            report.text
        );
        assert!(
            report.failures.is_empty(),
            "wrk ({what}) saw failures: {:?}\n{}",
            report.failures,
            report.text
        );
        println!("wrk ({what}): {} requests, 0 failed", report.requests);
    }
    assert_eq!(
        served(&edge, &ca).await,
        new.der,
        "the new certificate serves"
    );
    let event = edge
        .wait_for_events(edge::kinds::CERTIFICATE_RELOADED, 1, Duration::from_secs(5))
        .await;
    assert!(event.message.contains("cert.pem"), "{event:?}");
    assert_eq!(event.data["names"], serde_json::json!(["localhost"]));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broken_new_certificate_file_keeps_the_old_one_serving_and_says_why() {
    let dir = TempDir::new().expect("temp dir");
    let ca = TestCa::new();
    let old = ca.leaf(&["localhost"]);
    let other = ca.leaf(&["localhost"]);
    let files = install(dir.path(), &old);
    let settings = EnvTlsConfig {
        files: vec![files.clone()],
        acme: None,
    };
    let edge = Edge::start(dir.path(), &settings, Listeners::bind().await)
        .await
        .expect("the edge starts");
    assert_eq!(served(&edge, &ca).await, old.der);

    // A certificate cut short.
    let half = &other.cert_pem[..other.cert_pem.len() / 2];
    replace(&files.cert, half);
    let event = edge
        .wait_for_events(
            edge::kinds::CERTIFICATE_RELOAD_FAILED,
            1,
            Duration::from_secs(10),
        )
        .await;
    assert!(event.message.contains("cert.pem"), "{event:?}");
    assert!(event.message.contains("keeps serving"), "{event:?}");
    assert_eq!(
        served(&edge, &ca).await,
        old.der,
        "the old certificate still serves"
    );

    // Another certificate with the old key: the key does not match.
    replace(&files.cert, &other.cert_pem);
    let event = edge
        .wait_for_events(
            edge::kinds::CERTIFICATE_RELOAD_FAILED,
            2,
            Duration::from_secs(10),
        )
        .await;
    assert!(
        event.message.contains("key.pem") || event.message.contains("match"),
        "{event:?}"
    );
    assert_eq!(
        served(&edge, &ca).await,
        old.der,
        "the old certificate still serves"
    );
    for e in edge.events().await {
        let text = format!("{} {}", e.message, e.data);
        assert!(
            !text.contains("PRIVATE KEY"),
            "key material in an event: {e:?}"
        );
    }

    // Its key arrives: served at once on a reload (what SIGHUP calls).
    std::fs::write(&files.key, &other.key_pem).expect("write the key in place");
    edge.tls.reload_now().await;
    assert_eq!(served(&edge, &ca).await, other.der, "reloaded on demand");
    let event = edge
        .wait_for_events(edge::kinds::CERTIFICATE_RELOADED, 1, Duration::from_secs(1))
        .await;
    assert!(event.message.contains("SIGHUP"), "{event:?}");
}

#[tokio::test]
async fn a_broken_certificate_file_at_start_is_an_error_naming_it() {
    let dir = TempDir::new().expect("temp dir");
    let ca = TestCa::new();
    let leaf = ca.leaf(&["localhost"]);
    let files = install(dir.path(), &leaf);
    std::fs::write(&files.cert, "not a certificate\n").expect("break it");
    let settings = EnvTlsConfig {
        files: vec![files.clone()],
        acme: None,
    };
    let Err(error) = Edge::start(dir.path(), &settings, Listeners::bind().await).await else {
        panic!("a broken certificate file must stop the start");
    };
    let message = error.to_string();
    println!("{message}");
    assert!(
        message.contains(&files.cert.display().to_string()),
        "{message}"
    );
    assert!(message.contains("production"), "{message}");
    assert!(
        message.contains("start again"),
        "says what to do: {message}"
    );
}

/// The `cutover serve` process of `app` (by its command line).
fn daemon_pid(app: &crate::common::TestApp) -> i32 {
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
    panic!("no cutover serve process for {config}");
}

fn curl(args: &[&str]) -> String {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "5"])
        .args(args)
        .output()
        .expect("run curl");
    assert!(out.status.success(), "curl {args:?} failed: {out:?}");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_daemon_serves_https_with_h2_redirects_plain_http_and_reloads_on_sighup() {
    use crate::common::{Release, TestApp, ok, stdout};

    let app = TestApp::new("30s");
    app.release("v1", Release::Good);
    let ca = TestCa::new();
    let old = ca.leaf(&["localhost"]);
    let new = ca.leaf(&["localhost"]);
    let files = install(app.path(), &old);
    std::fs::write(app.path().join("ca.pem"), &ca.root_pem).expect("write the CA");
    let redirect_port = cutover_kit::ports::free_port().expect("a port");
    app.append_config(&format!(
        "redirect_listen = \"127.0.0.1:{redirect_port}\"\ntls = {{ cert = \"cert.pem\", key = \"key.pem\" }}\n"
    ));
    app.serve();
    app.deploy_ok("v1");

    let port = app.proxy_port;
    let https = SocketAddr::from(([127, 0, 0, 1], port));
    let (leaf, status) = fetch_over_tls(https, "localhost", &ca.root)
        .await
        .expect("HTTPS through the daemon's proxy");
    assert!(status.contains(" 200 "), "{status}");
    assert_eq!(leaf, old.der);

    // curl over HTTP/2 (ALPN), checking the certificate against the CA.
    let ca_file = app.path().join("ca.pem").display().to_string();
    let resolve = format!("localhost:{port}:127.0.0.1");
    let url = format!("https://localhost:{port}/");
    let answer = curl(&[
        "--http2",
        "--cacert",
        &ca_file,
        "--resolve",
        &resolve,
        "-w",
        "\n%{http_version}",
        &url,
    ]);
    assert!(answer.contains("v1"), "{answer}");
    assert!(answer.ends_with("\n2"), "HTTP/2 over TLS: {answer}");

    // Plain HTTP on redirect_listen: a 308 to the HTTPS listener.
    let head = curl(&[
        "-i",
        "--resolve",
        &format!("localhost:{redirect_port}:127.0.0.1"),
        &format!("http://localhost:{redirect_port}/a?b=c"),
    ]);
    assert!(head.starts_with("HTTP/1.1 308"), "{head}");
    assert!(
        head.to_ascii_lowercase()
            .contains(&format!("location: https://localhost:{port}/a?b=c")),
        "{head}"
    );

    // A new certificate and SIGHUP: reloaded, said in `status`, served.
    replace(&files.key, &new.key_pem);
    replace(&files.cert, &new.cert_pem);
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(daemon_pid(&app)),
        nix::sys::signal::Signal::SIGHUP,
    )
    .expect("send SIGHUP");
    let seen = Wait::up_to(Duration::from_secs(10))
        .every(Duration::from_millis(100))
        .until_async(|| async {
            let out = app.cli_async(&["status", "--json"]).await;
            let Ok(status) = serde_json::from_slice::<serde_json::Value>(&out.stdout) else {
                return false;
            };
            status["environments"][0]["edge_events"]
                .as_array()
                .is_some_and(|events| {
                    events.iter().any(|e| {
                        e["kind"] == "certificate_reloaded"
                            && e["message"].as_str().is_some_and(|m| m.contains("SIGHUP"))
                    })
                })
        })
        .await;
    assert!(seen.is_ok(), "no reload on SIGHUP:\n{}", app.daemon_log());
    wait_served_at(https, &ca, &new.der).await;
    let human = app.cli(&["status"]);
    ok(&app, &human);
    assert!(
        stdout(&human).contains("certificate_reloaded"),
        "{}",
        stdout(&human)
    );

    // The API lists them; an unknown environment is a 400 that says so.
    let token = std::fs::read_to_string(app.path().join(".cutover").join("api.token"))
        .expect("read the API token");
    let auth = format!("Authorization: Bearer {}", token.trim());
    let api = format!("http://127.0.0.1:{}/v1/events", app.api_port);
    let listed: serde_json::Value = serde_json::from_str(&curl(&[
        "--fail",
        "-H",
        &auth,
        &format!("{api}?environment=production&limit=1"),
    ]))
    .expect("JSON");
    let listed = listed.as_array().expect("a list");
    assert_eq!(listed.len(), 1, "{listed:?}");
    assert_eq!(listed[0]["kind"], "certificate_reloaded");
    assert_eq!(listed[0]["environment"], "production");
    let unknown = curl(&[
        "-w",
        "\n%{http_code}",
        "-H",
        &auth,
        &format!("{api}?environment=nowhere"),
    ]);
    assert!(
        unknown.ends_with("\n400") && unknown.contains("nowhere"),
        "{unknown}"
    );
}

async fn wait_served_at(addr: SocketAddr, ca: &TestCa, want: &CertificateDer<'static>) {
    let found = Wait::up_to(Duration::from_secs(5))
        .until_async(|| async {
            fetch_over_tls(addr, "localhost", &ca.root)
                .await
                .is_ok_and(|(leaf, _)| &leaf == want)
        })
        .await;
    assert!(found.is_ok(), "the new certificate is not served");
}
