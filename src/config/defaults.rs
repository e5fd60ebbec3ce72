//! The default of every optional key in `cutover.toml`, in one place.
//!
//! The resolver fills missing values from here, the JSON Schema advertises
//! them, and `docs/config.md` repeats them for people.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

/// `[server] listen`: where the daemon's API listens.
/// How long a dashboard sign-in lasts (`[server] dashboard_session`).
pub const DASHBOARD_SESSION: std::time::Duration = std::time::Duration::from_secs(12 * 60 * 60);

pub const SERVER_LISTEN: SocketAddr = SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), 7070);
/// `[state] url`: cutover's own database, relative to the config file's directory.
pub const STATE_URL: &str = "sqlite://.cutover/state.db";
/// The name the state store's own backups go by (`[state] backup`), in
/// their ids and manifests.
pub const STATE_BACKUP_NAME: &str = "cutover-state";
/// `replicas`: instances per service.
pub const REPLICAS: u32 = 1;
/// The largest `replicas` accepted.
pub const MAX_REPLICAS: u32 = 64;
/// `health.path`.
pub const HEALTH_PATH: &str = "/health";
/// `health.interval`.
pub const HEALTH_INTERVAL: Duration = Duration::from_secs(1);
/// `health.timeout`.
pub const HEALTH_TIMEOUT: Duration = Duration::from_secs(2);
/// `health.healthy`: consecutive passes before an instance counts as healthy.
pub const HEALTH_HEALTHY: u32 = 2;
/// `health.unhealthy`: consecutive failures before an instance counts as unhealthy.
pub const HEALTH_UNHEALTHY: u32 = 3;
/// `health.start_timeout`: how long a new instance may take to become healthy.
pub const HEALTH_START_TIMEOUT: Duration = Duration::from_secs(60);
/// `drain_timeout`: how long in-flight requests may take to finish on an old instance.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(30);
/// `stop_timeout`: grace between SIGTERM and SIGKILL.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(10);
/// `path_prefix`: the route prefix of an http service.
pub const PATH_PREFIX: &str = "/";
/// `approvals.expires`: how long a deployment waits for its approvals.
pub const APPROVAL_EXPIRES: Duration = Duration::from_secs(60 * 60);
/// `approvals.required`: distinct approvers a deployment needs.
pub const APPROVALS_REQUIRED: u32 = 1;
/// `rollback_window`: how long the previous release stays warm.
pub const ROLLBACK_WINDOW: Duration = Duration::from_secs(10 * 60);
/// `[database.NAME] migrations`: the migrations folder, relative to the config file.
pub const MIGRATIONS_DIR: &str = "migrations";
/// `[database.NAME] lock_timeout`: PostgreSQL `lock_timeout` per migration statement.
pub const MIGRATE_LOCK_TIMEOUT: Duration = Duration::from_millis(500);
/// `[database.NAME] statement_timeout`: PostgreSQL `statement_timeout` per migration statement.
pub const MIGRATE_STATEMENT_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// `[database.NAME] lock_wait`: how long a second migrator waits for the migrator lock.
pub const MIGRATE_LOCK_WAIT: Duration = Duration::from_secs(30);
/// `[database.NAME] retries`: retries of a statement that hit `lock_timeout`.
pub const MIGRATE_RETRIES: u32 = 3;
/// The largest `retries` accepted.
pub const MAX_MIGRATE_RETRIES: u32 = 100;
/// `[database.NAME] backup.dir`: where backups go, relative to the config file.
pub const BACKUP_DIR: &str = ".cutover/backups";
/// `[database.NAME] backup.keep_last`: backups `cutover backup prune` keeps at least.
pub const BACKUP_KEEP_LAST: u32 = 30;

/// `[logs] max_size`: an instance's log file is rotated once larger (10 MiB).
pub const LOG_MAX_SIZE: u64 = 10 * 1024 * 1024;
/// `[logs] max_files`: rotated log files kept beside the live one.
pub const LOG_MAX_FILES: u32 = 5;

