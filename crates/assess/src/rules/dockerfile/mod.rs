//! Dockerfile rules: a non-root `USER` in the final stage, `HEALTHCHECK`,
//! base images pinned (digest best, then an exact version tag), multi-stage
//! builds for compiled toolchains, `COPY . .` before the dependency install,
//! secrets in `ENV`/`ARG`, `ADD` of remote URLs, a `.dockerignore`; and the
//! containerization facts they imply. Files: `Dockerfile`, `Dockerfile.*`,
//! `*.Dockerfile`, `Containerfile`, `Containerfile.*`.

pub mod parse;

use std::sync::LazyLock;

use regex::Regex;

use super::env_secrets::{is_literal_secret, is_secret_name, redacted};
use super::image::{ImageRef, Pin, pin_words};
use super::{Context, RuleInfo};
use crate::finding::{Area, Evidence, Severity};
use crate::repo::RepoFile;
use parse::{Dockerfile, Instruction, pairs};

pub const ROOT_USER: RuleInfo = RuleInfo {
    id: "dockerfile/root-user",
    area: Area::Containerization,
    severity: Severity::Medium,
    title: "Container runs as root",
    why: "A process running as root inside the container is root on the host's kernel: one exploited dependency can read mounted secrets, write the image's files or escape through a kernel bug.",
    fix: "Create an unprivileged user and switch to it at the end of the final stage: `RUN addgroup -S app && adduser -S -G app app` (Debian: `useradd --system --create-home app`) then `USER app`; or end on a base image that runs as non-root (`gcr.io/distroless/static-debian12:nonroot`).",
    cutover: None,
};

pub const NO_HEALTHCHECK: RuleInfo = RuleInfo {
    id: "dockerfile/no-healthcheck",
    area: Area::Containerization,
    severity: Severity::Low,
    title: "Image has no HEALTHCHECK",
    why: "Without a health check, Docker and compose report a container that is up but not serving as healthy, and nothing can wait for it. An orchestrator's own probe (cutover's `health`) replaces it; then this can be ignored. Not reported when the repository's Kubernetes manifests declare probes (Kubernetes ignores HEALTHCHECK).",
    fix: "Add to the final stage: `HEALTHCHECK --interval=10s --timeout=3s --retries=3 CMD wget -qO- http://127.0.0.1:8080/health || exit 1` (use a binary the image has), or health-check the service in the orchestrator.",
    cutover: Some(
        "[service.web]\nhealth = { path = \"/health\", interval = \"1s\", timeout = \"2s\", healthy = 2, unhealthy = 3 }",
    ),
};

pub const UNPINNED_BASE: RuleInfo = RuleInfo {
    id: "dockerfile/unpinned-base",
    area: Area::Containerization,
    severity: Severity::Medium,
    title: "Base image has no tag or `latest`",
    why: "`latest` (or no tag) is whatever was pushed last: two builds of the same commit can differ, a major upgrade arrives unannounced and a rollback does not restore the old image.",
    fix: "Pin the base image to an exact version, best by digest: `FROM node:18.19.1-alpine3.19@sha256:<digest>` (`docker buildx imagetools inspect node:18.19.1-alpine3.19` prints it); let Renovate or Dependabot bump it.",
    cutover: None,
};

pub const FLOATING_BASE: RuleInfo = RuleInfo {
    id: "dockerfile/floating-base-tag",
    area: Area::Containerization,
    severity: Severity::Low,
    title: "Base image tag moves with new releases",
    why: "A tag naming only a major or minor version (`node:18-alpine`, `python:3.12-slim`) is re-pushed for every patch release, so rebuilding the same commit gives a different image; exact versions or digests make builds repeatable.",
    fix: "Use a tag with the full version (`node:18.19.1-alpine3.19`, `python:3.12.4-slim-bookworm`) or, better, add the digest (`@sha256:…`), and let Renovate or Dependabot bump it.",
    cutover: None,
};

pub const SINGLE_STAGE_TOOLCHAIN: RuleInfo = RuleInfo {
    id: "dockerfile/single-stage-toolchain",
    area: Area::Containerization,
    severity: Severity::Low,
    title: "Single-stage build ships the toolchain",
    why: "Building in the image that runs the app ships compilers, package managers and dev dependencies: a larger image, slower pulls during a deploy and more to patch.",
    fix: "Split the build: `FROM golang:1.22.5 AS build` … `RUN go build -o /out/app`, then `FROM gcr.io/distroless/static-debian12:nonroot` with `COPY --from=build /out/app /app` (Node: install with `npm ci --omit=dev` in a second stage and copy `node_modules` and the built files).",
    cutover: None,
};

