//! Health and operations in the code: health and readiness endpoints
//! declared with the common frameworks, SIGTERM (graceful shutdown)
//! handling, and what the dependencies and files say about observability
//! (metrics, JSON logs, tracing, error tracking, alert rules, dashboards).
//!
//! - [`deps`] reads dependency manifests;
//! - [`code`] reads application code (tests are skipped);
//! - this module decides, per web application (a manifest naming a web
//!   framework, judged on the code under the manifest's folder).

mod code;
mod deps;

use super::{Context, RuleInfo};
use crate::finding::{Area, Evidence, Severity};
use crate::repo::RepoFile;

use code::Seen;
use deps::{Cat, Lang};

pub const NO_HEALTH_ENDPOINT: RuleInfo = RuleInfo {
    id: "code-health/no-health-endpoint",
    area: Area::Observability,
    severity: Severity::Medium,
    title: "Web application without a health endpoint",
    why: "Without an endpoint that says whether the application can serve, a deploy cannot tell a started process from a working one: traffic moves to instances that fail, and nothing restarts a stuck one.",
    fix: "Add a cheap `GET /health` route that returns 200 when the process can serve (and a `/ready` one that also checks the database), and point the deploy's health check at it.",
    cutover: Some(
        "[service.web]\nhealth = { path = \"/health\", interval = \"1s\", timeout = \"2s\", healthy = 2, unhealthy = 3, start_timeout = \"60s\" }",
    ),
};

pub const NO_GRACEFUL_SHUTDOWN: RuleInfo = RuleInfo {
    id: "code-health/no-graceful-shutdown",
    area: Area::DeploymentAutomation,
    severity: Severity::Medium,
    title: "Server does not drain on SIGTERM",
    why: "Every deploy stops the old instances with SIGTERM. Node exits at once on it and a Go http.Server is cut off unless it calls Shutdown, so requests in flight fail on every deploy.",
    fix: "Handle SIGTERM: stop accepting connections and let in-flight requests finish before exiting (`process.on('SIGTERM', () => server.close(() => process.exit(0)))` in Node; `signal.NotifyContext(ctx, syscall.SIGTERM)` then `srv.Shutdown(ctx)` in Go).",
    cutover: Some(
        "[service.web]\ndrain_timeout = \"30s\"   # in-flight requests may finish\nstop_timeout = \"10s\"    # between SIGTERM and SIGKILL",
    ),
};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[&NO_HEALTH_ENDPOINT, &NO_GRACEFUL_SHUTDOWN];

/// A manifest naming a web framework.
struct WebApp {
    dir: String,
    lang: Lang,
    framework: String,
    evidence: Evidence,
}

fn under(dir: &str, path: &str) -> bool {
    dir.is_empty() || path.strip_prefix(dir).is_some_and(|r| r.starts_with('/'))
}

fn is_code(file: &RepoFile) -> bool {
    code::lang(&file.ext()).is_some() && file.size <= 512 * 1024 && !code::is_test(file)
}

