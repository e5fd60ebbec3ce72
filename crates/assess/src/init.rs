//! `cutover init`: a starting `cutover.toml` from what the repository shows.
//! The same detection as the assessment: services from compose files,
//! Dockerfiles or a Procfile; the health path from the code (the
//! `obs.health-endpoint` and `obs.readiness` facts); PostgreSQL or SQLite
//! from compose images, `.env` templates and database URLs; environments
//! from `.env.staging`-style files. Database URLs are always written as
//! `${VAR}`, never as values. Every choice is explained by a comment naming
//! the file and line it came from, and what could not be found is said.

use std::fmt::Write;

use crate::finding::{Evidence, Fact};
use crate::repo::{Repo, line_of};
use crate::yaml;

/// What `cutover init` found, and the file it writes.
#[derive(Debug, Clone)]
pub struct Plan {
    pub app: String,
    pub services: Vec<Service>,
    pub database: Option<Database>,
    pub environments: Vec<String>,
    pub health_path: Option<(String, Evidence)>,
    /// Things the user must do before `cutover check` passes or a deploy works.
    pub todo: Vec<String>,
}

/// A service to run.
#[derive(Debug, Clone, PartialEq)]
pub struct Service {
    pub name: String,
    pub http: bool,
    pub how: Run,
    /// Where it was found.
    pub source: Evidence,
    /// The command compose runs in the container instead of the image's
    /// (cutover runs the image's own `CMD`).
    pub command: Option<String>,
}

/// How a service runs.
#[derive(Debug, Clone, PartialEq)]
pub enum Run {
    /// A container built from the repository: the image name and its port.
    Docker { image: String, port: Option<u16> },
    /// A local process.
    Process { command: Vec<String> },
}

/// The application's database.
#[derive(Debug, Clone, PartialEq)]
pub struct Database {
    pub postgres: bool,
    /// The `${VAR}` holding the URL (PostgreSQL), or the `sqlite://` URL.
    pub url: String,
    pub source: Evidence,
    /// The migrations tool and where its files are, if one was found.
    pub migrations: Option<(String, Evidence)>,
}

/// Builds the plan from the repository and the assessment's facts.
pub fn plan(repo: &Repo, facts: &[Fact]) -> Plan {
    let app = app_name(repo);
    let mut todo = Vec::new();
    let mut services = compose_services(repo, &app);
    if services.is_empty() {
        services = dockerfile_service(repo, &app).into_iter().collect();
    }
    if services.is_empty() {
        services = procfile_services(repo);
    }
    if services.is_empty() {
        todo.push(
            "no Dockerfile, compose file or Procfile was found: set [service.web] command to the program that serves the app (it gets its port as {port} and $PORT)".to_string(),
        );
        services.push(Service {
            name: "web".to_string(),
            http: true,
            how: Run::Process {
                command: vec!["./bin/web".into(), "--port".into(), "{port}".into()],
            },
            source: Evidence::file(""),
            command: None,
        });
    }
    for s in &services {
        if let Run::Docker { port: None, .. } = s.how
            && s.http
        {
            {
                todo.push(format!(
                    "service {}: no port found (EXPOSE or ports:); set `port` to the port the container listens on",
                    s.name
                ));
            }
        }
    }
    for s in &services {
        if let (Run::Docker { image, .. }, Some(cmd)) = (&s.how, &s.command) {
            todo.push(format!(
                "service {}: compose runs `{cmd}` in the container; cutover runs the image's own CMD, so build {image} (or a Dockerfile target) whose CMD is that command",
                s.name
            ));
        }
    }
    let fact = |id: &str| facts.iter().find(|f| f.id == id);
    let health_path = fact("obs.readiness")
        .or_else(|| fact("obs.health-endpoint"))
        .filter(|f| f.detail.starts_with('/'))
        .map(|f| (f.detail.clone(), f.evidence.clone()));
    if health_path.is_none() && services.iter().any(|s| s.http) {
        todo.push(
            "no health endpoint was found in the code: add one that answers 200 when the app can serve (cutover probes /health by default)".to_string(),
        );
    }
    let mut database = detect_database(repo);
    if let (Some(db), Some(f)) = (
        database.as_mut(),
        facts
            .iter()
            .find(|f| f.id == "db.migrations" && !f.evidence.path.ends_with("cutover.toml")),
    ) {
        db.migrations = Some((f.detail.clone(), f.evidence.clone()));
    }
    if let Some(db) = &database
        && db.postgres
    {
        {
            todo.push(format!(
                "set {} in the environment of `cutover serve` and `cutover check`",
                var_name(&db.url)
            ));
        }
    }
    let environments = environments(repo);
    Plan {
        app,
        services,
        database,
        environments,
        health_path,
        todo,
    }
}

