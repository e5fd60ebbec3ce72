//! Checks that compare resolved values with each other: listeners that would
//! clash, http services that claim the same route, and `after` lists that
//! name unknown services or go round in a cycle.

use std::net::SocketAddr;
use std::ops::Range;

use super::defaults;
use super::order;
use super::problem::Finding;
use super::resolve::Sections;
use super::suggest;

/// Every clash in `sections`, each pointing at the later of the places
/// involved, and every `after` item that names no other service.
pub(crate) fn check(sections: &Sections) -> Vec<Finding> {
    let mut findings = Vec::new();
    listeners(sections, &mut findings);
    extra_listeners(sections, &mut findings);
    routes(sections, &mut findings);
    after(sections, &mut findings);
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

/// `redirect_listen` of each environment and `[server] metrics_listen` need
/// addresses of their own too: apart from every environment's `listen`, the
/// API, and each other. Each clash is reported at the extra listener written
/// later in the file.
fn extra_listeners(sections: &Sections, findings: &mut Vec<Finding>) {
    let places = &sections.places;
    // (what, address, where written) of every listener that has a place.
    let mut fixed: Vec<(String, SocketAddr, Option<&Range<usize>>)> = Vec::new();
    fixed.push((
        "the daemon's API ([server] listen)".to_owned(),
        sections.server.listen,
        places.server_listen.as_ref(),
    ));
    for (name, span) in &places.environment_listen {
        if let Some(environment) = sections.environments.get(name) {
            fixed.push((
                format!("environment `{name}`'s proxy (listen)"),
                environment.listen,
                Some(span),
            ));
        }
    }
    let mut extra: Vec<(String, &str, SocketAddr, &Range<usize>)> = Vec::new();
    for (name, span) in &places.redirect_listen {
        if let Some(address) = sections
            .environments
            .get(name)
            .and_then(|environment| environment.redirect_listen)
        {
            extra.push((
                format!("environment `{name}`'s redirect_listen"),
                "redirect_listen",
                address,
                span,
            ));
        }
    }
    for (name, span) in &places.preview_listen {
        if let Some(address) = sections
            .environments
            .get(name)
            .and_then(|environment| environment.preview_listen)
        {
            extra.push((
                format!("environment `{name}`'s preview_listen"),
                "preview_listen",
                address,
                span,
            ));
        }
    }
    if let (Some(span), Some(address)) = (&places.metrics_listen, sections.server.metrics_listen) {
        extra.push((
            "the metrics listener ([server] metrics_listen)".to_owned(),
            "metrics_listen",
            address,
            span,
        ));
    }
    extra.sort_by_key(|(_, _, _, span)| span.start);

    for (i, (what, key, address, span)) in extra.iter().enumerate() {
        let earlier = extra[..i]
            .iter()
            .map(|(other, _, address, span)| (other.clone(), *address, Some(*span)));
        let clashing = fixed
            .iter()
            .cloned()
            .chain(earlier)
            .find(|(_, other, _)| clash(*other, *address));
        let Some((other, other_address, other_span)) = clashing else {
            continue;
        };
        let message = if other_address == *address {
            format!("{what} is the same address as {other}: {address}")
        } else {
            format!("{what} and {other} both use port {}", address.port())
        };
        let mut finding = Finding::new((*span).clone(), message, format!("`{key}` here"))
            .help(format!("give `{key}` a port of its own"));
        if let Some(other_span) = other_span {
            finding = finding.also(other_span.clone(), other);
        }
        findings.push(finding);
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

/// Each `after` item must name another service, and following them must not
/// lead back to where it started.
fn after(sections: &Sections, findings: &mut Vec<Finding>) {
    let written = &sections.places.after;
    for (name, items) in written {
        for (other, span) in items {
            if other == name {
                findings.push(
                    Finding::new(
                        span.clone(),
                        format!("service `{name}` lists itself in `after`"),
                        "itself",
                    )
                    .help(format!(
                        "`after` names the services to roll out before this one: remove `{name}`"
                    )),
                );
            } else if !sections.services.contains_key(other) {
                let others: Vec<&str> = sections
                    .services
                    .keys()
                    .map(String::as_str)
                    .filter(|known| known != name)
                    .collect();
                let list = others
                    .iter()
                    .map(|known| format!("`{known}`"))
                    .collect::<Vec<_>>()
                    .join(", ");
                let help = if others.is_empty() {
                    format!("`{name}` is the only service: remove `after`")
                } else if let Some(close) = suggest::closest(other, others.iter().copied()) {
                    format!("did you mean `{close}`? other services: {list}")
                } else {
                    format!("expected the name of another service: {list}")
                };
                findings.push(
                    Finding::new(
                        span.clone(),
                        format!("`after` names an unknown service `{other}`"),
                        "no such service",
                    )
                    .help(help),
                );
            }
        }
    }

    let graph = order::graph(
        sections
            .services
            .iter()
            .map(|(name, service)| (name.as_str(), service.after.as_slice())),
    );
    // Where `from` names `to` in its `after`.
    let place = |from: &str, to: &str| {
        written
            .get(from)
            .and_then(|items| items.iter().find(|(other, _)| other == to))
            .map(|(_, span)| span.clone())
    };
    for cycle in order::cycles(&graph) {
        let mut edges: Vec<(&str, &str, Range<usize>)> = cycle
            .iter()
            .zip(cycle.iter().cycle().skip(1))
            .filter_map(|(&from, &to)| Some((from, to, place(from, to)?)))
            .collect();
        // Start at the entry written last, and point there.
        let Some(last) = edges
            .iter()
            .enumerate()
            .max_by_key(|(_, (_, _, span))| span.start)
            .map(|(i, _)| i)
        else {
            continue;
        };
        edges.rotate_left(last);
        let mut names: Vec<&str> = edges.iter().map(|&(from, _, _)| from).collect();
        names.push(edges[0].0);
        let waits = |from: &str, to: &str| format!("`{from}` waits for `{to}`");
        let (from, to, span) = &edges[0];
        let mut finding = Finding::new(
            span.clone(),
            format!("`after` forms a cycle: {}", names.join(" → ")),
            waits(from, to),
        )
        .help("no service in a cycle can go first: remove one of these `after` items");
        for (from, to, span) in &edges[1..] {
            finding = finding.also(span.clone(), waits(from, to));
        }
        findings.push(finding);
    }
}

/// Every file the config names can be opened (run by `load_checked` only).
pub(crate) fn files(sections: &Sections) -> Vec<Finding> {
    let mut findings = Vec::new();
    for place in &sections.places.files {
        let shown = place.path.display();
        let problem = match std::fs::File::open(&place.path) {
            Ok(file) => match file.metadata() {
                Ok(meta) if meta.is_dir() => Some(("is a folder".to_owned(), "a folder")),
                Ok(_) => None,
                Err(e) => Some((format!("cannot be read: {e}"), "unreadable")),
            },
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {
                Some(("does not exist".to_owned(), "no such file"))
            }
            Err(e) => Some((format!("cannot be read: {e}"), "unreadable")),
        };
        if let Some((why, label)) = problem {
            findings.push(
                Finding::new(
                    place.span.clone(),
                    format!("the {} file {shown} {why}", place.what),
                    label,
                )
                .help("paths are relative to this file's directory; put the PEM file there, or fix the path (the daemon reads it at start and when it changes)"),
            );
        }
    }
    findings
}
