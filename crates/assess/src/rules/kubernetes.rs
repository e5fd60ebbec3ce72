//! Kubernetes manifest rules: readiness and liveness probes (and the two
//! being the same), resource requests and limits, `latest` images, running as
//! root, single replicas, PodDisruptionBudgets, rolling-update settings that
//! take capacity away; and the deployment facts manifests show (health-gated
//! rollouts, `maxUnavailable: 0`, Argo Rollouts and Flagger canaries with
//! analysis). Reads every `.yaml`/`.yml` file with `apiVersion` and `kind`,
//! multi-document, outside test folders; Helm templates (`{{ … }}`) are
//! skipped, since they are not YAML until rendered.

use super::env_secrets::{is_literal_secret, is_secret_name, redacted, url_password};
use super::image::{ImageRef, Pin};
use super::{Context, RuleInfo};
use crate::finding::{Area, Evidence, Severity};
use crate::repo::RepoFile;
use crate::yaml::{self, Node, Value};

pub const NO_READINESS_PROBE: RuleInfo = RuleInfo {
    id: "kubernetes/no-readiness-probe",
    area: Area::DeploymentAutomation,
    severity: Severity::High,
    title: "Container serving traffic has no readiness probe",
    why: "Without a readiness probe a pod receives traffic as soon as its process starts: during every rollout, requests reach pods that are still booting and fail.",
    fix: "Add a `readinessProbe` to the container: `httpGet: {path: /readyz, port: http}`, `periodSeconds: 5`, `failureThreshold: 3`, checking what the pod needs to serve (database reachable, caches warm).",
    cutover: Some(
        "[service.web]\nhealth = { path = \"/readyz\", healthy = 2, unhealthy = 3, start_timeout = \"60s\" }",
    ),
};

pub const NO_LIVENESS_PROBE: RuleInfo = RuleInfo {
    id: "kubernetes/no-liveness-probe",
    area: Area::DeploymentAutomation,
    severity: Severity::Low,
    title: "Container has no liveness probe",
    why: "A process that hangs without exiting is never restarted.",
    fix: "Add a `livenessProbe` that checks only the process itself (`httpGet: {path: /healthz, port: http}`), with a generous `failureThreshold` (e.g. 6) so a slow moment does not restart the pod.",
    cutover: None,
};

pub const SAME_PROBES: RuleInfo = RuleInfo {
    id: "kubernetes/liveness-equals-readiness",
    area: Area::DeploymentAutomation,
    severity: Severity::Low,
    title: "Liveness probe is the same as the readiness probe",
    why: "Readiness answers \"send me traffic?\" and may depend on the database; liveness answers \"restart me?\" and must not. With the same check, a database outage makes every pod fail liveness and Kubernetes restarts them all, turning a dependency blip into an outage.",
    fix: "Point the liveness probe at a check of the process only (`/healthz`) and keep dependencies in the readiness probe (`/readyz`); give liveness a higher `failureThreshold`.",
    cutover: None,
};

pub const NO_RESOURCES: RuleInfo = RuleInfo {
    id: "kubernetes/no-resources",
    area: Area::DeploymentAutomation,
    severity: Severity::Medium,
    title: "Container without resource requests or limits",
    why: "Without requests the scheduler cannot place the pod sensibly and it is evicted first under pressure (BestEffort); without a memory limit one leak can starve its neighbours on the node.",
    fix: "Set `resources.requests` (`cpu: 100m`, `memory: 128Mi`, from observed use) and `resources.limits.memory` (e.g. `256Mi`) on the container.",
    cutover: Some("[service.web]\nresources = { memory = \"256m\", cpus = 0.5 }"),
};

pub const UNPINNED_IMAGE: RuleInfo = RuleInfo {
    id: "kubernetes/unpinned-image",
    area: Area::Containerization,
    severity: Severity::Medium,
    title: "Container image without a tag or `latest`",
    why: "With `latest`, each node may run a different build depending on when it pulled, and rolling back to the previous manifest does not bring back the previous image.",
    fix: "Deploy an immutable tag per release (`ghcr.io/acme/api:1.4.2` or the commit SHA), best with its digest (`@sha256:…`).",
    cutover: None,
};

