//! `[notify]`: `[[notify.webhook]]` and `[[notify.slack]]`. Secrets (the
//! webhook's `secret`, Slack's `url`) must come from the environment
//! (`${VAR}`); event types and environments are checked against the known
//! ones, with a suggestion for a misspelt one.

use std::collections::BTreeMap;

use serde_spanned::Spanned;

use super::Resolver;
use crate::config::limits;
use crate::config::model::{EnvironmentConfig, Secret};
use crate::config::notify::{EventType, NotifyConfig, SlackConfig, WebhookConfig, webhook_key};
use crate::config::problem::Finding;
use crate::config::raw::RawNotify;
use crate::config::suggest;

impl Resolver<'_> {
    /// `[notify]`, given the environments (to check `environments`).
    pub(super) fn notify(
        &mut self,
        raw: Option<&Spanned<RawNotify>>,
        environments: &BTreeMap<String, EnvironmentConfig>,
    ) -> NotifyConfig {
        let Some(raw) = raw else {
            return NotifyConfig::default();
        };
        let span = raw.span();
        let raw = raw.get_ref();
        let mut config = NotifyConfig::default();
        let count =
            raw.webhook.as_ref().map_or(0, Vec::len) + raw.slack.as_ref().map_or(0, Vec::len);
        if count > limits::MAX_NOTIFY_ENDPOINTS {
            self.report(
                Finding::new(
                    span,
                    format!(
                        "{count} [[notify.webhook]] and [[notify.slack]] tables, more than {}",
                        limits::MAX_NOTIFY_ENDPOINTS
                    ),
                    "too many endpoints",
                )
                .help("send to fewer endpoints: every event is queued once for each; a relay of your own can fan out"),
            );
            return config;
        }
        for table in raw.webhook.iter().flatten() {
            let hook = table.get_ref();
            let url = self.notify_url(hook.url.as_ref(), table.span(), "notify.webhook");
            let secret = match &hook.secret {
                None => {
                    self.report(
                        Finding::new(table.span(), "[[notify.webhook]] has no `secret`", "this table")
                            .help(r#"every delivery is signed: add secret = "${CUTOVER_WEBHOOK_SECRET}" and set that variable to a Standard Webhooks secret (`whsec_` and base64 of 24 to 64 random bytes, e.g. "whsec_$(openssl rand -base64 32)")"#),
                    );
                    None
                }
                Some(secret) => self.secret_from_environment(secret, "notify.webhook.secret").and_then(
                    |value| match webhook_key(&value) {
                        Ok(_) => Some(Secret::new(value)),
                        Err(why) => {
                            // Never the value: only what is wrong with it.
                            self.report(
                                Finding::new(
                                    secret.span(),
                                    format!("`notify.webhook.secret` is not a Standard Webhooks secret: {why}"),
                                    "from this variable",
                                )
                                .help(r#"set the variable to `whsec_` and the base64 of 24 to 64 random bytes, e.g. "whsec_$(openssl rand -base64 32)""#),
                            );
                            None
                        }
                    },
                ),
            };
            let events = self.event_types(hook.events.as_ref(), EventType::ALL);
            let envs = self.notify_environments(hook.environments.as_ref(), environments);
            if let (Some(url), Some(secret)) = (url, secret) {
                config.webhooks.push(WebhookConfig {
                    url,
                    secret,
                    events,
                    environments: envs,
                });
            }
        }
        for table in raw.slack.iter().flatten() {
            let slack = table.get_ref();
            let url = match &slack.url {
                None => {
                    self.report(
                        Finding::new(table.span(), "[[notify.slack]] has no `url`", "this table")
                            .help(r#"add url = "${CUTOVER_SLACK_WEBHOOK_URL}" and set that variable to the incoming webhook's URL (https://hooks.slack.com/services/…)"#),
                    );
                    None
                }
                Some(url) => self
                    .secret_from_environment(url, "notify.slack.url")
                    .and_then(|value| {
                        self.check_url(&value, url.span(), "notify.slack.url")
                            .then(|| Secret::new(value))
                    }),
            };
            let events = self.event_types(slack.events.as_ref(), EventType::SLACK_DEFAULT);
            let envs = self.notify_environments(slack.environments.as_ref(), environments);
            if let Some(url) = url {
                config.slack.push(SlackConfig {
                    url,
                    events,
                    environments: envs,
                });
            }
        }
        config
    }

    /// A webhook's `url`: required, `${VAR}` expanded, http or https.
    fn notify_url(
        &mut self,
        url: Option<&Spanned<String>>,
        table: std::ops::Range<usize>,
        key: &str,
    ) -> Option<String> {
        let Some(url) = url else {
            self.report(
                Finding::new(table, format!("[[{key}]] has no `url`"), "this table")
                    .help(r#"add the endpoint to POST to, e.g. url = "https://hooks.example.com/cutover""#),
            );
            return None;
        };
        let value = self.expand(url)?;
        self.check_url(&value, url.span(), &format!("{key}.url"))
            .then_some(value)
    }

    /// Whether `value` is an http(s) URL with a host; a finding if not. The
    /// value itself is not shown (it may be a credential).
    fn check_url(&mut self, value: &str, span: std::ops::Range<usize>, key: &str) -> bool {
        let good = url::Url::parse(value).is_ok_and(|u| {
            matches!(u.scheme(), "http" | "https") && u.host_str().is_some_and(|h| !h.is_empty())
        });
        if !good {
            self.report(
                Finding::new(
                    span,
                    format!("`{key}` is not an http(s) URL"),
                    "expected https://host/path",
                )
                .help("write the endpoint's full URL, e.g. https://hooks.example.com/cutover"),
            );
        }
        good
    }

    /// A secret that must be read from the environment: the value written
    /// must contain a `${VAR}`. Expanded; `None` (and a finding) otherwise.
    fn secret_from_environment(&mut self, value: &Spanned<String>, key: &str) -> Option<String> {
        if !value.get_ref().contains("${") {
            self.report(
                Finding::new(
                    value.span(),
                    format!("`{key}` is a secret written in the file"),
                    "a credential in the config file",
                )
                .help(format!(
                    "keep it in an environment variable and write its name: {} = \"${{{}}}\" (and rotate this one: it may have been shared with the file)",
                    key.rsplit('.').next().unwrap_or(key),
                    if key.ends_with("url") {
                        "CUTOVER_SLACK_WEBHOOK_URL"
                    } else {
                        "CUTOVER_WEBHOOK_SECRET"
                    }
                )),
            );
            return None;
        }
        self.expand(value)
    }

    /// `events = [...]`: known names, without duplicates; `default` when omitted.
    fn event_types(
        &mut self,
        written: Option<&Vec<Spanned<String>>>,
        default: &[EventType],
    ) -> Vec<EventType> {
        let Some(written) = written else {
            return default.to_vec();
        };
        let mut types = Vec::new();
        for name in written {
            match EventType::parse(name.get_ref()) {
                Some(t) => types.push(t),
                None => {
                    let names = EventType::ALL.iter().map(|t| t.as_str());
                    let help = match suggest::closest(name.get_ref(), names) {
                        Some(close) => format!(
                            "did you mean \"{close}\"? the event types are listed in docs/observability.md"
                        ),
                        None => format!(
                            "expected one of: {}",
                            EventType::ALL
                                .iter()
                                .map(|t| t.as_str())
                                .collect::<Vec<_>>()
                                .join(", ")
                        ),
                    };
                    self.report(
                        Finding::new(
                            name.span(),
                            format!("unknown event type \"{}\"", name.get_ref()),
                            "not an event type",
                        )
                        .help(help),
                    );
                }
            }
        }
        types.sort();
        types.dedup();
        types
    }

    /// `environments = [...]`: names of environments of this file.
    fn notify_environments(
        &mut self,
        written: Option<&Vec<Spanned<String>>>,
        environments: &BTreeMap<String, EnvironmentConfig>,
    ) -> Vec<String> {
        let mut names = Vec::new();
        for name in written.into_iter().flatten() {
            if environments.contains_key(name.get_ref()) {
                if !names.contains(name.get_ref()) {
                    names.push(name.get_ref().clone());
                }
                continue;
            }
            let known = environments.keys().map(String::as_str);
            let help = match suggest::closest(name.get_ref(), known) {
                Some(close) => format!("did you mean \"{close}\"?"),
                None => format!(
                    "expected one of the environments: {}",
                    environments
                        .keys()
                        .map(|k| format!("\"{k}\""))
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            };
            self.report(
                Finding::new(
                    name.span(),
                    format!("unknown environment \"{}\"", name.get_ref()),
                    "no [environment.…] of this name",
                )
                .help(help),
            );
        }
        names
    }
}
