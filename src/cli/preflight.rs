//! `cutover preflight`: is this host ready to deploy? The config, each
//! database and its backups (`crate::db::preflight`), the open-file limit
//! (soft and hard, and what the daemon raises it to), and each environment's
//! deployment lock. Exit 1 when a check fails; a warning (`warn`) does not
//! fail.

use std::path::Path;
use std::str::FromStr as _;

use super::output;
use crate::db::preflight::{self, Check};
use crate::exit::{self, CliError};
use crate::store::Store;

/// Runs every check and prints them.
pub async fn run(path: &Path, json: bool) -> Result<(), CliError> {
    let config = output::load_config(path)?;
    let mut checks = vec![Check {
        name: "config valid".into(),
        ok: true,
        warning: false,
        detail: config.path.display().to_string(),
        fix: None,
    }];
    checks.extend(preflight::run(&config, false).await);
    checks.extend(locks(&config).await);
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

/// Whether each environment's deployment lock is free (no state store yet:
/// free).
async fn locks(config: &crate::config::Config) -> Vec<Check> {
    let exists = sqlx::sqlite::SqliteConnectOptions::from_str(&config.state.url)
        .is_ok_and(|options| options.get_filename().is_file());
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
