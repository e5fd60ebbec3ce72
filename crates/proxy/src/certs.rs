//! The certificates the proxy serves over TLS, and the rustls configuration
//! that picks one per handshake.
//!
//! [`Certificates`] is a store shared by every TLS listener of a proxy and by
//! whoever keeps the certificates fresh (file watcher, ACME client). Each
//! certificate belongs to a *source*, a label such as a file path or
//! `acme:production`; setting a source again replaces its certificate, and the
//! next handshake sees the new one while handshakes already running finish
//! with the old one. Lookups during a handshake are lock-free: the store is an
//! immutable index behind an atomic pointer (`arc-swap`), rebuilt on every
//! change under one writer lock, like the route table.
//!
//! Choice per handshake (SNI is the server name the client sent):
//! 1. a client offering ALPN `acme-tls/1` gets the TLS-ALPN-01 challenge
//!    certificate for that name, or no certificate at all (handshake refused);
//! 2. a certificate with a DNS name equal to the SNI (case-insensitive);
//! 3. a certificate with the wildcard `*.rest` when the SNI is `label.rest`;
//! 4. the first certificate set (in the order sources were first set), so a
//!    client without SNI, or with an unknown name, still completes a handshake.
//!
//! When two sources claim the same name, the one set first wins.
//!
//! Reading PEM files ([`load_pem_files`], [`certified_key_from_pem`]) checks
//! what would otherwise fail only at the first handshake: an empty chain, a
//! leaf that does not parse, a key of a kind rustls cannot use, a key that
//! does not belong to the leaf.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use arc_swap::ArcSwap;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;

/// ALPN protocol id of the TLS-ALPN-01 challenge (RFC 8737).
pub const ACME_TLS_ALPN: &[u8] = b"acme-tls/1";
/// ALPN protocol ids offered on TLS listeners, in order of preference.
pub const ALPN_PROTOCOLS: [&[u8]; 2] = [b"h2", b"http/1.1"];

/// What is wrong with a certificate or key.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read.
    #[error("cannot read {}: {source}; check the path and that cutover may read it", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Something is wrong with the content of a file.
    #[error("{}: {problem}", path.display())]
    File {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        problem: Box<TlsError>,
    },
    /// The PEM text is not valid.
    #[error("invalid PEM ({0}); the file must hold PEM blocks (-----BEGIN ...-----)")]
    Pem(String),
    /// No certificate in the chain PEM.
    #[error(
        "no CERTIFICATE block found; the file must hold the leaf certificate first, then its intermediates"
    )]
    NoCertificate,
    /// No private key in the key PEM.
    #[error(
        "no private key found; the file must hold a PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block"
    )]
    NoPrivateKey,
    /// The leaf certificate is not a valid X.509 certificate.
    #[error("the leaf certificate cannot be parsed ({0}); check that it is an X.509 certificate")]
    BadCertificate(String),
    /// rustls cannot sign with this key.
    #[error(
        "the private key cannot be used ({0}); use an ECDSA P-256/P-384, Ed25519 or RSA (2048 bits or more) key"
    )]
    UnsupportedKey(rustls::Error),
    /// The key belongs to another certificate.
    #[error(
        "the private key does not match the leaf certificate (the first certificate of the chain); check that the key and the certificate belong together and that the leaf comes first"
    )]
    KeyMismatch,
    /// rustls refused to build a configuration.
    #[error("TLS configuration refused: {0}")]
    Config(rustls::Error),
}

impl TlsError {
    fn in_file(self, path: &Path) -> TlsError {
        TlsError::File {
            path: path.to_owned(),
            problem: Box::new(self),
        }
    }
}

/// One source's certificate and the names it serves.
#[derive(Debug, Clone)]
struct Entry {
    source: String,
    cert: Arc<CertifiedKey>,
    names: Vec<String>,
}

/// The immutable index consulted by handshakes.
#[derive(Debug, Default)]
struct Index {
    /// In the order the sources were first set.
    entries: Vec<Entry>,
    exact: HashMap<String, Arc<CertifiedKey>>,
    /// Keyed by the part after `*.`.
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    challenges: HashMap<String, Arc<CertifiedKey>>,
}

