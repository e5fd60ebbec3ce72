//! Compose file rules: health checks, restart policies, resource limits,
//! database ports published on every interface, plaintext secrets in
//! `environment`, `latest`/untagged images; and the facts compose files
//! show (health-gated `depends_on`, Swarm `update_config`). Files:
//! `docker-compose.yml`, `compose.yaml`, `docker-compose.*.yml`,
//! `compose.*.yaml`. Files whose name says they are for development
//! (`.dev.`, `.development.`, `.override.`, `.local.`) get the security and
//! image rules only: nobody needs restart policies on a laptop. Files that
//! run tests (`.test.`, `.ci.`, `.e2e.`, or in a test folder) are skipped. A service
//! that merges settings from a YAML anchor (`<<: *defaults`) or `extends:`
//! is not reported for what it lacks, since what it merges is not read.

use super::dockerfile::{in_test_folder, parse as dockerfile};
use super::env_secrets::{is_literal_secret, is_secret_name, redacted, url_password};
use super::image::{ImageRef, Pin};
use super::{Context, RuleInfo};
use crate::finding::{Area, Evidence, Severity};
use crate::repo::RepoFile;
use crate::yaml::{self, Node, Value};

pub const NO_HEALTHCHECK: RuleInfo = RuleInfo {
    id: "compose/no-healthcheck",
    area: Area::Containerization,
    severity: Severity::Medium,
    title: "Compose service without a health check",
    why: "Without a health check a service counts as up as soon as its process starts: dependants start against a database that is still recovering, and nothing notices an app that hangs.",
    fix: "Add a `healthcheck:` to the service, e.g. `test: [\"CMD-SHELL\", \"pg_isready -U $$POSTGRES_USER\"]` for PostgreSQL, `[\"CMD\", \"redis-cli\", \"ping\"]` for Redis, `[\"CMD\", \"wget\", \"-qO-\", \"http://127.0.0.1:3000/health\"]` for an app, with `interval: 10s`, `timeout: 3s`, `retries: 5`.",
    cutover: Some("[service.web]\nhealth = { path = \"/health\" }"),
};

pub const NO_RESTART_POLICY: RuleInfo = RuleInfo {
    id: "compose/no-restart-policy",
    area: Area::Containerization,
    severity: Severity::Medium,
    title: "Compose service without a restart policy",
    why: "The default is `no`: a service that crashes, or a host that reboots, leaves it down until someone notices.",
    fix: "Add `restart: unless-stopped` to the service (Swarm: `deploy.restart_policy.condition: on-failure`).",
    cutover: None,
};

pub const NO_RESOURCE_LIMITS: RuleInfo = RuleInfo {
    id: "compose/no-resource-limits",
    area: Area::Containerization,
    severity: Severity::Low,
    title: "Compose service without resource limits",
    why: "Without a memory limit, one leaking service can push the host into swap or the OOM killer, which may pick the database.",
    fix: "Add `deploy.resources.limits` (`memory: 512M`, `cpus: \"1.0\"`) to the service.",
    cutover: Some("[service.web]\nresources = { memory = \"512m\", cpus = 1.0 }"),
};

pub const PUBLISHED_DATABASE_PORT: RuleInfo = RuleInfo {
    id: "compose/published-database-port",
    area: Area::Security,
    severity: Severity::High,
    title: "Database port published on every interface",
    why: "`\"5432:5432\"` publishes the database on all of the host's addresses, and Docker's iptables rules bypass host firewalls such as ufw: the database is reachable from the network, usually with the password written next to it.",
    fix: "Drop the `ports:` entry (services reach the database by its service name on the compose network), or bind it to loopback: `\"127.0.0.1:5432:5432\"`.",
    cutover: None,
};

pub const PLAINTEXT_SECRET: RuleInfo = RuleInfo {
    id: "compose/plaintext-secret",
    area: Area::Security,
    severity: Severity::Medium,
    title: "Plaintext secret in a compose file",
    why: "A password written in the compose file is in the repository's history for good and is the same on every machine that runs it.",
    fix: "Read it from the environment or an untracked env file: `POSTGRES_PASSWORD: ${POSTGRES_PASSWORD:?set it in .env}` (or compose `secrets:` with `POSTGRES_PASSWORD_FILE`), and rotate the committed value.",
    cutover: Some("[database.main]\nurl = \"${DATABASE_URL}\""),
};

