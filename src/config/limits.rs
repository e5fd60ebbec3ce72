//! The largest value `cutover.toml` may give anything: the file itself,
//! names, durations, counts and sizes (TigerBeetle's rule: everything has a
//! limit, and the limit is written down). `check` refuses a value over its
//! limit with a located error, so nothing downstream — `Instant + Duration`,
//! a database's millisecond timeout, a format width — sees an absurd value.
//!
//! `docs/config.md` ("Limits") lists every one of these; keep them in step.

use std::time::Duration;

const DAY: u64 = 24 * 60 * 60;
const KIB: u64 = 1024;

/// The largest config file read, in bytes (1 MiB). A real config is a few
/// kilobytes; anything near this is a mistake (or an attack on the parser).
pub const MAX_CONFIG_BYTES: u64 = 1024 * KIB;

/// The most problems one error reports (the rest are counted): each is drawn
/// with its source, and thousands would take minutes to draw.
pub const MAX_PROBLEMS: usize = 50;

/// The largest `[logs] max_files`: rotated files kept per instance.
pub const MAX_LOG_FILES: u32 = 100;

/// The smallest `[logs] max_size`: 1 KiB (smaller would rotate on every line).
pub const MIN_LOG_SIZE: u64 = KIB;

/// The largest `[logs] max_size`: 1 TiB.
pub const MAX_LOG_SIZE: u64 = KIB * KIB * KIB * KIB;

/// The longest app, service, environment or database name, in characters.
pub const MAX_NAME_LEN: usize = 64;

/// The most `[service.NAME]` tables: every one runs its own instances.
pub const MAX_SERVICES: usize = 256;

/// The most `[environment.NAME]` tables: every one has its own proxy listener.
pub const MAX_ENVIRONMENTS: usize = 64;

/// The most files in one service's `artifacts`.
pub const MAX_ARTIFACTS: usize = 64;

/// The most entries in one environment's `deploy_windows`.
pub const MAX_DEPLOY_WINDOWS: usize = 32;

/// The most `[database.NAME]` tables.
pub const MAX_DATABASES: usize = 64;

/// `[[notify.webhook]]` and `[[notify.slack]]` tables, together: each
/// event is queued once for each.
pub const MAX_NOTIFY_ENDPOINTS: usize = 32;

/// The longest duration any key takes unless listed below: 30 days.
pub const MAX_DURATION: Duration = Duration::from_secs(30 * DAY);

/// The longest `lock_timeout`, `statement_timeout` and `lock_wait`: 24 days.
/// SQLite's busy timeout and PostgreSQL's `lock_timeout` and
/// `statement_timeout` are 32-bit milliseconds (at most 24.8 days).
pub const MAX_DATABASE_TIMEOUT: Duration = Duration::from_secs(24 * DAY);

/// The longest `hsts` max-age: 2 years (browsers cap it at about this).
pub const MAX_HSTS: Duration = Duration::from_secs(2 * 365 * DAY);

/// The longest `tls.acme.renew_before`: 1 year (longer than any certificate).
pub const MAX_RENEW_BEFORE: Duration = Duration::from_secs(365 * DAY);

/// The longest `backup.keep_within`: 10 years.
pub const MAX_KEEP_WITHIN: Duration = Duration::from_secs(10 * 365 * DAY);

/// The most names in `tls.acme.domains` (Let's Encrypt's limit per certificate).
pub const MAX_ACME_DOMAINS: usize = 100;

/// The most protocols in a service's `allowed_upgrades`.
pub const MAX_UPGRADES: usize = 16;

/// The largest `health.healthy` and `health.unhealthy`.
pub const MAX_HEALTH_CHECKS: u32 = 100;

/// The largest `backup.keep_last`.
pub const MAX_KEEP_LAST: u32 = 10_000;

/// The largest `approvals.required`.
pub const MAX_APPROVALS: u32 = 10;

/// The largest `rollout.max_inconclusive`.
pub const MAX_INCONCLUSIVE: u32 = 100;

/// The largest `rollout.analysis.min_requests`.
pub const MAX_MIN_REQUESTS: u64 = 1_000_000_000;

/// The largest `limits.max_connections` of an environment.
pub const MAX_CONNECTIONS: u32 = 1_000_000;

/// The largest `limits.h2_max_concurrent_streams` of an environment.
pub const MAX_H2_STREAMS: u32 = 10_000;

/// The largest `max_request_body` (a service's or an environment's): 16 GiB.
pub const MAX_REQUEST_BODY: u64 = 16 * KIB * KIB * KIB;

/// The largest `resources.memory` of a Docker service: 1 TiB.
pub const MAX_MEMORY: u64 = KIB * KIB * KIB * KIB;

/// The longest duration `key` (as messages name it, e.g. `health.timeout`)
/// may be.
pub(crate) fn max_duration(key: &str) -> Duration {
    match key {
        "lock_timeout" | "statement_timeout" | "lock_wait" => MAX_DATABASE_TIMEOUT,
        "hsts" => MAX_HSTS,
        "acme.renew_before" => MAX_RENEW_BEFORE,
        "keep_within" => MAX_KEEP_WITHIN,
        _ => MAX_DURATION,
    }
}

/// `text` cut to at most `max` characters, with `…` where it was cut: for
/// echoing values in messages without echoing a megabyte.
pub(crate) fn elide(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some(_) => {
            let keep = max.saturating_sub(1);
            let end = text.char_indices().nth(keep).map_or(text.len(), |(i, _)| i);
            format!("{}…", &text[..end])
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn elide_keeps_short_text_and_cuts_long_text() {
        assert_eq!(elide("short", 10), "short");
        assert_eq!(elide("exactly10!", 10), "exactly10!");
        assert_eq!(elide("abcdefghijkl", 5), "abcd…");
        assert_eq!(elide("ééééééé", 3), "éé…");
    }

    #[test]
    fn database_timeouts_fit_every_backend() {
        // SQLite's busy timeout and PostgreSQL's timeouts are i32 milliseconds.
        let millis = MAX_DATABASE_TIMEOUT.as_millis();
        assert!(millis <= i32::MAX as u128, "{millis}");
        for key in ["lock_timeout", "statement_timeout", "lock_wait"] {
            assert_eq!(max_duration(key), MAX_DATABASE_TIMEOUT);
        }
    }
}
