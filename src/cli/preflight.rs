//! `cutover preflight`: is this host ready to deploy? The config, each
//! database and its backups (`crate::db::preflight`), the open-file limit
//! (soft and hard, and what the daemon raises it to), and each environment's
//! deployment lock. Exit 1 when a check fails; a warning (`warn`) does not
//! fail.
//!
//! The open-file limit that matters is the daemon's: when a daemon answers on
//! the API, its limit (from `GET /v1/status`) is reported; otherwise the
//! check says it is this CLI's limit and what a daemon started from this
//! shell would raise it to.

use std::collections::BTreeMap;
use std::path::Path;

use super::output;
use crate::api::wire::OpenFileLimit;
use crate::config::DatabaseConfig;
use crate::db::preflight::{self, Check};
use crate::exit::{self, CliError};
use crate::store::Store;

/// Runs every check and prints them.
pub async fn run(path: &Path, environment: Option<&str>, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    if let Some(environment) = environment {
        config
            .environment(Some(environment))
            .map_err(|e| CliError::new(exit::USAGE, output::render_config_error(e)))?;
    }
    let mut checks = vec![Check {
        name: "config valid".into(),
        ok: true,
        warning: false,
        detail: config.path.display().to_string(),
        fix: None,
    }];
    checks.extend(preflight::run(&databases(&config, environment), false).await);
    daemon_open_files(&config, &mut checks).await;
    checks.extend(locks(&config, environment).await);
    if json {
        output::print_json(&checks)?;
    } else {
        for check in &checks {
            let mark = match (check.ok, check.warning) {
                (false, _) => "FAIL",
                (true, true) => "warn",
                (true, false) => "ok  ",
            };
            println!("{mark} {}: {}", check.name, check.detail);
            if let Some(fix) = &check.fix {
                println!("     → {fix}");
            }
        }
    }
    let failed = checks.iter().filter(|c| !c.ok).count();
    match failed {
        0 => Ok(()),
        n => Err(CliError::new(
            exit::FAILURE,
            format!("preflight: {n} check(s) failed"),
        )),
    }
}

/// Replaces the open-file check with the running daemon's limit, or says
/// that it is this CLI's when no daemon answers.
async fn daemon_open_files(config: &crate::config::Config, checks: &mut [Check]) {
    let Some(check) = checks.iter_mut().find(|c| c.name == OPEN_FILES) else {
        return;
    };
    let limit = match output::client(config) {
        Ok(client) => client.status().await.ok().and_then(|s| s.open_files),
        Err(_) => None,
    };
    match limit {
        Some(limit) => *check = daemon_limit_check(limit),
        None => {
            check.detail = format!(
                "{} (this CLI's limit: no daemon answers on {})",
                check.detail, config.server.listen
            );
        }
    }
}

/// The name of the open-file check (`crate::db::preflight`).
const OPEN_FILES: &str = "open files limit";

/// The check of a running daemon's open-file limit: fails below
/// [`preflight::MIN_OPEN_FILES`], warns below [`preflight::WANTED_OPEN_FILES`].
fn daemon_limit_check(limit: OpenFileLimit) -> Check {
    let hard = if limit.hard == u64::MAX {
        "unlimited".to_owned()
    } else {
        limit.hard.to_string()
    };
    let detail = format!("the running daemon's: soft {}, hard {hard}", limit.soft);
    let fix = format!(
        "raise the daemon's hard limit to at least {w}: LimitNOFILE={w} in cutover's systemd unit, or `ulimit -Hn {w}` (as root) in the shell that starts it, then restart the daemon",
        w = preflight::WANTED_OPEN_FILES
    );
    let (ok, warning, detail) = if limit.soft < preflight::MIN_OPEN_FILES {
        (
            false,
            false,
            format!("{detail}, below {}", preflight::MIN_OPEN_FILES),
        )
    } else if limit.soft < preflight::WANTED_OPEN_FILES {
        (
            true,
            true,
            format!("{detail}, below {}", preflight::WANTED_OPEN_FILES),
        )
    } else {
        (true, false, detail)
    };
    Check {
        name: OPEN_FILES.into(),
        ok,
        warning,
        detail,
        fix: (!ok || warning).then_some(fix),
    }
}