/// Runs the pass.
pub fn run(cx: &mut Context<'_>) {
    let repo = cx.repo;
    let mut apps: Vec<WebApp> = Vec::new();
    let mut dep_facts: Vec<(&'static str, String, Evidence)> = Vec::new();
    let mut graceful_deps: Vec<(String, String, Evidence)> = Vec::new();
    let mut health: Vec<(&str, Seen, Evidence)> = Vec::new();
    for file in repo.files().iter().filter(|f| deps::is_manifest(f)) {
        let Some(text) = repo.text(file) else {
            continue;
        };
        let mut web_here = false;
        for dep in deps::read(file, text) {
            let ev = Evidence::at(&file.path, text, dep.line);
            match dep.cat {
                Cat::Web(lang) if !web_here => {
                    web_here = true;
                    apps.push(WebApp {
                        dir: file.dir().to_string(),
                        lang,
                        framework: dep.name.clone(),
                        evidence: ev,
                    });
                }
                Cat::Web(_) => {}
                Cat::Metrics => dep_facts.push(("obs.metrics", dep.name, ev)),
                Cat::StructuredLogs => dep_facts.push(("obs.structured-logs", dep.name, ev)),
                Cat::Tracing => dep_facts.push(("obs.tracing", dep.name, ev)),
                Cat::ErrorTracking => dep_facts.push(("obs.error-tracking", dep.name, ev)),
                Cat::Graceful => graceful_deps.push((file.dir().to_string(), dep.name, ev)),
                Cat::Actuator => health.push((
                    file.path.as_str(),
                    Seen::Health("/actuator/health".into()),
                    ev,
                )),
            }
        }
    }

    let mut sigterm: Vec<(&str, String, Evidence)> = Vec::new();
    let mut listens: Vec<(&str, Lang, Evidence)> = Vec::new();
    let mut code_facts: Vec<(&'static str, String, Evidence)> = Vec::new();
    for file in repo.files().iter().filter(|f| is_code(f)) {
        let Some(text) = repo.text(file) else {
            continue;
        };
        let ext = file.ext();
        for (line, seen) in code::scan(&ext, text) {
            let ev = Evidence::at(&file.path, text, line);
            match seen {
                Seen::Health(_) | Seen::Ready(_) => health.push((&file.path, seen, ev)),
                Seen::Metrics => code_facts.push(("obs.metrics", "/metrics route".into(), ev)),
                Seen::StructuredLogs(what) => code_facts.push(("obs.structured-logs", what, ev)),
                Seen::Sigterm(what) => sigterm.push((&file.path, what, ev)),
                Seen::Listen => {
                    if let Some(lang) = code::lang(&ext) {
                        listens.push((&file.path, lang, ev));
                    }
                }
            }
        }
        // A Go program serving HTTP with net/http alone is a web app too.
        if ext == "go"
            && !apps
                .iter()
                .any(|a| a.lang == Lang::Go && under(&a.dir, &file.path))
            && let Some((_, _, ev)) = listens
                .iter()
                .find(|(p, l, _)| *p == file.path && *l == Lang::Go)
        {
            let dir = go_module_dir(repo, file);
            apps.push(WebApp {
                dir,
                lang: Lang::Go,
                framework: "net/http".into(),
                evidence: ev.clone(),
            });
        }
    }
    spring_config(cx, &mut health, &mut sigterm);

    // Health and readiness facts.
    let has_live = health.iter().any(|(_, s, _)| matches!(s, Seen::Health(_)));
    for (_, seen, ev) in &health {
        match seen {
            Seen::Health(path) => cx.fact("obs.health-endpoint", path.clone(), ev.clone()),
            Seen::Ready(path) => {
                if has_live {
                    cx.fact("obs.readiness", path.clone(), ev.clone());
                } else {
                    cx.fact("obs.health-endpoint", path.clone(), ev.clone());
                }
            }
            _ => {}
        }
    }
    for (id, detail, ev) in dep_facts.into_iter().chain(code_facts) {
        if !cx.has_fact(id) {
            cx.fact(id, detail, ev);
        }
    }
    if let Some((_, what, ev)) = sigterm.first() {
        cx.fact(
            "deploy.graceful-shutdown",
            format!("{what} handles SIGTERM"),
            ev.clone(),
        );
    } else if let Some((_, name, ev)) = graceful_deps.first() {
        cx.fact(
            "deploy.graceful-shutdown",
            format!("{name} drains requests on SIGTERM"),
            ev.clone(),
        );
    }
    files(cx);

    for app in &apps {
        let healthy = health.iter().any(|(p, _, _)| under(&app.dir, p));
        if !healthy {
            cx.find(
                &NO_HEALTH_ENDPOINT,
                app.evidence.clone(),
                format!(
                    "The {} application{} declares no health endpoint (no /health, /healthz, /ready or similar route)",
                    app.framework,
                    if app.dir.is_empty() {
                        String::new()
                    } else {
                        format!(" in {}", app.dir)
                    }
                ),
            );
        }
        if !matches!(app.lang, Lang::Node | Lang::Go) {
            continue;
        }
        let drains = sigterm.iter().any(|(p, _, _)| under(&app.dir, p))
            || graceful_deps.iter().any(|(d, _, _)| *d == app.dir);
        if drains {
            continue;
        }
        let evidence = listens
            .iter()
            .find(|(p, l, _)| *l == app.lang && under(&app.dir, p))
            .map_or_else(|| app.evidence.clone(), |(_, _, ev)| ev.clone());
        let why = if app.lang == Lang::Node {
            "Node exits at once on SIGTERM, failing requests in flight"
        } else {
            "its http.Server is cut off on SIGTERM unless it calls Shutdown"
        };
        cx.find(
            &NO_GRACEFUL_SHUTDOWN,
            evidence,
            format!(
                "The {} server does not handle SIGTERM: {why}",
                app.framework
            ),
        );
    }
}

/// The folder of the go.mod that owns `file` (the repository root when none).
fn go_module_dir(repo: &crate::repo::Repo, file: &RepoFile) -> String {
    let mut dir = file.dir();
    loop {
        let candidate = if dir.is_empty() {
            "go.mod".to_string()
        } else {
            format!("{dir}/go.mod")
        };
        if repo.file(&candidate).is_some() || dir.is_empty() {
            return dir.to_string();
        }
        dir = dir.rsplit_once('/').map_or("", |(d, _)| d);
    }
}

/// Spring Boot's `application.properties` / `application.yml`: graceful
/// shutdown and health probes.
fn spring_config<'a>(
    cx: &Context<'a>,
    health: &mut Vec<(&'a str, Seen, Evidence)>,
    sigterm: &mut Vec<(&'a str, String, Evidence)>,
) {
    let repo = cx.repo;
    for file in repo.named(|n| {
        n.starts_with("application")
            && (n.ends_with(".properties") || n.ends_with(".yml") || n.ends_with(".yaml"))
    }) {
        let Some(text) = repo.text(file) else {
            continue;
        };
        for (i, line) in text.lines().enumerate() {
            let t = line.trim().replace(' ', "");
            if t == "server.shutdown=graceful" || t == "shutdown:graceful" {
                sigterm.push((
                    &file.path,
                    "Spring server.shutdown=graceful".into(),
                    Evidence::at(&file.path, text, i + 1),
                ));
            }
            if t.starts_with("management.endpoint.health.probes.enabled=true")
                || t.starts_with("management.health.probes.enabled=true")
                || (t == "probes:" && text.contains("enabled: true"))
            {
                health.push((
                    &file.path,
                    Seen::Ready("/actuator/health/readiness".into()),
                    Evidence::at(&file.path, text, i + 1),
                ));
            }
        }
    }
}

/// Alert rules and dashboards kept in the repository.
fn files(cx: &mut Context<'_>) {
    let repo = cx.repo;
    let mut alerts = None;
    let mut dashboards = None;
    for file in repo.files() {
        let ext = file.ext();
        let lower = file.path.to_ascii_lowercase();
        if file.size > 2 * 1024 * 1024 {
            continue;
        }
        if alerts.is_none() && matches!(ext.as_str(), "yml" | "yaml") {
            let Some(text) = repo.text(file) else {
                continue;
            };
            if text.contains("groups:") && text.contains("alert:") {
                let line = text
                    .lines()
                    .position(|l| {
                        l.trim_start()
                            .trim_start_matches("- ")
                            .starts_with("alert:")
                    })
                    .map_or(0, |i| i + 1);
                alerts = Some((
                    "Prometheus alert rules".to_string(),
                    Evidence::at(&file.path, text, line),
                ));
            } else if file.name.starts_with("alertmanager") && text.contains("receivers:") {
                alerts = Some((
                    "Alertmanager configuration".to_string(),
                    Evidence::file(&file.path),
                ));
            }
        }
        if dashboards.is_none()
            && ext == "json"
            && (lower.contains("grafana") || lower.contains("dashboard"))
        {
            let Some(text) = repo.text(file) else {
                continue;
            };
            if text.contains("\"panels\"") {
                dashboards = Some(("Grafana dashboard".to_string(), Evidence::file(&file.path)));
            }
        }
    }
    if let Some((detail, ev)) = alerts {
        cx.fact("obs.alerts", detail, ev);
    }
    if let Some((detail, ev)) = dashboards {
        cx.fact("obs.dashboards", detail, ev);
    }
}
