//! The fake proxy table: per service, which release is on the stable track and
//! what share the canary track (always the new release) gets.
//!
//! [`Release::Old`] and [`Release::New`] are the two versions of a run: `v1`,
//! serving before the deploy, and `v2`, the deploy's. A rollback release goes
//! the other way (its rollout's "new" is `v1`): its rollout's routes are the
//! table's [`Route::flip`]ped.
//!
//! It changes only through the core's table actions — [`Action::SetCanaryWeight`],
//! [`Action::Promote`], [`Action::Revert`] (applied by [`Route::after`]) and
//! `SwitchTo` — and when a crashed daemon's built-in proxy comes back empty
//! and is set up again for the serving version (see `sim.rs`). [`Route::of`]
//! says what a persisted [`ServiceState`] claims the table is; the checker
//! compares the two.

use cutover_core::rollout::ServiceState;
use cutover_core::{Action, Stage};

/// Every service's traffic, in basis points.
pub const TOTAL_BP: u16 = 10_000;

/// Which release a track serves.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Release {
    /// `v1`, the release serving before the deploy.
    Old,
    /// `v2`, the release the deploy rolls out.
    New,
}

impl Release {
    /// Both, `v1` first.
    pub const BOTH: [Release; 2] = [Release::Old, Release::New];

    /// The version string.
    pub fn version(self) -> &'static str {
        match self {
            Release::Old => "v1",
            Release::New => "v2",
        }
    }

    /// From a version string.
    pub fn of_version(v: &str) -> Option<Release> {
        match v {
            "v1" => Some(Release::Old),
            "v2" => Some(Release::New),
            _ => None,
        }
    }

    /// The other one.
    pub fn other(self) -> Release {
        match self {
            Release::Old => Release::New,
            Release::New => Release::Old,
        }
    }

    /// 0 for `v1`, 1 for `v2`.
    pub fn index(self) -> usize {
        match self {
            Release::Old => 0,
            Release::New => 1,
        }
    }
}

/// One service's entry in the table.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Route {
    /// The release on the stable track.
    pub stable: Release,
    /// Share of the stable track.
    pub stable_bp: u16,
    /// Share of the canary track (the new release); 0 when not split.
    pub canary_bp: u16,
}

impl Route {
    /// Everything on the old release.
    pub const OLD: Route = Route {
        stable: Release::Old,
        stable_bp: TOTAL_BP,
        canary_bp: 0,
    };

    /// Everything on the new release.
    pub const NEW: Route = Route {
        stable: Release::New,
        stable_bp: TOTAL_BP,
        canary_bp: 0,
    };

    /// Old on stable, new on canary with `canary_bp`. Stores exactly what it is
    /// given (a share above 100 % shows up as a broken sum, which the checker
    /// reports, instead of being silently clamped).
    pub fn split(canary_bp: u16) -> Route {
        Route {
            stable: Release::Old,
            stable_bp: TOTAL_BP.saturating_sub(canary_bp),
            canary_bp,
        }
    }

    /// The route after a table action; `None` for actions that do not touch
    /// the table.
    pub fn after(action: &Action) -> Option<(&str, Route)> {
        match action {
            Action::SetCanaryWeight { service, canary_bp } => {
                Some((service, Route::split(*canary_bp)))
            }
            Action::Promote { service } => Some((service, Route::NEW)),
            Action::Revert { service } => Some((service, Route::OLD)),
            _ => None,
        }
    }

    /// What a persisted service state says its table entry is.
    pub fn of(state: &ServiceState) -> Route {
        match state.stage {
            Stage::Pending | Stage::Starting | Stage::AwaitingSwitch | Stage::Reverted => {
                Route::OLD
            }
            Stage::Stepping { .. } => Route::split(state.canary_bp),
            Stage::Promoted | Stage::KeptNew => Route::NEW,
        }
    }

    /// Everything on `release`.
    pub fn all(release: Release) -> Route {
        match release {
            Release::Old => Route::OLD,
            Release::New => Route::NEW,
        }
    }

    /// The same table seen from a rollout that goes the other way (a
    /// rollback's rollout, whose "new" release is `v1`). Only whole routes
    /// have a mirror image; a split one is returned as it is (a rollback is
    /// blue-green, so it never meets one).
    pub fn flip(self) -> Route {
        if self == Route::OLD {
            Route::NEW
        } else if self == Route::NEW {
            Route::OLD
        } else {
            self
        }
    }

    /// Share of the traffic on `release`.
    pub fn share(&self, release: Release) -> u16 {
        match release {
            Release::Old => self.old_bp(),
            Release::New => self.new_bp(),
        }
    }

    /// Share of the traffic on the new release.
    pub fn new_bp(&self) -> u16 {
        match self.stable {
            Release::New => self.stable_bp.saturating_add(self.canary_bp),
            Release::Old => self.canary_bp,
        }
    }

    /// Share of the traffic on the old release.
    pub fn old_bp(&self) -> u16 {
        match self.stable {
            Release::Old => self.stable_bp,
            Release::New => 0,
        }
    }

    /// Share of `track` (the canary track is always the new release).
    pub fn track_bp(&self, track: Track) -> u16 {
        match track {
            Track::Canary => self.canary_bp,
            Track::Stable => self.stable_bp,
        }
    }

    /// Fully on one release: no split.
    pub fn is_whole(&self) -> bool {
        *self == Route::OLD || *self == Route::NEW
    }
}

/// A track of the proxy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Track {
    /// The track `SetCanaryWeight` gives a share.
    Canary,
    /// The other one.
    Stable,
}

impl std::fmt::Display for Route {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stable = match self.stable {
            Release::Old => "old",
            Release::New => "new",
        };
        write!(
            f,
            "{stable} {}bp + canary(new) {}bp",
            self.stable_bp, self.canary_bp
        )
    }
}
