//! Promotion: `[environment.production] promote_from = "staging"` with
//! `soak = "30m"`. A deploy to production accepts only a version whose
//! latest deploy to staging succeeded with the same digest (service by
//! service) and that has served staging for `soak` since, or did before
//! another release replaced it, without being rolled back. Otherwise the
//! deploy is refused before anything changes, saying what is missing.
//!
//! Where a version has run is read from the deployments of the source
//! environment: a deploy that succeeded starts serving when it finished;
//! the next deployment there that succeeded ends it (a rollback away from
//! it means it was rolled back).

use std::collections::BTreeMap;
use std::time::Duration;

use jiff::Timestamp;

use super::identity::{ReleaseIdentity, short};
use super::{Daemon, DeployError};
use crate::store::{Deployment, DeploymentKind, DeploymentState, ReleaseDigest};

/// How many of the source environment's deployments are read.
const HISTORY: u32 = 500;

/// One stretch of time a version served an environment.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Run {
    /// The deployment that deployed it.
    pub deployment_id: i64,
    /// How that deployment ended.
    pub outcome: DeploymentState,
    /// When it started serving all traffic (the deployment's end, when it
    /// succeeded).
    pub from: Option<Timestamp>,
    /// When it stopped serving; `None` while it serves.
    pub to: Option<Timestamp>,
    /// The deployment that ended it, if one did.
    pub ended_by: Option<i64>,
    /// Whether it ended by a rollback (`cutover rollback`, or its own
    /// deployment rolled back).
    pub rolled_back: bool,
}

/// Every deploy of `version` in the history `deployments` (any order) of
/// one environment, oldest first, with when it served.
pub(crate) fn runs(deployments: &[Deployment], version: &str) -> Vec<Run> {
    let mut sorted: Vec<&Deployment> = deployments.iter().collect();
    sorted.sort_by_key(|d| d.id);
    let mut runs = Vec::new();
    for (i, d) in sorted.iter().enumerate() {
        if d.kind != DeploymentKind::Deploy || d.version != version {
            continue;
        }
        let mut run = Run {
            deployment_id: d.id,
            outcome: d.state,
            from: None,
            to: None,
            ended_by: None,
            rolled_back: d.state == DeploymentState::RolledBack,
        };
        if d.state == DeploymentState::Succeeded {
            run.from = d.finished_at;
            let next = sorted
                .iter()
                .skip(i.saturating_add(1))
                .find(|n| n.state == DeploymentState::Succeeded && n.version != version);
            if let Some(next) = next {
                run.to = next.finished_at;
                run.ended_by = Some(next.id);
                run.rolled_back = next.kind == DeploymentKind::Rollback
                    && next.previous_version.as_deref() == Some(version);
            }
        }
        runs.push(run);
    }
    runs
}

/// How long a run served, up to `now` while it still serves.
pub(crate) fn served(run: &Run, now: Timestamp) -> Duration {
    let Some(from) = run.from else {
        return Duration::ZERO;
    };
    let to = run.to.unwrap_or(now);
    Duration::try_from(to.duration_since(from)).unwrap_or(Duration::ZERO)
}

/// A duration for messages: whole seconds under an hour (`12m 3s`, `4s`),
/// whole minutes from an hour on (`1day 4h 26m`).
pub(crate) fn human(d: Duration) -> String {
    let secs = d.as_secs();
    let secs = if secs >= 3600 {
        secs.saturating_sub(secs % 60)
    } else {
        secs
    };
    humantime::format_duration(Duration::from_secs(secs)).to_string()
}

/// What a production deploy of `version` with `identity` needs from
/// `from`'s history; `Ok` with a line for the history when it may go.
pub(crate) fn check(
    version: &str,
    from: &str,
    soak: Duration,
    identity: &ReleaseIdentity,
    history: &[Deployment],
    digests: &BTreeMap<i64, ReleaseDigest>,
    now: Timestamp,
) -> Result<String, String> {
    let runs = runs(history, version);
    let Some(run) = runs.last() else {
        return Err(format!(
            "{version} has not run in {from}: deploy it there first (`cutover deploy {version} -e {from}`)"
        ));
    };
    let id = run.deployment_id;
    match run.outcome {
        DeploymentState::Running => {
            return Err(format!(
                "{version} is still being deployed to {from} (deployment {id}): wait until it serves there for {}",
                human(soak)
            ));
        }
        DeploymentState::RolledBack => {
            return Err(format!(
                "{version} in {from} was rolled back (deployment {id}): fix it and deploy a new version to {from} first"
            ));
        }
        DeploymentState::Failed | DeploymentState::Interrupted => {
            return Err(format!(
                "{version}'s last deploy to {from} did not succeed (deployment {id}, {}): deploy it to {from} again first",
                run.outcome.as_str()
            ));
        }
        DeploymentState::Succeeded => {}
    }
    if run.rolled_back {
        return Err(format!(
            "{version} in {from} was rolled back (by deployment {}): fix it and deploy a new version to {from} first",
            run.ended_by.unwrap_or(id)
        ));
    }
    let Some(there) = digests.get(&id) else {
        return Err(format!(
            "{version} has no recorded digest in {from} (deployment {id} was made before cutover recorded them): deploy it to {from} again first"
        ));
    };
    compare(version, from, identity, there)?;
    let served = served(run, now);
    if served < soak {
        let more = soak.saturating_sub(served);
        return Err(match run.to {
            None => format!(
                "{version} soaked {} of {} in {from}: try again in {}",
                human(served),
                human(soak),
                human(more.max(Duration::from_secs(1)))
            ),
            Some(_) => format!(
                "{version} served {} of {} in {from} before deployment {} replaced it: deploy it to {from} again and let it soak",
                human(served),
                human(soak),
                run.ended_by.unwrap_or(id)
            ),
        });
    }
    Ok(format!(
        "promotion check: {version} served {} in {from} (soak {}) with the same digest {}",
        human(served),
        human(soak),
        short(&identity.digest)
    ))
}