/// The `VAR` of `${VAR}`.
fn var_name(url: &str) -> &str {
    url.trim_start_matches("${").trim_end_matches('}')
}

/// The folder's name as an app name: letters, digits, `-` and `_`.
fn app_name(repo: &Repo) -> String {
    let raw = repo
        .root()
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_default();
    sanitize(&raw).unwrap_or_else(|| "app".to_string())
}

/// A name cutover accepts (`^[A-Za-z0-9][A-Za-z0-9_-]*$`, at most 64), or none.
fn sanitize(raw: &str) -> Option<String> {
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let trimmed = cleaned.trim_start_matches(['-', '_']);
    let name: String = trimmed.chars().take(64).collect();
    (!name.is_empty()).then_some(name)
}

/// Images of databases and caches: never services of the app.
const BACKING_IMAGES: [&str; 12] = [
    "postgres",
    "postgis",
    "mysql",
    "mariadb",
    "redis",
    "valkey",
    "mongo",
    "memcached",
    "rabbitmq",
    "elasticsearch",
    "minio",
    "nginx",
];

fn is_compose(name: &str) -> bool {
    let n = name.to_ascii_lowercase();
    (n.starts_with("docker-compose") || n.starts_with("compose"))
        && (n.ends_with(".yml") || n.ends_with(".yaml"))
        && !n.contains("override")
        && !n.contains(".dev")
        && !n.contains(".test")
}

/// Services with a `build:` in the main compose file.
fn compose_services(repo: &Repo, app: &str) -> Vec<Service> {
    let Some(file) = repo
        .named(is_compose)
        .min_by_key(|f| (f.path.matches('/').count(), f.path.len()))
    else {
        return Vec::new();
    };
    let Some(text) = repo.text(file) else {
        return Vec::new();
    };
    let Some(doc) = yaml::parse_one(text) else {
        return Vec::new();
    };
    let mut out = Vec::new();
    // One image per build context: services built from the same folder share it.
    let mut images: Vec<(String, String)> = Vec::new();
    for (key, svc) in doc.get("services").map(|s| s.entries()).unwrap_or_default() {
        let image = svc.get("image").and_then(|n| n.str()).unwrap_or_default();
        let base = image.rsplit('/').next().unwrap_or_default();
        if BACKING_IMAGES.iter().any(|b| base.starts_with(b)) {
            continue;
        }
        if svc.get("build").is_none() {
            continue;
        }
        let Some(name) = sanitize(&key.text) else {
            continue;
        };
        let context = svc
            .get("build")
            .and_then(|b| b.str().or_else(|| b.get("context").and_then(|c| c.str())))
            .unwrap_or(".")
            .trim_end_matches('/')
            .to_string();
        let image = match images.iter().find(|(c, _)| *c == context) {
            Some((_, image)) => image.clone(),
            None => {
                let image = if images.is_empty() {
                    format!("{app}:{{version}}")
                } else {
                    format!("{app}-{name}:{{version}}")
                };
                images.push((context, image.clone()));
                image
            }
        };
        let port = svc
            .get("ports")
            .and_then(|p| p.items().first())
            .and_then(|p| p.str())
            .and_then(container_port)
            .or_else(|| {
                svc.get("expose")
                    .and_then(|p| p.items().first())
                    .and_then(|p| p.str())
                    .and_then(|p| p.parse().ok())
            });
        let command = svc.get("command").and_then(|c| c.str()).unwrap_or_default();
        let worker = port.is_none() && looks_like_worker(&key.text, command);
        out.push(Service {
            name,
            http: !worker,
            how: Run::Docker { image, port },
            source: Evidence::at(&file.path, text, key.line),
            command: (!command.is_empty()).then(|| command.to_string()),
        });
    }
    out
}