pub const RUN_AS_ROOT: RuleInfo = RuleInfo {
    id: "kubernetes/run-as-root",
    area: Area::Containerization,
    severity: Severity::Low,
    title: "Pod may run as root",
    why: "Without `runAsNonRoot: true` Kubernetes starts the container as whatever user the image says, root by default.",
    fix: "Set `securityContext: {runAsNonRoot: true, runAsUser: 10001}` on the pod (and `allowPrivilegeEscalation: false` on the container).",
    cutover: None,
};

pub const SINGLE_REPLICA: RuleInfo = RuleInfo {
    id: "kubernetes/single-replica",
    area: Area::DeploymentAutomation,
    severity: Severity::Low,
    title: "Workload serving traffic runs a single replica",
    why: "With one pod, a node drain, an eviction or a crash is an outage until it is rescheduled.",
    fix: "Run at least `replicas: 2` (or a HorizontalPodAutoscaler with `minReplicas: 2`) with a PodDisruptionBudget.",
    cutover: Some("[service.web]\nreplicas = 2"),
};

pub const NO_PDB: RuleInfo = RuleInfo {
    id: "kubernetes/no-pdb",
    area: Area::DeploymentAutomation,
    severity: Severity::Low,
    title: "No PodDisruptionBudget for a replicated workload",
    why: "Without a PodDisruptionBudget a node drain or cluster upgrade may evict every replica at once.",
    fix: "Add a `PodDisruptionBudget` with `minAvailable: 1` (or `maxUnavailable: 1`) and `selector.matchLabels` equal to the pod template's labels.",
    cutover: None,
};

pub const ROLLOUT_CAPACITY: RuleInfo = RuleInfo {
    id: "kubernetes/rollout-capacity",
    area: Area::DeploymentAutomation,
    severity: Severity::Medium,
    title: "Rolling update takes serving capacity away",
    why: "`maxUnavailable` above zero with one or two replicas stops half or all of the pods before their replacements are ready, and `Recreate` stops every pod first: each deploy drops capacity or serves errors.",
    fix: "Set `strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}` so a new pod is ready before an old one stops.",
    cutover: Some("[service.web.rollout]\nstrategy = \"blue-green\""),
};

pub const PLAINTEXT_SECRET: RuleInfo = RuleInfo {
    id: "kubernetes/plaintext-secret",
    area: Area::Security,
    severity: Severity::Medium,
    title: "Plaintext secret in a container's env",
    why: "A password written as an `env` value sits in the repository and in the Deployment object, readable by anyone who can `kubectl get deployment -o yaml`, without the access control and encryption at rest Secrets get.",
    fix: "Move it into a Secret (created outside the repository, or with Sealed Secrets / External Secrets) and reference it: `valueFrom: {secretKeyRef: {name: app-db, key: password}}`; rotate the committed value.",
    cutover: None,
};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[
    &PLAINTEXT_SECRET,
    &NO_READINESS_PROBE,
    &NO_LIVENESS_PROBE,
    &SAME_PROBES,
    &NO_RESOURCES,
    &UNPINNED_IMAGE,
    &RUN_AS_ROOT,
    &SINGLE_REPLICA,
    &NO_PDB,
    &ROLLOUT_CAPACITY,
];

/// One Kubernetes object and where it is.
struct Object<'a> {
    file: &'a RepoFile,
    text: &'a str,
    node: Node,
}

impl Object<'_> {
    fn kind(&self) -> &str {
        self.node
            .get("kind")
            .and_then(Node::str)
            .unwrap_or_default()
    }

    fn name(&self) -> &str {
        self.node
            .path(&["metadata", "name"])
            .and_then(Node::str)
            .unwrap_or_default()
    }

    fn at(&self, line: usize) -> Evidence {
        Evidence::at(&self.file.path, self.text, line)
    }

    /// The `kind:` line.
    fn kind_line(&self) -> usize {
        self.node
            .entry("kind")
            .map(|(k, _)| k.line)
            .unwrap_or(self.node.line)
    }
}

