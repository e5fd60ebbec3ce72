//! `cutover.toml` as written: the serde structs the file is deserialized
//! into, with the span of every value that is checked afterwards, and the
//! JSON Schema of the file (derived from these same structs, so the two
//! cannot drift apart).
//!
//! Unknown keys are rejected at every level. Nothing is defaulted or
//! validated here; `resolve` does that and produces the public types.
//! Doc comments on these items are the descriptions in the JSON Schema.

use std::collections::BTreeMap;

use schemars::JsonSchema;
use serde::Deserialize;
use serde_spanned::Spanned;

use super::defaults::{self, duration_text};
use super::limits;
use super::scalars::{
    RawAcmeChallenge, RawAddress, RawApprovalAt, RawCount, RawDriverKind, RawDuration,
    RawInconclusivePolicy, RawLogFormat, RawNumber, RawRestartPolicy, RawServiceKind, RawSize,
    RawStrategy, RawSwitch,
};

/// A name written as a table key (`[service.NAME]`), with its span.
pub(crate) type Name = Spanned<String>;

/// cutover.toml: what to deploy (services), where (environments) and how.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(title = "cutover.toml")]
pub(crate) struct RawConfig {
    /// The application this file describes.
    #[schemars(with = "RawApp")]
    pub app: Option<Spanned<RawApp>>,

    /// The daemon (`cutover serve`).
    #[schemars(with = "Option<RawServer>")]
    pub server: Option<Spanned<RawServer>>,

    /// Where cutover keeps its own history, locks and audit log.
    #[schemars(with = "Option<RawState>")]
    pub state: Option<Spanned<RawState>>,

    /// The application's long-running programs, by name. At least one.
    #[schemars(
        with = "BTreeMap<String, RawService>",
        extend("minProperties" = 1, "propertyNames" = name_schema())
    )]
    pub service: Option<BTreeMap<Name, Spanned<RawService>>>,

    /// The places the application runs (staging, production, …), by name. At least one.
    #[schemars(
        with = "BTreeMap<String, RawEnvironment>",
        extend("minProperties" = 1, "propertyNames" = name_schema())
    )]
    pub environment: Option<BTreeMap<Name, Spanned<RawEnvironment>>>,

    /// The application's databases, by name: where `cutover migrate` applies
    /// the migrations of each.
    #[schemars(
        with = "Option<BTreeMap<String, RawDatabase>>",
        extend("propertyNames" = name_schema())
    )]
    pub database: Option<BTreeMap<Name, Spanned<RawDatabase>>>,

    /// When the process driver rotates instance log files
    /// (`.cutover/logs/ENV/SERVICE/INSTANCE.log`), for every service that
    /// sets no `logs` of its own; for the docker driver, the container's
    /// json-file log options.
    #[schemars(with = "Option<RawLogs>")]
    pub logs: Option<Spanned<RawLogs>>,

    /// Who hears about deployments: `[[notify.webhook]]` (signed per the
    /// Standard Webhooks specification) and `[[notify.slack]]`.
    #[schemars(with = "Option<RawNotify>")]
    pub notify: Option<Spanned<RawNotify>>,

    /// Per-daemon addresses, by host name, for several daemons sharing one
    /// file and one PostgreSQL store (docs/cluster.md): `cutover --host NAME`
    /// (or `CUTOVER_HOST=NAME`) uses `[host.NAME]`'s addresses instead of
    /// `[server] listen` and the environments' `listen` / `preview_listen`.
    #[schemars(
        with = "Option<BTreeMap<String, RawHost>>",
        extend("propertyNames" = name_schema())
    )]
    pub host: Option<BTreeMap<Name, Spanned<RawHost>>>,
}

/// `[host.NAME]`: where one daemon of several listens.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Host")]
pub(crate) struct RawHost {
    /// Where this host's daemon's API listens, instead of `[server] listen`.
    #[schemars(with = "Option<RawAddress>")]
    pub listen: Option<Spanned<RawAddress>>,

    /// Where this host's daemon serves `/metrics` alone, instead of
    /// `[server] metrics_listen`.
    #[schemars(with = "Option<RawAddress>")]
    pub metrics_listen: Option<Spanned<RawAddress>>,

    /// Per environment, where this host's proxies listen.
    #[schemars(
        with = "Option<BTreeMap<String, RawHostEnvironment>>",
        extend("propertyNames" = name_schema())
    )]
    pub environment: Option<BTreeMap<Name, Spanned<RawHostEnvironment>>>,
}

/// `[host.NAME.environment.ENV]`: one environment's listeners on that host.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "HostEnvironment")]
pub(crate) struct RawHostEnvironment {
    /// Instead of the environment's `listen`.
    #[schemars(with = "Option<RawAddress>")]
    pub listen: Option<Spanned<RawAddress>>,

    /// Instead of the environment's `preview_listen`.
    #[schemars(with = "Option<RawAddress>")]
    pub preview_listen: Option<Spanned<RawAddress>>,
}

/// `[notify]`: where the daemon sends events (docs/observability.md).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Notify")]
pub(crate) struct RawNotify {
    /// HTTPS endpoints that receive each event as JSON, signed with
    /// `webhook-id`, `webhook-timestamp` and `webhook-signature`.
    #[schemars(with = "Option<Vec<RawWebhook>>")]
    pub webhook: Option<Vec<Spanned<RawWebhook>>>,
    /// Slack incoming webhooks that receive a readable message per event.
    #[schemars(with = "Option<Vec<RawSlack>>")]
    pub slack: Option<Vec<Spanned<RawSlack>>>,
}

