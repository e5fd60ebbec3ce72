//! Edge cases of the Dockerfile rules on small repositories written to a
//! temporary folder; the fixture repositories are in `tests/dockerfile.rs`.

use std::fs;

use crate::finding::{Fact, Finding};
use crate::{NoHooks, assess};

/// Writes `files` into a temporary repository and assesses it: the findings
/// whose rule starts with `prefix`, and every fact.
pub(crate) fn scan(files: &[(&str, &str)], prefix: &str) -> (Vec<Finding>, Vec<Fact>) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let p = dir.path().join(path);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    }
    let report = assess(dir.path(), &NoHooks).expect("assess");
    let findings = report
        .findings
        .into_iter()
        .filter(|f| f.rule.starts_with(prefix))
        .collect();
    (findings, report.facts)
}

/// `rule@line` for each finding, sorted.
pub(crate) fn ids(findings: &[Finding]) -> Vec<String> {
    let mut v: Vec<String> = findings
        .iter()
        .map(|f| format!("{}@{}", f.rule, f.evidence[0].line))
        .collect();
    v.sort();
    v
}

pub(crate) fn has(facts: &[Fact], id: &str) -> bool {
    facts.iter().any(|f| f.id == id)
}

#[test]
fn names_that_are_dockerfiles() {
    for name in [
        "Dockerfile",
        "dockerfile",
        "Dockerfile.prod",
        "api.Dockerfile",
        "Containerfile",
    ] {
        assert!(super::is_dockerfile_name(name), "{name}");
    }
    for name in [
        "Dockerfile.dockerignore",
        "docker-compose.yml",
        "Dockerfiles.md",
    ] {
        assert!(!super::is_dockerfile_name(name), "{name}");
    }
}

#[test]
fn a_good_multi_stage_build_has_no_findings_and_every_fact() {
    let df = "# syntax=docker/dockerfile:1\n\
ARG GO=1.22.5\n\
FROM golang:${GO}-bookworm@sha256:aaaa AS build\n\
WORKDIR /src\n\
COPY go.mod go.sum ./\n\
RUN go mod download\n\
COPY . .\n\
RUN go build -o /out/app .\n\
\n\
FROM gcr.io/distroless/static-debian12:nonroot@sha256:bbbb\n\
COPY --from=build /out/app /app\n\
HEALTHCHECK CMD [\"/app\", \"health\"]\n\
ENTRYPOINT [\"/app\"]\n";
    let (findings, facts) = scan(
        &[("Dockerfile", df), (".dockerignore", ".git\n")],
        "dockerfile/",
    );
    assert_eq!(ids(&findings), Vec::<String>::new());
    for id in [
        "container.dockerfile",
        "container.non-root",
        "container.pinned-base",
        "container.digest-pinned",
        "container.multi-stage",
        "container.healthcheck",
        "container.dockerignore",
    ] {
        assert!(has(&facts, id), "{id}");
    }
}

#[test]
fn root_user_explicit_inherited_and_numeric() {
    let (f, _) = scan(
        &[("Dockerfile", "FROM alpine:3.19.1\nUSER app\nUSER 0:0\n")],
        "dockerfile/root-user",
    );
    assert_eq!(ids(&f), ["dockerfile/root-user@3"]);
    // The final stage builds on a stage that switched user.
    let (f, facts) = scan(
        &[(
            "Dockerfile",
            "FROM alpine:3.19.1 AS base\nUSER 10001\nFROM base\nCMD [\"x\"]\n",
        )],
        "dockerfile/root-user",
    );
    assert!(f.is_empty());
    assert!(has(&facts, "container.non-root"));
    // USER in a builder stage does not count for the final one.
    let (f, _) = scan(
        &[(
            "Dockerfile",
            "FROM node:18.19.1 AS build\nUSER node\nFROM nginx:1.25.4\nCOPY --from=build /a /b\n",
        )],
        "dockerfile/root-user",
    );
    assert_eq!(ids(&f), ["dockerfile/root-user@3"]);
}

#[test]
fn base_pinning_levels() {
    let df = "FROM node AS a\nFROM node:latest AS b\nFROM node:18-alpine AS c\nFROM node:18.19.1-alpine3.19 AS d\nFROM a\nFROM scratch\nFROM ${UNKNOWN}\n";
    let (f, facts) = scan(&[("Dockerfile", df)], "dockerfile/");
    let pins: Vec<String> = ids(&f).into_iter().filter(|i| i.contains("base")).collect();
    assert_eq!(
        pins,
        [
            "dockerfile/floating-base-tag@3",
            "dockerfile/unpinned-base@1",
            "dockerfile/unpinned-base@2"
        ]
    );
    assert!(!has(&facts, "container.pinned-base"));
}