pub const COPY_BEFORE_INSTALL: RuleInfo = RuleInfo {
    id: "dockerfile/copy-before-install",
    area: Area::Containerization,
    severity: Severity::Low,
    title: "`COPY . .` before installing dependencies",
    why: "Copying the whole source before the dependency install invalidates the install layer on every code change: every build reinstalls every dependency, which slows each deploy and each rollback rebuild.",
    fix: "Copy the dependency manifests first and install, then copy the rest: `COPY package.json package-lock.json ./` / `RUN npm ci` / `COPY . .` (Python: `requirements.txt` then `pip install`; Go: `go.mod go.sum` then `go mod download`).",
    cutover: None,
};

pub const NO_DOCKERIGNORE: RuleInfo = RuleInfo {
    id: "dockerfile/no-dockerignore",
    area: Area::Containerization,
    severity: Severity::Low,
    title: "Whole build context copied without a .dockerignore",
    why: "`COPY . .` without a `.dockerignore` sends `.git`, `.env` files, local `node_modules` and build output into the build and possibly into the image.",
    fix: "Add a `.dockerignore` next to the Dockerfile listing at least `.git`, `.env*`, `node_modules`, build output and test data.",
    cutover: None,
};

pub const SECRET_IN_ENV: RuleInfo = RuleInfo {
    id: "dockerfile/secret-in-env",
    area: Area::Security,
    severity: Severity::High,
    title: "Secret in an `ENV` instruction",
    why: "An `ENV` value is stored in the image's configuration: anyone who can pull the image reads it with `docker inspect`, and it stays in every registry and cache the image went through.",
    fix: "Remove the value from the Dockerfile and pass it at run time (compose `environment: DB_PASSWORD: ${DB_PASSWORD}`, a Kubernetes Secret, or cutover's `env` with `${VAR}`); rotate the secret, since it is in the image history.",
    cutover: Some("[service.web]\nenv = { DB_PASSWORD = \"${DB_PASSWORD}\" }"),
};

pub const SECRET_IN_ARG: RuleInfo = RuleInfo {
    id: "dockerfile/secret-in-arg",
    area: Area::Security,
    severity: Severity::Medium,
    title: "Secret passed as a build `ARG`",
    why: "Build arguments are recorded in the image history (`docker history` shows them) and in build caches, so a token passed with `--build-arg` leaks to whoever can pull the image.",
    fix: "Use a BuildKit secret mount instead: `RUN --mount=type=secret,id=npm_token NPM_TOKEN=$(cat /run/secrets/npm_token) npm ci` and `docker build --secret id=npm_token,env=NPM_TOKEN .`",
    cutover: None,
};

pub const ADD_REMOTE_URL: RuleInfo = RuleInfo {
    id: "dockerfile/add-remote-url",
    area: Area::Containerization,
    severity: Severity::Medium,
    title: "`ADD` downloads a URL without a checksum",
    why: "`ADD https://…` fetches whatever the server returns at build time, unverified: a changed or compromised file goes into the image silently.",
    fix: "Pin the download: `ADD --checksum=sha256:<hash> https://… /dest`, or `RUN curl -fsSLo file https://… && echo \"<hash>  file\" | sha256sum -c -`.",
    cutover: None,
};

/// This pass's rules.
pub const RULES: &[&RuleInfo] = &[
    &ROOT_USER,
    &NO_HEALTHCHECK,
    &UNPINNED_BASE,
    &FLOATING_BASE,
    &SINGLE_STAGE_TOOLCHAIN,
    &COPY_BEFORE_INSTALL,
    &NO_DOCKERIGNORE,
    &SECRET_IN_ENV,
    &SECRET_IN_ARG,
    &ADD_REMOTE_URL,
];

/// Folders whose files are test infrastructure, not how the application
/// ships: the container passes skip Dockerfiles, compose files and
/// manifests inside them.
pub const TEST_FOLDERS: [&str; 7] = [
    "test",
    "tests",
    "testdata",
    "fixtures",
    "e2e",
    "__tests__",
    "testing",
];

/// Whether `file` sits in a test folder (relative to the repository's root).
pub fn in_test_folder(file: &RepoFile) -> bool {
    TEST_FOLDERS.iter().any(|d| file.in_dir(d))
}

