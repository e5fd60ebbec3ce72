//! A service's `env` as a container's: values never written into a
//! manifest when they may be secret. A value that is a `${VAR}` reference
//! (as written in the config, see [`super::References`]) reads
//! key `VAR` of the environment's Secret; a value that mixes text and
//! references keeps the text and reads each `VAR` through Kubernetes'
//! `$(VAR)` expansion; a literal value under a secret-looking name
//! (`…PASSWORD…`, `…TOKEN…`, `…KEY…`, [`is_secret_name`]) or holding a URL
//! with a password reads key `NAME` of the Secret instead, and its value is
//! dropped. The Secret itself is never rendered: [`SecretKeys`] lists what
//! it must hold.

use std::collections::{BTreeMap, BTreeSet};

use k8s_openapi::api::core::v1::{EnvVar, EnvVarSource, SecretKeySelector};

use super::RenderError;
use crate::config::{is_secret_name, redact_url, redact_urls_in};

/// The keys a Secret must hold for the rendered objects, by Secret name.
pub type SecretKeys = BTreeMap<String, BTreeSet<String>>;

/// One piece of a config value: text, or a `${VAR}` reference.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Piece<'a> {
    /// Text as written.
    Text(&'a str),
    /// `${NAME}`.
    Var(&'a str),
}

/// `value` split into text and `${VAR}` references (`[A-Za-z_][A-Za-z0-9_]*`
/// between `${` and `}`; anything else is text).
pub fn pieces(value: &str) -> Vec<Piece<'_>> {
    let mut out = Vec::new();
    let mut rest = value;
    let mut text_start = 0;
    let mut offset = 0;
    while let Some(at) = rest.find("${") {
        let after = &rest[at + 2..];
        let name_len = after
            .find('}')
            .filter(|&end| is_variable_name(&after[..end]));
        match name_len {
            Some(end) => {
                let start = offset + at;
                if start > text_start {
                    out.push(Piece::Text(&value[text_start..start]));
                }
                out.push(Piece::Var(&after[..end]));
                offset = start + 2 + end + 1;
                text_start = offset;
                rest = &value[offset..];
            }
            None => {
                offset += at + 2;
                rest = &value[offset..];
            }
        }
    }
    if text_start < value.len() {
        out.push(Piece::Text(&value[text_start..]));
    }
    out
}

/// Whether `value` holds a `${VAR}` reference.
pub fn has_reference(value: &str) -> bool {
    pieces(value).iter().any(|p| matches!(p, Piece::Var(_)))
}