/// Runs the pass.
pub fn run(cx: &mut Context<'_>) {
    let repo = cx.repo;
    let mut objects = Vec::new();
    for file in repo.with_ext(&["yaml", "yml"]) {
        if super::compose::is_compose_name(&file.name) || super::dockerfile::in_test_folder(file) {
            continue;
        }
        let Some(text) = repo.text(file) else {
            continue;
        };
        if !text.contains("apiVersion") || !text.contains("kind") || text.contains("{{") {
            continue;
        }
        for doc in yaml::parse(text) {
            let items: Vec<Node> = if doc.get("kind").and_then(Node::str) == Some("List") {
                doc.get("items")
                    .map(|i| i.items().to_vec())
                    .unwrap_or_default()
            } else {
                vec![doc]
            };
            for node in items {
                if node.get("apiVersion").is_some()
                    && node.get("kind").and_then(Node::str).is_some()
                {
                    objects.push(Object { file, text, node });
                }
            }
        }
    }
    let cluster = Cluster::new(&objects);
    let mut manifest_files: Vec<&str> = Vec::new();
    for obj in &objects {
        match obj.kind() {
            "Deployment" | "StatefulSet" | "DaemonSet" | "Rollout" => {
                if !manifest_files.contains(&obj.file.path.as_str()) {
                    manifest_files.push(&obj.file.path);
                    cx.fact(
                        "deploy.manifests",
                        format!("{} {}", obj.kind(), obj.name()),
                        obj.at(obj.kind_line()),
                    );
                }
                check_workload(cx, obj, &cluster);
            }
            "Canary"
                if obj
                    .node
                    .get("apiVersion")
                    .and_then(Node::str)
                    .is_some_and(|v| v.starts_with("flagger.app")) =>
            {
                cx.fact(
                    "deploy.progressive",
                    format!("Flagger Canary {}", obj.name()),
                    obj.at(obj.kind_line()),
                );
                if let Some((line, _)) = obj.node.get("spec").and_then(|s| keyed(s, "analysis")) {
                    cx.fact(
                        "deploy.auto-rollback",
                        format!("Flagger analysis rolls back Canary {}", obj.name()),
                        obj.at(line),
                    );
                }
            }
            _ => {}
        }
    }
    super::deploy_tools::run(cx);
}

/// The value under `key` and the line of the key (a block mapping's own
/// line is that of its first entry).
fn keyed<'n>(node: &'n Node, key: &str) -> Option<(usize, &'n Node)> {
    node.entry(key).map(|(k, v)| (k.line, v))
}

/// Whether any Kubernetes manifest (a Helm template too) outside test
/// folders declares a readiness, liveness or startup probe: a text search,
/// no parsing (file texts are read once and shared with [`run`]).
pub fn has_probes(repo: &crate::repo::Repo) -> bool {
    repo.with_ext(&["yaml", "yml"])
        .filter(|f| !super::dockerfile::in_test_folder(f))
        .filter_map(|f| repo.text(f))
        .any(|t| {
            t.contains("apiVersion")
                && (t.contains("readinessProbe:")
                    || t.contains("livenessProbe:")
                    || t.contains("startupProbe:"))
        })
}

/// What workloads are matched against, gathered once: Services' selectors,
/// PodDisruptionBudgets' `matchLabels`, and HPAs' targets with their minimum.
struct Cluster<'a> {
    service_selectors: Vec<Vec<(&'a str, &'a str)>>,
    pdb_selectors: Vec<Vec<(&'a str, &'a str)>>,
    hpa_min: Vec<(&'a str, u64)>,
}

