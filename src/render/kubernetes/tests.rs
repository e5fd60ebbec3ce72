//! `cutover render kubernetes` against the contracts it must meet: every
//! object validates against Kubernetes' published JSON schemas for v1.33
//! (vendored with their licence in tests/schemas/kubernetes, from the PyPI
//! package kubernetes-validate), and every HTTPRoute against the
//! `gateway-api` crate's types (their derived CRD schema, and a round trip
//! that would drop any field they do not have). No cluster runs here.

use std::path::{Path, PathBuf};

use kube::CustomResourceExt;

use super::{Options, References, RenderError, Rendered, render, to_yaml};
use crate::config::parse_unexpanded;

fn schema_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/schemas/kubernetes")
}

/// The validator of the vendored schema of `kind`.
fn validator(kind: &str) -> jsonschema::Validator {
    let file = match kind {
        "Namespace" => "namespace-v1.json",
        "ServiceAccount" => "serviceaccount-v1.json",
        "Role" => "role-rbac-v1.json",
        "RoleBinding" => "rolebinding-rbac-v1.json",
        "Deployment" => "deployment-apps-v1.json",
        "Service" => "service-v1.json",
        "HTTPRoute" => return httproute_validator(),
        other => panic!("no schema vendored for {other}"),
    };
    let text = std::fs::read_to_string(schema_dir().join(file)).expect("the vendored schema");
    let schema: serde_json::Value = serde_json::from_str(&text).expect("schema is JSON");
    jsonschema::options()
        .build(&schema)
        .expect("the schema compiles")
}

/// The openAPIV3Schema of the HTTPRoute CRD the `gateway-api` crate derives
/// from its types (no published Gateway API schema is vendored: none ships
/// in a crates.io or PyPI package we can use).
fn httproute_validator() -> jsonschema::Validator {
    let crd = serde_json::to_value(gateway_api::apis::standard::httproutes::HttpRoute::crd())
        .expect("CRD as JSON");
    let schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"].clone();
    assert!(schema.is_object(), "the CRD has a schema: {crd}");
    jsonschema::options()
        .build(&schema)
        .expect("the CRD schema compiles")
}

fn errors(kind: &str, object: &serde_json::Value) -> Vec<String> {
    let mut found: Vec<String> = validator(kind)
        .iter_errors(object)
        .map(|e| format!("{e} at {}", e.instance_path()))
        .collect();
    if kind == "HTTPRoute" {
        // Unknown fields: the crate's types would drop them.
        match serde_json::from_value::<gateway_api::apis::standard::httproutes::HttpRoute>(
            object.clone(),
        ) {
            Ok(route) => {
                let back = serde_json::to_value(&route).expect("back to JSON");
                if &back != object {
                    found.push(format!("does not round-trip: {back} != {object}"));
                }
            }
            Err(e) => found.push(format!("not an HTTPRoute: {e}")),
        }
    }
    found
}

fn options(environment: Option<&str>, version: &str) -> Options {
    Options {
        environment: environment.map(str::to_owned),
        version: version.to_owned(),
        namespace: None,
        create_namespace: true,
        gateway: "infra/edge".to_owned(),
        secret: None,
    }
}

fn try_render(source: &str, options: &Options) -> Result<Rendered, RenderError> {
    let config = parse_unexpanded(source, Path::new("/srv/app/cutover.toml"))
        .unwrap_or_else(|e| panic!("config parses: {e:?}"));
    render(&config, &References::parse(source), options)
}

fn rendered(source: &str, environment: Option<&str>, version: &str) -> Rendered {
    try_render(source, &options(environment, version)).unwrap_or_else(|e| panic!("renders: {e}"))
}

fn assert_all_valid(rendered: &Rendered) {
    for manifest in &rendered.manifests {
        let found = errors(manifest.kind, &manifest.object);
        assert!(
            found.is_empty(),
            "{} {} is invalid: {found:#?}\n{}",
            manifest.kind,
            manifest.name,
            serde_json::to_string_pretty(&manifest.object).unwrap_or_default()
        );
        assert_eq!(manifest.object["kind"], manifest.kind);
    }
}

fn find<'a>(rendered: &'a Rendered, kind: &str, name: &str) -> &'a serde_json::Value {
    &rendered
        .manifests
        .iter()
        .find(|m| m.kind == kind && m.name == name)
        .unwrap_or_else(|| panic!("no {kind} {name}"))
        .object
}

const BLUE_GREEN: &str = r#"
[app]
name = "shop"

[service.web]
driver = "docker"
image = "registry.example/shop:{version}"
port = 8080
replicas = 3
host = "Shop.Example"
path_prefix = "/"
health = { path = "/healthz", interval = "500ms", timeout = "2s", healthy = 2, unhealthy = 3, start_timeout = "90s" }
resources = { memory = "256m", cpus = 0.5 }
env = { RUST_LOG = "info", GREETING = "costs $(5)" }

