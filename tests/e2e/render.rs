//! `cutover render kubernetes`: the binary prints (or writes) manifests that
//! validate against the vendored Kubernetes schemas, never writes a secret
//! (literal or from its environment), and refuses what it cannot render
//! with exit 2 and what to add. No cluster runs here: the objects are
//! checked against the schemas only (docs/kubernetes.md).

use std::path::Path;
use std::process::{Command, Output};

use crate::common::{stderr, stdout};

const CONFIG: &str = r#"
[app]
name = "shop"

[service.web]
driver = "docker"
image = "registry.example/shop:{version}"
port = 8080
host = "shop.example"
env = { DB_PASSWORD = "${DB_PASSWORD}", API_TOKEN = "literal-token-value", LOG = "info" }

[service.web.rollout]
strategy = "canary"
steps = [10, 50, 100]

[service.jobs]
kind = "worker"
driver = "docker"
image = "registry.example/jobs:{version}"

[environment.production]
listen = "127.0.0.1:8080"
"#;

fn render(config: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("-c")
        .arg(config)
        .args(["render", "kubernetes"])
        .args(args)
        .env("NO_COLOR", "1")
        // Set where render runs: it must not read it.
        .env("DB_PASSWORD", "value-from-the-environment")
        .output()
        .expect("run cutover render")
}

fn schema(kind: &str) -> Option<jsonschema::Validator> {
    let file = match kind {
        "Namespace" => "namespace-v1.json",
        "ServiceAccount" => "serviceaccount-v1.json",
        "Role" => "role-rbac-v1.json",
        "RoleBinding" => "rolebinding-rbac-v1.json",
        "Deployment" => "deployment-apps-v1.json",
        "Service" => "service-v1.json",
        _ => return None,
    };
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/schemas/kubernetes")
        .join(file);
    let text = std::fs::read_to_string(path).expect("vendored schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema JSON");
    Some(
        jsonschema::options()
            .build(&schema)
            .expect("schema compiles"),
    )
}

/// Validates every object of `render --json` output; returns their kinds.
fn validate(json: &serde_json::Value) -> Vec<String> {
    let manifests = json["manifests"].as_array().expect("manifests");
    let mut kinds = Vec::new();
    for manifest in manifests {
        let kind = manifest["kind"].as_str().expect("kind").to_owned();
        if let Some(validator) = schema(&kind) {
            let errors: Vec<String> = validator
                .iter_errors(&manifest["object"])
                .map(|e| format!("{e} at {}", e.instance_path()))
                .collect();
            assert!(errors.is_empty(), "{kind}: {errors:#?}");
        }
        kinds.push(kind);
    }
    kinds
}

#[test]
fn render_prints_valid_manifests_without_secrets() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("cutover.toml");
    std::fs::write(&config, CONFIG).expect("config");

    let yaml = render(&config, &["--version", "v7"]);
    assert!(yaml.status.success(), "{}", stderr(&yaml));
    let text = stdout(&yaml);
    for secret in ["value-from-the-environment", "literal-token-value"] {
        assert!(!text.contains(secret), "{secret} written:\n{text}");
    }
    let docs = yaml_rust2::YamlLoader::load_from_str(&text).expect("YAML");
    let kinds: Vec<&str> = docs.iter().filter_map(|d| d["kind"].as_str()).collect();
    assert_eq!(
        kinds,
        [
            "ServiceAccount",
            "Role",
            "RoleBinding",
            "Deployment",
            "Deployment",
            "Service",
            "Service",
            "HTTPRoute"
        ]
    );
    assert!(
        text.contains("Secret shop-production is not rendered and must exist first, with keys: API_TOKEN, DB_PASSWORD"),
        "{text}"
    );

    let json = render(
        &config,
        &["--version", "v7", "--json", "--create-namespace"],
    );
    assert!(json.status.success(), "{}", stderr(&json));
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("JSON");
    assert_eq!(
        validate(&value).first().map(String::as_str),
        Some("Namespace")
    );
    assert!(!stdout(&json).contains("value-from-the-environment"));

    let out = dir.path().join("manifests");
    let files = render(
        &config,
        &["--version", "v7", "--out", out.to_str().expect("utf-8")],
    );
    assert!(files.status.success(), "{}", stderr(&files));
    let mut names: Vec<String> = std::fs::read_dir(&out)
        .expect("written")
        .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(
        names.first().map(String::as_str),
        Some("01-serviceaccount-cutover.yaml")
    );
    assert_eq!(
        names.last().map(String::as_str),
        Some("08-httproute-web.yaml")
    );
    assert!(
        names.contains(&"04-deployment-jobs.yaml".to_owned()),
        "{names:?}"
    );
    assert!(stdout(&files).contains("must exist in namespace shop-production"));
}

