//! `[host.NAME]`: per-daemon addresses for several daemons sharing one file
//! (docs/cluster.md). Each address is checked like any other; an
//! environment a host names must exist.

use std::collections::BTreeMap;

use serde_spanned::Spanned;

use super::Resolver;
use crate::config::model::{EnvironmentConfig, HostConfig, HostEnvironmentConfig};
use crate::config::problem::Finding;
use crate::config::raw::{Name, RawHost};

impl Resolver<'_> {
    pub(super) fn hosts(
        &mut self,
        hosts: Option<&BTreeMap<Name, Spanned<RawHost>>>,
        environments: &BTreeMap<String, EnvironmentConfig>,
    ) -> BTreeMap<String, HostConfig> {
        let Some(hosts) = hosts else {
            return BTreeMap::new();
        };
        hosts
            .iter()
            .map(|(name, host)| {
                self.name(name, "host name");
                let raw = host.get_ref();
                let mut resolved = HostConfig {
                    listen: raw.listen.as_ref().and_then(|a| self.address(a, "listen")),
                    metrics_listen: raw
                        .metrics_listen
                        .as_ref()
                        .and_then(|a| self.address(a, "metrics_listen")),
                    environments: BTreeMap::new(),
                };
                for (env, over) in raw.environment.iter().flatten() {
                    if !environments.contains_key(env.get_ref()) {
                        let known: Vec<&str> = environments.keys().map(String::as_str).collect();
                        self.report(
                            Finding::new(
                                env.span(),
                                format!(
                                    "[host.{}] names environment {:?}, which is not in this file",
                                    name.get_ref(),
                                    env.get_ref()
                                ),
                                "no such environment",
                            )
                            .help(format!("the environments are {}", known.join(", "))),
                        );
                        continue;
                    }
                    let over = over.get_ref();
                    resolved.environments.insert(
                        env.get_ref().clone(),
                        HostEnvironmentConfig {
                            listen: over.listen.as_ref().and_then(|a| self.address(a, "listen")),
                            preview_listen: over
                                .preview_listen
                                .as_ref()
                                .and_then(|a| self.address(a, "preview_listen")),
                        },
                    );
                }
                (name.get_ref().clone(), resolved)
            })
            .collect()
    }
}