/// `[[notify.webhook]]`: one endpoint.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Webhook")]
pub(crate) struct RawWebhook {
    /// Where to POST (`https://…`, or `http://…`).
    #[schemars(with = "String", extend("examples" = ["https://hooks.example.com/cutover"]))]
    pub url: Option<Spanned<String>>,
    /// The signing secret, `whsec_` and base64 (24 to 64 bytes), from the
    /// environment: write `${VAR}`; a secret written in the file is refused.
    #[schemars(with = "String", extend("examples" = ["${CUTOVER_WEBHOOK_SECRET}"]))]
    pub secret: Option<Spanned<String>>,
    /// The event types to send (see docs/observability.md); all when omitted.
    #[schemars(with = "Option<Vec<String>>", extend("items" = event_type_schema()))]
    pub events: Option<Vec<Spanned<String>>>,
    /// Only events of these environments; all when omitted.
    #[schemars(with = "Option<Vec<String>>")]
    pub environments: Option<Vec<Spanned<String>>>,
}

/// `[[notify.slack]]`: one Slack incoming webhook.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Slack")]
pub(crate) struct RawSlack {
    /// The incoming webhook's URL, from the environment (it is a
    /// credential): write `${VAR}`; a URL written in the file is refused.
    #[schemars(with = "String", extend("examples" = ["${CUTOVER_SLACK_WEBHOOK_URL}"]))]
    pub url: Option<Spanned<String>>,
    /// The event types to send; when omitted, those worth a message
    /// (deployment started, succeeded, failed, rolled back, held; approvals;
    /// failed backups and restarts).
    #[schemars(with = "Option<Vec<String>>", extend("items" = event_type_schema()))]
    pub events: Option<Vec<Spanned<String>>>,
    /// Only events of these environments; all when omitted.
    #[schemars(with = "Option<Vec<String>>")]
    pub environments: Option<Vec<Spanned<String>>>,
}

fn event_type_schema() -> serde_json::Value {
    let names: Vec<&str> = super::notify::EventType::ALL
        .iter()
        .map(|t| t.as_str())
        .collect();
    serde_json::json!({ "type": "string", "enum": names })
}

/// `[logs]`, or a service's `logs = { … }`: log rotation by size.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Logs")]
pub(crate) struct RawLogs {
    /// Rotate an instance's log once it is larger than this: bytes, or a
    /// number with `k`, `m` or `g` (`"10MiB"`, `"10m"`).
    #[schemars(
        with = "Option<RawSize>",
        extend("default" = defaults::size_text(defaults::LOG_MAX_SIZE))
    )]
    pub max_size: Option<Spanned<RawSize>>,
    /// Rotated files kept beside the live one (`INSTANCE.log.1` … `.N`);
    /// 0 keeps none (the log is emptied when it is full).
    #[schemars(
        with = "Option<RawCount>",
        extend("default" = defaults::LOG_MAX_FILES, "minimum" = 0, "maximum" = limits::MAX_LOG_FILES)
    )]
    pub max_files: Option<Spanned<RawCount>>,
}

/// `[app]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "App")]
pub(crate) struct RawApp {
    /// The application's name: letters, digits, `-` and `_`.
    #[schemars(with = "String", extend("pattern" = NAME_PATTERN, "maxLength" = limits::MAX_NAME_LEN))]
    pub name: Option<Spanned<String>>,
}

/// `[server]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Server")]
pub(crate) struct RawServer {
    /// Where the daemon's HTTP API listens.
    #[schemars(
        with = "Option<RawAddress>",
        extend("default" = defaults::SERVER_LISTEN.to_string())
    )]
    pub listen: Option<Spanned<RawAddress>>,

    /// Serve the API over HTTPS with this certificate (PEM, with its chain) and
    /// key, paths relative to this file. Required for a `listen` address that
    /// is not loopback, unless `allow_plaintext = true`.
    #[schemars(with = "Option<RawTlsFiles>")]
    pub tls: Option<Spanned<RawTlsFiles>>,

    /// Allow a `listen` address that is not loopback without `tls` (plain HTTP:
    /// the token and every request can be read on the way). A warning is
    /// logged at every start.
    #[schemars(with = "Option<bool>", extend("default" = false))]
    pub allow_plaintext: Option<Spanned<bool>>,

    /// Serve `/metrics` alone, without a token, on this address too (for a
    /// Prometheus scraper when the API is not on loopback).
    #[schemars(with = "Option<RawAddress>")]
    pub metrics_listen: Option<Spanned<RawAddress>>,

    /// Serve the web dashboard under `/ui` (sign-in with an API token; see
    /// docs/dashboard.md). On `listen` unless `dashboard_listen` moves it.
    #[schemars(with = "Option<bool>", extend("default" = true))]
    pub dashboard: Option<Spanned<bool>>,

    /// Serve the dashboard on this address instead of on `listen` (with the
    /// API's `tls`, if any; off loopback it needs `tls` or `allow_plaintext`,
    /// as the API does).
    #[schemars(with = "Option<RawAddress>")]
    pub dashboard_listen: Option<Spanned<RawAddress>>,

    /// How long a dashboard sign-in lasts before the browser must sign in
    /// again.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::DASHBOARD_SESSION))
    )]
    pub dashboard_session: Option<Spanned<RawDuration>>,

    /// How `cutover serve` writes its log on stderr: `text`, or `json` (one
    /// object per line, for log shippers). `cutover serve --log-format`
    /// overrides it.
    #[schemars(with = "Option<RawLogFormat>", extend("default" = "text"))]
    pub log_format: Option<Spanned<RawLogFormat>>,
}