impl<'a> Cluster<'a> {
    fn new(objects: &'a [Object<'a>]) -> Self {
        let mut c = Cluster {
            service_selectors: Vec::new(),
            pdb_selectors: Vec::new(),
            hpa_min: Vec::new(),
        };
        for o in objects {
            match o.kind() {
                "Service" => {
                    let sel = labels(o.node.path(&["spec", "selector"]));
                    if !sel.is_empty() {
                        c.service_selectors.push(sel);
                    }
                }
                "PodDisruptionBudget" => {
                    c.pdb_selectors
                        .push(labels(o.node.path(&["spec", "selector", "matchLabels"])))
                }
                "HorizontalPodAutoscaler" => {
                    if let Some(target) = o
                        .node
                        .path(&["spec", "scaleTargetRef", "name"])
                        .and_then(Node::str)
                    {
                        let min = o
                            .node
                            .path(&["spec", "minReplicas"])
                            .and_then(Node::str)
                            .and_then(|m| m.parse::<u64>().ok())
                            .unwrap_or(1);
                        c.hpa_min.push((target, min));
                    }
                }
                _ => {}
            }
        }
        c
    }
}

/// Labels as pairs.
fn labels(node: Option<&Node>) -> Vec<(&str, &str)> {
    node.map(|n| {
        n.entries()
            .iter()
            .filter_map(|(k, v)| v.str().map(|v| (k.text.as_str(), v)))
            .collect()
    })
    .unwrap_or_default()
}

/// Whether every pair of `selector` is among `labels`.
fn selects(selector: &[(&str, &str)], labels: &[(&str, &str)]) -> bool {
    selector.iter().all(|pair| labels.contains(pair))
}

/// Two nodes equal in value, whatever their lines.
fn same(a: &Node, b: &Node) -> bool {
    match (&a.value, &b.value) {
        (Value::Map(x), Value::Map(y)) => {
            x.len() == y.len()
                && x.iter()
                    .all(|(k, v)| y.iter().any(|(k2, v2)| k.text == k2.text && same(v, v2)))
        }
        (Value::Seq(x), Value::Seq(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(a, b)| same(a, b))
        }
        (x, y) => x == y,
    }
}

/// A `maxUnavailable` (`1`, `"25%"`) at `replicas`, rounded down as Kubernetes does.
fn effective_unavailable(value: &str, replicas: u64) -> Option<u64> {
    match value.trim().strip_suffix('%') {
        Some(pct) => pct
            .trim()
            .parse::<u64>()
            .ok()
            .map(|p| p.saturating_mul(replicas) / 100),
        None => value.trim().parse().ok(),
    }
}

