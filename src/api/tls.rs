//! The daemon's API over HTTPS (`[server] tls`). The daemon's side loads the
//! configured certificate and key (with the proxy's PEM loading, which
//! refuses an empty chain or a key of another certificate), accepts TLS with
//! tokio-rustls and serves the API's router with hyper-util (HTTP/1.1 or
//! HTTP/2 by ALPN), finishing open requests on shutdown; it reads the files
//! again on SIGHUP and when they change (a file that cannot be used keeps the
//! previous certificate, with a warning). The CLI's side
//! trusts exactly the certificate the config names (pinned), so a
//! self-signed certificate works without a CA and a different certificate is
//! refused whatever signed it.

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use cutover_proxy::certs::{self, Certificates, TlsError};
use cutover_proxy::rustls;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpListener;
use tokio_util::sync::CancellationToken;

use crate::config::TlsFilesConfig;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a client may take to send a request's head (HTTP/1.1).
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(10);
/// Pause after a failed accept (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// How often the API's certificate files are checked for a change.
const RELOAD_POLL: Duration = Duration::from_secs(2);
/// The source name of the API's certificate in its store.
const SOURCE: &str = "api";

/// The API's certificate store, loaded from `tls`, and the rustls
/// configuration that serves it (ALPN `h2` and `http/1.1`).
pub fn server_config(
    tls: &TlsFilesConfig,
) -> Result<(Arc<Certificates>, Arc<rustls::ServerConfig>), TlsError> {
    let key = certs::load_pem_files(&tls.cert, &tls.key)?;
    let store = Certificates::new();
    store.set(SOURCE, Arc::new(key))?;
    let config = store.server_config();
    Ok((store, config))
}

/// Reads the certificate files of `tls` into `store` again on SIGHUP and
/// whenever either file changes, until `stop`. New handshakes get the new
/// certificate; a file that cannot be used keeps the previous one.
pub async fn keep_fresh(store: Arc<Certificates>, tls: TlsFilesConfig, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let mut hangup = signal(SignalKind::hangup()).ok();
    let mut seen = stamp(&tls);
    let mut tick = tokio::time::interval(RELOAD_POLL);
    loop {
        let why = tokio::select! {
            () = stop.cancelled() => return,
            _ = tick.tick() => {
                let now = stamp(&tls);
                if now == seen {
                    continue;
                }
                seen = now;
                "the files changed"
            }
            Some(()) = async {
                match hangup.as_mut() {
                    Some(hangup) => hangup.recv().await,
                    None => std::future::pending().await,
                }
            } => "SIGHUP",
        };
        let loaded = certs::load_pem_files(&tls.cert, &tls.key)
            .and_then(|key| store.set(SOURCE, Arc::new(key)));
        match loaded {
            Ok(_) => {
                tracing::info!(cert = %tls.cert.display(), "reloaded the API's certificate ({why})")
            }
            Err(e) => tracing::warn!(
                error = %e,
                "kept the API's previous certificate ({why}): the new files cannot be used; fix them, they are read again when they change"
            ),
        }
    }
}

/// What identifies a version of the two files: modification time and size.
fn stamp(tls: &TlsFilesConfig) -> Option<[(std::time::SystemTime, u64); 2]> {
    let one = |path: &Path| {
        let meta = std::fs::metadata(path).ok()?;
        Some((meta.modified().ok()?, meta.len()))
    };
    Some([one(&tls.cert)?, one(&tls.key)?])
}

/// Serves `router` over TLS on `listener` until `stop`, then lets open
/// requests finish.
pub async fn serve(
    listener: TcpListener,
    config: Arc<rustls::ServerConfig>,
    router: Router,
    stop: CancellationToken,
) {
    let acceptor = tokio_rustls::TlsAcceptor::from(config);
    let graceful = GracefulShutdown::new();
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(HEADER_READ_TIMEOUT);
    loop {
        let tcp = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((tcp, _)) => tcp,
                Err(e) => {
                    tracing::warn!(error = %e, "the API could not accept a connection");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stop.cancelled() => break,
        };
        let acceptor = acceptor.clone();
        let router = router.clone();
        let builder = builder.clone();
        let watcher = graceful.watcher();
        tokio::spawn(async move {
            let tls = match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                Ok(Ok(tls)) => tls,
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "API TLS handshake failed");
                    return;
                }
                Err(_) => return,
            };
            let service = TowerToHyperService::new(router);
            let conn = builder
                .serve_connection_with_upgrades(TokioIo::new(tls), service)
                .into_owned();
            if let Err(e) = watcher.watch(conn).await {
                tracing::debug!(error = %e, "API connection ended with an error");
            }
        });
    }
    drop(listener);
    graceful.shutdown().await;
}

/// A client configuration that accepts exactly the leaf certificate of the
/// PEM chain at `cert` (the daemon's `[server] tls.cert`).
pub fn pinned_client_config(cert: &Path) -> Result<Arc<rustls::ClientConfig>, String> {
    let leaf = CertificateDer::pem_file_iter(cert)
        .map_err(|e| format!("cannot read {}: {e}", cert.display()))?
        .next()
        .ok_or_else(|| format!("{} holds no certificate", cert.display()))?
        .map_err(|e| format!("cannot read {}: {e}", cert.display()))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let verifier = Arc::new(Pinned {
        leaf,
        provider: provider.clone(),
    });
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier)
        .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// Trusts one certificate, byte for byte; signatures are still verified, so
/// only the holder of its key can complete the handshake.
#[derive(Debug)]
struct Pinned {
    leaf: CertificateDer<'static>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for Pinned {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if end_entity.as_ref() == self.leaf.as_ref() {
            Ok(ServerCertVerified::assertion())
        } else {
            Err(rustls::Error::General(
                "the daemon presented a certificate other than [server] tls.cert".to_owned(),
            ))
        }
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
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
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.provider.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider
            .signature_verification_algorithms
            .supported_schemes()
    }
}
