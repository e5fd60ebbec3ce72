//! Deploy windows (`deploy_windows = ["Mon-Thu 09:00-16:00 Europe/Berlin"]`):
//! parsing one window, whether an instant falls inside it, and when it next
//! opens.
//!
//! A window is wall-clock time in an IANA time zone: days (`Mon-Thu`,
//! `Mon,Wed`, `Fri-Mon`, or a mix like `Mon-Wed,Fri`), a start and an end
//! (`HH:MM-HH:MM`; an end before the start runs past midnight into the next
//! day, `24:00` is the end of the day) and the zone. The day names the day
//! the window opens. Time zones come from jiff's database (the system's
//! zoneinfo, or the copy bundled into the binary when the system has none),
//! so a window works on a machine without tzdata. Around a DST change the
//! wall clock decides: a window whose hours fall in the skipped hour does
//! not open that day, and the repeated hour is inside the window both times.

use std::fmt;

use jiff::civil::Date;
use jiff::tz::TimeZone;
use jiff::{Timestamp, ZonedDateTime};
use serde::{Serialize, Serializer};

/// Minutes in a day.
const DAY: u16 = 24 * 60;

const DAY_NAMES: [&str; 7] = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"];

/// What a window should look like, for error messages.
pub const WINDOW_EXPECTED: &str = r#"days, hours and an IANA time zone, e.g. "Mon-Thu 09:00-16:00 Europe/Berlin" or "Mon,Wed 22:00-02:00 UTC""#;

/// One deploy window.
#[derive(Clone)]
pub struct DeployWindow {
    /// As written.
    text: String,
    /// Monday first: whether the window opens on that day.
    days: [bool; 7],
    /// Opens at this minute of the day.
    start: u16,
    /// Closes at this minute of the day (of the next day when `end <= start`).
    end: u16,
    /// The zone the times are in.
    zone: TimeZone,
    /// Its name as written.
    zone_name: String,
}

impl fmt::Debug for DeployWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeployWindow({:?})", self.text)
    }
}

impl PartialEq for DeployWindow {
    fn eq(&self, other: &Self) -> bool {
        self.text == other.text
    }
}

impl Eq for DeployWindow {}

impl Serialize for DeployWindow {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.text)
    }
}

impl fmt::Display for DeployWindow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl DeployWindow {
    /// Parses a window; the error says what is wrong with it.
    pub fn parse(text: &str) -> Result<DeployWindow, String> {
        let parts: Vec<&str> = text.split_whitespace().collect();
        let [days, hours, zone_name] = parts.as_slice() else {
            return Err(format!(
                "expected three parts (days, hours, time zone), found {}",
                parts.len()
            ));
        };
        let days = parse_days(days)?;
        let (start, end) = parse_hours(hours)?;
        let zone = time_zone(zone_name)?;
        Ok(DeployWindow {
            text: text.trim().to_owned(),
            days,
            start,
            end,
            zone,
            zone_name: (*zone_name).to_owned(),
        })
    }

    /// The time zone's name as written.
    pub fn zone_name(&self) -> &str {
        &self.zone_name
    }

    /// Whether `at` falls inside the window.
    pub fn contains(&self, at: Timestamp) -> bool {
        let local = at.to_zoned_datetime(self.zone.clone());
        let minute = minute_of_day(&local);
        let today = weekday_index(local.date());
        let yesterday = (today + 6) % 7;
        if self.start < self.end {
            self.days[today] && (self.start..self.end).contains(&minute)
        } else {
            (self.days[today] && minute >= self.start)
                || (self.days[yesterday] && minute < self.end)
        }
    }

    /// When the window next opens after `at` (`None` when it never opens in
    /// the next eight days, as a window entirely inside a skipped DST hour).
    pub fn next_open(&self, at: Timestamp) -> Option<ZonedDateTime> {
        let local = at.to_zoned_datetime(self.zone.clone());
        let mut date = local.date();
        let mut best: Option<ZonedDateTime> = None;
        for _ in 0..=8 {
            if self.days[weekday_index(date)] {
                let hour = i8::try_from(self.start / 60).unwrap_or(0);
                let minute = i8::try_from(self.start % 60).unwrap_or(0);
                let opens = self
                    .zone
                    .to_ambiguous_zoned_datetime(date.at(hour, minute, 0, 0))
                    .compatible()
                    .ok();
                if let Some(opens) = opens
                    && opens.timestamp() > at
                    && self.contains(opens.timestamp())
                    && best
                        .as_ref()
                        .is_none_or(|b| opens.timestamp() < b.timestamp())
                {
                    best = Some(opens);
                }
            }
            date = date.tomorrow().ok()?;
        }
        best
    }
}

