//! Dependencies from manifests (package.json, requirements*.txt,
//! pyproject.toml, Pipfile, go.mod, Cargo.toml, Gemfile, pom.xml,
//! build.gradle, *.csproj), each with its line, looked up in a table of
//! libraries that say something about operations: web frameworks, metrics,
//! JSON logging, tracing, error tracking, servers that drain on SIGTERM.

use std::sync::LazyLock;

use regex::Regex;

use crate::repo::RepoFile;

/// What a library tells.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Cat {
    /// A web framework of this language.
    Web(Lang),
    Metrics,
    StructuredLogs,
    Tracing,
    ErrorTracking,
    /// A server or library that drains on SIGTERM by itself.
    Graceful,
    /// Spring Boot actuator: `/actuator/health`.
    Actuator,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Lang {
    Node,
    Python,
    Go,
    Ruby,
    Java,
    Rust,
    Dotnet,
}

/// (name, category); a name ending in `/` or `-` is a prefix.
const TABLE: &[(&str, Cat)] = &[
    ("express", Cat::Web(Lang::Node)),
    ("koa", Cat::Web(Lang::Node)),
    ("fastify", Cat::Web(Lang::Node)),
    ("@hapi/hapi", Cat::Web(Lang::Node)),
    ("@nestjs/core", Cat::Web(Lang::Node)),
    ("hono", Cat::Web(Lang::Node)),
    ("restify", Cat::Web(Lang::Node)),
    ("fastapi", Cat::Web(Lang::Python)),
    ("flask", Cat::Web(Lang::Python)),
    ("django", Cat::Web(Lang::Python)),
    ("starlette", Cat::Web(Lang::Python)),
    ("aiohttp", Cat::Web(Lang::Python)),
    ("sanic", Cat::Web(Lang::Python)),
    ("tornado", Cat::Web(Lang::Python)),
    ("falcon", Cat::Web(Lang::Python)),
    ("quart", Cat::Web(Lang::Python)),
    ("litestar", Cat::Web(Lang::Python)),
    ("github.com/gin-gonic/gin", Cat::Web(Lang::Go)),
    ("github.com/labstack/echo/", Cat::Web(Lang::Go)),
    ("github.com/go-chi/chi/", Cat::Web(Lang::Go)),
    ("github.com/go-chi/chi", Cat::Web(Lang::Go)),
    ("github.com/gorilla/mux", Cat::Web(Lang::Go)),
    ("github.com/gofiber/fiber/", Cat::Web(Lang::Go)),
    ("rails", Cat::Web(Lang::Ruby)),
    ("sinatra", Cat::Web(Lang::Ruby)),
    ("spring-boot-starter-web", Cat::Web(Lang::Java)),
    ("spring-boot-starter-webflux", Cat::Web(Lang::Java)),
    ("axum", Cat::Web(Lang::Rust)),
    ("actix-web", Cat::Web(Lang::Rust)),
    ("rocket", Cat::Web(Lang::Rust)),
    ("warp", Cat::Web(Lang::Rust)),
    ("poem", Cat::Web(Lang::Rust)),
    ("microsoft.net.sdk.web", Cat::Web(Lang::Dotnet)),
    ("spring-boot-starter-actuator", Cat::Actuator),
    ("prom-client", Cat::Metrics),
    ("express-prom-bundle", Cat::Metrics),
    ("hot-shots", Cat::Metrics),
    ("prometheus-client", Cat::Metrics),
    ("prometheus-fastapi-instrumentator", Cat::Metrics),
    ("starlette-exporter", Cat::Metrics),
    ("django-prometheus", Cat::Metrics),
    ("prometheus-flask-exporter", Cat::Metrics),
    ("statsd", Cat::Metrics),
    ("github.com/prometheus/client_golang", Cat::Metrics),
    ("micrometer-registry-prometheus", Cat::Metrics),
    ("prometheus", Cat::Metrics),
    ("metrics-exporter-prometheus", Cat::Metrics),
    ("yabeda-", Cat::Metrics),
    ("prometheus_exporter", Cat::Metrics),
    ("prometheus-net", Cat::Metrics),
    ("pino", Cat::StructuredLogs),
    ("pino-http", Cat::StructuredLogs),
    ("bunyan", Cat::StructuredLogs),
    ("structlog", Cat::StructuredLogs),
    ("python-json-logger", Cat::StructuredLogs),
    ("json-log-formatter", Cat::StructuredLogs),
    ("go.uber.org/zap", Cat::StructuredLogs),
    ("github.com/rs/zerolog", Cat::StructuredLogs),
    ("logstash-logback-encoder", Cat::StructuredLogs),
    ("lograge", Cat::StructuredLogs),
    ("semantic_logger", Cat::StructuredLogs),
    ("serilog", Cat::StructuredLogs),
    ("serilog.", Cat::StructuredLogs),
    ("@opentelemetry/", Cat::Tracing),
    ("opentelemetry", Cat::Tracing),
    ("opentelemetry-", Cat::Tracing),
    ("opentelemetry_", Cat::Tracing),
    ("go.opentelemetry.io/", Cat::Tracing),
    ("tracing-opentelemetry", Cat::Tracing),
    ("dd-trace", Cat::Tracing),
    ("ddtrace", Cat::Tracing),
    ("jaeger-client", Cat::Tracing),
    ("zipkin", Cat::Tracing),
    ("elastic-apm-node", Cat::Tracing),
    ("elastic-apm", Cat::Tracing),
    ("newrelic", Cat::Tracing),
    ("@sentry/", Cat::ErrorTracking),
    ("sentry-sdk", Cat::ErrorTracking),
    ("sentry", Cat::ErrorTracking),
    ("sentry-", Cat::ErrorTracking),
    ("github.com/getsentry/sentry-go", Cat::ErrorTracking),
    ("raven", Cat::ErrorTracking),
    ("rollbar", Cat::ErrorTracking),
    ("bugsnag", Cat::ErrorTracking),
    ("@bugsnag/", Cat::ErrorTracking),
    ("honeybadger", Cat::ErrorTracking),
    ("@honeybadger-io/", Cat::ErrorTracking),
    ("airbrake", Cat::ErrorTracking),
    ("uvicorn", Cat::Graceful),
    ("gunicorn", Cat::Graceful),
    ("hypercorn", Cat::Graceful),
    ("daphne", Cat::Graceful),
    ("puma", Cat::Graceful),
    ("@godaddy/terminus", Cat::Graceful),
    ("http-terminator", Cat::Graceful),
    ("stoppable", Cat::Graceful),
    ("lightship", Cat::Graceful),
    ("close-with-grace", Cat::Graceful),
];

