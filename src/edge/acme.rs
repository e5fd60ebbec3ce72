//! Certificates by ACME (RFC 8555) with `instant-acme`: one certificate for
//! an environment's `domains`, ordered when there is none, renewed
//! `renew_before` its expiry.
//!
//! The proxy answers the challenge itself: HTTP-01 through its
//! `/.well-known/acme-challenge/` answers (`Proxy::http01`), TLS-ALPN-01
//! through a challenge certificate its resolver hands out for the ALPN
//! protocol `acme-tls/1` (`Certificates::set_alpn_challenge`); both are
//! withdrawn when the order ends, whatever its outcome.
//!
//! The account and the certificate live in the environment's ACME state
//! directory (`<config dir>/.cutover/acme/<environment>/`, mode 0700):
//! `account.json` (the account's key and URL, for the directory it was made
//! on) and `certificate.pem` (the chain, then its private key), each mode
//! 0600 and written through a temporary file renamed into place, so a crash
//! leaves the old file or the new one. On start a stored certificate serves
//! if it covers every configured domain and has not expired.
//!
//! A failed order keeps the certificate that serves (if any), raises
//! `certificate_renewal_failed` (or `certificate_order_failed` when there is
//! none yet) with the ACME error, and is tried again after an exponential
//! backoff (1 min doubling to 1 h, with jitter).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use backon::BackoffBuilder;
use cutover_proxy::Proxy;
use cutover_proxy::certs::{self, Certificates};
use cutover_proxy::rustls;
use cutover_proxy::rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
use cutover_proxy::rustls::sign::CertifiedKey;
use instant_acme::{
    Account, AccountCredentials, AuthorizationStatus, ChallengeType, Identifier, NewAccount,
    NewOrder, Order, OrderStatus, RetryPolicy,
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio_util::sync::CancellationToken;

use super::{EdgeError, EdgeEvent, EdgeEvents, kinds};
use crate::config::{AcmeChallenge, AcmeConfig};

/// The resolver source name of the ACME certificate.
pub const ACME_SOURCE: &str = "acme";

/// The first retry of a failed order waits this long, then doubles.
const RETRY_MIN: Duration = Duration::from_secs(60);
/// Retries never wait longer than this.
const RETRY_MAX: Duration = Duration::from_secs(60 * 60);
/// The longest sleep before the renewal time is computed again (so a
/// changed wall clock is noticed).
const RECHECK: Duration = Duration::from_secs(60 * 60);
/// How long an order may wait for the server to validate, and to issue.
const ORDER_POLL_TIMEOUT: Duration = Duration::from_secs(90);

const ACCOUNT_FILE: &str = "account.json";
const CERTIFICATE_FILE: &str = "certificate.pem";
const KEY_MARKER: &str = "-----BEGIN PRIVATE KEY-----";

/// The account as stored: for which directory, and its credentials.
#[derive(Serialize, Deserialize)]
struct StoredAccount {
    directory: String,
    credentials: serde_json::Value,
}

/// One environment's ACME certificate and the task that keeps it.
pub(crate) struct Acme {
    environment: String,
    settings: AcmeConfig,
    dir: PathBuf,
    certificates: Arc<Certificates>,
    proxy: Proxy,
    events: Arc<dyn EdgeEvents>,
    /// The expiry of the certificate serving, if one does.
    current: Option<SystemTime>,
}

/// A certificate just obtained.
struct Issued {
    pem: String,
    key: CertifiedKey,
    not_after: SystemTime,
}

impl Acme {
    /// Checks the settings, creates the state directory and loads a stored
    /// certificate that is still good.
    pub(crate) fn prepare(
        environment: &str,
        settings: &AcmeConfig,
        dir: &Path,
        certificates: Arc<Certificates>,
        proxy: Proxy,
        events: Arc<dyn EdgeEvents>,
    ) -> Result<Acme, EdgeError> {
        let acme_error = |reason: String| EdgeError::Acme {
            environment: environment.to_owned(),
            reason,
        };
        if settings.domains.is_empty() {
            return Err(acme_error(
                "`domains` is empty: name the domains the certificate is for".into(),
            ));
        }
        if let Some(ca) = &settings.directory_ca {
            fs::read(ca).map_err(|e| {
                acme_error(format!(
                    "cannot read directory_ca {}: {e}; give a PEM file with the CA certificate \
                     of the ACME server's HTTPS",
                    ca.display()
                ))
            })?;
        }
        make_private_dir(dir).map_err(|source| EdgeError::StateDir {
            environment: environment.to_owned(),
            path: dir.to_owned(),
            source,
        })?;
        let mut acme = Acme {
            environment: environment.to_owned(),
            settings: settings.clone(),
            dir: dir.to_owned(),
            certificates,
            proxy,
            events,
            current: None,
        };
        acme.current = acme.load_stored();
        Ok(acme)
    }

    /// Loads `certificate.pem` into the resolver if it covers every domain
    /// and has not expired; its expiry.
    fn load_stored(&self) -> Option<SystemTime> {
        let path = self.dir.join(CERTIFICATE_FILE);
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(environment = %self.environment, path = %path.display(), error = %e,
                    "cannot read the stored ACME certificate; ordering a new one");
                return None;
            }
        };
        let loaded = split_pem(&text)
            .ok_or_else(|| "no private key after the chain".to_owned())
            .and_then(|(chain, key)| {
                certs::certified_key_from_pem(chain.as_bytes(), key.as_bytes())
                    .map_err(|e| e.to_string())
            });
        let key = match loaded {
            Ok(key) => key,
            Err(e) => {
                tracing::warn!(environment = %self.environment, path = %path.display(), error = %e,
                    "the stored ACME certificate cannot be used; ordering a new one");
                return None;
            }
        };
        let not_after = certs::not_after(&key)?;
        if not_after <= SystemTime::now() {
            tracing::info!(environment = %self.environment, "the stored ACME certificate has expired; ordering a new one");
            return None;
        }
        let names = self.certificates.set(ACME_SOURCE, Arc::new(key)).ok()?;
        let missing = missing_domains(&self.settings.domains, &names);
        if !missing.is_empty() {
            self.certificates.remove(ACME_SOURCE);
            tracing::info!(environment = %self.environment, missing = ?missing,
                "the stored ACME certificate does not cover every configured domain; ordering a new one");
            return None;
        }
        tracing::info!(environment = %self.environment, names = ?names,
            not_after = %rfc3339(not_after), "serving the stored ACME certificate");
        Some(not_after)
    }

    /// Orders and renews until `stop`.
    pub(crate) async fn run(mut self, stop: CancellationToken) {
        let mut fresh = false;
        let mut retries = backoff();
        let mut retry_at: Option<SystemTime> = None;
        loop {
            let now = SystemTime::now();
            let due = retry_at.unwrap_or_else(|| match self.current {
                Some(not_after) => renewal_time(not_after, self.settings.renew_before, fresh, now),
                None => now,
            });
            if let Ok(wait) = due.duration_since(now)
                && !wait.is_zero()
            {
                tokio::select! {
                    () = stop.cancelled() => return,
                    () = tokio::time::sleep(wait.min(RECHECK)) => continue,
                }
            }
            let result = tokio::select! {
                () = stop.cancelled() => return,
                r = self.order() => r,
            };
            match result {
                Ok(issued) => {
                    retries = backoff();
                    retry_at = None;
                    fresh = true;
                    self.install(issued).await;
                }
                Err(why) => {
                    let delay = retries.next().unwrap_or(RETRY_MAX);
                    retry_at = Some(SystemTime::now() + delay);
                    self.failed(&why, delay).await;
                }
            }
        }
    }

    /// Stores, serves and announces a new certificate.
    async fn install(&mut self, issued: Issued) {
        let renewal = self.current.is_some();
        let path = self.dir.join(CERTIFICATE_FILE);
        if let Err(e) = write_private(&path, issued.pem.as_bytes()) {
            tracing::warn!(environment = %self.environment, path = %path.display(), error = %e,
                "cannot store the new ACME certificate; it serves until the daemon stops");
        }
        let names = match self.certificates.set(ACME_SOURCE, Arc::new(issued.key)) {
            Ok(names) => names,
            Err(e) => {
                // The server's answer was checked when it was read; this is
                // not expected, but say so rather than serve nothing new.
                tracing::warn!(environment = %self.environment, error = %e,
                    "the resolver refused the new ACME certificate");
                return;
            }
        };
        self.current = Some(issued.not_after);
        let until = rfc3339(issued.not_after);
        tracing::info!(environment = %self.environment, names = ?names, not_after = %until,
            "ACME certificate issued");
        self.events
            .record(EdgeEvent {
                environment: self.environment.clone(),
                kind: kinds::CERTIFICATE_ISSUED,
                message: format!(
                    "{} a certificate for {} from {} ({}): valid until {until}",
                    if renewal { "renewed" } else { "obtained" },
                    names.join(", "),
                    self.settings.directory,
                    self.settings.challenge.as_str(),
                ),
                data: json!({
                    "domains": names,
                    "not_after": until,
                    "renewal": renewal,
                    "directory": self.settings.directory,
                    "challenge": self.settings.challenge.as_str(),
                }),
            })
            .await;
    }

    /// Announces a failed order.
    async fn failed(&self, why: &str, retry_in: Duration) {
        let retry = humantime::format_duration(Duration::from_secs(retry_in.as_secs()));
        let (kind, message) = match self.current {
            Some(not_after) => (
                kinds::CERTIFICATE_RENEWAL_FAILED,
                format!(
                    "renewing the certificate for {} failed: {why}. The current certificate \
                     (valid until {}) keeps serving; trying again in {retry}",
                    self.settings.domains.join(", "),
                    rfc3339(not_after)
                ),
            ),
            None => (
                kinds::CERTIFICATE_ORDER_FAILED,
                format!(
                    "ordering a certificate for {} failed: {why}. Check that the domains point \
                     at this proxy and that the ACME directory is reachable; trying again in {retry}",
                    self.settings.domains.join(", ")
                ),
            ),
        };
        tracing::warn!(environment = %self.environment, "{message}");
        self.events
            .record(EdgeEvent {
                environment: self.environment.clone(),
                kind,
                message,
                data: json!({
                    "domains": self.settings.domains,
                    "directory": self.settings.directory,
                    "challenge": self.settings.challenge.as_str(),
                    "error": why,
                    "retry_in_seconds": retry_in.as_secs(),
                    "not_after": self.current.map(rfc3339),
                }),
            })
            .await;
    }

    /// The account: the stored one for this directory, else a new one.
    async fn account(&self) -> Result<Account, String> {
        let builder = match &self.settings.directory_ca {
            Some(ca) => Account::builder_with_root(ca),
            None => Account::builder(),
        }
        .map_err(|e| format!("cannot set up the HTTPS client: {}", chain(&e)))?;
        let path = self.dir.join(ACCOUNT_FILE);
        let stored = fs::read(&path)
            .ok()
            .and_then(|bytes| serde_json::from_slice::<StoredAccount>(&bytes).ok())
            .filter(|s| s.directory == self.settings.directory)
            .and_then(|s| serde_json::from_value::<AccountCredentials>(s.credentials).ok());
        if let Some(credentials) = stored {
            return builder
                .from_credentials(credentials)
                .await
                .map_err(|e| format!("cannot reach the ACME directory: {}", chain(&e)));
        }
        let contact = format!("mailto:{}", self.settings.email);
        let contacts: Vec<&str> = if self.settings.email.is_empty() {
            Vec::new()
        } else {
            vec![contact.as_str()]
        };
        let (account, credentials) = builder
            .create(
                &NewAccount {
                    contact: &contacts,
                    terms_of_service_agreed: true,
                    only_return_existing: false,
                },
                self.settings.directory.clone(),
                None,
            )
            .await
            .map_err(|e| format!("cannot create the ACME account: {}", chain(&e)))?;
        let stored = StoredAccount {
            directory: self.settings.directory.clone(),
            credentials: serde_json::to_value(&credentials)
                .map_err(|e| format!("cannot encode the account: {e}"))?,
        };
        let bytes = serde_json::to_vec_pretty(&stored)
            .map_err(|e| format!("cannot encode the account: {e}"))?;
        if let Err(e) = write_private(&path, &bytes) {
            tracing::warn!(environment = %self.environment, path = %path.display(), error = %e,
                "cannot store the ACME account; a new one is made at the next order");
        }
        Ok(account)
    }

    /// One order, from the account to the certificate.
    async fn order(&self) -> Result<Issued, String> {
        let account = self.account().await?;
        let identifiers: Vec<Identifier> = self
            .settings
            .domains
            .iter()
            .map(|d| Identifier::Dns(d.clone()))
            .collect();
        let mut order = account
            .new_order(&NewOrder::new(&identifiers))
            .await
            .map_err(|e| format!("cannot create the order: {}", chain(&e)))?;
        let mut answers = Answers {
            proxy: self.proxy.clone(),
            certificates: self.certificates.clone(),
            tokens: Vec::new(),
            alpn_domains: Vec::new(),
        };
        let challenge_type = match self.settings.challenge {
            AcmeChallenge::Http01 => ChallengeType::Http01,
            AcmeChallenge::TlsAlpn01 => ChallengeType::TlsAlpn01,
        };
        let mut authorizations = order.authorizations();
        while let Some(result) = authorizations.next().await {
            let mut authz =
                result.map_err(|e| format!("cannot read an authorization: {}", chain(&e)))?;
            match authz.status {
                AuthorizationStatus::Pending => {}
                AuthorizationStatus::Valid => continue,
                other => {
                    return Err(format!(
                        "the authorization for {} is {other:?}",
                        authz.identifier()
                    ));
                }
            }
            let domain = authz.identifier().to_string();
            let mut challenge = authz.challenge(challenge_type.clone()).ok_or_else(|| {
                format!(
                    "the server offers no {} challenge for {domain}; set `challenge` to another type",
                    self.settings.challenge.as_str()
                )
            })?;
            let key_authorization = challenge.key_authorization();
            match self.settings.challenge {
                AcmeChallenge::Http01 => {
                    let token = challenge.token.clone();
                    self.proxy
                        .http01()
                        .insert(&token, key_authorization.as_str());
                    answers.tokens.push(token);
                }
                AcmeChallenge::TlsAlpn01 => {
                    let cert = alpn_challenge_cert(&domain, key_authorization.digest().as_ref())?;
                    self.certificates
                        .set_alpn_challenge(&domain, Some(Arc::new(cert)));
                    answers.alpn_domains.push(domain.clone());
                }
            }
            challenge.set_ready().await.map_err(|e| {
                format!("cannot ask the server to validate {domain}: {}", chain(&e))
            })?;
        }
        let retries = RetryPolicy::new().timeout(ORDER_POLL_TIMEOUT);
        let status = order
            .poll_ready(&retries)
            .await
            .map_err(|e| format!("waiting for the validation: {}", chain(&e)))?;
        if status != OrderStatus::Ready {
            return Err(why_not_ready(&mut order, status).await);
        }
        drop(answers);

        let key = rcgen::KeyPair::generate().map_err(|e| format!("cannot make a key: {e}"))?;
        let mut params = rcgen::CertificateParams::new(self.settings.domains.clone())
            .map_err(|e| format!("cannot make the certificate request: {e}"))?;
        params.distinguished_name = rcgen::DistinguishedName::new();
        let csr = params
            .serialize_request(&key)
            .map_err(|e| format!("cannot make the certificate request: {e}"))?;
        order
            .finalize_csr(csr.der())
            .await
            .map_err(|e| format!("the server refused the certificate request: {}", chain(&e)))?;
        let chain_pem = order
            .poll_certificate(&retries)
            .await
            .map_err(|e| format!("waiting for the certificate: {}", chain(&e)))?;
        let key_pem = key.serialize_pem();
        let certified = certs::certified_key_from_pem(chain_pem.as_bytes(), key_pem.as_bytes())
            .map_err(|e| format!("the server's certificate cannot be used: {e}"))?;
        let not_after = certs::not_after(&certified)
            .ok_or_else(|| "the server's certificate has no readable expiry".to_owned())?;
        let mut pem = chain_pem;
        if !pem.ends_with('\n') {
            pem.push('\n');
        }
        pem.push_str(&key_pem);
        Ok(Issued {
            pem,
            key: certified,
            not_after,
        })
    }
}