/// The same services with the same digests as `there` recorded; the error
/// names the first file (or image) that differs.
fn compare(
    version: &str,
    from: &str,
    identity: &ReleaseIdentity,
    there: &ReleaseDigest,
) -> Result<(), String> {
    for (service, here) in &identity.services {
        let Some(recorded) = there.services.get(service) else {
            return Err(format!(
                "{version}'s service {service} has not run in {from}: deploy it there first"
            ));
        };
        let recorded_digest = recorded["digest"].as_str().unwrap_or_default();
        if recorded_digest == here.digest {
            continue;
        }
        let parts = recorded["parts"].as_array().cloned().unwrap_or_default();
        for part in &here.parts {
            let theirs = parts
                .iter()
                .find(|p| p["kind"] == part.kind && p["name"] == part.name.as_str())
                .map(|p| p["sha256"].as_str().unwrap_or("-").to_owned());
            let ours = part.sha256.clone().unwrap_or_else(|| "-".into());
            match theirs {
                Some(theirs) if theirs == ours => {}
                Some(theirs) => {
                    return Err(format!(
                        "{version}'s artifacts differ from what {from} ran: {} {} of service {service} is sha256 {} here, {} there; deploy this build to {from} first",
                        part.kind,
                        part.name,
                        short(&ours),
                        short(&theirs)
                    ));
                }
                None => {
                    return Err(format!(
                        "{version}'s artifacts differ from what {from} ran: {} {} of service {service} was not part of it; deploy this build to {from} first",
                        part.kind, part.name
                    ));
                }
            }
        }
        return Err(format!(
            "{version}'s artifacts differ from what {from} ran: service {service} is sha256 {} here, {} there; deploy this build to {from} first",
            short(&here.digest),
            short(recorded_digest)
        ));
    }
    Ok(())
}

