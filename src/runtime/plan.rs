//! From the config and a request to the plan the release machine carries out:
//! which services roll in which order, canary where configured and possible
//! (blue-green otherwise), the rollback window, backups and migrations. Also
//! the check that a plan saved by an earlier daemon still fits the config.

use std::time::Duration;

use cutover_core::{
    CanarySpec, ContractTarget, InconclusivePolicy, Millis, Mismatch, Plan, ReleaseKind,
    ReleasePlan, RestartPolicy, ServicePlan, Thresholds,
};

use super::Daemon;
use super::environment::EnvRuntime;
use crate::config::{Config, ServiceKind, Strategy};

/// A duration as the core's milliseconds (saturating).
pub(crate) fn millis(d: Duration) -> Millis {
    Millis(u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// What a release is asked to do, beyond its rollout.
pub(crate) struct Extras {
    pub(crate) kind: ReleaseKind,
    pub(crate) backup: bool,
    pub(crate) migrate: bool,
    pub(crate) contract: Vec<ContractTarget>,
}

/// The release plan of `version` for `env` (see [`rollout_plan`]), with the
/// environment's rollback window.
pub(crate) fn release_plan(
    daemon: &Daemon,
    env: &EnvRuntime,
    version: &str,
    old_version: Option<&str>,
    only_service: Option<&str>,
    extras: Extras,
) -> (ReleasePlan, Vec<bool>) {
    let force_blue_green = extras.kind != ReleaseKind::Deploy;
    let (rollout, has_previous) = rollout_plan(
        daemon,
        env,
        version,
        old_version,
        only_service,
        force_blue_green,
    );
    (
        ReleasePlan {
            kind: extras.kind,
            rollout,
            backup: extras.backup,
            migrate: extras.migrate,
            rollback_window: millis(env.config.rollback_window),
            contract: extras.contract,
            approval: None,
        },
        has_previous,
    )
}

/// The rollout plan of `version` for `env`: every service (or only one) in
/// `after` order, canary where configured and possible, blue-green otherwise.
/// Also says which services have a warm previous release to fall back to.
pub(crate) fn rollout_plan(
    daemon: &Daemon,
    env: &EnvRuntime,
    version: &str,
    old_version: Option<&str>,
    only_service: Option<&str>,
    force_blue_green: bool,
) -> (Plan, Vec<bool>) {
    let config = &daemon.config;
    let mut services = Vec::new();
    let mut has_previous = Vec::new();
    let mut on_restart = RestartPolicy::Rollback;
    for name in config.rollout_order() {
        if only_service.is_some_and(|only| only != name) {
            continue;
        }
        let Some(sc) = config.service_in(&env.name, &name) else {
            continue;
        };
        let warm =
            old_version.is_some_and(|old| env.of_version(old).iter().any(|i| i.service == name));
        let canary = sc.rollout.strategy == Strategy::Canary
            && sc.kind == ServiceKind::Http
            && warm
            && !force_blue_green;
        if sc.rollout.strategy == Strategy::Canary
            && sc.rollout.on_daemon_restart == crate::config::RestartPolicy::Resume
        {
            on_restart = RestartPolicy::Resume;
        }
        let strategy = if canary {
            cutover_core::Strategy::Canary(canary_spec(&sc.rollout))
        } else {
            cutover_core::Strategy::BlueGreen
        };
        services.push(ServicePlan {
            name: name.clone(),
            strategy,
            // Only a deploy waits for the switch: a rollback or a restart
            // brings back what served.
            manual_switch: !force_blue_green
                && sc.rollout.switch == crate::config::SwitchMode::Manual,
        });
        has_previous.push(warm);
    }
    (
        Plan {
            version: version.to_owned(),
            previous_version: old_version.map(str::to_owned),
            services,
            on_restart,
        },
        has_previous,
    )
}

fn canary_spec(r: &crate::config::RolloutConfig) -> CanarySpec {
    let a = &r.analysis;
    CanarySpec {
        steps: r.steps.clone(),
        step_duration: millis(r.step_duration),
        check_interval: millis(r.check_interval),
        max_inconclusive: r.max_inconclusive,
        on_inconclusive: match r.on_inconclusive {
            crate::config::InconclusivePolicy::Fail => InconclusivePolicy::Fail,
            crate::config::InconclusivePolicy::Pause => InconclusivePolicy::Pause,
        },
        thresholds: Thresholds {
            max_error_rate: a.max_error_rate,
            max_p95_ms: a.max_p95.map(|d| d.as_secs_f64() * 1000.0),
            max_p99_ms: a.max_p99.map(|d| d.as_secs_f64() * 1000.0),
            max_error_rate_increase: a.max_error_rate_increase,
            max_latency_ratio: a.max_latency_ratio,
            min_requests: a.min_requests,
            abort_error_rate: a.abort_error_rate,
        },
    }
}

/// Whether a plan saved by an earlier daemon for environment `env` still
/// fits `config`: every service still exists, a canary's steps are the ones
/// configured, and every database of its contract migrations is still one of
/// the environment's. The error names what differs.
pub(crate) fn fits_config(plan: &ReleasePlan, config: &Config, env: &str) -> Result<(), Mismatch> {
    for sp in &plan.rollout.services {
        let Some(sc) = config.service_in(env, &sp.name) else {
            return Err(Mismatch(format!(
                "service {} of the saved release is not in the config any more (renamed or removed?); \
                 the config has {}",
                sp.name,
                config
                    .services
                    .keys()
                    .cloned()
                    .collect::<Vec<_>>()
                    .join(", ")
            )));
        };
        if let cutover_core::Strategy::Canary(spec) = &sp.strategy
            && spec.steps != sc.rollout.steps
        {
            return Err(Mismatch(format!(
                "service {}: the saved rollout has canary steps {:?}, the config now says {:?}",
                sp.name, spec.steps, sc.rollout.steps
            )));
        }
    }
    for target in &plan.contract {
        if !config.databases_in(env).contains_key(&target.database) {
            return Err(Mismatch(format!(
                "database {} of the saved release's contract migrations is not a database of environment {env} in the config any more",
                target.database
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use cutover_core::{
        ContractTarget, Plan, ReleaseKind, ReleasePlan, RestartPolicy, ServicePlan,
    };

    use super::{fits_config, millis};

    const CONFIG: &str = r#"
[app]
name = "shop"

[service.web]
command = ["./web", "--port", "{port}"]

[environment.staging]
listen = "127.0.0.1:18081"

[environment.staging.database.cache]
url = "sqlite://staging-cache.db"

[environment.production]
listen = "127.0.0.1:18080"
"#;

    fn plan(service: &str, database: &str) -> ReleasePlan {
        ReleasePlan {
            kind: ReleaseKind::Deploy,
            rollout: Plan {
                version: "v2".into(),
                previous_version: Some("v1".into()),
                services: vec![ServicePlan {
                    name: service.into(),
                    strategy: cutover_core::Strategy::BlueGreen,
                    manual_switch: false,
                }],
                on_restart: RestartPolicy::Rollback,
            },
            backup: false,
            migrate: true,
            rollback_window: millis(std::time::Duration::from_secs(60)),
            contract: vec![ContractTarget {
                database: database.into(),
                upto: 2,
            }],
            approval: None,
        }
    }

    #[test]
    fn a_saved_plan_fits_only_the_databases_of_its_environment() {
        let config = crate::config::parse(CONFIG, std::path::Path::new("/srv/shop/cutover.toml"))
            .expect("valid config");
        assert!(fits_config(&plan("web", "cache"), &config, "staging").is_ok());
        // production has no database `cache`: a plan saved for it does not fit.
        let mismatch = fits_config(&plan("web", "cache"), &config, "production")
            .expect_err("cache is staging's");
        assert!(
            mismatch.0.contains("environment production"),
            "{}",
            mismatch.0
        );
        // A service gone from the config is still detected.
        let mismatch =
            fits_config(&plan("api", "cache"), &config, "staging").expect_err("no service api");
        assert!(mismatch.0.contains("service api"), "{}", mismatch.0);
    }
}