fn check_workload(cx: &mut Context<'_>, obj: &Object<'_>, cluster: &Cluster<'_>) {
    let kind = obj.kind();
    let name = obj.name();
    let spec = obj.node.get("spec");
    let Some(pod) = spec.and_then(|s| s.path(&["template", "spec"])) else {
        return;
    };
    let template_labels = labels(spec.and_then(|s| s.path(&["template", "metadata", "labels"])));
    let containers = pod.get("containers").map(Node::items).unwrap_or_default();

    // Replicas: the HPA's minimum when one scales this workload.
    let hpa_min = cluster
        .hpa_min
        .iter()
        .find(|(target, _)| *target == name)
        .map(|(_, min)| *min);
    let replicas_node = spec.and_then(|s| s.get("replicas"));
    let replicas = hpa_min.unwrap_or_else(|| {
        replicas_node
            .and_then(Node::str)
            .and_then(|r| r.parse().ok())
            .unwrap_or(1)
    });

    let service_selects = !template_labels.is_empty()
        && cluster
            .service_selectors
            .iter()
            .any(|sel| selects(sel, &template_labels));
    let has_ports = containers.iter().any(|c| {
        !c.get("ports")
            .map(Node::items)
            .unwrap_or_default()
            .is_empty()
    });
    let serving = service_selects || has_ports;

    // Pod-level user.
    let non_root_at = |ctx: Option<&Node>| -> bool {
        ctx.is_some_and(|c| {
            c.get("runAsNonRoot").and_then(Node::str) == Some("true")
                || c.get("runAsUser")
                    .and_then(Node::str)
                    .and_then(|u| u.parse::<u64>().ok())
                    .is_some_and(|u| u > 0)
        })
    };
    let pod_non_root = non_root_at(pod.get("securityContext"));

    for container in containers {
        let cname = container.get("name").and_then(Node::str).unwrap_or("?");
        let here = obj.at(container.line);
        let readiness = keyed(container, "readinessProbe");
        let liveness = keyed(container, "livenessProbe");
        let startup = keyed(container, "startupProbe");
        match readiness {
            Some((r_line, r)) => {
                cx.fact(
                    "deploy.health-gated",
                    format!("readiness probe on {kind} {name}, container {cname}"),
                    obj.at(r_line),
                );
                if liveness.is_none_or(|(_, l)| !same(l, r)) {
                    cx.fact(
                        "obs.readiness",
                        format!("{kind} {name}, container {cname}: readiness probe apart from liveness"),
                        obj.at(r_line),
                    );
                }
            }
            None if serving => cx.find(
                &NO_READINESS_PROBE,
                here.clone(),
                format!("container `{cname}` of {kind} `{name}` serves traffic but has no readinessProbe"),
            ),
            None => {}
        }
        if let Some((line, _)) = readiness.or(liveness).or(startup) {
            cx.fact(
                "container.healthcheck",
                format!("{kind} {name}, container {cname}: Kubernetes probe"),
                obj.at(line),
            );
        }
        match (liveness, readiness) {
            (None, _) => cx.find(
                &NO_LIVENESS_PROBE,
                here.clone(),
                format!("container `{cname}` of {kind} `{name}` has no livenessProbe"),
            ),
            (Some((l_line, l)), Some((r_line, r))) if same(l, r) => cx.find_with(
                &SAME_PROBES,
                vec![obj.at(l_line), obj.at(r_line)],
                format!("container `{cname}` of {kind} `{name}` uses the same check for liveness and readiness: a failing dependency restarts every pod"),
                SAME_PROBES.fix.to_string(),
            ),
            _ => {}
        }

        let resources = container.get("resources");
        let mut missing = Vec::new();
        if resources
            .and_then(|r| r.get("requests"))
            .is_none_or(|r| r.entries().is_empty())
        {
            missing.push("requests");
        }
        if resources
            .and_then(|r| r.get("limits"))
            .is_none_or(|r| r.entries().is_empty())
        {
            missing.push("limits");
        }
        if !missing.is_empty() {
            cx.find(
                &NO_RESOURCES,
                here.clone(),
                format!(
                    "container `{cname}` of {kind} `{name}` has no resource {}",
                    missing.join(" and no ")
                ),
            );
        }

        if let Some(image) = container.get("image")
            && let Some(r) = image.str().and_then(ImageRef::parse)
            && r.pin() == Pin::Unpinned
        {
            cx.find(
                &UNPINNED_IMAGE,
                obj.at(image.line),
                format!(
                    "container `{cname}` of {kind} `{name}` runs `{}`, which has no version tag",
                    image.str().unwrap_or_default()
                ),
            );
        }

        for var in container.get("env").map(Node::items).unwrap_or_default() {
            let (Some(key), Some(value)) = (
                var.get("name").and_then(Node::str),
                var.get("value").filter(|v| v.str().is_some()),
            ) else {
                continue;
            };
            let text = value.str().unwrap_or_default();
            let secret = if is_secret_name(key) && is_literal_secret(text) {
                Some(text)
            } else {
                url_password(text)
            };
            if let Some(secret) = secret {
                cx.find(
                    &PLAINTEXT_SECRET,
                    redacted(obj.at(value.line), secret),
                    format!(
                        "container `{cname}` of {kind} `{name}` sets `{key}` to a literal secret"
                    ),
                );
            }
        }

        if !pod_non_root && !non_root_at(container.get("securityContext")) {
            cx.find(
                &RUN_AS_ROOT,
                here.clone(),
                format!("container `{cname}` of {kind} `{name}` does not set `runAsNonRoot: true`"),
            );
        }
    }

    if kind == "DaemonSet" {
        return;
    }
    let replicas_line = replicas_node
        .map(|n| n.line)
        .unwrap_or_else(|| obj.kind_line());
    if serving && replicas <= 1 {
        cx.find(
            &SINGLE_REPLICA,
            obj.at(replicas_line),
            format!("{kind} `{name}` serves traffic with a single replica"),
        );
    }
    if replicas > 1 {
        let covered = cluster
            .pdb_selectors
            .iter()
            .any(|sel| selects(sel, &template_labels));
        if !covered {
            cx.find(
                &NO_PDB,
                obj.at(obj.kind_line()),
                format!("{kind} `{name}` runs {replicas} replicas and no PodDisruptionBudget selects its pods"),
            );
        }
    }

    match kind {
        "Deployment" => check_strategy(cx, obj, spec, replicas),
        "Rollout" => check_rollout(cx, obj, spec),
        _ => {}
    }
}