pub const UNPINNED_IMAGE: RuleInfo = RuleInfo {
    id: "compose/unpinned-image",
    area: Area::Containerization,
    severity: Severity::Medium,
    title: "Compose image without a tag or `latest`",
    why: "`latest` changes under you: the next `docker compose pull` may bring a new major version of the database or cache.",
    fix: "Pin the image to a version (`postgres:16.3-alpine`, `redis:7.2.5-alpine`), best with its digest.",
    cutover: None,
};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[
    &NO_HEALTHCHECK,
    &NO_RESTART_POLICY,
    &NO_RESOURCE_LIMITS,
    &PUBLISHED_DATABASE_PORT,
    &PLAINTEXT_SECRET,
    &UNPINNED_IMAGE,
];

/// Database and cache images, by the last part of their name.
const DATABASE_IMAGES: [&str; 14] = [
    "postgres",
    "postgis",
    "mysql",
    "mariadb",
    "redis",
    "valkey",
    "mongo",
    "mongodb",
    "memcached",
    "elasticsearch",
    "opensearch",
    "cassandra",
    "mssql-server",
    "rabbitmq",
];

/// Database and cache ports.
const DATABASE_PORTS: [u16; 10] = [
    5432, 3306, 6379, 27017, 11211, 9200, 9042, 1433, 5672, 26257,
];

/// Whether a file name is a compose file's.
pub fn is_compose_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    let Some(stem) = lower
        .strip_suffix(".yml")
        .or_else(|| lower.strip_suffix(".yaml"))
    else {
        return false;
    };
    stem == "compose"
        || stem == "docker-compose"
        || stem.starts_with("compose.")
        || stem.starts_with("docker-compose.")
}

/// Whether a compose file's name says it is for development.
fn is_dev_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".dev.", ".development.", ".override.", ".local."]
        .iter()
        .any(|w| lower.contains(w))
}

/// Whether a compose file's name says it runs the tests.
fn is_test_file(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [".test.", ".tests.", ".ci.", ".e2e."]
        .iter()
        .any(|w| lower.contains(w))
}

/// Runs the pass.
pub fn run(cx: &mut Context<'_>) {
    let files: Vec<&RepoFile> = cx
        .repo
        .named(is_compose_name)
        .filter(|f| !in_test_folder(f) && !is_test_file(&f.name))
        .collect();
    for file in files {
        let Some(text) = cx.repo.text(file) else {
            continue;
        };
        let Some(doc) = yaml::parse_one(text) else {
            continue;
        };
        let Some((services_key, services)) = doc.entry("services") else {
            continue;
        };
        let dev = is_dev_file(&file.name);
        let path = file.path.as_str();
        cx.fact(
            "container.compose",
            format!("{} service(s)", services.entries().len()),
            Evidence::at(path, text, services_key.line),
        );
        for (key, service) in services.entries() {
            let service_cx = Service {
                file,
                text,
                name: &key.text,
                line: key.line,
                node: service,
            };
            check_service(cx, &service_cx, dev);
        }
    }
}

struct Service<'a> {
    file: &'a RepoFile,
    text: &'a str,
    name: &'a str,
    /// The service's key line.
    line: usize,
    node: &'a Node,
}

impl Service<'_> {
    fn at(&self, line: usize) -> Evidence {
        Evidence::at(&self.file.path, self.text, line)
    }

    fn image(&self) -> Option<&str> {
        self.node.get("image").and_then(Node::str)
    }

    fn is_database(&self) -> bool {
        self.image()
            .and_then(ImageRef::parse)
            .is_some_and(|i| DATABASE_IMAGES.contains(&i.base_name().as_str()))
    }
}