/// The container side of a compose port (`"8000:8000"`, `"127.0.0.1:80:8000/tcp"`, `"8000"`).
fn container_port(spec: &str) -> Option<u16> {
    let spec = spec.split('/').next().unwrap_or(spec);
    spec.rsplit(':').next().and_then(|p| p.trim().parse().ok())
}

fn looks_like_worker(name: &str, command: &str) -> bool {
    let text = format!("{name} {command}").to_ascii_lowercase();
    [
        "worker",
        "celery",
        "sidekiq",
        "queue",
        "jobs",
        "scheduler",
        "beat",
        "cron",
    ]
    .iter()
    .any(|w| text.contains(w))
}

/// One service from the Dockerfile nearest the root.
fn dockerfile_service(repo: &Repo, app: &str) -> Option<Service> {
    let file = repo
        .named(|n| n == "Dockerfile" || n == "Containerfile")
        .min_by_key(|f| (f.path.matches('/').count(), f.path.len()))?;
    let text = repo.text(file)?;
    let mut port = None;
    let mut line = 0;
    for (i, l) in text.lines().enumerate() {
        let t = l.trim();
        if t.len() > 7 && t[..7].eq_ignore_ascii_case("EXPOSE ") {
            port = t[7..]
                .split_whitespace()
                .next()
                .and_then(|p| p.split('/').next())
                .and_then(|p| p.parse().ok());
            line = i + 1;
        }
    }
    Some(Service {
        name: "web".to_string(),
        http: true,
        how: Run::Docker {
            image: format!("{app}:{{version}}"),
            port,
        },
        source: if line > 0 {
            Evidence::at(&file.path, text, line)
        } else {
            Evidence::file(&file.path)
        },
        command: None,
    })
}

/// Services from a Procfile at the root (`release:` is not a service).
fn procfile_services(repo: &Repo) -> Vec<Service> {
    let Some(text) = repo.text_of("Procfile") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let Some((name, cmd)) = line.split_once(':') else {
            continue;
        };
        let (name, cmd) = (name.trim(), cmd.trim());
        if name.starts_with('#') || name == "release" || cmd.is_empty() {
            continue;
        }
        let Some(name) = sanitize(name) else { continue };
        let http = name == "web" || cmd.contains("$PORT") || cmd.contains("${PORT}");
        // Procfile lines are shell lines: run them with sh, which reads $PORT.
        let simple = !cmd.contains(['&', ';', '|', '>', '<', '`']);
        let script = if simple {
            format!("exec {cmd}")
        } else {
            cmd.to_string()
        };
        out.push(Service {
            name,
            http,
            how: Run::Process {
                command: vec!["sh".into(), "-c".into(), script],
            },
            source: Evidence::at("Procfile", text, i + 1),
            command: None,
        });
    }
    out
}