/// The challenge answers of one order, withdrawn when it ends (or is dropped).
struct Answers {
    proxy: Proxy,
    certificates: Arc<Certificates>,
    tokens: Vec<String>,
    alpn_domains: Vec<String>,
}

impl Drop for Answers {
    fn drop(&mut self) {
        for token in &self.tokens {
            self.proxy.http01().remove(token);
        }
        for domain in &self.alpn_domains {
            self.certificates.set_alpn_challenge(domain, None);
        }
    }
}

/// Why an order did not become ready: each failed challenge's error.
async fn why_not_ready(order: &mut Order, status: OrderStatus) -> String {
    let mut reasons = Vec::new();
    let mut authorizations = order.authorizations();
    while let Some(Ok(authz)) = authorizations.next().await {
        for challenge in &authz.challenges {
            if let Some(error) = &challenge.error {
                reasons.push(format!("{}: {error}", authz.identifier()));
            }
        }
    }
    if reasons.is_empty() {
        format!("the order is {status:?}")
    } else {
        format!("the order is {status:?}: {}", reasons.join("; "))
    }
}

/// The self-signed certificate that answers a TLS-ALPN-01 challenge for
/// `domain` (RFC 8737): its SAN, and the acmeIdentifier extension with the
/// key authorization's digest.
fn alpn_challenge_cert(domain: &str, digest: &[u8]) -> Result<CertifiedKey, String> {
    let why = |e: rcgen::Error| format!("cannot make the TLS-ALPN-01 certificate: {e}");
    let mut params = rcgen::CertificateParams::new(vec![domain.to_owned()]).map_err(why)?;
    params.custom_extensions = vec![rcgen::CustomExtension::new_acme_identifier(digest)];
    let key = rcgen::KeyPair::generate().map_err(why)?;
    let cert = params.self_signed(&key).map_err(why)?;
    // Not through `certs::certified_key_from_pem`: its check of the leaf
    // refuses the critical acmeIdentifier extension this certificate must have.
    let key_der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()));
    let signing_key = rustls::crypto::ring::sign::any_supported_type(&key_der)
        .map_err(|e| format!("cannot use the TLS-ALPN-01 key: {e}"))?;
    Ok(CertifiedKey::new(vec![cert.der().clone()], signing_key))
}