/// `tls = { cert = "…", key = "…" }`: one certificate and its private key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "TlsFiles")]
pub(crate) struct RawTlsFiles {
    /// The certificate chain, PEM (leaf first), relative to this file's directory.
    #[schemars(with = "String")]
    pub cert: Option<Spanned<String>>,
    /// Its private key, PEM, relative to this file's directory. Keep it 0600.
    #[schemars(with = "String")]
    pub key: Option<Spanned<String>>,
}

/// `[state]`.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "State")]
pub(crate) struct RawState {
    /// `sqlite://PATH` (relative to this file's directory) or `postgres://…`. `${VAR}` is expanded.
    #[schemars(with = "Option<String>", extend("default" = defaults::STATE_URL))]
    pub url: Option<Spanned<String>>,
    /// Encrypted backups of the state store itself (`cutover backup create
    /// --state`), as a database's `backup = { … }`; `before_deploy` is not used.
    #[schemars(with = "Option<RawBackup>")]
    pub backup: Option<Spanned<RawBackup>>,
}

/// `[service.NAME]`: a long-running program.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Service")]
pub(crate) struct RawService {
    /// `http` receives traffic through cutover's proxy; `worker` receives none.
    #[schemars(with = "Option<RawServiceKind>", extend("default" = "http"))]
    pub kind: Option<Spanned<RawServiceKind>>,

    /// What runs the instances: `process` (local processes) or `docker` (containers).
    #[schemars(with = "Option<RawDriverKind>", extend("default" = "process"))]
    pub driver: Option<Spanned<RawDriverKind>>,

    /// Program and arguments (required for the process driver; an error with
    /// docker). `${VAR}` is expanded; `{port}` and `{version}` are filled in by
    /// cutover for each instance.
    #[schemars(with = "Option<Vec<String>>", extend("minItems" = 1))]
    pub command: Option<Spanned<Vec<Spanned<String>>>>,

    /// docker and swarm only (required): the image to run, such as `hello:{version}` or
    /// `registry.example/shop@sha256:…`. `{version}` becomes the release's version.
    #[schemars(with = "Option<String>")]
    pub image: Option<Spanned<String>>,

    /// docker and swarm only (required for http services): the port the container
    /// listens on. docker publishes it on a free port of 127.0.0.1, swarm on a
    /// free port of the task's node (host mode), where the proxy sends traffic.
    #[schemars(with = "Option<u16>", extend("minimum" = 1, "maximum" = 65535))]
    pub port: Option<Spanned<RawCount>>,

    /// docker only: volumes, `NAME:/path` (a named volume) or `./dir:/path` /
    /// `/dir:/path` (a bind mount), optionally ending in `:ro`.
    #[schemars(with = "Option<Vec<String>>")]
    pub volumes: Option<Spanned<Vec<Spanned<String>>>>,

    /// docker and swarm only: the signal that asks a container to stop (then SIGKILL after `stop_timeout`).
    #[schemars(with = "Option<String>", extend("default" = "SIGTERM"))]
    pub stop_signal: Option<Spanned<String>>,

    /// docker and swarm only: resource limits of each container.
    #[schemars(with = "Option<RawResources>")]
    pub resources: Option<Spanned<RawResources>>,

    /// docker and swarm only: pull the image before each deploy (otherwise it must exist locally).
    #[schemars(with = "Option<bool>", extend("default" = false))]
    pub pull: Option<Spanned<bool>>,

    /// swarm only: how the release's Swarm service is placed and checked.
    #[schemars(with = "Option<RawSwarm>")]
    pub swarm: Option<Spanned<RawSwarm>>,

    /// Files that are part of the release, relative to the config file, with
    /// `{version}` filled in (`["dist/app-{version}.tar.gz"]`): their sha256
    /// is part of the release's digest, and a deploy fails before anything
    /// changes when one is missing.
    #[schemars(with = "Option<Vec<String>>", extend("examples" = [["dist/app-{version}.tar.gz"]]))]
    pub artifacts: Option<Spanned<Vec<Spanned<String>>>>,

    /// Extra environment variables for every instance. `${VAR}` is expanded in values.
    /// `cutover check` shows their names, never their values.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub env: BTreeMap<Name, Spanned<String>>,

    /// process only: give instances the daemon's whole environment (except
    /// cutover's own `CUTOVER_*` variables and systemd's `LISTEN_*` and
    /// `NOTIFY_SOCKET`) instead of only `PATH`, `HOME`, `LANG`, `LC_*`, `TZ`
    /// and this service's `env`.
    #[schemars(with = "Option<bool>", extend("default" = false))]
    pub inherit_env: Option<Spanned<bool>>,

    /// Log rotation of this service's instances; keys left out come from `[logs]`.
    #[schemars(with = "Option<RawLogs>")]
    pub logs: Option<Spanned<RawLogs>>,