fn check_strategy(cx: &mut Context<'_>, obj: &Object<'_>, spec: Option<&Node>, replicas: u64) {
    let name = obj.name();
    let strategy = spec.and_then(|s| s.get("strategy"));
    if let Some(t) = strategy
        .and_then(|s| s.get("type"))
        .filter(|t| t.str() == Some("Recreate"))
    {
        cx.find(
            &ROLLOUT_CAPACITY,
            obj.at(t.line),
            format!("Deployment `{name}` uses the Recreate strategy: every pod stops before the new ones start"),
        );
        return;
    }
    let Some(max) = strategy.and_then(|s| s.path(&["rollingUpdate", "maxUnavailable"])) else {
        return;
    };
    let Some(value) = max.str() else { return };
    match effective_unavailable(value, replicas) {
        Some(0) => cx.fact(
            "deploy.rolling",
            format!("Deployment {name}: maxUnavailable {value}"),
            obj.at(max.line),
        ),
        Some(n) if replicas <= 2 => cx.find(
            &ROLLOUT_CAPACITY,
            obj.at(max.line),
            format!(
                "Deployment `{name}` allows {n} of its {replicas} replica(s) to be unavailable during a rollout (`maxUnavailable: {value}`)"
            ),
        ),
        _ => {}
    }
}

