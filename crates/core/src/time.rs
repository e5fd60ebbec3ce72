//! Time as the core sees it: a number of milliseconds the caller hands in.
//! The core never reads a clock; the runtime passes wall-clock milliseconds
//! since the Unix epoch, so deadlines in a persisted state still mean the same
//! thing after a restart. Tests pass whatever they like.

use serde::{Deserialize, Serialize};

/// Milliseconds, as an instant (since the caller's epoch) or a duration.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default, Serialize, Deserialize,
)]
#[serde(transparent)]
pub struct Millis(pub u64);

impl Millis {
    /// `self + d`, saturating.
    pub fn after(self, d: Millis) -> Millis {
        Millis(self.0.saturating_add(d.0))
    }

    /// `self - earlier`, or zero.
    pub fn since(self, earlier: Millis) -> Millis {
        Millis(self.0.saturating_sub(earlier.0))
    }

    /// Seconds, for messages.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / 1000.0
    }
}

impl std::fmt::Display for Millis {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.0 < 1000 {
            write!(f, "{}ms", self.0)
        } else {
            write!(f, "{:.1}s", self.as_secs_f64())
        }
    }
}
