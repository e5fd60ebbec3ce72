//! `cutover assess` through the binary: every format on a fixture, `--json`,
//! `--fail-under` (exit 12, the report still printed), bad paths (exit 2),
//! `cutover check`'s problems through the real config checker, a stable
//! report of this repository, and the example report in docs/assess.md
//! (`CUTOVER_UPDATE_ASSESS_EXAMPLE=1` rewrites it).

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use crate::common::{stderr, stdout};

/// Where docs/assess.md keeps this repository's report.
const START: &str = "<!-- assess-self:start -->";
const END: &str = "<!-- assess-self:end -->";

fn repo_root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn fixture(name: &str) -> PathBuf {
    repo_root().join("crates/assess/tests/fixtures").join(name)
}

/// `cutover assess ARGS` run in `dir`.
fn assess_in(dir: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_cutover"))
        .arg("assess")
        .args(args)
        .current_dir(dir)
        .env("NO_COLOR", "1")
        .output()
        .expect("run cutover assess")
}

fn assess(args: &[&str]) -> Output {
    assess_in(&repo_root(), args)
}

fn success(out: &Output) -> String {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout:\n{}\nstderr:\n{}",
        stdout(out),
        stderr(out)
    );
    stdout(out)
}

#[test]
fn every_format_on_a_fixture() {
    let clean = fixture("clean");
    let clean = clean.to_str().expect("utf-8 path");

    let text = success(&assess(&[clean]));
    assert!(
        text.starts_with(&format!("Deployment readiness of {clean} (")),
        "{text}"
    );
    assert!(text.contains("\nOverall: Level "), "{text}");

    let json: serde_json::Value =
        serde_json::from_str(&success(&assess(&[clean, "--format", "json"]))).expect("JSON");
    assert_eq!(json["schema_version"], 1);
    assert_eq!(json["areas"].as_array().map(Vec::len), Some(8));
    assert!(
        json["facts"]
            .as_array()
            .expect("facts")
            .iter()
            .any(|f| f["id"] == "deploy.cutover"),
        "{json:#}"
    );

    // The clean fixture's cutover.toml passes the real `cutover check`.
    assert!(
        !json["findings"]
            .as_array()
            .expect("findings")
            .iter()
            .any(|f| f["rule"]
                .as_str()
                .is_some_and(|r| r.starts_with("cutover-config/"))),
        "{json:#}"
    );

    let markdown = success(&assess(&[clean, "--format", "markdown"]));
    assert!(
        markdown.starts_with("## Deployment readiness: Level "),
        "{markdown}"
    );
    assert!(markdown.contains("| Area | Level | Set by | Next |"));

    let sarif: serde_json::Value =
        serde_json::from_str(&success(&assess(&[clean, "--format", "sarif"]))).expect("SARIF");
    assert_eq!(sarif["version"], "2.1.0");
    assert_eq!(sarif["runs"][0]["tool"]["driver"]["name"], "cutover assess");
    assert_eq!(
        sarif["runs"][0]["properties"]["overallLevel"],
        json["overall_level"]
    );
}

#[test]
fn json_flag_is_format_json() {
    let clean = fixture("clean");
    let clean = clean.to_str().expect("utf-8 path");
    let a = success(&assess(&[clean, "--json"]));
    let b = success(&assess(&[clean, "--format", "json"]));
    assert_eq!(a, b);
}

#[test]
fn fail_under_exits_12_and_still_prints_the_report() {
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(dir.path().join("README.md"), "# A weak repository\n").expect("write");
    let out = assess_in(dir.path(), &[".", "--fail-under", "5"]);
    assert_eq!(out.status.code(), Some(12), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("Deployment readiness of . (1 files)"),
        "{}",
        stdout(&out)
    );
    assert!(
        stderr(&out).contains("below --fail-under 5"),
        "{}",
        stderr(&out)
    );
    // At or above the level, exit 0.
    let out = assess_in(dir.path(), &[".", "--fail-under", "1"]);
    success(&out);
}