impl Index {
    fn build(entries: Vec<Entry>, challenges: HashMap<String, Arc<CertifiedKey>>) -> Index {
        let mut exact = HashMap::new();
        let mut wildcard = HashMap::new();
        for e in &entries {
            for name in &e.names {
                match name.strip_prefix("*.") {
                    Some(rest) => wildcard.entry(rest.to_owned()),
                    None => exact.entry(name.clone()),
                }
                .or_insert_with(|| e.cert.clone());
            }
        }
        Index {
            entries,
            exact,
            wildcard,
            challenges,
        }
    }

    fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        if let Some(name) = sni.map(normalise) {
            if let Some(c) = self.exact.get(&name) {
                return Some(c.clone());
            }
            if let Some((_, rest)) = name.split_once('.')
                && let Some(c) = self.wildcard.get(rest)
            {
                return Some(c.clone());
            }
        }
        self.entries.first().map(|e| e.cert.clone())
    }
}

fn normalise(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The certificates served by the proxy's TLS listeners; see the module docs.
pub struct Certificates {
    index: ArcSwap<Index>,
    /// Serialises writers so that read-modify-store of the index is atomic.
    writer: Mutex<()>,
}

impl std::fmt::Debug for Certificates {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Certificates")
            .field("names", &self.names())
            .finish_non_exhaustive()
    }
}

impl Certificates {
    /// An empty store (handshakes fail until a certificate is set).
    pub fn new() -> Arc<Certificates> {
        Arc::new(Certificates {
            index: ArcSwap::from_pointee(Index::default()),
            writer: Mutex::new(()),
        })
    }

    fn change(&self, f: impl FnOnce(&mut Vec<Entry>, &mut HashMap<String, Arc<CertifiedKey>>)) {
        let _writer = self
            .writer
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let current = self.index.load();
        let mut entries = current.entries.clone();
        let mut challenges = current.challenges.clone();
        f(&mut entries, &mut challenges);
        self.index
            .store(Arc::new(Index::build(entries, challenges)));
    }

    /// Replaces the certificate of `source` (or adds it); its names are the
    /// leaf's DNS subject alternative names, which are returned. A certificate
    /// without DNS names is still served to clients whose name matches none.
    pub fn set(&self, source: &str, cert: Arc<CertifiedKey>) -> Result<Vec<String>, TlsError> {
        let names = dns_names(&cert)?;
        let entry = Entry {
            source: source.to_owned(),
            cert,
            names: names.clone(),
        };
        self.change(
            |entries, _| match entries.iter_mut().find(|e| e.source == source) {
                Some(e) => *e = entry,
                None => entries.push(entry),
            },
        );
        Ok(names)
    }

    /// Removes the certificate of `source` (nothing if there is none).
    pub fn remove(&self, source: &str) {
        self.change(|entries, _| entries.retain(|e| e.source != source));
    }

    /// Sets (or with `None` removes) the self-signed TLS-ALPN-01 challenge
    /// certificate presented for `domain` to clients offering ALPN `acme-tls/1`.
    pub fn set_alpn_challenge(&self, domain: &str, cert: Option<Arc<CertifiedKey>>) {
        let domain = normalise(domain);
        self.change(|_, challenges| match cert {
            Some(c) => {
                challenges.insert(domain, c);
            }
            None => {
                challenges.remove(&domain);
            }
        });
    }

    /// A rustls server configuration that resolves certificates through this
    /// store (changes apply to the next handshake) and offers ALPN `h2`,
    /// `http/1.1` and `acme-tls/1` (the last answered only with a challenge
    /// certificate).
    pub fn server_config(self: &Arc<Self>) -> Arc<rustls::ServerConfig> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("the ring provider supports the default protocol versions")
            .with_no_client_auth()
            .with_cert_resolver(Arc::new(Resolver(self.clone())));
        config.alpn_protocols = ALPN_PROTOCOLS
            .iter()
            .chain([&ACME_TLS_ALPN])
            .map(|p| p.to_vec())
            .collect();
        // Stateless resumption: a returning client skips the full handshake.
        if let Ok(ticketer) = rustls::crypto::ring::Ticketer::new() {
            config.ticketer = ticketer;
        }
        Arc::new(config)
    }

    /// True when no certificate is set (challenge certificates aside).
    pub fn is_empty(&self) -> bool {
        self.index.load().entries.is_empty()
    }

    /// Each source with the names its certificate serves, in the order the
    /// sources were first set.
    pub fn names(&self) -> Vec<(String, Vec<String>)> {
        self.index
            .load()
            .entries
            .iter()
            .map(|e| (e.source.clone(), e.names.clone()))
            .collect()
    }

    /// The certificate a handshake with this SNI (and no `acme-tls/1`) gets.
    pub fn lookup(&self, sni: Option<&str>) -> Option<Arc<CertifiedKey>> {
        self.index.load().lookup(sni)
    }
}