#[test]
fn copy_before_install_only_when_the_install_follows_the_whole_copy() {
    let bad = "FROM node:18.19.1\nWORKDIR /app\nCOPY . .\nRUN npm ci --omit=dev\nUSER node\n";
    let (f, _) = scan(
        &[("Dockerfile", bad), (".dockerignore", "x")],
        "dockerfile/copy",
    );
    assert_eq!(ids(&f), ["dockerfile/copy-before-install@3"]);
    assert_eq!(f[0].evidence[1].line, 4);
    let good = "FROM node:18.19.1\nCOPY package*.json ./\nRUN npm ci\nCOPY . .\nRUN npm run build\nUSER node\n";
    let (f, _) = scan(
        &[("Dockerfile", good), (".dockerignore", "x")],
        "dockerfile/copy",
    );
    assert!(f.is_empty());
    // pip inside a heredoc counts.
    let heredoc = "FROM python:3.12.4\nADD ./ /app/\nRUN <<EOF\nset -e\npip install -r requirements.txt\nEOF\n";
    let (f, _) = scan(
        &[("Dockerfile", heredoc), (".dockerignore", "x")],
        "dockerfile/copy",
    );
    assert_eq!(ids(&f), ["dockerfile/copy-before-install@2"]);
}

#[test]
fn dockerignore_next_to_the_dockerfile_or_at_the_root() {
    let df = "FROM python:3.12.4\nCOPY . .\nUSER app\n";
    let (f, _) = scan(&[("svc/Dockerfile", df)], "dockerfile/no-dockerignore");
    assert_eq!(ids(&f), ["dockerfile/no-dockerignore@2"]);
    assert_eq!(f[0].evidence[0].path, "svc/Dockerfile");
    let (f, facts) = scan(
        &[
            ("svc/Dockerfile", df),
            ("svc/Dockerfile.dockerignore", ".git\n"),
        ],
        "dockerfile/no-dockerignore",
    );
    assert!(f.is_empty());
    assert!(has(&facts, "container.dockerignore"));
}

#[test]
fn secrets_in_env_and_arg_are_reported_without_their_value() {
    let df = "ARG NPM_TOKEN\nFROM node:18.19.1\nENV NODE_ENV=production DB_PASSWORD=hunter2\nENV API_KEY sk_live_abc\nENV SESSION_SECRET=${SESSION_SECRET}\nENV POSTGRES_PASSWORD_FILE=/run/secrets/pg\nARG GITHUB_TOKEN=ghp_xyz\nUSER node\n";
    let (f, _) = scan(&[("Dockerfile", df)], "dockerfile/secret");
    assert_eq!(
        ids(&f),
        [
            "dockerfile/secret-in-arg@1",
            "dockerfile/secret-in-arg@7",
            "dockerfile/secret-in-env@3",
            "dockerfile/secret-in-env@4"
        ]
    );
    let json = serde_json::to_string(&f).expect("json");
    for secret in ["hunter2", "sk_live_abc", "ghp_xyz"] {
        assert!(!json.contains(secret), "{secret} leaked: {json}");
    }
}

#[test]
fn single_stage_toolchain_and_remote_add() {
    let df = "FROM golang:1.22.5\nADD https://example.com/tool.tgz /tmp/\nADD --checksum=sha256:abc https://example.com/ok.tgz /tmp/\nCOPY . .\nRUN go build -o /app .\nUSER 1000\n";
    let (f, facts) = scan(&[("Dockerfile", df), (".dockerignore", "x")], "dockerfile/");
    assert_eq!(
        ids(&f),
        [
            "dockerfile/add-remote-url@2",
            "dockerfile/no-healthcheck@1",
            "dockerfile/single-stage-toolchain@1"
        ]
    );
    assert!(!has(&facts, "container.multi-stage"));
}

#[test]
fn kubernetes_probes_replace_the_healthcheck() {
    let df = "FROM alpine:3.19.1\nUSER app\n";
    let probe = "apiVersion: apps/v1\nkind: Deployment\nspec:\n  template:\n    spec:\n      containers:\n        - name: a\n          livenessProbe: {tcpSocket: {port: 80}}\n";
    let (f, _) = scan(
        &[("Dockerfile", df), ("k8s/a.yaml", probe)],
        "dockerfile/no-healthcheck",
    );
    assert!(f.is_empty());
    let service = "apiVersion: v1\nkind: Service\n";
    let (f, _) = scan(
        &[("Dockerfile", df), ("k8s/a.yaml", service)],
        "dockerfile/no-healthcheck",
    );
    assert_eq!(ids(&f), ["dockerfile/no-healthcheck@1"]);
}

#[test]
fn healthcheck_none_disables_an_inherited_one() {
    let df =
        "FROM alpine:3.19.1 AS base\nHEALTHCHECK CMD true\nFROM base\nHEALTHCHECK NONE\nUSER app\n";
    let (f, facts) = scan(&[("Dockerfile", df)], "dockerfile/no-healthcheck");
    assert_eq!(ids(&f), ["dockerfile/no-healthcheck@3"]);
    assert!(!has(&facts, "container.healthcheck"));
}

#[test]
fn garbage_dockerfiles_never_panic() {
    let mut long = String::from("FROM ");
    long.push_str(&"x".repeat(200_000));
    for text in [
        "",
        "not a dockerfile at all\n\\\n",
        "FROM\nUSER\nENV\nARG\nADD\nCOPY\n",
        "FROM a AS b\nFROM b AS a\nFROM a\n",
        "\u{feff}FROM x:1 AS y\nCOPY <<EOF\n",
        long.as_str(),
    ] {
        let _ = scan(&[("Dockerfile", text)], "dockerfile/");
    }
    let dir = tempfile::tempdir().expect("tempdir");
    fs::write(dir.path().join("Dockerfile"), [0xff, 0xfe, 0, 1, 2]).expect("write");
    assert!(assess(dir.path(), &NoHooks).is_ok());
}
