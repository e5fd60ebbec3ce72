//! The edge: where an environment's TLS certificates come from.
//!
//! - `files.rs`: certificate/key files, loaded into the proxy's SNI
//!   resolver (`cutover_proxy::certs::Certificates`), watched, and reloaded
//!   when they change or on SIGHUP; a broken new file keeps the old
//!   certificate and raises an event saying why.
//! - `acme.rs`: certificates ordered from an ACME server (Let's Encrypt by
//!   default), stored under the state directory, renewed before they expire,
//!   with the proxy answering HTTP-01 or TLS-ALPN-01 itself.
//!
//! Everything that happens to a certificate after start is an environment
//! event ([`EdgeEvents`]; the store keeps them in `environment_events`).
//! Events and logs name files, domains and expiry times; never key material.

mod acme;
mod files;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use cutover_proxy::Proxy;
use cutover_proxy::certs::Certificates;
use cutover_proxy::rustls;
use tokio_util::sync::CancellationToken;

pub use crate::config::{AcmeChallenge, AcmeConfig, EnvTlsConfig, TlsFilesConfig};
pub use acme::ACME_SOURCE;
pub use files::CertFiles;

/// How often certificate files are checked for a change.
pub const FILE_POLL_INTERVAL: Duration = Duration::from_secs(1);

/// Kinds of environment events the edge raises.
pub mod kinds {
    /// A certificate file pair was read again and now serves.
    pub const CERTIFICATE_RELOADED: &str = "certificate_reloaded";
    /// A changed certificate file pair could not be used; the old one serves.
    pub const CERTIFICATE_RELOAD_FAILED: &str = "certificate_reload_failed";
    /// A certificate was obtained by ACME and now serves.
    pub const CERTIFICATE_ISSUED: &str = "certificate_issued";
    /// Ordering the first certificate by ACME failed; it is retried.
    pub const CERTIFICATE_ORDER_FAILED: &str = "certificate_order_failed";
    /// Renewing a certificate by ACME failed; the old one serves, and the
    /// renewal is retried.
    pub const CERTIFICATE_RENEWAL_FAILED: &str = "certificate_renewal_failed";
}

/// One event of an environment outside any deployment.
#[derive(Debug, Clone, PartialEq)]
pub struct EdgeEvent {
    /// The environment.
    pub environment: String,
    /// One of [`kinds`].
    pub kind: &'static str,
    /// For people.
    pub message: String,
    /// Details (files, domains, expiry, errors); never key material.
    pub data: serde_json::Value,
}

/// Where the edge's events go (the state store in the daemon).
pub trait EdgeEvents: Send + Sync + 'static {
    /// Records `event`. Failing to record is the sink's to log.
    fn record(&self, event: EdgeEvent) -> Pin<Box<dyn Future<Output = ()> + Send + '_>>;
}

impl EdgeEvents for crate::store::Store {
    fn record(&self, event: EdgeEvent) -> Pin<Box<dyn Future<Output = ()> + Send + '_>> {
        Box::pin(async move {
            let written = self
                .add_environment_event(
                    &event.environment,
                    event.kind,
                    &event.message,
                    event.data.clone(),
                )
                .await;
            if let Err(e) = written {
                tracing::warn!(
                    environment = %event.environment,
                    kind = event.kind,
                    message = %event.message,
                    error = %e,
                    "cannot record an environment event in the state store"
                );
            }
        })
    }
}

/// Why an environment's TLS cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EdgeError {
    /// A configured certificate/key pair cannot be used.
    #[error(
        "environment {environment}: cannot use the certificate {cert} with the key {key}: {reason}. \
         Fix the files (the certificate chain in PEM, leaf first, and the private key that \
         matches it) and start again"
    )]
    CertFile {
        /// The environment.
        environment: String,
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What is wrong.
        reason: String,
    },
    /// The ACME state directory cannot be created or used.
    #[error(
        "environment {environment}: cannot use the ACME state directory {path}: {source}. \
         Make it writable by the user running cutover"
    )]
    StateDir {
        /// The environment.
        environment: String,
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The environment's ACME settings cannot work.
    #[error("environment {environment}: ACME: {reason}")]
    Acme {
        /// The environment.
        environment: String,
        /// What is wrong, and what to do.
        reason: String,
    },
    /// `tls` names neither files nor ACME.
    #[error(
        "environment {environment}: `tls` names no certificate: give `cert` and `key`, \
         `certificates`, or `acme`"
    )]
    NoCertificate {
        /// The environment.
        environment: String,
    },
}

