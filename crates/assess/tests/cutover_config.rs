//! The `cutover_config` pass on real files: the clean fixture's cutover.toml
//! (no findings, the facts that lift its areas), a weak config with every
//! rule at its exact line, `cutover check` problems through the hook, and
//! garbage that must not panic.

use std::path::Path;

use cutover_assess::{ConfigProblem, Hooks, NoHooks, Report};

fn fixture(name: &str) -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(name)
}

fn repo(files: &[(&str, &[u8])]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("tempdir");
    for (path, bytes) in files {
        let path = dir.path().join(path);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("mkdir");
        }
        std::fs::write(path, bytes).expect("write");
    }
    dir
}

/// `rule path:line` of this pass's findings, in report order.
fn ours(report: &Report) -> Vec<String> {
    report
        .findings
        .iter()
        .filter(|f| f.rule.starts_with("cutover-config/"))
        .map(|f| {
            let e = &f.evidence[0];
            format!("{} {}", f.rule, e.location())
        })
        .collect()
}

/// The fact `id` this pass recorded (from a cutover.toml; other passes may
/// record the same id elsewhere).
fn fact<'r>(report: &'r Report, id: &str) -> Option<&'r cutover_assess::Fact> {
    report
        .facts
        .iter()
        .find(|f| f.id == id && f.evidence.path.ends_with("cutover.toml"))
}

#[test]
fn the_clean_fixture_has_no_findings_and_every_fact() {
    let report = cutover_assess::assess(&fixture("clean"), &NoHooks).expect("assess");
    assert_eq!(ours(&report), Vec::<String>::new());
    for id in [
        "deploy.cutover",
        "deploy.progressive",
        "deploy.auto-rollback",
        "deploy.health-gated",
        "env.multiple",
        "env.approvals",
        "env.promotion",
        "backup.script",
        "backup.encrypted",
        "backup.scheduled",
        "backup.retention",
        "backup.restore-test",
        "db.migrations",
        "db.migration-lint",
        "db.migrate-in-pipeline",
    ] {
        assert!(fact(&report, id).is_some(), "missing fact {id}");
    }
    let canary = fact(&report, "deploy.auto-rollback").expect("auto-rollback");
    assert_eq!(canary.evidence.location(), "cutover.toml:16");
    assert_eq!(
        canary.detail,
        "canary analysis of service web (max_error_rate, max_p99)"
    );
    let health = fact(&report, "deploy.health-gated").expect("health");
    assert_eq!(health.evidence.location(), "cutover.toml:10");
    assert!(health.detail.contains("/healthz"));
    assert_eq!(
        fact(&report, "env.promotion")
            .expect("promotion")
            .evidence
            .location(),
        "cutover.toml:28"
    );
    assert_eq!(
        fact(&report, "backup.restore-test")
            .expect("verify")
            .evidence
            .location(),
        "cutover.toml:35"
    );
}

const WEAK: &str = r#"[app]
name = "weak"

[server]
listen = "10.0.0.5:7070"
allow_plaintext = true

[service.web]
command = ["./web", "--port", "{port}"]
rollout = { strategy = "canary", steps = [50, 100] }

[service.jobs]
kind = "worker"
command = ["./jobs"]

[environment.production]
listen = "0.0.0.0:8080"
rollback_window = "0s"

[database.main]
url = "${DATABASE_URL}"
backup = { recipients = ["age1ql3z7hjy54pw3hyww5ayyfg7zqgvc7w3j2elw8zmrj2kg5sfn9aqmcac8p"] }

[database.events]
url = "sqlite://events.db"
"#;

#[test]
fn a_weak_config_has_every_finding_at_its_line() {
    let dir = repo(&[("deploy/cutover.toml", WEAK.as_bytes())]);
    let report = cutover_assess::assess(dir.path(), &NoHooks).expect("assess");
    assert_eq!(
        ours(&report),
        [
            "cutover-config/plaintext-api deploy/cutover.toml:6",
            "cutover-config/no-health-check deploy/cutover.toml:8",
            "cutover-config/canary-without-analysis deploy/cutover.toml:10",
            "cutover-config/no-rollback-window deploy/cutover.toml:18",
            "cutover-config/backup-unverified deploy/cutover.toml:22",
            "cutover-config/database-without-backup deploy/cutover.toml:24",
            "cutover-config/plaintext-listener deploy/cutover.toml:17",
            "cutover-config/backup-not-before-deploy deploy/cutover.toml:22",
        ]
    );
    // The worker needs no health path; one environment is not "multiple".
    assert!(!report.findings.iter().any(|f| f.message.contains("`jobs`")));
    assert!(fact(&report, "env.multiple").is_none());
    assert!(fact(&report, "deploy.auto-rollback").is_none());
    // Migrations are cutover's, in the folder next to the file.
    let migrations = fact(&report, "db.migrations").expect("db.migrations");
    assert_eq!(
        migrations.detail,
        "cutover (database main, deploy/migrations/)"
    );
}