    /// Instances per release, 1 to 64.
    #[schemars(
        with = "Option<RawCount>",
        extend("default" = defaults::REPLICAS, "maximum" = defaults::MAX_REPLICAS)
    )]
    pub replicas: Option<Spanned<RawCount>>,

    /// How instances are health-checked.
    #[schemars(with = "Option<RawHealth>")]
    pub health: Option<Spanned<RawHealth>>,

    /// How long in-flight requests may take to finish on an instance that is leaving.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::DRAIN_TIMEOUT))
    )]
    pub drain_timeout: Option<Spanned<RawDuration>>,

    /// Grace between SIGTERM and SIGKILL when an instance is stopped.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::STOP_TIMEOUT))
    )]
    pub stop_timeout: Option<Spanned<RawDuration>>,

    /// http services: the `Host` this service's route matches (default: any host).
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,

    /// http services: the path prefix this service's route matches.
    #[schemars(with = "Option<String>", extend("default" = defaults::PATH_PREFIX, "pattern" = "^/"))]
    pub path_prefix: Option<Spanned<String>>,

    /// Within one release, roll this service out after these services.
    #[schemars(with = "Option<Vec<String>>", extend("items" = service_name_schema()))]
    pub after: Option<Spanned<Vec<Spanned<String>>>>,

    /// How a new release takes over from the previous one.
    #[schemars(with = "Option<RawRollout>")]
    pub rollout: Option<Spanned<RawRollout>>,

    /// http services: the largest request body, in bytes or with `k`, `m` or
    /// `g` (`"10m"`); larger gets 413. Default: the environment's
    /// `limits.max_request_body`.
    #[schemars(with = "Option<RawSize>")]
    pub max_request_body: Option<Spanned<RawSize>>,

    /// http services: the `Upgrade` protocols tunnelled to the app (`h2c` is
    /// never tunnelled). An empty list allows none.
    #[schemars(
        with = "Option<Vec<String>>",
        extend("default" = defaults::ALLOWED_UPGRADES)
    )]
    pub allowed_upgrades: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[service.NAME.swarm]` of a `driver = "swarm"` service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Swarm")]
pub(crate) struct RawSwarm {
    /// Placement constraints of the release's Swarm service, as Swarm writes
    /// them (`"node.role == manager"`, `"node.labels.zone == a"`).
    #[schemars(with = "Option<Vec<String>>", extend("examples" = [["node.role == manager"]]))]
    pub constraints: Option<Spanned<Vec<Spanned<String>>>>,

    /// A command run inside each task as Swarm's own health check (the
    /// container's HEALTHCHECK), with `health`'s interval, timeout and
    /// `unhealthy` retries: Swarm replaces a task that fails it. cutover's
    /// proxy probes `health.path` either way.
    #[schemars(with = "Option<Vec<String>>", extend("minItems" = 1, "examples" = [["/hello", "--probe"]]))]
    pub health_command: Option<Spanned<Vec<Spanned<String>>>>,

    /// Workers: how many tasks Swarm's rolling update replaces at once.
    #[schemars(with = "Option<RawCount>", extend("default" = 1, "minimum" = 1, "maximum" = defaults::MAX_REPLICAS))]
    pub update_parallelism: Option<Spanned<RawCount>>,

    /// Workers: the pause between two batches of Swarm's rolling update.
    #[schemars(with = "Option<RawDuration>", extend("default" = "0s"))]
    pub update_delay: Option<Spanned<RawDuration>>,

    /// Workers: how long Swarm watches each updated task for a failure
    /// before it counts as updated.
    #[schemars(with = "Option<RawDuration>", extend("default" = "5s"))]
    pub update_monitor: Option<Spanned<RawDuration>>,

    /// Workers: what Swarm does when the rolling update fails: `rollback`
    /// (put the previous release back) or `pause` (stop where it is). The
    /// deployment fails either way.
    #[schemars(with = "Option<String>", extend("enum" = ["rollback", "pause"], "default" = "rollback"))]
    pub update_failure_action: Option<Spanned<String>>,
}

/// `resources = { … }` of a docker service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Resources")]
pub(crate) struct RawResources {
    /// Memory limit: bytes, or a number with `k`, `m` or `g` (`"256m"`).
    #[schemars(with = "Option<String>", extend("examples" = ["256m", "1g"]))]
    pub memory: Option<Spanned<String>>,

    /// CPU limit in cores (`0.5` is half a core).
    #[schemars(with = "Option<f64>", extend("exclusiveMinimum" = 0))]
    pub cpus: Option<Spanned<RawNumber>>,
}

/// `health = { … }` of a service.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Health")]
pub(crate) struct RawHealth {
    /// workers only: a command whose exit status 0 means healthy (run as a local
    /// process for the process driver, inside the container for docker).
    /// Without it a worker is healthy when it still runs after `interval` × `healthy`.
    #[schemars(with = "Option<Vec<String>>", extend("minItems" = 1))]
    pub command: Option<Spanned<Vec<Spanned<String>>>>,

    /// The HTTP path probed on each instance.
    #[schemars(with = "Option<String>", extend("default" = defaults::HEALTH_PATH, "pattern" = "^/"))]
    pub path: Option<Spanned<String>>,

    /// Time between probes.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::HEALTH_INTERVAL))
    )]
    pub interval: Option<Spanned<RawDuration>>,

    /// How long one probe may take.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::HEALTH_TIMEOUT))
    )]
    pub timeout: Option<Spanned<RawDuration>>,

    /// Consecutive passing probes before an instance counts as healthy.
    #[schemars(with = "Option<RawCount>", extend("default" = defaults::HEALTH_HEALTHY, "maximum" = limits::MAX_HEALTH_CHECKS))]
    pub healthy: Option<Spanned<RawCount>>,

    /// Consecutive failing probes before an instance counts as unhealthy.
    #[schemars(with = "Option<RawCount>", extend("default" = defaults::HEALTH_UNHEALTHY, "maximum" = limits::MAX_HEALTH_CHECKS))]
    pub unhealthy: Option<Spanned<RawCount>>,

    /// How long a new instance may take to become healthy.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::HEALTH_START_TIMEOUT))
    )]
    pub start_timeout: Option<Spanned<RawDuration>>,
}

/// `rollout = { … }` of a service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Rollout")]
pub(crate) struct RawRollout {
    /// `blue-green` moves all traffic at once; `canary` moves it in `steps`.
    #[schemars(with = "Option<RawStrategy>", extend("default" = "blue-green"))]
    pub strategy: Option<Spanned<RawStrategy>>,

    /// canary only: the percent of traffic on the new release at each step,
    /// strictly increasing and ending at 100 (default [5, 25, 50, 100]).
    #[schemars(
        with = "Option<Vec<u8>>",
        extend("items" = step_schema(), "minItems" = 1)
    )]
    pub steps: Option<Spanned<Vec<Spanned<RawCount>>>>,

    /// How long each step lasts before it is judged.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::STEP_DURATION))
    )]
    pub step_duration: Option<Spanned<RawDuration>>,

    /// How often a step is checked for fast failure; shorter than `step_duration`.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::CHECK_INTERVAL))
    )]
    pub check_interval: Option<Spanned<RawDuration>>,

    /// How many times a step with too few requests is extended.
    #[schemars(with = "Option<u32>", extend("default" = defaults::MAX_INCONCLUSIVE, "maximum" = limits::MAX_INCONCLUSIVE))]
    pub max_inconclusive: Option<Spanned<RawCount>>,

    /// What happens after `max_inconclusive` extensions: `fail` or `pause`.
    #[schemars(with = "Option<RawInconclusivePolicy>", extend("default" = "fail"))]
    pub on_inconclusive: Option<Spanned<RawInconclusivePolicy>>,

    /// `manual`: start the new release, wait until it is healthy, and hold
    /// before any traffic moves until `cutover switch` (no timeout; it
    /// answers on the environment's `preview_listen` meanwhile). `auto`:
    /// move traffic as soon as it is healthy.
    #[schemars(with = "Option<RawSwitch>", extend("default" = "auto"))]
    pub switch: Option<Spanned<RawSwitch>>,

    /// What a restarted daemon does with a canary it finds half-done: `rollback` or `resume`.
    #[schemars(with = "Option<RawRestartPolicy>", extend("default" = "rollback"))]
    pub on_daemon_restart: Option<Spanned<RawRestartPolicy>>,

    /// The thresholds each step is judged by.
    #[schemars(with = "Option<RawAnalysis>")]
    pub analysis: Option<Spanned<RawAnalysis>>,
}

/// `rollout.analysis = { … }`: what makes a step pass or fail. A threshold
/// left out is not checked; with any threshold, `min_requests` is required.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Analysis")]
pub(crate) struct RawAnalysis {
    /// The largest share of failed requests on the new release, 0 to 1.
    #[schemars(with = "Option<f64>", extend("minimum" = 0, "maximum" = 1))]
    pub max_error_rate: Option<Spanned<RawNumber>>,

    /// The largest 95th percentile latency on the new release.
    #[schemars(with = "Option<RawDuration>")]
    pub max_p95: Option<Spanned<RawDuration>>,

    /// The largest 99th percentile latency on the new release.
    #[schemars(with = "Option<RawDuration>")]
    pub max_p99: Option<Spanned<RawDuration>>,

    /// How much higher the new release's error rate may be than the previous release's, 0 to 1.
    #[schemars(with = "Option<f64>", extend("minimum" = 0, "maximum" = 1))]
    pub max_error_rate_increase: Option<Spanned<RawNumber>>,

    /// How many times the previous release's latency the new release's may be, at least 1.
    #[schemars(with = "Option<f64>", extend("minimum" = 1))]
    pub max_latency_ratio: Option<Spanned<RawNumber>>,

    /// The fewest requests a step must see before it is judged. Required with
    /// any threshold; 50 without.
    #[schemars(with = "Option<RawCount>", extend("default" = defaults::MIN_REQUESTS, "maximum" = limits::MAX_MIN_REQUESTS))]
    pub min_requests: Option<Spanned<RawCount>>,

    /// An error rate that fails a step at once, 0 to 1, at least `max_error_rate`
    /// (default: 3 × `max_error_rate`, at most 1).
    #[schemars(with = "Option<f64>", extend("minimum" = 0, "maximum" = 1))]
    pub abort_error_rate: Option<Spanned<RawNumber>>,
}

/// `[environment.NAME]`: a place the application runs.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Environment")]
pub(crate) struct RawEnvironment {
    /// Where this environment's proxy listens. Each environment needs its own.
    #[schemars(with = "RawAddress")]
    pub listen: Option<Spanned<RawAddress>>,

    /// How long the previous release stays warm for an instant rollback.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::ROLLBACK_WINDOW))
    )]
    pub rollback_window: Option<Spanned<RawDuration>>,

    /// A plain HTTP listener that redirects every request to HTTPS (308) and
    /// answers ACME HTTP-01 challenges. Needs `tls`.
    #[schemars(with = "Option<RawAddress>")]
    pub redirect_listen: Option<Spanned<RawAddress>>,

    /// A second proxy listener (plain HTTP, no TLS) that routes each service
    /// to its newest release: the new instances while a rollout runs or
    /// awaits the switch, else the serving ones. For smoke tests; its
    /// requests never count in the canary analysis. Distinct from every
    /// other listener; keep it on loopback or a private network.
    #[schemars(with = "Option<RawAddress>", extend("examples" = ["127.0.0.1:8081"]))]
    pub preview_listen: Option<Spanned<RawAddress>>,

    /// Send `Strict-Transport-Security` with this `max-age` on HTTPS answers
    /// (`"365d"`). Needs `tls`.
    #[schemars(with = "Option<RawDuration>", extend("examples" = ["365d"]))]
    pub hsts: Option<Spanned<RawDuration>>,

    /// Terminate TLS on `listen`: certificate files (`cert` and `key`, or
    /// several in `certificates`, chosen by SNI) and/or automatic certificates
    /// (`acme`).
    #[schemars(with = "Option<RawEnvTls>")]
    pub tls: Option<Spanned<RawEnvTls>>,

    /// Peers (CIDRs or single IPs) whose `X-Forwarded-For`, `-Proto`, `-Host`,
    /// `Forwarded` and `X-Real-IP` are kept; from anyone else they are replaced.
    #[schemars(with = "Option<Vec<String>>", extend("examples" = [["10.0.0.0/8", "192.0.2.7"]]))]
    pub trusted_proxies: Option<Spanned<Vec<Spanned<String>>>>,

    /// Honour `X-Cutover-Track` (pin a request to stable or canary) only from
    /// requests that carry `secret` in it, or come from `trusted_sources`.
    /// Without this table the header is ignored and removed.
    #[schemars(with = "Option<RawTrackOverride>")]
    pub track_override: Option<Spanned<RawTrackOverride>>,

    /// Limits of this environment's proxy.
    #[schemars(with = "Option<RawLimits>")]
    pub limits: Option<Spanned<RawLimits>>,

    /// This environment's settings of services, by service name
    /// (`[environment.NAME.service.SERVICE]`): `replicas` replaces the
    /// service's, `env` and `health` keys are merged over the service's (a
    /// value written here wins).
    #[schemars(
        with = "Option<BTreeMap<String, RawServiceOverride>>",
        extend("propertyNames" = name_schema())
    )]
    pub service: Option<BTreeMap<Name, Spanned<RawServiceOverride>>>,

    /// This environment's databases, by name (`[environment.NAME.database.DB]`):
    /// keys written here are merged over a top-level `[database.DB]` of the
    /// same name (typically only `url`, and `backup.dir`), or, without one,
    /// are a whole database of this environment (then `url` is required).
    #[schemars(
        with = "Option<BTreeMap<String, serde_json::Value>>",
        extend(
            "propertyNames" = name_schema(),
            "additionalProperties" = serde_json::json!({ "$ref": "#/$defs/EnvironmentDatabase" })
        )
    )]
    pub database: Option<BTreeMap<Name, Spanned<RawDatabase>>>,

    /// Another environment a release must have run in first: a deploy here
    /// accepts only a version that succeeded there with the same release
    /// digest and served there for `soak` without a rollback.
    #[schemars(with = "Option<String>", extend("examples" = ["staging"]))]
    pub promote_from: Option<Spanned<String>>,

    /// With `promote_from`: how long the release must have served in that
    /// environment before it may be deployed here.
    #[schemars(with = "Option<RawDuration>", extend("default" = "0s", "examples" = ["30m"]))]
    pub soak: Option<Spanned<RawDuration>>,

    /// When deploys are allowed: `"DAYS HH:MM-HH:MM TIME_ZONE"` (days as
    /// ranges or lists, `Mon-Thu`, `Mon,Wed`; an IANA time zone). Outside
    /// every window only an admin with `--reason` may deploy. Unset: always.
    #[schemars(
        with = "Option<Vec<String>>",
        extend("examples" = [["Mon-Thu 09:00-16:00 Europe/Berlin"]])
    )]
    pub deploy_windows: Option<Spanned<Vec<Spanned<String>>>>,

    /// Deploys to this environment wait for approvals by someone other than
    /// the deployer (four eyes): `cutover approve ID` / `cutover reject ID`.
    #[schemars(with = "Option<RawApprovals>")]
    pub approvals: Option<Spanned<RawApprovals>>,
}

/// `approvals = { required, expires, at }`: the approval gate of an environment.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Approvals")]
pub(crate) struct RawApprovals {
    /// Distinct approvers needed, none of them the deployer.
    #[schemars(
        with = "Option<u32>",
        extend("default" = defaults::APPROVALS_REQUIRED, "minimum" = 1, "maximum" = limits::MAX_APPROVALS)
    )]
    pub required: Option<Spanned<RawCount>>,
    /// How long a deployment waits for them; then it ends with nothing started.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::APPROVAL_EXPIRES))
    )]
    pub expires: Option<Spanned<RawDuration>>,
    /// Where the deployment waits: `start` (before anything changes) or
    /// `switch` (started and healthy, before traffic moves).
    #[schemars(with = "Option<RawApprovalAt>", extend("default" = "start"))]
    pub at: Option<Spanned<RawApprovalAt>>,
}

/// `[environment.NAME.service.SERVICE]`: what this environment changes of a service.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "ServiceOverride")]
pub(crate) struct RawServiceOverride {
    /// Instances per release in this environment, 1 to 64 (replaces the service's).
    #[schemars(
        with = "Option<RawCount>",
        extend("minimum" = 1, "maximum" = defaults::MAX_REPLICAS)
    )]
    pub replicas: Option<Spanned<RawCount>>,

    /// Environment variables of this environment's instances, merged over the
    /// service's `env` (a name written here wins). `${VAR}` is expanded in values.
    #[serde(default)]
    #[schemars(with = "BTreeMap<String, String>")]
    pub env: BTreeMap<Name, Spanned<String>>,

    /// Health-check settings of this environment's instances, merged key by
    /// key over the service's `health`.
    #[schemars(with = "Option<RawHealth>")]
    pub health: Option<Spanned<RawHealth>>,
}

/// `[environment.NAME] tls = { … }`: at least one certificate source.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "EnvironmentTls")]
pub(crate) struct RawEnvTls {
    /// One certificate chain, PEM (leaf first), relative to this file's directory. With `key`.
    #[schemars(with = "Option<String>")]
    pub cert: Option<Spanned<String>>,
    /// The private key of `cert`, PEM, relative to this file's directory. With `cert`.
    #[schemars(with = "Option<String>")]
    pub key: Option<Spanned<String>>,
    /// Several certificates, each `{ cert, key }`; each request gets the one
    /// whose names match its SNI.
    #[schemars(with = "Option<Vec<RawTlsFiles>>")]
    pub certificates: Option<Spanned<Vec<Spanned<RawTlsFiles>>>>,
    /// Certificates obtained and renewed automatically from an ACME CA.
    #[schemars(with = "Option<RawAcme>")]
    pub acme: Option<Spanned<RawAcme>>,
}

/// `tls.acme = { … }`: automatic certificates (kept in the state directory).
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Acme")]
pub(crate) struct RawAcme {
    /// The account's contact address.
    #[schemars(with = "String")]
    pub email: Option<Spanned<String>>,
    /// The names to get a certificate for (no wildcards). At least one.
    #[schemars(with = "Vec<String>", extend("minItems" = 1))]
    pub domains: Option<Spanned<Vec<Spanned<String>>>>,
    /// The CA's ACME directory URL (https).
    #[schemars(with = "Option<String>", extend("default" = defaults::ACME_DIRECTORY))]
    pub directory: Option<Spanned<String>>,
    /// A PEM file of the CA that signs the directory's HTTPS certificate (for a
    /// private or test CA), relative to this file's directory.
    #[schemars(with = "Option<String>")]
    pub directory_ca: Option<Spanned<String>>,
    /// How the CA checks the names: `http-01` (on `redirect_listen`) or
    /// `tls-alpn-01` (on `listen`). Default: `http-01` with a `redirect_listen`,
    /// else `tls-alpn-01`.
    #[schemars(with = "Option<RawAcmeChallenge>")]
    pub challenge: Option<Spanned<RawAcmeChallenge>>,
    /// Renew a certificate this long before it expires.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::ACME_RENEW_BEFORE))
    )]
    pub renew_before: Option<Spanned<RawDuration>>,
}

/// `track_override = { … }`: who may pin a request to a track. At least one key.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "TrackOverride")]
pub(crate) struct RawTrackOverride {
    /// A secret of at least 16 bytes that a request must present with
    /// `X-Cutover-Track` (see docs/proxy.md). Write `${VAR}` to keep it out of the file.
    #[schemars(with = "Option<String>")]
    pub secret: Option<Spanned<String>>,
    /// Peers (CIDRs or single IPs) whose `X-Cutover-Track` is honoured without the secret.
    #[schemars(with = "Option<Vec<String>>")]
    pub trusted_sources: Option<Spanned<Vec<Spanned<String>>>>,
}

/// `[environment.NAME.limits]`: what one client may hold of the proxy.
#[derive(Debug, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Limits")]
pub(crate) struct RawLimits {
    /// How long a new connection may take to send its first request head
    /// (HTTP/2 preface included), from accept.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::FIRST_REQUEST_TIMEOUT))
    )]
    pub first_request_timeout: Option<Spanned<RawDuration>>,
    /// Open client connections at most; more wait in the listen backlog.
    #[schemars(
        with = "Option<RawCount>",
        extend("default" = defaults::MAX_CONNECTIONS, "maximum" = limits::MAX_CONNECTIONS)
    )]
    pub max_connections: Option<Spanned<RawCount>>,
    /// Concurrent streams per HTTP/2 connection.
    #[schemars(
        with = "Option<RawCount>",
        extend("default" = defaults::H2_MAX_CONCURRENT_STREAMS, "maximum" = limits::MAX_H2_STREAMS)
    )]
    pub h2_max_concurrent_streams: Option<Spanned<RawCount>>,
    /// An HTTP/2 connection without an open stream is closed after this.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::H2_IDLE_TIMEOUT))
    )]
    pub h2_idle_timeout: Option<Spanned<RawDuration>>,
    /// An upgraded connection (WebSocket) with no bytes either way is closed after this.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::UPGRADE_IDLE_TIMEOUT))
    )]
    pub upgrade_idle_timeout: Option<Spanned<RawDuration>>,
    /// An HTTP/1.1 keep-alive connection waiting for its next request is closed after this.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::IDLE_TIMEOUT))
    )]
    pub idle_timeout: Option<Spanned<RawDuration>>,
    /// The largest request body of every service that sets none: bytes, or a
    /// number with `k`, `m` or `g`; larger gets 413.
    #[schemars(
        with = "Option<RawSize>",
        extend("default" = defaults::size_text(defaults::MAX_REQUEST_BODY))
    )]
    pub max_request_body: Option<Spanned<RawSize>>,
}

/// `[database.NAME]`: one of the application's databases and its migrations.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Database")]
pub(crate) struct RawDatabase {
    /// `sqlite://PATH` (relative to this file's directory) or `postgres://…`. `${VAR}` is expanded.
    #[schemars(with = "String")]
    pub url: Option<Spanned<String>>,

    /// The migrations folder, relative to this file's directory.
    #[schemars(with = "Option<String>", extend("default" = defaults::MIGRATIONS_DIR))]
    pub migrations: Option<Spanned<String>>,

    /// PostgreSQL `lock_timeout` of every migration statement (SQLite: how long to
    /// wait for the database's write lock). A statement that hits it is retried.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::MIGRATE_LOCK_TIMEOUT))
    )]
    pub lock_timeout: Option<Spanned<RawDuration>>,

    /// PostgreSQL `statement_timeout` of every migration statement.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::MIGRATE_STATEMENT_TIMEOUT))
    )]
    pub statement_timeout: Option<Spanned<RawDuration>>,

    /// How long a second migrator waits for the migrator lock before giving up.
    #[schemars(
        with = "Option<RawDuration>",
        extend("default" = duration_text(defaults::MIGRATE_LOCK_WAIT))
    )]
    pub lock_wait: Option<Spanned<RawDuration>>,

    /// How many times a statement that hit `lock_timeout` is retried, with backoff.
    #[schemars(
        with = "Option<u32>",
        extend("default" = defaults::MIGRATE_RETRIES, "minimum" = 0, "maximum" = defaults::MAX_MIGRATE_RETRIES)
    )]
    pub retries: Option<Spanned<RawCount>>,

    /// Encrypted backups of this database (`cutover backup`), and whether one
    /// is taken before every deploy.
    #[schemars(with = "Option<RawBackup>")]
    pub backup: Option<Spanned<RawBackup>>,

    /// Several environments really use this one database (same `url`): allow
    /// it. Without it, two environments whose `url` is the same are an error,
    /// because a deploy to one would migrate the other's database.
    #[schemars(with = "Option<bool>", extend("default" = false))]
    pub shared: Option<Spanned<bool>>,

    /// Migration lint rules moved between levels: `deny` blocks a deploy,
    /// `warn` is printed only, `off` is not checked. Unlisted rules keep
    /// their level: style advice (prefer-bigint-over-int, prefer-identity,
    /// prefer-text-field, …) warns, every other rule denies.
    #[schemars(with = "Option<RawLint>")]
    pub lint: Option<Spanned<RawLint>>,
}

