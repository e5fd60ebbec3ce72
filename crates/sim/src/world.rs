//! The world the releases act on: a fake clock and, per service, the
//! instances of both versions (`v1`, serving before the deploy, and `v2`,
//! the deploy's), the fake proxy table with its history, and the scripted
//! traffic. The core never sees any of this directly; it learns about it only
//! through the inputs the simulator sends.

use cutover_core::{Millis, Stats};

use crate::observe::{self, Script};
use crate::schedule::Schedule;
use crate::table::{Release, Route, Track};

/// The instances of one version of one service.
#[derive(Debug, Clone, PartialEq)]
pub enum Instances {
    /// None running.
    Stopped,
    /// Being started; the answer comes later.
    Starting,
    /// Running; `true` = healthy.
    Up(Vec<bool>),
}

impl Instances {
    /// At least one is running and healthy.
    pub fn healthy(&self) -> bool {
        matches!(self, Instances::Up(v) if v.iter().any(|&h| h))
    }

    /// Running, and at least one has failed.
    pub fn has_unhealthy(&self) -> bool {
        matches!(self, Instances::Up(v) if v.iter().any(|&h| !h))
    }

    /// Anything not stopped (starting counts: a start may still complete).
    pub fn running(&self) -> bool {
        *self != Instances::Stopped
    }
}

/// One service in the world.
#[derive(Debug, Clone)]
pub struct Service {
    /// Its name.
    pub name: String,
    /// Instances per version, indexed by [`Release::index`].
    pub instances: [Instances; 2],
    /// How many instances a start of each version brings up.
    pub count: [usize; 2],
    /// Starts that will fail before one succeeds.
    pub start_failures: u32,
    /// Starts carried out, per version.
    pub starts: [u32; 2],
    /// The table entry now.
    pub route: Route,
    /// Every table entry since the start, `(since, route)` in time order.
    pub history: Vec<(Millis, Route)>,
    /// Traffic and behaviour.
    pub script: Script,
}

impl Service {
    /// The instances of `release`.
    pub fn of(&self, release: Release) -> &Instances {
        &self.instances[release.index()]
    }

    /// The instances of `release`, to change.
    pub fn of_mut(&mut self, release: Release) -> &mut Instances {
        &mut self.instances[release.index()]
    }

    /// At least one `v1` instance is healthy.
    pub fn old_healthy(&self) -> bool {
        self.of(Release::Old).healthy()
    }

    /// At least one instance of a version the table sends traffic to is
    /// healthy.
    pub fn healthy_routed(&self) -> bool {
        Release::BOTH
            .iter()
            .any(|&r| self.route.share(r) > 0 && self.of(r).healthy())
    }

    /// Versions with instances that are not stopped.
    pub fn running(&self) -> Vec<Release> {
        Release::BOTH
            .into_iter()
            .filter(|&r| self.of(r).running())
            .collect()
    }
}

/// The fake world.
#[derive(Debug, Clone)]
pub struct World {
    /// The fake clock.
    pub now: Millis,
    /// Per service, in plan order.
    pub services: Vec<Service>,
}

impl World {
    /// The world at the start of `schedule`: `v1` healthy and serving
    /// everything (where the service has a `v1`), nothing of `v2` running.
    pub fn new(schedule: &Schedule) -> World {
        let services = schedule
            .plan
            .services
            .iter()
            .zip(&schedule.services)
            .map(|(p, w)| Service {
                name: p.name.clone(),
                instances: [
                    if w.old_count > 0 {
                        Instances::Up(vec![true; w.old_count])
                    } else {
                        Instances::Stopped
                    },
                    Instances::Stopped,
                ],
                // A cold rollback starts `v1` even where it had none.
                count: [w.old_count.max(1), w.new_count],
                start_failures: 0,
                starts: [0, 0],
                route: Route::OLD,
                history: vec![(Millis(0), Route::OLD)],
                script: w.script.clone(),
            })
            .collect();
        World {
            now: Millis(0),
            services,
        }
    }

    /// The index of a service by name.
    pub fn index(&self, name: &str) -> Option<usize> {
        self.services.iter().position(|s| s.name == name)
    }

    /// Every service's table entry.
    pub fn routes(&self) -> Vec<Route> {
        self.services.iter().map(|s| s.route).collect()
    }

    /// Per service, whether a healthy instance is routed to.
    pub fn healthy_routed(&self) -> Vec<bool> {
        self.services.iter().map(Service::healthy_routed).collect()
    }

    /// Sets a service's table entry now (one swap).
    pub fn set_route(&mut self, i: usize, route: Route) {
        let now = self.now;
        if let Some(s) = self.services.get_mut(i) {
            s.route = route;
            match s.history.last_mut() {
                Some((since, r)) if *since == now => *r = route,
                _ => s.history.push((now, route)),
            }
        }
    }

    /// What the proxy saw of a service's new release on the canary track over
    /// the last `window`.
    pub fn canary_stats(&self, i: usize, window: Millis) -> Stats {
        self.stats(i, Track::Canary, Release::New, window)
    }

    /// What the proxy saw of a service's old release on the stable track over
    /// the last `window`.
    pub fn stable_stats(&self, i: usize, window: Millis) -> Stats {
        self.stats(i, Track::Stable, Release::Old, window)
    }

    fn stats(&self, i: usize, track: Track, release: Release, window: Millis) -> Stats {
        let Some(s) = self.services.get(i) else {
            return Stats::default();
        };
        let from = Millis(self.now.0.saturating_sub(window.0));
        observe::measure(&s.script, &s.history, track, release, from, self.now)
    }
}