/// Whether a file name is a Dockerfile's.
pub fn is_dockerfile_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    if lower.ends_with(".dockerignore") {
        return false;
    }
    lower == "dockerfile"
        || lower == "containerfile"
        || lower.starts_with("dockerfile.")
        || lower.starts_with("containerfile.")
        || lower.ends_with(".dockerfile")
}

/// Runs the pass.
pub fn run(cx: &mut Context<'_>) {
    let files: Vec<&RepoFile> = cx
        .repo
        .named(is_dockerfile_name)
        .filter(|f| !in_test_folder(f))
        .collect();
    for file in files {
        let Some(text) = cx.repo.text(file) else {
            continue;
        };
        let df = parse::parse(text);
        if df.stages.is_empty() {
            continue;
        }
        check(cx, file, text, &df);
    }
}

/// Dependency installs whose layer `COPY . .` before them would invalidate.
static INSTALL: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(npm\s+(ci|install|i)\b|yarn(\s+install)?\b|pnpm\s+(install|i)\b|pip3?\s+install\b|python3?\s+-m\s+pip\s+install\b|poetry\s+install\b|pipenv\s+install\b|uv\s+(sync|pip\s+install)\b|go\s+mod\s+download\b|bundle\s+install\b|composer\s+install\b|cargo\s+fetch\b|dotnet\s+restore\b|mix\s+deps\.get\b)",
    )
    .expect("install regex")
});

/// Build steps that need a toolchain in the image.
static BUILD: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(
        r"\b(go\s+build|cargo\s+build|mvn\b|mvnw\b|gradle\b|gradlew\b|npm\s+(ci|install|i|run\s+build)\b|yarn\b|pnpm\b|dotnet\s+(publish|build)|javac\b)",
    )
    .expect("build regex")
});

/// Base images that are build toolchains.
fn is_toolchain(image: &ImageRef<'_>) -> bool {
    let base = image.base_name();
    let tag = image.tag.unwrap_or_default();
    matches!(
        base.as_str(),
        "golang" | "rust" | "maven" | "gradle" | "node" | "openjdk"
    ) || image.name.ends_with("dotnet/sdk")
        || (matches!(base.as_str(), "eclipse-temurin" | "amazoncorretto") && tag.contains("jdk"))
}

