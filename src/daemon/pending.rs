//! What a reload cannot apply: settings that shape the instances themselves
//! (what runs, with which environment, how many) take effect at the next
//! deploy, because the running instances were started with the old ones and
//! are adopted as they are. Everything else (routes, health checks, limits,
//! certificates, rollout settings) is read by the new daemon at once.

use crate::config::Config;

/// One line per setting that waits for the next deploy, for people.
pub fn pending_until_deploy(running: &Config, next: &Config) -> Vec<String> {
    let mut pending = Vec::new();
    for (name, new) in &next.services {
        let Some(old) = running.services.get(name) else {
            pending.push(format!(
                "service {name} is new: it starts with the next deploy"
            ));
            continue;
        };
        let mut changed = Vec::new();
        if old.kind != new.kind {
            changed.push("kind");
        }
        if old.driver != new.driver {
            changed.push("driver");
        }
        if old.command != new.command {
            changed.push("command");
        }
        if old.env != new.env {
            changed.push("env");
        }
        if old.replicas != new.replicas {
            changed.push("replicas");
        }
        if old.docker != new.docker {
            changed.push("docker (image or container settings)");
        }
        if !changed.is_empty() {
            pending.push(format!(
                "service {name}: {} changed; the running instances keep the old setting until the next deploy",
                changed.join(", ")
            ));
        }
    }
    // An environment's own `env` and `replicas` ([environment.E.service.S]).
    for env in next.environments.keys() {
        for (name, new) in next.services_in(env) {
            let (Some(old), Some(old_base), Some(new_base)) = (
                running.service_in(env, name),
                running.services.get(name),
                next.services.get(name),
            ) else {
                continue;
            };
            let mut changed = Vec::new();
            if old.env != new.env && old_base.env == new_base.env {
                changed.push("env");
            }
            if old.replicas != new.replicas && old_base.replicas == new_base.replicas {
                changed.push("replicas");
            }
            if !changed.is_empty() {
                pending.push(format!(
                    "service {name} in environment {env}: {} changed; the running instances keep the old setting until the next deploy to {env}",
                    changed.join(", ")
                ));
            }
        }
    }
    for name in running.services.keys() {
        if !next.services.contains_key(name) {
            pending.push(format!(
                "service {name} is gone from the config: its running instances stop when the next deploy retires their release"
            ));
        }
    }
    pending
}
