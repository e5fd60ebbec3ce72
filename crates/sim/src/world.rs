//! The world the rollout acts on: a fake clock and, per service, the old and
//! new instances (counts and health), the fake proxy table with its history,
//! and the scripted traffic. The core never sees any of this directly; it
//! learns about it only through the inputs the simulator sends.

use cutover_core::{Millis, Stats};

use crate::observe::{self, Script};
use crate::schedule::Schedule;
use crate::table::{Release, Route, Track};

/// The new release's instances of one service.
#[derive(Debug, Clone, PartialEq)]
pub enum NewInstances {
    /// None running.
    Stopped,
    /// Being started; the answer comes later.
    Starting,
    /// Running; `true` = healthy.
    Up(Vec<bool>),
}

/// One service in the world.
#[derive(Debug, Clone)]
pub struct Service {
    /// Its name.
    pub name: String,
    /// Old instances; `true` = healthy.
    pub old: Vec<bool>,
    /// New instances.
    pub new: NewInstances,
    /// How many new instances a start brings up.
    pub new_count: usize,
    /// Starts that will fail before one succeeds.
    pub start_failures: u32,
    /// The table entry now.
    pub route: Route,
    /// Every table entry since the start, `(since, route)` in time order.
    pub history: Vec<(Millis, Route)>,
    /// Traffic and behaviour.
    pub script: Script,
}

impl Service {
    /// At least one old instance is healthy.
    pub fn old_healthy(&self) -> bool {
        self.old.iter().any(|&h| h)
    }

    /// New instances are up and at least one has failed.
    pub fn new_has_unhealthy(&self) -> bool {
        matches!(&self.new, NewInstances::Up(v) if v.iter().any(|&h| !h))
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
    /// The world at the start of `schedule`: old instances healthy and
    /// serving everything, nothing new running.
    pub fn new(schedule: &Schedule) -> World {
        let services = schedule
            .plan
            .services
            .iter()
            .zip(&schedule.services)
            .map(|(p, w)| Service {
                name: p.name.clone(),
                old: vec![true; w.old_count],
                new: NewInstances::Stopped,
                new_count: w.new_count,
                start_failures: 0,
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