fn is_variable_name(name: &str) -> bool {
    let mut chars = name.chars();
    chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Text for a Kubernetes `value`: `$(` would be expanded by Kubernetes, so
/// it is written `$$(`.
fn escape(text: &str) -> String {
    text.replace("$(", "$$(")
}

fn secret_ref(env_name: &str, secret: &str, key: &str) -> EnvVar {
    EnvVar {
        name: env_name.to_owned(),
        value: None,
        value_from: Some(EnvVarSource {
            secret_key_ref: Some(SecretKeySelector {
                name: secret.to_owned(),
                key: key.to_owned(),
                optional: None,
            }),
            ..EnvVarSource::default()
        }),
    }
}

/// Whether a literal value must not be written: its name looks secret, or
/// it holds a URL with a password (or a secret query parameter).
fn looks_secret(name: &str, value: &str) -> bool {
    is_secret_name(name) || redact_url(value) != value || redact_urls_in(value) != value
}

/// The container `env` for `env` (with `extra` plain values first, such as
/// `PORT`), reading secrets from Secret `secret`; the keys it reads are
/// added to `keys`.
pub fn container_env(
    service: &str,
    env: &BTreeMap<String, String>,
    extra: &[(&str, String)],
    secret: &str,
    keys: &mut SecretKeys,
) -> Result<Vec<EnvVar>, RenderError> {
    let mut refs: Vec<EnvVar> = Vec::new();
    let mut plain: Vec<EnvVar> = Vec::new();
    let mut helper_names: BTreeSet<String> = BTreeSet::new();
    for (name, value) in extra {
        if !env.contains_key(*name) {
            plain.push(EnvVar {
                name: (*name).to_owned(),
                value: Some(escape(value)),
                value_from: None,
            });
        }
    }
    for (name, value) in env {
        let parts = pieces(value);
        let vars: Vec<&str> = parts
            .iter()
            .filter_map(|p| match p {
                Piece::Var(v) => Some(*v),
                Piece::Text(_) => None,
            })
            .collect();
        if let [Piece::Var(var)] = parts.as_slice() {
            keys.entry(secret.to_owned())
                .or_default()
                .insert((*var).to_owned());
            refs.push(secret_ref(name, secret, var));
        } else if !vars.is_empty() {
            // Text and references: each VAR becomes a variable of its own
            // (from the Secret), listed first so `$(VAR)` can expand.
            for var in &vars {
                if let Some(other) = env.get(*var)
                    && other != &format!("${{{var}}}")
                {
                    return Err(RenderError::EnvClash {
                        service: service.to_owned(),
                        name: name.clone(),
                        var: (*var).to_owned(),
                    });
                }
                keys.entry(secret.to_owned())
                    .or_default()
                    .insert((*var).to_owned());
                if !env.contains_key(*var) && helper_names.insert((*var).to_owned()) {
                    refs.push(secret_ref(var, secret, var));
                }
            }
            let joined: String = parts
                .iter()
                .map(|p| match p {
                    Piece::Text(t) => escape(t),
                    Piece::Var(v) => format!("$({v})"),
                })
                .collect();
            plain.push(EnvVar {
                name: name.clone(),
                value: Some(joined),
                value_from: None,
            });
        } else if looks_secret(name, value) {
            keys.entry(secret.to_owned())
                .or_default()
                .insert(name.clone());
            refs.push(secret_ref(name, secret, name));
        } else {
            plain.push(EnvVar {
                name: name.clone(),
                value: Some(escape(value)),
                value_from: None,
            });
        }
    }
    refs.extend(plain);
    Ok(refs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pieces_split_references_from_text() {
        assert_eq!(pieces("${A}"), vec![Piece::Var("A")]);
        assert_eq!(
            pieces("x${A}y${B_2}"),
            vec![
                Piece::Text("x"),
                Piece::Var("A"),
                Piece::Text("y"),
                Piece::Var("B_2")
            ]
        );
        assert_eq!(pieces("${1x} ${"), vec![Piece::Text("${1x} ${")]);
        assert_eq!(pieces(""), Vec::<Piece<'_>>::new());
    }

    fn env_of(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn secrets_become_secret_references_and_text_stays() {
        let env = env_of(&[
            ("API_TOKEN", "literal-token"),
            ("DATABASE_URL", "postgres://app:pw@db/app"),
            ("DSN", "postgres://app:${DB_PASSWORD}@db/app"),
            ("LEVEL", "info $(not expanded)"),
            ("SESSION", "${SESSION_SECRET}"),
        ]);
        let mut keys = SecretKeys::new();
        let vars = container_env("web", &env, &[("PORT", "8080".into())], "s", &mut keys)
            .expect("renders");
        let json = serde_json::to_string(&vars).expect("json");
        assert!(!json.contains("literal-token"), "{json}");
        assert!(!json.contains(":pw@"), "{json}");
        assert!(json.contains(r#""value":"postgres://app:$(DB_PASSWORD)@db/app""#));
        assert!(json.contains(r#""value":"info $$(not expanded)""#));
        // Every reference comes before the values that expand it.
        let position = |name: &str| vars.iter().position(|v| v.name == name);
        assert!(position("DB_PASSWORD") < position("DSN"));
        assert_eq!(
            keys["s"].iter().map(String::as_str).collect::<Vec<_>>(),
            ["API_TOKEN", "DATABASE_URL", "DB_PASSWORD", "SESSION_SECRET"]
        );
    }

    #[test]
    fn a_name_used_both_ways_is_refused() {
        let env = env_of(&[("A", "x${B}"), ("B", "plain")]);
        let err = container_env("web", &env, &[], "s", &mut SecretKeys::new()).expect_err("clash");
        assert!(err.to_string().contains("`B`"), "{err}");
    }
}
