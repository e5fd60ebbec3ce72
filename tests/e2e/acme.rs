//! ACME against a real ACME server: Debian's `pebble`, started by each test
//! with its own ports, validating challenges on the proxy's listeners under
//! test, and resolving every name to 127.0.0.1 through
//! `pebble-challtestsrv` (its challenge servers off: the proxy answers).
//!
//! Certificates last 20 s (pebble's `certificateValidityPeriod`), so a
//! renewal happens within the test: with `renew_before` (30 days) longer
//! than that, a fresh certificate is renewed halfway through its life.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use cutover::edge::{self, AcmeChallenge, AcmeConfig, EnvTlsConfig};
use cutover_kit::ports::free_port;
use cutover_kit::wait::Wait;
use cutover_proxy::rustls::pki_types::CertificateDer;
use cutover_proxy::rustls::pki_types::pem::PemObject;
use tempfile::TempDir;

use super::certs::{ENV, Edge, Listeners, TestCa, fetch_over_tls};

/// The name ordered (resolved by pebble-challtestsrv to 127.0.0.1).
const DOMAIN: &str = "app.cutover.test";
/// pebble's certificates live this long, in seconds.
const VALIDITY_SECONDS: u64 = 20;

/// pebble and its DNS, stopped (killed) when dropped.
struct Pebble {
    pebble: Option<Child>,
    dns: Child,
    directory: String,
    management: SocketAddr,
    ca_file: PathBuf,
    log: PathBuf,
}

impl Pebble {
    /// Starts pebble validating HTTP-01 on `http_port` (the redirect listener) and TLS-ALPN-01 on
    /// `tls_port` of 127.0.0.1.
    fn start(dir: &Path, http_port: u16, tls_port: u16) -> Pebble {
        // pebble's own HTTPS: a certificate from a test CA that the edge is
        // told to trust (`directory_ca`).
        let ca = TestCa::new();
        let leaf = ca.leaf(&["localhost"]);
        let ca_file = dir.join("pebble-ca.pem");
        std::fs::write(&ca_file, &ca.root_pem).expect("write the CA");
        std::fs::write(dir.join("pebble-cert.pem"), &leaf.cert_pem).expect("write the cert");
        std::fs::write(dir.join("pebble-key.pem"), &leaf.key_pem).expect("write the key");

        let dns_port = free_port().expect("a port");
        let dns_management = free_port().expect("a port");
        let log = dir.join("pebble.log");
        let dns = Command::new("pebble-challtestsrv")
            .args([
                "-defaultIPv4",
                "127.0.0.1",
                "-defaultIPv6",
                "",
                "-http01",
                "",
                "-https01",
                "",
                "-tlsalpn01",
                "",
                "-dns01",
                &format!("127.0.0.1:{dns_port}"),
                "-management",
                &format!("127.0.0.1:{dns_management}"),
            ])
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(dir.join("challtestsrv.log")).expect("log"))
            .spawn()
            .expect("start pebble-challtestsrv (Debian package pebble)");

        let listen = free_port().expect("a port");
        let management = free_port().expect("a port");
        let config = serde_json::json!({
            "pebble": {
                "listenAddress": format!("127.0.0.1:{listen}"),
                "managementListenAddress": format!("127.0.0.1:{management}"),
                "certificate": dir.join("pebble-cert.pem"),
                "privateKey": dir.join("pebble-key.pem"),
                "httpPort": http_port,
                "tlsPort": tls_port,
                "ocspResponderURL": "",
                "externalAccountBindingRequired": false,
                "certificateValidityPeriod": VALIDITY_SECONDS,
            }
        });
        let config_file = dir.join("pebble-config.json");
        std::fs::write(&config_file, config.to_string()).expect("write the config");
        let pebble = Command::new("pebble")
            .arg("-config")
            .arg(&config_file)
            .args([
                "-dnsserver",
                &format!("127.0.0.1:{dns_port}"),
                "-strict=false",
            ])
            .env("PEBBLE_VA_NOSLEEP", "1")
            .env("PEBBLE_WFE_NONCEREJECT", "0")
            .stdout(std::fs::File::create(&log).expect("log"))
            .stderr(std::fs::File::create(dir.join("pebble.err")).expect("log"))
            .spawn()
            .expect("start pebble (Debian package pebble)");
        let pebble = Pebble {
            pebble: Some(pebble),
            dns,
            directory: format!("https://localhost:{listen}/dir"),
            management: SocketAddr::from(([127, 0, 0, 1], management)),
            ca_file,
            log,
        };
        for port in [listen, management, dns_port] {
            Wait::up_to(Duration::from_secs(20))
                .until(|| std::net::TcpStream::connect(("127.0.0.1", port)).is_ok())
                .unwrap_or_else(|e| {
                    panic!("pebble does not listen on {port}: {e}\n{}", pebble.log())
                });
        }
        pebble
    }

    /// The root that signs what pebble issues (made anew at each start).
    fn issuing_root(&self) -> CertificateDer<'static> {
        let out = Command::new("curl")
            .args(["-sS", "--fail", "--cacert"])
            .arg(&self.ca_file)
            .args([
                "--resolve",
                &format!("localhost:{}:127.0.0.1", self.management.port()),
                &format!("https://localhost:{}/roots/0", self.management.port()),
            ])
            .output()
            .expect("run curl");
        assert!(out.status.success(), "cannot fetch pebble's root: {out:?}");
        CertificateDer::from_pem_slice(&out.stdout).expect("pebble's root in PEM")
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// Stops pebble (its DNS keeps running).
    fn kill(&mut self) {
        if let Some(mut child) = self.pebble.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    fn settings(&self, challenge: AcmeChallenge) -> EnvTlsConfig {
        EnvTlsConfig {
            files: Vec::new(),
            acme: Some(AcmeConfig {
                email: "ops@cutover.test".into(),
                domains: vec![DOMAIN.into()],
                directory: self.directory.clone(),
                directory_ca: Some(self.ca_file.clone()),
                challenge,
                renew_before: cutover::config::defaults::ACME_RENEW_BEFORE,
            }),
        }
    }
}