/// When to renew a certificate expiring at `not_after`: `renew_before` it.
/// A certificate just issued whose whole life is shorter than that is renewed
/// halfway through what is left, not at once and again and again.
fn renewal_time(
    not_after: SystemTime,
    renew_before: Duration,
    fresh: bool,
    now: SystemTime,
) -> SystemTime {
    let at = not_after
        .checked_sub(renew_before)
        .unwrap_or(SystemTime::UNIX_EPOCH);
    if fresh && at <= now {
        let left = not_after.duration_since(now).unwrap_or_default();
        now + left / 2
    } else {
        at
    }
}

fn backoff() -> backon::ExponentialBackoff {
    backon::ExponentialBuilder::default()
        .with_min_delay(RETRY_MIN)
        .with_max_delay(RETRY_MAX)
        .with_factor(2.0)
        .with_jitter()
        .without_max_times()
        .build()
}

/// The configured domains `names` does not cover.
fn missing_domains(domains: &[String], names: &[String]) -> Vec<String> {
    domains
        .iter()
        .filter(|d| !names.iter().any(|n| n.eq_ignore_ascii_case(d)))
        .cloned()
        .collect()
}

/// Splits the stored file into the chain and the key.
fn split_pem(text: &str) -> Option<(&str, &str)> {
    let at = text.find(KEY_MARKER)?;
    Some(text.split_at(at))
}