#[derive(Debug)]
struct Resolver(Arc<Certificates>);

impl ResolvesServerCert for Resolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let index = self.0.index.load();
        let acme = hello
            .alpn()
            .is_some_and(|mut offered| offered.any(|p| p == ACME_TLS_ALPN));
        if acme {
            // RFC 8737: the challenge certificate or nothing, never a real one.
            return hello
                .server_name()
                .and_then(|name| index.challenges.get(&normalise(name)).cloned());
        }
        index.lookup(hello.server_name())
    }
}

/// Parses a PEM certificate chain (leaf first) and a PEM private key (PKCS#8,
/// RSA or SEC1) into a key rustls can serve. Refuses an empty chain, a leaf
/// that does not parse, and a key that does not match the leaf.
pub fn certified_key_from_pem(
    cert_chain_pem: &[u8],
    key_pem: &[u8],
) -> Result<CertifiedKey, TlsError> {
    let chain = parse_chain(cert_chain_pem)?;
    let key = parse_key(key_pem)?;
    certified_key(chain, key)
}

/// Reads a PEM certificate chain and its private key from files, as
/// [`certified_key_from_pem`]; errors name the file and say what is wrong.
pub fn load_pem_files(cert: &Path, key: &Path) -> Result<CertifiedKey, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|source| TlsError::Read {
            path: path.to_owned(),
            source,
        })
    };
    let chain = parse_chain(&read(cert)?).map_err(|e| e.in_file(cert))?;
    let key_der = parse_key(&read(key)?).map_err(|e| e.in_file(key))?;
    certified_key(chain, key_der).map_err(|e| match e {
        TlsError::BadCertificate(_) => e.in_file(cert),
        other => other.in_file(key),
    })
}

/// When the leaf certificate expires (`None` if it cannot be parsed).
pub fn not_after(cert: &CertifiedKey) -> Option<SystemTime> {
    let leaf = cert.cert.first()?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).ok()?;
    let secs = parsed.validity().not_after.timestamp();
    let secs = u64::try_from(secs).ok()?;
    SystemTime::UNIX_EPOCH.checked_add(Duration::from_secs(secs))
}

fn parse_chain(pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let chain = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| TlsError::Pem(e.to_string()))?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate);
    }
    Ok(chain)
}

fn parse_key(pem: &[u8]) -> Result<PrivateKeyDer<'static>, TlsError> {
    match PrivateKeyDer::from_pem_slice(pem) {
        Ok(key) => Ok(key),
        Err(rustls::pki_types::pem::Error::NoItemsFound) => Err(TlsError::NoPrivateKey),
        Err(e) => Err(TlsError::Pem(e.to_string())),
    }
}

fn certified_key(
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
) -> Result<CertifiedKey, TlsError> {
    let leaf = chain.first().ok_or(TlsError::NoCertificate)?;
    x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let signing =
        rustls::crypto::ring::sign::any_supported_type(&key).map_err(TlsError::UnsupportedKey)?;
    let certified = CertifiedKey::new(chain, signing);
    match certified.keys_match() {
        Ok(()) | Err(rustls::Error::InconsistentKeys(rustls::InconsistentKeys::Unknown)) => {
            Ok(certified)
        }
        Err(rustls::Error::InconsistentKeys(_)) => Err(TlsError::KeyMismatch),
        Err(e) => Err(TlsError::BadCertificate(e.to_string())),
    }
}

