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
    shared_databases(sections, &mut findings);
    shared_backup_dirs(sections, &mut findings);
    promotion(sections, &mut findings);
    findings
}

/// "`a`, `b` and `c`".
fn and_list(names: &[&str]) -> String {
    let quoted: Vec<String> = names.iter().map(|n| format!("`{n}`")).collect();
    match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} and {last}", rest.join(", ")),
        Some((last, _)) => last.clone(),
        None => String::new(),
    }
}

/// Two environments must not migrate or back up the same database (one
/// URL) unless every one of them says `shared = true`: a deploy to staging
/// would otherwise change production's schema.
fn shared_databases(sections: &Sections, findings: &mut Vec<Finding>) {
    // URL → the (environment, database, place) that use it, in file order.
    let mut by_url: std::collections::BTreeMap<&str, Vec<&super::resolve::DatabasePlace>> =
        std::collections::BTreeMap::new();
    for place in &sections.places.databases {
        let Some(database) = sections
            .environments
            .get(&place.environment)
            .and_then(|environment| environment.databases.get(&place.database))
        else {
            continue;
        };
        if database.url.is_empty() || database.url.contains(":memory:") {
            continue;
        }
        by_url
            .entry(same_database(&database.url))
            .or_default()
            .push(place);
    }
    for (url, places) in by_url {
        let mut environments: Vec<&str> = places.iter().map(|p| p.environment.as_str()).collect();
        environments.dedup();
        if environments.len() < 2 {
            continue;
        }
        let all_shared = places.iter().all(|place| {
            sections
                .environments
                .get(&place.environment)
                .and_then(|environment| environment.databases.get(&place.database))
                .is_some_and(|database| database.shared)
        });
        if all_shared {
            continue;
        }
        let mut places = places.clone();
        places.sort_by_key(|place| (place.url.start, place.environment.clone()));
        let Some(first) = places.first() else {
            continue;
        };
        let names = if environments.len() > 4 {
            let more = environments.len() - 3;
            format!(
                "{} and {more} more",
                and_list(&environments[..3]).replacen(" and ", ", ", 1)
            )
        } else {
            and_list(&environments)
        };
        let database = &first.database;
        let example = environments
            .iter()
            .take(2)
            .map(|env| {
                format!("    [environment.{env}.database.{database}]\n    url = \"…{env}…\"")
            })
            .collect::<Vec<_>>()
            .join("\n\n");
        let label = if places.iter().all(|p| p.url == first.url) {
            format!("used by {names}")
        } else {
            format!("used by `{}`", first.environment)
        };
        let mut finding = Finding::new(
            first.url.clone(),
            format!(
                "environments {names} would migrate and back up the same database `{database}` ({})",
                super::redact_url(url)
            ),
            label,
        )
        .help(format!(
            "a deploy to one environment would change the other's database: give each environment its own url,\n\n{example}\n\nor, if they really share this one database, say so with shared = true in [database.{database}]"
        ));
        for place in places.iter().skip(1) {
            if place.url != first.url {
                finding = finding.also(
                    place.url.clone(),
                    format!("used by `{}`", place.environment),
                );
            }
        }
        findings.push(finding);
    }
}

/// What identifies the database a URL names: a SQLite file's URL without
/// its options (`?mode=rwc`), any other URL as written.
fn same_database(url: &str) -> &str {
    match url.split_once('?') {
        Some((file, _)) if url.starts_with("sqlite:") => file,
        _ => url,
    }
}