fn rfc3339(t: SystemTime) -> String {
    jiff::Timestamp::try_from(t)
        .map(|t| t.to_string())
        .unwrap_or_else(|_| "?".to_owned())
}

/// An error with its sources, for people.
fn chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        let s_text = s.to_string();
        if !text.contains(&s_text) {
            text.push_str(": ");
            text.push_str(&s_text);
        }
        source = s.source();
    }
    text
}

/// Creates `dir` (and its parents) and makes it mode 0700.
fn make_private_dir(dir: &Path) -> std::io::Result<()> {
    fs::create_dir_all(dir)?;
    fs::set_permissions(dir, fs::Permissions::from_mode(0o700))
}

/// Writes `bytes` to `path` with mode 0600 through a temporary file in the
/// same directory, synced and renamed into place.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let dir = path.parent().unwrap_or_else(|| Path::new("."));
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
    let written = (|| {
        let mut file = fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o600)
            .open(&tmp)?;
        file.set_permissions(fs::Permissions::from_mode(0o600))?;
        file.write_all(bytes)?;
        file.sync_all()?;
        fs::rename(&tmp, path)?;
        fs::File::open(dir)?.sync_all()
    })();
    if written.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    written
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(24 * 60 * 60);

    #[tokio::test]
    async fn the_https_client_for_public_directories_builds_with_ring() {
        // The system's roots through rustls-platform-verifier, on the ring
        // provider (the only one compiled in).
        assert!(Account::builder().is_ok());
    }

    #[test]
    fn renewal_starts_renew_before_expiry() {
        let now = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let not_after = now + 90 * DAY;
        assert_eq!(renewal_time(not_after, 30 * DAY, true, now), now + 60 * DAY);
        assert_eq!(
            renewal_time(not_after, 30 * DAY, false, now),
            now + 60 * DAY
        );
    }

    #[test]
    fn a_stored_certificate_inside_its_renewal_window_renews_now() {
        let now = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let not_after = now + 10 * DAY;
        assert!(renewal_time(not_after, 30 * DAY, false, now) <= now);
    }

    #[test]
    fn a_fresh_certificate_shorter_than_renew_before_renews_halfway() {
        let now = SystemTime::UNIX_EPOCH + 1000 * DAY;
        let not_after = now + Duration::from_secs(60);
        assert_eq!(
            renewal_time(not_after, 30 * DAY, true, now),
            now + Duration::from_secs(30)
        );
    }

    #[test]
    fn domains_are_covered_case_insensitively() {
        let domains = vec!["a.test".to_owned(), "b.test".to_owned()];
        assert!(missing_domains(&domains, &["B.test".into(), "a.test".into()]).is_empty());
        assert_eq!(missing_domains(&domains, &["a.test".into()]), ["b.test"]);
    }

    #[test]
    fn the_stored_file_splits_into_chain_and_key() {
        let text = "-----BEGIN CERTIFICATE-----\nx\n-----END CERTIFICATE-----\n-----BEGIN PRIVATE KEY-----\ny\n-----END PRIVATE KEY-----\n";
        let (chain, key) = split_pem(text).expect("splits");
        assert!(chain.ends_with("-----END CERTIFICATE-----\n"));
        assert!(key.starts_with(KEY_MARKER));
        assert!(split_pem("-----BEGIN CERTIFICATE-----\n").is_none());
    }

    #[test]
    fn private_files_are_0600_and_replace_the_old_one() {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("f");
        write_private(&path, b"one").expect("writes");
        write_private(&path, b"two").expect("writes again");
        assert_eq!(fs::read(&path).expect("reads"), b"two");
        let mode = fs::metadata(&path).expect("metadata").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(
            fs::read_dir(dir.path()).expect("lists").count(),
            1,
            "no temporary file left"
        );
    }
}