/// Whether `at` is inside any of `windows` (true when there are none).
pub fn open_now(windows: &[DeployWindow], at: Timestamp) -> bool {
    windows.is_empty() || windows.iter().any(|w| w.contains(at))
}

/// The earliest next opening of any of `windows` after `at`, in the zone of
/// the window it belongs to.
pub fn next_opening(windows: &[DeployWindow], at: Timestamp) -> Option<ZonedDateTime> {
    windows
        .iter()
        .filter_map(|w| w.next_open(at))
        .min_by_key(ZonedDateTime::timestamp)
}

fn minute_of_day(local: &ZonedDateTime) -> u16 {
    let hour = u16::try_from(local.hour()).unwrap_or(0);
    let minute = u16::try_from(local.minute()).unwrap_or(0);
    hour.saturating_mul(60).saturating_add(minute)
}

fn weekday_index(date: Date) -> usize {
    usize::try_from(date.weekday().to_monday_zero_offset()).unwrap_or(0) % 7
}

fn day(name: &str) -> Result<usize, String> {
    let lower = name.to_ascii_lowercase();
    DAY_NAMES.iter().position(|d| lower == *d).ok_or_else(|| {
        format!("`{name}` is not a day: expected Mon, Tue, Wed, Thu, Fri, Sat or Sun")
    })
}

fn parse_days(text: &str) -> Result<[bool; 7], String> {
    let mut days = [false; 7];
    for item in text.split(',') {
        match item.split_once('-') {
            Some((from, to)) => {
                let (from, to) = (day(from)?, day(to)?);
                let mut d = from;
                loop {
                    days[d] = true;
                    if d == to {
                        break;
                    }
                    d = (d + 1) % 7;
                }
            }
            None => days[day(item)?] = true,
        }
    }
    Ok(days)
}

fn parse_time(text: &str, end: bool) -> Result<u16, String> {
    let bad = || format!("`{text}` is not a time of day: expected HH:MM, e.g. 09:00");
    let (h, m) = text.split_once(':').ok_or_else(bad)?;
    if h.len() != 2 || m.len() != 2 {
        return Err(bad());
    }
    let h: u16 = h.parse().map_err(|_| bad())?;
    let m: u16 = m.parse().map_err(|_| bad())?;
    if end && h == 24 && m == 0 {
        return Ok(DAY);
    }
    if h > 23 || m > 59 {
        return Err(bad());
    }
    Ok(h * 60 + m)
}

fn parse_hours(text: &str) -> Result<(u16, u16), String> {
    let (start, end) = text.split_once('-').ok_or_else(|| {
        format!("`{text}` is not a span of hours: expected HH:MM-HH:MM, e.g. 09:00-16:00")
    })?;
    let start = parse_time(start, false)?;
    let end = parse_time(end, true)?;
    if start == end {
        return Err(format!("`{text}` opens and closes at the same time"));
    }
    Ok((start, end))
}