/// Two environments' backups of different databases under one name must not
/// go into one folder (`list`, `prune` and `restore` would mix them).
fn shared_backup_dirs(sections: &Sections, findings: &mut Vec<Finding>) {
    let places = &sections.places.databases;
    for (i, place) in places.iter().enumerate() {
        let Some(span) = &place.backup_dir else {
            continue;
        };
        let get = |p: &super::resolve::DatabasePlace| {
            sections
                .environments
                .get(&p.environment)
                .and_then(|environment| environment.databases.get(&p.database))
        };
        let Some(database) = get(place) else { continue };
        let Some(dir) = database.backup.as_ref().map(|b| &b.dir) else {
            continue;
        };
        let clash = places.iter().enumerate().find(|(j, other)| {
            *j != i
                && other.environment != place.environment
                && other.database == place.database
                && get(other).is_some_and(|o| {
                    o.url != database.url && o.backup.as_ref().map(|b| &b.dir) == Some(dir)
                })
        });
        if let Some((j, other)) = clash {
            // Report once, at the later of two written folders.
            if other.backup_dir.is_some() && j > i {
                continue;
            }
            let mut finding = Finding::new(
                span.clone(),
                format!(
                    "environments `{}` and `{}` back up different databases `{}` into the same folder {}",
                    other.environment,
                    place.environment,
                    place.database,
                    dir.display()
                ),
                format!("`{}`'s backups", place.environment),
            )
            .help(format!(
                "their backups would mix (list, prune and restore could pick the other environment's): give each environment its own backup.dir, e.g. backup = {{ dir = \".cutover/backups/{}\" }}",
                place.environment
            ));
            if let Some(other_span) = &other.backup_dir {
                finding = finding.also(
                    other_span.clone(),
                    format!("`{}`'s backups", other.environment),
                );
            }
            findings.push(finding);
        }
    }
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
    if let (Some(span), Some(address)) =
        (&places.dashboard_listen, sections.server.dashboard_listen)
    {
        extra.push((
            "the dashboard's listener ([server] dashboard_listen)".to_owned(),
            "dashboard_listen",
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

/// `promote_from` names another environment, and following it never comes
/// back to where it started.
fn promotion(sections: &Sections, findings: &mut Vec<Finding>) {
    let written = &sections.places.promote_from;
    for (name, (from, span)) in written {
        if from == name {
            findings.push(
                Finding::new(
                    span.clone(),
                    format!("environment `{name}` promotes from itself"),
                    "itself",
                )
                .help("promote_from names the environment a release must have run in first: name another one, e.g. \"staging\""),
            );
        } else if !sections.environments.contains_key(from) {
            let others: Vec<&str> = sections
                .environments
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
                format!(
                    "`{name}` is the only environment: add the one releases run in first, or remove `promote_from`"
                )
            } else if let Some(close) = suggest::closest(from, others.iter().copied()) {
                format!("did you mean `{close}`? other environments: {list}")
            } else {
                format!("expected the name of another environment: {list}")
            };
            findings.push(
                Finding::new(
                    span.clone(),
                    format!("`promote_from` names an unknown environment `{from}`"),
                    "no such environment",
                )
                .help(help),
            );
        }
    }
    // Each environment has at most one `promote_from`: a cycle is a walk
    // that comes back. Report each cycle once, at its entry written last.
    let mut reported: Vec<String> = Vec::new();
    for start in written.keys() {
        let mut path = vec![start.as_str()];
        let mut at = start.as_str();
        while let Some((next, _)) = written.get(at) {
            if next == at || !sections.environments.contains_key(next) {
                break;
            }
            if let Some(i) = path.iter().position(|p| *p == next.as_str()) {
                let mut cycle: Vec<&str> = path[i..].to_vec();
                let mut key = cycle.iter().map(|s| (*s).to_owned()).collect::<Vec<_>>();
                key.sort();
                let key = key.join("\u{0}");
                if !reported.contains(&key) {
                    reported.push(key);
                    let Some(&last) = cycle
                        .iter()
                        .max_by_key(|env| written.get(**env).map_or(0, |(_, s)| s.start))
                    else {
                        break;
                    };
                    let pos = cycle.iter().position(|e| *e == last).unwrap_or(0);
                    cycle.rotate_left(pos);
                    let mut names = cycle.clone();
                    names.push(cycle[0]);
                    let waits = |env: &str| {
                        let (from, span) = &written[env];
                        (span.clone(), format!("`{env}` promotes from `{from}`"))
                    };
                    let (span, label) = waits(cycle[0]);
                    let mut finding = Finding::new(
                        span,
                        format!("`promote_from` forms a cycle: {}", names.join(" → ")),
                        label,
                    )
                    .help("no release could ever reach an environment in a cycle: remove one of these `promote_from`");
                    for env in &cycle[1..] {
                        let (span, label) = waits(env);
                        finding = finding.also(span, label);
                    }
                    findings.push(finding);
                }
                break;
            }
            path.push(next.as_str());
            at = next.as_str();
        }
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