fn check(cx: &mut Context<'_>, file: &RepoFile, text: &str, df: &Dockerfile) {
    let path = file.path.as_str();
    let last = df.stages.len() - 1;
    let final_from = Evidence::at(path, text, df.stages[last].from.line);
    cx.fact(
        "container.dockerfile",
        format!(
            "{} stage(s), final stage FROM {}",
            df.stages.len(),
            df.stages[last].image
        ),
        Evidence::at(path, text, df.stages[0].from.line),
    );

    // Base images: every FROM that does not name an earlier stage.
    let mut pins = Vec::new();
    for (i, stage) in df.stages.iter().enumerate() {
        if df.stage_named(&stage.image, i).is_some() || stage.image.eq_ignore_ascii_case("scratch")
        {
            continue;
        }
        let Some(image) = ImageRef::parse(&stage.image) else {
            continue;
        };
        let pin = image.pin();
        pins.push(pin);
        let evidence = Evidence::at(path, text, stage.from.line);
        match pin {
            Pin::Unpinned => cx.find(
                &UNPINNED_BASE,
                evidence,
                format!("base image `{}` is {}", stage.image, pin_words(pin)),
            ),
            Pin::Floating => cx.find(
                &FLOATING_BASE,
                evidence,
                format!(
                    "base image `{}` is {}: `{}` names no exact version",
                    stage.image,
                    pin_words(pin),
                    image.tag.unwrap_or_default()
                ),
            ),
            Pin::Exact | Pin::Digest => {}
        }
    }
    if !pins.is_empty() && pins.iter().all(|p| *p <= Pin::Exact) {
        cx.fact(
            "container.pinned-base",
            format!(
                "{} base image(s) pinned to an exact tag or digest",
                pins.len()
            ),
            final_from.clone(),
        );
    }
    if !pins.is_empty() && pins.iter().all(|p| *p == Pin::Digest) {
        cx.fact(
            "container.digest-pinned",
            format!("{} base image(s) pinned by digest", pins.len()),
            final_from.clone(),
        );
    }

    check_user(cx, path, text, df);
    check_healthcheck(cx, path, text, df);

    // Multi-stage: the final stage copies from another one.
    if df.stages.len() > 1 {
        if let Some(copy) = df.stages[last]
            .instructions
            .iter()
            .find(|i| i.keyword == "COPY" && i.has_flag("from"))
        {
            cx.fact(
                "container.multi-stage",
                format!(
                    "{} stages; the final one copies the build output",
                    df.stages.len()
                ),
                Evidence::at(path, text, copy.line),
            );
        }
    } else if let Some(image) = ImageRef::parse(&df.stages[0].image).filter(is_toolchain)
        && let Some(build) = df.stages[0]
            .instructions
            .iter()
            .find(|i| i.keyword == "RUN" && BUILD.is_match(&i.args))
    {
        cx.find_with(
            &SINGLE_STAGE_TOOLCHAIN,
            vec![final_from.clone(), Evidence::at(path, text, build.line)],
            format!(
                "the only stage builds on the `{}` toolchain image and runs it as the final image",
                image.name
            ),
            SINGLE_STAGE_TOOLCHAIN.fix.to_string(),
        );
    }

    // COPY . . before the install, per stage.
    let mut whole_context_copy = None;
    for stage in &df.stages {
        let mut copied: Option<&Instruction> = None;
        let mut installed = false;
        for ins in &stage.instructions {
            match ins.keyword.as_str() {
                "COPY" | "ADD" if !ins.has_flag("from") && copies_whole_context(ins) => {
                    whole_context_copy.get_or_insert(ins.line);
                    if copied.is_none() {
                        copied = Some(ins);
                    }
                }
                "RUN" if INSTALL.is_match(&ins.args) => {
                    if let Some(copy) = copied.filter(|_| !installed) {
                        let what = INSTALL
                            .find(&ins.args)
                            .map(|m| m.as_str().split_whitespace().collect::<Vec<_>>().join(" "))
                            .unwrap_or_default();
                        cx.find_with(
                            &COPY_BEFORE_INSTALL,
                            vec![
                                Evidence::at(path, text, copy.line),
                                Evidence::at(path, text, ins.line),
                            ],
                            format!(
                                "`{} {}` at line {} comes before `{what}` at line {}: any source change reinstalls every dependency",
                                copy.keyword, copy.args, copy.line, ins.line
                            ),
                            COPY_BEFORE_INSTALL.fix.to_string(),
                        );
                        break;
                    }
                    installed = true;
                }
                _ => {}
            }
        }
    }

    // .dockerignore next to the Dockerfile, `<name>.dockerignore`, or at the root.
    let dir = file.dir();
    let join = |name: &str| {
        if dir.is_empty() {
            name.to_string()
        } else {
            format!("{dir}/{name}")
        }
    };
    let candidates = [
        join(".dockerignore"),
        join(&format!("{}.dockerignore", file.name)),
        ".dockerignore".to_string(),
    ];
    match candidates.iter().find(|c| cx.repo.file(c).is_some()) {
        Some(found) => cx.fact(
            "container.dockerignore",
            format!("{found} for {path}"),
            Evidence::file(found),
        ),
        None => {
            if let Some(line) = whole_context_copy {
                cx.find(
                    &NO_DOCKERIGNORE,
                    Evidence::at(path, text, line),
                    format!(
                        "{path} copies the whole build context and there is no {}",
                        join(".dockerignore")
                    ),
                );
            }
        }
    }

    // Secrets in ENV and ARG, remote ADD.
    for ins in df.instructions() {
        match ins.keyword.as_str() {
            "ENV" => {
                for (key, value) in pairs(ins) {
                    let Some(value) = value.filter(|v| is_literal_secret(v)) else {
                        continue;
                    };
                    if is_secret_name(&key) {
                        let line = key_line(text, ins.line, &key);
                        cx.find(
                            &SECRET_IN_ENV,
                            redacted(Evidence::at(path, text, line), &value),
                            format!("`ENV {key}` bakes a literal secret into the image"),
                        );
                    }
                }
            }
            "ARG" => {
                for (key, value) in pairs(ins) {
                    if is_secret_name(&key) {
                        let line = key_line(text, ins.line, &key);
                        let evidence = Evidence::at(path, text, line);
                        let evidence = match &value {
                            Some(v) => redacted(evidence, v),
                            None => evidence,
                        };
                        cx.find(
                            &SECRET_IN_ARG,
                            evidence,
                            format!("`ARG {key}` passes a secret as a build argument, which the image history keeps"),
                        );
                    }
                }
            }
            "ADD" if !ins.has_flag("checksum") => {
                if let Some(url) = ins
                    .operands()
                    .into_iter()
                    .find(|w| w.starts_with("http://") || w.starts_with("https://"))
                {
                    cx.find(
                        &ADD_REMOTE_URL,
                        Evidence::at(path, text, ins.line),
                        format!("`ADD {url}` downloads at build time without verifying a checksum"),
                    );
                }
            }
            _ => {}
        }
    }
}