/// The IANA zone `name`: from the system's database, else the bundled one.
fn time_zone(name: &str) -> Result<TimeZone, String> {
    jiff::tz::db()
        .get(name)
        .or_else(|_| jiff::tz::TimeZoneDatabase::bundled().get(name))
        .map_err(|_| {
            format!("`{name}` is not a known IANA time zone: expected e.g. Europe/Berlin, America/New_York or UTC")
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(text: &str) -> Timestamp {
        text.parse().expect("a timestamp")
    }

    fn window(text: &str) -> DeployWindow {
        DeployWindow::parse(text).expect("a window")
    }

    #[test]
    fn parses_day_ranges_lists_and_wrapping_ranges() {
        assert_eq!(
            window("Mon-Thu 09:00-16:00 UTC").days,
            [true, true, true, true, false, false, false]
        );
        assert_eq!(
            window("mon,WED 09:00-16:00 UTC").days,
            [true, false, true, false, false, false, false]
        );
        assert_eq!(
            window("Fri-Mon 09:00-16:00 UTC").days,
            [true, false, false, false, true, true, true]
        );
        assert_eq!(
            window("Mon-Tue,Fri 09:00-16:00 UTC").days,
            [true, true, false, false, true, false, false]
        );
    }

    #[test]
    fn refuses_what_is_not_a_window_and_says_why() {
        let cases = [
            ("Mon-Thu 09:00-16:00", "three parts"),
            ("Mon-Thx 09:00-16:00 UTC", "`Thx` is not a day"),
            ("Mon 9:00-16:00 UTC", "`9:00` is not a time"),
            ("Mon 09:00-25:00 UTC", "`25:00` is not a time"),
            ("Mon 09:00 UTC", "not a span of hours"),
            ("Mon 09:00-09:00 UTC", "same time"),
            ("Mon 09:00-16:00 Mars/Olympus", "not a known IANA time zone"),
        ];
        for (text, expected) in cases {
            let err = DeployWindow::parse(text).expect_err(text);
            assert!(err.contains(expected), "{text}: {err}");
        }
    }

    #[test]
    fn a_window_holds_its_own_hours_in_its_own_zone() {
        // 2026-12-03 is a Thursday; Berlin is UTC+1 in winter.
        let w = window("Mon-Thu 09:00-16:00 Europe/Berlin");
        assert!(!w.contains(at("2026-12-03T07:59:59Z")));
        assert!(w.contains(at("2026-12-03T08:00:00Z")));
        assert!(w.contains(at("2026-12-03T14:59:59Z")));
        assert!(!w.contains(at("2026-12-03T15:00:00Z")));
        // Friday: closed.
        assert!(!w.contains(at("2026-12-04T10:00:00Z")));
        // Next opening from Friday: Monday 09:00 Berlin.
        let next = w.next_open(at("2026-12-04T10:00:00Z")).expect("opens");
        assert_eq!(next.timestamp(), at("2026-12-07T08:00:00Z"));
        assert_eq!(next.date().to_string(), "2026-12-07");
    }

    #[test]
    fn an_overnight_window_belongs_to_the_day_it_opens() {
        let w = window("Fri 22:00-02:00 UTC");
        assert!(w.contains(at("2026-12-04T23:00:00Z"))); // Friday night
        assert!(w.contains(at("2026-12-05T01:59:00Z"))); // Saturday early
        assert!(!w.contains(at("2026-12-05T02:00:00Z")));
        assert!(!w.contains(at("2026-12-04T01:00:00Z"))); // Friday early: Thursday's night
        let whole = window("Sat 00:00-24:00 UTC");
        assert!(whole.contains(at("2026-12-05T23:59:59Z")));
        assert!(!whole.contains(at("2026-12-06T00:00:00Z")));
    }

    #[test]
    fn dst_changes_follow_the_wall_clock() {
        // Berlin springs forward on 2026-03-29 (a Sunday) at 02:00 → 03:00.
        let gap = window("Sun 02:00-03:00 Europe/Berlin");
        assert!(!gap.contains(at("2026-03-29T00:59:59Z"))); // 01:59 CET
        assert!(!gap.contains(at("2026-03-29T01:00:00Z"))); // 03:00 CEST
        // The next time it opens is a week later, at 02:00 CEST.
        let next = gap
            .next_open(at("2026-03-28T12:00:00Z"))
            .expect("opens the week after");
        assert_eq!(next.timestamp(), at("2026-04-05T00:00:00Z"));
        // A morning window after the change opens an hour earlier in UTC.
        let morning = window("Mon 09:00-16:00 Europe/Berlin");
        let next = morning
            .next_open(at("2026-03-27T12:00:00Z"))
            .expect("Monday");
        assert_eq!(next.timestamp(), at("2026-03-30T07:00:00Z"));
        // Berlin falls back on 2026-10-25 at 03:00 → 02:00: the hour 02:xx
        // happens twice, inside the window both times.
        let twice = window("Sun 02:00-03:00 Europe/Berlin");
        assert!(twice.contains(at("2026-10-25T00:30:00Z"))); // 02:30 CEST
        assert!(twice.contains(at("2026-10-25T01:30:00Z"))); // 02:30 CET
        assert!(!twice.contains(at("2026-10-25T02:00:00Z"))); // 03:00 CET
    }

    #[test]
    fn no_windows_means_always_open_and_the_earliest_opening_wins() {
        assert!(open_now(&[], at("2026-12-05T12:00:00Z")));
        let windows = [
            window("Mon 09:00-10:00 UTC"),
            window("Sun 20:00-21:00 America/New_York"),
        ];
        let from = at("2026-12-05T12:00:00Z"); // Saturday
        assert!(!open_now(&windows, from));
        let next = next_opening(&windows, from).expect("opens");
        // Sunday 20:00 in New York (UTC-5) is Monday 01:00 UTC, before Monday 09:00 UTC.
        assert_eq!(next.timestamp(), at("2026-12-07T01:00:00Z"));
    }
}
