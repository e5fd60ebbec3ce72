//! Values the file writes as plain TOML scalars but that mean more:
//! durations, socket addresses, service kinds, driver kinds, rollout
//! strategies and policies, counts and numbers.
//!
//! Each is read as-is (so a wrong TOML type is reported with what was
//! expected, e.g. `expected a duration such as "30s"`), parsed afterwards by
//! the resolver (so a bad value gets its own message, span and help), and
//! describes itself in the JSON Schema.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::de::{self, Deserialize, Deserializer, Visitor};

use super::model::{
    AcmeChallenge, ApprovalAt, DriverKind, InconclusivePolicy, LogFormat, RestartPolicy,
    ServiceKind, Strategy, SwitchMode,
};
use super::suggest;

/// What a duration looks like, for help lines.
pub(crate) const DURATION_EXPECTED: &str =
    r#"a duration such as "500ms", "30s" or "10m" (units: ms, s, m, h, d)"#;
/// What a socket address looks like, for help lines.
pub(crate) const ADDRESS_EXPECTED: &str =
    r#"an IP address and port such as "127.0.0.1:8080" or "[::1]:8080""#;

/// Defines a newtype over the text of a string value with its own
/// `expecting` message and JSON Schema.
macro_rules! text_value {
    ($(#[$doc:meta])* $name:ident, $expecting:expr, $schema:expr) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq)]
        pub(crate) struct $name(pub String);

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
                struct TextVisitor;
                impl Visitor<'_> for TextVisitor {
                    type Value = $name;
                    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                        f.write_str($expecting)
                    }
                    fn visit_str<E: de::Error>(self, value: &str) -> Result<$name, E> {
                        Ok($name(value.to_owned()))
                    }
                }
                deserializer.deserialize_str(TextVisitor)
            }
        }

        impl JsonSchema for $name {
            fn schema_name() -> std::borrow::Cow<'static, str> {
                stringify!($name).trim_start_matches("Raw").into()
            }
            fn json_schema(_: &mut SchemaGenerator) -> Schema {
                $schema
            }
        }
    };
}

text_value!(
    /// A duration as written: "500ms", "30s", "10m", "1h 30m".
    RawDuration,
    DURATION_EXPECTED,
    json_schema!({
        "type": "string",
        "description": "A duration: a number and a unit (ms, s, m, h, d), e.g. \"500ms\", \"30s\", \"10m\", \"1h 30m\".",
        "examples": ["500ms", "30s", "10m"]
    })
);

text_value!(
    /// An IP address and port as written: "127.0.0.1:8080", "[::1]:8080".
    RawAddress,
    ADDRESS_EXPECTED,
    json_schema!({
        "type": "string",
        "description": "An IP address and port, e.g. \"127.0.0.1:8080\", \"0.0.0.0:80\" or \"[::1]:8080\". Host names are not resolved.",
        "examples": ["127.0.0.1:8080"]
    })
);

text_value!(
    /// `kind` as written.
    RawServiceKind,
    r#""http" or "worker""#,
    json_schema!({
        "type": "string",
        "enum": ["http", "worker"],
        "description": "`http` receives traffic through cutover's proxy; `worker` receives none."
    })
);

text_value!(
    /// `driver` as written.
    RawDriverKind,
    r#""process", "docker", "swarm" or "kubernetes""#,
    json_schema!({
        "type": "string",
        "enum": ["process", "docker", "swarm", "kubernetes"],
        "description": "What runs the instances: `process` (local processes), `docker` (containers) or `swarm` (a Docker Swarm service per release). `kubernetes` is not supported yet."
    })
);

text_value!(
    /// `rollout.strategy` as written.
    RawStrategy,
    r#""blue-green" or "canary""#,
    json_schema!({
        "type": "string",
        "enum": ["blue-green", "canary"],
        "description": "`blue-green` moves all traffic at once; `canary` moves it in steps, judging each."
    })
);