/// One dependency of interest.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dep {
    pub name: String,
    pub cat: Cat,
    /// 1-based.
    pub line: usize,
}

/// Whether `file` is a dependency manifest.
pub fn is_manifest(file: &RepoFile) -> bool {
    let n = file.name.as_str();
    matches!(
        n,
        "package.json"
            | "pyproject.toml"
            | "Pipfile"
            | "go.mod"
            | "Cargo.toml"
            | "Gemfile"
            | "pom.xml"
            | "build.gradle"
            | "build.gradle.kts"
    ) || (n.starts_with("requirements") && n.ends_with(".txt"))
        || n.ends_with(".csproj")
}

static NPM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^\s*"([@\w./-]+)"\s*:"#).expect("regex"));
static PY: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^\s*["']?([A-Za-z0-9][A-Za-z0-9_.-]*)"#).expect("regex"));
static GO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:require\s+)?([\w.-]+\.[\w.-]+/[\w./-]+)\s").expect("regex")
});
static CARGO: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"^\s*(?:\[(?:[\w.-]*dependencies)\.)?([A-Za-z0-9_-]+)\]?\s*(?:=|$)").expect("regex")
});
static GEM: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"^\s*gem\s+['"]([\w-]+)['"]"#).expect("regex"));
static JAVA: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r#"<artifactId>([\w.-]+)</artifactId>|['"][\w.-]+:([\w.-]+)(?::[^'"]*)?['"]"#)
        .expect("regex")
});
static CSPROJ: LazyLock<Regex> =
    LazyLock::new(|| Regex::new(r#"(?:Include|Sdk)="([\w.]+)""#).expect("regex"));

/// The dependency names a manifest line declares.
fn names(manifest: &str, line: &str) -> Vec<String> {
    let one = |re: &Regex| -> Vec<String> {
        re.captures(line)
            .and_then(|c| {
                c.iter()
                    .skip(1)
                    .flatten()
                    .next()
                    .map(|m| m.as_str().to_string())
            })
            .into_iter()
            .collect()
    };
    match manifest {
        "package.json" => one(&NPM),
        "go.mod" => one(&GO),
        "Cargo.toml" => one(&CARGO),
        "Gemfile" => one(&GEM),
        "pom.xml" | "build.gradle" | "build.gradle.kts" => JAVA
            .captures_iter(line)
            .filter_map(|c| {
                c.iter()
                    .skip(1)
                    .flatten()
                    .next()
                    .map(|m| m.as_str().to_string())
            })
            .collect(),
        m if m.ends_with(".csproj") => CSPROJ
            .captures_iter(line)
            .filter_map(|c| c.get(1).map(|m| m.as_str().to_string()))
            .collect(),
        _ => {
            let t = line.trim_start();
            if t.starts_with('#') || t.starts_with('[') {
                return Vec::new();
            }
            one(&PY)
        }
    }
}

fn lookup(name: &str) -> Vec<Cat> {
    let lower = name.to_ascii_lowercase().replace('_', "-");
    let lower_raw = name.to_ascii_lowercase();
    TABLE
        .iter()
        .filter(|(n, _)| {
            if n.ends_with('/') || (n.ends_with('-') || n.ends_with('_') || n.ends_with('.')) {
                lower.starts_with(n) || lower_raw.starts_with(n)
            } else {
                lower == *n || lower_raw == *n
            }
        })
        .map(|(_, c)| *c)
        .collect()
}

/// The dependencies of interest in one manifest.
pub fn read(file: &RepoFile, text: &str) -> Vec<Dep> {
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        for name in names(&file.name, line) {
            for cat in lookup(&name) {
                // tracing-subscriber only counts with its JSON formatter.
                out.push(Dep {
                    name: name.clone(),
                    cat,
                    line: i + 1,
                });
            }
            if name == "tracing-subscriber" && line.contains("json") {
                out.push(Dep {
                    name: name.clone(),
                    cat: Cat::StructuredLogs,
                    line: i + 1,
                });
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_per_manifest() {
        assert_eq!(
            names("package.json", r#"    "@sentry/node": "^7","#),
            ["@sentry/node"]
        );
        assert_eq!(
            names("requirements.txt", "fastapi[all]==0.110"),
            ["fastapi"]
        );
        assert_eq!(
            names("pyproject.toml", r#"  "uvicorn>=0.29","#),
            ["uvicorn"]
        );
        assert_eq!(
            names("go.mod", "\tgithub.com/prometheus/client_golang v1.19.0"),
            ["github.com/prometheus/client_golang"]
        );
        assert_eq!(names("Cargo.toml", r#"axum = "0.7""#), ["axum"]);
        assert_eq!(names("Gemfile", r#"gem "rails", "~> 7.1""#), ["rails"]);
        assert_eq!(
            names(
                "pom.xml",
                "<artifactId>spring-boot-starter-actuator</artifactId>"
            ),
            ["spring-boot-starter-actuator"]
        );
        assert_eq!(names("requirements.txt", "# flask"), Vec::<String>::new());
    }

    #[test]
    fn lookups_use_prefixes_and_normalise_underscores() {
        assert_eq!(lookup("prometheus_client"), [Cat::Metrics]);
        assert_eq!(lookup("@opentelemetry/api"), [Cat::Tracing]);
        assert_eq!(lookup("github.com/labstack/echo/v4"), [Cat::Web(Lang::Go)]);
        assert!(lookup("expressive").is_empty());
    }
}
