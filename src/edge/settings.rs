//! What the edge needs to know about one environment's certificates: plain
//! values the daemon maps the resolved configuration
//! (`[environment.NAME] tls = { … }`) onto. Paths are absolute; defaults are
//! the constants below.

use std::path::PathBuf;
use std::time::Duration;

/// Let's Encrypt's production directory, the default `acme.directory`.
pub const LETS_ENCRYPT_PRODUCTION: &str = crate::config::defaults::ACME_DIRECTORY;

/// How long before a certificate expires its renewal starts: 30 days
/// (`acme.renew_before`).
pub const DEFAULT_RENEW_BEFORE: Duration = crate::config::defaults::ACME_RENEW_BEFORE;

/// One environment's TLS: certificate files, and/or ACME.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EnvTlsSettings {
    /// Certificate/key pairs read from files (`tls.cert`/`tls.key`, then
    /// `tls.certificates`), chosen by SNI.
    pub files: Vec<TlsFiles>,
    /// Certificates obtained by ACME (`tls.acme`).
    pub acme: Option<AcmeSettings>,
}

/// A certificate chain and its private key, PEM files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain: the leaf first, then intermediates.
    pub cert: PathBuf,
    /// The private key of the leaf (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
}

/// Automatic certificates for `domains` from an ACME server.
#[derive(Debug, Clone, PartialEq)]
pub struct AcmeSettings {
    /// The account's contact address.
    pub email: String,
    /// The names of the one certificate ordered (lower case).
    pub domains: Vec<String>,
    /// The ACME directory URL ([`LETS_ENCRYPT_PRODUCTION`] by default).
    pub directory: String,
    /// A PEM file with the CA certificate to trust for the directory's own
    /// HTTPS (a private ACME server, pebble); the system's roots otherwise.
    pub directory_ca: Option<PathBuf>,
    /// Which challenge the proxy answers.
    pub challenge: AcmeChallenge,
    /// How long before expiry renewal starts ([`DEFAULT_RENEW_BEFORE`]).
    pub renew_before: Duration,
}

/// The ACME challenge type the proxy answers itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AcmeChallenge {
    /// `http-01`: `GET /.well-known/acme-challenge/<token>` on port 80 (the
    /// default when the environment has a `redirect_listen`).
    Http01,
    /// `tls-alpn-01`: a challenge certificate for the ALPN protocol
    /// `acme-tls/1` on port 443 (the default otherwise).
    TlsAlpn01,
}

impl AcmeChallenge {
    /// The name ACME and the configuration use: `http-01` or `tls-alpn-01`.
    pub fn as_str(self) -> &'static str {
        match self {
            AcmeChallenge::Http01 => "http-01",
            AcmeChallenge::TlsAlpn01 => "tls-alpn-01",
        }
    }
}

impl From<&crate::config::EnvTlsConfig> for EnvTlsSettings {
    fn from(tls: &crate::config::EnvTlsConfig) -> EnvTlsSettings {
        EnvTlsSettings {
            files: tls
                .files
                .iter()
                .map(|f| TlsFiles {
                    cert: f.cert.clone(),
                    key: f.key.clone(),
                })
                .collect(),
            acme: tls.acme.as_ref().map(|a| AcmeSettings {
                email: a.email.clone(),
                domains: a.domains.clone(),
                directory: a.directory.clone(),
                directory_ca: a.directory_ca.clone(),
                challenge: match a.challenge {
                    crate::config::AcmeChallenge::Http01 => AcmeChallenge::Http01,
                    crate::config::AcmeChallenge::TlsAlpn01 => AcmeChallenge::TlsAlpn01,
                },
                renew_before: a.renew_before,
            }),
        }
    }
}