text_value!(
    /// `rollout.on_inconclusive` as written.
    RawInconclusivePolicy,
    r#""fail" or "pause""#,
    json_schema!({
        "type": "string",
        "enum": ["fail", "pause"],
        "description": "What happens to a step that still has too few requests after `max_inconclusive` extensions."
    })
);

text_value!(
    /// `[server] log_format` as written.
    RawLogFormat,
    r#""text" or "json""#,
    json_schema!({
        "type": "string",
        "enum": ["text", "json"],
        "description": "How `cutover serve` writes its log on stderr: `text` for people, `json` for log shippers (one JSON object per line)."
    })
);

text_value!(
    /// `rollout.switch` as written.
    RawSwitch,
    r#""auto" or "manual""#,
    json_schema!({
        "type": "string",
        "enum": ["auto", "manual"],
        "description": "`auto` moves traffic once the new release is healthy; `manual` holds before any traffic moves until `cutover switch`."
    })
);

text_value!(
    /// `tls.acme.challenge` as written.
    RawAcmeChallenge,
    r#""http-01" or "tls-alpn-01""#,
    json_schema!({
        "type": "string",
        "enum": ["http-01", "tls-alpn-01"],
        "description": "How the ACME CA checks the names: `http-01` (answered on `redirect_listen`) or `tls-alpn-01` (answered on `listen`)."
    })
);

text_value!(
    /// `rollout.on_daemon_restart` as written.
    RawRestartPolicy,
    r#""rollback" or "resume""#,
    json_schema!({
        "type": "string",
        "enum": ["rollback", "resume"],
        "description": "What a restarted daemon does with a canary rollout it finds half-done."
    })
);

text_value!(
    /// `approvals.at` as written.
    RawApprovalAt,
    r#""start" or "switch""#,
    json_schema!({
        "type": "string",
        "enum": ["start", "switch"],
        "description": "Where a deployment waits for its approvals: `start` (before anything changes) or `switch` (the new release started and healthy, before traffic moves)."
    })
);

impl RawApprovalAt {
    /// Where the gate sits, or the help line for an unknown value.
    pub(crate) fn parse(&self) -> Result<ApprovalAt, String> {
        const ALL: [ApprovalAt; 2] = [ApprovalAt::Start, ApprovalAt::Switch];
        ALL.into_iter()
            .find(|at| at.as_str() == self.0)
            .ok_or_else(|| expected(&self.0, ALL.map(ApprovalAt::as_str)))
    }
}

impl RawDuration {
    /// The duration, or a short reason the text is not one.
    pub(crate) fn parse(&self) -> Result<Duration, String> {
        use humantime::DurationError as E;
        humantime::parse_duration(self.0.trim()).map_err(|err| match err {
            E::UnknownUnit { unit, value, .. } if unit.is_empty() => {
                format!("no unit: {value}s or {value}ms?")
            }
            E::UnknownUnit { unit, .. } => format!("unknown unit `{unit}`"),
            E::InvalidCharacter(_) => "invalid character".to_owned(),
            E::NumberExpected(_) => "expected a number".to_owned(),
            E::NumberOverflow => "too large or too precise".to_owned(),
            E::Empty => "empty".to_owned(),
        })
    }
}

impl RawAddress {
    /// The address, or a short reason it is not one.
    pub(crate) fn parse(&self) -> Result<SocketAddr, String> {
        let text = self.0.trim();
        text.parse().map_err(|_| {
            let reason = match text.rsplit_once(':') {
                _ if text.is_empty() => "empty",
                _ if text.ends_with(']') => "no port",
                None => "no port",
                Some((host, _)) if host.contains(':') && !host.starts_with('[') => {
                    "an IPv6 address needs brackets, as in [::1]:8080"
                }
                Some((host, _)) if host.trim_matches(['[', ']']).parse::<IpAddr>().is_ok() => {
                    "not a valid port"
                }
                Some(_) => "not an IP address (host names are not resolved)",
            };
            reason.to_owned()
        })
    }
}