fn check_service(cx: &mut Context<'_>, s: &Service<'_>, dev: bool) {
    let node = s.node;
    // Settings merged in from an anchor (`<<: *defaults`) or another file
    // (`extends:`) are out of sight: nothing is reported missing then.
    let dev = dev || node.get("<<").is_some() || node.get("extends").is_some();
    let one_shot = node
        .get("restart")
        .and_then(Node::str)
        .is_some_and(|r| r == "no" || r == "\"no\"");

    // Health check, in the file or in the Dockerfile it builds.
    let healthcheck_line = node.entry("healthcheck").map(|(k, _)| k.line);
    let healthcheck = node.get("healthcheck");
    let disabled = healthcheck.is_some_and(|h| {
        h.get("disable").and_then(Node::str) == Some("true")
            || h.get("test")
                .map(|t| {
                    t.str() == Some("NONE") || t.items().first().and_then(Node::str) == Some("NONE")
                })
                .unwrap_or(false)
    });
    match healthcheck {
        Some(_) if !disabled => cx.fact(
            "container.healthcheck",
            format!("compose service {} has a healthcheck", s.name),
            s.at(healthcheck_line.unwrap_or(s.line)),
        ),
        _ => {
            if !dev && !one_shot && !disabled && !built_image_has_healthcheck(cx, s) {
                let what = if s.is_database() {
                    "database/cache service"
                } else {
                    "service"
                };
                cx.find(
                    &NO_HEALTHCHECK,
                    s.at(s.line),
                    format!("{what} `{}` in {} has no healthcheck", s.name, s.file.path),
                );
            }
        }
    }

    // Restart policy.
    let restart = node.get("restart").and_then(Node::str).is_some();
    let swarm_restart = node.path(&["deploy", "restart_policy"]).is_some();
    if !dev && !restart && !swarm_restart {
        cx.find(
            &NO_RESTART_POLICY,
            s.at(s.line),
            format!("service `{}` has no `restart:` policy", s.name),
        );
    }

    // Resource limits.
    let limits = node.path(&["deploy", "resources", "limits"]).is_some()
        || node.get("mem_limit").is_some()
        || node.get("cpus").is_some();
    if !dev && !one_shot && !limits {
        cx.find(
            &NO_RESOURCE_LIMITS,
            s.at(s.line),
            format!(
                "service `{}` has no memory or CPU limit (`deploy.resources.limits`)",
                s.name
            ),
        );
    }

    // Images without a tag (an image next to `build:` names the build's output).
    if let (Some(image), None) = (node.get("image"), node.get("build"))
        && let Some(r) = image.str().and_then(ImageRef::parse)
        && r.pin() == Pin::Unpinned
    {
        cx.find(
            &UNPINNED_IMAGE,
            s.at(image.line),
            format!(
                "service `{}` runs `{}`, which has no version tag",
                s.name,
                image.str().unwrap_or_default()
            ),
        );
    }

    check_ports(cx, s);
    check_environment(cx, s);

    // depends_on with condition: service_healthy.
    if let Some(deps) = node.get("depends_on") {
        for (dep, spec) in deps.entries() {
            if let Some(cond) = spec
                .get("condition")
                .filter(|c| c.str() == Some("service_healthy"))
            {
                cx.fact(
                    "deploy.health-gated",
                    format!("{} starts once {} is healthy", s.name, dep.text),
                    s.at(cond.line),
                );
            }
        }
    }

    // Swarm update settings.
    if let Some((update_key, update)) = node.get("deploy").and_then(|d| d.entry("update_config")) {
        cx.fact(
            "deploy.manifests",
            format!("Swarm update_config for {}", s.name),
            s.at(update_key.line),
        );
        if let Some(order) = update
            .get("order")
            .filter(|o| o.str() == Some("start-first"))
        {
            cx.fact(
                "deploy.rolling",
                format!("{} updates start-first", s.name),
                s.at(order.line),
            );
        }
        if let Some(action) = update
            .get("failure_action")
            .filter(|a| a.str() == Some("rollback"))
        {
            cx.fact(
                "deploy.auto-rollback",
                format!("{} rolls back a failed update", s.name),
                s.at(action.line),
            );
        }
    }
}