/// The promotion check of a deploy of `version` with `identity` to an
/// environment that promotes from `from` after `soak`.
pub(crate) async fn require(
    daemon: &Daemon,
    version: &str,
    from: &str,
    soak: Duration,
    identity: &ReleaseIdentity,
) -> Result<String, DeployError> {
    let history = daemon.store.deployments(Some(from), HISTORY).await?;
    let digests: BTreeMap<i64, ReleaseDigest> = daemon
        .store
        .release_digests(Some(from))
        .await?
        .into_iter()
        .map(|d| (d.deployment_id, d))
        .collect();
    check(
        version,
        from,
        soak,
        identity,
        &history,
        &digests,
        Timestamp::now(),
    )
    .map_err(DeployError::PromotionRequired)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::drivers::IdentityPart;
    use crate::runtime::identity::{ServiceDigest, combine, service_digest};

    fn at(second: i64) -> Timestamp {
        Timestamp::from_second(1_800_000_000 + second).expect("time")
    }

    fn deployment(
        id: i64,
        kind: DeploymentKind,
        version: &str,
        previous: Option<&str>,
        state: DeploymentState,
        finished: Option<i64>,
    ) -> Deployment {
        Deployment {
            id,
            environment: "staging".into(),
            version: version.into(),
            previous_version: previous.map(str::to_owned),
            strategy: "blue-green".into(),
            kind,
            state,
            reason: None,
            requested_by: "alice@host".into(),
            awaiting_approval: false,
            commit_sha: None,
            commit_time: None,
            started_at: at(0),
            finished_at: finished.map(at),
        }
    }

    fn identity(artifact_sha: &str) -> ReleaseIdentity {
        let parts = vec![
            IdentityPart {
                kind: "executable",
                name: "./releases/v2/hello".into(),
                sha256: Some("aa".into()),
            },
            IdentityPart {
                kind: "artifact",
                name: "dist/app-v2.tar.gz".into(),
                sha256: Some(artifact_sha.into()),
            },
        ];
        let digest = service_digest(&parts);
        let services = BTreeMap::from([("web".to_owned(), ServiceDigest { digest, parts })]);
        ReleaseIdentity {
            digest: combine(
                services
                    .iter()
                    .map(|(n, s)| (n.as_str(), s.digest.as_str())),
            ),
            services,
        }
    }

    fn recorded(id: i64, identity: &ReleaseIdentity) -> BTreeMap<i64, ReleaseDigest> {
        BTreeMap::from([(
            id,
            ReleaseDigest {
                deployment_id: id,
                environment: "staging".into(),
                version: "v2".into(),
                digest: identity.digest.clone(),
                services: identity.services_json(),
                recorded_at: at(0),
            },
        )])
    }

    const SOAK: Duration = Duration::from_secs(1800);
    use DeploymentKind::{Deploy, Rollback};
    use DeploymentState::{RolledBack, Running, Succeeded};

    #[test]
    fn a_version_that_soaked_with_the_same_digest_may_go() {
        let id = identity("bb");
        let history = [
            deployment(1, Deploy, "v1", None, Succeeded, Some(10)),
            deployment(2, Deploy, "v2", Some("v1"), Succeeded, Some(100)),
        ];
        let ok = check(
            "v2",
            "staging",
            SOAK,
            &id,
            &history,
            &recorded(2, &id),
            at(1900),
        );
        assert!(ok.is_ok_and(|line| line.contains("served 30m in staging")));
        let early = check(
            "v2",
            "staging",
            SOAK,
            &id,
            &history,
            &recorded(2, &id),
            at(820),
        );
        assert_eq!(
            early.expect_err("too early"),
            "v2 soaked 12m of 30m in staging: try again in 18m"
        );
    }

    #[test]
    fn what_is_missing_is_said() {
        let id = identity("bb");
        let none = check("v2", "staging", SOAK, &id, &[], &BTreeMap::new(), at(0));
        assert!(
            none.expect_err("never ran")
                .starts_with("v2 has not run in staging")
        );

        let running = [deployment(2, Deploy, "v2", None, Running, None)];
        let err = check(
            "v2",
            "staging",
            SOAK,
            &id,
            &running,
            &recorded(2, &id),
            at(5000),
        );
        assert!(err.expect_err("running").contains("still being deployed"));

        let canary_rolled_back = [deployment(2, Deploy, "v2", None, RolledBack, Some(50))];
        let err = check(
            "v2",
            "staging",
            SOAK,
            &id,
            &canary_rolled_back,
            &recorded(2, &id),
            at(5000),
        );
        assert!(
            err.expect_err("rolled back")
                .starts_with("v2 in staging was rolled back")
        );

        let rolled_back_later = [
            deployment(1, Deploy, "v1", None, Succeeded, Some(10)),
            deployment(2, Deploy, "v2", Some("v1"), Succeeded, Some(100)),
            deployment(3, Rollback, "v1", Some("v2"), Succeeded, Some(4000)),
        ];
        let err = check(
            "v2",
            "staging",
            SOAK,
            &id,
            &rolled_back_later,
            &recorded(2, &id),
            at(5000),
        );
        assert!(
            err.expect_err("rolled back")
                .starts_with("v2 in staging was rolled back (by deployment 3)")
        );

        let replaced_early = [
            deployment(2, Deploy, "v2", None, Succeeded, Some(100)),
            deployment(3, Deploy, "v3", Some("v2"), Succeeded, Some(400)),
        ];
        let err = check(
            "v2",
            "staging",
            SOAK,
            &id,
            &replaced_early,
            &recorded(2, &id),
            at(5000),
        );
        assert!(
            err.expect_err("replaced")
                .starts_with("v2 served 5m of 30m in staging before deployment 3 replaced it")
        );

        let other_build = identity("cc");
        let history = [deployment(2, Deploy, "v2", None, Succeeded, Some(100))];
        let err = check(
            "v2",
            "staging",
            SOAK,
            &other_build,
            &history,
            &recorded(2, &id),
            at(5000),
        );
        let err = err.expect_err("differs");
        assert!(
            err.starts_with(
                "v2's artifacts differ from what staging ran: artifact dist/app-v2.tar.gz of service web is sha256 cc… here, bb… there"
            ),
            "{err}"
        );

        let err = check(
            "v2",
            "staging",
            SOAK,
            &id,
            &history,
            &BTreeMap::new(),
            at(5000),
        );
        assert!(err.expect_err("no digest").contains("no recorded digest"));
    }

    #[test]
    fn durations_in_messages_drop_seconds_from_an_hour_on() {
        assert_eq!(human(Duration::from_millis(4500)), "4s");
        assert_eq!(human(Duration::from_secs(725)), "12m 5s");
        assert_eq!(human(Duration::from_secs(101_189)), "1day 4h 6m");
    }

    #[test]
    fn a_run_ends_at_the_next_success_and_failed_deploys_do_not_end_it() {
        let history = [
            deployment(2, Deploy, "v2", None, Succeeded, Some(100)),
            deployment(
                3,
                Deploy,
                "v3",
                Some("v2"),
                DeploymentState::Failed,
                Some(200),
            ),
            deployment(4, Deploy, "v4", Some("v2"), Succeeded, Some(900)),
        ];
        let runs = runs(&history, "v2");
        assert_eq!(runs.len(), 1);
        assert_eq!(runs[0].to, Some(at(900)));
        assert_eq!(runs[0].ended_by, Some(4));
        assert!(!runs[0].rolled_back);
        assert_eq!(served(&runs[0], at(5000)), Duration::from_secs(800));
    }
}