/// The DNS names (subject alternative names) of a certificate's leaf,
/// lower-cased, without duplicates.
fn dns_names(cert: &CertifiedKey) -> Result<Vec<String>, TlsError> {
    let leaf = cert.cert.first().ok_or(TlsError::NoCertificate)?;
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref())
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let san = parsed
        .subject_alternative_name()
        .map_err(|e| TlsError::BadCertificate(e.to_string()))?;
    let mut names: Vec<String> = Vec::new();
    for general in san.iter().flat_map(|s| s.value.general_names.iter()) {
        if let x509_parser::extensions::GeneralName::DNSName(name) = general {
            let name = normalise(name);
            if !names.contains(&name) {
                names.push(name);
            }
        }
    }
    Ok(names)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(names: &[&str]) -> (String, String) {
        let key = rcgen::KeyPair::generate().expect("key");
        let params =
            rcgen::CertificateParams::new(names.iter().map(|s| s.to_string()).collect::<Vec<_>>())
                .expect("params");
        let cert = params.self_signed(&key).expect("sign");
        (cert.pem(), key.serialize_pem())
    }

    fn ck(names: &[&str]) -> Arc<CertifiedKey> {
        let (c, k) = leaf(names);
        Arc::new(certified_key_from_pem(c.as_bytes(), k.as_bytes()).expect("valid pair"))
    }

    #[test]
    fn lookup_is_exact_then_wildcard_then_first() {
        let store = Certificates::new();
        assert!(store.is_empty());
        let a = ck(&["a.test"]);
        let w = ck(&["*.wild.test", "wild.test"]);
        assert_eq!(store.set("a", a.clone()).expect("set"), vec!["a.test"]);
        assert_eq!(
            store.set("w", w.clone()).expect("set"),
            vec!["*.wild.test", "wild.test"]
        );
        let same = |x: Option<Arc<CertifiedKey>>, y: &Arc<CertifiedKey>| {
            x.is_some_and(|x| Arc::ptr_eq(&x, y))
        };
        assert!(same(store.lookup(Some("A.Test.")), &a));
        assert!(same(store.lookup(Some("x.wild.test")), &w));
        assert!(same(store.lookup(Some("wild.test")), &w));
        // A wildcard covers one label only; unknown names get the first.
        assert!(same(store.lookup(Some("x.y.wild.test")), &a));
        assert!(same(store.lookup(None), &a));
        // Replacing keeps the position; removing promotes the next.
        let a2 = ck(&["a.test"]);
        store.set("a", a2.clone()).expect("set");
        assert!(same(store.lookup(None), &a2));
        store.remove("a");
        assert!(same(store.lookup(Some("a.test")), &w));
        assert_eq!(
            store.names(),
            vec![(
                "w".to_owned(),
                vec!["*.wild.test".to_owned(), "wild.test".to_owned()]
            )]
        );
    }

    #[test]
    fn a_key_of_another_certificate_is_refused() {
        let (c, _) = leaf(&["a.test"]);
        let (_, other_key) = leaf(&["a.test"]);
        let err =
            certified_key_from_pem(c.as_bytes(), other_key.as_bytes()).expect_err("mismatched key");
        assert!(matches!(err, TlsError::KeyMismatch), "{err}");
    }

    #[test]
    fn empty_or_garbage_pem_is_refused_with_what_is_missing() {
        let (c, k) = leaf(&["a.test"]);
        let err = certified_key_from_pem(b"", k.as_bytes()).expect_err("no chain");
        assert!(matches!(err, TlsError::NoCertificate), "{err}");
        let err = certified_key_from_pem(c.as_bytes(), c.as_bytes()).expect_err("no key");
        assert!(matches!(err, TlsError::NoPrivateKey), "{err}");
        let garbage = "-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n";
        let err = certified_key_from_pem(garbage.as_bytes(), k.as_bytes()).expect_err("garbage");
        assert!(matches!(err, TlsError::BadCertificate(_)), "{err}");
    }

    #[test]
    fn file_errors_name_the_file() {
        let dir = std::env::temp_dir().join(format!("cutover-certs-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let (c, k) = leaf(&["a.test"]);
        let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
        std::fs::write(&cert, &c).expect("write");
        std::fs::write(&key, &k).expect("write");
        let ok = load_pem_files(&cert, &key).expect("valid files");
        let expiry = not_after(&ok).expect("expiry");
        assert!(expiry > SystemTime::now());
        let err = load_pem_files(&cert, &dir.join("missing.pem")).expect_err("missing");
        assert!(err.to_string().contains("missing.pem"), "{err}");
        let err = load_pem_files(&key, &key).expect_err("swapped");
        assert!(err.to_string().contains("cert.pem") || err.to_string().contains("key.pem"));
        assert!(err.to_string().contains("no CERTIFICATE"), "{err}");
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
