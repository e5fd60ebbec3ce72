//! Resolving `[environment.NAME]` tables: listener and rollback window.

use std::collections::BTreeMap;

use serde_spanned::Spanned;

use super::Resolver;
use crate::config::defaults;
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
        EnvironmentConfig {
            listen: listen.unwrap_or(defaults::SERVER_LISTEN),
            rollback_window: self.duration(
                raw.rollback_window.as_ref(),
                "rollback_window",
                defaults::ROLLBACK_WINDOW,
                false,
            ),
        }
    }
}