#[test]
fn a_file_or_a_missing_path_exits_2_saying_what_to_pass() {
    let dir = tempfile::tempdir().expect("tempdir");
    let file = dir.path().join("Dockerfile");
    std::fs::write(&file, "FROM scratch\n").expect("write");
    let missing = dir.path().join("nope");
    for path in [&file, &missing] {
        let out = assess(&[path.to_str().expect("utf-8 path")]);
        assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
        assert!(
            stderr(&out).contains("pass the path of a repository's folder"),
            "{}",
            stderr(&out)
        );
        assert!(stdout(&out).is_empty());
    }
}

#[test]
fn check_problems_come_from_the_real_config_checker() {
    // `${DATABASE_URL}` is not set here: it is not a problem. `"two"` is.
    let dir = tempfile::tempdir().expect("tempdir");
    std::fs::write(
        dir.path().join("cutover.toml"),
        "[app]\nname = \"shop\"\n\n[service.web]\ncommand = [\"./web\", \"--port\", \"{port}\"]\nenv = { DATABASE_URL = \"${DATABASE_URL}\" }\nreplicas = \"two\"\nhealth = { path = \"/up\" }\n\n[environment.production]\nlisten = \"127.0.0.1:8080\"\n",
    )
    .expect("write");
    let out = Command::new(env!("CARGO_BIN_EXE_cutover"))
        .args(["assess", "--json", "."])
        .current_dir(dir.path())
        .env_remove("DATABASE_URL")
        .output()
        .expect("run");
    let json: serde_json::Value = serde_json::from_str(&success(&out)).expect("JSON");
    let invalid: Vec<&serde_json::Value> = json["findings"]
        .as_array()
        .expect("findings")
        .iter()
        .filter(|f| f["rule"] == "cutover-config/invalid")
        .collect();
    assert_eq!(invalid.len(), 1, "{json:#}");
    let evidence = &invalid[0]["evidence"][0];
    assert_eq!(evidence["path"], "cutover.toml");
    assert_eq!(evidence["line"], 7);
    assert_eq!(evidence["column"], 12);
    assert_eq!(evidence["snippet"], "replicas = \"two\"");
    assert!(
        invalid[0]["message"]
            .as_str()
            .is_some_and(|m| m.contains("replicas")),
        "{json:#}"
    );
}

#[test]
fn this_repository_is_assessed_the_same_twice() {
    let a = success(&assess(&[".", "--json"]));
    let b = success(&assess(&[".", "--json"]));
    assert_eq!(a, b);
    let json: serde_json::Value = serde_json::from_str(&a).expect("JSON");
    // The fixtures (fake secrets, bad Dockerfiles) are left out by
    // .cutoverignore.
    for finding in json["findings"].as_array().expect("findings") {
        let path = finding["evidence"][0]["path"].as_str().unwrap_or_default();
        assert!(
            !path.starts_with("crates/assess/tests/fixtures/"),
            "{finding:#}"
        );
    }
}

/// The report with what changes from commit to commit (the file count)
/// replaced, and trailing spaces trimmed.
fn normalise(report: &str) -> String {
    report
        .lines()
        .map(|line| {
            let line = line.trim_end();
            match (
                line.strip_prefix("Deployment readiness of . ("),
                line.ends_with(" files)"),
            ) {
                (Some(_), true) => "Deployment readiness of . (N files)".to_string(),
                _ => line.to_string(),
            }
        })
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn docs_assess_md_shows_this_repositorys_report() {
    let report = normalise(&success(&assess(&["."])));
    let docs_path = repo_root().join("docs/assess.md");
    let docs = std::fs::read_to_string(&docs_path).expect("docs/assess.md");
    let (before, rest) = docs.split_once(START).expect("the start marker");
    let (block, after) = rest.split_once(END).expect("the end marker");
    let fresh = format!("\n```text\n{report}\n```\n");
    if std::env::var_os("CUTOVER_UPDATE_ASSESS_EXAMPLE").is_some() {
        std::fs::write(&docs_path, format!("{before}{START}{fresh}{END}{after}"))
            .expect("write docs/assess.md");
        return;
    }
    assert!(
        block == fresh,
        "docs/assess.md's report of this repository is stale: run\n  CUTOVER_UPDATE_ASSESS_EXAMPLE=1 cargo test -p cutover --test e2e assess::docs\nand commit docs/assess.md.\n--- in docs ---{block}--- now ---{fresh}"
    );
}
