//! TLS termination with real clients: SNI with several certificates (checked
//! by a rustls client and by curl verifying against the test CA), HTTP/1.1 and
//! HTTP/2 by ALPN, h2load, a certificate swapped under wrk load, TLS-ALPN-01
//! challenge certificates, HSTS and the redirect listener.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use cutover_proxy::certs::certified_key_from_pem;
use cutover_proxy::rustls;
use cutover_proxy::rustls::client::danger::{
    HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier,
};
use cutover_proxy::rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use cutover_proxy::rustls::sign::CertifiedKey;
use cutover_proxy::{Certificates, ListenerSpec, ProxyConfig, ServiceSpec};
use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, KeyUsagePurpose,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use crate::common::{TestProxy, Upstream};

/// A test certificate authority and the files it wrote.
pub struct Pki {
    _dir: tempfile::TempDir,
    pub ca_pem: PathBuf,
    issuer: CertifiedIssuer<'static, KeyPair>,
}

/// A leaf certificate as rustls serves it.
pub struct Leaf {
    pub key: Arc<CertifiedKey>,
}

impl Leaf {
    pub fn der(&self) -> &CertificateDer<'static> {
        &self.key.cert[0]
    }
}

impl Pki {
    pub fn new() -> Pki {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params
            .distinguished_name
            .push(DnType::CommonName, "cutover test CA");
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let issuer = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key"))
            .expect("CA certificate");
        let ca_pem = dir.path().join("ca.pem");
        std::fs::write(&ca_pem, issuer.pem()).expect("write CA");
        Pki {
            _dir: dir,
            ca_pem,
            issuer,
        }
    }

    /// A leaf for `names`, signed by the CA; the chain is leaf then CA.
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        let key = KeyPair::generate().expect("leaf key");
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
                .expect("leaf params");
        params
            .distinguished_name
            .push(DnType::CommonName, names.first().copied().unwrap_or("leaf"));
        let cert = params.signed_by(&key, &self.issuer).expect("sign leaf");
        let chain_pem = format!("{}{}", cert.pem(), self.issuer.pem());
        let key_pem = key.serialize_pem();
        let parsed = certified_key_from_pem(chain_pem.as_bytes(), key_pem.as_bytes())
            .expect("a valid leaf and key");
        Leaf {
            key: Arc::new(parsed),
        }
    }
}

