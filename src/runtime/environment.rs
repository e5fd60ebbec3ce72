//! One environment at run time: its proxy, the instances the daemon runs for it
//! (by release), the releases being carried out in it (their control
//! channels, see `control.rs`), its supervision between deploys (see
//! `supervise.rs`), and the one operation that changes who serves:
//! `switch_to`, which puts a release's instances on every service's stable
//! track in a single table swap. Supervision takes one failed instance out of
//! the table, or puts one replacement back, with `remove_from_table` /
//! `add_to_stable`.
//!
//! With `preview_listen`, also a second proxy, the *preview*: its own route
//! table (and its own observations, which the canary analysis never reads)
//! that sends each service to its newest release. A release pins a service
//! to its version once the new instances are healthy (`pin_preview`); an
//! unpinned service, or one whose pinned version has no live instance,
//! follows the public table. It is brought up to date after every change of
//! the public table or the pins (`sync_preview`).

use std::collections::BTreeMap;
use std::sync::Mutex;

use cutover_proxy::{
    Instance, Proxy, ProxyConfig, Route, ServiceSpec, Track, TrackOverride, Weights,
};

use super::DeployError;
use crate::config::{Config, EnvironmentConfig, ServiceKind};
use crate::drivers::Handle;

/// An instance the daemon runs.
#[derive(Debug, Clone)]
pub struct LiveInstance {
    /// Its id (also its id in the proxy).
    pub id: String,
    /// Service it belongs to.
    pub service: String,
    /// Version it runs.
    pub version: String,
    /// Whether it receives traffic through the proxy.
    pub kind: ServiceKind,
    /// How the driver finds it again.
    pub handle: Handle,
}

/// Whether an instance was last found healthy, and since when (for
/// `cutover status`): set where the daemon learns it (a start's health
/// wait, adoption, a health watch that fails), forgotten when the
/// instance leaves the live set.
#[derive(Debug, Clone, PartialEq)]
pub struct HealthMark {
    /// Healthy or not.
    pub healthy: bool,
    /// Since when.
    pub since: jiff::Timestamp,
    /// Why not, when not.
    pub reason: Option<String>,
}

/// One environment's live state.
pub struct EnvRuntime {
    pub(crate) name: String,
    pub(crate) config: EnvironmentConfig,
    pub(crate) proxy: Proxy,
    /// Live instances by id.
    live: Mutex<BTreeMap<String, LiveInstance>>,
    /// Their last known health, by id.
    health: Mutex<BTreeMap<String, HealthMark>>,
    /// The releases being carried out here, by deployment id.
    pub(crate) releases: super::control::Releases,
    /// Supervision of the serving instances between deploys.
    pub(crate) supervision: super::supervise::Supervision,
    /// The preview proxy (`preview_listen`), if configured.
    preview: Option<Proxy>,
    /// Per service, the version the preview sends it to (see the module doc).
    preview_pins: Mutex<BTreeMap<String, String>>,
    /// Serialises computing and applying the preview table.
    preview_sync: Mutex<()>,
    /// Bumped (to the wall clock's milliseconds) after every change of the
    /// public table: what the cluster's leader persists (`src/cluster`).
    changes: tokio::sync::watch::Sender<i64>,
}

/// The proxy settings of one environment: its limits, whom it trusts, HSTS,
/// and the labels of its metrics (`environment`, and `proxy`: `public`
/// or `preview`).
fn proxy_config(name: &str, env: &EnvironmentConfig) -> ProxyConfig {
    let limits = &env.limits;
    ProxyConfig {
        metric_labels: vec![
            ("environment".to_owned(), name.to_owned()),
            ("proxy".to_owned(), "public".to_owned()),
        ],
        client_idle_timeout: limits.idle_timeout,
        trusted_proxies: env.trusted_proxies.clone(),
        track_override: env.track_override.as_ref().map(|t| TrackOverride {
            secret: t.secret.as_ref().map(|s| s.expose().to_owned()),
            trusted_sources: t.trusted_sources.clone(),
        }),
        max_request_body: limits.max_request_body,
        hsts: env.hsts,
        first_request_timeout: limits.first_request_timeout,
        max_connections: usize::try_from(limits.max_connections).unwrap_or(usize::MAX),
        h2_max_concurrent_streams: limits.h2_max_concurrent_streams,
        h2_idle_timeout: limits.h2_idle_timeout,
        upgrade_idle_timeout: limits.upgrade_idle_timeout,
        ..ProxyConfig::default()
    }
}

