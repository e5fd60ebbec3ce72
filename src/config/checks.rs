//! Checks that compare resolved values with each other: listeners that would
//! clash, and http services that claim the same route.

use std::net::SocketAddr;
use std::ops::Range;

use super::defaults;
use super::problem::Finding;
use super::resolve::Sections;

/// Every clash in `sections`, each pointing at the later of the two places.
pub(crate) fn check(sections: &Sections) -> Vec<Finding> {
    let mut findings = Vec::new();
    listeners(sections, &mut findings);
    routes(sections, &mut findings);
    findings
}

/// Environments need listeners of their own, apart from the daemon's.
fn listeners(sections: &Sections, findings: &mut Vec<Finding>) {
    let places = &sections.places;
    let mut seen: Vec<(&str, SocketAddr, &Range<usize>)> = places
        .environment_listen
        .iter()
        .filter_map(|(name, span)| {
            let environment = sections.environments.get(name)?;
            Some((name.as_str(), environment.listen, span))
        })
        .collect();
    seen.sort_by_key(|(_, _, span)| span.start);

    for (i, &(name, address, span)) in seen.iter().enumerate() {
        if let Some(&(first, first_address, first_span)) = seen[..i]
            .iter()
            .find(|(_, other, _)| clash(*other, address))
        {
            let message = if first_address == address {
                format!("environments `{first}` and `{name}` listen on the same address {address}")
            } else {
                format!(
                    "environments `{first}` and `{name}` both listen on port {}",
                    address.port()
                )
            };
            findings.push(
                Finding::new(span.clone(), message, format!("`{name}` listens here"))
                    .also(first_span.clone(), format!("`{first}` listens here"))
                    .help("each environment needs its own proxy listener: give it another port"),
            );
            continue;
        }
        let server = sections.server.listen;
        if clash(server, address) {
            let mut finding = Finding::new(
                span.clone(),
                format!("environment `{name}` listens on the daemon's API address {server}"),
                "the environment's proxy",
            );
            finding = match &places.server_listen {
                Some(server_span) => finding
                    .also(server_span.clone(), "the daemon's API")
                    .help("give the environment's proxy and the daemon's API different ports"),
                None => finding.help(format!(
                    "[server] listen defaults to {}: give the environment another port, or set [server] listen",
                    defaults::SERVER_LISTEN
                )),
            };
            findings.push(finding);
        }
    }
}

/// Two listeners clash when they bind the same port on the same address, or
/// either binds every address. Port 0 (any free port) never clashes.
fn clash(a: SocketAddr, b: SocketAddr) -> bool {
    a.port() == b.port()
        && a.port() != 0
        && (a.ip() == b.ip() || a.ip().is_unspecified() || b.ip().is_unspecified())
}

/// Two http services with the same host and path prefix: the second would
/// never receive a request.
fn routes(sections: &Sections, findings: &mut Vec<Finding>) {
    let mut routes: Vec<(&str, &Range<usize>)> = sections
        .places
        .routes
        .iter()
        .map(|(name, span)| (name.as_str(), span))
        .collect();
    routes.sort_by_key(|(_, span)| span.start);
    let key = |name: &str| {
        sections.services.get(name).map(|service| {
            let host = service.host.as_deref().map(str::to_ascii_lowercase);
            let prefix = match service.path_prefix.trim_end_matches('/') {
                "" => "/".to_owned(),
                trimmed => trimmed.to_owned(),
            };
            (host, prefix)
        })
    };
    for (i, &(name, span)) in routes.iter().enumerate() {
        let Some(mine) = key(name) else { continue };
        if let Some(&(first, first_span)) = routes[..i]
            .iter()
            .find(|(other, _)| key(other).as_ref() == Some(&mine))
        {
            let (host, prefix) = &mine;
            let route = match host {
                Some(host) => format!("host {host}, path {prefix}"),
                None => format!("any host, path {prefix}"),
            };
            findings.push(
                Finding::new(
                    span.clone(),
                    format!("services `{first}` and `{name}` have the same route ({route})"),
                    format!("`{name}`'s route"),
                )
                .also(first_span.clone(), format!("`{first}`'s route"))
                .help("give one of them a different `host` or `path_prefix`"),
            );
        }
    }
}