impl RawServiceKind {
    /// The kind, or the help line for an unknown one.
    pub(crate) fn parse(&self) -> Result<ServiceKind, String> {
        const ALL: [ServiceKind; 2] = [ServiceKind::Http, ServiceKind::Worker];
        ALL.into_iter()
            .find(|kind| kind.as_str() == self.0)
            .ok_or_else(|| expected(&self.0, ALL.map(ServiceKind::as_str)))
    }
}

impl RawDriverKind {
    /// The driver, or the help line for an unknown one.
    pub(crate) fn parse(&self) -> Result<DriverKind, String> {
        const ALL: [DriverKind; 4] = [
            DriverKind::Process,
            DriverKind::Docker,
            DriverKind::Swarm,
            DriverKind::Kubernetes,
        ];
        ALL.into_iter()
            .find(|driver| driver.as_str() == self.0)
            .ok_or_else(|| expected(&self.0, ALL.map(DriverKind::as_str)))
    }
}

impl RawStrategy {
    /// The strategy, or the help line for an unknown one.
    pub(crate) fn parse(&self) -> Result<Strategy, String> {
        const ALL: [Strategy; 2] = [Strategy::BlueGreen, Strategy::Canary];
        ALL.into_iter()
            .find(|strategy| strategy.as_str() == self.0)
            .ok_or_else(|| expected(&self.0, ALL.map(Strategy::as_str)))
    }
}

impl RawInconclusivePolicy {
    /// The policy, or the help line for an unknown one.
    pub(crate) fn parse(&self) -> Result<InconclusivePolicy, String> {
        const ALL: [InconclusivePolicy; 2] = [InconclusivePolicy::Fail, InconclusivePolicy::Pause];
        ALL.into_iter()
            .find(|policy| policy.as_str() == self.0)
            .ok_or_else(|| expected(&self.0, ALL.map(InconclusivePolicy::as_str)))
    }
}

impl RawLogFormat {
    /// The format, or the help line for an unknown one.
    pub(crate) fn parse(&self) -> Result<LogFormat, String> {
        const ALL: [LogFormat; 2] = [LogFormat::Text, LogFormat::Json];
        ALL.into_iter()
            .find(|format| format.as_str() == self.0)
            .ok_or_else(|| expected(&self.0, ALL.map(LogFormat::as_str)))
    }
}

impl RawSwitch {
    /// The mode, or the help line for an unknown one.
    pub(crate) fn parse(&self) -> Result<SwitchMode, String> {
        const ALL: [SwitchMode; 2] = [SwitchMode::Auto, SwitchMode::Manual];
        ALL.into_iter()
            .find(|mode| mode.as_str() == self.0)
            .ok_or_else(|| expected(&self.0, ALL.map(SwitchMode::as_str)))
    }
}

impl RawRestartPolicy {
    /// The policy, or the help line for an unknown one.
    pub(crate) fn parse(&self) -> Result<RestartPolicy, String> {
        const ALL: [RestartPolicy; 2] = [RestartPolicy::Rollback, RestartPolicy::Resume];
        ALL.into_iter()
            .find(|policy| policy.as_str() == self.0)
            .ok_or_else(|| expected(&self.0, ALL.map(RestartPolicy::as_str)))
    }
}

impl RawAcmeChallenge {
    /// The challenge type, or the help line for an unknown one.
    pub(crate) fn parse(&self) -> Result<AcmeChallenge, String> {
        const ALL: [AcmeChallenge; 2] = [AcmeChallenge::Http01, AcmeChallenge::TlsAlpn01];
        ALL.into_iter()
            .find(|challenge| challenge.as_str() == self.0)
            .ok_or_else(|| expected(&self.0, ALL.map(AcmeChallenge::as_str)))
    }
}

/// `expected "a", "b" or "c"`, with a suggestion when one is close.
fn expected<const N: usize>(word: &str, names: [&str; N]) -> String {
    let quoted: Vec<String> = names.iter().map(|name| format!("\"{name}\"")).collect();
    let list = match quoted.split_last() {
        Some((last, rest)) if !rest.is_empty() => format!("{} or {last}", rest.join(", ")),
        _ => quoted.join(""),
    };
    match suggest::closest(word, names) {
        Some(close) => format!("expected {list}; did you mean \"{close}\"?"),
        None => format!("expected {list}"),
    }
}

