//! Resolving the keys that put cutover on a network edge: `[server]` (the
//! API's TLS, `allow_plaintext`, `metrics_listen`) and, per environment,
//! `tls` (certificate files, ACME), `redirect_listen`, `hsts`,
//! `trusted_proxies`, `track_override` and `[environment.NAME.limits]`.
//!
//! Paths are made absolute against the file's directory and recorded in
//! `Places::files`, so that `load_checked` can say which file is missing at
//! the key that names it. Nothing here reads the disk.

use std::net::IpAddr;
use std::ops::Range;
use std::path::PathBuf;

use ipnet::IpNet;
use serde_spanned::Spanned;

use super::{FilePlace, Resolver};
use crate::config::defaults::size_text;
use crate::config::model::{
    AcmeChallenge, AcmeConfig, ApiExposure, EnvTlsConfig, LimitsConfig, Secret, ServerConfig,
    TlsFilesConfig, TrackOverrideConfig, plaintext_api_help,
};
use crate::config::problem::Finding;
use crate::config::raw::{RawAcme, RawEnvTls, RawLimits, RawServer, RawTlsFiles, RawTrackOverride};
use crate::config::scalars::{RawSize, SIZE_EXPECTED};
use crate::config::{defaults, limits};

/// What a network or address in `trusted_proxies` / `trusted_sources` looks like.
const NET_EXPECTED: &str = r#"expected an IP address ("192.0.2.7", "2001:db8::1") or a network in CIDR form ("10.0.0.0/8")"#;