fn check_rollout(cx: &mut Context<'_>, obj: &Object<'_>, spec: Option<&Node>) {
    let name = obj.name();
    let Some(strategy) = spec.and_then(|s| s.get("strategy")) else {
        return;
    };
    for (kind, analysis_keys) in [
        ("canary", &["analysis"][..]),
        (
            "blueGreen",
            &["prePromotionAnalysis", "postPromotionAnalysis"][..],
        ),
    ] {
        let Some((line, s)) = keyed(strategy, kind) else {
            continue;
        };
        cx.fact(
            "deploy.progressive",
            format!("Argo Rollout {name}: {kind}"),
            obj.at(line),
        );
        let in_steps = s
            .get("steps")
            .and_then(|steps| steps.items().iter().find_map(|st| keyed(st, "analysis")));
        let analysis = analysis_keys.iter().find_map(|k| keyed(s, k)).or(in_steps);
        if let Some((line, _)) = analysis {
            cx.fact(
                "deploy.auto-rollback",
                format!("Argo Rollout {name}: {kind} analysis aborts a failing release"),
                obj.at(line),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::dockerfile::tests::{has, ids, scan};

    const DEPLOYMENT: &str = "\
apiVersion: apps/v1
kind: Deployment
metadata:
  name: api
spec:
  replicas: 2
  selector:
    matchLabels: {app: api}
  strategy:
    rollingUpdate:
      maxUnavailable: 1
  template:
    metadata:
      labels: {app: api}
    spec:
      containers:
        - name: api
          image: ghcr.io/acme/api
          ports: [{containerPort: 8080}]
          livenessProbe:
            httpGet: {path: /healthz, port: 8080}
          readinessProbe:
            httpGet: {path: /healthz, port: 8080}
        - name: sidecar
          image: envoyproxy/envoy:v1.30.1
          securityContext: {runAsUser: 101}
          resources:
            requests: {cpu: 10m}
            limits: {memory: 64Mi}
---
apiVersion: v1
kind: Service
metadata: {name: api}
spec:
  selector: {app: api}
";

    #[test]
    fn a_deployment_with_problems() {
        let (f, facts) = scan(&[("k8s/api.yaml", DEPLOYMENT)], "kubernetes/");
        assert_eq!(
            ids(&f),
            [
                "kubernetes/liveness-equals-readiness@20",
                "kubernetes/no-liveness-probe@24",
                "kubernetes/no-pdb@2",
                "kubernetes/no-readiness-probe@24",
                "kubernetes/no-resources@17",
                "kubernetes/rollout-capacity@11",
                "kubernetes/run-as-root@17",
                "kubernetes/unpinned-image@18",
            ]
        );
        assert!(has(&facts, "deploy.manifests"));
        assert!(has(&facts, "deploy.health-gated"));
        assert!(!has(&facts, "obs.readiness"));
        assert!(!has(&facts, "deploy.rolling"));
    }

    #[test]
    fn a_good_deployment_has_no_findings() {
        let text = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 3
  strategy: {type: RollingUpdate, rollingUpdate: {maxUnavailable: 0, maxSurge: 1}}
  template:
    metadata: {labels: {app: web, tier: front}}
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
        - name: web
          image: ghcr.io/acme/web:1.2.3
          ports: [{containerPort: 8080}]
          readinessProbe: {httpGet: {path: /readyz, port: 8080}}
          livenessProbe: {httpGet: {path: /healthz, port: 8080}, failureThreshold: 6}
          resources: {requests: {cpu: 100m, memory: 128Mi}, limits: {memory: 256Mi}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata: {name: web}
spec:
  minAvailable: 2
  selector: {matchLabels: {app: web}}
";
        let (f, facts) = scan(&[("deploy/web.yml", text)], "kubernetes/");
        assert!(f.is_empty(), "{:?}", ids(&f));
        for id in [
            "deploy.rolling",
            "obs.readiness",
            "deploy.health-gated",
            "container.healthcheck",
        ] {
            assert!(has(&facts, id), "{id}");
        }
    }

    #[test]
    fn workers_single_replicas_recreate_and_hpa() {
        let text = "\
apiVersion: apps/v1
kind: Deployment
metadata: {name: worker}
spec:
  strategy: {type: Recreate}
  template:
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
        - name: worker
          image: acme/worker:2.0.0
          livenessProbe: {exec: {command: [/worker, ping]}}
          resources: {requests: {cpu: 1}, limits: {memory: 1Gi}}
---
apiVersion: apps/v1
kind: Deployment
metadata: {name: web}
spec:
  replicas: 1
  template:
    metadata: {labels: {app: web}}
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
        - name: web
          image: acme/web:2.0.0
          ports: [{containerPort: 80}]
          readinessProbe: {tcpSocket: {port: 80}}
          livenessProbe: {httpGet: {path: /, port: 80}}
          resources: {requests: {cpu: 1}, limits: {memory: 1Gi}}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata: {name: web}
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: web}
  minReplicas: 3
";
        let (f, _) = scan(&[("k8s/all.yaml", text)], "kubernetes/");
        // The worker serves nothing: no readiness finding, no single-replica finding.
        assert_eq!(
            ids(&f),
            ["kubernetes/no-pdb@16", "kubernetes/rollout-capacity@5"]
        );
    }

    #[test]
    fn argo_rollouts_and_flagger() {
        let text = "\
apiVersion: argoproj.io/v1alpha1
kind: Rollout
metadata: {name: web}
spec:
  replicas: 1
  template:
    spec:
      containers:
        - name: web
          image: acme/web:2.0.0
  strategy:
    canary:
      steps:
        - setWeight: 20
        - analysis: {templates: [{templateName: success-rate}]}
---
apiVersion: flagger.app/v1beta1
kind: Canary
metadata: {name: api}
spec:
  analysis: {threshold: 5}
";
        let (_, facts) = scan(&[("rollout.yaml", text)], "kubernetes/");
        let progressive: Vec<usize> = facts
            .iter()
            .filter(|f| f.id == "deploy.progressive")
            .map(|f| f.evidence.line)
            .collect();
        assert_eq!(progressive, [12, 18]);
        let rollback: Vec<usize> = facts
            .iter()
            .filter(|f| f.id == "deploy.auto-rollback")
            .map(|f| f.evidence.line)
            .collect();
        assert_eq!(rollback, [15, 21]);
    }

    #[test]
    fn helm_templates_and_non_manifests_are_skipped() {
        let helm = "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: {{ .Release.Name }}\nspec:\n  template:\n    spec:\n      containers:\n        - name: x\n          image: x\n";
        let (f, facts) = scan(
            &[
                ("chart/templates/deployment.yaml", helm),
                ("config.yaml", "kind: of\nnot: apiVersion\n"),
            ],
            "kubernetes/",
        );
        assert!(f.is_empty());
        assert!(!has(&facts, "deploy.manifests"));
    }

    #[test]
    fn literal_secrets_in_env_but_not_secret_refs() {
        let text = "\
apiVersion: batch/v1
kind: DaemonSet
metadata: {name: agent}
spec:
  template:
    spec:
      securityContext: {runAsNonRoot: true}
      containers:
        - name: agent
          image: acme/agent:1.0.0
          livenessProbe: {exec: {command: [/agent, ping]}}
          resources: {requests: {cpu: 10m}, limits: {memory: 64Mi}}
          env:
            - name: API_TOKEN
              value: tok_live_123
            - name: DATABASE_URL
              value: postgres://agent:pw123@db/agent
            - name: DB_PASSWORD
              valueFrom: {secretKeyRef: {name: db, key: password}}
            - name: LOG_LEVEL
              value: info
";
        let (f, _) = scan(&[("agent.yaml", text)], "kubernetes/");
        assert_eq!(
            ids(&f),
            [
                "kubernetes/plaintext-secret@15",
                "kubernetes/plaintext-secret@17"
            ]
        );
        let json = serde_json::to_string(&f).expect("json");
        assert!(
            !json.contains("tok_live_123") && !json.contains("pw123"),
            "{json}"
        );
    }

    #[test]
    fn max_unavailable_percentages_round_down() {
        assert_eq!(effective_unavailable("25%", 2), Some(0));
        assert_eq!(effective_unavailable("50%", 2), Some(1));
        assert_eq!(effective_unavailable("1", 2), Some(1));
        assert_eq!(effective_unavailable("x", 2), None);
        assert_eq!(
            effective_unavailable("99999999999%", u64::MAX),
            Some(u64::MAX / 100)
        );
    }

    #[test]
    fn garbage_manifests_never_panic() {
        for text in [
            "apiVersion: v1\nkind: Deployment\nspec: 3\n",
            "apiVersion: v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers: {a: b}\n",
            "apiVersion: v1\nkind: Deployment\nspec:\n  replicas: -1\n  strategy: {rollingUpdate: {maxUnavailable: [1]}}\n  template: {spec: {containers: [1, [2], {name: [x]}]}}\n",
            "apiVersion: v1\nkind: List\nitems: [1, {kind: Deployment}]\n",
            "apiVersion: [unclosed\nkind: x",
            "apiVersion: v1\nkind: Rollout\nspec: {strategy: {canary: {steps: 3}}}\n",
        ] {
            let _ = scan(&[("m.yaml", text)], "kubernetes/");
        }
    }
}