[environment.production]
listen = "0.0.0.0:8080"
"#;

const CANARY: &str = r#"
[app]
name = "shop"

[service.api]
driver = "docker"
image = "registry.example/api:{version}"
port = 3000
path_prefix = "/api"
pull = true
stop_signal = "SIGINT"

[service.api.rollout]
strategy = "canary"
steps = [5, 25, 100]
step_duration = "2m"
analysis = { max_error_rate = 0.01, max_p99 = "800ms", min_requests = 100 }

[service.mailer]
kind = "worker"
driver = "docker"
image = "registry.example/mailer:{version}"
replicas = 2
health = { command = ["/bin/mailer", "--check"] }
env = { SMTP_PASSWORD = "${SMTP_PASSWORD}" }

[environment.staging]
listen = "127.0.0.1:8081"

[environment.production]
listen = "0.0.0.0:8080"

[environment.production.service.api]
replicas = 4
env = { MODE = "production" }
"#;

/// Literal secrets that must never reach a manifest.
const LITERAL_SECRETS: [&str; 3] = ["hunter2-literal", "tok-0123456789", "pw-in-a-url"];

const SECRETS: &str = r#"
[app]
name = "shop"

[service.web]
driver = "docker"
image = "registry.example/shop@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
port = 8080
env = { DB_PASSWORD = "hunter2-literal", API_TOKEN = "tok-0123456789", DATABASE_URL = "postgres://shop:pw-in-a-url@db:5432/shop", CACHE_URL = "redis://cache:6379", SESSION_KEY = "${SESSION_KEY}", DSN = "postgres://shop:${PG_PASSWORD}@db/shop" }

[environment.production]
listen = "0.0.0.0:8080"

[database.main]
url = "${DATABASE_URL}"
migrations = "migrations"
"#;

