//! The order services are rolled out in within one release, from their
//! `after` lists: [`Config::rollout_order`], and the cycles `checks` reports.

use std::collections::{BTreeMap, BTreeSet};

use super::model::Config;

/// The `after` graph: each service and the services it waits for (known,
/// other than itself, each once, in the order written).
pub(crate) type Graph<'a> = BTreeMap<&'a str, Vec<&'a str>>;

/// The graph of `services` (name and `after` list). Unknown names and a
/// service naming itself are left out: `checks` reports those separately.
pub(crate) fn graph<'a>(services: impl IntoIterator<Item = (&'a str, &'a [String])>) -> Graph<'a> {
    let services: Vec<(&str, &[String])> = services.into_iter().collect();
    let known: BTreeSet<&str> = services.iter().map(|&(name, _)| name).collect();
    services
        .iter()
        .map(|&(name, after)| {
            let mut waits_for: Vec<&str> = Vec::with_capacity(after.len());
            for other in after {
                if let Some(&other) = known.get(other.as_str())
                    && other != name
                    && !waits_for.contains(&other)
                {
                    waits_for.push(other);
                }
            }
            (name, waits_for)
        })
        .collect()
}

/// Every service of `graph`, each after the services it waits for; among
/// those free to go next, by name. Services on a cycle (which a loaded
/// config never has) come last, by name.
pub(crate) fn topological(graph: &Graph<'_>) -> Vec<String> {
    let mut waiting: BTreeMap<&str, usize> = graph
        .iter()
        .map(|(&name, waits_for)| (name, waits_for.len()))
        .collect();
    let mut ready: BTreeSet<&str> = waiting
        .iter()
        .filter(|&(_, &count)| count == 0)
        .map(|(&name, _)| name)
        .collect();
    let mut order = Vec::with_capacity(graph.len());
    while let Some(next) = ready.pop_first() {
        waiting.remove(next);
        order.push(next.to_owned());
        for (&name, waits_for) in graph {
            if waits_for.contains(&next)
                && let Some(count) = waiting.get_mut(name)
            {
                *count -= 1;
                if *count == 0 {
                    ready.insert(name);
                }
            }
        }
    }
    order.extend(waiting.into_keys().map(str::to_owned));
    order
}

/// Cycles in `graph`, each as the services along it (`[web, api]` for
/// web → api → web). Every part of the graph that has a cycle yields at
/// least one; all are found once the reported ones are broken.
pub(crate) fn cycles<'a>(graph: &Graph<'a>) -> Vec<Vec<&'a str>> {
    #[derive(Clone, Copy, PartialEq)]
    enum Visit {
        OnPath,
        Done,
    }
    let mut visits: BTreeMap<&str, Visit> = BTreeMap::new();
    let mut found = Vec::new();
    for &start in graph.keys() {
        if visits.contains_key(start) {
            continue;
        }
        // Depth first: each service on the path with the next edge to follow.
        let mut path: Vec<(&str, usize)> = vec![(start, 0)];
        visits.insert(start, Visit::OnPath);
        while let Some(&(node, edge)) = path.last() {
            let next = graph.get(node).and_then(|edges| edges.get(edge)).copied();
            if let Some(last) = path.last_mut() {
                last.1 += 1;
            }
            let Some(next) = next else {
                visits.insert(node, Visit::Done);
                path.pop();
                continue;
            };
            match visits.get(next) {
                None => {
                    visits.insert(next, Visit::OnPath);
                    path.push((next, 0));
                }
                Some(Visit::OnPath) => {
                    if let Some(at) = path.iter().position(|&(name, _)| name == next) {
                        found.push(path[at..].iter().map(|&(name, _)| name).collect());
                    }
                }
                Some(Visit::Done) => {}
            }
        }
    }
    found
}

impl Config {
    /// Every service, in the order to roll them out within one release: each
    /// after the services its `after` names; services free to go at the same
    /// time in order of name.
    pub fn rollout_order(&self) -> Vec<String> {
        topological(&graph(
            self.services
                .iter()
                .map(|(name, service)| (name.as_str(), service.after.as_slice())),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn graph_of<'a>(edges: &'a [(&'a str, Vec<String>)]) -> Graph<'a> {
        graph(edges.iter().map(|(name, after)| (*name, after.as_slice())))
    }

    fn after(names: &[&str]) -> Vec<String> {
        names.iter().map(|&name| name.to_owned()).collect()
    }

    #[test]
    fn order_follows_after_then_names() {
        let edges = [
            ("web", after(&["api", "auth"])),
            ("api", after(&["db"])),
            ("auth", after(&[])),
            ("db", after(&[])),
            ("jobs", after(&["db"])),
        ];
        assert_eq!(
            topological(&graph_of(&edges)),
            ["auth", "db", "api", "jobs", "web"]
        );
    }

    #[test]
    fn unknown_names_self_and_repeats_are_ignored() {
        let edges = [
            ("web", after(&["web", "nope", "api", "api"])),
            ("api", after(&[])),
        ];
        let graph = graph_of(&edges);
        assert_eq!(graph["web"], ["api"]);
        assert_eq!(topological(&graph), ["api", "web"]);
        assert!(cycles(&graph).is_empty());
    }

    #[test]
    fn cycles_are_found_and_ordered_last() {
        let edges = [
            ("a", after(&[])),
            ("b", after(&["c"])),
            ("c", after(&["d"])),
            ("d", after(&["b"])),
            ("e", after(&["a"])),
        ];
        let graph = graph_of(&edges);
        assert_eq!(cycles(&graph), [vec!["b", "c", "d"]]);
        assert_eq!(topological(&graph), ["a", "e", "b", "c", "d"]);
    }

    #[test]
    fn two_separate_cycles_are_both_found() {
        let edges = [
            ("a", after(&["b"])),
            ("b", after(&["a"])),
            ("x", after(&["y"])),
            ("y", after(&["x"])),
        ];
        assert_eq!(cycles(&graph_of(&edges)), [vec!["a", "b"], vec!["x", "y"]]);
    }
}