/// The databases to check: those of `environment`, or of every environment,
/// each version once (named `DB (ENV)` where environments differ).
fn databases(
    config: &crate::config::Config,
    environment: Option<&str>,
) -> BTreeMap<String, DatabaseConfig> {
    let mut out: BTreeMap<String, DatabaseConfig> = BTreeMap::new();
    if let Some(environment) = environment {
        return config.databases_in(environment).clone();
    }
    let mut versions: BTreeMap<&str, Vec<(&str, &DatabaseConfig)>> = BTreeMap::new();
    for (env, environment) in &config.environments {
        for (name, database) in &environment.databases {
            versions.entry(name).or_default().push((env, database));
        }
    }
    for (name, mut all) in versions {
        let first_url = all.first().map(|(_, d)| d.url.clone());
        let one = all.iter().all(|(_, d)| Some(&d.url) == first_url.as_ref());
        all.dedup_by(|a, b| a.1.url == b.1.url);
        for (env, database) in all {
            let key = if one {
                name.to_owned()
            } else {
                format!("{name} ({env})")
            };
            out.insert(key, database.clone());
        }
    }
    out
}

/// Whether each environment's deployment lock (or only `only`'s) is free (no
/// state store yet: free).
async fn locks(config: &crate::config::Config, only: Option<&str>) -> Vec<Check> {
    let exists = match Store::inspect(&config.state.url) {
        Ok(crate::store::StoreFile::Server(_)) => match Store::is_new(&config.state.url).await {
            Ok(new) => !new,
            Err(e) => {
                return vec![Check {
                    name: "state store readable".into(),
                    ok: false,
                    warning: false,
                    detail: e.to_string(),
                    fix: Some(
                        "check [state] url, that the PostgreSQL server answers and that the role may connect"
                            .into(),
                    ),
                }];
            }
        },
        Ok(file) => file.path().is_some_and(Path::is_file),
        Err(_) => false,
    };
    if !exists {
        return vec![Check {
            name: "deployment locks free".into(),
            ok: true,
            warning: false,
            detail: "no state store yet".into(),
            fix: None,
        }];
    }
    let store = match Store::open(&config.state.url).await {
        Ok(store) => store,
        Err(e) => {
            return vec![Check {
                name: "state store readable".into(),
                ok: false,
                warning: false,
                detail: e.to_string(),
                fix: Some("check [state] url and the file's permissions".into()),
            }];
        }
    };
    let mut checks = Vec::new();
    for name in config.environments.keys() {
        if only.is_some_and(|only| only != name) {
            continue;
        }
        let check = match store.lock(name).await {
            Ok(None) => Check {
                name: format!("deployment lock of {name} free"),
                ok: true,
                warning: false,
                detail: "free".into(),
                fix: None,
            },
            Ok(Some(lock)) => Check {
                name: format!("deployment lock of {name} free"),
                ok: false,
                warning: false,
                detail: format!(
                    "held by {} since {} ({})",
                    lock.holder, lock.since, lock.purpose
                ),
                fix: Some("wait for that deployment to finish (`cutover status`)".into()),
            },
            Err(e) => Check {
                name: format!("deployment lock of {name} free"),
                ok: false,
                warning: false,
                detail: e.to_string(),
                fix: Some("check the state store".into()),
            },
        };
        checks.push(check);
    }
    store.close().await;
    checks
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_daemon_limit_passes_warns_or_fails_by_the_thresholds() {
        let check = |soft, hard| daemon_limit_check(OpenFileLimit { soft, hard });
        let high = check(65536, u64::MAX);
        assert!(high.ok && !high.warning && high.fix.is_none(), "{high:?}");
        assert_eq!(
            high.detail,
            "the running daemon's: soft 65536, hard unlimited"
        );
        let mid = check(4096, 4096);
        assert!(mid.ok && mid.warning && mid.fix.is_some(), "{mid:?}");
        assert!(mid.detail.ends_with("below 65536"), "{}", mid.detail);
        let low = check(256, 256);
        assert!(!low.ok && low.detail.ends_with("below 1024"), "{low:?}");
    }
}