/// Whether the service builds an image whose Dockerfile declares a `HEALTHCHECK`.
fn built_image_has_healthcheck(cx: &Context<'_>, s: &Service<'_>) -> bool {
    let Some(build) = s.node.get("build") else {
        return false;
    };
    let (context, dockerfile_path, inline) = match &build.value {
        Value::Scalar(context) => (context.as_str(), "Dockerfile", None),
        Value::Map(_) => (
            build.get("context").and_then(Node::str).unwrap_or("."),
            build
                .get("dockerfile")
                .and_then(Node::str)
                .unwrap_or("Dockerfile"),
            build.get("dockerfile_inline").and_then(Node::str),
        ),
        _ => return false,
    };
    let text = match inline {
        Some(t) => Some(t),
        None => join_path(s.file.dir(), context)
            .and_then(|dir| join_path(&dir, dockerfile_path))
            .and_then(|p| cx.repo.text_of(&p)),
    };
    let Some(text) = text else { return false };
    let df = dockerfile::parse(text);
    let target = build
        .get("target")
        .and_then(Node::str)
        .and_then(|t| df.stage_named(t, df.stages.len()))
        .or(df.stages.len().checked_sub(1));
    let mut index = target;
    let mut guard = df.stages.len();
    while let (Some(i), true) = (index, guard > 0) {
        guard -= 1;
        if let Some(hc) = df.stages[i]
            .instructions
            .iter()
            .rev()
            .find(|ins| ins.keyword == "HEALTHCHECK")
        {
            return !hc.args.trim().eq_ignore_ascii_case("none");
        }
        index = df.parent(i);
    }
    false
}

/// `base` joined with a relative `path`, `.` and `..` resolved; `None` when
/// it leaves the repository or is absolute.
fn join_path(base: &str, path: &str) -> Option<String> {
    if path.starts_with('/') || path.contains("://") {
        return None;
    }
    let mut parts: Vec<&str> = base.split('/').filter(|p| !p.is_empty()).collect();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop()?;
            }
            p => parts.push(p),
        }
    }
    Some(parts.join("/"))
}

/// A published port: host address (if any) and container port.
#[derive(Debug, PartialEq)]
struct Published {
    host_ip: Option<String>,
    container: Option<u16>,
}

/// Reads the short syntax: `5432`, `"5432:5432"`, `"127.0.0.1:5432:5432/tcp"`,
/// `"[::1]:5432:5432"`, `"5432-5433:5432-5433"`.
fn parse_short_port(spec: &str) -> Published {
    // `${DB_PORT:-5432}` holds a ':' of its own: stand a placeholder in for it.
    let mut plain = String::with_capacity(spec.len());
    let mut depth = 0usize;
    let mut chars = spec.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '$' && chars.peek() == Some(&'{') {
            chars.next();
            depth += 1;
            if depth == 1 {
                plain.push_str("var");
            }
        } else if c == '}' && depth > 0 {
            depth -= 1;
        } else if depth == 0 {
            plain.push(c);
        }
    }
    let spec = plain.split('/').next().unwrap_or_default().trim();
    let (host_ip, rest) = match spec.strip_prefix('[') {
        Some(v6) => match v6.split_once("]:") {
            Some((ip, rest)) => (Some(ip.to_string()), rest),
            None => (None, spec),
        },
        None => {
            let parts: Vec<&str> = spec.split(':').collect();
            if parts.len() >= 3 {
                (
                    Some(parts[..parts.len() - 2].join(":")),
                    &spec[spec.len() - parts[parts.len() - 2..].join(":").len()..],
                )
            } else {
                (None, spec)
            }
        }
    };
    let container = rest
        .rsplit(':')
        .next()
        .and_then(|c| c.split('-').next())
        .and_then(|c| c.trim().parse().ok());
    Published { host_ip, container }
}

/// Whether a host address is every interface.
fn is_all_interfaces(ip: Option<&str>) -> bool {
    match ip.map(str::trim) {
        None | Some("") | Some("0.0.0.0") | Some("::") => true,
        Some(_) => false,
    }
}

