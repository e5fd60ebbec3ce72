//! The rollout's traffic actions, carried out for the executor: start a
//! service's new instances (then watch their health), set a canary's weight,
//! promote, revert, and measure the tracks for the analysis and the fast
//! check. Old and new instances are told apart by version.

use std::time::Duration;

use cutover_core::{Action, Input, Millis, Stats};
use cutover_proxy::{InstanceId, Observation};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::Daemon;
use super::environment::LiveInstance;
use super::executor::{Executor, StartTask};
use super::{retire, start};
use crate::config::ServiceKind;
use crate::drivers::GroupMonitor;
use crate::drivers::health::Monitor;
use crate::store::InstanceState;

impl Executor {
    /// Carries out one traffic action; the answer, if it has one now.
    pub(crate) async fn traffic(&mut self, action: Action) -> Option<Input> {
        match action {
            // The release machine handles these itself.
            Action::Persist(_) | Action::Finish(_) => None,
            Action::StartInstances { service } => {
                self.start(service).await;
                None
            }
            Action::SetCanaryWeight { service, canary_bp } => {
                let (old, new) = self.instances_of(&service);
                self.apply(&service, &old, &new, canary_bp);
                self.mark(&new, InstanceState::Serving).await;
                None
            }
            Action::Promote { service } => {
                let (old, new) = self.instances_of(&service);
                self.apply(&service, &new, &[], 0);
                self.mark(&new, InstanceState::Serving).await;
                self.mark(&old, InstanceState::Idle).await;
                None
            }
            Action::Revert { service } => {
                // Nothing of the new release may start after this.
                self.stop_starts(|s| s == service).await;
                let (old, _) = self.instances_of(&service);
                self.apply(&service, &old, &[], 0);
                self.mark(&old, InstanceState::Serving).await;
                let is_worker = self
                    .daemon
                    .config
                    .service_in(&self.env.name, &service)
                    .is_some_and(|s| s.kind == ServiceKind::Worker);
                if is_worker && let Some(previous) = self.old_version() {
                    // Workers were replaced one by one: put the previous ones
                    // back the same way.
                    let version = self.version();
                    start::restore_workers(
                        &self.daemon,
                        &self.env,
                        self.id,
                        &service,
                        &version,
                        &previous,
                    )
                    .await;
                }
                // The new instances are stopped by the release's retire step.
                None
            }
            Action::Analyze {
                service,
                canary_window,
                stable_window,
            } => {
                let (old, new) = self.instances_of(&service);
                Some(Input::Analysis {
                    canary: self.stats(&new, canary_window),
                    stable: self.stats(&old, stable_window),
                    service,
                })
            }
            Action::Check { service, window } => {
                let (_, new) = self.instances_of(&service);
                Some(Input::Check {
                    canary: self.stats(&new, window),
                    service,
                })
            }
        }
    }

    /// Old and new live instances of one service.
    fn instances_of(&self, service: &str) -> (Vec<LiveInstance>, Vec<LiveInstance>) {
        let (version, old_version) = (self.version(), self.old_version());
        let all = self.env.instances();
        let old = all
            .iter()
            .filter(|i| i.service == service && Some(&i.version) == old_version.as_ref())
            .cloned()
            .collect();
        let new = all
            .into_iter()
            .filter(|i| i.service == service && i.version == version)
            .collect();
        (old, new)
    }

    /// Records the lifecycle state of instances (best effort: the table is
    /// what counts, and a restart re-derives it).
    async fn mark(&self, instances: &[LiveInstance], state: InstanceState) {
        for i in instances {
            if let Err(e) = self.daemon.store.set_instance_state(&i.id, state).await {
                self.daemon
                    .log_store_error("cannot record an instance's state", &e);
            }
        }
    }

    fn apply(
        &self,
        service: &str,
        stable: &[LiveInstance],
        canary: &[LiveInstance],
        canary_bp: u16,
    ) {
        if let Err(e) = self
            .env
            .set_service_tracks(service, stable, canary, canary_bp)
        {
            tracing::error!(env = %self.env.name, service, error = %e, "cannot update the proxy table");
        }
    }

    fn stats(&self, instances: &[LiveInstance], window: Millis) -> Stats {
        let ids: Vec<InstanceId> = instances
            .iter()
            .map(|i| InstanceId::from(i.id.as_str()))
            .collect();
        let span = Duration::from_millis(window.0.max(1000));
        stats_of(&self.env.proxy().observe_all(ids.iter(), span))
    }

