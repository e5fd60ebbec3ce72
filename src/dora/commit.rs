//! What a deploy may say about the commit it releases (`cutover deploy
//! --commit SHA`, `CUTOVER_COMMIT_TIME`), checked the same way by the CLI
//! before it asks and by the daemon when the request arrives.

use jiff::{SignedDuration, Timestamp};

/// What a deploy says about the commit it releases (both checked).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Commit {
    /// The commit id, lower-case hex.
    pub sha: Option<String>,
    /// When it was made.
    pub time: Option<Timestamp>,
}

impl Commit {
    /// Checks what a request says: a SHA per [`check_sha`], a time per
    /// [`check_time`].
    pub fn checked(
        sha: Option<&str>,
        time: Option<Timestamp>,
        now: Timestamp,
    ) -> Result<Commit, String> {
        Ok(Commit {
            sha: sha.map(check_sha).transpose()?,
            time: time.map(|t| check_time(t, now)).transpose()?,
        })
    }
}

/// How far in the future a commit time may be (clocks disagree).
pub const CLOCK_SKEW: SignedDuration = SignedDuration::from_hours(1);

/// A commit id: 7 to 64 hexadecimal digits (an abbreviated or full SHA-1 or
/// SHA-256), stored lower-case.
pub fn check_sha(text: &str) -> Result<String, String> {
    let ok = (7..=64).contains(&text.len()) && text.bytes().all(|b| b.is_ascii_hexdigit());
    if ok {
        Ok(text.to_ascii_lowercase())
    } else {
        Err(format!(
            "commit {:?} is not a commit id: write 7 to 64 hexadecimal digits (`git rev-parse HEAD`)",
            crate::label::printable(&crate::label::clean_text(text))
        ))
    }
}

/// `CUTOVER_COMMIT_TIME`: an RFC 3339 time (`2026-12-04T09:00:00Z`) or unix
/// seconds (`1764838800`, what `git log -1 --format=%ct` prints).
pub fn parse_time(text: &str) -> Result<Timestamp, String> {
    let text = text.trim();
    let bad = || {
        format!(
            "commit time {:?}: write an RFC 3339 time (2026-12-04T09:00:00Z) or unix seconds \
             (1764838800, as `git log -1 --format=%ct` prints)",
            crate::label::printable(&crate::label::clean_text(text))
        )
    };
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        let seconds: i64 = text.parse().map_err(|_| bad())?;
        return Timestamp::from_second(seconds).map_err(|_| bad());
    }
    text.parse::<Timestamp>().map_err(|_| bad())
}

/// A commit time must not be in the future (beyond [`CLOCK_SKEW`]): the lead
/// time would be negative.
pub fn check_time(at: Timestamp, now: Timestamp) -> Result<Timestamp, String> {
    match now.checked_add(CLOCK_SKEW) {
        Ok(latest) if at > latest => Err(format!(
            "commit time {at} is in the future (now {now:.0}): give the time the commit was made"
        )),
        _ => Ok(at),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sha_is_7_to_64_hex_digits() {
        assert_eq!(check_sha("3F2A9C1").as_deref(), Ok("3f2a9c1"));
        assert!(check_sha(&"a".repeat(40)).is_ok());
        assert!(check_sha(&"b".repeat(64)).is_ok());
        for bad in [
            "",
            "3f2a9c",
            "xyz1234",
            &"c".repeat(65),
            "3f2a9c1 ",
            "-3f2a9c1",
        ] {
            let err = check_sha(bad).expect_err(bad);
            assert!(err.contains("7 to 64 hexadecimal digits"), "{err}");
        }
    }

    #[test]
    fn a_time_is_rfc_3339_or_unix_seconds() {
        let at = parse_time("2026-12-04T09:00:00Z").expect("rfc 3339");
        assert_eq!(at.as_second(), 1_796_374_800);
        assert_eq!(parse_time("2026-12-04T10:00:00+01:00"), Ok(at));
        assert_eq!(parse_time(" 1796374800\n"), Ok(at));
        for bad in ["", "yesterday", "2026-12-04", "-5", "99999999999999999999"] {
            let err = parse_time(bad).expect_err(bad);
            assert!(
                err.contains("RFC 3339") && err.contains("unix seconds"),
                "{err}"
            );
        }
    }

    #[test]
    fn a_time_in_the_future_is_refused_beyond_the_skew() {
        let now = Timestamp::from_second(1_796_374_800).expect("now");
        let soon = now
            .checked_add(SignedDuration::from_mins(30))
            .expect("soon");
        assert_eq!(check_time(soon, now), Ok(soon));
        let later = now
            .checked_add(SignedDuration::from_hours(2))
            .expect("later");
        let err = check_time(later, now).expect_err("future");
        assert!(err.contains("in the future"), "{err}");
    }
}
