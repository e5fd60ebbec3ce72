//! The code_health pass on the fixture repositories: health and readiness
//! routes, SIGTERM handling, observability facts.

use std::path::{Path, PathBuf};

use cutover_assess::{Area, NoHooks, Report, assess};

fn fixture(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn run(name: &str) -> Report {
    assess(&fixture(name), &NoHooks).expect("assess")
}

fn findings(report: &Report) -> Vec<String> {
    let mut v: Vec<String> = report
        .findings
        .iter()
        .filter(|f| f.rule.starts_with("code-health/"))
        .map(|f| format!("{} {}", f.rule, f.evidence[0].location()))
        .collect();
    v.sort();
    v
}

/// `id detail path:line` of the facts this pass records.
fn facts(report: &Report) -> Vec<String> {
    let mut v: Vec<String> = report
        .facts
        .iter()
        .filter(|f| f.id.starts_with("obs.") || f.id == "deploy.graceful-shutdown")
        .map(|f| format!("{} {} {}", f.id, f.detail, f.evidence.location()))
        .collect();
    v.sort();
    v
}

#[test]
fn node_compose_serves_health_but_dies_on_sigterm() {
    let report = run("node-compose");
    assert_eq!(
        findings(&report),
        ["code-health/no-graceful-shutdown src/server.js:22"]
    );
    assert_eq!(
        facts(&report),
        ["obs.health-endpoint /health src/server.js:9"]
    );
    let f = report
        .findings
        .iter()
        .find(|f| f.rule == "code-health/no-graceful-shutdown")
        .expect("finding");
    assert_eq!(f.area, Area::DeploymentAutomation);
    assert!(
        f.cutover
            .as_deref()
            .is_some_and(|c| c.contains("drain_timeout"))
    );
}

#[test]
fn fastapi_has_liveness_and_readiness_and_uvicorn_drains() {
    let report = run("fastapi-celery");
    assert!(findings(&report).is_empty());
    assert_eq!(
        facts(&report),
        [
            "deploy.graceful-shutdown uvicorn drains requests on SIGTERM requirements.txt:2",
            "obs.health-endpoint /healthz app/main.py:12",
            "obs.readiness /readyz app/main.py:17",
            "obs.structured-logs structlog requirements.txt:7",
        ]
    );
}

#[test]
fn go_k8s_handles_sigterm_and_exports_metrics() {
    let report = run("go-k8s");
    assert!(findings(&report).is_empty());
    assert_eq!(
        facts(&report),
        [
            "deploy.graceful-shutdown signal.Notify(…, syscall.SIGTERM) handles SIGTERM main.go:31",
            "obs.alerts Prometheus alert rules monitoring/alerts.yml:4",
            "obs.health-endpoint /healthz main.go:18",
            "obs.metrics github.com/prometheus/client_golang go.mod:7",
            "obs.structured-logs go.uber.org/zap go.mod:8",
        ]
    );
}

#[test]
fn sqlite_cp_flask_app_has_no_health_endpoint() {
    let report = run("sqlite-cp");
    assert_eq!(
        findings(&report),
        ["code-health/no-health-endpoint requirements.txt:1"]
    );
    assert!(facts(&report).is_empty());
    let f = report
        .findings
        .iter()
        .find(|f| f.rule == "code-health/no-health-endpoint")
        .expect("finding");
    assert!(
        f.cutover
            .as_deref()
            .is_some_and(|c| c.contains("health = { path = \"/health\""))
    );
}

#[test]
fn clean_reaches_level_five_in_observability() {
    let report = run("clean");
    assert!(findings(&report).is_empty());
    assert_eq!(
        facts(&report),
        [
            "deploy.graceful-shutdown process.on('SIGTERM') handles SIGTERM src/server.js:32",
            "obs.alerts Prometheus alert rules monitoring/alerts.yml:4",
            "obs.dashboards Grafana dashboard monitoring/grafana/ledger.json",
            "obs.error-tracking @sentry/node package.json:12",
            "obs.health-endpoint /health src/server.js:14",
            "obs.metrics prom-client package.json:16",
            "obs.readiness /ready src/server.js:16",
            "obs.structured-logs pino package.json:15",
            "obs.tracing @opentelemetry/sdk-node package.json:11",
        ]
    );
    let level = report
        .areas
        .iter()
        .find(|a| a.area == Area::Observability)
        .expect("area");
    assert_eq!(level.level, 5);
}

fn write(root: &Path, path: &str, bytes: &[u8]) {
    let p = root.join(path);
    std::fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
    std::fs::write(p, bytes).expect("write");
}

#[test]
fn apps_are_judged_by_their_own_folder_and_tests_do_not_count() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(
        root,
        "api/package.json",
        b"{\n  \"dependencies\": {\n    \"fastify\": \"^4\"\n  }\n}\n",
    );
    write(
        root,
        "api/index.js",
        b"const f = require('fastify')();\nf.listen({ port: 3000 });\n",
    );
    write(root, "api/test/health.test.js", b"app.get('/health', h);\n");
    write(
        root,
        "web/go.mod",
        b"module x\n\nrequire github.com/gin-gonic/gin v1.9.1\n",
    );
    write(root, "web/main.go", b"package main\n\nfunc main() {\n\tr := gin.Default()\n\tr.GET(\"/healthz\", h)\n\tr.Run(\":8080\")\n}\n");
    let report = assess(root, &NoHooks).expect("assess");
    assert_eq!(
        findings(&report),
        [
            "code-health/no-graceful-shutdown api/index.js:2",
            "code-health/no-graceful-shutdown web/main.go:6",
            "code-health/no-health-endpoint api/package.json:3",
        ]
    );
}

#[test]
fn garbage_never_panics() {
    let dir = tempfile::tempdir().expect("tempdir");
    let root = dir.path();
    write(root, "package.json", &[0xff, 0xfe, 0x00]);
    write(root, "go.mod", "require ".repeat(50_000).as_bytes());
    write(
        root,
        "a.go",
        format!("http.HandleFunc(\"/{}", "h".repeat(100_000)).as_bytes(),
    );
    write(root, "requirements.txt", "flask\n\u{0}\n".as_bytes());
    write(root, "grafana/d.json", b"{\"panels\": [");
    write(root, "alerts.yml", b"groups: [alert: {");
    assess(root, &NoHooks).expect("assess");
}
