//! Which backups `prune` deletes: all but the newest `keep_last`, those
//! younger than `keep_within`, and the newest verified one.

use std::time::Duration;

use jiff::Timestamp;

use super::manifest::Manifest;

/// The ids to delete from `backups` (oldest first) at `now`.
pub fn select(
    backups: &[Manifest],
    keep_last: u32,
    keep_within: Option<Duration>,
    now: Timestamp,
) -> Vec<String> {
    let keep_last = usize::try_from(keep_last).unwrap_or(usize::MAX);
    let newest_verified = backups
        .iter()
        .rev()
        .find(|b| b.verified_at.is_some())
        .map(|b| b.id.clone());
    let count = backups.len();
    backups
        .iter()
        .enumerate()
        .filter(|(index, backup)| {
            let among_last = count - index <= keep_last;
            let recent = keep_within.is_some_and(|within| {
                backup
                    .created_at
                    .parse::<Timestamp>()
                    .ok()
                    .and_then(|created| now.duration_since(created).try_into().ok())
                    .is_some_and(|age: Duration| age <= within)
            });
            let verified = newest_verified.as_deref() == Some(backup.id.as_str());
            !(among_last || recent || verified)
        })
        .map(|(_, backup)| backup.id.clone())
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn backup(id: &str, created_at: &str, verified: bool) -> Manifest {
        Manifest {
            id: id.into(),
            database: "main".into(),
            engine: "sqlite".into(),
            source: String::new(),
            file: format!("{id}.age"),
            trigger: "manual".into(),
            release: None,
            deployment: None,
            size: 1,
            plain_size: 1,
            sha256: String::new(),
            cutover_version: String::new(),
            created_at: created_at.into(),
            verified_at: verified.then(|| created_at.to_owned()),
            verification: None,
            signature: None,
        }
    }

    #[test]
    fn keeps_last_within_and_newest_verified() {
        let all = vec![
            backup("a", "2026-01-01T00:00:00Z", false),
            backup("b", "2026-01-02T00:00:00Z", true),
            backup("c", "2026-01-03T00:00:00Z", false),
            backup("d", "2026-01-09T00:00:00Z", false),
            backup("e", "2026-01-10T00:00:00Z", false),
        ];
        let now: Timestamp = "2026-01-10T12:00:00Z".parse().expect("time");
        assert_eq!(select(&all, 1, None, now), vec!["a", "c", "d"]);
        let week = Some(Duration::from_secs(7 * 86400));
        assert_eq!(select(&all, 1, week, now), vec!["a", "c"]);
        assert_eq!(select(&all, 10, None, now), Vec::<String>::new());
    }
}