impl EnvRuntime {
    pub(crate) fn new(
        name: &str,
        env: EnvironmentConfig,
        config: &Config,
    ) -> Result<EnvRuntime, DeployError> {
        let proxy = Proxy::new(proxy_config(name, &env));
        let mut routes = Vec::new();
        let mut specs = Vec::new();
        for (svc, sc) in config.http_services() {
            let spec = ServiceSpec {
                allowed_upgrades: sc.allowed_upgrades.clone(),
                max_request_body: sc.max_request_body,
                ..ServiceSpec::default()
            };
            specs.push((svc.to_owned(), spec.clone()));
            proxy
                .set_service(svc, spec)
                .map_err(|e| DeployError::Internal(e.to_string()))?;
            routes.push(Route {
                host: sc.host.clone(),
                path_prefix: sc.path_prefix.clone(),
                service: svc.to_owned(),
            });
        }
        proxy
            .set_routes(routes.clone())
            .map_err(|e| DeployError::Internal(e.to_string()))?;
        let preview = match env.preview_listen {
            None => None,
            Some(_) => {
                // Plain HTTP; no HSTS, and nobody forces a track on it. Its
                // series are its own (`proxy="preview"`): a smoke test never
                // adds to the public traffic's figures.
                let preview = Proxy::new(ProxyConfig {
                    hsts: None,
                    track_override: None,
                    metric_labels: vec![
                        ("environment".to_owned(), name.to_owned()),
                        ("proxy".to_owned(), "preview".to_owned()),
                    ],
                    ..proxy_config(name, &env)
                });
                for (svc, spec) in specs {
                    preview
                        .set_service(&svc, spec)
                        .map_err(|e| DeployError::Internal(e.to_string()))?;
                }
                preview
                    .set_routes(routes)
                    .map_err(|e| DeployError::Internal(e.to_string()))?;
                Some(preview)
            }
        };
        Ok(EnvRuntime {
            preview,
            preview_pins: Mutex::new(BTreeMap::new()),
            preview_sync: Mutex::new(()),
            changes: tokio::sync::watch::channel(0).0,
            name: name.to_owned(),
            config: env,
            proxy,
            live: Mutex::new(BTreeMap::new()),
            health: Mutex::new(BTreeMap::new()),
            releases: super::control::Releases::default(),
            supervision: super::supervise::Supervision::default(),
        })
    }

    /// The environment's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Its proxy.
    pub fn proxy(&self) -> &Proxy {
        &self.proxy
    }

    /// Its config.
    pub fn config(&self) -> &EnvironmentConfig {
        &self.config
    }

