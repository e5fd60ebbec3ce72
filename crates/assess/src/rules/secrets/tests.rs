//! The secrets pass on small repositories written to a temporary folder.
//! Secret-shaped values are built at run time so this file is not a finding
//! of `cutover assess` itself.

use std::fs;

use crate::NoHooks;
use crate::finding::{Fact, Finding};
use crate::repo::Repo;
use crate::rules::Context;

fn run(files: &[(&str, &str)]) -> (Vec<Finding>, Vec<Fact>) {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, text) in files {
        let p = dir.path().join(path);
        fs::create_dir_all(p.parent().expect("parent")).expect("mkdir");
        fs::write(p, text).expect("write");
    }
    let repo = Repo::open(dir.path()).expect("open");
    let mut cx = Context::new(&repo, &NoHooks);
    super::run(&mut cx);
    cx.into_parts()
}

fn rules(findings: &[Finding]) -> Vec<String> {
    findings
        .iter()
        .map(|f| format!("{} {}", f.rule, f.evidence[0].location()))
        .collect()
}

fn fact_ids(facts: &[Fact]) -> Vec<&str> {
    facts.iter().map(|f| f.id).collect()
}

const RANDOM: &str = "q8Zp3LxR7vN2mK9tW4yB6cH1";

fn key_block() -> String {
    format!(
        "-----BEGIN {}PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAABG5vbmUAAAAEbm9uZQAAAAAAAAABAAAAMwAAAAtzc2gtZW\n-----END OPENSSH PRIVATE KEY-----\n",
        "OPENSSH "
    )
}

#[test]
fn a_committed_env_file_is_high_and_redacted() {
    let env = format!(
        "# local\nDEBUG=1\nSECRET_KEY={RANDOM}\nDATABASE_PASSWORD=${{DB_PASSWORD}}\nexport API_TOKEN=\"{RANDOM}x\"\n"
    );
    let (findings, facts) = run(&[
        (".env", &env),
        (".env.example", "SECRET_KEY=changeme\n"),
        (".gitignore", "node_modules/\n"),
    ]);
    assert_eq!(rules(&findings), ["secrets/env-file .env:3"]);
    let f = &findings[0];
    assert_eq!(f.evidence.len(), 2);
    assert_eq!(f.evidence[1].line, 5);
    assert!(f.message.contains("SECRET_KEY, API_TOKEN"), "{}", f.message);
    let json = serde_json::to_string(&findings).expect("json");
    assert!(!json.contains(RANDOM), "{json}");
    assert!(json.contains("q8Zp***"));
    assert_eq!(
        fact_ids(&facts),
        ["env.config-template", "sec.secrets-from-env"]
    );
}

#[test]
fn gitignore_and_several_environments() {
    let (findings, facts) = run(&[
        (".gitignore", "*.log\n.env*\n!.env.example\n"),
        (".env.example", "X=\n"),
        ("k8s/overlays/staging/kustomization.yaml", "resources: []\n"),
        (
            "k8s/overlays/production/kustomization.yaml",
            "resources: []\n",
        ),
    ]);
    assert!(findings.is_empty(), "{findings:?}");
    let env_ignored = facts
        .iter()
        .find(|f| f.id == "sec.env-ignored")
        .expect("ignored");
    assert_eq!(env_ignored.evidence.location(), ".gitignore:2");
    let multiple = facts
        .iter()
        .find(|f| f.id == "env.multiple")
        .expect("multiple");
    assert_eq!(
        multiple.detail,
        "Kustomize overlays: staging (k8s/overlays/staging/kustomization.yaml) and production (k8s/overlays/production/kustomization.yaml)"
    );
}

#[test]
fn keys_and_tokens() {
    let aws = format!("{}{}", "AKIA", "Q3ZV7XK2LM4NP5RT");
    let example = format!("{}{}", "AKIA", "IOSFODNN7EXAMPLE");
    let settings = format!("import os\nAWS_KEY = \"{aws}\"\nOTHER = \"{example}\"\n");
    let (findings, _) = run(&[
        ("deploy/id_ed25519", &key_block()),
        ("tests/data/server.key", &format!("\n{}", key_block())),
        ("app/settings.py", &settings),
        (
            "src/pem.rs",
            "const H: &str = \"-----BEGIN PRIVATE KEY-----\";\n",
        ),
        ("package-lock.json", &format!("{{\"x\": \"{aws}\"}}")),
    ]);
    assert_eq!(
        rules(&findings),
        [
            "secrets/token app/settings.py:2",
            "secrets/sample-secret app/settings.py:3",
            "secrets/private-key deploy/id_ed25519:1",
            "secrets/sample-secret tests/data/server.key:2",
        ]
    );
    let json = serde_json::to_string(&findings).expect("json");
    assert!(
        !json.contains(&aws) && !json.contains("b3BlbnNzaC1rZXkt"),
        "{json}"
    );
}

#[test]
fn high_entropy_values_under_secret_keys() {
    let yaml = format!(
        "db:\n  password: {RANDOM}\n  password_file: /run/secrets/{RANDOM}\n  user: {RANDOM}\n  token: ${{TOKEN}}\n  api_key: changeme-{RANDOM}\n"
    );
    let json = format!("{{\n  \"clientSecret\": \"{RANDOM}\",\n  \"secret\": \"short\"\n}}\n");
    let (findings, _) = run(&[
        ("config/app.yml", &yaml),
        ("config/app.json", &json),
        ("docker-compose.yml", &yaml),
    ]);
    assert_eq!(
        rules(&findings),
        [
            "secrets/high-entropy config/app.json:2",
            "secrets/high-entropy config/app.yml:2",
        ]
    );
    assert_eq!(findings[1].evidence[0].snippet, "password: q8Zp***");
}

#[test]
fn garbage_never_panics() {
    let (findings, _) = run(&[
        (".env", "=\n==\nexport\n\u{0}\n"),
        ("x.yml", &"a: ".repeat(50_000)),
        (
            "y.json",
            "\u{feff}{\"password\": \"é€\u{1F600}é€\u{1F600}é€\u{1F600}é€\u{1F600}\"}",
        ),
        (".gitignore", "[\n\\\n!\n"),
        ("k", "-----BEGIN PRIVATE KEY-----"),
    ]);
    assert!(findings.iter().all(|f| f.rule != "secrets/private-key"));
}