    /// Starts a service's new instances in the background (or finds them
    /// running after a restart), then watches their health. The start can
    /// be cancelled (a revert, a retire, the end of the release); every
    /// instance it started is in the live set by then.
    async fn start(&mut self, service: String) {
        self.stop_starts(|s| s == service).await;
        let (old, existing) = self.instances_of(&service);
        if !old.is_empty() {
            let (daemon, env_name, svc, tx, old) = (
                self.daemon.clone(),
                self.env.name.clone(),
                service.clone(),
                self.answers_tx.clone(),
                old.clone(),
            );
            self.monitors.push(tokio::spawn(async move {
                watch_stable(&daemon, &env_name, &svc, old, tx).await;
            }));
        }
        let (replicas, kind) = self
            .daemon
            .config
            .service_in(&self.env.name, &service)
            .map(|s| (s.replicas as usize, s.kind))
            .unwrap_or((1, ServiceKind::Http));
        let (daemon, env, id, version, tx) = (
            self.daemon.clone(),
            self.env.clone(),
            self.id,
            self.version(),
            self.answers_tx.clone(),
        );
        let cancel = CancellationToken::new();
        let stop = cancel.clone();
        let svc = service.clone();
        let task = tokio::spawn(async move {
            let started = if existing.len() >= replicas {
                Ok(existing)
            } else {
                let stale = env.take(|i| i.service == svc && i.version == version);
                retire::retire_now(&daemon, &env, stale, "incomplete after a restart").await;
                if kind == ServiceKind::Worker {
                    // A rolling restart: each old worker goes as its successor is ready.
                    start::start_workers(&daemon, &env, id, &version, &svc, old, &stop).await
                } else {
                    start::start_service(&daemon, &env, id, &version, &svc, &stop).await
                }
            };
            if stop.is_cancelled() {
                return;
            }
            match started {
                Ok(instances) => {
                    let _ = tx.send(cutover_core::ReleaseInput::Rollout(Input::Started {
                        service: svc.clone(),
                    }));
                    tokio::select! {
                        _ = stop.cancelled() => {}
                        _ = watch_health(&daemon, &env.name, &svc, instances, tx) => {}
                    }
                }
                Err(reason) => {
                    let _ = tx.send(cutover_core::ReleaseInput::Rollout(Input::StartFailed {
                        service: svc,
                        reason,
                    }));
                }
            }
        });
        self.starts.insert(service, StartTask { cancel, task });
    }
}

/// Watches new instances; the first that turns unhealthy is reported.
async fn watch_health(
    daemon: &Daemon,
    env: &str,
    service: &str,
    instances: Vec<LiveInstance>,
    tx: mpsc::UnboundedSender<cutover_core::ReleaseInput>,
) {
    let Some(sc) = daemon.config.service_in(env, service) else {
        return;
    };
    if sc.kind != ServiceKind::Http {
        return;
    }
    let check = super::health_check(sc);
    let mut tasks = tokio::task::JoinSet::new();
    for inst in instances {
        let Some(addr) = inst.handle.addr() else {
            continue;
        };
        let mut monitor = Monitor::spawn(addr, check.clone());
        tasks.spawn(async move {
            let err = monitor.wait_unhealthy().await;
            (inst.id, err)
        });
    }
    if let Some(Ok((id, err))) = tasks.join_next().await {
        let why = err
            .map(|e| e.to_string())
            .unwrap_or_else(|| "monitor stopped".into());
        if let Ok(env) = daemon.environment(Some(env)) {
            env.mark_health(&id, false, Some(why.clone()));
        }
        let _ = tx.send(cutover_core::ReleaseInput::Rollout(Input::NewUnhealthy {
            service: service.to_owned(),
            reason: format!("{id}: {why}"),
        }));
    }
}

/// Tells the core whenever the old release of a service goes from having a
/// healthy instance to having none, or back (so a rollback never switches to
/// nothing). The same probes as every other health check (`GroupMonitor`).
async fn watch_stable(
    daemon: &Daemon,
    env: &str,
    service: &str,
    old: Vec<LiveInstance>,
    tx: mpsc::UnboundedSender<cutover_core::ReleaseInput>,
) {
    let Some(sc) = daemon.config.service_in(env, service) else {
        return;
    };
    if sc.kind != ServiceKind::Http {
        return;
    }
    let addrs = old.iter().filter_map(|i| i.handle.addr()).collect();
    let mut group = GroupMonitor::spawn(addrs, super::health_check(sc));
    while let Some(healthy) = group.next_change().await {
        let input = Input::StableHealth {
            service: service.to_owned(),
            healthy,
        };
        if tx.send(cutover_core::ReleaseInput::Rollout(input)).is_err() {
            return;
        }
    }
}

/// The core's view of a proxy observation.
pub(crate) fn stats_of(o: &Observation) -> Stats {
    let ms = |d: Option<Duration>| d.map(|d| d.as_secs_f64() * 1000.0);
    Stats {
        requests: o.requests(),
        errors: o.statuses.server_error.saturating_add(o.proxy_errors),
        p50_ms: ms(o.p50()),
        p95_ms: ms(o.p95()),
        p99_ms: ms(o.p99()),
    }
}