fn check_ports(cx: &mut Context<'_>, s: &Service<'_>) {
    let Some(ports) = s.node.get("ports") else {
        return;
    };
    let database = s.is_database();
    for port in ports.items() {
        let published = match &port.value {
            Value::Scalar(spec) => parse_short_port(spec),
            Value::Map(_) => Published {
                host_ip: port.get("host_ip").and_then(Node::str).map(str::to_string),
                container: port
                    .get("target")
                    .and_then(Node::str)
                    .and_then(|t| t.parse().ok()),
            },
            _ => continue,
        };
        let db_port = published
            .container
            .is_some_and(|p| DATABASE_PORTS.contains(&p));
        if (database || db_port) && is_all_interfaces(published.host_ip.as_deref()) {
            let shown = port
                .str()
                .map(str::to_string)
                .unwrap_or_else(|| format!("target {}", published.container.unwrap_or(0)));
            cx.find(
                &PUBLISHED_DATABASE_PORT,
                s.at(port.line),
                format!(
                    "service `{}` publishes `{shown}` on every interface of the host",
                    s.name
                ),
            );
        }
    }
}

fn check_environment(cx: &mut Context<'_>, s: &Service<'_>) {
    let Some(env) = s.node.get("environment") else {
        return;
    };
    let mut pairs: Vec<(String, String, usize)> = Vec::new();
    match &env.value {
        Value::Map(entries) => {
            for (k, v) in entries {
                if let Some(value) = v.str() {
                    pairs.push((k.text.clone(), value.to_string(), v.line.max(k.line)));
                }
            }
        }
        Value::Seq(items) => {
            for item in items {
                if let Some((k, v)) = item.str().and_then(|t| t.split_once('=')) {
                    pairs.push((k.to_string(), v.to_string(), item.line));
                }
            }
        }
        _ => {}
    }
    for (key, value, line) in pairs {
        let secret = if is_secret_name(&key) && is_literal_secret(&value) {
            Some(value.as_str())
        } else {
            url_password(&value)
        };
        if let Some(secret) = secret {
            cx.find(
                &PLAINTEXT_SECRET,
                redacted(s.at(line), secret),
                format!(
                    "service `{}` sets `{key}` to a literal secret in {}",
                    s.name, s.file.path
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::dockerfile::tests::{has, ids, scan};

    #[test]
    fn names_that_are_compose_files() {
        for name in [
            "docker-compose.yml",
            "compose.yaml",
            "docker-compose.prod.yml",
            "compose.dev.yaml",
        ] {
            assert!(is_compose_name(name), "{name}");
        }
        for name in [
            "composer.json",
            "compose.yml.bak",
            "my-compose.yml",
            "compose.json",
        ] {
            assert!(!is_compose_name(name), "{name}");
        }
    }

    #[test]
    fn short_port_syntax() {
        let p = |s: &str| {
            let p = parse_short_port(s);
            (p.host_ip, p.container)
        };
        assert_eq!(p("5432"), (None, Some(5432)));
        assert_eq!(p("5433:5432"), (None, Some(5432)));
        assert_eq!(
            p("127.0.0.1:5432:5432/tcp"),
            (Some("127.0.0.1".into()), Some(5432))
        );
        assert_eq!(p("[::1]:6379:6379"), (Some("::1".into()), Some(6379)));
        assert_eq!(p("0.0.0.0:3306:3306"), (Some("0.0.0.0".into()), Some(3306)));
        assert_eq!(p("6000-6001:6000-6001"), (None, Some(6000)));
        assert_eq!(p("garbage"), (None, None));
        assert_eq!(p("${DB_PORT:-5432}:5432"), (None, Some(5432)));
        assert_eq!(
            p("${BIND:-127.0.0.1}:5432:5432"),
            (Some("var".into()), Some(5432))
        );
    }

    #[test]
    fn paths_join_inside_the_repository() {
        assert_eq!(
            join_path("deploy", "../api/Dockerfile").as_deref(),
            Some("api/Dockerfile")
        );
        assert_eq!(join_path("", "./Dockerfile").as_deref(), Some("Dockerfile"));
        assert_eq!(join_path("", "../x"), None);
        assert_eq!(join_path("", "/abs"), None);
    }

    const STACK: &str = "\
services:
  web:
    build:
      context: ./web
    restart: unless-stopped
    environment:
      DATABASE_URL: postgres://app:hunter2@db:5432/app
      SESSION_SECRET: ${SESSION_SECRET}
    depends_on:
      db:
        condition: service_healthy
    deploy:
      resources:
        limits: {memory: 512M}
  db:
    image: postgres
    restart: always
    mem_limit: 1g
    environment:
      - POSTGRES_PASSWORD=postgres
      - POSTGRES_USER
    ports:
      - \"5432:5432\"
      - target: 5432
        host_ip: 127.0.0.1
        published: 5433
    healthcheck:
      test: [\"CMD-SHELL\", \"pg_isready\"]
  migrate:
    build: ./web
    restart: \"no\"
  cache:
    image: redis:7.2.5
    ports: [\"127.0.0.1:6379:6379\"]
";

    #[test]
    fn a_stack_with_problems() {
        let (f, facts) = scan(
            &[
                ("docker-compose.yml", STACK),
                (
                    "web/Dockerfile",
                    "FROM node:18.19.1\nHEALTHCHECK CMD true\nUSER node\n",
                ),
            ],
            "compose/",
        );
        assert_eq!(
            ids(&f),
            [
                "compose/no-healthcheck@32",
                "compose/no-resource-limits@32",
                "compose/no-restart-policy@32",
                "compose/plaintext-secret@20",
                "compose/plaintext-secret@7",
                "compose/published-database-port@23",
                "compose/unpinned-image@16",
            ]
        );
        let json = serde_json::to_string(&f).expect("json");
        assert!(!json.contains("hunter2"), "{json}");
        assert!(has(&facts, "deploy.health-gated"));
        assert!(has(&facts, "container.healthcheck"));
        assert!(has(&facts, "container.compose"));
    }

    #[test]
    fn development_files_get_only_security_and_image_rules() {
        let text = "services:\n  db:\n    image: postgres:16.3\n    ports: ['5432:5432']\n  app:\n    build: .\n";
        let (f, _) = scan(&[("docker-compose.dev.yml", text)], "compose/");
        assert_eq!(ids(&f), ["compose/published-database-port@4"]);
    }

    #[test]
    fn merged_services_are_not_reported_for_what_they_lack() {
        let text = "x-defaults: &defaults\n  restart: always\n  healthcheck: {test: [CMD, 'true']}\nservices:\n  web:\n    <<: *defaults\n    image: acme/web:1.2.3\n  other:\n    extends: {file: base.yml, service: web}\n";
        let (f, _) = scan(&[("compose.yaml", text)], "compose/");
        assert!(f.is_empty(), "{:?}", ids(&f));
    }

    #[test]
    fn test_infrastructure_is_skipped() {
        let text = "services:\n  db:\n    image: postgres\n    ports: ['5432:5432']\n";
        for path in [
            "tests/docker-compose.yml",
            "docker-compose.ci.yml",
            "e2e/compose.yaml",
        ] {
            let (f, facts) = scan(&[(path, text)], "compose/");
            assert!(f.is_empty(), "{path}");
            assert!(!has(&facts, "container.compose"), "{path}");
        }
    }

    #[test]
    fn swarm_update_config() {
        let text = "services:\n  web:\n    image: ghcr.io/acme/web:1.2.3\n    restart: always\n    healthcheck: {test: [CMD, /web, health]}\n    deploy:\n      resources: {limits: {memory: 256M}}\n      update_config:\n        order: start-first\n        failure_action: rollback\n";
        let (f, facts) = scan(&[("compose.yaml", text)], "compose/");
        assert!(f.is_empty(), "{:?}", ids(&f));
        for id in ["deploy.manifests", "deploy.rolling", "deploy.auto-rollback"] {
            assert!(has(&facts, id), "{id}");
        }
    }

    #[test]
    fn garbage_compose_files_never_panic() {
        for text in [
            "",
            "services: [1, 2]",
            "services:\n  a: 1\n  b: [x]\n  c:\n    ports: {a: b}\n    environment: 3\n    build: {context: ../../..}\n    depends_on: [x]\n",
            "services:\n  a:\n    ports: [':::', '[::', '::::5432', 99999999]\n",
            "{{ not yaml",
            "\0\0",
        ] {
            let _ = scan(&[("compose.yaml", text)], "compose/");
        }
    }
}
