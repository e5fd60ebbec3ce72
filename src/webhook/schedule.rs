//! When a failed delivery is tried again: 1 s after the first failure,
//! doubling up to one hour between attempts, with up to 10 % of jitter so
//! that endpoints coming back are not hit by every delivery at once; a
//! delivery is given up after a failed attempt once it is 24 hours old (it
//! is always attempted at least once, however late).

use std::time::Duration;

/// The wait after the first failed attempt.
pub const FIRST: Duration = Duration::from_secs(1);
/// The longest wait between two attempts.
pub const MAX_WAIT: Duration = Duration::from_secs(60 * 60);
/// How long a delivery is retried, from when it was queued.
pub const GIVE_UP_AFTER: Duration = Duration::from_secs(24 * 60 * 60);

/// The wait after `failed` failed attempts (1 for the first failure),
/// without jitter.
pub fn wait_after(failed: u32) -> Duration {
    let doublings = failed.saturating_sub(1).min(31);
    FIRST
        .saturating_mul(2u32.saturating_pow(doublings))
        .min(MAX_WAIT)
}

/// [`wait_after`] plus a random 0–10 % of it.
pub fn jittered(failed: u32) -> Duration {
    let wait = wait_after(failed);
    let jitter_ms = (wait.as_millis() / 10).min(u128::from(u64::MAX)) as u64;
    wait.saturating_add(Duration::from_millis(fastrand::u64(0..=jitter_ms)))
}

/// Whether a delivery queued `age` ago is given up after a failed attempt.
pub fn give_up(age: Duration) -> bool {
    age >= GIVE_UP_AFTER
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn waits_double_from_one_second_up_to_an_hour() {
        let secs: Vec<u64> = (1..=14).map(|n| wait_after(n).as_secs()).collect();
        assert_eq!(
            secs,
            [
                1, 2, 4, 8, 16, 32, 64, 128, 256, 512, 1024, 2048, 3600, 3600
            ]
        );
        assert_eq!(wait_after(0), FIRST);
        assert_eq!(wait_after(u32::MAX), MAX_WAIT);
    }

    #[test]
    fn jitter_adds_at_most_a_tenth() {
        for n in 1..20 {
            let base = wait_after(n);
            let got = jittered(n);
            assert!(got >= base && got <= base + base / 10, "{n}: {got:?}");
        }
    }

    #[test]
    fn a_day_of_retries_is_about_thirty_five_attempts() {
        // Attempts made before the 24 hours are up (the first is immediate).
        let mut at = Duration::ZERO;
        let mut attempts = 1;
        while !give_up(at) {
            at += wait_after(attempts);
            attempts += 1;
        }
        assert!((30..=40).contains(&attempts), "{attempts}");
        assert!(give_up(GIVE_UP_AFTER));
        assert!(!give_up(GIVE_UP_AFTER - Duration::from_secs(1)));
    }
}
