//! Resolving `[environment.NAME]` tables: listener and rollback window here;
//! TLS, redirect, HSTS, trusted peers, track override and limits through
//! `edge`, with the checks between them (`redirect_listen` and `hsts` need `tls`).

use std::collections::BTreeMap;

use serde_spanned::Spanned;

use super::Resolver;
use crate::config::defaults;
use crate::config::limits;
use crate::config::model::EnvironmentConfig;
use crate::config::problem::Finding;
use crate::config::raw::{Name, RawEnvironment};

impl Resolver<'_> {
    pub(super) fn environments(
        &mut self,
        environments: &BTreeMap<Name, Spanned<RawEnvironment>>,
    ) -> BTreeMap<String, EnvironmentConfig> {
        if environments.is_empty() {
            self.report(
                Finding::new(0..0, "no environments", "expected an [environment.NAME] table").help(
                    "add a place to deploy to, with the address its proxy listens on, e.g.\n\n    [environment.production]\n    listen = \"127.0.0.1:8080\"",
                ),
            );
        }
        let spans = environments.keys().map(Spanned::span).collect();
        self.at_most(spans, "environment", limits::MAX_ENVIRONMENTS);
        environments
            .iter()
            .map(|(name, environment)| {
                self.name(name, "environment name");
                let resolved = self.environment(name.get_ref(), environment);
                (name.get_ref().clone(), resolved)
            })
            .collect()
    }

    pub(super) fn environment(
        &mut self,
        name: &str,
        environment: &Spanned<RawEnvironment>,
    ) -> EnvironmentConfig {
        let raw = environment.get_ref();
        let listen = match &raw.listen {
            Some(listen) => {
                let address = self.address(listen, "listen");
                if address.is_some() {
                    self.places
                        .environment_listen
                        .insert(name.to_owned(), listen.span());
                }
                address
            }
            None => {
                self.report(
                    Finding::new(
                        environment.span(),
                        format!("environment `{name}` has no `listen` address"),
                        "this environment",
                    )
                    .help(
                        r#"add the address its proxy listens on, e.g. listen = "127.0.0.1:8080""#,
                    ),
                );
                None
            }
        };
        let redirect_listen = raw.redirect_listen.as_ref().and_then(|spanned| {
            let address = self.address(spanned, "redirect_listen")?;
            self.places
                .redirect_listen
                .insert(name.to_owned(), spanned.span());
            Some(address)
        });
        let preview_listen = raw.preview_listen.as_ref().and_then(|spanned| {
            let address = self.address(spanned, "preview_listen")?;
            self.places
                .preview_listen
                .insert(name.to_owned(), spanned.span());
            Some(address)
        });
        let hsts = raw
            .hsts
            .as_ref()
            .map(|hsts| self.duration(Some(hsts), "hsts", std::time::Duration::ZERO, false));
        if raw.tls.is_none() {
            let needs_tls = [
                (
                    "redirect_listen",
                    raw.redirect_listen.as_ref().map(Spanned::span),
                    "redirect_listen sends clients to HTTPS",
                ),
                (
                    "hsts",
                    raw.hsts.as_ref().map(Spanned::span),
                    "hsts tells browsers to use only HTTPS",
                ),
            ];
            for (key, span, why) in needs_tls {
                if let Some(span) = span {
                    self.report(
                        Finding::new(
                            span,
                            format!("`{key}` needs `tls` in environment `{name}`"),
                            "no tls here",
                        )
                        .help(format!(
                            r#"{why}, which this environment does not serve: add tls = {{ cert = "site.pem", key = "site.key" }} or tls = {{ acme = {{ email = "…", domains = ["…"] }} }}, or remove `{key}`"#
                        )),
                    );
                }
            }
        }
        let tls = raw
            .tls
            .as_ref()
            .and_then(|tls| self.environment_tls(tls, raw.redirect_listen.is_some()));
        let trusted_proxies = raw
            .trusted_proxies
            .as_ref()
            .map(|list| self.nets(list, "trusted_proxies"))
            .unwrap_or_default();
        let track_override = raw
            .track_override
            .as_ref()
            .and_then(|table| self.track_override(table));
        let limits = self.limits(raw.limits.as_ref());
        EnvironmentConfig {
            listen: listen.unwrap_or(defaults::SERVER_LISTEN),
            rollback_window: self.duration(
                raw.rollback_window.as_ref(),
                "rollback_window",
                defaults::ROLLBACK_WINDOW,
                false,
            ),
            redirect_listen,
            preview_listen,
            hsts,
            tls,
            trusted_proxies,
            track_override,
            limits,
        }
    }
}