    fn live(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, LiveInstance>> {
        self.live.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Adds instances to the live set.
    pub(crate) fn add(&self, instances: impl IntoIterator<Item = LiveInstance>) {
        let mut live = self.live();
        for i in instances {
            live.insert(i.id.clone(), i);
        }
    }

    /// Removes and returns the instances for which `pick` is true.
    pub(crate) fn take(&self, mut pick: impl FnMut(&LiveInstance) -> bool) -> Vec<LiveInstance> {
        let mut live = self.live();
        let ids: Vec<String> = live
            .values()
            .filter(|i| pick(i))
            .map(|i| i.id.clone())
            .collect();
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        for id in &ids {
            health.remove(id);
        }
        ids.iter().filter_map(|id| live.remove(id)).collect()
    }

    /// Records that instance `id` was found healthy or not (`reason` says
    /// why not); the time only moves when the answer changes.
    pub(crate) fn mark_health(&self, id: &str, healthy: bool, reason: Option<String>) {
        let mut health = self.health.lock().unwrap_or_else(|p| p.into_inner());
        match health.get_mut(id) {
            Some(mark) if mark.healthy == healthy => mark.reason = reason,
            _ => {
                health.insert(
                    id.to_owned(),
                    HealthMark {
                        healthy,
                        since: jiff::Timestamp::now(),
                        reason,
                    },
                );
            }
        }
    }

    /// What the daemon last learnt of instance `id`'s health, if anything.
    pub fn health_of(&self, id: &str) -> Option<HealthMark> {
        self.health
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(id)
            .cloned()
    }

    /// Removes and returns every live instance.
    pub(crate) fn take_all(&self) -> Vec<LiveInstance> {
        self.take(|_| true)
    }

    /// A copy of the live instances.
    pub fn instances(&self) -> Vec<LiveInstance> {
        self.live().values().cloned().collect()
    }

    /// The live instances of one version.
    pub(crate) fn of_version(&self, version: &str) -> Vec<LiveInstance> {
        self.live()
            .values()
            .filter(|i| i.version == version)
            .cloned()
            .collect()
    }

    /// Puts `instances` (one release) on the stable track of every HTTP service,
    /// with all weight on stable, in one table swap. Services without an
    /// instance in `instances` get an empty table (the caller checks first).
    pub(crate) fn switch_to(&self, instances: &[LiveInstance]) -> Result<u64, DeployError> {
        let swapped = self.swap_to(instances);
        self.changed();
        self.sync_preview();
        swapped
    }

    fn swap_to(&self, instances: &[LiveInstance]) -> Result<u64, DeployError> {
        let mut by_service: BTreeMap<String, Vec<Instance>> = self
            .proxy
            .table()
            .service_names()
            .into_iter()
            .map(|svc| (svc, Vec::new()))
            .collect();
        for i in instances.iter().filter(|i| i.kind == ServiceKind::Http) {
            if let Some(addr) = i.handle.addr() {
                by_service
                    .entry(i.service.clone())
                    .or_default()
                    .push(Instance::new(i.id.as_str(), addr));
            }
        }
        self.proxy
            .update(|u| {
                for (svc, list) in by_service {
                    let svc = svc.as_str();
                    u.set_instances(svc, Track::Canary, Vec::new())?
                        .set_instances(svc, Track::Stable, list)?
                        .set_weights(svc, Weights::ALL_STABLE)?;
                }
                Ok(())
            })
            .map_err(|e: cutover_proxy::TableError| DeployError::Internal(e.to_string()))
    }

    /// One service's tracks in one table swap: `stable` and `canary` instances,
    /// `canary_bp` basis points on canary.
    pub(crate) fn set_service_tracks(
        &self,
        service: &str,
        stable: &[LiveInstance],
        canary: &[LiveInstance],
        canary_bp: u16,
    ) -> Result<u64, DeployError> {
        let set = self.set_tracks(service, stable, canary, canary_bp);
        self.changed();
        self.sync_preview();
        set
    }

    fn set_tracks(
        &self,
        service: &str,
        stable: &[LiveInstance],
        canary: &[LiveInstance],
        canary_bp: u16,
    ) -> Result<u64, DeployError> {
        if !self
            .proxy
            .table()
            .service_names()
            .iter()
            .any(|s| s == service)
        {
            return Ok(self.proxy.table().generation()); // a worker: no traffic
        }
        let to_instances = |list: &[LiveInstance]| -> Vec<Instance> {
            list.iter()
                .filter_map(|i| Some(Instance::new(i.id.as_str(), i.handle.addr()?)))
                .collect()
        };
        let weights =
            Weights::canary(canary_bp).map_err(|e| DeployError::Internal(e.to_string()))?;
        let (stable, canary) = (to_instances(stable), to_instances(canary));
        self.proxy
            .update(|u| {
                // Clear first so an instance may move between tracks in one batch.
                u.set_instances(service, Track::Canary, Vec::new())?
                    .set_instances(service, Track::Stable, stable)?
                    .set_instances(service, Track::Canary, canary)?
                    .set_weights(service, weights)?;
                Ok(())
            })
            .map_err(|e: cutover_proxy::TableError| DeployError::Internal(e.to_string()))
    }

    /// Takes instance `id` off whichever track of `service` it is on, in one
    /// read-modify-write of the table (the weights stay). Returns whether it
    /// was there.
    pub(crate) fn remove_from_table(&self, service: &str, id: &str) -> Result<bool, DeployError> {
        let removed = self.remove_from_public(service, id);
        self.changed();
        self.sync_preview();
        removed
    }

    fn remove_from_public(&self, service: &str, id: &str) -> Result<bool, DeployError> {
        let mut removed = false;
        self.proxy
            .update(|u| {
                let Some(view) = u.table().service(service) else {
                    return Ok(());
                };
                for (track, list) in [(Track::Stable, view.stable), (Track::Canary, view.canary)] {
                    if list.iter().any(|i| i.id.as_str() == id) {
                        let kept = list.into_iter().filter(|i| i.id.as_str() != id).collect();
                        u.set_instances(service, track, kept)?;
                        removed = true;
                    }
                }
                Ok(())
            })
            .map_err(|e: cutover_proxy::TableError| DeployError::Internal(e.to_string()))?;
        Ok(removed)
    }

    /// Adds `instance` to its service's stable track (beside the instances
    /// there), in one read-modify-write of the table; nothing when it is on a
    /// track already or is not an HTTP instance.
    pub(crate) fn add_to_stable(&self, instance: &LiveInstance) -> Result<(), DeployError> {
        let added = self.add_to_public_stable(instance);
        self.changed();
        self.sync_preview();
        added
    }

    fn add_to_public_stable(&self, instance: &LiveInstance) -> Result<(), DeployError> {
        let Some(addr) = instance.handle.addr() else {
            return Ok(());
        };
        if instance.kind != ServiceKind::Http {
            return Ok(());
        }
        let service = instance.service.as_str();
        self.proxy
            .update(|u| {
                let Some(view) = u.table().service(service) else {
                    return Ok(());
                };
                let id = instance.id.as_str();
                if view
                    .stable
                    .iter()
                    .chain(&view.canary)
                    .any(|i| i.id.as_str() == id)
                {
                    return Ok(());
                }
                let mut stable = view.stable;
                stable.push(Instance::new(id, addr));
                u.set_instances(service, Track::Stable, stable)?;
                Ok(())
            })
            .map_err(|e: cutover_proxy::TableError| DeployError::Internal(e.to_string()))?;
        Ok(())
    }

    /// Says that the public table may have changed (the one place the
    /// cluster's leader learns it, see `src/cluster/routes.rs`).
    pub(crate) fn changed(&self) {
        self.changes.send_replace(crate::cluster::now_ms());
    }

    /// Changes of the public table: the value is when the last one happened
    /// (milliseconds since the Unix epoch; 0 before any).
    pub(crate) fn table_changes(&self) -> tokio::sync::watch::Receiver<i64> {
        self.changes.subscribe()
    }

    /// Ids of the instances on any track of the proxy right now.
    pub(crate) fn routed_ids(&self) -> Vec<String> {
        let table = self.proxy.table();
        table
            .service_names()
            .iter()
            .filter_map(|s| table.service(s))
            .flat_map(|v| v.stable.into_iter().chain(v.canary))
            .map(|i| i.id.to_string())
            .collect()
    }
}

impl EnvRuntime {
    /// The preview proxy, when `preview_listen` is configured.
    pub fn preview(&self) -> Option<&Proxy> {
        self.preview.as_ref()
    }

    fn pins(&self) -> std::sync::MutexGuard<'_, BTreeMap<String, String>> {
        self.preview_pins.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Sets which services the preview sends to `version` (`pinned`) and
    /// unpins the others of `services` that were pinned to it; brings the
    /// preview up to date when that changed anything.
    pub(crate) fn pin_preview(&self, version: &str, services: &[(String, bool)]) {
        if self.preview.is_none() {
            return;
        }
        let changed = {
            let mut pins = self.pins();
            let mut changed = false;
            for (service, pinned) in services {
                let now = pins.get(service).map(String::as_str);
                if *pinned && now != Some(version) {
                    pins.insert(service.clone(), version.to_owned());
                    changed = true;
                } else if !*pinned && now == Some(version) {
                    pins.remove(service);
                    changed = true;
                }
            }
            changed
        };
        if changed {
            self.sync_preview();
        }
    }

    /// Every service follows the public table again on the preview (a
    /// switch of the whole environment to one release).
    pub(crate) fn clear_preview_pins(&self) {
        self.pins().clear();
    }

    /// Makes the preview's table what the pins, the live set and the public
    /// table say: each service on its pinned version's live instances, else
    /// on the instances its public table sends traffic to. One swap.
    pub(crate) fn sync_preview(&self) {
        let Some(preview) = &self.preview else {
            return;
        };
        let _one_at_a_time = self.preview_sync.lock().unwrap_or_else(|p| p.into_inner());
        let pins = self.pins().clone();
        let live = self.instances();
        let table = self.proxy.table();
        let mut by_service: BTreeMap<String, Vec<Instance>> = BTreeMap::new();
        for svc in table.service_names() {
            let pinned: Vec<Instance> = pins
                .get(&svc)
                .map(|version| {
                    live.iter()
                        .filter(|i| {
                            i.service == svc && &i.version == version && i.kind == ServiceKind::Http
                        })
                        .filter_map(|i| Some(Instance::new(i.id.as_str(), i.handle.addr()?)))
                        .collect()
                })
                .unwrap_or_default();
            let list = if pinned.is_empty() {
                table
                    .service(&svc)
                    .map(|v| {
                        let mut list = Vec::new();
                        if v.weights.stable_bp() > 0 {
                            list.extend(v.stable);
                        }
                        if v.weights.canary_bp() > 0 {
                            list.extend(v.canary);
                        }
                        list
                    })
                    .unwrap_or_default()
            } else {
                pinned
            };
            by_service.insert(svc, list);
        }
        let updated = preview.update(|u| {
            for (svc, list) in by_service {
                let svc = svc.as_str();
                u.set_instances(svc, Track::Canary, Vec::new())?
                    .set_instances(svc, Track::Stable, list)?
                    .set_weights(svc, Weights::ALL_STABLE)?;
            }
            Ok(())
        });
        if let Err(e) = updated {
            let e: cutover_proxy::TableError = e;
            tracing::error!(env = %self.name, error = %e, "cannot update the preview table");
        }
    }
}