/// `[environment.NAME] tls.acme.directory`: Let's Encrypt's production directory.
pub const ACME_DIRECTORY: &str = "https://acme-v02.api.letsencrypt.org/directory";
/// `[environment.NAME] tls.acme.renew_before`: renewal starts this long before expiry.
pub const ACME_RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// The shortest `track_override.secret` accepted, in bytes (after `${VAR}` expansion).
pub const TRACK_SECRET_MIN_LEN: usize = 16;
/// `[service.NAME] allowed_upgrades`: `Upgrade` protocols tunnelled to the app.
pub const ALLOWED_UPGRADES: [&str; 1] = ["websocket"];

/// `[environment.NAME.limits] first_request_timeout`: how long a new connection
/// may take to send its first request head (HTTP/2 preface included), from accept.
pub const FIRST_REQUEST_TIMEOUT: Duration = Duration::from_secs(10);
/// `[environment.NAME.limits] max_connections`: open client connections per environment.
pub const MAX_CONNECTIONS: u32 = 10_000;
/// `[environment.NAME.limits] h2_max_concurrent_streams`: streams per HTTP/2 connection.
pub const H2_MAX_CONCURRENT_STREAMS: u32 = 128;
/// `[environment.NAME.limits] h2_idle_timeout`: an HTTP/2 connection with no stream is closed after this.
pub const H2_IDLE_TIMEOUT: Duration = Duration::from_secs(3 * 60);
/// `[environment.NAME.limits] upgrade_idle_timeout`: an upgraded (WebSocket) connection
/// with no bytes either way is closed after this.
pub const UPGRADE_IDLE_TIMEOUT: Duration = Duration::from_secs(5 * 60);
/// `[environment.NAME.limits] idle_timeout`: an HTTP/1.1 keep-alive connection
/// waiting for its next request is closed after this.
pub const IDLE_TIMEOUT: Duration = Duration::from_secs(60);
/// `[environment.NAME.limits] max_request_body`: the largest request body (bytes),
/// for every service that sets no `max_request_body` of its own; larger gets 413.
pub const MAX_REQUEST_BODY: u64 = 100 * 1024 * 1024;

/// `rollout.steps` of a canary: percent of traffic on the new release.
pub const CANARY_STEPS: [u8; 4] = [5, 25, 50, 100];
/// `rollout.step_duration`: how long each step lasts.
pub const STEP_DURATION: Duration = Duration::from_secs(30);
/// `rollout.check_interval`: how often a step is checked for fast failure.
pub const CHECK_INTERVAL: Duration = Duration::from_secs(1);
/// `rollout.max_inconclusive`: extensions of a step with too few requests.
pub const MAX_INCONCLUSIVE: u32 = 3;
/// `rollout.analysis.min_requests` when no threshold is set.
pub const MIN_REQUESTS: u64 = 50;
/// `rollout.analysis.abort_error_rate` is this many times `max_error_rate`
/// (at most 1) unless written.
pub const ABORT_ERROR_RATE_FACTOR: f64 = 3.0;

/// A duration as the config file writes it ("30s", "1h 30m"; whole days as
/// "30d", where humantime would write months of 30.44 days), for the JSON
/// Schema, `--json` and the summary.
pub(crate) fn duration_text(duration: Duration) -> String {
    const DAY: u64 = 24 * 60 * 60;
    let secs = duration.as_secs();
    if duration.subsec_nanos() == 0 && secs >= DAY && secs.is_multiple_of(DAY) {
        format!("{}d", secs / DAY)
    } else {
        humantime::format_duration(duration).to_string()
    }
}

/// A size as the config file writes it: "100m", "1g", "512k", or bytes.
pub(crate) fn size_text(bytes: u64) -> String {
    const KIB: u64 = 1024;
    match bytes {
        0 => "0".to_owned(),
        b if b.is_multiple_of(KIB * KIB * KIB) => format!("{}g", b / (KIB * KIB * KIB)),
        b if b.is_multiple_of(KIB * KIB) => format!("{}m", b / (KIB * KIB)),
        b if b.is_multiple_of(KIB) => format!("{}k", b / KIB),
        b => b.to_string(),
    }
}