impl Resolver<'_> {
    /// `[server]`.
    pub(super) fn server(&mut self, server: Option<&Spanned<RawServer>>) -> ServerConfig {
        let Some(server) = server else {
            return ServerConfig::default();
        };
        let raw = server.get_ref();
        let listen = match &raw.listen {
            Some(spanned) => match self.address(spanned, "listen") {
                Some(address) => {
                    self.places.server_listen = Some(spanned.span());
                    address
                }
                None => defaults::SERVER_LISTEN,
            },
            None => defaults::SERVER_LISTEN,
        };
        let tls = raw
            .tls
            .as_ref()
            .and_then(|tls| self.tls_files(tls, "tls", "the API's"));
        let metrics_listen = raw.metrics_listen.as_ref().and_then(|spanned| {
            let address = self.address(spanned, "metrics_listen")?;
            self.places.metrics_listen = Some(spanned.span());
            Some(address)
        });
        let dashboard_listen = raw.dashboard_listen.as_ref().and_then(|spanned| {
            let address = self.address(spanned, "dashboard_listen")?;
            self.places.dashboard_listen = Some(spanned.span());
            Some(address)
        });
        let dashboard_session = self.duration(
            raw.dashboard_session.as_ref(),
            "dashboard_session",
            defaults::DASHBOARD_SESSION,
            true,
        );
        let log_format = raw
            .log_format
            .as_ref()
            .and_then(|written| {
                self.choice(
                    written.span(),
                    &written.get_ref().0,
                    "`log_format`",
                    written.get_ref().parse(),
                )
            })
            .unwrap_or_default();
        let resolved = ServerConfig {
            listen,
            tls,
            allow_plaintext: raw.allow_plaintext.as_ref().is_some_and(|a| *a.get_ref()),
            metrics_listen,
            dashboard: raw.dashboard.as_ref().is_none_or(|d| *d.get_ref()),
            dashboard_listen,
            dashboard_session,
            log_format,
        };
        if resolved.dashboard_plaintext_refused()
            && let Some(span) = raw.dashboard_listen.as_ref().map(Spanned::span)
        {
            self.report(
                Finding::new(
                    span,
                    format!(
                        "the dashboard would listen on {} as plain HTTP, off loopback",
                        resolved.dashboard_listen.map_or_else(String::new, |a| a.to_string())
                    ),
                    "not a loopback address",
                )
                .help(
                    "the dashboard's sign-in carries API tokens and its buttons can abort a rollout: give \
                     the daemon a certificate with [server] tls = { cert = \"api.pem\", key = \"api.key\" } \
                     (the dashboard's listener uses it too), or set [server] allow_plaintext = true on a \
                     network you trust, or listen on 127.0.0.1",
                ),
            );
        }
        // A bad `tls` table was reported already; do not add this on top.
        let tls_written = raw.tls.is_some();
        if resolved.exposure() == ApiExposure::PlaintextRefused
            && !tls_written
            && let Some(span) = raw.listen.as_ref().map(Spanned::span)
        {
            self.report(
                Finding::new(
                    span,
                    format!(
                        "the API would listen on {} as plain HTTP, off loopback",
                        resolved.listen
                    ),
                    "not a loopback address",
                )
                .help(plaintext_api_help()),
            );
        }
        resolved
    }

    /// `{ cert = "…", key = "…" }`, both required. `key` names the table in
    /// messages (`tls`, `tls.certificates[1]`), `whose` the owner ("the API's").
    fn tls_files(
        &mut self,
        files: &Spanned<RawTlsFiles>,
        key: &str,
        whose: &str,
    ) -> Option<TlsFilesConfig> {
        let raw = files.get_ref();
        self.cert_and_key(
            raw.cert.as_ref(),
            raw.key.as_ref(),
            files.span(),
            key,
            whose,
        )
    }

    /// A certificate and its key, which come together.
    fn cert_and_key(
        &mut self,
        cert: Option<&Spanned<String>>,
        key: Option<&Spanned<String>>,
        table: Range<usize>,
        name: &str,
        whose: &str,
    ) -> Option<TlsFilesConfig> {
        match (cert, key) {
            (Some(cert), Some(key)) => {
                let cert = self.file(cert, "certificate")?;
                let key = self.file(key, "private key")?;
                Some(TlsFilesConfig { cert, key })
            }
            (Some(cert), None) => {
                self.report(
                    Finding::new(
                        cert.span(),
                        format!("`{name}` has a `cert` but no `key`"),
                        "a certificate without its key",
                    )
                    .help(format!(
                        "add {whose} private key beside it: key = \"{}.key\"",
                        stem(cert.get_ref())
                    )),
                );
                None
            }
            (None, Some(key)) => {
                self.report(
                    Finding::new(
                        key.span(),
                        format!("`{name}` has a `key` but no `cert`"),
                        "a key without its certificate",
                    )
                    .help(format!(
                        "add {whose} certificate chain (PEM, leaf first) beside it: cert = \"{}.pem\"",
                        stem(key.get_ref())
                    )),
                );
                None
            }
            (None, None) => {
                self.report(
                    Finding::new(table, format!("`{name}` names no certificate"), "empty")
                        .help(r#"expected cert = "site.pem" and key = "site.key" (PEM files, relative to this file)"#),
                );
                None
            }
        }
    }

    /// A file named in the config: `${VAR}` expanded, made absolute, and
    /// recorded for `load_checked`.
    fn file(&mut self, value: &Spanned<String>, what: &'static str) -> Option<PathBuf> {
        let text = self.expand(value)?;
        if text.trim().is_empty() {
            self.report(
                Finding::new(
                    value.span(),
                    format!("the {what} file name is empty"),
                    "empty",
                )
                .help("expected a path, relative to this file's directory or absolute"),
            );
            return None;
        }
        let path = self.cx.base_dir.join(text);
        self.places.files.push(FilePlace {
            path: path.clone(),
            span: value.span(),
            what,
        });
        Some(path)
    }

    /// `[environment.NAME] tls = { … }`.
    pub(super) fn environment_tls(
        &mut self,
        tls: &Spanned<RawEnvTls>,
        has_redirect: bool,
    ) -> Option<EnvTlsConfig> {
        let raw = tls.get_ref();
        let mut files = Vec::new();
        let mut sources = 0;
        if raw.cert.is_some() || raw.key.is_some() {
            sources += 1;
            files.extend(self.cert_and_key(
                raw.cert.as_ref(),
                raw.key.as_ref(),
                tls.span(),
                "tls",
                "the",
            ));
        }
        if let Some(list) = &raw.certificates {
            for (i, item) in list.get_ref().iter().enumerate() {
                sources += 1;
                let key = format!("tls.certificates[{i}]");
                files.extend(self.tls_files(item, &key, "the"));
            }
        }
        let acme = raw.acme.as_ref().map(|acme| {
            sources += 1;
            self.acme(acme, has_redirect)
        });
        if sources == 0 {
            self.report(
                Finding::new(tls.span(), "`tls` has no certificate source", "nothing to serve")
                    .help(r#"add cert = "site.pem" and key = "site.key", certificates = [{ cert = …, key = … }, …], or acme = { email = "…", domains = ["…"] }"#),
            );
            return None;
        }
        Some(EnvTlsConfig {
            files,
            acme: acme.flatten(),
        })
    }

    fn acme(&mut self, acme: &Spanned<RawAcme>, has_redirect: bool) -> Option<AcmeConfig> {
        let raw = acme.get_ref();
        let email = match &raw.email {
            Some(email) => match self.expand(email) {
                Some(text) if is_email(text.trim()) => Some(text.trim().to_owned()),
                Some(text) => {
                    self.report(
                        Finding::new(
                            email.span(),
                            format!("`acme.email` is not an email address: \"{text}\""),
                            "not an address",
                        )
                        .help(r#"expected the account's contact address, such as "ops@example.com" (without "mailto:")"#),
                    );
                    None
                }
                None => None,
            },
            None => {
                self.report(
                    Finding::new(acme.span(), "`acme` has no `email`", "this table").help(
                        r#"the CA writes to it about the account and expiring certificates: add email = "ops@example.com""#,
                    ),
                );
                None
            }
        };
        let mut domains: Vec<String> = Vec::new();
        match &raw.domains {
            Some(list) if list.get_ref().is_empty() => self.report(
                Finding::new(list.span(), "`acme.domains` is empty", "no names").help(
                    r#"list the names to get a certificate for, e.g. domains = ["example.com", "www.example.com"]"#,
                ),
            ),
            Some(list) if list.get_ref().len() > limits::MAX_ACME_DOMAINS => self.report(
                Finding::new(
                    list.span(),
                    format!(
                        "`acme.domains` lists {} names, more than {}",
                        list.get_ref().len(),
                        limits::MAX_ACME_DOMAINS
                    ),
                    "too many names",
                )
                .help(format!(
                    "an ACME certificate names at most {} domains: split them across environments, or use certificate files",
                    limits::MAX_ACME_DOMAINS
                )),
            ),
            Some(list) => {
                for item in list.get_ref() {
                    let name = item.get_ref().trim().to_ascii_lowercase();
                    if let Err(reason) = check_domain(&name) {
                        self.report(
                            Finding::new(
                                item.span(),
                                format!("`{}` cannot be in `acme.domains`", item.get_ref()),
                                reason,
                            )
                            .help("expected a DNS name such as \"example.com\" that points at this machine; wildcard names need the DNS-01 challenge, which cutover does not do: list each name"),
                        );
                    } else if domains.contains(&name) {
                        self.report(
                            Finding::new(item.span(), format!("`{name}` is listed twice in `acme.domains`"), "again")
                                .help("remove one of them"),
                        );
                    } else {
                        domains.push(name);
                    }
                }
            }
            None => self.report(
                Finding::new(acme.span(), "`acme` has no `domains`", "this table").help(
                    r#"list the names to get a certificate for, e.g. domains = ["example.com"]"#,
                ),
            ),
        }
        let directory = match &raw.directory {
            Some(directory) => match self.expand(directory) {
                Some(text) if text.starts_with("https://") && text.len() > "https://".len() => {
                    Some(text)
                }
                Some(text) => {
                    self.report(
                        Finding::new(
                            directory.span(),
                            format!("`acme.directory` is not an https URL: \"{text}\""),
                            "not https",
                        )
                        .help(format!(
                            "expected the CA's ACME directory URL, such as \"{}\"",
                            defaults::ACME_DIRECTORY
                        )),
                    );
                    None
                }
                None => None,
            },
            None => Some(defaults::ACME_DIRECTORY.to_owned()),
        };
        let directory_ca = raw
            .directory_ca
            .as_ref()
            .and_then(|ca| self.file(ca, "CA certificate"));
        let challenge = match &raw.challenge {
            Some(challenge) => match challenge.get_ref().parse() {
                Ok(AcmeChallenge::Http01) if !has_redirect => {
                    self.report(
                        Finding::new(
                            challenge.span(),
                            "the http-01 challenge needs `redirect_listen`",
                            "answered on the plain HTTP listener",
                        )
                        .help(r#"the CA fetches http://NAME/.well-known/acme-challenge/…: add redirect_listen = "0.0.0.0:80" to this environment, or use challenge = "tls-alpn-01" (answered on `listen`)"#),
                    );
                    None
                }
                Ok(challenge) => Some(challenge),
                Err(help) => {
                    self.report(
                        Finding::new(
                            challenge.span(),
                            format!("unknown ACME challenge `{}`", challenge.get_ref().0),
                            "unknown challenge",
                        )
                        .help(help),
                    );
                    None
                }
            },
            None if has_redirect => Some(AcmeChallenge::Http01),
            None => Some(AcmeChallenge::TlsAlpn01),
        };
        let renew_before = self.duration(
            raw.renew_before.as_ref(),
            "acme.renew_before",
            defaults::ACME_RENEW_BEFORE,
            true,
        );
        if domains.is_empty() {
            return None;
        }
        Some(AcmeConfig {
            email: email?,
            domains,
            directory: directory?,
            directory_ca,
            challenge: challenge?,
            renew_before,
        })
    }

    /// `trusted_proxies` / `trusted_sources`: addresses and networks.
    pub(super) fn nets(&mut self, list: &Spanned<Vec<Spanned<String>>>, key: &str) -> Vec<IpNet> {
        let mut nets = Vec::new();
        for item in list.get_ref() {
            let text = item.get_ref().trim();
            let parsed = if text.contains('/') {
                match text.parse::<IpNet>() {
                    Ok(net) if net.trunc() != net => Err(format!(
                        "host bits are set; did you mean the network \"{}\" or the one address \"{}\"?",
                        net.trunc(),
                        net.addr()
                    )),
                    Ok(net) => Ok(net),
                    Err(_) => Err(NET_EXPECTED.to_owned()),
                }
            } else {
                text.parse::<IpAddr>()
                    .map(IpNet::from)
                    .map_err(|_| NET_EXPECTED.to_owned())
            };
            match parsed {
                Ok(net) => nets.push(net),
                Err(help) => self.report(
                    Finding::new(
                        item.span(),
                        format!("`{key}` has an invalid entry \"{}\"", item.get_ref()),
                        "not an address or network",
                    )
                    .help(help),
                ),
            }
        }
        nets
    }

    /// `track_override = { secret, trusted_sources }`.
    pub(super) fn track_override(
        &mut self,
        table: &Spanned<RawTrackOverride>,
    ) -> Option<TrackOverrideConfig> {
        let raw = table.get_ref();
        let secret = raw.secret.as_ref().and_then(|secret| {
            let value = self.expand(secret)?;
            if value.len() < defaults::TRACK_SECRET_MIN_LEN {
                // The value is never shown: only its length.
                self.report(
                    Finding::new(
                        secret.span(),
                        format!(
                            "`track_override.secret` is {} bytes, shorter than {}",
                            value.len(),
                            defaults::TRACK_SECRET_MIN_LEN
                        ),
                        "too short to keep strangers out",
                    )
                    .help("use a random secret of at least 16 bytes, e.g. `openssl rand -hex 32`, kept in an environment variable: secret = \"${CUTOVER_TRACK_SECRET}\""),
                );
                return None;
            }
            Some(Secret::new(value))
        });
        let trusted_sources = raw
            .trusted_sources
            .as_ref()
            .map(|list| self.nets(list, "track_override.trusted_sources"))
            .unwrap_or_default();
        let written_sources = raw
            .trusted_sources
            .as_ref()
            .is_some_and(|list| !list.get_ref().is_empty());
        if raw.secret.is_none() && !written_sources {
            self.report(
                Finding::new(
                    table.span(),
                    "`track_override` lets nobody override the track",
                    "neither `secret` nor `trusted_sources`",
                )
                .help(r#"add secret = "${CUTOVER_TRACK_SECRET}" (requests that carry it may pin a track) and/or trusted_sources = ["10.0.0.0/8"]; or remove track_override to ignore X-Cutover-Track"#),
            );
            return None;
        }
        if raw.secret.is_some() && secret.is_none() {
            return None;
        }
        Some(TrackOverrideConfig {
            secret,
            trusted_sources,
        })
    }

    /// `[environment.NAME.limits]`.
    pub(super) fn limits(&mut self, limits: Option<&Spanned<RawLimits>>) -> LimitsConfig {
        let Some(limits) = limits else {
            return LimitsConfig::default();
        };
        let raw = limits.get_ref();
        LimitsConfig {
            first_request_timeout: self.duration(
                raw.first_request_timeout.as_ref(),
                "limits.first_request_timeout",
                defaults::FIRST_REQUEST_TIMEOUT,
                true,
            ),
            max_connections: self.count(
                raw.max_connections.as_ref(),
                "limits.max_connections",
                defaults::MAX_CONNECTIONS,
                1..=limits::MAX_CONNECTIONS,
            ),
            h2_max_concurrent_streams: self.count(
                raw.h2_max_concurrent_streams.as_ref(),
                "limits.h2_max_concurrent_streams",
                defaults::H2_MAX_CONCURRENT_STREAMS,
                1..=limits::MAX_H2_STREAMS,
            ),
            h2_idle_timeout: self.duration(
                raw.h2_idle_timeout.as_ref(),
                "limits.h2_idle_timeout",
                defaults::H2_IDLE_TIMEOUT,
                true,
            ),
            upgrade_idle_timeout: self.duration(
                raw.upgrade_idle_timeout.as_ref(),
                "limits.upgrade_idle_timeout",
                defaults::UPGRADE_IDLE_TIMEOUT,
                true,
            ),
            idle_timeout: self.duration(
                raw.idle_timeout.as_ref(),
                "limits.idle_timeout",
                defaults::IDLE_TIMEOUT,
                true,
            ),
            max_request_body: raw
                .max_request_body
                .as_ref()
                .and_then(|size| {
                    self.size(size, "limits.max_request_body", limits::MAX_REQUEST_BODY)
                })
                .unwrap_or(defaults::MAX_REQUEST_BODY),
        }
    }

    /// A size in bytes, or `None` (and a finding).
    pub(super) fn size(&mut self, value: &Spanned<RawSize>, key: &str, max: u64) -> Option<u64> {
        match value.get_ref().parse() {
            Ok(bytes) if bytes > max => {
                self.report(
                    Finding::new(
                        value.span(),
                        format!("`{key}` must be at most {}", size_text(max)),
                        "too large",
                    )
                    .help(format!(
                        "expected {SIZE_EXPECTED}, at most {}",
                        size_text(max)
                    )),
                );
                None
            }
            Ok(bytes) => Some(bytes),
            Err(reason) => {
                self.report(
                    Finding::new(
                        value.span(),
                        format!("`{key}` is not a size: {}", value.get_ref().text()),
                        reason,
                    )
                    .help(format!("expected {SIZE_EXPECTED}")),
                );
                None
            }
        }
    }

    /// `allowed_upgrades`: protocol names, lowercase; `h2c` refused.
    pub(super) fn upgrades(&mut self, list: &Spanned<Vec<Spanned<String>>>) -> Vec<String> {
        let mut out: Vec<String> = Vec::new();
        if list.get_ref().len() > limits::MAX_UPGRADES {
            self.report(
                Finding::new(
                    list.span(),
                    format!(
                        "`allowed_upgrades` lists {} protocols, more than {}",
                        list.get_ref().len(),
                        limits::MAX_UPGRADES
                    ),
                    "too many protocols",
                )
                .help(r#"list the Upgrade protocols the app speaks, such as ["websocket"]"#),
            );
            return out;
        }
        for item in list.get_ref() {
            let name = item.get_ref().trim().to_ascii_lowercase();
            let token = !name.is_empty()
                && name
                    .chars()
                    .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~/".contains(c));
            if !token {
                self.report(
                    Finding::new(
                        item.span(),
                        format!("`allowed_upgrades` has an invalid protocol \"{}\"", item.get_ref()),
                        "not a protocol name",
                    )
                    .help(r#"expected protocol names as the Upgrade header writes them, such as "websocket""#),
                );
            } else if name == "h2c" || name.starts_with("h2c/") {
                self.report(
                    Finding::new(item.span(), "`h2c` cannot be tunnelled to the app", "refused")
                        .help("an h2c upgrade tunnelled past the proxy lets a client send requests the proxy never sees (request smuggling); the proxy speaks HTTP/2 itself: remove it"),
                );
            } else if !out.contains(&name) {
                out.push(name);
            }
        }
        out
    }
}

/// `site` of `site.pem`, for example file names in help lines.
fn stem(path: &str) -> String {
    let name = std::path::Path::new(path)
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    if name.is_empty() {
        "site".to_owned()
    } else {
        name
    }
}

/// `local@domain`, with no space, comma or angle bracket.
fn is_email(text: &str) -> bool {
    let Some((local, domain)) = text.rsplit_once('@') else {
        return false;
    };
    !local.is_empty()
        && !text.contains(|c: char| c.is_whitespace() || "<>,;:".contains(c))
        && domain.contains('.')
        && check_domain(&domain.to_ascii_lowercase()).is_ok()
}

/// A DNS name an ACME CA can check with http-01 or tls-alpn-01.
fn check_domain(name: &str) -> Result<(), &'static str> {
    if name.starts_with("*.") {
        return Err("a wildcard name");
    }
    if name.parse::<IpAddr>().is_ok() || name.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() {
        return Err("an IP address, not a name");
    }
    if name.is_empty() || name.len() > 253 {
        return Err("not a DNS name");
    }
    let labels_ok = name.trim_end_matches('.').split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
    });
    if labels_ok {
        Ok(())
    } else {
        Err("not a DNS name")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_and_domains() {
        assert!(is_email("ops@example.com"));
        assert!(!is_email("mailto:ops@example.com"));
        assert!(!is_email("ops@localhost"));
        assert!(!is_email("@example.com"));
        assert!(!is_email("ops example.com"));
        assert!(check_domain("example.com").is_ok());
        assert!(check_domain("xn--bcher-kva.example").is_ok());
        assert_eq!(check_domain("*.example.com"), Err("a wildcard name"));
        assert_eq!(check_domain("192.0.2.1"), Err("an IP address, not a name"));
        assert!(check_domain("-bad.example").is_err());
        assert!(check_domain("exa mple.com").is_err());
    }
}