/// PostgreSQL or SQLite, from compose images, env templates and URLs.
fn detect_database(repo: &Repo) -> Option<Database> {
    for file in repo.named(is_compose) {
        let Some(text) = repo.text(file) else {
            continue;
        };
        if let Some(pos) = find_image(text, &["postgres", "postgis"]) {
            return Some(Database {
                postgres: true,
                url: "${DATABASE_URL}".into(),
                source: Evidence::at(&file.path, text, line_of(text, pos)),
                migrations: None,
            });
        }
    }
    let templates = repo.named(|n| {
        n.starts_with(".env")
            || n == "settings.py"
            || n == "config.py"
            || n.ends_with(".env.example")
    });
    for file in templates {
        let Some(text) = repo.text(file) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let l = line.trim();
            if l.contains("postgres://") || l.contains("postgresql://") {
                let var = l
                    .split_once('=')
                    .map(|(k, _)| k.trim().trim_start_matches("export ").to_string())
                    .filter(|k| {
                        !k.is_empty() && k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                    })
                    .unwrap_or_else(|| "DATABASE_URL".into());
                return Some(Database {
                    postgres: true,
                    url: format!("${{{var}}}"),
                    source: Evidence::at(&file.path, text, i + 1),
                    migrations: None,
                });
            }
            if let Some(path) = sqlite_path(l) {
                return Some(Database {
                    postgres: false,
                    url: format!("sqlite://{path}"),
                    source: Evidence::at(&file.path, text, i + 1),
                    migrations: None,
                });
            }
        }
    }
    None
}

/// The offset of `image: postgres…` in a compose file.
fn find_image(text: &str, names: &[&str]) -> Option<usize> {
    let mut offset = 0;
    for line in text.split_inclusive('\n') {
        let t = line.trim();
        if let Some(image) = t.strip_prefix("image:") {
            let image = image.trim().trim_matches(['"', '\'']);
            let base = image.rsplit('/').next().unwrap_or(image);
            if names.iter().any(|n| base.starts_with(n)) {
                return Some(offset + line.find("image:").unwrap_or(0));
            }
        }
        offset += line.len();
    }
    None
}

/// A relative SQLite path in `sqlite:///data/app.db`-style text.
fn sqlite_path(line: &str) -> Option<String> {
    let start = line.find("sqlite:")?;
    let rest = line[start + 7..].trim_start_matches('/');
    let path: String = rest
        .chars()
        .take_while(|c| !c.is_whitespace() && !matches!(c, '"' | '\'' | ')' | ','))
        .collect();
    (path.ends_with(".db") || path.ends_with(".sqlite") || path.ends_with(".sqlite3"))
        .then_some(path)
}

/// `staging` and `production` from `.env.staging`-style files; always production.
fn environments(repo: &Repo) -> Vec<String> {
    let staging = repo.files().iter().any(|f| {
        let n = f.name.to_ascii_lowercase();
        n == ".env.staging"
            || n.ends_with(".staging.yml")
            || n.ends_with(".staging.yaml")
            || (f.in_dir("overlays") && f.dir().ends_with("staging"))
    });
    let mut envs = Vec::new();
    if staging {
        envs.push("staging".to_string());
    }
    envs.push("production".to_string());
    envs
}