#[test]
fn render_refuses_a_process_service_with_exit_2() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("cutover.toml");
    std::fs::write(
        &config,
        "[app]\nname = \"shop\"\n[service.web]\ncommand = [\"./web\", \"--port\", \"{port}\"]\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n",
    )
    .expect("config");
    let out = render(&config, &["--version", "v1"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("service `web` uses the process driver"),
        "{}",
        stderr(&out)
    );
    assert!(stdout(&out).is_empty(), "nothing half-rendered");
    let json = render(&config, &["--version", "v1", "--json"]);
    assert_eq!(json.status.code(), Some(2));
    let value: serde_json::Value = serde_json::from_str(&stdout(&json)).expect("JSON error");
    assert_eq!(value["error"], "usage");
    let missing = render(&config, &[]);
    assert_eq!(missing.status.code(), Some(2), "--version is required");
}

#[test]
fn render_of_an_initialised_compose_repository_validates() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("docker-compose.yml"),
        "services:\n  api:\n    build: .\n    ports: [\"3000:3000\"]\n  db:\n    image: postgres:16\n    environment:\n      POSTGRES_PASSWORD: example\n",
    )
    .expect("compose");
    std::fs::write(dir.path().join("Dockerfile"), "FROM node:20\nEXPOSE 3000\n")
        .expect("Dockerfile");
    let init = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("init")
        .arg(dir.path())
        .env("NO_COLOR", "1")
        .output()
        .expect("init");
    assert!(init.status.success(), "{}", stderr(&init));
    let config = dir.path().join("cutover.toml");
    let out = render(&config, &["--version", "v1", "--json"]);
    assert!(
        out.status.success(),
        "{}\n{}",
        stderr(&out),
        std::fs::read_to_string(&config).unwrap_or_default()
    );
    let value: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("JSON");
    let kinds = validate(&value);
    assert!(kinds.contains(&"HTTPRoute".to_owned()), "{kinds:?}");
}

#[test]
fn cutover_assess_finds_no_plaintext_secret_nor_missing_readiness_in_the_output() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("cutover.toml");
    std::fs::write(&config, CONFIG).expect("config");
    let out = dir.path().join("manifests");
    let files = render(
        &config,
        &["--version", "v7", "--out", out.to_str().expect("utf-8")],
    );
    assert!(files.status.success(), "{}", stderr(&files));
    let assess = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("assess")
        .arg(&out)
        .args(["--format", "json"])
        .env("NO_COLOR", "1")
        .output()
        .expect("assess");
    assert!(assess.status.success(), "{}", stderr(&assess));
    let report: serde_json::Value = serde_json::from_str(&stdout(&assess)).expect("JSON");
    let rules: Vec<&str> = report["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter_map(|f| f["rule"].as_str())
        .collect();
    // The kubernetes pass read the Deployments (it has advice on them)...
    assert!(rules.contains(&"kubernetes/no-liveness-probe"), "{rules:?}");
    // ...and found neither a secret in plain text nor an http service
    // without a readiness probe.
    assert!(!rules.contains(&"kubernetes/plaintext-secret"), "{rules:?}");
    assert!(
        !rules.contains(&"kubernetes/no-readiness-probe"),
        "{rules:?}"
    );
}