/// A rustls verifier that accepts any certificate and remembers the leaf.
#[derive(Debug)]
struct Record {
    seen: Mutex<Option<CertificateDer<'static>>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ServerCertVerifier for Record {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        *self.seen.lock().expect("lock") = Some(end_entity.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}

/// A TLS handshake with `sni` (or none) offering `alpn`: the leaf the server
/// presented, the negotiated protocol and the stream.
pub async fn handshake(
    addr: SocketAddr,
    sni: Option<&str>,
    alpn: &[&[u8]],
) -> std::io::Result<(
    CertificateDer<'static>,
    Option<Vec<u8>>,
    tokio_rustls::client::TlsStream<TcpStream>,
)> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let record = Arc::new(Record {
        seen: Mutex::new(None),
        provider: provider.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .dangerous()
        .with_custom_certificate_verifier(record.clone())
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    config.enable_sni = sni.is_some();
    let name = ServerName::try_from(sni.unwrap_or("no-sni.invalid").to_owned()).expect("name");
    let tcp = TcpStream::connect(addr).await?;
    let stream = tokio_rustls::TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await?;
    let alpn = stream.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
    let seen = record.seen.lock().expect("lock").clone();
    Ok((seen.expect("a certificate was presented"), alpn, stream))
}

/// A proxy whose first listener is TLS with `certs`, one upstream "tls-up".
async fn tls_proxy(config: ProxyConfig, certs: &Arc<Certificates>) -> (TestProxy, Upstream) {
    let up = Upstream::start("tls-up").await;
    let p = TestProxy::start_with(
        config,
        ServiceSpec::default(),
        ListenerSpec::tls(certs.server_config()),
    )
    .await;
    p.set_tracks(&[&up], &[]);
    (p, up)
}

/// Runs a command to completion (off the runtime's worker threads).
async fn run(program: &str, args: Vec<String>) -> (bool, String) {
    let out = tokio::process::Command::new(program)
        .args(&args)
        .output()
        .await
        .unwrap_or_else(|e| panic!("run {program} (is it installed?): {e}"));
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

/// curl over HTTPS to `name` (resolved to the proxy), verifying with the CA.
async fn curl(pki: &Pki, addr: SocketAddr, name: &str, path: &str, http: &str) -> String {
    let port = addr.port();
    let (ok, out) = run(
        "curl",
        vec![
            "-sS".into(),
            "--max-time".into(),
            "10".into(),
            http.into(),
            "--cacert".into(),
            pki.ca_pem.display().to_string(),
            "--resolve".into(),
            format!("{name}:{port}:127.0.0.1"),
            "-w".into(),
            "\n%{http_version} %{http_code}".into(),
            format!("https://{name}:{port}{path}"),
        ],
    )
    .await;
    assert!(ok, "curl {http} https://{name}:{port}{path} failed: {out}");
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sni_chooses_the_certificate_and_curl_verifies_it_over_h1_and_h2() {
    let pki = Pki::new();
    let a = pki.leaf(&["a.test"]);
    let b = pki.leaf(&["b.test", "*.b.test"]);
    let certs = Certificates::new();
    certs.set("a", a.key.clone()).expect("set a");
    assert_eq!(
        certs.set("b", b.key.clone()).expect("set b"),
        vec!["b.test", "*.b.test"]
    );
    let (p, _up) = tls_proxy(ProxyConfig::default(), &certs).await;

    for (sni, want) in [
        (Some("a.test"), &a),
        (Some("b.test"), &b),
        (Some("x.b.test"), &b),
        (Some("unknown.test"), &a),
        (None, &a),
    ] {
        let (seen, alpn, _) = handshake(p.addr, sni, &[b"h2", b"http/1.1"])
            .await
            .expect("handshake");
        assert_eq!(&seen, want.der(), "SNI {sni:?} got the wrong certificate");
        assert_eq!(alpn.as_deref(), Some(&b"h2"[..]));
    }

    for name in ["a.test", "b.test", "www.b.test"] {
        let out = curl(&pki, p.addr, name, "/", "--http1.1").await;
        assert!(out.ends_with("tls-up\n1.1 200"), "{name} over h1: {out}");
        let out = curl(&pki, p.addr, name, "/", "--http2").await;
        assert!(out.ends_with("tls-up\n2 200"), "{name} over h2: {out}");
    }
    let out = curl(&pki, p.addr, "a.test", "/echo-headers", "--http2").await;
    assert!(out.contains("x-forwarded-proto: https"), "{out}");
}

/// The "0 failed, 0 errored" of an h2load run, or the whole output.
fn h2load_ok(out: &str, n: u32) -> bool {
    out.contains(&format!(
        "requests: {n} total, {n} started, {n} done, {n} succeeded, 0 failed, 0 errored, 0 timeout"
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2load_over_tls_h2_and_h1_has_no_failures() {
    let pki = Pki::new();
    let certs = Certificates::new();
    certs
        .set("main", pki.leaf(&["localhost"]).key)
        .expect("set");
    let (p, _up) = tls_proxy(ProxyConfig::default(), &certs).await;
    let url = format!("https://127.0.0.1:{}/", p.addr.port());
    for h1 in [false, true] {
        let mut args: Vec<String> = ["-n", "2000", "-c", "10", "-m", "10"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        if h1 {
            args.push("--h1".into());
        }
        args.push(url.clone());
        let (ok, out) = run("h2load", args).await;
        assert!(ok && h2load_ok(&out, 2000), "h2load (h1: {h1}):\n{out}");
        let proto = if h1 { "http/1.1" } else { "h2" };
        assert!(
            out.contains(&format!("Application protocol: {proto}")),
            "{out}"
        );
        println!(
            "h2load {proto}: {}",
            out.lines()
                .find(|l| l.starts_with("finished in"))
                .unwrap_or("")
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn swapping_the_certificate_under_wrk_load_fails_no_request() {
    let pki = Pki::new();
    let first = pki.leaf(&["localhost"]);
    let second = pki.leaf(&["localhost"]);
    let certs = Certificates::new();
    certs.set("main", first.key.clone()).expect("set");
    let (p, _up) = tls_proxy(ProxyConfig::default(), &certs).await;

    let swapping = {
        let certs = certs.clone();
        let keys = [first.key.clone(), second.key.clone()];
        tokio::spawn(async move {
            let mut swaps = 0usize;
            let end = tokio::time::Instant::now() + Duration::from_secs(3);
            while tokio::time::Instant::now() < end {
                certs.set("main", keys[swaps % 2].clone()).expect("swap");
                swaps += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            certs.set("main", keys[1].clone()).expect("swap");
            swaps
        })
    };
    // Half the connections close after each request, so handshakes go on
    // through the swaps; the other half stay open across them.
    let url = format!("https://127.0.0.1:{}/", p.addr.port());
    let closing = run(
        "wrk",
        vec![
            "-t1".into(),
            "-c8".into(),
            "-d3s".into(),
            "-H".into(),
            "Connection: close".into(),
            url.clone(),
        ],
    );
    let keeping = run(
        "wrk",
        vec!["-t1".into(), "-c8".into(), "-d3s".into(), url.clone()],
    );
    let ((ok1, out1), (ok2, out2)) = tokio::join!(closing, keeping);
    let swaps = swapping.await.expect("swapper");
    for (ok, out) in [(ok1, &out1), (ok2, &out2)] {
        assert!(ok, "wrk failed: {out}");
        assert!(
            !out.contains("Socket errors"),
            "wrk saw socket errors:\n{out}"
        );
        assert!(!out.contains("Non-2xx"), "wrk saw non-2xx answers:\n{out}");
        let requests: u64 = out
            .lines()
            .find_map(|l| l.trim().split_once(" requests in "))
            .and_then(|(n, _)| n.trim().parse().ok())
            .unwrap_or(0);
        assert!(requests > 100, "too few requests to mean anything:\n{out}");
    }
    println!("{swaps} swaps\nwrk (Connection: close):\n{out1}\nwrk (keep-alive):\n{out2}");
    assert!(swaps > 50, "only {swaps} swaps");
    let (seen, _, _) = handshake(p.addr, None, &[b"http/1.1"])
        .await
        .expect("handshake");
    assert_eq!(&seen, second.der(), "the last certificate set is served");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acme_tls_alpn_gets_only_the_challenge_certificate_then_is_closed() {
    let pki = Pki::new();
    let real = pki.leaf(&["a.test"]);
    let certs = Certificates::new();
    certs.set("main", real.key.clone()).expect("set");
    let (p, _up) = tls_proxy(ProxyConfig::default(), &certs).await;

    // No challenge pending: the handshake is refused rather than answered
    // with the real certificate.
    assert!(
        handshake(p.addr, Some("a.test"), &[b"acme-tls/1"])
            .await
            .is_err()
    );

    let challenge = rcgen::generate_simple_self_signed(vec!["a.test".to_owned()]).expect("cert");
    let challenge = Arc::new(
        certified_key_from_pem(
            challenge.cert.pem().as_bytes(),
            challenge.signing_key.serialize_pem().as_bytes(),
        )
        .expect("challenge key"),
    );
    certs.set_alpn_challenge("A.test", Some(challenge.clone()));
    let (seen, alpn, mut stream) = handshake(p.addr, Some("a.test"), &[b"acme-tls/1"])
        .await
        .expect("challenge handshake");
    assert_eq!(seen, challenge.cert[0]);
    assert_eq!(alpn.as_deref(), Some(&b"acme-tls/1"[..]));
    // The proxy closes right after the handshake; no HTTP is served.
    let _ = stream
        .write_all(b"GET / HTTP/1.1\r\nHost: a.test\r\n\r\n")
        .await;
    let mut buf = Vec::new();
    let read = tokio::time::timeout(Duration::from_secs(5), stream.read_to_end(&mut buf))
        .await
        .expect("closed promptly");
    assert!(
        buf.is_empty(),
        "served after an acme-tls/1 handshake: {read:?}"
    );

    // Ordinary clients still get the real certificate.
    let (seen, _, _) = handshake(p.addr, Some("a.test"), &[b"h2"])
        .await
        .expect("handshake");
    assert_eq!(&seen, real.der());
    certs.set_alpn_challenge("a.test", None);
    assert!(
        handshake(p.addr, Some("a.test"), &[b"acme-tls/1"])
            .await
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hsts_is_sent_on_tls_listeners_only() {
    let pki = Pki::new();
    let certs = Certificates::new();
    certs.set("main", pki.leaf(&["a.test"]).key).expect("set");
    let config = ProxyConfig {
        hsts: Some(Duration::from_secs(31_536_000)),
        ..ProxyConfig::default()
    };
    let (p, _up) = tls_proxy(config, &certs).await;
    let plain = p.add_listener(ListenerSpec::plain()).await;

    for http in ["--http1.1", "--http2"] {
        let out = curl_headers(&pki, p.addr, http).await;
        assert!(
            out.to_ascii_lowercase()
                .contains("strict-transport-security: max-age=31536000"),
            "{out}"
        );
    }
    let got = crate::common::get(&crate::common::client(), &format!("http://{plain}/")).await;
    assert_eq!(got.status, 200);
    assert!(!got.headers.contains_key("strict-transport-security"));
}

async fn curl_headers(pki: &Pki, addr: SocketAddr, http: &str) -> String {
    let port = addr.port();
    let (ok, out) = run(
        "curl",
        vec![
            "-sS".into(),
            "-D".into(),
            "-".into(),
            "-o".into(),
            "/dev/null".into(),
            http.into(),
            "--cacert".into(),
            pki.ca_pem.display().to_string(),
            "--resolve".into(),
            format!("a.test:{port}:127.0.0.1"),
            format!("https://a.test:{port}/"),
        ],
    )
    .await;
    assert!(ok, "{out}");
    out
}

/// Sends one raw HTTP/1.1 request and reads the whole answer (the request
/// asks the server to close).
async fn raw(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    s.write_all(request.as_bytes()).await.expect("write");
    let mut buf = Vec::new();
    tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut buf))
        .await
        .expect("answer in time")
        .expect("read");
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_redirect_listener_sends_308_to_https_and_answers_http01() {
    let up = Upstream::start("redirect-up").await;
    let p = TestProxy::start_with(
        ProxyConfig::default(),
        ServiceSpec::default(),
        ListenerSpec::redirect_to_https(8443),
    )
    .await;
    p.set_tracks(&[&up], &[]);
    let on_443 = p.add_listener(ListenerSpec::redirect_to_https(443)).await;

    let cases = [
        (
            p.addr,
            "/a/b?c=d",
            "example.test:80",
            "https://example.test:8443/a/b?c=d",
        ),
        (
            on_443,
            "/a/b?c=d",
            "Example.test",
            "https://Example.test/a/b?c=d",
        ),
        (on_443, "/", "[::1]:80", "https://[::1]/"),
    ];
    for (addr, path, host, location) in cases {
        let out = raw(
            addr,
            &format!("POST {path} HTTP/1.1\r\nHost: {host}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"),
        )
        .await;
        assert!(out.starts_with("HTTP/1.1 308 "), "{out}");
        assert!(
            out.to_ascii_lowercase()
                .contains(&format!("location: {}\r\n", location.to_ascii_lowercase())),
            "{out}"
        );
    }
    let out = raw(
        p.addr,
        "GET / HTTP/1.1\r\nHost: bad host\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 400 "), "{out}");

    // A pending HTTP-01 challenge is answered, not redirected.
    p.proxy.http01().insert("tok-9", "tok-9.thumbprint");
    let out = raw(
        p.addr,
        "GET /.well-known/acme-challenge/tok-9 HTTP/1.1\r\nHost: example.test\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(out.starts_with("HTTP/1.1 200 "), "{out}");
    assert!(out.ends_with("tok-9.thumbprint"), "{out}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tls_client_that_never_finishes_its_handshake_is_closed_at_the_deadline() {
    let pki = Pki::new();
    let certs = Certificates::new();
    certs.set("main", pki.leaf(&["a.test"]).key).expect("set");
    let config = ProxyConfig {
        first_request_timeout: Duration::from_millis(800),
        ..ProxyConfig::default()
    };
    let (p, _up) = tls_proxy(config, &certs).await;
    // After a TLS handshake the first request is also due by the deadline.
    let (_, _, mut after_handshake) = handshake(p.addr, Some("a.test"), &[b"http/1.1"])
        .await
        .expect("handshake");
    let mut silent = TcpStream::connect(p.addr).await.expect("connect");
    let started = std::time::Instant::now();
    let mut buf = [0u8; 64];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf))
        .await
        .expect("closed in time");
    assert!(matches!(read, Ok(0) | Err(_)), "{read:?}");
    assert!(
        started.elapsed() >= Duration::from_millis(700),
        "closed too early"
    );
    let mut rest = Vec::new();
    let read = tokio::time::timeout(
        Duration::from_secs(5),
        after_handshake.read_to_end(&mut rest),
    )
    .await
    .expect("closed in time");
    assert!(rest.is_empty(), "{read:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_app_that_sets_hsts_itself_keeps_its_value() {
    // An app answering with its own Strict-Transport-Security.
    let app = tokio::net::TcpListener::bind("127.0.0.1:0")
        .await
        .expect("bind app");
    let app_addr = app.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((stream, _)) = app.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_req| async {
                    hyper::Response::builder()
                        .header("strict-transport-security", "max-age=5; includeSubDomains")
                        .body(http_body_util::Full::new(bytes::Bytes::from_static(b"own")))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    let pki = Pki::new();
    let certs = Certificates::new();
    certs.set("main", pki.leaf(&["a.test"]).key).expect("set");
    let config = ProxyConfig {
        hsts: Some(Duration::from_secs(31_536_000)),
        ..ProxyConfig::default()
    };
    let p = TestProxy::start_with(
        config,
        ServiceSpec::default(),
        ListenerSpec::tls(certs.server_config()),
    )
    .await;
    p.proxy
        .set_instances(
            "app",
            cutover_proxy::Track::Stable,
            vec![cutover_proxy::Instance::new("own-hsts", app_addr)],
        )
        .expect("instances");
    let out = curl_headers(&pki, p.addr, "--http1.1")
        .await
        .to_ascii_lowercase();
    assert!(
        out.contains("strict-transport-security: max-age=5; includesubdomains"),
        "{out}"
    );
    assert_eq!(out.matches("strict-transport-security").count(), 1, "{out}");
}