/// Quotes a TOML string.
fn q(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c if c.is_control() => {
                let _ = write!(out, "\\u{:04X}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn from(e: &Evidence) -> String {
    if e.path.is_empty() {
        String::new()
    } else {
        format!("  # from {}", e.location())
    }
}

impl Plan {
    /// The `cutover.toml` text.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let _ = self.write(&mut o);
        o
    }

    fn write(&self, o: &mut String) -> std::fmt::Result {
        writeln!(
            o,
            "# cutover.toml written by `cutover init` from what the repository shows."
        )?;
        writeln!(
            o,
            "# Every key: docs/config.md. Check it with `cutover check`."
        )?;
        if !self.todo.is_empty() {
            writeln!(o, "#\n# Before the first deploy:")?;
            for t in &self.todo {
                writeln!(o, "# - {t}")?;
            }
        }
        writeln!(o, "\n[app]\nname = {}", q(&self.app))?;
        writeln!(o, "\n[server]\nlisten = \"127.0.0.1:7070\"")?;
        let first_http = self.services.iter().position(|s| s.http);
        for (i, s) in self.services.iter().enumerate() {
            writeln!(o, "\n[service.{}]{}", s.name, from(&s.source))?;
            writeln!(o, "kind = {}", q(if s.http { "http" } else { "worker" }))?;
            match &s.how {
                Run::Docker { image, port } => {
                    writeln!(o, "driver = \"docker\"")?;
                    writeln!(
                        o,
                        "image = {}  # build and tag it before `cutover deploy VERSION`",
                        q(image)
                    )?;
                    match port {
                        Some(p) => writeln!(o, "port = {p}")?,
                        None if s.http => writeln!(
                            o,
                            "port = 8080  # not found: the port the container listens on"
                        )?,
                        None => {}
                    }
                }
                Run::Process { command } => {
                    let items: Vec<String> = command.iter().map(|c| q(c)).collect();
                    writeln!(o, "command = [{}]", items.join(", "))?;
                }
            }
            if let Some(db) = &self.database
                && db.postgres
            {
                {
                    writeln!(o, "env = {{ DATABASE_URL = {} }}", q(&db.url))?;
                }
            }
            if s.http {
                let (path, ev) = match &self.health_path {
                    Some((p, e)) => (p.as_str(), from(e)),
                    None => (
                        "/health",
                        "  # not found in the code: add this endpoint".to_string(),
                    ),
                };
                writeln!(
                    o,
                    "health = {{ path = {}, interval = \"1s\", timeout = \"2s\", start_timeout = \"60s\" }}{ev}",
                    q(path)
                )?;
                if Some(i) == first_http {
                    writeln!(o, "\n[service.{}.rollout]", s.name)?;
                    writeln!(
                        o,
                        "# Blue-green: the new release starts beside the old one and takes all traffic once healthy."
                    )?;
                    writeln!(o, "strategy = \"blue-green\"")?;
                    writeln!(
                        o,
                        "# A canary instead, judged at each step and rolled back on its own:"
                    )?;
                    writeln!(o, "# strategy = \"canary\"")?;
                    writeln!(o, "# steps = [5, 25, 50, 100]")?;
                    writeln!(o, "# step_duration = \"2m\"")?;
                    writeln!(
                        o,
                        "# analysis = {{ max_error_rate = 0.01, max_p95 = \"500ms\", min_requests = 50 }}"
                    )?;
                }
            }
        }
        for (i, env) in self.environments.iter().enumerate() {
            let port = 8080 + i;
            writeln!(o, "\n[environment.{env}]")?;
            writeln!(
                o,
                "listen = \"127.0.0.1:{port}\"  # loopback: put TLS (`tls = {{ acme = … }}`) on it before opening it"
            )?;
            writeln!(o, "rollback_window = \"10m\"")?;
            if env == "production" && self.environments.len() > 1 {
                writeln!(o, "promote_from = \"staging\"")?;
                writeln!(o, "soak = \"10m\"")?;
                writeln!(o, "# approvals = {{ required = 1, expires = \"1h\" }}")?;
            }
        }
        if let Some(db) = &self.database {
            writeln!(o, "\n[database.main]{}", from(&db.source))?;
            writeln!(o, "url = {}", q(&db.url))?;
            match &db.migrations {
                Some((tool, ev))
                    if tool.to_ascii_lowercase().starts_with("cutover")
                        || tool.to_ascii_lowercase().contains("sql") =>
                {
                    let folder = ev.path.rsplit_once('/').map(|(d, _)| d).unwrap_or(".");
                    writeln!(o, "migrations = {}  # {} migrations", q(folder), tool)?;
                }
                Some((tool, ev)) => {
                    writeln!(
                        o,
                        "# Migrations: the repository uses {tool} ({}); cutover runs its own SQL",
                        ev.location()
                    )?;
                    writeln!(
                        o,
                        "# migrations (docs/databases.md). Until you move them, run {tool} before the deploy."
                    )?;
                }
                None => {}
            }
            writeln!(o, "# Encrypted backups: `cutover backup keygen`, then")?;
            writeln!(
                o,
                "# backup = {{ recipients = [\"age1…\"], before_deploy = true, verify = true, keep_last = 30 }}"
            )?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    fn repo(files: &[(&str, &str)]) -> (tempfile::TempDir, Repo) {
        let dir = tempfile::tempdir().expect("tempdir");
        for (path, text) in files {
            let p = dir.path().join(path);
            fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
            fs::write(p, text).expect("write");
        }
        let repo = Repo::open(dir.path()).expect("open");
        (dir, repo)
    }

    #[test]
    fn compose_services_with_build_become_docker_services_and_postgres_a_database() {
        let compose = "services:\n  api:\n    build: .\n    ports:\n      - \"127.0.0.1:3000:8000\"\n  worker:\n    build: .\n    command: celery -A app worker\n  db:\n    image: postgres:16\n";
        let (_d, repo) = repo(&[("docker-compose.yml", compose)]);
        let plan = plan(&repo, &[]);
        assert_eq!(plan.services.len(), 2);
        assert_eq!(plan.services[0].name, "api");
        assert!(matches!(
            plan.services[0].how,
            Run::Docker {
                port: Some(8000),
                ..
            }
        ));
        assert_eq!(plan.services[0].source.location(), "docker-compose.yml:2");
        assert!(!plan.services[1].http, "the celery service is a worker");
        assert!(
            matches!(&plan.services[1].how, Run::Docker { image, .. } if image.ends_with(":{version}") && !image.contains("worker")),
            "both are built from the same folder: one image"
        );
        assert!(plan.todo.iter().any(|t| t.contains("celery -A app worker")));
        let db = plan.database.expect("postgres");
        assert!(db.postgres);
        assert_eq!(db.url, "${DATABASE_URL}");
        assert_eq!(db.source.location(), "docker-compose.yml:10");
    }

    #[test]
    fn a_procfile_gives_process_services_run_by_sh() {
        let (_d, repo) = repo(&[(
            "Procfile",
            "web: gunicorn app:app --bind 0.0.0.0:$PORT\nworker: rq worker\nrelease: alembic upgrade head\n",
        )]);
        let plan = plan(&repo, &[]);
        let names: Vec<&str> = plan.services.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, ["web", "worker"]);
        assert_eq!(
            plan.services[0].how,
            Run::Process {
                command: vec![
                    "sh".into(),
                    "-c".into(),
                    "exec gunicorn app:app --bind 0.0.0.0:$PORT".into()
                ]
            }
        );
        assert!(plan.todo.iter().any(|t| t.contains("health endpoint")));
    }

    #[test]
    fn the_health_path_comes_from_the_facts_readiness_first() {
        let (_d, repo) = repo(&[("Dockerfile", "FROM x\nEXPOSE 8000/tcp\n")]);
        let fact = |id, detail: &str| Fact {
            id,
            detail: detail.into(),
            evidence: Evidence::file("app/main.py"),
        };
        let plan = plan(
            &repo,
            &[
                fact("obs.health-endpoint", "/healthz"),
                fact("obs.readiness", "/readyz"),
            ],
        );
        assert_eq!(
            plan.health_path.as_ref().map(|(p, _)| p.as_str()),
            Some("/readyz")
        );
        assert!(matches!(
            plan.services[0].how,
            Run::Docker {
                port: Some(8000),
                ..
            }
        ));
        let text = plan.render();
        assert!(text.contains("path = \"/readyz\""), "{text}");
    }

    #[test]
    fn sqlite_urls_and_staging_files_are_found() {
        let (_d, repo) = repo(&[
            (".env.example", "DATABASE_URL=sqlite:///data/app.db\n"),
            (".env.staging", "X=1\n"),
        ]);
        let plan = plan(&repo, &[]);
        assert_eq!(
            plan.database.as_ref().map(|d| d.url.as_str()),
            Some("sqlite://data/app.db")
        );
        assert_eq!(plan.environments, ["staging", "production"]);
        let text = plan.render();
        assert!(text.contains("promote_from = \"staging\""));
    }

    #[test]
    fn names_are_made_acceptable() {
        assert_eq!(sanitize("My App!").as_deref(), Some("My-App-"));
        assert_eq!(sanitize("--x").as_deref(), Some("x"));
        assert_eq!(sanitize("***"), None);
        assert_eq!(q("a\"b\\"), "\"a\\\"b\\\\\"");
    }
}