#[test]
fn a_contract_migration_is_expand_contract() {
    let dir = repo(&[
        (
            "cutover.toml",
            b"[app]\nname = \"x\"\n[database.main]\nurl = \"sqlite://x.db\"\nmigrations = \"db/migrations\"\n",
        ),
        ("db/migrations/0001_init.sql", b"CREATE TABLE t (id int);\n"),
        (
            "db/migrations/0002_drop.sql",
            b"-- drop the old column\n-- cutover:phase contract\nALTER TABLE t DROP COLUMN name;\n",
        ),
        ("other/0003.sql", b"-- cutover:phase contract\n"),
    ]);
    let report = cutover_assess::assess(dir.path(), &NoHooks).expect("assess");
    // Only the configured folder's contract migration counts, not other/0003.sql.
    let places: Vec<String> = report
        .facts
        .iter()
        .filter(|f| f.id == "db.expand-contract")
        .map(|f| f.evidence.location())
        .collect();
    assert_eq!(places, ["db/migrations/0002_drop.sql:2"]);
}

/// Reports what `cutover check` would for a file with `replicas = "two"`:
/// the real checker is the binary's (tested in tests/e2e/assess.rs); this
/// checks how its problems become findings.
struct Checker;

impl Hooks for Checker {
    fn check_config(&self, path: &str, text: &str) -> Vec<ConfigProblem> {
        assert_eq!(path, "cutover.toml");
        let mut out = Vec::new();
        if let Some(i) = text.lines().position(|l| l.contains("\"two\"")) {
            out.push(ConfigProblem {
                line: i + 1,
                column: 12,
                message: "wrong type for `replicas`".into(),
            });
        }
        out.push(ConfigProblem {
            line: 0,
            column: 0,
            message: "the file as a whole".into(),
        });
        out
    }
}

#[test]
fn check_problems_become_high_findings_at_line_and_column() {
    let dir = repo(&[(
        "cutover.toml",
        b"[app]\nname = \"x\"\n\n[service.web]\nreplicas = \"two\"\nhealth = { path = \"/up\" }\n",
    )]);
    let report = cutover_assess::assess(dir.path(), &Checker).expect("assess");
    let invalid: Vec<_> = report
        .findings
        .iter()
        .filter(|f| f.rule == "cutover-config/invalid")
        .collect();
    assert_eq!(invalid.len(), 2);
    assert_eq!(invalid[0].evidence[0].location(), "cutover.toml");
    assert_eq!(invalid[1].evidence[0].location(), "cutover.toml:5");
    assert_eq!(invalid[1].evidence[0].column, 12);
    assert_eq!(invalid[1].evidence[0].snippet, "replicas = \"two\"");
    assert_eq!(
        invalid[1].message,
        "`cutover check`: wrong type for `replicas`"
    );
    assert_eq!(invalid[1].severity, cutover_assess::Severity::High);
}

#[test]
fn garbage_never_panics() {
    let long = format!("[app]\nname = \"{}\"\n", "x".repeat(200_000));
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("a/cutover.toml", vec![0, 159, 146, 150, 0, 1, 2]),
        ("b/cutover.toml", b"[app\nname = = \n[[[".to_vec()),
        ("c/cutover.toml", long.into_bytes()),
        (
            "d/cutover.toml",
            b"service = 5\nenvironment = \"x\"\ndatabase = [1, 2]\nserver = true\n".to_vec(),
        ),
        (
            "e/cutover.toml",
            b"[service.web]\nhealth = 3\nrollout = \"canary\"\n[service.w2.rollout]\nstrategy = 7\nanalysis = []\n[environment.p]\nlisten = 443\nrollback_window = 0\n[database.d]\nbackup = \"yes\"\nmigrations = 5\n".to_vec(),
        ),
        ("f/cutover.toml", "\u{feff}[app]\nname = \"é\"\n".as_bytes().to_vec()),
    ];
    let files: Vec<(&str, &[u8])> = cases.iter().map(|(p, b)| (*p, b.as_slice())).collect();
    let dir = repo(&files);
    let report = cutover_assess::assess(dir.path(), &NoHooks).expect("assess");
    // The binary file is reported as unreadable; the rest parse or are skipped.
    assert!(ours(&report).contains(&"cutover-config/invalid a/cutover.toml".to_string()));
}