/// `[database.NAME] lint = { deny = [...], warn = [...], off = [...] }`.
#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Lint")]
pub(crate) struct RawLint {
    /// Rules that block a deploy (and make `cutover migrate lint` fail).
    #[schemars(with = "Option<Vec<String>>")]
    pub deny: Option<Vec<Spanned<String>>>,
    /// Rules that are printed as warnings and never block.
    #[schemars(with = "Option<Vec<String>>")]
    pub warn: Option<Vec<Spanned<String>>>,
    /// Rules that are not checked.
    #[schemars(with = "Option<Vec<String>>")]
    pub off: Option<Vec<Spanned<String>>>,
}

/// `[database.NAME] backup = { … }`: zstd-compressed, age-encrypted backups.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
#[schemars(rename = "Backup")]
pub(crate) struct RawBackup {
    /// Take a backup before every deploy; a failed backup aborts the deploy.
    #[schemars(extend("default" = false))]
    pub before_deploy: Option<bool>,
    /// Where backups and their manifests go, relative to this file's directory.
    #[schemars(with = "Option<String>", extend("default" = defaults::BACKUP_DIR))]
    pub dir: Option<Spanned<String>>,
    /// age recipients (`age1…`, or `ssh-ed25519 …` / `ssh-rsa …` public keys).
    #[schemars(with = "Option<Vec<String>>")]
    pub recipients: Option<Vec<Spanned<String>>>,
    /// A file of recipients, one a line (`#` comments), relative to this file's directory.
    #[schemars(with = "Option<String>")]
    pub recipients_file: Option<Spanned<String>>,
    /// Keep at least the newest N backups.
    #[schemars(with = "Option<u32>", extend("default" = defaults::BACKUP_KEEP_LAST, "minimum" = 1, "maximum" = limits::MAX_KEEP_LAST))]
    pub keep_last: Option<Spanned<RawCount>>,
    /// Also keep every backup younger than this.
    #[schemars(with = "Option<RawDuration>")]
    pub keep_within: Option<Spanned<RawDuration>>,
    /// Verify each new backup right away (needs an identity: `CUTOVER_BACKUP_IDENTITY`).
    #[schemars(extend("default" = false))]
    pub verify: Option<bool>,
    /// Compression: only "zstd".
    #[schemars(with = "Option<String>", extend("default" = "zstd", "enum" = ["zstd"]))]
    pub compress: Option<Spanned<String>>,
    /// Public keys (`ed25519:…`, from `cutover backup keygen --signing`) whose
    /// signatures `verify` and `restore` accept; a backup signed by no key
    /// listed here is refused unless `--allow-unsigned`.
    #[schemars(with = "Option<Vec<String>>")]
    pub signers: Option<Vec<Spanned<String>>>,
}

/// What service, environment and app names may look like.
pub(crate) const NAME_PATTERN: &str = "^[A-Za-z0-9][A-Za-z0-9_-]*$";

fn name_schema() -> serde_json::Value {
    serde_json::json!({ "pattern": NAME_PATTERN, "maxLength": limits::MAX_NAME_LEN })
}

fn service_name_schema() -> serde_json::Value {
    serde_json::json!({ "type": "string", "pattern": NAME_PATTERN, "maxLength": limits::MAX_NAME_LEN })
}

fn step_schema() -> serde_json::Value {
    serde_json::json!({ "type": "integer", "minimum": 1, "maximum": 100 })
}