#[test]
fn a_blue_green_service_renders_valid_objects() {
    let rendered = rendered(BLUE_GREEN, None, "v1.2.3");
    assert_all_valid(&rendered);
    let kinds: Vec<(&str, &str)> = rendered
        .manifests
        .iter()
        .map(|m| (m.kind, m.name.as_str()))
        .collect();
    assert_eq!(
        kinds,
        [
            ("Namespace", "shop-production"),
            ("ServiceAccount", "cutover"),
            ("Role", "cutover"),
            ("RoleBinding", "cutover"),
            ("Deployment", "web-v1-2-3"),
            ("Service", "web-stable"),
            ("Service", "web-canary"),
            ("HTTPRoute", "web"),
        ]
    );
    let deployment = find(&rendered, "Deployment", "web-v1-2-3");
    let spec = &deployment["spec"];
    assert_eq!(spec["replicas"], 3);
    assert_eq!(spec["selector"]["matchLabels"]["cutover.release"], "v1.2.3");
    assert_eq!(spec["strategy"]["rollingUpdate"]["maxUnavailable"], 0);
    assert_eq!(spec["progressDeadlineSeconds"], 90);
    let container = &spec["template"]["spec"]["containers"][0];
    assert_eq!(container["image"], "registry.example/shop:v1.2.3");
    let probe = &container["readinessProbe"];
    assert_eq!(probe["httpGet"]["path"], "/healthz");
    assert_eq!(probe["periodSeconds"], 1, "500ms rounds up to a second");
    assert_eq!(probe["timeoutSeconds"], 2);
    assert_eq!(probe["successThreshold"], 2);
    assert_eq!(probe["failureThreshold"], 3);
    assert_eq!(container["resources"]["limits"]["cpu"], "500m");
    assert_eq!(container["resources"]["limits"]["memory"], "268435456");
    let env = serde_json::to_string(&container["env"]).expect("json");
    assert!(env.contains(r#"{"name":"PORT","value":"8080"}"#), "{env}");
    assert!(env.contains(r#""value":"costs $$(5)""#), "{env}");

    let stable = find(&rendered, "Service", "web-stable");
    assert_eq!(stable["spec"]["selector"]["cutover.release"], "v1.2.3");
    let route = find(&rendered, "HTTPRoute", "web");
    assert_eq!(route["spec"]["hostnames"][0], "shop.example");
    assert_eq!(route["spec"]["parentRefs"][0]["namespace"], "infra");
    assert_eq!(route["spec"]["parentRefs"][0]["name"], "edge");
    let backends = &route["spec"]["rules"][0]["backendRefs"];
    assert_eq!(backends[0]["name"], "web-stable");
    assert_eq!(backends[0]["weight"], 100);
    assert_eq!(backends[1]["name"], "web-canary");
    assert_eq!(backends[1]["weight"], 0);
}

#[test]
fn a_canary_and_a_worker_render_valid_objects_in_each_environment() {
    for environment in ["staging", "production"] {
        let rendered = rendered(CANARY, Some(environment), "2026.12.04-1");
        assert_all_valid(&rendered);
        assert_eq!(rendered.namespace, format!("shop-{environment}"));
        let api = find(&rendered, "Deployment", "api-2026-12-04-1");
        let replicas = if environment == "production" { 4 } else { 1 };
        assert_eq!(api["spec"]["replicas"], replicas);
        let container = &api["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(container["imagePullPolicy"], "Always");
        let route = find(&rendered, "HTTPRoute", "api");
        assert!(
            route["spec"].get("hostnames").is_none(),
            "no host: any host"
        );
        assert_eq!(
            route["spec"]["rules"][0]["matches"][0]["path"]["value"],
            "/api"
        );
        let mailer = find(&rendered, "Deployment", "mailer");
        assert_eq!(
            mailer["spec"]["selector"]["matchLabels"]
                .as_object()
                .map(|m| m.contains_key("cutover.release")),
            Some(false),
            "a worker's selector outlives its releases"
        );
        assert_eq!(
            mailer["spec"]["template"]["metadata"]["labels"]["cutover.release"],
            "2026.12.04-1"
        );
        assert_eq!(
            mailer["spec"]["strategy"]["rollingUpdate"]["maxUnavailable"],
            0
        );
        let worker = &mailer["spec"]["template"]["spec"]["containers"][0];
        assert_eq!(
            worker["readinessProbe"]["exec"]["command"],
            serde_json::json!(["/bin/mailer", "--check"])
        );
        assert!(worker.get("ports").is_none());
        assert_eq!(
            worker["env"][0]["valueFrom"]["secretKeyRef"],
            serde_json::json!({"name": format!("shop-{environment}"), "key": "SMTP_PASSWORD"})
        );
        let yaml = to_yaml(&rendered);
        assert!(yaml.contains("stop_signal SIGINT is not written"), "{yaml}");
    }
    let production = rendered(CANARY, Some("production"), "v2");
    let api = find(&production, "Deployment", "api-v2");
    let env = &api["spec"]["template"]["spec"]["containers"][0]["env"];
    assert!(
        serde_json::to_string(env)
            .expect("json")
            .contains(r#"{"name":"MODE","value":"production"}"#)
    );
}

#[test]
fn no_secret_value_is_written_and_the_secret_keys_are_listed() {
    let rendered = rendered(SECRETS, None, "v1");
    assert_all_valid(&rendered);
    let yaml = to_yaml(&rendered);
    let json = serde_json::to_string(&rendered).expect("json");
    for secret in LITERAL_SECRETS {
        assert!(!yaml.contains(secret), "{secret} in the YAML:\n{yaml}");
        assert!(!json.contains(secret), "{secret} in the JSON");
    }
    let keys: Vec<&str> = rendered.secrets["shop-production"]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(
        keys,
        [
            "API_TOKEN",
            "DATABASE_URL",
            "DB_PASSWORD",
            "PG_PASSWORD",
            "SESSION_KEY"
        ]
    );
    assert!(yaml.contains("# Secret shop-production is not rendered and must exist first"));
    assert!(
        yaml.contains("create secret generic shop-production"),
        "{yaml}"
    );
    assert!(
        yaml.contains("postgres://shop:$(PG_PASSWORD)@db/shop"),
        "{yaml}"
    );
    assert!(
        yaml.contains("redis://cache:6379"),
        "a plain value stays: {yaml}"
    );
}

#[test]
fn the_validators_reject_broken_objects() {
    let rendered = rendered(BLUE_GREEN, None, "v1");
    let mut deployment = find(&rendered, "Deployment", "web-v1").clone();
    assert!(errors("Deployment", &deployment).is_empty());
    deployment["spec"]["replicas"] = serde_json::json!("three");
    assert!(
        !errors("Deployment", &deployment).is_empty(),
        "a string replicas"
    );
    let mut typo = find(&rendered, "Deployment", "web-v1").clone();
    typo["spec"]["template"]["spec"]["containers"][0]["imagee"] = serde_json::json!("x");
    assert!(!errors("Deployment", &typo).is_empty(), "an unknown field");
    let mut service = find(&rendered, "Service", "web-stable").clone();
    service["spec"]["ports"][0]
        .as_object_mut()
        .map(|p| p.remove("port"));
    assert!(
        !errors("Service", &service).is_empty(),
        "a port without its number"
    );

    let mut route = find(&rendered, "HTTPRoute", "web").clone();
    assert!(errors("HTTPRoute", &route).is_empty());
    route["spec"]["rules"][0]["backendRefs"][0]["weight"] = serde_json::json!("most");
    assert!(!errors("HTTPRoute", &route).is_empty(), "a string weight");
    let mut unknown = find(&rendered, "HTTPRoute", "web").clone();
    unknown["spec"]["rules"][0]["backendRefs"][0]["weigth"] = serde_json::json!(5);
    assert!(
        !errors("HTTPRoute", &unknown).is_empty(),
        "an unknown field"
    );
}

#[test]
fn a_process_service_is_refused_naming_what_to_add() {
    let fixture = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("crates/assess/tests/fixtures/clean/cutover.toml");
    let source = std::fs::read_to_string(&fixture).expect("the repository's example config");
    let err = try_render(&source, &options(Some("production"), "v1")).expect_err("refused");
    let message = err.to_string();
    assert!(matches!(err, RenderError::NoImage { .. }), "{message}");
    assert!(
        message.contains("service `web` uses the process driver"),
        "{message}"
    );
    assert!(
        message.contains(r#"driver = \"docker\""#) || message.contains(r#"driver = "docker""#),
        "{message}"
    );
}

#[test]
fn what_kubernetes_cannot_express_is_refused() {
    let with =
        |extra: &str| BLUE_GREEN.replace("port = 8080\n", &format!("port = 8080\n{extra}\n"));
    let volumes = try_render(&with(r#"volumes = ["data:/data"]"#), &options(None, "v1"));
    assert!(
        matches!(volumes, Err(RenderError::Volumes { .. })),
        "{volumes:?}"
    );
    let image = BLUE_GREEN.replace(
        "registry.example/shop:{version}",
        "${REGISTRY}/shop:{version}",
    );
    let image = try_render(&image, &options(None, "v1"));
    assert!(
        matches!(image, Err(RenderError::ImageVariable { .. })),
        "{image:?}"
    );
    let ip = BLUE_GREEN.replace("Shop.Example", "192.0.2.7");
    let ip = try_render(&ip, &options(None, "v1"));
    assert!(matches!(ip, Err(RenderError::Host { .. })), "{ip:?}");
    let version = try_render(BLUE_GREEN, &options(None, "1.0+build.7"));
    assert!(
        matches!(version, Err(RenderError::LabelValue { .. })),
        "'+' is not in a label value: {version:?}"
    );
    let bad = try_render(BLUE_GREEN, &options(None, "-rf"));
    assert!(matches!(bad, Err(RenderError::Version(_))), "{bad:?}");
    let unknown = try_render(BLUE_GREEN, &options(Some("nowhere"), "v1"));
    assert!(
        matches!(unknown, Err(RenderError::Environment(_))),
        "{unknown:?}"
    );
}

#[test]
fn the_yaml_reads_back_as_the_objects() {
    let rendered = rendered(SECRETS, None, "v1");
    let yaml = to_yaml(&rendered);
    let docs = yaml_rust2::YamlLoader::load_from_str(&yaml).expect("YAML parses");
    assert_eq!(docs.len(), rendered.manifests.len());
    for (doc, manifest) in docs.iter().zip(&rendered.manifests) {
        assert_eq!(doc["kind"].as_str(), Some(manifest.kind));
        assert_eq!(
            doc["metadata"]["name"].as_str(),
            Some(manifest.name.as_str())
        );
    }
    // A port stays a number, a string that looks like one stays a string.
    let web = &docs[4];
    let port = &web["spec"]["template"]["spec"]["containers"][0]["ports"][0]["containerPort"];
    assert_eq!(port.as_i64(), Some(8080));
}

#[test]
fn an_environment_override_wins_over_the_service_env_either_way() {
    let source = r#"
[app]
name = "shop"

[service.web]
driver = "docker"
image = "shop:{version}"
port = 8080
env = { A = "${FROM_SECRET}", B = "plain", C = "${KEPT}" }

[environment.production]
listen = "0.0.0.0:8080"

[environment.production.service.web]
env = { A = "now-plain", B = "${NOW_SECRET}" }
"#;
    let rendered = rendered(source, None, "v1");
    assert_all_valid(&rendered);
    let deployment = find(&rendered, "Deployment", "web-v1");
    let env = &deployment["spec"]["template"]["spec"]["containers"][0]["env"];
    let by_name = |name: &str| {
        env.as_array()
            .and_then(|all| all.iter().find(|e| e["name"] == name))
            .cloned()
            .unwrap_or_else(|| panic!("no {name} in {env}"))
    };
    assert_eq!(by_name("A")["value"], "now-plain");
    assert_eq!(
        by_name("B")["valueFrom"]["secretKeyRef"]["key"],
        "NOW_SECRET"
    );
    assert_eq!(by_name("C")["valueFrom"]["secretKeyRef"]["key"], "KEPT");
    let keys: Vec<&str> = rendered.secrets["shop-production"]
        .iter()
        .map(String::as_str)
        .collect();
    assert_eq!(keys, ["KEPT", "NOW_SECRET"]);
}