/// A whole number as written (TOML integers are 64-bit signed).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct RawCount(pub i64);

impl<'de> Deserialize<'de> for RawCount {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct CountVisitor;
        impl Visitor<'_> for CountVisitor {
            type Value = RawCount;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a whole number such as 2")
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawCount, E> {
                Ok(RawCount(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawCount, E> {
                Ok(RawCount(i64::try_from(value).unwrap_or(i64::MAX)))
            }
        }
        deserializer.deserialize_i64(CountVisitor)
    }
}

impl JsonSchema for RawCount {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Count".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({ "type": "integer", "minimum": 1 })
    }
}

/// A number as written: an integer or a float (`0.01`, `1`, `1.5`).
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) struct RawNumber(pub f64);

impl<'de> Deserialize<'de> for RawNumber {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NumberVisitor;
        impl Visitor<'_> for NumberVisitor {
            type Value = RawNumber;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number such as 0.01 or 1.5")
            }
            fn visit_f64<E: de::Error>(self, value: f64) -> Result<RawNumber, E> {
                Ok(RawNumber(value))
            }
            // Precision is lost only beyond 2^53, far outside every range checked.
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawNumber, E> {
                Ok(RawNumber(value as f64))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawNumber, E> {
                Ok(RawNumber(value as f64))
            }
        }
        deserializer.deserialize_f64(NumberVisitor)
    }
}

/// A size as written: a number of bytes (`1048576`) or text with a unit
/// (`"10m"`, `"1g"`), as `resources.memory`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum RawSize {
    /// Written as a TOML integer: bytes.
    Bytes(i64),
    /// Written as a string: a number and an optional unit.
    Text(String),
}

impl RawSize {
    /// The size in bytes (at least 1), or a short reason it is not one.
    pub(crate) fn parse(&self) -> Result<u64, String> {
        let bytes = match self {
            RawSize::Bytes(bytes) => *bytes,
            RawSize::Text(text) => super::container::parse_memory(text)?,
        };
        u64::try_from(bytes)
            .ok()
            .filter(|bytes| *bytes > 0)
            .ok_or_else(|| "must be at least 1 byte".to_owned())
    }

    /// The value as written, for messages.
    pub(crate) fn text(&self) -> String {
        match self {
            RawSize::Bytes(bytes) => bytes.to_string(),
            RawSize::Text(text) => format!("\"{text}\""),
        }
    }
}

impl<'de> Deserialize<'de> for RawSize {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct SizeVisitor;
        impl Visitor<'_> for SizeVisitor {
            type Value = RawSize;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(SIZE_EXPECTED)
            }
            fn visit_str<E: de::Error>(self, value: &str) -> Result<RawSize, E> {
                Ok(RawSize::Text(value.to_owned()))
            }
            fn visit_i64<E: de::Error>(self, value: i64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(value))
            }
            fn visit_u64<E: de::Error>(self, value: u64) -> Result<RawSize, E> {
                Ok(RawSize::Bytes(i64::try_from(value).unwrap_or(i64::MAX)))
            }
        }
        deserializer.deserialize_any(SizeVisitor)
    }
}

impl JsonSchema for RawSize {
    fn schema_name() -> std::borrow::Cow<'static, str> {
        "Size".into()
    }
    fn json_schema(_: &mut SchemaGenerator) -> Schema {
        json_schema!({
            "type": ["string", "integer"],
            "description": "A size: bytes, or a number with k, m or g (binary units), e.g. \"10m\" or \"1g\".",
            "examples": ["10m", "100m", "1g"]
        })
    }
}

/// What a size looks like, for help lines.
pub(crate) const SIZE_EXPECTED: &str =
    r#"a size such as "10m" or "1g" (bytes, or a number with k, m or g)"#;
