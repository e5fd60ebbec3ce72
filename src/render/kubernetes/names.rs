//! The names and labels of the rendered objects: Kubernetes names are DNS
//! labels (lowercase, 63 characters at most), label values 63 characters of
//! letters, digits, `.`, `_` and `-`. Everything cutover's names allow that
//! Kubernetes' do not is mapped or refused here, with the reason.

use std::collections::BTreeMap;

use super::RenderError;
use crate::drivers::docker::labels;

/// The label naming the track a Service serves (`stable` or `canary`).
pub const TRACK: &str = "cutover.track";
/// Kubernetes' recommended label for the tool that manages an object.
pub const MANAGED_BY: &str = "app.kubernetes.io/managed-by";
/// Kubernetes' recommended label for the application's name.
pub const NAME: &str = "app.kubernetes.io/name";

/// `text` as a DNS-1035 label (a Service's name, a Deployment's, a
/// container's): lowercase, `_`, `.` and `+` become `-`; it must then start
/// with a letter, end with a letter or digit and be 63 characters at most.
pub fn dns_label(text: &str, what: &str) -> Result<String, RenderError> {
    let mapped: String = text
        .chars()
        .map(|c| match c {
            '_' | '.' | '+' => '-',
            c => c.to_ascii_lowercase(),
        })
        .collect();
    let ok = !mapped.is_empty()
        && mapped.len() <= 63
        && mapped.starts_with(|c: char| c.is_ascii_lowercase())
        && mapped.ends_with(|c: char| c.is_ascii_lowercase() || c.is_ascii_digit())
        && mapped
            .chars()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
    if ok {
        Ok(mapped)
    } else {
        Err(RenderError::Name {
            what: what.to_owned(),
            name: mapped,
        })
    }
}

/// `value` as a label value: 63 characters at most of letters, digits, `.`,
/// `_` and `-`, starting and ending with a letter or digit. Not mapped: a
/// label value is compared with the config's names as they are.
pub fn label_value(value: &str, what: &str) -> Result<String, RenderError> {
    let edge = |c: char| c.is_ascii_alphanumeric();
    let ok = !value.is_empty()
        && value.len() <= 63
        && value.starts_with(edge)
        && value.ends_with(edge)
        && value
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'));
    if ok {
        Ok(value.to_owned())
    } else {
        Err(RenderError::LabelValue {
            what: what.to_owned(),
            value: value.to_owned(),
        })
    }
}

/// The labels that name one service of one environment of the app (the
/// docker driver's container labels, [`labels`]): a worker Deployment's
/// selector, and with [`release_labels`] an HTTP release's.
pub fn service_labels(
    app: &str,
    environment: &str,
    service: &str,
) -> Result<BTreeMap<String, String>, RenderError> {
    Ok(BTreeMap::from([
        (labels::APP.to_owned(), label_value(app, "[app] name")?),
        (
            labels::ENVIRONMENT.to_owned(),
            label_value(environment, "the environment's name")?,
        ),
        (
            labels::SERVICE.to_owned(),
            label_value(service, "the service's name")?,
        ),
    ]))
}

/// [`service_labels`] and the release's version.
pub fn release_labels(
    app: &str,
    environment: &str,
    service: &str,
    version: &str,
) -> Result<BTreeMap<String, String>, RenderError> {
    let mut all = service_labels(app, environment, service)?;
    all.insert(
        labels::RELEASE.to_owned(),
        label_value(version, "the version (--version)")?,
    );
    Ok(all)
}

/// The labels every rendered object carries (not used in selectors).
pub fn common_labels(app: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (MANAGED_BY.to_owned(), "cutover".to_owned()),
        (NAME.to_owned(), app.to_owned()),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dns_labels_are_mapped_or_refused() {
        assert_eq!(dns_label("Web_API", "x").ok().as_deref(), Some("web-api"));
        assert_eq!(dns_label("1.2+b3", "x").ok(), None, "starts with a letter");
        assert_eq!(dns_label("v1.2+b3", "x").ok().as_deref(), Some("v1-2-b3"));
        assert!(dns_label("1web", "x").is_err());
        assert!(dns_label(&"a".repeat(64), "x").is_err());
        assert!(dns_label("web-", "x").is_err());
    }

    #[test]
    fn label_values_follow_kubernetes() {
        assert!(label_value("v1.2_rc-1", "x").is_ok());
        assert!(label_value("1.0+build", "x").is_err());
        assert!(label_value(&"1".repeat(64), "x").is_err());
        assert!(label_value("_x", "x").is_err());
    }
}