impl Drop for Pebble {
    fn drop(&mut self) {
        self.kill();
        let _ = self.dns.kill();
        let _ = self.dns.wait();
    }
}

/// The certificate `edge` serves for [`DOMAIN`], checked against pebble's
/// root, and the answer through it.
async fn served(edge: &Edge, root: &CertificateDer<'static>) -> CertificateDer<'static> {
    let (leaf, status) = fetch_over_tls(edge.https, DOMAIN, root)
        .await
        .expect("a TLS request with the ACME certificate");
    assert!(status.contains(" 200 "), "answer: {status}");
    leaf
}

fn mode(path: &Path) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    std::fs::metadata(path)
        .expect("metadata")
        .permissions()
        .mode()
        & 0o777
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http01_issues_a_certificate_that_serves_renews_it_and_a_restart_reuses_it() {
    let dir = TempDir::new().expect("temp dir");
    let listeners = Listeners::bind().await;
    let pebble = Pebble::start(dir.path(), listeners.http_port(), listeners.https_port());
    let settings = pebble.settings(AcmeChallenge::Http01);
    let edge = Edge::start(dir.path(), &settings, listeners)
        .await
        .expect("the edge starts");

    let issued = edge
        .wait_for_events(edge::kinds::CERTIFICATE_ISSUED, 1, Duration::from_secs(30))
        .await;
    assert_eq!(issued.data["renewal"], false, "{issued:?}");
    assert_eq!(issued.data["challenge"], "http-01");
    let root = pebble.issuing_root();
    let first = served(&edge, &root).await;
    assert!(
        edge.proxy.http01().is_empty(),
        "the challenge answer is withdrawn"
    );

    // Stored privately.
    let state = edge::acme_dir(dir.path(), ENV);
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("certificate.pem")), 0o600);
    assert_eq!(mode(&state.join("account.json")), 0o600);
    for e in edge.events().await {
        let text = format!("{} {}", e.message, e.data);
        assert!(
            !text.contains("PRIVATE KEY"),
            "key material in an event: {e:?}"
        );
    }

    // Renewed halfway through its 20 s, and the new one serves.
    let renewed = edge
        .wait_for_events(edge::kinds::CERTIFICATE_ISSUED, 2, Duration::from_secs(30))
        .await;
    assert_eq!(renewed.data["renewal"], true, "{renewed:?}");
    let second = served(&edge, &root).await;
    assert_ne!(first, second, "the renewed certificate serves");

    // A restart serves the stored certificate from its start, before any
    // order (one starts at once: the certificate is inside `renew_before`).
    drop(edge);
    let again = Edge::start(dir.path(), &settings, Listeners::bind().await)
        .await
        .expect("the edge starts again");
    let loaded = again
        .tls
        .certificates()
        .lookup(Some(DOMAIN))
        .expect("the stored certificate is loaded at start");
    assert_eq!(
        loaded.cert.first(),
        Some(&second),
        "the certificate stored last"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_alpn01_issues_a_certificate_and_a_broken_renewal_keeps_it_serving() {
    let dir = TempDir::new().expect("temp dir");
    let listeners = Listeners::bind().await;
    let mut pebble = Pebble::start(dir.path(), listeners.http_port(), listeners.https_port());
    let settings = pebble.settings(AcmeChallenge::TlsAlpn01);
    let edge = Edge::start(dir.path(), &settings, listeners)
        .await
        .expect("the edge starts");

    let issued = edge
        .wait_for_events(edge::kinds::CERTIFICATE_ISSUED, 1, Duration::from_secs(30))
        .await;
    assert_eq!(issued.data["challenge"], "tls-alpn-01");
    let root = pebble.issuing_root();
    let first = served(&edge, &root).await;

    // The ACME server goes away: the renewal (due about 10 s after issue)
    // fails, says why, and the certificate keeps serving.
    pebble.kill();
    let failed = edge
        .wait_for_events(
            edge::kinds::CERTIFICATE_RENEWAL_FAILED,
            1,
            Duration::from_secs(30),
        )
        .await;
    assert!(failed.message.contains("keeps serving"), "{failed:?}");
    println!("{}", failed.message);
    assert!(
        failed.data["error"]
            .as_str()
            .is_some_and(|e| e.contains("directory") || e.contains("connect")),
        "the ACME error is in the event: {failed:?}"
    );
    assert!(
        failed.data["retry_in_seconds"]
            .as_u64()
            .is_some_and(|s| s >= 30)
    );
    assert_eq!(
        served(&edge, &root).await,
        first,
        "the old certificate still serves"
    );
    assert_eq!(
        edge.events()
            .await
            .iter()
            .filter(|e| e.kind == edge::kinds::CERTIFICATE_ISSUED)
            .count(),
        1
    );
}
