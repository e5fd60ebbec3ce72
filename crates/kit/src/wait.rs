//! Waiting for a condition with a deadline: owns polling something that
//! another process or task does (a port that starts listening, an event in a
//! deployment's history, an instance that goes away) until it holds or the
//! time is up, instead of sleeping a guessed duration.
//!
//! ```
//! use std::time::Duration;
//! use cutover_kit::wait::Wait;
//!
//! let start = std::time::Instant::now();
//! Wait::up_to(Duration::from_secs(5))
//!     .every(Duration::from_millis(10))
//!     .until(|| start.elapsed() > Duration::from_millis(30))
//!     .expect("30 ms pass within 5 s");
//! ```
//!
//! The condition is checked first, then after each pause; it is checked one
//! last time at the deadline. The blocking forms sleep the thread; the
//! `_async` forms sleep the task.

use std::future::Future;
use std::time::{Duration, Instant};

/// How often a condition is checked unless [`Wait::every`] says otherwise.
pub const DEFAULT_EVERY: Duration = Duration::from_millis(50);

/// The condition did not hold in time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("still not so after {:.1} s", waited.as_secs_f64())]
pub struct TimedOut {
    /// How long it was waited for.
    pub waited: Duration,
}

/// A wait of at most some time, checking every so often.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Wait {
    timeout: Duration,
    every: Duration,
}

impl Wait {
    /// Waits at most `timeout`.
    pub fn up_to(timeout: Duration) -> Wait {
        Wait {
            timeout,
            every: DEFAULT_EVERY,
        }
    }

    /// Checks every `every` (default 50 ms).
    pub fn every(self, every: Duration) -> Wait {
        Wait { every, ..self }
    }

    /// Blocks until `holds` returns true.
    pub fn until(self, mut holds: impl FnMut() -> bool) -> Result<(), TimedOut> {
        self.until_some(|| holds().then_some(()))
    }

    /// Blocks until `check` returns `Some`; that value.
    pub fn until_some<T>(self, mut check: impl FnMut() -> Option<T>) -> Result<T, TimedOut> {
        let start = Instant::now();
        loop {
            let last = start.elapsed() >= self.timeout;
            if let Some(found) = check() {
                return Ok(found);
            }
            if last {
                return Err(TimedOut {
                    waited: start.elapsed(),
                });
            }
            std::thread::sleep(self.pause(start));
        }
    }

    /// Waits (asynchronously) until `holds` resolves to true.
    pub async fn until_async<F, Fut>(self, mut holds: F) -> Result<(), TimedOut>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = bool>,
    {
        self.until_some_async(|| {
            let fut = holds();
            async move { fut.await.then_some(()) }
        })
        .await
    }

    /// Waits (asynchronously) until `check` resolves to `Some`; that value.
    pub async fn until_some_async<T, F, Fut>(self, mut check: F) -> Result<T, TimedOut>
    where
        F: FnMut() -> Fut,
        Fut: Future<Output = Option<T>>,
    {
        let start = Instant::now();
        loop {
            let last = start.elapsed() >= self.timeout;
            if let Some(found) = check().await {
                return Ok(found);
            }
            if last {
                return Err(TimedOut {
                    waited: start.elapsed(),
                });
            }
            tokio::time::sleep(self.pause(start)).await;
        }
    }

    /// The next pause: `every`, but not past the deadline (so the last check
    /// happens at it).
    fn pause(&self, start: Instant) -> Duration {
        let left = self.timeout.saturating_sub(start.elapsed());
        self.every.min(left)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn returns_as_soon_as_the_condition_holds() {
        let mut calls = 0;
        let got = Wait::up_to(Duration::from_secs(5))
            .every(Duration::from_millis(1))
            .until_some(|| {
                calls += 1;
                (calls == 3).then_some(calls)
            });
        assert_eq!(got, Ok(3));
    }

    #[test]
    fn times_out_after_checking_at_the_deadline() {
        let mut checked_at = Vec::new();
        let start = Instant::now();
        let got = Wait::up_to(Duration::from_millis(100))
            .every(Duration::from_millis(30))
            .until(|| {
                checked_at.push(start.elapsed());
                false
            });
        let err = got.err();
        assert!(err.is_some_and(|e| e.waited >= Duration::from_millis(100)));
        assert!(err.is_some_and(|e| e.to_string().starts_with("still not so after 0.")));
        assert!(checked_at.len() >= 2, "{checked_at:?}");
        assert!(
            checked_at
                .last()
                .is_some_and(|t| *t >= Duration::from_millis(100)),
            "the last check is at the deadline: {checked_at:?}"
        );
        assert!(start.elapsed() < Duration::from_secs(2));
    }

    #[tokio::test]
    async fn the_async_form_waits_on_the_task() {
        let start = Instant::now();
        let got = Wait::up_to(Duration::from_secs(5))
            .every(Duration::from_millis(5))
            .until_async(|| async { start.elapsed() >= Duration::from_millis(20) })
            .await;
        assert_eq!(got, Ok(()));
        let none = Wait::up_to(Duration::from_millis(10))
            .until_some_async(|| async { None::<()> })
            .await;
        assert!(none.is_err());
    }
}