/// An environment's TLS, started: the server configuration for its TLS
/// listener, and what reloads it.
pub struct EdgeTls {
    certificates: Arc<Certificates>,
    files: Option<Arc<CertFiles>>,
}

impl EdgeTls {
    /// The rustls configuration for the environment's TLS listener
    /// (certificates chosen by SNI; ALPN h2, http/1.1 and `acme-tls/1`).
    pub fn server_config(&self) -> Arc<rustls::ServerConfig> {
        self.certificates.server_config()
    }

    /// The resolver the listener serves from.
    pub fn certificates(&self) -> &Arc<Certificates> {
        &self.certificates
    }

    /// Reads every certificate file again now (SIGHUP): a good pair replaces
    /// the one serving, a broken one is kept out with an event.
    pub async fn reload_now(&self) {
        if let Some(files) = &self.files {
            files.reload_now().await;
        }
    }
}

/// The ACME state directory of `environment`:
/// `<base_dir>/.cutover/acme/<environment>/`.
pub fn acme_dir(base_dir: &Path, environment: &str) -> PathBuf {
    base_dir.join(".cutover").join("acme").join(environment)
}

/// Starts the TLS of `environment`: loads its certificate files (a broken
/// one is a start error) and watches them until `stop`; with ACME, loads the
/// stored certificate if it is still good for the configured domains and
/// keeps a task that orders (at once when there is none) and renews it,
/// answering challenges through `proxy`. `state_dir` holds the ACME account
/// and certificates (see [`acme_dir`]).
///
/// Returns once the files are loaded; an ACME order runs in the background
/// (its listener must already serve to answer the challenge).
pub async fn start_environment_tls(
    environment: &str,
    settings: &EnvTlsConfig,
    state_dir: &Path,
    proxy: &Proxy,
    events: Arc<dyn EdgeEvents>,
    stop: CancellationToken,
) -> Result<EdgeTls, EdgeError> {
    if settings.files.is_empty() && settings.acme.is_none() {
        return Err(EdgeError::NoCertificate {
            environment: environment.to_owned(),
        });
    }
    let certificates = Certificates::new();
    let files = if settings.files.is_empty() {
        None
    } else {
        let files = CertFiles::load(
            environment,
            &settings.files,
            certificates.clone(),
            events.clone(),
        )?;
        files.spawn_watch(FILE_POLL_INTERVAL, stop.clone());
        Some(files)
    };
    if let Some(acme_settings) = &settings.acme {
        let acme = acme::Acme::prepare(
            environment,
            acme_settings,
            state_dir,
            certificates.clone(),
            proxy.clone(),
            events,
        )?;
        tokio::spawn(acme.run(stop));
    }
    Ok(EdgeTls {
        certificates,
        files,
    })
}

/// Reloads every environment's certificate files on each SIGHUP, until `stop`.
pub fn spawn_reload_on_sighup(tls: Vec<Arc<EdgeTls>>, stop: CancellationToken) {
    use tokio::signal::unix::{SignalKind, signal};
    let Ok(mut hup) = signal(SignalKind::hangup()) else {
        tracing::warn!("cannot listen for SIGHUP: certificate files reload only when they change");
        return;
    };
    tokio::spawn(async move {
        loop {
            tokio::select! {
                () = stop.cancelled() => return,
                got = hup.recv() => {
                    if got.is_none() {
                        return;
                    }
                    tracing::info!("SIGHUP: reading certificate files again");
                    for t in &tls {
                        t.reload_now().await;
                    }
                }
            }
        }
    });
}