/// The line, at or after an instruction's first line `start`, where `key`
/// is set (an `ENV` continued over several lines names each key on its own).
fn key_line(text: &str, start: usize, key: &str) -> usize {
    text.lines()
        .enumerate()
        .skip(start.saturating_sub(1))
        .take(200)
        .find(|(_, l)| {
            l.split(|c: char| c.is_whitespace() || c == '=')
                .any(|w| w.trim_matches(['"', '\'']) == key)
        })
        .map(|(i, _)| i + 1)
        .unwrap_or(start)
}

/// Whether a `COPY`/`ADD` copies the whole build context (`.` or `./` as a source).
fn copies_whole_context(ins: &Instruction) -> bool {
    let operands = ins.operands();
    operands.len() >= 2
        && operands[..operands.len() - 1]
            .iter()
            .any(|s| s == "." || s == "./")
}

/// The user the final stage runs as: its last `USER`, else its parent
/// stage's, else the base image's default (non-root only for images that
/// say so, like distroless `:nonroot`).
fn check_user(cx: &mut Context<'_>, path: &str, text: &str, df: &Dockerfile) {
    let last = df.stages.len() - 1;
    let mut index = last;
    for _ in 0..df.stages.len() {
        let stage = &df.stages[index];
        if let Some(user) = stage
            .instructions
            .iter()
            .rev()
            .find(|i| i.keyword == "USER")
        {
            // `USER $APP_UID` takes the default of an `ARG` declared before it.
            let args: Vec<Instruction> = df
                .global_args
                .iter()
                .chain(stage.instructions.iter().filter(|i| i.keyword == "ARG"))
                .filter(|i| i.line < user.line)
                .cloned()
                .collect();
            let resolved = parse::substitute(user.args.trim(), &args);
            let name = resolved.split(':').next().unwrap_or_default().trim();
            let evidence = Evidence::at(path, text, user.line);
            if name.eq_ignore_ascii_case("root") || name == "0" || name.is_empty() {
                cx.find(
                    &ROOT_USER,
                    evidence,
                    format!("the final stage runs as `USER {}`", user.args.trim()),
                );
            } else {
                cx.fact("container.non-root", format!("USER {name}"), evidence);
            }
            return;
        }
        match df.parent(index) {
            Some(parent) => index = parent,
            None => break,
        }
    }
    let base = &df.stages[index].image;
    let from = Evidence::at(path, text, df.stages[index].from.line);
    if base.to_ascii_lowercase().contains("nonroot") {
        cx.fact(
            "container.non-root",
            format!("base image {base} runs as nonroot"),
            from,
        );
    } else {
        cx.find(
            &ROOT_USER,
            Evidence::at(path, text, df.stages[last].from.line),
            format!("the final stage (FROM {base}) sets no `USER`, so the container runs as root"),
        );
    }
}

/// `HEALTHCHECK` in the final stage or a stage it builds on (`NONE` disables it).
fn check_healthcheck(cx: &mut Context<'_>, path: &str, text: &str, df: &Dockerfile) {
    let last = df.stages.len() - 1;
    let mut index = Some(last);
    let mut guard = df.stages.len();
    while let (Some(i), true) = (index, guard > 0) {
        guard -= 1;
        if let Some(hc) = df.stages[i]
            .instructions
            .iter()
            .rev()
            .find(|ins| ins.keyword == "HEALTHCHECK")
        {
            if hc.args.trim().eq_ignore_ascii_case("none") {
                break;
            }
            cx.fact(
                "container.healthcheck",
                format!("HEALTHCHECK in {path}"),
                Evidence::at(path, text, hc.line),
            );
            return;
        }
        index = df.parent(i);
    }
    // Kubernetes ignores HEALTHCHECK and probes the pod instead.
    if super::kubernetes::has_probes(cx.repo) {
        return;
    }
    cx.find(
        &NO_HEALTHCHECK,
        Evidence::at(path, text, df.stages[last].from.line),
        format!(
            "{path} declares no HEALTHCHECK in its final stage (fine if the orchestrator probes the container instead)"
        ),
    );
}

#[cfg(test)]
pub(crate) mod tests;
